//! What the gate holds back: pending manifests and the tags waiting for them, how they are
//! reported, and how long they are kept.

use super::{Registry, RegistryError};
use crate::oci::{Digest, RepositoryName, Tag};
use crate::timefmt::rfc3339;
use crate::wire::{PendingManifest, PendingReport, WaitingTag, PENDING_LIMIT};
use std::time::Duration;

type Result<T> = std::result::Result<T, RegistryError>;

fn unix_rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_default()
}

impl Registry {
    /// What the trust policy still asks of `digest` before it is accepted, in the
    /// evaluator's words.
    async fn needs(&self, repo: &RepositoryName, digest: &str) -> Result<String> {
        let Ok(d) = digest.parse::<Digest>() else {
            return Ok(String::new());
        };
        let Some(m) = self.db.manifest_by_digest(repo, &d).await? else {
            return Ok("the manifest is no longer stored".into());
        };
        Ok(
            match self
                .satisfied_now(repo, &d, &m.media_type, m.content.len() as u64)
                .await?
            {
                Some(Err((reason, _))) => reason,
                Some(Ok(accepted)) => {
                    format!(
                        "nothing more: {} (it is admitted at its next signature or trust change)",
                        accepted.reason()
                    )
                }
                None => "no enforcing trust policy covers it now; push it again".into(),
            },
        )
    }

    /// The answer to a pull of `tag` when no published tag of that name exists but a
    /// manifest waits under it.
    pub(super) async fn waiting_for(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<RegistryError>> {
        let Some(w) = self.db.waiting_tag(repo, tag).await? else {
            return Ok(None);
        };
        let image = match self.trust() {
            Some(t) => format!("{}/{repo}", t.hostname),
            None => repo.to_string(),
        };
        Ok(Some(RegistryError::TagWaiting {
            repository: repo.clone(),
            tag: w.tag,
            needs: self.needs(repo, &w.digest).await?,
            digest: w.digest,
            image,
        }))
    }

    /// Pending manifests and waiting tags of a repository, each with what it needs.
    pub async fn pending(&self, repo: &RepositoryName) -> Result<PendingReport> {
        let manifests = self.db.pending_manifests(repo, PENDING_LIMIT + 1).await?;
        let waiting = self.db.waiting_tags(repo, PENDING_LIMIT + 1).await?;
        let truncated =
            manifests.len() > PENDING_LIMIT as usize || waiting.len() > PENDING_LIMIT as usize;
        let mut report = PendingReport {
            repository: repo.to_string(),
            pending: Vec::new(),
            waiting_tags: Vec::new(),
            truncated,
        };
        for (digest, media_type, size, since) in manifests.into_iter().take(PENDING_LIMIT as usize)
        {
            report.pending.push(PendingManifest {
                needs: self.needs(repo, &digest).await?,
                digest,
                media_type,
                size: size.max(0) as u64,
                pending_since: unix_rfc3339(since),
            });
        }
        for w in waiting.into_iter().take(PENDING_LIMIT as usize) {
            report.waiting_tags.push(WaitingTag {
                needs: self.needs(repo, &w.digest).await?,
                tag: w.tag,
                digest: w.digest,
                since: unix_rfc3339(w.since),
                pushed_by: w.pushed_by,
            });
        }
        Ok(report)
    }

    /// After a trust change: every manifest with tags waiting for it, judged again from its
    /// stored signatures, admitted and its tags published where the policy is now met, each
    /// recorded in the audit trail (as after a signature push). Bounded by the waiting tags
    /// there are, which `--pending-ttl` bounds.
    pub(super) async fn admit_what_now_passes(&self) -> Result<usize> {
        let waiting = self.db.waiting_subjects().await?;
        let mut published = 0;
        for (repo, digest) in waiting {
            let (Ok(repo), Ok(digest)) = (repo.parse::<RepositoryName>(), digest.parse::<Digest>())
            else {
                continue;
            };
            if self.after_signature(&repo, &digest).await? {
                published += 1;
            }
        }
        Ok(published)
    }

    /// Removes manifests pending, and tags waiting, for longer than `age`. Returns how
    /// many manifests.
    pub async fn expire_pending(&self, age: Duration) -> Result<usize> {
        let gone = self.db.expire_pending(age).await?;
        for (repo, digest) in &gone {
            self.forget_repository(repo).await;
            tracing::info!(repository = %repo, digest = %digest, "expired a manifest pending for too long");
        }
        Ok(gone.len())
    }
}
