//! The two byte ranges clients send: `Range` on a blob read (RFC 9110 14.1.2, one range)
//! and `Content-Range` on an upload chunk (the distribution spec's `<start>-<end>`, both
//! inclusive). Pure functions with checked arithmetic: no input can make them underflow,
//! overflow or return an empty or out-of-bounds range (fuzzed: `fuzz/fuzz_targets/ranges.rs`).

use std::ops::Range;

/// A `Range` that no byte of the representation satisfies (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable for a blob of {size} bytes")]
pub struct Unsatisfiable {
    pub size: u64,
}

/// Parses a single `Range: bytes=...` against a representation of `size` bytes: the bytes
/// to send, never empty and within `0..size`. Forms the server does not serve partially
/// (other units, several ranges, garbage) yield `None`: the whole representation, as RFC
/// 9110 allows. A zero-length representation satisfies no range, suffix ranges included.
pub fn byte_range(value: &str, size: u64) -> Result<Option<Range<u64>>, Unsatisfiable> {
    let unsatisfiable = Unsatisfiable { size };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        // `-N`: the last N bytes (all of them when N exceeds the size).
        (true, false) => match num(b) {
            Some(0) => Err(unsatisfiable),
            Some(_) if size == 0 => Err(unsatisfiable),
            Some(n) => Ok(Some(size.saturating_sub(n)..size)),
            None => Ok(None),
        },
        // `N-`: from N to the end.
        (false, true) => match num(a) {
            Some(start) if start >= size => Err(unsatisfiable),
            Some(start) => Ok(Some(start..size)),
            None => Ok(None),
        },
        // `N-M`: inclusive, M clamped to the last byte.
        (false, false) => match (num(a), num(b)) {
            (Some(start), Some(end)) if start > end || start >= size => Err(unsatisfiable),
            (Some(start), Some(end)) => Ok(Some(start..end.min(size - 1) + 1)),
            _ => Ok(None),
        },
        (true, true) => Ok(None),
    }
}

/// Why a `Content-Range` of an upload chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRangeError {
    #[error("Content-Range '{0}' is not of the form '<start>-<end>'")]
    Malformed(String),
    /// Well formed, but no chunk can be that: its length does not fit in 64 bits.
    #[error("Content-Range '{0}' covers more bytes than any chunk can hold")]
    TooLong(String),
}

/// A chunk's position, from `Content-Range: <start>-<end>` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
    count: u64,
}

impl ChunkRange {
    pub fn parse(header: &str) -> Result<ChunkRange, ChunkRangeError> {
        let bad = || ChunkRangeError::Malformed(header.to_string());
        let v = header.trim();
        let v = v
            .strip_prefix("bytes=")
            .or_else(|| v.strip_prefix("bytes "))
            .unwrap_or(v);
        let (a, b) = v.split_once('-').ok_or_else(bad)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        let (a, b) = (a.trim(), b.trim());
        if !digits(a) || !digits(b) {
            return Err(bad());
        }
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end: u64 = b.parse().map_err(|_| bad())?;
        if end < start {
            return Err(bad());
        }
        let count = (end - start)
            .checked_add(1)
            .ok_or_else(|| ChunkRangeError::TooLong(header.to_string()))?;
        Ok(ChunkRange { start, end, count })
    }

    /// Bytes the range covers (never zero: `end` is inclusive).
    pub fn byte_count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(byte_range("bytes=500-1499", 2048).unwrap(), Some(500..1500));
        assert_eq!(byte_range("bytes=500-", 2048).unwrap(), Some(500..2048));
        assert_eq!(byte_range("bytes=-500", 2048).unwrap(), Some(1548..2048));
        assert_eq!(byte_range("bytes=-5000", 2048).unwrap(), Some(0..2048));
        assert_eq!(
            byte_range("bytes=2000-5000", 2048).unwrap(),
            Some(2000..2048)
        );
        assert!(byte_range("bytes=500-0", 2048).is_err());
        assert!(byte_range("bytes=5000-10000", 2048).is_err());
        assert_eq!(byte_range("bytes=0-1,5-6", 2048).unwrap(), None);
        assert_eq!(byte_range("items=0-1", 2048).unwrap(), None);
        assert_eq!(byte_range("bytes=+1-2", 2048).unwrap(), None);
    }

    #[test]
    fn an_empty_representation_satisfies_no_range() {
        for r in ["bytes=-5", "bytes=-1", "bytes=0-", "bytes=0-0", "bytes=-0"] {
            assert_eq!(byte_range(r, 0), Err(Unsatisfiable { size: 0 }), "{r}");
        }
        assert_eq!(
            byte_range(&format!("bytes=0-{}", u64::MAX), 1).unwrap(),
            Some(0..1)
        );
    }

    #[test]
    fn content_ranges_are_inclusive_and_never_overflow() {
        assert_eq!(ChunkRange::parse("0-9").unwrap().byte_count(), 10);
        let r = ChunkRange::parse("bytes=10-19").unwrap();
        assert_eq!((r.start, r.end, r.byte_count()), (10, 19, 10));
        assert!(ChunkRange::parse("9-0").is_err());
        assert!(ChunkRange::parse("abc").is_err());
        assert!(ChunkRange::parse("1-").is_err());
        assert!(ChunkRange::parse("+1-2").is_err());
        assert_eq!(
            ChunkRange::parse(&format!("0-{}", u64::MAX)),
            Err(ChunkRangeError::TooLong(format!("0-{}", u64::MAX)))
        );
        assert_eq!(
            ChunkRange::parse(&format!("1-{}", u64::MAX))
                .unwrap()
                .byte_count(),
            u64::MAX
        );
    }
}
