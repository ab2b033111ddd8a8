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

    /// A signer `C=US, ST=WA, O=Acme, CN=<cn>`: its key and certificate.
    pub fn issue(&self, cn: &str) -> (KeyPair, Certificate) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = leaf_params(cn).signed_by(&key, &self.issuer).unwrap();
        (key, cert)
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

    /// Writes this root as trust store `ca:<name>` under `<dir>/x509/ca/<name>/`.
    pub fn write_store(&self, dir: &std::path::Path, name: &str) {
        let store = dir.join("x509/ca").join(name);
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("root.pem"), &self.pem).unwrap();
    }
}
