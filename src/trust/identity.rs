//! Distinguished names and trusted identities (`x509.subject: C=US, ST=WA, O=Acme, CN=alice`).

use std::fmt;

/// A distinguished name as an ordered list of (attribute, value), attributes in their
/// short form (C, ST, L, O, OU, CN, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(pub Vec<(String, String)>);

fn short_name(oid: &str) -> String {
    match oid {
        "2.5.4.6" => "C",
        "2.5.4.8" => "ST",
        "2.5.4.7" => "L",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.3" => "CN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.9" => "STREET",
        "2.5.4.17" => "POSTALCODE",
        "1.2.840.113549.1.9.1" => "E",
        other => return other.to_string(),
    }
    .to_string()
}

impl DistinguishedName {
    pub fn from_x509(name: &x509_parser::x509::X509Name<'_>) -> Self {
        DistinguishedName(
            name.iter_attributes()
                .map(|a| {
                    (
                        short_name(&a.attr_type().to_id_string()),
                        a.as_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("trusted identity '{0}' must start with 'x509.subject:'")]
    Prefix(String),
    #[error(
        "trusted identity '{identity}' has a malformed attribute '{part}' (expected KEY=value)"
    )]
    Malformed { identity: String, part: String },
    #[error("trusted identity '{identity}' repeats attribute {attr}")]
    Duplicate { identity: String, attr: String },
    #[error("trusted identity '{identity}' lacks {attr}: C, ST and O are required")]
    MissingRequired {
        identity: String,
        attr: &'static str,
    },
}

/// A trusted identity: the subject attributes a signing certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: DistinguishedName,
    text: String,
}

impl Identity {
    /// Parses `x509.subject: K=V, K=V, ...` (`\,` escapes a comma in a value).
    pub fn parse(s: &str) -> Result<Identity, IdentityError> {
        let rest = s
            .trim()
            .strip_prefix("x509.subject:")
            .ok_or_else(|| IdentityError::Prefix(s.to_string()))?;
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek().is_some() => current.push(chars.next().expect("peeked")),
                ',' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        let mut attrs: Vec<(String, String)> = Vec::new();
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_string()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| IdentityError::Malformed {
                    identity: s.to_string(),
                    part: part.trim().to_string(),
                })?;
            if attrs.iter().any(|(seen, _)| *seen == k) {
                return Err(IdentityError::Duplicate {
                    identity: s.to_string(),
                    attr: k,
                });
            }
            attrs.push((k, v));
        }
        for required in ["C", "ST", "O"] {
            if !attrs.iter().any(|(k, _)| k == required) {
                return Err(IdentityError::MissingRequired {
                    identity: s.to_string(),
                    attr: required,
                });
            }
        }
        Ok(Identity {
            subject: DistinguishedName(attrs),
            text: s.trim().to_string(),
        })
    }

    /// Whether a certificate subject carries every attribute of this identity.
    pub fn matches(&self, subject: &DistinguishedName) -> bool {
        self.subject
            .0
            .iter()
            .all(|(k, v)| subject.get(k) == Some(v.as_str()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(pairs: &[(&str, &str)]) -> DistinguishedName {
        DistinguishedName(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn identities_match_subsets_of_the_subject() {
        let id = Identity::parse("x509.subject: C=US, ST=WA, O=Notary").unwrap();
        let subject = dn(&[
            ("C", "US"),
            ("ST", "WA"),
            ("L", "Seattle"),
            ("O", "Notary"),
            ("CN", "e2e"),
        ]);
        assert!(id.matches(&subject));
        assert!(!id.matches(&dn(&[("C", "US"), ("ST", "WA"), ("O", "Other")])));
        let escaped = Identity::parse(r"x509.subject: C=US, ST=WA, O=Acme\, Inc., CN=a").unwrap();
        assert!(escaped.matches(&dn(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", "Acme, Inc."),
            ("CN", "a")
        ])));
    }

    #[test]
    fn malformed_identities_are_refused() {
        assert!(matches!(
            Identity::parse("C=US, ST=WA, O=x"),
            Err(IdentityError::Prefix(_))
        ));
        assert!(matches!(
            Identity::parse("x509.subject: ST=WA, O=x"),
            Err(IdentityError::MissingRequired { attr: "C", .. })
        ));
        assert!(matches!(
            Identity::parse("x509.subject: C=US, C=CA, ST=WA, O=x"),
            Err(IdentityError::Duplicate { .. })
        ));
        assert!(matches!(
            Identity::parse("x509.subject: C=US, ST, O=x"),
            Err(IdentityError::Malformed { .. })
        ));
    }
}
