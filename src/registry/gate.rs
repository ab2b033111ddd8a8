//! Admission: the trust policy applied to manifest pushes.
//!
//! - A repository no policy covers is refused whenever a policy is loaded (fail closed).
//! - A Notary signature manifest is verified when pushed; under strict and permissive
//!   levels an enforced failure refuses it and nothing is stored. Its subject need not
//!   exist yet, so signatures can be pushed first.
//! - A cosign signature manifest (a referrer of cosign's artifact type, or under
//!   `sha256-<hex>.sig`) has every layer verified; under strict and permissive levels it
//!   is refused, storing nothing, when no layer is accepted. It is never a tagged image.
//! - Any other manifest is admitted if the signatures stored for its digest, verified again
//!   now, satisfy the policy. If they do not, it is held as pending (stored, so it can be
//!   signed in place: never lost, never pullable) and its tags wait for it, beside the
//!   manifests they name now. Pushed by digest, or with a tag under
//!   `"bonded.unsignedPush": "quarantine"` (the default), the client is told so in a
//!   `Warning`; with a tag under `"reject"` it gets 403 naming the stored digest to sign.
//!   Pending manifests are admitted when enough signatures arrive or an admitted index
//!   references them; waiting tags are published when the policy is met.

use super::{Registry, RegistryError};
use crate::db::SignatureRecord;
use crate::oci::{Digest, ParsedManifest, RepositoryName};
use crate::trust::policy::{Level, TrustPolicy, TrustPolicyDocument, UnsignedPush};
use crate::trust::signatures::SignatureSet;
use crate::trust::store::TrustStores;
use crate::trust::verify::{
    decide, notary_signature, verify_signature, Check, SignatureManifest, SignatureVerdict, Subject,
};
use crate::trust::{cosign, NOTARY_SIGNATURE};
use futures_util::TryStreamExt;
use serde_json::json;
use time::OffsetDateTime;

/// What becomes of the tags of a push the gate lets through. There is no default: every
/// path through the gate says which, and an enforcing policy publishes only on the
/// evaluator's proof.
#[derive(Debug)]
pub(super) enum TagRelease {
    /// Published: the policy accepted the digest's signatures.
    Accepted(crate::trust::verify::Accepted),
    /// Published: no policy enforces here (no trust configured, level skip or audit).
    NotEnforced,
    /// Published: a signature manifest under its own tag (cosign's `.sig`), or signature
    /// bookkeeping, which the gate verified as such (its tags name no image).
    Signature,
    /// Stored; the tags wait for signatures.
    Wait,
}

/// What the gate decided about a push it lets through.
#[derive(Debug)]
pub(super) struct Admission {
    /// For a verified signature manifest: what the signature store keeps, one record per
    /// signature it holds.
    pub signatures: Vec<SignatureRecord>,
    /// Held as pending until signed.
    pub pending: bool,
    /// What becomes of the push's tags.
    pub tags: TagRelease,
    /// Said to the client in a `Warning` header.
    pub warning: Option<String>,
    /// Stored (pending, tags waiting), yet answered with this refusal
    /// (`"bonded.unsignedPush": "reject"`).
    pub refusal: Option<RegistryError>,
}

impl Admission {
    /// A push with no signatures to keep, its tags released as `tags` says.
    pub(super) fn release(tags: TagRelease) -> Admission {
        Admission {
            signatures: Vec::new(),
            pending: false,
            tags,
            warning: None,
            refusal: None,
        }
    }

    /// A verified signature manifest: its records; its own tags (if any) published.
    fn signature(signatures: Vec<SignatureRecord>) -> Admission {
        Admission {
            signatures,
            ..Admission::release(TagRelease::Signature)
        }
    }
}

use crate::trust::signatures::MAX_ENVELOPE;

/// What the gate enforces.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The policy as given (what is recorded and shown).
    pub policy_text: String,
    pub policy: TrustPolicyDocument,
    pub stores: TrustStores,
    /// The registry's public host name: policies' scopes are matched against
    /// `<hostname>/<repository>`.
    pub hostname: String,
    /// The recorded version (`trust_versions`) this configuration is; stored verdicts made
    /// under another version are not used.
    pub version: i64,
}

use crate::timefmt::rfc3339;

/// What the signature store keeps of a signature manifest's signatures, one record per
/// verdict in order: what is shown, and the verdict the gate decides from, with the trust
/// version and policy it was made under (and the subject's media type and size where the
/// manifest names them).
fn signature_records(
    digest: &Digest,
    sigs: &SignatureSet,
    policy: &TrustPolicy,
    trust: &TrustConfig,
    verdicts: &[SignatureVerdict],
    now: OffsetDateTime,
) -> Vec<SignatureRecord> {
    let subject = sigs.subject();
    let described = sigs.subject_descriptor();
    verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| SignatureRecord {
            subject_media_type: described.map(|d| d.media_type.clone()),
            subject_size: described.map(|d| d.size),
            ..record_of(digest, i as u32, &subject, policy, trust, v, now)
        })
        .collect()
}

/// [`signature_records`] of a stored Notary signature's one verdict.
fn record(
    digest: &Digest,
    sig: &SignatureManifest,
    policy: &TrustPolicy,
    trust: &TrustConfig,
    v: &SignatureVerdict,
    now: OffsetDateTime,
) -> SignatureRecord {
    let set = SignatureSet::Notary(sig.clone());
    signature_records(digest, &set, policy, trust, std::slice::from_ref(v), now).remove(0)
}

/// [`signature_records`] of a stored cosign signature manifest.
fn cosign_records(
    digest: &Digest,
    sigs: &cosign::CosignSignatures,
    policy: &TrustPolicy,
    trust: &TrustConfig,
    verdicts: &[SignatureVerdict],
    now: OffsetDateTime,
) -> Vec<SignatureRecord> {
    let set = SignatureSet::Cosign(sigs.clone());
    signature_records(digest, &set, policy, trust, verdicts, now)
}

/// The record of signature `layer` of manifest `digest`, signing `subject`, whatever its
/// format (the subject's media type and size are the caller's to add where the signature
/// names them; a cosign payload names the digest only).
fn record_of(
    digest: &Digest,
    layer: u32,
    subject: &str,
    policy: &TrustPolicy,
    trust: &TrustConfig,
    v: &SignatureVerdict,
    now: OffsetDateTime,
) -> SignatureRecord {
    SignatureRecord {
        digest: digest.to_string(),
        layer,
        subject: subject.to_string(),
        format: v.format().into(),
        signer: v.signer_name(),
        thumbprints: v.thumbprints.clone(),
        algorithm: v.algorithm_name(),
        signing_time: v.signing_time.map(rfc3339),
        checks: v.checks_json(),
        accepted: v.accepted(),
        policy: policy.name.clone(),
        verified_at: rfc3339(now),
        verdict: serde_json::to_string(v).ok(),
        trust_version: Some(trust.version),
        subject_media_type: None,
        subject_size: None,
    }
}

/// What a tagged push is under the referrers tag schema (OCI Distribution v1.1: the tag
/// `<alg>-<hex>` names an index of the referrers of `<alg>:<hex>`, kept by clients such as
/// notation, whose `--force-referrers-tag` is on by default, for registries without the
/// referrers API).
#[derive(Debug)]
pub(super) enum TagSchemaIndex {
    /// Not an index under a referrers tag: an image or index like any other.
    No,
    /// An index listing only signatures of the subject stored in the repository: signature
    /// bookkeeping, not an image. Pushed by whoever may sign; the gate does not ask it for
    /// signatures of its own.
    Signatures,
    /// An index under a referrers tag that lists something else: refused, with why.
    Refused(String),
}

/// The subject a referrers-schema tag names: `sha256-<hex>` is `sha256:<hex>`.
pub(super) fn referrers_tag_subject(tag: &str) -> Option<Digest> {
    let (alg, hex) = tag.split_once('-')?;
    format!("{alg}:{hex}").parse().ok()
}

fn denied(message: String, detail: serde_json::Value) -> RegistryError {
    RegistryError::Denied { message, detail }
}

/// The name of the check a verdict failed on, for error details.
fn failed_check(v: &SignatureVerdict) -> &'static str {
    [
        ("integrity", &v.integrity),
        ("authenticity", &v.authenticity),
        ("expiry", &v.expiry),
        ("authenticTimestamp", &v.authentic_timestamp),
    ]
    .into_iter()
    .find(|(_, c)| matches!(c, Check::Failed(_)))
    .map(|(n, _)| n)
    .unwrap_or("none")
}

impl Registry {
    /// Under `bonded.signerMustNotBePusher`: refuses a signature pushed by the account that
    /// pushed its subject. Fails closed when either is unknown (anonymous, or the subject
    /// not pushed yet).
    async fn separate_duties(
        &self,
        policy: &crate::trust::policy::TrustPolicy,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<(), RegistryError> {
        let signer = super::CLIENT
            .try_with(|c| c.actor.clone())
            .unwrap_or_else(|_| "anonymous".into());
        let pusher = self.db.manifest_pusher(repo, subject).await?;
        let why = match pusher.as_deref() {
            None => format!(
                "push {subject} before its signatures: policy '{}' needs to know who pushed it (bonded.signerMustNotBePusher)",
                policy.name
            ),
            Some(_) if signer == "anonymous" => format!(
                "policy '{}' separates pushers from signers (bonded.signerMustNotBePusher): log in to push signatures",
                policy.name
            ),
            Some(p) if p == signer || p == "anonymous" => format!(
                "signature refused by policy '{}': '{signer}' pushed {subject} and may not also sign it (bonded.signerMustNotBePusher); another account must sign",
                policy.name
            ),
            Some(_) => return Ok(()),
        };
        Err(denied(
            why.clone(),
            json!({ "policy": policy.name, "check": "separationOfDuties", "reason": why, "pusher": pusher, "signer": signer }),
        ))
    }

    /// Decides whether a manifest push may proceed, with `tags`. For a signature manifest,
    /// returns what verification found, for the signature store.
    pub(super) async fn admit(
        &self,
        trust: &TrustConfig,
        repo: &RepositoryName,
        digest: &Digest,
        parsed: &ParsedManifest,
        size: u64,
        tags: &[crate::oci::Tag],
    ) -> Result<Admission, RegistryError> {
        let tagged = !tags.is_empty();
        let scope = format!("{}/{}", trust.hostname, repo);
        let policy = trust.policy.policy_for(&scope).ok_or_else(|| {
            denied(
                format!("no trust policy covers {scope}; this registry admits only repositories a policy covers"),
                json!({ "scope": scope }),
            )
        })?;
        let now = OffsetDateTime::now_utc();
        let enforcing = matches!(policy.level, Level::Strict | Level::Permissive);

        let sig_tag = tags
            .iter()
            .map(|t| t.as_str())
            .find(|t| cosign::sig_tag_subject(t).is_some());
        match SignatureSet::find(parsed, sig_tag) {
            Err(why) => {
                return Err(denied(
                    why.clone(),
                    json!({ "policy": policy.name, "check": "integrity", "reason": why }),
                ))
            }
            Ok(Some(sigs)) => {
                if matches!(sigs, SignatureSet::Cosign(_)) {
                    if let Some(other) = tags.iter().find(|t| Some(t.as_str()) != sig_tag) {
                        return Err(denied(
                            format!("a cosign signature manifest may be tagged only sha256-<hex>.sig, not {other}"),
                            json!({ "policy": policy.name, "check": "integrity" }),
                        ));
                    }
                }
                return self
                    .admit_signatures(policy, trust, repo, digest, &sigs, enforcing, now)
                    .await;
            }
            Ok(None) => {}
        }
        if !enforcing {
            return Ok(Admission::release(TagRelease::NotEnforced));
        }
        let verdicts = self
            .verdicts_for(policy, trust, repo, digest, parsed.media_type, size, now)
            .await?;
        let decision = match crate::trust::verify::accept(policy, &digest.to_string(), &verdicts) {
            Ok(accepted) => {
                tracing::info!(
                    repository = %repo, digest = %digest, policy = %policy.name,
                    admitted = true, signers = ?accepted.signers(), "tag admission"
                );
                return Ok(Admission::release(TagRelease::Accepted(accepted)));
            }
            Err(decision) => decision,
        };
        tracing::info!(
            repository = %repo, digest = %digest, policy = %policy.name,
            admitted = false, signers = ?decision.signers, "tag admission"
        );
        let how =
            format!("sign {scope}@{digest} (for example with `notation sign` or `bonded sign`)");
        if !tagged {
            return Ok(Admission {
                pending: true,
                warning: Some(format!(
                    "held as pending until signed: {}; {how}",
                    decision.reason
                )),
                ..Admission::release(TagRelease::Wait)
            });
        }
        let waits = format!(
            "{}; the manifest is stored as pending and the tag waits for it: {how}, and the tag is published once the policy accepts the signatures",
            decision.reason
        );
        let refusal = (policy.unsigned_push == UnsignedPush::Reject).then(|| {
            denied(
                waits.clone(),
                json!({
                    "policy": policy.name,
                    "check": "signatures",
                    "signaturesRequired": policy.signatures_required,
                    "signers": decision.signers,
                    "stored": digest.to_string(),
                    "state": "pending",
                }),
            )
        });
        Ok(Admission {
            pending: true,
            tags: TagRelease::Wait,
            warning: Some(format!("tag waits for signatures: {waits}")),
            refusal,
            signatures: Vec::new(),
        })
    }

    /// A manifest stored in `repo`, parsed; `None` when it is not there or does not parse.
    async fn stored_parsed(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ParsedManifest>, RegistryError> {
        Ok(self
            .db
            .manifest_by_digest(repo, digest)
            .await?
            .and_then(|m| crate::oci::manifest::parse(None, &m.content).ok()))
    }

    /// A signature manifest's push, whatever its format: each signature verified (its blob
    /// read from the repository, bounded); refused under strict and permissive levels when
    /// one is not even a signature of the subject (integrity), or when none is accepted,
    /// so a push that proves nothing stores nothing. One record per signature, accepted or
    /// not (a cosign layer by a key the policy does not trust stays, as cosign appends to
    /// the `.sig` manifest).
    #[allow(clippy::too_many_arguments)]
    async fn admit_signatures(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        digest: &Digest,
        sigs: &SignatureSet,
        enforcing: bool,
        now: OffsetDateTime,
    ) -> Result<Admission, RegistryError> {
        if policy.level == Level::Skip {
            return Ok(Admission::release(TagRelease::Signature));
        }
        let noun = sigs.noun();
        let subject: Digest = sigs.subject().parse().map_err(|_| {
            denied(
                format!("{noun} names no valid subject ({})", sigs.subject()),
                json!({ "policy": policy.name, "check": "integrity" }),
            )
        })?;
        if policy.signer_must_not_be_pusher {
            self.separate_duties(policy, repo, &subject).await?;
        }
        let verdicts = self
            .verify_signature_blobs(policy, trust, repo, sigs, now)
            .await
            .map_err(|e| match e {
                RegistryError::Denied { message, .. } => denied(
                    message,
                    json!({ "policy": policy.name, "check": "integrity" }),
                ),
                other => other,
            })?;
        let accepted = verdicts.iter().filter(|v| v.accepted()).count();
        tracing::info!(
            repository = %repo, signature = %digest, subject = %subject, policy = %policy.name,
            signatures = verdicts.len(), accepted,
            signers = ?verdicts.iter().filter_map(|v| v.signer_name()).collect::<Vec<_>>(),
            "signature verified"
        );
        if enforcing {
            // Every signature must at least be a signature of this subject, whoever made
            // it: otherwise a trusted cosign layer copied from elsewhere could carry any
            // blob, typed as a payload, into a manifest served under the `.sig` tag.
            let several = verdicts.len() > 1;
            if let Some((i, v, why)) =
                verdicts
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| match &v.integrity {
                        Check::Failed(why) => Some((i, v, why.clone())),
                        _ => None,
                    })
            {
                let message = if several {
                    format!(
                        "{noun} refused by policy '{}': layer {i} is not a signature of {subject}: {why}",
                        policy.name
                    )
                } else {
                    format!("{noun} refused by policy '{}': {why}", policy.name)
                };
                return Err(denied(
                    message,
                    json!({ "policy": policy.name, "check": "integrity", "layer": i, "reason": why,
                        "signer": v.signer_name() }),
                ));
            }
            if accepted == 0 {
                let first = verdicts
                    .iter()
                    .find_map(|v| v.failure().map(|why| (v, why)));
                let (check, why, signer) = match first {
                    Some((v, why)) => (failed_check(v), why.to_string(), v.signer_name()),
                    None => ("integrity", "no signature verified".to_string(), None),
                };
                return Err(denied(
                    format!("{noun} refused by policy '{}': {why}", policy.name),
                    json!({ "policy": policy.name, "check": check, "reason": why, "signer": signer }),
                ));
            }
        }
        Ok(Admission::signature(signature_records(
            digest, sigs, policy, trust, &verdicts, now,
        )))
    }

    /// A stored cosign signature manifest verified again; `None` (logged) when a payload
    /// cannot be read, so it does not count.
    async fn reverify_cosign(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        sig_digest: &Digest,
        sigs: &cosign::CosignSignatures,
    ) -> Option<Vec<SignatureVerdict>> {
        match self.verify_cosign_layers(policy, trust, repo, sigs).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(signature = %sig_digest, error = %e, "stored cosign signature unreadable");
                None
            }
        }
    }

    /// Every signature of `sigs` verified under `policy` at `now`, its blob read from
    /// `repo` (at most [`SignatureSet::blobs`]' bound each).
    async fn verify_signature_blobs(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        sigs: &SignatureSet,
        now: OffsetDateTime,
    ) -> Result<Vec<SignatureVerdict>, RegistryError> {
        let mut verdicts = Vec::new();
        for (i, (blob, max)) in sigs.blobs().into_iter().enumerate() {
            let bytes = self.read_blob_bounded(repo, &blob.digest, max).await?;
            let crls = self
                .revocation_for(
                    policy,
                    sigs.revocation_sources(policy, &trust.stores, &bytes),
                )
                .await;
            let v = sigs.verify(i, policy, &trust.stores, &bytes, now, &crls);
            self.metrics.verified(v.format(), v.accepted());
            verdicts.push(v);
        }
        Ok(verdicts)
    }

    /// [`Self::verify_signature_blobs`] of a cosign signature manifest, now.
    async fn verify_cosign_layers(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        sigs: &cosign::CosignSignatures,
    ) -> Result<Vec<SignatureVerdict>, RegistryError> {
        let set = SignatureSet::Cosign(sigs.clone());
        self.verify_signature_blobs(policy, trust, repo, &set, OffsetDateTime::now_utc())
            .await
    }

    /// The policy covering `repo` and whether the signatures stored for `digest` satisfy it
    /// now; `None` without a trust policy.
    pub async fn verdict_now(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let Some(trust) = self.trust() else {
            return Ok(None);
        };
        let scope = format!("{}/{}", trust.hostname, repo);
        let Some(policy) = trust.policy.policy_for(&scope) else {
            return Ok(Some(json!({
                "policy": null, "admitted": false,
                "reason": format!("no trust policy covers {scope}"),
            })));
        };
        let stored = self.db.manifest_by_digest(repo, digest).await?;
        let (media_type, size) = match &stored {
            Some(m) => (m.media_type.clone(), m.content.len() as u64),
            None => {
                return Err(self
                    .manifest_unknown(repo, &crate::oci::Reference::Digest(digest.clone()))
                    .await)
            }
        };
        let now = OffsetDateTime::now_utc();
        let verdicts = self
            .verdicts_for(policy, &trust, repo, digest, &media_type, size, now)
            .await?;
        let d = decide(policy, &verdicts);
        Ok(Some(json!({
            "policy": policy.name,
            "level": policy.level.as_str(),
            "admitted": d.admitted,
            "reason": d.reason,
            "signers": d.signers,
            "evaluatedAt": rfc3339(now),
        })))
    }

    /// Whether the signatures stored for `digest` satisfy the policy covering `repo` now:
    /// the evaluator's proof, or why not and which policy. `Ok(None)` when no enforcing
    /// policy applies.
    pub(super) async fn satisfied_now(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        media_type: &str,
        size: u64,
    ) -> Result<Option<Result<crate::trust::verify::Accepted, (String, String)>>, RegistryError>
    {
        let Some(trust) = self.trust() else {
            return Ok(None);
        };
        let Some(policy) = trust
            .policy
            .policy_for(&format!("{}/{}", trust.hostname, repo))
        else {
            return Ok(None);
        };
        if !matches!(policy.level, Level::Strict | Level::Permissive) {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc();
        let verdicts = self
            .verdicts_for(policy, &trust, repo, digest, media_type, size, now)
            .await?;
        Ok(Some(
            crate::trust::verify::accept(policy, &digest.to_string(), &verdicts)
                .map_err(|d| (d.reason, policy.name.clone())),
        ))
    }

    /// Whether the policy covering `repo` asks for pulls to be re-checked.
    pub(super) fn enforces_on_pull(&self, repo: &RepositoryName) -> bool {
        self.trust().is_some_and(|t| {
            t.policy
                .policy_for(&format!("{}/{}", t.hostname, repo))
                .is_some_and(|p| {
                    p.enforce_on_pull && matches!(p.level, Level::Strict | Level::Permissive)
                })
        })
    }

    /// Verifies every stored signature again under the trust configuration in force and
    /// writes its record (a signature pushed before any policy gets its first). Returns how
    /// many were re-evaluated.
    pub async fn reevaluate_signatures(
        &self,
        job: &super::TrustJob,
    ) -> Result<usize, RegistryError> {
        let trust = self.trust();
        let now = OffsetDateTime::now_utc();
        let mut n = 0;
        let notary = self.db.all_referrers_of_type(NOTARY_SIGNATURE).await?;
        job.add_total(notary.len());
        for (repo, sig_digest) in notary {
            job.step()?;
            let (Ok(repo), Ok(sig_digest)) =
                (repo.parse::<RepositoryName>(), sig_digest.parse::<Digest>())
            else {
                continue;
            };
            let Some(parsed) = self.stored_parsed(&repo, &sig_digest).await? else {
                continue;
            };
            let Ok(Some(sig)) = notary_signature(&parsed) else {
                continue;
            };
            let covering = trust.as_ref().and_then(|t| {
                t.policy
                    .policy_for(&format!("{}/{}", t.hostname, repo))
                    .map(|p| (t.clone(), p.clone()))
            });
            let record = match covering {
                Some((t, policy)) if policy.level != Level::Skip => {
                    let v = match self
                        .verify_stored_envelope(&policy, &t, &repo, &sig, now)
                        .await
                    {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(signature = %sig_digest, error = %e, "stored signature unreadable");
                            continue;
                        }
                    };
                    record(&sig_digest, &sig, &policy, &t, &v, now)
                }
                other => {
                    let why = match other {
                        Some((_, p)) => format!("policy '{}' skips verification", p.name),
                        None => "no trust policy covers this repository".to_string(),
                    };
                    SignatureRecord {
                        digest: sig_digest.to_string(),
                        layer: 0,
                        subject: sig.subject.digest.to_string(),
                        format: "notary.jws".into(),
                        signer: None,
                        thumbprints: Vec::new(),
                        algorithm: None,
                        signing_time: None,
                        checks: json!({ "integrity": { "outcome": "notRun", "reason": why } }),
                        accepted: false,
                        policy: String::new(),
                        verified_at: rfc3339(now),
                        verdict: None,
                        trust_version: None,
                        subject_media_type: Some(sig.subject.media_type.clone()),
                        subject_size: Some(sig.subject.size),
                    }
                }
            };
            self.db.put_signature(&repo, &record).await?;
            n += 1;
        }
        n += self
            .reevaluate_cosign_signatures(trust.as_deref(), now, job)
            .await?;
        Ok(n)
    }

    /// [`Self::reevaluate_signatures`] for cosign: every referrer of cosign's artifact type
    /// and every manifest a `sha256-<hex>.sig` tag names, each layer verified again under
    /// the statement covering its repository and its record rewritten (records of
    /// repositories no enforcing statement covers are left as they are: nothing decides
    /// from them). Returns how many signatures.
    async fn reevaluate_cosign_signatures(
        &self,
        trust: Option<&TrustConfig>,
        now: OffsetDateTime,
        job: &super::TrustJob,
    ) -> Result<usize, RegistryError> {
        let Some(trust) = trust else {
            return Ok(0);
        };
        let mut manifests: Vec<(String, String, Option<String>)> = Vec::new();
        for artifact_type in cosign::SIGNATURE_ARTIFACTS {
            manifests.extend(
                self.db
                    .all_referrers_of_type(artifact_type)
                    .await?
                    .into_iter()
                    .map(|(repo, digest)| (repo, digest, None)),
            );
        }
        manifests.extend(
            self.db
                .all_sig_tags()
                .await?
                .into_iter()
                .map(|(repo, tag, digest)| (repo, digest, Some(tag))),
        );
        let mut n = 0;
        job.add_total(manifests.len());
        for (repo, sig_digest, tag) in manifests {
            job.step()?;
            let (Ok(repo), Ok(sig_digest)) =
                (repo.parse::<RepositoryName>(), sig_digest.parse::<Digest>())
            else {
                continue;
            };
            let Some(policy) = trust
                .policy
                .policy_for(&format!("{}/{}", trust.hostname, repo))
            else {
                continue;
            };
            if policy.level == Level::Skip {
                continue;
            }
            let Some(parsed) = self.stored_parsed(&repo, &sig_digest).await? else {
                continue;
            };
            let Ok(Some(sigs)) = cosign::cosign_signatures(&parsed, tag.as_deref()) else {
                continue;
            };
            let Some(verdicts) = self
                .reverify_cosign(policy, trust, &repo, &sig_digest, &sigs)
                .await
            else {
                continue;
            };
            for rec in cosign_records(&sig_digest, &sigs, policy, trust, &verdicts, now) {
                self.db.put_signature(&repo, &rec).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether a push with `tags` of `parsed` is a referrers-schema index of signatures
    /// ([`TagSchemaIndex`]). Every entry must be a signature of the subject stored in `repo`
    /// (digest and size, read from the store, not from the entry's own claims), so such an
    /// index can never carry an image past the gate.
    pub(super) async fn referrers_tag_index(
        &self,
        repo: &RepositoryName,
        tags: &[crate::oci::Tag],
        parsed: &ParsedManifest,
    ) -> Result<TagSchemaIndex, RegistryError> {
        let [tag] = tags else {
            return Ok(TagSchemaIndex::No);
        };
        let Some(subject) = referrers_tag_subject(tag.as_str()) else {
            return Ok(TagSchemaIndex::No);
        };
        if parsed.media_type != crate::oci::media_type::OCI_INDEX {
            return Ok(TagSchemaIndex::No);
        }
        if parsed.subject.is_some() {
            return Ok(TagSchemaIndex::Refused(format!(
                "the referrers tag {tag} names an index of the referrers of {subject}; it has a subject of its own"
            )));
        }
        let signatures = self
            .db
            .referrers(repo, &subject, Some(NOTARY_SIGNATURE))
            .await?;
        for entry in &parsed.manifests {
            let stored = signatures.iter().any(|r| {
                r.digest == entry.digest.to_string() && u64::try_from(r.size) == Ok(entry.size)
            });
            if !stored {
                return Ok(TagSchemaIndex::Refused(format!(
                    "the referrers tag {tag} may name only an index of signatures of {subject} stored in {repo}; \
                     {} (size {}) is not one: push the signature first, then the index",
                    entry.digest, entry.size
                )));
            }
        }
        Ok(TagSchemaIndex::Signatures)
    }

    /// Whether a manifest the signer role pushes is a signature bonded can read: Notary's
    /// shape ([`notary_signature`]), a supported envelope type, and an envelope that
    /// parses. `Err` says what it is instead. (Verifying it is the gate's job, under the
    /// policy; this holds with no policy at all.)
    pub(super) async fn readable_signature(
        &self,
        repo: &RepositoryName,
        parsed: &ParsedManifest,
    ) -> Result<(), String> {
        let sig = match notary_signature(parsed) {
            Ok(Some(sig)) => sig,
            Ok(None) => return Err("not a Notary signature manifest".into()),
            Err(why) => return Err(format!("a malformed signature: {why}")),
        };
        let types = crate::trust::envelope::ENVELOPE_TYPES;
        if !types.contains(&sig.envelope.media_type.as_str()) {
            return Err(format!(
                "a signature whose layer is {}, not a signature envelope bonded verifies ({})",
                sig.envelope.media_type,
                types.join(" or ")
            ));
        }
        let bytes = self.read_envelope(repo, &sig).await.map_err(|e| match e {
            RegistryError::ManifestBlobUnknown(_) => {
                format!(
                    "a signature whose envelope {} is not in {repo}; push it first",
                    sig.envelope.digest
                )
            }
            other => other.to_string(),
        })?;
        crate::trust::envelope::parse_as(&sig.envelope.media_type, &bytes)
            .map(|_| ())
            .map_err(|e| format!("a signature whose envelope cannot be read: {e}"))
    }

    /// A signature's envelope bytes, from the repository, at most [`MAX_ENVELOPE`].
    async fn read_envelope(
        &self,
        repo: &RepositoryName,
        sig: &SignatureManifest,
    ) -> Result<Vec<u8>, RegistryError> {
        self.read_blob_bounded(repo, &sig.envelope.digest, MAX_ENVELOPE)
            .await
    }

    /// A signature's blob (envelope, payload), from the repository, at most `limit` bytes.
    async fn read_blob_bounded(
        &self,
        repo: &RepositoryName,
        d: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let size = self
            .db
            .blob_size(repo, d)
            .await?
            .ok_or_else(|| RegistryError::ManifestBlobUnknown(vec![d.clone()]))?;
        if size > limit {
            return Err(denied(
                format!("signature blob {d} is {size} bytes; the limit is {limit}"),
                json!({ "check": "integrity" }),
            ));
        }
        let stream = self
            .store
            .get(d, None)
            .await?
            .ok_or_else(|| RegistryError::ManifestBlobUnknown(vec![d.clone()]))?;
        let envelope: Vec<u8> = stream
            .try_fold(
                Vec::with_capacity(size as usize),
                |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                },
            )
            .await
            .map_err(|e| RegistryError::Storage(e.into()))?;
        Ok(envelope)
    }

    /// Reads a signature's envelope from the repository and verifies it.
    async fn verify_stored_envelope(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        sig: &SignatureManifest,
        now: OffsetDateTime,
    ) -> Result<SignatureVerdict, RegistryError> {
        let envelope = self.read_envelope(repo, sig).await.map_err(|e| match e {
            RegistryError::Denied { message, .. } => denied(
                message,
                json!({ "policy": policy.name, "check": "integrity" }),
            ),
            other => other,
        })?;
        let subject = Subject {
            media_type: sig.subject.media_type.clone(),
            digest: sig.subject.digest.to_string(),
            size: sig.subject.size,
        };
        let sources = crate::trust::verify::revocation_sources(
            policy,
            &trust.stores,
            &envelope,
            &sig.envelope.media_type,
        );
        let crls = self.revocation_for(policy, sources).await;
        let v = verify_signature(
            policy,
            &trust.stores,
            &envelope,
            &sig.envelope.media_type,
            &subject,
            now,
            &crls,
        );
        self.metrics.verified(v.format(), v.accepted());
        Ok(v)
    }

    /// What `sources` call for, unless `policy` skips the revocation check.
    async fn revocation_for(
        &self,
        policy: &TrustPolicy,
        sources: Vec<crate::trust::revocation::CertSources>,
    ) -> crate::trust::revocation::Evidence {
        if policy.actions.revocation == crate::trust::policy::Action::Skip || sources.is_empty() {
            return crate::trust::revocation::Evidence::new();
        }
        self.revocation.evidence(&sources).await
    }

    /// Every Notary signature stored in `repo` for `digest`, as verdicts at `now`: the
    /// stored verdict of each when it was made under this trust version and policy and
    /// still holds at `now` (verified once, when it arrived); otherwise verified again
    /// and its record rewritten. A signature that cannot be read or whose subject does not
    /// describe this manifest does not count. One query for the referrers and one for
    /// their records, whatever their number.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn verdicts_for(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        digest: &Digest,
        manifest_media_type: &str,
        size: u64,
        now: OffsetDateTime,
    ) -> Result<Vec<SignatureVerdict>, RegistryError> {
        let stored = self.db.stored_verdicts(repo, digest).await?;
        let records: std::collections::HashMap<String, crate::db::StoredVerdict> = stored
            .iter()
            .map(|r| (r.digest.clone(), r.clone()))
            .collect();
        let referrers: Vec<String> = self
            .db
            .referrers(repo, digest, Some(NOTARY_SIGNATURE))
            .await?
            .into_iter()
            .map(|r| r.digest)
            .collect();
        let mut verdicts = self
            .verdicts_from(
                policy,
                trust,
                repo,
                &referrers,
                &records,
                manifest_media_type,
                size,
                now,
            )
            .await?;
        verdicts.extend(
            self.cosign_verdicts_for(policy, trust, repo, digest, &stored, now)
                .await?,
        );
        Ok(verdicts)
    }

    /// Every cosign signature stored in `repo` for `digest` (referrers of cosign's artifact
    /// type, and the manifest the `sha256-<hex>.sig` tag names), one verdict per layer at
    /// `now`: stored verdicts (`stored`, the digest's signature records) where they were
    /// made under this trust version and policy and still hold, otherwise verified again
    /// and their records rewritten. Nothing is read when the policy lists neither a cosign
    /// store (keys) nor a ca store (certificate mode), since no cosign signature could
    /// count then.
    pub(super) async fn cosign_verdicts_for(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        digest: &Digest,
        stored: &[crate::db::StoredVerdict],
        now: OffsetDateTime,
    ) -> Result<Vec<SignatureVerdict>, RegistryError> {
        if !Self::counts_cosign(policy) {
            return Ok(Vec::new());
        }
        let tag = format!("sha256-{}.sig", digest.hex());
        let manifests: Vec<(String, bool)> = self
            .db
            .cosign_signature_manifests(repo, digest, &cosign::SIGNATURE_ARTIFACTS, &tag)
            .await?;
        self.cosign_verdicts_from(policy, trust, repo, digest, &manifests, stored, now)
            .await
    }

    /// Whether statements like `policy` can count cosign signatures at all: they need a
    /// cosign store (keys), a ca store (certificate mode) or a sigstore store (keyless
    /// signatures and bundles).
    pub(super) fn counts_cosign(policy: &TrustPolicy) -> bool {
        use crate::trust::store::StoreType;
        policy.trust_stores.iter().any(|s| {
            matches!(
                s.kind,
                StoreType::Cosign | StoreType::Ca | StoreType::Sigstore
            )
        })
    }

    /// [`Self::cosign_verdicts_for`] with the signature manifests (digest, whether named by
    /// the `.sig` tag) already read (the compliance report reads them for a page at once).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn cosign_verdicts_from(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        digest: &Digest,
        manifests: &[(String, bool)],
        stored: &[crate::db::StoredVerdict],
        now: OffsetDateTime,
    ) -> Result<Vec<SignatureVerdict>, RegistryError> {
        if manifests.is_empty() {
            return Ok(Vec::new());
        }
        let tag = format!("sha256-{}.sig", digest.hex());
        let manifests: Vec<(String, Option<String>)> = manifests
            .iter()
            .map(|(d, from_tag)| (d.clone(), from_tag.then(|| tag.clone())))
            .collect();
        // Each signature manifest's records, all written when it was verified (a manifest
        // never changes, nor does its number of layers): usable without reading the
        // manifest when every one is current; one stale or unreadable record, or none at
        // all, and the manifest is verified again. (A record missing through a write that
        // failed half-way can only make fewer signatures count.)
        let mut records: std::collections::HashMap<String, Option<Vec<(u32, SignatureVerdict)>>> =
            Default::default();
        for rec in stored {
            let current = rec.trust_version == Some(trust.version) && rec.policy == policy.name;
            let v = rec
                .verdict
                .as_deref()
                .and_then(|j| serde_json::from_str::<SignatureVerdict>(j).ok())
                .filter(|v| current && v.holds_at(now) && v.cosign.is_some());
            let entry = records
                .entry(rec.digest.clone())
                .or_insert(Some(Vec::new()));
            match (entry.as_mut(), v) {
                (Some(list), Some(v)) => list.push((rec.layer, v)),
                _ => *entry = None,
            }
        }
        let mut verdicts = Vec::new();
        for (sig_digest_text, tag) in manifests {
            if let Some(Some(mut kept)) = records.remove(&sig_digest_text) {
                if !kept.is_empty() {
                    kept.sort_by_key(|(layer, _)| *layer);
                    verdicts.extend(kept.into_iter().map(|(_, v)| v));
                    continue;
                }
            }
            let Ok(sig_digest) = sig_digest_text.parse::<Digest>() else {
                continue;
            };
            let Some(parsed) = self.stored_parsed(repo, &sig_digest).await? else {
                continue;
            };
            let Ok(Some(sigs)) = cosign::cosign_signatures(&parsed, tag.as_deref()) else {
                continue;
            };
            if sigs.subject != digest.to_string() {
                continue;
            }
            let Some(fresh) = self
                .reverify_cosign(policy, trust, repo, &sig_digest, &sigs)
                .await
            else {
                continue;
            };
            // Kept for next time; a failure to keep one costs only a later re-verification.
            for rec in cosign_records(&sig_digest, &sigs, policy, trust, &fresh, now) {
                if let Err(e) = self.db.put_signature(repo, &rec).await {
                    tracing::warn!(signature = %sig_digest, error = %e, "keeping a verdict failed");
                }
            }
            verdicts.extend(fresh);
            if verdicts.len() >= cosign::MAX_LAYERS * 2 {
                break;
            }
        }
        Ok(verdicts)
    }

    /// [`Self::verdicts_for`] with the signature digests and their stored records already
    /// read (the compliance report reads them for a page of manifests at once).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn verdicts_from(
        &self,
        policy: &TrustPolicy,
        trust: &TrustConfig,
        repo: &RepositoryName,
        signatures: &[String],
        records: &std::collections::HashMap<String, crate::db::StoredVerdict>,
        manifest_media_type: &str,
        size: u64,
        now: OffsetDateTime,
    ) -> Result<Vec<SignatureVerdict>, RegistryError> {
        let mut verdicts = Vec::new();
        for sig_digest_text in signatures {
            let stored = records.get(sig_digest_text).and_then(|rec| {
                let current = rec.trust_version == Some(trust.version) && rec.policy == policy.name;
                let v: SignatureVerdict = serde_json::from_str(rec.verdict.as_deref()?).ok()?;
                (current && v.holds_at(now)).then_some((rec, v))
            });
            if let Some((rec, v)) = stored {
                if rec.subject_size == Some(size)
                    && rec.subject_media_type.as_deref() == Some(manifest_media_type)
                {
                    verdicts.push(v);
                }
                continue;
            }
            let Ok(sig_digest) = sig_digest_text.parse::<Digest>() else {
                continue;
            };
            let Some(parsed) = self.stored_parsed(repo, &sig_digest).await? else {
                continue;
            };
            let Ok(Some(sig)) = notary_signature(&parsed) else {
                continue;
            };
            let v = match self
                .verify_stored_envelope(policy, trust, repo, &sig, now)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(signature = %sig_digest, error = %e, "stored signature unreadable");
                    continue;
                }
            };
            // Kept for next time; a failure to keep it costs only a later re-verification.
            let rec = record(&sig_digest, &sig, policy, trust, &v, now);
            if let Err(e) = self.db.put_signature(repo, &rec).await {
                tracing::warn!(signature = %sig_digest, error = %e, "keeping a verdict failed");
            }
            if sig.subject.size == size && sig.subject.media_type == manifest_media_type {
                verdicts.push(v);
            }
        }
        Ok(verdicts)
    }
}
