//! The OCI Distribution semantics: what a push, pull, mount, delete or listing means, on top
//! of the byte store ([`crate::storage`]) and the metadata ([`crate::db`]). This is the only
//! layer that combines the two; HTTP handlers call it and nothing below it.
//!
//! Ordering invariant: a blob's bytes are committed to the store before the database links
//! it to a repository, so a crash between the two leaves an unreferenced blob (harmless),
//! never a link to missing bytes.

mod cache;
mod compliance;
mod gate;
mod lifecycle;
mod pending;
mod replicas;
mod retention;
mod trust_admin;

pub use compliance::MAX_LISTED;
pub use gate::TrustConfig;
pub use lifecycle::{check_rule, mark, Actor, GcOptions, MAX_REPORTED};
pub use retention::{check_retention, describe as describe_retention, retention_tags};
pub use trust_admin::{build_config, check_stores, JobState, TrustChange, TrustJob};

use crate::db::{
    AuditAction, ManifestWrite, Metadata, Outcome, PutManifestError, Referrer, StoredManifest,
};
use crate::oci::{manifest, Digest, DigestError, ManifestError, Reference, RepositoryName, Tag};
use crate::storage::{BlobStore, ByteStream, StorageError};
use cache::ManifestCache;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("blob {0} is not in this repository")]
    BlobUnknown(Digest),
    #[error("upload session '{0}' does not exist in this repository; it may have completed, been cancelled or expired: start a new upload")]
    UploadUnknown(String),
    #[error("{0}")]
    UploadInvalid(StorageError),
    #[error("chunk is out of order: the upload holds {current} bytes, so the next chunk must start at byte {current}")]
    ChunkOutOfOrder { current: u64 },
    #[error("Content-Range '{0}' is not of the form '<start>-<end>'")]
    BadContentRange(String),
    #[error("Content-Range '{0}' covers more bytes than any chunk can hold")]
    ChunkRangeTooLong(String),
    #[error("{0}")]
    DigestInvalid(DigestError),
    #[error("the digest parameter is required to complete an upload")]
    DigestMissing,
    #[error("content does not match digest {expected}: its digest is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("manifest {reference} is not in repository {repository}")]
    ManifestUnknown {
        repository: RepositoryName,
        reference: String,
    },
    #[error(
        "manifest {reference} is a {media_type}, which this request's Accept header does not list"
    )]
    NotAcceptable {
        reference: String,
        media_type: String,
    },
    #[error("manifest is invalid: {0}")]
    ManifestInvalid(ManifestError),
    #[error("manifest is {size} bytes; the limit is {limit}")]
    ManifestTooLarge { size: usize, limit: usize },
    #[error("manifest references blobs that are not in this repository; push them first: {}", list(.0))]
    ManifestBlobUnknown(Vec<Digest>),
    #[error("index references manifests that are not in this repository; push them first: {}", list(.0))]
    ManifestChildUnknown(Vec<Digest>),
    #[error("{subject} has {limit} signatures in {repository}, the most this registry keeps for one manifest (--max-signatures-per-subject); delete signatures it no longer needs, or ask an administrator to raise the limit")]
    TooManySignatures {
        repository: RepositoryName,
        subject: Digest,
        limit: usize,
    },
    #[error("repository {0} is not known to this registry")]
    NameUnknown(RepositoryName),
    #[error("tag {tag} of {repository} waits for signatures: its manifest {digest} is stored but not yet accepted ({needs}); sign {image}@{digest} (for example with `notation sign` or `bonded sign`) and the tag is published once the trust policy accepts it")]
    TagWaiting {
        repository: RepositoryName,
        tag: String,
        digest: String,
        /// What the policy still asks for, in the evaluator's words.
        needs: String,
        /// The image name to sign (`<hostname>/<repository>`).
        image: String,
    },
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    TrustConfigInvalid(String),
    /// A trust change's re-evaluation stopped: a newer version was recorded meanwhile
    /// (whose own re-evaluation covers every signature again).
    #[error("superseded by a newer trust configuration")]
    TrustChangeSuperseded,
    #[error("{message}")]
    Denied {
        message: String,
        detail: serde_json::Value,
    },
    #[error(transparent)]
    Storage(StorageError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// What a push would add to a namespace, for quotas.
#[derive(Clone, Copy)]
enum Stored<'a> {
    Blob(&'a Digest),
    Manifest(&'a Digest),
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::UploadUnknown(id) => RegistryError::UploadUnknown(id),
            StorageError::OffsetMismatch { current, .. } => {
                RegistryError::ChunkOutOfOrder { current }
            }
            StorageError::DigestMismatch { expected, actual } => {
                RegistryError::DigestMismatch { expected, actual }
            }
            e @ (StorageError::LengthMismatch { .. } | StorageError::Body(_)) => {
                RegistryError::UploadInvalid(e)
            }
            e @ StorageError::Io(_) => RegistryError::Storage(e),
        }
    }
}

type Result<T> = std::result::Result<T, RegistryError>;

/// Who is asking, for the audit trail.
#[derive(Debug, Clone)]
pub struct Client {
    /// The account name, or `anonymous`.
    pub actor: String,
    pub source: Option<String>,
}

tokio::task_local! {
    /// The client of the request being served; set by the HTTP layer around each request.
    pub static CLIENT: Client;
}

/// An audit event about the current request's client.
fn event(
    action: AuditAction,
    repo: Option<&RepositoryName>,
    digest: Option<&Digest>,
    tag: Option<&str>,
    outcome: Outcome,
    reason: Option<String>,
) -> crate::db::AuditEvent {
    let (actor, source) = CLIENT
        .try_with(|c| (c.actor.clone(), c.source.clone()))
        .unwrap_or_else(|_| ("bonded".to_string(), None));
    crate::db::AuditEvent {
        repository: repo.map(|r| r.to_string()),
        digest: digest.map(|d| d.to_string()),
        tag: tag.map(str::to_string),
        ..crate::db::AuditEvent::now(&actor, source, action, outcome, reason)
    }
}

pub use crate::oci::range::ChunkRange;

impl From<crate::oci::range::ChunkRangeError> for RegistryError {
    fn from(e: crate::oci::range::ChunkRangeError) -> Self {
        use crate::oci::range::ChunkRangeError as E;
        match e {
            E::Malformed(h) => RegistryError::BadContentRange(h),
            E::TooLong(h) => RegistryError::ChunkRangeTooLong(h),
        }
    }
}

/// What a manifest push stored.
#[derive(Debug)]
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<Tag>,
    /// Said to the client in a `Warning` header (held as pending, tag waiting).
    pub warning: Option<String>,
}

pub struct Registry {
    store: Arc<dyn BlobStore>,
    db: Metadata,
    upload_ttl: Duration,
    /// One lock per live upload session: chunks of one session are applied one at a time.
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    manifests: ManifestCache,
    /// The trust policy and stores the gate enforces; `None` runs a plain registry.
    trust: std::sync::RwLock<Option<Arc<TrustConfig>>>,
    /// The public host name policy scopes are matched against.
    hostname: std::sync::RwLock<String>,
    /// Bearer token that authorises trust administration; `None` disables it.
    admin_token: Option<String>,
    /// Where pull records and access refusals go (see [`crate::db::Journal`]); without
    /// one they are not recorded.
    journal: Option<Arc<crate::db::Journal>>,
    /// Recent pull decisions under `bonded.enforceOnPull`, so a hot image is not
    /// re-verified on every pull, each kept for the kind of pull it decided.
    pull_verdicts: Mutex<HashMap<PullKey, PullVerdict>>,
    /// Most signatures one manifest may have in a repository.
    max_signatures: usize,
    /// The OCSP answers and CRLs signatures' certificates call for, fetched and kept.
    revocation: crate::revocation::RevocationFetcher,
    /// What the server counts (served on `--metrics-addr`).
    metrics: Arc<crate::metrics::Metrics>,
    /// The latest trust change's re-evaluation (see `trust_admin`), for its progress.
    trust_job: Mutex<Option<Arc<TrustJob>>>,
    /// How long a trust change's request waits for its re-evaluation before answering
    /// 202 with the job.
    trust_change_wait: Duration,
    /// Bumped when another process announces account changes (see `replicas`).
    accounts_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Held by the garbage collection run in progress (one at a time).
    gc_lock: tokio::sync::Mutex<()>,
    /// The grace period of garbage collection runs that name none (`--gc-grace-period`).
    gc_grace: Duration,
    /// The latest run started over the API.
    gc_job: Mutex<Option<Arc<lifecycle::GcJob>>>,
}

/// What `/readyz` found: for each dependency, why it cannot be reached (`None`: it can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub database: Option<String>,
    pub blob_store: Option<String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database.is_none() && self.blob_store.is_none()
    }
}

/// Signatures one manifest may have in a repository unless configured otherwise.
pub const DEFAULT_MAX_SIGNATURES_PER_SUBJECT: usize = 100;

/// How a manifest was asked for: the two are decided differently (a by-digest pull of a
/// manifest without signatures of its own, an index's child, is exempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PullBy {
    Tag,
    Digest,
}

/// What a pull decision is about: (repository, manifest digest, how it was asked for).
type PullKey = (String, String, PullBy);

/// A pull decision: when it was made, whether the pull is allowed, and why not.
type PullVerdict = (std::time::Instant, bool, String);

/// How long a pull decision under `bonded.enforceOnPull` is reused.
const PULL_VERDICT_TTL: Duration = Duration::from_secs(30);

/// Most pull decisions kept; past it, expired ones go, and if that is not enough, all.
const PULL_VERDICTS_MAX: usize = 65_536;

/// Bytes of manifests kept in memory for pulls.
const MANIFEST_CACHE_BYTES: usize = 64 << 20;

impl Registry {
    pub fn new(store: Arc<dyn BlobStore>, db: Metadata, upload_ttl: Duration) -> Self {
        Registry {
            store,
            db,
            upload_ttl,
            session_locks: Mutex::new(HashMap::new()),
            manifests: ManifestCache::new(MANIFEST_CACHE_BYTES),
            trust: std::sync::RwLock::new(None),
            hostname: std::sync::RwLock::new(String::new()),
            admin_token: None,
            journal: None,
            pull_verdicts: Mutex::new(HashMap::new()),
            accounts_generation: Arc::default(),
            gc_lock: tokio::sync::Mutex::new(()),
            gc_grace: Duration::from_secs(86_400),
            gc_job: Mutex::new(None),
            trust_job: Mutex::new(None),
            trust_change_wait: Duration::from_secs(10),
            max_signatures: DEFAULT_MAX_SIGNATURES_PER_SUBJECT,
            revocation: crate::revocation::RevocationFetcher::new()
                .expect("an HTTP client for revocation checks"),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }

    /// Sets the most signatures one manifest may have in a repository.
    pub fn with_gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }

    pub fn gc_grace(&self) -> Duration {
        self.gc_grace
    }

    pub fn with_max_signatures(mut self, n: usize) -> Self {
        self.max_signatures = n.max(1);
        self
    }

    /// Sets the bearer token that authorises trust administration.
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Refuses to store `size` more bytes in `repo` when that would take a namespace
    /// over its quota. A blob already stored in the namespace, or a manifest already in
    /// the repository, costs nothing.
    async fn check_quota(&self, repo: &RepositoryName, item: Stored<'_>, size: u64) -> Result<()> {
        for (pattern, allowed) in self.db.quotas().await? {
            if !crate::auth::pattern_matches(&pattern, repo.as_str()) {
                continue;
            }
            let already = match item {
                Stored::Blob(d) => self.db.namespace_has_blob(&pattern, &d.to_string()).await?,
                Stored::Manifest(d) => self.db.manifest_state(repo, d).await?.is_some(),
            };
            if already {
                continue;
            }
            let used = self.db.namespace_usage(&pattern).await?;
            if used.saturating_add(size) > allowed {
                let e = RegistryError::Denied {
                    message: format!(
                        "storage quota of '{pattern}' exceeded: {} used of {} allowed; this push needs {} more. Delete images (bonded delete; the next garbage collection frees what no other image uses, once past its grace period) or ask an administrator to raise the quota (bonded quota set)",
                        human_bytes(used),
                        human_bytes(allowed),
                        human_bytes(size)
                    ),
                    detail: serde_json::json!({
                        "quota": pattern, "usedBytes": used, "allowedBytes": allowed, "requestedBytes": size,
                    }),
                };
                let (action, blob) = match item {
                    Stored::Blob(d) => (AuditAction::BlobPush, Some(d)),
                    Stored::Manifest(_) => (AuditAction::ManifestPush, None),
                };
                self.audit_refusal(event(
                    action,
                    Some(repo),
                    blob,
                    None,
                    Outcome::Denied,
                    Some(e.to_string()),
                ))
                .await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether a manifest is held pending signatures.
    pub async fn is_pending(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        Ok(self.db.manifest_state(repo, digest).await?.as_deref() == Some("pending"))
    }

    /// Records pulls and access refusals in `journal`.
    pub fn with_journal(mut self, journal: Arc<crate::db::Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Records a manifest pull before it is answered; if the record cannot be written,
    /// the pull fails.
    pub fn record_pull(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        digest: &str,
    ) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let tag = match reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        let mut e = event(
            AuditAction::ManifestPull,
            Some(repo),
            None,
            tag,
            Outcome::Ok,
            None,
        );
        e.digest = Some(digest.to_string());
        journal.record(&e).map_err(|e| RegistryError::Db(e.into()))
    }

    /// Records a request refused for lack of rights (an account's 403, not the 401 that
    /// starts every anonymous client's login).
    pub fn record_access_denied(&self, repo: &str, reason: &str) {
        let mut e = event(
            AuditAction::AccessDeny,
            None,
            None,
            None,
            Outcome::Denied,
            Some(reason.into()),
        );
        e.repository = Some(repo.to_string());
        self.journal_refusal(e);
    }

    /// Records a manifest pull refused by a pull rate limit (429). Through the journal like
    /// every pull: a client over its limit may keep asking at any rate.
    pub fn record_pull_refused(&self, repo: &RepositoryName, reference: &Reference, reason: &str) {
        let mut e = event(
            AuditAction::ManifestPull,
            Some(repo),
            None,
            None,
            Outcome::Denied,
            Some(reason.into()),
        );
        match reference {
            Reference::Tag(t) => e.tag = Some(t.to_string()),
            Reference::Digest(d) => e.digest = Some(d.to_string()),
        }
        self.journal_refusal(e);
    }

    fn journal_refusal(&self, e: crate::db::AuditEvent) {
        if let Some(journal) = &self.journal {
            if let Err(err) = journal.record(&e) {
                tracing::error!(error = %err, "recording a refusal in the audit journal failed");
            }
        }
    }

    /// Sets (or clears) the trust policy and stores that manifest pushes must satisfy.
    pub fn set_trust(&self, trust: Option<TrustConfig>) {
        *self.trust.write().unwrap_or_else(|p| p.into_inner()) = trust.map(Arc::new);
        self.pull_verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn trust(&self) -> Option<Arc<TrustConfig>> {
        self.trust.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the database and the blob store can be reached now: what `/readyz` reports.
    pub async fn readiness(&self) -> Readiness {
        let (database, blobs) = tokio::join!(self.db.ready(), async {
            match tokio::time::timeout(Duration::from_secs(2), self.store.ready()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("did not answer within 2 s".to_string()),
            }
        });
        Readiness {
            database: database.err(),
            blob_store: blobs.err(),
        }
    }

    /// What the server counts.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The metrics exposition, with the gauges read now (uploads open, pool use).
    pub async fn metrics_text(&self) -> String {
        use crate::metrics::PoolLabels;
        match self.db.upload_count().await {
            Ok(n) => {
                self.metrics.uploads_in_progress.set(n);
            }
            Err(e) => tracing::warn!(error = %e, "counting uploads for metrics failed"),
        }
        for (pool, size, idle) in self.db.pool_use() {
            for (state, n) in [
                ("idle", idle),
                ("busy", (size as usize).saturating_sub(idle)),
            ] {
                self.metrics
                    .db_connections
                    .get_or_create(&PoolLabels { pool, state })
                    .set(n as i64);
            }
        }
        self.metrics.encode()
    }

    pub fn metadata(&self) -> &Metadata {
        &self.db
    }

    // ---- blobs ---------------------------------------------------------------------------

    /// Size of a blob the repository may serve.
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<u64> {
        self.db
            .blob_size(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
    }

    /// A blob's bytes (all, or `range`), with its full size.
    pub async fn blob_read(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream> {
        self.blob_size(repo, digest).await?;
        let whole = range.is_none();
        let stream = self
            .store
            .get(digest, range)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))?;
        // A whole read is checked against its digest as it goes (a range cannot be).
        Ok(if whole {
            crate::storage::verified(stream, digest)
        } else {
            stream
        })
    }

    pub async fn blob_delete(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        // Only the link goes: the bytes may be linked from other repositories, and a
        // concurrent push of the same digest may be about to link them again. Reclaiming
        // unreferenced bytes is garbage collection's job.
        let audit = [event(
            AuditAction::BlobDelete,
            Some(repo),
            Some(digest),
            None,
            Outcome::Ok,
            None,
        )];
        if self.db.unlink_blob(repo, digest, &audit).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.clone()))
        }
    }

    /// Links an existing blob into `repo`: from `from` when given, else from anywhere in
    /// the registry. `None` when there is nothing to mount (the client then uploads).
    pub async fn blob_mount(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<Option<u64>> {
        let size = match from {
            Some(from) => self.db.blob_size(from, digest).await?,
            None => self.db.blob_size_anywhere(digest).await?,
        };
        let Some(size) = size else { return Ok(None) };
        if self.store.stat(digest).await?.is_none() {
            return Ok(None);
        }
        self.check_quota(repo, Stored::Blob(digest), size).await?;
        let reason = from.map(|f| format!("mounted from {f}"));
        let audit = [event(
            AuditAction::BlobPush,
            Some(repo),
            Some(digest),
            None,
            Outcome::Ok,
            reason,
        )];
        match self.db.link_blob(repo, digest, size, &audit).await {
            Ok(()) => Ok(Some(size)),
            // Being collected: nothing to mount, the client uploads it.
            Err(crate::db::DbError::BlobCollected(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Monolithic upload: the whole blob in one request.
    pub async fn blob_put(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let id = new_upload_id();
        self.store.upload_create(&id).await?;
        // The quota is checked before the blob is committed: refused bytes never reach
        // the content store.
        let result = async {
            let size = self.store.upload_append(&id, 0, declared, body).await?;
            self.check_quota(repo, Stored::Blob(digest), size).await?;
            Ok::<_, RegistryError>(self.store.upload_commit(&id, digest).await?)
        }
        .await;
        match result {
            Ok(size) => {
                let audit = [event(
                    AuditAction::BlobPush,
                    Some(repo),
                    Some(digest),
                    None,
                    Outcome::Ok,
                    None,
                )];
                self.db.link_blob(repo, digest, size, &audit).await?;
                Ok(size)
            }
            Err(e) => {
                self.store.upload_delete(&id).await?;
                Err(e)
            }
        }
    }

    // ---- upload sessions -----------------------------------------------------------------

    pub async fn upload_start(&self, repo: &RepositoryName) -> Result<String> {
        let id = new_upload_id();
        self.store.upload_create(&id).await?;
        self.db.upload_create(&id, repo).await?;
        Ok(id)
    }

    async fn check_session(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        match self.db.upload_repository(id).await? {
            Some(r) if r == repo.as_str() => Ok(()),
            _ => Err(RegistryError::UploadUnknown(id.to_string())),
        }
    }

    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.session_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn forget_session_lock(&self, id: &str) {
        let mut locks = self.session_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    /// Bytes received so far by a session.
    pub async fn upload_len(&self, repo: &RepositoryName, id: &str) -> Result<u64> {
        self.check_session(repo, id).await?;
        Ok(self.store.upload_len(id).await?)
    }

    /// Appends a chunk. Without `range` the chunk goes at the end (streamed upload) and
    /// `declared` (Content-Length) is checked when given. Returns the new length.
    pub async fn upload_append(
        &self,
        repo: &RepositoryName,
        id: &str,
        range: Option<ChunkRange>,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.check_session(repo, id).await?;
        let lock = self.session_lock(id);
        let _held = lock.lock().await;
        let len = self.append_locked(id, range, declared, body).await?;
        self.db.upload_touch(id).await?;
        Ok(len)
    }

    async fn append_locked(
        &self,
        id: &str,
        range: Option<ChunkRange>,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let current = self.store.upload_len(id).await?;
        let (offset, declared) = match range {
            Some(r) => {
                if let Some(d) = declared.filter(|d| *d != r.byte_count()) {
                    return Err(RegistryError::UploadInvalid(StorageError::LengthMismatch {
                        declared: r.byte_count(),
                        received: d,
                    }));
                }
                (r.start, Some(r.byte_count()))
            }
            None => (current, declared),
        };
        Ok(self.store.upload_append(id, offset, declared, body).await?)
    }

    /// Completes a session with an optional last chunk, verifying `digest`. A refusal
    /// (the digest wrong, a quota exceeded) leaves the session exactly as it was before this
    /// request, its last chunk cut off again, so the client may retry.
    pub async fn upload_finish(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.check_session(repo, id).await?;
        let lock = self.session_lock(id);
        let _held = lock.lock().await;
        let before = self.store.upload_len(id).await?;
        // The session's length: as the last chunk left it, or as the earlier ones did.
        let received = if range.is_some() || declared.unwrap_or(1) > 0 {
            self.append_locked(id, range, declared, body).await?
        } else {
            before
        };
        // Over quota, refused bytes never reach the content store.
        let committed = match self.check_quota(repo, Stored::Blob(digest), received).await {
            Ok(()) => self
                .store
                .upload_commit(id, digest)
                .await
                .map_err(RegistryError::from),
            Err(e) => Err(e),
        };
        let size = match committed {
            Ok(size) => size,
            Err(e) => {
                if received != before {
                    self.store.upload_truncate(id, before).await?;
                }
                return Err(e);
            }
        };
        let audit = [event(
            AuditAction::BlobPush,
            Some(repo),
            Some(digest),
            None,
            Outcome::Ok,
            None,
        )];
        self.db.link_blob(repo, digest, size, &audit).await?;
        self.db.upload_delete(id).await?;
        self.forget_session_lock(id);
        Ok(size)
    }

    pub async fn upload_cancel(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.check_session(repo, id).await?;
        let lock = self.session_lock(id);
        let _held = lock.lock().await;
        self.db.upload_delete(id).await?;
        self.store.upload_delete(id).await?;
        self.forget_session_lock(id);
        Ok(())
    }

    /// Removes sessions idle for longer than the configured time. Returns how many. A
    /// session with a chunk arriving right now is not idle, whatever its last completed
    /// chunk says: it is skipped, never waited for (a chunk trickling in would otherwise
    /// hold up every other session's expiry, and the pending sweep behind it).
    pub async fn expire_uploads(&self) -> Result<usize> {
        let idle = self.db.uploads_idle_for(self.upload_ttl).await?;
        let mut expired = 0;
        for id in &idle {
            let lock = self.session_lock(id);
            let Ok(_held) = lock.try_lock() else {
                continue;
            };
            self.db.upload_delete(id).await?;
            self.store.upload_delete(id).await?;
            self.forget_session_lock(id);
            expired += 1;
        }
        Ok(expired)
    }

    /// Removes uploads that no session owns (monolithic uploads interrupted by a crash).
    /// Such an upload may be a monolithic upload in flight, this process's (once serving)
    /// or another replica's (on a shared store): it is removed only once unchanged for the
    /// upload TTL, longer than a request body may take; at the start of a process alone on
    /// its store, at once. Returns how many.
    pub async fn sweep_orphan_uploads(&self, at_start: bool) -> Result<usize> {
        let min_age = if at_start && !self.store.shared() {
            Duration::ZERO
        } else {
            self.upload_ttl
        };
        let now = std::time::SystemTime::now();
        let listed = self.store.upload_list().await?;
        let live: std::collections::HashSet<String> =
            self.db.upload_ids().await?.into_iter().collect();
        let mut removed = 0;
        for (id, changed) in listed {
            let age = now.duration_since(changed).unwrap_or_default();
            if !live.contains(&id) && age >= min_age {
                self.store.upload_delete(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    // ---- manifests -----------------------------------------------------------------------

    /// Validates and stores a manifest, tagging it with the reference (when a tag) and
    /// `extra_tags` (the `?tag=` parameters). Without `images_allowed` (the signer role)
    /// only signature manifests, untagged and with a subject, are accepted.
    pub async fn manifest_put(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: &[u8],
        extra_tags: Vec<Tag>,
        images_allowed: bool,
    ) -> Result<PushedManifest> {
        if body.len() > crate::oci::MAX_MANIFEST_SIZE {
            return Err(RegistryError::ManifestTooLarge {
                size: body.len(),
                limit: crate::oci::MAX_MANIFEST_SIZE,
            });
        }
        let (digest, mut tags) = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), body);
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                (actual, Vec::new())
            }
            Reference::Tag(tag) => (
                Digest::of(crate::oci::Algorithm::Sha256, body),
                vec![tag.clone()],
            ),
        };
        for t in extra_tags {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let parsed = manifest::parse(content_type, body).map_err(RegistryError::ManifestInvalid)?;
        // A cosign signature manifest: a referrer of cosign's artifact type, or whatever is
        // pushed under a `sha256-<hex>.sig` tag (and only that tag).
        let cosign_signature = {
            let sig_tag = tags
                .iter()
                .map(|t| t.as_str())
                .find(|t| crate::trust::cosign::sig_tag_subject(t).is_some());
            let recognised = crate::trust::cosign::cosign_signatures(&parsed, sig_tag);
            let only_its_tag = tags.iter().all(|t| Some(t.as_str()) == sig_tag);
            matches!(recognised, Ok(Some(_))) && only_its_tag
        };
        let is_signature = parsed.artifact_type.as_deref() == Some(crate::trust::NOTARY_SIGNATURE)
            || cosign_signature;
        // An index of signatures under the referrers tag schema is signature bookkeeping.
        let bookkeeping = match self.referrers_tag_index(repo, &tags, &parsed).await? {
            gate::TagSchemaIndex::No => false,
            gate::TagSchemaIndex::Signatures => true,
            gate::TagSchemaIndex::Refused(why) => {
                let e = RegistryError::Denied {
                    message: why,
                    detail: serde_json::json!({ "repository": repo.as_str(), "check": "referrersTagIndex" }),
                };
                return Err(self.refuse_push(e, repo, &digest, &tags).await);
            }
        };
        // The signer role pushes signatures bonded can read, untagged, and the referrers
        // tag indexes that list them; what a manifest calls itself is not enough (a
        // runnable image can carry any artifactType).
        let not_a_signature = if images_allowed || bookkeeping || cosign_signature {
            None
        } else if !tags.is_empty() {
            Some("a tagged push".to_string())
        } else {
            self.readable_signature(repo, &parsed).await.err()
        };
        if let Some(what) = not_a_signature {
            let actor = CLIENT
                .try_with(|c| c.actor.clone())
                .unwrap_or_else(|_| "?".into());
            let e = RegistryError::Denied {
                message: format!(
                    "'{actor}' may push only signatures to {repo} (signer role): this is {what}; pushing images and tags needs the developer role"
                ),
                detail: serde_json::json!({ "account": actor, "repository": repo.as_str(), "check": "role" }),
            };
            return Err(self.refuse_push(e, repo, &digest, &tags).await);
        }
        let admission = match self.trust() {
            // Signatures it lists were each verified when pushed; it has none of its own.
            Some(_) if bookkeeping => gate::Admission::release(gate::TagRelease::Signature),
            Some(trust) => {
                match self
                    .admit(&trust, repo, &digest, &parsed, body.len() as u64, &tags)
                    .await
                {
                    Ok(a) => {
                        self.metrics.admitted(match (&a.tags, a.pending) {
                            (_, true) | (gate::TagRelease::Wait, _) => "held",
                            (gate::TagRelease::Accepted(_), _) => "admitted",
                            (gate::TagRelease::Signature, _) => "signature",
                            (gate::TagRelease::NotEnforced, _) => "not_enforced",
                        });
                        a
                    }
                    Err(e @ RegistryError::Denied { .. }) => {
                        self.metrics.admitted("refused");
                        let action = if is_signature {
                            AuditAction::SignatureRefuse
                        } else {
                            AuditAction::AdmissionDeny
                        };
                        let tag = tags.first().map(|t| t.as_str());
                        self.audit_refusal(event(
                            action,
                            Some(repo),
                            Some(&digest),
                            tag,
                            Outcome::Denied,
                            Some(e.to_string()),
                        ))
                        .await;
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            None => gate::Admission::release(gate::TagRelease::NotEnforced),
        };
        let signed_subject = admission
            .signatures
            .iter()
            .find(|s| s.accepted)
            .and_then(|s| s.subject.parse::<Digest>().ok());
        let children: Vec<Digest> = parsed.manifests.iter().map(|c| c.digest.clone()).collect();
        let annotations = parsed
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).expect("string map serialises"));
        let mut audit = vec![event(
            AuditAction::ManifestPush,
            Some(repo),
            Some(&digest),
            None,
            Outcome::Ok,
            admission.warning.clone(),
        )];
        for t in &tags {
            let (action, reason) = match &admission.tags {
                gate::TagRelease::Wait => (
                    AuditAction::TagWait,
                    Some("waits for signatures".to_string()),
                ),
                // Who the policy counted, in the tag's own record.
                gate::TagRelease::Accepted(a) => (
                    AuditAction::TagPush,
                    Some(format!(
                        "admitted by policy '{}': {}",
                        a.policy(),
                        a.reason()
                    )),
                ),
                gate::TagRelease::NotEnforced | gate::TagRelease::Signature => {
                    (AuditAction::TagPush, None)
                }
            };
            audit.push(event(
                action,
                Some(repo),
                Some(&digest),
                Some(t.as_str()),
                Outcome::Ok,
                reason,
            ));
        }
        if let Some(refusal) = &admission.refusal {
            // Stored all the same: the refusal is what the client hears.
            audit.push(event(
                AuditAction::AdmissionDeny,
                Some(repo),
                Some(&digest),
                tags.first().map(|t| t.as_str()),
                Outcome::Denied,
                Some(refusal.to_string()),
            ));
        }
        for sig in &admission.signatures {
            let subject = sig.subject.parse::<Digest>().ok();
            let reason = format!(
                "signer '{}', {}, policy '{}'{}",
                sig.signer.as_deref().unwrap_or("?"),
                sig.algorithm.as_deref().unwrap_or("?"),
                sig.policy,
                if sig.accepted {
                    ""
                } else {
                    ", not counted (a check failed; see its record)"
                }
            );
            audit.push(event(
                AuditAction::SignatureAdmit,
                Some(repo),
                subject.as_ref(),
                None,
                Outcome::Ok,
                Some(reason),
            ));
        }
        self.check_quota(repo, Stored::Manifest(&digest), body.len() as u64)
            .await?;
        let immutable = self.immutable_tags(repo, &tags).await?;
        let write = ManifestWrite {
            repository: repo.clone(),
            digest: digest.clone(),
            media_type: parsed.media_type,
            artifact_type: parsed.artifact_type,
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
            annotations,
            content: body.to_vec(),
            blobs: parsed.blobs,
            children: children.clone(),
            tags: tags.clone(),
            signatures: admission.signatures,
            pending: admission.pending,
            wait_tags: matches!(admission.tags, gate::TagRelease::Wait),
            pushed_by: CLIENT.try_with(|c| c.actor.clone()).ok(),
            signature_limit: is_signature.then_some(self.max_signatures),
            audit,
            immutable,
        };
        let stored = self.db.put_manifest(write).await.map_err(|e| match e {
            PutManifestError::MissingBlobs(d) => RegistryError::ManifestBlobUnknown(d),
            PutManifestError::MissingManifests(d) => RegistryError::ManifestChildUnknown(d),
            PutManifestError::TooManySignatures { subject, limit } => {
                RegistryError::TooManySignatures {
                    repository: repo.clone(),
                    subject,
                    limit,
                }
            }
            PutManifestError::ImmutableTag { tag, current, rule } => {
                Self::immutable_refusal(repo, &tag, &current, &rule, "moved")
            }
            PutManifestError::Db(e) => RegistryError::Db(e),
        });
        if let Err(e) = &stored {
            if !matches!(e, RegistryError::Db(_)) {
                let tag = tags.first().map(|t| t.as_str());
                self.audit_refusal(event(
                    AuditAction::ManifestPush,
                    Some(repo),
                    Some(&digest),
                    tag,
                    Outcome::Denied,
                    Some(e.to_string()),
                ))
                .await;
            }
        }
        stored?;
        for tag in &tags {
            self.forget_tag(repo.as_str(), tag.as_str()).await;
        }
        if !admission.pending && !bookkeeping && !children.is_empty() {
            self.admit_descendants(repo, children, &format!("admitted with index {digest}"))
                .await?;
        }
        if let Some(subject) = signed_subject {
            self.forget_pull_verdicts(repo, Some(&subject));
            self.after_signature(repo, &subject).await?;
        }
        if let Some(refusal) = admission.refusal {
            return Err(refusal);
        }
        Ok(PushedManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
            tags,
            warning: admission.warning,
        })
    }

    pub async fn manifest_get(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Arc<StoredManifest>> {
        let m = self.manifest_lookup(repo, reference).await?;
        if self.enforces_on_pull(repo) {
            if let Err(e) = self.check_pull(repo, reference, &m).await {
                if let RegistryError::Denied { message, .. } = &e {
                    self.record_pull_refused(repo, reference, message);
                }
                return Err(e);
            }
        }
        Ok(m)
    }

    /// Under `bonded.enforceOnPull`: a manifest pulled by tag, or by digest when it has
    /// signatures of its own, must still satisfy the policy. Pending manifests stay
    /// readable by digest to those who may push or sign (the HTTP layer keeps readers
    /// out), so that they can be signed in place.
    async fn check_pull(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        m: &StoredManifest,
    ) -> Result<()> {
        let Ok(digest) = m.digest.parse::<Digest>() else {
            return Ok(());
        };
        let by_digest = matches!(reference, Reference::Digest(_));
        let by = if by_digest {
            PullBy::Digest
        } else {
            PullBy::Tag
        };
        let key = (repo.as_str().to_string(), m.digest.clone(), by);
        let cached = self
            .pull_verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|(at, _, _)| at.elapsed() < PULL_VERDICT_TTL)
            .map(|(_, ok, why)| (*ok, why.clone()));
        let (allowed, reason) = match cached {
            Some(c) => c,
            None => {
                let exempt = if by_digest {
                    self.db.manifest_state(repo, &digest).await?.as_deref() == Some("pending")
                        || self
                            .db
                            .referrers(repo, &digest, Some(crate::trust::NOTARY_SIGNATURE))
                            .await?
                            .is_empty()
                } else {
                    self.is_signature_bookkeeping(repo, reference, m).await?
                };
                let verdict = if exempt {
                    (true, String::new())
                } else {
                    match self
                        .satisfied_now(repo, &digest, &m.media_type, m.content.len() as u64)
                        .await?
                    {
                        Some(Ok(_)) => (true, String::new()),
                        Some(Err((reason, policy))) => (
                            false,
                            format!("pull refused by policy '{policy}': {reason}"),
                        ),
                        None => (true, String::new()),
                    }
                };
                let mut verdicts = self.pull_verdicts.lock().unwrap_or_else(|p| p.into_inner());
                if verdicts.len() >= PULL_VERDICTS_MAX {
                    verdicts.retain(|_, (at, _, _)| at.elapsed() < PULL_VERDICT_TTL);
                    if verdicts.len() >= PULL_VERDICTS_MAX {
                        verdicts.clear();
                    }
                }
                verdicts.insert(
                    key,
                    (std::time::Instant::now(), verdict.0, verdict.1.clone()),
                );
                verdict
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(RegistryError::Denied {
                message: reason,
                detail: serde_json::json!({ "digest": m.digest }),
            })
        }
    }

    /// Whether `m`, pulled by `reference`, is a referrers-schema index of signatures
    /// (what notation reads on registries without the referrers API) or cosign's `.sig`
    /// tag: not an image, so
    /// `bonded.enforceOnPull` does not ask it for signatures of its own.
    pub(super) async fn is_signature_bookkeeping(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        m: &StoredManifest,
    ) -> Result<bool> {
        let Reference::Tag(tag) = reference else {
            return Ok(false);
        };
        let Ok(parsed) = manifest::parse(Some(&m.media_type), &m.content) else {
            return Ok(false);
        };
        // cosign's `sha256-<hex>.sig` tag holds signatures, not an image.
        if crate::trust::cosign::sig_tag_subject(tag.as_str()).is_some()
            && matches!(
                crate::trust::cosign::cosign_signatures(&parsed, Some(tag.as_str())),
                Ok(Some(_))
            )
        {
            return Ok(true);
        }
        Ok(matches!(
            self.referrers_tag_index(repo, std::slice::from_ref(tag), &parsed)
                .await?,
            gate::TagSchemaIndex::Signatures
        ))
    }

    /// Drops the pull decisions about `digest` in `repo` (every kind of pull), or about
    /// every manifest of `repo`.
    fn forget_pull_verdicts(&self, repo: &RepositoryName, digest: Option<&Digest>) {
        let digest = digest.map(|d| d.to_string());
        self.pull_verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(r, d, _), _| {
                r != repo.as_str() || digest.as_ref().is_some_and(|only| only != d)
            });
    }

    async fn manifest_lookup(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Arc<StoredManifest>> {
        let key = reference.to_string();
        let ticket = match self.manifests.get(repo.as_str(), &key) {
            Ok(hit) => return Ok(hit),
            Err(ticket) => ticket,
        };
        let found = match reference {
            Reference::Tag(t) => self.db.manifest_by_tag(repo, t).await?,
            Reference::Digest(d) => self.db.manifest_by_digest(repo, d).await?,
        };
        match found {
            Some(m) => {
                let m = Arc::new(m);
                self.manifests.fill(ticket, repo.as_str(), &key, m.clone());
                Ok(m)
            }
            None => Err(self.manifest_unknown(repo, reference).await),
        }
    }

    /// A manifest push refused before the gate (a role, a referrers tag): recorded as a
    /// refused `manifest.push`, then returned.
    async fn refuse_push(
        &self,
        e: RegistryError,
        repo: &RepositoryName,
        digest: &Digest,
        tags: &[Tag],
    ) -> RegistryError {
        self.audit_refusal(event(
            AuditAction::ManifestPush,
            Some(repo),
            Some(digest),
            tags.first().map(|t| t.as_str()),
            Outcome::Denied,
            Some(e.to_string()),
        ))
        .await;
        e
    }

    /// Records a refusal (it changed nothing, so it commits alone). A failure to record is
    /// logged: the request is refused either way.
    async fn audit_refusal(&self, e: crate::db::AuditEvent) {
        if let Err(err) = self.db.audit(&[e]).await {
            tracing::error!(error = %err, "recording a refusal in the audit trail failed");
        }
    }

    /// The audit trail, filtered.
    pub async fn audit(
        &self,
        filter: &crate::db::AuditFilter,
    ) -> Result<Vec<crate::db::AuditRecord>> {
        Ok(self.db.audit_query(filter).await?)
    }

    /// Admits pending manifests below an admitted index, at any depth (and the index
    /// itself when it is among `queue`), each with an audit record saying `why`.
    async fn admit_descendants(
        &self,
        repo: &RepositoryName,
        mut queue: Vec<Digest>,
        why: &str,
    ) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        while let Some(d) = queue.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            self.db
                .admit_pending(repo, std::slice::from_ref(&d), |digest| {
                    let mut e = event(
                        AuditAction::ManifestAdmit,
                        Some(repo),
                        None,
                        None,
                        Outcome::Ok,
                        Some(why.to_string()),
                    );
                    e.digest = Some(digest.to_string());
                    e
                })
                .await?;
            if let Some(m) = self.db.manifest_by_digest(repo, &d).await? {
                if let Ok(parsed) = manifest::parse(Some(&m.media_type), &m.content) {
                    queue.extend(parsed.manifests.into_iter().map(|c| c.digest));
                }
            }
        }
        Ok(())
    }

    /// After an accepted signature for `subject`: if the subject was pending or has
    /// waiting tags and the policy is now satisfied, admit it (and what it references)
    /// and publish its waiting tags, each recorded in the audit trail.
    /// Returns whether it was admitted.
    async fn after_signature(&self, repo: &RepositoryName, subject: &Digest) -> Result<bool> {
        let pending = self.db.manifest_state(repo, subject).await?.as_deref() == Some("pending");
        if !pending && !self.db.has_waiting_tags(repo, subject).await? {
            return Ok(false);
        }
        let Some(m) = self.db.manifest_by_digest(repo, subject).await? else {
            return Ok(false);
        };
        let satisfied = self
            .satisfied_now(repo, subject, &m.media_type, m.content.len() as u64)
            .await?;
        let Some(Ok(accepted)) = satisfied else {
            return Ok(false);
        };
        let reason = accepted.reason();
        self.admit_descendants(repo, vec![subject.clone()], &format!("admitted: {reason}"))
            .await?;
        let immutable = self.db.immutable_rules().await?;
        let published = self
            .db
            .publish_tags(repo, &accepted, &immutable, |tag| {
                event(
                    AuditAction::TagPublish,
                    Some(repo),
                    Some(subject),
                    Some(tag),
                    Outcome::Ok,
                    Some(format!("waiting tag published: {reason}")),
                )
            })
            .await?;
        for tag in published {
            self.forget_tag(repo.as_str(), &tag).await;
            tracing::info!(repository = %repo, tag, digest = %subject, "waiting tag published: policy satisfied");
        }
        Ok(true)
    }

    /// The signature store's records for `digest` in `repo`.
    pub async fn signatures(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<crate::db::SignatureRecord>> {
        Ok(self.db.signatures_for(repo, digest).await?)
    }

    pub(crate) async fn manifest_unknown(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryError {
        if let Reference::Tag(tag) = reference {
            match self.waiting_for(repo, tag).await {
                Ok(Some(e)) => return e,
                Ok(None) => {}
                Err(e) => return e,
            }
        }
        match self.db.repository_exists(repo).await {
            Ok(false) => RegistryError::NameUnknown(repo.clone()),
            Ok(true) => RegistryError::ManifestUnknown {
                repository: repo.clone(),
                reference: reference.to_string(),
            },
            Err(e) => e.into(),
        }
    }

    /// By digest: deletes the manifest and its tags. By tag: deletes only the tag.
    pub async fn manifest_delete(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let deleted = match reference {
            Reference::Digest(d) => self.delete_by_digest(repo, d).await?,
            Reference::Tag(t) => {
                let audit = [event(
                    AuditAction::TagDelete,
                    Some(repo),
                    None,
                    Some(t.as_str()),
                    Outcome::Ok,
                    None,
                )];
                let rule = self.immutable_rule_for(repo, t.as_str()).await?;
                let deleted = match self.db.delete_tag(repo, t, rule.is_some(), &audit).await? {
                    Ok(deleted) => deleted,
                    Err(current) => {
                        let rule = rule.expect("refused only under a rule");
                        let e =
                            Self::immutable_refusal(repo, t.as_str(), &current, &rule, "deleted");
                        self.audit_refusal(event(
                            AuditAction::TagDelete,
                            Some(repo),
                            None,
                            Some(t.as_str()),
                            Outcome::Denied,
                            Some(e.to_string()),
                        ))
                        .await;
                        return Err(e);
                    }
                };
                self.forget_tag(repo.as_str(), t.as_str()).await;
                // cosign's `.sig` tag holds its subject's signatures: pull decisions about
                // that subject may no longer hold.
                if let Some(subject) = crate::trust::cosign::sig_tag_subject(t.as_str())
                    .and_then(|d| d.parse::<Digest>().ok())
                {
                    self.forget_pull_verdicts(repo, Some(&subject));
                }
                deleted
            }
        };
        if deleted {
            Ok(())
        } else {
            Err(self.manifest_unknown(repo, reference).await)
        }
    }

    // ---- listings ------------------------------------------------------------------------

    pub async fn tags(
        &self,
        repo: &RepositoryName,
        n: Option<u32>,
        last: Option<&str>,
    ) -> Result<Vec<String>> {
        if !self.db.repository_exists(repo).await? {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(self.db.tags(repo, n, last).await?)
    }

    /// Repository names after `last`, at most `n`; with `within`, only names those
    /// namespace patterns cover.
    pub async fn catalog(
        &self,
        n: Option<u32>,
        last: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<String>> {
        Ok(self.db.repositories(n, last, within).await?)
    }

    /// One page of the referrers of `subject`: in digest order, after `after`, at most
    /// `limit`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<Referrer>> {
        let after = after.map(|d| d.to_string());
        Ok(self
            .db
            .referrers_page(repo, subject, artifact_type, after.as_deref(), limit)
            .await?)
    }
}

fn new_upload_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
