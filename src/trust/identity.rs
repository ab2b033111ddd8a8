//! Distinguished names and trusted identities (`x509.subject: C=US, ST=WA, O=Acme, CN=alice`).
//!
//! Two comparisons, for two questions:
//! - **Does a certificate carry a listed identity?** [`Identity::matches`]: every attribute
//!   of the identity is in the subject with exactly that value, as notation compares. A
//!   subject that repeats an attribute type (two CNs) or has a multi-valued RDN
//!   (`CN=a+OU=b`) never matches: which of its values would be "the" CN is a choice an
//!   attacker could steer.
//! - **Are two subjects the same identity?** [`DistinguishedName::canonical`]: the
//!   attributes as a sorted set, each value prepared as RFC 4518 prepares strings for
//!   matching (insignificant characters removed, NFKC, case folded, spaces collapsed), so
//!   attribute order, case and spacing never make one signer two.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// A distinguished name: (attribute, value) pairs in certificate order, attributes in
/// their short form (C, ST, L, O, OU, CN, ...) or as a dotted OID.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DistinguishedName {
    pub attributes: Vec<(String, String)>,
    /// Some RDN holds more than one attribute (`CN=a+OU=b`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multi_valued: bool,
}

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

/// An attribute value as text: the directory string types decoded (BMPString as UTF-16,
/// UniversalString as UTF-32), anything else as `#` and the hex of its DER content, as
/// RFC 4514 writes values it cannot show.
fn attribute_text(a: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::Tag;
    if let Ok(s) = a.as_str() {
        return s.to_string();
    }
    let any = a.attr_value();
    let data = any.data;
    let decoded = match any.tag() {
        Tag::BmpString if data.len() % 2 == 0 => {
            char::decode_utf16(data.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])))
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString if data.len() % 4 == 0 => data
            .chunks(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect::<Option<String>>(),
        _ => None,
    };
    decoded.unwrap_or_else(|| format!("#{}", hex::encode(data)))
}

/// RFC 4518 string preparation for matching (its steps 2 to 5): characters "mapped to
/// nothing" removed, other controls and every space separator mapped to a space, NFKC,
/// case folded, then insignificant spaces (leading, trailing, runs) removed.
pub fn prepare(value: &str) -> String {
    let mapped: String = value
        .chars()
        .filter_map(|c| match c {
            // Mapped to nothing: soft hyphen, Mongolian and variation selectors, object
            // replacement, zero-width joiners and spaces, byte order mark.
            '\u{00AD}'
            | '\u{034F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFFC}' => None,
            // Whitespace controls and NEL become spaces; other controls go.
            '\u{0009}'..='\u{000D}' | '\u{0085}' => Some(' '),
            c if c.is_control() => None,
            c if c.is_whitespace() => Some(' '),
            c => Some(c),
        })
        .collect();
    let folded: String = mapped.nfkc().flat_map(char::to_lowercase).collect();
    let folded: String = folded.nfkc().collect();
    folded
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl DistinguishedName {
    /// A name with one attribute per RDN.
    pub fn new(attributes: Vec<(String, String)>) -> Self {
        DistinguishedName {
            attributes,
            multi_valued: false,
        }
    }

    pub fn from_x509(name: &x509_parser::x509::X509Name<'_>) -> Self {
        let mut attributes = Vec::new();
        let mut multi_valued = false;
        for rdn in name.iter() {
            multi_valued |= rdn.iter().count() > 1;
            for a in rdn.iter() {
                attributes.push((short_name(&a.attr_type().to_id_string()), attribute_text(a)));
            }
        }
        DistinguishedName {
            attributes,
            multi_valued,
        }
    }

    /// Whether every attribute type appears once, each in an RDN of its own: only such a
    /// subject can be matched against a trusted identity.
    pub fn is_unambiguous(&self) -> bool {
        !self.multi_valued
            && self.attributes.iter().enumerate().all(|(i, (k, _))| {
                !self.attributes[..i]
                    .iter()
                    .any(|(seen, _)| seen.eq_ignore_ascii_case(k))
            })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The name as an identity: its attributes, values prepared ([`prepare`]), sorted.
    /// Two subjects are the same identity exactly when their canonical forms are equal.
    pub fn canonical(&self) -> Vec<(String, String)> {
        let mut set: Vec<(String, String)> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), prepare(v)))
            .collect();
        set.sort();
        set.dedup();
        set
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
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
    #[error("trusted identity '{identity}' has a multi-valued RDN ('+'); write one attribute per RDN, or escape '+' in a value as '\\+'")]
    MultiValued { identity: String },
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
    /// Parses `x509.subject: K=V, K=V, ...` (`\,` escapes a comma in a value, `\+` a plus).
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
                '+' => {
                    return Err(IdentityError::MultiValued {
                        identity: s.to_string(),
                    })
                }
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
            subject: DistinguishedName::new(attrs),
            text: s.trim().to_string(),
        })
    }

    /// Whether a certificate subject carries every attribute of this identity, with
    /// exactly its value. An ambiguous subject (a repeated attribute type, a multi-valued
    /// RDN) matches no identity.
    pub fn matches(&self, subject: &DistinguishedName) -> bool {
        subject.is_unambiguous()
            && self
                .subject
                .attributes
                .iter()
                .all(|(k, v)| subject.get(k) == Some(v.as_str()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Who a verified signature says signed it, whatever its format: what the policy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer<'a> {
    /// A Notary signature's leaf certificate subject.
    X509(&'a DistinguishedName),
    /// A key-based cosign signature's key: `sha256:<hex>` of its SubjectPublicKeyInfo.
    CosignKey(&'a str),
    /// A keyless (Fulcio) signature's OIDC issuer and subject alternative name.
    Sigstore { issuer: &'a str, subject: &'a str },
}

impl fmt::Display for Signer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::X509(dn) => write!(f, "{dn}"),
            Signer::CosignKey(k) => write!(f, "cosign.key: {k}"),
            Signer::Sigstore { issuer, subject } => {
                write!(f, "sigstore: issuer={issuer}; subject={subject}")
            }
        }
    }
}

/// How a `sigstore:` identity names its subject: exactly, or by a fully anchored regular
/// expression (`subject~=`).
#[derive(Debug, Clone)]
pub enum SubjectPattern {
    Exact(String),
    Regex { source: String, re: regex::Regex },
}

impl PartialEq for SubjectPattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SubjectPattern::Exact(a), SubjectPattern::Exact(b)) => a == b,
            (SubjectPattern::Regex { source: a, .. }, SubjectPattern::Regex { source: b, .. }) => {
                a == b
            }
            _ => false,
        }
    }
}

impl Eq for SubjectPattern {}

/// `sigstore: issuer=<OIDC issuer>; subject=<SAN>` or `...; subject~=<regex>`: who a
/// keyless signature's Fulcio certificate must name. The issuer is compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreIdentity {
    pub issuer: String,
    pub subject: SubjectPattern,
}

impl SigstoreIdentity {
    fn parse(original: &str, rest: &str) -> Result<SigstoreIdentity, String> {
        let bad = |why: &str| {
            format!("trusted identity '{original}' {why}: write it sigstore: issuer=<OIDC issuer URL>; subject=<certificate SAN> (or subject~=<regular expression>)")
        };
        let rest = rest.trim();
        let after = rest
            .strip_prefix("issuer=")
            .ok_or_else(|| bad("does not start with issuer="))?;
        let (issuer, subject) = after.split_once(';').ok_or_else(|| bad("has no subject"))?;
        let issuer = issuer.trim();
        let subject = subject.trim();
        if issuer.is_empty() {
            return Err(bad("has an empty issuer"));
        }
        let subject = if let Some(re) = subject.strip_prefix("subject~=") {
            let re = re.trim();
            if re.is_empty() {
                return Err(bad("has an empty subject pattern"));
            }
            let anchored = regex::RegexBuilder::new(&format!("^(?:{re})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| bad(&format!("has an invalid pattern ({e})")))?;
            SubjectPattern::Regex {
                source: re.to_string(),
                re: anchored,
            }
        } else if let Some(exact) = subject.strip_prefix("subject=") {
            let exact = exact.trim();
            if exact.is_empty() {
                return Err(bad("has an empty subject"));
            }
            SubjectPattern::Exact(exact.to_string())
        } else {
            return Err(bad("names no subject= or subject~="));
        };
        Ok(SigstoreIdentity {
            issuer: issuer.to_string(),
            subject,
        })
    }

    pub fn matches(&self, issuer: &str, subject: &str) -> bool {
        self.issuer == issuer
            && match &self.subject {
                SubjectPattern::Exact(s) => s == subject,
                SubjectPattern::Regex { re, .. } => re.is_match(subject),
            }
    }
}

impl fmt::Display for SigstoreIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            SubjectPattern::Exact(s) => write!(f, "sigstore: issuer={}; subject={s}", self.issuer),
            SubjectPattern::Regex { source, .. } => {
                write!(f, "sigstore: issuer={}; subject~={source}", self.issuer)
            }
        }
    }
}

/// One entry of a policy's `trustedIdentities` (or `requiredIdentities`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `x509.subject: C=US, ST=WA, O=Acme, CN=alice`
    X509(Identity),
    /// `cosign.key: sha256:<hex>`, the SHA-256 of a key's DER SubjectPublicKeyInfo.
    CosignKey(String),
    /// `sigstore: issuer=...; subject=...` (or `subject~=...`).
    Sigstore(SigstoreIdentity),
}

impl TrustedIdentity {
    pub fn parse(s: &str) -> Result<TrustedIdentity, String> {
        let t = s.trim();
        if let Some(rest) = t.strip_prefix("cosign.key:") {
            let fp = rest.trim();
            let ok = fp.strip_prefix("sha256:").is_some_and(|hex| {
                hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
            if !ok {
                return Err(format!(
                    "trusted identity '{s}' must name a key as cosign.key: sha256:<64 lowercase hex digits> (the SHA-256 of its DER SubjectPublicKeyInfo: openssl pkey -pubin -in cosign.pub -outform DER | sha256sum)"
                ));
            }
            return Ok(TrustedIdentity::CosignKey(fp.to_string()));
        }
        if let Some(rest) = t.strip_prefix("sigstore:") {
            return SigstoreIdentity::parse(s, rest).map(TrustedIdentity::Sigstore);
        }
        if !t.starts_with("x509.subject:") {
            return Err(format!(
                "trusted identity '{s}' must start with 'x509.subject:', 'cosign.key:' or 'sigstore:'"
            ));
        }
        Identity::parse(s)
            .map(TrustedIdentity::X509)
            .map_err(|e| e.to_string())
    }

    /// Whether a signer is this identity (see [`Identity::matches`] for certificates).
    pub fn matches(&self, signer: &Signer) -> bool {
        match (self, signer) {
            (TrustedIdentity::X509(id), Signer::X509(dn)) => id.matches(dn),
            (TrustedIdentity::CosignKey(k), Signer::CosignKey(s)) => k == s,
            (TrustedIdentity::Sigstore(id), Signer::Sigstore { issuer, subject }) => {
                id.matches(issuer, subject)
            }
            _ => false,
        }
    }
}

impl fmt::Display for TrustedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedIdentity::X509(id) => write!(f, "{id}"),
            TrustedIdentity::CosignKey(k) => write!(f, "cosign.key: {k}"),
            TrustedIdentity::Sigstore(id) => write!(f, "{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(pairs: &[(&str, &str)]) -> DistinguishedName {
        DistinguishedName::new(
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
    fn ambiguous_subjects_match_no_identity() {
        let alice = Identity::parse("x509.subject: C=US, ST=WA, O=Acme, CN=alice").unwrap();
        let bob = Identity::parse("x509.subject: C=US, ST=WA, O=Acme, CN=bob").unwrap();
        // Two CNs, either order: neither alice nor bob.
        for subject in [
            dn(&[
                ("C", "US"),
                ("ST", "WA"),
                ("O", "Acme"),
                ("CN", "alice"),
                ("CN", "bob"),
            ]),
            dn(&[
                ("C", "US"),
                ("ST", "WA"),
                ("O", "Acme"),
                ("CN", "bob"),
                ("CN", "alice"),
            ]),
        ] {
            assert!(!subject.is_unambiguous());
            assert!(!alice.matches(&subject), "{subject}");
            assert!(!bob.matches(&subject), "{subject}");
        }
        // A repeated attribute the identity does not even name still makes it ambiguous.
        let two_ous = dn(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", "Acme"),
            ("OU", "a"),
            ("OU", "b"),
            ("CN", "alice"),
        ]);
        assert!(!alice.matches(&two_ous));
        let mut multi = dn(&[("C", "US"), ("ST", "WA"), ("O", "Acme"), ("CN", "alice")]);
        assert!(alice.matches(&multi));
        multi.multi_valued = true;
        assert!(!alice.matches(&multi));
    }

    #[test]
    fn canonical_names_ignore_order_case_and_insignificant_space() {
        let a = dn(&[("C", "US"), ("ST", "WA"), ("O", "Acme"), ("CN", "alice")]);
        let reordered = dn(&[("CN", "alice"), ("O", "Acme"), ("ST", "WA"), ("C", "US")]);
        let cased = dn(&[("c", "us"), ("ST", " wa "), ("O", "ACME"), ("CN", "Alice")]);
        let spaced = dn(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", "Acme"),
            ("CN", "al\u{200B}ice"),
        ]);
        for other in [&reordered, &cased, &spaced] {
            assert_eq!(a.canonical(), other.canonical(), "{other}");
        }
        assert_eq!(
            prepare("  Acme \t  Rockets\u{00A0}Inc "),
            "acme rockets inc"
        );
        // NFKC: a fullwidth 'Ａ' and the ligature 'ﬁ' are 'a' and 'fi'.
        assert_eq!(prepare("\u{FF21}\u{FB01}"), "afi");
        // Different attributes or values are different identities.
        let other_ou = dn(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", "Acme"),
            ("OU", "x"),
            ("CN", "alice"),
        ]);
        assert_ne!(a.canonical(), other_ou.canonical());
        assert_ne!(
            a.canonical(),
            dn(&[("C", "US"), ("ST", "WA"), ("O", "Acme"), ("CN", "bob")]).canonical()
        );
    }

    #[test]
    fn sigstore_identities_match_issuer_exactly_and_subject_whole() {
        let exact = TrustedIdentity::parse(
            "sigstore: issuer=https://github.com/login/oauth; subject=alice@example.com",
        )
        .unwrap();
        let re = TrustedIdentity::parse(
            r"sigstore: issuer=https://token.actions.githubusercontent.com; subject~=https://github\.com/acme/[a-z]+/\.github/workflows/release\.yml@refs/tags/v.*",
        )
        .unwrap();
        let s = |issuer, subject| Signer::Sigstore { issuer, subject };
        assert!(exact.matches(&s("https://github.com/login/oauth", "alice@example.com")));
        // The subject and issuer are whole values: no prefix, suffix or case slack.
        for (issuer, subject) in [
            ("https://github.com/login/oauth", "alice@example.com.evil"),
            ("https://github.com/login/oauth", "xalice@example.com"),
            ("https://github.com/login/oauth", "Alice@example.com"),
            ("https://github.com/login/oauth/", "alice@example.com"),
            ("https://accounts.google.com", "alice@example.com"),
        ] {
            assert!(!exact.matches(&s(issuer, subject)), "{issuer} {subject}");
        }
        let gh = "https://token.actions.githubusercontent.com";
        assert!(re.matches(&s(
            gh,
            "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2"
        )));
        // Anchored at both ends: a match inside a longer subject is no match.
        for subject in [
            "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
            "https://evil.example/?https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",
            "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1\nx",
        ] {
            assert!(!re.matches(&s(gh, subject)), "{subject}");
        }
        // An alternation cannot escape the anchors.
        let alt = TrustedIdentity::parse("sigstore: issuer=i; subject~=a|b").unwrap();
        assert!(alt.matches(&s("i", "a")) && alt.matches(&s("i", "b")));
        assert!(!alt.matches(&s("i", "ab")) && !alt.matches(&s("i", "xa")));
        // Not the other formats' signers.
        assert!(!exact.matches(&Signer::CosignKey("alice@example.com")));
        for bad in [
            "sigstore: subject=a",
            "sigstore: issuer=; subject=a",
            "sigstore: issuer=i",
            "sigstore: issuer=i; subject=",
            "sigstore: issuer=i; subject~=(",
            "sigstore: issuer=i; san=a",
        ] {
            assert!(TrustedIdentity::parse(bad).is_err(), "{bad}");
        }
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
        assert!(matches!(
            Identity::parse("x509.subject: C=US, ST=WA, O=x, CN=a+OU=b"),
            Err(IdentityError::MultiValued { .. })
        ));
        let escaped = Identity::parse(r"x509.subject: C=US, ST=WA, O=x, CN=a\+b").unwrap();
        assert_eq!(escaped.subject.attributes[3].1, "a+b");
    }
}
