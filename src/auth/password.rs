//! Passwords: argon2id with the crate's defaults (RFC 9106's second recommendation:
//! m = 19 MiB, t = 2, p = 1), stored as PHC strings so parameters can be raised later
//! without invalidating existing hashes.

use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Shortest password accepted for a new account.
pub const MIN_LENGTH: usize = 12;

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password failed: {e}"))
}

/// Whether `password` matches the PHC string `stored` (constant time in the password).
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// What a bearer token made from a password login names: a digest of the PHC string the
/// password verified against. It changes whenever the password is set (a fresh salt), and
/// says nothing that helps guess the password (the salt is not in it).
pub fn fingerprint(stored: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(stored.as_bytes())[..16])
}

/// Does the work of one verification and throws it away (for unknown account names).
pub fn burn(password: &str) {
    let _ = hash(password);
}

/// Refuses passwords too short to resist guessing.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!(
            "the password is too short: use at least {MIN_LENGTH} characters"
        ));
    }
    Ok(())
}

/// A random password for generated accounts: 24 characters of base64url (144 bits).
pub fn generate() -> String {
    use base64::Engine;
    let bytes: [u8; 18] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("x", "not a phc string"));
        assert!(check_strength("short").is_err());
        assert!(check_strength(&generate()).is_ok());
    }
}
