//! Retention: rules that remove the old tags of matching repositories, and the manifests
//! only those tags kept.
//!
//! A run reads each covered repository's graph, chooses the tags to remove
//! ([`retention_tags`], pure), removes those that still point where they did, and on the
//! same graph without them removes, as garbage collection's sweep does, the manifests that
//! nothing keeps any more: not a remaining tag, a kept index, a waiting tag, a pending
//! state (within its TTL) or a subject; each batch keeps what was written since the read.
//! A dry run applies the same two functions to the same graph: what it lists is what a
//! run on the same data removes.
//! Blobs are garbage collection's: the removed manifests' blobs go at its next run.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::lifecycle::{mark_with, unix_now, when, Edges, Fresh};
use super::{Actor, Registry, RegistryError, Result, MAX_REPORTED};
use crate::db::{AuditAction, Graph, RetentionRule};
use crate::wire::{GcItem, RetentionReport};

/// The tags (name, digest, updated_at) a rule removes from a repository's graph.
///
/// Tags on referrers (a manifest with a subject, or a tag-schema tag such as
/// `sha256-<hex>.sig`) are never chosen: they live as long as their subject. Of the other
/// tags, grouped by the image they point at, the `keep_last` images most recently tagged
/// keep all theirs; of the rest, tags matching `keep_tags` or an immutability rule stay.
pub fn retention_tags(
    g: &Graph,
    rule: &RetentionRule,
    immutable: &dyn Fn(&str) -> bool,
) -> Vec<(String, String, i64)> {
    let referrers: HashSet<&str> = g
        .manifests
        .iter()
        .filter(|m| m.subject.is_some())
        .map(|m| m.digest.as_str())
        .collect();
    let mut images: HashMap<&str, Vec<&(String, String, i64)>> = HashMap::new();
    for t in &g.tags {
        if crate::db::tag_schema_subject(&t.0).is_some() || referrers.contains(t.1.as_str()) {
            continue;
        }
        images.entry(t.1.as_str()).or_default().push(t);
    }
    // Most recently tagged first: the newest tag's time, then its name, then the digest,
    // so that ties (pushes in one second) order the same on every run.
    let mut order: Vec<(i64, &str, &str)> = images
        .iter()
        .map(|(d, tags)| {
            let newest = tags
                .iter()
                .max_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)))
                .expect("an image here has a tag");
            (newest.2, newest.0.as_str(), *d)
        })
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    let keep = usize::try_from(rule.keep_last.max(0)).unwrap_or(usize::MAX);
    let mut out: Vec<(String, String, i64)> = order
        .iter()
        .skip(keep)
        .flat_map(|(_, _, d)| images[d].iter())
        .filter(|(name, _, _)| {
            !immutable(name)
                && !rule
                    .keep_tags
                    .as_deref()
                    .is_some_and(|glob| crate::db::glob_matches(glob, name))
        })
        .map(|t| (*t).clone())
        .collect();
    out.sort();
    out
}

/// `g` as it reads once `tags` are removed (what a dry run plans on).
fn without_tags(g: Graph, tags: &[(String, String, i64)]) -> Graph {
    let gone: HashSet<&str> = tags.iter().map(|t| t.0.as_str()).collect();
    Graph {
        tags: g
            .tags
            .into_iter()
            .filter(|t| !gone.contains(t.0.as_str()))
            .collect(),
        ..g
    }
}

/// The manifests to remove once the chosen tags are gone (`g` read, or taken, without
/// them; `untagged`: the digests they pointed at), each with why: those the removed
/// tags kept (their images, these images' children and referrers) that nothing else
/// keeps now and, with `untagged_after`, untagged manifests pushed longer ago.
fn retention_manifests(
    g: &Graph,
    rule: &RetentionRule,
    untagged: &HashSet<String>,
    now: i64,
    immutable: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let untagged_since = rule.untagged_after.map(|s| now.saturating_sub(s));
    let freed = &Edges::of(g).closure(untagged.iter().map(String::as_str));
    let fresh = Fresh::Retention {
        freed,
        untagged_since,
    };
    // What each referrer refers to: its `subject`, or the digest its tag-schema tag names.
    let subjects: HashMap<&str, String> = g
        .manifests
        .iter()
        .filter_map(|m| m.subject.clone().map(|s| (m.digest.as_str(), s)))
        .chain(g.tags.iter().filter_map(|(tag, digest, _)| {
            crate::db::tag_schema_subject(tag).map(|s| (digest.as_str(), s))
        }))
        .collect();
    let touched: HashMap<&str, i64> = g
        .manifests
        .iter()
        .map(|m| (m.digest.as_str(), m.touched_at))
        .collect();
    mark_with(g, fresh, immutable)
        .manifests
        .into_iter()
        .map(|(d, _)| {
            let why = if let Some(s) = subjects.get(d.as_str()) {
                format!("retention: its subject {s} is removed, and it with it")
            } else if untagged.contains(&d) {
                format!(
                    "retention (rule '{}'): its tags were removed and nothing else keeps it",
                    rule.pattern
                )
            } else if freed.contains(&d) {
                format!(
                    "retention (rule '{}'): only an index whose tags were removed listed it",
                    rule.pattern
                )
            } else {
                format!(
                    "retention (rule '{}'): untagged and unreferenced since {}, longer than {}",
                    rule.pattern,
                    when(touched.get(d.as_str()).copied().unwrap_or(0)),
                    crate::config::format_duration(rule.untagged_after.unwrap_or(0))
                )
            };
            (d, why)
        })
        .collect()
}

/// A rule's checks: a repository pattern (`*`, `NS/*`, a repository), a tag glob, at
/// least one image kept unless untagged manifests are all it is about.
pub fn check_retention(
    pattern: &str,
    keep_last: i64,
    keep_tags: Option<&str>,
    untagged_after: Option<i64>,
) -> std::result::Result<(), String> {
    super::check_rule(pattern, keep_tags.unwrap_or("*"))?;
    if !(0..=1_000_000).contains(&keep_last) {
        return Err(format!(
            "--keep-last must be between 0 and 1000000, not {keep_last}"
        ));
    }
    if untagged_after.is_some_and(|s| s < 1) {
        return Err("--untagged-after must be at least 1s".into());
    }
    Ok(())
}

/// A rule in words, for the audit trail and people.
pub fn describe(rule: &RetentionRule) -> String {
    let mut says = format!(
        "'{}': keep the {} images most recently tagged",
        rule.pattern, rule.keep_last
    );
    if let Some(g) = &rule.keep_tags {
        says.push_str(&format!(" and tags '{g}'"));
    }
    if let Some(s) = rule.untagged_after {
        says.push_str(&format!(
            ", untagged manifests for {}",
            crate::config::format_duration(s)
        ));
    }
    says
}

impl Registry {
    pub async fn retention_list(&self) -> Result<Vec<RetentionRule>> {
        Ok(self.db.retention_rules().await?)
    }

    /// Sets `rule` (replacing its pattern's); whether anything changed.
    pub async fn retention_set(&self, rule: &RetentionRule, actor: &Actor) -> Result<bool> {
        check_retention(
            &rule.pattern,
            rule.keep_last,
            rule.keep_tags.as_deref(),
            rule.untagged_after,
        )
        .map_err(RegistryError::TrustConfigInvalid)?;
        let e = actor.event(AuditAction::RetentionSet, None, None, Some(describe(rule)));
        Ok(self.db.retention_set(rule, &[e]).await?)
    }

    /// Removes `pattern`'s rule; whether there was one.
    pub async fn retention_remove(&self, pattern: &str, actor: &Actor) -> Result<bool> {
        let e = actor.event(
            AuditAction::RetentionRemove,
            None,
            None,
            Some(format!("'{pattern}'")),
        );
        Ok(self.db.retention_remove(pattern, &[e]).await?)
    }

    /// One retention run over every repository a rule covers (see the module's comment).
    /// Runs one at a time with garbage collection: `Ok(None)` when either runs already.
    pub async fn retention(&self, dry_run: bool, actor: &Actor) -> Result<Option<RetentionReport>> {
        let Some(locks) = self.lifecycle_locks().await? else {
            return Ok(None);
        };
        let report = self.retention_held(dry_run, actor).await;
        locks.release().await;
        report.map(Some)
    }

    async fn retention_held(&self, dry_run: bool, actor: &Actor) -> Result<RetentionReport> {
        let started = Instant::now();
        let mut report = RetentionReport {
            dry_run,
            ..RetentionReport::default()
        };
        let rules = self.db.retention_rules().await?;
        if rules.is_empty() {
            return Ok(report);
        }
        self.db.backfill_manifest_refs().await?;
        let immutable_rules = self.db.immutable_rules().await?;
        let mut list = |item: GcItem| {
            if report.removed.len() < MAX_REPORTED {
                report.removed.push(item);
            }
        };
        let (mut tags_removed, mut manifests_removed) = (0u64, 0u64);
        for (repo_id, name) in self.db.repository_ids().await? {
            let Some(rule) = RetentionRule::for_repository(&rules, &name) else {
                continue;
            };
            let covered = |tag: &str| immutable_rules.iter().any(|r| r.covers(&name, tag));
            let graph = self.db.graph(repo_id).await?;
            let chosen = retention_tags(&graph, rule, &covered);
            let tag_reason = format!(
                "retention (rule '{}'): not among the {} images most recently tagged{}",
                rule.pattern,
                rule.keep_last,
                rule.keep_tags
                    .as_deref()
                    .map(|g| format!(" nor matching '{g}'"))
                    .unwrap_or_default()
            );
            let tags = if dry_run {
                chosen
            } else {
                self.db
                    .remove_tags_unchanged(repo_id, &chosen, |tag, digest| crate::db::AuditEvent {
                        tag: Some(tag.to_string()),
                        ..actor.event(
                            AuditAction::TagDelete,
                            Some(&name),
                            Some(digest),
                            Some(tag_reason.clone()),
                        )
                    })
                    .await?
            };
            // The graph as read, without the tags removed: what a dry run plans on, and
            // what a run sweeps from (each batch keeps what was written since the read,
            // such as one of these tags pushed again).
            let freed: HashSet<String> = tags.iter().map(|t| t.1.clone()).collect();
            let after = without_tags(graph, &tags);
            let mut manifests = retention_manifests(&after, rule, &freed, unix_now(), &covered);
            if !dry_run && !manifests.is_empty() {
                let reasons: HashMap<String, String> = manifests.drain(..).collect();
                let mut digests: Vec<String> = reasons.keys().cloned().collect();
                digests.sort();
                let edges = Edges::of(&after);
                let removed = self
                    .db
                    .remove_garbage_manifests(
                        repo_id,
                        after.read_at,
                        &digests,
                        |changes| edges.reachable_after(changes),
                        |d| {
                            actor.event(
                                AuditAction::ManifestDelete,
                                Some(&name),
                                Some(d),
                                reasons.get(d).cloned(),
                            )
                        },
                    )
                    .await?;
                manifests = removed
                    .into_iter()
                    .map(|d| {
                        let why = reasons.get(&d).cloned().unwrap_or_default();
                        (d, why)
                    })
                    .collect();
            }
            if !dry_run && (!tags.is_empty() || !manifests.is_empty()) {
                self.forget_repository(&name).await;
            }
            for (tag, digest, _) in tags {
                tags_removed += 1;
                list(GcItem {
                    kind: "tag".into(),
                    repository: Some(name.clone()),
                    tag: Some(tag),
                    digest,
                    reason: tag_reason.clone(),
                });
            }
            for (digest, reason) in manifests {
                manifests_removed += 1;
                list(GcItem {
                    kind: "manifest".into(),
                    repository: Some(name.clone()),
                    tag: None,
                    digest,
                    reason,
                });
            }
        }
        report.tags_removed = tags_removed;
        report.manifests_removed = manifests_removed;
        report.seconds = started.elapsed().as_secs_f64();
        if !dry_run {
            let summary = format!(
                "retention: removed {} tags and {} manifests",
                report.tags_removed, report.manifests_removed
            );
            self.db
                .audit(&[actor.event(AuditAction::RetentionRun, None, None, Some(summary))])
                .await?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::GraphManifest;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn m(d: &str, subject: Option<&str>, touched: i64) -> GraphManifest {
        GraphManifest {
            digest: d.into(),
            subject: subject.map(str::to_string),
            pending: false,
            touched_at: touched,
            size: 1,
        }
    }

    fn rule(keep_last: i64, keep_tags: Option<&str>, untagged_after: Option<i64>) -> RetentionRule {
        RetentionRule {
            pattern: "r".into(),
            keep_last,
            keep_tags: keep_tags.map(str::to_string),
            untagged_after,
            created_at: 0,
            created_by: "t".into(),
        }
    }

    // a1..a4: images tagged v1..v4 at 10..40 (a1 also `stable` at 5); s1, s3: signatures
    // of a1 and a3; t3: a cosign `.sig`-tagged signature of a3; i: index tagged `multi` at
    // 1 listing the untagged c and a2; u, o: untagged at 50 and 1; p: pending; w: waited for.
    struct G {
        g: Graph,
    }

    fn graph() -> G {
        let d = digest;
        let (a1, a2, a3, a4) = (d('1'), d('2'), d('3'), d('4'));
        let (s1, s3, t3, i, c, u, o, p, w) = (
            d('5'),
            d('6'),
            d('7'),
            d('a'),
            d('b'),
            d('c'),
            d('d'),
            d('e'),
            d('f'),
        );
        let mut pending = m(&p, None, 1);
        pending.pending = true;
        let g = Graph {
            repository_id: 1,
            repository: "r".into(),
            read_at: 200,
            manifests: vec![
                m(&a1, None, 10),
                m(&a2, None, 20),
                m(&a3, None, 30),
                m(&a4, None, 40),
                m(&s1, Some(&a1), 60),
                m(&s3, Some(&a3), 60),
                m(&t3, None, 60),
                m(&i, None, 1),
                m(&c, None, 1),
                m(&u, None, 50),
                m(&o, None, 1),
                pending,
                m(&w, None, 1),
            ],
            tags: vec![
                ("v1".into(), a1.clone(), 10),
                ("stable".into(), a1.clone(), 5),
                ("v2".into(), a2.clone(), 20),
                ("v3".into(), a3.clone(), 30),
                ("v4".into(), a4.clone(), 40),
                ("multi".into(), i.clone(), 1),
                (format!("sha256-{}.sig", "3".repeat(64)), t3.clone(), 60),
            ],
            waiting: vec![w.clone()],
            children: vec![(i.clone(), c.clone()), (i.clone(), a2.clone())],
            blob_refs: vec![],
            links: vec![],
        };
        G { g }
    }

    /// What a dry run computes: the chosen tags, then the manifests without them.
    fn plan(
        g: &Graph,
        r: &RetentionRule,
        immutable: &dyn Fn(&str) -> bool,
    ) -> (Vec<String>, Vec<String>) {
        let tags = retention_tags(g, r, immutable);
        let untagged: HashSet<String> = tags.iter().map(|t| t.1.clone()).collect();
        let copy = Graph {
            tags: g.tags.clone(),
            manifests: g.manifests.clone(),
            waiting: g.waiting.clone(),
            children: g.children.clone(),
            ..Graph::default()
        };
        let after = without_tags(copy, &tags);
        let mut manifests: Vec<String> = retention_manifests(&after, r, &untagged, 200, immutable)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        manifests.sort();
        (tags.into_iter().map(|t| t.0).collect(), manifests)
    }

    #[test]
    fn keep_last_counts_images_and_spares_kept_tags_referrers_and_what_an_index_needs() {
        let G { g } = graph();
        let (tags, manifests) = plan(&g, &rule(2, Some("stable"), None), &|_| false);
        // a4 and a3 are the two images most recently tagged; `stable` keeps a1 (its `v1`
        // goes); the `.sig` tag lives with a3 and is never counted or chosen.
        assert_eq!(tags, vec!["multi", "v1", "v2"]);
        // The index goes with its untagged child and a2; a1 stays with its signature;
        // untagged manifests the removed tags never kept are left to garbage collection.
        let mut want = vec![digest('a'), digest('b'), digest('2')];
        want.sort();
        assert_eq!(manifests, want);
    }

    #[test]
    fn a_removed_image_takes_its_referrers_and_a_kept_index_keeps_its_children() {
        let G { mut g } = graph();
        // `multi` kept (by name) keeps a2 although v2 goes.
        let (tags, manifests) = plan(&g, &rule(1, Some("multi"), None), &|_| false);
        assert_eq!(tags, vec!["stable", "v1", "v2", "v3"]);
        let mut want = vec![
            digest('1'),
            digest('5'),
            digest('3'),
            digest('6'),
            digest('7'),
        ];
        want.sort();
        assert_eq!(manifests, want, "a1 and a3 with their signatures, a2 kept");
        // An immutable tag is never chosen, and keeps its image.
        g.tags.retain(|t| t.0 != "stable");
        let (tags, manifests) = plan(&g, &rule(1, None, None), &|t| t == "v1");
        assert_eq!(tags, vec!["multi", "v2", "v3"]);
        assert!(!manifests.contains(&digest('1')));
        assert!(manifests.contains(&digest('3')) && manifests.contains(&digest('a')));
    }

    #[test]
    fn untagged_after_removes_old_untagged_manifests_but_not_pending_or_waited_for() {
        let G { g } = graph();
        let (tags, manifests) = plan(&g, &rule(10, None, Some(100)), &|_| false);
        assert!(tags.is_empty());
        // Pushed at 50 and 1, both before 200 - 100; the pending one (its TTL decides),
        // the one a tag waits for, and the index's child (the index is tagged) stay.
        let mut want = vec![digest('c'), digest('d')];
        want.sort();
        assert_eq!(manifests, want);
        let (_, manifests) = plan(&g, &rule(10, None, Some(160)), &|_| false);
        assert_eq!(
            manifests,
            vec![digest('d')],
            "u was pushed at 50, after 200 - 160"
        );
    }

    #[test]
    fn keep_last_zero_keeps_only_kept_tags_and_ties_order_by_name() {
        let G { mut g } = graph();
        let (tags, _) = plan(&g, &rule(0, Some("v*"), None), &|_| false);
        assert_eq!(tags, vec!["multi", "stable"]);
        // Three images tagged in the same second: the later names are "more recent".
        for t in g.tags.iter_mut() {
            t.2 = 7;
        }
        g.tags.retain(|t| t.0.starts_with('v'));
        let (tags, _) = plan(&g, &rule(2, None, None), &|_| false);
        assert_eq!(tags, vec!["v1", "v2"]);
    }

    #[test]
    fn rules_are_checked() {
        assert!(check_retention("team/*", 5, Some("v*"), Some(60)).is_ok());
        assert!(check_retention("team/", 5, None, None).is_err());
        assert!(check_retention("*", -1, None, None).is_err());
        assert!(check_retention("*", 5, Some("v 1"), None).is_err());
        assert!(check_retention("*", 5, None, Some(0)).is_err());
    }
}
