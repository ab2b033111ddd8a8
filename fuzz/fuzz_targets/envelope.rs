//! Notary JWS envelopes as signers push them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bonded::trust::envelope::parse(data);
});
