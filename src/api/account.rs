//! Accounts over HTTP. `/bonded/v1/account`: what a logged-in user may do for their own
//! account without an administrator: see it, change its password, and make and revoke
//! personal API tokens (for CI, or for clients that should not hold the password). And,
//! in [`administer`], what administrators do to every account.
//!
//! - `GET account`: name, kind, roles, tokens (never their secrets).
//! - `PUT account/password` `{"password": NEW}`: needs a login with the current password.
//! - `POST account/tokens` `{"description", "expiresInDays"}`: 201 with the token, shown
//!   once; needs a login with the password.
//! - `DELETE account/tokens/<id>`: revokes one of the caller's own tokens.
//!
//! Making a credential (a password, an API token, a user account, which comes with a
//! password) needs the password itself (HTTP Basic), here and in [`administer`]: a leaked
//! API token must not be able to lock its owner out or make itself a successor that
//! outlives its revocation. Bearer tokens from `/token` never get this far (they carry
//! registry scopes only; see [`Auth::authenticate_api`]).

use super::auth::{Auth, Caller};
use super::ApiError;
use crate::admin::{Admin, NewToken};
use crate::auth::{AccountKind, Identity};
use crate::db::{format_unix, Metadata};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// The longest a personal token may live, in days (administrators may give robots up to
/// [`crate::admin::MAX_TOKEN_DAYS`]).
const MAX_PERSONAL_TOKEN_DAYS: u32 = 365;

/// Handles `account` and `account/...`; `rest` is the path after `account`.
pub async fn handle(
    db: &Metadata,
    auth: &Auth,
    caller: &Caller,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    auth.require_api_login(caller, "to manage your account")?;
    let Identity::Account(name) = &caller.identity else {
        // --open lab registries have anonymous callers only
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "log in to manage your account",
        ));
    };
    let admin = Admin::new(db, name, caller.source.map(|s| s.to_string()));
    match (method.clone(), rest) {
        (Method::GET, "") => {
            let account = db
                .accounts()
                .await?
                .into_iter()
                .find(|a| &a.name == name)
                .ok_or_else(|| gone(name))?;
            let tokens: Vec<Value> = db
                .tokens(Some(name))
                .await?
                .into_iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "description": t.description,
                        "createdAt": format_unix(t.created_at),
                        "expiresAt": format_unix(t.expires_at),
                        "revokedAt": t.revoked_at.map(format_unix),
                    })
                })
                .collect();
            Ok((
                StatusCode::OK,
                json!({"name": account.name, "kind": account.kind, "roles": account.grants, "tokens": tokens}),
            ))
        }
        (Method::PUT, "/password") => {
            require_password(caller, "changing your password")?;
            let new = field(body, "password")?;
            admin.set_password(name, Some(&new)).await?;
            // The old password stops working now, not at the next periodic re-read.
            auth.directory(Duration::ZERO).await;
            Ok((
                StatusCode::OK,
                json!({"name": name, "passwordChanged": true}),
            ))
        }
        (Method::POST, "/tokens") => {
            require_password(caller, "making an API token")?;
            let request = json_body(body)?;
            let new = admin
                .create_token(
                    name,
                    optional_str(&request, "description")?.unwrap_or(""),
                    token_days(&request, MAX_PERSONAL_TOKEN_DAYS)?,
                )
                .await?;
            Ok((StatusCode::CREATED, new_token_json(&new)))
        }
        (Method::DELETE, tail) if tail.starts_with("/tokens/") => {
            let id = &tail["/tokens/".len()..];
            admin.revoke_token(id, Some(name)).await?;
            auth.directory(Duration::ZERO).await;
            Ok((StatusCode::OK, json!({"id": id, "revoked": true})))
        }
        (m, _) => Err(ApiError::unsupported(format!(
            "{m} is not supported on /bonded/v1/account{rest}"
        ))),
    }
}

/// Refuses unless the request proved the caller's password (HTTP Basic with the password,
/// not an API token): `what` is the credential being made.
fn require_password(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.used_password() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "DENIED",
        format!("{what} needs a login with your password (HTTP Basic), not an API token: a token may not make credentials"),
    )
    .detail(json!({"account": caller.identity.name(), "check": "passwordRequired"})))
}

/// A JSON body (an empty one reads as `{}`).
fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))
}

fn field(body: &[u8], key: &str) -> Result<String, ApiError> {
    json_body(body)?[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("the body has no \"{key}\" string")))
}

/// A field that may be absent (or null) but, when present, must be a string: a password
/// sent as a number must not turn into "none given, generate one".
fn optional_str<'a>(request: &'a Value, key: &str) -> Result<Option<&'a str>, ApiError> {
    match &request[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(invalid(format!("\"{key}\" must be a string"))),
    }
}

/// `expiresInDays` of a token request: 90 when absent, at most `max`.
fn token_days(request: &Value, max: u32) -> Result<u32, ApiError> {
    match &request["expiresInDays"] {
        Value::Null => Ok(90),
        v => v
            .as_u64()
            .filter(|d| (1..=u64::from(max)).contains(d))
            .map(|d| d as u32)
            .ok_or_else(|| {
                invalid(format!(
                    "expiresInDays must be a whole number from 1 to {max}"
                ))
            }),
    }
}

/// The answer to a token made: the token itself, this once.
fn new_token_json(new: &NewToken) -> Value {
    json!({"id": new.token.id, "token": new.token.to_string(), "expiresAt": format_unix(new.expires_at)})
}

fn invalid(why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", why)
}

/// The account was removed while its request was in flight.
fn gone(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        format!("there is no account named '{name}' any more"),
    )
}

/// Whether `path` (after `/bonded/v1/`) is the administration API's.
pub fn is_administration(path: &str) -> bool {
    matches!(
        path.split('/').next(),
        Some("accounts" | "tokens" | "namespaces" | "quotas")
    )
}

/// The administrators' side (admin on `*`): every account, token, role, public namespace
/// and quota, as the CLI changes them on the server's database.
///
/// - `GET accounts`; `POST accounts` `{"name", "robot", "password"}` (a user without a
///   password gets a generated one, in the answer once); `DELETE accounts/<name>`;
///   `PUT accounts/<name>/password` `{"password"}` (or generated).
/// - `POST accounts/<name>/roles` `{"role", "pattern"}`;
///   `DELETE accounts/<name>/roles?role=&pattern=`.
/// - `POST accounts/<name>/tokens` `{"description", "expiresInDays"}`; `GET tokens`
///   (`?account=`); `DELETE tokens/<id>`.
/// - `GET namespaces/public`; `PUT|DELETE namespaces/public?pattern=`.
/// - `GET quotas` (with usage); `PUT quotas?pattern=` `{"bytes"}`; `DELETE quotas?pattern=`.
///
/// Changes apply at once (the account directory is re-read before answering).
#[allow(clippy::too_many_arguments)]
pub async fn administer(
    db: &Metadata,
    auth: &Auth,
    caller: &Caller,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    auth.authorize_admin(caller).await?;
    let admin = Admin::new(
        db,
        caller.identity.name(),
        caller.source.map(|s| s.to_string()),
    );
    let param = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| invalid(format!("the query has no '{k}'")))
    };
    let segments: Vec<&str> = path.split('/').collect();
    let answer = match (method.clone(), segments.as_slice()) {
        (Method::GET, ["accounts"]) => (StatusCode::OK, json!({"accounts": db.accounts().await?})),
        (Method::POST, ["accounts"]) => {
            let request = json_body(body)?;
            let name = request["name"]
                .as_str()
                .ok_or_else(|| invalid("the body has no \"name\" string".into()))?;
            let kind = match &request["robot"] {
                Value::Null | Value::Bool(false) => AccountKind::User,
                Value::Bool(true) => AccountKind::Robot,
                _ => return Err(invalid("\"robot\" must be true or false".into())),
            };
            if kind == AccountKind::User {
                require_password(caller, "adding a user (who gets a password)")?;
            }
            let generated = admin
                .add_account(name, kind, optional_str(&request, "password")?)
                .await?;
            let mut answer = json!({"name": name, "kind": kind.as_str()});
            if let Some(p) = generated {
                answer["password"] = json!(p);
            }
            (StatusCode::CREATED, answer)
        }
        (Method::DELETE, ["accounts", name]) => {
            admin.remove_account(name).await?;
            (StatusCode::OK, json!({"name": name, "removed": true}))
        }
        (Method::PUT, ["accounts", name, "password"]) => {
            require_password(caller, "setting a password")?;
            let request = json_body(body)?;
            let given = optional_str(&request, "password")?;
            let mut answer = json!({"name": name, "passwordChanged": true});
            if let Some(p) = admin.set_password(name, given).await? {
                answer["password"] = json!(p);
            }
            (StatusCode::OK, answer)
        }
        (Method::POST, ["accounts", name, "roles"]) => {
            let request = json_body(body)?;
            let (Some(role), Some(pattern)) =
                (request["role"].as_str(), request["pattern"].as_str())
            else {
                return Err(invalid("the body needs \"role\" and \"pattern\"".into()));
            };
            let what = admin.set_role(name, role, pattern, true).await?;
            (StatusCode::CREATED, json!({"granted": what}))
        }
        (Method::DELETE, ["accounts", name, "roles"]) => {
            let what = admin
                .set_role(name, param("role")?, param("pattern")?, false)
                .await?;
            (StatusCode::OK, json!({"revoked": what}))
        }
        (Method::POST, ["accounts", name, "tokens"]) => {
            require_password(caller, "making an API token")?;
            let request = json_body(body)?;
            let new = admin
                .create_token(
                    name,
                    optional_str(&request, "description")?.unwrap_or(""),
                    token_days(&request, crate::admin::MAX_TOKEN_DAYS)?,
                )
                .await?;
            (StatusCode::CREATED, new_token_json(&new))
        }
        (Method::GET, ["tokens"]) => {
            let account = query
                .iter()
                .find(|(k, _)| k == "account")
                .map(|(_, v)| v.as_str());
            (StatusCode::OK, json!({"tokens": db.tokens(account).await?}))
        }
        (Method::DELETE, ["tokens", id]) => {
            admin.revoke_token(id, None).await?;
            (StatusCode::OK, json!({"id": id, "revoked": true}))
        }
        (Method::GET, ["namespaces", "public"]) => (
            StatusCode::OK,
            json!({"public": db.directory().await?.public}),
        ),
        (m @ (Method::PUT | Method::DELETE), ["namespaces", "public"]) => {
            let pattern = param("pattern")?;
            let public = m == Method::PUT;
            let changed = admin.set_public(pattern, public).await?;
            (
                StatusCode::OK,
                json!({"pattern": pattern, "public": public, "changed": changed}),
            )
        }
        (Method::GET, ["quotas"]) => {
            let mut quotas = Vec::new();
            for (pattern, allowed) in db.quotas().await? {
                let used = db.namespace_usage(&pattern).await?;
                quotas
                    .push(json!({"pattern": pattern, "allowedBytes": allowed, "usedBytes": used}));
            }
            (StatusCode::OK, json!({"quotas": quotas}))
        }
        (Method::PUT, ["quotas"]) => {
            let pattern = param("pattern")?;
            let bytes = json_body(body)?["bytes"]
                .as_u64()
                .ok_or_else(|| invalid("the body needs \"bytes\", a whole number".into()))?;
            admin.set_quota(pattern, Some(bytes)).await?;
            (
                StatusCode::OK,
                json!({"pattern": pattern, "allowedBytes": bytes, "usedBytes": db.namespace_usage(pattern).await?}),
            )
        }
        (Method::DELETE, ["quotas"]) => {
            let pattern = param("pattern")?;
            admin.set_quota(pattern, None).await?;
            (StatusCode::OK, json!({"pattern": pattern, "removed": true}))
        }
        (m, _) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("no administration endpoint {m} /bonded/v1/{path}"),
            ))
        }
    };
    if *method != Method::GET {
        // Grants, revocations and removals apply to the next request, not in 2 s.
        auth.directory(Duration::ZERO).await;
    }
    Ok(answer)
}
