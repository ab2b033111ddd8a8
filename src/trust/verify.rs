//! Verifying one signature against a policy, and deciding whether the signatures found for
//! an artifact satisfy the policy.
//!
//! Order, as the Notary Project specifies: integrity (envelope, certificate rules, chain,
//! signature, payload against subject), authenticity (chain to the policy's trust stores,
//! trusted identity), expiry, authentic timestamp, revocation (the chain's CRLs, fetched by
//! the caller and passed in as [`Evidence`]).

use time::OffsetDateTime;

use super::certs::{self, CertInfo, KeyId};
use super::envelope::{self, Envelope, SigningScheme};
use super::identity::{DistinguishedName, Signer};
use super::policy::{Action, Level, TrustPolicy, TrustedIdentities, VerifyTimestamp};
use super::revocation::{self, Evidence};
use super::store::{StoreRef, StoreType, TrustStores};
use super::NOTARY_SIGNATURE;
use crate::oci::{media_type, Descriptor, ParsedManifest};

/// The parts of a Notary signature manifest verification needs.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "camelCase")]
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
    /// The outcome of a check the policy treats with `action`.
    pub fn from_result(action: Action, result: Result<(), String>) -> Check {
        Check::from(action, result)
    }

    fn from(action: Action, result: Result<(), String>) -> Check {
        match (action, result) {
            (Action::Skip, _) => Check::NotRun,
            (_, Ok(())) => Check::Passed,
            (Action::Enforce, Err(e)) => Check::Failed(e),
            (Action::Log, Err(e)) => Check::Logged(e),
        }
    }

    fn not_run() -> Check {
        Check::NotRun
    }

    fn failed(&self) -> Option<&str> {
        match self {
            Check::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// What verification found about one signature, whatever its format: what a stored
/// verdict keeps, so that the policy is decided from verdicts rather than by verifying
/// every signature again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureVerdict {
    pub integrity: Check,
    pub authenticity: Check,
    pub expiry: Check,
    pub authentic_timestamp: Check,
    /// The chain's revocation status (records made before bonded checked it say `notRun`).
    #[serde(default = "Check::not_run")]
    pub revocation: Check,
    /// The leaf certificate's subject, once the envelope could be read.
    pub signer: Option<DistinguishedName>,
    /// The leaf certificate's key, once the envelope could be read.
    pub key: Option<KeyId>,
    pub algorithm: Option<super::envelope::Algorithm>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub signing_time: Option<OffsetDateTime>,
    /// Hex SHA-256 of each certificate of the chain, leaf first.
    pub thumbprints: Vec<String>,
    /// The verdict holds for verification times from `valid_from` to `valid_until`
    /// (unbounded where `None`): outside, a time-dependent check (signature expiry, the
    /// chain's validity) could come out differently, and the signature must be verified
    /// again.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// For a cosign signature: its key and what the payload claims (`None` for Notary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign: Option<CosignDetails>,
}

/// What a cosign signature's verdict keeps beyond the common fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CosignDetails {
    /// `sha256:<hex>` of the key that verified it (its identity), once one did.
    pub key: Option<String>,
    /// How it verified, e.g. `ECDSA-P256-SHA256`.
    pub algorithm: Option<String>,
    /// The payload's `critical.identity.docker-reference` (recorded, not enforced).
    pub docker_reference: String,
    /// For a keyless signature (a Fulcio certificate and a Rekor entry): who, and when the
    /// log saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessDetails>,
    /// Whether it is a Sigstore bundle (cosign's new bundle format) rather than a
    /// simple-signing layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bundle: bool,
    /// A DSSE bundle's in-toto predicate type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
}

/// Who a keyless signature's Fulcio certificate names, and the Rekor entry that dates it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeylessDetails {
    pub issuer: String,
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub integrated_time: OffsetDateTime,
    pub log_index: i64,
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
    /// Every check's outcome, keyed by the Notary Project's names for them.
    pub fn checks_json(&self) -> serde_json::Value {
        serde_json::json!({
            "integrity": self.integrity.to_json(),
            "authenticity": self.authenticity.to_json(),
            "expiry": self.expiry.to_json(),
            "authenticTimestamp": self.authentic_timestamp.to_json(),
            "revocation": self.revocation.to_json(),
        })
    }

    /// A verdict with nothing checked yet.
    pub fn empty() -> Self {
        Self::new()
    }

    /// Who signed, whatever the format: a key-based cosign signature's key once one
    /// verified, else the certificate subject (Notary, and cosign's certificate mode).
    pub fn signer_identity(&self) -> Option<Signer<'_>> {
        if let Some(k) = self.cosign.as_ref().and_then(|c| c.keyless.as_ref()) {
            return Some(Signer::Sigstore {
                issuer: &k.issuer,
                subject: &k.subject,
            });
        }
        match self.cosign.as_ref().and_then(|c| c.key.as_deref()) {
            Some(key) => Some(Signer::CosignKey(key)),
            None => self.signer.as_ref().map(Signer::X509),
        }
    }

    /// The signer as text, for records and messages.
    pub fn signer_name(&self) -> Option<String> {
        self.signer_identity().map(|s| s.to_string())
    }

    /// The signature algorithm's name (a JWS `alg`, or how a cosign signature verified).
    pub fn algorithm_name(&self) -> Option<String> {
        match &self.cosign {
            Some(c) => c.algorithm.clone(),
            None => self.algorithm.map(|a| a.as_str().to_string()),
        }
    }

    /// The format, as the signature store names it.
    pub fn format(&self) -> &'static str {
        if self.cosign.as_ref().is_some_and(|c| c.bundle) {
            "sigstore.bundle"
        } else if self.cosign.is_some() {
            "cosign"
        } else {
            "notary.jws"
        }
    }

    fn new() -> Self {
        SignatureVerdict {
            integrity: Check::NotRun,
            authenticity: Check::NotRun,
            expiry: Check::NotRun,
            authentic_timestamp: Check::NotRun,
            revocation: Check::NotRun,
            signer: None,
            key: None,
            algorithm: None,
            signing_time: None,
            thumbprints: Vec::new(),
            valid_from: None,
            valid_until: None,
            cosign: None,
        }
    }

    /// Whether the verdict still holds at `t` (see `valid_from`, `valid_until`).
    pub fn holds_at(&self, t: OffsetDateTime) -> bool {
        self.valid_from.is_none_or(|from| from <= t)
            && self.valid_until.is_none_or(|until| t <= until)
    }

    /// Narrows the period the verdict holds to `[from, until]`.
    fn holds_within(&mut self, from: Option<OffsetDateTime>, until: Option<OffsetDateTime>) {
        if let Some(f) = from {
            self.valid_from = Some(self.valid_from.map_or(f, |v| v.max(f)));
        }
        if let Some(u) = until {
            self.valid_until = Some(self.valid_until.map_or(u, |v| v.min(u)));
        }
    }

    /// The first enforced failure, which rejects the signature.
    pub fn failure(&self) -> Option<&str> {
        self.integrity
            .failed()
            .or_else(|| self.authenticity.failed())
            .or_else(|| self.expiry.failed())
            .or_else(|| self.authentic_timestamp.failed())
            .or_else(|| self.revocation.failed())
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
    let env = envelope::parse_as(envelope_media_type, envelope_bytes).map_err(|e| e.to_string())?;
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
    trusted_path(policy, stores, env, chain)?;
    let signer = &chain[0].subject;
    if !signer.is_unambiguous() {
        return Err(format!(
            "signer '{signer}' repeats an attribute type or has a multi-valued RDN, so it names no single identity; policy '{}' trusts none such",
            policy.name
        ));
    }
    if policy.trusted_identities.find(signer).is_none() {
        return Err(format!(
            "signer '{signer}' is not a trusted identity of policy '{}'",
            policy.name
        ));
    }
    Ok(())
}

/// Whether the chain leads to a root of the policy's trust stores for the signature's
/// scheme, at its signing time.
fn trusted_path(
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
    })
}

/// The OCSP responders and CRL distribution points verifying this envelope will look for
/// in its [`Evidence`]: none when it does not parse (integrity fails before revocation is
/// reached) or its chain leads to no root of the policy's stores (nothing is fetched on
/// the word of an untrusted certificate).
pub fn revocation_sources(
    policy: &TrustPolicy,
    stores: &TrustStores,
    envelope_bytes: &[u8],
    envelope_media_type: &str,
) -> Vec<revocation::CertSources> {
    let Ok(env) = envelope::parse_as(envelope_media_type, envelope_bytes) else {
        return Vec::new();
    };
    let Ok(chain) = certs::parse_chain(&env.chain) else {
        return Vec::new();
    };
    // Only the locations certificates of a trusted CA name are fetched: a chain anyone can
    // make would otherwise have the server send requests wherever its certificates say
    // (server-side request forgery). An untrusted chain fails authenticity anyway.
    if trusted_path(policy, stores, &env, &chain).is_err() {
        return Vec::new();
    }
    let mut out = revocation::sources(&chain);
    // The time-stamping authority's chain, where the policy will verify its timestamp.
    let tsa = tsa_stores(policy);
    if let (Some(token), false) = (env.timestamp.as_deref(), tsa.is_empty()) {
        if let Ok(authorities) = tsa_authorities(policy, stores, &tsa) {
            if let Ok(v) =
                super::timestamp::verify_with_accuracy(token, env.signature_bytes(), &authorities)
            {
                out.extend(revocation::sources(&tsa_chain(&v)));
            }
        }
    }
    out
}

/// Verifies one signature (its envelope bytes and media type) over `subject`, at `now`,
/// with the OCSP answers and CRLs fetched for it ([`revocation_sources`]) in `crls`.
pub fn verify_signature(
    policy: &TrustPolicy,
    stores: &TrustStores,
    envelope_bytes: &[u8],
    envelope_media_type: &str,
    subject: &Subject,
    now: OffsetDateTime,
    crls: &Evidence,
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
    v.key = Some(chain[0].key_id);
    v.algorithm = Some(env.algorithm);
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
            Some(exp) if now > exp => Err(format!(
                "signature expired at {}",
                crate::timefmt::rfc3339(exp)
            )),
            _ => Ok(()),
        },
    );
    // The expiry's outcome holds up to the expiry time, or after it once passed.
    if let (Some(exp), true) = (env.expiry, a.expiry != Action::Skip) {
        if now > exp {
            v.holds_within(Some(exp + time::Duration::NANOSECOND), None);
        } else {
            v.holds_within(None, Some(exp));
        }
    }
    if v.failure().is_some() {
        return v;
    }
    // With a `tsa:` store listed (and, under `afterCertExpiry`, once a certificate has
    // expired), a notary.x509 signature's time is its RFC 3161 timestamp: it must carry
    // one, and every certificate must have been valid then (notation's rules).
    let tsa: Vec<&StoreRef> = policy
        .trust_stores
        .iter()
        .filter(|s| s.kind == StoreType::Tsa)
        .collect();
    let timestamped = env.scheme == SigningScheme::X509
        && !tsa.is_empty()
        && match policy.verify_timestamp {
            VerifyTimestamp::Always => true,
            VerifyTimestamp::AfterCertExpiry => chain.iter().any(|c| now > c.not_after),
        };
    if timestamped {
        let stamped = notary_timestamp(policy, stores, &tsa, &env, &chain);
        let signed_at = stamped.as_ref().ok().map(|s| s.gen_time);
        // The authority's own chain is checked for revocation too (a revoked TSA's times
        // prove nothing); its own time does not excuse it.
        let tsa_chain = stamped.as_ref().map(tsa_chain).unwrap_or_default();
        v.authentic_timestamp = Check::from(a.authentic_timestamp, stamped.map(|_| ()));
        // Under afterCertExpiry this path holds from the first expiry on.
        if policy.verify_timestamp == VerifyTimestamp::AfterCertExpiry
            && a.authentic_timestamp != Action::Skip
        {
            let first = chain.iter().map(|c| c.not_after).min();
            v.holds_within(first.map(|t| t + time::Duration::NANOSECOND), None);
        }
        if v.failure().is_none() {
            revoked(
                &mut v,
                a.revocation,
                &[(&chain, signed_at), (&tsa_chain, None)],
                crls,
                now,
            );
        }
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
                "certificate '{}' is not valid at {} (valid {} to {})",
                c.subject,
                crate::timefmt::rfc3339(at),
                crate::timefmt::rfc3339(c.not_before),
                crate::timefmt::rfc3339(c.not_after)
            )),
            None => Ok(()),
        },
    );
    // For notary.x509 the outcome depends on `now`: it holds while `now` stays on the
    // same side of every certificate's validity bounds.
    if env.scheme == SigningScheme::X509 && a.authentic_timestamp != Action::Skip {
        // Validity is `not_before <= t <= not_after`, both ends included.
        let ns = time::Duration::NANOSECOND;
        for c in &chain {
            if now < c.not_before {
                v.holds_within(None, Some(c.not_before - ns));
            } else {
                v.holds_within(Some(c.not_before), None);
            }
            if now <= c.not_after {
                v.holds_within(None, Some(c.not_after));
            } else {
                v.holds_within(Some(c.not_after + ns), None);
            }
        }
    }
    if v.failure().is_none() {
        // A signing authority's signing time is authentic; a notary.x509 signer's claim is not.
        let signed_at = (env.scheme == SigningScheme::SigningAuthority).then_some(at);
        revoked(&mut v, a.revocation, &[(&chain, signed_at)], crls, now);
    }
    v
}

/// The revocation check: the chain's status from its CRLs. Its outcome holds until the
/// earliest `nextUpdate` of the lists read, and at most [`revocation::MAX_AGE`]; an
/// unavailable status is looked for again after [`RETRY_UNAVAILABLE`], a revocation after
/// [`revocation::MAX_AGE`] too (a certificate on hold can be released).
///
/// `chains` are the signer's chain with the signature's trusted time, and the
/// time-stamping authority's, if any: a revocation in either fails the check, and
/// otherwise an unavailable status in either.
fn revoked(
    v: &mut SignatureVerdict,
    action: Action,
    chains: &[(&[CertInfo], Option<OffsetDateTime>)],
    crls: &Evidence,
    now: OffsetDateTime,
) {
    if action == Action::Skip {
        return;
    }
    let latest = now + revocation::MAX_AGE;
    let statuses: Vec<revocation::Status> = chains
        .iter()
        .map(|(chain, signed_at)| revocation::check(chain, crls, now, *signed_at))
        .collect();
    let status = statuses
        .iter()
        .find(|s| matches!(s, revocation::Status::Revoked(_)))
        .or_else(|| {
            statuses
                .iter()
                .find(|s| matches!(s, revocation::Status::Unavailable(_)))
        })
        .cloned()
        .unwrap_or_else(|| revocation::Status::Good {
            until: statuses
                .iter()
                .filter_map(|s| match s {
                    revocation::Status::Good { until } => *until,
                    _ => None,
                })
                .min(),
        });
    let (result, until) = match status {
        // No certificate names a list: nothing that can change.
        revocation::Status::Good { until } => (Ok(()), until.map(|u| u.min(latest))),
        revocation::Status::Revoked(e) => (Err(e), Some(latest)),
        revocation::Status::Unavailable(e) => (Err(e), Some(now + RETRY_UNAVAILABLE)),
    };
    v.revocation = Check::from(action, result);
    v.holds_within(None, until);
}

/// How long a verdict whose revocation status was unavailable stands before the lists are
/// looked for again.
pub const RETRY_UNAVAILABLE: time::Duration = time::Duration::minutes(1);

/// The time-stamping authorities of the `tsa:` stores `tsa` (self-issued CA
/// certificates, as notation requires).
fn tsa_authorities(
    policy: &TrustPolicy,
    stores: &TrustStores,
    tsa: &[&StoreRef],
) -> Result<Vec<super::timestamp::Authority>, String> {
    let mut authorities = Vec::new();
    for r in tsa {
        let certs = stores.get(r).ok_or_else(|| {
            format!(
                "trust store '{r}' named by policy '{}' does not exist",
                policy.name
            )
        })?;
        for der in certs {
            let c = CertInfo::parse(0, der).map_err(|e| format!("trust store '{r}': {e}"))?;
            if !c.is_ca() || !c.self_issued() {
                return Err(format!(
                    "trust store '{r}' holds '{}', which is not a self-issued CA certificate: a tsa store holds the time-stamping authorities' roots",
                    c.subject
                ));
            }
            authorities.push(super::timestamp::Authority {
                chain: vec![der.clone()],
                valid: None,
            });
        }
    }
    if authorities.is_empty() {
        return Err("no trusted TSA certificate found in trust store".into());
    }
    Ok(authorities)
}

/// The time-stamping authority's chain a verified timestamp was verified by, parsed
/// (for its revocation check; the timestamp check already validated it).
fn tsa_chain(v: &super::timestamp::Verified) -> Vec<CertInfo> {
    v.chain
        .iter()
        .enumerate()
        .filter_map(|(i, d)| CertInfo::parse(i, d).ok())
        .collect()
}

/// The `tsa:` stores a policy lists.
fn tsa_stores(policy: &TrustPolicy) -> Vec<&StoreRef> {
    policy
        .trust_stores
        .iter()
        .filter(|s| s.kind == StoreType::Tsa)
        .collect()
}

/// The authentic-timestamp check of a notary.x509 signature with `tsa:` stores: a
/// timestamp countersignature over the signature, by an authority of those stores
/// (self-issued CA certificates, as notation requires), whose whole range (genTime give
/// or take its accuracy) lies within every certificate's validity. The signer's own
/// claimed signing time plays no part.
fn notary_timestamp(
    policy: &TrustPolicy,
    stores: &TrustStores,
    tsa: &[&StoreRef],
    env: &Envelope,
    chain: &[CertInfo],
) -> Result<super::timestamp::Verified, String> {
    let token = env
        .timestamp
        .as_deref()
        .ok_or("no timestamp countersignature was found in the signature envelope")?;
    let authorities = tsa_authorities(policy, stores, tsa)?;
    let stamped =
        super::timestamp::verify_with_accuracy(token, env.signature_bytes(), &authorities)
            .map_err(|e| format!("the timestamp countersignature does not verify: {e}"))?;
    let (earliest, latest) = stamped.range();
    for c in chain {
        if earliest < c.not_before {
            return Err(format!(
                "the timestamp ({}) can be before certificate '{}' validity period, which starts at {}",
                crate::timefmt::rfc3339(stamped.gen_time),
                c.subject,
                crate::timefmt::rfc3339(c.not_before)
            ));
        }
        if latest > c.not_after {
            return Err(format!(
                "the timestamp ({}) can be after certificate '{}' validity period, which ended at {}",
                crate::timefmt::rfc3339(stamped.gen_time),
                c.subject,
                crate::timefmt::rfc3339(c.not_after)
            ));
        }
    }
    Ok(stamped)
}

/// Whether a set of verified signatures satisfies a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// Why, in words a person can act on.
    pub reason: String,
    /// The identities counted (one accepted signature's signer each).
    pub signers: Vec<String>,
}

/// Proof that a trust policy accepted the signatures of one subject: what publishing a
/// waiting tag requires ([`crate::db::Metadata::publish_tags`] takes one, and publishes
/// tags of its subject only). Only [`accept`] makes one: its fields are private and it
/// has no other constructor, so no code path can publish what the evaluator did not
/// accept (the pattern of rustls' `verify.rs` assertion types).
#[derive(Debug)]
pub struct Accepted {
    subject: String,
    policy: String,
    reason: String,
    signers: Vec<String>,
}

impl Accepted {
    /// The digest (`sha256:<hex>`) whose signatures were accepted.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The statement that accepted them.
    pub fn policy(&self) -> &str {
        &self.policy
    }
    /// Why, in the evaluator's words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// The identities counted.
    pub fn signers(&self) -> &[String] {
        &self.signers
    }
}

/// [`decide`] for the signatures of `subject` under an enforcing `policy`: the proof of
/// acceptance, or the decision that refused them. Skip and audit levels accept nothing
/// here: they decide nothing about publication.
pub fn accept(
    policy: &TrustPolicy,
    subject: &str,
    verdicts: &[SignatureVerdict],
) -> Result<Accepted, Decision> {
    let d = decide(policy, verdicts);
    if !d.admitted || !matches!(policy.level, Level::Strict | Level::Permissive) {
        return Err(d);
    }
    Ok(Accepted {
        subject: subject.to_string(),
        policy: policy.name.clone(),
        reason: d.reason,
        signers: d.signers,
    })
}

/// A maximum matching in a bipartite graph: `adjacent[l]` lists the right vertices left
/// vertex `l` may take. Returns, for each left vertex, the right vertex it got. Kuhn's
/// augmenting paths: O(V * E), for the few dozen signatures one subject may carry.
fn max_matching(adjacent: &[Vec<usize>], right: usize) -> Vec<Option<usize>> {
    fn augment(
        l: usize,
        adjacent: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &r in &adjacent[l] {
            if seen[r] {
                continue;
            }
            seen[r] = true;
            if owner[r].is_none_or(|other| augment(other, adjacent, seen, owner)) {
                owner[r] = Some(l);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; right];
    for l in 0..adjacent.len() {
        let mut seen = vec![false; right];
        augment(l, adjacent, &mut seen, &mut owner);
    }
    let mut got = vec![None; adjacent.len()];
    for (r, l) in owner.iter().enumerate() {
        if let Some(l) = l {
            got[*l] = Some(r);
        }
    }
    got
}

/// The accepted signatures that count towards `signaturesRequired`, as indexes into
/// `verdicts`: as many as possible such that
/// - a signing key counts once, whatever certificates carry it;
/// - with listed `trustedIdentities`, a listed identity is satisfied once however many
///   certificates match it, and one key satisfies one identity;
/// - with `*`, an identity is a canonical subject ([`DistinguishedName::canonical`]), so
///   attribute order, case and spacing do not make two, and the keys must differ too.
///
/// Each is a maximum matching between keys and identities, the edges being the accepted
/// signatures; which signatures are named when several could count does not matter.
pub fn counted(policy: &TrustPolicy, verdicts: &[SignatureVerdict]) -> Vec<usize> {
    let accepted: Vec<(usize, Signer, &KeyId)> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| v.accepted())
        .filter_map(|(i, v)| Some((i, v.signer_identity()?, v.key.as_ref()?)))
        .collect();
    // Keys as left-hand vertices, numbered in order of first appearance.
    let mut keys: std::collections::HashMap<&KeyId, usize> = Default::default();
    for (_, _, k) in &accepted {
        let next = keys.len();
        keys.entry(k).or_insert(next);
    }
    // The identities a signature may stand for, as right-hand vertices.
    let mut canonical: std::collections::HashMap<Vec<(String, String)>, usize> = Default::default();
    let identities_of =
        |signer: &Signer, canonical: &mut std::collections::HashMap<_, usize>| -> Vec<usize> {
            match (&policy.trusted_identities, signer) {
                (TrustedIdentities::List(ids), _) => ids
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| id.matches(signer))
                    .map(|(j, _)| j)
                    .collect(),
                (TrustedIdentities::Any, Signer::X509(dn)) if !dn.is_unambiguous() => Vec::new(),
                (TrustedIdentities::Any, Signer::X509(dn)) => {
                    let next = canonical.len();
                    vec![*canonical.entry(dn.canonical()).or_insert(next)]
                }
                // A key is its own identity (a pair no subject can be: DN attribute types
                // are never "cosign.key").
                (TrustedIdentities::Any, Signer::CosignKey(k)) => {
                    let next = canonical.len();
                    vec![*canonical
                        .entry(vec![("cosign.key".to_string(), k.to_string())])
                        .or_insert(next)]
                }
                // A keyless identity is its issuer and subject, whatever key (Fulcio keys
                // are new for every signature) or certificate carries it.
                (TrustedIdentities::Any, Signer::Sigstore { issuer, subject }) => {
                    let next = canonical.len();
                    vec![*canonical
                        .entry(vec![
                            ("sigstore.issuer".to_string(), issuer.to_string()),
                            ("sigstore.subject".to_string(), subject.to_string()),
                        ])
                        .or_insert(next)]
                }
            }
        };
    // (key, identity) -> the first signature that joins them.
    let mut witness: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    let mut adjacent: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    for (i, signer, key) in &accepted {
        let k = keys[key];
        for j in identities_of(signer, &mut canonical) {
            if let std::collections::btree_map::Entry::Vacant(e) = witness.entry((k, j)) {
                e.insert(*i);
                adjacent[k].push(j);
            }
        }
    }
    let right = match &policy.trusted_identities {
        TrustedIdentities::List(ids) => ids.len(),
        TrustedIdentities::Any => canonical.len(),
    };
    let mut chosen: Vec<usize> = max_matching(&adjacent, right)
        .into_iter()
        .enumerate()
        .filter_map(|(k, j)| Some(witness[&(k, j?)]))
        .collect();
    chosen.sort_unstable();
    chosen
}

/// Counts accepted signatures by distinct identity and key ([`counted`]) and checks
/// `signaturesRequired` and `requiredIdentities`. Skip admits; audit needs one intact
/// signature.
pub fn decide(policy: &TrustPolicy, verdicts: &[SignatureVerdict]) -> Decision {
    let name_of = |i: &usize| verdicts[*i].signer_name().unwrap_or_default();
    match policy.level {
        Level::Skip => {
            return Decision {
                admitted: true,
                reason: format!("policy '{}' skips verification", policy.name),
                signers: Vec::new(),
            }
        }
        Level::Audit => {
            // As notation: integrity is still enforced; everything else is only logged.
            // (The push gate does not ask: under audit it admits everything.)
            let mut names: Vec<String> = Vec::new();
            for v in verdicts.iter().filter(|v| v.accepted()) {
                if let Some(s) = v.signer_name() {
                    if !names.contains(&s) {
                        names.push(s);
                    }
                }
            }
            names.sort();
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
    let chosen = counted(policy, verdicts);
    // In name order: the same signatures give the same message, whatever order they
    // were pushed or listed in.
    let mut names: Vec<String> = chosen.iter().map(name_of).collect();
    names.sort();
    let mut missing = Vec::new();
    let k = policy.signatures_required as usize;
    if chosen.len() < k {
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
        let uncounted = verdicts.iter().filter(|v| v.accepted()).count() - chosen.len();
        if uncounted > 0 {
            m.push_str(&format!(
                " ({uncounted} more valid signature{} not counted: same key or identity as one counted, or no trusted identity)",
                if uncounted == 1 { "" } else { "s" }
            ));
        }
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
        let signed = verdicts
            .iter()
            .filter(|v| v.accepted())
            .any(|v| v.signer_identity().is_some_and(|s| required.matches(&s)));
        if !signed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::policy::TrustPolicyDocument;

    fn policy(identities: &[&str], k: u32) -> TrustPolicy {
        let doc = serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "p", "registryScopes": ["reg.io/app"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:r"],
            "trustedIdentities": identities, "signaturesRequired": k,
        }]});
        TrustPolicyDocument::parse(doc.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0)
    }

    const ALICE: &str = "x509.subject: C=US, ST=WA, O=Acme, CN=alice";
    const BOB: &str = "x509.subject: C=US, ST=WA, O=Acme, CN=bob";

    fn dn(s: &str) -> DistinguishedName {
        DistinguishedName::new(
            s.split(", ")
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect(),
        )
    }

    /// An accepted signature by `subject` with key number `key`.
    fn signed(subject: &str, key: u8) -> SignatureVerdict {
        let mut v = SignatureVerdict::new();
        v.integrity = Check::Passed;
        v.authenticity = Check::Passed;
        v.expiry = Check::Passed;
        v.authentic_timestamp = Check::Passed;
        v.signer = Some(dn(subject));
        v.key = Some(KeyId([key; 32]));
        v
    }

    /// An accepted cosign signature by key `fingerprint` (key number `key`).
    fn cosign_signed(fingerprint: &str, key: u8) -> SignatureVerdict {
        let mut v = SignatureVerdict::new();
        v.integrity = Check::Passed;
        v.authenticity = Check::Passed;
        v.key = Some(KeyId([key; 32]));
        v.cosign = Some(CosignDetails {
            key: Some(fingerprint.to_string()),
            algorithm: Some("ECDSA-P256-SHA256".into()),
            docker_reference: "reg.io/app".into(),
            ..Default::default()
        });
        v
    }

    /// An accepted keyless signature by `issuer` and `subject`, with Fulcio key `key`.
    fn keyless_signed(issuer: &str, subject: &str, key: u8) -> SignatureVerdict {
        let mut v = cosign_signed("unused", key);
        let details = v.cosign.as_mut().unwrap();
        details.key = None;
        details.keyless = Some(KeylessDetails {
            issuer: issuer.into(),
            subject: subject.into(),
            integrated_time: OffsetDateTime::UNIX_EPOCH,
            log_index: 1,
        });
        v
    }

    /// The proof that publishing needs is made only when an enforcing policy admits,
    /// and names the subject it was made for.
    #[test]
    fn acceptance_is_proved_only_when_an_enforcing_policy_admits() {
        let subject = format!("sha256:{}", "a".repeat(64));
        let p = policy(&[ALICE], 1);
        let alice = [signed("C=US, ST=WA, O=Acme, CN=alice", 1)];
        let ok = accept(&p, &subject, &alice).unwrap();
        assert_eq!(ok.subject(), subject);
        assert_eq!(ok.policy(), "p");
        assert_eq!(ok.signers().len(), 1);
        let bob = [signed("C=US, ST=WA, O=Acme, CN=bob", 2)];
        assert!(!accept(&p, &subject, &bob).unwrap_err().admitted);
        assert!(accept(&p, &subject, &[]).is_err());
        // Skip and audit admit every push, and prove nothing.
        for level in [Level::Skip, Level::Audit] {
            let mut lax = policy(&[ALICE], 1);
            lax.level = level;
            assert!(accept(&lax, &subject, &alice).is_err(), "{level:?}");
        }
    }

    /// A keyless identity is its issuer and subject: one person signing twice (Fulcio
    /// gives a new key each time) counts once, listed or under `*`; the same subject from
    /// another issuer is another identity; a keyless signer and a Notary signer are two.
    #[test]
    fn keyless_identities_count_once_whatever_their_keys() {
        const GH: &str = "https://github.com/login/oauth";
        const GOOGLE: &str = "https://accounts.google.com";
        let alice_gh = format!("sigstore: issuer={GH}; subject=alice@example.com");
        let bob_gh = format!("sigstore: issuer={GH}; subject=bob@example.com");
        let twice = [
            keyless_signed(GH, "alice@example.com", 1),
            keyless_signed(GH, "alice@example.com", 2),
        ];
        for p in [policy(&[&alice_gh, &bob_gh], 2), policy(&["*"], 2)] {
            assert_eq!(counted(&p, &twice).len(), 1);
            assert!(!decide(&p, &twice).admitted);
        }
        let two_people = [
            keyless_signed(GH, "alice@example.com", 1),
            keyless_signed(GH, "bob@example.com", 2),
        ];
        assert!(decide(&policy(&[&alice_gh, &bob_gh], 2), &two_people).admitted);
        // Under `*`, an issuer is part of the identity.
        let two_issuers = [
            keyless_signed(GH, "alice@example.com", 1),
            keyless_signed(GOOGLE, "alice@example.com", 2),
        ];
        assert_eq!(counted(&policy(&["*"], 2), &two_issuers).len(), 2);
        // ...and a listed identity names its issuer: Google's alice is not GitHub's.
        assert_eq!(
            counted(&policy(&[&alice_gh, &bob_gh], 2), &two_issuers).len(),
            1
        );
        // A pattern entry is satisfied once, however many subjects it matches.
        let pattern = format!(r"sigstore: issuer={GH}; subject~=.*@example\.com");
        assert_eq!(
            counted(&policy(&[&pattern, ALICE], 2), &two_people).len(),
            1
        );
        // Keyless plus Notary: two identities.
        let mixed = [
            keyless_signed(GH, "alice@example.com", 1),
            signed("C=US, ST=WA, O=Acme, CN=alice", 9),
        ];
        assert!(decide(&policy(&[&alice_gh, ALICE], 2), &mixed).admitted);
    }

    /// `signaturesRequired` counts identities across formats: a Notary signer and a cosign
    /// key are two; one key is one however it signs (a certificate for the same key that
    /// also signed as a cosign key counts once).
    #[test]
    fn identities_are_counted_across_formats() {
        let k1 = format!("sha256:{}", "1".repeat(64));
        let k2 = format!("sha256:{}", "2".repeat(64));
        let listed = policy(
            &[
                ALICE,
                &format!("cosign.key: {k1}"),
                &format!("cosign.key: {k2}"),
            ],
            2,
        );
        let d = decide(
            &listed,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                cosign_signed(&k1, 2),
            ],
        );
        assert!(d.admitted, "{d:?}");
        assert!(d.signers.contains(&format!("cosign.key: {k1}")), "{d:?}");
        // the same key twice (two cosign signatures) is one identity
        let d = decide(&listed, &[cosign_signed(&k1, 2), cosign_signed(&k1, 2)]);
        assert!(!d.admitted, "{d:?}");
        // alice's certificate and a cosign signature with alice's own key: one key, once
        let d = decide(
            &listed,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                cosign_signed(&k1, 1),
            ],
        );
        assert!(!d.admitted, "{d:?}");
        // an unlisted key does not count
        let d = decide(
            &listed,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                cosign_signed(&format!("sha256:{}", "3".repeat(64)), 3),
            ],
        );
        assert!(!d.admitted, "{d:?}");
        // under "*", two keys are two identities
        let any = policy(&["*"], 2);
        assert!(decide(&any, &[cosign_signed(&k1, 1), cosign_signed(&k2, 2)]).admitted);
        assert!(!decide(&any, &[cosign_signed(&k1, 1), cosign_signed(&k1, 1)]).admitted);
    }

    #[test]
    fn cosign_key_identities_are_validated() {
        use super::super::identity::TrustedIdentity;
        let k = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            TrustedIdentity::parse(&format!("cosign.key: {k}")).unwrap(),
            TrustedIdentity::CosignKey(k.clone())
        );
        for bad in [
            "cosign.key: sha256:abc".to_string(),
            format!("cosign.key: {}", k.to_uppercase()),
            format!("cosign.key: sha512:{}", "a".repeat(64)),
            "cosign.key:".to_string(),
            "email: alice@example.com".to_string(),
        ] {
            assert!(TrustedIdentity::parse(&bad).is_err(), "{bad}");
        }
        // the same key listed twice is refused as an overlap
        let doc = serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "p", "registryScopes": ["reg.io/app"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["cosign:c"],
            "trustedIdentities": [format!("cosign.key: {k}"), format!("cosign.key:{k}")]}]});
        assert!(TrustPolicyDocument::parse(doc.to_string().as_bytes()).is_err());
    }

    #[test]
    fn one_signer_with_several_certificates_counts_once_for_listed_identities() {
        let p = policy(&[ALICE, BOB], 2);
        // Every variant of alice's subject matches her identity: each counts as alice.
        let alice_variants = [
            "C=US, ST=WA, O=Acme, CN=alice",
            "CN=alice, O=Acme, ST=WA, C=US",
            "C=US, ST=WA, O=Acme, OU=Build, CN=alice",
            "C=US, ST=WA, L=Seattle, O=Acme, CN=alice",
        ];
        for (i, a) in alice_variants.iter().enumerate() {
            for b in &alice_variants[i..] {
                // different keys, same listed identity
                let d = decide(&p, &[signed(a, 1), signed(b, 2)]);
                assert!(!d.admitted, "{a} + {b}: {d:?}");
                assert_eq!(d.signers.len(), 1, "{a} + {b}");
            }
        }
        // alice's signature re-wrapped in a certificate for bob with alice's key
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, CN=bob", 1),
            ],
        );
        assert!(!d.admitted, "{d:?}");
        assert!(d.reason.contains("found 1"), "{}", d.reason);
        // a subject with two CNs matches neither identity
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, CN=alice, CN=bob", 2),
            ],
        );
        assert!(!d.admitted, "{d:?}");
        // alice and bob, each with a key of their own
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, OU=Build, CN=alice", 2),
                signed("C=US, ST=WA, O=Acme, CN=bob", 3),
            ],
        );
        assert!(d.admitted, "{d:?}");
        assert_eq!(d.signers.len(), 2);
    }

    #[test]
    fn a_certificate_matching_two_identities_satisfies_one() {
        // Identities that do not overlap as notation checks it (neither is a subset of the
        // other), but one subject can carry both.
        let p = policy(
            &[
                "x509.subject: C=US, ST=WA, O=Acme, CN=alice",
                "x509.subject: C=US, ST=WA, O=Acme, OU=Release",
            ],
            2,
        );
        let both = "C=US, ST=WA, O=Acme, OU=Release, CN=alice";
        assert!(!decide(&p, &[signed(both, 1)]).admitted);
        // The same key in two certificates: still one.
        assert!(!decide(&p, &[signed(both, 1), signed(both, 1)]).admitted);
        // One key for each identity: the matching gives the other key the other identity.
        let d = decide(
            &p,
            &[
                signed(both, 1),
                signed("C=US, ST=WA, O=Acme, OU=Release, CN=carol", 2),
            ],
        );
        assert!(d.admitted, "{d:?}");
    }

    #[test]
    fn with_any_identity_canonical_subjects_and_keys_must_both_differ() {
        let p = policy(&["*"], 2);
        let same_identity = [
            (
                "C=US, ST=WA, O=Acme, CN=alice",
                "CN=alice, O=Acme, ST=WA, C=US",
            ),
            (
                "C=US, ST=WA, O=Acme, CN=alice",
                "C=us, ST=wa, O=ACME, CN=Alice",
            ),
            (
                "C=US, ST=WA, O=Acme Inc, CN=alice",
                "C=US, ST=WA, O= Acme   Inc , CN=alice",
            ),
        ];
        for (a, b) in same_identity {
            let d = decide(&p, &[signed(a, 1), signed(b, 2)]);
            assert!(!d.admitted, "{a} / {b}: {d:?}");
        }
        // Distinct subjects, one key: one signer.
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, CN=bob", 1),
            ],
        );
        assert!(!d.admitted, "{d:?}");
        // Distinct subjects and keys: two.
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, CN=bob", 2),
            ],
        );
        assert!(d.admitted, "{d:?}");
        // Key 1 under two names, key 2 under one of them: the matching still finds two.
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, CN=bob", 1),
                signed("C=US, ST=WA, O=Acme, CN=alice", 2),
            ],
        );
        assert!(d.admitted, "{d:?}");
    }

    #[test]
    fn failed_signatures_and_required_identities() {
        let mut p = policy(&[ALICE, BOB], 1);
        p.required_identities = vec![super::super::identity::TrustedIdentity::parse(BOB).unwrap()];
        let mut broken = signed("C=US, ST=WA, O=Acme, CN=bob", 2);
        broken.authenticity = Check::Failed("untrusted".into());
        let d = decide(&p, &[signed("C=US, ST=WA, O=Acme, CN=alice", 1), broken]);
        assert!(!d.admitted);
        assert!(
            d.reason.contains("requires a signature from"),
            "{}",
            d.reason
        );
        let d = decide(
            &p,
            &[
                signed("C=US, ST=WA, O=Acme, CN=alice", 1),
                signed("C=US, ST=WA, O=Acme, CN=bob", 2),
            ],
        );
        assert!(d.admitted, "{d:?}");
    }

    #[test]
    fn matchings_are_maximum() {
        // 0 may take a or b, 1 only a: both get one.
        assert_eq!(
            max_matching(&[vec![0, 1], vec![0]], 2),
            vec![Some(1), Some(0)]
        );
        // Three keys competing for two identities.
        let got = max_matching(&[vec![0], vec![0], vec![0, 1]], 2);
        assert_eq!(got.iter().flatten().count(), 2);
        assert_eq!(max_matching(&[vec![], vec![]], 0), vec![None, None]);
    }
}
