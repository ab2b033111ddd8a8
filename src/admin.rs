//! Account administration: the changes `bonded user|token|role|namespace|quota` make on
//! the server's database, and the HTTP API makes for administrators (`/bonded/v1/accounts`,
//! ...) and for users on their own account (`/bonded/v1/account`). Validation, password
//! hashing, token making and the audit record's wording live here once; callers only say
//! who acts and present the outcome.

use crate::auth::{self, password, token::ApiToken, AccountKind, Role};
use crate::db::{self, AuditAction, AuditEvent, Metadata, Outcome};

/// The longest an API token may live, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong (a name, role, pattern, password or size).
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already, or is already so.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] db::DbError),
}

pub type Result<T> = std::result::Result<T, AdminError>;

/// A token just made: the only time its secret is seen.
#[derive(Debug)]
pub struct NewToken {
    pub token: ApiToken,
    pub expires_at: i64,
}

/// Changes made by one actor (`local:<OS user>` on the CLI, an account over HTTP).
pub struct Admin<'a> {
    db: &'a Metadata,
    actor: String,
    source: Option<String>,
}

fn last_admin(account: &str) -> AdminError {
    AdminError::Conflict(format!(
        "'{account}' is the last administrator (admin on '*'): grant admin on '*' to another account first"
    ))
}

/// A password given, checked for strength; or one generated (returned so it can be shown
/// once).
fn choose_password(given: Option<&str>) -> Result<(String, Option<String>)> {
    match given {
        Some(p) => {
            password::check_strength(p).map_err(AdminError::Invalid)?;
            Ok((p.to_string(), None))
        }
        None => {
            let p = password::generate();
            Ok((p.clone(), Some(p)))
        }
    }
}

/// argon2id, off the async threads (it takes tens of milliseconds by design).
async fn hash_password(p: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&p))
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing the password failed: {e}")))?
        .map_err(AdminError::Invalid)
}

impl<'a> Admin<'a> {
    pub fn new(db: &'a Metadata, actor: &str, source: Option<String>) -> Admin<'a> {
        Admin {
            db,
            actor: actor.to_string(),
            source,
        }
    }

    fn event(&self, action: AuditAction, reason: String) -> AuditEvent {
        AuditEvent::now(
            &self.actor,
            self.source.clone(),
            action,
            Outcome::Ok,
            Some(reason),
        )
    }

    /// Adds a user (with `password`, or a generated one, returned) or a robot (no
    /// password: it logs in with API tokens).
    pub async fn add_account(
        &self,
        name: &str,
        kind: AccountKind,
        given: Option<&str>,
    ) -> Result<Option<String>> {
        db::check_account_name(name).map_err(AdminError::Invalid)?;
        let (hash, generated) = match kind {
            AccountKind::Robot if given.is_some() => {
                return Err(AdminError::Invalid(format!(
                    "robot '{name}' has no password: it logs in with API tokens"
                )))
            }
            AccountKind::Robot => (None, None),
            AccountKind::User => {
                let (p, generated) = choose_password(given)?;
                (Some(hash_password(p).await?), generated)
            }
        };
        let event = self.event(AuditAction::UserAdd, format!("{} '{name}'", kind.as_str()));
        if !self
            .db
            .account_add(name, kind, hash.as_deref(), event)
            .await?
        {
            return Err(AdminError::Conflict(format!(
                "an account named '{name}' exists already"
            )));
        }
        Ok(generated)
    }

    /// Removes an account with its tokens and roles; never the last administrator.
    pub async fn remove_account(&self, name: &str) -> Result<()> {
        let event = self.event(AuditAction::UserRemove, format!("'{name}'"));
        if !self.db.account_remove(name, event).await? {
            return Err(match self.grants_of(name).await? {
                Some(_) => last_admin(name),
                None => AdminError::NotFound(format!("there is no account named '{name}'")),
            });
        }
        Ok(())
    }

    /// The roles of `account` ("admin on *", ...), or `None` when there is no such account.
    async fn grants_of(&self, account: &str) -> Result<Option<Vec<String>>> {
        Ok(self
            .db
            .accounts()
            .await?
            .into_iter()
            .find(|a| a.name == account)
            .map(|a| a.grants))
    }

    /// Sets a user's password (the given one, or a generated one, returned).
    pub async fn set_password(&self, name: &str, given: Option<&str>) -> Result<Option<String>> {
        let (p, generated) = choose_password(given)?;
        let hash = hash_password(p).await?;
        let event = self.event(AuditAction::UserPasswd, format!("'{name}'"));
        if !self.db.account_set_password(name, &hash, event).await? {
            return Err(AdminError::NotFound(format!(
                "there is no user named '{name}' (robots have no password)"
            )));
        }
        Ok(generated)
    }

    /// Makes an API token for `account`, expiring in `days` (1 to [`MAX_TOKEN_DAYS`]).
    pub async fn create_token(
        &self,
        account: &str,
        description: &str,
        days: u32,
    ) -> Result<NewToken> {
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(AdminError::Invalid(format!(
                "a token lives 1 to {MAX_TOKEN_DAYS} days, not {days}"
            )));
        }
        let token = ApiToken::generate();
        let expires_at =
            time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(days) * 86_400;
        let event = self.event(
            AuditAction::TokenCreate,
            format!(
                "token {} for '{account}', expires {}",
                token.id,
                db::format_unix(expires_at)
            ),
        );
        let hash = auth::token::hash_secret(&token.secret);
        if !self
            .db
            .token_add(&token.id, account, description, &hash, expires_at, event)
            .await?
        {
            return Err(AdminError::NotFound(format!(
                "there is no account named '{account}'"
            )));
        }
        Ok(NewToken { token, expires_at })
    }

    /// Revokes a live token (only one of `owner`'s, when given).
    pub async fn revoke_token(&self, id: &str, owner: Option<&str>) -> Result<()> {
        let event = self.event(AuditAction::TokenRevoke, format!("token {id}"));
        if !self.db.token_revoke(id, owner, event).await? {
            return Err(AdminError::NotFound(match owner {
                Some(o) => format!("'{o}' has no live token with id '{id}'"),
                None => format!("there is no live token with id '{id}'"),
            }));
        }
        Ok(())
    }

    /// Grants (or revokes) `role` on `pattern`; returns what changed, in words.
    pub async fn set_role(
        &self,
        account: &str,
        role: &str,
        pattern: &str,
        grant: bool,
    ) -> Result<String> {
        let role: Role = role.parse().map_err(AdminError::Invalid)?;
        auth::check_pattern(pattern).map_err(AdminError::Invalid)?;
        let what = format!("{role} on '{pattern}' for '{account}'");
        if grant {
            let event = self.event(AuditAction::RoleGrant, what.clone());
            if !self.db.grant(account, role, pattern, event).await? {
                return Err(AdminError::Conflict(format!(
                    "nothing granted: there is no account '{account}', or it has {role} on '{pattern}' already"
                )));
            }
        } else {
            let event = self.event(AuditAction::RoleRevoke, what.clone());
            if !self.db.revoke(account, role, pattern, event).await? {
                let held = self.grants_of(account).await?.unwrap_or_default();
                return Err(if held.contains(&format!("{role} on {pattern}")) {
                    last_admin(account)
                } else {
                    AdminError::NotFound(format!("'{account}' has no {role} role on '{pattern}'"))
                });
            }
        }
        Ok(what)
    }

    /// Makes a pattern public (anonymous pulls) or private; `false` when it was so already.
    pub async fn set_public(&self, pattern: &str, public: bool) -> Result<bool> {
        auth::check_pattern(pattern).map_err(AdminError::Invalid)?;
        let action = if public {
            AuditAction::NamespacePublic
        } else {
            AuditAction::NamespacePrivate
        };
        let event = self.event(action, format!("'{pattern}'"));
        Ok(self.db.set_public(pattern, public, event).await?)
    }

    /// Sets (or, with `None`, removes) a pattern's storage quota in bytes.
    pub async fn set_quota(&self, pattern: &str, bytes: Option<u64>) -> Result<()> {
        auth::check_pattern(pattern).map_err(AdminError::Invalid)?;
        match bytes {
            Some(0) => {
                return Err(AdminError::Invalid(
                    "a quota must allow at least one byte".into(),
                ))
            }
            Some(b) if b > i64::MAX as u64 => {
                return Err(AdminError::Invalid(format!(
                    "a quota of {b} bytes is more than the database can hold (at most {})",
                    i64::MAX
                )))
            }
            _ => {}
        }
        let event = match bytes {
            Some(b) => self.event(AuditAction::QuotaSet, format!("'{pattern}': {b} bytes")),
            None => self.event(AuditAction::QuotaRemove, format!("'{pattern}'")),
        };
        if !self.db.set_quota(pattern, bytes, event).await? && bytes.is_none() {
            return Err(AdminError::NotFound(format!("'{pattern}' has no quota")));
        }
        Ok(())
    }
}
