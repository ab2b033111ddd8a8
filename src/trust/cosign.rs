//! cosign's image signatures, key-based and in certificate mode: the simple-signing
//! payload, the two ways registries hold them (the `sha256-<hex>.sig` tag, and OCI 1.1
//! referrers with artifact type [`COSIGN_ARTIFACT`]), public keys and encrypted private
//! keys as cosign writes them, and one layer's verification into a [`SignatureVerdict`]
//! like any other format's.
//!
//! Each layer of a cosign signature manifest is one signature: the layer's blob is the
//! payload, its `dev.cosignproject.cosign/signature` annotation the base64 signature over
//! the payload's exact bytes. The payload names the signed manifest's digest; that digest
//! must be the subject's. A layer with a `dev.sigstore.cosign/certificate` annotation is
//! certificate mode: the leaf's key verifies it, the leaf and its chain lead to a `ca:`
//! store now, and the leaf's subject is the identity. A layer with a certificate and a
//! Rekor entry (`dev.sigstore.cosign/bundle`) under a policy listing a `sigstore:` store is
//! keyless: [`super::sigstore`] verifies it at the entry's integrated time, and the
//! identity is the certificate's OIDC issuer and subject. A Sigstore bundle referrer
//! (cosign's new bundle format) is one signature too, verified the same way.
//!
//! Pure functions, as the rest of `trust`: the caller fetches the payload blob.

use serde::Deserialize;

use super::certs::{self, KeyId, KeyInfo};
use super::policy::{Action, Level, TrustPolicy};
use super::store::{StoreType, TrustStores};
use super::verify::{Check, CosignDetails, SignatureVerdict};
use crate::oci::{media_type, Descriptor, ParsedManifest};

/// `artifactType` (and config media type) of a cosign signature stored as an OCI 1.1
/// referrer.
pub const COSIGN_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The artifact types of the referrers that are cosign signatures: simple-signing
/// manifests and Sigstore bundles.
pub const SIGNATURE_ARTIFACTS: [&str; 2] = [COSIGN_ARTIFACT, super::sigstore::BUNDLE_ARTIFACT];
/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation of a certificate-mode or keyless signature's leaf certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation of the leaf's chain (intermediates, then the root), PEM.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Most certificates a certificate-mode signature's leaf and chain may hold together.
pub const MAX_CHAIN: usize = 10;
/// Largest certificate or chain annotation read.
const MAX_CERT_ANNOTATION: usize = 64 * 1024;
/// The `critical.type` of an image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Most signatures (layers) one cosign signature manifest may hold.
pub const MAX_LAYERS: usize = 100;
/// Largest payload read: cosign's are a few hundred bytes.
pub const MAX_PAYLOAD: u64 = 64 * 1024;
/// Largest base64 signature annotation (an RSA-8192 signature is 1,368 characters).
const MAX_SIGNATURE_B64: usize = 4096;

/// What a signature layer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerForm {
    /// A simple-signing payload, its signature in the layer's annotations.
    SimpleSigning,
    /// A Sigstore bundle (cosign's new bundle format): the blob is the signature.
    Bundle,
}

/// One signature of a cosign signature manifest.
#[derive(Debug, Clone)]
pub struct CosignLayer {
    /// The payload blob (for a bundle, the bundle).
    pub payload: Descriptor,
    pub form: LayerForm,
    /// The base64 signature annotation (empty for a bundle).
    pub signature: String,
    /// A leaf certificate (certificate mode or keyless), if the layer carries one.
    pub certificate: Option<String>,
    /// The leaf's chain, PEM, if given.
    pub chain: Option<String>,
    /// A keyless signature's Rekor entry (`dev.sigstore.cosign/bundle`), if given.
    pub rekor_bundle: Option<String>,
}

impl CosignLayer {
    /// The most bytes this layer's blob may have.
    pub fn max_size(&self) -> u64 {
        match self.form {
            LayerForm::SimpleSigning => MAX_PAYLOAD,
            LayerForm::Bundle => super::sigstore::MAX_BUNDLE,
        }
    }
}

/// A cosign signature manifest: the digest it signs and its signatures.
#[derive(Debug, Clone)]
pub struct CosignSignatures {
    /// The signed manifest's digest (`sha256:<hex>`): the `subject` of the referrer form,
    /// or the `.sig` tag's name.
    pub subject: String,
    pub layers: Vec<CosignLayer>,
}

/// The digest a `sha256-<hex>.sig` tag names; `None` for any other tag.
pub fn sig_tag_subject(tag: &str) -> Option<String> {
    let hex = tag.strip_prefix("sha256-")?.strip_suffix(".sig")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{hex}"))
}

/// `Some` when the manifest is a cosign signature manifest: an OCI 1.1 referrer of artifact
/// type [`COSIGN_ARTIFACT`], or any manifest pushed under a `sha256-<hex>.sig` tag (`tag`).
/// An error when it is one but shaped wrongly.
pub fn cosign_signatures(
    parsed: &ParsedManifest,
    tag: Option<&str>,
) -> Result<Option<CosignSignatures>, String> {
    let config = parsed.config.as_ref().map(|c| c.media_type.as_str());
    if parsed.artifact_type.as_deref() == Some(super::sigstore::BUNDLE_ARTIFACT) {
        return bundle_signatures(parsed).map(Some);
    }
    let referrer =
        parsed.artifact_type.as_deref() == Some(COSIGN_ARTIFACT) || config == Some(COSIGN_ARTIFACT);
    let subject = match (referrer, tag.and_then(sig_tag_subject)) {
        (true, _) => match &parsed.subject {
            Some(s) => s.digest.to_string(),
            None => return Err("a cosign signature referrer must name its subject".into()),
        },
        (false, Some(from_tag)) => {
            if let Some(s) = &parsed.subject {
                if s.digest.to_string() != from_tag {
                    return Err(format!(
                        "a cosign signature under tag {} names another subject, {}",
                        tag.unwrap_or_default(),
                        s.digest
                    ));
                }
            }
            from_tag
        }
        (false, None) => return Ok(None),
    };
    if parsed.media_type != media_type::OCI_MANIFEST
        && parsed.media_type != media_type::DOCKER_MANIFEST
    {
        return Err(format!(
            "a cosign signature must be an image manifest, not {}",
            parsed.media_type
        ));
    }
    if parsed.layers.is_empty() {
        return Err("a cosign signature manifest has no layers (signatures)".into());
    }
    if parsed.layers.len() > MAX_LAYERS {
        return Err(format!(
            "a cosign signature manifest may hold at most {MAX_LAYERS} signatures; this one has {}",
            parsed.layers.len()
        ));
    }
    let mut layers = Vec::new();
    for (i, l) in parsed.layers.iter().enumerate() {
        if l.media_type != SIMPLE_SIGNING {
            return Err(format!(
                "layer {i} of a cosign signature is {}, not a simple-signing payload ({SIMPLE_SIGNING})",
                l.media_type
            ));
        }
        if l.size > MAX_PAYLOAD {
            return Err(format!(
                "layer {i} of a cosign signature is {} bytes; payloads are at most {MAX_PAYLOAD}",
                l.size
            ));
        }
        let annotations = parsed.layer_annotations.get(i).and_then(|a| a.as_ref());
        let annotation = |k: &str| annotations.and_then(|a| a.get(k)).cloned();
        let signature = annotation(SIGNATURE_ANNOTATION).ok_or_else(|| {
            format!("layer {i} of a cosign signature has no {SIGNATURE_ANNOTATION} annotation")
        })?;
        if signature.len() > MAX_SIGNATURE_B64 {
            return Err(format!(
                "layer {i}'s signature annotation is {} characters; at most {MAX_SIGNATURE_B64}",
                signature.len()
            ));
        }
        let certificate = annotation(CERTIFICATE_ANNOTATION);
        let chain = annotation(CHAIN_ANNOTATION);
        let rekor_bundle = annotation(super::sigstore::REKOR_BUNDLE_ANNOTATION);
        if [&certificate, &chain, &rekor_bundle]
            .iter()
            .any(|a| a.as_ref().is_some_and(|a| a.len() > MAX_CERT_ANNOTATION))
        {
            return Err(format!(
                "layer {i}'s certificate, chain or Rekor bundle annotation is over {MAX_CERT_ANNOTATION} bytes"
            ));
        }
        layers.push(CosignLayer {
            payload: l.clone(),
            form: LayerForm::SimpleSigning,
            signature,
            certificate,
            chain,
            rekor_bundle,
        });
    }
    Ok(Some(CosignSignatures { subject, layers }))
}

/// A Sigstore bundle referrer (artifact type [`super::sigstore::BUNDLE_ARTIFACT`]): an
/// image manifest naming its subject, with one layer, the bundle.
fn bundle_signatures(parsed: &ParsedManifest) -> Result<CosignSignatures, String> {
    use super::sigstore::{BUNDLE_ARTIFACT, MAX_BUNDLE};
    let subject = parsed
        .subject
        .as_ref()
        .ok_or("a Sigstore bundle referrer must name its subject")?
        .digest
        .to_string();
    if parsed.media_type != media_type::OCI_MANIFEST {
        return Err(format!(
            "a Sigstore bundle referrer must be an OCI image manifest, not {}",
            parsed.media_type
        ));
    }
    let [layer] = parsed.layers.as_slice() else {
        return Err(format!(
            "a Sigstore bundle referrer holds one layer, the bundle; this one has {}",
            parsed.layers.len()
        ));
    };
    if layer.media_type != BUNDLE_ARTIFACT {
        return Err(format!(
            "the layer of a Sigstore bundle referrer is {}, not {BUNDLE_ARTIFACT}",
            layer.media_type
        ));
    }
    if layer.size > MAX_BUNDLE {
        return Err(format!(
            "the bundle is {} bytes; at most {MAX_BUNDLE}",
            layer.size
        ));
    }
    Ok(CosignSignatures {
        subject,
        layers: vec![CosignLayer {
            payload: layer.clone(),
            form: LayerForm::Bundle,
            signature: String::new(),
            certificate: None,
            chain: None,
            rekor_bundle: None,
        }],
    })
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: PayloadIdentity,
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The parts of a simple-signing payload verification binds: the type, the signed digest,
/// and the docker-reference it claims (recorded; cosign does not compare it by default,
/// nor does bonded, since a signature made for a registry keeps holding after a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigning {
    pub docker_reference: String,
    pub digest: String,
}

/// Parses a payload and checks it signs `subject` as an image signature.
pub fn check_payload(payload: &[u8], subject: &str) -> Result<SimpleSigning, String> {
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| format!("the payload is not a simple-signing document: {e}"))?;
    if p.critical.kind != PAYLOAD_TYPE {
        return Err(format!(
            "the payload's critical.type is '{}', not '{PAYLOAD_TYPE}'",
            p.critical.kind
        ));
    }
    let signed = p.critical.image.docker_manifest_digest;
    if signed != subject {
        return Err(format!(
            "the payload signs {signed}, not the subject {subject}"
        ));
    }
    Ok(SimpleSigning {
        docker_reference: p.critical.identity.docker_reference,
        digest: signed,
    })
}

/// A public key as cosign keeps them (`PUBLIC KEY` PEM, SubjectPublicKeyInfo).
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub key: KeyInfo,
    /// The raw key: SEC1 point, PKCS#1 RSAPublicKey, or the 32 Ed25519 bytes.
    pub raw: Vec<u8>,
    /// The key by value, as certificates' keys are compared.
    pub key_id: KeyId,
}

impl PublicKey {
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, String> {
        let (key, raw, key_id) = certs::spki_key(der)?;
        if let KeyInfo::Other(what) = &key {
            return Err(format!(
                "{what} is not a cosign signing key (ECDSA P-256/P-384/P-521, RSA, Ed25519)"
            ));
        }
        Ok(PublicKey {
            spki: der.to_vec(),
            key,
            raw,
            key_id,
        })
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: what a `cosign.key:` trusted
    /// identity names.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&self.spki)))
    }

    /// Verifies `signature` over `message` (cosign signs the payload's bytes): the
    /// algorithm that verified, or `None`. ECDSA (ASN.1 DER) with the curve's own hash,
    /// and with SHA-256, which cosign used for every curve before it picked the hash by
    /// key size; RSA PKCS#1 v1.5 and PSS with SHA-256; pure Ed25519.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Option<&'static str> {
        use ring::signature as sig;
        let ring_try = |alg: &'static dyn sig::VerificationAlgorithm| {
            sig::UnparsedPublicKey::new(alg, &self.raw)
                .verify(message, signature)
                .is_ok()
        };
        let candidates: &[(&'static str, &'static dyn sig::VerificationAlgorithm)] = match &self.key
        {
            KeyInfo::Ec {
                curve: certs::Curve::P256,
            } => &[("ECDSA-P256-SHA256", &sig::ECDSA_P256_SHA256_ASN1)],
            KeyInfo::Ec {
                curve: certs::Curve::P384,
            } => &[
                ("ECDSA-P384-SHA384", &sig::ECDSA_P384_SHA384_ASN1),
                ("ECDSA-P384-SHA256", &sig::ECDSA_P384_SHA256_ASN1),
            ],
            KeyInfo::Ec {
                curve: certs::Curve::P521,
            } => return self.verify_p521(message, signature),
            KeyInfo::Rsa { .. } => &[
                ("RSA-PKCS1v15-SHA256", &sig::RSA_PKCS1_2048_8192_SHA256),
                ("RSA-PSS-SHA256", &sig::RSA_PSS_2048_8192_SHA256),
            ],
            KeyInfo::Ed25519 => &[("Ed25519", &sig::ED25519)],
            KeyInfo::Other(_) => &[],
        };
        candidates
            .iter()
            .find(|(_, alg)| ring_try(*alg))
            .map(|(name, _)| *name)
    }

    fn verify_p521(&self, message: &[u8], signature: &[u8]) -> Option<&'static str> {
        use p521::ecdsa::signature::hazmat::PrehashVerifier as _;
        use sha2::Digest as _;
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&self.raw).ok()?;
        let sig = p521::ecdsa::Signature::from_der(signature).ok()?;
        if key
            .verify_prehash(&sha2::Sha512::digest(message), &sig)
            .is_ok()
        {
            return Some("ECDSA-P521-SHA512");
        }
        // A SHA-256 digest is shorter than the curve's 66-byte field, which the ecdsa crate
        // refuses as a prehash; as an integer (which is all ECDSA takes of a digest shorter
        // than the order, in Go's crypto/ecdsa as in SEC 1) it is the same zero-extended.
        let mut widened = [0u8; 66];
        widened[34..].copy_from_slice(&sha2::Sha256::digest(message));
        key.verify_prehash(&widened, &sig)
            .is_ok()
            .then_some("ECDSA-P521-SHA256")
    }
}

/// PEM labels of cosign's encrypted private keys (`cosign generate-key-pair` writes the
/// first; older cosign the second).
pub const ENCRYPTED_KEY_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// Most memory scrypt may take to decrypt a key (128 * r * N bytes): cosign's keys use
/// N = 32768 or 65536 with r = 8 (32 or 64 MiB); more is refused, not computed.
const MAX_SCRYPT_MEMORY: u64 = 64 << 20;

#[derive(Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct KdfParams {
    n: u64,
    #[serde(rename = "r")]
    r: u32,
    #[serde(rename = "p")]
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Decrypts the body of an `ENCRYPTED SIGSTORE PRIVATE KEY` (or `ENCRYPTED COSIGN PRIVATE
/// KEY`) PEM block: JSON naming scrypt's parameters and salt and a NaCl secretbox nonce;
/// scrypt(password) is the XSalsa20-Poly1305 key that opens the ciphertext, a DER private
/// key. A wrong password fails Poly1305's check; the error says so without the password.
pub fn decrypt_private_key(pem_body: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    use crypto_secretbox::aead::{Aead, KeyInit};
    let b64 = base64::engine::general_purpose::STANDARD;
    let k: EncryptedKey = serde_json::from_slice(pem_body).map_err(|e| {
        format!("not a cosign encrypted key (its body is not the JSON cosign writes): {e}")
    })?;
    if k.kdf.name != "scrypt" || k.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "a key encrypted with {} and {}; cosign keys use scrypt and nacl/secretbox",
            k.kdf.name, k.cipher.name
        ));
    }
    let KdfParams { n, r, p } = k.kdf.params;
    if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || p > 16 {
        return Err(format!(
            "scrypt parameters N={n}, r={r}, p={p} are not valid"
        ));
    }
    if 128 * u64::from(r) * n > MAX_SCRYPT_MEMORY {
        return Err(format!(
            "scrypt parameters N={n}, r={r} would take {} MiB to decrypt; at most {} MiB",
            (128 * u64::from(r) * n) >> 20,
            MAX_SCRYPT_MEMORY >> 20
        ));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p)
        .map_err(|e| format!("scrypt parameters: {e}"))?;
    let salt = b64.decode(&k.kdf.salt).map_err(|e| format!("salt: {e}"))?;
    let nonce = b64
        .decode(&k.cipher.nonce)
        .map_err(|e| format!("nonce: {e}"))?;
    let ciphertext = b64
        .decode(&k.ciphertext)
        .map_err(|e| format!("ciphertext: {e}"))?;
    let nonce: [u8; 24] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| format!("the nonce is {} bytes, not 24", nonce.len()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).map_err(|e| format!("scrypt: {e}"))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map_err(|_| {
            "the password is wrong (or the key file is damaged): decryption failed".to_string()
        })
}

/// DER certificates of PEM text (`CERTIFICATE` blocks), at most [`MAX_CHAIN`].
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| format!("bad PEM: {e}"))?;
        if pem.label == "CERTIFICATE" {
            out.push(pem.contents);
        }
        if out.len() > MAX_CHAIN {
            return Err(format!("more than {MAX_CHAIN} certificates"));
        }
    }
    Ok(out)
}

/// Certificate mode: the signature verifies with the leaf certificate's key; the leaf and
/// its chain lead to a root of the policy's `ca:` stores now, with the code-signing rules
/// of the path builder (extended key usage codeSigning where present); the leaf's subject
/// is the identity, as a Notary signer's is. Without a trusted timestamp every certificate
/// must be valid now, and the verdict holds only while they are.
#[allow(clippy::too_many_arguments)]
fn verify_certificate_mode(
    v: &mut SignatureVerdict,
    policy: &TrustPolicy,
    stores: &TrustStores,
    leaf_pem: &str,
    chain_pem: Option<&str>,
    payload: &[u8],
    signature: &[u8],
    now: time::OffsetDateTime,
) {
    let parsed = (|| {
        let mut ders = pem_certificates(leaf_pem)?;
        if ders.len() != 1 {
            return Err(format!(
                "the certificate annotation holds {} certificates, not one leaf",
                ders.len()
            ));
        }
        if let Some(chain) = chain_pem {
            ders.extend(pem_certificates(chain)?);
        }
        if ders.len() > MAX_CHAIN {
            return Err(format!(
                "the leaf and its chain hold more than {MAX_CHAIN} certificates"
            ));
        }
        let chain: Vec<certs::CertInfo> = ders
            .iter()
            .enumerate()
            .map(|(i, d)| certs::CertInfo::parse(i, d).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        use x509_parser::prelude::FromDer as _;
        let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(&ders[0])
            .map_err(|e| e.to_string())?;
        let key = PublicKey::from_spki(leaf.public_key().raw)?;
        let alg = key
            .verify(payload, signature)
            .ok_or("the signature does not verify with the certificate's key")?;
        Ok((chain, key, alg, super::sigstore::is_fulcio(&ders[0])))
    })();
    let (chain, key, alg, fulcio) = match parsed {
        Ok(x) => x,
        Err(e) => {
            v.integrity = Check::Failed(format!("certificate-mode cosign signature: {e}"));
            return;
        }
    };
    v.signer = Some(chain[0].subject.clone());
    v.key = Some(key.key_id);
    v.thumbprints = chain
        .iter()
        .map(|c| {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(&c.der))
        })
        .collect();
    v.cosign = Some(CosignDetails {
        algorithm: Some(alg.to_string()),
        ..Default::default()
    });
    let authenticity = (|| {
        let listed = policy_stores(
            policy,
            stores,
            StoreType::Ca,
            "for a certificate-mode cosign signature",
        )?;
        let refs: Vec<_> = listed.iter().map(|(r, _)| *r).collect();
        let anchors: Vec<Vec<u8>> = listed.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
        if let Err(e) = certs::validate_path(&chain, &anchors, now) {
            let names = refs
                .iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(if fulcio {
                format!("a keyless (Fulcio) signature: list a sigstore: trust store (a Sigstore trusted_root.json) in policy '{}' to verify it at its Rekor time; its certificate does not lead to a root in trust store {names} now ({e:?})", policy.name)
            } else {
                format!("the certificate chain does not lead to a root in trust store {names} now: {e:?}")
            });
        }
        let signer = super::identity::Signer::X509(&chain[0].subject);
        if !policy.trusted_identities.trusts(&signer) {
            return Err(format!(
                "signer '{}' is not a trusted identity of policy '{}'",
                chain[0].subject, policy.name
            ));
        }
        Ok(())
    })();
    v.integrity = Check::Passed;
    v.authenticity = Check::from_result(policy.actions.authenticity, authenticity);
    // Checked at `now`: the verdict holds while every certificate is valid.
    let from = chain.iter().map(|c| c.not_before).max();
    let until = chain.iter().map(|c| c.not_after).min();
    v.valid_from = from;
    v.valid_until = until;
}

/// A store a statement lists, and its material.
type ListedStore<'a> = (&'a super::store::StoreRef, &'a [Vec<u8>]);

/// The stores of `kind` a statement lists, each with its material; an error when it
/// lists none (`purpose` says what they would be for) or one that does not exist.
fn policy_stores<'a>(
    policy: &'a TrustPolicy,
    stores: &'a TrustStores,
    kind: StoreType,
    purpose: &str,
) -> Result<Vec<ListedStore<'a>>, String> {
    let listed: Vec<_> = policy
        .trust_stores
        .iter()
        .filter(|s| s.kind == kind)
        .collect();
    if listed.is_empty() {
        return Err(format!(
            "policy '{}' lists no {} trust store {purpose}",
            policy.name,
            kind.as_str()
        ));
    }
    listed
        .into_iter()
        .map(|r| {
            stores.get(r).map(|m| (r, m)).ok_or_else(|| {
                format!(
                    "trust store '{r}' named by policy '{}' does not exist",
                    policy.name
                )
            })
        })
        .collect()
}

/// The Sigstore trusted roots of the policy's `sigstore:` stores, or why there are none.
fn sigstore_roots(
    policy: &TrustPolicy,
    stores: &TrustStores,
) -> Result<Vec<(String, super::sigstore::TrustedRoot)>, String> {
    let listed = policy_stores(
        policy,
        stores,
        StoreType::Sigstore,
        "(so no keyless signature or Sigstore bundle is trusted)",
    )?;
    let mut out = Vec::new();
    for (r, docs) in listed {
        for d in docs {
            let root = super::sigstore::TrustedRoot::parse(d)
                .map_err(|e| format!("trust store '{r}': {e}"))?;
            out.push((r.to_string(), root));
        }
    }
    Ok(out)
}

/// The keys of the policy's `cosign:` stores (a Sigstore bundle signed by a managed key).
fn cosign_store_keys(policy: &TrustPolicy, stores: &TrustStores) -> Vec<PublicKey> {
    policy
        .trust_stores
        .iter()
        .filter(|s| s.kind == StoreType::Cosign)
        .filter_map(|r| stores.get(r))
        .flatten()
        .filter_map(|der| PublicKey::from_spki(der).ok())
        .collect()
}

/// Records what Sigstore verified (or why not) in `v`, and checks the identity.
fn sigstore_verdict(
    v: &mut SignatureVerdict,
    policy: &TrustPolicy,
    result: Result<super::sigstore::Verified, String>,
    details: &mut CosignDetails,
) {
    let verified = match result {
        Ok(x) => x,
        Err(e) => {
            v.authenticity = match policy.actions.authenticity {
                Action::Skip => Check::NotRun,
                _ => Check::Failed(e),
            };
            return;
        }
    };
    v.key = Some(verified.key.key_id);
    v.signing_time = Some(verified.time);
    details.algorithm = Some(verified.algorithm.to_string());
    details.predicate_type = verified.predicate_type.clone();
    if let Some(der) = &verified.certificate {
        use sha2::Digest as _;
        v.thumbprints = vec![hex::encode(sha2::Sha256::digest(der))];
    }
    let trusted = match &verified.identity {
        Some(id) => {
            details.keyless = Some(super::verify::KeylessDetails {
                issuer: id.issuer.clone(),
                subject: id.subject.clone(),
                integrated_time: verified.time,
                log_index: verified.log_index,
            });
            let signer = super::identity::Signer::Sigstore {
                issuer: &id.issuer,
                subject: &id.subject,
            };
            policy
                .trusted_identities
                .trusts(&signer)
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "{signer} is not a trusted identity of policy '{}'",
                        policy.name
                    )
                })
        }
        None => {
            let fingerprint = verified.key.fingerprint();
            details.key = Some(fingerprint.clone());
            let signer = super::identity::Signer::CosignKey(&fingerprint);
            policy
                .trusted_identities
                .trusts(&signer)
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "cosign key {fingerprint} is not a trusted identity of policy '{}'",
                        policy.name
                    )
                })
        }
    };
    v.authenticity = Check::from_result(policy.actions.authenticity, trusted);
}

/// Tries each Sigstore root of the policy; the first that verifies wins, else the reasons.
fn with_roots(
    policy: &TrustPolicy,
    stores: &TrustStores,
    mut f: impl FnMut(&super::sigstore::TrustedRoot) -> Result<super::sigstore::Verified, String>,
) -> Result<super::sigstore::Verified, String> {
    let roots = sigstore_roots(policy, stores)?;
    let mut reasons = Vec::new();
    for (name, root) in &roots {
        match f(root) {
            Ok(v) => return Ok(v),
            Err(e) => reasons.push(format!("'{name}': {e}")),
        }
    }
    Err(format!(
        "not verified against trust store {}",
        reasons.join("; ")
    ))
}

/// A keyless cosign signature: a Fulcio leaf and a Rekor entry in the layer's
/// annotations, verified at the entry's integrated time against the policy's Sigstore roots.
#[allow(clippy::too_many_arguments)]
fn verify_keyless_layer(
    v: &mut SignatureVerdict,
    policy: &TrustPolicy,
    stores: &TrustStores,
    leaf_pem: &str,
    rekor_bundle: &str,
    payload: &[u8],
    signature: &[u8],
) {
    let mut details = CosignDetails::default();
    let leaf = match pem_certificates(leaf_pem) {
        Ok(mut d) if d.len() == 1 => d.remove(0),
        Ok(d) => {
            v.integrity = Check::Failed(format!(
                "the certificate annotation holds {} certificates, not one leaf",
                d.len()
            ));
            return;
        }
        Err(e) => {
            v.integrity = Check::Failed(format!("the certificate annotation: {e}"));
            return;
        }
    };
    if let Ok(info) = certs::CertInfo::parse(0, &leaf) {
        v.signer = Some(info.subject.clone());
    }
    let result = with_roots(policy, stores, |root| {
        super::sigstore::verify_cosign_keyless(root, &leaf, rekor_bundle, payload, signature)
    });
    sigstore_verdict(v, policy, result, &mut details);
    v.cosign = Some(details);
}

/// A Sigstore bundle referrer of `subject`: the bundle must sign that digest (a message
/// signature over it, or an in-toto statement naming it), then verify against the
/// policy's Sigstore roots (keys of its cosign stores for a managed-key bundle).
fn verify_bundle_layer(
    v: &mut SignatureVerdict,
    policy: &TrustPolicy,
    stores: &TrustStores,
    bundle_bytes: &[u8],
    subject: &str,
) {
    use super::sigstore::{self as ss, Artifact, HashAlgorithm};
    let mut details = CosignDetails {
        bundle: true,
        ..Default::default()
    };
    let parsed = (|| {
        let bundle = ss::parse_bundle(bundle_bytes)?;
        let hex_digest = subject
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("the subject {subject} is not a sha256 digest"))?;
        let digest = hex::decode(hex_digest).map_err(|e| e.to_string())?;
        Ok::<_, String>((bundle, digest))
    })();
    let (bundle, digest) = match parsed {
        Ok(x) => x,
        Err(e) => {
            v.integrity = Check::Failed(format!("Sigstore bundle: {e}"));
            v.cosign = Some(details);
            return;
        }
    };
    let artifact = Artifact::Digest {
        algorithm: HashAlgorithm::Sha256,
        digest: &digest,
    };
    // What it signs is integrity: a bundle of another image is not a signature of this one.
    if let Err(e) = ss::bundle_signs(&bundle, artifact) {
        v.integrity = Check::Failed(format!("{e} (the subject is {subject})"));
        v.cosign = Some(details);
        return;
    }
    v.integrity = Check::Passed;
    if let ss::Material::Certificate(der) = &bundle.material {
        if let Ok(info) = certs::CertInfo::parse(0, der) {
            v.signer = Some(info.subject.clone());
        }
    }
    let keys = cosign_store_keys(policy, stores);
    let result = with_roots(policy, stores, |root| {
        ss::verify_bundle(root, &bundle, artifact, &keys)
    });
    sigstore_verdict(v, policy, result, &mut details);
    v.cosign = Some(details);
}

/// Public keys (DER SubjectPublicKeyInfo) from a PEM file of `PUBLIC KEY` blocks, each
/// checked to be a key cosign signs with.
pub fn parse_public_keys(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("bad PEM: {e}"))?;
        if pem.label == "PUBLIC KEY" {
            PublicKey::from_spki(&pem.contents)?;
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err("no PUBLIC KEY block (cosign public keys are PEM SubjectPublicKeyInfo, as `cosign generate-key-pair` writes cosign.pub)".into());
    }
    Ok(out)
}

/// Verifies one cosign signature (a layer and its payload's bytes) over `subject` under
/// `policy`. Integrity: the payload is the layer's blob, a simple-signing document for
/// `subject`, and the signature decodes. Authenticity: a key of the policy's `cosign:`
/// trust stores verifies it, and that key is a trusted identity. Key-based signatures
/// have no expiry and no timestamp of their own.
pub fn verify_layer(
    policy: &TrustPolicy,
    stores: &TrustStores,
    layer: &CosignLayer,
    payload: &[u8],
    subject: &str,
    now: time::OffsetDateTime,
) -> SignatureVerdict {
    let mut v = SignatureVerdict::empty();
    if policy.level == Level::Skip {
        return v;
    }
    let actual = crate::oci::Digest::of(layer.payload.digest.algorithm(), payload);
    if actual != layer.payload.digest || payload.len() as u64 != layer.payload.size {
        v.integrity = Check::Failed(format!(
            "the payload blob is not the layer it names ({} of {} bytes, digest {actual})",
            payload.len(),
            layer.payload.size
        ));
        return v;
    }
    if layer.form == LayerForm::Bundle {
        verify_bundle_layer(&mut v, policy, stores, payload, subject);
        return v;
    }
    let integrity = (|| {
        let signed = check_payload(payload, subject)?;
        use base64::Engine as _;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(layer.signature.trim())
            .map_err(|e| format!("the signature annotation is not base64: {e}"))?;
        Ok((signed, signature))
    })();
    let (signed, signature) = match integrity {
        Ok(x) => x,
        Err(e) => {
            v.integrity = Check::Failed(e);
            return v;
        }
    };
    v.integrity = Check::Passed;
    let mut details = CosignDetails {
        docker_reference: signed.docker_reference,
        ..Default::default()
    };
    if let (Some(leaf), Some(rekor)) = (&layer.certificate, &layer.rekor_bundle) {
        if policy
            .trust_stores
            .iter()
            .any(|s| s.kind == StoreType::Sigstore)
        {
            verify_keyless_layer(&mut v, policy, stores, leaf, rekor, payload, &signature);
            if let Some(c) = v.cosign.as_mut() {
                c.docker_reference = details.docker_reference;
            }
            return v;
        }
    }
    if let Some(leaf) = &layer.certificate {
        verify_certificate_mode(
            &mut v,
            policy,
            stores,
            leaf,
            layer.chain.as_deref(),
            payload,
            &signature,
            now,
        );
        details.algorithm = v.cosign.take().and_then(|c| c.algorithm);
        v.cosign = Some(details);
        return v;
    }
    let authenticity = (|| {
        let refs: Vec<_> = policy
            .trust_stores
            .iter()
            .filter(|s| s.kind == StoreType::Cosign)
            .collect();
        if refs.is_empty() {
            return Err(format!(
                "policy '{}' lists no cosign trust store, so no cosign key is trusted",
                policy.name
            ));
        }
        let mut tried = 0;
        for r in &refs {
            let Some(keys) = stores.get(r) else {
                return Err(format!(
                    "trust store '{r}' named by policy '{}' does not exist",
                    policy.name
                ));
            };
            for der in keys {
                let Ok(key) = PublicKey::from_spki(der) else {
                    continue;
                };
                tried += 1;
                if let Some(alg) = key.verify(payload, &signature) {
                    return Ok((key, alg));
                }
            }
        }
        let names = refs
            .iter()
            .map(|r| format!("'{r}'"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!(
            "the signature verifies with none of the {tried} key(s) in trust store {names}"
        ))
    })();
    match authenticity {
        Ok((key, alg)) => {
            let fingerprint = key.fingerprint();
            details.key = Some(fingerprint.clone());
            details.algorithm = Some(alg.to_string());
            v.key = Some(key.key_id);
            let signer = super::identity::Signer::CosignKey(&fingerprint);
            let trusted = policy.trusted_identities.trusts(&signer);
            v.authenticity = Check::from_result(
                policy.actions.authenticity,
                if trusted {
                    Ok(())
                } else {
                    Err(format!(
                        "cosign key {fingerprint} is not a trusted identity of policy '{}'",
                        policy.name
                    ))
                },
            );
        }
        Err(e) => {
            // Without a key that verifies, nothing about the signer is known.
            v.authenticity = match policy.actions.authenticity {
                Action::Skip => Check::NotRun,
                _ => Check::Failed(e),
            };
        }
    }
    v.cosign = Some(details);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors as vectors;

    fn key(path: &std::path::Path) -> PublicKey {
        let der = parse_public_keys(&std::fs::read(path).unwrap()).unwrap();
        PublicKey::from_spki(&der[0]).unwrap()
    }

    fn sig(path: &std::path::Path) -> Vec<u8> {
        use base64::Engine as _;
        let text = std::fs::read_to_string(path).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
    }

    /// C1 (ratify): four keys over one payload; each verifies with its own key only.
    #[test]
    fn ratify_key_signatures_verify_with_their_own_key_only() {
        let Some(v) = vectors::dir() else { return };
        let d = v.join("ratify-cosign/keyed");
        let payload = std::fs::read(d.join("payload.json")).unwrap();
        let names = ["rsa2048", "rsa3072", "ecdsa-p256", "ecdsa-p384"];
        for signer in names {
            let s = sig(&d.join(format!("{signer}.sig")));
            for k in names {
                let verified = key(&d.join(format!("{k}.pub"))).verify(&payload, &s);
                assert_eq!(
                    verified.is_some(),
                    signer == k,
                    "{signer} signature, {k} key"
                );
            }
            // one changed byte of the payload fails
            let mut tampered = payload.clone();
            tampered[10] ^= 1;
            assert!(key(&d.join(format!("{signer}.pub")))
                .verify(&tampered, &s)
                .is_none());
        }
        let p = check_payload(
            &payload,
            "sha256:d37ada95d47ad12224c205a938129df7a3e52345828b4fa27b03a98825d1e2e7",
        )
        .unwrap();
        assert_eq!(
            p.docker_reference,
            "artifactstest.azurecr.io/4-15-24/cosign/hello-world"
        );
        assert!(check_payload(&payload, &format!("sha256:{}", "0".repeat(64))).is_err());
    }

    /// C10 (sigstore-rs): SUSE's production RSA-2048 PKCS#1 v1.5 signature.
    #[test]
    fn suse_rsa_signature_verifies() {
        let Some(v) = vectors::dir() else { return };
        let d = v.join("cosign/sigstore-rs/suse-rsa2048");
        let payload = std::fs::read(d.join("payload.json")).unwrap();
        let s = sig(&d.join("payload.sig"));
        let k = key(&d.join("key.pub"));
        assert_eq!(k.verify(&payload, &s), Some("RSA-PKCS1v15-SHA256"));
        let mut tampered = payload.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(k.verify(&tampered, &s), None);
    }

    /// C15 (rekor): the only real Ed25519 signatures; Ed25519ph is not pure Ed25519.
    #[test]
    fn rekor_ed25519_pure_verifies_and_prehashed_does_not() {
        let Some(v) = vectors::dir() else { return };
        let d = v.join("cosign/rekor-client-algos");
        let k = key(&d.join("ed25519_public.pem"));
        assert!(matches!(k.key, KeyInfo::Ed25519));
        let file1 = std::fs::read(d.join("file1")).unwrap();
        let raw = |name: &str| std::fs::read(d.join(name)).unwrap();
        assert_eq!(k.verify(&file1, &raw("file1.ed25519.sig")), Some("Ed25519"));
        assert_eq!(k.verify(&file1, &raw("file1.ed25519ph.sig")), None);
        let ec = key(&d.join("ec_public.pem"));
        assert!(ec.verify(&file1, &raw("file1.ec.sig")).is_some());
    }

    fn fingerprint_of(path: &std::path::Path) -> String {
        key(path).fingerprint()
    }

    /// A policy over `reg.io/app` trusting `identities` with the keys of `keys` in store
    /// `cosign:c`.
    fn policy_and_stores(
        keys: &[std::path::PathBuf],
        identities: serde_json::Value,
        required: u32,
    ) -> (super::super::policy::TrustPolicyDocument, TrustStores) {
        let doc = serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "p", "registryScopes": ["reg.io/app"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["cosign:c"],
            "trustedIdentities": identities, "signaturesRequired": required}]});
        let doc =
            super::super::policy::TrustPolicyDocument::parse(doc.to_string().as_bytes()).unwrap();
        let mut stores = TrustStores::default();
        let mut der = Vec::new();
        for k in keys {
            der.extend(parse_public_keys(&std::fs::read(k).unwrap()).unwrap());
        }
        stores.insert("cosign:c".parse().unwrap(), der);
        (doc, stores)
    }

    /// Verdicts of every layer of a connaisseur `.sig` manifest.
    fn connaisseur_verdicts(
        doc: &super::super::policy::TrustPolicyDocument,
        stores: &TrustStores,
        image: &str,
    ) -> Vec<SignatureVerdict> {
        let Some(v) = vectors::dir() else {
            return Vec::new();
        };
        let d = v.join("cosign/connaisseur/testimage");
        let tag = format!("sha256-{image}.sig");
        let body = std::fs::read(d.join(format!("manifests/{tag}.json"))).unwrap();
        let parsed = crate::oci::manifest::parse(None, &body).unwrap();
        let sigs = cosign_signatures(&parsed, Some(&tag)).unwrap().unwrap();
        assert_eq!(sigs.subject, format!("sha256:{image}"));
        let policy = doc.policy_for("reg.io/app").unwrap();
        sigs.layers
            .iter()
            .map(|l| {
                let payload =
                    std::fs::read(d.join("blobs/sha256").join(l.payload.digest.hex())).unwrap();
                verify_layer(
                    policy,
                    stores,
                    l,
                    &payload,
                    &sigs.subject,
                    time::OffsetDateTime::now_utc(),
                )
            })
            .collect()
    }

    const KEYLESS: &str = "31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";

    /// A policy trusting the public-good Sigstore root as `sigstore:pg`.
    fn keyless_policy(
        identities: serde_json::Value,
    ) -> (super::super::policy::TrustPolicyDocument, TrustStores) {
        let v = vectors::dir().unwrap();
        let doc = serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "p", "registryScopes": ["reg.io/app"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["sigstore:pg"],
            "trustedIdentities": identities}]});
        let doc =
            super::super::policy::TrustPolicyDocument::parse(doc.to_string().as_bytes()).unwrap();
        let mut stores = TrustStores::default();
        let root =
            std::fs::read(v.join("cosign/trusted-roots/public-good/trusted_root.json")).unwrap();
        stores.insert(
            "sigstore:pg".parse().unwrap(),
            StoreType::Sigstore.parse_material(&root).unwrap(),
        );
        (doc, stores)
    }

    /// C9 (connaisseur): a keyless signature in cosign's annotation form (Fulcio leaf,
    /// chain, Rekor SET) verifies at its integrated time, years after its leaf expired, for
    /// its signer's issuer and subject (exact or by pattern); for other identities it does
    /// not (connaisseur's `bob@gmail.com` / google case).
    #[test]
    fn c9_keyless_annotation_signature_verifies_for_its_identity_only() {
        let Some(_) = vectors::dir() else { return };
        const OAUTH: &str = "https://github.com/login/oauth";
        for id in [
            format!("sigstore: issuer={OAUTH}; subject=philipp.belitz@securesystems.de"),
            format!(r"sigstore: issuer={OAUTH}; subject~=.*philipp.*"),
        ] {
            let (doc, stores) = keyless_policy(serde_json::json!([id]));
            let verdicts = connaisseur_verdicts(&doc, &stores, KEYLESS);
            assert_eq!(verdicts.len(), 1);
            assert!(verdicts[0].accepted(), "{id}: {:?}", verdicts[0]);
            let k = verdicts[0]
                .cosign
                .as_ref()
                .unwrap()
                .keyless
                .as_ref()
                .unwrap();
            assert_eq!(k.subject, "philipp.belitz@securesystems.de");
            assert_eq!(k.issuer, OAUTH);
            assert_eq!(k.integrated_time.unix_timestamp(), 1717082297);
            assert_eq!(k.log_index, 98235800);
        }
        for id in [
            "sigstore: issuer=https://accounts.google.com; subject=bob@gmail.com",
            "sigstore: issuer=https://accounts.google.com; subject=philipp.belitz@securesystems.de",
            // Anchored: a pattern that only matches part of the subject is no match.
            "sigstore: issuer=https://github.com/login/oauth; subject~=philipp",
        ] {
            let (doc, stores) = keyless_policy(serde_json::json!([id]));
            let verdicts = connaisseur_verdicts(&doc, &stores, KEYLESS);
            assert!(!verdicts[0].accepted(), "{id}");
            assert!(
                format!("{:?}", verdicts[0].authenticity).contains("not a trusted identity"),
                "{id}: {:?}",
                verdicts[0].authenticity
            );
        }
    }

    /// The Rekor entry and certificate of C9's keyless signature, moved onto alice's
    /// signature (C7), vouch for nothing: the entry names another signature and key.
    #[test]
    fn a_rekor_entry_of_another_signature_never_counts() {
        let Some(v) = vectors::dir() else { return };
        let d = v.join("cosign/connaisseur/testimage");
        let load = |image: &str| {
            let tag = format!("sha256-{image}.sig");
            let body = std::fs::read(d.join(format!("manifests/{tag}.json"))).unwrap();
            let parsed = crate::oci::manifest::parse(None, &body).unwrap();
            cosign_signatures(&parsed, Some(&tag)).unwrap().unwrap()
        };
        let keyless = load(KEYLESS);
        let alice = load(ALICE_ONLY);
        let mut forged = alice.layers[0].clone();
        forged.certificate = keyless.layers[0].certificate.clone();
        forged.chain = keyless.layers[0].chain.clone();
        forged.rekor_bundle = keyless.layers[0].rekor_bundle.clone();
        let (doc, stores) = keyless_policy(serde_json::json!(["*"]));
        let payload =
            std::fs::read(d.join("blobs/sha256").join(forged.payload.digest.hex())).unwrap();
        let verdict = verify_layer(
            doc.policy_for("reg.io/app").unwrap(),
            &stores,
            &forged,
            &payload,
            &alice.subject,
            time::OffsetDateTime::now_utc(),
        );
        assert!(!verdict.accepted());
        assert!(
            format!("{:?}", verdict.authenticity).contains("another"),
            "{:?}",
            verdict.authenticity
        );
        // The same keyless layer with its own payload but another subject fails integrity.
        let own = std::fs::read(
            d.join("blobs/sha256")
                .join(keyless.layers[0].payload.digest.hex()),
        )
        .unwrap();
        let verdict = verify_layer(
            doc.policy_for("reg.io/app").unwrap(),
            &stores,
            &keyless.layers[0],
            &own,
            &alice.subject,
            time::OffsetDateTime::now_utc(),
        );
        assert!(matches!(verdict.integrity, Check::Failed(_)));
    }

    const ALICE_ONLY: &str = "071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81";
    const THREE: &str = "bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533";

    /// C7 (connaisseur): alice's signature verifies with alice's key; with bob's or
    /// charlie's it does not, and a payload for another image never does.
    #[test]
    fn connaisseur_alice_signature_verifies_with_alice_only() {
        let Some(v) = vectors::dir() else { return };
        let keys = v.join("cosign/connaisseur/keys");
        let (doc, stores) =
            policy_and_stores(&[keys.join("alice.pub")], serde_json::json!(["*"]), 1);
        let verdicts = connaisseur_verdicts(&doc, &stores, ALICE_ONLY);
        assert_eq!(verdicts.len(), 1);
        assert!(verdicts[0].accepted(), "{:?}", verdicts[0]);
        assert_eq!(
            verdicts[0].signer_name().unwrap(),
            format!("cosign.key: {}", fingerprint_of(&keys.join("alice.pub")))
        );
        for other in ["bob.pub", "charlie.pub", "default.pub"] {
            let (doc, stores) = policy_and_stores(&[keys.join(other)], serde_json::json!(["*"]), 1);
            let verdicts = connaisseur_verdicts(&doc, &stores, ALICE_ONLY);
            assert!(
                !verdicts[0].accepted(),
                "{other} verified alice's signature"
            );
            assert!(matches!(verdicts[0].authenticity, Check::Failed(_)));
        }
        // the same layer presented as a signature of another digest fails integrity
        let d = v.join("cosign/connaisseur/testimage");
        let body =
            std::fs::read(d.join(format!("manifests/sha256-{ALICE_ONLY}.sig.json"))).unwrap();
        let parsed = crate::oci::manifest::parse(None, &body).unwrap();
        let sigs = cosign_signatures(&parsed, Some(&format!("sha256-{ALICE_ONLY}.sig")))
            .unwrap()
            .unwrap();
        let l = &sigs.layers[0];
        let payload = std::fs::read(d.join("blobs/sha256").join(l.payload.digest.hex())).unwrap();
        let (doc, stores) =
            policy_and_stores(&[keys.join("alice.pub")], serde_json::json!(["*"]), 1);
        let policy = doc.policy_for("reg.io/app").unwrap();
        let v = verify_layer(
            policy,
            &stores,
            l,
            &payload,
            &format!("sha256:{THREE}"),
            time::OffsetDateTime::now_utc(),
        );
        assert!(matches!(v.integrity, Check::Failed(_)), "{v:?}");
    }

    /// C8 (connaisseur): three signers on one `.sig` manifest; 2 of {alice, bob} is met,
    /// 3 of {alice, bob, charlie} is not with only alice's and bob's keys trusted, and one
    /// signer counts once however listed.
    #[test]
    fn connaisseur_threshold_counts_distinct_trusted_keys() {
        let Some(v) = vectors::dir() else { return };
        let keys = v.join("cosign/connaisseur/keys");
        let (alice, bob, charlie) = (
            keys.join("alice.pub"),
            keys.join("bob.pub"),
            keys.join("charlie.pub"),
        );
        let ids = serde_json::json!([
            format!("cosign.key: {}", fingerprint_of(&alice)),
            format!("cosign.key: {}", fingerprint_of(&bob)),
        ]);
        let (doc, stores) = policy_and_stores(&[alice.clone(), bob.clone()], ids.clone(), 2);
        let verdicts = connaisseur_verdicts(&doc, &stores, THREE);
        assert_eq!(verdicts.len(), 3);
        let accepted: Vec<bool> = verdicts.iter().map(|v| v.accepted()).collect();
        assert_eq!(
            accepted,
            [true, true, false],
            "layer 0 alice, 1 bob, 2 charlie (untrusted)"
        );
        let policy = doc.policy_for("reg.io/app").unwrap();
        assert!(super::super::verify::decide(policy, &verdicts).admitted);
        // alice's signature twice is one signer
        let twice = vec![verdicts[0].clone(), verdicts[0].clone()];
        assert!(!super::super::verify::decide(policy, &twice).admitted);
        // 3 needed, charlie's key not trusted: not met
        let ids3 = serde_json::json!([
            format!("cosign.key: {}", fingerprint_of(&alice)),
            format!("cosign.key: {}", fingerprint_of(&bob)),
            format!("cosign.key: {}", fingerprint_of(&charlie)),
        ]);
        let (doc, stores) = policy_and_stores(&[alice, bob], ids3, 3);
        let verdicts = connaisseur_verdicts(&doc, &stores, THREE);
        let policy = doc.policy_for("reg.io/app").unwrap();
        let d = super::super::verify::decide(policy, &verdicts);
        assert!(!d.admitted, "{}", d.reason);
    }

    /// A key in the store that the policy does not list is not trusted, even though it
    /// verifies the signature.
    #[test]
    fn a_verifying_key_must_also_be_a_listed_identity() {
        let Some(v) = vectors::dir() else { return };
        let keys = v.join("cosign/connaisseur/keys");
        let ids = serde_json::json!([format!(
            "cosign.key: {}",
            fingerprint_of(&keys.join("bob.pub"))
        )]);
        let (doc, stores) =
            policy_and_stores(&[keys.join("alice.pub"), keys.join("bob.pub")], ids, 1);
        let verdicts = connaisseur_verdicts(&doc, &stores, ALICE_ONLY);
        assert!(
            matches!(verdicts[0].authenticity, Check::Failed(ref r) if r.contains("not a trusted identity")),
            "{:?}",
            verdicts[0]
        );
    }

    fn pem_body(path: &std::path::Path) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        let pem = x509_parser::pem::Pem::iter_from_buffer(&bytes)
            .next()
            .unwrap()
            .unwrap();
        assert!(
            ENCRYPTED_KEY_LABELS.contains(&pem.label.as_str()),
            "{}",
            pem.label
        );
        pem.contents
    }

    /// C16: cosign's encrypted keys decrypt with their passwords (to PKCS#8, whose public
    /// key is the one published beside it), and a wrong password fails.
    #[test]
    fn cosign_encrypted_keys_decrypt_with_their_password_only() {
        let Some(v) = vectors::dir() else { return };
        let d = v.join("cosign/keys");
        let pc = pem_body(&d.join("policy-controller/cosign.key"));
        let der = decrypt_private_key(&pc, b"").unwrap();
        let pair = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
        let public =
            parse_public_keys(&std::fs::read(d.join("policy-controller/cosign.pub")).unwrap())
                .unwrap();
        assert_eq!(
            rcgen::PublicKeyData::subject_public_key_info(&pair),
            public[0]
        );
        assert!(decrypt_private_key(&pc, b"not-it")
            .unwrap_err()
            .contains("password is wrong"));
        for name in ["pemcosignkey.key", "pemsigstorekey.key"] {
            let der =
                decrypt_private_key(&pem_body(&d.join("cosign-keys_test").join(name)), b"hello")
                    .unwrap();
            assert!(
                rcgen::KeyPair::try_from(der.as_slice()).is_ok(),
                "{name}: PKCS#8"
            );
        }
        // decrypts to SEC1, which cosign refuses: not a PKCS#8 key
        let sec1 = decrypt_private_key(
            &pem_body(&d.join("cosign-keys_test/pemcosigneckey.key")),
            b"hello",
        )
        .unwrap();
        assert_eq!(&sec1[..4], &[0x30, 0x77, 0x02, 0x01]);
        assert!(rcgen::KeyPair::try_from(sec1.as_slice()).is_err());
        let rs = pem_body(&d.join("sigstore-rs-example/ECDSA_P256_ASN1_ENCRYPTED_PRIVATE_PEM.key"));
        assert!(decrypt_private_key(&rs, b"password").is_ok());
    }

    #[test]
    fn scrypt_parameters_that_would_exhaust_memory_are_refused() {
        let body = serde_json::json!({"kdf": {"name": "scrypt", "params": {"N": 1u64 << 24, "r": 8, "p": 1},
            "salt": "AAAA"}, "cipher": {"name": "nacl/secretbox", "nonce": "AAAA"}, "ciphertext": "AAAA"});
        let e = decrypt_private_key(body.to_string().as_bytes(), b"").unwrap_err();
        assert!(e.contains("MiB"), "{e}");
    }

    /// P-521 (no real cosign vector exists): a signature with SHA-512 (cosign's default
    /// for the curve since 2026) and one with SHA-256 (before) both verify; a wrong
    /// message does not.
    #[test]
    fn p521_signatures_verify_with_either_hash() {
        use p521::ecdsa::signature::hazmat::RandomizedPrehashSigner as _;
        use sha2::Digest as _;
        let mut d = [0u8; 66];
        d[65] = 7;
        d[30] = 0x5a;
        let sk = p521::ecdsa::SigningKey::from_slice(&d).unwrap();
        let point = p521::ecdsa::VerifyingKey::from(&sk)
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        assert_eq!(point.len(), 133);
        // SubjectPublicKeyInfo: id-ecPublicKey, secp521r1, the uncompressed point
        let mut spki = vec![0x30, 0x81, 0x9b, 0x30, 0x10];
        spki.extend([0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
        spki.extend([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]);
        spki.extend([0x03, 0x81, 0x86, 0x00]);
        spki.extend(&point);
        let key = PublicKey::from_spki(&spki).unwrap();
        let msg = br#"{"critical":{}}"#;
        let mut rng = p521::elliptic_curve::rand_core::OsRng;
        let sha512: p521::ecdsa::Signature = sk
            .sign_prehash_with_rng(&mut rng, &sha2::Sha512::digest(msg))
            .unwrap();
        assert_eq!(
            key.verify(msg, sha512.to_der().as_bytes()),
            Some("ECDSA-P521-SHA512")
        );
        // signed as Go's crypto/ecdsa signs a SHA-256 digest with a P-521 key: the digest's
        // value as the integer (zero-extended to the field's width here, which is the same)
        let mut widened = [0u8; 66];
        widened[34..].copy_from_slice(&sha2::Sha256::digest(msg));
        let sha256: p521::ecdsa::Signature = sk.sign_prehash_with_rng(&mut rng, &widened).unwrap();
        assert_eq!(
            key.verify(msg, sha256.to_der().as_bytes()),
            Some("ECDSA-P521-SHA256")
        );
        assert_eq!(key.verify(b"other", sha512.to_der().as_bytes()), None);
    }

    /// The tag form's subject comes from the tag, and only a well-formed `.sig` tag.
    #[test]
    fn sig_tags_name_their_subject() {
        let hex = "071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81";
        assert_eq!(
            sig_tag_subject(&format!("sha256-{hex}.sig")),
            Some(format!("sha256:{hex}"))
        );
        for bad in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.att"),
            format!("sha256-{}.sig", &hex[1..]),
            format!("sha256-{}.sig", hex.to_uppercase()),
            "latest".to_string(),
        ] {
            assert_eq!(sig_tag_subject(&bad), None, "{bad}");
        }
    }
}
