//! Which published images the trust configuration in force does not accept: the report a
//! trust change answers with, so an operator sees what the change does before pushes,
//! re-tags and (under `bonded.enforceOnPull`) pulls start failing.
//!
//! Every published tag is looked at, a page of the database at a time; each distinct
//! manifest is judged once per repository, from the verdicts the signature store keeps
//! (a trust change has just re-verified every signature under the new version, so no
//! signature is verified again here), its signatures and their records read for a page's
//! manifests in one query each. The list is bounded by the caller's limit; the count is
//! not.

use super::{Registry, RegistryError, TrustConfig};
use crate::db::PublishedTag;
use crate::oci::{Digest, RepositoryName};
use crate::trust::policy::Level;
use crate::trust::verify::decide;
use crate::trust::NOTARY_SIGNATURE;
use crate::wire::{Compliance, NoncompliantImage};
use std::collections::HashMap;

/// Tags read from the database at a time.
const PAGE: u32 = 500;
/// Verdicts kept while scanning one repository, so a repository with many tags of one
/// manifest judges it once, without holding a verdict per manifest of a huge one.
const MEMO: usize = 10_000;

/// Most images a report lists.
pub const MAX_LISTED: usize = 1000;

/// Why one manifest is not accepted: the covering policy (if any) and the reason.
type Finding = Option<(Option<String>, String, bool)>;

impl Registry {
    /// The compliance report for the trust configuration in force, listing at most
    /// `limit` (capped at [`MAX_LISTED`]) images.
    pub async fn compliance(&self, limit: usize) -> Result<Compliance, RegistryError> {
        let limit = limit.min(MAX_LISTED);
        let Some(trust) = self.trust() else {
            return Ok(Compliance::default());
        };
        let mut report = Compliance {
            enforced: true,
            trust_version: Some(trust.version),
            ..Compliance::default()
        };
        let mut memo: HashMap<String, Finding> = HashMap::new();
        let mut repo_of_memo = String::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .db
                .published_tags(after.as_ref().map(|(r, t)| (r.as_str(), t.as_str())), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.repository.clone(), last.tag.clone()));
            // The page is in repository order: judge each repository's part at once.
            for group in page.chunk_by(|a, b| a.repository == b.repository) {
                let repository = &group[0].repository;
                if *repository != repo_of_memo || memo.len() >= MEMO {
                    memo.clear();
                    repo_of_memo.clone_from(repository);
                }
                // Signature bookkeeping (notation's referrers tag index, cosign's `.sig`
                // tag) is not an image: it is neither judged nor counted.
                let mut images = Vec::with_capacity(group.len());
                for t in group {
                    if !self.is_bookkeeping_tag(t).await? {
                        images.push(t.clone());
                    }
                }
                let group = images.as_slice();
                self.judge(&trust, group, &mut memo).await?;
                for t in group {
                    report.checked_tags += 1;
                    let Some(Some((policy, reason, pulls_refused))) = memo.get(&t.digest) else {
                        continue;
                    };
                    report.noncompliant_tags += 1;
                    if report.images.len() < limit {
                        report.images.push(NoncompliantImage {
                            repository: t.repository.clone(),
                            tag: t.tag.clone(),
                            digest: t.digest.clone(),
                            policy: policy.clone(),
                            reason: reason.clone(),
                            pulls_refused: *pulls_refused,
                        });
                    } else {
                        report.truncated = true;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Whether a published tag is signature bookkeeping rather than an image: only tags
    /// named like notation's referrers index (`sha256-<hex>`) or cosign's `.sig` are read
    /// to find out, so the report costs nothing more for ordinary tags.
    async fn is_bookkeeping_tag(&self, t: &PublishedTag) -> Result<bool, RegistryError> {
        let named_so = super::gate::referrers_tag_subject(&t.tag).is_some()
            || crate::trust::cosign::sig_tag_subject(&t.tag).is_some();
        if !named_so {
            return Ok(false);
        }
        let (Ok(repo), Ok(tag)) = (
            t.repository.parse::<RepositoryName>(),
            t.tag.parse::<crate::oci::Tag>(),
        ) else {
            return Ok(false);
        };
        let reference = crate::oci::Reference::Tag(tag.clone());
        let Some(m) = self.db.manifest_by_tag(&repo, &tag).await? else {
            return Ok(false);
        };
        self.is_signature_bookkeeping(&repo, &reference, &m).await
    }

    /// Judges the manifests of `tags` (all of one repository) not yet in `memo`: whether
    /// each meets the policy covering the repository now. Their signatures and stored
    /// verdicts are read in one query each, whatever their number.
    async fn judge(
        &self,
        trust: &TrustConfig,
        tags: &[PublishedTag],
        memo: &mut HashMap<String, Finding>,
    ) -> Result<(), RegistryError> {
        let mut todo: Vec<&PublishedTag> = Vec::new();
        for t in tags {
            if !memo.contains_key(&t.digest) && !todo.iter().any(|o| o.digest == t.digest) {
                todo.push(t);
            }
        }
        let Some(first) = todo.first() else {
            return Ok(());
        };
        let scope = format!("{}/{}", trust.hostname, first.repository);
        let Some(policy) = trust.policy.policy_for(&scope) else {
            let why = format!("no trust policy covers {scope}: pushes and tags there are refused");
            for t in todo {
                memo.insert(t.digest.clone(), Some((None, why.clone(), false)));
            }
            return Ok(());
        };
        let Ok(repo) = first.repository.parse::<RepositoryName>() else {
            return Ok(());
        };
        if !matches!(policy.level, Level::Strict | Level::Permissive) {
            for t in todo {
                memo.insert(t.digest.clone(), None);
            }
            return Ok(());
        }
        let subjects: Vec<String> = todo.iter().map(|t| t.digest.clone()).collect();
        let mut signatures: HashMap<String, Vec<String>> = HashMap::new();
        for (subject, sig) in self
            .db
            .referrer_digests_of_many(&repo, &subjects, NOTARY_SIGNATURE)
            .await?
        {
            signatures.entry(subject).or_default().push(sig);
        }
        let mut records: HashMap<String, HashMap<String, crate::db::StoredVerdict>> =
            HashMap::new();
        let mut all_records: HashMap<String, Vec<crate::db::StoredVerdict>> = HashMap::new();
        for (subject, rec) in self.db.stored_verdicts_of_many(&repo, &subjects).await? {
            records
                .entry(subject.clone())
                .or_default()
                .insert(rec.digest.clone(), rec.clone());
            all_records.entry(subject).or_default().push(rec);
        }
        let mut cosign: HashMap<String, Vec<(String, bool)>> = HashMap::new();
        if Registry::counts_cosign(policy) {
            for (subject, sig, from_tag) in self
                .db
                .cosign_signature_manifests_of_many(
                    &repo,
                    &subjects,
                    &crate::trust::cosign::SIGNATURE_ARTIFACTS,
                )
                .await?
            {
                cosign.entry(subject).or_default().push((sig, from_tag));
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let none = HashMap::new();
        for t in todo {
            let verdicts = match (t.digest.parse::<Digest>(), signatures.get(&t.digest)) {
                (Ok(_), Some(sigs)) => {
                    self.verdicts_from(
                        policy,
                        trust,
                        &repo,
                        sigs,
                        records.get(&t.digest).unwrap_or(&none),
                        &t.media_type,
                        t.size,
                        now,
                    )
                    .await?
                }
                _ => Vec::new(),
            };
            let mut verdicts = verdicts;
            if let (Ok(d), Some(manifests)) = (t.digest.parse::<Digest>(), cosign.get(&t.digest)) {
                let stored = all_records.get(&t.digest).map_or(&[][..], Vec::as_slice);
                verdicts.extend(
                    self.cosign_verdicts_from(policy, trust, &repo, &d, manifests, stored, now)
                        .await?,
                );
            }
            let d = decide(policy, &verdicts);
            memo.insert(
                t.digest.clone(),
                (!d.admitted)
                    .then(|| (Some(policy.name.clone()), d.reason, policy.enforce_on_pull)),
            );
        }
        Ok(())
    }
}
