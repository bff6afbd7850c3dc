//! Content digests as Weft writes them: `sha256:` and 64 lowercase hex digits.
//!
//! A digest names a directory in the artifact store, so it is parsed strictly wherever it
//! enters (CLI, pipeline specs, work orders, reports, InferenceService files) before it becomes
//! a path: `sha256:../x` or an upper-case twin of a stored digest never reaches the filesystem.

/// Why a string is not a digest, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a digest: expected `sha256:` and 64 lowercase hex digits")]
pub struct DigestError {
    shown: String,
}

/// The hex part of a strict `sha256:<64 lowercase hex>` digest.
pub fn parse(digest: &str) -> Result<&str, DigestError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(DigestError {
            shown: crate::text::truncate(&crate::text::escape_control(digest), 100).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_sha256_digests_parse() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse(&good).unwrap(), "ab".repeat(32));
        for bad in [
            "sha256:../x".to_string(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}/", "ab".repeat(32)),
            format!("sha512:{}", "ab".repeat(32)),
            "ab".repeat(32),
            String::new(),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains("is not a digest"), "{bad}: {err}");
        }
    }
}
