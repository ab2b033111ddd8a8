//! Content trust: Notary Project signature envelopes, certificate rules and chains, trust
//! stores, trust policies, and the verdicts they produce.
//!
//! **Architecture Invariant:** everything here is a pure function of bytes, policy and a
//! time passed in by the caller. No HTTP, no database, no clock: the server and the CLI
//! call the same functions and get the same answers.

pub mod certs;
pub mod cosign;
pub mod envelope;
pub mod identity;
pub mod policy;
pub mod revocation;
pub mod sign;
pub mod signatures;
pub mod sigstore;
pub mod store;
pub mod timestamp;
pub mod verify;

/// `artifactType` (current form) or config media type (older form) of a Notary signature.
pub const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// The media type of a JWS envelope layer.
pub const JWS_ENVELOPE: &str = "application/jose+json";
/// The `cty` of a Notary payload.
pub const NOTARY_PAYLOAD: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Annotation of a signature manifest: JSON array of the hex SHA-256 of each certificate.
pub const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";
