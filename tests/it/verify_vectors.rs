//! `bonded verify` against notation's signed OCI layouts (../shared/vectors), served by
//! bonded (referrers API) and by CNCF Distribution (referrers tag schema): the results the
//! vectors README states, as exit codes.

use crate::common;

use common::distribution::{put_blob, start_distribution};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn vectors() -> PathBuf {
    common::vectors::path()
}

/// Every blob and manifest of a layout into `repo`: manifests with their layout tag, or by
/// digest; indexes last.
async fn push_layout(c: &reqwest::Client, base: &str, repo: &str, layout: &Path) {
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        put_blob(
            c,
            base,
            repo,
            &std::fs::read(entry.unwrap().path()).unwrap(),
        )
        .await;
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut entries: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    entries.sort_by_key(|m| m["mediaType"] == OCI_INDEX);
    for m in entries {
        let d = m["digest"].as_str().unwrap();
        let body = std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap();
        let reference = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap_or(d);
        let res = c
            .put(format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", m["mediaType"].as_str().unwrap())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{repo} {reference}");
    }
}

fn store_with(dir: &Path, name: &str, cert: &str) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("x509/ca/e2e")).unwrap();
    std::fs::copy(vectors().join(cert), root.join("x509/ca/e2e/e2e.crt")).unwrap();
    root
}

fn policy(dir: &Path, level: &str) -> PathBuf {
    let p = dir.join(format!("{level}.json"));
    std::fs::write(
        &p,
        json!({"version": "1.0", "trustPolicies": [{"name": "e2e", "registryScopes": ["*"],
            "signatureVerification": {"level": level}, "trustStores": ["ca:e2e"], "trustedIdentities": ["*"]}]})
        .to_string(),
    )
    .unwrap();
    p
}

#[tokio::test]
async fn notation_vectors_verify_as_their_readme_says_on_bonded_and_distribution() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bonded = Server::start();
    let dist = start_distribution(&d.join("dist")).await;
    let c = client();
    let layouts = [
        "e2e-valid-signature",
        "e2e-invalid-signature",
        "e2e-expired-signature",
        "e2e-with-expired-cert",
    ];
    let registries = [bonded.addr.clone(), dist.addr.clone()];
    for reg in &registries {
        for l in layouts {
            push_layout(
                &c,
                &format!("http://{reg}"),
                &format!("vectors/{l}"),
                &vectors().join("notation-e2e/oci_layout").join(l),
            )
            .await;
        }
    }
    let e2e = store_with(d, "e2e-store", "notation-e2e/localkeys/e2e.crt");
    let new_e2e = store_with(d, "new-store", "notation-e2e/localkeys/new_e2e.crt");
    let expired = store_with(d, "expired-store", "notation-e2e/localkeys/expired_e2e.crt");
    // (vector, layout, store, level, exit code): 0 verified, 3 untrusted, 4 invalid
    let cases = [
        ("V1", "e2e-valid-signature", &e2e, "strict", 0),
        ("V2", "e2e-valid-signature", &new_e2e, "strict", 3),
        ("V2", "e2e-valid-signature", &new_e2e, "permissive", 3),
        ("V2", "e2e-valid-signature", &new_e2e, "audit", 0),
        ("V3", "e2e-invalid-signature", &e2e, "strict", 4),
        ("V3", "e2e-invalid-signature", &e2e, "audit", 4),
        ("V4", "e2e-expired-signature", &e2e, "strict", 3),
        ("V4", "e2e-expired-signature", &e2e, "permissive", 0),
        ("V5", "e2e-with-expired-cert", &expired, "strict", 3),
        ("V5", "e2e-with-expired-cert", &expired, "permissive", 0),
    ];
    for reg in &registries {
        for (v, layout, store, level, want) in &cases {
            let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
                .args([
                    "verify",
                    &format!("{reg}/vectors/{layout}:v1"),
                    "--trust-policy",
                ])
                .arg(policy(d, level))
                .arg("--trust-store")
                .arg(store)
                .output()
                .unwrap();
            assert_eq!(
                o.status.code(),
                Some(*want),
                "{v} ({layout}, {level}) on {reg}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
