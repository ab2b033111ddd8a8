//! Bearer tokens as clients present them: must be refused, never accepted or panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let verdict = bonded::auth::jwt::verify(
            b"fuzzing key, not a secret",
            token,
            "registry.test",
            1_800_000_000,
        );
        // Nothing random carries a valid HMAC under this key.
        assert!(verdict.is_err(), "accepted a forged token: {token:?}");
    }
});
