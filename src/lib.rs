//! bonded: a trusted OCI container registry.
//!
//! Layers, from the bottom up (data flows one way, top to bottom):
//! - [`oci`]: digests, names, references, manifest parsing and validation. Pure, no I/O.
//! - [`storage`]: the byte-level blob store and upload files. Knows nothing of repositories.
//! - [`db`]: metadata (repositories, blob links, manifests, tags, referrers, upload sessions).
//! - [`registry`]: OCI Distribution semantics on top of `storage` + `db`; the only place that
//!   combines them, so handlers never touch either directly.
//! - [`api`]: axum routes and error mapping; thin.
//! - [`cli`]: the `bonded` subcommands.

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod metrics;
pub mod oci;
pub mod registry;
pub mod revocation;
pub mod storage;
pub mod timefmt;
pub mod trust;
pub mod wire;

#[cfg(test)]
mod test_vectors;

/// Installs ring as rustls's process-wide crypto provider (HTTPS in the CLI's client).
/// Idempotent; call before building an HTTP client.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
