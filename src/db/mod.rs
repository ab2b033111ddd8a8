//! Registry metadata behind one type, [`Metadata`]: repositories, which blobs each may
//! serve, manifests, tags, referrers and upload sessions. All SQL lives here, so a PostgreSQL
//! implementation can replace SQLite without touching the layers above.
//!
//! SQLite runs in WAL mode with one writer connection (writes are serialised here rather
//! than by SQLite's busy handler) and a small pool of readers that never block on it.

mod accounts;
mod audit;
mod changes;
mod journal;
mod lifecycle;

pub use accounts::{check_account_name, AccountInfo, TokenInfo};

/// The columns and joins of [`Metadata::published_tags`]' two queries: repositories by
/// their name index, then each one's tags by primary key (CROSS JOIN fixes that order).
macro_rules! published_tags_from {
    () => {
        "SELECT r.name, t.name, t.digest, m.media_type, m.size
         FROM repositories r
         CROSS JOIN tags t ON t.repository_id = r.id
         CROSS JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
         "
    };
}

/// A published tag and the manifest it names ([`Metadata::published_tags`]).
#[derive(Debug, Clone)]
pub struct PublishedTag {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}
pub use changes::{Change, Exclusive, Listener};
pub use journal::Journal;
pub use lifecycle::{tag_schema_subject, Changes, Deleted, Graph, GraphManifest, RetentionRule};

pub use audit::{
    chain_hash, format_at, format_unix, parse_time, verify_archive, Archived, AuditAction,
    AuditEvent, AuditFilter, AuditRecord, ChainHead, Checkpoint, Outcome,
};

use crate::oci::{Digest, RepositoryName, Tag};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Row};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("metadata database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrating the metadata database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("audit journal: {0}")]
    Journal(#[from] std::io::Error),
    /// The blob's bytes are being removed by garbage collection.
    #[error("{0} was being removed by garbage collection as this push completed; push it again")]
    BlobCollected(Digest),
}

type Result<T> = std::result::Result<T, DbError>;

/// The SQL database behind [`Metadata`]. Statements are written once, in the SQL both
/// accept (`$1` parameters, `ON CONFLICT`, `RETURNING`); [`dialect`] rewrites the few
/// constructs that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// `sql` as `backend` takes it: for PostgreSQL, `json_each($n)` (a JSON array bound as
/// text, unpacked to rows of `value`) becomes `json_array_elements_text($n::json)`,
/// `GLOB` patterns become `LIKE` ones (`*` → `%`; both are case-sensitive), and
/// `CROSS JOIN ... ON` (SQLite's way to fix the join order) a plain `JOIN ... ON`. Each
/// statement is rewritten once and kept.
fn dialect(backend: Backend, sql: &'static str) -> &'static str {
    if backend == Backend::Sqlite {
        return sql;
    }
    static DONE: Mutex<Option<HashMap<usize, &'static str>>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    let done = done.get_or_insert_with(HashMap::new);
    // Statements are string constants: their address names them.
    let key = sql.as_ptr() as usize ^ (sql.len() << 48);
    done.entry(key).or_insert_with(|| {
        let mut out = String::with_capacity(sql.len() + 32);
        let mut rest = sql;
        while let Some(at) = rest.find("json_each(") {
            out.push_str(&rest[..at]);
            rest = &rest[at + "json_each(".len()..];
            let close = rest.find(')').expect("json_each(...) closes");
            out.push_str("json_array_elements_text(");
            out.push_str(&rest[..close]);
            out.push_str("::json)");
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        while let Some(at) = out.find(" GLOB '") {
            let start = at + " GLOB '".len();
            let end = start + out[start..].find('\'').expect("GLOB pattern closes");
            let pattern = out[start..end].replace('*', "%");
            out.replace_range(at..=end, &format!(" LIKE '{pattern}'"));
        }
        let out = out.replace("CROSS JOIN", "JOIN");
        Box::leak(out.into_boxed_str())
    })
}

/// One embedded migration.
fn migration(version: i64, name: &str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        name.to_string().into(),
        MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(sql),
        false,
    )
}

/// The SQLite schema, embedded in the binary and applied at start.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(
            1,
            "registry",
            include_str!("../../migrations/0001_registry.sql"),
        ),
        migration(
            2,
            "accounts",
            include_str!("../../migrations/0002_accounts.sql"),
        ),
        migration(
            3,
            "stored verdicts",
            include_str!("../../migrations/0003_stored_verdicts.sql"),
        ),
        migration(
            4,
            "waiting tags",
            include_str!("../../migrations/0004_waiting_tags.sql"),
        ),
        migration(
            5,
            "signature layers",
            include_str!("../../migrations/0005_signature_layers.sql"),
        ),
        migration(
            6,
            "audit indexes",
            include_str!("../../migrations/0006_audit_indexes.sql"),
        ),
        migration(
            7,
            "audit checkpoints",
            include_str!("../../migrations/0007_audit_checkpoints.sql"),
        ),
        migration(
            8,
            "lifecycle",
            include_str!("../../migrations/0008_lifecycle.sql"),
        ),
        migration(
            9,
            "retention",
            include_str!("../../migrations/0009_retention.sql"),
        ),
    ])
}

/// The PostgreSQL schema: a migration history of its own (migrations/postgres/).
fn postgres_migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(
            1,
            "schema",
            include_str!("../../migrations/postgres/0001_schema.sql"),
        ),
        migration(
            2,
            "lifecycle",
            include_str!("../../migrations/postgres/0002_lifecycle.sql"),
        ),
        migration(
            3,
            "retention",
            include_str!("../../migrations/postgres/0003_retention.sql"),
        ),
    ])
}

/// `url` without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Advisory lock keys (PostgreSQL): one for migrations, one for writes.
const MIGRATION_LOCK: i64 = 0x626f_6e64_6564_0001;
const WRITE_LOCK: i64 = 0x626f_6e64_6564_0002;

/// A write transaction on `pool`: on PostgreSQL holding [`WRITE_LOCK`] until it ends.
async fn begin_write(
    pool: &AnyPool,
) -> std::result::Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if Backend::of(&tx) == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// SQLite's planner statistics, sampled (`analysis_limit`: milliseconds on a 600 MB
/// database). Without them SQLite 3.51 checks a deleted manifest's `tags` foreign key by
/// scanning the repository's tags: 6.5 s to delete 500 manifests of a repository with 51k
/// tags, 24 ms with them.
async fn optimize_sqlite(write: &AnyPool) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
        .execute(write)
        .await?;
    Ok(())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The hash the first record of a trail links to.
pub fn audit_genesis() -> &'static str {
    audit::GENESIS
}

/// A tag waiting for its manifest to be admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingTag {
    pub tag: String,
    pub digest: String,
    /// Unix seconds of the push.
    pub since: i64,
    pub pushed_by: Option<String>,
}

fn waiting_tag(r: sqlx::any::AnyRow) -> WaitingTag {
    WaitingTag {
        tag: r.get(0),
        digest: r.get(1),
        since: r.get(2),
        pushed_by: r.get(3),
    }
}

/// A manifest as stored: its bytes are returned to clients verbatim.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A manifest to store, what it references, and the tags to point at it.
#[derive(Debug, Clone)]
pub struct ManifestWrite {
    pub repository: RepositoryName,
    pub digest: Digest,
    pub media_type: &'static str,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// Top-level annotations as a JSON object.
    pub annotations: Option<String>,
    pub content: Vec<u8>,
    /// Blobs (config, layers) that must be in the repository.
    pub blobs: Vec<Digest>,
    /// Manifests (an index's children) that must be in the repository.
    pub children: Vec<Digest>,
    pub tags: Vec<Tag>,
    /// For a signature manifest that was verified: what verification found, one record
    /// per signature (a cosign manifest may hold several).
    pub signatures: Vec<SignatureRecord>,
    /// Held as pending until signed (an existing admitted manifest stays admitted).
    pub pending: bool,
    /// The tags wait for signatures (`waiting_tags`) instead of being published: the
    /// tags' published manifests, if any, keep being served until the policy is met.
    pub wait_tags: bool,
    /// The account pushing; kept for the manifest's first push only.
    pub pushed_by: Option<String>,
    /// For a signature manifest: most signatures (manifests of this artifact type) one
    /// subject may have in the repository, this one included.
    pub signature_limit: Option<usize>,
    /// Audit records committed with the write.
    pub audit: Vec<AuditEvent>,
    /// Tags of `tags` that an immutability rule covers, with the rule: refused when
    /// published for another manifest (checked inside the write transaction).
    pub immutable: Vec<(Tag, ImmutableRule)>,
}

/// An immutability rule: tags matching the glob `tags` in repositories `pattern` covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableRule {
    pub pattern: String,
    pub tags: String,
    pub created_at: i64,
    pub created_by: String,
}

impl ImmutableRule {
    /// Whether the rule covers tag `tag` of repository `repo`.
    pub fn covers(&self, repo: &str, tag: &str) -> bool {
        crate::auth::pattern_matches(&self.pattern, repo) && glob_matches(&self.tags, tag)
    }
}

/// Shell-style glob over a whole name: `*` any run of characters, `?` one character.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in practice,
    // quadratic at worst, never exponential.
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// A verified signature, as the signature store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureRecord {
    /// The signature manifest's digest.
    pub digest: String,
    /// The signature's index among the manifest's layers (cosign keeps several in one
    /// manifest; a Notary signature is layer 0).
    pub layer: u32,
    /// The digest it signs.
    pub subject: String,
    /// `notary.jws`.
    pub format: String,
    pub signer: Option<String>,
    pub thumbprints: Vec<String>,
    pub algorithm: Option<String>,
    /// RFC 3339.
    pub signing_time: Option<String>,
    /// Each check's outcome and reason.
    pub checks: serde_json::Value,
    pub accepted: bool,
    /// The policy it was verified under.
    pub policy: String,
    /// RFC 3339.
    pub verified_at: String,
    /// What the gate decides from (kept, not shown): the verdict as JSON, the trust
    /// configuration version it was made under, and the subject descriptor's media type
    /// and size.
    #[serde(skip)]
    pub verdict: Option<String>,
    #[serde(skip)]
    pub trust_version: Option<i64>,
    #[serde(skip)]
    pub subject_media_type: Option<String>,
    #[serde(skip)]
    pub subject_size: Option<u64>,
}

/// A signature record as the gate reads it (see [`Metadata::stored_verdicts`]).
#[derive(Debug, Clone)]
pub struct StoredVerdict {
    pub digest: String,
    pub layer: u32,
    pub verdict: Option<String>,
    pub trust_version: Option<i64>,
    pub policy: String,
    pub subject_media_type: Option<String>,
    pub subject_size: Option<u64>,
}

/// One version of the trust configuration.
#[derive(Debug, Clone)]
pub struct TrustVersion {
    pub version: i64,
    /// `trustpolicy.json` as given; `None` means no policy.
    pub policy: Option<String>,
    /// Store reference (`ca:name`) to certificates (DER).
    pub stores: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
    pub reason: String,
    pub created_at: String,
}

/// Most manifest writes committed in one transaction.
const MAX_WRITE_BATCH: usize = 64;

type ManifestJob = (
    ManifestWrite,
    tokio::sync::oneshot::Sender<std::result::Result<(), PutManifestError>>,
);

/// One entry of a referrers listing.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: i64,
    pub annotations: Option<String>,
}

/// Why a manifest could not be stored.
#[derive(Debug)]
pub enum PutManifestError {
    /// Blobs (config, layers) the manifest references that this repository does not hold.
    MissingBlobs(Vec<Digest>),
    /// Manifests an index references that this repository does not hold.
    MissingManifests(Vec<Digest>),
    /// The subject has as many signatures as a subject may have.
    TooManySignatures {
        subject: Digest,
        limit: usize,
    },
    /// A published tag an immutability rule covers points at another manifest.
    ImmutableTag {
        tag: String,
        current: String,
        rule: ImmutableRule,
    },
    Db(DbError),
}

impl From<sqlx::Error> for PutManifestError {
    fn from(e: sqlx::Error) -> Self {
        PutManifestError::Db(e.into())
    }
}

#[derive(Clone)]
pub struct Metadata {
    backend: Backend,
    /// The PostgreSQL URL, for the listener's own connection (it holds a password).
    url: Option<String>,
    /// This process's name in change notifications, to skip its own.
    origin: u64,
    read: AnyPool,
    write: AnyPool,
    /// Ids of repositories whose creating transaction committed. Repositories are never
    /// deleted, so a remembered id stays right; it saves a statement on every push.
    repository_ids: Arc<Mutex<HashMap<String, i64>>>,
    /// Manifest writes go through one task that commits whatever is waiting in one
    /// transaction (group commit): concurrent pushes share the commit's cost.
    manifest_writes: tokio::sync::mpsc::Sender<ManifestJob>,
}

impl Metadata {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        // The path as a sqlite: URL; percent-encoded, so no character of it is read as
        // URL syntax.
        let encoded: String = path
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = |mode: &str| format!("sqlite://{encoded}?mode={mode}");
        // With WAL, synchronous NORMAL never corrupts and never loses a commit on a process
        // crash; only an OS crash or power loss can lose the last transactions.
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .execute(conn)
                    .await
                    .map(|_| ())
                })
            })
            .connect(&url("rwc"))
            .await?;
        migrator().run(&write).await?;
        optimize_sqlite(&write).await?;
        let read = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .connect(&url("ro"))
            .await?;
        Ok(Self::with_pools(Backend::Sqlite, None, read, write))
    }

    /// Opens the PostgreSQL database at `url` (`postgres://USER:PASSWORD@HOST/DB`) and
    /// applies migrations. Several processes may share it (replicas): writes that must
    /// see each other (the audit chain, counted limits) take one transaction-scoped
    /// advisory lock, as SQLite's single writer serialises them.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        {
            // Two processes starting at once must not both migrate.
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
            let migrated = postgres_migrator().run(&mut *conn).await;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
            migrated?;
        }
        Ok(Self::with_pools(
            Backend::Postgres,
            Some(url.to_string()),
            pool.clone(),
            pool,
        ))
    }

    /// Opens `location`: a `postgres://` or `postgresql://` URL, else a SQLite file path.
    pub async fn open(location: &str) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Self::open_postgres(location, 16).await
        } else {
            Self::open_sqlite(Path::new(location)).await
        }
    }

    /// For the offline commands (`bonded user`, `audit verify`, ...): the PostgreSQL
    /// database at `database_url`, else the data directory's `bonded.db`, which must
    /// exist (a command never creates an empty registry database by mistake).
    pub async fn open_existing(
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> std::result::Result<Self, String> {
        if let Some(url) = database_url {
            return Self::open_postgres(url, 2)
                .await
                .map_err(|e| format!("cannot open the database at {}: {e}", redact_url(url)));
        }
        let path = data_dir.join("bonded.db");
        if !path.exists() {
            return Err(format!(
                "no bonded database at {}: start `bonded serve --data-dir {}` once, or pass --data-dir (or --database-url)",
                path.display(),
                data_dir.display()
            ));
        }
        Self::open_sqlite(&path)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))
    }

    /// The database behind this.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction; on PostgreSQL it first takes the write lock every
    /// process sharing the database takes, so writes are serialised as on SQLite.
    /// Refreshes the query planner's statistics where the tables changed enough to need
    /// it (SQLite's `PRAGMA optimize`; PostgreSQL's autovacuum does this itself).
    pub async fn optimize(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            optimize_sqlite(&self.write).await?;
        }
        Ok(())
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(begin_write(&self.write).await?)
    }

    fn with_pools(backend: Backend, url: Option<String>, read: AnyPool, write: AnyPool) -> Self {
        let (manifest_writes, jobs) = tokio::sync::mpsc::channel(4 * MAX_WRITE_BATCH);
        let db = Metadata {
            backend,
            url,
            origin: rand::random(),
            read,
            write,
            repository_ids: Arc::default(),
            manifest_writes,
        };
        tokio::spawn(manifest_writer(
            db.write.clone(),
            db.repository_ids.clone(),
            jobs,
        ));
        db
    }

    /// Whether the database answers now (for `/readyz`): a trivial query on the read pool
    /// within 2 s, the write pool open and the manifest writer running. The write pool's
    /// one connection is not queried: a probe waiting behind a busy writer would report a
    /// loaded registry as down and have the load balancer take it out.
    pub async fn ready(&self) -> std::result::Result<(), String> {
        if self.manifest_writes.is_closed() {
            return Err("the manifest writer has stopped".into());
        }
        if self.write.is_closed() {
            return Err("the write connection is closed".into());
        }
        let q = sqlx::query("SELECT 1").execute(&self.read);
        match tokio::time::timeout(Duration::from_secs(2), q).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the read connection failed: {e}")),
            Err(_) => Err("the read connection did not answer within 2 s".into()),
        }
    }

    /// Upload sessions open.
    pub async fn upload_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM uploads")
            .fetch_one(&self.read)
            .await?)
    }

    /// Each pool's name, connections open and idle ones among them: SQLite's read and
    /// write pools, or PostgreSQL's one pool (`shared`).
    pub fn pool_use(&self) -> Vec<(&'static str, u32, usize)> {
        match self.backend {
            Backend::Sqlite => vec![
                ("read", self.read.size(), self.read.num_idle()),
                ("write", self.write.size(), self.write.num_idle()),
            ],
            Backend::Postgres => vec![("shared", self.write.size(), self.write.num_idle())],
        }
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// The id of `repo`, creating the repository inside the caller's write transaction
    /// unless it is known to exist already.
    async fn repository_id_for_write(
        &self,
        tx: &mut sqlx::AnyConnection,
        repo: &RepositoryName,
    ) -> Result<i64> {
        let known = self
            .repository_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(repo.as_str())
            .copied();
        match known {
            Some(id) => Ok(id),
            None => ensure_repository(tx, repo).await,
        }
    }

    /// Remembers a repository id once the transaction that created or found it committed.
    fn remember_repository(&self, repo: &RepositoryName, id: i64) {
        self.repository_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(repo.as_str().to_string(), id);
    }

    // ---- blobs -------------------------------------------------------------------------

    /// Records a committed blob and links it to `repo` (creating the repository).
    pub async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        events: &[AuditEvent],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let repo_id = self.repository_id_for_write(&mut tx, repo).await?;
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        // Garbage collection may be removing these very bytes (it marked the row before
        // deleting them): the link is refused and the client pushes the blob again.
        let doomed: Option<i64> =
            sqlx::query_scalar("SELECT doomed_at FROM blobs WHERE digest = $1")
                .bind(digest.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if doomed.is_some() {
            return Err(DbError::BlobCollected(digest.clone()));
        }
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
             ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, events).await?;
        tx.commit().await?;
        self.remember_repository(repo, repo_id);
        Ok(())
    }

    /// Size of `digest` if `repo` may serve it.
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT b.size FROM blobs b
             JOIN repository_blobs rb ON rb.digest = b.digest
             JOIN repositories r ON r.id = rb.repository_id
             WHERE r.name = $1 AND b.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Size of `digest` if any repository holds it.
    pub async fn blob_size_anywhere(&self, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT b.size FROM blobs b WHERE b.digest = $1
             AND EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Removes `digest` from `repo`; `false` when it was not linked.
    pub async fn unlink_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        events: &[AuditEvent],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = $1
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(digest.to_string())
        .bind(repo.as_str())
        .execute(&mut *tx)
        .await?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            audit::append(&mut tx, events).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    // ---- manifests and tags -------------------------------------------------------------

    /// Stores a manifest and points its tags at it, atomically, after checking that
    /// everything it references is in the repository. Storing a manifest that exists is a
    /// no-op apart from the tags.
    pub async fn put_manifest(
        &self,
        write: ManifestWrite,
    ) -> std::result::Result<(), PutManifestError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let closed = || PutManifestError::Db(DbError::Sqlx(sqlx::Error::PoolClosed));
        self.manifest_writes
            .send((write, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    pub async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM tags t
             JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
             WHERE r.name = $1 AND t.name = $2 AND t.state = 'published'",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(stored_manifest))
    }

    pub async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(stored_manifest))
    }

    /// Deletes a tag (not the manifest), published or waiting; `false` when it was not there.
    /// A published tag `immutable` covers is kept: `Err(Ok(digest))` names what it points at.
    pub async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        immutable: bool,
        events: &[AuditEvent],
    ) -> Result<std::result::Result<bool, String>> {
        let mut tx = self.begin_write().await?;
        if immutable {
            let current: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM tags WHERE name = $1
                 AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
            )
            .bind(tag.as_str())
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(current) = current {
                return Ok(Err(current));
            }
        }
        let mut deleted = false;
        for sql in [
            "DELETE FROM tags WHERE name = $1
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
            "DELETE FROM waiting_tags WHERE name = $1
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        ] {
            let done = sqlx::query(sql)
                .bind(tag.as_str())
                .bind(repo.as_str())
                .execute(&mut *tx)
                .await?;
            deleted |= done.rows_affected() > 0;
        }
        if deleted {
            audit::append(&mut tx, events).await?;
        }
        tx.commit().await?;
        Ok(Ok(deleted))
    }

    pub async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    /// Tags of `repo` in lexical order, after `last`, at most `n`.
    pub async fn tags(
        &self,
        repo: &RepositoryName,
        n: Option<u32>,
        last: Option<&str>,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.name > $2 AND t.state = 'published' ORDER BY t.name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(last.unwrap_or(""))
        .bind(n.map(i64::from).unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Published tags of every repository with what they point at, in (repository, tag)
    /// order after `after`, at most `n`: a page of what pulls can see, for the compliance
    /// report after a trust change.
    pub async fn published_tags(
        &self,
        after: Option<(&str, &str)>,
        n: u32,
    ) -> Result<Vec<PublishedTag>> {
        let row = |r: sqlx::any::AnyRow| PublishedTag {
            repository: r.get(0),
            tag: r.get(1),
            digest: r.get(2),
            media_type: r.get(3),
            size: r.get::<i64, _>(4).max(0) as u64,
        };
        // Two range scans, each in index order so no page sorts or re-reads what came
        // before it: the rest of the repository the last page ended in (tags' primary
        // key), then the repositories after it (their name index; CROSS JOIN keeps that
        // order of the join).
        let mut out = Vec::new();
        let (repo, tag) = after.unwrap_or(("", ""));
        if after.is_some() {
            out.extend(
                sqlx::query(dialect(
                    self.backend,
                    concat!(
                        published_tags_from!(),
                        "WHERE r.name = $1 AND t.name > $2 AND t.state = 'published'
                         ORDER BY t.name LIMIT $3"
                    ),
                ))
                .bind(repo)
                .bind(tag)
                .bind(i64::from(n))
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .map(row),
            );
        }
        let left = i64::from(n) - out.len() as i64;
        if left > 0 {
            out.extend(
                sqlx::query(dialect(
                    self.backend,
                    concat!(
                        published_tags_from!(),
                        "WHERE r.name > $1 AND t.state = 'published'
                         ORDER BY r.name, t.name LIMIT $2"
                    ),
                ))
                .bind(if after.is_some() { repo } else { "" })
                .bind(left)
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .map(row),
            );
        }
        Ok(out)
    }

    /// Repositories holding at least one manifest or blob, in lexical order, after `last`,
    /// at most `n`; with `within`, only those some namespace pattern of it covers (`*`,
    /// `NS/*`, a repository name: see [`crate::auth::pattern_matches`]), so a page is
    /// filled with, and ends at, names the caller may see.
    pub async fn repositories(
        &self,
        n: Option<u32>,
        last: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<String>> {
        // Each pattern as SQL over r.name: `NS/*` is the range of names starting "NS/"
        // (bytewise, '0' follows '/'), longer than "NS/" itself.
        let mut clauses = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(patterns) = within {
            if patterns.iter().any(|p| p == "*") {
                clauses.clear();
            } else if patterns.is_empty() {
                return Ok(Vec::new());
            } else {
                for p in patterns {
                    match p.strip_suffix("/*") {
                        // $1 is the cursor: the patterns' values follow it.
                        Some(ns) => {
                            let at = binds.len() + 2;
                            clauses.push(format!("(r.name > ${at} AND r.name < ${})", at + 1));
                            binds.push(format!("{ns}/"));
                            binds.push(format!("{ns}0"));
                        }
                        None => {
                            clauses.push(format!("r.name = ${}", binds.len() + 2));
                            binds.push(p.clone());
                        }
                    }
                }
            }
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("AND ({})", clauses.join(" OR "))
        };
        let sql = format!(
            "SELECT r.name FROM repositories r WHERE r.name > $1 {filter}
             AND (EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
               OR EXISTS (SELECT 1 FROM repository_blobs b WHERE b.repository_id = r.id))
             ORDER BY r.name LIMIT ${}",
            binds.len() + 2
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(last.unwrap_or(""));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q
            .bind(n.map(i64::from).unwrap_or(i64::MAX))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.artifact_type, m.size, m.annotations FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.subject = $2 AND ($3 IS NULL OR m.artifact_type = $4)
             ORDER BY m.created_at, m.digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(referrer).collect())
    }

    /// cosign's signature manifests of `subject` in one query: referrers of
    /// `artifact_type`, then the manifest the published tag `sig_tag` names, as (digest,
    /// whether it came from the tag).
    pub async fn cosign_signature_manifests(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_types: &[&str],
        sig_tag: &str,
    ) -> Result<Vec<(String, bool)>> {
        let rows = sqlx::query(
            dialect(self.backend, "SELECT m.digest, 0 FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.subject = $2 AND m.artifact_type IN (SELECT value FROM json_each($3))
             UNION ALL
             SELECT t.digest, 1 FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.name = $4 AND t.state = 'published'"),
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(serde_json::to_string(artifact_types).expect("strings serialise"))
        .bind(sig_tag)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get::<i64, _>(1) == 1))
            .collect())
    }

    /// [`Metadata::cosign_signature_manifests`] of many subjects of one repository in one
    /// query, as (subject, digest, whether it came from the tag) triples.
    pub async fn cosign_signature_manifests_of_many(
        &self,
        repo: &RepositoryName,
        subjects: &[String],
        artifact_types: &[&str],
    ) -> Result<Vec<(String, String, bool)>> {
        let tags: Vec<String> = subjects
            .iter()
            .filter_map(|s| {
                s.strip_prefix("sha256:")
                    .map(|hex| format!("sha256-{hex}.sig"))
            })
            .collect();
        let rows = sqlx::query(
            dialect(self.backend, "SELECT m.subject, m.digest, 0 FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.artifact_type IN (SELECT value FROM json_each($2)) AND m.subject IN (SELECT value FROM json_each($3))
             UNION ALL
             SELECT t.name, t.digest, 1 FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.state = 'published' AND t.name IN (SELECT value FROM json_each($4))"),
        )
        .bind(repo.as_str())
        .bind(serde_json::to_string(artifact_types).expect("strings serialise"))
        .bind(serde_json::to_string(subjects).expect("strings serialise"))
        .bind(serde_json::to_string(&tags).expect("strings serialise"))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let from_tag = r.get::<i64, _>(2) == 1;
                let first: String = r.get(0);
                let subject = if from_tag {
                    let hex = first.strip_prefix("sha256-")?.strip_suffix(".sig")?;
                    format!("sha256:{hex}")
                } else {
                    first
                };
                Some((subject, r.get(1), from_tag))
            })
            .collect())
    }

    /// One page of [`Metadata::referrers`]: in digest order, after `after`, at most `limit`.
    pub async fn referrers_page(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.artifact_type, m.size, m.annotations FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.subject = $2 AND ($3 IS NULL OR m.artifact_type = $4)
               AND m.digest > $5
             ORDER BY m.digest LIMIT $6",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(artifact_type)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(referrer).collect())
    }

    /// `admitted` or `pending`; `None` when the manifest is not in the repository.
    pub async fn manifest_state(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT m.state FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Admits pending manifests, with an audit record (made by `audit` from the digest)
    /// for each that changed state, in one transaction. Returns those digests.
    pub async fn admit_pending(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
        audit: impl Fn(&str) -> AuditEvent,
    ) -> Result<Vec<String>> {
        let list =
            serde_json::to_string(&digests.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .expect("json");
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(dialect(
            self.backend,
            "UPDATE manifests SET state = 'admitted', pending_since = NULL
             WHERE state = 'pending' AND digest IN (SELECT value FROM json_each($1))
               AND repository_id = (SELECT id FROM repositories WHERE name = $2)
             RETURNING digest",
        ))
        .bind(list)
        .bind(repo.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let admitted: Vec<String> = rows.into_iter().map(|r| r.get(0)).collect();
        let events: Vec<AuditEvent> = admitted.iter().map(|d| audit(d)).collect();
        audit::append(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(admitted)
    }

    /// Publishes the tags waiting for the digest the trust policy `accepted` (only the
    /// policy evaluator makes that proof), with an audit record (made by `audit` from the
    /// tag) for each, in one transaction. Returns their names.
    /// A waiting tag that an `immutable` rule covers and that is published for another
    /// manifest meanwhile stays waiting (it expires with the pending TTL).
    pub async fn publish_tags(
        &self,
        repo: &RepositoryName,
        accepted: &crate::trust::verify::Accepted,
        immutable: &[ImmutableRule],
        audit: impl Fn(&str) -> AuditEvent,
    ) -> Result<Vec<String>> {
        let digest = accepted.subject();
        let mut tx = self.begin_write().await?;
        let Some(repo_id) = repository_id(&mut tx, repo).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "DELETE FROM waiting_tags WHERE repository_id = $1 AND digest = $2 RETURNING name",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut tags: Vec<String> = rows.into_iter().map(|r| r.get(0)).collect();
        tags.sort();
        let mut kept = Vec::new();
        for tag in &tags {
            if !immutable.iter().any(|r| r.covers(repo.as_str(), tag)) {
                continue;
            }
            let current: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2",
            )
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(&mut *tx)
            .await?;
            if current.is_some_and(|c| c != *digest.to_string()) {
                kept.push(tag.clone());
            }
        }
        if !kept.is_empty() {
            // Put back: the DELETE above took every waiting tag of the digest.
            sqlx::query(dialect(
                self.backend,
                "INSERT INTO waiting_tags (repository_id, name, digest, since)
                 SELECT $1, value, $3, $4 FROM json_each($2) WHERE true",
            ))
            .bind(repo_id)
            .bind(serde_json::to_string(&kept).expect("strings serialise"))
            .bind(digest.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tags.retain(|t| !kept.contains(t));
        }
        sqlx::query(dialect(
            self.backend,
            "INSERT INTO tags (repository_id, name, digest, updated_at, state)
             SELECT $1, value, $3, $4, 'published' FROM json_each($2) WHERE true
             ON CONFLICT (repository_id, name) DO UPDATE SET
                digest = excluded.digest, updated_at = excluded.updated_at, state = 'published'",
        ))
        .bind(repo_id)
        .bind(serde_json::to_string(&tags).expect("strings serialise"))
        .bind(digest.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let events: Vec<AuditEvent> = tags.iter().map(|t| audit(t)).collect();
        audit::append(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(tags)
    }

    /// Whether tags wait for `digest`.
    pub async fn has_waiting_tags(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM waiting_tags w JOIN repositories r ON r.id = w.repository_id
             WHERE r.name = $1 AND w.digest = $2 LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }

    /// The manifest waiting under `tag`, if one does.
    pub async fn waiting_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<WaitingTag>> {
        let row = sqlx::query(
            "SELECT w.name, w.digest, w.since, w.pushed_by FROM waiting_tags w
             JOIN repositories r ON r.id = w.repository_id
             WHERE r.name = $1 AND w.name = $2",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(waiting_tag))
    }

    /// Every (repository, digest) that tags wait for, in all repositories.
    pub async fn waiting_subjects(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT r.name, w.digest FROM waiting_tags w
             JOIN repositories r ON r.id = w.repository_id ORDER BY r.name, w.digest",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Tags waiting for signatures in `repo`, oldest first, at most `limit`.
    pub async fn waiting_tags(&self, repo: &RepositoryName, limit: u32) -> Result<Vec<WaitingTag>> {
        let rows = sqlx::query(
            "SELECT w.name, w.digest, w.since, w.pushed_by FROM waiting_tags w
             JOIN repositories r ON r.id = w.repository_id
             WHERE r.name = $1 ORDER BY w.since, w.name LIMIT $2",
        )
        .bind(repo.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(waiting_tag).collect())
    }

    /// Pending manifests of `repo`, oldest first, at most `limit`: (digest, media type,
    /// size, pending since, unix seconds).
    pub async fn pending_manifests(
        &self,
        repo: &RepositoryName,
        limit: u32,
    ) -> Result<Vec<(String, String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, m.pending_since FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.state = 'pending' ORDER BY m.pending_since, m.digest
             LIMIT $2",
        )
        .bind(repo.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get::<Option<i64>, _>(3).unwrap_or(0),
                )
            })
            .collect())
    }

    /// Deletes manifests pending for longer than `age`, with their tags, and tags that
    /// have waited longer than `age`, each with an audit record. Returns (repository,
    /// digest) of each manifest.
    pub async fn expire_pending(&self, age: Duration) -> Result<Vec<(String, String)>> {
        let cutoff = now() - age.as_secs() as i64;
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT r.name, m.repository_id, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE m.state = 'pending' AND m.pending_since < $1",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        let mut expired = Vec::new();
        let record =
            |action: AuditAction, repo: &str, digest: &str, tag: Option<String>| AuditEvent {
                at: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                actor: "bonded".into(),
                source: None,
                action: action.as_str().into(),
                repository: Some(repo.to_string()),
                digest: Some(digest.to_string()),
                tag,
                outcome: Outcome::Ok.as_str().into(),
                reason: Some(format!(
                    "pending for more than {} s without enough signatures",
                    age.as_secs()
                )),
            };
        // Tags that waited too long, whatever their manifest's state (an admitted manifest
        // can have a tag waiting for signatures of its own).
        let waited = sqlx::query(
            "DELETE FROM waiting_tags WHERE since < $1
             RETURNING (SELECT name FROM repositories WHERE id = repository_id), name, digest",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for r in waited {
            let (repo, tag, digest): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            expired.push(record(AuditAction::TagExpire, &repo, &digest, Some(tag)));
        }
        for r in rows {
            let (name, repo_id, digest): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
            // With its tags, signature records and references; its referrers follow it at
            // the next garbage collection (their subject is gone).
            lifecycle::remove_manifests(&mut tx, repo_id, std::slice::from_ref(&digest)).await?;
            expired.push(record(AuditAction::ManifestExpire, &name, &digest, None));
            out.push((name, digest));
        }
        audit::append(&mut tx, &expired).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The signature store's records for signatures of `subject` in `repo`.
    pub async fn signatures_for(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<SignatureRecord>> {
        let rows = sqlx::query(
            "SELECT s.digest, s.subject, s.format, s.signer, s.thumbprints, s.algorithm,
                    s.signing_time, s.checks, s.accepted, s.policy, s.verified_at,
                    s.verdict, s.trust_version, s.subject_media_type, s.subject_size, s.layer
             FROM signatures s JOIN repositories r ON r.id = s.repository_id
             WHERE r.name = $1 AND s.subject = $2 ORDER BY s.verified_at, s.digest, s.layer",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SignatureRecord {
                digest: r.get(0),
                subject: r.get(1),
                format: r.get(2),
                signer: r.get(3),
                thumbprints: serde_json::from_str(r.get::<&str, _>(4)).unwrap_or_default(),
                algorithm: r.get(5),
                signing_time: r.get(6),
                checks: serde_json::from_str(r.get::<&str, _>(7)).unwrap_or_default(),
                accepted: r.get::<i64, _>(8) != 0,
                policy: r.get(9),
                verified_at: r.get(10),
                verdict: r.get(11),
                trust_version: r.get(12),
                subject_media_type: r.get(13),
                subject_size: r.get::<Option<i64>, _>(14).map(|n| n as u64),
                layer: r.get::<i64, _>(15).max(0) as u32,
            })
            .collect())
    }

    /// What the gate decides from for the signatures of `subject` in `repo`: each
    /// record's signature digest, stored verdict (JSON), trust version, policy and subject
    /// descriptor; nothing shown only to people.
    /// [`Metadata::stored_verdicts`] of many subjects of one repository in one query, as
    /// (subject, record) pairs.
    pub async fn stored_verdicts_of_many(
        &self,
        repo: &RepositoryName,
        subjects: &[String],
    ) -> Result<Vec<(String, StoredVerdict)>> {
        let rows = sqlx::query(
            dialect(self.backend, "SELECT s.subject, s.digest, s.verdict, s.trust_version, s.policy, s.subject_media_type, s.subject_size, s.layer
             FROM signatures s JOIN repositories r ON r.id = s.repository_id
             WHERE r.name = $1 AND s.subject IN (SELECT value FROM json_each($2))"),
        )
        .bind(repo.as_str())
        .bind(serde_json::to_string(subjects).expect("strings serialise"))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), stored_verdict(&r, 1)))
            .collect())
    }

    /// Digests of the referrers of `artifact_type` of many subjects of one repository, in
    /// one query, as (subject, referrer) pairs in [`Metadata::referrers`]' order.
    pub async fn referrer_digests_of_many(
        &self,
        repo: &RepositoryName,
        subjects: &[String],
        artifact_type: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(dialect(
            self.backend,
            "SELECT m.subject, m.digest FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.artifact_type = $2
               AND m.subject IN (SELECT value FROM json_each($3))
             ORDER BY m.created_at, m.digest",
        ))
        .bind(repo.as_str())
        .bind(artifact_type)
        .bind(serde_json::to_string(subjects).expect("strings serialise"))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn stored_verdicts(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<StoredVerdict>> {
        let rows = sqlx::query(
            "SELECT s.digest, s.verdict, s.trust_version, s.policy, s.subject_media_type, s.subject_size, s.layer
             FROM signatures s JOIN repositories r ON r.id = s.repository_id
             WHERE r.name = $1 AND s.subject = $2",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(|r| stored_verdict(r, 0)).collect())
    }

    // ---- trust configuration ------------------------------------------------------------

    /// The trust configuration in force (the highest version), if any was ever recorded.
    pub async fn trust_latest(&self) -> Result<Option<TrustVersion>> {
        let row = sqlx::query(
            "SELECT version, policy, stores, reason, created_at FROM trust_versions
             ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(trust_version))
    }

    /// Every version, newest first, without their contents' certificates.
    pub async fn trust_versions(&self) -> Result<Vec<TrustVersion>> {
        let rows = sqlx::query(
            "SELECT version, policy, stores, reason, created_at FROM trust_versions ORDER BY version DESC",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(trust_version).collect())
    }

    /// Records a new version; returns its number.
    pub async fn trust_record(
        &self,
        policy: Option<&str>,
        stores: &std::collections::BTreeMap<String, Vec<Vec<u8>>>,
        reason: &str,
        event: AuditEvent,
    ) -> Result<i64> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let stores: std::collections::BTreeMap<&String, Vec<String>> = stores
            .iter()
            .map(|(k, v)| (k, v.iter().map(|d| b64.encode(d)).collect()))
            .collect();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO trust_versions (policy, stores, reason, created_at) VALUES ($1, $2, $3, $4)
             RETURNING version",
        )
        .bind(policy)
        .bind(serde_json::to_string(&stores).expect("json"))
        .bind(reason)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = row.get(0);
        let mut event = event;
        event.reason = Some(format!("version {version}: {reason}"));
        audit::append(&mut tx, &[event]).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Every (repository, digest) of a manifest with `artifact_type` and a subject: the
    /// signatures to verify again when the trust configuration changes, records or not.
    pub async fn all_referrers_of_type(
        &self,
        artifact_type: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE m.artifact_type = $1 AND m.subject IS NOT NULL",
        )
        .bind(artifact_type)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every (repository, tag, digest) of a published tag named like cosign's
    /// `sha256-<hex>.sig`.
    pub async fn all_sig_tags(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            dialect(self.backend, "SELECT r.name, t.name, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE t.state = 'published' AND t.name GLOB 'sha256-*.sig'"),
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Writes a signature record (after verifying it again), replacing any.
    pub async fn put_signature(&self, repo: &RepositoryName, sig: &SignatureRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let Some(repo_id) = repository_id(&mut tx, repo).await? else {
            return Ok(());
        };
        write_signature(&mut tx, repo_id, sig).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account that first pushed a manifest to a repository.
    pub async fn manifest_pusher(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT m.pushed_by FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?
        .flatten())
    }

    // ---- audit ------------------------------------------------------------------------

    /// Records events that change nothing else (refusals), in their own transaction.
    pub async fn audit(&self, events: &[AuditEvent]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        audit::append(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        Ok(audit::query(&self.read, self.backend, filter).await?)
    }

    /// Moves the records made before `before` (a prefix of the chain) to `out`, verified,
    /// and starts the live chain from a checkpoint; see [`audit::archive`].
    pub async fn audit_archive(
        &self,
        before: time::OffsetDateTime,
        actor: &str,
        file: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<std::result::Result<Option<audit::Archived>, String>> {
        Ok(audit::archive(&self.write, &self.read, before, actor, file, out).await?)
    }

    /// The checkpoint the live chain starts from, if records were archived.
    pub async fn audit_checkpoint(&self) -> Result<Option<audit::Checkpoint>> {
        Ok(audit::checkpoint(&self.read).await?)
    }

    /// Walks the audit chain: `Ok(n)` records intact, or the first break.
    pub async fn audit_verify(
        &self,
        anchor: Option<&ChainHead>,
    ) -> Result<std::result::Result<Option<ChainHead>, String>> {
        Ok(audit::verify_chain(&self.read, anchor).await?)
    }

    // ---- upload sessions ----------------------------------------------------------------

    pub async fn upload_create(&self, id: &str, repo: &RepositoryName) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, repository, created_at, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(repo.as_str())
        .bind(now())
        .bind(now())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The repository an upload session belongs to.
    pub async fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT repository FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn upload_touch(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE uploads SET updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn upload_delete(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Sessions untouched for longer than `idle`.
    pub async fn uploads_idle_for(&self, idle: Duration) -> Result<Vec<String>> {
        let cutoff = now() - idle.as_secs() as i64;
        let rows = sqlx::query("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(cutoff)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Every session id.
    pub async fn upload_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

/// The group-commit loop: takes every manifest write waiting (up to [`MAX_WRITE_BATCH`]),
/// applies them in one transaction, answers each. A refusal (missing references) affects
/// only its own write, which then changes nothing. If the batch as a whole fails, each
/// write is retried alone so that only a write that fails by itself gets an error.
async fn manifest_writer(
    pool: AnyPool,
    repository_ids: Arc<Mutex<HashMap<String, i64>>>,
    mut jobs: tokio::sync::mpsc::Receiver<ManifestJob>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_WRITE_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let writes: Vec<&ManifestWrite> = batch.iter().map(|(w, _)| w).collect();
        match apply_manifest_writes(&pool, &repository_ids, &writes).await {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(_) if batch.len() > 1 => {
                for (write, reply) in batch {
                    let outcome =
                        match apply_manifest_writes(&pool, &repository_ids, &[&write]).await {
                            Ok(mut o) => o.pop().expect("one outcome per write"),
                            Err(e) => Err(PutManifestError::Db(e)),
                        };
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let (_, reply) = batch.pop().expect("batch of one");
                let _ = reply.send(Err(PutManifestError::Db(e)));
            }
        }
    }
}

/// Applies writes in one transaction; each one's refusal is its own outcome.
async fn apply_manifest_writes(
    pool: &AnyPool,
    repository_ids: &Mutex<HashMap<String, i64>>,
    writes: &[&ManifestWrite],
) -> Result<Vec<std::result::Result<(), PutManifestError>>> {
    let mut tx = begin_write(pool).await?;
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut created = Vec::new();
    let mut events = Vec::new();
    for w in writes {
        let known = repository_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(w.repository.as_str())
            .copied();
        let repo_id = match known {
            Some(id) => id,
            None => {
                let id = ensure_repository(&mut tx, &w.repository).await?;
                created.push((w.repository.as_str().to_string(), id));
                id
            }
        };
        let outcome = apply_manifest_write(&mut tx, repo_id, w).await?;
        if outcome.is_ok() {
            events.extend(w.audit.iter().cloned());
        }
        outcomes.push(outcome);
    }
    // The whole batch's audit records in one statement, in the same transaction.
    audit::append(&mut tx, &events).await?;
    tx.commit().await?;
    repository_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(created);
    Ok(outcomes)
}

/// One manifest write inside a transaction: `Ok(Err(..))` is a refusal that wrote nothing.
async fn apply_manifest_write(
    tx: &mut sqlx::AnyConnection,
    repo_id: i64,
    w: &ManifestWrite,
) -> Result<std::result::Result<(), PutManifestError>> {
    let digests_json = |d: &[Digest]| {
        serde_json::to_string(&d.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .expect("strings serialise")
    };
    // Everything referenced that the repository lacks, in one statement.
    let missing = sqlx::query(dialect(
        Backend::of(tx),
        "SELECT 'blob', value FROM json_each($2)
           WHERE value NOT IN (SELECT digest FROM repository_blobs WHERE repository_id = $1)
         UNION ALL
         SELECT 'manifest', value FROM json_each($3)
           WHERE value NOT IN (SELECT digest FROM manifests WHERE repository_id = $1)",
    ))
    .bind(repo_id)
    .bind(digests_json(&w.blobs))
    .bind(digests_json(&w.children))
    .fetch_all(&mut *tx)
    .await?;
    if !missing.is_empty() {
        let (mut missing_blobs, mut missing_manifests) = (Vec::new(), Vec::new());
        for row in missing {
            let kind: String = row.get(0);
            let digest: String = row.get(1);
            let digest: Digest = digest.parse().expect("digests were validated");
            let list = if kind == "blob" {
                &mut missing_blobs
            } else {
                &mut missing_manifests
            };
            if !list.contains(&digest) {
                list.push(digest);
            }
        }
        return Ok(Err(if missing_blobs.is_empty() {
            PutManifestError::MissingManifests(missing_manifests)
        } else {
            PutManifestError::MissingBlobs(missing_blobs)
        }));
    }
    let digest = w.digest.to_string();
    if let (Some(limit), Some(subject), Some(kind)) =
        (w.signature_limit, &w.subject, w.artifact_type.as_deref())
    {
        // Counted inside the write transaction: concurrent pushes cannot overshoot it.
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM manifests
             WHERE repository_id = $1 AND subject = $2 AND artifact_type = $3 AND digest != $4",
        )
        .bind(repo_id)
        .bind(subject.to_string())
        .bind(kind)
        .bind(&digest)
        .fetch_one(&mut *tx)
        .await?;
        if others as usize >= limit {
            return Ok(Err(PutManifestError::TooManySignatures {
                subject: subject.clone(),
                limit,
            }));
        }
    }
    // A waiting tag that could never be published is refused as well.
    {
        for (tag, rule) in &w.immutable {
            let current: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2",
            )
            .bind(repo_id)
            .bind(tag.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(current) = current.filter(|c| *c != digest) {
                return Ok(Err(PutManifestError::ImmutableTag {
                    tag: tag.as_str().to_string(),
                    current,
                    rule: rule.clone(),
                }));
            }
        }
    }
    let now = now();
    // Admitted wins over pending: re-pushing an admitted manifest never demotes it. A
    // pending manifest pushed again is pending from then on (its expiry starts again).
    sqlx::query(
        "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size, content, subject, annotations, created_at, state, pending_since, pushed_by, refs_recorded, touched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $9)
         ON CONFLICT (repository_id, digest) DO UPDATE SET
            touched_at = excluded.touched_at,
            state = CASE WHEN excluded.state = 'admitted' THEN 'admitted' ELSE manifests.state END,
            pending_since = CASE WHEN excluded.state = 'admitted' OR manifests.state = 'admitted'
                                 THEN NULL ELSE excluded.pending_since END",
    )
    .bind(repo_id)
    .bind(&digest)
    .bind(w.media_type)
    .bind(w.artifact_type.as_deref())
    .bind(w.content.len() as i64)
    .bind(&w.content[..])
    .bind(w.subject.as_ref().map(|s| s.to_string()))
    .bind(w.annotations.as_deref())
    .bind(now)
    .bind(if w.pending { "pending" } else { "admitted" })
    .bind(w.pending.then_some(now))
    .bind(w.pushed_by.as_deref())
    .execute(&mut *tx)
    .await?;
    record_refs(tx, repo_id, &digest, &w.blobs, &w.children).await?;
    if !w.tags.is_empty() {
        let names: Vec<&str> = w.tags.iter().map(|t| t.as_str()).collect();
        let names = serde_json::to_string(&names).expect("strings serialise");
        // All tags in one statement (`WHERE true` lets SQLite parse the upsert). A tag
        // published or waiting again replaces what waited under its name: the latest
        // push of a tag is the one that counts.
        if w.wait_tags {
            sqlx::query(
                dialect(Backend::of(tx), "INSERT INTO waiting_tags (repository_id, name, digest, since, pushed_by)
                 SELECT $1, value, $3, $4, $5 FROM json_each($2) WHERE true
                 ON CONFLICT (repository_id, name) DO UPDATE SET
                    digest = excluded.digest, since = excluded.since, pushed_by = excluded.pushed_by"),
            )
            .bind(repo_id)
            .bind(&names)
            .bind(&digest)
            .bind(now)
            .bind(w.pushed_by.as_deref())
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                dialect(Backend::of(tx), "INSERT INTO tags (repository_id, name, digest, updated_at, state)
                 SELECT $1, value, $3, $4, 'published' FROM json_each($2) WHERE true
                 ON CONFLICT (repository_id, name) DO UPDATE SET
                    digest = excluded.digest, updated_at = excluded.updated_at, state = 'published'"),
            )
            .bind(repo_id)
            .bind(&names)
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(dialect(
                Backend::of(tx),
                "DELETE FROM waiting_tags
                 WHERE repository_id = $1 AND name IN (SELECT value FROM json_each($2))",
            ))
            .bind(repo_id)
            .bind(&names)
            .execute(&mut *tx)
            .await?;
        }
    }
    for sig in &w.signatures {
        write_signature(tx, repo_id, sig).await?;
    }
    Ok(Ok(()))
}

/// Records what manifest `digest` references (its blobs, an index's children), once.
pub(crate) async fn record_refs(
    tx: &mut sqlx::AnyConnection,
    repo_id: i64,
    digest: &str,
    blobs: &[Digest],
    children: &[Digest],
) -> std::result::Result<(), sqlx::Error> {
    for (kind, targets) in [("blob", blobs), ("manifest", children)] {
        if targets.is_empty() {
            continue;
        }
        let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        sqlx::query(dialect(
            Backend::of(tx),
            "INSERT INTO manifest_refs (repository_id, manifest, kind, target)
             SELECT $1, $2, $3, value FROM json_each($4) WHERE true
             ON CONFLICT DO NOTHING",
        ))
        .bind(repo_id)
        .bind(digest)
        .bind(kind)
        .bind(serde_json::to_string(&list).expect("strings serialise"))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Inserts or replaces a signature record.
async fn write_signature(
    tx: &mut sqlx::AnyConnection,
    repo_id: i64,
    sig: &SignatureRecord,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signatures (repository_id, digest, subject, format, signer, thumbprints,
                                 algorithm, signing_time, checks, accepted, policy, verified_at,
                                 verdict, trust_version, subject_media_type, subject_size, layer)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (repository_id, digest, layer) DO UPDATE SET
            signer = excluded.signer, thumbprints = excluded.thumbprints,
            algorithm = excluded.algorithm, signing_time = excluded.signing_time,
            checks = excluded.checks, accepted = excluded.accepted,
            policy = excluded.policy, verified_at = excluded.verified_at,
            verdict = excluded.verdict, trust_version = excluded.trust_version,
            subject_media_type = excluded.subject_media_type, subject_size = excluded.subject_size",
    )
    .bind(repo_id)
    .bind(&sig.digest)
    .bind(&sig.subject)
    .bind(&sig.format)
    .bind(&sig.signer)
    .bind(serde_json::to_string(&sig.thumbprints).expect("json"))
    .bind(&sig.algorithm)
    .bind(&sig.signing_time)
    .bind(sig.checks.to_string())
    .bind(i64::from(sig.accepted))
    .bind(&sig.policy)
    .bind(&sig.verified_at)
    .bind(&sig.verdict)
    .bind(sig.trust_version)
    .bind(&sig.subject_media_type)
    .bind(sig.subject_size.map(|n| n as i64))
    .bind(i64::from(sig.layer))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn trust_version(r: sqlx::any::AnyRow) -> TrustVersion {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let stores: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(r.get::<&str, _>(2)).unwrap_or_default();
    TrustVersion {
        version: r.get(0),
        policy: r.get(1),
        stores: stores
            .into_iter()
            .map(|(k, v)| (k, v.iter().filter_map(|c| b64.decode(c).ok()).collect()))
            .collect(),
        reason: r.get(3),
        created_at: r.get(4),
    }
}

/// A referrers row: digest, media type, artifact type, size, annotations.
/// A [`StoredVerdict`] from the row's columns `first..first + 6`: digest, verdict,
/// trust_version, policy, subject_media_type, subject_size.
fn stored_verdict(r: &sqlx::any::AnyRow, first: usize) -> StoredVerdict {
    StoredVerdict {
        digest: r.get(first),
        verdict: r.get(first + 1),
        trust_version: r.get(first + 2),
        policy: r.get(first + 3),
        subject_media_type: r.get(first + 4),
        subject_size: r.get::<Option<i64>, _>(first + 5).map(|n| n as u64),
        layer: r.get::<i64, _>(first + 6).max(0) as u32,
    }
}

fn referrer(r: sqlx::any::AnyRow) -> Referrer {
    Referrer {
        digest: r.get(0),
        media_type: r.get(1),
        artifact_type: r.get(2),
        size: r.get(3),
        annotations: r.get(4),
    }
}

fn stored_manifest(r: sqlx::any::AnyRow) -> StoredManifest {
    StoredManifest {
        digest: r.get(0),
        media_type: r.get(1),
        content: r.get(2),
    }
}

async fn ensure_repository(tx: &mut sqlx::AnyConnection, repo: &RepositoryName) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
    )
    .bind(repo.as_str())
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    Ok(row.get(0))
}

async fn repository_id(tx: &mut sqlx::AnyConnection, repo: &RepositoryName) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
        .bind(repo.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_its_own_spelling_of_what_sqlite_spells_differently() {
        let sql = "SELECT r.name FROM repositories r CROSS JOIN tags t ON t.repository_id = r.id
             WHERE t.name GLOB 'sha256-*.sig' AND t.digest IN (SELECT value FROM json_each($2))
             AND r.name IN (SELECT value FROM json_each($10))";
        assert_eq!(dialect(Backend::Sqlite, sql), sql);
        let pg = dialect(Backend::Postgres, sql);
        assert_eq!(
            pg,
            "SELECT r.name FROM repositories r JOIN tags t ON t.repository_id = r.id
             WHERE t.name LIKE 'sha256-%.sig' AND t.digest IN (SELECT value FROM json_array_elements_text($2::json))
             AND r.name IN (SELECT value FROM json_array_elements_text($10::json))"
        );
        // Rewritten once: the same text comes back for the same statement.
        assert!(std::ptr::eq(pg, dialect(Backend::Postgres, sql)));
    }

    #[test]
    fn database_urls_lose_their_password_in_messages() {
        assert_eq!(
            redact_url("postgres://bonded:s3cret@db.internal:5432/registry"),
            "postgres://bonded:***@db.internal:5432/registry"
        );
        assert_eq!(
            redact_url("postgres://db.internal/registry"),
            "postgres://db.internal/registry"
        );
        // An '@' in the password: everything before the last '@' is user information.
        assert_eq!(
            redact_url("postgresql://u:p@ss@h/d"),
            "postgresql://u:***@h/d"
        );
    }

    async fn tagged(db: &Metadata, repo: &str, tag: &str, n: u8) {
        let content = format!("{{\"n\":{n},\"repo\":\"{repo}\"}}").into_bytes();
        db.put_manifest(ManifestWrite {
            repository: repo.parse().unwrap(),
            digest: Digest::of(crate::oci::Algorithm::Sha256, &content),
            media_type: crate::oci::media_type::OCI_MANIFEST,
            artifact_type: None,
            subject: None,
            annotations: None,
            content,
            blobs: Vec::new(),
            children: Vec::new(),
            tags: vec![tag.parse().unwrap()],
            signatures: Vec::new(),
            pending: false,
            wait_tags: false,
            pushed_by: None,
            signature_limit: None,
            audit: Vec::new(),
            immutable: Vec::new(),
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn published_tags_page_through_repositories_in_name_order_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Metadata::open_sqlite(&dir.path().join("bonded.db"))
            .await
            .unwrap();
        // Made out of name order, so neither ids nor insertion order give the answer.
        let mut expected = Vec::new();
        for (i, repo) in ["zeta/app", "alpha/app", "mid/app"].iter().enumerate() {
            for (j, tag) in ["v3", "v1", "v2", "latest"].iter().enumerate() {
                tagged(&db, repo, tag, (i * 4 + j) as u8).await;
                expected.push((repo.to_string(), tag.to_string()));
            }
        }
        expected.sort();
        for page in [1u32, 3, 4, 5, 100] {
            let mut seen = Vec::new();
            let mut after: Option<(String, String)> = None;
            loop {
                let got = db
                    .published_tags(after.as_ref().map(|(r, t)| (r.as_str(), t.as_str())), page)
                    .await
                    .unwrap();
                assert!(got.len() <= page as usize);
                let Some(last) = got.last() else { break };
                after = Some((last.repository.clone(), last.tag.clone()));
                seen.extend(got.into_iter().map(|t| (t.repository, t.tag)));
            }
            assert_eq!(seen, expected, "pages of {page}");
        }
        db.close().await;
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// A database written before waiting tags and per-layer signature records (tags
    /// quarantined in `tags`, which hid the published manifest; one record per signature
    /// manifest) opens with those tags waiting and every record kept, as layer 0.
    #[tokio::test]
    async fn databases_of_earlier_versions_migrate_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        {
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap();
            let mut old = migrator();
            old.migrations = std::borrow::Cow::Owned(old.migrations[..3].to_vec());
            old.run(&pool).await.unwrap();
            for sql in [
                "INSERT INTO repositories (id, name, created_at) VALUES (1, 'prod/app', 0)",
                "INSERT INTO manifests (repository_id, digest, media_type, size, content, created_at, state, pending_since)
                 VALUES (1, 'sha256:aa', 'application/vnd.oci.image.manifest.v1+json', 2, x'7b7d', 0, 'pending', 5)",
                "INSERT INTO manifests (repository_id, digest, media_type, size, content, created_at, state)
                 VALUES (1, 'sha256:bb', 'application/vnd.oci.image.manifest.v1+json', 2, x'7b7d', 0, 'admitted')",
                "INSERT INTO tags (repository_id, name, digest, updated_at, state) VALUES (1, 'v1', 'sha256:aa', 7, 'quarantined')",
                "INSERT INTO tags (repository_id, name, digest, updated_at, state) VALUES (1, 'v0', 'sha256:bb', 3, 'published')",
                "INSERT INTO signatures (repository_id, digest, subject, format, signer, thumbprints, checks, accepted, policy, verified_at)
                 VALUES (1, 'sha256:cc', 'sha256:bb', 'notary.jws', 'CN=x', '[]', '{}', 1, 'p', '2026-01-01T00:00:00Z')",
            ] {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let db = Metadata::open_sqlite(&path).await.unwrap();
        let repo: RepositoryName = "prod/app".parse().unwrap();
        let waiting = db.waiting_tags(&repo, 10).await.unwrap();
        assert_eq!(
            waiting,
            vec![WaitingTag {
                tag: "v1".into(),
                digest: "sha256:aa".into(),
                since: 7,
                pushed_by: None
            }]
        );
        let tags = db.tags(&repo, Some(10), None).await.unwrap();
        assert_eq!(tags, vec!["v0".to_string()]);
        // signature records keep everything, as layer 0 of their manifest
        let row: (String, i64, String) = sqlx::query_as(
            "SELECT digest, layer, signer FROM signatures WHERE subject = 'sha256:bb'",
        )
        .fetch_one(&db.read)
        .await
        .unwrap();
        assert_eq!(row, ("sha256:cc".to_string(), 0, "CN=x".to_string()));
    }
}
