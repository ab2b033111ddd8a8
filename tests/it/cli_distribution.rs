//! `bonded sign` and `bonded verify` against CNCF Distribution (Debian's docker-registry),
//! which has no referrers API: the signer keeps the `sha256-<hex>` referrers tag index up to
//! date and the verifier reads it, as notation does.

use crate::common;

use common::distribution::{put_blob, start_distribution};
use common::pki::Ca;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test]
async fn sign_and_verify_through_the_referrers_tag_schema() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dist = start_distribution(d).await;
    let base = format!("http://{}", dist.addr);
    let c = client();
    let config = put_blob(&c, &base, "acme/app", b"{\"os\":\"linux\"}").await;
    let layer = put_blob(&c, &base, "acme/app", b"bits").await;
    let m = image_manifest((&config, 14), &[(&layer, 4)], json!({}));
    let res = c
        .put(format!("{base}/v2/acme/app/manifests/v1"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // a root and a signer
    let ca = Ca::new("Acme Root");
    ca.write_store(&d.join("truststore"), "acme");
    ca.write_signer(d, "release");
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{
            "name": "all", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme"], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=release"]}]})
        .to_string(),
    )
    .unwrap();

    let image = format!("{}/acme/app:v1", dist.addr);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(args)
            .output()
            .unwrap()
    };
    let verify = || {
        run(&[
            "verify",
            &image,
            "--trust-policy",
            d.join("policy.json").to_str().unwrap(),
            "--trust-store",
            d.join("truststore").to_str().unwrap(),
        ])
    };
    assert_eq!(verify().status.code(), Some(2), "not signed yet");
    let o = run(&[
        "sign",
        &image,
        "--key",
        d.join("release.key").to_str().unwrap(),
        "--cert",
        d.join("release.pem").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // the referrers tag index points at the signature
    let tag = format!("sha256-{}", sha256(&m).trim_start_matches("sha256:"));
    let res = c
        .get(format!("{base}/v2/acme/app/manifests/{tag}"))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let index: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.cncf.notary.signature"
    );

    let o = verify();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("CN=release"));
}

#[tokio::test]
async fn large_layers_are_pushed_in_chunks_to_both_registries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // a layout with one 70 MiB layer (above the client's 64 MiB chunking threshold)
    let l = OciLayout::create(&d.join("big"));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let layer: Vec<u8> = (0..70 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let (ld, ln) = l.blob(&layer);
    let (cd, cn) = l.blob(br#"{"os":"linux"}"#);
    let m = image_manifest((&cd, cn), &[(&ld, ln)], json!({}));
    let (md, mn) = l.blob(&m);
    l.index(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn}]}));

    let bonded = Server::start();
    let dist = start_distribution(&d.join("dist")).await;
    let c = client();
    for reg in [bonded.addr.clone(), dist.addr.clone()] {
        let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(["push", &l.path(), &format!("{reg}/big/app:v1")])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{reg}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = c
            .get(format!("http://{reg}/v2/big/app/blobs/{ld}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(sha256(&got.bytes().await.unwrap()), ld, "{reg}");
    }
}
