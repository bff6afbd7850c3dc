//! Property tests of the small decoders in weft-spec that read what others wrote: metric
//! values through JSON (`float`) and digests (`digest`). Neither panics on any input, and what
//! is written reads back unchanged.

use proptest::prelude::*;
use weft_spec::float::Float;

proptest! {
    #[test]
    fn every_f64_round_trips_through_json(bits in any::<u64>()) {
        let v = f64::from_bits(bits);
        let text = serde_json::to_string(&Float(v)).unwrap();
        let back: Float = serde_json::from_str(&text).unwrap();
        prop_assert!(back.0 == v || (v.is_nan() && back.0.is_nan()), "{v} -> {text} -> {}", back.0);
    }

    #[test]
    fn reading_any_json_text_as_a_float_never_panics(text in any::<String>()) {
        let _ = serde_json::from_str::<Float>(&text);
    }

    #[test]
    fn reading_any_string_as_a_digest_never_panics_and_accepts_only_the_strict_form(s in any::<String>()) {
        if let Ok(hex) = weft_spec::digest::parse(&s) {
            prop_assert_eq!(s.len(), 71);
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn every_sha256_hex_is_a_digest(bytes in any::<[u8; 32]>()) {
        let d = format!("sha256:{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        prop_assert!(weft_spec::digest::parse(&d).is_ok());
    }
}
