//! Bodies of bonded's own API (`/bonded/v1`) as types the server writes and the CLI
//! reads, so the two cannot disagree about a field's name or meaning.

use serde::{Deserialize, Serialize};

/// The answer to a trust change (`PUT`/`DELETE /bonded/v1/trust/...`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustChangeAnswer {
    /// The trust configuration's version now in force.
    pub version: i64,
    /// How many stored signatures were verified again under it.
    pub reevaluated_signatures: usize,
    /// Which published images the configuration no longer accepts.
    pub noncompliant: Compliance,
}

/// A trust change whose re-evaluation has not finished within the wait
/// (`202 Accepted` to the change), and `GET /bonded/v1/trust/job`: where the latest
/// change's re-evaluation is. The version is in force either way.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustJobAnswer {
    pub version: i64,
    /// `running`, `done`, `superseded` (a newer change's job covers it) or `failed`.
    pub state: String,
    /// Stored signatures verified again so far, and found so far.
    pub reevaluated_so_far: usize,
    pub signatures_found: usize,
    /// When done: what a change answers when it finishes within the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TrustChangeAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which published images the trust configuration in force does not accept
/// (`GET /bonded/v1/trust/noncompliant`, and part of every trust change's answer).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compliance {
    /// Whether a trust policy is in force at all (without one nothing is checked).
    pub enforced: bool,
    /// The trust configuration's version the report is for.
    pub trust_version: Option<i64>,
    /// Published tags looked at: all of them.
    pub checked_tags: u64,
    /// Published tags the configuration does not accept: all of them, listed or not.
    pub noncompliant_tags: u64,
    /// The first of them, in (repository, tag) order, at most the limit asked for.
    pub images: Vec<NoncompliantImage>,
    /// Whether more are not listed (ask with a larger `limit`).
    pub truncated: bool,
}

/// One published tag the trust configuration does not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoncompliantImage {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// The policy statement covering the repository; `None` when none does.
    pub policy: Option<String>,
    /// Why it is not accepted, in the policy evaluator's words.
    pub reason: String,
    /// Whether pulls of it are refused now (`bonded.enforceOnPull`); otherwise it is
    /// still served, and refused only when pushed or tagged again.
    pub pulls_refused: bool,
}

/// What a repository holds back until signed (`GET /bonded/v1/repositories/<name>/pending`,
/// `bonded pending`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReport {
    pub repository: String,
    /// Manifests stored but not admitted: not pullable (except by digest, to those who may
    /// push or sign them, so they can be signed in place), not listed, counted in quotas.
    pub pending: Vec<PendingManifest>,
    /// Tags pushed for a manifest the policy does not accept yet; the tag's published
    /// manifest, if any, is served until then.
    pub waiting_tags: Vec<WaitingTag>,
    /// Whether either list was cut at [`PENDING_LIMIT`] entries.
    pub truncated: bool,
}

/// Most entries of each list in a [`PendingReport`].
pub const PENDING_LIMIT: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingManifest {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// RFC 3339 UTC: since when (its last push) it has been pending.
    pub pending_since: String,
    /// What the trust policy still asks for, in the evaluator's words.
    pub needs: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingTag {
    pub tag: String,
    /// The manifest the tag will name once it is accepted.
    pub digest: String,
    /// RFC 3339 UTC of the push.
    pub since: String,
    pub pushed_by: Option<String>,
    /// What the trust policy still asks for, in the evaluator's words.
    pub needs: String,
}

/// `POST /bonded/v1/gc`: what one garbage collection run removed (or, a dry run, would
/// remove). The counts are exact; `removed` lists at most the first 10,000 items.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub dry_run: bool,
    pub grace_period_seconds: u64,
    pub manifests_removed: u64,
    /// Repository links to blobs no manifest of the repository references.
    pub links_removed: u64,
    /// Blobs whose bytes were removed: no repository links them.
    pub blobs_removed: u64,
    /// Stored bytes no record named (a push interrupted between commit and record).
    pub leftovers_removed: u64,
    pub bytes_freed: u64,
    pub removed: Vec<GcItem>,
    pub seconds: f64,
}

/// `202 Accepted` to `POST /bonded/v1/gc` (and `GET` while it runs): the run goes on;
/// `GET /bonded/v1/gc` answers its report once it ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcRunning {
    pub state: String,
}

/// One thing garbage collection removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcItem {
    /// `manifest`, `blob` or `leftover`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `tag` (retention): the tag removed; `digest` is what it pointed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: String,
    pub reason: String,
}

/// A retention rule (`GET/POST/DELETE /bonded/v1/retention`): in the repositories
/// `pattern` matches (the most specific pattern wins), the `keepLast` images most recently
/// tagged keep their tags, tags matching `keepTags` are kept whatever their age, and the
/// other tags are removed, with the manifests nothing else keeps; untagged manifests last
/// pushed more than `untaggedAfterSeconds` ago go too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRule {
    pub pattern: String,
    pub keep_last: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_tags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged_after_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<crate::db::RetentionRule> for RetentionRule {
    fn from(r: crate::db::RetentionRule) -> Self {
        RetentionRule {
            pattern: r.pattern,
            keep_last: r.keep_last.clamp(0, u32::MAX as i64) as u32,
            keep_tags: r.keep_tags,
            untagged_after_seconds: r.untagged_after.map(|s| s.max(0) as u64),
            created_at: time::OffsetDateTime::from_unix_timestamp(r.created_at)
                .ok()
                .map(crate::timefmt::rfc3339),
            created_by: Some(r.created_by),
        }
    }
}

/// `GET /bonded/v1/retention`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRules {
    pub rules: Vec<RetentionRule>,
}

/// `POST /bonded/v1/retention/run`: the tags and manifests one run removed (a dry run:
/// would remove). Counts are exact; `removed` lists at most the first 10,000. Blobs the
/// removed manifests alone used are freed by the next garbage collection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    pub dry_run: bool,
    pub tags_removed: u64,
    pub manifests_removed: u64,
    pub removed: Vec<GcItem>,
    pub seconds: f64,
}

/// An immutability rule (`GET/POST/DELETE /bonded/v1/immutable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImmutableRule {
    /// Repositories: `*`, `NAMESPACE/*` or one repository.
    pub pattern: String,
    /// Glob over tag names (`*`, `?`).
    pub tags: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<crate::db::ImmutableRule> for ImmutableRule {
    fn from(r: crate::db::ImmutableRule) -> Self {
        ImmutableRule {
            pattern: r.pattern,
            tags: r.tags,
            created_at: time::OffsetDateTime::from_unix_timestamp(r.created_at)
                .ok()
                .map(crate::timefmt::rfc3339),
            created_by: Some(r.created_by),
        }
    }
}

/// `GET /bonded/v1/immutable`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImmutableRules {
    pub rules: Vec<ImmutableRule>,
}

/// The answer to adding or removing a rule: whether anything changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    pub changed: bool,
}

/// `POST /bonded/v1/scrub`: every stored blob re-hashed and the database checked against
/// the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrubReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Every problem found (at most 10,000 listed; `problemCount` is exact).
    pub problems: Vec<ScrubProblem>,
    pub problem_count: u64,
    pub seconds: f64,
}

/// One thing scrub found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrubProblem {
    /// `corrupt` (bytes hash to another digest), `missing` (recorded, no bytes), `size`
    /// (bytes of another length than recorded), `unrecorded` (bytes no record names).
    pub kind: String,
    pub digest: String,
    /// Repositories that link the blob.
    pub repositories: Vec<String>,
    pub detail: String,
}
