//! `bonded copy` (issue 14): an image moves with every referrer (signatures, SBOMs, their
//! own referrers, cosign's tags), between bonded registries and through one without the
//! referrers API (CNCF Distribution, where the OCI spec's `sha256-<hex>` tag schema holds
//! them) and back, so that an enforcing destination admits it as the source's signatures allow.

use crate::common;

use common::distribution::start_distribution;
use common::pki::{push_signature, Ca};
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Output};

fn copy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .arg("copy")
        .args(args)
        .output()
        .unwrap()
}

/// An artifact manifest with `subject`, pushed by digest to `base` (a `/v2/` URL root).
async fn push_artifact(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    subject: &Value,
    artifact_type: &str,
    seed: &str,
) -> (String, usize) {
    let bytes = format!("artifact {seed}").into_bytes();
    let blob = common::distribution::put_blob(c, base, repo, &bytes).await;
    common::distribution::put_blob(c, base, repo, b"{}").await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": blob, "size": bytes.len()}],
        "subject": subject,
        "annotations": {"seed": seed},
    }))
    .unwrap();
    let d = sha256(&m);
    let res = c
        .put(format!("{base}/v2/{repo}/manifests/{d}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "push {artifact_type} of {subject}");
    (d, m.len())
}

/// Digests the referrers API of `base` lists for `subject`, sorted.
async fn referrers(c: &reqwest::Client, base: &str, repo: &str, subject: &str) -> Vec<String> {
    let v = get_json(c, format!("{base}/v2/{repo}/referrers/{subject}")).await;
    let mut out: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn a_signed_index_is_copied_with_every_referrer_and_an_enforcing_registry_admits_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("Acme Root");
    let (policy, store) = ca.trusted_anywhere(tmp.path());
    let staging = Server::start_in(&tmp.path().join("staging"), &[]);
    let prod = Server::start_in(
        &tmp.path().join("prod"),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
        ],
    );
    let c = client();
    let repo = "staging/app";
    // Two platforms and their index, tagged v1.
    let (amd, amd_d) = push_image(&c, &staging, repo, "amd64", "amd64", json!({})).await;
    let (arm, arm_d) = push_image(&c, &staging, repo, "arm64", "arm64", json!({})).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_d, "size": amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_d, "size": arm.len(), "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }))
    .unwrap();
    let index_d = sha256(&index);
    let res = c
        .put(staging.v2(&format!("{repo}/manifests/v1")))
        .header("Content-Type", OCI_INDEX)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let index_desc = json!({"mediaType": OCI_INDEX, "digest": index_d, "size": index.len()});
    // A Notary signature of the index; an SBOM of the amd64 image and a signature of the
    // SBOM.
    assert_eq!(
        push_signature(&c, &staging, repo, &ca.signer("release"), &index_desc).await,
        201
    );
    let signatures = referrers(&c, &staging.url, repo, &index_d).await;
    assert_eq!(signatures.len(), 1);
    let amd_desc = json!({"mediaType": OCI_MANIFEST, "digest": amd_d, "size": amd.len()});
    let (sbom, sbom_len) = push_artifact(
        &c,
        &staging.url,
        repo,
        &amd_desc,
        "application/spdx+json",
        "sbom",
    )
    .await;
    let sbom_desc = json!({"mediaType": OCI_MANIFEST, "digest": sbom, "size": sbom_len});
    let (sbom_sig, _) = push_artifact(
        &c,
        &staging.url,
        repo,
        &sbom_desc,
        "application/vnd.example.sig",
        "sbom-sig",
    )
    .await;

    // Without its referrers the image is unsigned: the enforcing registry holds it as
    // pending and its tag waits, unpublished, saying what to sign.
    let bare = copy(&[
        "--no-referrers",
        &format!("{}/{repo}:v1", staging.addr),
        &format!("{}/prod/bare", prod.addr),
    ]);
    assert!(
        output_text(&bare).contains(&format!("sign {}/prod/bare@{index_d}", prod.addr)),
        "{}",
        output_text(&bare)
    );
    assert_eq!(
        c.get(prod.v2("prod/bare/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let out = copy(&[
        &format!("{}/{repo}:v1", staging.addr),
        &format!("{}/prod/app", prod.addr),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    // The tag (the source's), the same bytes, every referrer at every level.
    let res = c
        .get(prod.v2("prod/app/manifests/v1"))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", output_text(&out));
    assert_eq!(res.bytes().await.unwrap().as_ref(), index.as_slice());
    assert_eq!(
        referrers(&c, &prod.url, "prod/app", &index_d).await,
        signatures
    );
    assert_eq!(
        referrers(&c, &prod.url, "prod/app", &amd_d).await,
        vec![sbom.clone()]
    );
    assert_eq!(
        referrers(&c, &prod.url, "prod/app", &sbom).await,
        vec![sbom_sig]
    );
    let layer = c
        .get(prod.v2(&format!("prod/app/blobs/{}", sha256(b"layer of arm64"))))
        .send()
        .await
        .unwrap();
    assert_eq!(layer.bytes().await.unwrap().as_ref(), b"layer of arm64");

    // Within one registry blobs are mounted, not sent again; a second copy moves nothing.
    let within = copy(&[
        &format!("{}/prod/app:v1", prod.addr),
        &format!("{}/prod/app-mirror:stable", prod.addr),
    ]);
    assert!(within.status.success(), "{}", output_text(&within));
    assert_eq!(
        referrers(&c, &prod.url, "prod/app-mirror", &index_d).await,
        signatures
    );
    let again = copy(&[
        &format!("{}/prod/app:v1", prod.addr),
        &format!("{}/prod/app-mirror:stable", prod.addr),
    ]);
    let said = output_text(&again);
    assert!(
        again.status.success() && said.contains("0 blob(s) moved"),
        "{said}"
    );
}

#[tokio::test]
async fn referrers_go_through_a_registry_without_the_referrers_api_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start_in(&tmp.path().join("first"), &[]);
    let last = Server::start_in(&tmp.path().join("last"), &[]);
    let dist = start_distribution(tmp.path()).await;
    let dist_base = format!("http://{}", dist.addr);
    let c = client();
    let (m, d) = push_image(&c, &first, "acme/app", "v1", "app", json!({})).await;
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()});
    let ca = Ca::new("Acme Root");
    assert_eq!(
        push_signature(&c, &first, "acme/app", &ca.signer("release"), &subject).await,
        201
    );
    let (sbom, _) = push_artifact(
        &c,
        &first.url,
        "acme/app",
        &subject,
        "application/spdx+json",
        "sbom",
    )
    .await;
    let want = referrers(&c, &first.url, "acme/app", &d).await;
    assert_eq!(want.len(), 2);
    assert!(want.contains(&sbom));
    // cosign's tag schema: `sha256-<hex>.sig` (an open registry stores it as it is).
    let cosign_tag = format!("{}.sig", d.replacen(':', "-", 1));
    let (_, cosign_d) = push_image(&c, &first, "acme/app", &cosign_tag, "cosign", json!({})).await;

    // Into Distribution: the referrers tag index lists both, with their artifact types.
    for _ in 0..2 {
        let out = copy(&[
            &format!("{}/acme/app:v1", first.addr),
            &format!("{}/acme/app:v1", dist.addr),
        ]);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let tag = d.replacen(':', "-", 1);
    let res = c
        .get(format!("{dist_base}/v2/acme/app/manifests/{tag}"))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the referrers tag schema index");
    let index: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "copied twice, listed once: {index}");
    let listed_digests: Vec<String> = listed
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sorted(listed_digests), want);
    let sbom_entry = listed
        .iter()
        .find(|m| m["digest"] == sbom.as_str())
        .unwrap();
    assert_eq!(sbom_entry["artifactType"], "application/spdx+json");
    assert_eq!(sbom_entry["annotations"]["seed"], "sbom");

    // And out again to bonded, whose referrers API lists them.
    let out = copy(&[
        &format!("{}/acme/app:v1", dist.addr),
        &format!("{}/acme/app:v1", last.addr),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(referrers(&c, &last.url, "acme/app", &d).await, want);
    for base in [&dist_base, &last.url] {
        let res = c
            .get(format!("{base}/v2/acme/app/manifests/{cosign_tag}"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{cosign_tag} on {base}");
        assert_eq!(sha256(&res.bytes().await.unwrap()), cosign_d);
    }
    assert_eq!(
        c.get(last.v2("acme/app/manifests/v1"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A source registry whose layer answer streams far more than its descriptor's size,
/// without a Content-Length: `/v2/`, one manifest (by `v1` or its digest), its config,
/// and that layer.
fn lying_source(manifest: Vec<u8>, config: Vec<u8>, layer_digest: String) -> String {
    use std::io::Write;
    let config_digest = sha256(&config);
    let manifest_digest = sha256(&manifest);
    common::http::serve_raw(move |path, stream| {
        let answer = |ct: &str, body: &[u8]| {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(body);
            out
        };
        if path == "/v2/" {
            stream.write_all(&answer("application/json", b"{}"))
        } else if path.ends_with("/manifests/v1")
            || path.ends_with(&format!("/manifests/{manifest_digest}"))
        {
            stream.write_all(&answer(OCI_MANIFEST, &manifest))
        } else if path.ends_with(&format!("/blobs/{config_digest}")) {
            stream.write_all(&answer("application/octet-stream", &config))
        } else if path.ends_with(&format!("/blobs/{layer_digest}")) {
            // 64 MiB, chunked, for a descriptor of 5 bytes; then the connection closes.
            stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..64 {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                stream.write_all(&chunk)?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")?;
            Err(std::io::ErrorKind::ConnectionAborted.into())
        } else {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        }
    })
}

#[tokio::test]
async fn a_source_that_sends_more_than_a_blobs_size_is_cut_off_and_nothing_is_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = Server::start_in(&tmp.path().join("dst"), &[]);
    let config = b"{\"lie\":1}".to_vec();
    let layer = sha256(b"small");
    let manifest = image_manifest((&sha256(&config), config.len()), &[(&layer, 5)], json!({}));
    let src = lying_source(manifest, config, layer.clone());
    let out = copy(&[
        &format!("{src}/lie/app:v1"),
        &format!("{}/lie/app", dst.addr),
    ]);
    let said = output_text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("more than the 5 bytes of {layer}")),
        "{said}"
    );
    let c = client();
    assert_eq!(
        c.get(dst.v2(&format!("lie/app/blobs/{layer}")))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "no blob from the lying source"
    );
    assert_eq!(
        c.get(dst.v2("lie/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "nothing tagged"
    );
}
