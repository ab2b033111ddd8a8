//! The two byte ranges clients send: a blob read's `Range` (against a blob size taken from
//! the input) and an upload chunk's `Content-Range`. Every accepted range must be
//! non-empty and in bounds, and its length computed without overflow.
#![no_main]
use bonded::oci::range::{byte_range, ChunkRange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, text) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().expect("eight bytes"));
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    match byte_range(s, size) {
        Ok(Some(r)) => assert!(r.start < r.end && r.end <= size, "{s:?} {size}: {r:?}"),
        Ok(None) => {}
        Err(e) => assert_eq!(e.size, size),
    }
    // small sizes too, where the empty and one-byte cases live
    let _ = byte_range(s, size % 4);
    if let Ok(c) = ChunkRange::parse(s) {
        assert!(c.start <= c.end, "{s:?}");
        let n = u128::from(c.end) - u128::from(c.start) + 1;
        assert_eq!(u128::from(c.byte_count()), n, "{s:?}");
    }
});
