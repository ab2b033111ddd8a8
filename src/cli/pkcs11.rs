//! Signing keys in PKCS#11 tokens (hardware security modules, smart cards, SoftHSM),
//! named by RFC 7512 URIs: `--key 'pkcs11:token=T;object=O?module-path=/path/to/module.so'`.
//!
//! The private key never leaves the token: bonded finds it by the URI's attributes, logs
//! in with the PIN, and asks the token to sign (CKM_ECDSA over the digest for P-256 and
//! P-384 keys, CKM_RSA_PKCS_PSS for RSA), through the `cryptoki` crate. That the key
//! belongs to the certificate is proven by a signature over a fresh challenge, verified
//! with the certificate's key.
//!
//! The PIN, like a key's password, is never a flag: `BONDED_PKCS11_PIN`, the URI's
//! `pin-source` (a file), the terminal, or standard input when the registry's password
//! does not come from there. A `pin-value` in the URI is refused.

use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use sha2::Digest as _;

use crate::trust::envelope::Algorithm;
use crate::trust::sign::{ExternalKey, SigningKey};

/// The attributes of an RFC 7512 URI bonded uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub module_path: Option<String>,
    pub pin_source: Option<String>,
}

/// RFC 3986 percent-decoding.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| format!("'{s}' has a '%' not followed by two hex digits"))?;
            out.push(u8::from_str_radix(hex, 16).expect("checked hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(s: &str) -> Result<String, String> {
    String::from_utf8(unescape(s)?).map_err(|_| format!("'{s}' is not UTF-8 once decoded"))
}

impl Pkcs11Uri {
    /// Parses `pkcs11:PATH[?QUERY]` (RFC 7512 section 2.3). Unknown path attributes are
    /// refused (a misspelt one would otherwise widen the match); `type` must be `private`.
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, String> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or("a PKCS#11 URI starts with 'pkcs11:'")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| format!("'{attr}' is not NAME=VALUE"))?;
            match k {
                "token" => u.token = Some(text(v)?),
                "manufacturer" => u.manufacturer = Some(text(v)?),
                "serial" => u.serial = Some(text(v)?),
                "model" => u.model = Some(text(v)?),
                "slot-id" => {
                    u.slot_id = Some(
                        text(v)?
                            .parse()
                            .map_err(|_| format!("slot-id '{v}' is not a number"))?,
                    )
                }
                "object" => u.object = Some(text(v)?),
                "id" => u.id = Some(unescape(v)?),
                "type" => {
                    if text(v)? != "private" {
                        return Err(format!(
                            "type={v}: bonded signs with a private key (type=private)"
                        ));
                    }
                }
                // Library attributes only narrow which module answers; bonded loads one.
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                other => return Err(format!("unknown PKCS#11 URI attribute '{other}'")),
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| format!("'{attr}' is not NAME=VALUE"))?;
            match k {
                "module-path" => u.module_path = Some(text(v)?),
                "pin-source" => u.pin_source = Some(text(v)?),
                "pin-value" => {
                    return Err("the URI carries a pin-value: a PIN on the command line is seen by every user of the machine; give it in BONDED_PKCS11_PIN or a pin-source file".into())
                }
                _ => {}
            }
        }
        if u.object.is_none() && u.id.is_none() {
            return Err("name the key with object=LABEL or id=%XX..".into());
        }
        Ok(u)
    }
}

/// A private key in a token, with an open, logged-in session.
struct TokenKey {
    session: Mutex<Session>,
    key: ObjectHandle,
    algorithm: Algorithm,
    uri: String,
}

impl ExternalKey for TokenKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let pss = |hash: MechanismType, mgf: PkcsMgfType, len: u64| {
            Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg: hash,
                mgf,
                s_len: len.into(),
            })
        };
        let (mechanism, digest) = match self.algorithm {
            Algorithm::ES256 => (Mechanism::Ecdsa, sha2::Sha256::digest(message).to_vec()),
            Algorithm::ES384 => (Mechanism::Ecdsa, sha2::Sha384::digest(message).to_vec()),
            Algorithm::PS256 => (
                pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
                sha2::Sha256::digest(message).to_vec(),
            ),
            Algorithm::PS384 => (
                pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
                sha2::Sha384::digest(message).to_vec(),
            ),
            _ => (
                pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
                sha2::Sha512::digest(message).to_vec(),
            ),
        };
        let session = self
            .session
            .lock()
            .map_err(|_| "the token session failed")?;
        session
            .sign(&mechanism, self.key, &digest)
            .map_err(|e| format!("the token refused to sign with {}: {e}", self.uri))
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }
}

/// The PIN: `BONDED_PKCS11_PIN`, the URI's `pin-source` file, the terminal, or standard
/// input when it is free.
fn pin(uri: &Pkcs11Uri, text: &str, stdin_taken: bool) -> Result<String, String> {
    if let Ok(p) = std::env::var("BONDED_PKCS11_PIN") {
        return Ok(p);
    }
    if let Some(src) = &uri.pin_source {
        let path = src.strip_prefix("file:").unwrap_or(src);
        let pin = std::fs::read_to_string(path).map_err(|e| format!("pin-source {path}: {e}"))?;
        return Ok(pin.trim_end_matches(['\r', '\n']).to_string());
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return rpassword::prompt_password(format!("PIN for {text}: "))
            .map_err(|e| format!("reading the PIN: {e}"));
    }
    if stdin_taken {
        return Err(
            "standard input carries the registry's password: give the token's PIN in BONDED_PKCS11_PIN or a pin-source file"
                .into(),
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the PIN from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// P-256's and P-384's `ECParameters` (the named curve's OID, DER).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Opens the token key `uri` names, for signing.
pub fn open(uri_text: &str, stdin_taken: bool) -> Result<SigningKey, String> {
    let at = |e: String| format!("--key {uri_text}: {e}");
    let uri = Pkcs11Uri::parse(uri_text).map_err(at)?;
    let module = uri
        .module_path
        .clone()
        .or_else(|| std::env::var("BONDED_PKCS11_MODULE").ok())
        .ok_or_else(|| {
            at("no PKCS#11 module: add ?module-path=/path/to/module.so or set BONDED_PKCS11_MODULE".into())
        })?;
    let ctx = Pkcs11::new(&module).map_err(|e| at(format!("loading {module}: {e}")))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| at(format!("initialising {module}: {e}")))?;
    let mut found = Vec::new();
    let mut seen = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(|e| at(e.to_string()))? {
        let info = ctx.get_token_info(slot).map_err(|e| at(e.to_string()))?;
        if info.token_initialized() {
            seen.push(info.label().trim().to_string());
        }
        let fits =
            |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have.trim());
        if fits(&uri.token, info.label())
            && fits(&uri.manufacturer, info.manufacturer_id())
            && fits(&uri.serial, info.serial_number())
            && fits(&uri.model, info.model())
            && uri.slot_id.is_none_or(|id| id == slot.id())
        {
            found.push(slot);
        }
    }
    let slot = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(at(format!(
                "no token matches (tokens: {})",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join(", ")
                }
            )))
        }
        _ => {
            return Err(at(
                "several tokens match: name one with token=, serial= or slot-id=".into(),
            ))
        }
    };
    let session = ctx
        .open_ro_session(slot)
        .map_err(|e| at(format!("opening a session: {e}")))?;
    let pin = AuthPin::new(pin(&uri, uri_text, stdin_taken)?.into());
    session
        .login(UserType::User, Some(&pin))
        .map_err(|e| at(format!("logging in: {e}")))?;
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(l) = &uri.object {
        template.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let keys = session
        .find_objects(&template)
        .map_err(|e| at(format!("finding the key: {e}")))?;
    let key = match keys.as_slice() {
        [one] => *one,
        [] => return Err(at("the token holds no private key by that object/id".into())),
        _ => {
            return Err(at(
                "several private keys match: name one by both object= and id=".into(),
            ))
        }
    };
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::Modulus,
            ],
        )
        .map_err(|e| at(format!("reading the key's type: {e}")))?;
    let mut kind = None;
    let mut params = None;
    let mut modulus = None;
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kind = Some(k),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::Modulus(m) => modulus = Some(m),
            _ => {}
        }
    }
    let algorithm = match (kind, params.as_deref(), modulus.as_deref()) {
        (Some(KeyType::EC), Some(P256_PARAMS), _) => Algorithm::ES256,
        (Some(KeyType::EC), Some(P384_PARAMS), _) => Algorithm::ES384,
        (Some(KeyType::RSA), _, Some(m)) => {
            let bits = m.iter().skip_while(|b| **b == 0).count() * 8;
            match bits {
                2048 => Algorithm::PS256,
                3072 => Algorithm::PS384,
                4096 => Algorithm::PS512,
                other => {
                    return Err(at(format!(
                        "an RSA key of {other} bits; Notary signs with 2048, 3072 or 4096"
                    )))
                }
            }
        }
        (Some(KeyType::EC), _, _) => {
            return Err(at("an EC key on a curve other than P-256 or P-384".into()))
        }
        (k, _, _) => {
            return Err(at(format!(
                "a key of type {k:?}; bonded signs with EC (P-256, P-384) or RSA keys"
            )))
        }
    };
    Ok(SigningKey::External(Box::new(TokenKey {
        session: Mutex::new(session),
        key,
        algorithm,
        uri: uri_text.to_string(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_as_rfc_7512_writes_them() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=release%3Bkey;id=%01%a2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.object.as_deref(), Some("release;key"));
        assert_eq!(u.id, Some(vec![0x01, 0xa2]));
        assert_eq!(
            u.module_path.as_deref(),
            Some("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(u.pin_source.as_deref(), Some("file:/run/pin"));
    }

    #[test]
    fn uris_that_would_leak_a_pin_or_match_too_widely_are_refused() {
        let e = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-value=1234").unwrap_err();
        assert!(e.contains("BONDED_PKCS11_PIN"), "{e}");
        let e = Pkcs11Uri::parse("pkcs11:token=t;objcet=k").unwrap_err();
        assert!(e.contains("unknown PKCS#11 URI attribute 'objcet'"), "{e}");
        assert!(Pkcs11Uri::parse("pkcs11:token=t").is_err(), "no key named");
        assert!(Pkcs11Uri::parse("pkcs11:token=t;object=k;type=cert").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:object=%zz").is_err());
        assert!(Pkcs11Uri::parse("file:///key.pem").is_err());
    }
}
