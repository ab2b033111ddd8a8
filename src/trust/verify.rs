//! Verifying one signature against a policy, and deciding whether the signatures found for
//! an artifact satisfy the policy.
//!
//! Order, as the Notary Project specifies: integrity (envelope, certificate rules, chain,
//! signature, payload against subject), authenticity (chain to the policy's trust stores,
//! trusted identity), expiry, authentic timestamp. Revocation (OCSP/CRL) is not checked yet
//! and is reported as such.

use time::OffsetDateTime;

use super::certs::{self, CertInfo};
use super::envelope::{self, Envelope, SigningScheme};
use super::identity::DistinguishedName;
use super::policy::{Action, Level, TrustPolicy};
use super::store::{StoreType, TrustStores};
use super::{JWS_ENVELOPE, NOTARY_SIGNATURE};
use crate::oci::{media_type, Descriptor, ParsedManifest};

/// The parts of a Notary signature manifest verification needs.
pub struct SignatureManifest {
    /// The envelope layer.
    pub envelope: Descriptor,
    /// The signed manifest.
    pub subject: Descriptor,
}

/// `Some` when the manifest is a Notary signature (either form); an error when it claims
/// to be one but is shaped wrongly.
pub fn notary_signature(parsed: &ParsedManifest) -> Result<Option<SignatureManifest>, String> {
    if parsed.artifact_type.as_deref() != Some(NOTARY_SIGNATURE) {
        return Ok(None);
    }
    if parsed.media_type != media_type::OCI_MANIFEST {
        return Err(format!(
            "a Notary signature must be an OCI image manifest, not {}",
            parsed.media_type
        ));
    }
    let config = parsed.config.as_ref().map_or("", |c| c.media_type.as_str());
    if config != NOTARY_SIGNATURE && config != media_type::OCI_EMPTY {
        return Err(format!(
            "a Notary signature with artifactType {NOTARY_SIGNATURE} must have the empty config, not {config}"
        ));
    }
    let [envelope] = parsed.layers.as_slice() else {
        return Err(format!(
            "a Notary signature has exactly one layer (the envelope), this one has {}",
            parsed.layers.len()
        ));
    };
    let subject = parsed
        .subject
        .clone()
        .ok_or("a Notary signature must name its subject")?;
    Ok(Some(SignatureManifest {
        envelope: envelope.clone(),
        subject,
    }))
}

/// The descriptor a signature claims to sign (the signature manifest's `subject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Passed,
    /// Failed, and the policy enforces it: the signature is rejected.
    Failed(String),
    /// Failed, and the policy only logs it.
    Logged(String),
    /// Not run (skipped by the policy, or not reached after an enforced failure).
    NotRun,
}

impl Check {
    fn from(action: Action, result: Result<(), String>) -> Check {
        match (action, result) {
            (Action::Skip, _) => Check::NotRun,
            (_, Ok(())) => Check::Passed,
            (Action::Enforce, Err(e)) => Check::Failed(e),
            (Action::Log, Err(e)) => Check::Logged(e),
        }
    }

    fn failed(&self) -> Option<&str> {
        match self {
            Check::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// What verification found about one signature.
#[derive(Debug, Clone)]
pub struct SignatureVerdict {
    pub integrity: Check,
    pub authenticity: Check,
    pub expiry: Check,
    pub authentic_timestamp: Check,
    /// The leaf certificate's subject, once the envelope could be read.
    pub signer: Option<DistinguishedName>,
    pub algorithm: Option<&'static str>,
    pub signing_time: Option<OffsetDateTime>,
    /// Hex SHA-256 of each certificate of the chain, leaf first.
    pub thumbprints: Vec<String>,
}

impl Check {
    /// `{"outcome": "passed" | "failed" | "logged" | "notRun", "reason"?: ...}`
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Check::Passed => serde_json::json!({ "outcome": "passed" }),
            Check::Failed(r) => serde_json::json!({ "outcome": "failed", "reason": r }),
            Check::Logged(r) => serde_json::json!({ "outcome": "logged", "reason": r }),
            Check::NotRun => serde_json::json!({ "outcome": "notRun" }),
        }
    }
}

impl SignatureVerdict {
    /// Every check's outcome, keyed by the Notary Project's names for them; revocation is
    /// reported as not checked.
    pub fn checks_json(&self) -> serde_json::Value {
        serde_json::json!({
            "integrity": self.integrity.to_json(),
            "authenticity": self.authenticity.to_json(),
            "expiry": self.expiry.to_json(),
            "authenticTimestamp": self.authentic_timestamp.to_json(),
            "revocation": { "outcome": "notRun", "reason": "bonded does not check OCSP or CRLs yet" },
        })
    }

    fn new() -> Self {
        SignatureVerdict {
            integrity: Check::NotRun,
            authenticity: Check::NotRun,
            expiry: Check::NotRun,
            authentic_timestamp: Check::NotRun,
            signer: None,
            algorithm: None,
            signing_time: None,
            thumbprints: Vec::new(),
        }
    }

    /// The first enforced failure, which rejects the signature.
    pub fn failure(&self) -> Option<&str> {
        self.integrity
            .failed()
            .or_else(|| self.authenticity.failed())
            .or_else(|| self.expiry.failed())
            .or_else(|| self.authentic_timestamp.failed())
    }

    /// Whether the signature counts for the policy.
    pub fn accepted(&self) -> bool {
        self.failure().is_none() && self.integrity == Check::Passed
    }
}

/// Integrity: everything that does not depend on whom the policy trusts.
fn integrity(
    envelope_bytes: &[u8],
    envelope_media_type: &str,
    subject: &Subject,
) -> Result<(Envelope, Vec<CertInfo>), String> {
    if envelope_media_type != JWS_ENVELOPE {
        return Err(format!(
            "signature envelope type '{envelope_media_type}' is not supported (only {JWS_ENVELOPE})"
        ));
    }
    let env = envelope::parse(envelope_bytes).map_err(|e| e.to_string())?;
    let chain = certs::parse_chain(&env.chain).map_err(|e| e.to_string())?;
    env.verify_signature(&chain[0]).map_err(|e| e.to_string())?;
    // The x5c chain must hold together on its own, at the time it claims to have signed.
    let at = signing_time(&env);
    let root = chain.last().expect("chain not empty").der.clone();
    certs::validate_path(&chain, &[root], at)
        .map_err(|e| format!("certificate chain is invalid: {e:?}"))?;
    let t = &env.target;
    if t.digest != subject.digest || t.size != subject.size || t.media_type != subject.media_type {
        return Err(format!(
            "payload signs {} ({}, {} bytes), not the subject {} ({}, {} bytes)",
            t.digest, t.media_type, t.size, subject.digest, subject.media_type, subject.size
        ));
    }
    Ok((env, chain))
}

fn signing_time(env: &Envelope) -> OffsetDateTime {
    match env.scheme {
        SigningScheme::SigningAuthority => env.authentic_signing_time,
        SigningScheme::X509 => env.signing_time,
    }
    .expect("parse requires the scheme's signing time")
}

fn authenticity(
    policy: &TrustPolicy,
    stores: &TrustStores,
    env: &Envelope,
    chain: &[CertInfo],
) -> Result<(), String> {
    let kind = match env.scheme {
        SigningScheme::X509 => StoreType::Ca,
        SigningScheme::SigningAuthority => StoreType::SigningAuthority,
    };
    let refs: Vec<_> = policy
        .trust_stores
        .iter()
        .filter(|s| s.kind == kind)
        .collect();
    let names = refs
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if refs.is_empty() {
        return Err(format!(
            "policy '{}' lists no {} trust store for this signature's scheme",
            policy.name,
            kind.as_str()
        ));
    }
    let mut anchors = Vec::new();
    for r in &refs {
        match stores.get(r) {
            Some(certs) => anchors.extend(certs.iter().cloned()),
            None => {
                return Err(format!(
                    "trust store '{r}' named by policy '{}' does not exist",
                    policy.name
                ))
            }
        }
    }
    certs::validate_path(chain, &anchors, signing_time(env)).map_err(|e| {
        format!("signature chain does not lead to a root in trust store {names}: {e:?}")
    })?;
    let signer = &chain[0].subject;
    if policy.trusted_identities.find(signer).is_none() {
        return Err(format!(
            "signer '{signer}' is not a trusted identity of policy '{}'",
            policy.name
        ));
    }
    Ok(())
}

/// Verifies one signature (its envelope bytes and media type) over `subject`, at `now`.
pub fn verify_signature(
    policy: &TrustPolicy,
    stores: &TrustStores,
    envelope_bytes: &[u8],
    envelope_media_type: &str,
    subject: &Subject,
    now: OffsetDateTime,
) -> SignatureVerdict {
    let mut v = SignatureVerdict::new();
    if policy.level == Level::Skip {
        return v;
    }
    let (env, chain) = match integrity(envelope_bytes, envelope_media_type, subject) {
        Ok(x) => x,
        Err(e) => {
            v.integrity = Check::Failed(e);
            return v;
        }
    };
    v.integrity = Check::Passed;
    v.signer = Some(chain[0].subject.clone());
    v.algorithm = Some(env.algorithm.as_str());
    v.signing_time = Some(signing_time(&env));
    v.thumbprints = chain
        .iter()
        .map(|c| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&c.der)))
        .collect();
    let a = &policy.actions;
    v.authenticity = Check::from(a.authenticity, authenticity(policy, stores, &env, &chain));
    if v.failure().is_some() {
        return v;
    }
    v.expiry = Check::from(
        a.expiry,
        match env.expiry {
            Some(exp) if now > exp => Err(format!("signature expired at {exp}")),
            _ => Ok(()),
        },
    );
    if v.failure().is_some() {
        return v;
    }
    // Without a trusted timestamp, a notary.x509 signature's time is only the signer's claim:
    // every certificate must be valid now. A signing authority vouches for its time.
    let at = match env.scheme {
        SigningScheme::X509 => now,
        SigningScheme::SigningAuthority => signing_time(&env),
    };
    v.authentic_timestamp = Check::from(
        a.authentic_timestamp,
        match chain.iter().find(|c| !c.valid_at(at)) {
            Some(c) => Err(format!(
                "certificate '{}' is not valid at {at} (valid {} to {})",
                c.subject, c.not_before, c.not_after
            )),
            None => Ok(()),
        },
    );
    v
}

/// Whether a set of verified signatures satisfies a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// Why, in words a person can act on.
    pub reason: String,
    /// Distinct identities whose signatures were accepted.
    pub signers: Vec<String>,
}

/// Counts accepted signatures by distinct signer (one signer signing twice counts once) and
/// checks `signaturesRequired` and `requiredIdentities`. Skip admits; audit needs one intact
/// signature.
pub fn decide(policy: &TrustPolicy, verdicts: &[SignatureVerdict]) -> Decision {
    let mut signers: Vec<&DistinguishedName> = Vec::new();
    for v in verdicts.iter().filter(|v| v.accepted()) {
        if let Some(s) = &v.signer {
            if !signers.contains(&s) {
                signers.push(s);
            }
        }
    }
    let names: Vec<String> = signers.iter().map(|s| s.to_string()).collect();
    match policy.level {
        Level::Skip => {
            return Decision {
                admitted: true,
                reason: format!("policy '{}' skips verification", policy.name),
                signers: names,
            }
        }
        Level::Audit => {
            // As notation: integrity is still enforced; everything else is only logged.
            // (The push gate does not ask: under audit it admits everything.)
            let admitted = !names.is_empty();
            let reason = if admitted {
                format!(
                    "policy '{}' audits only; intact signatures from {}",
                    policy.name,
                    names.join("; ")
                )
            } else {
                let why: Vec<&str> = verdicts.iter().filter_map(|v| v.failure()).collect();
                format!(
                    "policy '{}' audits, but no signature is intact{}",
                    policy.name,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", why.join("; "))
                    }
                )
            };
            return Decision {
                admitted,
                reason,
                signers: names,
            };
        }
        _ => {}
    }
    let mut missing = Vec::new();
    let k = policy.signatures_required as usize;
    if signers.len() < k {
        let found = if names.is_empty() {
            "none".to_string()
        } else {
            names.join("; ")
        };
        let rejected = verdicts
            .iter()
            .filter_map(|v| v.failure())
            .collect::<Vec<_>>();
        let mut m = format!(
            "policy '{}' needs {k} signature{} from distinct trusted identities; found {}: {found}",
            policy.name,
            if k == 1 { "" } else { "s" },
            names.len()
        );
        if !rejected.is_empty() {
            m.push_str(&format!(
                " ({} rejected: {})",
                rejected.len(),
                rejected.join("; ")
            ));
        }
        missing.push(m);
    }
    for required in &policy.required_identities {
        if !signers.iter().any(|s| required.matches(s)) {
            missing.push(format!(
                "policy '{}' requires a signature from '{required}'",
                policy.name
            ));
        }
    }
    if missing.is_empty() {
        Decision {
            admitted: true,
            reason: format!(
                "policy '{}' is satisfied by {}",
                policy.name,
                names.join("; ")
            ),
            signers: names,
        }
    } else {
        Decision {
            admitted: false,
            reason: missing.join("; "),
            signers: names,
        }
    }
}
