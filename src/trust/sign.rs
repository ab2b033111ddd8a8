//! Producing Notary Project JWS signatures, in the shape notation produces: sorted
//! protected header with `crit`, `cty`, signing scheme `notary.x509` and signing time; `x5c`
//! and signing agent unprotected; payload `{"targetArtifact": descriptor}`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::envelope::{Algorithm, TargetArtifact};
use super::NOTARY_PAYLOAD;

/// A private key that can make Notary signatures.
pub enum SigningKey {
    Ecdsa(EcdsaKeyPair, Algorithm),
    Rsa(RsaKeyPair, Algorithm),
    /// A key that stays where it is kept (a PKCS#11 token): it signs, bonded never holds
    /// it.
    External(Box<dyn ExternalKey>),
}

/// A key held outside the process. The device is I/O, so its code lives with the CLI;
/// `trust` only asks it to sign.
pub trait ExternalKey: Send + Sync {
    /// The JWS/COSE algorithm its signatures are for.
    fn algorithm(&self) -> Algorithm;
    /// A signature of `message` in the algorithm's JWS form: ECDSA `r || s` of fixed
    /// width, RSASSA-PSS with the hash's length of salt.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
    /// Where it is, for messages.
    fn describe(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the private key is not a PKCS#8 P-256, P-384 or RSA (2048, 3072, 4096 bits) key")]
    UnsupportedKey,
    #[error("signing failed")]
    Signing,
    #[error("the EC PRIVATE KEY (SEC1) cannot be used: {0}")]
    Sec1(String),
    #[error("the signing time cannot be written as RFC 3339: {0}")]
    Time(time::error::Format),
    #[error("not a JWS envelope: {0}")]
    Envelope(String),
    #[error("the key could not sign: {0}")]
    External(String),
}

impl SigningKey {
    /// Reads a PKCS#8 DER private key: P-256 (ES256), P-384 (ES384), or RSA whose size fixes
    /// the algorithm (PS256/PS384/PS512).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SignError> {
        let rng = SystemRandom::new();
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            return Ok(SigningKey::Ecdsa(k, Algorithm::ES256));
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng) {
            return Ok(SigningKey::Ecdsa(k, Algorithm::ES384));
        }
        let k = RsaKeyPair::from_pkcs8(der).map_err(|_| SignError::UnsupportedKey)?;
        let alg = match k.public().modulus_len() * 8 {
            2048 => Algorithm::PS256,
            3072 => Algorithm::PS384,
            4096 => Algorithm::PS512,
            _ => return Err(SignError::UnsupportedKey),
        };
        Ok(SigningKey::Rsa(k, alg))
    }

    /// Reads a SEC1 `ECPrivateKey` (RFC 5915, what `openssl ecparam -genkey` writes as
    /// `EC PRIVATE KEY`): P-256 or P-384, named by its parameters, with its public key.
    pub fn from_sec1(der: &[u8]) -> Result<Self, SignError> {
        use x509_parser::asn1_rs::{Any, BitString, FromDer, Integer, OctetString, Oid, Sequence};
        let bad = |why: &str| SignError::Sec1(why.to_string());
        let (_, key) = Sequence::from_der(der).map_err(|_| bad("not a DER ECPrivateKey"))?;
        let (rest, version) = Integer::from_der(&key.content).map_err(|_| bad("no version"))?;
        if version.as_u32() != Ok(1) {
            return Err(bad("its version is not 1"));
        }
        let (mut rest, private) = OctetString::from_der(rest).map_err(|_| bad("no private key"))?;
        let (mut curve, mut public) = (None, None);
        while !rest.is_empty() {
            let (next, field) = Any::from_der(rest).map_err(|_| bad("a malformed field"))?;
            match field.tag().0 {
                0 => {
                    curve = Oid::from_der(field.data)
                        .ok()
                        .map(|(_, o)| o.to_id_string())
                }
                1 => {
                    public = BitString::from_der(field.data)
                        .ok()
                        .map(|(_, b)| b.data.to_vec())
                }
                _ => {}
            }
            rest = next;
        }
        let alg: (&'static sig::EcdsaSigningAlgorithm, Algorithm) = match curve.as_deref() {
            Some("1.2.840.10045.3.1.7") => {
                (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, Algorithm::ES256)
            }
            Some("1.3.132.0.34") => (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, Algorithm::ES384),
            Some(other) => return Err(bad(&format!("curve {other} is not P-256 or P-384"))),
            None => return Err(bad("it does not name its curve")),
        };
        let public = public.ok_or_else(|| bad("it does not hold its public key"))?;
        let k = EcdsaKeyPair::from_private_key_and_public_key(
            alg.0,
            private.as_ref(),
            &public,
            &SystemRandom::new(),
        )
        .map_err(|_| bad("its private and public keys do not belong together"))?;
        Ok(SigningKey::Ecdsa(k, alg.1))
    }

    /// Reads a PKCS#1 `RSAPrivateKey` (`RSA PRIVATE KEY`) of 2048, 3072 or 4096 bits.
    pub fn from_pkcs1(der: &[u8]) -> Result<Self, SignError> {
        let k = RsaKeyPair::from_der(der).map_err(|_| SignError::UnsupportedKey)?;
        let alg = match k.public().modulus_len() * 8 {
            2048 => Algorithm::PS256,
            3072 => Algorithm::PS384,
            4096 => Algorithm::PS512,
            _ => return Err(SignError::UnsupportedKey),
        };
        Ok(SigningKey::Rsa(k, alg))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Ecdsa(_, a) | SigningKey::Rsa(_, a) => *a,
            SigningKey::External(k) => k.algorithm(),
        }
    }

    /// The public key as x509 SubjectPublicKeyInfo's bit string holds it; `None` for an
    /// external key (see [`Self::matches`]).
    pub fn public_key(&self) -> Option<&[u8]> {
        match self {
            SigningKey::Ecdsa(k, _) => Some(k.public_key().as_ref()),
            SigningKey::Rsa(k, _) => Some(k.public_key().as_ref()),
            SigningKey::External(_) => None,
        }
    }

    /// Whether this is the private key of `public` (the raw key of a certificate:
    /// the SEC1 point, or PKCS#1 for RSA): compared for a key in memory; for an external
    /// one, a signature it makes over a fresh challenge is verified with `public`.
    pub fn matches(&self, public: &[u8]) -> Result<bool, SignError> {
        if let Some(own) = self.public_key() {
            return Ok(own == public);
        }
        let mut challenge = [0u8; 32];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut challenge)
            .map_err(|_| SignError::Signing)?;
        let signature = self.sign(&challenge)?;
        let alg: &dyn sig::VerificationAlgorithm = match self.algorithm() {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            _ => &sig::RSA_PSS_2048_8192_SHA512,
        };
        Ok(sig::UnparsedPublicKey::new(alg, public)
            .verify(&challenge, &signature)
            .is_ok())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::External(k) => k.sign(message).map_err(SignError::External),
            SigningKey::Ecdsa(k, _) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signing),
            SigningKey::Rsa(k, alg) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    _ => &sig::RSA_PSS_SHA512,
                };
                let mut out = vec![0u8; k.public().modulus_len()];
                k.sign(padding, &rng, message, &mut out)
                    .map_err(|_| SignError::Signing)?;
                Ok(out)
            }
        }
    }
}

/// What to sign and how.
pub struct SignRequest<'a> {
    pub target: &'a TargetArtifact,
    /// Certificate chain (DER), leaf first, ending with the root.
    pub chain: &'a [Vec<u8>],
    pub signing_time: OffsetDateTime,
    pub expiry: Option<OffsetDateTime>,
    pub signing_agent: &'a str,
}

fn rfc3339(t: OffsetDateTime) -> Result<String, SignError> {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .map_err(SignError::Time)
}

/// Makes a flattened JWS envelope (the bytes of an `application/jose+json` layer).
pub fn sign(key: &SigningKey, req: &SignRequest<'_>) -> Result<Vec<u8>, SignError> {
    let mut crit = vec!["io.cncf.notary.signingScheme"];
    let mut header = json!({
        "alg": key.algorithm().as_str(),
        "cty": NOTARY_PAYLOAD,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": rfc3339(req.signing_time)?,
    });
    if let Some(expiry) = req.expiry {
        crit.push("io.cncf.notary.expiry");
        header["io.cncf.notary.expiry"] = json!(rfc3339(expiry)?);
    }
    header["crit"] = json!(crit);
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json"));
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({ "targetArtifact": req.target })).expect("json"));
    let signature = key.sign(format!("{protected}.{payload}").as_bytes())?;
    let envelope = json!({
        "payload": payload,
        "protected": protected,
        "header": {
            "x5c": req.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
            "io.cncf.notary.signingAgent": req.signing_agent,
        },
        "signature": URL_SAFE_NO_PAD.encode(signature),
    });
    Ok(serde_json::to_vec(&envelope).expect("json"))
}

/// `envelope` (a JWS [`sign`] made) with an RFC 3161 timestamp token over its signature in
/// the unprotected header (`io.cncf.notary.timestampSignature`), as notation adds it. The
/// signed parts are unchanged.
pub fn with_timestamp(envelope: &[u8], token: &[u8]) -> Result<Vec<u8>, SignError> {
    let mut jws: serde_json::Value =
        serde_json::from_slice(envelope).map_err(|e| SignError::Envelope(e.to_string()))?;
    jws["header"]["io.cncf.notary.timestampSignature"] = json!(STANDARD.encode(token));
    Ok(serde_json::to_vec(&jws).expect("json"))
}

/// A COSE_Sign1 protected header as the Notary Project encodes it, byte for byte as
/// notation-core-go does (vector V20): `alg`, `crit` (the signing scheme, the expiry if
/// any, then the caller's critical extras), the content type, then the text-labelled
/// entries in CBOR's length-first canonical order, times as tag 1 epoch seconds.
/// `extra`: further signed attributes (label, value, critical).
pub fn cose_protected(
    algorithm: super::envelope::Algorithm,
    signing_time: OffsetDateTime,
    expiry: Option<OffsetDateTime>,
    extra: &[(&str, &str, bool)],
) -> coset::ProtectedHeader {
    use super::envelope::Algorithm as A;
    use coset::cbor::value::Value;
    use coset::{iana, Label, RegisteredLabel, RegisteredLabelWithPrivate};
    let alg = match algorithm {
        A::PS256 => iana::Algorithm::PS256,
        A::PS384 => iana::Algorithm::PS384,
        A::PS512 => iana::Algorithm::PS512,
        A::ES256 => iana::Algorithm::ES256,
        A::ES384 => iana::Algorithm::ES384,
        A::ES512 => iana::Algorithm::ES512,
    };
    let mut crit = vec!["io.cncf.notary.signingScheme".to_string()];
    if expiry.is_some() {
        crit.push("io.cncf.notary.expiry".into());
    }
    crit.extend(extra.iter().filter(|e| e.2).map(|e| e.0.to_string()));
    let epoch =
        |t: OffsetDateTime| Value::Tag(1, Box::new(Value::Integer(t.unix_timestamp().into())));
    let mut rest: Vec<(String, Value)> = extra
        .iter()
        .map(|(k, v, _)| (k.to_string(), Value::Text(v.to_string())))
        .collect();
    if let Some(e) = expiry {
        rest.push(("io.cncf.notary.expiry".into(), epoch(e)));
    }
    rest.push(("io.cncf.notary.signingTime".into(), epoch(signing_time)));
    rest.push((
        "io.cncf.notary.signingScheme".into(),
        Value::Text("notary.x509".into()),
    ));
    // Length-first canonical order of the text labels (RFC 7049 section 3.9), as
    // notation's encoder writes them: shorter first, then bytewise.
    rest.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
    coset::ProtectedHeader {
        original_data: None,
        header: coset::Header {
            alg: Some(RegisteredLabelWithPrivate::Assigned(alg)),
            crit: crit
                .into_iter()
                .map(RegisteredLabelWithPrivate::Text)
                .collect(),
            content_type: Some(RegisteredLabel::Text(NOTARY_PAYLOAD.into())),
            rest: rest.into_iter().map(|(k, v)| (Label::Text(k), v)).collect(),
            ..Default::default()
        },
    }
}

/// Makes a COSE_Sign1 envelope (`application/cose`), tagged, as notation's
/// `--signature-format cose` does: the protected header of [`cose_protected`], the payload
/// embedded, `x5chain` and the signing agent unprotected.
pub fn sign_cose(key: &SigningKey, req: &SignRequest<'_>) -> Result<Vec<u8>, SignError> {
    use coset::cbor::value::Value;
    use coset::{Label, TaggedCborSerializable};
    let payload = serde_json::to_vec(&json!({ "targetArtifact": req.target })).expect("json");
    let signing_time = req
        .signing_time
        .replace_nanosecond(0)
        .unwrap_or(req.signing_time);
    let expiry = req.expiry.map(|e| e.replace_nanosecond(0).unwrap_or(e));
    let protected = cose_protected(key.algorithm(), signing_time, expiry, &[]);
    let unprotected = coset::Header {
        rest: vec![
            (
                Label::Int(33),
                Value::Array(req.chain.iter().map(|c| Value::Bytes(c.clone())).collect()),
            ),
            (
                Label::Text("io.cncf.notary.signingAgent".into()),
                Value::Text(req.signing_agent.into()),
            ),
        ],
        ..Default::default()
    };
    let mut sign1 = coset::CoseSign1 {
        protected,
        unprotected,
        payload: Some(payload),
        signature: Vec::new(),
    };
    let tbs = sign1.tbs_data(b"");
    sign1.signature = key.sign(&tbs)?;
    sign1
        .to_tagged_vec()
        .map_err(|e| SignError::Envelope(e.to_string()))
}

/// `envelope` (a COSE_Sign1) with an RFC 3161 timestamp token over its signature in the
/// unprotected header (`io.cncf.notary.timestampSignature`); the signed parts, protected
/// header bytes included, are unchanged.
pub fn with_timestamp_cose(envelope: &[u8], token: &[u8]) -> Result<Vec<u8>, SignError> {
    use coset::cbor::value::Value;
    use coset::{Label, TaggedCborSerializable};
    let mut sign1 = coset::CoseSign1::from_tagged_slice(envelope)
        .map_err(|e| SignError::Envelope(e.to_string()))?;
    sign1.unprotected.rest.push((
        Label::Text("io.cncf.notary.timestampSignature".into()),
        Value::Bytes(token.to_vec()),
    ));
    sign1
        .to_tagged_vec()
        .map_err(|e| SignError::Envelope(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// V20: the protected header notation-core-go's COSE conformance test expects,
    /// byte for byte (PS384, an expiry, two extended attributes, one critical).
    #[test]
    fn cose_protected_headers_match_notation_byte_for_byte() {
        let Some(v) = crate::test_vectors::dir() else {
            return;
        };
        let c: serde_json::Value = serde_json::from_slice(
            &std::fs::read(v.join("notation-core-go/cose-conformance.json")).unwrap(),
        )
        .unwrap();
        let at = |k: &str| OffsetDateTime::from_unix_timestamp(c[k].as_i64().unwrap()).unwrap();
        let h = cose_protected(
            super::super::envelope::Algorithm::PS384,
            at("signingTime"),
            Some(at("expiry")),
            &[
                ("signedKey1", "signedValue1", false),
                ("signedCritKey1", "signedCritValue1", true),
            ],
        );
        use coset::CborSerializable as _;
        let ours = h.header.to_vec().unwrap();
        let want = hex::decode(c["protectedHeaders"]["cborHex"].as_str().unwrap()).unwrap();
        assert_eq!(hex::encode_upper(&ours), hex::encode_upper(&want));
    }
}
