//! A 2-of-n policy end to end: signatures from two distinct trusted identities are needed
//! before a tag is admitted; one signer signing twice counts once.

use crate::common;

use common::pki::{push_signature, Ca};
use common::*;
use serde_json::{json, Value};

async fn tag(c: &reqwest::Client, s: &Server, repo: &str, m: &[u8]) -> (u16, String) {
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/v1")), m.to_vec()).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, text)
}

#[tokio::test]
async fn two_distinct_signers_are_needed() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    ca.write_store(&tmp.path().join("truststore"), "acme");
    let policy = json!({"version": "1.0", "trustPolicies": [{
        "name": "prod", "registryScopes": ["registry.test/prod/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=alice", "x509.subject: C=US, ST=WA, O=Acme, CN=bob"],
        "signaturesRequired": 2
    }]});
    std::fs::write(tmp.path().join("policy.json"), policy.to_string()).unwrap();
    let s = Server::start_in(
        &tmp.path().join("data"),
        &[
            "--trust-policy",
            tmp.path().join("policy.json").to_str().unwrap(),
            "--trust-store",
            tmp.path().join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    let c = client();
    let repo = "prod/app";
    let config = push_blob(
        &c,
        &s,
        repo,
        b"{\"architecture\":\"amd64\",\"os\":\"linux\"}",
    )
    .await;
    let layer = push_blob(&c, &s, repo, b"release bits").await;
    let m = image_manifest((&config, 38), &[(&layer, 12)], json!({}));
    let d = sha256(&m);
    let res = put_manifest(&c, s.v2(&format!("{repo}/manifests/{d}")), m.clone()).await;
    assert_eq!(res.status(), 201);
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()});

    let (alice, bob, mallory) = (ca.signer("alice"), ca.signer("bob"), ca.signer("mallory"));
    assert_eq!(push_signature(&c, &s, repo, &alice, &subject).await, 201);
    let (status, body) = tag(&c, &s, repo, &m).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("policy 'prod' needs 2 signatures from distinct trusted identities; found 1: C=US, ST=WA, O=Acme, CN=alice"),
        "{body}"
    );
    // alice again: still one identity
    assert_eq!(push_signature(&c, &s, repo, &alice, &subject).await, 201);
    assert_eq!(tag(&c, &s, repo, &m).await.0, 403);
    // mallory chains to the trusted root but is not a trusted identity: refused on push
    assert_eq!(push_signature(&c, &s, repo, &mallory, &subject).await, 403);
    // bob makes two
    assert_eq!(push_signature(&c, &s, repo, &bob, &subject).await, 201);
    let (status, body) = tag(&c, &s, repo, &m).await;
    assert_eq!(status, 201, "{body}");

    let res = c
        .get(format!(
            "{}/bonded/v1/repositories/{repo}/signatures/{d}",
            s.url
        ))
        .send()
        .await
        .unwrap();
    let store: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(store["signatures"].as_array().unwrap().len(), 3);
    assert_eq!(store["verdict"]["signers"].as_array().unwrap().len(), 2);
}
