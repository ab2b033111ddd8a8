//! `/bonded/v1/account`: what a logged-in user may do for their own account without an
//! administrator: see it, change its password, and make and revoke personal API tokens
//! (for CI, or for clients that should not hold the password).
//!
//! - `GET account`: name, kind, roles, tokens (never their secrets).
//! - `PUT account/password` `{"password": NEW}`: needs a login with the current password.
//! - `POST account/tokens` `{"description", "expiresInDays"}`: 201 with the token, shown
//!   once; needs a login with the password.
//! - `DELETE account/tokens/<id>`: revokes one of the caller's own tokens.
//!
//! Changing the password or making a token needs the password itself (HTTP Basic), not an
//! API token or a bearer token: a leaked token must not be able to lock its owner out or
//! make itself a successor that outlives its revocation.

use super::auth::{Auth, Caller};
use super::ApiError;
use crate::auth::{password, token::ApiToken, Identity};
use crate::db::{format_unix, AuditEvent, Metadata};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// The longest a personal token may live.
const MAX_TOKEN_DAYS: u64 = 365;

/// Handles `account` and `account/...`; `rest` is the path after `account`.
pub async fn handle(
    db: &Metadata,
    auth: &Auth,
    caller: &Caller,
    headers: &HeaderMap,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    auth.require_login(headers, caller, "to manage your account")?;
    let Identity::Account(name) = &caller.identity else {
        // --open lab registries have anonymous callers only
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "log in to manage your account",
        ));
    };
    let event = |action: &str, reason: String| {
        AuditEvent::now(
            name,
            caller.source.map(|s| s.to_string()),
            action,
            "ok",
            Some(reason),
        )
    };
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
            require_password_login(headers)?;
            let new = field(body, "password")?;
            password::check_strength(&new).map_err(invalid)?;
            let hash = tokio::task::spawn_blocking(move || password::hash(&new))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(ApiError::internal)?;
            if !db
                .account_set_password(
                    name,
                    &hash,
                    event("user.passwd", format!("'{name}', by itself")),
                )
                .await?
            {
                return Err(gone(name));
            }
            // The old password stops working now, not at the next periodic re-read.
            auth.directory(Duration::ZERO).await;
            Ok((
                StatusCode::OK,
                json!({"name": name, "passwordChanged": true}),
            ))
        }
        (Method::POST, "/tokens") => {
            require_password_login(headers)?;
            let request: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| invalid(format!("the body is not JSON: {e}")))?
            };
            let description = request["description"].as_str().unwrap_or("").to_string();
            let days = match &request["expiresInDays"] {
                Value::Null => 90,
                v => v
                    .as_u64()
                    .filter(|d| (1..=MAX_TOKEN_DAYS).contains(d))
                    .ok_or_else(|| {
                        invalid(format!(
                            "expiresInDays must be a whole number from 1 to {MAX_TOKEN_DAYS}"
                        ))
                    })?,
            };
            let t = ApiToken::generate();
            let expires_at =
                time::OffsetDateTime::now_utc().unix_timestamp() + days as i64 * 86_400;
            if !db
                .token_add(
                    &t.id,
                    name,
                    &description,
                    &crate::auth::token::hash_secret(&t.secret),
                    expires_at,
                    event(
                        "token.create",
                        format!(
                            "token {} for '{name}', by itself, expires {}",
                            t.id,
                            format_unix(expires_at)
                        ),
                    ),
                )
                .await?
            {
                return Err(gone(name));
            }
            Ok((
                StatusCode::CREATED,
                json!({"id": t.id, "token": t.to_string(), "expiresAt": format_unix(expires_at)}),
            ))
        }
        (Method::DELETE, tail) if tail.starts_with("/tokens/") => {
            let id = &tail["/tokens/".len()..];
            if !db
                .token_revoke(
                    id,
                    Some(name),
                    event("token.revoke", format!("token {id} of '{name}', by itself")),
                )
                .await?
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    format!("'{name}' has no live token with id '{id}'"),
                ));
            }
            auth.directory(Duration::ZERO).await;
            Ok((StatusCode::OK, json!({"id": id, "revoked": true})))
        }
        (m, _) => Err(ApiError::unsupported(format!(
            "{m} is not supported on /bonded/v1/account{rest}"
        ))),
    }
}

/// Refuses unless the request logged in with HTTP Basic and a password (not a token).
fn require_password_login(headers: &HeaderMap) -> Result<(), ApiError> {
    if super::auth::basic_secret(headers).is_some_and(|s| ApiToken::parse(&s).is_none()) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "DENIED",
        "this needs a login with your password (HTTP Basic), not an API token or bearer token",
    ))
}

fn field(body: &[u8], key: &str) -> Result<String, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    v[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("the body has no \"{key}\" string")))
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
