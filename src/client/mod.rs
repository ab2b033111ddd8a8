//! A small OCI registry client for the CLI: resolve references, read manifests and blobs
//! (digests checked on everything pulled), push blobs and manifests, list referrers (the
//! referrers API, falling back to the `sha256-<hex>` referrers tag schema).
//!
//! HTTPS by default (rustls; `--insecure` for self-signed lab servers, `--ca-file` for a
//! private CA); plain HTTP for loopback registries (`localhost`, `127.0.0.1`, `[::1]`) or
//! when asked. Logs in as the registry's `WWW-Authenticate` challenge asks: Basic, or a
//! Bearer token from its token service, with credentials from `--username` and
//! `--password-stdin` or a login stored by podman, skopeo or docker ([`credentials`]).

pub mod credentials;
pub mod net_error;

use crate::oci::{media_type, Algorithm, Descriptor, Digest, Reference, RepositoryName};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// `registry/repository[:tag|@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: RepositoryName,
    pub reference: Reference,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.registry,
            self.reference.in_repository(&self.repository)
        )
    }
}

impl FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("'{s}' is not an image reference ({why}); write REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST")
        };
        let (registry, rest) = s.split_once('/').ok_or_else(|| bad("no registry"))?;
        let (repo, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            (
                repo,
                Reference::Digest(
                    digest
                        .parse()
                        .map_err(|e: crate::oci::DigestError| bad(&e.to_string()))?,
                ),
            )
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (
                    repo,
                    Reference::Tag(
                        tag.parse()
                            .map_err(|e: crate::oci::NameError| bad(&e.to_string()))?,
                    ),
                ),
                _ => (rest, Reference::Tag("latest".parse().expect("valid tag"))),
            }
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repo
                .parse()
                .map_err(|e: crate::oci::NameError| bad(&e.to_string()))?,
            reference,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach registry {registry}: {}",
        unreachable_why(source, registry)
    )]
    Unreachable {
        registry: String,
        source: reqwest::Error,
    },
    #[error("{what}: the registry answered {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{0} was not found")]
    NotFound(String),
    #[error("the registry sent content for {expected} whose digest is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("registry {registry} asks for a login: give --username and --password-stdin, or log in first with `bonded login {registry}` (podman's and docker's logins are used too)")]
    NeedsLogin { registry: String },
    #[error("login to {registry} failed: wrong username or password")]
    LoginFailed { registry: String },
    #[error("cannot read CA file {0}")]
    CaFile(String),
    #[error("{what} from {registry} is larger than {limit} bytes, the most bonded reads of it")]
    TooLarge {
        what: String,
        registry: String,
        limit: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

fn unreachable_why(source: &reqwest::Error, registry: &str) -> String {
    let scheme = source.url().map_or("https", |u| u.scheme());
    net_error::describe(source, registry, scheme)
}

/// How to reach and log in to a registry.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientOptions {
    /// Talk plain HTTP (automatic for loopback registries)
    #[arg(long, global = true)]
    pub plain_http: bool,
    /// Accept any TLS certificate (self-signed lab registries)
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file as well as the system's
    #[arg(long, global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// User name to log in with (the password is read from standard input)
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// Read the password (or token) from standard input
    #[arg(long, global = true)]
    pub password_stdin: bool,
    /// A password already read (`bonded login`'s prompt on a terminal); never an option.
    #[arg(skip)]
    pub password: Option<String>,
}

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    registry: String,
    /// `user:password`, from the options or a stored login (podman's, docker's).
    credentials: Option<String>,
    /// The Authorization header to send, once logged in.
    authorization: std::sync::Mutex<Option<String>>,
}

/// The scheme and parameters of a `WWW-Authenticate` challenge.
pub fn parse_challenge(header: &str) -> (String, std::collections::HashMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = std::collections::HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    (scheme.to_ascii_lowercase(), params)
}

/// Blobs larger than this are uploaded in chunks of [`CHUNK`] bytes.
const CHUNKED_ABOVE: u64 = 64 << 20;
const CHUNK: u64 = 32 << 20;

/// `len` bytes of a file from `offset`, as a streamed request body.
async fn file_section(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<reqwest::Body, ClientError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let unreadable =
        |e: std::io::Error| ClientError::Invalid(format!("cannot read {}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(unreadable)?;
    Ok(reqwest::Body::wrap_stream(
        tokio_util::io::ReaderStream::with_capacity(file.take(len), 1 << 20),
    ))
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .strip_prefix('[')
        .and_then(|r| r.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| registry.split(':').next().unwrap_or(registry));
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// Most bytes read of a token answer or an error body.
const SMALL_BODY: usize = 64 << 10;
/// Most bytes read of a bonded API answer (an audit page holds up to 1,000 records).
const API_BODY: usize = 16 << 20;
/// Most pages of referrers read for one manifest.
const MAX_REFERRER_PAGES: usize = 16;

/// Most bytes read of a signature envelope (the server keeps no larger ones either).
pub const MAX_ENVELOPE: usize = 4 << 20;

/// The body of `res`, at most `limit` bytes: `Ok(None)` when it is longer (nothing past
/// `limit` is kept in memory), `Err` when the connection fails.
pub(crate) async fn body_within(
    mut res: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// The message of an OCI error body, or the body itself (its first 64 KiB).
async fn refusal(what: String, res: reqwest::Response) -> ClientError {
    let status = res.status().as_u16();
    let text = match body_within(res, SMALL_BODY).await {
        Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or(text);
    if status == 404 {
        return ClientError::NotFound(what);
    }
    ClientError::Refused {
        what,
        status,
        message,
    }
}

impl RegistryClient {
    /// A client for `registry`, logged in with pull (and, when `push`, push) rights on
    /// `repo` if the registry asks for a login.
    pub async fn connect(
        registry: &str,
        options: &ClientOptions,
        repo: Option<&RepositoryName>,
        push: bool,
    ) -> Result<Self, ClientError> {
        let actions = if push { "pull,push" } else { "pull" };
        Self::connect_for(registry, options, repo, actions).await
    }

    /// [`Self::connect`] asking a token service for exactly `actions` on `repo`
    /// (`pull`, `pull,push`, `delete`).
    pub async fn connect_for(
        registry: &str,
        options: &ClientOptions,
        repo: Option<&RepositoryName>,
        actions: &str,
    ) -> Result<Self, ClientError> {
        crate::install_crypto_provider();
        let plain = options.plain_http || is_loopback(registry);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("bonded/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(options.insecure);
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ClientError::CaFile(format!("{}: {e}", ca.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::CaFile(format!("{}: {e}", ca.display())))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|source| ClientError::Unreachable {
            registry: registry.into(),
            source,
        })?;
        let credentials = match (&options.username, options.password_stdin) {
            (Some(user), _) if options.password.is_some() => Some(format!(
                "{user}:{}",
                options.password.as_deref().unwrap_or_default()
            )),
            (Some(user), true) => {
                let mut password = String::new();
                std::io::stdin().read_line(&mut password).map_err(|e| {
                    ClientError::Invalid(format!(
                        "cannot read the password from standard input: {e}"
                    ))
                })?;
                Some(format!(
                    "{user}:{}",
                    password.trim_end_matches(['\r', '\n'])
                ))
            }
            (Some(_), false) => {
                return Err(ClientError::Invalid(
                    "--username needs --password-stdin".into(),
                ))
            }
            (None, _) => credentials::stored(registry),
        };
        let mut client = RegistryClient {
            http,
            base: format!(
                "{}://{registry}",
                if options.plain_http { "http" } else { "https" }
            ),
            registry: registry.to_string(),
            credentials,
            authorization: std::sync::Mutex::new(None),
        };
        // Loopback registries are usually plain HTTP, but may speak TLS: try HTTPS first,
        // as docker does, and fall back when nothing answers it.
        if plain && !options.plain_http {
            let https = client.http.get(format!("{}/v2/", client.base)).send().await;
            match https {
                Ok(_) => {}
                // A TLS server answered but its certificate is refused: falling back to
                // plain HTTP would only hide why.
                Err(e) if net_error::cause(&e).is_tls_server() => {
                    return Err(client.unreachable(e));
                }
                Err(_) => client.base = format!("http://{registry}"),
            }
        }
        client.login(repo, actions).await?;
        Ok(client)
    }

    /// `user:password` this client logs in with, if any.
    pub fn credentials(&self) -> Option<&str> {
        self.credentials.as_deref()
    }

    /// Whether the registry asked for a login (and this client answered it).
    pub fn logged_in(&self) -> bool {
        self.authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// A client for a plain-HTTP loopback registry without login (tests, tools).
    pub fn new(registry: &str, plain_http: bool) -> Result<Self, ClientError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("bonded/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Unreachable {
                registry: registry.into(),
                source,
            })?;
        let plain = plain_http || is_loopback(registry);
        Ok(RegistryClient {
            http,
            base: format!("{}://{registry}", if plain { "http" } else { "https" }),
            registry: registry.to_string(),
            credentials: None,
            authorization: std::sync::Mutex::new(None),
        })
    }

    /// Answers the registry's challenge, if it makes one, as docker does: ping `/v2/`, then
    /// Basic credentials, or a Bearer token for `repository:<repo>:pull[,push]`.
    async fn login(&self, repo: Option<&RepositoryName>, actions: &str) -> Result<(), ClientError> {
        use base64::Engine as _;
        let res = self
            .http
            .get(format!("{}/v2/", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if res.status().as_u16() != 401 {
            return Ok(());
        }
        let challenge = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (scheme, params) = parse_challenge(&challenge);
        let basic = self.credentials.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        let header = match scheme.as_str() {
            "basic" => {
                let basic = basic.ok_or_else(|| ClientError::NeedsLogin {
                    registry: self.registry.clone(),
                })?;
                let check = self
                    .http
                    .get(format!("{}/v2/", self.base))
                    .header("Authorization", &basic)
                    .send()
                    .await
                    .map_err(|e| self.unreachable(e))?;
                if check.status().as_u16() == 401 {
                    return Err(ClientError::LoginFailed {
                        registry: self.registry.clone(),
                    });
                }
                basic
            }
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| {
                    ClientError::Invalid(format!(
                        "{} sent a Bearer challenge without a realm",
                        self.registry
                    ))
                })?;
                let mut url = reqwest::Url::parse(realm)
                    .map_err(|e| ClientError::Invalid(format!("token realm '{realm}': {e}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        q.append_pair("service", service);
                    }
                    if let Some(repo) = repo {
                        q.append_pair("scope", &format!("repository:{repo}:{actions}"));
                    }
                }
                let mut req = self.http.get(url);
                if let Some(b) = &basic {
                    req = req.header("Authorization", b);
                }
                let res = req.send().await.map_err(|e| self.unreachable(e))?;
                match res.status().as_u16() {
                    200 => {}
                    401 | 403 if basic.is_some() => {
                        return Err(ClientError::LoginFailed {
                            registry: self.registry.clone(),
                        })
                    }
                    401 | 403 => {
                        return Err(ClientError::NeedsLogin {
                            registry: self.registry.clone(),
                        })
                    }
                    _ => return Err(refusal(format!("token from {realm}"), res).await),
                }
                let body: Value =
                    serde_json::from_slice(&self.read(res, SMALL_BODY, "the token answer").await?)
                        .map_err(|e| {
                            ClientError::Invalid(format!("token answer is not JSON: {e}"))
                        })?;
                let token = body["token"]
                    .as_str()
                    .or(body["access_token"].as_str())
                    .ok_or_else(|| {
                        ClientError::Invalid("the token service answered without a token".into())
                    })?;
                format!("Bearer {token}")
            }
            other => {
                return Err(ClientError::Invalid(format!(
                    "{} asks for '{other}' authentication, which bonded does not speak",
                    self.registry
                )))
            }
        };
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
        Ok(())
    }

    /// A request with the login header, if any.
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match self
            .authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(h) => req.header("Authorization", h),
            None => req,
        }
    }

    fn url(&self, repo: &RepositoryName, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, repo)
    }

    /// The next page's URL of a `Link: <...>; rel="next"` header, when it is on this
    /// registry (a relative path, or an absolute URL with this base): credentials never
    /// follow a link elsewhere.
    fn next_link(&self, link: &str) -> Option<String> {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        if target.starts_with('/') && !target.starts_with("//") {
            return Some(format!("{}{target}", self.base));
        }
        target
            .strip_prefix(&self.base)
            .filter(|rest| rest.starts_with('/'))
            .map(|_| target.to_string())
    }

    /// The body of a response from this registry, at most `limit` bytes.
    async fn read(
        &self,
        res: reqwest::Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, ClientError> {
        body_within(res, limit)
            .await
            .map_err(|e| self.unreachable(e))?
            .ok_or_else(|| ClientError::TooLarge {
                what: what.to_string(),
                registry: self.registry.clone(),
                limit,
            })
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            registry: self.registry.clone(),
            source,
        }
    }

    /// A manifest's bytes, media type and digest (checked against the bytes).
    pub async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(Vec<u8>, String, Digest), ClientError> {
        let res = self
            .request(
                reqwest::Method::GET,
                self.url(repo, &format!("manifests/{reference}")),
            )
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !res.status().is_success() {
            return Err(refusal(
                format!(
                    "manifest {}/{}",
                    self.registry,
                    reference.in_repository(repo)
                ),
                res,
            )
            .await);
        }
        say_warnings(
            &format!("{}/{}", self.registry, reference.in_repository(repo)),
            &res,
        );
        let media_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = self
            .read(
                res,
                crate::oci::MAX_MANIFEST_SIZE,
                &format!("manifest {}", reference.in_repository(repo)),
            )
            .await?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if &actual != expected {
                    return Err(ClientError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, &bytes),
        };
        Ok((bytes, media_type, digest))
    }

    /// A blob's bytes, checked against its digest.
    pub async fn blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<u8>, ClientError> {
        let res = self
            .request(
                reqwest::Method::GET,
                self.url(repo, &format!("blobs/{digest}")),
            )
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !res.status().is_success() {
            return Err(refusal(format!("blob {digest}"), res).await);
        }
        let bytes = self
            .read(res, MAX_ENVELOPE, &format!("blob {digest}"))
            .await?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(ClientError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Whether the repository already has a blob.
    async fn has_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool, ClientError> {
        let head = self
            .request(
                reqwest::Method::HEAD,
                self.url(repo, &format!("blobs/{digest}")),
            )
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(head.status().is_success())
    }

    /// Starts an upload session; returns its URL.
    async fn open_session(&self, repo: &RepositoryName) -> Result<String, ClientError> {
        let res = self
            .request(reqwest::Method::POST, self.url(repo, "blobs/uploads/"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if res.status().as_u16() != 202 {
            return Err(refusal(format!("starting an upload to {repo}"), res).await);
        }
        self.location(&res)
            .ok_or_else(|| ClientError::Invalid("the registry gave no upload location".into()))
    }

    fn location(&self, res: &reqwest::Response) -> Option<String> {
        let loc = res.headers().get("location")?.to_str().ok()?;
        Some(if loc.starts_with("http") {
            loc.to_string()
        } else {
            format!("{}{loc}", self.base)
        })
    }

    /// The URL that completes session `url` with `digest`.
    fn with_digest(url: &str, digest: &Digest) -> String {
        format!(
            "{url}{}digest={digest}",
            if url.contains('?') { '&' } else { '?' }
        )
    }

    /// Completes an upload with its whole body.
    async fn finish_upload(
        &self,
        url: String,
        digest: &Digest,
        len: u64,
        body: reqwest::Body,
    ) -> Result<(), ClientError> {
        let res = self
            .request(reqwest::Method::PUT, url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if res.status().as_u16() != 201 {
            return Err(refusal(format!("uploading blob {digest}"), res).await);
        }
        Ok(())
    }

    /// Pushes a small blob (POST then PUT, which every registry supports) unless the
    /// repository has it already.
    pub async fn push_blob(
        &self,
        repo: &RepositoryName,
        bytes: &[u8],
    ) -> Result<Digest, ClientError> {
        let digest = Digest::of(Algorithm::Sha256, bytes);
        if !self.has_blob(repo, &digest).await? {
            let url = Self::with_digest(&self.open_session(repo).await?, &digest);
            self.finish_upload(url, &digest, bytes.len() as u64, bytes.to_vec().into())
                .await?;
        }
        Ok(digest)
    }

    /// Pushes a blob from a file, streamed (never held in memory), unless the repository
    /// has it already. Returns whether it was uploaded.
    /// `progress` is told of every byte known to be in place (uploaded, or already there).
    pub async fn push_blob_file(
        &self,
        repo: &RepositoryName,
        path: &std::path::Path,
        digest: &Digest,
        size: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<bool, ClientError> {
        if self.has_blob(repo, digest).await? {
            progress(size);
            return Ok(false);
        }
        let mut session = self.open_session(repo).await?;
        if size <= CHUNKED_ABOVE {
            let body = file_section(path, 0, size).await?;
            self.finish_upload(Self::with_digest(&session, digest), digest, size, body)
                .await?;
            progress(size);
            return Ok(true);
        }
        // Large blobs go in chunks: a failure costs one chunk, not the whole blob.
        let mut offset = 0;
        while offset < size {
            let len = CHUNK.min(size - offset);
            let last = offset + len - 1;
            let res = self
                .request(reqwest::Method::PATCH, session.clone())
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{offset}-{last}"))
                .header("Content-Length", len)
                .body(file_section(path, offset, len).await?)
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            if res.status().as_u16() != 202 {
                return Err(
                    refusal(format!("uploading bytes {offset}-{last} of {digest}"), res).await,
                );
            }
            if let Some(next) = self.location(&res) {
                session = next;
            }
            progress(len);
            offset += len;
        }
        self.finish_upload(
            Self::with_digest(&session, digest),
            digest,
            0,
            Vec::new().into(),
        )
        .await?;
        Ok(true)
    }

    /// Copies blob `digest` (`size` bytes) from `source`'s repository `source_repo` into
    /// `repo` unless it is there: mounted when `mount_from` (a repository of this same
    /// registry) allows it, else streamed from the source's answer straight into one
    /// upload (never held in memory; this registry checks the digest, and a source
    /// sending more than `size` bytes is cut off). Returns whether anything was moved.
    pub async fn copy_blob_from(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        source: &RegistryClient,
        source_repo: &RepositoryName,
        mount_from: Option<&RepositoryName>,
    ) -> Result<bool, ClientError> {
        use futures_util::StreamExt;
        if self.has_blob(repo, digest).await? {
            return Ok(false);
        }
        let mut session = None;
        if let Some(from) = mount_from {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from.as_str())
                .finish();
            let res = self
                .request(
                    reqwest::Method::POST,
                    self.url(repo, &format!("blobs/uploads/?{query}")),
                )
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            match res.status().as_u16() {
                201 => return Ok(true),
                // No mount (the spec lets a registry decline): an ordinary session.
                202 => session = self.location(&res),
                _ => {}
            }
        }
        let session = match session {
            Some(s) => s,
            None => self.open_session(repo).await?,
        };
        let res = source
            .request(
                reqwest::Method::GET,
                source.url(source_repo, &format!("blobs/{digest}")),
            )
            .send()
            .await
            .map_err(|e| source.unreachable(e))?;
        if !res.status().is_success() {
            return Err(refusal(
                format!("blob {digest} of {}/{source_repo}", source.registry),
                res,
            )
            .await);
        }
        if let Some(n) = res.content_length().filter(|n| *n != size) {
            return Err(ClientError::Invalid(format!(
                "{}/{source_repo} sends {n} bytes for blob {digest}, whose descriptor says {size}",
                source.registry
            )));
        }
        let mut seen = 0u64;
        let name = digest.to_string();
        let body = res.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            seen += chunk.len() as u64;
            if seen > size {
                return Err(std::io::Error::other(format!(
                    "the source sends more than the {size} bytes of {name}"
                )));
            }
            Ok::<_, std::io::Error>(chunk)
        });
        self.finish_upload(
            Self::with_digest(&session, digest),
            digest,
            size,
            reqwest::Body::wrap_stream(body),
        )
        .await?;
        Ok(true)
    }

    /// The registry host this client talks to.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Pushes a manifest under `reference`. Returns whether the registry acknowledged a
    /// `subject` (the `OCI-Subject` header of registries with the referrers API).
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, ClientError> {
        let res = self
            .request(
                reqwest::Method::PUT,
                self.url(repo, &format!("manifests/{reference}")),
            )
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !res.status().is_success() {
            let name = format!(
                "{}/{repo}{}{reference}",
                self.registry,
                crate::oci::name::separator_of(reference)
            );
            return Err(refusal(format!("pushing manifest {name}"), res).await);
        }
        say_warnings(
            &format!(
                "{}/{repo}{}{reference}",
                self.registry,
                crate::oci::name::separator_of(reference)
            ),
            &res,
        );
        Ok(res.headers().contains_key("oci-subject"))
    }

    /// `DELETE /v2/<repo>/manifests/<reference>`: a tag, or a manifest by digest (with
    /// its tags and, on bonded, its referrers).
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &str,
    ) -> Result<(), ClientError> {
        let res = self
            .request(
                reqwest::Method::DELETE,
                self.url(repo, &format!("manifests/{reference}")),
            )
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !res.status().is_success() {
            let name = format!(
                "{}/{repo}{}{reference}",
                self.registry,
                crate::oci::name::separator_of(reference)
            );
            return Err(refusal(format!("deleting {name}"), res).await);
        }
        Ok(())
    }

    /// `METHOD /bonded/v1/PATH` with an optional JSON body, read into a wire type.
    pub async fn bonded_typed<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let value = self.bonded_send(method, path, None, body).await?;
        serde_json::from_value(value).map_err(|e| {
            ClientError::Invalid(format!(
                "the server's answer to /bonded/v1/{path} is not what this client reads: {e}"
            ))
        })
    }

    /// Whether the registry answers the OCI 1.1 referrers API for `subject` (a registry
    /// without it answers 404).
    pub async fn has_referrers_api(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<bool, ClientError> {
        let res = self
            .request(
                reqwest::Method::GET,
                self.url(repo, &format!("referrers/{subject}")),
            )
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match res.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(refusal(format!("referrers of {subject}"), res).await),
        }
    }

    /// Manifests that refer to `subject`, optionally of one artifact type: the referrers
    /// API, or the `sha256-<hex>` tag schema where a registry lacks it.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let mut url = self.url(repo, &format!("referrers/{subject}"));
        if let Some(a) = artifact_type {
            // Encoded: a `+` in a media type (`...sig.v1+json`) would read as a space.
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("artifactType", a)
                .finish();
            url.push_str(&format!("?{query}"));
        }
        // Pages linked with `Link`, at most MAX_REFERRER_PAGES of them.
        let mut manifests: Vec<Value> = Vec::new();
        for page in 0.. {
            let res = self
                .request(reqwest::Method::GET, url.clone())
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            if res.status().as_u16() == 404 && page == 0 {
                let tag: Reference = format!("{}-{}", subject.algorithm().as_str(), subject.hex())
                    .parse()
                    .map_err(|e: crate::oci::NameError| ClientError::Invalid(e.to_string()))?;
                let index: Value = match self.manifest(repo, &tag).await {
                    Ok((bytes, _, _)) => serde_json::from_slice(&bytes).map_err(|e| {
                        ClientError::Invalid(format!("the referrers tag is not an index: {e}"))
                    })?,
                    Err(ClientError::NotFound(_)) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                manifests.extend(index["manifests"].as_array().into_iter().flatten().cloned());
                break;
            }
            if !res.status().is_success() {
                return Err(refusal(format!("referrers of {subject}"), res).await);
            }
            let next = res
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| self.next_link(l));
            let index: Value = serde_json::from_slice(
                &self
                    .read(res, crate::oci::MAX_MANIFEST_SIZE, "the referrers response")
                    .await?,
            )
            .map_err(|e| {
                ClientError::Invalid(format!("the referrers response is not JSON: {e}"))
            })?;
            manifests.extend(index["manifests"].as_array().into_iter().flatten().cloned());
            match next {
                Some(n) if page + 1 < MAX_REFERRER_PAGES => url = n,
                Some(_) => {
                    return Err(ClientError::Invalid(format!(
                        "the referrers of {subject} span more than {MAX_REFERRER_PAGES} pages; bonded reads no more"
                    )))
                }
                None => break,
            }
        }
        let index = serde_json::json!({ "manifests": manifests });
        let mut out = Vec::new();
        for m in index["manifests"].as_array().into_iter().flatten() {
            let at = m["artifactType"].as_str();
            if artifact_type.is_some() && at.is_some() && at != artifact_type {
                continue;
            }
            let (Some(mt), Some(d), Some(size)) = (
                m["mediaType"].as_str(),
                m["digest"].as_str(),
                m["size"].as_u64(),
            ) else {
                continue;
            };
            let Ok(digest) = d.parse() else { continue };
            out.push(Descriptor {
                media_type: mt.to_string(),
                digest,
                size,
            });
        }
        Ok(out)
    }
}

impl RegistryClient {
    /// `GET /bonded/v1/<path>` on a bonded registry.
    pub async fn bonded_get(&self, path: &str) -> Result<Value, ClientError> {
        self.bonded_send(reqwest::Method::GET, path, None, None)
            .await
    }

    /// A `GET` of `/bonded/v1/<path>` that needs an administrator: with the admin token
    /// when given, else this client's login.
    pub async fn bonded_get_admin<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<T, ClientError> {
        let value = self
            .bonded_send(reqwest::Method::GET, path, token, None)
            .await?;
        serde_json::from_value(value).map_err(|e| {
            ClientError::Invalid(format!(
                "the server's answer to /bonded/v1/{path} is not what this client reads: {e}"
            ))
        })
    }

    /// The JSON of a successful `/bonded/v1` answer; the server's refusal otherwise.
    async fn bonded_answer(
        &self,
        path: &str,
        res: reqwest::Response,
    ) -> Result<Value, ClientError> {
        if !res.status().is_success() {
            return Err(refusal(format!("/bonded/v1/{path}"), res).await);
        }
        let bytes = self
            .read(res, API_BODY, &format!("/bonded/v1/{path}"))
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Invalid(format!("not a bonded answer: {e}")))
    }

    /// A request to bonded's own API: with the account's credentials as HTTP Basic when
    /// this client has them (the API's password-only actions, such as making a token,
    /// need the password itself), else anonymous. Never with a bearer token from the
    /// registry's token flow: those carry registry scopes only, and bonded refuses them
    /// here.
    fn bonded_builder(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        match self.credentials.as_deref().and_then(|c| c.split_once(':')) {
            Some((user, secret)) => self
                .http
                .request(method, url)
                .basic_auth(user, Some(secret)),
            None => self.http.request(method, url),
        }
    }

    /// `PUT` (with a body) or `DELETE` (without) on bonded's admin API, authorised by the
    /// server's admin token when given, else by the login (an account with admin on '*').
    pub async fn bonded_change(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let method = match body {
            Some(_) => reqwest::Method::PUT,
            None => reqwest::Method::DELETE,
        };
        self.bonded_send(method, path, token, body).await
    }

    /// `METHOD /bonded/v1/PATH` with an optional JSON body, logged in as this client's
    /// account.
    pub async fn bonded_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let body = body.map(|b| b.to_string().into_bytes());
        self.bonded_send(method, path, None, body).await
    }

    /// [`Self::bonded_request`] logged in as this client's account with `password` (the
    /// API's credential-making actions take the password only).
    pub async fn bonded_request_with_password(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        password: &str,
    ) -> Result<Value, ClientError> {
        let user = self
            .credentials
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .map(|(u, _)| u.to_string())
            .unwrap_or_default();
        let url = format!("{}/bonded/v1/{path}", self.base);
        let mut req = self
            .http
            .request(method, url)
            .basic_auth(user, Some(password));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let res = req.send().await.map_err(|e| self.unreachable(e))?;
        self.bonded_answer(path, res).await
    }

    async fn bonded_send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}/bonded/v1/{path}", self.base);
        // One Authorization header: the admin token, or this client's login.
        let mut req = match token {
            Some(t) => self.http.request(method, url).bearer_auth(t),
            None => self.bonded_builder(method, url),
        };
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.map_err(|e| self.unreachable(e))?;
        self.bonded_answer(path, res).await
    }
}

/// The OCI descriptor of a manifest.
pub fn descriptor_json(media_type: &str, digest: &Digest, size: usize) -> Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

/// The empty config, `{}`.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Its media type.
pub const EMPTY_MEDIA_TYPE: &str = media_type::OCI_EMPTY;

/// Tells the user what a registry said in `Warning` headers (RFC 9111 `299 - "text"`, as
/// bonded says that a pushed tag waits for signatures), on standard error, one line each.
fn say_warnings(what: &str, res: &reqwest::Response) {
    for v in res.headers().get_all(reqwest::header::WARNING) {
        let Ok(v) = v.to_str() else { continue };
        let text = v
            .split_once(" \"")
            .map(|(_, t)| t.strip_suffix('"').unwrap_or(t))
            .unwrap_or(v);
        let text: String = text.chars().filter(|c| !c.is_control()).collect();
        eprintln!("warning: {what}: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_followed_on_this_registry_only() {
        let c = RegistryClient::new("127.0.0.1:5000", true).unwrap();
        let next = |l: &str| c.next_link(l);
        assert_eq!(
            next(r#"</v2/a/referrers/sha256:00?last=x>; rel="next""#).as_deref(),
            Some("http://127.0.0.1:5000/v2/a/referrers/sha256:00?last=x")
        );
        assert_eq!(
            next(r#"<http://127.0.0.1:5000/v2/a?last=x>; rel="next""#).as_deref(),
            Some("http://127.0.0.1:5000/v2/a?last=x")
        );
        for elsewhere in [
            r#"<http://evil.example/v2/a>; rel="next""#,
            r#"<//evil.example/v2/a>; rel="next""#,
            r#"<http://127.0.0.1:5000.evil.example/v2/a>; rel="next""#,
            r#"</v2/a>; rel="prev""#,
            "garbage",
        ] {
            assert_eq!(next(elsewhere), None, "{elsewhere}");
        }
    }

    #[test]
    fn image_references_parse() {
        let r: ImageRef = "127.0.0.1:5000/acme/app:v1".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository.as_str(), "acme/app");
        assert_eq!(r.reference.to_string(), "v1");
        let d = format!("sha256:{}", "a".repeat(64));
        let r: ImageRef = format!("localhost/x@{d}").parse().unwrap();
        assert_eq!(r.reference, Reference::Digest(d.parse().unwrap()));
        let r: ImageRef = "localhost:5000/x".parse().unwrap();
        assert_eq!(r.reference.to_string(), "latest");
        assert!("noslash".parse::<ImageRef>().is_err());
        assert!(
            is_loopback("127.0.0.1:5000") && is_loopback("localhost") && is_loopback("[::1]:5000")
        );
        assert!(!is_loopback("registry.example:5000"));
    }

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (scheme, p) = parse_challenge(r#"Basic realm="bonded-test""#);
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("basic", "bonded-test")
        );
    }
}
