//! Changing the trust configuration: every change is validated, recorded as a new version
//! in the database and applied at once (pushes are decided by it from then on); the
//! re-evaluation of stored signatures that follows runs as a background job
//! ([`TrustJob`]), whose progress the admin API reports, and which a newer change
//! supersedes.

use super::{Registry, RegistryError, TrustConfig};
use crate::db::{AuditAction, Outcome};
use crate::trust::policy::TrustPolicyDocument;
use crate::trust::store::{StoreRef, TrustStores};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a change did.
#[derive(Debug, Clone)]
pub struct TrustChange {
    pub version: i64,
    pub reevaluated: usize,
    /// The published images the new configuration does not accept (the first
    /// [`CHANGE_LISTS`] listed).
    pub noncompliant: crate::wire::Compliance,
}

/// Where a trust change's re-evaluation is.
#[derive(Debug, Clone)]
pub enum JobState {
    Running,
    Done(TrustChange),
    /// Stopped because a newer version was recorded; that version's job covers it.
    Superseded,
    Failed(String),
}

/// The re-evaluation that follows a trust change: runs on its own task (a client that
/// goes away does not stop it), counts the signatures it has verified again.
#[derive(Debug)]
pub struct TrustJob {
    pub version: i64,
    done: AtomicUsize,
    total: AtomicUsize,
    /// Set when a newer change starts its own job.
    superseded: std::sync::atomic::AtomicBool,
    state: std::sync::Mutex<JobState>,
    finished: tokio::sync::Notify,
}

impl TrustJob {
    fn new(version: i64) -> Self {
        TrustJob {
            version,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            superseded: Default::default(),
            state: std::sync::Mutex::new(JobState::Running),
            finished: tokio::sync::Notify::new(),
        }
    }

    /// Signatures verified again so far, of those found.
    pub fn progress(&self) -> (usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    pub fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn add_total(&self, n: usize) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// Before each signature: counts it, and stops the job once superseded.
    pub(super) fn step(&self) -> Result<(), RegistryError> {
        if self.superseded.load(Ordering::Acquire) {
            return Err(RegistryError::TrustChangeSuperseded);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn finish(&self, state: JobState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.finished.notify_waiters();
    }

    /// Waits up to `limit` for the job to end; its state then.
    pub async fn wait(&self, limit: std::time::Duration) -> JobState {
        let finished = self.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        match self.state() {
            JobState::Running => {}
            other => return other,
        }
        let _ = tokio::time::timeout(limit, finished).await;
        self.state()
    }
}

/// How many non-compliant images a change's answer lists; `GET trust/noncompliant` lists
/// more.
pub const CHANGE_LISTS: usize = 100;

/// Whether every trust store the policy names exists.
pub fn check_stores(policy: &TrustPolicyDocument, stores: &TrustStores) -> Result<(), String> {
    for p in &policy.policies {
        for s in &p.trust_stores {
            if stores.get(s).is_none() {
                return Err(format!(
                    "trust policy '{}' names trust store '{s}', which does not exist",
                    p.name
                ));
            }
        }
    }
    Ok(())
}

/// Checks a policy against the stores it names and builds the configuration.
pub fn build_config(
    policy_text: &str,
    stores: TrustStores,
    hostname: &str,
) -> Result<TrustConfig, String> {
    let policy = TrustPolicyDocument::parse(policy_text.as_bytes()).map_err(|e| e.to_string())?;
    check_stores(&policy, &stores)?;
    Ok(TrustConfig {
        policy_text: policy_text.to_string(),
        policy,
        stores,
        hostname: hostname.to_string(),
        version: 0,
    })
}

/// The audit record of a trust change (its reason is the version's, recorded with it).
fn trust_change_event() -> crate::db::AuditEvent {
    super::event(
        AuditAction::TrustChange,
        None,
        None,
        None,
        Outcome::Ok,
        None,
    )
}

fn invalid(e: String) -> RegistryError {
    RegistryError::TrustConfigInvalid(e)
}

impl Registry {
    /// At start. With a configuration from the flags, it is used, and recorded as a new
    /// version when it differs from the latest. Without, the latest recorded version is
    /// used, if any. Returns the version in force.
    pub async fn init_trust(
        &self,
        from_flags: Option<(String, TrustStores)>,
        hostname: &str,
    ) -> Result<Option<i64>, RegistryError> {
        *self.hostname.write().unwrap_or_else(|p| p.into_inner()) = hostname.to_string();
        let latest = self.db.trust_latest().await?;
        match from_flags {
            Some((text, stores)) => {
                let same = latest.as_ref().is_some_and(|l| {
                    l.policy.as_deref() == Some(text.as_str()) && l.stores == stores.to_map()
                });
                let mut config = build_config(&text, stores, hostname).map_err(invalid)?;
                let version = match (same, latest) {
                    (true, Some(l)) => l.version,
                    _ => {
                        self.db
                            .trust_record(
                                Some(&text),
                                &config.stores.to_map(),
                                "loaded from --trust-policy and --trust-store at start",
                                trust_change_event(),
                            )
                            .await?
                    }
                };
                config.version = version;
                self.set_trust(Some(config));
                Ok(Some(version))
            }
            None => match latest {
                Some(l) => match &l.policy {
                    Some(text) => {
                        let mut config =
                            build_config(text, TrustStores::from_map(&l.stores), hostname)
                                .map_err(invalid)?;
                        config.version = l.version;
                        self.set_trust(Some(config));
                        Ok(Some(l.version))
                    }
                    None => Ok(Some(l.version)),
                },
                None => Ok(None),
            },
        }
    }

    pub(crate) fn hostname(&self) -> String {
        self.hostname
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn apply_trust(
        self: &Arc<Self>,
        policy_text: Option<String>,
        stores: TrustStores,
        reason: &str,
    ) -> Result<Arc<TrustJob>, RegistryError> {
        let mut config = match &policy_text {
            Some(text) => {
                Some(build_config(text, stores.clone(), &self.hostname()).map_err(invalid)?)
            }
            None => None,
        };
        let version = self
            .db
            .trust_record(
                policy_text.as_deref(),
                &stores.to_map(),
                reason,
                trust_change_event(),
            )
            .await?;
        if let Some(c) = config.as_mut() {
            c.version = version;
        }
        // From here on pushes and pulls are decided by the new version, in this process
        // and, once announced, in the others.
        self.set_trust(config);
        self.announce(crate::db::Change::Trust).await;
        tracing::info!(version, reason, "trust configuration changed");
        let job = Arc::new(TrustJob::new(version));
        if let Some(previous) = self
            .trust_job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(job.clone())
        {
            previous.superseded.store(true, Ordering::Release);
        }
        let (registry, running) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let state = match registry.reevaluate(&running).await {
                Ok(change) => JobState::Done(change),
                Err(RegistryError::TrustChangeSuperseded) => JobState::Superseded,
                Err(e) => {
                    tracing::error!(version = running.version, error = %e, "re-evaluating signatures after a trust change failed");
                    JobState::Failed(e.to_string())
                }
            };
            running.finish(state);
        });
        Ok(job)
    }

    /// The job of the latest trust change made through this process, if any.
    pub fn trust_job(&self) -> Option<Arc<TrustJob>> {
        self.trust_job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What follows a change: every stored signature verified again, what now passes
    /// admitted and published, the compliance report.
    async fn reevaluate(&self, job: &TrustJob) -> Result<TrustChange, RegistryError> {
        let version = job.version;
        let reevaluated = self.reevaluate_signatures(job).await?;
        // What the stored signatures satisfy now (a lowered signaturesRequired, a newly
        // trusted root) is admitted and published, as a signature push would do.
        self.admit_what_now_passes().await?;
        let noncompliant = self.compliance(CHANGE_LISTS).await?;
        if noncompliant.noncompliant_tags > 0 {
            tracing::warn!(
                version,
                tags = noncompliant.noncompliant_tags,
                "published images do not meet the new trust configuration; `bonded trust show --noncompliant` lists them"
            );
        }
        Ok(TrustChange {
            version,
            reevaluated,
            noncompliant,
        })
    }

    /// The latest recorded policy and stores (stores exist without a policy too).
    async fn current(&self) -> Result<(Option<String>, TrustStores), RegistryError> {
        Ok(match self.db.trust_latest().await? {
            Some(l) => (l.policy, TrustStores::from_map(&l.stores)),
            None => (None, TrustStores::default()),
        })
    }

    /// Replaces the policy (`None`: no policy, a plain registry).
    pub async fn replace_policy(
        self: &Arc<Self>,
        text: Option<String>,
    ) -> Result<Arc<TrustJob>, RegistryError> {
        let (_, stores) = self.current().await?;
        let reason = if text.is_some() {
            "policy replaced through the admin API"
        } else {
            "policy removed through the admin API"
        };
        self.apply_trust(text, stores, reason).await
    }

    /// Creates or replaces a trust store with the certificates of a PEM (or DER) body.
    pub async fn put_store(
        self: &Arc<Self>,
        store: StoreRef,
        body: &[u8],
    ) -> Result<Arc<TrustJob>, RegistryError> {
        let certs = store
            .kind
            .parse_material(body)
            .map_err(|e| invalid(format!("trust store '{store}': {e}")))?;
        let (policy, mut stores) = self.current().await?;
        stores.insert(store.clone(), certs);
        self.apply_trust(
            policy,
            stores,
            &format!("trust store '{store}' set through the admin API"),
        )
        .await
    }

    /// Removes a trust store; refused while the policy names it.
    pub async fn delete_store(
        self: &Arc<Self>,
        store: StoreRef,
    ) -> Result<Arc<TrustJob>, RegistryError> {
        let (policy, mut stores) = self.current().await?;
        if !stores.remove(&store) {
            return Err(invalid(format!("trust store '{store}' does not exist")));
        }
        self.apply_trust(
            policy,
            stores,
            &format!("trust store '{store}' removed through the admin API"),
        )
        .await
    }

    /// The configuration in force, for `GET /bonded/v1/trust`.
    pub async fn trust_snapshot(&self) -> Result<Value, RegistryError> {
        let latest = self.db.trust_latest().await?;
        let trust = self.trust();
        let stores: Vec<Value> = latest
            .as_ref()
            .map(|l| {
                l.stores
                    .iter()
                    .map(|(name, certs)| {
                        let certs: Vec<Value> = certs
                            .iter()
                            .enumerate()
                            .filter_map(|(i, der)| crate::trust::certs::CertInfo::parse(i, der).ok())
                            .map(|c| {
                                json!({
                                    "subject": c.subject.to_string(),
                                    "thumbprint": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&c.der)),
                                    "notAfter": crate::timefmt::rfc3339(c.not_after),
                                })
                            })
                            .collect();
                        json!({ "store": name, "certificates": certs })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(json!({
            "enforced": trust.is_some(),
            "hostname": self.hostname(),
            "version": latest.as_ref().map(|l| l.version),
            "reason": latest.as_ref().map(|l| l.reason.clone()),
            "createdAt": latest.as_ref().map(|l| l.created_at.clone()),
            "policy": trust.as_ref().and_then(|t| serde_json::from_str::<Value>(&t.policy_text).ok()),
            "stores": stores,
        }))
    }

    /// Every recorded version, newest first.
    pub async fn trust_history(&self) -> Result<Value, RegistryError> {
        let versions = self.db.trust_versions().await?;
        Ok(json!(versions
            .iter()
            .map(|v| json!({
                "version": v.version,
                "createdAt": v.created_at,
                "reason": v.reason,
                "policy": v.policy.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()),
                "stores": v.stores.keys().collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()))
    }

    /// Whether trust administration is enabled (an admin token is configured).
    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Whether `presented` is the admin token (compared in constant time). No token
    /// configured: nobody is.
    pub fn is_admin_token(&self, presented: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        match (&self.admin_token, presented) {
            (Some(expected), Some(given)) => {
                bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod job_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_job_stops_once_superseded_and_wakes_whoever_waits_for_it() {
        let job = Arc::new(TrustJob::new(3));
        job.add_total(2);
        assert!(job.step().is_ok());
        job.superseded.store(true, Ordering::Release);
        assert!(matches!(
            job.step(),
            Err(RegistryError::TrustChangeSuperseded)
        ));
        assert_eq!(job.progress(), (1, 2), "a refused step is not counted");
        assert!(matches!(
            job.wait(Duration::from_millis(10)).await,
            JobState::Running
        ));
        let waiter = tokio::spawn({
            let job = job.clone();
            async move { job.wait(Duration::from_secs(30)).await }
        });
        tokio::task::yield_now().await;
        job.finish(JobState::Superseded);
        let state = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was woken")
            .unwrap();
        assert!(matches!(state, JobState::Superseded));
        // Asked after the end: answered at once.
        assert!(matches!(
            job.wait(Duration::from_secs(30)).await,
            JobState::Superseded
        ));
    }
}
