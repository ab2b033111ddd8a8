//! Revocation of a signature's certificates: OCSP (RFC 6960) and certificate revocation
//! lists (RFC 5280 section 5), judged as the Notary Project's trust policy specification
//! says (OCSP preferred, the lists when no responder settles it).
//!
//! Pure, like the rest of `trust`: the answers are fetched elsewhere (the server's and the
//! CLI's `crate::revocation`), and what was fetched, or why it could not be, comes in as
//! [`Evidence`]. [`sources`] says what to fetch. The parts that need a well-kept library
//! have one: rustls-webpki checks each CRL's profile, verifies CRL and OCSP signatures
//! with the issuer's (or its certified responder's) key and the responder's certificate;
//! x509-parser reads the lists' entries, x509-ocsp the OCSP messages.

use std::collections::HashMap;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::ReasonCode;

use super::certs::CertInfo;

/// Distribution points read from one certificate (tried in order, as notation does).
pub const MAX_URLS_PER_CERT: usize = 4;
/// The largest CRL accepted.
pub const MAX_CRL_BYTES: usize = 16 << 20;
/// The longest a finding from a CRL stands, whatever the list's `nextUpdate`: a
/// revocation its issuer publishes early is seen within this time.
pub const MAX_AGE: time::Duration = time::Duration::hours(1);

/// The CRL distribution points (URIs) of one certificate, in the certificate's order (at
/// most [`MAX_URLS_PER_CERT`]); only the [`fetchable`] ones are fetched.
pub fn crl_urls(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            for name in names {
                push_uri(&mut urls, name);
            }
        }
    }
    urls.truncate(MAX_URLS_PER_CERT);
    urls
}

/// Adds `name` to `urls` when it is a URI not there yet, whatever its scheme: a location
/// bonded cannot fetch (LDAP, a file) still says the certificate can be revoked, so it
/// makes the status unavailable rather than letting the certificate pass unchecked (as
/// notation does).
fn push_uri(urls: &mut Vec<String>, name: &GeneralName<'_>) {
    if let GeneralName::URI(u) = name {
        if !urls.iter().any(|x| x == u) {
            urls.push(u.to_string());
        }
    }
}

/// Whether bonded fetches `url`: HTTP and HTTPS only, as Notary verifiers do.
pub fn fetchable(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The earliest `nextUpdate` of an OCSP response's statuses, if it parses and has one.
pub fn ocsp_next_update(der: &[u8]) -> Option<OffsetDateTime> {
    use der::Decode as _;
    let res = x509_ocsp::OcspResponse::from_der(der).ok()?;
    let basic =
        x509_ocsp::BasicOcspResponse::from_der(res.response_bytes?.response.as_bytes()).ok()?;
    basic
        .tbs_response_data
        .responses
        .iter()
        .filter_map(|r| r.next_update.as_ref().map(gtime))
        .min()
}

/// What fetching one distribution point, or asking one OCSP responder, gave.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The body of a 2xx answer (a DER CRL or OCSP response, bounded in size).
    Body(Arc<Vec<u8>>),
    /// A CRL, read once (see [`Crl`]).
    Crl(Arc<Crl>),
    /// Why there is no CRL: unreachable, timed out, an error status, too large.
    Failed(String),
}

/// The CRLs fetched for a verification, by URL, and the OCSP answers, by
/// [`OcspQuery::key`].
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    crls: HashMap<String, Fetched>,
    ocsp: HashMap<String, Fetched>,
}

impl Evidence {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_crl(&mut self, url: &str, fetched: Fetched) {
        self.crls.insert(url.to_string(), fetched);
    }

    pub fn crl(&self, url: &str) -> Option<&Fetched> {
        self.crls.get(url)
    }

    pub fn insert_ocsp(&mut self, key: &str, fetched: Fetched) {
        self.ocsp.insert(key.to_string(), fetched);
    }

    pub fn ocsp(&self, key: &str) -> Option<&Fetched> {
        self.ocsp.get(key)
    }
}

/// The revocation status of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No certificate is revoked: every certificate that names a distribution point was
    /// found on none of its issuer's lists. The finding holds until `until`, the earliest
    /// `nextUpdate` of the lists read (`None` when no certificate names one).
    Good { until: Option<OffsetDateTime> },
    /// A certificate is revoked (the message says which, when and by which list).
    Revoked(String),
    /// The status of a certificate could not be determined (every list unreachable,
    /// expired, not signed by the issuer, ...).
    Unavailable(String),
}

/// The revocation status of `chain` (leaf first, root last) at `now`, from the CRLs in
/// `evidence`. `signed_at` is the signature's trusted timestamp, if it has one: a
/// certificate revoked with an invalidity date after it still counts as good, as the
/// Notary Project specifies. A revoked certificate anywhere in the chain decides;
/// otherwise one whose status is unavailable does.
pub fn check(
    chain: &[CertInfo],
    evidence: &Evidence,
    now: OffsetDateTime,
    signed_at: Option<OffsetDateTime>,
) -> Status {
    let mut until: Option<OffsetDateTime> = None;
    let mut unavailable: Option<String> = None;
    // From the root down, as the specification orders it.
    for i in (0..chain.len().saturating_sub(1)).rev() {
        let (cert, issuer) = (&chain[i], &chain[i + 1]);
        let queries = ocsp_queries(cert, issuer);
        let urls = crl_urls(&cert.der);
        if urls.is_empty() && queries.is_empty() {
            continue;
        }
        let mut why = Vec::new();
        let mut decided = false;
        // OCSP first; the lists when no responder settles it (judged lazily: a list is
        // not read once an answer decided).
        let ocsp = queries.iter().map(|q| match evidence.ocsp(&q.key) {
            _ if !fetchable(&q.url) => Outcome::Unavailable(format!(
                "the OCSP responder {} is not an HTTP or HTTPS location",
                q.url
            )),
            None => Outcome::Unavailable(format!("{} was not asked", q.url)),
            Some(Fetched::Failed(e)) => {
                Outcome::Unavailable(format!("the OCSP responder {}: {e}", q.url))
            }
            Some(Fetched::Body(der)) => judge_ocsp(q, cert, issuer, der, now, signed_at),
            Some(Fetched::Crl(_)) => Outcome::Unavailable(format!("{} answered with a CRL", q.url)),
        });
        let lists = urls.iter().map(|url| match evidence.crl(url) {
            _ if !fetchable(url) => Outcome::Unavailable(format!(
                "the CRL location {url} is not an HTTP or HTTPS location (only those are fetched)"
            )),
            None => Outcome::Unavailable(format!("{url} was not fetched")),
            Some(Fetched::Failed(e)) => Outcome::Unavailable(format!("{url}: {e}")),
            Some(Fetched::Crl(crl)) => judge(cert, issuer, url, crl, now, signed_at),
            Some(Fetched::Body(der)) => match Crl::parse(der.clone()) {
                Ok(crl) => judge(cert, issuer, url, &crl, now, signed_at),
                Err(e) => Outcome::Unavailable(format!("the CRL from {url} {e}")),
            },
        });
        for outcome in ocsp.chain(lists) {
            match outcome {
                Outcome::Good(next) => {
                    until = Some(until.map_or(next, |u| u.min(next)));
                    decided = true;
                    break;
                }
                Outcome::Revoked(msg) => return Status::Revoked(msg),
                Outcome::Unavailable(e) => why.push(e),
            }
        }
        if !decided && unavailable.is_none() {
            unavailable = Some(format!(
                "the revocation status of certificate '{}' is unavailable: {}",
                cert.subject,
                why.join("; ")
            ));
        }
    }
    match unavailable {
        Some(e) => Status::Unavailable(e),
        None => Status::Good { until },
    }
}

enum Outcome {
    /// Not on the list, which is current until the time given.
    Good(OffsetDateTime),
    Revoked(String),
    Unavailable(String),
}

fn time_of(t: x509_parser::time::ASN1Time) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// One revocation entry of a [`Crl`].
#[derive(Debug, Clone)]
struct Revoked {
    at: OffsetDateTime,
    reason: Option<ReasonCode>,
    invalid_from: Option<OffsetDateTime>,
}

/// What an issuing distribution point (RFC 5280 section 5.2.5) says a list covers.
#[derive(Debug, Clone)]
struct Scope {
    partitioned: bool,
    only_user: bool,
    only_ca: bool,
    /// The full names (URIs) of the point, when it names any.
    names: Option<Vec<String>>,
}

/// A CRL signature check's outcome for one issuer certificate (by its SHA-256).
type SignatureCheck = ([u8; 32], Result<(), String>);

/// A certificate revocation list read once: what judging it needs, its entries by
/// serial number, and (memoised per issuer key) whether its signature verifies, so that a
/// list of 100,000 entries costs one parse when fetched, not one per verification.
#[derive(Debug)]
pub struct Crl {
    der: Arc<Vec<u8>>,
    /// Offset and length of the signed part (tbsCertList) within `der`.
    tbs: (usize, usize),
    signature_oid: String,
    signature: Vec<u8>,
    issuer_raw: Vec<u8>,
    issuer: String,
    next_update: Option<OffsetDateTime>,
    entries: HashMap<Vec<u8>, Revoked>,
    scope: Option<Scope>,
    /// Signature checks done, by SHA-256 of the issuer certificate.
    verified: std::sync::Mutex<Vec<SignatureCheck>>,
}

impl Crl {
    /// Reads a DER CRL. rustls-webpki checks its profile (v2, no delta or indirect lists,
    /// no unknown critical extensions, well-formed entries); x509-parser reads it.
    pub fn parse(der: Arc<Vec<u8>>) -> Result<Crl, String> {
        if der.len() > MAX_CRL_BYTES {
            return Err(format!("is larger than {} MiB", MAX_CRL_BYTES >> 20));
        }
        if let Err(e) = webpki::OwnedCertRevocationList::from_der(&der) {
            return Err(format!("is not a CRL bonded can use ({e:?})"));
        }
        let crl = match CertificateRevocationList::from_der(&der) {
            Ok((&[], crl)) => crl,
            Ok(_) => return Err("has trailing bytes".into()),
            Err(e) => return Err(format!("is not a CRL: {e}")),
        };
        let tbs = crl.tbs_cert_list.as_ref();
        let offset = tbs.as_ptr() as usize - der.as_ptr() as usize;
        let mut entries = HashMap::new();
        for e in crl.iter_revoked_certificates() {
            entries.insert(
                e.raw_serial().to_vec(),
                Revoked {
                    at: time_of(e.revocation_date),
                    reason: e.reason_code().map(|(_, r)| r),
                    invalid_from: e.invalidity_date().map(|(_, t)| time_of(t)),
                },
            );
        }
        let mut scope = None;
        for ext in crl.extensions() {
            if let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() {
                scope = Some(Scope {
                    partitioned: idp.only_contains_attribute_certs
                        || idp.indirect_crl
                        || idp.only_some_reasons.is_some(),
                    only_user: idp.only_contains_user_certs,
                    only_ca: idp.only_contains_ca_certs,
                    names: match &idp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => Some(
                            names
                                .iter()
                                .filter_map(|n| match n {
                                    GeneralName::URI(u) => Some(u.to_string()),
                                    _ => None,
                                })
                                .collect(),
                        ),
                        _ => None,
                    },
                });
            }
        }
        Ok(Crl {
            tbs: (offset, tbs.len()),
            signature_oid: crl.signature_algorithm.algorithm.to_id_string(),
            signature: crl.signature_value.data.to_vec(),
            issuer_raw: crl.issuer().as_raw().to_vec(),
            issuer: crl.issuer().to_string(),
            next_update: crl.next_update().map(time_of),
            entries,
            scope,
            verified: std::sync::Mutex::new(Vec::new()),
            der,
        })
    }

    /// The list's `nextUpdate`.
    pub fn next_update(&self) -> Option<OffsetDateTime> {
        self.next_update
    }

    /// Its size in bytes (DER).
    pub fn len(&self) -> usize {
        self.der.len()
    }

    pub fn is_empty(&self) -> bool {
        self.der.is_empty()
    }

    /// Whether the issuer certificate `issuer` (DER) signed it, remembered per issuer.
    fn signed_by(&self, issuer: &[u8]) -> Result<(), String> {
        use sha2::Digest as _;
        let id: [u8; 32] = sha2::Sha256::digest(issuer).into();
        let mut memo = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, r)) = memo.iter().find(|(k, _)| *k == id) {
            return r.clone();
        }
        let (o, n) = self.tbs;
        let r = verify_signed_by(
            issuer,
            &self.signature_oid,
            &self.der[o..o + n],
            &self.signature,
        );
        if memo.len() < 8 {
            memo.push((id, r.clone()));
        }
        r
    }

    /// Why it leaves `cert` out, if it does (see [`Scope`]): a list of user certificates
    /// says nothing about a CA, nor one of CA certificates about a leaf, nor a partition
    /// whose names omit the point it came from.
    fn out_of_scope(&self, url: &str, is_ca: bool) -> Option<String> {
        let scope = self.scope.as_ref()?;
        if scope.partitioned {
            return Some("covers only some certificates or reasons (a partitioned CRL)".into());
        }
        if scope.only_user && is_ca {
            return Some("lists end-entity certificates only, and this one is a CA".into());
        }
        if scope.only_ca && !is_ca {
            return Some("lists CA certificates only, and this one is not a CA".into());
        }
        if let Some(names) = &scope.names {
            if !names.iter().any(|n| n == url) {
                return Some(format!(
                    "is a partition of its issuer's revocations that does not name {url}"
                ));
            }
        }
        None
    }
}

/// One CRL, fetched from `url`, judged for `cert`, issued by `issuer`.
fn judge(
    cert: &CertInfo,
    issuer: &CertInfo,
    url: &str,
    crl: &Crl,
    now: OffsetDateTime,
    signed_at: Option<OffsetDateTime>,
) -> Outcome {
    let bad = |why: String| Outcome::Unavailable(format!("the CRL from {url} {why}"));
    let Ok((_, c)) = X509Certificate::from_der(&cert.der) else {
        return bad("cannot be applied: the certificate does not parse".into());
    };
    let Ok((_, iss)) = X509Certificate::from_der(&issuer.der) else {
        return bad("cannot be applied: the issuer does not parse".into());
    };
    if crl.issuer_raw != c.issuer().as_raw() {
        return bad(format!(
            "is issued by '{}', not by '{}', which issued the certificate",
            crl.issuer,
            c.issuer()
        ));
    }
    if let Err(e) = crl.signed_by(&issuer.der) {
        return bad(format!(
            "is not signed by the certificate's issuer '{}': {e}",
            issuer.subject
        ));
    }
    if let Ok(Some(ku)) = iss.key_usage() {
        if !ku.value.crl_sign() {
            return bad(format!(
                "is signed by '{}', whose key usage does not allow signing CRLs",
                issuer.subject
            ));
        }
    }
    if let Some(why) = crl.out_of_scope(url, cert.is_ca()) {
        return bad(why);
    }
    let Some(next) = crl.next_update else {
        return bad("has no nextUpdate, so bonded cannot tell whether it is current".into());
    };
    let expired = now > next;
    let serial = c.raw_serial();
    let Some(entry) = crl.entries.get(serial) else {
        return if expired {
            bad(format!(
                "expired at {} (its nextUpdate) and no newer one was available",
                crate::timefmt::rfc3339(next)
            ))
        } else {
            Outcome::Good(next)
        };
    };
    let reason = entry.reason;
    if reason == Some(ReasonCode::RemoveFromCRL) {
        return if expired {
            bad(format!("expired at {}", crate::timefmt::rfc3339(next)))
        } else {
            Outcome::Good(next)
        };
    }
    if let (Some(stamped), Some(invalid)) = (signed_at, entry.invalid_from) {
        // Timestamped before the key became invalid: the signature was made while the
        // certificate could be trusted.
        if stamped < invalid {
            return if expired {
                bad(format!("expired at {}", crate::timefmt::rfc3339(next)))
            } else {
                Outcome::Good(next)
            };
        }
    }
    if reason == Some(ReasonCode::CertificateHold) && expired {
        return bad(format!(
            "lists the certificate on hold but expired at {}",
            crate::timefmt::rfc3339(next)
        ));
    }
    Outcome::Revoked(format!(
        "certificate '{}' (serial {}) was revoked on {}{} by its issuer '{}' (CRL {url})",
        cert.subject,
        hex::encode(serial),
        crate::timefmt::rfc3339(entry.at),
        match reason {
            Some(r) => format!(", reason {}", reason_name(r)),
            None => String::new(),
        },
        issuer.subject
    ))
}

/// RFC 5280's name of a revocation reason (section 5.3.1).
fn reason_name(r: ReasonCode) -> &'static str {
    match r.0 {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "an unknown reason",
    }
}

/// Verifies `signature` over `message` with the public key of the certificate `signer`
/// (DER), for the X.509 signature algorithm `oid`, by rustls-webpki. Shared by CRLs and
/// OCSP responses.
pub(crate) fn verify_signed_by(
    signer: &[u8],
    oid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    use webpki::ring as alg;
    let candidates: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = match oid {
        "1.2.840.113549.1.1.11" => &[alg::RSA_PKCS1_2048_8192_SHA256],
        "1.2.840.113549.1.1.12" => &[alg::RSA_PKCS1_2048_8192_SHA384],
        "1.2.840.113549.1.1.13" => &[alg::RSA_PKCS1_2048_8192_SHA512],
        "1.2.840.113549.1.1.10" => &[
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        ],
        "1.2.840.10045.4.3.2" => &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        "1.2.840.10045.4.3.3" => &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        "1.3.101.112" => &[alg::ED25519],
        other => return Err(format!("signature algorithm {other} is not supported")),
    };
    let der = CertificateDer::from(signer);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| format!("{e:?}"))?;
    let mut last = String::from("no algorithm fits the key");
    for a in candidates {
        match cert.verify_signature(*a, message, signature) {
            Ok(()) => return Ok(()),
            Err(webpki::Error::InvalidSignatureForPublicKey) => {
                return Err("the signature does not verify".into())
            }
            Err(e) => last = format!("{e:?}"),
        }
    }
    Err(last)
}

/// One OCSP question: the status of one certificate, asked of one responder its
/// certificate names (authority information access, id-ad-ocsp).
#[derive(Debug, Clone)]
pub struct OcspQuery {
    /// The responder (HTTP).
    pub url: String,
    /// Names the answer in [`Evidence`]: the responder and the certificate.
    pub key: String,
    /// The DER `OCSPRequest` to POST (`application/ocsp-request`).
    pub request: Vec<u8>,
    cert_id: x509_ocsp::CertId,
}

/// Where one certificate's revocation status can be learnt, in the order the Notary
/// Project prefers: its OCSP responders, then (when no responder settles it) its CRLs.
#[derive(Debug, Clone)]
pub struct CertSources {
    pub ocsp: Vec<OcspQuery>,
    pub crls: Vec<String>,
    cert: CertInfo,
    issuer: CertInfo,
}

/// The revocation sources of every certificate of `chain` that has an issuer in it (all
/// but the root), leaf first; certificates that name none are left out.
pub fn sources(chain: &[CertInfo]) -> Vec<CertSources> {
    let mut out = Vec::new();
    for i in 0..chain.len().saturating_sub(1) {
        let crls = crl_urls(&chain[i].der);
        let ocsp = ocsp_queries(&chain[i], &chain[i + 1]);
        if !crls.is_empty() || !ocsp.is_empty() {
            out.push(CertSources {
                ocsp,
                crls,
                cert: chain[i].clone(),
                issuer: chain[i + 1].clone(),
            });
        }
    }
    out
}

/// The OCSP responders (URIs) a certificate names (at most [`MAX_URLS_PER_CERT`]); only
/// the [`fetchable`] ones are asked.
pub fn ocsp_urls(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut urls: Vec<String> = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() else {
            continue;
        };
        for desc in aia.iter() {
            if desc.access_method.to_id_string() != "1.3.6.1.5.5.7.48.1" {
                continue;
            }
            push_uri(&mut urls, &desc.access_location);
        }
    }
    urls.truncate(MAX_URLS_PER_CERT);
    urls
}

/// id-sha256
const SHA256_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The CertID of `cert` (RFC 6960 section 4.1.1) with SHA-256: hashes of the issuer's
/// name and public key, and the serial number.
fn cert_id(cert: &CertInfo, issuer: &CertInfo) -> Option<x509_ocsp::CertId> {
    use der::Decode as _;
    use sha2::Digest as _;
    let c = x509_cert::Certificate::from_der(&cert.der).ok()?;
    let i = x509_cert::Certificate::from_der(&issuer.der).ok()?;
    let name = der::Encode::to_der(&i.tbs_certificate.subject).ok()?;
    let key = i
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    Some(x509_ocsp::CertId {
        hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: SHA256_OID,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: der::asn1::OctetString::new(sha2::Sha256::digest(&name).to_vec()).ok()?,
        issuer_key_hash: der::asn1::OctetString::new(sha2::Sha256::digest(key).to_vec()).ok()?,
        serial_number: c.tbs_certificate.serial_number,
    })
}

fn ocsp_queries(cert: &CertInfo, issuer: &CertInfo) -> Vec<OcspQuery> {
    let urls = ocsp_urls(&cert.der);
    if urls.is_empty() {
        return Vec::new();
    }
    let Some(id) = cert_id(cert, issuer) else {
        return Vec::new();
    };
    let request = x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    let Ok(request) = der::Encode::to_der(&request) else {
        return Vec::new();
    };
    let thumb = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&cert.der));
    urls.into_iter()
        .map(|url| OcspQuery {
            key: format!("{url} {thumb}"),
            url,
            request: request.clone(),
            cert_id: id.clone(),
        })
        .collect()
}

impl CertSources {
    /// Whether `response`, the answer to `q` (one of [`Self::ocsp`]), settles the
    /// certificate's status (good or revoked, by an authorised responder, current at
    /// `now`); when no answer does, its CRLs are needed.
    pub fn settled_by(&self, q: &OcspQuery, response: &[u8], now: OffsetDateTime) -> bool {
        !matches!(
            judge_ocsp(q, &self.cert, &self.issuer, response, now, None),
            Outcome::Unavailable(_)
        )
    }
}

/// Clock skew allowed between a responder and bonded for `thisUpdate`.
const OCSP_SKEW: time::Duration = time::Duration::minutes(5);
/// How long an OCSP answer without `nextUpdate` (RFC 6960: newer information is always
/// available) stands.
const OCSP_NO_NEXT_UPDATE: time::Duration = time::Duration::minutes(5);
/// id-pkix-ocsp-nocheck
const OCSP_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";

fn gtime(t: &x509_ocsp::OcspGeneralizedTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.0.to_unix_duration().as_secs() as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// One OCSP answer (DER `OCSPResponse`) to `q`, for `cert` issued by `issuer`, judged at
/// `now` as RFC 6960 and the Notary Project's OCSP steps say: a successful basic
/// response, signed by the issuer or by a responder the issuer certified for OCSP
/// signing, current, about this certificate; `good` is good, `revoked` revoked (unless
/// its invalidity date follows the signature's trusted timestamp), `unknown` unavailable.
fn judge_ocsp(
    q: &OcspQuery,
    cert: &CertInfo,
    issuer: &CertInfo,
    response: &[u8],
    now: OffsetDateTime,
    signed_at: Option<OffsetDateTime>,
) -> Outcome {
    use der::Decode as _;
    let url = &q.url;
    let bad = |why: String| Outcome::Unavailable(format!("the OCSP responder {url} {why}"));
    let res = match x509_ocsp::OcspResponse::from_der(response) {
        Ok(r) => r,
        Err(e) => return bad(format!("gave no OCSP response ({e})")),
    };
    if res.response_status != x509_ocsp::OcspResponseStatus::Successful {
        return bad(format!("answered {:?}", res.response_status));
    }
    let Some(bytes) = res.response_bytes else {
        return bad("answered without a response".into());
    };
    if bytes.response_type.to_string() != "1.3.6.1.5.5.7.48.1.1" {
        return bad(format!(
            "answered with response type {}, not a basic OCSP response",
            bytes.response_type
        ));
    }
    let raw = bytes.response.as_bytes();
    let basic = match x509_ocsp::BasicOcspResponse::from_der(raw) {
        Ok(b) => b,
        Err(e) => return bad(format!("sent a malformed basic response ({e})")),
    };
    // The signed bytes as sent: the first element of the BasicOCSPResponse SEQUENCE.
    let Some(tbs) = first_element(raw) else {
        return bad("sent a malformed basic response".into());
    };
    let Some(signer) = responder(&basic, issuer, now) else {
        return bad(format!(
            "is neither the issuer '{}' nor a responder it certified for OCSP signing",
            issuer.subject
        ));
    };
    let signer = match signer {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let Some(sig) = basic.signature.as_bytes() else {
        return bad("sent a signature that is not whole bytes".into());
    };
    if let Err(e) = verify_signed_by(
        &signer,
        &basic.signature_algorithm.oid.to_string(),
        tbs,
        sig,
    ) {
        return bad(format!(
            "sent a response whose signature does not verify: {e}"
        ));
    }
    let Some(single) = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| same_cert(&r.cert_id, &q.cert_id))
    else {
        return bad(format!(
            "answered about other certificates, not '{}'",
            cert.subject
        ));
    };
    if gtime(&single.this_update) > now + OCSP_SKEW {
        return bad("answered with a thisUpdate in the future".into());
    }
    let next = match &single.next_update {
        Some(n) => gtime(n),
        None => now + OCSP_NO_NEXT_UPDATE,
    };
    if now > next {
        return bad(format!(
            "answered with a response that expired at {}",
            crate::timefmt::rfc3339(next)
        ));
    }
    match &single.cert_status {
        x509_ocsp::CertStatus::Good(_) => Outcome::Good(next),
        x509_ocsp::CertStatus::Unknown(_) => bad(format!(
            "does not know certificate '{}' (status unknown)",
            cert.subject
        )),
        x509_ocsp::CertStatus::Revoked(info) => {
            let invalid_from = single.single_extensions.as_ref().and_then(|exts| {
                exts.iter()
                    .find(|e| e.extn_id.to_string() == "2.5.29.24")
                    .and_then(|e| {
                        der::asn1::GeneralizedTime::from_der(e.extn_value.as_bytes()).ok()
                    })
                    .and_then(|t| {
                        OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64)
                            .ok()
                    })
            });
            if let (Some(stamped), Some(invalid)) = (signed_at, invalid_from) {
                if stamped < invalid {
                    return Outcome::Good(next);
                }
            }
            let reason = info
                .revocation_reason
                .map(|r| format!(", reason {}", reason_name(ReasonCode(r as u8))))
                .unwrap_or_default();
            Outcome::Revoked(format!(
                "certificate '{}' was revoked on {}{reason}, says its issuer's OCSP responder {url}",
                cert.subject,
                crate::timefmt::rfc3339(gtime(&info.revocation_time)),
            ))
        }
    }
}

/// Whether two CertIDs name the same certificate: the same hash algorithm (whether or not
/// its NULL parameters are encoded), issuer hashes and serial number.
fn same_cert(a: &x509_ocsp::CertId, b: &x509_ocsp::CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// The DER of the first element inside the SEQUENCE `der`.
fn first_element(der: &[u8]) -> Option<&[u8]> {
    use der::{Decode as _, Reader as _};
    let mut outer = der::SliceReader::new(der).ok()?;
    let header = der::Header::decode(&mut outer).ok()?;
    let body = outer.read_slice(header.length).ok()?;
    let mut inner = der::SliceReader::new(body).ok()?;
    let start = inner.position();
    let h = der::Header::decode(&mut inner).ok()?;
    inner.read_slice(h.length).ok()?;
    let end = inner.position();
    body.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

/// The certificate (DER) that signed an OCSP response, if `issuer` authorised it: the
/// issuer itself, or a certificate in the response that the responder ID names, issued
/// by `issuer` (verified by rustls-webpki, valid now) for id-kp-OCSPSigning. `None`
/// when the responder ID names neither; an error when it names a certificate that may
/// not answer.
fn responder(
    basic: &x509_ocsp::BasicOcspResponse,
    issuer: &CertInfo,
    now: OffsetDateTime,
) -> Option<Result<Vec<u8>, String>> {
    use der::{Decode as _, Encode as _};
    let names = |der: &[u8]| -> bool {
        let Ok(c) = x509_cert::Certificate::from_der(der) else {
            return false;
        };
        match &basic.tbs_response_data.responder_id {
            x509_ocsp::ResponderId::ByName(n) => c.tbs_certificate.subject == *n,
            x509_ocsp::ResponderId::ByKey(hash) => {
                let key = c
                    .tbs_certificate
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes();
                let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, key);
                hash.as_bytes() == sha1.as_ref()
            }
        }
    };
    if names(&issuer.der) {
        return Some(Ok(issuer.der.clone()));
    }
    let delegate = basic
        .certs
        .iter()
        .flatten()
        .filter_map(|c| c.to_der().ok())
        .find(|d| names(d))?;
    let info = match CertInfo::parse(0, &delegate) {
        Ok(i) => i,
        Err(e) => {
            return Some(Err(format!(
                "names a responder certificate that does not parse: {e}"
            )))
        }
    };
    if let Err(e) = super::certs::validate_path_for(
        std::slice::from_ref(&info),
        std::slice::from_ref(&issuer.der),
        now,
        super::certs::Usage::OcspSigning,
    ) {
        return Some(Err(format!(
            "signed with '{}', which '{}' did not certify for OCSP signing now ({e:?})",
            info.subject, issuer.subject
        )));
    }
    // Without id-pkix-ocsp-nocheck, the responder's own certificate would need its
    // revocation checked by CRL; bonded does not follow that second step, so such a
    // responder's answer settles nothing when its certificate names a list.
    let nocheck = X509Certificate::from_der(&delegate)
        .ok()
        .is_some_and(|(_, c)| {
            c.extensions()
                .iter()
                .any(|e| e.oid.to_id_string() == OCSP_NOCHECK)
        });
    if !nocheck && !crl_urls(&delegate).is_empty() {
        return Some(Err(format!(
            "signed with '{}', whose own revocation would need its CRL (it lacks id-pkix-ocsp-nocheck)",
            info.subject
        )));
    }
    Some(Ok(delegate))
}

#[cfg(test)]
mod tests {
    //! Lists made with rcgen for a three-certificate chain: the leaf names the
    //! intermediate's list, the intermediate the root's. Expected outcomes are those of
    //! the Notary Project's "Revocation Checking with CRL" steps and RFC 5280.
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
        CrlIssuingDistributionPoint, CrlScope, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    };
    use time::Duration;

    const LEAF_URL: &str = "http://crl.test/inter.crl";
    const INTER_URL: &str = "http://crl.test/root.crl";
    const LEAF_SERIAL: u64 = 0x1001;
    const INTER_SERIAL: u64 = 0x2002;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
    }

    fn params(cn: &str, ca: bool, serial: u64, cdp: &[&str]) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CountryName, "US");
        p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
        p.distinguished_name.push(DnType::OrganizationName, "Acme");
        p.distinguished_name.push(DnType::CommonName, cn);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        } else {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
        p.serial_number = Some(SerialNumber::from(serial));
        p.crl_distribution_points = cdp
            .iter()
            .map(|u| CrlDistributionPoint {
                uris: vec![u.to_string()],
            })
            .collect();
        p.not_before = now() - Duration::days(30);
        p.not_after = now() + Duration::days(30);
        p
    }

    struct Pki {
        chain: Vec<CertInfo>,
        root: Issuer<'static, KeyPair>,
        inter: Issuer<'static, KeyPair>,
    }

    fn key() -> KeyPair {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    }

    fn pki_with(leaf_cdp: &[&str]) -> Pki {
        let (root_key, inter_key, leaf_key) = (key(), key(), key());
        let root_params = params("Root", true, 1, &[]);
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root = Issuer::new(root_params, root_key);
        let inter_params = params("Intermediate", true, INTER_SERIAL, &[INTER_URL]);
        let inter_cert = inter_params.signed_by(&inter_key, &root).unwrap();
        let inter = Issuer::new(inter_params, inter_key);
        let leaf_cert = params("Signer", false, LEAF_SERIAL, leaf_cdp)
            .signed_by(&leaf_key, &inter)
            .unwrap();
        let chain = [leaf_cert.der(), inter_cert.der(), root_cert.der()]
            .iter()
            .enumerate()
            .map(|(i, d)| CertInfo::parse(i, d).unwrap())
            .collect();
        Pki { chain, root, inter }
    }

    fn pki() -> Pki {
        pki_with(&[LEAF_URL])
    }

    struct Entry {
        serial: u64,
        reason: Option<RevocationReason>,
        invalid_from: Option<OffsetDateTime>,
    }

    fn revoked(serial: u64, reason: RevocationReason) -> Entry {
        Entry {
            serial,
            reason: Some(reason),
            invalid_from: None,
        }
    }

    /// A CRL by `issuer` listing `entries`, current until `next` from now.
    fn crl_with(
        issuer: &Issuer<'_, KeyPair>,
        entries: &[Entry],
        next: Duration,
        idp: Option<CrlIssuingDistributionPoint>,
    ) -> Fetched {
        let this_update = now() - Duration::hours(2);
        let p = CertificateRevocationListParams {
            this_update,
            next_update: now() + next,
            crl_number: SerialNumber::from(7u64),
            issuing_distribution_point: idp,
            revoked_certs: entries
                .iter()
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from(e.serial),
                    revocation_time: this_update,
                    reason_code: e.reason,
                    invalidity_date: e.invalid_from,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        // Read once, as the server's fetcher keeps it.
        let der = Arc::new(p.signed_by(issuer).unwrap().der().to_vec());
        Fetched::Crl(Arc::new(Crl::parse(der).unwrap()))
    }

    fn crl(issuer: &Issuer<'_, KeyPair>, entries: &[Entry]) -> Fetched {
        crl_with(issuer, entries, Duration::days(1), None)
    }

    fn evidence(leaf: Fetched, inter: Fetched) -> Evidence {
        let mut e = Evidence::new();
        e.insert_crl(LEAF_URL, leaf);
        e.insert_crl(INTER_URL, inter);
        e
    }

    fn revoked_msg(s: Status) -> String {
        match s {
            Status::Revoked(m) => m,
            other => panic!("expected revoked, got {other:?}"),
        }
    }

    fn unavailable_msg(s: Status) -> String {
        match s {
            Status::Unavailable(m) => m,
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn distribution_points_are_read_from_every_certificate_but_the_root() {
        let p = pki();
        assert_eq!(crl_urls(&p.chain[0].der), vec![LEAF_URL]);
        let s = sources(&p.chain);
        assert_eq!(s.len(), 2, "the leaf and the intermediate, not the root");
        assert_eq!(
            (s[0].crls.as_slice(), s[1].crls.as_slice()),
            (
                [LEAF_URL.to_string()].as_slice(),
                [INTER_URL.to_string()].as_slice()
            )
        );
        assert!(s[0].ocsp.is_empty());
        // Every URI is read, whatever its scheme, in order.
        let p = pki_with(&["ldap://dir.test/cn=crl", "file:///etc/crl", LEAF_URL]);
        assert_eq!(
            crl_urls(&p.chain[0].der),
            vec!["ldap://dir.test/cn=crl", "file:///etc/crl", LEAF_URL]
        );
    }

    #[test]
    fn a_location_bonded_cannot_fetch_leaves_the_status_unavailable_not_good() {
        // Only an LDAP list: the certificate can be revoked and nobody can tell.
        let p = pki_with(&["ldap://dir.test/cn=crl"]);
        let m = unavailable_msg(check(
            &p.chain,
            &evidence(Fetched::Failed("x".into()), crl(&p.root, &[])),
            now(),
            None,
        ));
        assert!(m.contains("not an HTTP or HTTPS location"), "{m}");
        // An LDAP location, then an HTTP one with a current list: good.
        let p = pki_with(&["ldap://dir.test/cn=crl", LEAF_URL]);
        let e = evidence(crl(&p.inter, &[]), crl(&p.root, &[]));
        assert!(matches!(
            check(&p.chain, &e, now(), None),
            Status::Good { .. }
        ));
    }

    #[test]
    fn a_chain_on_no_list_is_good_until_the_earliest_next_update() {
        let p = pki();
        let e = evidence(
            crl_with(
                &p.inter,
                &[revoked(0x9999, RevocationReason::KeyCompromise)],
                Duration::hours(5),
                None,
            ),
            crl_with(&p.root, &[], Duration::hours(3), None),
        );
        match check(&p.chain, &e, now(), None) {
            Status::Good { until: Some(u) } => {
                assert!(
                    (u - (now() + Duration::hours(3))).abs() < Duration::minutes(1),
                    "{u}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Certificates that name no distribution point have nothing to check.
        let bare = pki_with(&[]);
        let mut chain = bare.chain.clone();
        chain.remove(1);
        assert_eq!(
            check(&chain[..1], &Evidence::new(), now(), None),
            Status::Good { until: None }
        );
    }

    #[test]
    fn a_listed_leaf_or_intermediate_is_revoked() {
        let p = pki();
        let e = evidence(
            crl(
                &p.inter,
                &[revoked(LEAF_SERIAL, RevocationReason::KeyCompromise)],
            ),
            crl(&p.root, &[]),
        );
        let m = revoked_msg(check(&p.chain, &e, now(), None));
        assert!(
            m.contains("CN=Signer") && m.contains("1001") && m.contains("keyCompromise"),
            "{m}"
        );
        let e = evidence(
            crl(&p.inter, &[]),
            crl(
                &p.root,
                &[revoked(INTER_SERIAL, RevocationReason::CaCompromise)],
            ),
        );
        let m = revoked_msg(check(&p.chain, &e, now(), None));
        assert!(
            m.contains("CN=Intermediate") && m.contains("cACompromise"),
            "{m}"
        );
    }

    #[test]
    fn revocation_outranks_an_unavailable_list() {
        let p = pki();
        let e = evidence(
            Fetched::Failed("unreachable".into()),
            crl(
                &p.root,
                &[revoked(INTER_SERIAL, RevocationReason::KeyCompromise)],
            ),
        );
        revoked_msg(check(&p.chain, &e, now(), None));
    }

    #[test]
    fn a_list_not_fetched_or_unreachable_leaves_the_status_unavailable() {
        let p = pki();
        let m = unavailable_msg(check(&p.chain, &Evidence::new(), now(), None));
        assert!(m.contains("was not fetched"), "{m}");
        let e = evidence(
            Fetched::Failed("unreachable (refused)".into()),
            crl(&p.root, &[]),
        );
        let m = unavailable_msg(check(&p.chain, &e, now(), None));
        assert!(
            m.contains("CN=Signer") && m.contains("unreachable (refused)"),
            "{m}"
        );
        let e = evidence(
            Fetched::Body(Arc::new(b"not a crl".to_vec())),
            crl(&p.root, &[]),
        );
        unavailable_msg(check(&p.chain, &e, now(), None));
    }

    #[test]
    fn the_next_distribution_point_is_tried_when_one_fails() {
        let second = "http://mirror.test/inter.crl";
        let p = pki_with(&[LEAF_URL, second]);
        let mut e = evidence(Fetched::Failed("timed out".into()), crl(&p.root, &[]));
        e.insert_crl(second, crl(&p.inter, &[]));
        assert!(matches!(
            check(&p.chain, &e, now(), None),
            Status::Good { .. }
        ));
    }

    #[test]
    fn a_list_signed_by_another_key_or_issuer_proves_nothing() {
        let p = pki();
        // Same name as the intermediate, another key: a forger's list that omits the leaf.
        let forger = Issuer::new(params("Intermediate", true, 5, &[]), key());
        let e = evidence(crl(&forger, &[]), crl(&p.root, &[]));
        let m = unavailable_msg(check(&p.chain, &e, now(), None));
        assert!(
            m.contains("is not signed by the certificate's issuer"),
            "{m}"
        );
        // The root's genuine list, served at the leaf's point: not the leaf's issuer.
        let e = evidence(crl(&p.root, &[]), crl(&p.root, &[]));
        let m = unavailable_msg(check(&p.chain, &e, now(), None));
        assert!(m.contains("is issued by"), "{m}");
    }

    #[test]
    fn an_expired_list_still_proves_revocation_but_not_good_standing() {
        let p = pki();
        let stale = |entries: &[Entry]| crl_with(&p.inter, entries, Duration::minutes(1), None);
        let later = now() + Duration::minutes(5);
        let e = evidence(stale(&[]), crl_with(&p.root, &[], Duration::days(1), None));
        let m = unavailable_msg(check(&p.chain, &e, later, None));
        assert!(m.contains("expired at"), "{m}");
        let e = evidence(
            stale(&[revoked(LEAF_SERIAL, RevocationReason::Superseded)]),
            crl_with(&p.root, &[], Duration::days(1), None),
        );
        revoked_msg(check(&p.chain, &e, later, None));
        // On hold is revoked while the list is current, and unknown once it expired.
        let e = evidence(
            stale(&[revoked(LEAF_SERIAL, RevocationReason::CertificateHold)]),
            crl_with(&p.root, &[], Duration::days(1), None),
        );
        revoked_msg(check(&p.chain, &e, now(), None));
        unavailable_msg(check(&p.chain, &e, later, None));
    }

    #[test]
    fn a_timestamp_before_the_invalidity_date_keeps_the_signature_good() {
        let p = pki();
        let compromised = now() - Duration::days(2);
        let e = evidence(
            crl(
                &p.inter,
                &[Entry {
                    serial: LEAF_SERIAL,
                    reason: Some(RevocationReason::KeyCompromise),
                    invalid_from: Some(compromised),
                }],
            ),
            crl(&p.root, &[]),
        );
        // Timestamped before the key was compromised: good.
        let before = compromised - Duration::days(1);
        assert!(matches!(
            check(&p.chain, &e, now(), Some(before)),
            Status::Good { .. }
        ));
        // After it, or with no trusted time at all: revoked.
        revoked_msg(check(
            &p.chain,
            &e,
            now(),
            Some(compromised + Duration::hours(1)),
        ));
        revoked_msg(check(&p.chain, &e, now(), None));
        // Without an invalidity date the entry revokes whatever the timestamp.
        let e = evidence(
            crl(
                &p.inter,
                &[revoked(LEAF_SERIAL, RevocationReason::KeyCompromise)],
            ),
            crl(&p.root, &[]),
        );
        revoked_msg(check(&p.chain, &e, now(), Some(before)));
    }

    #[test]
    fn a_partitioned_list_covers_only_what_it_says() {
        let p = pki();
        let idp = |uris: &[&str], scope| {
            Some(CrlIssuingDistributionPoint {
                distribution_point: CrlDistributionPoint {
                    uris: uris.iter().map(|u| u.to_string()).collect(),
                },
                scope,
            })
        };
        let root = || crl(&p.root, &[]);
        let day = Duration::days(1);
        // Naming the point it came from, for user certificates: it covers the leaf.
        let e = evidence(
            crl_with(
                &p.inter,
                &[],
                day,
                idp(&[LEAF_URL], Some(CrlScope::UserCertsOnly)),
            ),
            root(),
        );
        assert!(matches!(
            check(&p.chain, &e, now(), None),
            Status::Good { .. }
        ));
        // CA certificates only: says nothing of the leaf.
        let e = evidence(
            crl_with(
                &p.inter,
                &[],
                day,
                idp(&[LEAF_URL], Some(CrlScope::CaCertsOnly)),
            ),
            root(),
        );
        let m = unavailable_msg(check(&p.chain, &e, now(), None));
        assert!(m.contains("CA certificates only"), "{m}");
        // Another partition (another point's name): says nothing of the leaf either.
        let e = evidence(
            crl_with(
                &p.inter,
                &[],
                day,
                idp(&["http://crl.test/part2.crl"], None),
            ),
            root(),
        );
        let m = unavailable_msg(check(&p.chain, &e, now(), None));
        assert!(m.contains("partition"), "{m}");
    }
}
