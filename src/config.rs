//! Server configuration: each setting comes from its flag, else its `BONDED_*` environment
//! variable, else the optional TOML file, else the embedded default.

use crate::api::ratelimit::Rate;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA_DIR: &str = "./bonded-data";
pub const DEFAULT_UPLOAD_TTL_SECS: u64 = 24 * 60 * 60;
pub const DEFAULT_PENDING_TTL_SECS: u64 = 7 * 24 * 60 * 60;
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 120;
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
pub const DEFAULT_FAILED_LOGIN_LIMIT: &str = "10/15min";
pub const DEFAULT_FAILED_LOGIN_LIMIT_ADDRESS: &str = "50/15min";

/// A secret setting: never printed, whatever prints its container.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// How the server writes its log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// `bonded serve` flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Log lines as text (for a person) or as one JSON object per line (for a log
    /// pipeline)
    #[arg(long, env = "BONDED_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "BONDED_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Serve Prometheus metrics on this address, at /metrics (a listener of its own,
    /// without authentication: keep it where only the monitoring system reaches it)
    /// [default: none]
    #[arg(long, env = "BONDED_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Directory for blobs (`blobs/`), uploads and the metadata database (`bonded.db`)
    /// [default: ./bonded-data]
    #[arg(long, env = "BONDED_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the metadata in PostgreSQL (postgres://USER:PASSWORD@HOST[:PORT]/DB) instead of
    /// the data directory's bonded.db; several servers may share it [default: bonded.db]
    #[arg(
        long,
        env = "BONDED_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<Secret>,
    /// Keep blobs in an S3-compatible bucket, s3://BUCKET[/PREFIX], instead of the data
    /// directory; credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN, AWS_REGION [default: the data directory]
    #[arg(long, env = "BONDED_BLOB_STORE", value_name = "URL")]
    pub blob_store: Option<String>,
    /// The S3 endpoint, for S3-compatible stores other than AWS (e.g. http://127.0.0.1:9000)
    #[arg(long, env = "BONDED_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Allow a plain-HTTP --s3-endpoint (a store on this machine or a private network)
    #[arg(long, env = "BONDED_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
    /// TOML file with any of: addr, metrics_addr, data_dir, database_url, blob_store, s3_endpoint, s3_allow_http, upload_ttl, pending_ttl, trust_policy, trust_store, hostname, admin_token, tls_cert, tls_key, pull_rate_limit, pull_rate_limit_account, pull_rate_limit_role (a table ROLE = "COUNT/WINDOW"), insecure_http, header_read_timeout, idle_timeout, body_timeout, max_connections, max_connections_per_address, trusted_proxies (a list), failed_login_limit, failed_login_limit_address, max_signatures_per_subject, trust_change_wait, audit_archive_after, audit_archive_dir, gc_interval, gc_grace_period, retention_interval
    #[arg(long, env = "BONDED_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds an upload session may sit idle before it is discarded [default: 86400]
    #[arg(long, env = "BONDED_UPLOAD_TTL")]
    pub upload_ttl: Option<u64>,
    /// Seconds a manifest may stay pending (pushed by digest, not yet signed enough) before
    /// it is removed [default: 604800, a week]
    #[arg(long, env = "BONDED_PENDING_TTL")]
    pub pending_ttl: Option<u64>,
    /// Trust policy (notation's trustpolicy.json schema) that manifest pushes must satisfy;
    /// without one bonded runs as a plain registry
    #[arg(long, env = "BONDED_TRUST_POLICY")]
    pub trust_policy: Option<PathBuf>,
    /// Trust store directory, the one holding x509/ (notation's `truststore` directory)
    #[arg(long, env = "BONDED_TRUST_STORE")]
    pub trust_store: Option<PathBuf>,
    /// Public host name of this registry: policy scopes are matched against
    /// HOSTNAME/REPOSITORY [default: the listen address]
    #[arg(long, env = "BONDED_HOSTNAME")]
    pub hostname: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); reloaded on SIGHUP
    #[arg(long, env = "BONDED_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, env = "BONDED_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer token that also authorises changes to the trust policy and stores through
    /// /bonded/v1/trust (besides accounts with admin on '*'), for automation without an
    /// account. Prefer the environment variable: flags show in process listings.
    #[arg(long, env = "BONDED_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Manifest pulls (GET) allowed per source address of anonymous clients (an IPv6 /64
    /// counts as one address), as COUNT/WINDOW (e.g. 100/hour, 20/30s), token bucket; over
    /// it: 429 TOOMANYREQUESTS with Retry-After [default: none]
    #[arg(long, env = "BONDED_PULL_RATE_LIMIT")]
    pub pull_rate_limit: Option<String>,
    /// Manifest pulls (GET) allowed per account (users and robots), as COUNT/WINDOW
    /// [default: none]
    #[arg(long, env = "BONDED_PULL_RATE_LIMIT_ACCOUNT")]
    pub pull_rate_limit_account: Option<String>,
    /// Manifest pulls per account holding ROLE on the repository pulled, as
    /// ROLE=COUNT/WINDOW (repeatable, e.g. reader=100/hour); the highest role an account
    /// holds there decides, else --pull-rate-limit-account applies
    #[arg(long, env = "BONDED_PULL_RATE_LIMIT_ROLE", value_delimiter = ',')]
    pub pull_rate_limit_role: Vec<String>,
    /// Run an unauthenticated lab registry: anyone may pull, push and delete (trust
    /// administration still needs an admin). Allowed on loopback addresses only.
    #[arg(long, env = "BONDED_OPEN")]
    pub open: bool,
    /// Serve logins over plain HTTP on a non-loopback address (behind a TLS-terminating
    /// proxy); otherwise bonded refuses to start without --tls-cert
    #[arg(long, env = "BONDED_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// Seconds a client has to send a request's head (and to finish the TLS handshake),
    /// from connecting or from its previous request [default: 30]
    #[arg(long, env = "BONDED_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a connection may move no byte either way before it is closed [default: 120]
    #[arg(long, env = "BONDED_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds a client has to send a body bonded reads whole (a manifest, an API request,
    /// a token form) [default: 60]
    #[arg(long, env = "BONDED_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Connections open at once, in all; more are answered 503 and closed [default: 4096,
    /// and never more than the open-file limit allows]
    #[arg(long, env = "BONDED_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections open at once from one address (an IPv6 /64 counts as one); trusted
    /// proxies are exempt [default: 256]
    #[arg(long, env = "BONDED_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Signatures one manifest may have in a repository; a push of one more is refused
    /// (403 DENIED), so nobody can make every admission of a digest slower by signing it
    /// again and again [default: 100]
    #[arg(long, env = "BONDED_MAX_SIGNATURES_PER_SUBJECT")]
    pub max_signatures_per_subject: Option<usize>,
    /// Seconds a trust change's request waits for the stored signatures to be verified
    /// again; past it the change answers 202 and the work goes on in the background
    /// (GET /bonded/v1/trust/job follows it) [default: 10]
    #[arg(long, env = "BONDED_TRUST_CHANGE_WAIT")]
    pub trust_change_wait: Option<u64>,
    /// Retention: every hour, move audit records (pull records included) older than AGE
    /// (90d, 12h, 30m, 45s) to a new file in --audit-archive-dir, which `bonded audit
    /// verify --archive` still checks [default: keep every record in the database]
    #[arg(
        long,
        env = "BONDED_AUDIT_ARCHIVE_AFTER",
        value_name = "AGE",
        requires = "audit_archive_dir"
    )]
    pub audit_archive_after: Option<String>,
    /// Where --audit-archive-after writes its files (audit-<time>.jsonl); on replicas, a
    /// directory they share, or give the flag to one of them
    #[arg(
        long,
        env = "BONDED_AUDIT_ARCHIVE_DIR",
        value_name = "DIR",
        requires = "audit_archive_after"
    )]
    pub audit_archive_dir: Option<PathBuf>,
    /// How often garbage collection runs (90d, 12h, 30m, 45s), or `off`; it removes what
    /// no tag, index or live subject keeps once older than --gc-grace-period, with the
    /// server serving [default: 1h]
    #[arg(long, env = "BONDED_GC_INTERVAL", value_name = "AGE|off")]
    pub gc_interval: Option<String>,
    /// What was pushed, mounted or tagged within this long is never collected (0s to
    /// collect at once) [default: 24h]
    #[arg(long, env = "BONDED_GC_GRACE_PERIOD", value_name = "AGE")]
    pub gc_grace_period: Option<String>,
    /// How often the retention rules (`bonded retention set`) run, or `off` [default: 1h]
    #[arg(long, env = "BONDED_RETENTION_INTERVAL", value_name = "AGE|off")]
    pub retention_interval: Option<String>,
    /// Failed password logins allowed per account from one address (an IPv6 /64 counts as
    /// one), as COUNT/WINDOW; past it that account's password logins from there get 429
    /// until the bucket refills. API tokens are never limited [default: 10/15min]
    #[arg(long, env = "BONDED_FAILED_LOGIN_LIMIT")]
    pub failed_login_limit: Option<String>,
    /// Failed password logins allowed per address, whatever the accounts (password
    /// spraying), as COUNT/WINDOW [default: 50/15min]
    #[arg(long, env = "BONDED_FAILED_LOGIN_LIMIT_ADDRESS")]
    pub failed_login_limit_address: Option<String>,
    /// A reverse proxy (address or CIDR network, repeatable) whose `Forwarded` or
    /// `X-Forwarded-For` header names the client; from anyone else those headers are
    /// ignored [default: none]
    #[arg(
        long = "trusted-proxy",
        env = "BONDED_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<Secret>,
    blob_store: Option<String>,
    s3_endpoint: Option<String>,
    s3_allow_http: Option<bool>,
    upload_ttl: Option<u64>,
    pending_ttl: Option<u64>,
    trust_policy: Option<PathBuf>,
    trust_store: Option<PathBuf>,
    hostname: Option<String>,
    admin_token: Option<Secret>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    pull_rate_limit: Option<String>,
    pull_rate_limit_account: Option<String>,
    pull_rate_limit_role: Option<std::collections::BTreeMap<String, String>>,
    insecure_http: Option<bool>,
    header_read_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    body_timeout: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    failed_login_limit: Option<String>,
    failed_login_limit_address: Option<String>,
    max_signatures_per_subject: Option<usize>,
    trust_change_wait: Option<u64>,
    audit_archive_after: Option<String>,
    audit_archive_dir: Option<PathBuf>,
    gc_interval: Option<String>,
    gc_grace_period: Option<String>,
    retention_interval: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("upload_ttl must be at least 1 second")]
    ZeroTtl,
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("trusted proxy '{0}' is not an IP address or CIDR network (e.g. 10.0.0.0/8)")]
    Proxy(String),
    #[error("{0}")]
    Rate(String),
    #[error("{0}")]
    BlobStore(String),
    #[error("{0}")]
    Invalid(String),
}

/// An age as `90d`, `12h`, `30m` or `45s`; at least a second.
fn parse_age(text: &str) -> Result<Duration, ConfigError> {
    parse_duration("audit_archive_after", text, false)
}

/// `90d`, `12h`, `30m` or `45s` for setting `name`; zero only when `zero_ok`.
pub fn parse_duration(
    name: &'static str,
    text: &str,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "{name} '{text}' is not an age such as 90d, 12h, 30m or 45s"
        ))
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let n: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let seconds = match unit {
        's' => n,
        'm' => n.checked_mul(60).ok_or_else(bad)?,
        'h' => n.checked_mul(3600).ok_or_else(bad)?,
        'd' => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if seconds == 0 && !zero_ok {
        return Err(ConfigError::Zero(name));
    }
    Ok(Duration::from_secs(seconds))
}

/// Seconds as `parse_duration` reads them, in the largest unit that divides them.
pub fn format_duration(seconds: i64) -> String {
    match seconds {
        s if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s != 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The settings `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Metadata in PostgreSQL instead of `data_dir/bonded.db` (holds a password).
    pub database_url: Option<Secret>,
    /// Blobs in S3 instead of `data_dir/blobs`.
    pub blob_store: Option<crate::storage::S3Location>,
    pub upload_ttl: Duration,
    pub pending_ttl: Duration,
    pub trust_policy: Option<PathBuf>,
    pub trust_store: Option<PathBuf>,
    pub hostname: Option<String>,
    pub admin_token: Option<Secret>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub pull_rate_limit: Option<Rate>,
    pub pull_rate_limit_account: Option<Rate>,
    pub pull_rate_limit_role: Vec<(crate::auth::Role, Rate)>,
    pub open: bool,
    pub insecure_http: bool,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub failed_login_limit: Rate,
    pub failed_login_limit_address: Rate,
    pub max_signatures_per_subject: usize,
    pub trust_change_wait: Duration,
    /// Records older than this go to files in the directory, hourly.
    pub audit_archive: Option<(Duration, PathBuf)>,
    /// How often garbage collection runs; `None`: never on its own.
    pub gc_interval: Option<Duration>,
    pub gc_grace_period: Duration,
    /// How often the retention rules run; `None`: only when asked.
    pub retention_interval: Option<Duration>,
}

/// A positive setting: flag, else file, else default.
fn positive<T: PartialEq + From<u8> + Copy>(
    name: &'static str,
    flag: Option<T>,
    file: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    let v = flag.or(file).unwrap_or(default);
    if v == T::from(0) {
        return Err(ConfigError::Zero(name));
    }
    Ok(v)
}

/// `10.0.0.0/8`, `192.0.2.7` (one address), `2001:db8::/32`.
fn proxy_net(s: &str) -> Result<ipnet::IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| ConfigError::Proxy(s.to_string()))
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load(path)?,
            None => FileConfig::default(),
        };
        let ttl = args
            .upload_ttl
            .or(file.upload_ttl)
            .unwrap_or(DEFAULT_UPLOAD_TTL_SECS);
        if ttl == 0 {
            return Err(ConfigError::ZeroTtl);
        }
        let pull_rate_limit = args
            .pull_rate_limit
            .clone()
            .or(file.pull_rate_limit)
            .map(|r| r.parse::<Rate>().map_err(ConfigError::Rate))
            .transpose()?;
        let pull_rate_limit_account = args
            .pull_rate_limit_account
            .clone()
            .or(file.pull_rate_limit_account)
            .map(|r| r.parse::<Rate>().map_err(ConfigError::Rate))
            .transpose()?;
        let role_limits: Vec<(String, String)> = if args.pull_rate_limit_role.is_empty() {
            file.pull_rate_limit_role
                .unwrap_or_default()
                .into_iter()
                .collect()
        } else {
            args.pull_rate_limit_role
                .iter()
                .map(|r| {
                    r.split_once('=')
                        .map(|(a, b)| (a.trim().to_string(), b.to_string()))
                        .ok_or_else(|| {
                            ConfigError::Rate(format!(
                                "pull rate limit '{r}' for a role needs the form ROLE=COUNT/WINDOW, e.g. reader=100/hour"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?
        };
        let mut pull_rate_limit_role = Vec::new();
        for (role, rate) in role_limits {
            let role = role
                .parse::<crate::auth::Role>()
                .map_err(ConfigError::Rate)?;
            pull_rate_limit_role.push((role, rate.parse::<Rate>().map_err(ConfigError::Rate)?));
        }
        let blob_store = match args.blob_store.clone().or(file.blob_store) {
            Some(url) => Some(
                crate::storage::S3Location::parse(
                    &url,
                    args.s3_endpoint.clone().or(file.s3_endpoint),
                    args.s3_allow_http || file.s3_allow_http.unwrap_or(false),
                )
                .map_err(ConfigError::BlobStore)?,
            ),
            None => None,
        };
        Ok(ServeConfig {
            database_url: args.database_url.clone().or(file.database_url),
            blob_store,
            metrics_addr: args.metrics_addr.or(file.metrics_addr),
            addr: args
                .addr
                .or(file.addr)
                .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("default address parses")),
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            upload_ttl: Duration::from_secs(ttl),
            pending_ttl: Duration::from_secs(
                args.pending_ttl
                    .or(file.pending_ttl)
                    .unwrap_or(DEFAULT_PENDING_TTL_SECS)
                    .max(1),
            ),
            trust_policy: args.trust_policy.clone().or(file.trust_policy),
            trust_store: args.trust_store.clone().or(file.trust_store),
            hostname: args.hostname.clone().or(file.hostname),
            admin_token: args.admin_token.clone().or(file.admin_token),
            tls_cert: args.tls_cert.clone().or(file.tls_cert),
            tls_key: args.tls_key.clone().or(file.tls_key),
            pull_rate_limit,
            pull_rate_limit_account,
            pull_rate_limit_role,
            open: args.open,
            insecure_http: args.insecure_http || file.insecure_http.unwrap_or(false),
            header_read_timeout: Duration::from_secs(positive(
                "header_read_timeout",
                args.header_read_timeout,
                file.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT_SECS,
            )?),
            idle_timeout: Duration::from_secs(positive(
                "idle_timeout",
                args.idle_timeout,
                file.idle_timeout,
                DEFAULT_IDLE_TIMEOUT_SECS,
            )?),
            body_timeout: Duration::from_secs(positive(
                "body_timeout",
                args.body_timeout,
                file.body_timeout,
                DEFAULT_BODY_TIMEOUT_SECS,
            )?),
            max_connections: positive(
                "max_connections",
                args.max_connections,
                file.max_connections,
                DEFAULT_MAX_CONNECTIONS,
            )?,
            max_connections_per_address: positive(
                "max_connections_per_address",
                args.max_connections_per_address,
                file.max_connections_per_address,
                DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            )?,
            trusted_proxies: if args.trusted_proxies.is_empty() {
                file.trusted_proxies.unwrap_or_default()
            } else {
                args.trusted_proxies.clone()
            }
            .iter()
            .map(|p| proxy_net(p))
            .collect::<Result<_, _>>()?,
            failed_login_limit: args
                .failed_login_limit
                .clone()
                .or(file.failed_login_limit)
                .unwrap_or_else(|| DEFAULT_FAILED_LOGIN_LIMIT.into())
                .parse()
                .map_err(ConfigError::Rate)?,
            failed_login_limit_address: args
                .failed_login_limit_address
                .clone()
                .or(file.failed_login_limit_address)
                .unwrap_or_else(|| DEFAULT_FAILED_LOGIN_LIMIT_ADDRESS.into())
                .parse()
                .map_err(ConfigError::Rate)?,
            audit_archive: match (
                args.audit_archive_after
                    .clone()
                    .or(file.audit_archive_after),
                args.audit_archive_dir.clone().or(file.audit_archive_dir),
            ) {
                (Some(age), Some(dir)) => Some((parse_age(&age)?, dir)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Invalid(
                        "audit_archive_after and audit_archive_dir go together".into(),
                    ))
                }
            },
            gc_interval: match args.gc_interval.clone().or(file.gc_interval).as_deref() {
                Some("off") => None,
                Some(t) => Some(parse_duration("gc_interval", t, false)?),
                None => Some(Duration::from_secs(3600)),
            },
            retention_interval: match args
                .retention_interval
                .clone()
                .or(file.retention_interval)
                .as_deref()
            {
                Some("off") => None,
                Some(t) => Some(parse_duration("retention_interval", t, false)?),
                None => Some(Duration::from_secs(3600)),
            },
            gc_grace_period: match args.gc_grace_period.clone().or(file.gc_grace_period) {
                Some(t) => parse_duration("gc_grace_period", &t, true)?,
                None => Duration::from_secs(86_400),
            },
            trust_change_wait: Duration::from_secs(
                args.trust_change_wait
                    .or(file.trust_change_wait)
                    .unwrap_or(10),
            ),
            max_signatures_per_subject: positive(
                "max_signatures_per_subject",
                args.max_signatures_per_subject,
                file.max_signatures_per_subject,
                crate::registry::DEFAULT_MAX_SIGNATURES_PER_SUBJECT,
            )?,
        })
    }
}

fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_they_parse() {
        for (secs, text) in [
            (45, "45s"),
            (90, "90s"),
            (1800, "30m"),
            (7200, "2h"),
            (604_800, "7d"),
            (0, "0s"),
        ] {
            assert_eq!(format_duration(secs), text);
            assert_eq!(
                parse_duration("t", text, true).unwrap().as_secs(),
                secs as u64
            );
        }
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let c = ServeConfig::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bonded.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:6000\"\ndata_dir = \"/srv/x\"\nupload_ttl = 60\n",
        )
        .unwrap();
        let mut args = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(&args).unwrap();
        assert_eq!(c.addr.port(), 6000);
        assert_eq!(c.upload_ttl, Duration::from_secs(60));
        args.addr = Some("127.0.0.1:7000".parse().unwrap());
        assert_eq!(ServeConfig::resolve(&args).unwrap().addr.port(), 7000);

        std::fs::write(
            &file,
            "max_connections = 10\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
        )
        .unwrap();
        let c = ServeConfig::resolve(&args).unwrap();
        assert_eq!(c.max_connections, 10);
        assert_eq!(
            c.max_connections_per_address,
            DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
        );
        assert_eq!(
            c.trusted_proxies,
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap()
            ]
        );
        std::fs::write(&file, "trusted_proxies = [\"proxy.local\"]\n").unwrap();
        assert!(ServeConfig::resolve(&args).is_err());
        std::fs::write(&file, "idle_timeout = 0\n").unwrap();
        assert!(ServeConfig::resolve(&args).is_err());

        std::fs::write(&file, "adress = \"typo\"\n").unwrap();
        let err = ServeConfig::resolve(&args).unwrap_err().to_string();
        assert!(err.contains("adress"), "{err}");
    }
}
