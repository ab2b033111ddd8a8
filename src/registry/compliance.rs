//! Which published images the trust configuration in force does not accept: the report a
//! trust change answers with, so an operator sees what the change does before pushes,
//! re-tags and (under `bonded.enforceOnPull`) pulls start failing.
//!
//! Every published tag is looked at, a page of the database at a time; each distinct
//! manifest is judged once per repository, from the verdicts the signature store keeps
//! (a trust change has just re-verified every signature under the new version, so no
//! signature is verified again here). The list is bounded by the caller's limit; the
//! count is not.

use super::{Registry, RegistryError, TrustConfig};
use crate::oci::{Digest, RepositoryName};
use crate::trust::policy::Level;
use crate::trust::verify::decide;
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
            for t in &page {
                report.checked_tags += 1;
                if t.repository != repo_of_memo || memo.len() >= MEMO {
                    memo.clear();
                    repo_of_memo.clone_from(&t.repository);
                }
                let finding = match memo.get(&t.digest) {
                    Some(f) => f.clone(),
                    None => {
                        let f = self.judge(&trust, t).await?;
                        memo.insert(t.digest.clone(), f.clone());
                        f
                    }
                };
                let Some((policy, reason, pulls_refused)) = finding else {
                    continue;
                };
                report.noncompliant_tags += 1;
                if report.images.len() < limit {
                    report.images.push(NoncompliantImage {
                        repository: t.repository.clone(),
                        tag: t.tag.clone(),
                        digest: t.digest.clone(),
                        policy,
                        reason,
                        pulls_refused,
                    });
                } else {
                    report.truncated = true;
                }
            }
        }
        Ok(report)
    }

    /// Whether the manifest a tag names meets the policy covering its repository now.
    async fn judge(
        &self,
        trust: &TrustConfig,
        t: &crate::db::PublishedTag,
    ) -> Result<Finding, RegistryError> {
        let scope = format!("{}/{}", trust.hostname, t.repository);
        let Some(policy) = trust.policy.policy_for(&scope) else {
            return Ok(Some((
                None,
                format!("no trust policy covers {scope}: pushes and tags there are refused"),
                false,
            )));
        };
        if !matches!(policy.level, Level::Strict | Level::Permissive) {
            return Ok(None);
        }
        let (Ok(repo), Ok(digest)) = (
            t.repository.parse::<RepositoryName>(),
            t.digest.parse::<Digest>(),
        ) else {
            return Ok(None);
        };
        let now = time::OffsetDateTime::now_utc();
        let verdicts = self
            .verdicts_for(policy, trust, &repo, &digest, &t.media_type, t.size, now)
            .await?;
        let d = decide(policy, &verdicts);
        Ok((!d.admitted).then(|| (Some(policy.name.clone()), d.reason, policy.enforce_on_pull)))
    }
}
