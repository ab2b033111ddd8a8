//! Signature manifests of every format, recognised and verified one way. The gate and
//! `bonded verify` ask this module what a manifest is and what each of its signatures
//! proves; the formats' own modules ([`super::verify`] for Notary JWS, [`super::cosign`]
//! for cosign's simple signing, [`super::sigstore`] for bundles) do the checking, and every
//! one of them answers with the same [`SignatureVerdict`] for the policy to count.

use time::OffsetDateTime;

use super::cosign::{self, CosignSignatures};
use super::policy::TrustPolicy;
use super::revocation::Evidence;
use super::store::TrustStores;
use super::verify::{
    notary_signature, verify_signature, SignatureManifest, SignatureVerdict, Subject,
};
use crate::oci::{Descriptor, ParsedManifest};

/// Largest Notary signature envelope read; real ones are a few KiB.
pub const MAX_ENVELOPE: u64 = 4 << 20;

/// A manifest that holds signatures: what it signs, and one or more signatures, each a
/// blob of the repository.
#[derive(Debug, Clone)]
pub enum SignatureSet {
    /// A Notary Project signature (JWS envelope), one per manifest.
    Notary(SignatureManifest),
    /// cosign's signature manifest (the `.sig` tag or a referrer: simple-signing layers)
    /// or a Sigstore bundle referrer.
    Cosign(CosignSignatures),
}

impl SignatureSet {
    /// What `parsed` is, pushed or stored under `sig_tag` (a `sha256-<hex>.sig` tag, if
    /// any): `None` when it holds no signatures; an error, in words for the pusher, when
    /// it claims to and is shaped wrongly.
    pub fn find(parsed: &ParsedManifest, sig_tag: Option<&str>) -> Result<Option<Self>, String> {
        if let Some(c) = cosign::cosign_signatures(parsed, sig_tag)
            .map_err(|why| format!("cosign signature refused: {why}"))?
        {
            return Ok(Some(SignatureSet::Cosign(c)));
        }
        Ok(notary_signature(parsed)
            .map_err(|why| format!("signature refused: {why}"))?
            .map(SignatureSet::Notary))
    }

    /// The signed manifest's digest, `sha256:<hex>`.
    pub fn subject(&self) -> String {
        match self {
            SignatureSet::Notary(n) => n.subject.digest.to_string(),
            SignatureSet::Cosign(c) => c.subject.clone(),
        }
    }

    /// The subject's descriptor, where the signature manifest names one in full.
    pub fn subject_descriptor(&self) -> Option<&Descriptor> {
        match self {
            SignatureSet::Notary(n) => Some(&n.subject),
            SignatureSet::Cosign(_) => None,
        }
    }

    /// What the pusher is told the refused thing was: "signature" or "cosign signature".
    pub fn noun(&self) -> &'static str {
        match self {
            SignatureSet::Notary(_) => "signature",
            SignatureSet::Cosign(_) => "cosign signature",
        }
    }

    /// Each signature's blob, and the most bytes it may have.
    pub fn blobs(&self) -> Vec<(&Descriptor, u64)> {
        match self {
            SignatureSet::Notary(n) => vec![(&n.envelope, MAX_ENVELOPE)],
            SignatureSet::Cosign(c) => c
                .layers
                .iter()
                .map(|l| (&l.payload, l.max_size()))
                .collect(),
        }
    }

    /// The revocation sources verifying a signature (whose blob is `blob`) reads: those
    /// of a Notary signature's chain. (cosign and Sigstore certificates name none bonded
    /// checks.)
    pub fn revocation_sources(
        &self,
        policy: &TrustPolicy,
        stores: &TrustStores,
        blob: &[u8],
    ) -> Vec<super::revocation::CertSources> {
        match self {
            SignatureSet::Notary(n) => {
                super::verify::revocation_sources(policy, stores, blob, &n.envelope.media_type)
            }
            SignatureSet::Cosign(_) => Vec::new(),
        }
    }

    /// Verifies signature `i`, whose blob is `blob`, under `policy` at `now`, with the
    /// answers for [`Self::revocation_sources`] in `crls`.
    pub fn verify(
        &self,
        i: usize,
        policy: &TrustPolicy,
        stores: &TrustStores,
        blob: &[u8],
        now: OffsetDateTime,
        crls: &Evidence,
    ) -> SignatureVerdict {
        match self {
            SignatureSet::Notary(n) => verify_signature(
                policy,
                stores,
                blob,
                &n.envelope.media_type,
                &Subject {
                    media_type: n.subject.media_type.clone(),
                    digest: n.subject.digest.to_string(),
                    size: n.subject.size,
                },
                now,
                crls,
            ),
            SignatureSet::Cosign(c) => {
                cosign::verify_layer(policy, stores, &c.layers[i], blob, &c.subject, now)
            }
        }
    }
}
