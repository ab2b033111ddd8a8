//! The audit trail's storage: appending hash-chained records inside the caller's
//! transaction, querying them, and checking the chain.

use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Declares [`AuditAction`] from one list of (variant, stored name), so the enum, the
/// list of every action and the names cannot disagree.
macro_rules! audit_actions {
    ($($variant:ident => $name:literal,)+) => {
        /// What an audit record is about. Stored and answered as its name (`blob.push`, ...).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)+
        }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)+
                }
            }
        }
    };
}

audit_actions! {
    BlobPush => "blob.push",
    BlobDelete => "blob.delete",
    ManifestPush => "manifest.push",
    ManifestPull => "manifest.pull",
    ManifestDelete => "manifest.delete",
    ManifestAdmit => "manifest.admit",
    ManifestExpire => "manifest.expire",
    TagPush => "tag.push",
    TagDelete => "tag.delete",
    TagPublish => "tag.publish",
    TagWait => "tag.wait",
    TagExpire => "tag.expire",
    SignatureAdmit => "signature.admit",
    SignatureRefuse => "signature.refuse",
    AdmissionDeny => "admission.deny",
    AccessDeny => "access.deny",
    TrustChange => "trust.change",
    Login => "login",
    UserAdd => "user.add",
    UserRemove => "user.remove",
    UserPasswd => "user.passwd",
    TokenCreate => "token.create",
    TokenRevoke => "token.revoke",
    RoleGrant => "role.grant",
    RoleRevoke => "role.revoke",
    NamespacePublic => "namespace.public",
    NamespacePrivate => "namespace.private",
    QuotaSet => "quota.set",
    QuotaRemove => "quota.remove",
    AuditArchive => "audit.archive",
    GcRun => "gc.run",
    ScrubRun => "scrub.run",
    ImmutableAdd => "immutable.add",
    ImmutableRemove => "immutable.remove",
    RetentionSet => "retention.set",
    RetentionRemove => "retention.remove",
    RetentionRun => "retention.run",
}

impl AuditAction {
    /// Every action's name, in order, for messages.
    pub fn names() -> Vec<&'static str> {
        AuditAction::ALL.iter().map(|a| a.as_str()).collect()
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        AuditAction::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not an audit action; the actions are {}",
                    AuditAction::names().join(", ")
                )
            })
    }
}

/// Whether what a record is about happened or was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
        }
    }
}

/// One audited event, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// RFC 3339 in UTC with milliseconds, `2026-11-27T16:53:05.123Z` (records written
    /// before that format was fixed carry the clock's full fraction; time filters compare
    /// by the second, which reads both alike).
    pub at: String,
    /// Who: an account name, `anonymous`, `local:<OS user>` for account commands, or
    /// `bonded` for the server's own actions.
    pub actor: String,
    /// The client's address.
    pub source: Option<String>,
    /// An [`AuditAction`]'s name (kept as text, as records store and answer it).
    pub action: String,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub tag: Option<String>,
    /// `ok` or `denied`.
    pub outcome: String,
    pub reason: Option<String>,
}

impl AuditEvent {
    /// An event happening now, about no repository yet (set `repository`, `digest`, `tag`
    /// on the result when it is about one).
    pub fn now(
        actor: &str,
        source: Option<String>,
        action: AuditAction,
        outcome: Outcome,
        reason: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            at: format_at(OffsetDateTime::now_utc()),
            actor: actor.to_string(),
            source,
            action: action.as_str().to_string(),
            repository: None,
            digest: None,
            tag: None,
            outcome: outcome.as_str().to_string(),
            reason,
        }
    }
}

/// `at` as records carry it: UTC, milliseconds, fixed width (so text order is time order).
pub fn format_at(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// A Unix time (as accounts and tokens store them) the way [`format_at`] writes times.
pub fn format_unix(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(format_at)
        .unwrap_or_else(|_| unix.to_string())
}

/// A time bound given by a person or a client: RFC 3339 with any offset
/// (`2026-11-27T09:00:00+01:00`), or a date, meaning its midnight UTC (`2026-11-27`).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    time::Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!(
                "'{s}' is not a time: write RFC 3339 (2026-11-27T09:00:00Z) or a date (2026-11-27)"
            )
        })
}

/// The text every `at` within the second of `t` starts with, and every later one sorts
/// after: `2026-11-27T16:53:05`.
fn second_prefix(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    #[serde(rename = "prevHash")]
    pub prev_hash: String,
    pub hash: String,
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a record: SHA-256 over the previous hash and the record's fields, as a
/// JSON array (unambiguous, and easy to recompute with any tool).
pub fn chain_hash(seq: i64, prev_hash: &str, e: &AuditEvent) -> String {
    // A tuple serialises as the same compact JSON array as `json!([...])` would, without
    // copying every field into a `Value` first.
    let fields = (
        seq,
        prev_hash,
        &e.at,
        &e.actor,
        &e.source,
        &e.action,
        &e.repository,
        &e.digest,
        &e.tag,
        &e.outcome,
        &e.reason,
    );
    let bytes = serde_json::to_vec(&fields).expect("strings and numbers serialise");
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
}

/// Appends events after the last record, inside the caller's transaction (so they commit
/// with the action they describe, or not at all): one lookup of the chain's tail and one
/// multi-row INSERT per 2048 records.
pub async fn append(
    tx: &mut sqlx::AnyConnection,
    events: &[AuditEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    // The tail is read inside the write transaction every time rather than remembered:
    // `bonded user|token|role` append from another process to the same database.
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (mut seq, mut prev) = match last {
        Some(r) => (r.get::<i64, _>(0), r.get::<String, _>(1)),
        None => (0, GENESIS.to_string()),
    };
    let backend = super::Backend::of(tx);
    // Multi-row INSERTs with bound values: one statement per ROWS_PER_INSERT records
    // (SQLite allows 32766 variables), no per-row round trip and no JSON to unpack.
    const ROWS_PER_INSERT: usize = 2048;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO audit_log (seq, at, actor, source, action, repository, digest, tag, outcome, reason, prev_hash, hash) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(" } else { ",(" });
            for j in 1..=12 {
                let sep = if j == 1 { "" } else { "," };
                match backend {
                    // SQLite looks each named parameter up among those before it: $n names
                    // made a 2,048-row statement take a second to prepare. `?` has no name.
                    super::Backend::Sqlite => sql.push_str(&format!("{sep}?")),
                    super::Backend::Postgres => sql.push_str(&format!("{sep}${}", i * 12 + j)),
                }
            }
            sql.push(')');
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            seq += 1;
            let hash = chain_hash(seq, &prev, e);
            q = q
                .bind(seq)
                .bind(&e.at)
                .bind(&e.actor)
                .bind(&e.source)
                .bind(&e.action)
                .bind(&e.repository)
                .bind(&e.digest)
                .bind(&e.tag)
                .bind(&e.outcome)
                .bind(&e.reason)
                .bind(std::mem::replace(&mut prev, hash.clone()))
                .bind(hash);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

fn record(r: sqlx::any::AnyRow) -> AuditRecord {
    AuditRecord {
        seq: r.get(0),
        event: AuditEvent {
            at: r.get(1),
            actor: r.get(2),
            source: r.get(3),
            action: r.get(4),
            repository: r.get(5),
            digest: r.get(6),
            tag: r.get(7),
            outcome: r.get(8),
            reason: r.get(9),
        },
        prev_hash: r.get(10),
        hash: r.get(11),
    }
}

/// Filters for [`query`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// Bounds on `at`, both inclusive, to the second: `since` counts from the start of its
    /// second, `until` to the end of its.
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Cursor: records after this sequence number.
    pub after: Option<i64>,
    pub limit: u32,
}

const COLUMNS: &str =
    "seq, at, actor, source, action, repository, digest, tag, outcome, reason, prev_hash, hash";

/// The statement [`query`] runs for `f` on `backend`, and the values of its filters, in
/// order: bound after the cursor (`seq > $1`, first) and before the limit (last).
fn query_sql(f: &AuditFilter, backend: super::Backend) -> (String, Vec<String>) {
    // Only the filters given are in the statement, so the database can use the index for
    // the one that narrows most (`col = $n ... ORDER BY seq` walks an index on
    // `(col, seq)`); `$1 IS NULL OR col = $1` forms made every filter but the digest scan
    // the table.
    let mut filters: Vec<(&str, String)> = Vec::new();
    for (column, value) in [
        ("repository =", &f.repository),
        ("digest =", &f.digest),
        ("actor =", &f.actor),
        ("action =", &f.action),
        ("outcome =", &f.outcome),
    ] {
        if let Some(v) = value {
            filters.push((column, v.clone()));
        }
    }
    // `at` is compared as text: with the second's prefix, records of any fraction format
    // within the bound's second fall inside it.
    if let Some(since) = f.since {
        filters.push(("at >=", second_prefix(since)));
    }
    if let Some(until) = f.until {
        filters.push(("at <", second_prefix(until + time::Duration::SECOND)));
    }
    let mut conditions = vec!["seq > $1".to_string()];
    for (i, (condition, _)) in filters.iter().enumerate() {
        conditions.push(format!("{condition} ${}", i + 2));
    }
    // SQLite: the index, chosen here rather than by SQLite's guess (it has no statistics,
    // and with several filters took the action index over the digest one, 14 ms against
    // 0.01): the most selective filter given wins. PostgreSQL's planner has statistics.
    let index = match backend {
        super::Backend::Postgres => "",
        super::Backend::Sqlite if f.digest.is_some() => "INDEXED BY audit_by_digest",
        super::Backend::Sqlite if f.repository.is_some() => "INDEXED BY audit_by_repository",
        super::Backend::Sqlite if f.actor.is_some() => "INDEXED BY audit_by_actor",
        super::Backend::Sqlite if f.outcome.is_some() => "INDEXED BY audit_by_outcome",
        super::Backend::Sqlite if f.action.is_some() => "INDEXED BY audit_by_action",
        super::Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log {index} WHERE {} ORDER BY seq LIMIT ${}",
        conditions.join(" AND "),
        filters.len() + 2
    );
    (sql, filters.into_iter().map(|(_, v)| v).collect())
}

pub async fn query(
    pool: &sqlx::AnyPool,
    backend: super::Backend,
    f: &AuditFilter,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let (sql, values) = query_sql(f, backend);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(f.after.unwrap_or(0));
    for v in values {
        q = q.bind(v);
    }
    let rows = q.bind(i64::from(f.limit.max(1))).fetch_all(pool).await?;
    Ok(rows.into_iter().map(record).collect())
}

/// The newest record of an intact chain: keep it somewhere the server cannot write (a log
/// shipper, a SIEM, a ticket) and pass it back to `verify_chain` to detect truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for ChainHead {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not SEQ:HASH (as `bonded audit verify` prints it)");
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if seq < 1 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(ChainHead {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// Walks the whole chain. `Ok(head)`: intact (head is `None` for an empty trail).
/// `Err(reason)`: the first break. With an `anchor` (a head printed earlier), the chain must
/// still hold that record with that hash: removing the newest records, which the chain alone
/// cannot reveal, is reported.
///
/// Memory stays bounded whatever the trail's length: records are read
/// [`VERIFY_PAGE`] at a time by sequence number (each page its own short query, so a long
/// verification holds no read transaction open while the server appends).
pub async fn verify_chain(
    pool: &sqlx::AnyPool,
    anchor: Option<&ChainHead>,
) -> Result<Result<Option<ChainHead>, String>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    // After an archive, the live chain continues from its checkpoint.
    let start = checkpoint(pool).await?;
    let mut prev = start
        .as_ref()
        .map_or_else(|| GENESIS.to_string(), |c| c.hash.clone());
    let mut expected_seq = start.as_ref().map_or(1, |c| c.seq + 1);
    let mut after = start.as_ref().map_or(0, |c| c.seq);
    if let Some(a) = anchor.filter(|a| start.as_ref().is_some_and(|c| a.seq <= c.seq)) {
        let c = start.as_ref().expect("checked");
        if a.seq == c.seq && a.hash != c.hash {
            return Ok(Err(format!(
                "record {} is not the one anchored ({}): the trail was rewritten up to it",
                a.seq, a.hash
            )));
        }
        // An anchor inside the archived part is checked against the archive file.
    }
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(pool)
            .await?;
        let Some(last) = rows.last() else { break };
        after = sqlx::Row::get::<i64, _>(last, "seq");
        let full = rows.len() as i64 == VERIFY_PAGE;
        if let Err(e) = verify_page(
            rows.into_iter().map(record),
            &mut prev,
            &mut expected_seq,
            anchor,
        ) {
            return Ok(Err(e));
        }
        if !full {
            break;
        }
    }
    let records = expected_seq - 1;
    if let Some(a) = anchor.filter(|a| a.seq > records) {
        return Ok(Err(format!(
            "the trail ends at record {records} but the anchor names record {}: \
             the newest records were removed",
            a.seq
        )));
    }
    Ok(Ok((records > 0).then_some(ChainHead {
        seq: records,
        hash: prev,
    })))
}

/// Where the live chain starts after an archive: the last archived record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub archived_at: String,
    pub file: String,
}

/// The checkpoint the live chain starts from (the latest archive's), if any.
pub async fn checkpoint(pool: &sqlx::AnyPool) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT seq, hash, archived_at, file FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Checkpoint {
        seq: r.get(0),
        hash: r.get(1),
        archived_at: r.get(2),
        file: r.get(3),
    }))
}

/// What an archive run moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub first: i64,
    pub last: ChainHead,
}

/// The first line of an archive file: where its records continue the chain from.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchiveHeader {
    bonded_audit_archive: u32,
    first_seq: i64,
    prev_hash: String,
}

/// Moves the oldest records, every one before the first record made at or after
/// `before` (so a prefix of the chain: records are not always in time order), to `out` as
/// JSON lines after a header line. The records are verified as they are copied, from the
/// genesis or the last checkpoint; `out` is flushed before anything is removed; then, in
/// one write transaction that first checks the last copied record is still there and
/// unchanged, they are deleted, a checkpoint names the last one (the live chain's new
/// start), and the archive is recorded in the live chain (`audit.archive`). The copy reads
/// outside the write lock, a page at a time, so the server keeps writing meanwhile.
/// `Ok(None)`: nothing to archive.
pub async fn archive(
    write: &sqlx::AnyPool,
    read: &sqlx::AnyPool,
    before: OffsetDateTime,
    actor: &str,
    file: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Result<Option<Archived>, String>, sqlx::Error> {
    let start = checkpoint(read).await?;
    let from = start.as_ref().map_or(0, |c| c.seq);
    let bound = second_prefix(before);
    let first_kept: Option<i64> =
        sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE seq > $1 AND at >= $2")
            .bind(from)
            .bind(&bound)
            .fetch_one(read)
            .await?;
    let last_to_move = match first_kept {
        Some(k) => k - 1,
        None => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM audit_log")
            .fetch_one(read)
            .await?
            .unwrap_or(0),
    };
    if last_to_move <= from {
        return Ok(Ok(None));
    }
    let mut prev = start
        .as_ref()
        .map_or_else(|| GENESIS.to_string(), |c| c.hash.clone());
    let header = ArchiveHeader {
        bonded_audit_archive: 1,
        first_seq: from + 1,
        prev_hash: prev.clone(),
    };
    let io = |e: std::io::Error| Ok(Err(format!("writing the archive failed: {e}")));
    if let Err(e) = writeln!(
        out,
        "{}",
        serde_json::to_string(&header).expect("serialises")
    ) {
        return io(e);
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    );
    let mut expected = from + 1;
    let mut after = from;
    while after < last_to_move {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(after)
            .bind(last_to_move)
            .bind(VERIFY_PAGE)
            .fetch_all(read)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get::<i64, _>("seq");
        let records: Vec<AuditRecord> = rows.into_iter().map(record).collect();
        if let Err(e) = verify_page(records.iter().cloned(), &mut prev, &mut expected, None) {
            return Ok(Err(format!("the trail is broken, nothing archived: {e}")));
        }
        for r in &records {
            if let Err(e) = writeln!(out, "{}", serde_json::to_string(r).expect("serialises")) {
                return io(e);
            }
        }
    }
    if expected - 1 != last_to_move {
        return Ok(Err(format!(
            "the trail is broken, nothing archived: it ends at record {} before {last_to_move}",
            expected - 1
        )));
    }
    if let Err(e) = out.flush() {
        return io(e);
    }
    let mut tx = super::begin_write(write).await?;
    let still: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(last_to_move)
        .fetch_optional(&mut *tx)
        .await?;
    if still.as_deref() != Some(prev.as_str()) {
        return Ok(Err(format!(
            "record {last_to_move} changed while it was copied; nothing archived"
        )));
    }
    sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
        .bind(last_to_move)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, archived_at, file) VALUES ($1, $2, $3, $4)",
    )
    .bind(last_to_move)
    .bind(&prev)
    .bind(format_at(OffsetDateTime::now_utc()))
    .bind(file)
    .execute(&mut *tx)
    .await?;
    let note = AuditEvent::now(
        actor,
        None,
        AuditAction::AuditArchive,
        Outcome::Ok,
        Some(format!(
            "records {}..{last_to_move} (made before {bound}) moved to {file}; the chain continues from {last_to_move}:{prev}",
            from + 1
        )),
    );
    append(&mut tx, &[note]).await?;
    tx.commit().await?;
    Ok(Ok(Some(Archived {
        first: from + 1,
        last: ChainHead {
            seq: last_to_move,
            hash: prev,
        },
    })))
}

/// Checks an archive file (as [`archive`] writes it) on its own: its header, each record's
/// hash and link, no gap. Returns (first seq, the hash its chain starts from, its last
/// record as a head). Reads line by line, in bounded memory.
pub fn verify_archive(
    input: impl std::io::BufRead,
    anchor: Option<&ChainHead>,
) -> Result<(i64, String, ChainHead), String> {
    let mut lines = input.lines();
    let header: ArchiveHeader = match lines.next() {
        Some(Ok(l)) => {
            serde_json::from_str(&l).map_err(|e| format!("not an audit archive: {e}"))?
        }
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("the archive is empty".into()),
    };
    if header.bonded_audit_archive != 1 {
        return Err(format!(
            "archive format {} is not known",
            header.bonded_audit_archive
        ));
    }
    let mut prev = header.prev_hash.clone();
    let mut expected = header.first_seq;
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let r: AuditRecord = serde_json::from_str(&line)
            .map_err(|e| format!("line {} is not a record: {e}", i + 2))?;
        verify_page(std::iter::once(r), &mut prev, &mut expected, anchor)?;
    }
    if expected == header.first_seq {
        return Err("the archive holds no records".into());
    }
    Ok((
        header.first_seq,
        header.prev_hash,
        ChainHead {
            seq: expected - 1,
            hash: prev,
        },
    ))
}

/// Records read per query by [`verify_chain`] (about 2 KB each in memory).
pub const VERIFY_PAGE: i64 = 2_000;

/// Checks one page of consecutive records against the chain so far (`prev`, the hash of
/// the record before; `expected_seq`, its successor's number), advancing both.
fn verify_page(
    rows: impl Iterator<Item = AuditRecord>,
    prev: &mut String,
    expected_seq: &mut i64,
    anchor: Option<&ChainHead>,
) -> Result<(), String> {
    for r in rows {
        if r.seq != *expected_seq {
            return Err(format!(
                "record {expected_seq} is missing: the trail jumps from {} to {}",
                *expected_seq - 1,
                r.seq
            ));
        }
        if r.prev_hash != *prev {
            return Err(format!(
                "record {} does not follow record {}: a record was removed or inserted before it",
                r.seq,
                r.seq - 1
            ));
        }
        if chain_hash(r.seq, &r.prev_hash, &r.event) != r.hash {
            return Err(format!("record {} was changed after it was written", r.seq));
        }
        if let Some(a) = anchor.filter(|a| a.seq == r.seq) {
            if a.hash != r.hash {
                return Err(format!(
                    "record {} is not the one anchored ({}): the trail was rewritten up to it",
                    r.seq, a.hash
                ));
            }
        }
        *prev = r.hash;
        *expected_seq += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_read_back_by_name_and_unknown_ones_are_refused() {
        for &a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(a));
        }
        let mut names = AuditAction::names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len(), "names are distinct");
        let e = "signature.admitt".parse::<AuditAction>().unwrap_err();
        assert!(
            e.contains("not an audit action") && e.contains("signature.admit"),
            "{e}"
        );
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let e = AuditEvent {
            at: "2026-11-27T12:00:00.000Z".into(),
            actor: "anonymous".into(),
            source: Some("127.0.0.1".into()),
            action: "manifest.push".into(),
            repository: Some("r".into()),
            digest: Some("sha256:x".into()),
            tag: Some("v1".into()),
            outcome: "ok".into(),
            reason: None,
        };
        let h = chain_hash(1, GENESIS, &e);
        // what any tool recomputes: SHA-256 of the compact JSON array of the fields
        let text = format!(
            r#"[1,"{GENESIS}","2026-11-27T12:00:00.000Z","anonymous","127.0.0.1","manifest.push","r","sha256:x","v1","ok",null]"#
        );
        assert_eq!(
            h,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
        );
        assert_ne!(h, chain_hash(2, GENESIS, &e));
        assert_ne!(h, chain_hash(1, &"1".repeat(64), &e));
        let mut changed = e.clone();
        changed.tag = Some("v2".into());
        assert_ne!(h, chain_hash(1, GENESIS, &changed));
    }

    #[test]
    fn times_are_fixed_width_utc_and_bounds_accept_offsets_and_dates() {
        let t = parse_time("2026-11-27T17:53:05.5+01:00").unwrap();
        assert_eq!(format_at(t), "2026-11-27T16:53:05.500Z");
        assert_eq!(second_prefix(t), "2026-11-27T16:53:05");
        assert_eq!(
            format_at(parse_time("2026-11-27").unwrap()),
            "2026-11-27T00:00:00.000Z"
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-27 12:00",
            "2026-13-01",
            "1764262385",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
        // every fraction format inside a second sorts between its prefix and the next one's
        let (lo, hi) = ("2026-11-27T16:53:05", "2026-11-27T16:53:06");
        for at in [
            "2026-11-27T16:53:05Z",
            "2026-11-27T16:53:05.000Z",
            "2026-11-27T16:53:05.999999999Z",
        ] {
            assert!(lo <= at && at < hi, "{at}");
        }
    }

    #[test]
    fn an_anchor_is_seq_colon_sha256_hex() {
        let h = "ab".repeat(32);
        let a: ChainHead = format!("7:{}", h.to_uppercase()).parse().unwrap();
        assert_eq!(
            a,
            ChainHead {
                seq: 7,
                hash: h.clone()
            }
        );
        assert_eq!(a.to_string().parse::<ChainHead>().unwrap(), a);
        for bad in [
            "",
            "7",
            &h,
            &format!("0:{h}"),
            &format!("x:{h}"),
            "7:abc",
            &format!("7:{}", "g".repeat(64)),
        ] {
            assert!(bad.parse::<ChainHead>().is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod paged_tests {
    //! The chain walked a page at a time: breaks are found on either side of a page
    //! boundary and in a later page, as in one long walk.
    use super::*;
    use crate::db::Metadata;

    async fn trail(n: usize) -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let db = Metadata::open_sqlite(&dir.path().join("meta.db"))
            .await
            .unwrap();
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                AuditEvent::now(
                    "tester",
                    None,
                    AuditAction::UserAdd,
                    Outcome::Ok,
                    Some(format!("event {i}")),
                )
            })
            .collect();
        db.audit(&events).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn a_trail_longer_than_a_page_verifies_and_each_break_is_found() {
        let n = 2 * VERIFY_PAGE as usize + 500;
        let (_dir, db) = trail(n).await;
        let head = db.audit_verify(None).await.unwrap().unwrap().unwrap();
        assert_eq!(head.seq, n as i64);
        // The anchor is checked in a later page, and past the end.
        assert!(db.audit_verify(Some(&head)).await.unwrap().is_ok());
        let beyond = ChainHead {
            seq: n as i64 + 1,
            hash: head.hash.clone(),
        };
        let e = db.audit_verify(Some(&beyond)).await.unwrap().unwrap_err();
        assert!(e.contains("newest records were removed"), "{e}");

        // A record changed in the third page.
        let changed = 2 * VERIFY_PAGE + 7;
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?")
            .bind(changed)
            .execute(&db.write)
            .await
            .unwrap();
        let e = db.audit_verify(None).await.unwrap().unwrap_err();
        assert_eq!(
            e,
            format!("record {changed} was changed after it was written")
        );
        // The last record of the first page removed: found across the boundary.
        sqlx::query("DELETE FROM audit_log WHERE seq = ?")
            .bind(VERIFY_PAGE)
            .execute(&db.write)
            .await
            .unwrap();
        let e = db.audit_verify(None).await.unwrap().unwrap_err();
        assert!(
            e.starts_with(&format!("record {VERIFY_PAGE} is missing")),
            "{e}"
        );
    }
}

#[cfg(test)]
mod plan_tests {
    //! Each documented question is answered by walking an index, never by scanning the
    //! trail: SQLite's own query plan says so.
    use super::*;

    #[tokio::test]
    async fn every_filter_searches_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Metadata::open_sqlite(&dir.path().join("meta.db"))
            .await
            .unwrap();
        let some = |v: &str| Some(v.to_string());
        let today = Some(OffsetDateTime::now_utc());
        let cases = [
            (
                "who signed",
                AuditFilter {
                    digest: some("sha256:ab"),
                    action: some("signature.admit"),
                    ..Default::default()
                },
            ),
            (
                "what alice pushed",
                AuditFilter {
                    actor: some("alice"),
                    action: some("manifest.push"),
                    since: today,
                    ..Default::default()
                },
            ),
            (
                "what was refused",
                AuditFilter {
                    outcome: some("denied"),
                    since: today,
                    ..Default::default()
                },
            ),
            (
                "a repository",
                AuditFilter {
                    repository: some("team/app"),
                    ..Default::default()
                },
            ),
            (
                "an action",
                AuditFilter {
                    action: some("tag.push"),
                    ..Default::default()
                },
            ),
            (
                "an account",
                AuditFilter {
                    actor: some("alice"),
                    after: Some(10),
                    ..Default::default()
                },
            ),
        ];
        for (name, f) in cases {
            let (sql, values) = query_sql(&f, crate::db::Backend::Sqlite);
            let mut q =
                sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))).bind(0i64);
            for v in values {
                q = q.bind(v);
            }
            let plan: Vec<String> = q
                .bind(100i64)
                .fetch_all(&db.read)
                .await
                .unwrap()
                .iter()
                .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
                .collect();
            let plan = plan.join("; ");
            assert!(
                plan.contains("SEARCH audit_log USING INDEX") && !plan.contains("SCAN"),
                "{name}: {plan}"
            );
        }
    }
}
