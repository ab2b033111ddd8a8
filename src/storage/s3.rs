//! The S3 blob store: any S3-compatible object store, through `object_store`.
//!
//! Layout under `PREFIX/` in the bucket:
//! - `blobs/<algorithm>/<first two hex>/<hex>`: committed blobs, as on the filesystem;
//! - `uploads/<id>/state`: an upload session's [`State`] (JSON), the only object a session
//!   is read from, so any replica can continue a session another one began;
//! - `uploads/<id>/tail.<len>`: the session's bytes not yet in a part (< one part);
//! - `uploads/<id>/data`: the target of the session's S3 multipart upload.
//!
//! S3 parts must be at least 5 MiB (all but the last), while OCI clients send chunks of any
//! size. Bytes therefore gather in the tail object until a whole [`PART_SIZE`] part can be
//! sent; the running digest travels in the state (sha2's serialized state), so a commit
//! never reads the bytes back. A commit sends the tail as the last part, completes the
//! multipart upload and copies `data` to the blob's key inside the store: the blob key
//! appears only whole (S3 puts and copies are atomic), after its digest was checked.
//!
//! A request that fails part-way (the client went away, the replica died) never rewrote the
//! state: the session is as the previous request left it, and a part it may have sent
//! under the next part number is overwritten by the next request that gets that far. The
//! state keeps the session as it was before its last append, which is what lets a refused
//! last chunk be cut off again ([`BlobStore::upload_truncate`]).
//!
//! Requests of one session are serialised by the registry in one process; two replicas
//! appending to one session at once are not (OCI clients send a session's chunks one after
//! another). Multipart uploads left by a replica that died between creating one and
//! recording it are not listed by bonded: give the bucket S3's
//! `AbortIncompleteMultipartUpload` lifecycle rule.

use super::{BlobStore, ByteStream, StorageError};
use crate::oci::{Algorithm, Digest, DigestHasher};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::io;
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Size of every multipart part but the last: above S3's 5 MiB minimum, equal sizes (as R2
/// requires). With S3's 10,000 parts, a blob may be up to 80 GiB.
pub const PART_SIZE: usize = 8 << 20;
const MAX_PARTS: usize = 10_000;
/// Appends and commits holding a part's buffer at once: bounds the store's memory to about
/// `PART_SIZE * 2 * MAX_BUFFERING` whatever the number of uploads; more wait their turn.
const MAX_BUFFERING: usize = 32;
/// S3's limit for a copy in one request; larger blobs are copied part by part.
const MAX_SINGLE_COPY: u64 = 5 << 30;

/// Where the blobs are: `s3://BUCKET[/PREFIX]` plus how to reach the endpoint.
#[derive(Debug, Clone)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub allow_http: bool,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str, endpoint: Option<String>, allow_http: bool) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("blob store '{url}' is not s3://BUCKET[/PREFIX] (or omit it for the data directory)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: 3-63 of lower-case letters, digits, dots and hyphens.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(format!(
                "'{bucket}' is not an S3 bucket name (3 to 63 lower-case letters, digits, dots, hyphens)"
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(format!("prefix '{prefix}' names '.' or '..'"));
        }
        if let Some(e) = &endpoint {
            if e.starts_with("http://") && !allow_http {
                return Err(format!(
                    "--s3-endpoint {e} is plain HTTP: give --s3-allow-http for a local endpoint"
                ));
            }
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix,
            endpoint,
            allow_http,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// One state of an upload session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    len: u64,
    /// The multipart upload of `data`, once the first part was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    /// ETags of the parts sent, in order; each holds [`PART_SIZE`] bytes.
    #[serde(default)]
    parts: Vec<String>,
    /// Bytes after the parts, in `tail.<tail_at>`; none when 0.
    tail_len: u64,
    /// The session's length when its tail object was written (names the object).
    tail_at: u64,
    /// [`DigestHasher::save`] of the bytes so far, base64.
    hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    current: Session,
    /// The session before its last append, to cut a refused chunk off again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Session>,
}

impl Session {
    fn empty(algorithm: Algorithm) -> Self {
        Session {
            len: 0,
            multipart: None,
            parts: Vec::new(),
            tail_len: 0,
            tail_at: 0,
            hash: base64::engine::general_purpose::STANDARD
                .encode(DigestHasher::new(algorithm).save()),
        }
    }

    fn hasher(&self) -> Result<DigestHasher, StorageError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.hash)
            .ok()
            .and_then(|b| DigestHasher::resume(&b))
            .ok_or_else(|| broken("an upload's saved hash state is unreadable"))
    }
}

fn broken(what: &str) -> StorageError {
    StorageError::Io(io::Error::new(io::ErrorKind::InvalidData, what.to_string()))
}

fn s3_err(e: object_store::Error) -> StorageError {
    StorageError::Io(io::Error::other(format!("S3: {e}")))
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    location: S3Location,
    buffers: Semaphore,
}

impl S3BlobStore {
    /// Connects to the bucket (credentials and region from `AWS_*` variables). Nothing is
    /// sent until the first request; `/readyz` tells whether the bucket answers.
    pub fn open(location: S3Location) -> Result<Self, String> {
        crate::install_crypto_provider();
        // Fail in seconds, not minutes, when the store is down: a few retries (S3 asks for
        // them on 503 SlowDown), a request timeout long enough for a part on a slow link
        // (reads of a blob resume where they broke off, see object_store's get).
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        let client = object_store::ClientOptions::new()
            .with_allow_http(location.allow_http)
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_timeout(std::time::Duration::from_secs(120));
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_retry(retry)
            .with_client_options(client)
            .with_allow_http(location.allow_http);
        if let Some(e) = &location.endpoint {
            builder = builder.with_endpoint(e);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        let s3 = builder
            .build()
            .map_err(|e| format!("cannot use {location}: {e}"))?;
        Ok(S3BlobStore {
            s3: Arc::new(s3),
            location,
            buffers: Semaphore::new(MAX_BUFFERING),
        })
    }

    fn key(&self, rest: &str) -> Path {
        if self.location.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.location.prefix))
        }
    }

    fn blob_key(&self, d: &Digest) -> Path {
        let hex = d.hex();
        self.key(&format!(
            "blobs/{}/{}/{}",
            d.algorithm().as_str(),
            &hex[..2],
            hex
        ))
    }

    fn upload_key(&self, id: &str, name: &str) -> Result<Path, StorageError> {
        // Ids come from URLs: never let one name a key outside its session.
        let safe = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if safe {
            Ok(self.key(&format!("uploads/{id}/{name}")))
        } else {
            Err(StorageError::UploadUnknown(id.to_string()))
        }
    }

    fn tail_key(&self, id: &str, s: &Session) -> Result<Path, StorageError> {
        self.upload_key(id, &format!("tail.{}", s.tail_at))
    }

    async fn load(&self, id: &str) -> Result<State, StorageError> {
        let key = self.upload_key(id, "state")?;
        let bytes = match self.s3.get(&key).await {
            Ok(r) => r.bytes().await.map_err(s3_err)?,
            Err(e) if is_not_found(&e) => return Err(StorageError::UploadUnknown(id.into())),
            Err(e) => return Err(s3_err(e)),
        };
        serde_json::from_slice(&bytes).map_err(|_| broken("an upload's state is unreadable"))
    }

    async fn save(&self, id: &str, state: &State) -> Result<(), StorageError> {
        let key = self.upload_key(id, "state")?;
        let json = serde_json::to_vec(state).expect("state serialises");
        self.s3
            .put(&key, PutPayload::from(json))
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    async fn read_tail(&self, id: &str, s: &Session) -> Result<Bytes, StorageError> {
        if s.tail_len == 0 {
            return Ok(Bytes::new());
        }
        let bytes = self
            .s3
            .get(&self.tail_key(id, s)?)
            .await
            .map_err(s3_err)?
            .bytes()
            .await
            .map_err(s3_err)?;
        if bytes.len() as u64 != s.tail_len {
            return Err(broken("an upload's tail object has the wrong length"));
        }
        Ok(bytes)
    }

    async fn send_part(
        &self,
        id: &str,
        session: &mut Session,
        part: Bytes,
    ) -> Result<(), StorageError> {
        if session.parts.len() >= MAX_PARTS {
            return Err(StorageError::Io(io::Error::other(format!(
                "blob exceeds the S3 store's {} GiB ({MAX_PARTS} parts of {} MiB)",
                (MAX_PARTS * PART_SIZE) >> 30,
                PART_SIZE >> 20
            ))));
        }
        let data = self.upload_key(id, "data")?;
        let multipart = match &session.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self.s3.create_multipart(&data).await.map_err(s3_err)?;
                session.multipart = Some(m.clone());
                m
            }
        };
        let PartId { content_id } = self
            .s3
            .put_part(
                &data,
                &multipart,
                session.parts.len(),
                PutPayload::from(part),
            )
            .await
            .map_err(s3_err)?;
        session.parts.push(content_id);
        Ok(())
    }

    /// Every object under `prefix`.
    async fn list_under(
        &self,
        prefix: &Path,
    ) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        self.s3
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(s3_err)
    }

    /// Deletes every object of a session.
    async fn delete_session_objects(&self, id: &str) -> Result<(), StorageError> {
        for o in self.list_under(&self.upload_key(id, "")?).await? {
            match self.s3.delete(&o.location).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(s3_err(e)),
            }
        }
        Ok(())
    }

    /// Copies `from` to `to` inside the store: in one request up to S3's 5 GiB, part by
    /// part above (streamed through this process, a part at a time).
    async fn copy(&self, from: &Path, to: &Path, len: u64) -> Result<(), StorageError> {
        if len <= MAX_SINGLE_COPY {
            return self.s3.copy(from, to).await.map_err(s3_err);
        }
        let upload = self.s3.put_multipart(to).await.map_err(s3_err)?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut bytes = self.s3.get(from).await.map_err(s3_err)?.into_stream();
        while let Some(chunk) = bytes.next().await {
            writer.wait_for_capacity(2).await.map_err(s3_err)?;
            writer.write(&chunk.map_err(s3_err)?);
        }
        writer.finish().await.map_err(s3_err)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        match self.s3.head(&self.blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    async fn get(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, StorageError> {
        let key = self.blob_key(digest);
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            // S3 refuses an empty range; the answer is empty if the blob exists.
            return Ok(self
                .stat(digest)
                .await?
                .map(|_| Box::pin(futures_util::stream::empty()) as ByteStream));
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        match self.s3.get_opts(&key, options).await {
            Ok(r) => Ok(Some(Box::pin(
                r.into_stream()
                    .map_err(|e| io::Error::other(format!("S3: {e}"))),
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StorageError> {
        if self.stat(digest).await?.is_none() {
            return Ok(false);
        }
        match self.s3.delete(&self.blob_key(digest)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(s3_err(e)),
        }
    }

    async fn list(&self) -> Result<Vec<super::StoredBlob>, StorageError> {
        let objects = self.list_under(&self.key("blobs")).await?;
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            let parts: Vec<_> = o.location.parts().collect();
            if let [.., alg, _, hex] = parts.as_slice() {
                if let Ok(digest) = format!("{}:{}", alg.as_ref(), hex.as_ref()).parse() {
                    out.push(super::StoredBlob {
                        digest,
                        size: o.size,
                        modified: o.last_modified.into(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn upload_create(&self, id: &str) -> Result<(), StorageError> {
        // The algorithm is not known before the commit names the digest: sha256, the one
        // every client uses; a sha512 commit re-reads the bytes (see upload_commit).
        let state = State {
            current: Session::empty(Algorithm::Sha256),
            previous: None,
        };
        self.save(id, &state).await
    }

    async fn upload_len(&self, id: &str) -> Result<u64, StorageError> {
        Ok(self.load(id).await?.current.len)
    }

    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        declared: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64, StorageError> {
        let state = self.load(id).await?;
        let before = state.current;
        if offset != before.len {
            return Err(StorageError::OffsetMismatch {
                requested: offset,
                current: before.len,
            });
        }
        let _buffer = self.buffers.acquire().await.map_err(|_| broken("closed"))?;
        let mut hasher = before.hasher()?;
        let mut next = before.clone();
        let mut pending = BytesMut::with_capacity(PART_SIZE);
        pending.extend_from_slice(&self.read_tail(id, &before).await?);
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            received += chunk.len() as u64;
            if let Some(declared) = declared.filter(|d| received > *d) {
                return Err(StorageError::LengthMismatch { declared, received });
            }
            hasher.update(&chunk);
            let mut chunk = &chunk[..];
            while !chunk.is_empty() {
                let take = chunk.len().min(PART_SIZE - pending.len());
                pending.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if pending.len() == PART_SIZE {
                    let part = pending.split().freeze();
                    self.send_part(id, &mut next, part).await?;
                    pending.reserve(PART_SIZE);
                }
            }
        }
        if let Some(declared) = declared.filter(|d| *d != received) {
            return Err(StorageError::LengthMismatch { declared, received });
        }
        if received == 0 {
            return Ok(before.len);
        }
        next.len = before.len + received;
        next.tail_len = pending.len() as u64;
        next.tail_at = next.len;
        next.hash = base64::engine::general_purpose::STANDARD.encode(hasher.save());
        if next.tail_len > 0 {
            self.s3
                .put(
                    &self.tail_key(id, &next)?,
                    PutPayload::from(pending.freeze()),
                )
                .await
                .map_err(s3_err)?;
        }
        let discarded = state.previous;
        self.save(
            id,
            &State {
                current: next.clone(),
                previous: Some(before.clone()),
            },
        )
        .await?;
        // The tail of the state now forgotten, unless a kept state still names it.
        if let Some(old) = discarded.filter(|o| o.tail_len > 0) {
            let kept = [&before, &next]
                .iter()
                .any(|s| s.tail_len > 0 && s.tail_at == old.tail_at);
            if !kept {
                let _ = self.s3.delete(&self.tail_key(id, &old)?).await;
            }
        }
        Ok(next.len)
    }

    async fn upload_commit(&self, id: &str, expected: &Digest) -> Result<u64, StorageError> {
        let state = self.load(id).await?;
        let session = state.current;
        let hasher = session.hasher()?;
        let actual = if hasher.algorithm() == expected.algorithm() {
            hasher.finish()
        } else {
            // Another algorithm than the running one: hash the bytes as stored.
            self.hash_session(id, &session, expected.algorithm())
                .await?
        };
        if &actual != expected {
            return Err(StorageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dest = self.blob_key(expected);
        match &session.multipart {
            None if session.tail_len == 0 => {
                self.s3
                    .put(&dest, PutPayload::default())
                    .await
                    .map_err(s3_err)?;
            }
            None => {
                self.copy(&self.tail_key(id, &session)?, &dest, session.len)
                    .await?
            }
            Some(multipart) => {
                let data = self.upload_key(id, "data")?;
                let mut parts = session.parts.clone();
                if session.tail_len > 0 {
                    let _buffer = self.buffers.acquire().await.map_err(|_| broken("closed"))?;
                    let tail = self.read_tail(id, &session).await?;
                    let PartId { content_id } = self
                        .s3
                        .put_part(&data, multipart, parts.len(), PutPayload::from(tail))
                        .await
                        .map_err(s3_err)?;
                    parts.push(content_id);
                }
                let parts = parts
                    .into_iter()
                    .map(|content_id| PartId { content_id })
                    .collect();
                if let Err(e) = self.s3.complete_multipart(&data, multipart, parts).await {
                    // Completed before by a commit that died before its copy: go on with it.
                    match self.s3.head(&data).await {
                        Ok(m) if m.size == session.len => {}
                        _ => return Err(s3_err(e)),
                    }
                }
                self.copy(&data, &dest, session.len).await?;
            }
        }
        // The blob is in place; what is left of the session is garbage.
        if let Err(e) = self.delete_session_objects(id).await {
            tracing::warn!(upload = id, error = %e, "could not delete a committed upload's objects");
        }
        Ok(session.len)
    }

    async fn upload_truncate(&self, id: &str, len: u64) -> Result<(), StorageError> {
        let state = self.load(id).await?;
        if state.current.len <= len {
            return Ok(());
        }
        match state.previous {
            Some(previous) if previous.len == len => {
                let dropped = state.current;
                self.save(
                    id,
                    &State {
                        current: previous.clone(),
                        previous: None,
                    },
                )
                .await?;
                if dropped.tail_len > 0 && !(previous.tail_len > 0 && previous.tail_at == dropped.tail_at) {
                    let _ = self.s3.delete(&self.tail_key(id, &dropped)?).await;
                }
                Ok(())
            }
            _ => Err(StorageError::Io(io::Error::other(format!(
                "an S3 upload can be cut back only to its length before the last chunk, not to {len} bytes"
            )))),
        }
    }

    async fn upload_delete(&self, id: &str) -> Result<(), StorageError> {
        match self.load(id).await {
            Ok(state) => {
                let multiparts = [Some(&state.current), state.previous.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.multipart.clone())
                    .collect::<std::collections::BTreeSet<_>>();
                let data = self.upload_key(id, "data")?;
                for m in multiparts {
                    let _ = self.s3.abort_multipart(&data, &m).await;
                }
            }
            Err(StorageError::UploadUnknown(_)) => {}
            Err(e) => return Err(e),
        }
        self.delete_session_objects(id).await
    }

    async fn upload_list(&self) -> Result<Vec<(String, std::time::SystemTime)>, StorageError> {
        // A session's age is its state's: every request that changes the session rewrites it.
        let prefix = self.key("uploads");
        let mut latest = std::collections::BTreeMap::<String, std::time::SystemTime>::new();
        let mut objects = self.s3.list(Some(&prefix));
        while let Some(o) = objects.next().await {
            let o = o.map_err(s3_err)?;
            let parts: Vec<_> = o.location.parts().collect();
            if let [.., id, _] = parts.as_slice() {
                let at = std::time::SystemTime::from(o.last_modified);
                let e = latest.entry(id.as_ref().to_string()).or_insert(at);
                *e = (*e).max(at);
            }
        }
        Ok(latest.into_iter().collect())
    }

    fn shared(&self) -> bool {
        true
    }

    async fn ready(&self) -> Result<(), StorageError> {
        // A HEAD of a key that is never written: "not found" means the bucket answered.
        match self.s3.head(&self.key(".bonded-readiness-probe")).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(s3_err(e)),
        }
    }
}

impl S3BlobStore {
    async fn hash_session(
        &self,
        id: &str,
        session: &Session,
        algorithm: Algorithm,
    ) -> Result<Digest, StorageError> {
        let mut hasher = DigestHasher::new(algorithm);
        if session.multipart.is_some() && !session.parts.is_empty() {
            // Parts are not readable before the multipart upload completes.
            return Err(StorageError::Io(io::Error::other(format!(
                "the S3 store verifies only sha256 uploads larger than {} MiB",
                PART_SIZE >> 20
            ))));
        }
        hasher.update(&self.read_tail(id, session).await?);
        Ok(hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_their_rules() {
        let l = S3Location::parse("s3://bonded-blobs/prod/eu", None, false).unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("bonded-blobs", "prod/eu")
        );
        assert_eq!(l.to_string(), "s3://bonded-blobs/prod/eu");
        let l = S3Location::parse("s3://bonded-blobs", None, false).unwrap();
        assert_eq!(l.prefix, "");
        assert!(S3Location::parse("/var/lib/bonded", None, false).is_err());
        assert!(S3Location::parse("s3://Bad_Bucket", None, false).is_err());
        assert!(S3Location::parse("s3://ok-bucket/../x", None, false).is_err());
        let plain = Some("http://127.0.0.1:9000".to_string());
        let e = S3Location::parse("s3://ok-bucket", plain.clone(), false).unwrap_err();
        assert!(e.contains("--s3-allow-http"), "{e}");
        assert!(S3Location::parse("s3://ok-bucket", plain, true).is_ok());
    }

    #[test]
    fn upload_ids_cannot_name_keys_outside_their_session() {
        let store = S3BlobStore::open(
            S3Location::parse("s3://ok-bucket/p", Some("http://127.0.0.1:1".into()), true).unwrap(),
        )
        .unwrap();
        for bad in ["", "../blobs", "a/b", "x.y", &"a".repeat(65)] {
            assert!(matches!(
                store.upload_key(bad, "state"),
                Err(StorageError::UploadUnknown(_))
            ));
        }
        assert_eq!(
            store.upload_key("abc-1", "state").unwrap().as_ref(),
            "p/uploads/abc-1/state"
        );
    }
}
