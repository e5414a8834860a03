use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;

use super::super::anchors::Anchors;
use super::super::rules::ANCHORS;
use super::*;

const NAME: &str = "PROP_SECRET";
const VALUE: &str = "pr0p-Secret~value!";

fn scanner() -> (Scanner, tempfile::NamedTempFile) {
    with_secrets(&format!("{NAME} = \"{VALUE}\"\nSECOND = \"another-never-leave-1\""))
}

/// The forms a secret can be embedded in; base64 forms wrap the surrounding
/// random bytes too, so the secret sits at an arbitrary alignment in the blob.
fn embed(before: &[u8], after: &[u8], form: u8) -> Vec<u8> {
    let raw = [before, VALUE.as_bytes(), after].concat();
    match form % 5 {
        0 => raw,
        1 => [before, b"p0%2A", VALUE.bytes().map(|b| format!("%{b:02x}")).collect::<String>().as_bytes(), after]
            .concat(),
        2 => STANDARD.encode(raw).into_bytes(),
        3 => URL_SAFE_NO_PAD.encode(raw).into_bytes(),
        _ => [before, VALUE.bytes().map(|b| format!("{b:02X}")).collect::<String>().as_bytes(), after].concat(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_ascii_without_anchors_never_matches(text in "[ -~\n]{0,3000}", size in 1usize..700) {
        prop_assume!(!ANCHORS.iter().any(|(a, _)| text.contains(a)));
        let (s, _f) = scanner();
        prop_assert_eq!(rule(&s, text.as_bytes()), None);
        prop_assert_eq!(stream_rule(&s, text.as_bytes(), size), None);
    }

    /// The SIMD finder and the portable fallback agree hit for hit.
    #[test]
    fn both_anchor_finders_agree(parts in proptest::collection::vec((0usize..ANCHORS.len(), "[ -~]{0,12}"), 0..40)) {
        let literals: Vec<&str> = ANCHORS.iter().map(|(a, _)| *a).collect();
        let text: String = parts.iter().map(|(i, filler)| format!("{}{filler}", literals[*i])).collect();
        let (fast, portable) = (Anchors::new(&literals).unwrap(), Anchors::automaton(&literals).unwrap());
        #[cfg(target_arch = "x86_64")]
        prop_assert!(matches!(fast, Anchors::Packed(_)), "every x86-64 CPU of the last 15 years has SSSE3");
        for at in 0..text.len() {
            prop_assert_eq!(fast.find(text.as_bytes(), at), portable.find(text.as_bytes(), at));
        }
    }

    #[test]
    fn an_embedded_secret_is_always_found(
        before in proptest::collection::vec(any::<u8>(), 0..2000),
        after in proptest::collection::vec(any::<u8>(), 0..2000),
        form in any::<u8>(),
        size in 1usize..3000,
    ) {
        let (s, _f) = scanner();
        let data = embed(&before, &after, form);
        let want = format!("dlp:secret:{NAME}");
        prop_assert_eq!(rule(&s, &data), Some(want.clone()));
        prop_assert_eq!(stream_rule(&s, &data, size), Some(want));
    }
}
