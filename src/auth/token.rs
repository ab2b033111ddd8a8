//! API tokens for robots and CI: `bdt_<id>_<secret>`. The id (64 bits, hex) names the
//! token in lists and the audit trail; the secret (256 bits, hex) is shown once and
//! stored as its SHA-256. The fixed prefix lets secret scanners recognise leaked tokens.

use sha2::{Digest as _, Sha256};
use std::fmt;

const PREFIX: &str = "bdt_";

#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}, <redacted>)", self.id)
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}_{}", self.id, self.secret)
    }
}

impl ApiToken {
    pub fn generate() -> ApiToken {
        let id: [u8; 8] = rand::random();
        let secret: [u8; 32] = rand::random();
        ApiToken {
            id: hex::encode(id),
            secret: hex::encode(secret),
        }
    }

    /// Reads a token string; `None` when it is not one (then it is a password).
    pub fn parse(s: &str) -> Option<ApiToken> {
        let (id, secret) = s.strip_prefix(PREFIX)?.split_once('_')?;
        let hex16 = |v: &str, n: usize| v.len() == n && v.bytes().all(|b| b.is_ascii_hexdigit());
        (hex16(id, 16) && hex16(secret, 64)).then(|| ApiToken {
            id: id.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored`, compared in constant time.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    use subtle::ConstantTimeEq;
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_other_strings_are_passwords() {
        let t = ApiToken::generate();
        let s = t.to_string();
        assert!(s.starts_with("bdt_") && s.len() == 4 + 16 + 1 + 64);
        assert_eq!(ApiToken::parse(&s), Some(t.clone()));
        assert!(
            !format!("{t:?}").contains(&t.secret),
            "Debug hides the secret"
        );
        assert_eq!(ApiToken::parse("hunter2hunter2"), None);
        assert_eq!(ApiToken::parse("bdt_xyz_abc"), None);
        assert!(secret_matches(&t.secret, &hash_secret(&t.secret)));
        assert!(!secret_matches("00", &hash_secret(&t.secret)));
    }
}
