//! The proxy's request-head parser on arbitrary bytes: it never panics, a
//! parsed head never claims more bytes than it was given, and the answer does
//! not depend on bytes past the head.
#![no_main]

use bottle_bundle::http::parse_request;
use libfuzzer_sys::fuzz_target;

/// The bundle's default header cap is 32 KiB; a small one exercises the limit too.
const MAX_HEAD: usize = 8192;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_request(data, MAX_HEAD) else { return };
    assert!(head.len <= data.len() && head.len <= MAX_HEAD + 4, "head len {} of {}", head.len, data.len());
    let again = parse_request(&data[..head.len], MAX_HEAD).expect("the same head parses alone").expect("complete");
    assert_eq!(again, head);
    let _ = head.target.host();
    let _ = head.keep_alive();
});
