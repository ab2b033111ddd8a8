//! The referrers tag schema (OCI Distribution v1.1): an index tagged `sha256-<hex>` that
//! lists the signatures of `sha256:<hex>`. notation keeps one by default
//! (`--force-referrers-tag`), so an enforcing bonded must take it from whoever may sign,
//! as signature bookkeeping, and must never let the tag carry an image past the gate.

use crate::common;

use common::pki::{push_signature, Ca};
use common::*;
use serde_json::{json, Value};

async fn put_index(c: &reqwest::Client, s: &Server, repo: &str, tag: &str, index: &Value) -> u16 {
    c.put(s.v2(&format!("{repo}/manifests/{tag}")))
        .header("Content-Type", OCI_INDEX)
        .body(index.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn index_of(entries: &[Value]) -> Value {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
}

/// Pushes an image by digest; returns its descriptor.
async fn image(c: &reqwest::Client, s: &Server, repo: &str, seed: &str) -> Value {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let cd = push_blob(c, s, repo, config.as_bytes()).await;
    let m = image_manifest((&cd, config.len()), &[], json!({}));
    let d = sha256(&m);
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/{d}")), m.clone()).await;
    assert_eq!(res.status(), 201);
    json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()})
}

/// The signature manifest of `subject` stored in `repo`, as the referrers API lists it.
async fn signature_descriptor(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    subject: &Value,
) -> Value {
    let d = subject["digest"].as_str().unwrap();
    let list = get_json(c, s.v2(&format!("{repo}/referrers/{d}"))).await;
    list["manifests"][0].clone()
}

#[tokio::test]
async fn an_index_of_signatures_under_its_referrers_tag_is_bookkeeping_and_nothing_else_is() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = Ca::new("Acme Root");
    ca.write_store(&d.join("store"), "acme");
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{
            "name": "all", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme"], "trustedIdentities": ["*"], "bonded.enforceOnPull": true,
            "bonded.unsignedPush": "reject"}]})
        .to_string(),
    )
    .unwrap();
    let data = d.join("data");
    let s = Server::start_with_auth(
        &data,
        &[
            "--trust-policy",
            d.join("policy.json").to_str().unwrap(),
            "--trust-store",
            d.join("store").to_str().unwrap(),
        ],
    );
    user(&data, "dev", "developer", "prod/*");
    user(&data, "sig", "signer", "prod/*");
    let (dev, sig) = (
        as_user("dev", &password("dev")),
        as_user("sig", &password("sig")),
    );
    let repo = "prod/app";
    let subject = image(&dev, &s, repo, "signed").await;
    let other = image(&dev, &s, repo, "other").await;
    assert_eq!(
        push_signature(&sig, &s, repo, &ca.signer("alice"), &subject).await,
        201
    );
    let signature = signature_descriptor(&sig, &s, repo, &subject).await;
    assert_eq!(
        signature["artifactType"],
        "application/vnd.cncf.notary.signature"
    );
    let hex = subject["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let tag = format!("sha256-{hex}");

    // notation's index: from the signer role, under an enforcing policy.
    let index = index_of(std::slice::from_ref(&signature));
    assert_eq!(put_index(&sig, &s, repo, &tag, &index).await, 201);
    let index_digest = sha256(index.to_string().as_bytes());
    // Pulled by tag under enforceOnPull, as notation reads it.
    let res = sig
        .get(s.v2(&format!("{repo}/manifests/{tag}")))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["docker-content-digest"],
        index_digest.as_str()
    );

    // What may not pass as bookkeeping, by anyone.
    let mut wrong_size = signature.clone();
    wrong_size["size"] = json!(signature["size"].as_u64().unwrap() + 1);
    let mut with_subject = index.clone();
    with_subject["subject"] = other.clone();
    let other_tag = format!(
        "sha256-{}",
        other["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    for (who, c, tag, body) in [
        (
            "an image in it",
            &dev,
            tag.as_str(),
            index_of(std::slice::from_ref(&subject)),
        ),
        (
            "an unsigned image in it",
            &dev,
            tag.as_str(),
            index_of(std::slice::from_ref(&other)),
        ),
        ("a wrong size", &sig, tag.as_str(), index_of(&[wrong_size])),
        (
            "another subject's tag",
            &sig,
            other_tag.as_str(),
            index.clone(),
        ),
        ("a subject of its own", &sig, tag.as_str(), with_subject),
        ("another tag (signer)", &sig, "latest", index.clone()),
    ] {
        assert_eq!(put_index(c, &s, repo, tag, &body).await, 403, "{who}");
    }
    // An image manifest under the referrers tag goes through the gate like any image.
    let m = image_manifest((&push_blob(&dev, &s, repo, b"{}").await, 2), &[], json!({}));
    let res = put_manifest(&dev, s.v2(&format!("{repo}/manifests/{other_tag}")), m).await;
    assert_eq!(res.status(), 403);

    // Nothing refused moved the tag.
    let res = sig
        .head(s.v2(&format!("{repo}/manifests/{tag}")))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["docker-content-digest"],
        index_digest.as_str()
    );
    // The refused image is stored as pending, its tag waiting: nothing is published under it.
    let tags = get_json(&sig, s.v2(&format!("{repo}/tags/list"))).await;
    assert!(
        !tags["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == other_tag.as_str()),
        "{tags}"
    );
}
