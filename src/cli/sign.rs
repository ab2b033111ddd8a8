//! `bonded sign`: a Notary Project signature over an image's manifest digest, pushed as an
//! OCI 1.1 referrer in the form notation itself produces.

use crate::client::{descriptor_json, ImageRef, RegistryClient, EMPTY_CONFIG, EMPTY_MEDIA_TYPE};
use crate::oci::{media_type, Digest, Reference};
use crate::trust::certs::{self, CertInfo};
use crate::trust::envelope::TargetArtifact;
use crate::trust::sign::{sign, SignRequest, SigningKey};
use crate::trust::store::parse_certificates;
use crate::trust::{JWS_ENVELOPE, NOTARY_SIGNATURE, THUMBPRINT_ANNOTATION};
use serde_json::json;
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Image to sign: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST
    pub reference: String,
    /// Private key, PKCS#8 PEM (P-256, P-384, or RSA 2048/3072/4096)
    #[arg(long)]
    pub key: PathBuf,
    /// Certificate chain, PEM, leaf first, ending with the root
    #[arg(long)]
    pub cert: PathBuf,
    /// Days until the signature expires (io.cncf.notary.expiry); none by default
    #[arg(long)]
    pub expiry_days: Option<u32>,
    /// Talk plain HTTP to a registry that is not on loopback
    #[arg(long)]
    pub plain_http: bool,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The private key of a PKCS#8 PEM file.
fn private_key(path: &PathBuf) -> Result<SigningKey, String> {
    let bytes = read(path, "key")?;
    let der = x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .filter_map(Result::ok)
        .find(|p| p.label == "PRIVATE KEY")
        .map(|p| p.contents)
        .ok_or_else(|| format!("{} holds no PKCS#8 'PRIVATE KEY' block", path.display()))?;
    SigningKey::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display()))
}

pub async fn run(args: &SignArgs) -> Result<(), String> {
    let image: ImageRef = args.reference.parse()?;
    let key = private_key(&args.key)?;
    let chain = parse_certificates(&read(&args.cert, "certificate chain")?)
        .map_err(|e| format!("{}: {e}", args.cert.display()))?;
    let parsed = certs::parse_chain(&chain).map_err(|e| format!("{}: {e}", args.cert.display()))?;
    let leaf: &CertInfo = &parsed[0];
    if leaf.public_key != key.public_key() {
        return Err(format!(
            "the key in {} does not match the certificate '{}' in {}",
            args.key.display(),
            leaf.subject,
            args.cert.display()
        ));
    }
    let now = OffsetDateTime::now_utc();
    if let Some(c) = parsed.iter().find(|c| !c.valid_at(now)) {
        return Err(format!(
            "certificate '{}' is not valid now (valid {} to {})",
            c.subject, c.not_before, c.not_after
        ));
    }

    let client =
        RegistryClient::new(&image.registry, args.plain_http).map_err(|e| e.to_string())?;
    let repo = &image.repository;
    let (bytes, manifest_type, digest) = client
        .manifest(repo, &image.reference)
        .await
        .map_err(|e| e.to_string())?;
    let subject = descriptor_json(&manifest_type, &digest, bytes.len());
    let thumbprints: Vec<String> = chain
        .iter()
        .map(|d| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d)))
        .collect();

    // Signing twice with the same certificate does not pile up signatures.
    for r in client
        .referrers(repo, &digest, Some(NOTARY_SIGNATURE))
        .await
        .map_err(|e| e.to_string())?
    {
        let Ok((m, _, _)) = client
            .manifest(repo, &Reference::Digest(r.digest.clone()))
            .await
        else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&m) else {
            continue;
        };
        let existing: Vec<String> = m["annotations"][THUMBPRINT_ANNOTATION]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if existing.first().map(|t| t.to_ascii_lowercase()) == thumbprints.first().cloned() {
            println!(
                "{}/{repo}@{digest} is already signed by '{}' (signature {}); nothing to do",
                image.registry, leaf.subject, r.digest
            );
            return Ok(());
        }
    }

    let target = TargetArtifact {
        media_type: manifest_type.clone(),
        digest: digest.to_string(),
        size: bytes.len() as u64,
        annotations: None,
        artifact_type: None,
    };
    let envelope = sign(
        &key,
        &SignRequest {
            target: &target,
            chain: &chain,
            signing_time: now,
            expiry: args.expiry_days.map(|d| now + Duration::days(d.into())),
            signing_agent: concat!("bonded/", env!("CARGO_PKG_VERSION")),
        },
    )
    .map_err(|e| e.to_string())?;
    let envelope_digest = client
        .push_blob(repo, &envelope)
        .await
        .map_err(|e| e.to_string())?;
    let config_digest = client
        .push_blob(repo, EMPTY_CONFIG)
        .await
        .map_err(|e| e.to_string())?;
    let signature = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": NOTARY_SIGNATURE,
        "config": descriptor_json(EMPTY_MEDIA_TYPE, &config_digest, EMPTY_CONFIG.len()),
        "layers": [descriptor_json(JWS_ENVELOPE, &envelope_digest, envelope.len())],
        "subject": subject,
        "annotations": {
            THUMBPRINT_ANNOTATION: serde_json::to_string(&thumbprints).expect("json"),
            "org.opencontainers.image.created": now.replace_nanosecond(0).unwrap_or(now).format(&Rfc3339).unwrap_or_default(),
        },
    });
    let signature = serde_json::to_vec(&signature).expect("json");
    let signature_digest = Digest::of(crate::oci::Algorithm::Sha256, &signature);
    let has_referrers_api = client
        .put_manifest(
            repo,
            &signature_digest.to_string(),
            media_type::OCI_MANIFEST,
            &signature,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !has_referrers_api {
        update_referrers_tag(&client, &image, &digest, &signature_digest, signature.len()).await?;
    }
    println!(
        "signed {}/{repo}@{digest} as '{}' ({}); signature {signature_digest}",
        image.registry,
        leaf.subject,
        key.algorithm().as_str()
    );
    Ok(())
}

/// For registries without the referrers API: the `sha256-<hex>` tag holds an index of the
/// subject's referrers, which the signer keeps up to date (as notation does).
async fn update_referrers_tag(
    client: &RegistryClient,
    image: &ImageRef,
    subject: &Digest,
    signature: &Digest,
    size: usize,
) -> Result<(), String> {
    let repo = &image.repository;
    let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
    let tag_ref: Reference = tag
        .parse()
        .map_err(|e: crate::oci::NameError| e.to_string())?;
    let mut index = match client.manifest(repo, &tag_ref).await {
        Ok((bytes, _, _)) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("referrers tag {tag} is not an index: {e}"))?,
        Err(crate::client::ClientError::NotFound(_)) => {
            json!({ "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [] })
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut entry = descriptor_json(media_type::OCI_MANIFEST, signature, size);
    entry["artifactType"] = json!(NOTARY_SIGNATURE);
    index["manifests"]
        .as_array_mut()
        .ok_or_else(|| format!("referrers tag {tag} has no manifests list"))?
        .push(entry);
    let bytes = serde_json::to_vec(&index).expect("json");
    client
        .put_manifest(repo, &tag, media_type::OCI_INDEX, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
