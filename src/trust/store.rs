//! Trust stores: named sets of root certificates, as notation names them
//! (`ca:release`, `signingAuthority:acme`, `tsa:timestamps`), of cosign public keys
//! (`cosign:release`) and Sigstore trusted roots (`sigstore:public-good`), bonded's
//! extensions. Reading notation's directory
//! layout from disk is the CLI's job ([`crate::cli::truststore`]); here the stores are
//! values, so `trust` does no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::certs::CertInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreType {
    Ca,
    SigningAuthority,
    Tsa,
    /// cosign public keys (`TRUSTSTORE/cosign/<name>/*.pub`), bonded's extension: the
    /// store holds DER SubjectPublicKeyInfos instead of certificates.
    Cosign,
    /// A Sigstore trusted root (`TRUSTSTORE/sigstore/<name>/trusted_root.json`): the
    /// transparency logs and Fulcio certificate authorities keyless signatures are
    /// verified against. The store holds the JSON document's bytes.
    Sigstore,
}

impl StoreType {
    pub const ALL: [StoreType; 5] = [
        StoreType::Ca,
        StoreType::SigningAuthority,
        StoreType::Tsa,
        StoreType::Cosign,
        StoreType::Sigstore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
            StoreType::Cosign => "cosign",
            StoreType::Sigstore => "sigstore",
        }
    }

    /// What a store of this type holds, parsed from a file: DER certificates, or DER
    /// public keys for cosign.
    pub fn parse_material(self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        match self {
            StoreType::Cosign => super::cosign::parse_public_keys(bytes),
            StoreType::Sigstore => {
                super::sigstore::TrustedRoot::parse(bytes)?;
                Ok(vec![bytes.to_vec()])
            }
            _ => parse_certificates(bytes),
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

/// Whether `name` can be a store's name: letters, digits, `_`, `.`, `-` (never `.` or `..`).
pub fn valid_store_name(name: &str) -> bool {
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
                format!("trust store '{s}' has unknown type '{kind}' (ca, signingAuthority, tsa, cosign, sigstore)")
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
    /// A store's certificates (DER). `None` when no such store was loaded.
    pub fn get(&self, store: &StoreRef) -> Option<&[Vec<u8>]> {
        self.stores.get(store).map(Vec::as_slice)
    }

    /// Adds (or replaces) a store.
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

    #[test]
    fn store_references_are_validated() {
        assert!("ca:release".parse::<StoreRef>().is_ok());
        assert!("release".parse::<StoreRef>().is_err());
        assert!("x509:release".parse::<StoreRef>().is_err());
        assert!("ca:../etc".parse::<StoreRef>().is_err());
    }
}
