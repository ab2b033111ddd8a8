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
