//! The bearer tokens of the Docker registry token flow: JWTs (RFC 7519) signed with
//! HMAC-SHA256 under a key only this server holds (the server both issues and checks them,
//! so no public key needs distributing). They name the account (`sub`), the service
//! (`aud`), a short lifetime, and the granted scopes (`access`) as Distribution's token
//! specification describes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "bonded";

/// One granted scope: `{"type":"repository","name":"acme/app","actions":["pull"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    /// Parses a requested scope, `repository:acme/app:pull,push` (also `registry:catalog:*`).
    /// The name may itself hold ':' (a host with a port), so type and actions are split
    /// from the ends.
    pub fn parse_scope(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Access {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
    /// The credential the token was made from ([`super::Credential::claim`]); the token
    /// is honoured only while that credential is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<String>,
}

impl Claims {
    /// Whether the token grants `action` (a scope word: pull, push, delete) on repository
    /// `name`; `*` grants every action.
    pub fn grants(&self, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository"
                && a.name == name
                && a.actions.iter().any(|x| x == action || x == "*")
        })
    }
}

impl Claims {
    /// Whether the token was issued for the registry's catalog (`registry:catalog:*`).
    pub fn grants_catalog(&self) -> bool {
        self.access.iter().any(|a| {
            a.kind == "registry" && a.name == "catalog" && a.actions.iter().any(|x| x == "*")
        })
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims`.
pub fn issue(key: &[u8], claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialise");
    let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", B64.encode(tag.as_ref()))
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a JWT")]
    Malformed,
    #[error("the bearer token is not signed by this registry")]
    BadSignature,
    #[error("the bearer token has expired; request a new one")]
    Expired,
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    #[error("the bearer token is for service '{0}', not this registry")]
    WrongAudience(String),
}

/// Checks signature, issuer, audience and lifetime at `now` (Unix seconds).
pub fn verify(key: &[u8], token: &str, service: &str, now: i64) -> Result<Claims, TokenError> {
    let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    // The signature first: nothing of an unauthenticated token is interpreted.
    ring::hmac::verify(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
        &sig,
    )
    .map_err(|_| TokenError::BadSignature)?;
    // Only the header this module writes is accepted ("alg" is not negotiable).
    if B64.decode(header).map_err(|_| TokenError::Malformed)? != HEADER.as_bytes() {
        return Err(TokenError::Malformed);
    }
    let claims: Claims =
        serde_json::from_slice(&B64.decode(payload).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
    if claims.iss != ISSUER {
        return Err(TokenError::BadSignature);
    }
    if claims.aud != service {
        return Err(TokenError::WrongAudience(claims.aud));
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    // A little leeway for clocks of other processes on the same machine.
    if now + 5 < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: "registry.test".into(),
            exp: 1300,
            nbf: 1000,
            iat: 1000,
            jti: "j1".into(),
            access: vec![Access::parse_scope("repository:acme/app:pull,push").unwrap()],
            cred: Some("token:0011223344556677".into()),
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_scopes() {
        let key = [7u8; 32];
        let t = issue(&key, &claims());
        let c = verify(&key, &t, "registry.test", 1100).unwrap();
        assert_eq!(c, claims());
        assert!(c.grants("acme/app", "push"));
        assert!(!c.grants("acme/app", "delete"));
        assert!(!c.grants("acme/other", "pull"));
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let key = [7u8; 32];
        let t = issue(&key, &claims());
        assert_eq!(
            verify(&[8u8; 32], &t, "registry.test", 1100),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&key, &t, "registry.test", 1300),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&key, &t, "elsewhere", 1100),
            Err(TokenError::WrongAudience("registry.test".into()))
        );
        // A payload swapped under the original signature.
        let mut other = claims();
        other.sub = "admin".into();
        let forged = issue(&[9u8; 32], &other);
        let (head_payload, _) = forged.rsplit_once('.').unwrap();
        let (_, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(
            verify(
                &key,
                &format!("{head_payload}.{sig}"),
                "registry.test",
                1100
            ),
            Err(TokenError::BadSignature)
        );
        // alg "none".
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(serde_json::to_vec(&claims()).unwrap())
        );
        assert!(verify(&key, &none, "registry.test", 1100).is_err());
        assert_eq!(
            verify(&key, "garbage", "registry.test", 1100),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn scopes_parse_with_ports_in_names() {
        let a = Access::parse_scope("repository:localhost:5000/app:pull").unwrap();
        assert_eq!(a.name, "localhost:5000/app");
        assert_eq!(a.actions, vec!["pull"]);
        let c = Access::parse_scope("registry:catalog:*").unwrap();
        assert_eq!((c.kind.as_str(), c.name.as_str()), ("registry", "catalog"));
        assert_eq!(Access::parse_scope("nonsense"), None);
    }
}
