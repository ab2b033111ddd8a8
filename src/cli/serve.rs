//! `bonded serve`.

use crate::api;
use crate::config::{ServeArgs, ServeConfig};
use crate::db::{AuditAction, Metadata, Outcome};
use crate::registry::{build_config, Registry};
use crate::storage::{BlobStore, FsBlobStore, S3BlobStore};
use crate::trust::store::TrustStores;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // First: from here on, SIGTERM and SIGINT mean a graceful stop, even during start-up.
    let shutdown = shutdown_signal();
    let cfg = ServeConfig::resolve(args)?;
    let tls = cfg.tls_cert.is_some() && cfg.tls_key.is_some();
    let loopback = cfg.addr.ip().is_loopback();
    if cfg.open && !loopback {
        return Err(format!(
            "--open serves a registry anyone may push to and is allowed on loopback addresses only, not {}",
            cfg.addr
        )
        .into());
    }
    if !cfg.open && !tls && !loopback {
        if !cfg.insecure_http {
            return Err(format!(
                "refusing to serve logins over plain HTTP on {}: passwords and tokens would cross the network in clear text. Give --tls-cert and --tls-key, or --insecure-http when a TLS-terminating proxy is in front",
                cfg.addr
            )
            .into());
        }
        tracing::warn!(addr = %cfg.addr, "serving logins over plain HTTP (--insecure-http): only safe behind a TLS-terminating proxy");
    }
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    // Shared with other servers of this directory; an offline `bonded gc` takes it alone.
    let data_dir_lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cfg.data_dir.join(super::lifecycle::DATA_DIR_LOCK))
        .map_err(|e| {
            format!(
                "cannot open the lock file in {}: {e}",
                cfg.data_dir.display()
            )
        })?;
    if data_dir_lock.try_lock_shared().is_err() {
        return Err(format!(
            "{} is locked by an offline bonded command (bonded gc); wait for it to end",
            cfg.data_dir.display()
        )
        .into());
    }
    let store: Arc<dyn BlobStore> =
        match &cfg.blob_store {
            None => Arc::new(FsBlobStore::open(&cfg.data_dir).map_err(|e| {
                format!("cannot open blob store in {}: {e}", cfg.data_dir.display())
            })?),
            Some(location) => {
                tracing::info!(%location, endpoint = ?location.endpoint, "blobs in S3");
                Arc::new(S3BlobStore::open(location.clone())?)
            }
        };
    let db = match &cfg.database_url {
        Some(url) => {
            let url = url.expose();
            let shown = crate::db::redact_url(url);
            tracing::info!(database = %shown, "metadata in PostgreSQL");
            Metadata::open_postgres(url, 16)
                .await
                .map_err(|e| format!("cannot open the database at {shown}: {e}"))?
        }
        None => {
            let db_path = cfg.data_dir.join("bonded.db");
            Metadata::open_sqlite(&db_path)
                .await
                .map_err(|e| format!("cannot open {}: {e}", db_path.display()))?
        }
    };
    let journal_dir = cfg.data_dir.join("audit-journal");
    let journal = Arc::new(
        crate::db::Journal::open(&journal_dir, &db)
            .await
            .map_err(|e| {
                format!(
                    "cannot open the pull journal in {}: {e}",
                    journal_dir.display()
                )
            })?,
    );
    let registry = Arc::new(
        Registry::new(store, db.clone(), cfg.upload_ttl)
            .with_max_signatures(cfg.max_signatures_per_subject)
            .with_gc_grace(cfg.gc_grace_period)
            .with_trust_change_wait(cfg.trust_change_wait)
            .with_admin_token(cfg.admin_token.as_ref().map(|t| t.expose().to_string()))
            .with_journal(journal.clone()),
    );
    let drainer = {
        let (journal, db) = (journal.clone(), db.clone());
        tokio::spawn(async move {
            // Small, frequent imports: a busy registry's pulls never pile up into one
            // long transaction that delays everything behind it.
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                if let Err(e) = journal.drain(&db).await {
                    tracing::error!(error = %e, "moving pull records into the audit trail failed; retrying");
                }
            }
        })
    };

    // A store that cannot be reached now does not stop the start: /readyz says so, and the
    // sweeper below tries again.
    match registry.sweep_orphan_uploads(true).await {
        Ok(0) => {}
        Ok(swept) => tracing::info!(swept, "removed leftover upload files"),
        Err(e) => tracing::warn!(error = %e, "sweeping leftover uploads failed; retrying later"),
    }
    match registry.expire_uploads().await {
        Ok(0) => {}
        Ok(expired) => tracing::info!(expired, "expired idle upload sessions"),
        Err(e) => tracing::warn!(error = %e, "expiring upload sessions failed; retrying later"),
    }
    let sweeper = {
        let registry = registry.clone();
        let every = (cfg.upload_ttl.min(cfg.pending_ttl) / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let pending_ttl = cfg.pending_ttl;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Once across the processes sharing the database, not once per replica.
                let held = match registry.sweep_lock().await {
                    Ok(Some(held)) => held,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "taking the sweep lock failed");
                        continue;
                    }
                };
                match registry.expire_uploads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired idle upload sessions"),
                    Err(e) => tracing::warn!(error = %e, "expiring upload sessions failed"),
                }
                match registry.sweep_orphan_uploads(false).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(swept = n, "removed leftover upload files"),
                    Err(e) => tracing::warn!(error = %e, "sweeping leftover uploads failed"),
                }
                if let Err(e) = registry.expire_pending(pending_ttl).await {
                    tracing::warn!(error = %e, "expiring pending manifests failed");
                }
                held.release().await;
            }
        })
    };

    // Manifests stored before their references were recorded (garbage collection
    // needs them): read once, now.
    match registry.metadata().backfill_manifest_refs().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(manifests = n, "recorded the references of stored manifests"),
        Err(e) => {
            tracing::warn!(error = %e, "recording stored manifests' references failed; garbage collection retries it")
        }
    }
    let collector = cfg.gc_interval.map(|every| {
        let registry = registry.clone();
        let grace = cfg.gc_grace_period;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            // The first tick is immediate: the first run comes one interval after start.
            tick.tick().await;
            loop {
                tick.tick().await;
                let opts = crate::registry::GcOptions {
                    grace,
                    dry_run: false,
                };
                match registry.gc(opts, &crate::registry::Actor::server()).await {
                    Ok(Some(r)) => tracing::info!(
                        manifests = r.manifests_removed,
                        links = r.links_removed,
                        blobs = r.blobs_removed,
                        leftovers = r.leftovers_removed,
                        bytes = r.bytes_freed,
                        seconds = r.seconds,
                        "garbage collection done"
                    ),
                    Ok(None) => tracing::debug!("garbage collection is running elsewhere"),
                    Err(e) => tracing::warn!(error = %e, "garbage collection failed; retrying at the next interval"),
                }
            }
        })
    });
    let retainer = cfg.retention_interval.map(|every| {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let started = std::time::Instant::now();
                // A collection holding the lock (both schedules tick together by default)
                // delays the run, it does not skip it.
                loop {
                    match registry
                        .retention(false, &crate::registry::Actor::server())
                        .await
                    {
                        Ok(Some(r)) => {
                            if r.tags_removed + r.manifests_removed > 0 {
                                tracing::info!(
                                    tags = r.tags_removed,
                                    manifests = r.manifests_removed,
                                    seconds = r.seconds,
                                    "retention done"
                                );
                            }
                        }
                        Ok(None) if started.elapsed() < every => {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            continue;
                        }
                        Ok(None) => tracing::debug!("retention: a collection held the lock all interval"),
                        Err(e) => tracing::warn!(error = %e, "retention failed; retrying at the next interval"),
                    }
                    break;
                }
            }
        })
    });
    let archiver = cfg.audit_archive.clone().map(|(age, dir)| {
        let db = db.clone();
        tokio::spawn(archive_old_records(db, age, dir))
    });
    let trimmer = tokio::spawn(give_memory_back());
    let metrics = match cfg.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving metrics at /metrics");
            let registry = registry.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let registry = registry.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            registry.metrics_text().await,
                        )
                    }
                }),
            );
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            }))
        }
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.addr))?;
    let local = listener.local_addr()?;
    let hostname = cfg.hostname.clone().unwrap_or_else(|| local.to_string());
    let from_flags = load_trust(&cfg, &hostname)?;
    let version = registry
        .init_trust(from_flags, &hostname)
        .await
        .map_err(|e| format!("the recorded trust configuration cannot be used: {e}"))?;
    match registry.trust() {
        Some(trust) => {
            let names: Vec<&str> = trust.policy.policies.iter().map(|p| p.name.as_str()).collect();
            let stores: Vec<String> = trust.stores.refs().map(|r| r.to_string()).collect();
            tracing::info!(
                version, policies = ?names, stores = ?stores, hostname = %hostname,
                "content trust enforced: pushes must satisfy the trust policy (scopes match {hostname}/REPOSITORY)"
            );
        }
        None => tracing::warn!(
            "no trust policy is configured: bonded is running as a plain registry and admits unsigned images"
        ),
    }
    bootstrap_admin(
        &db,
        &cfg.data_dir,
        args.log_format == crate::config::LogFormat::Json,
    )
    .await?;
    let auth = api::auth::Auth::new(
        api::auth::AuthSettings {
            mode: if cfg.open {
                api::auth::Mode::Open
            } else {
                api::auth::Mode::Enforced
            },
            service: hostname.clone(),
            token_key: match db
                .shared_secret("token.key", || rand::random::<[u8; 32]>().to_vec())
                .await?
            {
                Some(k) if k.len() == 32 => k,
                Some(_) => return Err("the database's token.key is not a 32-byte key".into()),
                None => token_key(&cfg.data_dir)?,
            },
            tls,
            failed_logins_per_account: cfg.failed_login_limit,
            failed_logins_per_address: cfg.failed_login_limit_address,
        },
        db.clone(),
        journal.clone(),
    )
    .await?
    .with_account_changes(registry.account_changes());
    // Replicas: apply what the other processes on the database change.
    let follower = match db.listen().await? {
        Some(listener) => {
            tracing::info!("following the changes of other processes on the database");
            Some(tokio::spawn(registry.clone().follow(listener)))
        }
        None => None,
    };
    if cfg.open {
        tracing::warn!(
            "--open: anyone who reaches {local} may pull, push and delete without logging in"
        );
    }
    tracing::info!(addr = %local, data_dir = %cfg.data_dir.display(), "bonded is serving");
    let pull_limit_anonymous = cfg.pull_rate_limit.map(|rate| {
        tracing::info!(%rate, "anonymous manifest pulls are rate limited per client address");
        Arc::new(api::ratelimit::PullLimiter::new(rate))
    });
    let pull_limit_account = cfg.pull_rate_limit_account.map(|rate| {
        tracing::info!(%rate, "manifest pulls are rate limited per account");
        Arc::new(api::ratelimit::PullLimiter::new(rate))
    });
    let pull_limit_roles = cfg
        .pull_rate_limit_role
        .iter()
        .map(|(role, rate)| {
            tracing::info!(%role, %rate, "manifest pulls are rate limited per account holding this role");
            (*role, Arc::new(api::ratelimit::PullLimiter::new(*rate)))
        })
        .collect();
    let auth = Arc::new(auth);
    // Refusals tallied past a limit are reported once their window ends.
    let tallies = {
        let auth = auth.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                auth.flush_refusals(false);
            }
        })
    };
    let app = api::router(
        registry,
        api::Options {
            auth: auth.clone(),
            pull_limit_anonymous,
            pull_limit_account,
            pull_limit_roles,
            body_timeout: cfg.body_timeout,
        },
    );
    let fd_limit = api::conn::raise_fd_limit();
    // Files besides connections: the database, journal, blob reads and uploads.
    const FD_RESERVE: u64 = 256;
    let mut max_connections = cfg.max_connections;
    if let Some(limit) = fd_limit {
        let room = limit.saturating_sub(FD_RESERVE).max(16) as usize;
        if room < max_connections {
            tracing::warn!(
                fd_limit = limit, configured = max_connections, allowed = room,
                "the open-file limit allows fewer connections than --max-connections; raise the hard limit (ulimit -Hn) to allow more"
            );
            max_connections = room;
        }
    }
    let limits = api::conn::Limits {
        header_read_timeout: cfg.header_read_timeout,
        idle_timeout: cfg.idle_timeout,
        max_connections,
        max_connections_per_address: cfg.max_connections_per_address.min(max_connections),
        trusted_proxies: cfg.trusted_proxies.clone(),
    };
    tracing::info!(
        max_connections = limits.max_connections,
        per_address = limits.max_connections_per_address,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        trusted_proxies = ?limits.trusted_proxies,
        ?fd_limit,
        "connection limits"
    );
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            crate::install_crypto_provider();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    format!(
                        "cannot load TLS certificate {} and key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?;
            reload_on_sighup(tls.clone(), cert.clone(), key.clone());
            Some(tls)
        }
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    // One line on stdout for scripts and tests that start bonded on port 0.
    println!(
        "bonded listening on {}://{local}",
        if tls.is_some() { "https" } else { "http" }
    );
    api::conn::serve(listener, app, tls, limits, shutdown).await?;
    sweeper.abort();
    drop(data_dir_lock);
    if let Some(c) = &collector {
        c.abort();
    }
    if let Some(r) = &retainer {
        r.abort();
    }
    trimmer.abort();
    if let Some(a) = archiver {
        a.abort();
    }
    if let Some(f) = follower {
        f.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    tallies.abort();
    auth.flush_refusals(true);
    drainer.abort();
    if let Err(e) = journal.drain(&db).await {
        tracing::error!(error = %e, "moving the last pull records into the audit trail failed; they are imported at the next start");
    }
    db.close().await;
    tracing::info!("bonded stopped");
    Ok(())
}

/// On first start (no accounts yet) creates `admin` with the admin role on `*`; its
/// password comes from BONDED_ADMIN_PASSWORD or is generated and printed once.
///
/// Once accounts exist the variable changes nothing; a start with it set says so, and
/// whether it still is `admin`'s password, so a login that fails is not a mystery.
///
/// With `json` logs (a log pipeline reads standard error), messages are log lines, and a
/// generated password goes to `auth/initial-admin-password` (0600) instead: a secret never
/// enters the log.
async fn bootstrap_admin(
    db: &Metadata,
    data_dir: &std::path::Path,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::var("BONDED_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if db.account_count().await? > 0 {
        if let Some(p) = &given {
            let note = ignored_admin_password(db, data_dir, p).await?;
            if json {
                tracing::warn!("{}", note.trim_start_matches("bonded: "));
            } else {
                eprintln!("{note}");
            }
        }
        return Ok(());
    }
    if let Some(p) = &given {
        crate::auth::password::check_strength(p)
            .map_err(|e| format!("BONDED_ADMIN_PASSWORD: {e}"))?;
    }
    let password = given
        .clone()
        .unwrap_or_else(crate::auth::password::generate);
    let hash = crate::auth::password::hash(&password)?;
    let event = crate::db::AuditEvent::now(
        "bonded",
        None,
        AuditAction::UserAdd,
        Outcome::Ok,
        Some("first administrator 'admin' (user, admin on '*')".into()),
    );
    if db.bootstrap_admin("admin", &hash, &[event]).await? {
        if given.is_some() && json {
            tracing::info!(
                "created the administrator 'admin' with the password from BONDED_ADMIN_PASSWORD"
            );
        } else if given.is_some() {
            eprintln!("bonded: created the administrator 'admin' with the password from BONDED_ADMIN_PASSWORD");
        } else if json {
            let path = data_dir.join("auth").join("initial-admin-password");
            write_private(&path, format!("{password}\n").as_bytes())?;
            tracing::warn!(
                file = %path.display(),
                "created the administrator 'admin' with a generated password, written to the file (read it, then delete it; change it with `bonded user passwd admin`)"
            );
        } else {
            // Printed once, on the terminal only, never to the log.
            eprintln!(
                "bonded: created the administrator 'admin' with password {password}\n        (shown once; change it with `bonded user passwd admin`)"
            );
        }
    }
    Ok(())
}

/// What a start says when BONDED_ADMIN_PASSWORD is set but accounts already exist. The
/// password itself is never printed; whether it matches `admin`'s stored hash is.
async fn ignored_admin_password(
    db: &Metadata,
    data_dir: &std::path::Path,
    given: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let directory = db.directory().await?;
    let head = format!(
        "bonded: BONDED_ADMIN_PASSWORD is ignored: {} already has accounts \
         (the variable only sets the first administrator's password, on the first start)",
        data_dir.display()
    );
    let tail = match directory.accounts.get("admin") {
        Some(a)
            if a.password_hash
                .as_deref()
                .is_some_and(|h| crate::auth::password::verify(given, h)) =>
        {
            "it is still the password of 'admin'".to_string()
        }
        Some(_) => format!(
            "it is NOT the password of 'admin', so logins with it fail; use the password \
             printed on the first start, change it with `bonded user passwd admin --data-dir {}`, \
             or start with a new --data-dir",
            data_dir.display()
        ),
        None => "there is no account 'admin'; `bonded user list` shows the accounts".to_string(),
    };
    Ok(format!("{head};\n        {tail}"))
}

/// The key bearer tokens are signed with: 32 random bytes in `auth/token.key`, made on
/// first start, readable by the owner only. Removing it invalidates every issued token.
fn token_key(data_dir: &std::path::Path) -> Result<Vec<u8>, String> {
    let dir = data_dir.join("auth");
    let path = dir.join("token.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() == 32 => return Ok(k),
        Ok(_) => {
            return Err(format!(
                "{} is not a 32-byte key; remove it to make a new one",
                path.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let key: [u8; 32] = rand::random();
    write_private(&path, &key)?;
    Ok(key.to_vec())
}

/// `--audit-archive-after`: every hour (the first 10 s after start), the records older
/// than `age` go to a new `audit-<time>.jsonl` in `dir`, once across the processes on the
/// database (the sweep lock). Files sort by name in chain order, as `bonded audit verify
/// --archive` wants them.
async fn archive_old_records(db: Metadata, age: Duration, dir: std::path::PathBuf) {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = match db.try_exclusive().await {
            Ok(Some(held)) => held,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "taking the sweep lock for the audit archive failed");
                continue;
            }
        };
        let now = time::OffsetDateTime::now_utc();
        let before = now - time::Duration::try_from(age).unwrap_or(time::Duration::MAX);
        let name = format!(
            "audit-{}.jsonl",
            crate::db::format_at(now).replace(':', "-")
        );
        let result = match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                crate::cli::audit::archive_to(&db, before, &dir.join(&name), "bonded-retention")
                    .await
            }
            Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
        };
        match result {
            Ok(Some(done)) => tracing::info!(
                first = done.first,
                last = done.last.seq,
                file = %dir.join(&name).display(),
                "archived old audit records"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "archiving old audit records failed; retrying in an hour")
            }
        }
        held.release().await;
    }
}

/// Hands freed heap back to the operating system every 10 s. glibc's allocator keeps what
/// a burst of requests freed in its arenas (a server that took 200 concurrent 1 MiB
/// pushes kept 162 MiB until restarted); `malloc_trim` returns the free pages, a few
/// milliseconds of work when there is something to return, none otherwise.
async fn give_memory_back() {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let _ = tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only releases free memory the allocator holds; it takes
            // the allocator's own locks and touches no memory the program uses.
            unsafe { libc::malloc_trim(0) }
        })
        .await;
    }
}

/// Writes `bytes` to `path` readable by its owner only (0600), durably: a temporary file
/// beside it, synced, then renamed into place. Creates the directory if needed.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads and validates the trust policy and stores given by the flags, if any.
fn load_trust(cfg: &ServeConfig, hostname: &str) -> Result<Option<(String, TrustStores)>, String> {
    let Some(policy_path) = &cfg.trust_policy else {
        if cfg.trust_store.is_some() {
            return Err("--trust-store was given without --trust-policy; give both to enforce content trust".into());
        }
        return Ok(None);
    };
    let store_dir = cfg.trust_store.as_ref().ok_or(
        "--trust-policy needs --trust-store, the directory holding x509/ (notation's truststore directory)",
    )?;
    let text = std::fs::read_to_string(policy_path)
        .map_err(|e| format!("cannot read trust policy {}: {e}", policy_path.display()))?;
    let stores = super::truststore::load(store_dir).map_err(|e| e.to_string())?;
    build_config(&text, stores.clone(), hostname).map_err(|e| {
        format!(
            "trust policy {} with trust stores in {}: {e}",
            policy_path.display(),
            store_dir.display()
        )
    })?;
    Ok(Some((text, stores)))
}

/// Reloads the TLS certificate and key on SIGHUP; a bad pair is logged and the previous one
/// kept, so a rotation mistake never takes the registry down.
fn reload_on_sighup(
    tls: axum_server::tls_rustls::RustlsConfig,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload_from_pem_file(&cert, &key).await {
                Ok(()) => tracing::info!(cert = %cert.display(), "TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; still serving the previous one")
                }
            }
        }
    });
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is
/// called, not when the future is first polled: `run` calls it before anything else, so a
/// SIGTERM that arrives while the server is still starting (after the port is bound, say)
/// still shuts it down gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
