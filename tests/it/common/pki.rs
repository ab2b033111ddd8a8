//! Test certificates made with rcgen: the Notary shapes (CA, code-signing leaf) with
//! knobs for the edge cases, and a small CA that issues signers.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// `C=US, ST=WA, O=Acme, CN=<cn>`
pub fn acme(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CountryName, "US");
    d.push(DnType::StateOrProvinceName, "WA");
    d.push(DnType::OrganizationName, "Acme");
    d.push(DnType::CommonName, cn);
    d
}

/// A CA valid from 30 days ago for a year.
pub fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = acme(cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now() - Duration::days(30);
    p.not_after = now() + Duration::days(365);
    p
}

/// A code-signing leaf valid from yesterday for 30 days.
pub fn leaf_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = acme(cn);
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    p.not_before = now() - Duration::days(1);
    p.not_after = now() + Duration::days(30);
    p
}

/// A root CA (P-256) that issues code-signing certificates.
pub struct Ca {
    pub der: Vec<u8>,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(cn, None);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A code-signing certificate for `key` with subject `dn` (the other fields as
    /// [`leaf_params`]).
    pub fn issue_for(&self, key: &KeyPair, dn: DistinguishedName) -> Certificate {
        let mut p = leaf_params("unused");
        p.distinguished_name = dn;
        p.signed_by(key, &self.issuer).unwrap()
    }

    /// A signer for `key` in a certificate with subject `dn`.
    pub fn signer_for(&self, key: &KeyPair, dn: DistinguishedName) -> Signer {
        let cert = self.issue_for(key, dn);
        Signer {
            key: bonded::trust::sign::SigningKey::from_pkcs8(&key.serialize_der()).unwrap(),
            chain: vec![cert.der().to_vec(), self.der.clone()],
        }
    }

    /// A signer `C=US, ST=WA, O=Acme, CN=<cn>`: its key and certificate.
    pub fn issue(&self, cn: &str) -> (KeyPair, Certificate) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = leaf_params(cn).signed_by(&key, &self.issuer).unwrap();
        (key, cert)
    }

    /// [`Ca::write_signer`] for a leaf valid from yesterday until `not_after`.
    pub fn write_signer_until(
        &self,
        dir: &std::path::Path,
        cn: &str,
        not_after: OffsetDateTime,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = leaf_params(cn);
        p.not_after = not_after;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let (k, c) = (dir.join(format!("{cn}.key")), dir.join(format!("{cn}.pem")));
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&c, format!("{}{}", cert.pem(), self.pem)).unwrap();
        (k, c)
    }

    /// Writes `<dir>/<cn>.pem` (leaf, then this root): a code-signing certificate for the
    /// public key `spki` (DER SubjectPublicKeyInfo), whose private key is elsewhere.
    pub fn write_cert_for_spki(
        &self,
        dir: &std::path::Path,
        cn: &str,
        spki: &[u8],
    ) -> std::path::PathBuf {
        let public = rcgen::SubjectPublicKeyInfo::from_der(spki).unwrap();
        let cert = leaf_params(cn).signed_by(&public, &self.issuer).unwrap();
        let c = dir.join(format!("{cn}.pem"));
        std::fs::write(&c, format!("{}{}", cert.pem(), self.pem)).unwrap();
        c
    }

    /// Writes `<dir>/<cn>.key` (PKCS#8 PEM) and `<dir>/<cn>.pem` (leaf, then this root).
    pub fn write_signer(
        &self,
        dir: &std::path::Path,
        cn: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let (key, cert) = self.issue(cn);
        let (k, c) = (dir.join(format!("{cn}.key")), dir.join(format!("{cn}.pem")));
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&c, format!("{}{}", cert.pem(), self.pem)).unwrap();
        (k, c)
    }

    /// `<dir>/store` with this root as `ca:acme`, and `<dir>/policy.json`: one strict
    /// statement for every scope trusting any identity this root issues for. Returns the
    /// policy's and the store's paths.
    pub fn trusted_anywhere(
        &self,
        dir: &std::path::Path,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let store = dir.join("store");
        self.write_store(&store, "acme");
        let policy = dir.join("policy.json");
        std::fs::write(
            &policy,
            serde_json::json!({"version": "1.0", "trustPolicies": [{
                "name": "all", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]})
            .to_string(),
        )
        .unwrap();
        (policy, store)
    }

    /// Writes this root as trust store `ca:<name>` under `<dir>/x509/ca/<name>/`.
    pub fn write_store(&self, dir: &std::path::Path, name: &str) {
        let store = dir.join("x509/ca").join(name);
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("root.pem"), &self.pem).unwrap();
    }
}

/// A signer: bonded's signing key and its chain (leaf, root).
pub struct Signer {
    pub key: bonded::trust::sign::SigningKey,
    pub chain: Vec<Vec<u8>>,
}

impl Ca {
    /// A signer whose certificate was valid from `not_before` to `not_after`.
    pub fn signer_valid(
        &self,
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Signer {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = leaf_params(cn);
        p.not_before = not_before;
        p.not_after = not_after;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Signer {
            key: bonded::trust::sign::SigningKey::from_pkcs8(&key.serialize_der()).unwrap(),
            chain: vec![cert.der().to_vec(), self.der.clone()],
        }
    }

    pub fn signer(&self, cn: &str) -> Signer {
        let (key, cert) = self.issue(cn);
        Signer {
            key: bonded::trust::sign::SigningKey::from_pkcs8(&key.serialize_der()).unwrap(),
            chain: vec![cert.der().to_vec(), self.der.clone()],
        }
    }
}

/// A Notary JWS envelope by `signer` over `subject` (a descriptor).
pub fn envelope(signer: &Signer, subject: &serde_json::Value) -> Vec<u8> {
    use bonded::trust::envelope::TargetArtifact;
    use bonded::trust::sign::{sign, SignRequest};
    let target = TargetArtifact {
        media_type: subject["mediaType"].as_str().unwrap().into(),
        digest: subject["digest"].as_str().unwrap().into(),
        size: subject["size"].as_u64().unwrap(),
        annotations: None,
        artifact_type: None,
    };
    sign(
        &signer.key,
        &SignRequest {
            target: &target,
            chain: &signer.chain,
            signing_time: OffsetDateTime::now_utc(),
            expiry: None,
            signing_agent: "bonded-test",
        },
    )
    .unwrap()
}

/// `envelope` with its unprotected `x5c` replaced by `chain`: the signature still verifies
/// (x5c is outside what JWS signs) when `chain`'s leaf carries the same key.
pub fn rewrap(envelope: &[u8], chain: &[Vec<u8>]) -> Vec<u8> {
    use base64::Engine as _;
    let mut v: serde_json::Value = serde_json::from_slice(envelope).unwrap();
    v["header"]["x5c"] = chain
        .iter()
        .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
        .collect();
    serde_json::to_vec(&v).unwrap()
}

/// Signs `subject` (a descriptor) and pushes the signature as a referrer in notation's
/// form; returns the status of the signature manifest's push.
pub async fn push_signature(
    c: &reqwest::Client,
    s: &super::Server,
    repo: &str,
    signer: &Signer,
    subject: &serde_json::Value,
) -> u16 {
    push_envelope(
        c,
        s,
        repo,
        &envelope(signer, subject),
        &signer.chain,
        subject,
    )
    .await
}

/// Pushes `envelope` as a Notary signature manifest of `subject` (its thumbprint annotation
/// over `chain`); returns the status of the signature manifest's push.
pub async fn push_envelope(
    c: &reqwest::Client,
    s: &super::Server,
    repo: &str,
    envelope: &[u8],
    chain: &[Vec<u8>],
    subject: &serde_json::Value,
) -> u16 {
    let env_digest = super::push_blob(c, s, repo, envelope).await;
    let empty = super::push_blob(c, s, repo, b"{}").await;
    let thumbprints: Vec<String> = chain
        .iter()
        .map(|d| super::sha256(d).trim_start_matches("sha256:").to_string())
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": env_digest, "size": envelope.len()}],
        "subject": subject,
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": serde_json::to_string(&thumbprints).unwrap()}
    })
    .to_string();
    c.put(s.v2(&format!(
        "{repo}/manifests/{}",
        super::sha256(manifest.as_bytes())
    )))
    .header("Content-Type", super::OCI_MANIFEST)
    .body(manifest)
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

impl Ca {
    /// A TLS server certificate for `ip`.
    pub fn issue_server(&self, ip: &str) -> (KeyPair, Certificate) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = acme(ip);
        p.subject_alt_names = vec![rcgen::SanType::IpAddress(ip.parse().unwrap())];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.not_before = now() - Duration::days(1);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (key, cert)
    }
}

impl Ca {
    /// A signer whose certificate expired yesterday.
    pub fn issue_expired(&self, cn: &str) -> (KeyPair, Certificate) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = leaf_params(cn);
        p.not_before = now() - Duration::days(10);
        p.not_after = now() - Duration::days(1);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (key, cert)
    }
}
