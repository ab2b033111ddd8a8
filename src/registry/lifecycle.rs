//! Lifecycle: deleting manifests with what lives as long as they do, online garbage
//! collection, and immutable tags.
//!
//! Garbage collection marks and sweeps one repository at a time. The mark is
//! [`mark`], a pure function of the repository's graph read at one moment; each batch of
//! the sweep reads, inside its write transaction, what was written to the repository
//! since (tags, waiting tags, manifests pushed) and keeps whatever that reaches. Links and blob rows are removed by statements
//! that re-check, inside the write transaction, that nothing references them, and a blob's
//! bytes go only after its row was marked (`blobs.doomed_at`), which no link may pass
//! (`Metadata::link_blob` refuses): so a manifest PUT racing a removal either finds its
//! blobs linked or fails with `MANIFEST_BLOB_UNKNOWN`, and no pullable manifest ever
//! references missing bytes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Registry, RegistryError, Result};
use crate::db::{AuditAction, AuditEvent, Deleted, Graph, ImmutableRule, Outcome};
use crate::oci::{Digest, RepositoryName, Tag};
use crate::wire::{GcItem, GcReport, ScrubProblem, ScrubReport};

/// Most removals a report lists one by one (the counts are always exact).
pub const MAX_REPORTED: usize = 10_000;

/// A garbage collection run started over the API: its outcome once it ends.
#[derive(Default)]
pub struct GcJob {
    result: std::sync::Mutex<Option<std::result::Result<GcReport, String>>>,
    ended: tokio::sync::Notify,
}

/// Who asks: an account (or `bonded` for the schedule) and where from, as the audit trail
/// records them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub source: Option<String>,
}

impl Actor {
    pub fn server() -> Actor {
        Actor {
            name: "bonded".into(),
            source: None,
        }
    }

    /// A record of `action` by this actor, done.
    pub fn event(
        &self,
        action: AuditAction,
        repo: Option<&str>,
        digest: Option<&str>,
        reason: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            repository: repo.map(str::to_string),
            digest: digest.map(str::to_string),
            ..AuditEvent::now(&self.name, self.source.clone(), action, Outcome::Ok, reason)
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// What was pushed, mounted or tagged within it is kept.
    pub grace: Duration,
    /// Report what a run would remove, remove nothing.
    pub dry_run: bool,
}

/// What one repository's mark found: manifests to remove (digest, why) and links to drop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Marked {
    pub manifests: Vec<(String, String)>,
    pub links: Vec<String>,
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The garbage of one repository's graph: manifests not reachable from a root, and links
/// older than `cutoff` that no reachable manifest references.
///
/// Roots: a manifest pushed at or after `cutoff` (the grace period), a pending manifest
/// (its TTL decides), one a tag waits for, one holding a tag an immutability rule covers,
/// and a tagged manifest without a subject. A manifest with a subject (its `subject`
/// field, or a tag-schema tag `sha256-<hex>[.sig|.att|.sbom]` naming one) lives exactly as
/// long as its subject: reachable from it, never a root by its own tags; when the subject
/// is not in the repository it lives only through its grace period. An index's children
/// are reachable from it.
pub fn mark(g: &Graph, cutoff: i64, immutable: &dyn Fn(&str) -> bool) -> Marked {
    mark_with(g, Fresh::Since(cutoff), immutable)
}

/// What keeps a manifest of its own accord (besides being pending, waited for, tagged
/// or immutable-tagged).
#[derive(Clone, Copy)]
pub(super) enum Fresh<'a> {
    /// Garbage collection: pushed at or after this moment (the grace period).
    Since(i64),
    /// Retention: without a subject, not left untagged by the run (`freed`) and, when
    /// `untagged_since` is set, pushed at or after it; with a subject, only that subject
    /// (a referrer whose subject is not there is garbage collection's).
    Retention {
        freed: &'a HashSet<String>,
        untagged_since: Option<i64>,
    },
}

impl Fresh<'_> {
    /// `subject`: `None` without one, else whether it is in the repository.
    fn keeps(&self, digest: &str, touched: i64, subject: Option<bool>) -> bool {
        match *self {
            Fresh::Since(cutoff) => touched >= cutoff,
            Fresh::Retention {
                freed,
                untagged_since,
            } => match subject {
                Some(present) => !present,
                None => !freed.contains(digest) && untagged_since.is_none_or(|c| touched >= c),
            },
        }
    }

    /// Links older than this that no live manifest references are garbage.
    fn link_cutoff(&self) -> i64 {
        match *self {
            Fresh::Since(cutoff) => cutoff,
            Fresh::Retention { .. } => i64::MIN,
        }
    }
}

pub(super) fn mark_with(g: &Graph, fresh: Fresh, immutable: &dyn Fn(&str) -> bool) -> Marked {
    let present: HashSet<&str> = g.manifests.iter().map(|m| m.digest.as_str()).collect();
    let mut tags_of: HashMap<&str, Vec<&str>> = HashMap::new();
    // subject -> manifests that live as long as it does
    let mut referrers: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut has_subject: HashSet<&str> = HashSet::new();
    let mut subject_of: HashMap<&str, String> = HashMap::new();
    let mut schema_subjects: Vec<(String, &str, i64)> = Vec::new();
    for (name, digest, updated) in &g.tags {
        tags_of.entry(digest).or_default().push(name);
        if let Some(s) = crate::db::tag_schema_subject(name) {
            schema_subjects.push((s, digest.as_str(), *updated));
        }
    }
    for m in &g.manifests {
        if let Some(s) = &m.subject {
            has_subject.insert(&m.digest);
            subject_of.insert(&m.digest, s.clone());
        }
    }
    for (s, d, _) in &schema_subjects {
        has_subject.insert(d);
        subject_of.entry(d).or_insert_with(|| s.clone());
    }
    for m in &g.manifests {
        if let Some(s) = &m.subject {
            if let Some(key) = present.get(s.as_str()) {
                referrers.entry(key).or_default().push(&m.digest);
            }
        }
    }
    let mut roots: Vec<&str> = Vec::new();
    for (s, d, updated) in &schema_subjects {
        match present.get(s.as_str()) {
            Some(key) => referrers.entry(key).or_default().push(d),
            None if fresh.keeps(d, *updated, Some(false)) => roots.push(d),
            None => {}
        }
    }
    let waiting: HashSet<&str> = g.waiting.iter().map(String::as_str).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (index, child) in &g.children {
        children.entry(index).or_default().push(child);
    }
    for m in &g.manifests {
        let d = m.digest.as_str();
        let tags = tags_of.get(d).map(Vec::as_slice).unwrap_or(&[]);
        let subject = subject_of.get(d).map(|s| present.contains(s.as_str()));
        let root = m.pending
            || fresh.keeps(d, m.touched_at, subject)
            || waiting.contains(d)
            || tags.iter().any(|t| immutable(t))
            || (!has_subject.contains(d) && !tags.is_empty());
        if root {
            roots.push(d);
        }
    }
    let mut live: HashSet<&str> = HashSet::new();
    while let Some(d) = roots.pop() {
        if !live.insert(d) {
            continue;
        }
        for next in children.get(d).into_iter().chain(referrers.get(d)) {
            roots.extend(next.iter().copied().filter(|n| !live.contains(n)));
        }
    }
    let mut out = Marked::default();
    for m in &g.manifests {
        let d = m.digest.as_str();
        if live.contains(d) {
            continue;
        }
        let why = match subject_of.get(d) {
            Some(s) if present.contains(s.as_str()) => {
                format!("garbage collection: its subject {s} is removed, and it with it")
            }
            Some(s) => format!(
                "garbage collection: its subject {s} is not in the repository (last pushed {})",
                when(m.touched_at)
            ),
            None => format!(
                "garbage collection: untagged and unreferenced (last pushed {})",
                when(m.touched_at)
            ),
        };
        out.manifests.push((m.digest.clone(), why));
    }
    let referenced: HashSet<&str> = g
        .blob_refs
        .iter()
        .filter(|(m, _)| live.contains(m.as_str()))
        .map(|(_, b)| b.as_str())
        .collect();
    out.links = g
        .links
        .iter()
        .filter(|(b, at)| *at < fresh.link_cutoff() && !referenced.contains(b.as_str()))
        .map(|(b, _)| b.clone())
        .collect();
    out.manifests.sort();
    out.links.sort();
    out
}

/// A repository graph's edges, for what a write made after the mark reaches: an index to
/// its children, a subject to what lives as long as it does.
pub(super) struct Edges {
    children: HashMap<String, Vec<String>>,
    referrers: HashMap<String, Vec<String>>,
    /// What the mark saw: a change that reads back the same (the second the graph was
    /// read in) is no change.
    touched: HashMap<String, i64>,
    tags: HashSet<(String, String, i64)>,
}

impl Edges {
    pub(super) fn of(g: &Graph) -> Edges {
        let mut e = Edges {
            children: HashMap::new(),
            referrers: HashMap::new(),
            touched: g
                .manifests
                .iter()
                .map(|m| (m.digest.clone(), m.touched_at))
                .collect(),
            tags: g.tags.iter().cloned().collect(),
        };
        for (index, child) in &g.children {
            e.children
                .entry(index.clone())
                .or_default()
                .push(child.clone());
        }
        for m in &g.manifests {
            if let Some(s) = &m.subject {
                e.referrers
                    .entry(s.clone())
                    .or_default()
                    .push(m.digest.clone());
            }
        }
        for (tag, digest, _) in &g.tags {
            if let Some(s) = crate::db::tag_schema_subject(tag) {
                e.referrers.entry(s).or_default().push(digest.clone());
            }
        }
        e
    }

    /// `from` and everything reachable from it: an index's children, a subject's
    /// referrers, recursively.
    pub(super) fn closure<'a>(&self, from: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut todo: Vec<String> = from.into_iter().map(str::to_string).collect();
        while let Some(d) = todo.pop() {
            let next = self
                .children
                .get(&d)
                .into_iter()
                .chain(self.referrers.get(&d));
            todo.extend(next.flatten().filter(|n| !seen.contains(*n)).cloned());
            seen.insert(d);
        }
        seen
    }

    /// Everything reachable from what `changes` wrote (new tags, waiting tags, manifests
    /// pushed), over these edges and the new manifests' own: what must stay.
    pub(super) fn reachable_after(&self, changes: &crate::db::Changes) -> HashSet<String> {
        let manifests: Vec<&crate::db::GraphManifest> = changes
            .manifests
            .iter()
            .filter(|m| self.touched.get(&m.digest) != Some(&m.touched_at))
            .collect();
        let tags: Vec<&(String, String, i64)> = changes
            .tags
            .iter()
            .filter(|t| !self.tags.contains(*t))
            .collect();
        let mut children = HashMap::<&str, Vec<&str>>::new();
        for (index, child) in &changes.children {
            children.entry(index).or_default().push(child);
        }
        let mut referrers = HashMap::<String, Vec<&str>>::new();
        for m in &manifests {
            if let Some(s) = &m.subject {
                referrers.entry(s.clone()).or_default().push(&m.digest);
            }
        }
        for (tag, digest, _) in &tags {
            if let Some(s) = crate::db::tag_schema_subject(tag) {
                referrers.entry(s).or_default().push(digest);
            }
        }
        let mut todo: Vec<&str> = tags
            .iter()
            .map(|(_, d, _)| d.as_str())
            .chain(changes.waiting.iter().map(String::as_str))
            .chain(manifests.iter().map(|m| m.digest.as_str()))
            .collect();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.to_string()) {
                continue;
            }
            let old = self
                .children
                .get(d)
                .into_iter()
                .chain(self.referrers.get(d))
                .flatten()
                .map(String::as_str);
            let new = children
                .get(d)
                .into_iter()
                .flatten()
                .chain(referrers.get(d).into_iter().flatten())
                .copied();
            todo.extend(old.chain(new).filter(|n| !seen.contains(*n)));
        }
        seen
    }
}

/// See [`Registry::lifecycle_locks`].
pub(super) struct LifecycleLocks<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    fleet: crate::db::Exclusive,
}

impl LifecycleLocks<'_> {
    pub(super) async fn release(self) {
        self.fleet.release().await;
    }
}

impl Registry {
    /// The rules covering tag `tag` of `repo`.
    pub(crate) async fn immutable_rule_for(
        &self,
        repo: &RepositoryName,
        tag: &str,
    ) -> Result<Option<ImmutableRule>> {
        Ok(self
            .db
            .immutable_rules()
            .await?
            .into_iter()
            .find(|r| r.covers(repo.as_str(), tag)))
    }

    /// `tags` an immutability rule covers, with the rule (for a manifest write).
    pub(crate) async fn immutable_tags(
        &self,
        repo: &RepositoryName,
        tags: &[Tag],
    ) -> Result<Vec<(Tag, ImmutableRule)>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let rules = self.db.immutable_rules().await?;
        Ok(tags
            .iter()
            .filter_map(|t| {
                rules
                    .iter()
                    .find(|r| r.covers(repo.as_str(), t.as_str()))
                    .map(|r| (t.clone(), r.clone()))
            })
            .collect())
    }

    /// Deletes manifest `digest` with its tags and referrers (see
    /// `Metadata::delete_manifest_cascade`).
    pub(crate) async fn delete_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool> {
        let rules = self.db.immutable_rules().await?;
        let outcome = self
            .db
            .delete_manifest_cascade(repo, digest, &rules, |d, why| {
                let d = d.parse::<Digest>().ok();
                super::event(
                    AuditAction::ManifestDelete,
                    Some(repo),
                    d.as_ref(),
                    None,
                    Outcome::Ok,
                    why.map(str::to_string),
                )
            })
            .await?;
        match outcome {
            Deleted::NotFound => Ok(false),
            Deleted::Removed(_) => {
                self.forget_repository(repo.as_str()).await;
                // A deleted signature can change what its subject's pulls decide.
                self.forget_pull_verdicts(repo, None);
                Ok(true)
            }
            Deleted::Refused(message) => {
                let e = RegistryError::Denied {
                    message,
                    detail: serde_json::json!({ "repository": repo.as_str(), "digest": digest, "check": "delete" }),
                };
                self.audit_refusal(super::event(
                    AuditAction::ManifestDelete,
                    Some(repo),
                    Some(digest),
                    None,
                    Outcome::Denied,
                    Some(e.to_string()),
                ))
                .await;
                Err(e)
            }
        }
    }

    /// The refusal of moving or deleting an immutable tag.
    pub(crate) fn immutable_refusal(
        repo: &RepositoryName,
        tag: &str,
        current: &str,
        rule: &ImmutableRule,
        what: &str,
    ) -> RegistryError {
        RegistryError::Denied {
            message: format!(
                "tag '{tag}' of {repo} is immutable (rule '{}' tags '{}'): it points at {current} and cannot be {what}; push the new image under a new tag",
                rule.pattern, rule.tags
            ),
            detail: serde_json::json!({
                "repository": repo.as_str(), "tag": tag, "current": current,
                "rule": { "pattern": rule.pattern, "tags": rule.tags }, "check": "immutableTag",
            }),
        }
    }

    /// One garbage collection run (see the module's comment). Runs one at a time in this
    /// process and, on a shared database, once across replicas: `Ok(None)` when another
    /// run holds the lock.
    pub async fn gc(&self, opts: GcOptions, actor: &Actor) -> Result<Option<GcReport>> {
        let Some(locks) = self.lifecycle_locks().await? else {
            return Ok(None);
        };
        let report = self.gc_held(opts, actor).await;
        locks.release().await;
        report.map(Some)
    }

    /// The locks a collection or retention run holds: one at a time in this process, and
    /// once across processes of a shared database. `None` while another run holds them.
    pub(super) async fn lifecycle_locks(&self) -> Result<Option<LifecycleLocks<'_>>> {
        let Ok(local) = self.gc_lock.try_lock() else {
            return Ok(None);
        };
        Ok(self.sweep_lock().await?.map(|fleet| LifecycleLocks {
            _local: local,
            fleet,
        }))
    }

    /// [`Registry::gc`] with its locks held.
    async fn gc_held(&self, opts: GcOptions, actor: &Actor) -> Result<GcReport> {
        let started = Instant::now();
        self.db.backfill_manifest_refs().await?;
        // The sweep's deletes are planned from statistics of tables that grow between runs.
        self.db.optimize().await?;
        // Times are whole seconds: what was written in the second the grace period began
        // is kept (a run never removes anything younger than the period). A zero period
        // keeps nothing.
        let cutoff = if opts.grace.is_zero() {
            i64::MAX
        } else {
            unix_now() - opts.grace.as_secs() as i64
        };
        let rules = self.db.immutable_rules().await?;
        let mut report = GcReport {
            dry_run: opts.dry_run,
            grace_period_seconds: opts.grace.as_secs(),
            ..GcReport::default()
        };
        let list = |report: &mut GcReport, item: GcItem| {
            if report.removed.len() < MAX_REPORTED {
                report.removed.push(item);
            }
        };
        // Links the run drops, per blob, to know which blobs lose their last one.
        let mut dropped_links: HashMap<String, i64> = HashMap::new();
        for (repo_id, name) in self.db.repository_ids().await? {
            let covered = |tag: &str| rules.iter().any(|r| r.covers(&name, tag));
            let graph = self.db.graph(repo_id).await?;
            let marked = mark(&graph, cutoff, &covered);
            if marked.manifests.is_empty() && marked.links.is_empty() {
                continue;
            }
            let sizes: HashMap<&str, i64> = graph
                .manifests
                .iter()
                .map(|m| (m.digest.as_str(), m.size))
                .collect();
            let reasons: HashMap<&str, &str> = marked
                .manifests
                .iter()
                .map(|(d, w)| (d.as_str(), w.as_str()))
                .collect();
            let mut removed: Vec<String> =
                marked.manifests.iter().map(|(d, _)| d.clone()).collect();
            if !opts.dry_run && !removed.is_empty() {
                let edges = Edges::of(&graph);
                removed = self
                    .db
                    .remove_garbage_manifests(
                        repo_id,
                        graph.read_at,
                        &removed,
                        |changes| edges.reachable_after(changes),
                        |d| {
                            actor.event(
                                AuditAction::ManifestDelete,
                                Some(&name),
                                Some(d),
                                reasons.get(d).map(|r| r.to_string()),
                            )
                        },
                    )
                    .await?;
                self.forget_repository(&name).await;
            }
            for d in &removed {
                report.manifests_removed += 1;
                report.bytes_freed += sizes.get(d.as_str()).copied().unwrap_or(0) as u64;
                list(
                    &mut report,
                    GcItem {
                        kind: "manifest".into(),
                        repository: Some(name.clone()),
                        tag: None,
                        digest: d.clone(),
                        reason: reasons.get(d.as_str()).copied().unwrap_or_default().into(),
                    },
                );
            }
            let links = if opts.dry_run {
                marked.links.clone()
            } else {
                self.db
                    .unlink_unreferenced(repo_id, &marked.links, cutoff)
                    .await?
            };
            for l in links {
                report.links_removed += 1;
                *dropped_links.entry(l).or_default() += 1;
            }
        }
        // Blobs that no repository links any more.
        let unlinked: Vec<(String, i64)> = if opts.dry_run {
            let counts = self.db.link_counts().await?;
            let mut out = self.db.unlinked_blobs().await?;
            let sizes: HashMap<String, i64> = self
                .db
                .blob_rows()
                .await?
                .into_iter()
                .map(|(d, s, _)| (d, s))
                .collect();
            for (d, n) in &dropped_links {
                if counts.get(d) == Some(n) {
                    out.push((d.clone(), sizes.get(d).copied().unwrap_or(0)));
                }
            }
            out
        } else {
            let candidates: Vec<String> = self
                .db
                .unlinked_blobs()
                .await?
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            let doomed = self.db.doom_unlinked(&candidates).await?;
            let mut gone = Vec::new();
            for (d, size) in doomed {
                if let Ok(digest) = d.parse::<Digest>() {
                    self.store.delete(&digest).await?;
                }
                gone.push((d, size));
            }
            let names: Vec<String> = gone.iter().map(|(d, _)| d.clone()).collect();
            self.db.forget_doomed(&names).await?;
            gone
        };
        let mut unlinked = unlinked;
        unlinked.sort();
        for (d, size) in unlinked {
            report.blobs_removed += 1;
            report.bytes_freed += size.max(0) as u64;
            list(
                &mut report,
                GcItem {
                    kind: "blob".into(),
                    repository: None,
                    tag: None,
                    digest: d,
                    reason: "garbage collection: no repository links it".into(),
                },
            );
        }
        // Bytes committed and never recorded (a crash between the two), once old enough.
        let known = self.db.blob_digests().await?;
        let now = SystemTime::now();
        for blob in self.store.list().await? {
            let key = blob.digest.to_string();
            let age = now.duration_since(blob.modified).unwrap_or_default();
            if known.contains(&key) || age < opts.grace {
                continue;
            }
            let (digest, size) = (blob.digest, blob.size);
            if !opts.dry_run {
                if !self.db.doom_orphan(&key, size).await? {
                    continue;
                }
                self.store.delete(&digest).await?;
                self.db.forget_doomed(std::slice::from_ref(&key)).await?;
            }
            report.leftovers_removed += 1;
            report.bytes_freed += size;
            list(
                &mut report,
                GcItem {
                    kind: "leftover".into(),
                    repository: None,
                    tag: None,
                    digest: key,
                    reason:
                        "garbage collection: stored bytes no record names (an interrupted push)"
                            .into(),
                },
            );
        }
        report.seconds = started.elapsed().as_secs_f64();
        if !opts.dry_run {
            let summary = format!(
                "garbage collection (grace period {} s): removed {} manifests, {} links, {} blobs and {} leftovers, {} bytes freed",
                report.grace_period_seconds,
                report.manifests_removed,
                report.links_removed,
                report.blobs_removed,
                report.leftovers_removed,
                report.bytes_freed,
            );
            self.db
                .audit(&[actor.event(AuditAction::GcRun, None, None, Some(summary))])
                .await?;
            self.metrics.gc_ran(&report);
        }
        Ok(report)
    }

    /// Re-hashes every stored blob and checks the database against the store: blobs
    /// recorded without bytes, bytes of the wrong length or digest, bytes no record names.
    /// Reads one blob at a time, streaming; changes nothing but the audit trail.
    pub async fn scrub(&self, actor: &Actor) -> Result<ScrubReport> {
        use futures_util::StreamExt;
        let started = Instant::now();
        let mut report = ScrubReport::default();
        let problem = |report: &mut ScrubReport, p: ScrubProblem| {
            report.problem_count += 1;
            if report.problems.len() < MAX_REPORTED {
                report.problems.push(p);
            }
        };
        let stored: HashMap<String, u64> = self
            .store
            .list()
            .await?
            .into_iter()
            .map(|b| (b.digest.to_string(), b.size))
            .collect();
        let mut rows = self.db.blob_rows().await?;
        rows.sort();
        let recorded: HashSet<String> = rows.iter().map(|(d, _, _)| d.clone()).collect();
        for (d, size, doomed) in rows {
            if doomed {
                continue;
            }
            let Ok(digest) = d.parse::<Digest>() else {
                continue;
            };
            let repositories = || async { self.db.repositories_linking(&d).await };
            let Some(&have) = stored.get(&d) else {
                problem(
                    &mut report,
                    ScrubProblem {
                        kind: "missing".into(),
                        digest: d.clone(),
                        repositories: repositories().await?,
                        detail: "recorded, but the blob store has no bytes for it".into(),
                    },
                );
                continue;
            };
            if have != size as u64 {
                problem(
                    &mut report,
                    ScrubProblem {
                        kind: "size".into(),
                        digest: d.clone(),
                        repositories: repositories().await?,
                        detail: format!("recorded as {size} bytes, stored as {have}"),
                    },
                );
                continue;
            }
            let Some(mut stream) = self.store.get(&digest, None).await? else {
                continue;
            };
            let mut hasher = crate::oci::DigestHasher::new(digest.algorithm());
            let mut failed = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(b) => {
                        report.bytes_checked += b.len() as u64;
                        hasher.update(&b);
                    }
                    Err(e) => {
                        failed = Some(format!("reading it failed: {e}"));
                        break;
                    }
                }
            }
            report.blobs_checked += 1;
            let detail = match failed {
                Some(f) => Some(f),
                None => {
                    let actual = hasher.finish();
                    (actual != digest).then(|| {
                        format!(
                            "its bytes hash to {actual}; pulls of it fail until it is pushed again"
                        )
                    })
                }
            };
            if let Some(detail) = detail {
                problem(
                    &mut report,
                    ScrubProblem {
                        kind: "corrupt".into(),
                        digest: d.clone(),
                        repositories: repositories().await?,
                        detail,
                    },
                );
            }
        }
        let mut unrecorded: Vec<&String> =
            stored.keys().filter(|d| !recorded.contains(*d)).collect();
        unrecorded.sort();
        for d in unrecorded {
            problem(
                &mut report,
                ScrubProblem {
                    kind: "unrecorded".into(),
                    digest: d.clone(),
                    repositories: Vec::new(),
                    detail: "stored bytes no record names (an interrupted push); garbage collection removes them after its grace period".into(),
                },
            );
        }
        report.seconds = started.elapsed().as_secs_f64();
        let summary = format!(
            "scrub: {} blobs ({} bytes) re-hashed, {} problems",
            report.blobs_checked, report.bytes_checked, report.problem_count
        );
        self.db
            .audit(&[actor.event(AuditAction::ScrubRun, None, None, Some(summary))])
            .await?;
        Ok(report)
    }

    /// Starts a run on its own task (a client going away does not stop it) and waits
    /// for it up to `wait`: the report when it ended by then, `None` while it runs (see
    /// [`Registry::gc_state`]). Refused while another run this process started runs.
    pub async fn gc_start(
        self: &Arc<Self>,
        opts: GcOptions,
        actor: Actor,
        wait: Duration,
    ) -> Result<Option<GcReport>> {
        let job = {
            let mut slot = self.gc_job.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(j) = slot.as_ref() {
                if j.result.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
                    return Err(RegistryError::Denied {
                        message: "a garbage collection is running already; follow it with GET /bonded/v1/gc".into(),
                        detail: serde_json::json!({ "check": "gc" }),
                    });
                }
            }
            let job = Arc::new(GcJob::default());
            *slot = Some(job.clone());
            job
        };
        let (reg, done) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let outcome = match reg.gc(opts, &actor).await {
                Ok(Some(r)) => Ok(r),
                Ok(None) => Err(
                    "a garbage collection is running elsewhere (another process of this database)"
                        .to_string(),
                ),
                Err(e) => Err(e.to_string()),
            };
            *done.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            done.ended.notify_waiters();
        });
        let ended = job.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if job
            .result
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            let _ = tokio::time::timeout(wait, ended).await;
        }
        match self.gc_state() {
            Some(Some(Ok(r))) => Ok(Some(r)),
            Some(Some(Err(e))) => Err(RegistryError::Denied {
                message: format!("garbage collection failed: {e}"),
                detail: serde_json::json!({ "check": "gc" }),
            }),
            _ => Ok(None),
        }
    }

    /// The latest run this process started: `None` if none, `Some(None)` while it
    /// runs, else how it ended.
    pub fn gc_state(&self) -> Option<Option<std::result::Result<GcReport, String>>> {
        let slot = self.gc_job.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .map(|j| j.result.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    // ---- immutable tag rules --------------------------------------------------------

    pub async fn immutable_list(&self) -> Result<Vec<ImmutableRule>> {
        Ok(self.db.immutable_rules().await?)
    }

    /// Adds (`add`) or removes a rule; whether anything changed.
    pub async fn immutable_set(
        &self,
        pattern: &str,
        tags: &str,
        add: bool,
        actor: &Actor,
    ) -> Result<bool> {
        check_rule(pattern, tags).map_err(RegistryError::TrustConfigInvalid)?;
        let reason = Some(format!("tags '{tags}' of '{pattern}'"));
        if add {
            let e = actor.event(AuditAction::ImmutableAdd, None, None, reason);
            Ok(self
                .db
                .immutable_add(pattern, tags, &actor.name, &[e])
                .await?)
        } else {
            let e = actor.event(AuditAction::ImmutableRemove, None, None, reason);
            Ok(self.db.immutable_remove(pattern, tags, &[e]).await?)
        }
    }
}

/// A rule's repository pattern (`*`, `NS/*`, a repository name) and tag glob.
pub fn check_rule(pattern: &str, tags: &str) -> std::result::Result<(), String> {
    let repo = pattern.strip_suffix("/*").unwrap_or(pattern);
    if pattern != "*" && repo.parse::<RepositoryName>().is_err() {
        return Err(format!(
            "'{pattern}' is not a repository pattern: use '*', 'NAMESPACE/*' or a repository name"
        ));
    }
    let ok = !tags.is_empty()
        && tags.len() <= 128
        && tags
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'*' | b'?'));
    if !ok {
        return Err(format!(
            "'{tags}' is not a tag glob: tag characters (letters, digits, '_', '.', '-') with '*' and '?', at most 128"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::GraphManifest;

    fn m(d: &str, subject: Option<&str>, touched: i64) -> GraphManifest {
        GraphManifest {
            digest: d.into(),
            subject: subject.map(str::to_string),
            pending: false,
            touched_at: touched,
            size: 10,
        }
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn graph() -> Graph {
        // a: tagged image; s: its signature; x: untagged image; sx: signature of x;
        // i: untagged index listing c; c: child; n: new untagged; o: referrer of a
        // subject that is not there; t: cosign `.sig`-tagged signature of x.
        let (a, s, x, sx, i, c, n, o, t) = (
            digest('a'),
            digest('5'),
            digest('b'),
            digest('6'),
            digest('c'),
            digest('d'),
            digest('e'),
            digest('f'),
            digest('7'),
        );
        Graph {
            repository_id: 1,
            repository: "r".into(),
            read_at: 100,
            manifests: vec![
                m(&a, None, 10),
                m(&s, Some(&a), 10),
                m(&x, None, 10),
                m(&sx, Some(&x), 10),
                m(&i, None, 10),
                m(&c, None, 10),
                m(&n, None, 100),
                m(&o, Some(&digest('9')), 10),
                m(&t, None, 10),
            ],
            tags: vec![
                ("v1".into(), a.clone(), 10),
                (format!("{}.sig", x.replacen(':', "-", 1)), t.clone(), 10),
            ],
            waiting: vec![],
            children: vec![(i.clone(), c.clone())],
            blob_refs: vec![
                (a.clone(), "sha256:blob-a".into()),
                (x.clone(), "sha256:blob-x".into()),
                (c.clone(), "sha256:blob-c".into()),
            ],
            links: vec![
                ("sha256:blob-a".into(), 10),
                ("sha256:blob-x".into(), 10),
                ("sha256:blob-c".into(), 10),
                ("sha256:blob-new".into(), 100),
                ("sha256:blob-old".into(), 10),
            ],
        }
    }

    #[test]
    fn garbage_is_what_no_root_reaches_and_referrers_go_with_their_subjects() {
        let g = graph();
        let found = mark(&g, 50, &|_| false);
        let gone: Vec<&str> = found.manifests.iter().map(|(d, _)| d.as_str()).collect();
        let mut want = vec![
            digest('b'), // untagged image
            digest('6'), // its signature (subject field)
            digest('7'), // its cosign .sig-tagged signature
            digest('c'), // untagged index
            digest('d'), // its child
            digest('f'), // referrer of an absent subject, past its grace
        ];
        want.sort();
        assert_eq!(gone, want);
        // The tagged image and its signature stay, and the new manifest within grace.
        assert_eq!(
            found.links,
            vec![
                "sha256:blob-c".to_string(),
                "sha256:blob-old".into(),
                "sha256:blob-x".into()
            ]
        );
    }

    #[test]
    fn within_the_grace_period_nothing_goes() {
        let g = graph();
        let found = mark(&g, 0, &|_| false);
        assert_eq!(found, Marked::default());
    }

    #[test]
    fn a_tag_on_a_referrer_does_not_outlive_its_subject_unless_immutable() {
        let mut g = graph();
        // The untagged image's signature gets an ordinary tag.
        g.tags.push(("sig-tag".into(), digest('6'), 10));
        let found = mark(&g, 50, &|_| false);
        assert!(found.manifests.iter().any(|(d, _)| *d == digest('6')));
        let found = mark(&g, 50, &|t| t == "sig-tag");
        assert!(!found.manifests.iter().any(|(d, _)| *d == digest('6')));
    }

    #[test]
    fn pending_and_waiting_manifests_are_left_to_their_ttl() {
        let mut g = graph();
        g.manifests[2].pending = true; // x
        g.waiting.push(digest('c')); // the index: a tag waits for it
        let found = mark(&g, 50, &|_| false);
        let gone: Vec<&str> = found.manifests.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(gone, vec![digest('f').as_str()]);
    }

    #[test]
    fn what_a_later_write_reaches_is_kept() {
        let g = graph();
        let edges = Edges::of(&g);
        // After the mark: the untagged index is tagged, and a new index lists the
        // untagged image x.
        let changes = crate::db::Changes {
            tags: vec![
                ("again".into(), digest('c'), 200),
                ("v1".into(), digest('a'), 10),
            ],
            manifests: vec![m(&digest('8'), None, 200)],
            children: vec![(digest('8'), digest('b'))],
            waiting: vec![],
        };
        let kept = edges.reachable_after(&changes);
        // The index and its child; x with both its signatures (subject and `.sig` tag).
        for c in ['c', 'd', '8', 'b', '6', '7'] {
            assert!(kept.contains(&digest(c)), "{c} kept");
        }
        assert!(
            !kept.contains(&digest('f')),
            "the orphaned referrer still goes"
        );
        // What reads back as the mark saw it is no change: nothing kept.
        let same = crate::db::Changes {
            tags: vec![("v1".into(), digest('a'), 10)],
            manifests: vec![m(&digest('b'), None, 10)],
            children: vec![],
            waiting: vec![],
        };
        assert!(edges.reachable_after(&same).is_empty());
    }

    #[test]
    fn rules_name_repository_patterns_and_tag_globs() {
        assert!(check_rule("acme/*", "v*").is_ok());
        assert!(check_rule("*", "*").is_ok());
        assert!(check_rule("acme/app", "release-?.*").is_ok());
        assert!(check_rule("Acme", "v*").is_err());
        assert!(check_rule("acme/*", "").is_err());
        assert!(check_rule("acme/*", "v[0-9]").is_err());
    }
}
