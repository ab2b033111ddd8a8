//! Manifest parsing: which kind a manifest is, what it references, and what the referrers
//! API needs to know about it. OCI image manifest and index, Docker schema 2 manifest and
//! manifest list; Docker schema 1 is refused.

use super::digest::Digest;
use super::media_type as mt;
use oci_spec::image::{Descriptor as OciDescriptor, ImageIndex, ImageManifest};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("Docker schema 1 manifests are not supported; convert the image to Docker schema 2 or OCI (for example `skopeo copy --format oci`)")]
    Schema1,
    #[error("manifest is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("schemaVersion must be 2, got {0}")]
    SchemaVersion(u64),
    #[error("the Content-Type header '{header}' does not match the manifest's mediaType '{body}'")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest media type '{0}' is not supported (supported: OCI image manifest and index, Docker schema 2 manifest and manifest list)")]
    UnsupportedMediaType(String),
    #[error("manifest does not match the {media_type} schema: {source}")]
    Schema {
        media_type: &'static str,
        source: serde_json::Error,
    },
    #[error("{field} has an invalid digest '{digest}': {reason}")]
    BadDescriptor {
        field: String,
        digest: String,
        reason: String,
    },
}

/// A descriptor, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// What the registry needs to know about a manifest.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    /// The manifest's media type; the registry returns it as `Content-Type`.
    pub media_type: &'static str,
    /// `artifactType`, or for an image manifest without one, its config's media type.
    pub artifact_type: Option<String>,
    /// The `subject` this manifest refers to, if any.
    pub subject: Option<Descriptor>,
    /// The config (image manifests only).
    pub config: Option<Descriptor>,
    /// Layers, in order (image manifests only).
    pub layers: Vec<Descriptor>,
    /// Each layer's annotations, in the same order (cosign keeps signatures there).
    pub layer_annotations: Vec<Option<HashMap<String, String>>>,
    /// Top-level annotations, as given.
    pub annotations: Option<HashMap<String, String>>,
    /// Blobs that must exist in the repository: config and distributable layers.
    pub blobs: Vec<Digest>,
    /// Manifests that must exist in the repository: an index's children.
    pub manifests: Vec<Descriptor>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u64>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
}

fn known(media_type: &str) -> Option<&'static str> {
    [
        mt::OCI_MANIFEST,
        mt::OCI_INDEX,
        mt::DOCKER_MANIFEST,
        mt::DOCKER_MANIFEST_LIST,
    ]
    .into_iter()
    .find(|m| *m == media_type)
}

fn descriptor_of(field: String, d: &OciDescriptor) -> Result<Descriptor, ManifestError> {
    Ok(Descriptor {
        media_type: d.media_type().to_string(),
        digest: digest_of(field, d)?,
        size: d.size(),
    })
}

fn digest_of(field: String, d: &OciDescriptor) -> Result<Digest, ManifestError> {
    let s = d.digest().to_string();
    s.parse()
        .map_err(|e: super::DigestError| ManifestError::BadDescriptor {
            field,
            digest: s,
            reason: e.to_string(),
        })
}

/// Parses and validates a manifest body. `content_type` is the request's `Content-Type`,
/// with parameters already stripped.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest, ManifestError> {
    if matches!(
        content_type,
        Some(mt::DOCKER_SCHEMA1 | mt::DOCKER_SCHEMA1_SIGNED)
    ) {
        return Err(ManifestError::Schema1);
    }
    let probe: Probe = serde_json::from_slice(body).map_err(ManifestError::NotJson)?;
    match probe.schema_version {
        Some(2) => {}
        Some(1) => return Err(ManifestError::Schema1),
        Some(v) => return Err(ManifestError::SchemaVersion(v)),
        None => return Err(ManifestError::SchemaVersion(0)),
    }
    // A generic Content-Type says nothing about the manifest; the body decides then.
    let header = content_type
        .filter(|c| !matches!(*c, "" | "application/json" | "application/octet-stream"));
    let declared = match (&probe.media_type, header) {
        (Some(body), Some(header)) if body != header => {
            return Err(ManifestError::MediaTypeMismatch {
                header: header.to_string(),
                body: body.clone(),
            })
        }
        (Some(body), _) => body.clone(),
        (None, Some(header)) => header.to_string(),
        (None, None) if probe.manifests.is_some() => mt::OCI_INDEX.to_string(),
        (None, None) if probe.config.is_some() => mt::OCI_MANIFEST.to_string(),
        (None, None) => return Err(ManifestError::UnsupportedMediaType(String::new())),
    };
    let media_type =
        known(&declared).ok_or_else(|| ManifestError::UnsupportedMediaType(declared.clone()))?;

    if media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST {
        let index: ImageIndex = serde_json::from_slice(body)
            .map_err(|source| ManifestError::Schema { media_type, source })?;
        let manifests = index
            .manifests()
            .iter()
            .enumerate()
            .map(|(i, d)| descriptor_of(format!("manifests[{i}]"), d))
            .collect::<Result<Vec<_>, _>>()?;
        let subject = index
            .subject()
            .as_ref()
            .map(|s| descriptor_of("subject".into(), s))
            .transpose()?;
        Ok(ParsedManifest {
            media_type,
            artifact_type: index.artifact_type().as_ref().map(|a| a.to_string()),
            subject,
            config: None,
            layers: Vec::new(),
            layer_annotations: Vec::new(),
            annotations: index.annotations().clone(),
            blobs: Vec::new(),
            manifests,
        })
    } else {
        let manifest: ImageManifest = serde_json::from_slice(body)
            .map_err(|source| ManifestError::Schema { media_type, source })?;
        let config = descriptor_of("config".into(), manifest.config())?;
        let mut blobs = vec![config.digest.clone()];
        let mut layers = Vec::new();
        let mut layer_annotations = Vec::new();
        for (i, layer) in manifest.layers().iter().enumerate() {
            layer_annotations.push(layer.annotations().clone());
            let layer = descriptor_of(format!("layers[{i}]"), layer)?;
            if !mt::NON_DISTRIBUTABLE.contains(&layer.media_type.as_str()) {
                blobs.push(layer.digest.clone());
            }
            layers.push(layer);
        }
        let subject = manifest
            .subject()
            .as_ref()
            .map(|s| descriptor_of("subject".into(), s))
            .transpose()?;
        let artifact_type = manifest
            .artifact_type()
            .as_ref()
            .map(|a| a.to_string())
            .or_else(|| Some(config.media_type.clone()));
        Ok(ParsedManifest {
            media_type,
            artifact_type,
            subject,
            config: Some(config),
            layers,
            layer_annotations,
            annotations: manifest.annotations().clone(),
            blobs,
            manifests: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest_lists_config_and_layers_and_derives_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}},
                      {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":4,"urls":["https://x"]}}],
            "subject":{{"mediaType":"{}","digest":"{}","size":5}},"annotations":{{"a":"b"}},"custom":true}}"#,
            mt::OCI_MANIFEST,
            d('a'),
            d('b'),
            d('c'),
            mt::OCI_MANIFEST,
            d('e')
        );
        let m = parse(Some(mt::OCI_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(m.media_type, mt::OCI_MANIFEST);
        let blobs: Vec<String> = m.blobs.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            blobs,
            vec![d('a'), d('b')],
            "non-distributable layer is not required"
        );
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        let subject = m.subject.unwrap();
        assert_eq!(subject.digest.to_string(), d('e'));
        assert_eq!(
            (subject.media_type.as_str(), subject.size),
            (mt::OCI_MANIFEST, 5)
        );
        assert_eq!(m.layers.len(), 2);
        assert_eq!(m.annotations.unwrap()["a"], "b");
    }

    #[test]
    fn index_lists_children_and_empty_index_is_valid() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x-test","manifests":[{{"mediaType":"{}","digest":"{}","size":7}}]}}"#,
            mt::OCI_INDEX,
            mt::OCI_MANIFEST,
            d('f')
        );
        let m = parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-test"));
        let empty = r#"{"schemaVersion":2,"manifests":[]}"#;
        let m = parse(Some(mt::OCI_INDEX), empty.as_bytes()).unwrap();
        assert_eq!(m.media_type, mt::OCI_INDEX);
        assert!(m.manifests.is_empty());
    }

    #[test]
    fn refuses_schema1_mismatch_and_garbage() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            parse(None, s1.as_bytes()),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            parse(Some(mt::DOCKER_SCHEMA1_SIGNED), b"{}"),
            Err(ManifestError::Schema1)
        ));
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            mt::OCI_INDEX
        );
        assert!(matches!(
            parse(Some(mt::OCI_MANIFEST), idx.as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            parse(None, b"not json"),
            Err(ManifestError::NotJson(_))
        ));
        let no_layers = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x/y","digest":"{}","size":1}}}}"#,
            mt::OCI_MANIFEST,
            d('a')
        );
        assert!(matches!(
            parse(None, no_layers.as_bytes()),
            Err(ManifestError::Schema { .. })
        ));
        let bad_digest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x/y","digest":"md5:abc","size":1}},"layers":[]}}"#,
            mt::OCI_MANIFEST
        );
        assert!(parse(None, bad_digest.as_bytes()).is_err());
    }
}
