//! Integration tests: one binary (one link) for all of them; each module starts the real
//! `bonded` binary, and clients beside it, on ephemeral loopback ports.

mod common;

mod api_scopes;
mod audit;
mod auth;
mod cli;
mod cli_distribution;
mod cli_tls_auth;
mod clients;
mod compliance;
mod connections;
mod containerd;
mod copy;
mod cosign;
mod crash;
mod distribution;
mod docker;
mod first_hour;
mod hostile_registry;
mod k_of_n;
mod keys;
mod lifecycle;
mod operations;
mod pending;
mod pkcs11;
mod podman;
mod postgres;
mod quickstart;
mod quota;
mod rate_limit;
mod readme;
mod replicas;
mod revocation;
mod s3;
mod sigstore;
mod tag_schema;
mod timestamps;
mod tls;
mod trust_admin;
mod trust_gate;
mod trust_rules;
mod trust_vectors;
mod verify_vectors;
