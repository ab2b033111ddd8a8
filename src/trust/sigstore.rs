//! Sigstore, verified offline: keyless cosign signatures (a Fulcio certificate and a Rekor
//! entry in layer annotations) and Sigstore bundles (`application/vnd.dev.sigstore.bundle`
//! v0.1 to v0.3: a message signature or a DSSE envelope, its key material and its
//! transparency-log entries), against a Sigstore `trusted_root.json`.
//!
//! What a signature must show, all of it bound together:
//! - a Rekor entry from a log the trusted root lists, with a signed entry timestamp (SET)
//!   by that log's key over the entry, its `integratedTime` inside the key's validity;
//!   an inclusion proof, when given, that leads to the root its checkpoint signs;
//! - the entry's body naming this very signature, this key or certificate and this
//!   artifact (a Rekor entry, bundle or certificate of another signature counts for
//!   nothing: GHSA-ccxc-vr6p-4858, GHSA-8gw7-4j42-w388, GHSA-fx35-mq7g-6g98);
//! - for a certificate: a path to a certificate authority of the trusted root, valid at
//!   the integrated time (never "now": Fulcio leaves live ten minutes), with the
//!   code-signing usage, the CA's own `validFor` holding that time;
//! - the signature itself, by the certificate's (or the managed key's) key.
//!
//! The identity is the certificate's OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8,
//! or the older .1.1) and its one subject alternative name. Trusted times are the
//! integrated times of Rekor v1 entries and the `genTime` of every RFC 3161 timestamp over
//! the signature ([`super::timestamp`]); a Rekor v2 entry (no SET) is proven by its
//! inclusion proof and signed checkpoint and dated by timestamps only, so a bundle with
//! neither time fails, and says so. The certificate must be valid at every trusted time.
//!
//! Pure functions, as the rest of `trust`: no I/O, times and bytes are arguments.

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;
use time::OffsetDateTime;

use super::certs::{self, CertInfo, KeyInfo};
use super::cosign::PublicKey;

/// `artifactType` of a Sigstore bundle stored as an OCI 1.1 referrer (cosign's
/// `--new-bundle-format`), and the media type of its one layer.
pub const BUNDLE_ARTIFACT: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every media type a bundle may declare.
const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    BUNDLE_ARTIFACT,
];
/// The cosign layer annotation holding a Rekor entry and its SET (cosign's older form).
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// Largest bundle read (one with a large in-toto provenance statement included).
pub const MAX_BUNDLE: u64 = 1 << 20;
/// Largest `trusted_root.json` accepted.
pub const MAX_TRUSTED_ROOT: usize = 1 << 20;
/// Most transparency-log entries one bundle may carry.
const MAX_TLOG_ENTRIES: usize = 8;
/// Most RFC 3161 timestamps one bundle may carry.
const MAX_TIMESTAMPS: usize = 8;
/// Most hashes of one inclusion proof (a tree of 2^64 leaves needs 64).
const MAX_PROOF_HASHES: usize = 64;
/// Most logs and certificate authorities one trusted root may list.
const MAX_ROOT_ENTRIES: usize = 64;
/// Most certificates in one authority's chain.
const MAX_CA_CHAIN: usize = 10;
/// Largest checkpoint (signed note) read.
const MAX_CHECKPOINT: usize = 16 * 1024;

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))
}

// ---------------------------------------------------------------------------------------
// The trusted root

/// A closed interval of time; `end: None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub start: OffsetDateTime,
    pub end: Option<OffsetDateTime>,
}

impl Validity {
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        t >= self.start && self.end.is_none_or(|e| t <= e)
    }
}

/// A transparency log the root trusts.
#[derive(Debug, Clone)]
pub struct Log {
    pub base_url: String,
    /// SHA-256 of the log key's DER SubjectPublicKeyInfo.
    pub id: Vec<u8>,
    pub key: PublicKey,
    pub valid: Validity,
}

/// A certificate authority the root trusts: its chain, issuing certificate first, root
/// last.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub uri: String,
    pub chain: Vec<Vec<u8>>,
    pub valid: Validity,
}

/// A Sigstore `trusted_root.json`, as far as verification needs it.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub logs: Vec<Log>,
    pub cas: Vec<CertificateAuthority>,
    /// RFC 3161 time-stamping authorities.
    pub tsas: Vec<super::timestamp::Authority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
    #[serde(default)]
    timestamp_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    #[serde(default)]
    base_url: String,
    public_key: RootKeyJson,
    log_id: KeyIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootKeyJson {
    raw_bytes: Option<String>,
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyIdJson {
    key_id: String,
}

#[derive(Deserialize)]
struct ValidForJson {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    #[serde(default)]
    uri: String,
    cert_chain: CertChainJson,
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
struct CertChainJson {
    certificates: Vec<RawBytesJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytesJson {
    raw_bytes: String,
}

fn validity(v: Option<&ValidForJson>, what: &str) -> Result<Validity, String> {
    let parse = |s: &str| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("{what}: validFor time '{s}' is not RFC 3339: {e}"))
    };
    let v = v.ok_or_else(|| format!("{what} has no validFor"))?;
    let start = v
        .start
        .as_deref()
        .ok_or_else(|| format!("{what}: validFor has no start"))?;
    Ok(Validity {
        start: parse(start)?,
        end: v.end.as_deref().map(parse).transpose()?,
    })
}

impl TrustedRoot {
    /// Parses a `trusted_root.json`. A log whose key bonded cannot use is left out (it
    /// can verify nothing); a malformed root is an error.
    pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, String> {
        if bytes.len() > MAX_TRUSTED_ROOT {
            return Err(format!(
                "a trusted root is at most {MAX_TRUSTED_ROOT} bytes; this one has {}",
                bytes.len()
            ));
        }
        let j: RootJson = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a Sigstore trusted_root.json: {e}"))?;
        if !j
            .media_type
            .starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(format!(
                "mediaType '{}' is not a Sigstore trusted root",
                j.media_type
            ));
        }
        if j.tlogs.len() > MAX_ROOT_ENTRIES
            || j.certificate_authorities.len() > MAX_ROOT_ENTRIES
            || j.timestamp_authorities.len() > MAX_ROOT_ENTRIES
        {
            return Err(format!(
                "a trusted root may list at most {MAX_ROOT_ENTRIES} logs and {MAX_ROOT_ENTRIES} authorities"
            ));
        }
        let mut logs = Vec::new();
        for (i, t) in j.tlogs.iter().enumerate() {
            let what = format!("tlogs[{i}] ({})", t.base_url);
            let valid = validity(t.public_key.valid_for.as_ref(), &what)?;
            let id = b64(&t.log_id.key_id).map_err(|e| format!("{what}: logId: {e}"))?;
            let Some(raw) = &t.public_key.raw_bytes else {
                continue;
            };
            let der = b64(raw).map_err(|e| format!("{what}: publicKey: {e}"))?;
            let Ok(key) = PublicKey::from_spki(&der) else {
                continue;
            };
            logs.push(Log {
                base_url: t.base_url.clone(),
                id,
                key,
                valid,
            });
        }
        let mut cas = Vec::new();
        for (i, c) in j.certificate_authorities.iter().enumerate() {
            cas.push(authority(
                c,
                &format!("certificateAuthorities[{i}] ({})", c.uri),
            )?);
        }
        let mut tsas = Vec::new();
        for (i, c) in j.timestamp_authorities.iter().enumerate() {
            let a = authority(c, &format!("timestampAuthorities[{i}] ({})", c.uri))?;
            tsas.push(super::timestamp::Authority {
                chain: a.chain,
                valid: Some(a.valid),
            });
        }
        Ok(TrustedRoot { logs, cas, tsas })
    }
}

/// A certificate authority (or time-stamping authority) entry of a trusted root.
fn authority(c: &CaJson, what: &str) -> Result<CertificateAuthority, String> {
    let valid = validity(c.valid_for.as_ref(), what)?;
    if c.cert_chain.certificates.is_empty() || c.cert_chain.certificates.len() > MAX_CA_CHAIN {
        return Err(format!(
            "{what}: a chain holds 1 to {MAX_CA_CHAIN} certificates"
        ));
    }
    let chain = c
        .cert_chain
        .certificates
        .iter()
        .map(|r| b64(&r.raw_bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    for (k, der) in chain.iter().enumerate() {
        CertInfo::parse(k, der).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(CertificateAuthority {
        uri: c.uri.clone(),
        chain,
        valid,
    })
}

// ---------------------------------------------------------------------------------------
// Fulcio identities

/// Who a Fulcio certificate was issued to: the OIDC issuer and the one SAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeylessIdentity {
    pub issuer: String,
    pub subject: String,
}

const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const OID_OTHERNAME_USERNAME: &str = "1.3.6.1.4.1.57264.1.7";

/// The identity a Fulcio certificate carries. A certificate with no issuer extension, or
/// not exactly one subject alternative name, has none (it cannot be one person).
pub fn keyless_identity(der: &[u8]) -> Result<KeylessIdentity, String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer as _;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let mut issuer_v2 = None;
    let mut issuer_v1 = None;
    let mut sans: Vec<String> = Vec::new();
    for ext in cert.extensions() {
        match ext.oid.to_id_string().as_str() {
            OID_ISSUER_V2 => {
                let (_, s) = x509_parser::der_parser::der::parse_der_utf8string(ext.value)
                    .map_err(|_| "the OIDC issuer extension is not a UTF8String".to_string())?;
                issuer_v2 = Some(
                    s.as_str()
                        .map_err(|_| "the OIDC issuer is not UTF-8".to_string())?
                        .to_string(),
                );
            }
            OID_ISSUER_V1 => {
                issuer_v1 = Some(
                    std::str::from_utf8(ext.value)
                        .map_err(|_| "the OIDC issuer is not UTF-8".to_string())?
                        .to_string(),
                );
            }
            _ => {}
        }
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                sans.push(match name {
                    GeneralName::RFC822Name(s) | GeneralName::URI(s) | GeneralName::DNSName(s) => {
                        s.to_string()
                    }
                    GeneralName::OtherName(oid, value)
                        if oid.to_id_string() == OID_OTHERNAME_USERNAME =>
                    {
                        // [0] EXPLICIT UTF8String
                        let inner = x509_parser::der_parser::der::parse_der(value)
                            .ok()
                            .and_then(|(_, o)| o.as_slice().ok().map(<[u8]>::to_vec))
                            .unwrap_or_default();
                        let (_, s) = x509_parser::der_parser::der::parse_der_utf8string(&inner)
                            .map_err(|_| "a SAN otherName is not a UTF8String".to_string())?;
                        s.as_str().unwrap_or_default().to_string()
                    }
                    other => return Err(format!("a SAN of a kind Fulcio never issues: {other}")),
                });
            }
        }
    }
    let issuer = issuer_v2
        .or(issuer_v1)
        .ok_or("the certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8): it is not a Fulcio certificate")?;
    if sans.len() != 1 {
        return Err(format!(
            "the certificate has {} subject alternative names; a Fulcio certificate names one identity",
            sans.len()
        ));
    }
    if issuer.is_empty() || sans[0].is_empty() {
        return Err("the certificate's issuer or subject is empty".into());
    }
    Ok(KeylessIdentity {
        issuer,
        subject: sans.remove(0),
    })
}

/// Whether a certificate carries a Fulcio issuer extension.
pub fn is_fulcio(der: &[u8]) -> bool {
    use x509_parser::prelude::FromDer as _;
    x509_parser::certificate::X509Certificate::from_der(der).is_ok_and(|(_, c)| {
        c.extensions().iter().any(|e| {
            let oid = e.oid.to_id_string();
            oid == OID_ISSUER_V1 || oid == OID_ISSUER_V2
        })
    })
}

/// Validates a Fulcio leaf at `at` against the certificate authorities of `root` whose
/// `validFor` holds `at`, requiring the code-signing usage. `Ok` names the authority.
pub fn validate_leaf(
    root: &TrustedRoot,
    leaf: &[u8],
    at: OffsetDateTime,
) -> Result<String, String> {
    let leaf = CertInfo::parse(0, leaf).map_err(|e| e.to_string())?;
    let mut tried = 0;
    let mut last = String::new();
    for ca in root.cas.iter().filter(|c| c.valid.contains(at)) {
        tried += 1;
        let mut chain = vec![leaf.clone()];
        for (i, der) in ca.chain[..ca.chain.len() - 1].iter().enumerate() {
            chain.push(CertInfo::parse(i + 1, der).map_err(|e| e.to_string())?);
        }
        let anchor = ca.chain.last().expect("chains are not empty").clone();
        match certs::validate_path_for(&chain, &[anchor], at, certs::Usage::CodeSigning) {
            Ok(()) => return Ok(ca.uri.clone()),
            Err(e) => last = format!("{e:?}"),
        }
    }
    Err(if tried == 0 {
        format!(
            "no certificate authority of the trusted root was valid at {}",
            crate::timefmt::rfc3339(at)
        )
    } else {
        format!(
            "the certificate does not lead to a certificate authority of the trusted root at {} ({last})",
            crate::timefmt::rfc3339(at)
        )
    })
}

// ---------------------------------------------------------------------------------------
// Rekor entries

/// An inclusion proof (RFC 9162) of an entry in a log's tree, and the checkpoint that
/// signs the tree's root.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub log_index: u64,
    pub root_hash: Vec<u8>,
    pub tree_size: u64,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
}

/// One transparency-log entry.
#[derive(Debug, Clone)]
pub struct TlogEntry {
    pub log_index: i64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub integrated_time: Option<i64>,
    pub set: Option<Vec<u8>>,
    pub proof: Option<InclusionProof>,
    /// The canonicalized body, base64 exactly as the log returned it (what the SET signs).
    pub body_b64: String,
    pub body: Vec<u8>,
}

/// What a signature covers, to bind a log entry's body to it.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// A signature over an artifact whose digest is `digest` (hashedrekord).
    Message {
        algorithm: HashAlgorithm,
        digest: &'a [u8],
        signature: &'a [u8],
    },
    /// A DSSE envelope's one signature over its payload.
    Dsse {
        payload_type: &'a str,
        payload: &'a [u8],
        signature: &'a [u8],
    },
}

/// The hash of a message digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    fn from_bundle(s: &str) -> Result<HashAlgorithm, String> {
        match s {
            "SHA2_256" => Ok(HashAlgorithm::Sha256),
            "SHA2_384" => Ok(HashAlgorithm::Sha384),
            "SHA2_512" => Ok(HashAlgorithm::Sha512),
            other => Err(format!(
                "message digest algorithm '{other}' is not supported"
            )),
        }
    }

    fn rekor_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    pub fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(bytes).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(bytes).to_vec(),
        }
    }

    /// The DER DigestInfo prefix of an RSA PKCS#1 v1.5 signature over this hash.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlgorithm::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlgorithm::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlgorithm::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The key or certificate a signature claims, as a log entry must name it.
#[derive(Debug, Clone, Copy)]
pub enum Verifier<'a> {
    /// A certificate, DER.
    Certificate(&'a [u8]),
    /// A public key, DER SubjectPublicKeyInfo.
    Key(&'a [u8]),
}

impl Verifier<'_> {
    fn der(&self) -> &[u8] {
        match self {
            Verifier::Certificate(d) | Verifier::Key(d) => d,
        }
    }
}

/// The DER inside a PEM (certificate or public key), from a log body's base64 of it.
fn pem_der_b64(s: &str) -> Result<Vec<u8>, String> {
    let pem = b64(s)?;
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| format!("the entry's key is not PEM: {e}"))?;
    Ok(p.contents)
}

/// RFC 9162 section 2.1.3.2: whether `hashes` prove leaf `index` of a tree of `size`
/// leaves, whose leaf hash is `leaf`, to have root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    hashes: &[Vec<u8>],
    root: &[u8],
) -> bool {
    if index >= size || hashes.len() > MAX_PROOF_HASHES {
        return false;
    }
    let node = |l: &[u8], r: &[u8]| -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    };
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in hashes {
        if p.len() != 32 || s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r.as_slice() == root
}

/// Verifies a checkpoint (a signed note: origin, tree size, root hash, then signature
/// lines) by `log`'s key, and that it signs `size` and `root`.
fn verify_checkpoint(log: &Log, note: &str, size: u64, root: &[u8]) -> Result<(), String> {
    if note.len() > MAX_CHECKPOINT {
        return Err("the checkpoint is too large".into());
    }
    let split = note
        .find("\n\n")
        .ok_or("the checkpoint has no signature lines")?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let mut lines = text.lines();
    let _origin = lines.next().ok_or("the checkpoint has no origin")?;
    let signed_size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("the checkpoint has no tree size")?;
    let signed_root = lines
        .next()
        .and_then(|l| b64(l).ok())
        .ok_or("the checkpoint has no root hash")?;
    let mut verified = false;
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((_name, sig)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(sig) = b64(sig) else { continue };
        if sig.len() > 4
            && log.id.len() >= 4
            && sig[..4] == log.id[..4]
            && log.key.verify(text.as_bytes(), &sig[4..]).is_some()
        {
            verified = true;
        }
    }
    if !verified {
        return Err("the checkpoint is not signed by the log's key".into());
    }
    if signed_size != size || signed_root != root {
        return Err("the checkpoint signs another tree than the inclusion proof's".into());
    }
    Ok(())
}

/// What a verified log entry says of time.
#[derive(Debug, Clone, Copy)]
pub enum EntryTime {
    /// A Rekor v1 entry's integrated time, signed by the log (SET).
    Integrated(OffsetDateTime),
    /// A Rekor v2 entry: proven in the log's tree, but timeless; a timestamp must date
    /// it, within the log key's validity.
    Untimed(Validity),
}

/// Verifies one entry against the trusted root: its log; for Rekor v1 its SET (and any
/// inclusion proof); for Rekor v2 (no SET) its inclusion proof and signed checkpoint.
pub fn verify_entry(root: &TrustedRoot, e: &TlogEntry) -> Result<EntryTime, String> {
    let log = root.logs.iter().find(|l| l.id == e.log_id).ok_or_else(|| {
        format!(
            "the entry is from a log the trusted root does not list (log id {})",
            hex::encode(&e.log_id)
        )
    })?;
    let (Some(it), Some(set)) = (e.integrated_time, e.set.as_deref()) else {
        // Rekor v2: the proof and a checkpoint signed by the log are what show inclusion.
        let p = e
            .proof
            .as_ref()
            .ok_or("the entry has neither a signed entry timestamp nor an inclusion proof")?;
        let cp = p
            .checkpoint
            .as_ref()
            .ok_or("the entry's inclusion proof has no checkpoint")?;
        verify_proof(e, p)?;
        verify_checkpoint(log, cp, p.tree_size, &p.root_hash)?;
        return Ok(EntryTime::Untimed(log.valid));
    };
    if !e
        .body_b64
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err("the entry body is not base64".into());
    }
    // The SET signs the entry as canonical JSON (RFC 8785: sorted keys, no spaces).
    let signed = format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        e.body_b64,
        it,
        hex::encode(&e.log_id),
        e.log_index
    );
    if log.key.verify(signed.as_bytes(), set).is_none() {
        return Err(format!(
            "the signed entry timestamp of log entry {} is not the log's signature",
            e.log_index
        ));
    }
    let at = OffsetDateTime::from_unix_timestamp(it)
        .map_err(|_| format!("integratedTime {it} is out of range"))?;
    if !log.valid.contains(at) {
        return Err(format!(
            "the log's key was not valid at the entry's integrated time {}",
            crate::timefmt::rfc3339(at)
        ));
    }
    if let Some(p) = &e.proof {
        verify_proof(e, p)?;
        if let Some(cp) = &p.checkpoint {
            verify_checkpoint(log, cp, p.tree_size, &p.root_hash)?;
        }
    }
    Ok(EntryTime::Integrated(at))
}

/// The inclusion proof of an entry's body (leaf `SHA-256(0x00 || body)`).
fn verify_proof(e: &TlogEntry, p: &InclusionProof) -> Result<(), String> {
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(&e.body);
    let leaf: [u8; 32] = h.finalize().into();
    if !verify_inclusion(p.log_index, p.tree_size, leaf, &p.hashes, &p.root_hash) {
        return Err("the inclusion proof does not lead from the entry to its root hash".into());
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyHead {
    api_version: String,
    kind: String,
    spec: serde_json::Value,
}

/// Whether an entry's body names exactly this signature, key or certificate, and
/// content: a log entry of another signature must not vouch for this one.
pub fn check_body(e: &TlogEntry, signed: Signed, verifier: Verifier) -> Result<(), String> {
    let head: BodyHead = serde_json::from_slice(&e.body)
        .map_err(|err| format!("the entry body is not a Rekor entry: {err}"))?;
    if head.kind != e.kind || head.api_version != e.version {
        return Err(format!(
            "the entry body is {} {}, not the {} {} the entry claims",
            head.kind, head.api_version, e.kind, e.version
        ));
    }
    let spec = &head.spec;
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let mismatch = |what: &str| Err(format!("the log entry is for another {what}"));
    match (head.kind.as_str(), head.api_version.as_str(), signed) {
        (
            "hashedrekord",
            "0.0.1",
            Signed::Message {
                algorithm,
                digest,
                signature,
            },
        ) => {
            let hash = &spec["data"]["hash"];
            if s(&hash["algorithm"]).as_deref() != Some(algorithm.rekor_name())
                || s(&hash["value"]).as_deref() != Some(hex::encode(digest).as_str())
            {
                return mismatch("artifact");
            }
            let sig = s(&spec["signature"]["content"]).ok_or("the entry has no signature")?;
            if b64(&sig)? != signature {
                return mismatch("signature");
            }
            let key = s(&spec["signature"]["publicKey"]["content"])
                .ok_or("the entry names no key")?;
            if pem_der_b64(&key)? != verifier.der() {
                return mismatch("key or certificate");
            }
            Ok(())
        }
        ("dsse", "0.0.1", Signed::Dsse { payload, signature, .. }) => {
            let ph = &spec["payloadHash"];
            if s(&ph["algorithm"]).as_deref() != Some("sha256")
                || s(&ph["value"]).as_deref()
                    != Some(hex::encode(sha2::Sha256::digest(payload)).as_str())
            {
                return mismatch("payload");
            }
            let sigs = spec["signatures"].as_array().ok_or("the entry has no signatures")?;
            let found = sigs.iter().any(|x| {
                s(&x["signature"]).and_then(|v| b64(&v).ok()).as_deref() == Some(signature)
                    && s(&x["verifier"])
                        .and_then(|v| pem_der_b64(&v).ok())
                        .as_deref()
                        == Some(verifier.der())
            });
            if sigs.len() != 1 || !found {
                return mismatch("signature or key");
            }
            Ok(())
        }
        ("intoto", "0.0.2", Signed::Dsse { payload, signature, .. }) => {
            let content = &spec["content"];
            let ph = &content["payloadHash"];
            if s(&ph["algorithm"]).as_deref() != Some("sha256")
                || s(&ph["value"]).as_deref()
                    != Some(hex::encode(sha2::Sha256::digest(payload)).as_str())
            {
                return mismatch("payload");
            }
            let sigs = content["envelope"]["signatures"]
                .as_array()
                .ok_or("the entry has no signatures")?;
            // intoto 0.0.2 keeps each signature base64 twice over.
            let found = sigs.iter().any(|x| {
                s(&x["sig"])
                    .and_then(|v| b64(&v).ok())
                    .and_then(|v| String::from_utf8(v).ok())
                    .and_then(|v| b64(&v).ok())
                    .as_deref()
                    == Some(signature)
                    && s(&x["publicKey"])
                        .and_then(|v| pem_der_b64(&v).ok())
                        .as_deref()
                        == Some(verifier.der())
            });
            if sigs.len() != 1 || !found {
                return mismatch("signature or key");
            }
            Ok(())
        }
        ("hashedrekord", "0.0.2", signed) => {
            // Rekor v2: the logged digest is the artifact's, or for DSSE the SHA-256 of the
            // envelope's pre-authentication encoding.
            let (algorithm, digest, signature) = match signed {
                Signed::Message {
                    algorithm,
                    digest,
                    signature,
                } => (algorithm, digest.to_vec(), signature),
                Signed::Dsse {
                    payload_type,
                    payload,
                    signature,
                } => (
                    HashAlgorithm::Sha256,
                    HashAlgorithm::Sha256.digest(&pae(payload_type, payload)),
                    signature,
                ),
            };
            let v2 = &spec["hashedRekordV002"];
            let data = &v2["data"];
            let alg_name = match algorithm {
                HashAlgorithm::Sha256 => "SHA2_256",
                HashAlgorithm::Sha384 => "SHA2_384",
                HashAlgorithm::Sha512 => "SHA2_512",
            };
            if s(&data["algorithm"]).as_deref() != Some(alg_name)
                || s(&data["digest"]).and_then(|d| b64(&d).ok()) != Some(digest)
            {
                return mismatch("artifact");
            }
            if s(&v2["signature"]["content"]).and_then(|c| b64(&c).ok()).as_deref()
                != Some(signature)
            {
                return mismatch("signature");
            }
            let named = &v2["signature"]["verifier"];
            let der = match verifier {
                Verifier::Certificate(_) => s(&named["x509Certificate"]["rawBytes"]),
                Verifier::Key(_) => s(&named["publicKey"]["rawBytes"]),
            };
            if der.and_then(|d| b64(&d).ok()).as_deref() != Some(verifier.der()) {
                return mismatch("key or certificate");
            }
            Ok(())
        }
        (kind, version, _) => Err(format!(
            "Rekor entries of kind {kind} {version} are not supported for this signature (hashedrekord 0.0.1 and 0.0.2 for message signatures; dsse 0.0.1, intoto 0.0.2 and hashedrekord 0.0.2 for DSSE)"
        )),
    }
}

#[derive(Deserialize)]
struct CosignRekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: CosignRekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CosignRekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// The Rekor entry of cosign's `dev.sigstore.cosign/bundle` annotation.
pub fn parse_rekor_bundle(annotation: &str) -> Result<TlogEntry, String> {
    let b: CosignRekorBundle = serde_json::from_str(annotation).map_err(|e| {
        format!("the {REKOR_BUNDLE_ANNOTATION} annotation is not a Rekor bundle: {e}")
    })?;
    let body = b64(&b.payload.body).map_err(|e| format!("the Rekor body: {e}"))?;
    let head: BodyHead = serde_json::from_slice(&body)
        .map_err(|e| format!("the Rekor body is not a Rekor entry: {e}"))?;
    Ok(TlogEntry {
        log_index: b.payload.log_index,
        log_id: hex::decode(&b.payload.log_id).map_err(|e| format!("logID: {e}"))?,
        kind: head.kind,
        version: head.api_version,
        integrated_time: Some(b.payload.integrated_time),
        set: Some(b64(&b.set).map_err(|e| format!("the SET: {e}"))?),
        proof: None,
        body_b64: b.payload.body.trim().to_string(),
        body,
    })
}

// ---------------------------------------------------------------------------------------
// Signatures over digests (what a bundle's message signature is)

/// Verifies `signature` over a message whose `algorithm` digest is `digest`, with `key`.
pub fn verify_prehash(
    key: &PublicKey,
    algorithm: HashAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<&'static str, String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    let bad = || "the signature does not verify with the key".to_string();
    // The same three steps for each curve's RustCrypto crate.
    macro_rules! ecdsa {
        ($curve:ident, $name:literal) => {{
            let k = $curve::ecdsa::VerifyingKey::from_sec1_bytes(&key.raw)
                .map_err(|e| e.to_string())?;
            let s = $curve::ecdsa::Signature::from_der(signature).map_err(|e| e.to_string())?;
            k.verify_prehash(digest, &s)
                .map(|_| $name)
                .map_err(|_| bad())
        }};
    }
    match &key.key {
        KeyInfo::Ec {
            curve: certs::Curve::P256,
        } => ecdsa!(p256, "ECDSA-P256"),
        KeyInfo::Ec {
            curve: certs::Curve::P384,
        } => ecdsa!(p384, "ECDSA-P384"),
        KeyInfo::Ec {
            curve: certs::Curve::P521,
        } => ecdsa!(p521, "ECDSA-P521"),
        KeyInfo::Rsa { .. } => {
            use rsa::pkcs1::DecodeRsaPublicKey as _;
            let k = rsa::RsaPublicKey::from_pkcs1_der(&key.raw).map_err(|e| e.to_string())?;
            let scheme = rsa::Pkcs1v15Sign {
                hash_len: Some(digest.len()),
                prefix: algorithm.digest_info_prefix().into(),
            };
            k.verify(scheme, digest, signature)
                .map(|_| "RSA-PKCS1v15")
                .map_err(|_| bad())
        }
        KeyInfo::Ed25519 => {
            Err("an Ed25519 key signs the message itself, which a digest alone cannot check".into())
        }
        KeyInfo::Other(what) => Err(format!("{what} keys are not supported")),
    }
}

// ---------------------------------------------------------------------------------------
// Bundles

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: MaterialJson,
    message_signature: Option<MessageSignatureJson>,
    dsse_envelope: Option<DsseJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialJson {
    certificate: Option<RawBytesJson>,
    x509_certificate_chain: Option<CertChainJson>,
    public_key: Option<serde_json::Value>,
    #[serde(default)]
    tlog_entries: Vec<BundleTlogJson>,
    timestamp_verification_data: Option<serde_json::Value>,
}

/// A protobuf-JSON int64: a string, or (leniently) a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Text(String),
    Number(i64),
}

impl Int64 {
    fn get(&self, what: &str) -> Result<i64, String> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(s) => s
                .parse()
                .map_err(|_| format!("{what} '{s}' is not an integer")),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleTlogJson {
    log_index: Int64,
    log_id: KeyIdJson,
    kind_version: KindVersionJson,
    integrated_time: Option<Int64>,
    inclusion_promise: Option<PromiseJson>,
    inclusion_proof: Option<ProofJson>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
struct KindVersionJson {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromiseJson {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProofJson {
    log_index: Int64,
    root_hash: String,
    tree_size: Int64,
    hashes: Vec<String>,
    checkpoint: Option<CheckpointJson>,
}

#[derive(Deserialize)]
struct CheckpointJson {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignatureJson {
    message_digest: MessageDigestJson,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigestJson {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseJson {
    payload: String,
    payload_type: String,
    signatures: Vec<DsseSignatureJson>,
}

#[derive(Deserialize)]
struct DsseSignatureJson {
    sig: String,
}

/// A bundle's key material.
#[derive(Debug, Clone)]
pub enum Material {
    /// A certificate (the leaf of v0.1/v0.2's chain, or v0.3's one certificate), DER.
    Certificate(Vec<u8>),
    /// A managed key, named by hint only: the verifier supplies the key.
    PublicKey,
}

/// What a bundle signs.
#[derive(Debug, Clone)]
pub enum Content {
    Message {
        algorithm: HashAlgorithm,
        digest: Vec<u8>,
        signature: Vec<u8>,
    },
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
}

/// A parsed Sigstore bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub material: Material,
    pub entries: Vec<TlogEntry>,
    pub content: Content,
    /// RFC 3161 timestamps over the signature (DER TimeStampResp or token).
    pub timestamps: Vec<Vec<u8>>,
}

/// Parses a Sigstore bundle (v0.1 to v0.3).
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle, String> {
    if bytes.len() as u64 > MAX_BUNDLE {
        return Err(format!("a bundle is at most {MAX_BUNDLE} bytes"));
    }
    let j: BundleJson =
        serde_json::from_slice(bytes).map_err(|e| format!("not a Sigstore bundle: {e}"))?;
    if !BUNDLE_MEDIA_TYPES.contains(&j.media_type.as_str()) {
        return Err(format!(
            "bundle media type '{}' is not a Sigstore bundle v0.1 to v0.3",
            j.media_type
        ));
    }
    let vm = j.verification_material;
    let material = match (&vm.certificate, &vm.x509_certificate_chain, &vm.public_key) {
        (Some(c), None, None) => Material::Certificate(b64(&c.raw_bytes)?),
        (None, Some(chain), None) => Material::Certificate(b64(&chain
            .certificates
            .first()
            .ok_or("the bundle's certificate chain is empty")?
            .raw_bytes)?),
        (None, None, Some(_)) => Material::PublicKey,
        _ => return Err(
            "the bundle must carry exactly one of certificate, x509CertificateChain and publicKey"
                .into(),
        ),
    };
    if vm.tlog_entries.len() > MAX_TLOG_ENTRIES {
        return Err(format!(
            "a bundle may carry at most {MAX_TLOG_ENTRIES} log entries"
        ));
    }
    let mut entries = Vec::new();
    for t in &vm.tlog_entries {
        let proof = match &t.inclusion_proof {
            None => None,
            Some(p) => {
                if p.hashes.len() > MAX_PROOF_HASHES {
                    return Err("an inclusion proof has too many hashes".into());
                }
                Some(InclusionProof {
                    log_index: u64::try_from(p.log_index.get("inclusionProof.logIndex")?)
                        .map_err(|_| "a negative log index")?,
                    root_hash: b64(&p.root_hash)?,
                    tree_size: u64::try_from(p.tree_size.get("inclusionProof.treeSize")?)
                        .map_err(|_| "a negative tree size")?,
                    hashes: p.hashes.iter().map(|h| b64(h)).collect::<Result<_, _>>()?,
                    checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
                })
            }
        };
        entries.push(TlogEntry {
            log_index: t.log_index.get("logIndex")?,
            log_id: b64(&t.log_id.key_id)?,
            kind: t.kind_version.kind.clone(),
            version: t.kind_version.version.clone(),
            integrated_time: match &t.integrated_time {
                Some(i) => Some(i.get("integratedTime")?).filter(|t| *t != 0),
                None => None,
            },
            set: t
                .inclusion_promise
                .as_ref()
                .map(|p| b64(&p.signed_entry_timestamp))
                .transpose()?,
            proof,
            body_b64: t.canonicalized_body.trim().to_string(),
            body: b64(&t.canonicalized_body)?,
        });
    }
    let content = match (j.message_signature, j.dsse_envelope) {
        (Some(m), None) => Content::Message {
            algorithm: HashAlgorithm::from_bundle(&m.message_digest.algorithm)?,
            digest: b64(&m.message_digest.digest)?,
            signature: b64(&m.signature)?,
        },
        (None, Some(d)) => {
            if d.signatures.len() != 1 {
                return Err(format!(
                    "a bundle's DSSE envelope must hold one signature, not {}",
                    d.signatures.len()
                ));
            }
            Content::Dsse {
                payload_type: d.payload_type,
                payload: b64(&d.payload)?,
                signature: b64(&d.signatures[0].sig)?,
            }
        }
        _ => return Err("a bundle holds either a messageSignature or a dsseEnvelope".into()),
    };
    let mut timestamps = Vec::new();
    if let Some(list) = vm
        .timestamp_verification_data
        .as_ref()
        .and_then(|t| t["rfc3161Timestamps"].as_array())
    {
        if list.len() > MAX_TIMESTAMPS {
            return Err(format!(
                "a bundle may carry at most {MAX_TIMESTAMPS} timestamps"
            ));
        }
        for t in list {
            let signed = t["signedTimestamp"]
                .as_str()
                .ok_or("an RFC 3161 timestamp has no signedTimestamp")?;
            timestamps.push(b64(signed)?);
        }
    }
    Ok(Bundle {
        material,
        entries,
        content,
        timestamps,
    })
}

/// What a bundle is checked against: the artifact's bytes, or only its digest (an image,
/// of which a registry knows the manifest digest).
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    Bytes(&'a [u8]),
    Digest {
        algorithm: HashAlgorithm,
        digest: &'a [u8],
    },
}

impl Artifact<'_> {
    fn digest(&self, want: HashAlgorithm) -> Result<Vec<u8>, String> {
        match self {
            Artifact::Bytes(b) => Ok(want.digest(b)),
            Artifact::Digest { algorithm, digest } if *algorithm == want => Ok(digest.to_vec()),
            Artifact::Digest { .. } => Err(format!(
                "the bundle signs a {} digest, and only the subject's {} digest is known",
                want.rekor_name(),
                "sha256"
            )),
        }
    }
}

/// A signature Sigstore-verified: who signed, with which key, when (the log's time).
#[derive(Debug, Clone)]
pub struct Verified {
    /// The Fulcio identity, for a certificate; `None` for a managed key.
    pub identity: Option<KeylessIdentity>,
    /// The certificate (DER), for a certificate.
    pub certificate: Option<Vec<u8>>,
    pub key: PublicKey,
    pub algorithm: &'static str,
    /// The earliest integrated time of the entries: when the signature existed.
    pub time: OffsetDateTime,
    pub log_index: i64,
    /// The in-toto statement's predicate type, for a DSSE bundle.
    pub predicate_type: Option<String>,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(rename = "predicateType", default)]
    predicate_type: String,
    subject: Vec<StatementSubject>,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding of a payload.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Checks the log entries of a signature (at least one, every one verified and bound to
/// it) and the certificate at their time; returns the key, the time and the log index.
fn verify_entries_and_material(
    root: &TrustedRoot,
    entries: &[TlogEntry],
    timestamps: &[Vec<u8>],
    signed: Signed,
    certificate: Option<&[u8]>,
    managed_key: Option<&PublicKey>,
) -> Result<(PublicKey, Option<KeylessIdentity>, OffsetDateTime, i64), String> {
    if entries.is_empty() {
        return Err("the signature has no transparency-log entry".into());
    }
    let (key, identity, verifier_der) = match (certificate, managed_key) {
        (Some(der), _) => {
            let spki = {
                use x509_parser::prelude::FromDer as _;
                let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)
                    .map_err(|e| format!("the certificate does not parse: {e}"))?;
                c.public_key().raw.to_vec()
            };
            let key = PublicKey::from_spki(&spki)?;
            (key, Some(keyless_identity(der)?), der.to_vec())
        }
        (None, Some(k)) => (k.clone(), None, k.spki.clone()),
        (None, None) => {
            return Err("the bundle names a managed key and no such key is trusted".into())
        }
    };
    let verifier = if certificate.is_some() {
        Verifier::Certificate(&verifier_der)
    } else {
        Verifier::Key(&verifier_der)
    };
    // Trusted times: the integrated times of Rekor v1 entries, and the genTime of every
    // RFC 3161 timestamp over the signature (each must verify).
    let mut times: Vec<(OffsetDateTime, i64)> = Vec::new();
    let mut untimed: Vec<(Validity, i64)> = Vec::new();
    for e in entries {
        let t = verify_entry(root, e)?;
        check_body(e, signed, verifier)?;
        match t {
            EntryTime::Integrated(at) => times.push((at, e.log_index)),
            EntryTime::Untimed(valid) => untimed.push((valid, e.log_index)),
        }
    }
    let signature = match signed {
        Signed::Message { signature, .. } | Signed::Dsse { signature, .. } => signature,
    };
    let mut stamped = Vec::new();
    for t in timestamps {
        stamped.push(
            super::timestamp::verify(t, signature, &root.tsas)
                .map_err(|e| format!("an RFC 3161 timestamp: {e}"))?,
        );
    }
    // A Rekor v2 entry is dated by the timestamps, which must fall in its log's validity.
    for (valid, index) in &untimed {
        if stamped.is_empty() {
            return Err(format!(
                "log entry {index} is a Rekor v2 entry, which carries no time, and the bundle has no RFC 3161 timestamp: there is no trusted time to verify the certificate at"
            ));
        }
        if let Some(t) = stamped.iter().find(|t| !valid.contains(**t)) {
            return Err(format!(
                "the timestamp {} is outside the validity of log entry {index}'s log",
                crate::timefmt::rfc3339(*t)
            ));
        }
    }
    let index = times
        .first()
        .map(|(_, i)| *i)
        .or(untimed.first().map(|(_, i)| *i))
        .unwrap_or_default();
    times.extend(stamped.into_iter().map(|t| (t, index)));
    if let Some(der) = certificate {
        for (at, _) in &times {
            validate_leaf(root, der, *at)?;
        }
    }
    let (time, log_index) = times
        .into_iter()
        .min_by_key(|(t, _)| *t)
        .ok_or("the signature has no trusted time")?;
    Ok((key, identity, time, log_index))
}

/// Whether a bundle claims to sign `artifact`: its message digest is the artifact's, or
/// its in-toto statement names the artifact's SHA-256 among its subjects. Returns the
/// statement's predicate type for DSSE. (Claims only: [`verify_bundle`] checks them.)
pub fn bundle_signs(bundle: &Bundle, artifact: Artifact) -> Result<Option<String>, String> {
    match &bundle.content {
        Content::Message {
            algorithm, digest, ..
        } => {
            if artifact.digest(*algorithm)? != *digest {
                return Err(
                    "the bundle signs another artifact (its message digest is not the artifact's)"
                        .into(),
                );
            }
            Ok(None)
        }
        Content::Dsse {
            payload_type,
            payload,
            ..
        } => {
            if payload_type != IN_TOTO {
                return Err(format!(
                    "the DSSE payload type is '{payload_type}', not an in-toto statement ({IN_TOTO})"
                ));
            }
            let st: Statement = serde_json::from_slice(payload)
                .map_err(|e| format!("the DSSE payload is not an in-toto statement: {e}"))?;
            if !st.kind.starts_with("https://in-toto.io/Statement/") {
                return Err(format!("'{}' is not an in-toto statement type", st.kind));
            }
            let want = hex::encode(artifact.digest(HashAlgorithm::Sha256)?);
            if !st.subject.iter().any(|s| {
                s.digest
                    .get("sha256")
                    .is_some_and(|d| d.eq_ignore_ascii_case(&want))
            }) {
                return Err(format!(
                    "the statement's subjects do not include sha256:{want}"
                ));
            }
            Ok(Some(st.predicate_type))
        }
    }
}

/// Verifies a bundle against `artifact`: its entries, its certificate at their time, its
/// signature, and that it signs this artifact. `managed_keys` are the keys a bundle without
/// a certificate may be signed by.
pub fn verify_bundle(
    root: &TrustedRoot,
    bundle: &Bundle,
    artifact: Artifact,
    managed_keys: &[PublicKey],
) -> Result<Verified, String> {
    let predicate_type = bundle_signs(bundle, artifact)?;
    let certificate = match &bundle.material {
        Material::Certificate(der) => Some(der.as_slice()),
        Material::PublicKey => None,
    };
    // A certificate names its key; a managed-key bundle may be any trusted key's.
    let candidates: Vec<Option<&PublicKey>> = match certificate {
        Some(_) => vec![None],
        None => managed_keys.iter().map(Some).collect(),
    };
    let (signed, signed_bytes) = match &bundle.content {
        Content::Message {
            algorithm,
            digest,
            signature,
        } => (
            Signed::Message {
                algorithm: *algorithm,
                digest,
                signature,
            },
            None,
        ),
        Content::Dsse {
            payload_type,
            payload,
            signature,
        } => (
            Signed::Dsse {
                payload_type,
                payload,
                signature,
            },
            Some(pae(payload_type, payload)),
        ),
    };
    let mut last = "the bundle is signed by a managed key and no such key is trusted".to_string();
    for k in candidates {
        let attempt = verify_entries_and_material(
            root,
            &bundle.entries,
            &bundle.timestamps,
            signed,
            certificate,
            k,
        )
        .and_then(|(key, identity, time, log_index)| {
            let algorithm = match (signed, &signed_bytes) {
                (
                    Signed::Message {
                        algorithm,
                        digest,
                        signature,
                    },
                    _,
                ) => verify_prehash(&key, algorithm, digest, signature)?,
                (Signed::Dsse { signature, .. }, Some(pae)) => key
                    .verify(pae, signature)
                    .ok_or("the DSSE signature does not verify with the key")?,
                (Signed::Dsse { .. }, None) => unreachable!("DSSE content has a PAE"),
            };
            Ok(Verified {
                identity,
                certificate: certificate.map(<[u8]>::to_vec),
                key,
                algorithm,
                time,
                log_index,
                predicate_type: predicate_type.clone(),
            })
        });
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Verifies a keyless cosign signature: a simple-signing `payload` signed by the Fulcio
/// certificate `leaf`, with cosign's Rekor bundle annotation.
pub fn verify_cosign_keyless(
    root: &TrustedRoot,
    leaf: &[u8],
    rekor_bundle: &str,
    payload: &[u8],
    signature: &[u8],
) -> Result<Verified, String> {
    let entry = parse_rekor_bundle(rekor_bundle)?;
    let digest = sha2::Sha256::digest(payload);
    let signed = Signed::Message {
        algorithm: HashAlgorithm::Sha256,
        digest: &digest,
        signature,
    };
    let (key, identity, time, log_index) = verify_entries_and_material(
        root,
        std::slice::from_ref(&entry),
        &[],
        signed,
        Some(leaf),
        None,
    )?;
    let alg = key
        .verify(payload, signature)
        .ok_or("the signature does not verify with the certificate's key")?;
    Ok(Verified {
        identity,
        certificate: Some(leaf.to_vec()),
        key,
        algorithm: alg,
        time,
        log_index,
        predicate_type: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_hash(data: &[u8]) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update([0u8]);
        h.update(data);
        h.finalize().into()
    }

    fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    }

    /// RFC 9162's tree of 7 leaves (its figure in section 2.1.3), proofs written out by
    /// hand from the definition, not from the verifier.
    #[test]
    fn inclusion_proofs_follow_rfc_9162() {
        let l: Vec<[u8; 32]> = (0..7u8).map(|i| leaf_hash(&[i])).collect();
        let ab = node(&l[0], &l[1]);
        let cd = node(&l[2], &l[3]);
        let ef = node(&l[4], &l[5]);
        let abcd = node(&ab, &cd);
        let efg = node(&ef, &l[6]);
        let root = node(&abcd, &efg);
        // leaf 3 (d): c, ab, efg
        let proof_d = vec![l[2].to_vec(), ab.to_vec(), efg.to_vec()];
        assert!(verify_inclusion(3, 7, l[3], &proof_d, &root));
        // leaf 6 (g), the lone right edge: ef, abcd
        let proof_g = vec![ef.to_vec(), abcd.to_vec()];
        assert!(verify_inclusion(6, 7, l[6], &proof_g, &root));
        // leaf 4 (e): f, g, abcd
        let proof_e = vec![l[5].to_vec(), l[6].to_vec(), abcd.to_vec()];
        assert!(verify_inclusion(4, 7, l[4], &proof_e, &root));
        // What would fool a careless verifier: another leaf, index, size, order, a
        // truncated or padded proof, an index past the tree.
        assert!(!verify_inclusion(3, 7, l[2], &proof_d, &root));
        assert!(!verify_inclusion(2, 7, l[3], &proof_d, &root));
        // (A larger tree whose last sibling hash is the same node is indistinguishable for
        // this leaf, as RFC 9162 intends; a smaller one is not.)
        assert!(!verify_inclusion(3, 4, l[3], &proof_d, &root));
        let mut swapped = proof_d.clone();
        swapped.swap(0, 1);
        assert!(!verify_inclusion(3, 7, l[3], &swapped, &root));
        assert!(!verify_inclusion(3, 7, l[3], &proof_d[..2], &root));
        let mut padded = proof_d.clone();
        padded.push(root.to_vec());
        assert!(!verify_inclusion(3, 7, l[3], &padded, &root));
        assert!(!verify_inclusion(7, 7, l[6], &proof_g, &root));
        // A one-leaf tree: the leaf is the root, the proof empty.
        assert!(verify_inclusion(0, 1, l[0], &[], &l[0]));
        assert!(!verify_inclusion(0, 1, l[0], &[l[1].to_vec()], &l[0]));
    }

    #[test]
    fn validity_is_a_closed_interval() {
        let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let v = Validity {
            start: t(10),
            end: Some(t(20)),
        };
        assert!(v.contains(t(10)) && v.contains(t(20)) && v.contains(t(15)));
        assert!(!v.contains(t(9)) && !v.contains(t(21)));
        let open = Validity {
            start: t(10),
            end: None,
        };
        assert!(open.contains(t(i32::MAX as i64)));
    }

    fn public_good(v: &std::path::Path) -> TrustedRoot {
        TrustedRoot::parse(
            &std::fs::read(v.join("cosign/trusted-roots/public-good/trusted_root.json")).unwrap(),
        )
        .unwrap()
    }

    /// The trusted roots of the vectors parse, including `"end": null` and fractional
    /// seconds; a `validFor` without a start is refused.
    #[test]
    fn trusted_roots_parse() {
        let Some(v) = crate::test_vectors::dir() else {
            return;
        };
        let root = public_good(&v);
        // Rekor v1 (P-256) and v2 (Ed25519); Fulcio 2021 and 2022.
        assert!(root.logs.len() >= 2, "{:?}", root.logs.len());
        assert!(root
            .logs
            .iter()
            .any(|l| hex::encode(&l.id).starts_with("c0d23d6a")));
        assert!(root.cas.len() >= 2);
        for f in [
            "cosign/trusted-roots/staging/trusted_root.json",
            "cosign/trusted-roots/github/github-trusted-root.json",
            "cosign/conformance/trust-root-tlog-validity-end-inclusive/trusted_root.json",
            "cosign/cosign-oci-attestation/trusted_root_pgi.json",
        ] {
            TrustedRoot::parse(&std::fs::read(v.join(f)).unwrap())
                .unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        let no_start = br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","certificateAuthorities":[{"certChain":{"certificates":[]},"validFor":{"end":"2030-01-01T00:00:00Z"}}]}"#;
        assert!(TrustedRoot::parse(no_start)
            .unwrap_err()
            .contains("no start"));
    }

    /// C13: sigstore-java's six keyless message-signature bundles (P-256, P-384/SHA-384,
    /// P-521/SHA-512, RSA 2048/3072/4096) verify over artifact.txt, for the identity in
    /// their certificates; the P-256 one fails against a SHA-512 digest of the artifact.
    #[test]
    fn c13_keyless_message_signatures_of_six_key_types_verify() {
        let Some(v) = crate::test_vectors::dir() else {
            return;
        };
        let root = public_good(&v);
        let dir = v.join("cosign/sigstore-java");
        let artifact = std::fs::read(dir.join("artifact.txt")).unwrap();
        for name in [
            "PKIX_ECDSA_P256_SHA_256",
            "PKIX_ECDSA_P384_SHA_384",
            "PKIX_ECDSA_P521_SHA_512",
            "PKIX_RSA_PKCS1V15_2048_SHA256",
            "PKIX_RSA_PKCS1V15_3072_SHA256",
            "PKIX_RSA_PKCS1V15_4096_SHA256",
        ] {
            let bytes = std::fs::read(dir.join(format!("{name}.sigstore.json"))).unwrap();
            let bundle = parse_bundle(&bytes).unwrap();
            let verified = verify_bundle(&root, &bundle, Artifact::Bytes(&artifact), &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let id = verified.identity.expect("keyless");
            assert!(
                !id.subject.is_empty() && id.issuer.starts_with("https://"),
                "{name}: {id:?}"
            );
            // Another artifact of the same length fails.
            let mut other = artifact.clone();
            other[0] ^= 1;
            assert!(verify_bundle(&root, &bundle, Artifact::Bytes(&other), &[]).is_err());
        }
        let p256 = parse_bundle(
            &std::fs::read(dir.join("PKIX_ECDSA_P256_SHA_256.sigstore.json")).unwrap(),
        )
        .unwrap();
        let sha512 = sha2::Sha512::digest(&artifact);
        let err = verify_bundle(
            &root,
            &p256,
            Artifact::Digest {
                algorithm: HashAlgorithm::Sha512,
                digest: &sha512,
            },
            &[],
        )
        .unwrap_err();
        assert!(err.contains("sha256"), "{err}");
    }

    /// C14: the Sigstore conformance suite's bundle cases. A case whose name ends in
    /// `_fail` must fail, for the reason its README gives; every other case must verify,
    /// for the case's identity (Rekor v1 and v2, SETs, inclusion proofs, checkpoints, RFC
    /// 3161 timestamps).
    #[test]
    fn c14_sigstore_conformance_bundles() {
        let Some(v) = crate::test_vectors::dir() else {
            return;
        };
        let base = v.join("cosign/conformance");
        let public_good = public_good(&v);
        let default_artifact = std::fs::read(base.join("a.txt")).unwrap();
        const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
        const ISSUER: &str = "https://token.actions.githubusercontent.com";
        // Cases that must fail, and what their failure must be about.
        let fail_reasons: &[(&str, &[&str])] = &[
            (
                "signature-mismatch_fail",
                &["another signature", "does not verify"],
            ),
            ("set-invalid-signature_fail", &["signed entry timestamp"]),
            ("wrong-material_fail", &["another artifact"]),
            (
                "dsse-invalid-sig_fail",
                &["another signature", "does not verify"],
            ),
            ("managed-key-wrong-key_fail", &["no such key is trusted"]),
            ("bundle-from-wrong-instance_fail", &["does not list"]),
            (
                "intoto-expired-certificate_fail",
                &["certificate authority"],
            ),
            ("invalid-inclusion-proof_fail", &["inclusion proof"]),
            ("checkpoint-wrong-roothash_fail", &["checkpoint"]),
            ("rekor2-no-timestamp_fail", &["no RFC 3161 timestamp"]),
        ];
        let mut seen = 0;
        let mut verified = 0;
        for entry in std::fs::read_dir(&base).unwrap() {
            let dir = entry.unwrap().path();
            if !dir.join("bundle.sigstore.json").is_file() {
                continue;
            }
            seen += 1;
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            let read = |f: &str| std::fs::read(dir.join(f)).ok();
            let root = match read("trusted_root.json") {
                Some(b) => TrustedRoot::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}")),
                None => public_good.clone(),
            };
            let artifact = read("artifact").unwrap_or_else(|| default_artifact.clone());
            let keys: Vec<PublicKey> = read("key.pub")
                .and_then(|k| super::super::cosign::parse_public_keys(&k).ok())
                .unwrap_or_default()
                .iter()
                .filter_map(|d| PublicKey::from_spki(d).ok())
                .collect();
            let identity = read("identity")
                .map(|b| String::from_utf8(b).unwrap().trim().to_string())
                .unwrap_or_else(|| IDENTITY.to_string());
            let issuer = read("issuer")
                .map(|b| String::from_utf8(b).unwrap().trim().to_string())
                .unwrap_or_else(|| ISSUER.to_string());
            let result = parse_bundle(&read("bundle.sigstore.json").unwrap())
                .and_then(|b| verify_bundle(&root, &b, Artifact::Bytes(&artifact), &keys))
                .and_then(|v| match (&v.identity, keys.is_empty()) {
                    (Some(id), true) if id.subject == identity && id.issuer == issuer => Ok(v),
                    (Some(id), true) => Err(format!("identity {id:?} is not the case's")),
                    (None, false) => Ok(v),
                    _ => Err("key material of the wrong kind".into()),
                });
            if let Some((_, reasons)) = fail_reasons.iter().find(|(n, _)| *n == name) {
                let err = match result {
                    Ok(_) => panic!("{name} must fail and verified"),
                    Err(e) => e,
                };
                assert!(
                    reasons.iter().any(|r| err.contains(r)),
                    "{name} failed for another reason than expected: {err}"
                );
            } else if name.ends_with("_fail") {
                panic!("{name}: a failing case this test does not know");
            } else {
                result.unwrap_or_else(|e| panic!("{name} must verify: {e}"));
                verified += 1;
            }
        }
        assert_eq!(seen, 24, "the conformance cases of the vectors' README");
        assert_eq!(verified, 24 - fail_reasons.len());
    }

    /// Pieces of two valid bundles over the same artifact, recombined, must not verify: a
    /// log entry, certificate or signature counts only for the signature it was made for
    /// (the class of GHSA-ccxc-vr6p-4858 and GHSA-8gw7-4j42-w388).
    #[test]
    fn pieces_of_other_bundles_never_count() {
        let Some(v) = crate::test_vectors::dir() else {
            return;
        };
        let root = public_good(&v);
        let dir = v.join("cosign/sigstore-java");
        let artifact = std::fs::read(dir.join("artifact.txt")).unwrap();
        let load = |n: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(dir.join(format!("{n}.sigstore.json"))).unwrap())
                .unwrap()
        };
        let a = load("PKIX_ECDSA_P256_SHA_256");
        let b = load("PKIX_RSA_PKCS1V15_2048_SHA256");
        let check = |j: &serde_json::Value| {
            parse_bundle(&serde_json::to_vec(j).unwrap())
                .and_then(|x| verify_bundle(&root, &x, Artifact::Bytes(&artifact), &[]))
        };
        assert!(check(&a).is_ok() && check(&b).is_ok());
        let swaps: [(&str, &[&str]); 3] = [
            ("the log entry", &["verificationMaterial", "tlogEntries"]),
            ("the certificate", &["verificationMaterial", "certificate"]),
            ("the signature", &["messageSignature", "signature"]),
        ];
        for (what, path) in swaps {
            let mut mixed = a.clone();
            let mut to = &mut mixed;
            let mut from = &b;
            for k in path {
                to = &mut to[*k];
                from = &from[*k];
            }
            *to = from.clone();
            let err = check(&mixed).expect_err(what);
            assert!(err.contains("another"), "{what}: {err}");
        }
        // Two entries, one of them for another signature: every entry must hold.
        let mut two = a.clone();
        let other = b["verificationMaterial"]["tlogEntries"][0].clone();
        two["verificationMaterial"]["tlogEntries"]
            .as_array_mut()
            .unwrap()
            .push(other);
        assert!(check(&two).is_err());
        // No entry at all.
        let mut none = a.clone();
        none["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
        assert!(check(&none)
            .unwrap_err()
            .contains("no transparency-log entry"));
    }

    /// C12: cosign's DSSE in-toto attestation bundle verifies for the image it names
    /// (`sha256:732112270d7e…`, known by digest only, as a registry knows it) and fails for
    /// another image.
    #[test]
    fn c12_dsse_attestation_binds_to_its_image() {
        let Some(v) = crate::test_vectors::dir() else {
            return;
        };
        let dir = v.join("cosign/cosign-oci-attestation");
        let root =
            TrustedRoot::parse(&std::fs::read(dir.join("trusted_root_pgi.json")).unwrap()).unwrap();
        let bundle =
            parse_bundle(&std::fs::read(dir.join("oci-attestation.sigstore.json")).unwrap())
                .unwrap();
        let image = hex::decode("732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")
            .unwrap();
        let ok = verify_bundle(
            &root,
            &bundle,
            Artifact::Digest {
                algorithm: HashAlgorithm::Sha256,
                digest: &image,
            },
            &[],
        )
        .unwrap();
        let id = ok.identity.unwrap();
        assert_eq!(id.subject, "cody@soyland.com");
        assert_eq!(id.issuer, "https://github.com/login/oauth");
        let mut other = image.clone();
        other[31] ^= 1;
        let err = verify_bundle(
            &root,
            &bundle,
            Artifact::Digest {
                algorithm: HashAlgorithm::Sha256,
                digest: &other,
            },
            &[],
        )
        .unwrap_err();
        assert!(err.contains("subjects do not include"), "{err}");
    }

    #[test]
    fn dsse_pae_is_the_specified_encoding() {
        // The DSSE specification's example: "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
