//! OCI vocabulary as validated types: digests, repository names, tags, references, media
//! types and manifests. Everything here is a pure function of its input: no I/O.

pub mod digest;
pub mod manifest;
pub mod name;
pub mod range;

pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use name::{NameError, Reference, RepositoryName, Tag};

/// Media types the registry knows by name.
pub mod media_type {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// Layer types whose content may live outside the registry (deprecated in image-spec 1.1,
    /// still accepted): the registry does not require them to have been pushed.
    pub const NON_DISTRIBUTABLE: [&str; 4] = [
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
}

/// Largest manifest the registry accepts, in bytes (the spec's suggested floor of 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
