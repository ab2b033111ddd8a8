//! Who is asking and what they may do, at the HTTP edge: HTTP Basic (password or API
//! token), the Docker registry token flow (`WWW-Authenticate: Bearer realm=...`, `/token`
//! issuing short-lived JWTs), challenges (401 `UNAUTHORIZED`) and refusals (403 `DENIED`),
//! failed-login limits, and the login audit records. Decisions themselves are
//! [`crate::auth`]'s pure functions over a [`Directory`] re-read from the database every
//! few seconds (accounts are also changed by `bonded user|token|role` from another process).

use super::ratelimit::{ClientNetwork, Limiter, Rate, Tally};
use super::ApiError;
use crate::auth::{jwt, Action, Credential, Directory, Identity, LoginError};
use crate::db::{AuditAction, AuditEvent, Journal, Metadata, Outcome};
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long the server trusts its copy of accounts and grants. A revoked token, removed
/// account or revoked role stops working within this time.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(2);
/// Before refusing, the directory is re-read if it is older than this, so a grant made
/// a moment ago works at once (and refusals cannot make it re-read more often).
const DIRECTORY_RECHECK: Duration = Duration::from_millis(100);
/// Lifetime of bearer tokens from `/token`.
pub const TOKEN_LIFETIME_SECS: i64 = 300;
/// How long a verified password is remembered (argon2id is slow on purpose; clients
/// using Basic send it on every request).
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(300);
const PASSWORD_CACHE_MAX: usize = 10_000;

/// Who may do what without logging in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Roles decide; anonymous clients may pull public namespaces only.
    Enforced,
    /// `serve --open`: a loopback lab registry where anyone may pull, push and delete
    /// (not administer).
    Open,
}

pub struct AuthSettings {
    pub mode: Mode,
    /// The `service` of tokens and challenges (the registry's host name).
    pub service: String,
    /// HMAC key for bearer tokens.
    pub token_key: Vec<u8>,
    /// Whether the server speaks TLS (for the realm URL).
    pub tls: bool,
    /// Failed password logins allowed per (account, source address), and per source
    /// address whatever the account. API tokens are never held to either.
    pub failed_logins_per_account: Rate,
    pub failed_logins_per_address: Rate,
}

pub struct Auth {
    settings: AuthSettings,
    db: Metadata,
    journal: Arc<Journal>,
    /// The accounts as last read, when, and at which count of other processes' account
    /// changes (see `registry::replicas`).
    directory: RwLock<(Instant, u64, Arc<Directory>)>,
    reloading: tokio::sync::Mutex<()>,
    /// Counts account changes other processes announced: a copy read before the latest
    /// one is stale whatever its age.
    account_changes: Arc<std::sync::atomic::AtomicU64>,
    /// sha256(user NUL password) -> (account, the PHC string it verified against, when).
    passwords: Mutex<HashMap<[u8; 32], (String, String, Instant)>>,
    /// Failed password logins per (account, client network): an attacker guessing
    /// alice's password from one place does not lock her out everywhere.
    failures_by_account: Limiter<(String, ClientNetwork)>,
    /// Failed password logins per client network, whatever the account (spraying).
    failures_by_address: Limiter<ClientNetwork>,
    /// Refusals that could come at any rate (past a login limit, bad API tokens, refused
    /// bearer tokens): the first per source and window is recorded, the rest counted.
    refusals: Tally<AuditEvent>,
}

/// The authenticated client of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// The bearer token's claims when the client sent one; its scopes bound what it may do.
    pub token: Option<jwt::Claims>,
    /// The credential the request itself carried (HTTP Basic: a password or an API
    /// token); `None` for anonymous requests and bearer tokens.
    pub credential: Option<Credential>,
    pub source: Option<IpAddr>,
}

impl Caller {
    pub fn anonymous(source: Option<IpAddr>) -> Caller {
        Caller {
            identity: Identity::Anonymous,
            token: None,
            credential: None,
            source,
        }
    }

    /// Whether the request proved the account's password (not a token of any kind).
    pub fn used_password(&self) -> bool {
        matches!(self.credential, Some(Credential::Password { .. }))
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `(user, secret)` of HTTP Basic credentials (what follows `Basic `).
fn basic_pair(credentials: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, secret) = decoded.split_once(':')?;
    Some((user.to_string(), secret.to_string()))
}

/// The secret (password or API token) of an HTTP Basic `Authorization` header.
pub fn basic_secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then_some(())?;
    basic_pair(rest).map(|(_, secret)| secret)
}

fn login_event(who: &str, source: Option<IpAddr>, outcome: Outcome, reason: String) -> AuditEvent {
    AuditEvent::now(
        who,
        source.map(|s| s.to_string()),
        AuditAction::Login,
        outcome,
        Some(reason),
    )
}

impl Auth {
    pub async fn new(
        settings: AuthSettings,
        db: Metadata,
        journal: Arc<Journal>,
    ) -> Result<Auth, crate::db::DbError> {
        let directory = db.directory().await?;
        let window = settings
            .failed_logins_per_account
            .window
            .max(settings.failed_logins_per_address.window);
        Ok(Auth {
            journal,
            failures_by_account: Limiter::new(settings.failed_logins_per_account),
            failures_by_address: Limiter::new(settings.failed_logins_per_address),
            refusals: Tally::new(window),
            settings,
            db,
            directory: RwLock::new((Instant::now(), 0, Arc::new(directory))),
            reloading: tokio::sync::Mutex::new(()),
            account_changes: Arc::default(),
            passwords: Mutex::new(HashMap::new()),
        })
    }

    /// Shares the counter of account changes other processes announce.
    pub fn with_account_changes(mut self, changes: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.account_changes = changes;
        self
    }

    fn account_changes(&self) -> u64 {
        self.account_changes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn mode(&self) -> Mode {
        self.settings.mode
    }

    /// The accounts and grants, re-read when older than `max_age`.
    pub async fn directory(&self, max_age: Duration) -> Arc<Directory> {
        let asked = Instant::now();
        let current = || {
            self.directory
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let (at, seen, dir) = current();
        if at.elapsed() < max_age && seen == self.account_changes() {
            return dir;
        }
        let _guard = match self.reloading.try_lock() {
            Ok(g) => g,
            // On the periodic refresh, one request re-reads and the others go on with the
            // copy they have. Before a refusal (a short `max_age`), wait for the re-read in
            // flight instead: refusing on the old copy could miss a grant just made.
            Err(_) if max_age >= DIRECTORY_TTL => return dir,
            Err(_) => {
                let wait = self.reloading.lock().await;
                let (at, _, dir) = current();
                // A read that started after this request sees every change before it.
                if at >= asked {
                    return dir;
                }
                wait
            }
        };
        // Stamped when the read starts, so the stamp never claims more than it saw.
        let started = Instant::now();
        let changes = self.account_changes();
        match self.db.directory().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.directory.write().unwrap_or_else(|p| p.into_inner()) =
                    (started, changes, fresh.clone());
                fresh
            }
            Err(e) => {
                tracing::error!(error = %e, "re-reading accounts failed; using the previous copy");
                dir
            }
        }
    }

    /// The `WWW-Authenticate` challenge, naming the scope a token needs.
    pub fn challenge(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
        error: Option<&str>,
    ) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&self.settings.service);
        let scheme = if self.settings.tls { "https" } else { "http" };
        let mut c = format!(
            "Bearer realm=\"{scheme}://{host}/token\",service=\"{}\"",
            self.settings.service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }

    /// 401 for bonded's own API, which takes HTTP Basic only (a password or an API token).
    pub fn unauthorized_api(&self, message: String) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).header(
            header::WWW_AUTHENTICATE,
            format!(
                "Basic realm=\"bonded API at {}\", charset=\"UTF-8\"",
                self.settings.service
            ),
        )
    }

    /// Who sent a request to bonded's own API (`/bonded/v1`): HTTP Basic with a password
    /// or API token, or anonymous. Bearer tokens from `/token` carry registry scopes
    /// (`repository:NAME:ACTIONS`) and nothing else, so they authorise nothing here.
    pub async fn authenticate_api(
        &self,
        headers: &HeaderMap,
        source: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
        if bearer {
            return Err(self.unauthorized_api(
                "a bearer token from /token is for the registry API (/v2/) only; bonded's API at /bonded/v1 takes HTTP Basic with your password or an API token".into(),
            ));
        }
        let caller = self.authenticate(headers, source).await?;
        Ok(caller)
    }

    fn unauthorized(&self, headers: &HeaderMap, scope: Option<&str>, message: String) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).header(
            header::WWW_AUTHENTICATE,
            self.challenge(headers, scope, None),
        )
    }

    /// Refuses anonymous clients without a token when authentication is required, with
    /// the login challenge; `what` says what they were trying to do.
    pub fn require_login(
        &self,
        headers: &HeaderMap,
        caller: &Caller,
        what: &str,
    ) -> Result<(), ApiError> {
        if self.settings.mode == Mode::Enforced
            && caller.identity == Identity::Anonymous
            && caller.token.is_none()
        {
            return Err(self.unauthorized(
                headers,
                None,
                format!("authentication required {what}"),
            ));
        }
        Ok(())
    }

    /// Who sent the request: an account (Basic or bearer token) or anonymous. Bad
    /// credentials are refused (never downgraded to anonymous).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        source: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(Caller::anonymous(source));
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let Some((user, secret)) = basic_pair(rest) else {
                    return Err(self.unauthorized(
                        headers,
                        None,
                        "the Authorization header is not valid HTTP Basic (base64 of user:password)".into(),
                    ));
                };
                let (account, credential) = self.login(headers, &user, &secret, source).await?;
                Ok(Caller {
                    identity: Identity::Account(account),
                    token: None,
                    credential: Some(credential),
                    source,
                })
            }
            "bearer" => {
                let refused = |why: String, sub: &str| {
                    let net = source.map(ClientNetwork::of);
                    let who = if sub.is_empty() { "anonymous" } else { sub };
                    // Per source, account and reason: the reasons are few fixed messages,
                    // or name one of the account's own credentials.
                    self.record_refusal(
                        format!("bearer {who} {net:?} {why}"),
                        login_event(
                            who,
                            source,
                            Outcome::Denied,
                            format!("bearer token refused: {why}"),
                        ),
                    );
                    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why).header(
                        header::WWW_AUTHENTICATE,
                        self.challenge(headers, None, Some("invalid_token")),
                    )
                };
                let claims = jwt::verify(
                    &self.settings.token_key,
                    rest.trim(),
                    &self.settings.service,
                    now_unix(),
                )
                .map_err(|e| refused(e.to_string(), ""))?;
                let identity = if claims.sub.is_empty() {
                    Identity::Anonymous
                } else {
                    // A token outlives nothing: its account, and the password or API token
                    // it was made from, must still be what the account logs in with.
                    let dir = self.directory(DIRECTORY_TTL).await;
                    if let Err(why) =
                        dir.credential_live(&claims.sub, claims.cred.as_deref(), now_unix())
                    {
                        return Err(refused(why, &claims.sub));
                    }
                    Identity::Account(claims.sub.clone())
                };
                Ok(Caller {
                    identity,
                    token: Some(claims),
                    credential: None,
                    source,
                })
            }
            _ => Err(self.unauthorized(
                headers,
                None,
                format!("unsupported authorization scheme '{scheme}': use Basic or Bearer"),
            )),
        }
    }

    /// Records a refusal that may repeat at any rate: the first per `key` (a source and
    /// what it ran into) and window goes to the journal, the rest are counted and reported
    /// by [`Auth::flush_refusals`].
    fn record_refusal(&self, key: String, event: AuditEvent) {
        if self.refusals.note(key, event.clone(), Instant::now()) {
            if let Err(err) = self.journal.record(&event) {
                tracing::error!(error = %err, "recording a refused login failed");
            }
        }
    }

    /// Reports the refusals counted in windows that have ended (every window with `all`,
    /// at shutdown): one record per source and window, with the count.
    pub fn flush_refusals(&self, all: bool) {
        for t in self.refusals.due(Instant::now(), all) {
            let mut e = t.first.clone();
            e.at = crate::db::format_at(time::OffsetDateTime::now_utc());
            e.reason = Some(format!(
                "{} more logins refused in the {} s after this source's first refusal ({})",
                t.more,
                t.span.as_secs(),
                t.first.reason.as_deref().unwrap_or("")
            ));
            if let Err(err) = self.journal.record(&e) {
                tracing::error!(error = %err, "recording a tally of refused logins failed");
            }
        }
    }

    /// Checks a username and password or API token. Failed passwords are limited per
    /// (account, address) and per address, and recorded; API tokens (256 random bits, not
    /// guessable) are never limited, so a password guesser cannot lock a robot out.
    pub async fn login(
        &self,
        headers: &HeaderMap,
        user: &str,
        secret: &str,
        source: Option<IpAddr>,
    ) -> Result<(String, Credential), ApiError> {
        let now = Instant::now();
        let is_token = crate::auth::token::ApiToken::parse(secret).is_some();
        // Every request carries its address; without one, all such share one bucket.
        let net = ClientNetwork::of(source.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));
        let pair = (user.to_string(), net);
        let limited = if is_token {
            None
        } else {
            self.failures_by_account
                .exhausted(&pair, now)
                .map(|s| (s, format!("'{user}' from {net}")))
                .or_else(|| {
                    self.failures_by_address
                        .exhausted(&net, now)
                        .map(|s| (s, format!("address {net}")))
                })
        };
        if let Some((retry, what)) = limited {
            let why = format!("too many failed logins for {what}");
            self.record_refusal(
                format!("limit {what}"),
                login_event(user, source, Outcome::Denied, why.clone()),
            );
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!("{why}; retry in {retry} s"),
            )
            .header(header::RETRY_AFTER, retry.to_string()));
        }
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(secret.as_bytes())
            .finalize()
            .into();
        let mut dir = self.directory(DIRECTORY_TTL).await;
        if let Some(known) = self.remembered(&dir, &key) {
            return Ok(known);
        }
        let verify = |dir: Arc<Directory>| {
            let (user, secret) = (user.to_string(), secret.to_string());
            async move {
                tokio::task::spawn_blocking(move || dir.login(&user, &secret, now_unix()))
                    .await
                    .unwrap_or(Err(LoginError::UnknownAccount))
            }
        };
        let mut result = verify(dir.clone()).await;
        if result.is_err() {
            // The account, password or token may be newer than this copy (changed by
            // `bonded user|token` a moment ago): look again before refusing. Failures are
            // rate limited, so this cannot be used to load the database.
            let fresh = self.directory(Duration::ZERO).await;
            if !Arc::ptr_eq(&fresh, &dir) {
                dir = fresh;
                result = verify(dir.clone()).await;
            }
        }
        match result {
            Ok((account, credential)) => {
                if let Some(hash) = dir
                    .accounts
                    .get(&account)
                    .and_then(|a| a.password_hash.clone())
                {
                    if crate::auth::token::ApiToken::parse(secret).is_none() {
                        let mut cache = self.passwords.lock().unwrap_or_else(|p| p.into_inner());
                        if cache.len() >= PASSWORD_CACHE_MAX {
                            cache.clear();
                        }
                        cache.insert(key, (account.clone(), hash, Instant::now()));
                    }
                }
                let _ = self
                    .db
                    .audit(&[login_event(
                        &account,
                        source,
                        Outcome::Ok,
                        "credentials verified".into(),
                    )])
                    .await;
                Ok((account, credential))
            }
            Err(why) => {
                tracing::info!(user, source = ?source, reason = %why, "login refused");
                let event = login_event(user, source, Outcome::Denied, why.to_string());
                if is_token {
                    // Not limited, so not bounded in number: tallied per address and reason
                    // (a reason names the token: revoked, expired, or unknown).
                    self.record_refusal(format!("token {net} {why}"), event);
                } else {
                    self.failures_by_account.check(pair, now);
                    self.failures_by_address.check(net, now);
                    // At most the limits' worth per address and window.
                    let _ = self.db.audit(&[event]).await;
                }
                Err(self.unauthorized(
                    headers,
                    None,
                    format!("invalid username or password for '{user}'"),
                ))
            }
        }
    }

    /// A password verified recently against the hash the account still has.
    fn remembered(&self, dir: &Directory, key: &[u8; 32]) -> Option<(String, Credential)> {
        let cache = self.passwords.lock().unwrap_or_else(|p| p.into_inner());
        let (account, hash, at) = cache.get(key)?;
        let current = dir.accounts.get(account)?.password_hash.as_ref()?;
        (at.elapsed() < PASSWORD_CACHE_TTL && current == hash).then(|| {
            (
                account.clone(),
                Credential::Password {
                    fingerprint: crate::auth::password::fingerprint(hash),
                },
            )
        })
    }

    /// Whether `caller` may do `action` on `repo` by its roles (ignoring token scopes).
    pub async fn holds(&self, caller: &Caller, repo: &str, action: Action) -> bool {
        if self.settings.mode == Mode::Open && action != Action::Admin {
            return true;
        }
        let dir = self.directory(DIRECTORY_TTL).await;
        if dir.allows(&caller.identity, repo, action) {
            return true;
        }
        self.directory(DIRECTORY_RECHECK)
            .await
            .allows(&caller.identity, repo, action)
    }

    /// Allows `action` on `repo`, or says why not: 401 with a challenge for the scope
    /// when logging in (or a token with more scope) could help, 403 when it cannot.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        caller: &Caller,
        repo: &str,
        action: Action,
    ) -> Result<(), ApiError> {
        let word = action.scope_word();
        let scope = match action {
            Action::Pull => format!("repository:{repo}:pull"),
            Action::Delete => format!("repository:{repo}:delete"),
            _ => format!("repository:{repo}:pull,push"),
        };
        if self.holds(caller, repo, action).await {
            match &caller.token {
                Some(t) if self.settings.mode == Mode::Enforced && !t.grants(repo, word) => {
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHORIZED",
                        format!("the bearer token does not grant {word} on {repo}; request a token for {scope}"),
                    )
                    .header(
                        header::WWW_AUTHENTICATE,
                        self.challenge(headers, Some(&scope), Some("insufficient_scope")),
                    ))
                }
                _ => Ok(()),
            }
        } else if caller.identity == Identity::Anonymous {
            Err(self.unauthorized(
                headers,
                Some(&scope),
                format!("authentication required to {word} {repo}: log in with an account that has a role on it"),
            ))
        } else {
            let dir = self.directory(DIRECTORY_TTL).await;
            let name = caller.identity.name();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!(
                    "'{name}' may not {} {repo}: its roles are {}",
                    describe(action),
                    dir.describe_grants(&caller.identity)
                ),
            )
            .detail(json!({ "account": name, "repository": repo, "action": word })))
        }
    }

    /// Refuses anonymous callers of bonded's own API, with a Basic challenge; `what` says
    /// what they were trying to do.
    pub fn require_api_login(&self, caller: &Caller, what: &str) -> Result<(), ApiError> {
        if self.settings.mode == Mode::Enforced && caller.identity == Identity::Anonymous {
            return Err(self.unauthorized_api(format!(
                "authentication required {what}: log in with HTTP Basic (your password or an API token)"
            )));
        }
        Ok(())
    }

    /// The catalog, registry-wide: a bearer token must have been issued for
    /// `registry:catalog:*` (401 `insufficient_scope` naming it otherwise); HTTP Basic and
    /// anonymous callers list what their roles let them pull.
    pub fn authorize_catalog(&self, headers: &HeaderMap, caller: &Caller) -> Result<(), ApiError> {
        match &caller.token {
            Some(t) if self.settings.mode == Mode::Enforced && !t.grants_catalog() => {
                let scope = "registry:catalog:*";
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    format!("the bearer token was not issued for the catalog; request a token for {scope}"),
                )
                .header(
                    header::WWW_AUTHENTICATE,
                    self.challenge(headers, Some(scope), Some("insufficient_scope")),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Registry-wide administration (accounts, trust configuration, the audit trail), on
    /// bonded's own API.
    pub async fn authorize_admin(&self, caller: &Caller) -> Result<(), ApiError> {
        let dir = self.directory(DIRECTORY_RECHECK).await;
        if dir.allows_everywhere(&caller.identity, Action::Admin) {
            return Ok(());
        }
        match caller.identity {
            Identity::Anonymous => Err(self.unauthorized_api(
                "authentication required: this needs an account with the admin role on '*' (HTTP Basic, password or API token)".into(),
            )),
            Identity::Account(ref name) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!(
                    "'{name}' is not an administrator (admin on '*'): its roles are {}",
                    dir.describe_grants(&caller.identity)
                ),
            )),
        }
    }

    /// `GET /token`: the Docker registry token flow. Credentials (HTTP Basic) are checked,
    /// and each requested scope is granted as far as the caller's roles allow (possibly
    /// not at all: the registry then refuses the request the token is used for).
    /// `service` of a token request, when given, must name this registry's token service.
    fn check_service(&self, params: &[(String, String)]) -> Result<(), ApiError> {
        match params.iter().find(|(k, _)| k == "service").map(|(_, v)| v) {
            Some(service) if service != &self.settings.service => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!(
                    "this token service is '{}', not '{service}'",
                    self.settings.service
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `GET /token` (Distribution's token spec): credentials in HTTP Basic, scopes in the
    /// query; anonymous callers get a token with what anonymous may do.
    pub async fn issue_token(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
        source: Option<IpAddr>,
    ) -> Result<serde_json::Value, ApiError> {
        self.check_service(query)?;
        let caller = match headers.get(header::AUTHORIZATION) {
            // A bearer token cannot buy another token.
            Some(v)
                if v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().starts_with("bearer ")) =>
            {
                return Err(self.unauthorized(
                    headers,
                    None,
                    "log in with a username and password or API token (HTTP Basic) to get a token"
                        .into(),
                ));
            }
            Some(_) => self.authenticate(headers, source).await?,
            None => Caller::anonymous(source),
        };
        Ok(self.grant(&caller, query).await?.0)
    }

    /// `POST /token` (Distribution's OAuth2 token spec, which containerd, and so
    /// Kubernetes nodes, try first): a form with `grant_type=password`, `username`,
    /// `password` (or an API token) and `scope`. Refresh tokens are not issued, so the
    /// `refresh_token` grant is refused with 400, on which clients fall back to `GET`.
    pub async fn issue_oauth_token(
        &self,
        headers: &HeaderMap,
        form: &[(String, String)],
        source: Option<IpAddr>,
    ) -> Result<serde_json::Value, ApiError> {
        self.check_service(form)?;
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let invalid = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", why);
        match get("grant_type") {
            Some("password") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "grant_type '{other}' is not supported: use grant_type=password, or GET /token with HTTP Basic"
                )))
            }
            None => return Err(invalid("the form has no grant_type".into())),
        }
        let (Some(user), Some(secret)) = (get("username"), get("password")) else {
            return Err(invalid(
                "grant_type=password needs username and password".into(),
            ));
        };
        let (account, credential) = self.login(headers, user, secret, source).await?;
        let caller = Caller {
            identity: Identity::Account(account),
            token: None,
            credential: Some(credential),
            source,
        };
        let (mut answer, granted) = self.grant(&caller, form).await?;
        // OAuth2 answers name the scope granted (RFC 6749 5.1).
        answer["scope"] = json!(granted.join(" "));
        Ok(answer)
    }

    /// A token for `caller` carrying the requested scopes (the `scope` parameters of
    /// `params`, each holding space-separated scopes) as far as the caller's roles allow;
    /// and the scopes granted, with at least one action each.
    async fn grant(
        &self,
        caller: &Caller,
        params: &[(String, String)],
    ) -> Result<(serde_json::Value, Vec<String>), ApiError> {
        let mut access = Vec::new();
        for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
            // A scope parameter may hold several space-separated scopes.
            for one in scope.split(' ').filter(|s| !s.is_empty()) {
                let Some(requested) = jwt::Access::parse_scope(one) else {
                    continue;
                };
                let mut granted = Vec::new();
                // Rights only on names that can be repositories ('../x' or 'UPPER' get none).
                let valid_name = requested.name.parse::<crate::oci::RepositoryName>().is_ok();
                if requested.kind == "repository" && valid_name {
                    let wanted: Vec<&str> = if requested.actions.iter().any(|a| a == "*") {
                        vec!["pull", "push", "delete"]
                    } else {
                        requested.actions.iter().map(String::as_str).collect()
                    };
                    for word in wanted {
                        let action = match word {
                            "pull" => Action::Pull,
                            // Signers get "push"; what they push is checked per manifest.
                            "push" => Action::PushSignature,
                            "delete" => Action::Delete,
                            _ => continue,
                        };
                        if self.holds(caller, &requested.name, action).await {
                            granted.push(word.to_string());
                        }
                    }
                } else if requested.kind == "registry"
                    && requested.name == "catalog"
                    && caller.identity != Identity::Anonymous
                {
                    granted.push("*".to_string());
                }
                access.push(jwt::Access {
                    actions: granted,
                    ..requested
                });
            }
        }
        let now = now_unix();
        let claims = jwt::Claims {
            iss: jwt::ISSUER.into(),
            sub: match &caller.identity {
                Identity::Anonymous => String::new(),
                Identity::Account(n) => n.clone(),
            },
            aud: self.settings.service.clone(),
            exp: now + TOKEN_LIFETIME_SECS,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
            cred: caller.credential.as_ref().map(Credential::claim),
        };
        let token = jwt::issue(&self.settings.token_key, &claims);
        let issued_at = time::OffsetDateTime::from_unix_timestamp(now)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let granted: Vec<String> = claims
            .access
            .iter()
            .filter(|a| !a.actions.is_empty())
            .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
            .collect();
        let answer = json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_SECS,
            "issued_at": issued_at,
        });
        Ok((answer, granted))
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull from",
        // The least right any push needs (a signer's): lacking it, nothing can be pushed.
        Action::PushSignature => "push to",
        Action::Push => "push images to",
        Action::Delete => "delete from",
        Action::Admin => "administer",
    }
}
