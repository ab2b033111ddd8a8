//! The Notary Project JWS envelope (flattened JSON serialization): parsing, the protected
//! header's rules, and the signature over `protected || "." || payload` exactly as encoded.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::certs::{CertInfo, Curve, KeyInfo};
use super::NOTARY_PAYLOAD;

/// JWS algorithms the Notary Project allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
        }
    }

    /// The one algorithm the Notary Project ties to a key: RSA-2048/3072/4096 to
    /// PS256/384/512, P-256/384/521 to ES256/384/512.
    pub fn for_key(key: &KeyInfo) -> Option<Self> {
        Some(match key {
            KeyInfo::Rsa { bits: 2048 } => Algorithm::PS256,
            KeyInfo::Rsa { bits: 3072 } => Algorithm::PS384,
            KeyInfo::Rsa { bits: 4096 } => Algorithm::PS512,
            KeyInfo::Ec { curve: Curve::P256 } => Algorithm::ES256,
            KeyInfo::Ec { curve: Curve::P384 } => Algorithm::ES384,
            KeyInfo::Ec { curve: Curve::P521 } => Algorithm::ES512,
            _ => return None,
        })
    }
}

/// How the signing time is to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: signing time is the signer's claim; trust comes from certificate
    /// validity now (or an RFC 3161 timestamp).
    X509,
    /// `notary.x509.signingAuthority`: the signing authority vouches for the time.
    SigningAuthority,
}

/// The signed artifact as the payload describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetArtifact {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// A parsed envelope whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct Envelope {
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    pub algorithm: Algorithm,
    pub scheme: SigningScheme,
    /// `io.cncf.notary.signingTime` (the signer's claim).
    pub signing_time: Option<OffsetDateTime>,
    /// `io.cncf.notary.authenticSigningTime` (signingAuthority scheme).
    pub authentic_signing_time: Option<OffsetDateTime>,
    /// `io.cncf.notary.expiry`.
    pub expiry: Option<OffsetDateTime>,
    /// The `x5c` chain as DER, leaf first.
    pub chain: Vec<Vec<u8>>,
    pub signing_agent: Option<String>,
    /// `io.cncf.notary.timestampSignature`: an RFC 3161 timestamp token (DER) over the
    /// signature, if the signer had one made.
    pub timestamp: Option<Vec<u8>>,
    pub target: TargetArtifact,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("envelope is not a flattened JWS JSON object: {0}")]
    NotJws(serde_json::Error),
    #[error("envelope field '{0}' is not unpadded base64url")]
    Base64(&'static str),
    #[error("protected header is not a JSON object: {0}")]
    HeaderNotJson(serde_json::Error),
    #[error("protected header field '{0}' is missing")]
    Missing(&'static str),
    #[error("protected header field '{field}' has the wrong type")]
    WrongType { field: String },
    #[error("algorithm '{0}' is not allowed (PS256, PS384, PS512, ES256, ES384, ES512)")]
    Algorithm(String),
    #[error("content type '{0}' is not {NOTARY_PAYLOAD}")]
    ContentType(String),
    #[error("signing scheme '{0}' is not supported (notary.x509, notary.x509.signingAuthority)")]
    Scheme(String),
    #[error("critical header '{0}' is not understood by bonded")]
    UnknownCritical(String),
    #[error("header '{0}' must be listed in 'crit'")]
    NotCritical(&'static str),
    #[error("header '{0}' is listed in 'crit' but absent")]
    CriticalAbsent(String),
    #[error("'{field}' is not an RFC 3339 time: '{value}'")]
    Time { field: &'static str, value: String },
    #[error("the signature expires ({}) no later than it was signed ({}): notation refuses such an envelope", crate::timefmt::rfc3339(*.expiry), crate::timefmt::rfc3339(*.signed))]
    ExpiryBeforeSigning {
        expiry: OffsetDateTime,
        signed: OffsetDateTime,
    },
    #[error("signature envelope type '{0}' is not supported (application/jose+json or application/cose)")]
    MediaType(String),
    #[error("envelope is not a tagged COSE_Sign1 message: {0}")]
    NotCose(String),
    #[error(
        "the timestamp countersignature (io.cncf.notary.timestampSignature) is unreadable: {0}"
    )]
    Timestamp(String),
    #[error("unprotected header has no x5c certificate chain")]
    NoChain,
    #[error("the x5c chain has {0} certificates; at most {MAX_CHAIN_LENGTH} are read")]
    ChainTooLong(usize),
    #[error("x5c certificate {0} is not standard base64")]
    ChainBase64(usize),
    #[error("payload is not a Notary payload: {0}")]
    Payload(serde_json::Error),
    #[error("the signing key ({key}) requires {expected}, but the envelope says {actual}")]
    AlgorithmMismatch {
        key: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("the signing key ({0}) is not one the Notary Project allows")]
    UnsupportedKey(String),
    #[error("signature does not verify with the leaf certificate's key")]
    BadSignature,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    payload: String,
    protected: String,
    header: Unprotected,
    signature: String,
}

#[derive(Deserialize)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
    #[serde(rename = "io.cncf.notary.signingAgent", default)]
    signing_agent: Option<String>,
    /// An RFC 3161 timestamp token over the signature, base64.
    #[serde(rename = "io.cncf.notary.timestampSignature", default)]
    timestamp_signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: TargetArtifact,
}

/// Most certificates an x5c chain may hold (leaf, intermediates, root). Real chains have
/// two to four; each is parsed and checked, so the count is bounded.
pub const MAX_CHAIN_LENGTH: usize = 10;

const SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";

fn b64url(field: &'static str, s: &str) -> Result<Vec<u8>, EnvelopeError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| EnvelopeError::Base64(field))
}

fn time_field(
    header: &serde_json::Map<String, serde_json::Value>,
    field: &'static str,
) -> Result<Option<OffsetDateTime>, EnvelopeError> {
    match header.get(field) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => {
            OffsetDateTime::parse(s, &Rfc3339)
                .map(Some)
                .map_err(|_| EnvelopeError::Time {
                    field,
                    value: s.clone(),
                })
        }
        Some(_) => Err(EnvelopeError::WrongType {
            field: field.to_string(),
        }),
    }
}

/// Parses an envelope and checks its headers. The signature is checked by
/// [`Envelope::verify_signature`] once the leaf certificate is known to be acceptable.
pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let jws: Flattened = serde_json::from_slice(bytes).map_err(EnvelopeError::NotJws)?;
    let header_bytes = b64url("protected", &jws.protected)?;
    let payload_bytes = b64url("payload", &jws.payload)?;
    let signature = b64url("signature", &jws.signature)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header_bytes).map_err(EnvelopeError::HeaderNotJson)?;
    if jws.header.x5c.len() > MAX_CHAIN_LENGTH {
        return Err(EnvelopeError::ChainTooLong(jws.header.x5c.len()));
    }
    let chain = jws
        .header
        .x5c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            STANDARD
                .decode(c)
                .map_err(|_| EnvelopeError::ChainBase64(i))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let timestamp = match &jws.header.timestamp_signature {
        None => None,
        Some(t) if t.len() > 4 * super::timestamp::MAX_TOKEN / 3 + 4 => {
            return Err(EnvelopeError::Timestamp("it is too large".into()))
        }
        Some(t) => Some(
            STANDARD
                .decode(t)
                .map_err(|_| EnvelopeError::Timestamp("it is not standard base64".into()))?,
        ),
    };
    let mut signing_input = Vec::with_capacity(jws.protected.len() + 1 + jws.payload.len());
    signing_input.extend_from_slice(jws.protected.as_bytes());
    signing_input.push(b'.');
    signing_input.extend_from_slice(jws.payload.as_bytes());
    from_parts(Parts {
        header,
        payload: payload_bytes,
        signing_input,
        signature,
        chain,
        signing_agent: jws.header.signing_agent,
        timestamp,
    })
}

/// The media type of a COSE_Sign1 Notary envelope.
pub const COSE_ENVELOPE: &str = "application/cose";

/// The envelope media types Notary signatures come in, and bonded verifies.
pub const ENVELOPE_TYPES: [&str; 2] = [super::JWS_ENVELOPE, COSE_ENVELOPE];

/// Parses a Notary envelope of `media_type`: JWS ([`parse`]) or COSE ([`parse_cose`]).
pub fn parse_as(media_type: &str, bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    match media_type {
        super::JWS_ENVELOPE => parse(bytes),
        COSE_ENVELOPE => parse_cose(bytes),
        other => Err(EnvelopeError::MediaType(other.to_string())),
    }
}

/// The COSE x5chain header label (RFC 9360).
const X5CHAIN: i64 = 33;

/// Parses a COSE_Sign1 envelope (tagged, as the Notary Project writes it) and checks its
/// headers by the same rules as a JWS: the protected header's algorithm, content type,
/// critical headers, signing scheme and times (CBOR tag 1 datetimes); `x5chain`, the
/// signing agent and any timestamp countersignature from the unprotected header. The
/// signature covers the Sig_structure over the protected header's original bytes.
pub fn parse_cose(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    use coset::{iana, Label, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable};
    use serde_json::Value as J;
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| EnvelopeError::NotCose(e.to_string()))?;
    let p = &sign1.protected.header;
    let mut header = serde_json::Map::new();
    let alg = match &p.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) => match a {
            iana::Algorithm::PS256 => "PS256",
            iana::Algorithm::PS384 => "PS384",
            iana::Algorithm::PS512 => "PS512",
            iana::Algorithm::ES256 => "ES256",
            iana::Algorithm::ES384 => "ES384",
            iana::Algorithm::ES512 => "ES512",
            other => return Err(EnvelopeError::Algorithm(format!("{other:?}"))),
        },
        Some(other) => return Err(EnvelopeError::Algorithm(format!("{other:?}"))),
        None => return Err(EnvelopeError::Missing("alg")),
    };
    header.insert("alg".into(), J::String(alg.into()));
    match &p.content_type {
        Some(RegisteredLabel::Text(t)) => {
            header.insert("cty".into(), J::String(t.clone()));
        }
        Some(other) => return Err(EnvelopeError::ContentType(format!("{other:?}"))),
        None => {}
    }
    let crit: Vec<J> = p
        .crit
        .iter()
        .map(|c| match c {
            RegisteredLabelWithPrivate::Text(t) => J::String(t.clone()),
            RegisteredLabelWithPrivate::Assigned(a) => J::String(format!("{}", *a as i64)),
            RegisteredLabelWithPrivate::PrivateUse(n) => J::String(n.to_string()),
        })
        .collect();
    if !crit.is_empty() {
        header.insert("crit".into(), J::Array(crit));
    }
    for (label, value) in &p.rest {
        let Label::Text(name) = label else {
            continue;
        };
        let v = match value {
            coset::cbor::value::Value::Text(t) => J::String(t.clone()),
            // A datetime as CBOR tag 1 (seconds since the epoch), as RFC 3339 for the rules.
            coset::cbor::value::Value::Tag(1, inner) => {
                let secs = match inner.as_ref() {
                    coset::cbor::value::Value::Integer(i) => i64::try_from(*i).ok(),
                    coset::cbor::value::Value::Float(f) if f.is_finite() => Some(f.trunc() as i64),
                    _ => None,
                };
                let t = secs
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                    .ok_or_else(|| EnvelopeError::WrongType {
                        field: name.clone(),
                    })?;
                J::String(t.format(&Rfc3339).map_err(|_| EnvelopeError::WrongType {
                    field: name.clone(),
                })?)
            }
            // Anything else keeps its place (so a critical header is present) but is of
            // no type the rules accept for a known field.
            _ => J::Null,
        };
        header.insert(name.clone(), v);
    }
    let payload = sign1
        .payload
        .clone()
        .ok_or(EnvelopeError::Missing("payload"))?;
    let u = &sign1.unprotected;
    let mut chain = Vec::new();
    let mut signing_agent = None;
    let mut timestamp = None;
    for (label, value) in &u.rest {
        match (label, value) {
            (Label::Int(X5CHAIN), coset::cbor::value::Value::Bytes(one)) => {
                chain = vec![one.clone()]
            }
            (Label::Int(X5CHAIN), coset::cbor::value::Value::Array(items)) => {
                if items.len() > MAX_CHAIN_LENGTH {
                    return Err(EnvelopeError::ChainTooLong(items.len()));
                }
                chain = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match c {
                        coset::cbor::value::Value::Bytes(b) => Ok(b.clone()),
                        _ => Err(EnvelopeError::ChainBase64(i)),
                    })
                    .collect::<Result<_, _>>()?;
            }
            (Label::Text(t), coset::cbor::value::Value::Text(agent))
                if t == "io.cncf.notary.signingAgent" =>
            {
                signing_agent = Some(agent.clone())
            }
            (Label::Text(t), coset::cbor::value::Value::Bytes(tok))
                if t == "io.cncf.notary.timestampSignature" =>
            {
                if tok.len() > super::timestamp::MAX_TOKEN {
                    return Err(EnvelopeError::Timestamp("it is too large".into()));
                }
                timestamp = Some(tok.clone())
            }
            _ => {}
        }
    }
    from_parts(Parts {
        header,
        signing_input: sign1.tbs_data(b""),
        payload,
        signature: sign1.signature.clone(),
        chain,
        signing_agent,
        timestamp,
    })
}

/// What either envelope format decodes to, before the Notary header rules are applied:
/// the protected header as a JSON-like map (COSE's translated: algorithm names, times as
/// RFC 3339), the payload, what the signature covers, and the unprotected parts.
struct Parts {
    header: serde_json::Map<String, serde_json::Value>,
    payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    chain: Vec<Vec<u8>>,
    signing_agent: Option<String>,
    timestamp: Option<Vec<u8>>,
}

/// The Notary Project's header rules, the same for JWS and COSE.
fn from_parts(parts: Parts) -> Result<Envelope, EnvelopeError> {
    let Parts {
        header,
        payload: payload_bytes,
        signing_input,
        signature,
        chain,
        signing_agent,
        timestamp,
    } = parts;
    let text = |field: &'static str| -> Result<&str, EnvelopeError> {
        match header.get(field) {
            Some(serde_json::Value::String(s)) => Ok(s),
            Some(_) => Err(EnvelopeError::WrongType {
                field: field.to_string(),
            }),
            None => Err(EnvelopeError::Missing(field)),
        }
    };
    let alg = text("alg")?;
    let algorithm = Algorithm::parse(alg).ok_or_else(|| EnvelopeError::Algorithm(alg.into()))?;
    let cty = text("cty")?;
    if cty != NOTARY_PAYLOAD {
        return Err(EnvelopeError::ContentType(cty.into()));
    }
    let scheme = match text(SCHEME)? {
        "notary.x509" => SigningScheme::X509,
        "notary.x509.signingAuthority" => SigningScheme::SigningAuthority,
        other => return Err(EnvelopeError::Scheme(other.into())),
    };
    let crit: Vec<String> = match header.get("crit") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or(EnvelopeError::WrongType {
                        field: "crit".into(),
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(EnvelopeError::WrongType {
                field: "crit".into(),
            })
        }
        None => return Err(EnvelopeError::Missing("crit")),
    };
    // Every critical header must be one bonded understands and must be present; plugin
    // headers are understood to mean "a plugin must verify this", which bonded cannot.
    for c in &crit {
        if ![SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY].contains(&c.as_str()) {
            return Err(EnvelopeError::UnknownCritical(c.clone()));
        }
        if !header.contains_key(c) {
            return Err(EnvelopeError::CriticalAbsent(c.clone()));
        }
    }
    let critical = |h: &'static str| crit.iter().any(|c| c == h);
    if !critical(SCHEME) {
        return Err(EnvelopeError::NotCritical(SCHEME));
    }
    let expiry = time_field(&header, EXPIRY)?;
    if expiry.is_some() && !critical(EXPIRY) {
        return Err(EnvelopeError::NotCritical(EXPIRY));
    }
    let signing_time = time_field(&header, SIGNING_TIME)?;
    let authentic_signing_time = time_field(&header, AUTHENTIC_SIGNING_TIME)?;
    match scheme {
        SigningScheme::X509 if signing_time.is_none() => {
            return Err(EnvelopeError::Missing(SIGNING_TIME))
        }
        SigningScheme::SigningAuthority => {
            if authentic_signing_time.is_none() {
                return Err(EnvelopeError::Missing(AUTHENTIC_SIGNING_TIME));
            }
            if !critical(AUTHENTIC_SIGNING_TIME) {
                return Err(EnvelopeError::NotCritical(AUTHENTIC_SIGNING_TIME));
            }
        }
        _ => {}
    }
    // As notation-core-go: an expiry must come after the signing time.
    if let (Some(expiry), Some(signed)) = (expiry, signing_time.or(authentic_signing_time)) {
        if expiry <= signed {
            return Err(EnvelopeError::ExpiryBeforeSigning { expiry, signed });
        }
    }
    if chain.is_empty() {
        return Err(EnvelopeError::NoChain);
    }
    let payload: Payload =
        serde_json::from_slice(&payload_bytes).map_err(EnvelopeError::Payload)?;
    Ok(Envelope {
        signing_input,
        signature,
        algorithm,
        scheme,
        signing_time,
        authentic_signing_time,
        expiry,
        chain,
        signing_agent,
        timestamp,
        target: payload.target_artifact,
    })
}

impl Envelope {
    /// The signature's bytes (what a timestamp countersignature covers).
    pub fn signature_bytes(&self) -> &[u8] {
        &self.signature
    }

    /// Checks that the algorithm is the one tied to the leaf's key and that the signature
    /// verifies with that key.
    pub fn verify_signature(&self, leaf: &CertInfo) -> Result<(), EnvelopeError> {
        let expected = Algorithm::for_key(&leaf.key)
            .ok_or_else(|| EnvelopeError::UnsupportedKey(leaf.key.to_string()))?;
        if expected != self.algorithm {
            return Err(EnvelopeError::AlgorithmMismatch {
                key: leaf.key.to_string(),
                expected: expected.as_str(),
                actual: self.algorithm.as_str(),
            });
        }
        use ring::signature as sig;
        let ring_alg: &dyn sig::VerificationAlgorithm = match self.algorithm {
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::ES512 => return self.verify_es512(&leaf.public_key),
        };
        sig::UnparsedPublicKey::new(ring_alg, &leaf.public_key)
            .verify(&self.signing_input, &self.signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    fn verify_es512(&self, point: &[u8]) -> Result<(), EnvelopeError> {
        use p521::ecdsa::signature::Verifier as _;
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map_err(|_| EnvelopeError::BadSignature)?;
        let signature = p521::ecdsa::Signature::from_slice(&self.signature)
            .map_err(|_| EnvelopeError::BadSignature)?;
        key.verify(&self.signing_input, &signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }
}
