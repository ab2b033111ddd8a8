//! `/bonded/v1/gc`, `/bonded/v1/scrub`, `/bonded/v1/immutable` and `/bonded/v1/retention`:
//! garbage collection, scrub, immutability and retention rules, for administrators.
//! Bodies and answers are the `wire` types the CLI shares.

use axum::http::{header, Method, StatusCode};
use axum::response::Response;

use super::error::ApiError;
use super::json_response;
use crate::registry::{Actor, GcOptions, Registry};
use std::sync::Arc;

/// How long `POST gc` waits for the run before answering 202 (follow with `GET gc`),
/// unless asked (`?wait=`).
const GC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn running() -> Response {
    json_response(
        StatusCode::ACCEPTED,
        vec![
            (header::CONTENT_TYPE, "application/json".into()),
            (header::CACHE_CONTROL, "no-store".into()),
            (header::LOCATION, "/bonded/v1/gc".into()),
        ],
        serde_json::to_value(wire::GcRunning {
            state: "running".into(),
        })
        .expect("wire types serialise"),
    )
}
use crate::wire;

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    json_response(
        status,
        vec![
            (header::CONTENT_TYPE, "application/json".into()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        serde_json::to_value(value).expect("wire types serialise"),
    )
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", message)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn dry_run(query: &[(String, String)]) -> Result<bool, ApiError> {
    match param(query, "dryRun") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(invalid(format!("dryRun must be true or false, got '{v}'"))),
    }
}

/// Whether `path` is one of these endpoints (the caller checks the admin role first).
pub fn is_lifecycle(path: &str) -> bool {
    matches!(
        path,
        "gc" | "immutable" | "scrub" | "retention" | "retention/run"
    )
}

pub async fn handle(
    reg: &Arc<Registry>,
    actor: &Actor,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Response, ApiError> {
    match (method, path) {
        (&Method::POST, "gc") => {
            let dry_run = dry_run(query)?;
            let grace = match param(query, "gracePeriod") {
                None => reg.gc_grace(),
                Some(v) => crate::config::parse_duration("gracePeriod", v, true)
                    .map_err(|e| invalid(e.to_string()))?,
            };
            // How long to wait for the report before answering 202 (at most a minute).
            let wait = match param(query, "wait") {
                None => GC_WAIT,
                Some(v) => crate::config::parse_duration("wait", v, true)
                    .map_err(|e| invalid(e.to_string()))?
                    .min(std::time::Duration::from_secs(60)),
            };
            match reg
                .gc_start(GcOptions { grace, dry_run }, actor.clone(), wait)
                .await?
            {
                Some(report) => Ok(json(StatusCode::OK, &report)),
                None => Ok(running()),
            }
        }
        (&Method::GET, "gc") => match reg.gc_state() {
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "no garbage collection was started through this server since it started",
            )),
            Some(None) => Ok(running()),
            Some(Some(Ok(report))) => Ok(json(StatusCode::OK, &report)),
            Some(Some(Err(e))) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                format!("the garbage collection failed: {e}"),
            )),
        },
        (&Method::POST, "scrub") => Ok(json(StatusCode::OK, &reg.scrub(actor).await?)),
        (&Method::GET, "immutable") => {
            let rules = reg
                .immutable_list()
                .await?
                .into_iter()
                .map(wire::ImmutableRule::from)
                .collect();
            Ok(json(StatusCode::OK, &wire::ImmutableRules { rules }))
        }
        (&Method::POST, "immutable") => {
            let rule: wire::ImmutableRule = serde_json::from_slice(body).map_err(|e| {
                invalid(format!(
                    "the body must be {{\"pattern\": ..., \"tags\": ...}}: {e}"
                ))
            })?;
            crate::registry::check_rule(&rule.pattern, &rule.tags).map_err(invalid)?;
            let changed = reg
                .immutable_set(&rule.pattern, &rule.tags, true, actor)
                .await?;
            let status = if changed {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, &wire::Changed { changed }))
        }
        (&Method::DELETE, "immutable") => {
            let (Some(pattern), Some(tags)) = (param(query, "pattern"), param(query, "tags"))
            else {
                return Err(invalid(
                    "DELETE immutable takes ?pattern=...&tags=...".into(),
                ));
            };
            crate::registry::check_rule(pattern, tags).map_err(invalid)?;
            let changed = reg.immutable_set(pattern, tags, false, actor).await?;
            if !changed {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    format!("no immutability rule for tags '{tags}' of '{pattern}'"),
                ));
            }
            Ok(json(StatusCode::OK, &wire::Changed { changed }))
        }
        (&Method::GET, "retention") => {
            let rules = reg
                .retention_list()
                .await?
                .into_iter()
                .map(wire::RetentionRule::from)
                .collect();
            Ok(json(StatusCode::OK, &wire::RetentionRules { rules }))
        }
        (&Method::POST, "retention") => {
            let rule: wire::RetentionRule = serde_json::from_slice(body).map_err(|e| {
                invalid(format!(
                    "the body must be {{\"pattern\": ..., \"keepLast\": N, \"keepTags\": GLOB?, \"untaggedAfterSeconds\": N?}}: {e}"
                ))
            })?;
            let rule = crate::db::RetentionRule {
                pattern: rule.pattern,
                keep_last: i64::from(rule.keep_last),
                keep_tags: rule.keep_tags,
                untagged_after: rule
                    .untagged_after_seconds
                    .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                created_at: 0,
                created_by: actor.name.clone(),
            };
            crate::registry::check_retention(
                &rule.pattern,
                rule.keep_last,
                rule.keep_tags.as_deref(),
                rule.untagged_after,
            )
            .map_err(invalid)?;
            let changed = reg.retention_set(&rule, actor).await?;
            Ok(json(StatusCode::OK, &wire::Changed { changed }))
        }
        (&Method::DELETE, "retention") => {
            let Some(pattern) = param(query, "pattern") else {
                return Err(invalid("DELETE retention takes ?pattern=...".into()));
            };
            if !reg.retention_remove(pattern, actor).await? {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    format!("no retention rule for '{pattern}'"),
                ));
            }
            Ok(json(StatusCode::OK, &wire::Changed { changed: true }))
        }
        (&Method::POST, "retention/run") => {
            let dry_run = dry_run(query)?;
            match reg.retention(dry_run, actor).await? {
                Some(report) => Ok(json(StatusCode::OK, &report)),
                None => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "DENIED",
                    "a garbage collection or retention run is in progress; try again when it ends (GET /bonded/v1/gc follows a collection)",
                )),
            }
        }
        (m, p) => Err(ApiError::unsupported(format!(
            "{m} is not supported on /bonded/v1/{p}"
        ))),
    }
}
