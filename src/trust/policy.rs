//! The trust policy: notation's `trustpolicy.json` schema and validation, plus bonded's
//! extensions (documented in docs/trust-policy.md):
//! - a scope may be a namespace prefix, `registry.acme.io/acme/prod/*`, matching every
//!   repository below `acme/prod`; an exact scope beats a prefix, a longer prefix beats a
//!   shorter one, and `*` is the last resort;
//! - `signaturesRequired: k` asks for valid signatures from k distinct trusted identities;
//! - `requiredIdentities: [...]` names identities that must all have signed;
//! - `"bonded.unsignedPush"`: a push by tag the policy does not accept yet is stored as
//!   pending with its tag waiting for signatures either way; `"quarantine"` (the default,
//!   so that `docker push` then `cosign sign`/`notation sign` pipelines work) answers
//!   success with a `Warning`, `"reject"` answers 403 naming the stored digest to sign;
//! - `"bonded.enforceOnPull": true` refuses pulls whose signatures no longer satisfy it;
//! - `"bonded.signerMustNotBePusher": true` refuses a signature pushed by the account that
//!   pushed the image it signs (separation of duties).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

use super::identity::{Signer, TrustedIdentity};
use super::store::{StoreRef, StoreType};
use crate::oci::RepositoryName;

/// What a failed check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The failure fails verification.
    Enforce,
    /// The failure is recorded; verification goes on.
    Log,
    /// The check is not run.
    Skip,
}

/// The action for each verification check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub integrity: Action,
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
    pub revocation: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

impl Level {
    fn actions(self) -> Actions {
        use Action::*;
        let (integrity, authenticity, rest) = match self {
            Level::Strict => (Enforce, Enforce, Enforce),
            Level::Permissive => (Enforce, Enforce, Log),
            Level::Audit => (Enforce, Log, Log),
            Level::Skip => (Skip, Skip, Skip),
        };
        Actions {
            integrity,
            authenticity,
            authentic_timestamp: rest,
            expiry: rest,
            revocation: rest,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }
}

/// Which artifacts a policy covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `*`: everything no other policy covers.
    Any,
    /// `registry/repository`.
    Exact(String),
    /// `registry/namespace/*` (bonded): `registry/namespace/...`, any depth. Holds the
    /// text before `*`, ending in '/'.
    Prefix(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Any => f.write_str("*"),
            Scope::Exact(s) => f.write_str(s),
            Scope::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    if s == "*" {
        return Ok(Scope::Any);
    }
    let bad = |why: &str| {
        format!("registry scope '{s}' is invalid: {why}; write REGISTRY/REPOSITORY, REGISTRY/NAMESPACE/* or *")
    };
    let (host, path) = s.split_once('/').ok_or_else(|| bad("it has no '/'"))?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok {
        return Err(bad("the registry part is not a host name"));
    }
    if let Some(ns) = path.strip_suffix("/*") {
        ns.parse::<RepositoryName>()
            .map_err(|e| bad(&e.to_string()))?;
        return Ok(Scope::Prefix(format!("{host}/{ns}/")));
    }
    path.parse::<RepositoryName>()
        .map_err(|e| bad(&e.to_string()))?;
    Ok(Scope::Exact(s.to_string()))
}

/// Who a policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentities {
    /// `*`: any signer whose chain leads to the policy's trust stores, any key of its
    /// cosign stores.
    Any,
    List(Vec<TrustedIdentity>),
}

impl TrustedIdentities {
    /// Whether a signer is trusted. An ambiguous certificate subject (a repeated attribute
    /// type, a multi-valued RDN) is not, `*` included.
    pub fn trusts(&self, signer: &Signer) -> bool {
        match (self, signer) {
            (TrustedIdentities::Any, Signer::X509(dn)) => dn.is_unambiguous(),
            (TrustedIdentities::Any, Signer::CosignKey(_) | Signer::Sigstore { .. }) => true,
            (TrustedIdentities::List(ids), s) => ids.iter().any(|i| i.matches(s)),
        }
    }

    /// [`TrustedIdentities::trusts`] for a certificate subject.
    pub fn find(&self, subject: &super::identity::DistinguishedName) -> Option<()> {
        self.trusts(&Signer::X509(subject)).then_some(())
    }
}

/// What a client is told of a push by tag whose signatures do not satisfy the policy yet.
/// Either way the manifest is stored as pending and the tag waits for signatures: nothing
/// unsigned is served, and nothing pushed is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsignedPush {
    /// 403 DENIED, naming the stored digest to sign.
    Reject,
    /// Success with a `Warning: 299` saying the tag waits (the default: push-then-sign
    /// pipelines keep working).
    Quarantine,
}

/// One validated trust policy statement.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub level: Level,
    pub actions: Actions,
    pub trust_stores: Vec<StoreRef>,
    pub trusted_identities: TrustedIdentities,
    /// bonded: valid signatures from this many distinct trusted identities (default 1).
    pub signatures_required: u32,
    /// bonded: identities that must all have signed.
    pub required_identities: Vec<TrustedIdentity>,
    /// bonded: what an unsigned push by tag does.
    pub unsigned_push: UnsignedPush,
    /// bonded: re-check signatures on pulls.
    pub enforce_on_pull: bool,
    /// bonded: the account that pushed an image may not push signatures for it.
    pub signer_must_not_be_pusher: bool,
    /// `signatureVerification.verifyTimestamp`: when a `notary.x509` signature's RFC 3161
    /// timestamp is checked (where a `tsa:` store is listed).
    pub verify_timestamp: VerifyTimestamp,
}

/// notation's `verifyTimestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyTimestamp {
    /// Always (the default): a signature must carry a timestamp, and the timestamp, not
    /// the present, is when its certificates must have been valid.
    #[default]
    Always,
    /// Only once a certificate of the signing chain has expired; until then the chain
    /// must be valid now.
    AfterCertExpiry,
}

/// A validated trust policy document.
#[derive(Debug, Clone)]
pub struct TrustPolicyDocument {
    pub policies: Vec<TrustPolicy>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("trust policy is not valid JSON of the trustpolicy.json schema: {0}")]
    Json(serde_json::Error),
    #[error("trust policy version '{0}' is not supported (use \"1.0\")")]
    Version(String),
    #[error("trust policy has no statements")]
    Empty,
    #[error("trust policy statement {0} has an empty name")]
    EmptyName(usize),
    #[error("two trust policy statements are named '{0}'; names must be unique")]
    DuplicateName(String),
    #[error("trust policy statement '{policy}': {reason}")]
    Statement { policy: String, reason: String },
    #[error("registry scope '{scope}' appears in statements '{first}' and '{second}'; a scope may be covered by one statement only")]
    OverlappingScope {
        scope: String,
        first: String,
        second: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDocument {
    version: String,
    trust_policies: Vec<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPolicy {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: RawVerification,
    #[serde(default)]
    trust_stores: Option<Vec<String>>,
    #[serde(default)]
    trusted_identities: Option<Vec<String>>,
    #[serde(default)]
    signatures_required: Option<u32>,
    #[serde(default)]
    required_identities: Option<Vec<String>>,
    #[serde(default, rename = "bonded.unsignedPush")]
    unsigned_push: Option<String>,
    #[serde(default, rename = "bonded.enforceOnPull")]
    enforce_on_pull: Option<bool>,
    #[serde(default, rename = "bonded.signerMustNotBePusher")]
    signer_must_not_be_pusher: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVerification {
    level: String,
    #[serde(default, rename = "override")]
    overrides: BTreeMap<String, String>,
    #[serde(default)]
    verify_timestamp: Option<String>,
}

fn statement(raw: RawPolicy) -> Result<TrustPolicy, String> {
    let level = match raw.signature_verification.level.as_str() {
        "strict" => Level::Strict,
        "permissive" => Level::Permissive,
        "audit" => Level::Audit,
        "skip" => Level::Skip,
        other => {
            return Err(format!(
                "verification level '{other}' is not one of strict, permissive, audit, skip"
            ))
        }
    };
    let mut actions = level.actions();
    if level == Level::Skip && !raw.signature_verification.overrides.is_empty() {
        return Err("a skip level cannot have overrides".into());
    }
    for (check, action) in &raw.signature_verification.overrides {
        let action = match action.as_str() {
            "enforce" => Action::Enforce,
            "log" => Action::Log,
            "skip" => Action::Skip,
            other => {
                return Err(format!(
                    "override '{check}: {other}' must be enforce, log or skip"
                ))
            }
        };
        let slot = match check.as_str() {
            "integrity" => return Err("integrity verification can not be overridden".into()),
            "authenticity" => &mut actions.authenticity,
            "authenticTimestamp" => &mut actions.authentic_timestamp,
            "expiry" => &mut actions.expiry,
            "revocation" => &mut actions.revocation,
            other => {
                return Err(format!(
                    "'{other}' is not a verification check that can be overridden"
                ))
            }
        };
        *slot = action;
    }
    let verify_timestamp = match raw.signature_verification.verify_timestamp.as_deref() {
        None | Some("always") => VerifyTimestamp::Always,
        Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
        Some(v) => {
            return Err(format!(
                "verifyTimestamp '{v}' must be always or afterCertExpiry"
            ))
        }
    };

    if raw.registry_scopes.is_empty() {
        return Err("registryScopes is empty".into());
    }
    let mut scopes = Vec::new();
    for s in &raw.registry_scopes {
        let scope = parse_scope(s)?;
        if scopes.contains(&scope) {
            return Err(format!("registry scope '{s}' is listed twice"));
        }
        scopes.push(scope);
    }
    if scopes.len() > 1 && scopes.contains(&Scope::Any) {
        return Err("the wildcard scope '*' must be the statement's only scope".into());
    }

    let unsigned_push = match raw.unsigned_push.as_deref() {
        Some("reject") => UnsignedPush::Reject,
        None | Some("quarantine") => UnsignedPush::Quarantine,
        Some(other) => {
            return Err(format!(
                "bonded.unsignedPush '{other}' must be reject or quarantine"
            ))
        }
    };
    let enforce_on_pull = raw.enforce_on_pull.unwrap_or(false);
    let signer_must_not_be_pusher = raw.signer_must_not_be_pusher.unwrap_or(false);
    let stores = raw.trust_stores.unwrap_or_default();
    let identities = raw.trusted_identities.unwrap_or_default();
    if level == Level::Skip {
        if !stores.is_empty() || !identities.is_empty() {
            return Err("a skip level must not list trustStores or trustedIdentities".into());
        }
        if raw.signatures_required.is_some() || raw.required_identities.is_some() {
            return Err("a skip level must not require signatures".into());
        }
        return Ok(TrustPolicy {
            name: raw.name,
            scopes,
            level,
            actions,
            trust_stores: Vec::new(),
            trusted_identities: TrustedIdentities::List(Vec::new()),
            signatures_required: 0,
            required_identities: Vec::new(),
            unsigned_push,
            enforce_on_pull,
            signer_must_not_be_pusher,
            verify_timestamp,
        });
    }
    if stores.is_empty() {
        return Err("trustStores is empty: list at least one, e.g. ca:release".into());
    }
    let mut trust_stores = Vec::new();
    for s in &stores {
        let r: StoreRef = s.parse()?;
        if trust_stores.contains(&r) {
            return Err(format!("trust store '{s}' is listed twice"));
        }
        trust_stores.push(r);
    }
    if !trust_stores.iter().any(|s| s.kind != StoreType::Tsa) {
        return Err(
            "trustStores lists only tsa stores; a ca, signingAuthority or cosign store is required"
                .into(),
        );
    }
    if identities.is_empty() {
        return Err("trustedIdentities is empty: list identities or \"*\"".into());
    }
    let trusted_identities = if identities.iter().any(|i| i == "*") {
        if identities.len() > 1 {
            return Err(
                "the wildcard identity '*' must be the statement's only trusted identity".into(),
            );
        }
        TrustedIdentities::Any
    } else {
        let mut list: Vec<TrustedIdentity> = Vec::new();
        for i in &identities {
            let id = TrustedIdentity::parse(i)?;
            let overlap = list.iter().find(|o| match (o, &id) {
                (TrustedIdentity::X509(a), TrustedIdentity::X509(b)) => {
                    a.matches(&b.subject) || b.matches(&a.subject)
                }
                (a, b) => *a == b,
            });
            if let Some(other) = overlap {
                return Err(format!("trusted identities '{other}' and '{id}' overlap"));
            }
            list.push(id);
        }
        TrustedIdentities::List(list)
    };
    let signatures_required = raw.signatures_required.unwrap_or(1);
    if signatures_required == 0 {
        return Err("signaturesRequired must be at least 1".into());
    }
    if let TrustedIdentities::List(list) = &trusted_identities {
        if signatures_required as usize > list.len() {
            return Err(format!(
                "signaturesRequired is {signatures_required} but only {} identities are trusted: the policy could never be met",
                list.len()
            ));
        }
    }
    let mut required_identities = Vec::new();
    for r in raw.required_identities.unwrap_or_default() {
        let id = TrustedIdentity::parse(&r)?;
        let trusted = match &id {
            TrustedIdentity::X509(x) => trusted_identities.find(&x.subject).is_some(),
            TrustedIdentity::CosignKey(k) => trusted_identities.trusts(&Signer::CosignKey(k)),
            // A pattern is trusted when `*` is, or the same entry is listed.
            TrustedIdentity::Sigstore(_) => match &trusted_identities {
                TrustedIdentities::Any => true,
                TrustedIdentities::List(list) => list.contains(&id),
            },
        };
        if !trusted {
            return Err(format!(
                "required identity '{id}' is not among the trusted identities"
            ));
        }
        required_identities.push(id);
    }
    Ok(TrustPolicy {
        name: raw.name,
        scopes,
        level,
        actions,
        trust_stores,
        trusted_identities,
        signatures_required,
        required_identities,
        unsigned_push,
        enforce_on_pull,
        signer_must_not_be_pusher,
        verify_timestamp,
    })
}

impl TrustPolicyDocument {
    /// Parses and validates a `trustpolicy.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyError> {
        let raw: RawDocument = serde_json::from_slice(bytes).map_err(PolicyError::Json)?;
        if raw.version != "1.0" {
            return Err(PolicyError::Version(raw.version));
        }
        if raw.trust_policies.is_empty() {
            return Err(PolicyError::Empty);
        }
        let mut policies: Vec<TrustPolicy> = Vec::new();
        for (i, p) in raw.trust_policies.into_iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(PolicyError::EmptyName(i));
            }
            if policies.iter().any(|q| q.name == p.name) {
                return Err(PolicyError::DuplicateName(p.name));
            }
            let name = p.name.clone();
            let policy = statement(p).map_err(|reason| PolicyError::Statement {
                policy: name,
                reason,
            })?;
            for scope in &policy.scopes {
                if let Some(other) = policies.iter().find(|q| q.scopes.contains(scope)) {
                    return Err(PolicyError::OverlappingScope {
                        scope: scope.to_string(),
                        first: other.name.clone(),
                        second: policy.name.clone(),
                    });
                }
            }
            policies.push(policy);
        }
        Ok(TrustPolicyDocument { policies })
    }

    /// The policy covering `scope` (`registry/repository`): an exact scope, else the
    /// longest namespace prefix, else `*`.
    pub fn policy_for(&self, scope: &str) -> Option<&TrustPolicy> {
        let covers = |wanted: &dyn Fn(&Scope) -> bool| {
            self.policies.iter().find(|p| p.scopes.iter().any(wanted))
        };
        if let Some(p) = covers(&|s| matches!(s, Scope::Exact(e) if e == scope)) {
            return Some(p);
        }
        let best_prefix = self
            .policies
            .iter()
            .flat_map(|p| p.scopes.iter().map(move |s| (p, s)))
            .filter_map(|(p, s)| match s {
                Scope::Prefix(pre) if scope.starts_with(pre.as_str()) => Some((pre.len(), p)),
                _ => None,
            })
            .max_by_key(|(len, _)| *len);
        if let Some((_, p)) = best_prefix {
            return Some(p);
        }
        covers(&|s| *s == Scope::Any)
    }
}

#[cfg(test)]
mod tests {

    /// Every trust policy docs/trust-policy.md shows parses: its examples cannot drift
    /// from what bonded accepts.
    #[test]
    fn the_documented_examples_parse() {
        let doc = include_str!("../../docs/trust-policy.md");
        let mut n = 0;
        for block in doc.split("```json").skip(1) {
            let json = block.split("```").next().unwrap();
            if json.contains("trustPolicies") {
                TrustPolicyDocument::parse(json.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}: {json}"));
                n += 1;
            }
        }
        assert!(n >= 3, "{n} examples");
    }
    use super::*;
    use crate::test_vectors as vectors;

    fn load(name: &str) -> Result<TrustPolicyDocument, PolicyError> {
        let path = vectors::path()
            .join("notation-e2e/trustpolicies")
            .join(name);
        TrustPolicyDocument::parse(&std::fs::read(path).unwrap())
    }

    #[test]
    fn notation_fixtures_that_notation_accepts_load() {
        if vectors::dir().is_none() {
            return;
        }
        for f in [
            "trustpolicy.json",
            "permissive_trustpolicy.json",
            "audit_trustpolicy.json",
            "skip_trustpolicy.json",
            "override_strict_trustpolicy.json",
            "override_permissive_trustpolicy.json",
            "override_audit_trustpolicy.json",
            "registry_scope_trustpolicy.json",
            "multiple_registry_scope_trustpolicy.json",
            "multiple_trust_store_trustpolicy.json",
            "multiple_trusted_identity_trustpolicy.json",
            "multi_statements_with_wildcard_registry_scope_trustpolicy.json",
            "valid_trusted_identity_trustpolicy.json",
            "invalid_trusted_identity_trustpolicy.json",
            "invalid_trust_store_trustpolicy.json",
            "invalid_registry_scope_trustpolicy.json",
            "timestamp_trustpolicy.json",
            "quickstart_trustpolicy.json",
        ] {
            load(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn notation_fixtures_that_notation_refuses_are_refused() {
        if vectors::dir().is_none() {
            return;
        }
        for (f, says) in [
            ("invalid_format_trustpolicy.json", "not valid JSON"),
            (
                "malformed_registry_scope_trustpolicy.json",
                "registry scope",
            ),
            ("malformed_trust_store_trustpolicy.json", "invalid name"),
            (
                "malformed_trusted_identity_trustpolicy.json",
                "x509.subject:",
            ),
            (
                "empty_registry_scope_trustpolicy.json",
                "registryScopes is empty",
            ),
            ("empty_trusted_identity_trustpolicy.json", "x509.subject:"),
            ("unset_trust_store_trustpolicy.json", "trustStores is empty"),
            (
                "unset_trusted_identity_trustpolicy.json",
                "trustedIdentities is empty",
            ),
            ("overlapped_trust_store_trustpolicy.json", "listed twice"),
            ("overlapped_trusted_identity_trustpolicy.json", "overlap"),
            ("wildcard_trust_store_trustpolicy.json", "TYPE:NAME"),
            (
                "wildcard_plus_other_registry_scope_trustpolicy.json",
                "only scope",
            ),
            (
                "wildcard_plus_other_trusted_identity_trustpolicy.json",
                "only trusted identity",
            ),
            (
                "multi_statements_with_the_same_name_trustpolicy.json",
                "unique",
            ),
            (
                "multi_statements_with_the_same_registry_scope_trustpolicy.json",
                "one statement only",
            ),
            (
                "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json",
                "one statement only",
            ),
            (
                "missing_country_trusted_identity_trustpolicy.json",
                "lacks C",
            ),
            (
                "missing_state_trusted_identity_trustpolicy.json",
                "lacks ST",
            ),
            (
                "missing_organization_trusted_identity_trustpolicy.json",
                "lacks O",
            ),
            (
                "override_integrity_for_permissive_trustpolicy.json",
                "integrity verification can not be overridden",
            ),
        ] {
            match load(f) {
                Ok(_) => panic!("{f} was accepted"),
                Err(e) => assert!(
                    e.to_string().contains(says),
                    "{f}: '{e}' does not say '{says}'"
                ),
            }
        }
    }

    #[test]
    fn levels_and_overrides_set_actions() {
        if vectors::dir().is_none() {
            return;
        }
        let strict = load("override_strict_trustpolicy.json").unwrap();
        let a = strict.policies[0].actions;
        assert_eq!(a.integrity, Action::Enforce);
        assert_eq!(a.authenticity, Action::Log);
        assert_eq!(a.expiry, Action::Log);
        let permissive = load("permissive_trustpolicy.json").unwrap();
        let a = permissive.policies[0].actions;
        assert_eq!((a.authenticity, a.expiry), (Action::Enforce, Action::Log));
        let audit = load("audit_trustpolicy.json").unwrap();
        assert_eq!(audit.policies[0].actions.authenticity, Action::Log);
    }

    #[test]
    fn scopes_match_exact_then_longest_prefix_then_wildcard() {
        let doc = TrustPolicyDocument::parse(br#"{"version":"1.0","trustPolicies":[
            {"name":"rest","registryScopes":["*"],"signatureVerification":{"level":"strict"},
             "trustStores":["ca:r"],"trustedIdentities":["*"]},
            {"name":"prod","registryScopes":["reg.io/acme/prod/*"],"signatureVerification":{"level":"strict"},
             "trustStores":["ca:r"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme, CN=alice","x509.subject: C=US, ST=WA, O=Acme, CN=bob"],
             "signaturesRequired":2,"requiredIdentities":["x509.subject: C=US, ST=WA, O=Acme, CN=alice"]},
            {"name":"prod-db","registryScopes":["reg.io/acme/prod/db/*"],"signatureVerification":{"level":"permissive"},
             "trustStores":["ca:r"],"trustedIdentities":["*"]},
            {"name":"one","registryScopes":["reg.io/acme/prod/special"],"signatureVerification":{"level":"audit"},
             "trustStores":["ca:r"],"trustedIdentities":["*"]}
        ]}"#).unwrap();
        let name = |s: &str| doc.policy_for(s).map(|p| p.name.as_str());
        assert_eq!(name("reg.io/acme/prod/app"), Some("prod"));
        assert_eq!(name("reg.io/acme/prod/a/b/c"), Some("prod"));
        assert_eq!(name("reg.io/acme/prod/db/main"), Some("prod-db"));
        assert_eq!(name("reg.io/acme/prod/special"), Some("one"));
        assert_eq!(name("reg.io/acme/production"), Some("rest"));
        assert_eq!(name("other.io/acme/prod/app"), Some("rest"));
        let prod = doc.policy_for("reg.io/acme/prod/app").unwrap();
        assert_eq!(prod.signatures_required, 2);
        assert_eq!(prod.required_identities.len(), 1);
    }

    #[test]
    fn impossible_k_of_n_is_refused() {
        let err = TrustPolicyDocument::parse(br#"{"version":"1.0","trustPolicies":[
            {"name":"p","registryScopes":["reg.io/a"],"signatureVerification":{"level":"strict"},
             "trustStores":["ca:r"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme, CN=alice"],
             "signaturesRequired":2}]}"#).unwrap_err();
        assert!(err.to_string().contains("could never be met"), "{err}");
        let err = TrustPolicyDocument::parse(br#"{"version":"1.0","trustPolicies":[
            {"name":"p","registryScopes":["reg.io/a"],"signatureVerification":{"level":"strict"},
             "trustStores":["ca:r"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme, CN=alice"],
             "requiredIdentities":["x509.subject: C=US, ST=WA, O=Other, CN=eve"]}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("not among the trusted identities"),
            "{err}"
        );
    }
}
