//! The tunnel's ClientHello reader on arbitrary bytes: it never panics, a
//! server name it returns is printable ASCII, and a hello it parses was
//! `Incomplete` at every shorter length (the tunnel waits on that answer).
#![no_main]

use bottle_bundle::proxy::sni::{Hello, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verdict = inspect(data);
    if let Hello::Parsed(name) = &verdict {
        if let Some(name) = name {
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
        }
        let record = 5 + usize::from(u16::from_be_bytes([data[3], data[4]]));
        for cut in 1..record {
            assert_eq!(inspect(&data[..cut]), Hello::Incomplete, "cut at {cut}");
        }
        assert_eq!(inspect(&data[..record]), verdict);
    }
});
