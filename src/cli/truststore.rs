//! notation's trust store directory on disk: `truststore/x509/{ca,signingAuthority,tsa}/<name>/*.{pem,crt,cer}`,
//! PEM or DER, and beside it cosign public keys, `truststore/cosign/<name>/*.pub` (PEM),
//! read into [`TrustStores`] for `serve --trust-store` and `verify --trust-store` (an
//! existing notation `truststore` directory loads as it is). Kept out of `trust`, which
//! does no I/O.

use crate::trust::store::{valid_store_name, StoreRef, StoreType, TrustStores};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read trust store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("trust store file {0} is a symbolic link; links are not followed in trust stores")]
    Symlink(PathBuf),
    #[error("trust store file {path} holds no usable certificate or key: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("trust store {0} has no certificates")]
    Empty(String),
    #[error("trust store {0} is not a directory: give the directory holding x509/ (notation's truststore directory)")]
    NotADirectory(PathBuf),
}

/// Loads `dir/x509/<type>/<name>/*.{pem,crt,cer}`, `dir/cosign/<name>/*.{pub,pem}` and
/// `dir/sigstore/<name>/trusted_root.json`. Missing type directories are fine;
/// subdirectories of a store and files with other extensions are ignored; symbolic links
/// are refused.
pub fn load(dir: &Path) -> Result<TrustStores, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    // The directory itself must be there: a mistyped path is not an empty trust store.
    if !std::fs::metadata(dir).map_err(io(dir))?.is_dir() {
        return Err(StoreError::NotADirectory(dir.to_path_buf()));
    }
    let mut stores = BTreeMap::new();
    for kind in StoreType::ALL {
        let (type_dir, extensions): (PathBuf, &[&str]) = match kind {
            StoreType::Cosign => (dir.join("cosign"), &["pub", "pem"]),
            StoreType::Sigstore => (dir.join("sigstore"), &["json"]),
            _ => (dir.join("x509").join(kind.as_str()), &["pem", "crt", "cer"]),
        };
        let entries = match std::fs::read_dir(&type_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&type_dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&type_dir))?;
            let store_dir = entry.path();
            let meta = std::fs::symlink_metadata(&store_dir).map_err(io(&store_dir))?;
            if meta.file_type().is_symlink() {
                return Err(StoreError::Symlink(store_dir));
            }
            if !meta.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_store_name(&name) {
                continue;
            }
            let mut certs = Vec::new();
            let mut files: Vec<_> = std::fs::read_dir(&store_dir)
                .map_err(io(&store_dir))?
                .collect::<Result<_, _>>()
                .map_err(io(&store_dir))?;
            files.sort_by_key(|f| f.file_name());
            for file in files {
                let path = file.path();
                let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
                if meta.file_type().is_symlink() {
                    return Err(StoreError::Symlink(path));
                }
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !meta.is_file() || !extensions.contains(&ext) {
                    continue;
                }
                // A Sigstore store is its one trusted_root.json.
                if kind == StoreType::Sigstore && file.file_name() != "trusted_root.json" {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                let mut found = kind
                    .parse_material(&bytes)
                    .map_err(|reason| StoreError::BadCertificate { path, reason })?;
                certs.append(&mut found);
            }
            stores.insert(StoreRef { kind, name }, certs);
        }
    }
    let mut out = TrustStores::default();
    for (r, certs) in stores {
        out.insert(r, certs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_vectors as vectors;

    #[test]
    fn loads_notation_trust_store_layout() {
        let Some(v) = vectors::dir() else { return };
        let stores = load(&v.join("notation-go/truststore")).unwrap();
        let ca: StoreRef = "ca:valid-trust-store".parse().unwrap();
        assert_eq!(stores.get(&ca).unwrap().len(), 4);
        let sa: StoreRef = "signingAuthority:valid-trust-store".parse().unwrap();
        assert_eq!(stores.get(&sa).unwrap().len(), 1);
        assert!(stores.get(&"ca:missing".parse().unwrap()).is_none());
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("x509/ca/s");
        std::fs::create_dir_all(&store).unwrap();
        let Some(v) = vectors::dir() else { return };
        let cert = v.join("notation-e2e/localkeys/e2e.crt");
        std::os::unix::fs::symlink(&cert, store.join("e2e.crt")).unwrap();
        assert!(matches!(load(dir.path()), Err(StoreError::Symlink(_))));
        std::fs::remove_file(store.join("e2e.crt")).unwrap();
        std::fs::copy(&cert, store.join("e2e.crt")).unwrap();
        std::fs::write(store.join("notes.txt"), "ignored").unwrap();
        let stores = load(dir.path()).unwrap();
        assert_eq!(stores.get(&"ca:s".parse().unwrap()).unwrap().len(), 1);
    }
}
