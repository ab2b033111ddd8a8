//! Accounts, API tokens, role grants and public namespaces. Every change is written with
//! its audit record in one transaction. The server reads all of it at once into an
//! [`auth::Directory`] (see [`Metadata::directory`]).

use super::{audit, now, AuditEvent, Metadata, Result};
use crate::auth::{Account, AccountKind, Directory, Grant, Role, StoredToken};
use sqlx::Row;

/// An account as `bonded user list` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AccountInfo {
    pub name: String,
    pub kind: String,
    pub created_at: i64,
    pub grants: Vec<String>,
}

/// A token as `bonded token list` shows it (never the secret).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub account: String,
    pub description: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// SQL, true when account `?1` holds admin on `*` and no other account does: removing it,
/// or that grant, would leave nobody able to administer the registry, so both are refused.
macro_rules! last_admin_guard {
    () => {
        "EXISTS (SELECT 1 FROM role_grants WHERE account = $1 AND role = 'admin' AND pattern = '*')
         AND NOT EXISTS (SELECT 1 FROM role_grants WHERE account <> $1 AND role = 'admin' AND pattern = '*')"
    };
}

/// What a change found: whether it changed anything.
pub type Changed = bool;

impl Metadata {
    /// Runs one change and its audit record in a transaction; the record is written only
    /// when the change changed something.
    async fn change_with_audit(
        &self,
        sql: &'static str,
        binds: &[Option<&str>],
        event: AuditEvent,
    ) -> Result<Changed> {
        let mut tx = self.begin_write().await?;
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        let changed = q.execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            audit::append(&mut tx, std::slice::from_ref(&event)).await?;
        }
        tx.commit().await?;
        if changed {
            // Other processes on the database re-read accounts and grants now.
            self.announce(super::Change::Accounts).await?;
        }
        Ok(changed)
    }

    /// Everything authentication and authorisation need, read in one go.
    pub async fn directory(&self) -> Result<Directory> {
        let mut d = Directory::default();
        for r in sqlx::query("SELECT name, kind, password_hash FROM accounts")
            .fetch_all(&self.read)
            .await?
        {
            let name: String = r.get(0);
            let kind = if r.get::<String, _>(1) == "robot" {
                AccountKind::Robot
            } else {
                AccountKind::User
            };
            d.accounts.insert(
                name.clone(),
                Account {
                    name,
                    kind,
                    password_hash: r.get(2),
                },
            );
        }
        for r in sqlx::query(
            "SELECT id, account, secret_hash, expires_at, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END FROM api_tokens",
        )
        .fetch_all(&self.read)
        .await?
        {
            let id: String = r.get(0);
            d.tokens.insert(
                id.clone(),
                StoredToken {
                    id,
                    account: r.get(1),
                    secret_hash: r.get(2),
                    expires_at: r.get(3),
                    revoked: r.get::<i64, _>(4) != 0,
                },
            );
        }
        for r in sqlx::query("SELECT account, role, pattern FROM role_grants")
            .fetch_all(&self.read)
            .await?
        {
            if let Ok(role) = r.get::<String, _>(1).parse::<Role>() {
                d.grants.push(Grant {
                    account: r.get(0),
                    role,
                    pattern: r.get(2),
                });
            }
        }
        d.public = sqlx::query_scalar("SELECT pattern FROM public_namespaces")
            .fetch_all(&self.read)
            .await?;
        Ok(d)
    }

    pub async fn account_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&self.read)
            .await?)
    }

    /// Adds an account; `false` when the name is taken.
    pub async fn account_add(
        &self,
        name: &str,
        kind: AccountKind,
        password_hash: Option<&str>,
        event: AuditEvent,
    ) -> Result<Changed> {
        let now = now().to_string();
        self.change_with_audit(
            "INSERT INTO accounts (name, kind, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, CAST($4 AS BIGINT), CAST($5 AS BIGINT)) ON CONFLICT (name) DO NOTHING",
            &[Some(name), Some(kind.as_str()), password_hash, Some(&now), Some(&now)],
            event,
        )
        .await
    }

    /// Adds the first admin (an account with `admin` on `*`) when there are no accounts.
    /// `false` when accounts exist already.
    pub async fn bootstrap_admin(
        &self,
        name: &str,
        password_hash: &str,
        events: &[AuditEvent],
    ) -> Result<Changed> {
        let mut tx = self.begin_write().await?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO accounts (name, kind, password_hash, created_at, updated_at) VALUES ($1, 'user', $2, $3, $4)",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO role_grants (account, role, pattern, granted_at) VALUES ($1, 'admin', '*', $2)")
            .bind(name)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        audit::append(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes an account with its tokens and grants; `false` when there is none, or it
    /// is the last administrator (admin on `*`).
    pub async fn account_remove(&self, name: &str, event: AuditEvent) -> Result<Changed> {
        let sql = concat!(
            "DELETE FROM accounts WHERE name = $1 AND NOT (",
            last_admin_guard!(),
            ")"
        );
        self.change_with_audit(sql, &[Some(name)], event).await
    }

    /// Replaces a user's password; `false` when there is no such user (robots have none).
    pub async fn account_set_password(
        &self,
        name: &str,
        password_hash: &str,
        event: AuditEvent,
    ) -> Result<Changed> {
        let now = now().to_string();
        self.change_with_audit(
            "UPDATE accounts SET password_hash = $1, updated_at = CAST($2 AS BIGINT) WHERE name = $3 AND kind = 'user'",
            &[Some(password_hash), Some(&now), Some(name)],
            event,
        )
        .await
    }

    pub async fn accounts(&self) -> Result<Vec<AccountInfo>> {
        // One row per grant (or one without for an account with none), folded here: the
        // two databases aggregate into JSON differently.
        let rows = sqlx::query(
            "SELECT a.name, a.kind, a.created_at, g.role || ' on ' || g.pattern
             FROM accounts a LEFT JOIN role_grants g ON g.account = a.name
             ORDER BY a.name, g.granted_at, g.role, g.pattern",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out: Vec<AccountInfo> = Vec::new();
        for r in rows {
            let name: String = r.get(0);
            if out.last().is_none_or(|a| a.name != name) {
                out.push(AccountInfo {
                    name,
                    kind: r.get(1),
                    created_at: r.get(2),
                    grants: Vec::new(),
                });
            }
            if let Some(grant) = r.get::<Option<String>, _>(3) {
                out.last_mut().expect("pushed above").grants.push(grant);
            }
        }
        Ok(out)
    }

    pub async fn token_add(
        &self,
        id: &str,
        account: &str,
        description: &str,
        secret_hash: &str,
        expires_at: i64,
        event: AuditEvent,
    ) -> Result<Changed> {
        let (now, expires) = (now().to_string(), expires_at.to_string());
        self.change_with_audit(
            "INSERT INTO api_tokens (id, account, description, secret_hash, created_at, expires_at)
             SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), CAST($6 AS BIGINT) WHERE EXISTS (SELECT 1 FROM accounts WHERE name = $7)",
            &[
                Some(id),
                Some(account),
                Some(description),
                Some(secret_hash),
                Some(&now),
                Some(&expires),
                Some(account),
            ],
            event,
        )
        .await
    }

    /// Revokes a live token (of `account`, when given); `false` when there is no such
    /// token or it was revoked.
    pub async fn token_revoke(
        &self,
        id: &str,
        account: Option<&str>,
        event: AuditEvent,
    ) -> Result<Changed> {
        let now = now().to_string();
        self.change_with_audit(
            "UPDATE api_tokens SET revoked_at = CAST($1 AS BIGINT)
             WHERE id = $2 AND ($3 IS NULL OR account = $4) AND revoked_at IS NULL",
            &[Some(&now), Some(id), account, account],
            event,
        )
        .await
    }

    pub async fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, account, description, created_at, expires_at, revoked_at FROM api_tokens
             WHERE $1 IS NULL OR account = $1 ORDER BY created_at, id",
        )
        .bind(account)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TokenInfo {
                id: r.get(0),
                account: r.get(1),
                description: r.get(2),
                created_at: r.get(3),
                expires_at: r.get(4),
                revoked_at: r.get(5),
            })
            .collect())
    }

    /// Grants `role` on `pattern`; `false` when already granted or there is no account.
    pub async fn grant(
        &self,
        account: &str,
        role: Role,
        pattern: &str,
        event: AuditEvent,
    ) -> Result<Changed> {
        let now = now().to_string();
        self.change_with_audit(
            "INSERT INTO role_grants (account, role, pattern, granted_at)
             SELECT $1, $2, $3, CAST($4 AS BIGINT) WHERE EXISTS (SELECT 1 FROM accounts WHERE name = $5)
             ON CONFLICT DO NOTHING",
            &[
                Some(account),
                Some(role.as_str()),
                Some(pattern),
                Some(&now),
                Some(account),
            ],
            event,
        )
        .await
    }

    pub async fn revoke(
        &self,
        account: &str,
        role: Role,
        pattern: &str,
        event: AuditEvent,
    ) -> Result<Changed> {
        let sql = concat!(
            "DELETE FROM role_grants WHERE account = $1 AND role = $2 AND pattern = $3
             AND NOT ($2 = 'admin' AND $3 = '*' AND ",
            last_admin_guard!(),
            ")"
        );
        self.change_with_audit(
            sql,
            &[Some(account), Some(role.as_str()), Some(pattern)],
            event,
        )
        .await
    }

    /// Makes `pattern` public (`true`) or private again (`false`).
    pub async fn set_public(
        &self,
        pattern: &str,
        public: bool,
        event: AuditEvent,
    ) -> Result<Changed> {
        let now = now().to_string();
        if public {
            self.change_with_audit(
                "INSERT INTO public_namespaces (pattern, created_at) VALUES ($1, CAST($2 AS BIGINT)) ON CONFLICT DO NOTHING",
                &[Some(pattern), Some(&now)],
                event,
            )
            .await
        } else {
            self.change_with_audit(
                "DELETE FROM public_namespaces WHERE pattern = $1",
                &[Some(pattern)],
                event,
            )
            .await
        }
    }
}

/// The repositories a namespace pattern covers, as SQL over `r.name` with the pattern
/// bound as `?1` (see [`crate::auth::pattern_matches`]).
const COVERS: &str = "($1 = '*' OR r.name = $1 OR (substr($1, length($1) - 1) = '/*'
    AND length(r.name) > length($1) - 1
    AND substr(r.name, 1, length($1) - 1) = substr($1, 1, length($1) - 1)))";

impl Metadata {
    pub async fn quotas(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT pattern, bytes FROM quotas ORDER BY pattern")
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get::<i64, _>(1) as u64))
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) the quota of a pattern.
    pub async fn set_quota(
        &self,
        pattern: &str,
        bytes: Option<u64>,
        event: AuditEvent,
    ) -> Result<Changed> {
        match bytes {
            Some(b) => {
                let (b, now) = (b.to_string(), now().to_string());
                self.change_with_audit(
                    "INSERT INTO quotas (pattern, bytes, created_at) VALUES ($1, CAST($2 AS BIGINT), CAST($3 AS BIGINT))
                     ON CONFLICT (pattern) DO UPDATE SET bytes = excluded.bytes",
                    &[Some(pattern), Some(&b), Some(&now)],
                    event,
                )
                .await
            }
            None => {
                self.change_with_audit(
                    "DELETE FROM quotas WHERE pattern = $1",
                    &[Some(pattern)],
                    event,
                )
                .await
            }
        }
    }

    /// Bytes stored under a pattern: distinct blobs (a layer shared by two repositories
    /// counts once, as it is stored once) plus manifests.
    pub async fn namespace_usage(&self, pattern: &str) -> Result<u64> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT CAST(COALESCE((SELECT SUM(b.size) FROM blobs b WHERE b.digest IN (
                    SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
                    WHERE {COVERS})), 0)
                  + COALESCE((SELECT SUM(m.size) FROM manifests m JOIN repositories r ON r.id = m.repository_id
                    WHERE {COVERS}), 0) AS BIGINT)"
        ));
        let used: i64 = sqlx::query_scalar(sql)
            .bind(pattern)
            .fetch_one(&self.read)
            .await?;
        Ok(used as u64)
    }

    /// Whether a blob is already stored under a pattern (then linking it costs nothing).
    pub async fn namespace_has_blob(&self, pattern: &str, digest: &str) -> Result<bool> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $2 AND {COVERS}) THEN 1 ELSE 0 END"
        ));
        let found: i64 = sqlx::query_scalar(sql)
            .bind(pattern)
            .bind(digest)
            .fetch_one(&self.read)
            .await?;
        Ok(found == 1)
    }
}

/// Checks an account name: what a repository path component may be (lowercase letters,
/// digits, `.`, `_`, `-`), so names read the same in patterns, logs and URLs.
pub fn check_account_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !RESERVED_NAMES.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "account name '{name}' is not allowed: use 1-64 lowercase letters, digits, '.', '_' or '-' (reserved: {})",
            RESERVED_NAMES.join(", ")
        ))
    }
}

/// Names the audit trail already uses for callers that are not accounts: an account by
/// one of them would be indistinguishable there.
const RESERVED_NAMES: [&str; 3] = ["anonymous", "bonded", "admin-token"];

#[cfg(test)]
mod tests {
    use super::check_account_name;

    #[test]
    fn account_names_are_plain_and_never_a_name_the_trail_uses_for_others() {
        for good in ["alice", "ci-bot", "team.builder_2", "a"] {
            assert!(check_account_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "a b",
            "local:root",
            "anonymous",
            "bonded",
            "admin-token",
            &"x".repeat(65),
        ] {
            let e = check_account_name(bad).unwrap_err();
            assert!(
                e.contains("reserved: anonymous, bonded, admin-token"),
                "{bad}: {e}"
            );
        }
    }
}
