//! What deletion, garbage collection and immutable tags read and write: a repository's
//! reference graph, the removal of manifests with everything that lives as long as they
//! do, unreferenced links, and blob rows marked while their bytes are removed.

use std::collections::HashMap;

use sqlx::Row;

use super::{
    audit, dialect, now, repository_id, AuditEvent, Backend, ImmutableRule, Metadata, Result,
};
use crate::oci::{Digest, RepositoryName};

/// Most manifests one delete may remove with its referrers (a signature limit per subject
/// keeps real closures far smaller).
pub const MAX_CASCADE: usize = 10_000;

/// Manifests removed per write transaction, so pushes never wait long behind a sweep.
const BATCH: usize = 500;

/// One manifest of a repository, as garbage collection sees it.
#[derive(Debug, Clone)]
pub struct GraphManifest {
    pub digest: String,
    pub subject: Option<String>,
    pub pending: bool,
    /// Unix seconds of its latest push.
    pub touched_at: i64,
    pub size: i64,
}

/// A repository's manifests, tags and references, read at one moment.
#[derive(Debug, Default)]
pub struct Graph {
    pub repository_id: i64,
    pub repository: String,
    /// Unix seconds when it was read: what was written since is in [`Changes`].
    pub read_at: i64,
    pub manifests: Vec<GraphManifest>,
    /// (tag, digest, updated_at): published tags.
    pub tags: Vec<(String, String, i64)>,
    /// Digests tags wait for.
    pub waiting: Vec<String>,
    /// (manifest, target) for every child an index lists.
    pub children: Vec<(String, String)>,
    /// (manifest, blob) for every blob a manifest references.
    pub blob_refs: Vec<(String, String)>,
    /// (blob, linked_at) for every link of the repository.
    pub links: Vec<(String, i64)>,
}

/// What was written to a repository since its graph was read (`Graph::read_at`): the
/// only ways a manifest the mark found unreachable can have become reachable.
#[derive(Debug, Default)]
pub struct Changes {
    /// Manifests pushed (or pushed again) since.
    pub manifests: Vec<GraphManifest>,
    /// (tag, digest, updated_at) published since.
    pub tags: Vec<(String, String, i64)>,
    /// Digests tags started waiting for since.
    pub waiting: Vec<String>,
    /// (index, child) of the manifests pushed since.
    pub children: Vec<(String, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty() && self.tags.is_empty() && self.waiting.is_empty()
    }

    /// Adds what a later read found (the same write read twice is harmless).
    fn absorb(&mut self, later: Changes) {
        self.manifests.extend(later.manifests);
        self.tags.extend(later.tags);
        self.waiting.extend(later.waiting);
        self.children.extend(later.children);
    }
}

/// A [`GraphManifest`] from `digest, subject, state, touched_at, size`.
fn graph_manifest(r: sqlx::any::AnyRow) -> GraphManifest {
    GraphManifest {
        digest: r.get(0),
        subject: r.get(1),
        pending: r.get::<String, _>(2) == "pending",
        touched_at: r.get(3),
        size: r.get(4),
    }
}

async fn changes_since(
    tx: &mut sqlx::AnyConnection,
    repo_id: i64,
    since: i64,
) -> std::result::Result<Changes, sqlx::Error> {
    let manifests = sqlx::query(
        "SELECT digest, subject, state, touched_at, size FROM manifests
         WHERE repository_id = $1 AND touched_at >= $2",
    )
    .bind(repo_id)
    .bind(since)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(graph_manifest)
    .collect();
    let mut c = Changes {
        manifests,
        ..Changes::default()
    };
    c.tags = sqlx::query(
        "SELECT name, digest, updated_at FROM tags WHERE repository_id = $1 AND updated_at >= $2",
    )
    .bind(repo_id)
    .bind(since)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    c.waiting = sqlx::query_scalar(
        "SELECT digest FROM waiting_tags WHERE repository_id = $1 AND since >= $2",
    )
    .bind(repo_id)
    .bind(since)
    .fetch_all(&mut *tx)
    .await?;
    if !c.manifests.is_empty() {
        let list: Vec<&str> = c.manifests.iter().map(|m| m.digest.as_str()).collect();
        c.children = sqlx::query(dialect(
            Backend::of(tx),
            "SELECT manifest, target FROM manifest_refs WHERE repository_id = $1
             AND kind = 'manifest' AND manifest IN (SELECT value FROM json_each($2))",
        ))
        .bind(repo_id)
        .bind(json_list(&list))
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    }
    Ok(c)
}

/// What deleting one manifest by digest came to.
#[derive(Debug)]
pub enum Deleted {
    NotFound,
    /// Removed: the manifest first, then what went with it, each with its reason.
    Removed(Vec<(String, Option<String>)>),
    /// Refused, saying why; nothing was changed.
    Refused(String),
}

/// cosign's and the referrers tag schema's tags for a subject: `sha256-<hex>` and
/// `sha256-<hex>.sig|.att|.sbom`.
pub fn tag_schema_subject(tag: &str) -> Option<String> {
    let base = match tag.rsplit_once('.') {
        Some((b, "sig" | "att" | "sbom")) => b,
        _ => tag,
    };
    let (alg, hex) = base.split_once('-')?;
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return None,
    };
    (hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("{alg}:{hex}"))
}

fn tag_schema_names(digest: &str) -> Vec<String> {
    let base = digest.replacen(':', "-", 1);
    vec![
        base.clone(),
        format!("{base}.sig"),
        format!("{base}.att"),
        format!("{base}.sbom"),
    ]
}

fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    serde_json::to_string(&items.iter().map(|s| s.as_ref()).collect::<Vec<_>>())
        .expect("strings serialise")
}

/// Removes manifests of a repository with their tags, waiting tags, signature records
/// and references, inside the caller's transaction. Returns how many manifest rows went.
pub(crate) async fn remove_manifests(
    tx: &mut sqlx::AnyConnection,
    repo_id: i64,
    digests: &[String],
) -> std::result::Result<u64, sqlx::Error> {
    if digests.is_empty() {
        return Ok(0);
    }
    let list = json_list(digests);
    let backend = Backend::of(tx);
    for sql in [
        "DELETE FROM tags WHERE repository_id = $1 AND digest IN (SELECT value FROM json_each($2))",
        "DELETE FROM waiting_tags WHERE repository_id = $1 AND digest IN (SELECT value FROM json_each($2))",
        "DELETE FROM signatures WHERE repository_id = $1 AND digest IN (SELECT value FROM json_each($2))",
        "DELETE FROM manifest_refs WHERE repository_id = $1 AND manifest IN (SELECT value FROM json_each($2))",
    ] {
        sqlx::query(dialect(backend, sql))
            .bind(repo_id)
            .bind(&list)
            .execute(&mut *tx)
            .await?;
    }
    let done = sqlx::query(dialect(
        backend,
        "DELETE FROM manifests WHERE repository_id = $1 AND digest IN (SELECT value FROM json_each($2))",
    ))
    .bind(repo_id)
    .bind(&list)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

impl Metadata {
    /// Fills in `manifest_refs` for manifests stored before it existed, a page at a time.
    /// Returns how many manifests it read.
    pub async fn backfill_manifest_refs(&self) -> Result<u64> {
        let mut done = 0;
        loop {
            let rows = sqlx::query(
                "SELECT id, repository_id, digest, media_type, content FROM manifests
                 WHERE refs_recorded = 0 ORDER BY id LIMIT 200",
            )
            .fetch_all(&self.read)
            .await?;
            if rows.is_empty() {
                return Ok(done);
            }
            let mut tx = self.begin_write().await?;
            for r in &rows {
                let (id, repo_id, digest, media_type): (i64, i64, String, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                let content: Vec<u8> = r.get(4);
                // Stored manifests were parsed when pushed; one that no longer parses
                // references nothing this version can name, and keeps what it links.
                if let Ok(parsed) = crate::oci::manifest::parse(Some(&media_type), &content) {
                    let children: Vec<Digest> =
                        parsed.manifests.iter().map(|c| c.digest.clone()).collect();
                    super::record_refs(&mut tx, repo_id, &digest, &parsed.blobs, &children).await?;
                }
                sqlx::query("UPDATE manifests SET refs_recorded = 1 WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            done += rows.len() as u64;
        }
    }

    /// Every repository's (id, name), in id order.
    pub async fn repository_ids(&self) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT id, name FROM repositories ORDER BY id")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// A repository's reference graph, read in one transaction so it is one moment's.
    pub async fn graph(&self, repo_id: i64) -> Result<Graph> {
        let mut tx = self.read.begin().await?;
        let head = sqlx::query("SELECT name FROM repositories WHERE id = $1")
            .bind(repo_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(head) = head else {
            return Ok(Graph {
                repository_id: repo_id,
                ..Graph::default()
            });
        };
        let mut g = Graph {
            repository_id: repo_id,
            repository: head.get(0),
            read_at: now(),
            ..Graph::default()
        };
        g.manifests = sqlx::query(
            "SELECT digest, subject, state, touched_at, size FROM manifests WHERE repository_id = $1",
        )
        .bind(repo_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(graph_manifest)
        .collect();
        g.tags = sqlx::query("SELECT name, digest, updated_at FROM tags WHERE repository_id = $1")
            .bind(repo_id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        g.waiting = sqlx::query("SELECT digest FROM waiting_tags WHERE repository_id = $1")
            .bind(repo_id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        for r in
            sqlx::query("SELECT manifest, kind, target FROM manifest_refs WHERE repository_id = $1")
                .bind(repo_id)
                .fetch_all(&mut *tx)
                .await?
        {
            let (manifest, kind, target): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            if kind == "manifest" {
                g.children.push((manifest, target));
            } else {
                g.blob_refs.push((manifest, target));
            }
        }
        g.links =
            sqlx::query("SELECT digest, linked_at FROM repository_blobs WHERE repository_id = $1")
                .bind(repo_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
        tx.commit().await?;
        Ok(g)
    }

    /// Removes `digests` from repository `repo_id`, in batches, each in a write
    /// transaction with its audit records; before each batch, what was written since
    /// `since` is read inside the transaction and `rescue` names the digests it made
    /// reachable, which stay. Returns the digests removed.
    pub async fn remove_garbage_manifests(
        &self,
        repo_id: i64,
        since: i64,
        digests: &[String],
        rescue: impl Fn(&Changes) -> std::collections::HashSet<String>,
        event: impl Fn(&str) -> AuditEvent,
    ) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        // What was written since `since`, read a piece per batch: each batch reads, inside
        // its write transaction, only what was written since the previous batch's read.
        // Writes are serialised (one writer), so a write after that read took its time
        // after it: `>=` on whole seconds misses none.
        let mut changes = Changes::default();
        let mut since = since;
        for batch in digests.chunks(BATCH) {
            let started = std::time::Instant::now();
            let mut tx = self.begin_write().await?;
            let began = started.elapsed();
            let read_at = now();
            changes.absorb(changes_since(&mut tx, repo_id, since).await?);
            since = read_at;
            let read = started.elapsed();
            let kept = if changes.is_empty() {
                Default::default()
            } else {
                rescue(&changes)
            };
            let batch: Vec<String> = batch
                .iter()
                .filter(|d| !kept.contains(*d))
                .cloned()
                .collect();
            remove_manifests(&mut tx, repo_id, &batch).await?;
            let deleted = started.elapsed();
            let events: Vec<AuditEvent> = batch.iter().map(|d| event(d)).collect();
            audit::append(&mut tx, &events).await?;
            let audited = started.elapsed();
            tx.commit().await?;
            // Where a slow sweep's time goes (the writer's wait, the rescue read, the
            // deletes, the audit records, the commit).
            tracing::debug!(
                manifests = batch.len(),
                wait_ms = began.as_millis() as u64,
                changes_ms = (read - began).as_millis() as u64,
                delete_ms = (deleted - read).as_millis() as u64,
                audit_ms = (audited - deleted).as_millis() as u64,
                commit_ms = (started.elapsed() - audited).as_millis() as u64,
                "garbage collection batch"
            );
            removed.extend(batch);
        }
        Ok(removed)
    }

    /// Removes links of repository `repo_id` among `digests` that no manifest references
    /// and that were not pushed or mounted since `cutoff`; both re-checked as they go.
    /// Returns the digests unlinked.
    pub async fn unlink_unreferenced(
        &self,
        repo_id: i64,
        digests: &[String],
        cutoff: i64,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for batch in digests.chunks(BATCH) {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(dialect(
                self.backend,
                "DELETE FROM repository_blobs
                 WHERE repository_id = $1 AND linked_at < $2
                   AND digest IN (SELECT value FROM json_each($3))
                   AND NOT EXISTS (SELECT 1 FROM manifest_refs mr WHERE mr.repository_id = $1
                                   AND mr.kind = 'blob' AND mr.target = repository_blobs.digest)
                 RETURNING digest",
            ))
            .bind(repo_id)
            .bind(cutoff)
            .bind(json_list(batch))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            out.extend(rows.into_iter().map(|r| r.get::<String, _>(0)));
        }
        Ok(out)
    }

    /// Number of links of each linked blob.
    pub async fn link_counts(&self) -> Result<HashMap<String, i64>> {
        let rows = sqlx::query("SELECT digest, COUNT(*) FROM repository_blobs GROUP BY digest")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// (digest, size) of blob rows no repository links and not marked yet.
    pub async fn unlinked_blobs(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size FROM blobs b WHERE b.doomed_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Marks unlinked blob rows among `digests` as being removed; from then on no
    /// repository links them. Returns (digest, size) of those marked now and of those a
    /// run before this one marked and did not finish.
    pub async fn doom_unlinked(&self, digests: &[String]) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for batch in digests.chunks(BATCH) {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(dialect(
                self.backend,
                "UPDATE blobs SET doomed_at = $1
                 WHERE doomed_at IS NULL AND digest IN (SELECT value FROM json_each($2))
                   AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = blobs.digest)
                 RETURNING digest, size",
            ))
            .bind(now())
            .bind(json_list(batch))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            out.extend(rows.into_iter().map(|r| (r.get(0), r.get(1))));
        }
        let left = sqlx::query("SELECT digest, size FROM blobs WHERE doomed_at IS NOT NULL")
            .fetch_all(&self.read)
            .await?;
        for r in left {
            let pair: (String, i64) = (r.get(0), r.get(1));
            if !out.iter().any(|(d, _)| *d == pair.0) {
                out.push(pair);
            }
        }
        Ok(out)
    }

    /// Marks bytes the store holds but no row names (a blob committed and never linked):
    /// `true` when marked now, `false` when a row appeared meanwhile (it is in use).
    pub async fn doom_orphan(&self, digest: &str, size: u64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, doomed_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT DO NOTHING RETURNING digest",
        )
        .bind(digest)
        .bind(size as i64)
        .bind(now())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(!rows.is_empty())
    }

    /// Drops the rows of marked blobs whose bytes are gone.
    pub async fn forget_doomed(&self, digests: &[String]) -> Result<()> {
        for batch in digests.chunks(BATCH) {
            let mut tx = self.begin_write().await?;
            sqlx::query(dialect(
                self.backend,
                "DELETE FROM blobs WHERE doomed_at IS NOT NULL
                 AND digest IN (SELECT value FROM json_each($1))",
            ))
            .bind(json_list(batch))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Every blob row's digest.
    pub async fn blob_digests(&self) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT digest FROM blobs")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Repositories linking `digest`.
    pub async fn repositories_linking(&self, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1 ORDER BY r.name",
        )
        .bind(digest)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Every blob row: (digest, size, marked for removal).
    pub async fn blob_rows(&self) -> Result<Vec<(String, i64, bool)>> {
        let rows = sqlx::query(
            "SELECT digest, size, CASE WHEN doomed_at IS NULL THEN 0 ELSE 1 END FROM blobs",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get::<i64, _>(2) != 0))
            .collect())
    }

    /// Deletes a manifest by digest with everything that lives as long as it does: its
    /// tags, its referrers (signatures, SBOMs, attestations; theirs in turn) and the
    /// manifests of its tag-schema tags (`sha256-<hex>.sig`, ...). Refused when an index
    /// still lists it or when one of the tags it would take is immutable.
    pub async fn delete_manifest_cascade(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        rules: &[ImmutableRule],
        event: impl Fn(&str, Option<&str>) -> AuditEvent,
    ) -> Result<Deleted> {
        let digest = digest.to_string();
        let mut tx = self.begin_write().await?;
        let Some(repo_id) = repository_id(&mut tx, repo).await? else {
            return Ok(Deleted::NotFound);
        };
        let exists =
            sqlx::query("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2")
                .bind(repo_id)
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(Deleted::NotFound);
        }
        // The closure: the manifest, then whatever names a member as its subject.
        let mut members: Vec<(String, Option<String>)> = vec![(digest.clone(), None)];
        let mut next = 0;
        while next < members.len() {
            let d = members[next].0.clone();
            next += 1;
            let mut found: Vec<String> = sqlx::query_scalar(
                "SELECT digest FROM manifests WHERE repository_id = $1 AND subject = $2",
            )
            .bind(repo_id)
            .bind(&d)
            .fetch_all(&mut *tx)
            .await?;
            found.extend(
                sqlx::query_scalar::<_, String>(dialect(
                    self.backend,
                    "SELECT digest FROM tags WHERE repository_id = $1
                     AND name IN (SELECT value FROM json_each($2))",
                ))
                .bind(repo_id)
                .bind(json_list(&tag_schema_names(&d)))
                .fetch_all(&mut *tx)
                .await?,
            );
            for f in found {
                if !members.iter().any(|(m, _)| *m == f) {
                    members.push((f, Some(format!("referrer of {d}, deleted with it"))));
                }
            }
            if members.len() > MAX_CASCADE {
                return Ok(Deleted::Refused(format!(
                    "{digest} has more than {MAX_CASCADE} referrers; delete some of them first"
                )));
            }
        }
        let set: Vec<String> = members.iter().map(|(d, _)| d.clone()).collect();
        // An index outside the closure that lists a member would lose a child.
        let listed = sqlx::query(dialect(
            self.backend,
            "SELECT manifest, target FROM manifest_refs WHERE repository_id = $1 AND kind = 'manifest'
             AND target IN (SELECT value FROM json_each($2))
             AND manifest NOT IN (SELECT value FROM json_each($2)) LIMIT 1",
        ))
        .bind(repo_id)
        .bind(json_list(&set))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = listed {
            let (index, child): (String, String) = (r.get(0), r.get(1));
            return Ok(Deleted::Refused(format!(
                "{child} is listed by index {index} in {repo}; delete the index first (its children go with garbage collection)"
            )));
        }
        let tags = sqlx::query(dialect(
            self.backend,
            "SELECT name, digest FROM tags WHERE repository_id = $1
             AND digest IN (SELECT value FROM json_each($2)) ORDER BY name",
        ))
        .bind(repo_id)
        .bind(json_list(&set))
        .fetch_all(&mut *tx)
        .await?;
        for r in tags {
            let (tag, d): (String, String) = (r.get(0), r.get(1));
            if let Some(rule) = rules.iter().find(|rule| rule.covers(repo.as_str(), &tag)) {
                return Ok(Deleted::Refused(format!(
                    "deleting {d} would delete tag '{tag}' of {repo}, which is immutable (rule '{}' tags '{}'); an administrator can remove the rule with `bonded immutable remove`",
                    rule.pattern, rule.tags
                )));
            }
        }
        remove_manifests(&mut tx, repo_id, &set).await?;
        let events: Vec<AuditEvent> = members
            .iter()
            .map(|(d, why)| event(d, why.as_deref()))
            .collect();
        audit::append(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(Deleted::Removed(members))
    }

    // ---- immutable tags -------------------------------------------------------------

    pub async fn immutable_rules(&self) -> Result<Vec<ImmutableRule>> {
        let rows = sqlx::query(
            "SELECT pattern, tags, created_at, created_by FROM immutable_tags ORDER BY pattern, tags",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ImmutableRule {
                pattern: r.get(0),
                tags: r.get(1),
                created_at: r.get(2),
                created_by: r.get(3),
            })
            .collect())
    }

    /// Adds a rule (`false`: it existed), audited.
    pub async fn immutable_add(
        &self,
        pattern: &str,
        tags: &str,
        actor: &str,
        events: &[AuditEvent],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO immutable_tags (pattern, tags, created_at, created_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(pattern)
        .bind(tags)
        .bind(now())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let added = done.rows_affected() > 0;
        if added {
            audit::append(&mut tx, events).await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Removes a rule (`false`: there was none), audited.
    pub async fn immutable_remove(
        &self,
        pattern: &str,
        tags: &str,
        events: &[AuditEvent],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM immutable_tags WHERE pattern = $1 AND tags = $2")
            .bind(pattern)
            .bind(tags)
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() > 0;
        if removed {
            audit::append(&mut tx, events).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    // ---- retention ------------------------------------------------------------------

    pub async fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        let rows = sqlx::query(
            "SELECT pattern, keep_last, keep_tags, untagged_after, created_at, created_by
             FROM retention_rules ORDER BY pattern",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RetentionRule {
                pattern: r.get(0),
                keep_last: r.get(1),
                keep_tags: r.get(2),
                untagged_after: r.get(3),
                created_at: r.get(4),
                created_by: r.get(5),
            })
            .collect())
    }

    /// Sets the rule of `rule.pattern`, replacing the one it had; whether anything
    /// changed (audited only then).
    pub async fn retention_set(&self, rule: &RetentionRule, events: &[AuditEvent]) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let old = sqlx::query(
            "SELECT keep_last, keep_tags, untagged_after FROM retention_rules WHERE pattern = $1",
        )
        .bind(&rule.pattern)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| {
            (
                r.get::<i64, _>(0),
                r.get::<Option<String>, _>(1),
                r.get::<Option<i64>, _>(2),
            )
        });
        let new = (rule.keep_last, rule.keep_tags.clone(), rule.untagged_after);
        if old.as_ref() == Some(&new) {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO retention_rules
                 (pattern, keep_last, keep_tags, untagged_after, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (pattern) DO UPDATE SET keep_last = excluded.keep_last,
                 keep_tags = excluded.keep_tags, untagged_after = excluded.untagged_after,
                 created_at = excluded.created_at, created_by = excluded.created_by",
        )
        .bind(&rule.pattern)
        .bind(rule.keep_last)
        .bind(rule.keep_tags.clone())
        .bind(rule.untagged_after)
        .bind(now())
        .bind(&rule.created_by)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the rule of `pattern` (`false`: there was none), audited.
    pub async fn retention_remove(&self, pattern: &str, events: &[AuditEvent]) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM retention_rules WHERE pattern = $1")
            .bind(pattern)
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() > 0;
        if removed {
            audit::append(&mut tx, events).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Removes tags (name, digest, updated_at) of repository `repo_id` that still point
    /// where and since when they did, in batches with their audit records: a tag pushed
    /// again meanwhile stays. Returns the tags removed.
    pub async fn remove_tags_unchanged(
        &self,
        repo_id: i64,
        tags: &[(String, String, i64)],
        event: impl Fn(&str, &str) -> AuditEvent,
    ) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for batch in tags.chunks(BATCH) {
            let mut tx = self.begin_write().await?;
            let mut events = Vec::new();
            for (name, digest, updated) in batch {
                let done = sqlx::query(
                    "DELETE FROM tags WHERE repository_id = $1 AND name = $2
                     AND digest = $3 AND updated_at = $4",
                )
                .bind(repo_id)
                .bind(name)
                .bind(digest)
                .bind(*updated)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() > 0 {
                    events.push(event(name, digest));
                    out.push((name.clone(), digest.clone(), *updated));
                }
            }
            audit::append(&mut tx, &events).await?;
            tx.commit().await?;
        }
        Ok(out)
    }
}

/// A retention rule (see migrations/0009_retention.sql).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub pattern: String,
    pub keep_last: i64,
    pub keep_tags: Option<String>,
    /// Seconds.
    pub untagged_after: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
}

impl RetentionRule {
    /// How specific the rule's pattern is for a repository it matches: one repository
    /// beats a namespace, a longer namespace a shorter one, any of them `*`.
    fn specificity(&self) -> usize {
        match self.pattern.strip_suffix("/*") {
            _ if self.pattern == "*" => 0,
            Some(ns) => 1 + ns.len(),
            None => usize::MAX,
        }
    }

    /// The rule of repository `repo` among `rules`: the most specific that matches.
    pub fn for_repository<'a>(rules: &'a [RetentionRule], repo: &str) -> Option<&'a RetentionRule> {
        rules
            .iter()
            .filter(|r| crate::auth::pattern_matches(&r.pattern, repo))
            .max_by_key(|r| r.specificity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_schema_tags_name_their_subject() {
        let hex = "a".repeat(64);
        let want = Some(format!("sha256:{hex}"));
        assert_eq!(tag_schema_subject(&format!("sha256-{hex}")), want);
        assert_eq!(tag_schema_subject(&format!("sha256-{hex}.sig")), want);
        assert_eq!(tag_schema_subject(&format!("sha256-{hex}.att")), want);
        assert_eq!(tag_schema_subject(&format!("sha256-{hex}.sbom")), want);
        // Not the schema: other suffixes, short or upper-case hex, other algorithms.
        assert_eq!(tag_schema_subject(&format!("sha256-{hex}.txt")), None);
        assert_eq!(
            tag_schema_subject(&format!("sha256-{}", "a".repeat(63))),
            None
        );
        assert_eq!(
            tag_schema_subject(&format!("sha256-{}", "A".repeat(64))),
            None
        );
        assert_eq!(tag_schema_subject(&format!("md5-{hex}")), None);
        assert_eq!(tag_schema_subject("latest"), None);
    }

    #[tokio::test]
    async fn optimize_gives_the_planner_statistics_of_the_tables_that_have_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = Metadata::open_sqlite(&dir.path().join("bonded.db"))
            .await
            .unwrap();
        sqlx::query("INSERT INTO repositories (id, name, created_at) VALUES (1, 'r', 0)")
            .execute(&db.write)
            .await
            .unwrap();
        for i in 0..200 {
            let d = format!("sha256:{i:064}");
            sqlx::query(
                "INSERT INTO manifests (repository_id, digest, media_type, size, content, created_at)
                 VALUES (1, $1, 'm', 1, x'00', 0)",
            )
            .bind(&d)
            .execute(&db.write)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (1, $1, $2, 0)",
            )
            .bind(format!("t{i}"))
            .bind(&d)
            .execute(&db.write)
            .await
            .unwrap();
        }
        db.optimize().await.unwrap();
        // Without statistics SQLite 3.51 checks the tags foreign key of each deleted
        // manifest by scanning the repository's tags (bench: 6.5 s for 500 manifests of a
        // repository with 51k tags; with them, 24 ms).
        let analysed: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tbl FROM sqlite_stat1")
            .fetch_all(&db.write)
            .await
            .unwrap();
        for table in ["tags", "manifests"] {
            assert!(analysed.iter().any(|t| t == table), "{analysed:?}");
        }
    }

    fn rule(pattern: &str, keep_last: i64) -> RetentionRule {
        RetentionRule {
            pattern: pattern.into(),
            keep_last,
            keep_tags: None,
            untagged_after: None,
            created_at: 0,
            created_by: "t".into(),
        }
    }

    #[test]
    fn the_most_specific_retention_rule_is_a_repositorys() {
        let rules = vec![
            rule("*", 1),
            rule("team/*", 2),
            rule("team/web/*", 3),
            rule("team/web/app", 4),
        ];
        let of = |repo: &str| RetentionRule::for_repository(&rules, repo).map(|r| r.keep_last);
        assert_eq!(of("team/web/app"), Some(4));
        assert_eq!(of("team/web/api"), Some(3));
        assert_eq!(of("team/db"), Some(2));
        assert_eq!(of("other"), Some(1));
        // A namespace rule does not cover a repository named like the namespace.
        assert_eq!(of("team"), Some(1));
        let none = vec![rule("team/*", 2)];
        assert_eq!(RetentionRule::for_repository(&none, "other/x"), None);
    }
}
