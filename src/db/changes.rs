//! Several processes on one PostgreSQL database (replicas): what one of them changes, the
//! others learn at once, through PostgreSQL's LISTEN/NOTIFY, so that no process serves
//! from a cache what another one changed; and work that must run once across them (the
//! expiry sweeps) runs under a lock only one can hold. On SQLite, one process owns the
//! database: nothing is sent, nothing arrives, every lock is granted.

use super::{Backend, Metadata, Result};
use serde::{Deserialize, Serialize};

/// The channel bonded's processes notify each other on.
const CHANNEL: &str = "bonded_changes";
/// Advisory lock key (PostgreSQL) of the expiry sweeps.
pub const SWEEP_LOCK: i64 = 0x626f_6e64_6564_0003;

/// A change that may make another process's caches wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// A tag moved, appeared or went.
    Tag { repository: String, tag: String },
    /// Manifests of a repository changed state (admitted, deleted, expired).
    Repository { repository: String },
    /// A new trust configuration version was recorded.
    Trust,
    /// Accounts, tokens, roles or namespaces changed.
    Accounts,
    /// Changes may have been missed (the connection was lost): forget everything cached.
    Everything,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending process, so it skips its own notifications.
    origin: u64,
    #[serde(flatten)]
    change: Change,
}

/// What other processes announce, in order.
pub struct Listener {
    inner: sqlx::postgres::PgListener,
    origin: u64,
}

impl Listener {
    /// The next change another process made. After the connection was lost (and made
    /// again), [`Change::Everything`]: notifications sent meanwhile are gone.
    pub async fn next(&mut self) -> Change {
        loop {
            match self.inner.try_recv().await {
                Ok(Some(n)) => match serde_json::from_str::<Envelope>(n.payload()) {
                    Ok(e) if e.origin == self.origin => continue,
                    Ok(e) => return e.change,
                    Err(_) => {
                        tracing::warn!(payload = n.payload(), "unreadable change notification");
                        return Change::Everything;
                    }
                },
                Ok(None) => return Change::Everything,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other processes' changes failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return Change::Everything;
                }
            }
        }
    }
}

/// Held while work that runs once across processes runs; released when dropped.
pub struct Exclusive {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl Exclusive {
    /// Releases the lock.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SWEEP_LOCK)
                .execute(&mut *conn)
                .await;
        }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // Not released: close the connection rather than return it to the pool holding
        // the lock (a session lock ends with its session).
        if let Some(conn) = self.conn.take() {
            let _ = conn.detach();
        }
    }
}

impl Metadata {
    /// Tells the other processes on this database about `change` (PostgreSQL only).
    pub async fn announce(&self, change: Change) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let payload = serde_json::to_string(&Envelope {
            origin: self.origin,
            change,
        })
        .expect("changes serialise");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Changes other processes announce: `None` on SQLite, where there are none.
    pub async fn listen(&self) -> Result<Option<Listener>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let mut inner = sqlx::postgres::PgListener::connect(url).await?;
        inner.listen(CHANNEL).await?;
        Ok(Some(Listener {
            inner,
            origin: self.origin,
        }))
    }

    /// The shared secret `name` (PostgreSQL), made with `make` by whichever process asks
    /// first; every process gets the same value. `None` on SQLite.
    pub async fn shared_secret(
        &self,
        name: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Option<Vec<u8>>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO shared_secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(make())
        .bind(super::now())
        .execute(&self.write)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        Ok(Some(value))
    }

    /// The lock of work that runs once across processes, if no other process holds it.
    pub async fn try_exclusive(&self) -> Result<Option<Exclusive>> {
        if self.backend != Backend::Postgres {
            return Ok(Some(Exclusive { conn: None }));
        }
        let mut conn = self.write.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SWEEP_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then_some(Exclusive { conn: Some(conn) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_tagged_json_with_their_origin() {
        let e = Envelope {
            origin: 7,
            change: Change::Tag {
                repository: "lib/app".into(),
                tag: "v1".into(),
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"origin":7,"kind":"tag","repository":"lib/app","tag":"v1"}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change, e.change);
        let trust: Envelope = serde_json::from_str(r#"{"origin":1,"kind":"trust"}"#).unwrap();
        assert_eq!(trust.change, Change::Trust);
        assert!(serde_json::from_str::<Envelope>(r#"{"origin":1,"kind":"nonsense"}"#).is_err());
    }
}
