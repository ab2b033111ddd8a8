//! `bonded serve`.

use crate::api;
use crate::config::{ServeArgs, ServeConfig};
use crate::db::Metadata;
use crate::registry::{build_config, Registry};
use crate::storage::FsBlobStore;
use crate::trust::store::TrustStores;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ServeConfig::resolve(args)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let store = Arc::new(
        FsBlobStore::open(&cfg.data_dir)
            .map_err(|e| format!("cannot open blob store in {}: {e}", cfg.data_dir.display()))?,
    );
    let db_path = cfg.data_dir.join("bonded.db");
    let db = Metadata::open_sqlite(&db_path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", db_path.display()))?;
    let registry = Arc::new(
        Registry::new(store, db.clone(), cfg.upload_ttl)
            .with_admin_token(cfg.admin_token.as_ref().map(|t| t.expose().to_string())),
    );

    let swept = registry.sweep_orphan_uploads().await?;
    let expired = registry.expire_uploads().await?;
    if swept + expired > 0 {
        tracing::info!(swept, expired, "removed leftover upload files");
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
                match registry.expire_uploads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired idle upload sessions"),
                    Err(e) => tracing::warn!(error = %e, "expiring upload sessions failed"),
                }
                if let Err(e) = registry.expire_pending(pending_ttl).await {
                    tracing::warn!(error = %e, "expiring pending manifests failed");
                }
            }
        })
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
    if cfg.admin_token.is_none() {
        tracing::info!("trust administration API disabled (no --admin-token)");
    }
    tracing::info!(addr = %local, data_dir = %cfg.data_dir.display(), "bonded is serving");
    let pull_limit = cfg.pull_rate_limit.map(|rate| {
        tracing::info!(%rate, "manifest pulls are rate limited per client address");
        std::sync::Arc::new(api::ratelimit::PullLimiter::new(rate))
    });
    let app = api::router(registry, pull_limit);
    match (&cfg.tls_cert, &cfg.tls_key) {
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
            let handle = axum_server::Handle::new();
            {
                let handle = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    handle.graceful_shutdown(Some(Duration::from_secs(30)));
                });
            }
            // One line on stdout for scripts and tests that start bonded on port 0.
            println!("bonded listening on https://{local}");
            axum_server::from_tcp_rustls(listener.into_std()?, tls)?
                .handle(handle)
                .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await?;
        }
        (None, None) => {
            println!("bonded listening on http://{local}");
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        }
        _ => return Err("--tls-cert and --tls-key go together".into()),
    }
    sweeper.abort();
    db.close().await;
    tracing::info!("bonded stopped");
    Ok(())
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
    let stores = TrustStores::load(store_dir).map_err(|e| e.to_string())?;
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
