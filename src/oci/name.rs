//! Repository names, tags and manifest references, validated against the distribution
//! spec's grammars.

use super::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

/// Longest repository name accepted. The spec asks clients to keep `host/name` under 256
/// characters; the registry does not know the host a client used, so it bounds the name alone.
pub const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name is empty")]
    EmptyName,
    #[error("repository name is {0} characters long; the limit is {MAX_NAME_LEN}")]
    NameTooLong(usize),
    #[error("repository name '{name}' has an invalid path component '{component}': components are lowercase letters and digits, separated inside a component by '.', '_', '__' or dashes")]
    BadComponent { name: String, component: String },
    #[error("tag '{0}' is invalid: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', and does not start with '.' or '-'")]
    BadTag(String),
    #[error("reference '{reference}' is neither a valid tag nor a valid digest: {digest_error}")]
    BadReference {
        reference: String,
        digest_error: DigestError,
    },
}

/// A repository name such as `library/alpine` or `a/b/c/d/e/f/g/h` (no nesting limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: '.', '_', '__' or one or more '-'
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

impl FromStr for RepositoryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::EmptyName);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong(s.len()));
        }
        for component in s.split('/') {
            if !valid_component(component) {
                return Err(NameError::BadComponent {
                    name: s.to_string(),
                    component: component.to_string(),
                });
            }
        }
        Ok(RepositoryName(s.to_string()))
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Tag(s.to_string()))
        } else {
            Err(NameError::BadTag(s.to_string()))
        }
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl Reference {
    /// What joins this reference to a repository in an image name: `:` before a tag, `@`
    /// before a digest.
    pub fn separator(&self) -> char {
        match self {
            Reference::Tag(_) => ':',
            Reference::Digest(_) => '@',
        }
    }

    /// `repo:tag` or `repo@digest`, as docker, podman and notation write image names.
    pub fn in_repository<'a, R: fmt::Display>(&'a self, repo: &'a R) -> impl fmt::Display + 'a {
        Joined(repo, self.separator(), self)
    }
}

/// The separator before `reference`, a tag or a digest still as text: digests are the
/// references with a `:` (tags cannot hold one).
pub fn separator_of(reference: &str) -> char {
    if reference.contains(':') {
        '@'
    } else {
        ':'
    }
}

struct Joined<'a, R, S>(&'a R, char, &'a S);

impl<R: fmt::Display, S: fmt::Display> fmt::Display for Joined<'_, R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.0, self.1, self.2)
    }
}

impl FromStr for Reference {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse::<Digest>()
                .map(Reference::Digest)
                .map_err(|digest_error| NameError::BadReference {
                    reference: s.to_string(),
                    digest_error,
                })
        } else {
            s.parse::<Tag>().map(Reference::Tag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_join_tags_with_a_colon_and_digests_with_an_at() {
        let repo: RepositoryName = "acme/pod".parse().unwrap();
        let tag: Reference = "v1".parse().unwrap();
        let hex = "a".repeat(64);
        let digest: Reference = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(tag.in_repository(&repo).to_string(), "acme/pod:v1");
        assert_eq!(
            digest.in_repository(&repo).to_string(),
            format!("acme/pod@sha256:{hex}")
        );
        assert_eq!(separator_of("v1"), ':');
        assert_eq!(separator_of(&format!("sha256:{hex}")), '@');
    }

    #[test]
    fn accepts_spec_names_without_nesting_limit() {
        for ok in [
            "alpine",
            "library/alpine",
            "a/b/c/d/e/f/g/h",
            "my-org/my__repo/x.y",
            "a--b",
            "conformance/repo1",
            "blobs/manifests/tags",
        ] {
            assert!(ok.parse::<RepositoryName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "", "Upper", "a//b", "/a", "a/", "a___b", "-a", "a-", "a..b", "a_.b", "a b", "a/.b",
        ] {
            assert!(bad.parse::<RepositoryName>().is_err(), "{bad:?}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            long.parse::<RepositoryName>(),
            Err(NameError::NameTooLong(MAX_NAME_LEN + 1))
        );
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!("latest".parse::<Tag>().is_ok());
        assert!("_v1.0-rc.1".parse::<Tag>().is_ok());
        assert!("A".repeat(128).parse::<Tag>().is_ok());
        assert!("A".repeat(129).parse::<Tag>().is_err());
        assert!(".hidden".parse::<Tag>().is_err());
        assert!("-x".parse::<Tag>().is_err());
        assert!("a/b".parse::<Tag>().is_err());
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!("v1".parse::<Reference>(), Ok(Reference::Tag(_))));
        let d = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(d.parse::<Reference>(), Ok(Reference::Digest(_))));
        assert!(matches!(
            "sha256:baddigeststring".parse::<Reference>(),
            Err(NameError::BadReference { .. })
        ));
    }
}
