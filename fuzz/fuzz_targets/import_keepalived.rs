//! The keepalived.conf importer on any text: never a panic; what it writes either loads or is
//! refused with located problems.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(imported) = vrrpd::import::import_text(Some(text), None) {
        let _ = ha_common::Config::parse(&imported.toml, std::path::Path::new("imported.toml"));
        for note in &imported.notes {
            let _ = note.to_string();
        }
    }
});
