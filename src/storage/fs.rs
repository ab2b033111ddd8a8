//! The filesystem blob store.
//!
//! Layout under the data directory:
//! - `blobs/<algorithm>/<first two hex>/<hex>`: committed blobs, immutable;
//! - `uploads/<id>`: upload files, appended to by upload sessions.
//!
//! Both live on one filesystem, so a commit is fsync(upload) + rename + fsync(directory): a
//! crash at any point leaves either no blob or the whole blob, never a partial one.

use super::{BlobStore, ByteStream, StorageError};
use crate::oci::{Algorithm, Digest, DigestHasher};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use tokio::task::spawn_blocking;

/// Bytes gathered before a write is handed to the writer thread.
const WRITE_BATCH: usize = 1 << 20;
/// Batches in flight between the network and the writer thread: bounds memory per upload.
const WRITE_QUEUE: usize = 4;
/// Size of each memory-mapped window a blob is served from.
const READ_WINDOW: u64 = 4 << 20;

pub struct FsBlobStore {
    blobs: PathBuf,
    uploads: PathBuf,
    /// Running sha256 of each upload, valid at the recorded length. Lost on restart, in which
    /// case a commit re-reads the file: the state is an optimisation, never the truth.
    hashers: Mutex<HashMap<String, (u64, DigestHasher)>>,
}

fn join_err(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(io::Error::other(e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    spawn_blocking(f).await.map_err(join_err)?
}

fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = DigestHasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Streams `range` of a committed blob as a sequence of memory-mapped windows.
///
/// Each window is mapped (and its pages read in, `populate`) on the blocking pool, so disk
/// reads never stall the runtime; the socket write then copies straight from the page
/// cache. A window is unmapped when the HTTP layer drops its `Bytes`, so resident memory is
/// bounded by the windows in flight, whatever the blob's size.
fn mapped_windows(file: File, range: Range<u64>) -> ByteStream {
    let file = Arc::new(file);
    Box::pin(futures_util::stream::try_unfold(
        (file, range.start),
        move |(file, at)| {
            let end = range.end;
            async move {
                if at >= end {
                    return Ok(None);
                }
                let len = (end - at).min(READ_WINDOW);
                let f = file.clone();
                let window = spawn_blocking(move || {
                    // SAFETY: committed blob files are immutable: they are written in full under
                    // uploads/, then renamed into blobs/, and nothing in bonded opens them for
                    // writing again. Unlinking a blob does not invalidate a live mapping. Only
                    // an outside process truncating files under blobs/ could make this fault,
                    // which ARCHITECTURE.md forbids.
                    unsafe {
                        memmap2::MmapOptions::new()
                            .offset(at)
                            .len(len as usize)
                            .populate()
                            .map(&*f)
                    }
                })
                .await
                .map_err(io::Error::other)??;
                Ok(Some((Bytes::from_owner(window), (file, at + len))))
            }
        },
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        let blobs = root.join("blobs");
        let uploads = root.join("uploads");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&uploads)?;
        Ok(FsBlobStore {
            blobs,
            uploads,
            hashers: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs
            .join(d.algorithm().as_str())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        // Ids come from URLs: never let one name a path outside `uploads/`.
        let safe = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if safe {
            Ok(self.uploads.join(id))
        } else {
            Err(StorageError::UploadUnknown(id.to_string()))
        }
    }

    fn hashers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, DigestHasher)>> {
        self.hashers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn not_found_as(id: &str) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            StorageError::UploadUnknown(id.to_string())
        } else {
            StorageError::Io(e)
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn ready(&self) -> Result<(), StorageError> {
        for dir in [&self.blobs, &self.uploads] {
            let m = tokio::fs::metadata(dir).await?;
            if !m.is_dir() {
                return Err(StorageError::Io(io::Error::other(format!(
                    "{} is not a directory",
                    dir.display()
                ))));
            }
        }
        Ok(())
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, StorageError> {
        let path = self.blob_path(digest);
        let opened = blocking(move || match File::open(&path) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await?;
        let Some((file, len)) = opened else {
            return Ok(None);
        };
        let range = range.unwrap_or(0..len);
        let range = range.start.min(len)..range.end.min(len);
        Ok(Some(mapped_windows(file, range)))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StorageError> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self) -> Result<Vec<super::StoredBlob>, StorageError> {
        let root = self.blobs.clone();
        blocking(move || {
            let mut out = Vec::new();
            for alg in fs::read_dir(&root)? {
                let alg = alg?;
                for prefix in fs::read_dir(alg.path())? {
                    for blob in fs::read_dir(prefix?.path())? {
                        let blob = blob?;
                        let name = format!(
                            "{}:{}",
                            alg.file_name().to_string_lossy(),
                            blob.file_name().to_string_lossy()
                        );
                        if let Ok(digest) = name.parse() {
                            let meta = blob.metadata()?;
                            out.push(super::StoredBlob {
                                digest,
                                size: meta.len(),
                                modified: meta.modified()?,
                            });
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn upload_create(&self, id: &str) -> Result<(), StorageError> {
        let path = self.upload_path(id)?;
        blocking(move || {
            OpenOptions::new().write(true).create_new(true).open(path)?;
            Ok(())
        })
        .await?;
        self.hashers()
            .insert(id.to_string(), (0, DigestHasher::new(Algorithm::Sha256)));
        Ok(())
    }

    async fn upload_len(&self, id: &str) -> Result<u64, StorageError> {
        let path = self.upload_path(id)?;
        let meta = tokio::fs::metadata(path).await.map_err(not_found_as(id))?;
        Ok(meta.len())
    }

    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        declared: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64, StorageError> {
        let path = self.upload_path(id)?;
        let (file, current) = {
            let id = id.to_string();
            blocking(move || {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(not_found_as(&id))?;
                let len = file.metadata()?.len();
                Ok((file, len))
            })
            .await?
        };
        if offset != current {
            return Err(StorageError::OffsetMismatch {
                requested: offset,
                current,
            });
        }
        let saved = self.hashers().remove(id).filter(|(at, _)| *at == current);
        let mut hasher = saved.as_ref().map(|(_, h)| h.clone());

        // Network and hashing on this task, disk writes on a blocking thread, joined by a
        // bounded queue. Batch buffers go back to this task once written and are reused: a
        // fresh buffer per batch costs page faults and zeroing on every MiB. Memory per
        // upload stays at WRITE_BATCH * (WRITE_QUEUE + 2).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let (recycle_tx, mut recycle_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE + 2);
        let writer = spawn_blocking(move || -> io::Result<File> {
            let mut file = file;
            file.seek(SeekFrom::Start(current))?;
            while let Some(mut batch) = rx.blocking_recv() {
                file.write_all(&batch)?;
                batch.clear();
                let _ = recycle_tx.try_send(batch);
            }
            Ok(file)
        });
        let mut received = 0u64;
        let read: Result<(), StorageError> = async {
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StorageError::Body)?;
                received += chunk.len() as u64;
                if let Some(declared) = declared.filter(|d| received > *d) {
                    return Err(StorageError::LengthMismatch { declared, received });
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                batch.extend_from_slice(&chunk);
                if batch.len() >= WRITE_BATCH {
                    let next = recycle_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(WRITE_BATCH));
                    if tx.send(std::mem::replace(&mut batch, next)).await.is_err() {
                        return Ok(()); // the writer failed; its error is reported below
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
            match declared {
                Some(declared) if declared != received => {
                    Err(StorageError::LengthMismatch { declared, received })
                }
                _ => Ok(()),
            }
        }
        .await;
        drop(tx);
        let written = writer.await.map_err(join_err)?.map_err(StorageError::Io);
        let outcome = match (read, written) {
            (Ok(()), Ok(_)) => Ok(()),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        };
        match outcome {
            Ok(()) => {
                let len = current + received;
                if let Some(h) = hasher {
                    self.hashers().insert(id.to_string(), (len, h));
                }
                Ok(len)
            }
            Err(e) => {
                // Leave the upload exactly as it was before this request.
                let path = self.upload_path(id)?;
                blocking(move || {
                    OpenOptions::new()
                        .write(true)
                        .open(path)?
                        .set_len(current)?;
                    Ok(())
                })
                .await?;
                if let Some(saved) = saved {
                    self.hashers().insert(id.to_string(), saved);
                }
                Err(e)
            }
        }
    }

    async fn upload_commit(&self, id: &str, expected: &Digest) -> Result<u64, StorageError> {
        let path = self.upload_path(id)?;
        let len = self.upload_len(id).await?;
        let running = self
            .hashers()
            .get(id)
            .filter(|(at, h)| *at == len && h.algorithm() == expected.algorithm())
            .map(|(_, h)| h.clone());
        let actual = match running {
            Some(h) => h.finish(),
            None => {
                let (p, alg) = (path.clone(), expected.algorithm());
                blocking(move || Ok(hash_file(&p, alg)?)).await?
            }
        };
        if &actual != expected {
            return Err(StorageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dest = self.blob_path(expected);
        blocking(move || {
            File::open(&path)?.sync_all()?;
            let dir = dest.parent().expect("blob path has a parent");
            fs::create_dir_all(dir)?;
            // Replacing an existing blob is harmless: same digest, same bytes. This is what
            // lets two clients push the same blob at once and both succeed.
            fs::rename(&path, &dest)?;
            sync_dir(dir)?;
            Ok(())
        })
        .await?;
        self.hashers().remove(id);
        Ok(len)
    }

    async fn upload_truncate(&self, id: &str, len: u64) -> Result<(), StorageError> {
        let path = self.upload_path(id)?;
        // The running hash covered the bytes cut off: a commit hashes the file instead.
        self.hashers().remove(id);
        let id = id.to_string();
        blocking(move || {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(not_found_as(&id))?;
            if file.metadata()?.len() > len {
                file.set_len(len)?;
                file.sync_all()?;
            }
            Ok(())
        })
        .await
    }

    async fn upload_delete(&self, id: &str) -> Result<(), StorageError> {
        let path = self.upload_path(id)?;
        self.hashers().remove(id);
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn upload_list(&self) -> Result<Vec<(String, std::time::SystemTime)>, StorageError> {
        let dir = self.uploads.clone();
        blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let modified = entry.metadata()?.modified()?;
                out.push((entry.file_name().to_string_lossy().into_owned(), modified));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        ))
    }

    async fn read_all(s: ByteStream) -> Vec<u8> {
        let parts: Vec<_> = s.collect().await;
        parts
            .into_iter()
            .flat_map(|p| p.unwrap().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn chunked_upload_commits_atomically_under_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.upload_create("u1").await.unwrap();
        assert_eq!(
            store
                .upload_append("u1", 0, Some(6), body(&[b"hello "]))
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            store
                .upload_append("u1", 6, None, body(&[b"wor", b"ld"]))
                .await
                .unwrap(),
            11
        );
        let d = Digest::of(Algorithm::Sha256, b"hello world");
        assert_eq!(
            store.stat(&d).await.unwrap(),
            None,
            "not visible before commit"
        );
        assert_eq!(store.upload_commit("u1", &d).await.unwrap(), 11);
        assert_eq!(store.stat(&d).await.unwrap(), Some(11));
        let got = read_all(store.get(&d, Some(6..11)).await.unwrap().unwrap()).await;
        assert_eq!(got, b"world");
        assert!(store.upload_list().await.unwrap().is_empty());
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].digest, d);
    }

    #[tokio::test]
    async fn a_truncated_upload_commits_as_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.upload_create("t").await.unwrap();
        store
            .upload_append("t", 0, None, body(&[b"hello"]))
            .await
            .unwrap();
        store
            .upload_append("t", 5, None, body(&[b" world"]))
            .await
            .unwrap();
        store.upload_truncate("t", 5).await.unwrap();
        assert_eq!(store.upload_len("t").await.unwrap(), 5);
        // the running hash covered " world": the commit must not use it
        let d = Digest::of(Algorithm::Sha256, b"hello");
        assert_eq!(store.upload_commit("t", &d).await.unwrap(), 5);
        assert!(matches!(
            store.upload_truncate("gone", 0).await,
            Err(StorageError::UploadUnknown(_))
        ));
    }

    #[tokio::test]
    async fn bad_chunks_and_bad_digests_leave_the_upload_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.upload_create("u2").await.unwrap();
        store
            .upload_append("u2", 0, None, body(&[b"abc"]))
            .await
            .unwrap();
        assert!(matches!(
            store.upload_append("u2", 1, None, body(&[b"zz"])).await,
            Err(StorageError::OffsetMismatch {
                requested: 1,
                current: 3
            })
        ));
        assert!(matches!(
            store.upload_append("u2", 3, Some(5), body(&[b"de"])).await,
            Err(StorageError::LengthMismatch {
                declared: 5,
                received: 2
            })
        ));
        assert_eq!(store.upload_len("u2").await.unwrap(), 3);
        let wrong = Digest::of(Algorithm::Sha256, b"abcd");
        assert!(matches!(
            store.upload_commit("u2", &wrong).await,
            Err(StorageError::DigestMismatch { .. })
        ));
        assert_eq!(store.stat(&wrong).await.unwrap(), None);
        // still usable, and sha512 works through a re-read of the file
        let right = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(store.upload_commit("u2", &right).await.unwrap(), 3);
        assert_eq!(store.stat(&right).await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn upload_ids_cannot_escape_the_upload_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        for id in ["../blobs", "a/b", "", "x.y"] {
            assert!(matches!(
                store.upload_create(id).await,
                Err(StorageError::UploadUnknown(_))
            ));
        }
    }
}
