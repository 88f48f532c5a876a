//! The configuration loader on any text: a typed configuration or located problems, never a
//! panic, and every problem points inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(error) = ha_common::Config::parse(text, std::path::Path::new("fuzz.toml")) {
        let lines = text.lines().count().max(1);
        for problem in error.problems() {
            assert!(problem.line >= 1 && problem.line <= lines + 1, "{problem}");
            let _ = problem.to_string();
        }
    }
});
