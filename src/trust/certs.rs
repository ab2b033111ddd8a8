//! Certificates: the fields the Notary Project certificate rules look at (read with
//! x509-parser), the rules themselves, and path validation (rustls-webpki).

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::identity::DistinguishedName;

/// The extended key usage OID for code signing (1.3.6.1.5.5.7.3.3), as DER content bytes.
const CODE_SIGNING: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

/// A certificate's public key, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyInfo {
    Rsa {
        bits: usize,
    },
    Ec {
        curve: Curve,
    },
    /// cosign signs with Ed25519 keys; the Notary Project does not.
    Ed25519,
    Other(String),
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyInfo::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyInfo::Ec { curve } => write!(f, "EC {curve:?}"),
            KeyInfo::Ed25519 => f.write_str("Ed25519"),
            KeyInfo::Other(s) => write!(f, "{s}"),
        }
    }
}

/// A signing key, whatever certificate carries it: SHA-256 of the key's canonical form
/// (an RSA key's modulus without leading zeros; an EC key's curve and x coordinate, so the
/// compressed and uncompressed encodings of a point, and a point and its negation, whose
/// private keys are d and n-d, are one key). Certificates that differ in anything else,
/// subject included, carry the same `KeyId` when one private key signs for all of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for KeyId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = hex::decode(s).map_err(|e| format!("key id '{s}': {e}"))?;
        let id: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("key id '{s}' is not 32 bytes"))?;
        Ok(KeyId(id))
    }
}

fn key_id(label: &[u8], material: &[u8]) -> KeyId {
    use sha2::Digest as _;
    KeyId(
        sha2::Sha256::new()
            .chain_update(label)
            .chain_update([0])
            .chain_update(material)
            .finalize()
            .into(),
    )
}

/// The bytes of a big-endian unsigned integer without leading zero bytes.
fn strip_zeros(n: &[u8]) -> &[u8] {
    let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    &n[first..]
}

/// The exact bit length of a big-endian unsigned integer.
fn bit_length(n: &[u8]) -> usize {
    match strip_zeros(n) {
        [] => 0,
        [first, rest @ ..] => rest.len() * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// The key of a SubjectPublicKeyInfo, as the rules care (kind and size), its raw bytes
/// (PKCS#1 `RSAPublicKey` for RSA, the SEC1 point for EC, 32 bytes for Ed25519) and its
/// [`KeyId`].
fn key_of(spki: &x509_parser::x509::SubjectPublicKeyInfo) -> (KeyInfo, Vec<u8>, KeyId) {
    let public_key = spki.subject_public_key.data.to_vec();
    let mut key_id = key_id(b"spki", spki.raw);
    let key = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            key_id = self::key_id(b"rsa", strip_zeros(rsa.modulus));
            // x509-parser's key_size() rounds to whole bytes (a 2050-bit modulus reads
            // as 2048): count the bits.
            KeyInfo::Rsa {
                bits: bit_length(rsa.modulus),
            }
        }
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            // x of an uncompressed (04 x y) or compressed (02/03 x) point.
            let x = match point.data() {
                [4, xy @ ..] => &xy[..xy.len() / 2],
                [2 | 3, x @ ..] => x,
                other => other,
            };
            key_id = self::key_id(
                format!("ec:{}", curve.as_deref().unwrap_or("?")).as_bytes(),
                x,
            );
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => KeyInfo::Ec { curve: Curve::P256 },
                Some("1.3.132.0.34") => KeyInfo::Ec { curve: Curve::P384 },
                Some("1.3.132.0.35") => KeyInfo::Ec { curve: Curve::P521 },
                other => KeyInfo::Other(format!("EC curve {}", other.unwrap_or("unknown"))),
            }
        }
        // id-Ed25519 (RFC 8410), no parameters; the key is its 32 bytes.
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" && public_key.len() == 32 => {
            key_id = self::key_id(b"ed25519", &public_key);
            KeyInfo::Ed25519
        }
        _ => KeyInfo::Other(format!(
            "key algorithm {}",
            spki.algorithm.algorithm.to_id_string()
        )),
    };
    (key, public_key, key_id)
}

/// [`key_of`] a DER SubjectPublicKeyInfo (a `PUBLIC KEY` PEM block's contents).
pub fn spki_key(der: &[u8]) -> Result<(KeyInfo, Vec<u8>, KeyId), String> {
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| format!("not a DER SubjectPublicKeyInfo: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the public key".into());
    }
    Ok(key_of(&spki))
}

/// What the Notary rules need from one certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub subject: DistinguishedName,
    pub issuer: DistinguishedName,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key: KeyInfo,
    /// The raw public key: PKCS#1 `RSAPublicKey` for RSA, the SEC1 point for EC.
    pub public_key: Vec<u8>,
    /// The signing key, whatever certificate carries it.
    pub key_id: KeyId,
    /// `pathLenConstraint` of a CA certificate.
    pub path_len: Option<u32>,
    /// Problems with the certificate as a Notary signing leaf, if any.
    leaf_problems: Vec<String>,
    /// Problems with the certificate as a Notary CA, if any.
    ca_problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate {index} is not valid X.509 DER: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("certificate '{subject}' cannot sign: {}", .problems.join("; "))]
    NotASigningLeaf {
        subject: String,
        problems: Vec<String>,
    },
    #[error("intermediate '{subject}' is not a CA: {}", .problems.join("; "))]
    NotACa {
        subject: String,
        problems: Vec<String>,
    },
    #[error(
        "CA '{subject}' allows {allowed} intermediate CA(s) below it, but the chain has {found}"
    )]
    PathLength {
        subject: String,
        allowed: u32,
        found: usize,
    },
    #[error("the x5c chain must end with a self-signed root; '{0}' is not self-signed")]
    NoRoot(String),
    #[error("certificate chain is invalid: {0}")]
    Path(webpki::Error),
    #[error("signature chain does not lead to a root in trust store {stores}: {reason}")]
    Untrusted { stores: String, reason: String },
}

fn time_of(t: &x509_parser::time::ASN1Time) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl CertInfo {
    pub fn parse(index: usize, der: &[u8]) -> Result<CertInfo, CertError> {
        let malformed = |reason: String| CertError::Malformed { index, reason };
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes after the certificate".into()));
        }
        let (key, public_key, key_id) = key_of(cert.public_key());

        let mut common = Vec::new();
        match &key {
            KeyInfo::Rsa { bits } if *bits < 2048 => {
                common.push(format!("RSA key of {bits} bits (at least 2048 required)"))
            }
            KeyInfo::Other(k) => common.push(format!("{k} is not allowed (RSA or P-256/384/521)")),
            KeyInfo::Ed25519 => {
                common.push("an Ed25519 key is not allowed (RSA or P-256/384/521)".into())
            }
            _ => {}
        }
        let sig_alg = cert.signature_algorithm.algorithm.to_id_string();
        if sig_alg == "1.2.840.113549.1.1.5" || sig_alg == "1.2.840.10045.4.1" {
            common.push("signed with SHA-1".into());
        }
        // RFC 5280 4.1.2.2: a positive integer. Go (so notation) refuses to parse others.
        if cert.raw_serial().first().is_some_and(|b| b & 0x80 != 0) {
            common.push("its serial number is negative (RFC 5280 requires a positive one)".into());
        }

        let ku = cert.key_usage().map_err(|e| malformed(e.to_string()))?;
        let bc = cert
            .basic_constraints()
            .map_err(|e| malformed(e.to_string()))?;
        let eku = cert
            .extended_key_usage()
            .map_err(|e| malformed(e.to_string()))?;

        let mut leaf = common.clone();
        // A signing key must be one the Notary Project ties to an algorithm: RSA of exactly
        // 2048, 3072 or 4096 bits (notation-core-go's ExtractKeySpec).
        if let KeyInfo::Rsa { bits } = &key {
            if *bits >= 2048 && ![2048, 3072, 4096].contains(bits) {
                leaf.push(format!(
                    "RSA key of {bits} bits (Notary signing keys are RSA-2048, -3072 or -4096)"
                ));
            }
        }
        match &ku {
            None => leaf.push("no keyUsage extension".into()),
            Some(ku) => {
                if !ku.critical {
                    leaf.push("keyUsage is not critical".into());
                }
                let v = ku.value;
                if !v.digital_signature() {
                    leaf.push("keyUsage lacks digitalSignature".into());
                }
                for (set, name) in [
                    (v.key_encipherment(), "keyEncipherment"),
                    (v.data_encipherment(), "dataEncipherment"),
                    (v.key_agreement(), "keyAgreement"),
                    (v.key_cert_sign(), "keyCertSign"),
                    (v.crl_sign(), "cRLSign"),
                    (v.encipher_only(), "encipherOnly"),
                    (v.decipher_only(), "decipherOnly"),
                ] {
                    if set {
                        leaf.push(format!("keyUsage has {name}"));
                    }
                }
            }
        }
        if bc.as_ref().is_some_and(|bc| bc.value.ca) {
            leaf.push("basicConstraints says it is a CA".into());
        }
        if let Some(eku) = &eku {
            let e = eku.value;
            for (set, name) in [
                (e.any, "anyExtendedKeyUsage"),
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
            ] {
                if set {
                    leaf.push(format!("extendedKeyUsage has {name}"));
                }
            }
            if !e.code_signing {
                leaf.push("extendedKeyUsage lacks codeSigning".into());
            }
        }

        let mut ca = common;
        match &bc {
            None => ca.push("no basicConstraints extension".into()),
            Some(bc) => {
                if !bc.critical {
                    ca.push("basicConstraints is not critical".into());
                }
                if !bc.value.ca {
                    ca.push("basicConstraints has cA=false".into());
                }
            }
        }
        match &ku {
            None => ca.push("no keyUsage extension".into()),
            Some(ku) => {
                if !ku.critical {
                    ca.push("keyUsage is not critical".into());
                }
                if !ku.value.key_cert_sign() {
                    ca.push("keyUsage lacks keyCertSign".into());
                }
            }
        }

        Ok(CertInfo {
            der: der.to_vec(),
            subject: DistinguishedName::from_x509(cert.subject()),
            issuer: DistinguishedName::from_x509(cert.issuer()),
            not_before: time_of(&cert.validity().not_before),
            not_after: time_of(&cert.validity().not_after),
            key,
            public_key,
            key_id,
            path_len: bc.as_ref().and_then(|bc| bc.value.path_len_constraint),
            leaf_problems: leaf,
            ca_problems: ca,
        })
    }

    /// Whether the certificate may be a Notary CA (basic constraints, key usage).
    pub fn is_ca(&self) -> bool {
        self.ca_problems.is_empty()
    }

    /// Whether the certificate names itself as its issuer.
    pub fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether `at` lies within the certificate's validity period.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

/// Parses an `x5c` chain and applies the Notary certificate rules: the leaf must be a
/// signing certificate, every other certificate a CA, and the chain must end with a
/// self-signed root (a lone self-signed certificate is judged as a leaf).
pub fn parse_chain(ders: &[Vec<u8>]) -> Result<Vec<CertInfo>, CertError> {
    let chain = ders
        .iter()
        .enumerate()
        .map(|(i, d)| CertInfo::parse(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = &chain[0];
    if !leaf.leaf_problems.is_empty() {
        return Err(CertError::NotASigningLeaf {
            subject: leaf.subject.to_string(),
            problems: leaf.leaf_problems.clone(),
        });
    }
    for c in &chain[1..] {
        if !c.ca_problems.is_empty() {
            return Err(CertError::NotACa {
                subject: c.subject.to_string(),
                problems: c.ca_problems.clone(),
            });
        }
    }
    let root = chain.last().expect("chain is not empty");
    if !root.self_issued() {
        return Err(CertError::NoRoot(root.subject.to_string()));
    }
    // pathLenConstraint, for every CA including the root: rustls-webpki applies it to
    // intermediates but not to a trust anchor (RFC 5280 leaves that optional).
    for (i, ca) in chain.iter().enumerate().skip(1) {
        let below = i - 1;
        if let Some(allowed) = ca.path_len.filter(|n| (*n as usize) < below) {
            return Err(CertError::PathLength {
                subject: ca.subject.to_string(),
                allowed,
                found: below,
            });
        }
    }
    Ok(chain)
}

fn unix(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp().max(0) as u64))
}

/// Builds and checks the path from the leaf, through the chain's other certificates, to one
/// of `anchors`, as of `at`: signatures, validity, basic constraints and path lengths, name
/// constraints and extended key usage (codeSigning where present), by rustls-webpki.
pub fn validate_path(
    chain: &[CertInfo],
    anchors: &[Vec<u8>],
    at: OffsetDateTime,
) -> Result<(), webpki::Error> {
    validate_path_for(chain, anchors, at, Usage::CodeSigningIfPresent)
}

/// The extended key usage a path is validated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// codeSigning where the certificates name usages (Notary signers).
    CodeSigningIfPresent,
    /// codeSigning required (Sigstore's Fulcio certificates).
    CodeSigning,
    /// timeStamping required (RFC 3161 authorities).
    TimeStamping,
    /// OCSPSigning required (responders an issuer delegates to, RFC 6960 section 4.2.2.2).
    OcspSigning,
}

/// id-kp-OCSPSigning, 1.3.6.1.5.5.7.3.9
const OCSP_SIGNING: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 9];

/// id-kp-timeStamping, 1.3.6.1.5.5.7.3.8
const TIME_STAMPING: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 8];

/// [`validate_path`] for a given extended key usage: the leaf must carry it (for
/// timeStamping, in a critical extension, as RFC 3161 section 2.3 requires), and every CA
/// that restricts its usages must allow it; a CA without the extension is unrestricted.
pub fn validate_path_for(
    chain: &[CertInfo],
    anchors: &[Vec<u8>],
    at: OffsetDateTime,
    usage: Usage,
) -> Result<(), webpki::Error> {
    if usage != Usage::CodeSigningIfPresent {
        use x509_parser::prelude::FromDer as _;
        let (_, leaf) =
            X509Certificate::from_der(&chain[0].der).map_err(|_| webpki::Error::BadDer)?;
        let eku = leaf.extended_key_usage().ok().flatten();
        let ok = match (usage, &eku) {
            (Usage::CodeSigning, Some(e)) => e.value.code_signing,
            (Usage::TimeStamping, Some(e)) => e.value.time_stamping && e.critical,
            (Usage::OcspSigning, Some(e)) => e.value.ocsp_signing,
            _ => false,
        };
        if !ok {
            #[allow(deprecated)] // the context variant is not constructible outside webpki
            return Err(webpki::Error::RequiredEkuNotFound);
        }
    }
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    let anchors: Vec<TrustAnchor<'_>> = anchor_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    let leaf_der = CertificateDer::from(chain[0].der.as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        unix(at),
        match usage {
            Usage::CodeSigningIfPresent => webpki::KeyUsage::required_if_present(CODE_SIGNING),
            // The leaf's own usage is checked above.
            Usage::CodeSigning => webpki::KeyUsage::required_if_present(CODE_SIGNING),
            Usage::TimeStamping => webpki::KeyUsage::required_if_present(TIME_STAMPING),
            Usage::OcspSigning => webpki::KeyUsage::required_if_present(OCSP_SIGNING),
        },
        None,
        None,
    )?;
    Ok(())
}
