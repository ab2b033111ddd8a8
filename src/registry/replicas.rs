//! Replicas: several `bonded serve` on one PostgreSQL database and one blob store. Each
//! keeps its caches (manifests, pull decisions, the trust configuration in force) as a
//! single process does; what one process changes it announces (`db::Change`) and the
//! others drop or reload what that change made wrong, within the notification's
//! delivery (milliseconds). On SQLite there is one process and nothing to announce.

use super::{Registry, RegistryError};
use crate::db::{Change, Listener};
use crate::oci::RepositoryName;
use crate::trust::store::TrustStores;
use std::sync::Arc;

impl Registry {
    /// After a tag was written or deleted: drops it from this process's cache and from
    /// the others'.
    pub(crate) async fn forget_tag(&self, repo: &str, tag: &str) {
        self.manifests.invalidate_tag(repo, tag);
        self.announce(Change::Tag {
            repository: repo.to_string(),
            tag: tag.to_string(),
        })
        .await;
    }

    /// After manifests of `repo` changed state: drops the repository from every cache.
    pub(crate) async fn forget_repository(&self, repo: &str) {
        self.manifests.clear_repository(repo);
        self.announce(Change::Repository {
            repository: repo.to_string(),
        })
        .await;
    }

    /// How long a trust change's request waits for its re-evaluation (`serve
    /// --trust-change-wait`).
    pub fn with_trust_change_wait(mut self, wait: std::time::Duration) -> Self {
        self.trust_change_wait = wait;
        self
    }

    pub fn trust_change_wait(&self) -> std::time::Duration {
        self.trust_change_wait
    }

    /// The lock the expiry sweeps run under, so they run once across the processes on
    /// the database; `None` while another process holds it.
    pub async fn sweep_lock(&self) -> Result<Option<crate::db::Exclusive>, RegistryError> {
        Ok(self.db.try_exclusive().await?)
    }

    pub(crate) async fn announce(&self, change: Change) {
        if let Err(e) = self.db.announce(change).await {
            // The change is committed; only other processes' caches may lag.
            tracing::warn!(error = %e, "announcing a change to the other processes failed");
        }
    }

    /// Applies what other processes announce, for as long as the process runs.
    pub async fn follow(self: Arc<Self>, mut listener: Listener) {
        loop {
            let change = listener.next().await;
            if let Err(e) = self.apply_remote(&change).await {
                tracing::warn!(error = %e, ?change, "applying another process's change failed");
            }
        }
    }

    async fn apply_remote(&self, change: &Change) -> Result<(), RegistryError> {
        tracing::debug!(?change, "change from another process");
        match change {
            Change::Tag { repository, tag } => {
                self.manifests.invalidate_tag(repository, tag);
                self.forget_remote_pull_verdicts(repository);
            }
            Change::Repository { repository } => {
                self.manifests.clear_repository(repository);
                self.forget_remote_pull_verdicts(repository);
            }
            Change::Trust => self.reload_trust().await?,
            Change::Accounts => self.accounts_changed(),
            Change::Everything => {
                self.manifests.clear_all();
                self.accounts_changed();
                self.reload_trust().await?;
                self.pull_verdicts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
            }
        }
        Ok(())
    }

    fn forget_remote_pull_verdicts(&self, repository: &str) {
        if let Ok(repo) = repository.parse::<RepositoryName>() {
            self.forget_pull_verdicts(&repo, None);
        }
    }

    /// Puts the latest recorded trust configuration in force, if it is not already.
    pub async fn reload_trust(&self) -> Result<(), RegistryError> {
        let Some(latest) = self.db.trust_latest().await? else {
            return Ok(());
        };
        let current = self.trust().map(|t| t.version);
        if current == Some(latest.version) {
            return Ok(());
        }
        let config = match &latest.policy {
            Some(text) => {
                let mut c = super::build_config(
                    text,
                    TrustStores::from_map(&latest.stores),
                    &self.hostname(),
                )
                .map_err(RegistryError::TrustConfigInvalid)?;
                c.version = latest.version;
                Some(c)
            }
            None => None,
        };
        self.set_trust(config);
        tracing::info!(
            version = latest.version,
            "trust configuration changed by another process"
        );
        Ok(())
    }

    /// The counter of account changes other processes announced, for the layer that
    /// keeps accounts (`api::auth`).
    pub fn account_changes(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.accounts_generation.clone()
    }

    fn accounts_changed(&self) {
        self.accounts_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}
