//! A 2-of-n policy end to end: signatures from two distinct trusted identities are needed
//! before a tag is admitted; one signer signing twice counts once.

mod common;

use bonded::trust::envelope::TargetArtifact;
use bonded::trust::sign::{sign, SignRequest, SigningKey};
use common::pki::Ca;
use common::*;
use serde_json::{json, Value};
use time::OffsetDateTime;

struct Signer {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
}

fn signer(ca: &Ca, cn: &str) -> Signer {
    let (key, cert) = ca.issue(cn);
    Signer {
        key: SigningKey::from_pkcs8(&key.serialize_der()).unwrap(),
        chain: vec![cert.der().to_vec(), ca.der.clone()],
    }
}

/// Signs `subject` and pushes the signature as a referrer, as notation would.
async fn push_signature(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    signer: &Signer,
    subject: &Value,
) -> u16 {
    let target = TargetArtifact {
        media_type: subject["mediaType"].as_str().unwrap().into(),
        digest: subject["digest"].as_str().unwrap().into(),
        size: subject["size"].as_u64().unwrap(),
        annotations: None,
        artifact_type: None,
    };
    let envelope = sign(
        &signer.key,
        &SignRequest {
            target: &target,
            chain: &signer.chain,
            signing_time: OffsetDateTime::now_utc(),
            expiry: None,
            signing_agent: "bonded-test",
        },
    )
    .unwrap();
    let env_digest = push_blob(c, s, repo, &envelope).await;
    let empty = push_blob(c, s, repo, b"{}").await;
    let thumbprints: Vec<String> = signer
        .chain
        .iter()
        .map(|d| sha256(d).trim_start_matches("sha256:").to_string())
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": env_digest, "size": envelope.len()}],
        "subject": subject,
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": serde_json::to_string(&thumbprints).unwrap()}
    })
    .to_string();
    let res = c
        .put(s.v2(&format!("{repo}/manifests/{}", sha256(manifest.as_bytes()))))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

async fn tag(c: &reqwest::Client, s: &Server, repo: &str, m: &[u8]) -> (u16, String) {
    let res = c
        .put(s.v2(&format!("{repo}/manifests/v1")))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.to_vec())
        .send()
        .await
        .unwrap();
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
    let res = c
        .put(s.v2(&format!("{repo}/manifests/{d}")))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()});

    let (alice, bob, mallory) = (
        signer(&ca, "alice"),
        signer(&ca, "bob"),
        signer(&ca, "mallory"),
    );
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
