//! The pack reader git-gate runs on a pushed pack to prove a fast-forward: any bytes give a
//! graph or an error, never a panic, and never more memory than the declared-size limits allow.
#![no_main]

use bottle_bundle::gitgate::pack::Graph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = Graph::read(data) {
        let _ = graph.reaches(&"0".repeat(40), &"1".repeat(40));
    }
});
