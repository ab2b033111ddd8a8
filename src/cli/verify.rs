//! `bonded verify`: checks an image's signatures, fetched from any OCI registry, against a
//! local trust policy and trust store, with the same library the server uses. The server's
//! verdict is never trusted.

use crate::client::{ClientError, ClientOptions, ImageRef, RegistryClient};
use crate::oci::{manifest, Reference};
use crate::trust::policy::TrustPolicyDocument;
use crate::trust::verify::{
    decide, notary_signature, verify_signature, Check, SignatureVerdict, Subject,
};
use crate::trust::NOTARY_SIGNATURE;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Image to verify: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST
    pub reference: String,
    /// Trust policy (notation's trustpolicy.json schema, with bonded's extensions)
    #[arg(long)]
    pub trust_policy: PathBuf,
    /// Trust store directory, the one holding x509/
    #[arg(long)]
    pub trust_store: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub client: ClientOptions,
}

/// Exit codes, one per failure class.
pub mod exit {
    pub const VERIFIED: u8 = 0;
    pub const USAGE: u8 = 1;
    pub const NOT_SIGNED: u8 = 2;
    /// Intact signatures that fail authenticity, expiry or the authentic timestamp.
    pub const UNTRUSTED: u8 = 3;
    pub const INVALID: u8 = 4;
    pub const POLICY_NOT_MET: u8 = 5;
    pub const REGISTRY: u8 = 6;
}

fn short(c: &Check) -> &'static str {
    match c {
        Check::Passed => "ok",
        Check::Failed(_) => "FAILED",
        Check::Logged(_) => "logged",
        Check::NotRun => "-",
    }
}

pub async fn run(args: &VerifyArgs) -> ExitCode {
    let fail = |code: u8, msg: String| {
        eprintln!("bonded verify: {msg}");
        ExitCode::from(code)
    };
    let image: ImageRef = match args.reference.parse() {
        Ok(i) => i,
        Err(e) => return fail(exit::USAGE, e),
    };
    let policy_doc = match std::fs::read(&args.trust_policy)
        .map_err(|e| e.to_string())
        .and_then(|b| TrustPolicyDocument::parse(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            return fail(
                exit::USAGE,
                format!("trust policy {}: {e}", args.trust_policy.display()),
            )
        }
    };
    let stores = match super::truststore::load(&args.trust_store) {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, e.to_string()),
    };
    // A policy naming a store the directory does not hold is a configuration mistake
    // (exit 1), not an untrusted image: the server refuses to start on it, and so does this.
    if let Err(e) = crate::registry::check_stores(&policy_doc, &stores) {
        return fail(
            exit::USAGE,
            format!(
                "trust policy {} with trust stores in {}: {e}",
                args.trust_policy.display(),
                args.trust_store.display()
            ),
        );
    }
    let scope = format!("{}/{}", image.registry, image.repository);
    let Some(policy) = policy_doc.policy_for(&scope) else {
        return fail(
            exit::POLICY_NOT_MET,
            format!("no trust policy covers {scope}"),
        );
    };
    let client = match RegistryClient::connect(
        &image.registry,
        &args.client,
        Some(&image.repository),
        false,
    )
    .await
    {
        Ok(c) => c,
        Err(e @ (ClientError::CaFile(_) | ClientError::Invalid(_))) => {
            return fail(exit::USAGE, e.to_string())
        }
        Err(e) => return fail(exit::REGISTRY, e.to_string()),
    };
    let repo = &image.repository;
    let (bytes, media_type, digest) = match client.manifest(repo, &image.reference).await {
        Ok(m) => m,
        Err(e) => return fail(exit::REGISTRY, e.to_string()),
    };
    let referrers = match client
        .referrers(repo, &digest, Some(NOTARY_SIGNATURE))
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(exit::REGISTRY, e.to_string()),
    };
    let now = OffsetDateTime::now_utc();
    let mut verdicts: Vec<(String, SignatureVerdict)> = Vec::new();
    // A registry may list any number of referrers; at most this many Notary signatures
    // are fetched and verified (as many as cosign signatures, below).
    let max = crate::trust::cosign::MAX_LAYERS;
    if referrers.len() > max {
        eprintln!(
            "bonded: {image} has {} Notary signature referrers; only the first {max} are read",
            referrers.len()
        );
    }
    let fetcher = match crate::revocation::RevocationFetcher::new() {
        Ok(f) => f,
        Err(e) => return fail(exit::USAGE, e),
    };
    for r in referrers.into_iter().take(max) {
        let Ok((m, _, _)) = client
            .manifest(repo, &Reference::Digest(r.digest.clone()))
            .await
        else {
            continue;
        };
        let Ok(parsed) = manifest::parse(None, &m) else {
            continue;
        };
        let Ok(Some(sig)) = notary_signature(&parsed) else {
            continue;
        };
        if sig.subject.digest != digest || sig.subject.size != bytes.len() as u64 {
            continue;
        }
        let envelope = match client.blob(repo, &sig.envelope.digest).await {
            Ok(b) => b,
            Err(e) => return fail(exit::REGISTRY, e.to_string()),
        };
        let subject = Subject {
            media_type: media_type.clone(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
        };
        let sources = crate::trust::verify::revocation_sources(
            policy,
            &stores,
            &envelope,
            &sig.envelope.media_type,
        );
        let crls = if policy.actions.revocation == crate::trust::policy::Action::Skip {
            crate::trust::revocation::Evidence::new()
        } else {
            fetcher.evidence(&sources).await
        };
        let v = verify_signature(
            policy,
            &stores,
            &envelope,
            &sig.envelope.media_type,
            &subject,
            now,
            &crls,
        );
        verdicts.push((r.digest.to_string(), v));
    }
    match cosign_verdicts(&client, repo, &digest, policy, &stores).await {
        Ok(mut found) => verdicts.append(&mut found),
        Err(e) => return fail(exit::REGISTRY, e.to_string()),
    }
    let only: Vec<SignatureVerdict> = verdicts.iter().map(|(_, v)| v.clone()).collect();
    let decision = decide(policy, &only);

    match args.output {
        Output::Json => {
            let sigs: Vec<_> = verdicts
                .iter()
                .map(|(d, v)| {
                    json!({
                        "digest": d,
                        "format": v.format(),
                        "signer": v.signer_name(),
                        "algorithm": v.algorithm_name(),
                        "signingTime": v.signing_time.map(crate::timefmt::rfc3339),
                        "accepted": v.accepted(),
                        "checks": v.checks_json(),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "reference": image.to_string(),
                    "digest": digest,
                    "policy": policy.name,
                    "verified": decision.admitted,
                    "reason": decision.reason,
                    "signatures": sigs,
                })
            );
        }
        Output::Table => {
            println!(
                "{}/{repo}@{digest}  policy '{}' ({})",
                image.registry,
                policy.name,
                policy.level.as_str()
            );
            let mut table = super::table::Table::new(&[
                "SIGNER",
                "ALG",
                "SIGNED AT",
                "INTEGRITY",
                "AUTHENTICITY",
                "EXPIRY",
                "TIMESTAMP",
            ]);
            let mut refusals = Vec::new();
            for (_, v) in &verdicts {
                let signer = v
                    .signer_name()
                    .map(|s| super::printable(&s))
                    .unwrap_or_else(|| match v.format() {
                        "cosign" => "(cosign: no trusted key)".into(),
                        _ => "(unreadable)".into(),
                    });
                if let Some(why) = v.failure() {
                    refusals.push(format!("{signer}: {}", super::printable(why)));
                }
                table.row(vec![
                    signer,
                    v.algorithm_name().unwrap_or_else(|| "-".into()),
                    v.signing_time
                        .map(crate::timefmt::rfc3339)
                        .unwrap_or_else(|| "-".into()),
                    short(&v.integrity).into(),
                    short(&v.authenticity).into(),
                    short(&v.expiry).into(),
                    short(&v.authentic_timestamp).into(),
                ]);
            }
            if !table.is_empty() {
                table.print();
            }
            for r in refusals {
                println!("refused: {r}");
            }
            println!(
                "{}: {}",
                if decision.admitted {
                    "VERIFIED"
                } else {
                    "NOT VERIFIED"
                },
                super::printable(&decision.reason)
            );
        }
    }
    if decision.admitted {
        return ExitCode::from(exit::VERIFIED);
    }
    // Classes: nothing signed; enough valid signatures missing although some were
    // accepted; every signature broken (integrity); otherwise signatures that are intact
    // but not trustworthy (authenticity, expiry, authentic timestamp).
    let code = if verdicts.is_empty() {
        exit::NOT_SIGNED
    } else if verdicts.iter().any(|(_, v)| v.accepted()) {
        exit::POLICY_NOT_MET
    } else if verdicts
        .iter()
        .all(|(_, v)| matches!(v.integrity, Check::Failed(_)))
    {
        exit::INVALID
    } else {
        exit::UNTRUSTED
    };
    ExitCode::from(code)
}

/// cosign's signatures of `digest`, each layer verified: OCI 1.1 referrers of artifact type
/// `application/vnd.dev.cosign.artifact.sig.v1+json`, then the `sha256-<hex>.sig` tag
/// (what cosign writes on registries without the referrers API, and by default). At most
/// [`cosign::MAX_LAYERS`] signatures in all; a manifest that is not a well-formed cosign
/// signature of this digest is passed over, as a malformed Notary one is.
async fn cosign_verdicts(
    client: &RegistryClient,
    repo: &crate::oci::RepositoryName,
    digest: &crate::oci::Digest,
    policy: &crate::trust::policy::TrustPolicy,
    stores: &crate::trust::store::TrustStores,
) -> Result<Vec<(String, SignatureVerdict)>, ClientError> {
    use crate::trust::cosign;
    let mut out = Vec::new();
    for (label, sigs) in fetch_cosign_signatures(client, repo, digest).await? {
        for (i, layer) in sigs.layers.iter().enumerate() {
            if out.len() >= cosign::MAX_LAYERS {
                return Ok(out);
            }
            let payload = client.blob(repo, &layer.payload.digest).await?;
            let v = cosign::verify_layer(
                policy,
                stores,
                layer,
                &payload,
                &sigs.subject,
                OffsetDateTime::now_utc(),
            );
            out.push((format!("{label}#{i}"), v));
        }
    }
    Ok(out)
}

/// cosign's signature manifests of `digest` in a registry, each parsed and checked to sign
/// that digest: OCI 1.1 referrers of cosign's artifact type, then what the
/// `sha256-<hex>.sig` tag names; as (manifest digest, signatures). A manifest that is not a
/// well-formed cosign signature of this digest is passed over.
pub(super) async fn fetch_cosign_signatures(
    client: &RegistryClient,
    repo: &crate::oci::RepositoryName,
    digest: &crate::oci::Digest,
) -> Result<Vec<(String, crate::trust::cosign::CosignSignatures)>, ClientError> {
    use crate::trust::cosign;
    let mut manifests: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
    let mut referrers = Vec::new();
    for artifact_type in cosign::SIGNATURE_ARTIFACTS {
        referrers.extend(client.referrers(repo, digest, Some(artifact_type)).await?);
    }
    for r in referrers {
        if let Ok((m, _, _)) = client
            .manifest(repo, &Reference::Digest(r.digest.clone()))
            .await
        {
            manifests.push((r.digest.to_string(), m, None));
        }
    }
    let tag = format!("sha256-{}.sig", digest.hex());
    if let Ok(t) = tag.parse::<crate::oci::Tag>() {
        match client.manifest(repo, &Reference::Tag(t)).await {
            Ok((m, _, d)) => manifests.push((d.to_string(), m, Some(tag.clone()))),
            Err(ClientError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for (label, bytes, tag) in manifests {
        let Ok(parsed) = manifest::parse(None, &bytes) else {
            continue;
        };
        let Ok(Some(sigs)) = cosign::cosign_signatures(&parsed, tag.as_deref()) else {
            continue;
        };
        if sigs.subject == digest.to_string() {
            out.push((label, sigs));
        }
    }
    Ok(out)
}
