//! The HTTP surface: OCI Distribution Spec v1.1 under `/v2/`. Thin by design: each handler
//! parses the request into OCI types, calls [`Registry`], and shapes the response.
//!
//! Routing: one `/v2/{*path}` route, split from the right into (repository name, endpoint),
//! so repository names of any depth work (`a/b/c/d/e/f/g/h/manifests/latest`).

mod account;
pub mod auth;
pub mod conn;
mod error;
mod lifecycle;
pub mod ratelimit;

pub use error::ApiError;

use crate::auth::{Action, Identity};
use crate::oci::{media_type, Digest, Reference, RepositoryName, Tag, MAX_MANIFEST_SIZE};
use crate::registry::{ChunkRange, JobState, Registry, RegistryError};
use crate::storage::ByteStream;
use auth::{Auth, Caller, Mode};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;
use error::upload_range;
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use ratelimit::{ClientNetwork, Decision, PullLimiter};
use serde_json::json;
use std::ops::Range;
use std::sync::Arc;

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// Most entries one tag list or catalog page returns; more come through `Link`.
const PAGE_LIMIT: u32 = 10_000;

type Reg = State<Arc<Registry>>;

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// What the router needs besides the registry.
#[derive(Clone)]
pub struct Options {
    pub auth: Arc<Auth>,
    /// Manifest GETs per source address of anonymous clients.
    pub pull_limit_anonymous: Option<Arc<PullLimiter>>,
    /// Manifest GETs per account.
    pub pull_limit_account: Option<Arc<PullLimiter>>,
    /// Manifest GETs per account holding a role on the repository (the highest role
    /// held there picks its limiter; without one, `pull_limit_account` applies).
    pub pull_limit_roles: Vec<(crate::auth::Role, Arc<PullLimiter>)>,
    /// How long a client has to send a body read whole (manifest, API request, token form).
    pub body_timeout: std::time::Duration,
}

/// The registry's HTTP router.
pub fn router(registry: Arc<Registry>, options: Options) -> Router {
    Router::new()
        .route("/v2", get(base))
        .route("/v2/", get(base))
        .route("/v2/{*path}", any(dispatch))
        .route("/token", get(token).post(oauth_token))
        .route("/bonded/v1/{*path}", any(bonded_api))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Whatever no route takes still gets an OCI error body, not an empty one.
        .fallback(no_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(
            |mut res: Response| async move {
                res.headers_mut()
                    .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
                res
            },
        ))
        .layer(axum::Extension(options))
        .layer(axum::middleware::from_fn_with_state(
            registry.metrics().clone(),
            crate::metrics::track,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(registry)
}

type Opts = axum::Extension<Options>;

/// `GET /healthz`: the process is alive and serving. Unauthenticated, never audited.
async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// `GET /readyz`: 200 when the database and the blob store can be reached, 503 naming
/// what cannot. Unauthenticated (a load balancer asks it), never audited, and it says
/// nothing a client could not learn from a failing request.
async fn readyz(State(reg): Reg) -> Response {
    let r = reg.readiness().await;
    let part = |e: &Option<String>| match e {
        None => json!({"status": "ok"}),
        Some(why) => json!({"status": "unavailable", "reason": why}),
    };
    let body = json!({
        "status": if r.ready() { "ok" } else { "unavailable" },
        "database": part(&r.database),
        "blobStore": part(&r.blob_store),
    });
    if !r.ready() {
        tracing::warn!(database = ?r.database, blob_store = ?r.blob_store, "not ready");
    }
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The query string's key-value pairs, decoded, repeated keys kept.
fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The client's address: as the connection layer worked it out ([`conn::ClientAddr`],
/// which follows trusted proxies), else the peer's.
fn source_of(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<conn::ClientAddr>()
        .map(|c| c.0)
        .or_else(|| {
            req.extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// The client of a request, for the audit trail.
fn client_of(caller: &Caller) -> crate::registry::Client {
    crate::registry::Client {
        actor: caller.identity.name().to_string(),
        source: caller.source.map(|s| s.to_string()),
    }
}

/// Charges a manifest pull to its client's bucket (its account, or its address when
/// anonymous): the `RateLimit-*` headers to send when allowed, 429 `TOOMANYREQUESTS` with
/// `Retry-After` when not.
async fn charge_pull(
    options: &Options,
    caller: &Caller,
    repo: &str,
) -> Result<Vec<(HeaderName, String)>, ApiError> {
    let by_role = match &caller.identity {
        Identity::Account(_) if !options.pull_limit_roles.is_empty() => {
            let dir = options.auth.directory(auth::DIRECTORY_TTL).await;
            let held = dir.roles_on(&caller.identity, repo);
            options
                .pull_limit_roles
                .iter()
                .filter(|(role, _)| held.contains(role))
                .max_by_key(|(role, _)| *role)
                .map(|(role, l)| (Some(l.clone()), *role))
        }
        _ => None,
    };
    // The bucket's name is only made when there is a limit to charge (no allocation on
    // an unlimited pull).
    let (limiter, who) = match (&caller.identity, by_role) {
        (Identity::Account(name), Some((l, role))) => {
            (l, Some(format!("account '{name}' ({role})")))
        }
        (Identity::Account(_), None) => (options.pull_limit_account.clone(), None),
        (Identity::Anonymous, _) => (options.pull_limit_anonymous.clone(), None),
    };
    let Some(limiter) = limiter else {
        return Ok(Vec::new());
    };
    let who = who.unwrap_or_else(|| match &caller.identity {
        Identity::Account(name) => format!("account '{name}'"),
        // Every request carries its address (ConnectInfo); without one, all such clients
        // share one bucket rather than escaping the limit. IPv6 clients count per /64.
        Identity::Anonymous => caller
            .source
            .map(|s| ClientNetwork::of(s).to_string())
            .unwrap_or_else(|| "0.0.0.0".into()),
    });
    let rate = limiter.rate();
    let policy = format!("{};w={}", rate.count, rate.window.as_secs());
    match limiter.check(who.clone(), std::time::Instant::now()) {
        Decision::Allowed {
            remaining,
            reset_secs,
        } => Ok(vec![
            (RATELIMIT_LIMIT, rate.count.to_string()),
            (RATELIMIT_REMAINING, remaining.to_string()),
            (RATELIMIT_RESET, reset_secs.to_string()),
            (RATELIMIT_POLICY, policy),
        ]),
        Decision::Limited { retry_after_secs } => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            format!(
                "pull rate limit reached for {who}: {} manifest pulls per {} s; retry in {retry_after_secs} s",
                rate.count,
                rate.window.as_secs()
            ),
        )
        .detail(json!({ "limit": rate.count, "windowSeconds": rate.window.as_secs(), "retryAfterSeconds": retry_after_secs }))
        .header(header::RETRY_AFTER, retry_after_secs.to_string())
        .header(RATELIMIT_LIMIT, rate.count.to_string())
        .header(RATELIMIT_REMAINING, "0")
        .header(RATELIMIT_RESET, retry_after_secs.to_string())
        .header(RATELIMIT_POLICY, policy)),
    }
}

/// `/v2/`: 200 for clients that may use the registry, 401 with the login challenge for
/// anonymous ones when authentication is required (how clients discover where to log in).
async fn base(axum::Extension(options): Opts, req: Request) -> Response {
    let auth = &options.auth;
    let allowed = match auth.authenticate(req.headers(), source_of(&req)).await {
        Ok(caller) => auth.require_login(
            req.headers(),
            &caller,
            "to use this registry: log in (docker login, skopeo login, podman login)",
        ),
        Err(e) => Err(e),
    };
    match allowed {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /token`: bearer tokens for the Docker registry token flow.
async fn token(axum::Extension(options): Opts, req: Request) -> Response {
    let query = query_pairs(req.uri());
    token_response(
        options
            .auth
            .issue_token(req.headers(), &query, source_of(&req))
            .await,
    )
}

/// A token answer is never cached.
fn token_response(answer: Result<serde_json::Value, ApiError>) -> Response {
    match answer {
        Ok(body) => no_store_json(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// JSON that caches must not keep (tokens, passwords, account data).
fn no_store_json(status: StatusCode, value: serde_json::Value) -> Response {
    json_response(
        status,
        vec![
            (header::CONTENT_TYPE, "application/json".into()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        value,
    )
}

/// The filter of an audit query. One that cannot be read is refused, not ignored: an
/// ignored bound would answer a different question than the one asked.
fn audit_filter(query: &[(String, String)]) -> Result<crate::db::AuditFilter, ApiError> {
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let invalid = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "AUDIT_QUERY_INVALID", why);
    let number = |k: &str| -> Result<Option<i64>, ApiError> {
        get(k)
            .map(|v| {
                v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                    invalid(format!("{k} must be a non-negative integer, got '{v}'"))
                })
            })
            .transpose()
    };
    let time = |k: &str| {
        get(k)
            .map(|v| crate::db::parse_time(&v).map_err(|e| invalid(format!("{k}: {e}"))))
            .transpose()
    };
    let outcome = get("outcome");
    if let Some(o) = outcome
        .as_deref()
        .filter(|o| !matches!(*o, "ok" | "denied"))
    {
        return Err(invalid(format!(
            "outcome must be 'ok' or 'denied', got '{o}'"
        )));
    }
    // An action nobody records would silently match nothing.
    if let Some(a) = get("action") {
        a.parse::<crate::db::AuditAction>().map_err(invalid)?;
    }
    Ok(crate::db::AuditFilter {
        repository: get("repository"),
        digest: get("digest"),
        actor: get("actor"),
        action: get("action"),
        outcome,
        since: time("since")?,
        until: time("until")?,
        after: number("after")?,
        limit: number("limit")?.unwrap_or(100).clamp(1, 1000) as u32,
    })
}

/// `POST /token`: the OAuth2 form of the token request.
async fn oauth_token(axum::Extension(options): Opts, req: Request) -> Response {
    let source = source_of(&req);
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, 64 << 10).collect();
    let form = match tokio::time::timeout(options.body_timeout, read).await {
        Err(_) => return body_too_slow(options.body_timeout).into_response(),
        Ok(Ok(c)) => form_urlencoded::parse(&c.to_bytes())
            .into_owned()
            .collect::<Vec<_>>(),
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "the token request form could not be read (at most 64 KiB, URL-encoded)",
            )
            .into_response()
        }
    };
    token_response(
        options
            .auth
            .issue_oauth_token(&parts.headers, &form, source)
            .await,
    )
}

async fn no_endpoint(req: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        format!(
            "no endpoint at {}: the registry API is under /v2/, bonded's own under /bonded/v1/",
            req.uri().path()
        ),
    )
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!("{} is not supported on {}", req.method(), req.uri().path()),
    )
    .into_response()
}

/// What a `/v2/...` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Splits the part of the path after `/v2/` into name and endpoint, from the right: the
/// last path segment (reference, digest, upload id) never contains a '/'.
fn route(path: &str) -> Option<Endpoint<'_>> {
    if path == "_catalog" {
        return Some(Endpoint::Catalog);
    }
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some(Endpoint::Tags(name));
    }
    if let Some(name) = path
        .strip_suffix("/blobs/uploads/")
        .or_else(|| path.strip_suffix("/blobs/uploads"))
    {
        return Some(Endpoint::UploadStart(name));
    }
    let (head, last) = path.rsplit_once('/')?;
    if last.is_empty() {
        return None;
    }
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return Some(Endpoint::Upload(name, last));
    }
    if let Some(name) = head.strip_suffix("/manifests") {
        return Some(Endpoint::Manifest(name, last));
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return Some(Endpoint::Blob(name, last));
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        return Some(Endpoint::Referrers(name, last));
    }
    None
}

async fn dispatch(State(reg): Reg, axum::Extension(options): Opts, req: Request) -> Response {
    let caller = match options
        .auth
        .authenticate(req.headers(), source_of(&req))
        .await
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let result = crate::registry::CLIENT
        .scope(client_of(&caller), handle(reg, options, caller, req))
        .await;
    match result {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

/// The request, taken apart; the body travels separately (it is not `Sync`).
struct Ctx {
    method: Method,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    body_timeout: std::time::Duration,
}

impl Ctx {
    fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn query_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn content_length(&self) -> Option<u64> {
        self.header(header::CONTENT_LENGTH)?.trim().parse().ok()
    }

    fn content_range(&self) -> Result<Option<ChunkRange>, ApiError> {
        match self.header(header::CONTENT_RANGE) {
            Some(v) => Ok(Some(ChunkRange::parse(v).map_err(RegistryError::from)?)),
            None => Ok(None),
        }
    }
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(TryStreamExt::map_err(
        body.into_data_stream(),
        std::io::Error::other,
    ))
}

/// What an endpoint does to its repository, for authorisation. Manifest pushes need the
/// least push right here (signers push signatures); images need more, checked once the
/// manifest is read.
fn action_of(endpoint: &Endpoint<'_>, method: &Method) -> Option<Action> {
    let read = method == Method::GET || method == Method::HEAD;
    match endpoint {
        Endpoint::Catalog => None,
        Endpoint::Tags(_) | Endpoint::Referrers(..) => Some(Action::Pull),
        Endpoint::Manifest(..) | Endpoint::Blob(..) if read => Some(Action::Pull),
        Endpoint::Manifest(..) | Endpoint::Blob(..) if method == Method::DELETE => {
            Some(Action::Delete)
        }
        Endpoint::Manifest(..) | Endpoint::UploadStart(_) | Endpoint::Upload(..) => {
            Some(Action::PushSignature)
        }
        Endpoint::Blob(..) => None,
    }
}

fn repository_of<'a>(endpoint: &Endpoint<'a>) -> Option<&'a str> {
    match endpoint {
        Endpoint::Catalog => None,
        Endpoint::Tags(n)
        | Endpoint::Manifest(n, _)
        | Endpoint::Blob(n, _)
        | Endpoint::UploadStart(n)
        | Endpoint::Upload(n, _)
        | Endpoint::Referrers(n, _) => Some(n),
    }
}

async fn handle(
    reg: Arc<Registry>,
    options: Options,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let auth = options.auth.clone();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix("/v2/").unwrap_or("");
    let endpoint = route(path).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("no registry endpoint at {}", parts.uri.path()),
        )
    })?;
    let query = query_pairs(&parts.uri);
    let ctx = Ctx {
        method: parts.method,
        headers: parts.headers,
        query,
        body_timeout: options.body_timeout,
    };
    let name = |n: &str| n.parse::<RepositoryName>().map_err(ApiError::from);
    let method = ctx.method.clone();
    if let (Some(repo), Some(action)) = (repository_of(&endpoint), action_of(&endpoint, &method)) {
        let repo = name(repo)?;
        if let Err(e) = auth
            .authorize(&ctx.headers, &caller, repo.as_str(), action)
            .await
        {
            if e.status == StatusCode::FORBIDDEN {
                reg.record_access_denied(repo.as_str(), &e.message);
            }
            return Err(e);
        }
    }
    match (endpoint, method) {
        (Endpoint::Catalog, Method::GET) => catalog(&reg, &auth, &caller, &ctx).await,
        (Endpoint::Tags(n), Method::GET) => tags(&reg, &name(n)?, &ctx).await,
        (Endpoint::Manifest(n, r), Method::GET | Method::HEAD) => {
            let (repo, reference) = (name(n)?, read_reference(n, r)?);
            let limit_headers = if ctx.method == Method::GET {
                charge_pull(&options, &caller, n).await.inspect_err(|e| {
                    reg.record_pull_refused(&repo, &reference, &e.message);
                })?
            } else {
                Vec::new()
            };
            // A manifest pending signatures is for those who may sign or push it, not for
            // readers: they see it once it is admitted. A tag waiting for signatures is
            // pulled by nobody (the answer names the digest to sign); its published
            // manifest, if any, is served until then.
            if let Reference::Digest(d) = &reference {
                if !auth.holds(&caller, n, Action::PushSignature).await
                    && reg.is_pending(&repo, d).await?
                {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "MANIFEST_UNKNOWN",
                        format!("manifest {d} in {n} is pending signatures; it can be pulled once its trust policy admits it"),
                    ));
                }
            }
            let mut res = manifest_get(&reg, &repo, &reference, &ctx).await?;
            for (k, v) in limit_headers {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    res.headers_mut().insert(k, v);
                }
            }
            Ok(res)
        }
        (Endpoint::Manifest(n, r), Method::PUT) => {
            let images_allowed = auth.holds(&caller, n, Action::Push).await;
            manifest_put(&reg, &name(n)?, r, &ctx, body, images_allowed).await
        }
        (Endpoint::Manifest(n, r), Method::DELETE) => manifest_delete(&reg, &name(n)?, r).await,
        (Endpoint::Blob(n, d), Method::GET | Method::HEAD) => {
            blob_get(&reg, &name(n)?, &parse_digest(d)?, &ctx).await
        }
        (Endpoint::Blob(n, d), Method::DELETE) => {
            let (n, d) = (name(n)?, parse_digest(d)?);
            reg.blob_delete(&n, &d).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Endpoint::UploadStart(n), Method::POST) => {
            upload_post(&reg, &auth, &caller, &name(n)?, &ctx, body).await
        }
        (Endpoint::Upload(n, id), Method::GET) => {
            let n = name(n)?;
            let len = reg.upload_len(&n, id).await?;
            Ok(upload_status(StatusCode::NO_CONTENT, &n, id, len))
        }
        (Endpoint::Upload(n, id), Method::PATCH) => {
            let n = name(n)?;
            let range = ctx.content_range()?;
            let declared = ctx.content_length();
            let len = reg
                .upload_append(&n, id, range, declared, body_stream(body))
                .await?;
            Ok(upload_status(StatusCode::ACCEPTED, &n, id, len))
        }
        (Endpoint::Upload(n, id), Method::PUT) => upload_put(&reg, &name(n)?, id, &ctx, body).await,
        (Endpoint::Upload(n, id), Method::DELETE) => {
            reg.upload_cancel(&name(n)?, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Endpoint::Referrers(n, d), Method::GET) => {
            referrers(&reg, &name(n)?, &parse_digest(d)?, &ctx).await
        }
        (_, m) => Err(ApiError::unsupported(format!(
            "{m} is not supported on {}",
            ctx_path(path)
        ))),
    }
}

fn ctx_path(path: &str) -> String {
    format!("/v2/{path}")
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| RegistryError::DigestInvalid(e).into())
}

fn respond(status: StatusCode, headers: Vec<(HeaderName, String)>, body: Body) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    res
}

// ---- blobs ---------------------------------------------------------------------------------

/// A blob read's `Range`, as [`crate::oci::range::byte_range`] reads it.
fn byte_range(value: &str, size: u64) -> Result<Option<Range<u64>>, RegistryError> {
    crate::oci::range::byte_range(value, size)
        .map_err(|e| RegistryError::RangeNotSatisfiable { size: e.size })
}

async fn blob_get(
    reg: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let size = reg.blob_size(name, digest).await?;
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (DOCKER_CONTENT_DIGEST, digest.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ];
    if ctx.method == Method::HEAD {
        headers.push((header::CONTENT_LENGTH, size.to_string()));
        return Ok(respond(StatusCode::OK, headers, Body::empty()));
    }
    let range = match ctx.header(header::RANGE) {
        Some(v) => byte_range(v, size)?,
        None => None,
    };
    let status = match &range {
        Some(r) => {
            headers.push((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end - 1, size),
            ));
            headers.push((header::CONTENT_LENGTH, (r.end - r.start).to_string()));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            headers.push((header::CONTENT_LENGTH, size.to_string()));
            StatusCode::OK
        }
    };
    let stream = reg.blob_read(name, digest, range).await?;
    Ok(respond(status, headers, Body::from_stream(stream)))
}

fn blob_created(name: &RepositoryName, digest: &Digest) -> Response {
    respond(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (DOCKER_CONTENT_DIGEST, digest.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

fn upload_status(status: StatusCode, name: &RepositoryName, id: &str, len: u64) -> Response {
    respond(
        status,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
            (header::RANGE, upload_range(len)),
            (DOCKER_UPLOAD_UUID, id.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

async fn upload_post(
    reg: &Registry,
    auth: &Auth,
    caller: &Caller,
    name: &RepositoryName,
    ctx: &Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(mount) = ctx.query("mount") {
        let digest = parse_digest(mount)?;
        let from = match ctx.query("from") {
            Some(f) => Some(f.parse::<RepositoryName>()?),
            None => None,
        };
        // Mount only from a repository the caller may read (knowing a digest is not
        // being allowed its bytes); without `from`, only on an open lab registry.
        let readable = match &from {
            Some(f) => {
                auth.holds(caller, f.as_str(), Action::Pull).await
                    && (auth.mode() == Mode::Open
                        || caller
                            .token
                            .as_ref()
                            .is_none_or(|t| t.grants(f.as_str(), "pull")))
            }
            None => auth.mode() == Mode::Open,
        };
        if readable
            && reg
                .blob_mount(name, &digest, from.as_ref())
                .await?
                .is_some()
        {
            return Ok(blob_created(name, &digest));
        }
        // Nothing to mount: fall through to an ordinary upload session, as the spec says.
    } else if let Some(d) = ctx.query("digest") {
        let digest = parse_digest(d)?;
        let declared = ctx.content_length();
        reg.blob_put(name, &digest, declared, body_stream(body))
            .await?;
        return Ok(blob_created(name, &digest));
    }
    let id = reg.upload_start(name).await?;
    Ok(upload_status(StatusCode::ACCEPTED, name, &id, 0))
}

async fn upload_put(
    reg: &Registry,
    name: &RepositoryName,
    id: &str,
    ctx: &Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = parse_digest(ctx.query("digest").ok_or(RegistryError::DigestMissing)?)?;
    let range = ctx.content_range()?;
    let declared = ctx.content_length();
    reg.upload_finish(name, id, &digest, range, declared, body_stream(body))
        .await?;
    Ok(blob_created(name, &digest))
}

// ---- manifests -----------------------------------------------------------------------------

/// A cached manifest's bytes as a response body, without copying them.
struct ManifestBytes(Arc<crate::db::StoredManifest>);

impl AsRef<[u8]> for ManifestBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0.content
    }
}

/// Whether an `Accept` header list admits `media_type`. No `Accept` admits everything.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut listed = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let item = item.split(';').next().unwrap_or("").trim();
            if item.is_empty() {
                continue;
            }
            listed = true;
            if item == media_type || item == "*/*" || item == "application/*" {
                return true;
            }
        }
    }
    !listed
}

/// A manifest `GET` or `HEAD`; a `GET` is recorded as a pull before it is answered.
async fn manifest_get(
    reg: &Registry,
    name: &RepositoryName,
    reference: &Reference,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let m = reg.manifest_get(name, reference).await?;
    if !accepts(&ctx.headers, &m.media_type) {
        return Err(RegistryError::NotAcceptable {
            reference: reference.to_string(),
            media_type: m.media_type.clone(),
        }
        .into());
    }
    let headers = vec![
        (header::CONTENT_TYPE, m.media_type.clone()),
        (header::CONTENT_LENGTH, m.content.len().to_string()),
        (header::ETAG, format!("\"{}\"", m.digest)),
        (DOCKER_CONTENT_DIGEST, m.digest.clone()),
    ];
    let body = if ctx.method == Method::HEAD {
        Body::empty()
    } else {
        reg.record_pull(name, reference, &m.digest)?;
        Body::from(Bytes::from_owner(ManifestBytes(m)))
    };
    Ok(respond(StatusCode::OK, headers, body))
}

async fn manifest_put(
    reg: &Registry,
    name: &RepositoryName,
    reference: &str,
    ctx: &Ctx,
    body: Body,
    images_allowed: bool,
) -> Result<Response, ApiError> {
    let reference: Reference = reference.parse()?;
    let extra_tags = ctx
        .query_all("tag")
        .map(|t| t.parse::<Tag>())
        .collect::<Result<Vec<_>, _>>()?;
    let content_type = ctx
        .header(header::CONTENT_TYPE)
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    let body = read_manifest_body(body, ctx.content_length(), ctx.body_timeout).await?;
    let pushed = reg
        .manifest_put(
            name,
            &reference,
            content_type.as_deref(),
            &body,
            extra_tags,
            images_allowed,
        )
        .await?;
    let mut headers = vec![
        (
            header::LOCATION,
            format!("/v2/{name}/manifests/{}", pushed.digest),
        ),
        (DOCKER_CONTENT_DIGEST, pushed.digest.to_string()),
        (header::CONTENT_LENGTH, "0".into()),
    ];
    if let Some(subject) = &pushed.subject {
        headers.push((OCI_SUBJECT, subject.to_string()));
    }
    for tag in &pushed.tags {
        headers.push((OCI_TAG, tag.to_string()));
    }
    if let Some(w) = &pushed.warning {
        // RFC 9111 warn-code 299 ("miscellaneous persistent warning"), as registries use it.
        headers.push((
            header::WARNING,
            format!("299 - \"{}\"", w.replace('"', "'")),
        ));
    }
    Ok(respond(StatusCode::CREATED, headers, Body::empty()))
}

/// Bytes of a request body that is read, and thrown away, after a manifest is found too
/// large: enough that an ordinary client finishes sending and reads the 413 instead of
/// seeing its connection reset, bounded so nobody can make the server read forever.
const OVERSIZE_DRAIN: u64 = 16 * 1024 * 1024;

/// Reads a manifest body of at most [`MAX_MANIFEST_SIZE`] bytes within `timeout`.
async fn read_manifest_body(
    mut body: Body,
    declared: Option<u64>,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    let limit = MAX_MANIFEST_SIZE;
    let too_large = |size: u64| -> ApiError {
        RegistryError::ManifestTooLarge {
            size: size as usize,
            limit,
        }
        .into()
    };
    if let Some(len) = declared.filter(|l| *l > OVERSIZE_DRAIN) {
        return Err(too_large(len));
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let mut seen = 0u64;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(body_too_slow(timeout)),
            Ok(None) => break,
            Ok(Some(frame)) => frame,
        };
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!("reading the manifest body failed: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > OVERSIZE_DRAIN {
            break;
        }
        if seen <= limit as u64 {
            buf.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 {
        return Err(too_large(declared.unwrap_or(seen)));
    }
    Ok(buf)
}

/// The reference of a manifest read or delete: a reference that is neither a tag nor a
/// digest names no manifest, so it is 404 `MANIFEST_UNKNOWN` (as the OCI conformance suite
/// asks), not a bad request; only a push under it is one.
fn read_reference(repo: &str, reference: &str) -> Result<Reference, ApiError> {
    reference.parse().map_err(|e: crate::oci::NameError| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("no manifest of {repo} is named '{reference}': {e}"),
        )
    })
}

async fn manifest_delete(
    reg: &Registry,
    name: &RepositoryName,
    reference: &str,
) -> Result<Response, ApiError> {
    let reference = read_reference(name.as_str(), reference)?;
    reg.manifest_delete(name, &reference).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---- bonded's own API ----------------------------------------------------------------------

/// bonded's own API, outside `/v2/`:
/// - `GET repositories/<name>/signatures/<digest>`: the signature store's records for a
///   manifest, with each check's outcome, and whether they satisfy the policy now;
/// - `GET repositories/<name>/pending`: manifests held until signed;
/// - `GET trust`, `GET trust/versions`: the trust configuration in force and its history;
/// - `GET trust/noncompliant?limit=N`: published images the configuration does not
///   accept (administrators);
/// - `PUT`/`DELETE trust/policy`, `PUT`/`DELETE trust/stores/<type>/<name>`: changes,
///   authorised by the admin bearer token.
async fn bonded_api(State(reg): Reg, axum::Extension(options): Opts, req: Request) -> Response {
    let source = source_of(&req);
    // The admin token (BONDED_ADMIN_TOKEN) is not a JWT: it is recognised first.
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (caller, admin_token) = if reg.is_admin_token(presented) {
        (
            Caller {
                identity: Identity::Account("admin-token".into()),
                token: None,
                credential: None,
                source,
            },
            true,
        )
    } else {
        match options.auth.authenticate_api(req.headers(), source).await {
            Ok(c) => (c, false),
            Err(e) => return e.into_response(),
        }
    };
    crate::registry::CLIENT
        .scope(
            client_of(&caller),
            bonded_api_inner(reg, options, caller, admin_token, req),
        )
        .await
}

/// `authorize` for bonded's own API: a 401 challenges for HTTP Basic, the only scheme
/// it takes.
async fn api_authorize(
    auth: &Auth,
    headers: &HeaderMap,
    caller: &Caller,
    repo: &str,
    action: Action,
) -> Result<(), ApiError> {
    match auth.authorize(headers, caller, repo, action).await {
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(auth.unauthorized_api(e.message)),
        other => other,
    }
}

async fn bonded_api_inner(
    reg: Arc<Registry>,
    options: Options,
    caller: Caller,
    admin_token: bool,
    req: Request,
) -> Response {
    let auth = options.auth.clone();
    let body_timeout = options.body_timeout;
    let (parts, body) = req.into_parts();
    let require_admin = || async {
        if admin_token {
            Ok(())
        } else {
            auth.authorize_admin(&caller).await
        }
    };
    let path = parts
        .uri
        .path()
        .trim_start_matches("/bonded/v1/")
        .to_string();
    let result = async {
        let ok = |value: serde_json::Value| {
            json_response(
                StatusCode::OK,
                vec![(header::CONTENT_TYPE, "application/json".into())],
                value,
            )
        };
        let answer = |c: crate::registry::TrustChange| crate::wire::TrustChangeAnswer {
            version: c.version,
            reevaluated_signatures: c.reevaluated,
            noncompliant: c.noncompliant,
        };
        let job_answer = |job: &crate::registry::TrustJob, state: JobState| {
            let (done, found) = job.progress();
            let (name, result, error) = match state {
                JobState::Running => ("running", None, None),
                JobState::Done(c) => ("done", Some(answer(c)), None),
                JobState::Superseded => ("superseded", None, None),
                JobState::Failed(e) => ("failed", None, Some(e)),
            };
            crate::wire::TrustJobAnswer {
                version: job.version,
                state: name.into(),
                reevaluated_so_far: done,
                signatures_found: found,
                result,
                error,
            }
        };
        // A change answers 200 with its result when the re-evaluation ends within the
        // wait, else 202 with the job's progress and where to follow it; the version is
        // in force from the moment it is recorded either way.
        let wait = reg.trust_change_wait();
        let changed = |job: Arc<crate::registry::TrustJob>| async move {
            // A zero wait answers 202 at once, even for a job that already ended.
            let state = if wait.is_zero() {
                JobState::Running
            } else {
                job.wait(wait).await
            };
            match state {
                JobState::Done(c) => Ok(ok(serde_json::to_value(answer(c)).expect("json"))),
                JobState::Failed(e) => Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    format!("version {} is in force, but re-evaluating the stored signatures failed: {e}", job.version),
                )),
                _ => Ok(json_response(
                    StatusCode::ACCEPTED,
                    vec![
                        (header::CONTENT_TYPE, "application/json".into()),
                        (header::LOCATION, "/bonded/v1/trust/job".into()),
                    ],
                    serde_json::to_value(job_answer(&job, job.state())).expect("json"),
                )),
            }
        };
        let method = parts.method.clone();
        // Who may ask is settled before a byte of the body is read: an anonymous or
        // unauthorised client cannot make the server buffer anything.
        if let Some(rest) = path
            .strip_prefix("account")
            .filter(|r| r.is_empty() || r.starts_with('/'))
        {
            auth.require_api_login(&caller, "to manage your account")?;
            let body = read_admin_body(body, body_timeout).await?;
            let (status, value) =
                account::handle(reg.metadata(), &auth, &caller, &method, rest, &body).await?;
            return Ok(no_store_json(status, value));
        }
        if account::is_administration(&path) {
            auth.authorize_admin(&caller).await?;
            let body = read_admin_body(body, body_timeout).await?;
            let (status, value) = account::administer(
                reg.metadata(),
                &auth,
                &caller,
                &method,
                &path,
                &query_pairs(&parts.uri),
                &body,
            )
            .await?;
            return Ok(no_store_json(status, value));
        }
        if lifecycle::is_lifecycle(&path) {
            // Listing the rules needs a login (a refused push names them); a collection's
            // report (every repository's digests) and changing anything, the admin role.
            if method == Method::GET && matches!(path.as_str(), "immutable" | "retention") {
                auth.require_api_login(&caller, "to read the immutability and retention rules")?;
            } else {
                require_admin().await?;
            }
            let body = read_admin_body(body, body_timeout).await?;
            let client = client_of(&caller);
            let actor = crate::registry::Actor {
                name: client.actor,
                source: client.source,
            };
            return lifecycle::handle(
                &reg,
                &actor,
                &method,
                &path,
                &query_pairs(&parts.uri),
                &body,
            )
            .await;
        }
        if let Some(name) = path
            .strip_prefix("repositories/")
            .and_then(|p| p.strip_suffix("/pending"))
        {
            if method != Method::GET {
                return Err(ApiError::unsupported(format!(
                    "{method} is not supported here"
                )));
            }
            let name: RepositoryName = name.parse()?;
            api_authorize(&auth, &parts.headers, &caller, name.as_str(), Action::Pull).await?;
            return Ok(ok(json!(reg.pending(&name).await?)));
        }
        if let Some(rest) = path.strip_prefix("repositories/") {
            let (name, digest) = rest
                .rsplit_once("/signatures/")
                .ok_or_else(|| unknown_endpoint(&path))?;
            if method != Method::GET {
                return Err(ApiError::unsupported(format!(
                    "{method} is not supported here"
                )));
            }
            let name: RepositoryName = name.parse()?;
            api_authorize(&auth, &parts.headers, &caller, name.as_str(), Action::Pull).await?;
            let digest = parse_digest(digest)?;
            let signatures = reg.signatures(&name, &digest).await?;
            let verdict = reg.verdict_now(&name, &digest).await?;
            return Ok(ok(json!({
                "repository": name.as_str(),
                "digest": digest,
                "verdict": verdict,
                "signatures": signatures,
            })));
        }
        match (method, path.as_str()) {
            (Method::GET, "audit") => {
                if auth.mode() == Mode::Enforced {
                    require_admin().await?;
                }
                let filter = audit_filter(&query_pairs(&parts.uri))?;
                let records = reg.audit(&filter).await?;
                let next = (records.len() == filter.limit as usize)
                    .then(|| records.last().map(|r| r.seq))
                    .flatten();
                Ok(ok(json!({ "records": records, "next": next })))
            }
            (Method::GET, "trust") => {
                auth.require_api_login(&caller, "to read the trust configuration")?;
                Ok(ok(reg.trust_snapshot().await?))
            }
            (Method::GET, "trust/noncompliant") => {
                // Names every repository and tag: for administrators only.
                require_admin().await?;
                let limit = noncompliant_limit(&query_pairs(&parts.uri))?;
                let report = reg.compliance(limit).await?;
                Ok(ok(serde_json::to_value(report).expect("serialisable")))
            }
            (Method::GET, "trust/job") => {
                require_admin().await?;
                match reg.trust_job() {
                    Some(job) => {
                        let state = job.state();
                        Ok(ok(serde_json::to_value(job_answer(&job, state)).expect("json")))
                    }
                    None => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NAME_UNKNOWN",
                        "no trust change was made through this server since it started",
                    )),
                }
            }
            (Method::GET, "trust/versions") => {
                auth.require_api_login(&caller, "to read the trust configuration")?;
                Ok(ok(reg.trust_history().await?))
            }
            (method, "trust/policy") if method == Method::PUT || method == Method::DELETE => {
                require_admin().await?;
                let text = if method == Method::PUT {
                    let bytes = read_admin_body(body, body_timeout).await?;
                    Some(String::from_utf8(bytes).map_err(|_| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "TRUST_CONFIG_INVALID",
                            "the policy is not UTF-8 JSON",
                        )
                    })?)
                } else {
                    None
                };
                changed(reg.replace_policy(text).await?).await
            }
            (method, p)
                if p.starts_with("trust/stores/")
                    && (method == Method::PUT || method == Method::DELETE) =>
            {
                require_admin().await?;
                let (kind, name) = p["trust/stores/".len()..]
                    .split_once('/')
                    .ok_or_else(|| unknown_endpoint(&path))?;
                let store: crate::trust::store::StoreRef =
                    format!("{kind}:{name}").parse().map_err(|e: String| {
                        ApiError::new(StatusCode::BAD_REQUEST, "TRUST_CONFIG_INVALID", e)
                    })?;
                if method == Method::PUT {
                    let bytes = read_admin_body(body, body_timeout).await?;
                    changed(reg.put_store(store, &bytes).await?).await
                } else {
                    changed(reg.delete_store(store).await?).await
                }
            }
            _ => Err(unknown_endpoint(&path)),
        }
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// `limit` of `GET trust/noncompliant`: how many images to list, 1 to
/// [`crate::registry::MAX_LISTED`], 100 when not given.
fn noncompliant_limit(query: &[(String, String)]) -> Result<usize, ApiError> {
    let max = crate::registry::MAX_LISTED;
    match query.iter().find(|(k, _)| k == "limit") {
        None => Ok(100),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!("limit must be a number from 1 to {max}, got '{v}'"),
            )),
        },
    }
}

fn unknown_endpoint(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        format!("no bonded API endpoint at /bonded/v1/{path}"),
    )
}

/// A policy, PEM bundle or API request: at most 1 MiB, within `deadline`
/// ([`Options::body_timeout`]).
async fn read_admin_body(body: Body, deadline: std::time::Duration) -> Result<Vec<u8>, ApiError> {
    let limit = 1 << 20;
    let read = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err(body_too_slow(deadline)),
        Ok(Ok(c)) => Ok(c.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("the body is larger than {limit} bytes"),
        )),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("reading the body failed: {e}"),
        )),
    }
}

/// 408: a body read whole that did not arrive within `deadline`.
fn body_too_slow(deadline: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "UNSUPPORTED",
        format!(
            "the request body did not arrive within {} s",
            deadline.as_secs()
        ),
    )
}

// ---- listings ------------------------------------------------------------------------------

/// `n` and `last` of a paginated listing, `n` capped at [`PAGE_LIMIT`].
fn page(ctx: &Ctx) -> Result<(u32, Option<&str>), ApiError> {
    let n = match ctx.query("n") {
        Some(v) => v.parse::<u32>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n must be a non-negative integer, got '{v}'"),
            )
        })?,
        None => PAGE_LIMIT,
    };
    Ok((n.min(PAGE_LIMIT), ctx.query("last")))
}

/// `Link` to the next page when this one is full.
fn next_link(path: &str, n: u32, items: &[String]) -> Vec<(HeaderName, String)> {
    match items.last() {
        Some(last) if n > 0 && items.len() == n as usize => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("n", &n.to_string())
                .append_pair("last", last)
                .finish();
            vec![(header::LINK, format!("<{path}?{q}>; rel=\"next\""))]
        }
        _ => Vec::new(),
    }
}

fn json_response(
    status: StatusCode,
    mut headers: Vec<(HeaderName, String)>,
    value: serde_json::Value,
) -> Response {
    let body = value.to_string();
    headers.push((header::CONTENT_LENGTH, body.len().to_string()));
    respond(status, headers, Body::from(body))
}

async fn tags(reg: &Registry, name: &RepositoryName, ctx: &Ctx) -> Result<Response, ApiError> {
    let (n, last) = page(ctx)?;
    let tags = if n == 0 {
        Vec::new()
    } else {
        reg.tags(name, Some(n), last).await?
    };
    let mut headers = next_link(&format!("/v2/{name}/tags/list"), n, &tags);
    headers.push((header::CONTENT_TYPE, "application/json".into()));
    Ok(json_response(
        StatusCode::OK,
        headers,
        json!({ "name": name.as_str(), "tags": tags }),
    ))
}

/// The catalog lists only what the caller may pull: the query itself is limited to the
/// caller's namespace patterns, so every page is full of visible names and `Link` names
/// the last of them, never a repository the caller may not see.
async fn catalog(
    reg: &Registry,
    auth: &Auth,
    caller: &Caller,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    auth.authorize_catalog(&ctx.headers, caller)?;
    let (n, last) = page(ctx)?;
    let dir = auth.directory(auth::DIRECTORY_TTL).await;
    let within = match auth.mode() {
        Mode::Open => None,
        Mode::Enforced => Some(dir.pull_patterns(&caller.identity)),
    };
    let listed = if n == 0 {
        Vec::new()
    } else {
        reg.catalog(Some(n), last, within.as_deref()).await?
    };
    // The same rule as every pull, once more: a name the query let through but the roles
    // do not cover is dropped (and ends nothing, since the page is then short).
    let repos: Vec<String> = listed
        .into_iter()
        .filter(|r| auth.mode() == Mode::Open || dir.allows(&caller.identity, r, Action::Pull))
        .collect();
    let mut headers = next_link("/v2/_catalog", n, &repos);
    headers.push((header::CONTENT_TYPE, "application/json".into()));
    Ok(json_response(
        StatusCode::OK,
        headers,
        json!({ "repositories": repos }),
    ))
}

/// Most referrers one page lists; more come through `Link`.
const REFERRERS_PAGE: u32 = 1000;

/// The referrers of a manifest, a page at a time (at most [`REFERRERS_PAGE`], or `n`), in
/// digest order: `Link` names the next page (`last=` the page's last digest, the filter
/// kept) while a page is full.
async fn referrers(
    reg: &Registry,
    name: &RepositoryName,
    subject: &Digest,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let artifact_type = ctx.query("artifactType").filter(|a| !a.is_empty());
    let limit = match ctx.query("n") {
        Some(v) => v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n must be a positive integer, got '{v}'"),
            )
        })?,
        None => REFERRERS_PAGE,
    }
    .min(REFERRERS_PAGE);
    let after = ctx.query("last").map(parse_digest).transpose()?;
    let found = reg
        .referrers(name, subject, artifact_type, after.as_ref(), limit)
        .await?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|r| r.digest.clone()))
        .flatten();
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(a) = r.artifact_type {
                d["artifactType"] = json!(a);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let mut headers = vec![(header::CONTENT_TYPE, media_type::OCI_INDEX.to_string())];
    if artifact_type.is_some() {
        headers.push((OCI_FILTERS_APPLIED, "artifactType".into()));
    }
    if let Some(last) = next {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if ctx.query("n").is_some() {
            q.append_pair("n", &limit.to_string());
        }
        if let Some(a) = artifact_type {
            q.append_pair("artifactType", a);
        }
        q.append_pair("last", &last);
        headers.push((
            header::LINK,
            format!(
                "</v2/{name}/referrers/{subject}?{}>; rel=\"next\"",
                q.finish()
            ),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        headers,
        json!({ "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_from_the_right_at_any_depth() {
        assert_eq!(route("_catalog"), Some(Endpoint::Catalog));
        assert_eq!(
            route("a/b/c/d/e/f/g/h/tags/list"),
            Some(Endpoint::Tags("a/b/c/d/e/f/g/h"))
        );
        assert_eq!(
            route("a/manifests/b/manifests/latest"),
            Some(Endpoint::Manifest("a/manifests/b", "latest"))
        );
        assert_eq!(route("x/blobs/uploads/"), Some(Endpoint::UploadStart("x")));
        assert_eq!(route("x/blobs/uploads"), Some(Endpoint::UploadStart("x")));
        assert_eq!(
            route("x/blobs/uploads/abc"),
            Some(Endpoint::Upload("x", "abc"))
        );
        assert_eq!(
            route("blobs/blobs/sha256:00"),
            Some(Endpoint::Blob("blobs", "sha256:00"))
        );
        assert_eq!(
            route("x/referrers/sha256:00"),
            Some(Endpoint::Referrers("x", "sha256:00"))
        );
        assert_eq!(route("x/unknown/y"), None);
        assert_eq!(route("x/manifests/"), None);
    }

    #[test]
    fn accept_lists_are_honoured() {
        let mut h = HeaderMap::new();
        assert!(accepts(&h, media_type::OCI_INDEX), "no Accept admits all");
        h.append(
            header::ACCEPT,
            HeaderValue::from_static(media_type::OCI_MANIFEST),
        );
        assert!(!accepts(&h, media_type::OCI_INDEX));
        h.append(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json;q=0.5"),
        );
        assert!(accepts(&h, media_type::OCI_INDEX));
    }
}
