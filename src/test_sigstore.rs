//! A Sigstore instance made on the spot, for the integration tests (included as
//! `common::sigstore`) and `bonded-bench` (included by path; not part of the library): a
//! Fulcio-like CA issuing short-lived code-signing certificates with the OIDC issuer
//! extension, a Rekor-like log key signing entry timestamps, and the `trusted_root.json`
//! naming both. Everything is built from the specifications (Fulcio's certificate profile,
//! Rekor's hashedrekord 0.0.1 and SET, the bundle v0.3 schema), independently of bonded's
//! verifier.
#![allow(dead_code)]

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Fulcio-like CA and a Rekor-like log.
pub struct Sigstore {
    ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    log_key: KeyPair,
    log_spki: Vec<u8>,
    log_id: Vec<u8>,
    next_index: std::cell::Cell<i64>,
}

/// A keyless signer: a key and its ten-minute Fulcio certificate.
pub struct Signer {
    pub key: KeyPair,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
}

impl Signer {
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        rcgen::SigningKey::sign(&self.key, message).unwrap()
    }
}

/// A log entry: its canonicalized body (base64), integrated time, index and SET.
pub struct Entry {
    pub body_b64: String,
    pub integrated_time: i64,
    pub log_index: i64,
    pub log_id_hex: String,
    pub set: Vec<u8>,
}

impl Sigstore {
    pub fn new() -> Sigstore {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "sigstore.test");
        dn.push(DnType::CommonName, "sigstore-test-root");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(365);
        let cert = p.self_signed(&ca_key).unwrap();
        let log_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let log_spki = rcgen::PublicKeyData::subject_public_key_info(&log_key);
        let log_id = sha2::Sha256::digest(&log_spki).to_vec();
        Sigstore {
            ca_der: cert.der().to_vec(),
            issuer: Issuer::new(p, ca_key),
            log_key,
            log_spki,
            log_id,
            next_index: std::cell::Cell::new(1000),
        }
    }

    /// The `trusted_root.json` of this instance.
    pub fn trusted_root(&self) -> String {
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.sigstore.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&self.log_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": b64(&self.log_id)}
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": "sigstore-test-root"},
                "uri": "https://fulcio.sigstore.test",
                "certChain": {"certificates": [{"rawBytes": b64(&self.ca_der)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            }],
            "ctlogs": [],
            "timestampAuthorities": []
        })
        .to_string()
    }

    /// Writes `<truststore>/sigstore/<name>/trusted_root.json`.
    pub fn write_store(&self, truststore: &std::path::Path, name: &str) {
        let dir = truststore.join("sigstore").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trusted_root.json"), self.trusted_root()).unwrap();
    }

    /// A certificate for `subject` (an email SAN) from OIDC `issuer`, valid for ten
    /// minutes from `from`, as Fulcio issues them.
    pub fn signer(&self, issuer: &str, subject: &str, from: OffsetDateTime) -> Signer {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        p.subject_alt_names = vec![SanType::Rfc822Name(subject.try_into().unwrap())];
        // 1.3.6.1.4.1.57264.1.8: the issuer as a DER UTF8String.
        let mut utf8 = vec![0x0c, issuer.len() as u8];
        utf8.extend_from_slice(issuer.as_bytes());
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            utf8,
        )];
        p.not_before = from;
        p.not_after = from + Duration::minutes(10);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Signer {
            key,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
        }
    }

    /// The hashedrekord 0.0.1 body of a signature over an artifact with SHA-256 `digest`
    /// by `cert_pem`, in Rekor's canonical form (keys sorted, no spaces).
    pub fn hashedrekord(digest: &[u8], signature: &[u8], cert_pem: &str) -> String {
        json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest)}},
            "signature": {"content": b64(signature), "publicKey": {"content": b64(cert_pem.as_bytes())}}}})
        .to_string()
    }

    /// Logs `body` at `integrated_time`: the SET is the log key's signature over the
    /// entry as canonical JSON.
    pub fn log(&self, body: &str, integrated_time: OffsetDateTime) -> Entry {
        let index = self.next_index.get();
        self.next_index.set(index + 1);
        let body_b64 = b64(body.as_bytes());
        let it = integrated_time.unix_timestamp();
        let log_id_hex = hex::encode(&self.log_id);
        let signed = format!(
            r#"{{"body":"{body_b64}","integratedTime":{it},"logID":"{log_id_hex}","logIndex":{index}}}"#
        );
        let set = rcgen::SigningKey::sign(&self.log_key, signed.as_bytes()).unwrap();
        Entry {
            body_b64,
            integrated_time: it,
            log_index: index,
            log_id_hex,
            set,
        }
    }

    /// cosign's `dev.sigstore.cosign/bundle` annotation of an entry.
    pub fn annotation(e: &Entry) -> String {
        json!({"SignedEntryTimestamp": b64(&e.set), "Payload": {"body": e.body_b64,
            "integratedTime": e.integrated_time, "logIndex": e.log_index, "logID": e.log_id_hex}})
        .to_string()
    }

    /// A bundle v0.3 with a message signature over an artifact of SHA-256 `digest`.
    pub fn message_bundle(signer: &Signer, digest: &[u8], signature: &[u8], e: &Entry) -> Vec<u8> {
        json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(&signer.cert_der)},
                "tlogEntries": [{
                    "logIndex": e.log_index.to_string(),
                    "logId": {"keyId": b64(&hex::decode(&e.log_id_hex).unwrap())},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": e.integrated_time.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": b64(&e.set)},
                    "canonicalizedBody": e.body_b64
                }]
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature)
            }
        })
        .to_string()
        .into_bytes()
    }

    /// A keyless signature of `subject_digest` (`sha256:<hex>`) as a bundle: `signer`
    /// signs the digest (ECDSA over the manifest's SHA-256), logged `minutes_ago`.
    pub fn sign_digest_as_bundle(
        &self,
        signer: &Signer,
        subject_digest: &str,
        at: OffsetDateTime,
    ) -> Vec<u8> {
        let digest = hex::decode(subject_digest.trim_start_matches("sha256:")).unwrap();
        // ECDSA P-256 over a digest: the signature of any message with this SHA-256.
        let signature = sign_prehash(&signer.key, &digest);
        let body = Self::hashedrekord(&digest, &signature, &signer.cert_pem);
        let e = self.log(&body, at);
        Self::message_bundle(signer, &digest, &signature, &e)
    }
}

/// An ECDSA P-256 signature (DER) over a SHA-256 prehash, with RustCrypto's p256.
pub fn sign_prehash(key: &KeyPair, digest: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    use p256::pkcs8::DecodePrivateKey as _;
    let sk = p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der()).unwrap();
    let sig: p256::ecdsa::Signature = sk.sign_prehash(digest).unwrap();
    sig.to_der().as_bytes().to_vec()
}
