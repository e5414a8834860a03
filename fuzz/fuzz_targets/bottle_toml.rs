//! The bottle.toml loader on arbitrary text: it never panics, and a refusal
//! names the file it refused.
#![no_main]

use std::path::Path;

use bottle_core::spec::Spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/nonexistent/fuzz/bottle.toml");
    if let Err(e) = Spec::parse(path, text) {
        let shown = e.to_string();
        assert!(shown.contains("bottle.toml"), "{shown}");
    }
});
