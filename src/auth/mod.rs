//! Identities and rights, as pure functions: roles on namespace patterns, argon2id
//! passwords, API token strings, and the short-lived JWTs `/token` issues. No I/O: the
//! accounts come from [`crate::db`] as a [`Directory`], and the HTTP layer
//! ([`crate::api`]) asks it who someone is and what they may do.

pub mod jwt;
pub mod password;
pub mod token;

use std::collections::HashMap;
use std::fmt;

/// What a request does to a repository, in increasing order of power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Upload blobs and push signature manifests (artifacts with a subject that are
    /// signatures), not images.
    PushSignature,
    /// Push anything: images, indexes, tags, artifacts.
    Push,
    /// Delete manifests, tags and blob links.
    Delete,
    /// Accounts, trust stores, trust policy, the audit trail.
    Admin,
}

impl Action {
    /// The Docker token-scope word for the action (`pull`, `push`, `delete`, `*`).
    pub fn scope_word(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::PushSignature | Action::Push => "push",
            Action::Delete => "delete",
            Action::Admin => "*",
        }
    }
}

/// A role, granted on a namespace pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// pull
    Reader,
    /// pull, push signatures (not images)
    Signer,
    /// pull, push (images and signatures)
    Developer,
    /// developer + delete
    Maintainer,
    /// everything, including accounts and trust configuration
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Reader,
        Role::Signer,
        Role::Developer,
        Role::Maintainer,
        Role::Admin,
    ];

    pub fn allows(self, action: Action) -> bool {
        match self {
            Role::Reader => action == Action::Pull,
            Role::Signer => matches!(action, Action::Pull | Action::PushSignature),
            Role::Developer => {
                matches!(action, Action::Pull | Action::PushSignature | Action::Push)
            }
            Role::Maintainer => action != Action::Admin,
            Role::Admin => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Signer => "signer",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role '{s}': use reader, signer, developer, maintainer or admin")
            })
    }
}

/// Checks a namespace pattern: `*`, `PREFIX/*` or one repository name.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let name = match pattern {
        "*" => return Ok(()),
        p => p.strip_suffix("/*").unwrap_or(p),
    };
    name.parse::<crate::oci::RepositoryName>()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "namespace pattern '{pattern}' is not '*', 'NAMESPACE/*' or a repository name: {e}"
            )
        })
}

/// Whether `pattern` covers repository `name`: `*` covers all, `acme/*` every repository
/// below `acme/` at any depth (not `acme` itself), anything else exactly one repository.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(prefix) => name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
        None => pattern == name,
    }
}

/// One account as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub kind: AccountKind,
    /// argon2id PHC string; robots have none.
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    User,
    Robot,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::Robot => "robot",
        }
    }
}

/// An API token's stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    pub account: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked: bool,
}

/// A grant of `role` on `pattern` to `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub account: String,
    pub role: Role,
    pub pattern: String,
}

/// Everything the server needs to authenticate and authorise, read from the database in
/// one go: accounts, live tokens, grants and public namespaces.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub accounts: HashMap<String, Account>,
    pub tokens: HashMap<String, StoredToken>,
    pub grants: Vec<Grant>,
    pub public: Vec<String>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    Account(String),
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::Account(n) => n,
        }
    }
}

/// The credential a request, or the bearer token it carries, was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The account's password, as the stored hash it verified against identifies it
    /// ([`password::fingerprint`]).
    Password { fingerprint: String },
    /// An API token, by id.
    Token { id: String },
}

impl Credential {
    /// The `cred` claim of a bearer token made from this credential: `password:<fp>` or
    /// `token:<id>`.
    pub fn claim(&self) -> String {
        match self {
            Credential::Password { fingerprint } => format!("password:{fingerprint}"),
            Credential::Token { id } => format!("token:{id}"),
        }
    }
}

/// Why credentials were refused. The HTTP layer tells clients only "invalid credentials",
/// so nobody learns which accounts exist; the audit trail keeps the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("no such account")]
    UnknownAccount,
    #[error("wrong password")]
    WrongPassword,
    #[error("account has no password (robots log in with an API token)")]
    NoPassword,
    #[error("unknown API token")]
    UnknownToken,
    #[error("API token {0} does not belong to this account")]
    TokenAccountMismatch(String),
    #[error("API token {0} was revoked")]
    TokenRevoked(String),
    #[error("API token {0} has expired")]
    TokenExpired(String),
}

impl Directory {
    /// Checks a username and password (or API token given as the password) at `now`
    /// (Unix seconds), and says which credential it was. Passwords are argon2id-verified:
    /// slow on purpose.
    pub fn login(
        &self,
        user: &str,
        secret: &str,
        now: i64,
    ) -> Result<(String, Credential), LoginError> {
        if let Some(parsed) = token::ApiToken::parse(secret) {
            let stored = self
                .tokens
                .get(&parsed.id)
                .ok_or(LoginError::UnknownToken)?;
            if !token::secret_matches(&parsed.secret, &stored.secret_hash) {
                return Err(LoginError::UnknownToken);
            }
            // Docker clients always send a username; with a token it must be the
            // token's account (or empty, for clients that send only a token).
            if !user.is_empty() && user != stored.account {
                return Err(LoginError::TokenAccountMismatch(stored.id.clone()));
            }
            if stored.revoked {
                return Err(LoginError::TokenRevoked(stored.id.clone()));
            }
            if stored.expires_at <= now {
                return Err(LoginError::TokenExpired(stored.id.clone()));
            }
            if !self.accounts.contains_key(&stored.account) {
                return Err(LoginError::UnknownAccount);
            }
            return Ok((
                stored.account.clone(),
                Credential::Token {
                    id: stored.id.clone(),
                },
            ));
        }
        let Some(account) = self.accounts.get(user) else {
            // Spend the same time as a real verification, so response times do not
            // reveal which names exist.
            password::burn(secret);
            return Err(LoginError::UnknownAccount);
        };
        let Some(hash) = &account.password_hash else {
            return Err(LoginError::NoPassword);
        };
        if password::verify(secret, hash) {
            Ok((
                account.name.clone(),
                Credential::Password {
                    fingerprint: password::fingerprint(hash),
                },
            ))
        } else {
            Err(LoginError::WrongPassword)
        }
    }

    /// Whether the credential a bearer token names (its `cred` claim) is still what
    /// `account` logs in with at `now`: the same password, or a token neither revoked nor
    /// expired. A token without the claim names nothing and is refused.
    pub fn credential_live(
        &self,
        account: &str,
        claim: Option<&str>,
        now: i64,
    ) -> Result<(), String> {
        let Some(a) = self.accounts.get(account) else {
            return Err(format!("account '{account}' no longer exists"));
        };
        match claim.and_then(|c| c.split_once(':')) {
            Some(("password", fp)) => match &a.password_hash {
                Some(h) if password::fingerprint(h) == fp => Ok(()),
                _ => Err(format!(
                    "the password of '{account}' this token was issued for has changed; log in again"
                )),
            },
            Some(("token", id)) => match self.tokens.get(id) {
                Some(t) if t.account == account && !t.revoked && t.expires_at > now => Ok(()),
                _ => Err(format!(
                    "API token {id} this bearer token was issued for is revoked or expired"
                )),
            },
            _ => Err("the bearer token names no credential it was issued for; request a new one".into()),
        }
    }

    /// The grants that give `who` the right to `action` on `repo`; empty when none does.
    /// Anonymous clients may pull from public namespaces and nothing else.
    pub fn allows(&self, who: &Identity, repo: &str, action: Action) -> bool {
        match who {
            Identity::Anonymous => {
                action == Action::Pull && self.public.iter().any(|p| pattern_matches(p, repo))
            }
            Identity::Account(name) => {
                (action == Action::Pull && self.public.iter().any(|p| pattern_matches(p, repo)))
                    || self.grants.iter().any(|g| {
                        &g.account == name
                            && g.role.allows(action)
                            && pattern_matches(&g.pattern, repo)
                    })
            }
        }
    }

    /// The roles `who` holds on `repo`.
    pub fn roles_on(&self, who: &Identity, repo: &str) -> Vec<Role> {
        self.grants
            .iter()
            .filter(|g| g.account == who.name() && pattern_matches(&g.pattern, repo))
            .map(|g| g.role)
            .collect()
    }

    /// Whether `who` holds `action` registry-wide (a grant on `*`).
    pub fn allows_everywhere(&self, who: &Identity, action: Action) -> bool {
        match who {
            Identity::Anonymous => false,
            Identity::Account(name) => self
                .grants
                .iter()
                .any(|g| &g.account == name && g.pattern == "*" && g.role.allows(action)),
        }
    }

    /// The namespace patterns under which `who` may pull: the public ones and those of
    /// every grant (each role pulls). `["*"]` when one of them covers everything.
    pub fn pull_patterns(&self, who: &Identity) -> Vec<String> {
        let mut out: Vec<String> = self.public.clone();
        if let Identity::Account(name) = who {
            out.extend(
                self.grants
                    .iter()
                    .filter(|g| &g.account == name && g.role.allows(Action::Pull))
                    .map(|g| g.pattern.clone()),
            );
        }
        if out.iter().any(|p| p == "*") {
            return vec!["*".into()];
        }
        out.sort();
        out.dedup();
        out
    }

    /// `who`'s grants, for messages ("reader on acme/*, signer on acme/prod/*").
    pub fn describe_grants(&self, who: &Identity) -> String {
        let list: Vec<String> = self
            .grants
            .iter()
            .filter(|g| g.account == who.name())
            .map(|g| format!("{} on {}", g.role, g.pattern))
            .collect();
        if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cover_what_they_say() {
        assert!(pattern_matches("*", "a"));
        assert!(pattern_matches("*", "a/b/c"));
        assert!(pattern_matches("acme/*", "acme/app"));
        assert!(pattern_matches("acme/*", "acme/prod/app"));
        assert!(!pattern_matches("acme/*", "acme"));
        assert!(!pattern_matches("acme/*", "acmex/app"));
        assert!(!pattern_matches("acme/*", "other/acme/app"));
        assert!(pattern_matches("acme/app", "acme/app"));
        assert!(!pattern_matches("acme/app", "acme/app/x"));
        assert!(check_pattern("acme/*").is_ok());
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("acme/app").is_ok());
        assert!(check_pattern("Acme/*").is_err());
        assert!(check_pattern("acme/**").is_err());
        assert!(check_pattern("").is_err());
    }

    #[test]
    fn roles_grant_exactly_their_actions() {
        use Action::*;
        let table = [
            (Role::Reader, vec![Pull]),
            (Role::Signer, vec![Pull, PushSignature]),
            (Role::Developer, vec![Pull, PushSignature, Push]),
            (Role::Maintainer, vec![Pull, PushSignature, Push, Delete]),
            (Role::Admin, vec![Pull, PushSignature, Push, Delete, Admin]),
        ];
        for (role, allowed) in table {
            for action in [Pull, PushSignature, Push, Delete, Admin] {
                assert_eq!(
                    role.allows(action),
                    allowed.contains(&action),
                    "{role} {action:?}"
                );
            }
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("owner".parse::<Role>().is_err());
    }

    fn directory() -> Directory {
        let mut d = Directory::default();
        d.grants.push(Grant {
            account: "alice".into(),
            role: Role::Developer,
            pattern: "acme/*".into(),
        });
        d.grants.push(Grant {
            account: "root".into(),
            role: Role::Admin,
            pattern: "*".into(),
        });
        d.public.push("library/*".into());
        d
    }

    #[test]
    fn rights_follow_grants_and_public_namespaces() {
        let d = directory();
        let alice = Identity::Account("alice".into());
        assert!(d.allows(&alice, "acme/app", Action::Push));
        assert!(!d.allows(&alice, "acme/app", Action::Delete));
        assert!(!d.allows(&alice, "other/app", Action::Pull));
        assert!(d.allows(&alice, "library/nginx", Action::Pull));
        assert!(!d.allows(&alice, "library/nginx", Action::Push));
        assert!(d.allows(&Identity::Anonymous, "library/nginx", Action::Pull));
        assert!(!d.allows(&Identity::Anonymous, "acme/app", Action::Pull));
        assert!(!d.allows_everywhere(&alice, Action::Admin));
        assert!(d.allows_everywhere(&Identity::Account("root".into()), Action::Admin));
        assert_eq!(d.describe_grants(&alice), "developer on acme/*");
        assert_eq!(d.roles_on(&alice, "acme/x/y"), vec![Role::Developer]);
        assert_eq!(d.pull_patterns(&alice), vec!["acme/*", "library/*"]);
        assert_eq!(d.pull_patterns(&Identity::Anonymous), vec!["library/*"]);
        assert_eq!(
            d.pull_patterns(&Identity::Account("root".into())),
            vec!["*"]
        );
        assert!(d.roles_on(&alice, "library/nginx").is_empty());
    }

    #[test]
    fn login_checks_passwords_and_tokens() {
        let mut d = directory();
        d.accounts.insert(
            "alice".into(),
            Account {
                name: "alice".into(),
                kind: AccountKind::User,
                password_hash: Some(password::hash("correct horse").unwrap()),
            },
        );
        d.accounts.insert(
            "ci".into(),
            Account {
                name: "ci".into(),
                kind: AccountKind::Robot,
                password_hash: None,
            },
        );
        let t = token::ApiToken::generate();
        d.tokens.insert(
            t.id.clone(),
            StoredToken {
                id: t.id.clone(),
                account: "ci".into(),
                secret_hash: token::hash_secret(&t.secret),
                expires_at: 1_000,
                revoked: false,
            },
        );
        let (who, cred) = d.login("alice", "correct horse", 0).unwrap();
        assert_eq!(who, "alice");
        assert!(matches!(&cred, Credential::Password { .. }));
        assert_eq!(d.credential_live("alice", Some(&cred.claim()), 0), Ok(()));
        let old = cred.claim();
        d.accounts.get_mut("alice").unwrap().password_hash =
            Some(password::hash("correct horse").unwrap());
        assert!(
            d.credential_live("alice", Some(&old), 0).is_err(),
            "a new hash of even the same password ends tokens made from the old one"
        );
        assert!(d.credential_live("alice", None, 0).is_err());
        assert!(d.credential_live("alice", Some("token:nope"), 0).is_err());
        assert_eq!(d.login("alice", "wrong", 0), Err(LoginError::WrongPassword));
        assert_eq!(d.login("bob", "x", 0), Err(LoginError::UnknownAccount));
        assert_eq!(d.login("ci", "x", 0), Err(LoginError::NoPassword));
        let s = t.to_string();
        let (who, cred) = d.login("ci", &s, 999).unwrap();
        assert_eq!(
            (who.as_str(), &cred),
            ("ci", &Credential::Token { id: t.id.clone() })
        );
        assert_eq!(d.login("", &s, 999).unwrap().0, "ci");
        assert_eq!(d.credential_live("ci", Some(&cred.claim()), 999), Ok(()));
        assert!(d.credential_live("ci", Some(&cred.claim()), 1_000).is_err());
        assert!(d
            .credential_live("alice", Some(&cred.claim()), 999)
            .is_err());
        assert!(matches!(
            d.login("alice", &s, 999),
            Err(LoginError::TokenAccountMismatch(_))
        ));
        assert!(matches!(
            d.login("ci", &s, 1_000),
            Err(LoginError::TokenExpired(_))
        ));
        let forged = token::ApiToken {
            id: t.id.clone(),
            secret: "0".repeat(64),
        };
        assert_eq!(
            d.login("ci", &forged.to_string(), 999),
            Err(LoginError::UnknownToken)
        );
        d.tokens.get_mut(&t.id).unwrap().revoked = true;
        assert!(matches!(
            d.login("ci", &s, 999),
            Err(LoginError::TokenRevoked(_))
        ));
        assert!(d.credential_live("ci", Some(&cred.claim()), 999).is_err());
    }
}
