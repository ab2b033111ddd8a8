//! `bonded copy SRC DST`: an image (an index with every platform) and everything that
//! refers to it, between repositories and registries, so a signed image stays signed when
//! promoted. Referrers are read through the referrers API or, where a registry lacks it,
//! the `sha256-<hex>` tag schema, with cosign's `sha256-<hex>.sig|.att|.sbom` tags; they
//! are written the same way: on a destination without the API, the copy keeps its
//! `sha256-<hex>` index up to date. Order matters to a registry that enforces signatures:
//! manifests go by digest, then their referrers, then the tag.

use std::collections::HashSet;

use clap::Args;

use super::push::uploaded_blobs;
use crate::client::{descriptor_json, ClientError, ClientOptions, ImageRef, RegistryClient};
use crate::oci::manifest;
use crate::oci::{Digest, Reference, RepositoryName};

/// Most manifests one copy moves (the image's, its referrers', theirs).
const MAX_MANIFESTS: usize = 10_000;
/// Deepest nesting followed: indexes of indexes, referrers of referrers.
const MAX_DEPTH: usize = 8;
/// cosign's tag-schema suffixes (a signature, an attestation, an SBOM of `sha256-<hex>`).
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST
    pub source: String,
    /// REGISTRY/REPOSITORY[:TAG]: without a tag, the source's (none when the source is a
    /// digest)
    pub destination: String,
    /// The image alone, without its signatures, SBOMs and other referrers
    #[arg(long)]
    pub no_referrers: bool,
    /// Options for the destination; the source is read with the login stored for its
    /// registry (`bonded login`, podman's, docker's)
    #[command(flatten)]
    pub client: ClientOptions,
}

/// One manifest copied: its bytes and media type, and whether the destination
/// acknowledged its subject (`OCI-Subject`: the referrers API indexes it).
struct Copied {
    bytes: Vec<u8>,
    media_type: String,
    parsed: manifest::ParsedManifest,
    indexed: bool,
}

struct Copier<'a> {
    src: &'a RegistryClient,
    src_repo: &'a RepositoryName,
    dst: &'a RegistryClient,
    dst_repo: &'a RepositoryName,
    /// A repository of the destination's registry to mount blobs from.
    mount: Option<&'a RepositoryName>,
    manifests: HashSet<Digest>,
    blobs: HashSet<Digest>,
    moved: usize,
    referrers: usize,
    via_tag_schema: usize,
    cosign_tags: usize,
}

impl Copier<'_> {
    /// Copies manifest `digest` by digest with what it needs (children, blobs) first;
    /// `None` when this copy moved it already.
    async fn manifest(&mut self, digest: &Digest, depth: usize) -> Result<Option<Copied>, String> {
        if !self.manifests.insert(digest.clone()) {
            return Ok(None);
        }
        if self.manifests.len() > MAX_MANIFESTS {
            return Err(format!(
                "the image and its referrers come to more than {MAX_MANIFESTS} manifests; bonded copies no more"
            ));
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "{digest} is nested more than {MAX_DEPTH} indexes deep; bonded follows no deeper"
            ));
        }
        let (bytes, media_type, _) = self
            .src
            .manifest(self.src_repo, &Reference::Digest(digest.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let parsed = manifest::parse(Some(&media_type), &bytes)
            .map_err(|e| format!("{}/{}@{digest}: {e}", self.src.registry(), self.src_repo))?;
        for child in &parsed.manifests {
            Box::pin(self.manifest(&child.digest, depth + 1)).await?;
        }
        for b in uploaded_blobs(&parsed) {
            if !self.blobs.insert(b.digest.clone()) {
                continue;
            }
            if self
                .dst
                .copy_blob_from(
                    self.dst_repo,
                    &b.digest,
                    b.size,
                    self.src,
                    self.src_repo,
                    self.mount,
                )
                .await
                .map_err(|e| e.to_string())?
            {
                self.moved += 1;
            }
        }
        let media_type = parsed.media_type.to_string();
        let indexed = self
            .dst
            .put_manifest(self.dst_repo, &digest.to_string(), &media_type, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(Copied {
            bytes,
            media_type,
            parsed,
            indexed,
        }))
    }

    /// Copies what refers to `subject`, and what refers to that in turn.
    async fn referrers(&mut self, subject: &Digest, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let found = self
            .src
            .referrers(self.src_repo, subject, None)
            .await
            .map_err(|e| e.to_string())?;
        let mut unindexed = Vec::new();
        for r in found {
            let Some(c) = self.manifest(&r.digest, 0).await? else {
                continue;
            };
            self.referrers += 1;
            if c.parsed.subject.is_some() && !c.indexed {
                let mut entry = descriptor_json(&c.media_type, &r.digest, c.bytes.len());
                if let Some(a) = &c.parsed.artifact_type {
                    entry["artifactType"] = serde_json::json!(a);
                }
                if let Some(a) = &c.parsed.annotations {
                    entry["annotations"] = serde_json::json!(a);
                }
                unindexed.push(entry);
            }
            Box::pin(self.referrers(&r.digest, depth + 1)).await?;
        }
        if !unindexed.is_empty() {
            self.via_tag_schema += unindexed.len();
            super::sign::update_referrers_tag(self.dst, self.dst_repo, subject, unindexed).await?;
        }
        for suffix in COSIGN_SUFFIXES {
            let tag = format!(
                "{}-{}.{suffix}",
                subject.algorithm().as_str(),
                subject.hex()
            );
            let reference: Reference = tag
                .parse()
                .map_err(|e: crate::oci::NameError| e.to_string())?;
            let (bytes, media_type, digest) =
                match self.src.manifest(self.src_repo, &reference).await {
                    Ok(m) => m,
                    Err(ClientError::NotFound(_)) => continue,
                    Err(e) => return Err(e.to_string()),
                };
            self.manifest(&digest, 0).await?;
            self.dst
                .put_manifest(self.dst_repo, &tag, &media_type, &bytes)
                .await
                .map_err(|e| e.to_string())?;
            self.cosign_tags += 1;
        }
        Ok(())
    }
}

/// Whether `reference` names a tag or digest after its repository.
fn names_reference(reference: &str) -> bool {
    let rest = reference.split_once('/').map(|(_, r)| r).unwrap_or("");
    rest.contains('@') || rest.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'))
}

pub async fn run(args: &CopyArgs) -> Result<(), String> {
    let src: ImageRef = args.source.parse()?;
    let mut dst: ImageRef = args.destination.parse()?;
    if !names_reference(&args.destination) {
        dst.reference = src.reference.clone();
    }
    let source_options = ClientOptions {
        username: None,
        password: None,
        password_stdin: false,
        ..args.client.clone()
    };
    let src_client =
        RegistryClient::connect(&src.registry, &source_options, Some(&src.repository), false)
            .await
            .map_err(|e| e.to_string())?;
    let dst_client =
        RegistryClient::connect(&dst.registry, &args.client, Some(&dst.repository), true)
            .await
            .map_err(|e| e.to_string())?;
    let (_, _, root) = src_client
        .manifest(&src.repository, &src.reference)
        .await
        .map_err(|e| e.to_string())?;
    if let Reference::Digest(d) = &dst.reference {
        if d != &root {
            return Err(format!(
                "{src} is {root}, not {d}: a copy keeps the digest (give the destination a tag, or none)"
            ));
        }
    }
    let same_registry = src.registry == dst.registry && src.repository != dst.repository;
    let mut copier = Copier {
        src: &src_client,
        src_repo: &src.repository,
        dst: &dst_client,
        dst_repo: &dst.repository,
        mount: same_registry.then_some(&src.repository),
        manifests: HashSet::new(),
        blobs: HashSet::new(),
        moved: 0,
        referrers: 0,
        via_tag_schema: 0,
        cosign_tags: 0,
    };
    let copied = copier
        .manifest(&root, 0)
        .await?
        .expect("the first manifest is new");
    let image: Vec<Digest> = copier.manifests.iter().cloned().collect();
    if !args.no_referrers {
        // Signatures of the index and of each platform's manifest alike.
        for d in &image {
            copier.referrers(d, 0).await?;
        }
    }
    if let Reference::Tag(t) = &dst.reference {
        dst_client
            .put_manifest(
                &dst.repository,
                t.as_str(),
                &copied.media_type,
                &copied.bytes,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let place = match &dst.reference {
        Reference::Tag(_) => dst.to_string(),
        Reference::Digest(_) => format!("{}/{}@{root}", dst.registry, dst.repository),
    };
    let mut says = format!(
        "copied {src} to {place} ({root}): {} manifest(s) of the image, {} referrer(s)",
        image.len(),
        copier.referrers
    );
    if copier.via_tag_schema > 0 {
        says.push_str(&format!(
            " ({} indexed under the destination's referrers tag)",
            copier.via_tag_schema
        ));
    }
    if copier.cosign_tags > 0 {
        says.push_str(&format!(", {} cosign tag(s)", copier.cosign_tags));
    }
    says.push_str(&format!(
        ", {} blob(s) moved of {}",
        copier.moved,
        copier.blobs.len()
    ));
    println!("{says}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_without_a_reference_takes_the_sources() {
        assert!(!names_reference("localhost:5000/prod/app"));
        assert!(names_reference("localhost:5000/prod/app:v1"));
        assert!(names_reference("reg.example/prod/app@sha256:abc"));
        assert!(!names_reference("reg.example/a/b"));
    }
}
