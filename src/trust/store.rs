//! Trust stores: named sets of root certificates, laid out as notation lays them
//! (`x509/{ca,signingAuthority,tsa}/<name>/*.{pem,crt,cer}`, PEM or DER), so an existing
//! notation `truststore` directory loads as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::certs::CertInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreType {
    Ca,
    SigningAuthority,
    Tsa,
}

impl StoreType {
    pub const ALL: [StoreType; 3] = [StoreType::Ca, StoreType::SigningAuthority, StoreType::Tsa];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
        }
    }
}

/// A reference to a store, as trust policies write it: `ca:release`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreRef {
    pub kind: StoreType,
    pub name: String,
}

impl fmt::Display for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.name)
    }
}

fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name != "."
        && name != ".."
}

impl FromStr for StoreRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            format!("trust store '{s}' must be written TYPE:NAME, e.g. ca:release")
        })?;
        let kind = StoreType::ALL
            .into_iter()
            .find(|t| t.as_str() == kind)
            .ok_or_else(|| {
                format!("trust store '{s}' has unknown type '{kind}' (ca, signingAuthority, tsa)")
            })?;
        if !valid_store_name(name) {
            return Err(format!(
                "trust store '{s}' has an invalid name: use letters, digits, '_', '.' and '-'"
            ));
        }
        Ok(StoreRef {
            kind,
            name: name.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read trust store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("trust store file {0} is a symbolic link; links are not followed in trust stores")]
    Symlink(PathBuf),
    #[error("trust store file {path} holds no usable certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("trust store {0} has no certificates")]
    Empty(String),
}

/// Certificates (DER) from a PEM file (one or more `CERTIFICATE` blocks) or a DER file.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let looks_pem = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN"));
    let ders: Vec<Vec<u8>> = if looks_pem {
        let mut out = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| format!("bad PEM: {e}"))?;
            if pem.label == "CERTIFICATE" {
                out.push(pem.contents);
            }
        }
        out
    } else {
        vec![bytes.to_vec()]
    };
    if ders.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    for (i, der) in ders.iter().enumerate() {
        CertInfo::parse(i, der).map_err(|e| e.to_string())?;
    }
    Ok(ders)
}

/// Every trust store, by reference.
#[derive(Debug, Clone, Default)]
pub struct TrustStores {
    stores: BTreeMap<StoreRef, Vec<Vec<u8>>>,
}

impl TrustStores {
    /// Loads `dir/x509/<type>/<name>/*.{pem,crt,cer}`. Missing type directories are fine;
    /// subdirectories of a store and files with other extensions are ignored.
    pub fn load(dir: &Path) -> Result<TrustStores, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let mut stores = BTreeMap::new();
        for kind in StoreType::ALL {
            let type_dir = dir.join("x509").join(kind.as_str());
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
                    if !meta.is_file() || !["pem", "crt", "cer"].contains(&ext) {
                        continue;
                    }
                    let bytes = std::fs::read(&path).map_err(io(&path))?;
                    let mut found = parse_certificates(&bytes)
                        .map_err(|reason| StoreError::BadCertificate { path, reason })?;
                    certs.append(&mut found);
                }
                stores.insert(StoreRef { kind, name }, certs);
            }
        }
        Ok(TrustStores { stores })
    }

    /// A store's certificates (DER). `None` when no such store was loaded.
    pub fn get(&self, store: &StoreRef) -> Option<&[Vec<u8>]> {
        self.stores.get(store).map(Vec::as_slice)
    }

    pub fn insert(&mut self, store: StoreRef, certs: Vec<Vec<u8>>) {
        self.stores.insert(store, certs);
    }

    pub fn refs(&self) -> impl Iterator<Item = &StoreRef> {
        self.stores.keys()
    }

    /// Removes a store; `false` when it was not there.
    pub fn remove(&mut self, store: &StoreRef) -> bool {
        self.stores.remove(store).is_some()
    }

    /// Every store as `ca:name` -> certificates (DER), for recording.
    pub fn to_map(&self) -> BTreeMap<String, Vec<Vec<u8>>> {
        self.stores
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The inverse of [`TrustStores::to_map`]; unparseable references are skipped.
    pub fn from_map(map: &BTreeMap<String, Vec<Vec<u8>>>) -> TrustStores {
        TrustStores {
            stores: map
                .iter()
                .filter_map(|(k, v)| k.parse().ok().map(|r| (r, v.clone())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors")
    }

    #[test]
    fn loads_notation_trust_store_layout() {
        let stores = TrustStores::load(&vectors().join("notation-go/truststore")).unwrap();
        let ca: StoreRef = "ca:valid-trust-store".parse().unwrap();
        assert_eq!(stores.get(&ca).unwrap().len(), 4);
        let sa: StoreRef = "signingAuthority:valid-trust-store".parse().unwrap();
        assert_eq!(stores.get(&sa).unwrap().len(), 1);
        assert!(stores.get(&"ca:missing".parse().unwrap()).is_none());
    }

    #[test]
    fn store_references_are_validated() {
        assert!("ca:release".parse::<StoreRef>().is_ok());
        assert!("release".parse::<StoreRef>().is_err());
        assert!("x509:release".parse::<StoreRef>().is_err());
        assert!("ca:../etc".parse::<StoreRef>().is_err());
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("x509/ca/s");
        std::fs::create_dir_all(&store).unwrap();
        let cert = vectors().join("notation-e2e/localkeys/e2e.crt");
        std::os::unix::fs::symlink(&cert, store.join("e2e.crt")).unwrap();
        assert!(matches!(
            TrustStores::load(dir.path()),
            Err(StoreError::Symlink(_))
        ));
        std::fs::remove_file(store.join("e2e.crt")).unwrap();
        std::fs::copy(&cert, store.join("e2e.crt")).unwrap();
        std::fs::write(store.join("notes.txt"), "ignored").unwrap();
        let stores = TrustStores::load(dir.path()).unwrap();
        assert_eq!(stores.get(&"ca:s".parse().unwrap()).unwrap().len(), 1);
    }
}
