//! Pending manifests, waiting tags and pull enforcement: what happens between a push
//! and the signatures that make it admissible.

use crate::common;

use common::pki::{push_signature, Ca, Signer};
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const TOKEN: &str = "pending-test-token";

/// bonded enforcing one policy over `registry.test/prod/*` with the CA's root as `ca:acme`.
fn start(dir: &Path, ca: &Ca, extra_policy: Value, extra_args: &[&str]) -> Server {
    ca.write_store(&dir.join("truststore"), "acme");
    let mut policy = json!({
        "name": "prod", "registryScopes": ["registry.test/prod/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"]
    });
    for (k, v) in extra_policy.as_object().unwrap() {
        policy[k] = v.clone();
    }
    std::fs::write(
        dir.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [policy]}).to_string(),
    )
    .unwrap();
    let mut args = vec![
        "--trust-policy".to_string(),
        dir.join("policy.json").to_str().unwrap().into(),
        "--trust-store".into(),
        dir.join("truststore").to_str().unwrap().into(),
        "--hostname".into(),
        "registry.test".into(),
        "--admin-token".into(),
        TOKEN.into(),
    ];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_in(&dir.join("data"), &args)
}

async fn put(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> reqwest::Response {
    c.put(s.v2(&format!("{repo}/manifests/{reference}")))
        .header("Content-Type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn pending(c: &reqwest::Client, s: &Server, repo: &str) -> Vec<String> {
    let res = c
        .get(format!("{}/bonded/v1/repositories/{repo}/pending", s.url))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    v["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["digest"].as_str().unwrap().to_string())
        .collect()
}

/// An image manifest with its blobs pushed; returns (bytes, descriptor).
async fn image(c: &reqwest::Client, s: &Server, repo: &str, seed: &str) -> (Vec<u8>, Value) {
    let config = push_blob(c, s, repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let m = image_manifest((&config, 11 + seed.len()), &[], json!({}));
    let desc = json!({"mediaType": OCI_MANIFEST, "digest": sha256(&m), "size": m.len()});
    (m, desc)
}

#[tokio::test]
async fn a_manifest_pushed_by_digest_is_pending_until_signed() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({}), &[]);
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "a").await;
    let d = desc["digest"].as_str().unwrap().to_string();
    let res = put(&c, &s, "prod/app", &d, OCI_MANIFEST, &m).await;
    assert_eq!(res.status(), 201);
    let warning = res.headers()["warning"].to_str().unwrap().to_string();
    assert!(
        warning.starts_with("299 - \"held as pending until signed"),
        "{warning}"
    );
    assert_eq!(pending(&c, &s, "prod/app").await, vec![d.clone()]);
    // it can still be read by digest, to be signed in place
    assert_eq!(
        c.get(s.v2(&format!("prod/app/manifests/{d}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &desc).await,
        201
    );
    assert!(
        pending(&c, &s, "prod/app").await.is_empty(),
        "admitted once signed"
    );
}

#[tokio::test]
async fn a_signed_index_admits_its_pending_children() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({}), &[]);
    let c = client();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (m, mut desc) = image(&c, &s, "prod/multi", arch).await;
        assert_eq!(
            put(
                &c,
                &s,
                "prod/multi",
                desc["digest"].as_str().unwrap(),
                OCI_MANIFEST,
                &m
            )
            .await
            .status(),
            201
        );
        desc["platform"] = json!({"os": "linux", "architecture": arch});
        children.push(desc);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
        .to_string()
        .into_bytes();
    let index_desc = json!({"mediaType": OCI_INDEX, "digest": sha256(&index), "size": index.len()});
    let res = put(&c, &s, "prod/multi", &sha256(&index), OCI_INDEX, &index).await;
    assert_eq!(res.status(), 201);
    assert_eq!(pending(&c, &s, "prod/multi").await.len(), 3);
    // unsigned, the tag waits
    assert_eq!(
        put(&c, &s, "prod/multi", "v1", OCI_INDEX, &index)
            .await
            .status(),
        201
    );
    assert_eq!(status_of(&c, &s, "prod/multi", "v1").await, 404);
    assert_eq!(
        push_signature(&c, &s, "prod/multi", &ca.signer("release"), &index_desc).await,
        201
    );
    assert!(
        pending(&c, &s, "prod/multi").await.is_empty(),
        "index and both children admitted"
    );
    assert_eq!(
        status_of(&c, &s, "prod/multi", "v1").await,
        200,
        "published"
    );
    assert_eq!(
        put(&c, &s, "prod/multi", "v2", OCI_INDEX, &index)
            .await
            .status(),
        201
    );
    assert_eq!(status_of(&c, &s, "prod/multi", "v2").await, 200);
}

#[tokio::test]
async fn waiting_tags_are_invisible_until_signed() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &ca,
        json!({"bonded.unsignedPush": "quarantine"}),
        &[],
    );
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "q").await;
    let res = put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &m).await;
    assert_eq!(res.status(), 201, "accepted, not refused");
    assert!(res.headers()["warning"]
        .to_str()
        .unwrap()
        .contains("tag waits for signatures"));
    assert_eq!(
        c.get(s.v2("prod/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let tags: Value = get_json(&c, s.v2("prod/app/tags/list")).await;
    assert_eq!(tags["tags"], json!([]));
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &desc).await,
        201
    );
    let res = c.get(s.v2("prod/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 200, "published once the policy is met");
    assert_eq!(
        res.headers()["docker-content-digest"],
        desc["digest"].as_str().unwrap()
    );
    let tags: Value = get_json(&c, s.v2("prod/app/tags/list")).await;
    assert_eq!(tags["tags"], json!(["v1"]));
}

#[tokio::test]
async fn pulls_are_refused_once_signatures_stop_satisfying_the_policy() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({"bonded.enforceOnPull": true}), &[]);
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "p").await;
    let alice: Signer = ca.signer("alice");
    assert_eq!(push_signature(&c, &s, "prod/app", &alice, &desc).await, 201);
    assert_eq!(
        put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &m)
            .await
            .status(),
        201
    );
    assert_eq!(
        c.get(s.v2("prod/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // the trust store changes to another root: alice's signature no longer counts
    let res = c
        .put(format!("{}/bonded/v1/trust/stores/ca/acme", s.url))
        .bearer_auth(TOKEN)
        .body(Ca::new("Other Root").pem)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(s.v2("prod/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(e["errors"][0]["code"], "DENIED");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pull refused by policy 'prod'"),
        "{e}"
    );
}

#[tokio::test]
async fn manifests_pending_too_long_are_removed() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({}), &["--pending-ttl", "1"]);
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "x").await;
    let d = desc["digest"].as_str().unwrap().to_string();
    assert_eq!(
        put(&c, &s, "prod/app", &d, OCI_MANIFEST, &m).await.status(),
        201
    );
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if c.head(s.v2(&format!("prod/app/manifests/{d}")))
            .send()
            .await
            .unwrap()
            .status()
            == 404
        {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "pending manifest still there after 10 s with a 1 s limit"
    );
    assert!(pending(&c, &s, "prod/app").await.is_empty());

    // a tag that waits too long goes too, recorded as such
    let (w, _) = image(&c, &s, "prod/app", "z").await;
    assert_eq!(
        put(&c, &s, "prod/app", "v9", OCI_MANIFEST, &w)
            .await
            .status(),
        201
    );
    let mut expired = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        expired = audited(&c, &s, "tag.expire", "prod/app").await;
        if !expired.is_empty() {
            break;
        }
    }
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["tag"], "v9");
    let report = get_json(
        &c,
        format!("{}/bonded/v1/repositories/prod/app/pending", s.url),
    )
    .await;
    assert_eq!(report["waitingTags"], json!([]), "{report}");
}

/// Deletes a manifest by digest (here: a signature, leaving its subject unsigned).
async fn delete(c: &reqwest::Client, s: &Server, repo: &str, digest: &str) {
    let res = c
        .delete(s.v2(&format!("{repo}/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

async fn status_of(c: &reqwest::Client, s: &Server, repo: &str, reference: &str) -> u16 {
    c.get(s.v2(&format!("{repo}/manifests/{reference}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The pull-verdict cache keeps a decision for the kind of pull it was made for: a
/// by-digest pull of an unsigned manifest is exempt, a by-tag pull of it is not, and
/// neither answer may stand in for the other.
#[tokio::test]
async fn pull_verdicts_are_kept_per_kind_of_pull() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({"bonded.enforceOnPull": true}), &[]);
    let c = client();
    let alice: Signer = ca.signer("alice");
    // Two tagged, signed images whose signatures are then deleted: unsigned from then on.
    let mut unsigned = Vec::new();
    for (repo, seed) in [("prod/a", "a"), ("prod/b", "b")] {
        let (m, desc) = image(&c, &s, repo, seed).await;
        assert_eq!(push_signature(&c, &s, repo, &alice, &desc).await, 201);
        assert_eq!(
            put(&c, &s, repo, "v1", OCI_MANIFEST, &m).await.status(),
            201
        );
        assert_eq!(status_of(&c, &s, repo, "v1").await, 200, "{repo}: signed");
        let d = desc["digest"].as_str().unwrap().to_string();
        let referrers: Value = get_json(&c, s.v2(&format!("{repo}/referrers/{d}"))).await;
        let sig = referrers["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        delete(&c, &s, repo, &sig).await;
        unsigned.push((repo, d));
    }
    // A digest pull first (exempt: the manifest has no signatures of its own), then a tag
    // pull, which must be decided on its own.
    let (repo, d) = &unsigned[0];
    assert_eq!(status_of(&c, &s, repo, d).await, 200, "by digest, exempt");
    assert_eq!(
        status_of(&c, &s, repo, "v1").await,
        403,
        "a tag pull reused the exempt digest pull's verdict"
    );
    // The reverse: a refused tag pull first, then the exempt digest pull.
    let (repo, d) = &unsigned[1];
    assert_eq!(status_of(&c, &s, repo, "v1").await, 403, "by tag, unsigned");
    assert_eq!(
        status_of(&c, &s, repo, d).await,
        200,
        "a digest pull reused the refused tag pull's verdict"
    );
}

/// The audit trail's records of `action` in `repo` (the server runs with an admin token).
async fn audited(c: &reqwest::Client, s: &Server, action: &str, repo: &str) -> Vec<Value> {
    let res = c
        .get(format!(
            "{}/bonded/v1/audit?action={action}&repository={repo}",
            s.url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    v["records"].as_array().unwrap().clone()
}

/// What the gate does on its own, after a client's push, is in the audit trail: a
/// quarantined tag published by a signature, pending children admitted through a signed
/// index, a pull refused because the signatures no longer satisfy the policy.
#[tokio::test]
async fn what_the_gate_does_on_its_own_is_audited() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &ca,
        json!({"bonded.unsignedPush": "quarantine", "bonded.enforceOnPull": true}),
        &[],
    );
    let c = client();
    // A quarantined tag, published by the signature that satisfies the policy.
    let (m, desc) = image(&c, &s, "prod/app", "q").await;
    assert_eq!(
        put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &m)
            .await
            .status(),
        201
    );
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &desc).await,
        201
    );
    let published = audited(&c, &s, "tag.publish", "prod/app").await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["tag"], "v1");
    assert_eq!(published[0]["digest"], desc["digest"]);
    assert!(
        published[0]["reason"]
            .as_str()
            .unwrap()
            .contains("policy 'prod'"),
        "{published:?}"
    );

    // Pending children admitted through their signed index.
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (m, mut d) = image(&c, &s, "prod/multi", arch).await;
        let digest = d["digest"].as_str().unwrap().to_string();
        assert_eq!(
            put(&c, &s, "prod/multi", &digest, OCI_MANIFEST, &m)
                .await
                .status(),
            201
        );
        d["platform"] = json!({"os": "linux", "architecture": arch});
        children.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
        .to_string()
        .into_bytes();
    let index_desc = json!({"mediaType": OCI_INDEX, "digest": sha256(&index), "size": index.len()});
    assert_eq!(
        put(&c, &s, "prod/multi", &sha256(&index), OCI_INDEX, &index)
            .await
            .status(),
        201
    );
    assert_eq!(
        push_signature(&c, &s, "prod/multi", &ca.signer("release"), &index_desc).await,
        201
    );
    let admitted: Vec<String> = audited(&c, &s, "manifest.admit", "prod/multi")
        .await
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = children
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .chain([sha256(&index)])
        .collect();
    expected.sort();
    let mut got = admitted.clone();
    got.sort();
    assert_eq!(
        got, expected,
        "each pending manifest admitted is recorded once"
    );

    // A pull refused under enforceOnPull.
    let res = c
        .put(format!("{}/bonded/v1/trust/stores/ca/acme", s.url))
        .bearer_auth(TOKEN)
        .body(Ca::new("Other Root").pem)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(status_of(&c, &s, "prod/app", "v1").await, 403);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let pulls = audited(&c, &s, "manifest.pull", "prod/app").await;
    let refused: Vec<&Value> = pulls.iter().filter(|r| r["outcome"] == "denied").collect();
    assert_eq!(refused.len(), 1, "{pulls:?}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("pull refused by policy 'prod'"),
        "{refused:?}"
    );
}

/// The error of a manifest request, as JSON.
async fn error_of(c: &reqwest::Client, s: &Server, repo: &str, reference: &str) -> Value {
    let res = c
        .get(s.v2(&format!("{repo}/manifests/{reference}")))
        .send()
        .await
        .unwrap();
    assert!(!res.status().is_success(), "{reference} was served");
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

/// The digest `reference` is served as.
async fn served(c: &reqwest::Client, s: &Server, repo: &str, reference: &str) -> String {
    let res = c
        .head(s.v2(&format!("{repo}/manifests/{reference}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{reference} is not served");
    res.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The default (no `bonded.unsignedPush`): an unsigned push of a tag that is already
/// published keeps the published manifest served; the new one waits beside it, a pull
/// says so only when nothing is published, and the signature moves the tag.
#[tokio::test]
async fn a_published_tag_is_served_while_a_newer_push_of_it_waits() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({}), &[]);
    let c = client();
    let (a, a_desc) = image(&c, &s, "prod/app", "a").await;
    let a_digest = a_desc["digest"].as_str().unwrap().to_string();
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &a_desc).await,
        201
    );
    assert_eq!(
        put(&c, &s, "prod/app", "latest", OCI_MANIFEST, &a)
            .await
            .status(),
        201
    );
    assert_eq!(served(&c, &s, "prod/app", "latest").await, a_digest);

    let (b, b_desc) = image(&c, &s, "prod/app", "b").await;
    let b_digest = b_desc["digest"].as_str().unwrap().to_string();
    let res = put(&c, &s, "prod/app", "latest", OCI_MANIFEST, &b).await;
    assert_eq!(res.status(), 201);
    let warning = res.headers()["warning"].to_str().unwrap().to_string();
    assert!(warning.contains("tag waits for signatures"), "{warning}");
    assert!(
        warning.contains(&format!("sign registry.test/prod/app@{b_digest}")),
        "{warning}"
    );
    assert_eq!(
        served(&c, &s, "prod/app", "latest").await,
        a_digest,
        "the published manifest must stay served while the new push waits"
    );
    let tags: Value = get_json(&c, s.v2("prod/app/tags/list")).await;
    assert_eq!(tags["tags"], json!(["latest"]));

    // a signature from outside the trust store publishes nothing
    let stranger = Ca::new("Stranger Root");
    assert_eq!(
        push_signature(&c, &s, "prod/app", &stranger.signer("eve"), &b_desc).await,
        403
    );
    assert_eq!(served(&c, &s, "prod/app", "latest").await, a_digest);

    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &b_desc).await,
        201
    );
    assert_eq!(
        served(&c, &s, "prod/app", "latest").await,
        b_digest,
        "published by the signature"
    );
    let report = get_json(
        &c,
        format!("{}/bonded/v1/repositories/prod/app/pending", s.url),
    )
    .await;
    assert_eq!(report["waitingTags"], json!([]), "{report}");
}

/// A pull of a tag that only waits is refused with what it waits for, the digest to sign
/// (stored, so signing it works), and nothing else is published under it meanwhile.
#[tokio::test]
async fn a_pull_of_a_waiting_tag_says_what_it_waits_for() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({}), &[]);
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "w").await;
    let d = desc["digest"].as_str().unwrap().to_string();
    assert_eq!(
        put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &m)
            .await
            .status(),
        201
    );
    let e = error_of(&c, &s, "prod/app", "v1").await;
    let err = &e["errors"][0];
    assert_eq!(err["code"], "MANIFEST_UNKNOWN");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("tag v1 of prod/app waits for signatures"),
        "{message}"
    );
    assert!(
        message.contains(&format!("sign registry.test/prod/app@{d}")),
        "{message}"
    );
    assert!(
        message.contains("no valid signature") || message.contains("needs"),
        "{message}"
    );
    assert_eq!(err["detail"]["waiting"], d.as_str());
    // what it names is stored and signable: by digest, to those who may sign
    assert_eq!(served(&c, &s, "prod/app", &d).await, d);

    let report = get_json(
        &c,
        format!("{}/bonded/v1/repositories/prod/app/pending", s.url),
    )
    .await;
    assert_eq!(report["pending"][0]["digest"], d.as_str(), "{report}");
    assert_eq!(report["waitingTags"][0]["tag"], "v1", "{report}");
    assert_eq!(report["waitingTags"][0]["digest"], d.as_str(), "{report}");
    assert!(!report["waitingTags"][0]["needs"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(report["truncated"], false);
}

/// `"reject"`: the client hears 403, yet the digest the refusal names is stored (pending,
/// counted, not served) and signing it publishes the tag the push asked for.
#[tokio::test]
async fn a_rejected_push_is_stored_and_its_signature_publishes_the_tag() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &ca,
        json!({"bonded.unsignedPush": "reject"}),
        &[],
    );
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "r").await;
    let d = desc["digest"].as_str().unwrap().to_string();
    let res = put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &m).await;
    assert_eq!(res.status(), 403);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let message = e["errors"][0]["message"].as_str().unwrap().to_string();
    assert_eq!(e["errors"][0]["code"], "DENIED");
    assert!(
        message.contains(&format!("sign registry.test/prod/app@{d}")),
        "{message}"
    );
    assert!(message.contains("stored as pending"), "{message}");
    assert_eq!(status_of(&c, &s, "prod/app", "v1").await, 404);
    assert_eq!(pending(&c, &s, "prod/app").await, vec![d.clone()]);
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &desc).await,
        201
    );
    assert_eq!(served(&c, &s, "prod/app", "v1").await, d);
    let denied = audited(&c, &s, "admission.deny", "prod/app").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    let published = audited(&c, &s, "tag.publish", "prod/app").await;
    assert_eq!(published.len(), 1, "{published:?}");
}

/// One manifest waits per tag: the latest push. Signing an earlier one publishes nothing
/// under the tag; deleting the tag (or the manifest) ends the wait.
#[tokio::test]
async fn the_latest_push_of_a_tag_is_the_one_that_waits() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &ca, json!({}), &[]);
    let c = client();
    let alice = ca.signer("alice");
    let (a, a_desc) = image(&c, &s, "prod/app", "first").await;
    let (b, b_desc) = image(&c, &s, "prod/app", "second").await;
    let b_digest = b_desc["digest"].as_str().unwrap().to_string();
    assert_eq!(
        put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &a)
            .await
            .status(),
        201
    );
    assert_eq!(
        put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &b)
            .await
            .status(),
        201
    );
    assert_eq!(
        push_signature(&c, &s, "prod/app", &alice, &a_desc).await,
        201
    );
    let e = error_of(&c, &s, "prod/app", "v1").await;
    assert_eq!(
        e["errors"][0]["detail"]["waiting"],
        b_digest.as_str(),
        "{e}"
    );
    assert_eq!(
        push_signature(&c, &s, "prod/app", &alice, &b_desc).await,
        201
    );
    assert_eq!(served(&c, &s, "prod/app", "v1").await, b_digest);

    // a deleted waiting tag stays deleted when its manifest is signed afterwards
    let (m, desc) = image(&c, &s, "prod/app", "third").await;
    assert_eq!(
        put(&c, &s, "prod/app", "v2", OCI_MANIFEST, &m)
            .await
            .status(),
        201
    );
    let res = c
        .delete(s.v2("prod/app/manifests/v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(push_signature(&c, &s, "prod/app", &alice, &desc).await, 201);
    let e = error_of(&c, &s, "prod/app", "v2").await;
    assert!(e["errors"][0]["detail"].get("waiting").is_none(), "{e}");
    // and a deleted manifest takes its waiting tags with it
    let (m, desc) = image(&c, &s, "prod/app", "fourth").await;
    let d = desc["digest"].as_str().unwrap().to_string();
    assert_eq!(
        put(&c, &s, "prod/app", "v3", OCI_MANIFEST, &m)
            .await
            .status(),
        201
    );
    delete(&c, &s, "prod/app", &d).await;
    let e = error_of(&c, &s, "prod/app", "v3").await;
    assert!(e["errors"][0]["detail"].get("waiting").is_none(), "{e}");
}

/// A trust change that makes stored signatures enough (here: 2 of 2 lowered to 1 of 2)
/// publishes what waited for them, as a signature push would, with an audit record; one
/// that does not leaves it waiting.
#[tokio::test]
async fn a_trust_change_publishes_what_its_stored_signatures_now_satisfy() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let ids = json!([
        "x509.subject: C=US, ST=WA, O=Acme, CN=alice",
        "x509.subject: C=US, ST=WA, O=Acme, CN=bob"
    ]);
    let s = start(
        tmp.path(),
        &ca,
        json!({"trustedIdentities": ids, "signaturesRequired": 2}),
        &[],
    );
    let c = client();
    let (m, desc) = image(&c, &s, "prod/app", "lowered").await;
    assert_eq!(
        put(&c, &s, "prod/app", "v1", OCI_MANIFEST, &m)
            .await
            .status(),
        201
    );
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &desc).await,
        201
    );
    assert_eq!(
        status_of(&c, &s, "prod/app", "v1").await,
        404,
        "1 of 2: waits"
    );
    let set_policy = |k: u32| {
        let policy = json!({"version": "1.0", "trustPolicies": [{
            "name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ids, "signaturesRequired": k}]});
        let c = c.clone();
        let url = format!("{}/bonded/v1/trust/policy", s.url);
        async move {
            c.put(url)
                .bearer_auth(TOKEN)
                .body(policy.to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // a change that still asks for 2: nothing published
    assert_eq!(set_policy(2).await, 200);
    assert_eq!(
        status_of(&c, &s, "prod/app", "v1").await,
        404,
        "still waits"
    );
    assert_eq!(set_policy(1).await, 200);
    assert_eq!(
        status_of(&c, &s, "prod/app", "v1").await,
        200,
        "published by the change"
    );
    let published = audited(&c, &s, "tag.publish", "prod/app").await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["tag"], "v1");
}
