//! The haproxy.cfg importer on any text: never a panic, never a name lookup.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(imported) = vrrpd::import::import_text(None, Some(text)) {
        let _ = ha_common::Config::parse(&imported.toml, std::path::Path::new("imported.toml"));
    }
});
