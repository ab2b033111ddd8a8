//! Byte-level blob storage: content-addressed blobs and the append-only files that upload
//! sessions write into. Knows digests and bytes, nothing of repositories, manifests or the
//! database; the OCI semantics live in [`crate::registry`], so an object-store backend only
//! has to implement [`BlobStore`].

mod fs;
mod s3;

pub use fs::FsBlobStore;
pub use s3::{S3BlobStore, S3Location};

use crate::oci::Digest;
use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::ops::Range;
use std::pin::Pin;

/// A stream of body bytes, in or out.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("upload '{0}' does not exist")]
    UploadUnknown(String),
    #[error("chunk starts at byte {requested} but the upload holds {current} bytes")]
    OffsetMismatch { requested: u64, current: u64 },
    #[error("chunk declared {declared} bytes but the body carried {received}")]
    LengthMismatch { declared: u64, received: u64 },
    #[error("content digest is {actual}, not the {expected} the client declared")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("reading the request body failed: {0}")]
    Body(io::Error),
}

/// Storage for blobs and for the upload files that become blobs.
///
/// Invariant: a blob is visible under its digest only once all of its bytes are durable and
/// hash to that digest; `commit` is the only way in, and it is atomic.
/// A blob as [`BlobStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a stored blob, or `None` when absent.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError>;
    /// The blob's bytes in `range` (or all of them); `None` when absent.
    async fn get(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, StorageError>;
    /// Removes a blob; `false` when it was not there.
    async fn delete(&self, digest: &Digest) -> Result<bool, StorageError>;
    /// Every stored blob: digest, size and when its bytes were last written.
    async fn list(&self) -> Result<Vec<StoredBlob>, StorageError>;

    /// Creates an empty upload file named `id`.
    async fn upload_create(&self, id: &str) -> Result<(), StorageError>;
    /// Bytes held so far by upload `id`.
    async fn upload_len(&self, id: &str) -> Result<u64, StorageError>;
    /// Appends `body` at `offset`, which must equal the current length. With `declared`, the
    /// body must carry exactly that many bytes. On any error the upload is left as it was.
    /// Returns the new length.
    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, StorageError>;
    /// Verifies the upload hashes to `expected`, makes it durable and moves it into place as
    /// that blob. On a mismatch the upload stays as it was. Returns the blob's size.
    async fn upload_commit(&self, id: &str, expected: &Digest) -> Result<u64, StorageError>;
    /// Cuts upload `id` back to `len` bytes: a request refused after its chunk was
    /// appended (its digest wrong, a quota exceeded) leaves the upload as it found it.
    async fn upload_truncate(&self, id: &str, len: u64) -> Result<(), StorageError>;
    /// Discards an upload. Absent uploads are not an error.
    async fn upload_delete(&self, id: &str) -> Result<(), StorageError>;
    /// Ids of uploads present and when each last changed (for sweeping leftovers after a
    /// crash).
    async fn upload_list(&self) -> Result<Vec<(String, std::time::SystemTime)>, StorageError>;
    /// Whether other processes may use this store at the same time (replicas on one
    /// bucket): then an upload without a session may be another process's monolithic
    /// upload in flight, and is swept only once old.
    fn shared(&self) -> bool {
        false
    }
    /// Whether the store can be reached now (for `/readyz`): cheap, no bytes written.
    async fn ready(&self) -> Result<(), StorageError>;
}

/// `stream`, the whole of blob `digest`, checked as it goes: the last chunk is held back
/// until the bytes hash to the digest, and a mismatch ends the stream with an error
/// instead of it. A corrupt blob is never served whole: the client sees a short body
/// (fewer bytes than `Content-Length`), never wrong bytes presented as right.
///
/// Hashing runs on a task of its own, a few chunks ahead of the client: reading and
/// hashing on one core while another sends (in line, the two costs added up and a single
/// pull ran at 0.72x Distribution's rate; see docs/benchmarks.md).
pub fn verified(stream: ByteStream, digest: &Digest) -> ByteStream {
    use futures_util::StreamExt;
    let mut checked = check_as_it_goes(stream, digest);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(item) = checked.next().await {
            if tx.send(item).await.is_err() {
                // The client went away: stop reading.
                break;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// [`verified`]'s check, in line with the reader.
fn check_as_it_goes(stream: ByteStream, digest: &Digest) -> ByteStream {
    use futures_util::StreamExt;
    struct State {
        inner: ByteStream,
        hasher: Option<crate::oci::DigestHasher>,
        held: Option<Bytes>,
        expected: Digest,
    }
    let state = State {
        inner: stream,
        hasher: Some(crate::oci::DigestHasher::new(digest.algorithm())),
        held: None,
        expected: digest.clone(),
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            let hasher = st.hasher.as_mut()?;
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    if let Some(prev) = st.held.replace(chunk) {
                        return Some((Ok(prev), st));
                    }
                }
                Some(Err(e)) => {
                    st.hasher = None;
                    return Some((Err(e), st));
                }
                None => {
                    let actual = st.hasher.take()?.finish();
                    if actual == st.expected {
                        return st.held.take().map(|last| (Ok(last), st));
                    }
                    tracing::error!(digest = %st.expected, actual = %actual, "stored blob is corrupt: its bytes hash to another digest; refusing to serve it (run `bonded scrub`)");
                    let e = io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "stored blob {} is corrupt (its bytes hash to {actual})",
                            st.expected
                        ),
                    );
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

#[cfg(test)]
mod verified_tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn collect(s: ByteStream) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn right_bytes_pass_whole_and_wrong_bytes_never_complete() {
        let good = Digest::of(crate::oci::Algorithm::Sha256, b"hello world");
        let (bytes, err) = collect(verified(chunks(&[b"hello ", b"world"]), &good)).await;
        assert_eq!(bytes, b"hello world");
        assert!(err.is_none());
        // One byte changed: the stream ends in an error before its last chunk.
        let (bytes, err) = collect(verified(chunks(&[b"hello ", b"wOrld"]), &good)).await;
        assert_eq!(bytes, b"hello ");
        assert_eq!(err.unwrap().kind(), io::ErrorKind::InvalidData);
        // A blob of one chunk: nothing of it is sent.
        let (bytes, err) = collect(verified(chunks(&[b"hello world!"]), &good)).await;
        assert!(bytes.is_empty());
        assert!(err.is_some());
    }
}
