//! RFC 3161 timestamps, verified offline: a time-stamping authority's signed statement
//! that some bytes (here: a signature) existed at `genTime`. Format-neutral: Sigstore
//! bundles carry them (`timestampVerificationData`), and Notary signatures will
//! (`io.cncf.notary.timestampSignature`).
//!
//! What must hold: the token is a CMS SignedData over a TSTInfo; its message imprint is
//! the hash of exactly the bytes it is said to cover; its one signer's signed attributes
//! name the TSTInfo content type and its digest; the signature over them verifies with a
//! certificate that leads (rustls-webpki, at `genTime`, extended key usage timeStamping
//! required) to a trusted authority whose validity holds `genTime`.
//!
//! Pure functions; RustCrypto's `x509-tsp` and `cms` parse the DER.

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode as _, Encode as _};
use time::OffsetDateTime;

use super::certs::{self, CertInfo};
use super::cosign::PublicKey;
use super::sigstore::{HashAlgorithm, Validity};

/// Largest token read.
pub const MAX_TOKEN: usize = 64 * 1024;
/// Most certificates a token may embed.
const MAX_EMBEDDED: usize = 10;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_CT_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const ID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const ID_SIGNING_CERTIFICATE: &str = "1.2.840.113549.1.9.16.2.12";
const ID_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";

/// The TLVs inside a constructed DER value.
fn items(any: &der::Any) -> Result<Vec<der::Any>, String> {
    use der::Reader as _;
    let mut r = der::SliceReader::new(any.value()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while !r.is_finished() {
        out.push(r.decode::<der::Any>().map_err(|e| e.to_string())?);
        if out.len() > 64 {
            return Err("too many elements".into());
        }
    }
    Ok(out)
}

/// Which certificate the signer names in its signed attributes (RFC 5035
/// signingCertificateV2, or RFC 2634's SHA-1 signingCertificate): the hash algorithm and
/// the first ESSCertID's hash.
#[derive(Debug, Clone)]
enum SigningCertId {
    Sha1(Vec<u8>),
    Hashed(HashAlgorithm, Vec<u8>),
}

fn signing_cert_id(oid: &str, value: &der::Any) -> Result<SigningCertId, String> {
    let bad = || "the timestamp's signing-certificate attribute is malformed".to_string();
    let certs = items(value)?.into_iter().next().ok_or_else(bad)?;
    let first = items(&certs)?.into_iter().next().ok_or_else(bad)?;
    let id = items(&first)?;
    if oid == ID_SIGNING_CERTIFICATE {
        let hash = id.first().ok_or_else(bad)?;
        return Ok(SigningCertId::Sha1(hash.value().to_vec()));
    }
    // ESSCertIDv2: hashAlgorithm DEFAULT sha256, certHash.
    match id.as_slice() {
        [alg, hash, ..] if der::Tagged::tag(alg) == der::Tag::Sequence => {
            let oid = items(alg)?
                .into_iter()
                .next()
                .ok_or_else(bad)?
                .decode_as::<der::oid::ObjectIdentifier>()
                .map_err(|_| bad())?;
            Ok(SigningCertId::Hashed(hash_of(&oid)?, hash.value().to_vec()))
        }
        [hash, ..] => Ok(SigningCertId::Hashed(
            HashAlgorithm::Sha256,
            hash.value().to_vec(),
        )),
        [] => Err(bad()),
    }
}

impl SigningCertId {
    fn names(&self, cert: &[u8]) -> bool {
        match self {
            SigningCertId::Sha1(h) => {
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert).as_ref()
                    == h.as_slice()
            }
            SigningCertId::Hashed(alg, h) => alg.digest(cert) == *h,
        }
    }
}

/// The DER TimeStampReq (RFC 3161 section 2.4.1) asking for a timestamp over `covered`:
/// its SHA-256 as the message imprint, a random 64-bit `nonce`, and the signer's
/// certificate in the reply (`certReq`).
pub fn request(covered: &[u8], nonce: u64) -> Vec<u8> {
    use sha2::Digest as _;
    let imprint = x509_tsp::MessageImprint {
        hash_algorithm: cms::cert::x509::spki::AlgorithmIdentifier {
            oid: der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
            parameters: Some(der::asn1::Null.into()),
        },
        hashed_message: der::asn1::OctetString::new(sha2::Sha256::digest(covered).to_vec())
            .expect("32 bytes"),
    };
    // A positive INTEGER in DER's minimal form: no leading zero bytes, except one to keep
    // a set top bit from making it negative.
    let mut n: Vec<u8> = nonce
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if n.first().is_none_or(|b| b & 0x80 != 0) {
        n.insert(0, 0);
    }
    let req = x509_tsp::TimeStampReq {
        version: x509_tsp::TspVersion::V1,
        message_imprint: imprint,
        req_policy: None,
        nonce: Some(der::asn1::Int::new(&n).expect("an integer")),
        cert_req: true,
        extensions: None,
    };
    req.to_der().expect("a TimeStampReq encodes")
}

/// The nonce of a TimeStampResp's token, to compare with the request's.
pub fn nonce_of(bytes: &[u8]) -> Option<Vec<u8>> {
    let (_, _, tst) = decode(bytes).ok()?;
    let n = tst.nonce?;
    let b = n.as_bytes();
    // Compare as numbers: strip the sign byte.
    Some(b.iter().skip_while(|x| **x == 0).copied().collect())
}

/// A token's SignedData, its encapsulated TSTInfo's DER, and the TSTInfo parsed (nothing
/// verified yet).
fn decode(bytes: &[u8]) -> Result<(SignedData, der::asn1::OctetString, x509_tsp::TstInfo), String> {
    let ci = token(bytes)?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err("the timestamp token is not CMS SignedData".into());
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("the timestamp token's SignedData: {e}"))?;
    if sd.encap_content_info.econtent_type.to_string() != ID_CT_TST_INFO {
        return Err("the timestamp token does not hold a TSTInfo".into());
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("the timestamp token has no TSTInfo")?;
    let tst_der = der::asn1::OctetString::from_der(&econtent.to_der().map_err(|e| e.to_string())?)
        .map_err(|e| format!("the TSTInfo is not an OCTET STRING: {e}"))?;
    let tst = x509_tsp::TstInfo::from_der(tst_der.as_bytes())
        .map_err(|e| format!("the TSTInfo does not parse: {e}"))?;
    Ok((sd, tst_der, tst))
}

/// The TimeStampToken (ContentInfo, DER) of a TimeStampResp, what a signature envelope
/// carries; the bytes themselves when they are a bare token already.
pub fn token_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    token(bytes)?.to_der().map_err(|e| e.to_string())
}

/// A time-stamping authority a verifier trusts: its chain (signing certificate or
/// intermediates first, root last) and when it may be trusted.
#[derive(Debug, Clone)]
pub struct Authority {
    pub chain: Vec<Vec<u8>>,
    pub valid: Option<Validity>,
}

fn hash_of(oid: &der::oid::ObjectIdentifier) -> Result<HashAlgorithm, String> {
    match oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => Ok(HashAlgorithm::Sha256),
        "2.16.840.1.101.3.4.2.2" => Ok(HashAlgorithm::Sha384),
        "2.16.840.1.101.3.4.2.3" => Ok(HashAlgorithm::Sha512),
        other => Err(format!("hash algorithm {other} is not supported")),
    }
}

/// The token inside `bytes`: a TimeStampResp (status granted) or a bare TimeStampToken.
fn token(bytes: &[u8]) -> Result<ContentInfo, String> {
    if let Ok(resp) = x509_tsp::TimeStampResp::from_der(bytes) {
        // PKIStatus: 0 granted, 1 grantedWithMods; anything else is a refusal.
        if resp.status.status as u8 > 1 {
            return Err(format!(
                "the time-stamping authority refused (status {:?})",
                resp.status.status
            ));
        }
        return resp
            .time_stamp_token
            .ok_or_else(|| "the timestamp response holds no token".to_string());
    }
    ContentInfo::from_der(bytes).map_err(|e| format!("not an RFC 3161 timestamp: {e}"))
}

/// Verifies an RFC 3161 timestamp over `covered` against `authorities`; returns its
/// `genTime`.
pub fn verify(
    bytes: &[u8],
    covered: &[u8],
    authorities: &[Authority],
) -> Result<OffsetDateTime, String> {
    verify_with_accuracy(bytes, covered, authorities).map(|t| t.gen_time)
}

/// A verified timestamp: `genTime`, give or take `accuracy`, and the authority's chain
/// it was verified by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub gen_time: OffsetDateTime,
    pub accuracy: time::Duration,
    /// The TSA's signing certificate, then each issuer up to the trusted root (DER).
    pub chain: Vec<Vec<u8>>,
}

impl Verified {
    /// The earliest and latest the stamped moment can be.
    pub fn range(&self) -> (OffsetDateTime, OffsetDateTime) {
        (self.gen_time - self.accuracy, self.gen_time + self.accuracy)
    }
}

/// [`verify`], with the token's accuracy.
pub fn verify_with_accuracy(
    bytes: &[u8],
    covered: &[u8],
    authorities: &[Authority],
) -> Result<Verified, String> {
    if bytes.len() > MAX_TOKEN {
        return Err(format!("a timestamp is at most {MAX_TOKEN} bytes"));
    }
    let (sd, tst_der, tst) = decode(bytes)?;
    // The imprint: the hash of exactly the covered bytes.
    let imprint_alg = hash_of(&tst.message_imprint.hash_algorithm.oid)?;
    if tst.message_imprint.hashed_message.as_bytes() != imprint_alg.digest(covered).as_slice() {
        return Err("the timestamp covers other bytes than this signature".into());
    }
    let gen_time = OffsetDateTime::UNIX_EPOCH
        + time::Duration::try_from(tst.gen_time.to_unix_duration())
            .map_err(|_| "genTime is out of range".to_string())?;
    let accuracy = tst.accuracy.as_ref().map_or(time::Duration::ZERO, |a| {
        time::Duration::seconds(a.seconds.unwrap_or(0).min(i64::MAX as u64) as i64)
            + time::Duration::milliseconds(i64::from(a.millis.unwrap_or(0)))
            + time::Duration::microseconds(i64::from(a.micros.unwrap_or(0)))
    });
    // One signer, with signed attributes binding the TSTInfo.
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else {
        return Err(format!(
            "a timestamp token has one signer, not {}",
            signers.len()
        ));
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or("the timestamp's signer has no signed attributes")?;
    let digest_alg = hash_of(&si.digest_alg.oid)?;
    let mut content_type_ok = false;
    let mut digest_ok = false;
    let mut cert_id = None;
    for a in attrs.iter() {
        let oid = a.oid.to_string();
        let [value] = a.values.as_slice() else {
            return Err(format!("attribute {oid} must have one value"));
        };
        if oid == ID_CONTENT_TYPE {
            content_type_ok = value
                .decode_as::<der::oid::ObjectIdentifier>()
                .is_ok_and(|o| o.to_string() == ID_CT_TST_INFO);
        } else if oid == ID_SIGNING_CERTIFICATE_V2
            || (oid == ID_SIGNING_CERTIFICATE && cert_id.is_none())
        {
            cert_id = Some(signing_cert_id(&oid, value)?);
        } else if oid == ID_MESSAGE_DIGEST {
            digest_ok = value
                .decode_as::<der::asn1::OctetString>()
                .is_ok_and(|d| d.as_bytes() == digest_alg.digest(tst_der.as_bytes()).as_slice());
        }
    }
    if !content_type_ok || !digest_ok {
        return Err("the timestamp's signed attributes do not bind its TSTInfo".into());
    }
    // RFC 3161 (with RFC 5816): the signer names its certificate in a signed attribute,
    // so no other certificate with the same key can stand in for it.
    let cert_id = cert_id.ok_or(
        "the timestamp's signer names no signing certificate (signingCertificate or signingCertificateV2 attribute)",
    )?;
    let signed = attrs.to_der().map_err(|e| e.to_string())?;
    let signed_digest = digest_alg.digest(&signed);
    let signature = si.signature.as_bytes();
    let embedded: Vec<Vec<u8>> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => c.to_der().ok(),
                    _ => None,
                })
                .take(MAX_EMBEDDED)
                .collect()
        })
        .unwrap_or_default();
    let mut last = "no time-stamping authority is trusted".to_string();
    for auth in authorities {
        if auth.chain.is_empty() {
            continue;
        }
        if let Some(v) = &auth.valid {
            if !v.contains(gen_time) {
                last = "genTime is outside the time-stamping authority's validity".into();
                continue;
            }
        }
        // The signing certificate: the authority's own first certificate, or one the
        // token embeds that chains to the authority.
        let mut candidates = vec![auth.chain[0].clone()];
        candidates.extend(embedded.iter().filter(|e| **e != auth.chain[0]).cloned());
        for cert in candidates {
            let attempt = (|| {
                if !cert_id.names(&cert) {
                    return Err(
                        "the certificate is not the one the timestamp's signer names".to_string(),
                    );
                }
                let key = {
                    use x509_parser::prelude::FromDer as _;
                    let (_, c) = x509_parser::certificate::X509Certificate::from_der(&cert)
                        .map_err(|e| format!("a TSA certificate does not parse: {e}"))?;
                    PublicKey::from_spki(c.public_key().raw)?
                };
                super::sigstore::verify_prehash(&key, digest_alg, &signed_digest, signature)
                    .map_err(|_| "the timestamp's signature does not verify".to_string())?;
                // The path: this certificate, then what may lead from it to the anchor:
                // the authority's own intermediates and the other certificates embedded.
                let mut path = vec![CertInfo::parse(0, &cert).map_err(|e| e.to_string())?];
                let rest = auth.chain[..auth.chain.len() - 1]
                    .iter()
                    .chain(embedded.iter())
                    .filter(|d| **d != cert);
                for (i, der) in rest.enumerate() {
                    path.push(CertInfo::parse(i + 1, der).map_err(|e| e.to_string())?);
                }
                let anchor = auth.chain.last().expect("not empty").clone();
                certs::validate_path_for(&path, std::slice::from_ref(&anchor), gen_time, certs::Usage::TimeStamping)
                    .map_err(|e| format!("the TSA certificate does not lead to a trusted authority at genTime: {e:?}"))?;
                Ok(issuer_order(&path, anchor))
            })();
            match attempt {
                Ok(chain) => {
                    return Ok(Verified {
                        gen_time,
                        accuracy,
                        chain,
                    })
                }
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// The chain from `path[0]` to `anchor` by issuer names: each next certificate is the
/// one of `path` whose subject is the previous one's issuer, until the anchor's (the path
/// having been validated, this is the path rustls-webpki built). At most 10 long.
fn issuer_order(path: &[CertInfo], anchor: Vec<u8>) -> Vec<Vec<u8>> {
    use x509_parser::prelude::FromDer as _;
    let names = |der: &[u8]| -> Option<(Vec<u8>, Vec<u8>)> {
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
        Some((c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec()))
    };
    let Some((anchor_subject, _)) = names(&anchor) else {
        return vec![path[0].der.clone()];
    };
    let mut chain = vec![path[0].der.clone()];
    while chain.len() < 10 {
        let Some((_, issuer)) = names(chain.last().expect("not empty")) else {
            break;
        };
        if issuer == anchor_subject {
            chain.push(anchor);
            return chain;
        }
        let next = path[1..]
            .iter()
            .find(|c| !chain.contains(&c.der) && names(&c.der).is_some_and(|(s, _)| s == issuer));
        match next {
            Some(c) => chain.push(c.der.clone()),
            None => break,
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::sigstore::{parse_bundle, Content, TrustedRoot};

    /// The timestamp of a conformance bundle, the signature it covers, and its root.
    fn case(name: &str) -> Option<(Vec<u8>, Vec<u8>, TrustedRoot)> {
        let v = crate::test_vectors::dir()?;
        let d = v.join("cosign/conformance").join(name);
        let bundle = parse_bundle(&std::fs::read(d.join("bundle.sigstore.json")).unwrap()).unwrap();
        let root =
            TrustedRoot::parse(&std::fs::read(d.join("trusted_root.json")).unwrap()).unwrap();
        let signature = match bundle.content {
            Content::Message { signature, .. } | Content::Dsse { signature, .. } => signature,
        };
        Some((bundle.timestamps[0].clone(), signature, root))
    }

    /// The request's nonce is a minimal positive DER INTEGER (openssl's TSA rejects any
    /// other), for nonces with and without the top bit set, and zero.
    #[test]
    fn requests_encode_minimal_nonces() {
        for (nonce, want) in [
            (0x1234u64, vec![0x02, 0x02, 0x12, 0x34]),
            (0x80u64, vec![0x02, 0x02, 0x00, 0x80]),
            (0u64, vec![0x02, 0x01, 0x00]),
        ] {
            let req = request(b"x", nonce);
            assert!(
                req.windows(want.len()).any(|w| w == want.as_slice()),
                "{nonce:#x}: {}",
                hex::encode(&req)
            );
        }
    }

    /// Sigstore's staging TSA tokens (with and without the signer's certificate
    /// embedded) verify over their bundle's signature, at a genTime inside the signing
    /// certificate's ten minutes; and every way of making them lie fails.
    #[test]
    fn rfc3161_tokens_verify_over_their_signature_only() {
        for name in [
            "rekor2-happy-path",
            "rekor2-timestamp-with-embedded-cert",
            "rekor2-timestamp-without-embedded-cert",
        ] {
            let Some((token, signature, root)) = case(name) else {
                return;
            };
            let t =
                verify(&token, &signature, &root.tsas).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(t.year() >= 2025, "{name}: {t}");
            // Another signature: the imprint does not match.
            let mut other = signature.clone();
            other[10] ^= 1;
            assert!(verify(&token, &other, &root.tsas)
                .unwrap_err()
                .contains("other bytes"));
            // No authority, or one that was not valid then.
            assert!(verify(&token, &signature, &[]).is_err());
            let mut late = root.tsas.clone();
            for a in &mut late {
                a.valid = Some(Validity {
                    start: t + time::Duration::seconds(1),
                    end: None,
                });
            }
            assert!(verify(&token, &signature, &late)
                .unwrap_err()
                .contains("validity"));
            // Another authority (the root's Fulcio chain) does not vouch for it.
            let fulcio: Vec<Authority> = root
                .cas
                .iter()
                .map(|c| Authority {
                    chain: c.chain.clone(),
                    valid: None,
                })
                .collect();
            assert!(verify(&token, &signature, &fulcio).is_err());
            // A flipped byte of what is signed fails: the imprint inside the TSTInfo, the
            // genTime, the signature value (the token's last bytes). (Embedded
            // certificates are not signed, and the authority's own certificate is used.)
            let find = |needle: &[u8]| {
                token
                    .windows(needle.len())
                    .position(|w| w == needle)
                    .unwrap_or_else(|| panic!("{name}: not in the token"))
            };
            let imprint = find(&HashAlgorithm::Sha256.digest(&signature));
            let year = find(format!("{}", t.year()).as_bytes());
            for at in [imprint + 3, year + 3, token.len() - 5] {
                let mut bad = token.clone();
                bad[at] ^= 0x01;
                assert!(
                    verify(&bad, &signature, &root.tsas).is_err(),
                    "{name}: byte {at}"
                );
            }
        }
    }
}
