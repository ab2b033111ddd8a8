//! After a trust change: which published images the new configuration no longer accepts,
//! in the change's answer, at `GET /bonded/v1/trust/noncompliant` and in
//! `bonded trust show --noncompliant`, so an operator sees what a change does before
//! pushes and (under `bonded.enforceOnPull`) pulls start failing.

use crate::common;

use common::pki::{push_signature, Ca};
use common::*;
use serde_json::{json, Value};
use std::process::Command;

const TOKEN: &str = "compliance-admin-token";

fn policy(with_prod: bool) -> Value {
    let mut statements = vec![json!({
        "name": "gate", "registryScopes": ["registry.test/gate/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
        "trustedIdentities": ["*"], "bonded.enforceOnPull": true
    })];
    if with_prod {
        statements.push(json!({
            "name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["*"]
        }));
    }
    statements.push(json!({
        "name": "dev", "registryScopes": ["registry.test/dev/*"],
        "signatureVerification": {"level": "skip"}
    }));
    json!({"version": "1.0", "trustPolicies": statements})
}

/// Pushes an image into `repo` by digest, signed by `signer` when given, then tags it
/// with each of `tags`.
async fn image(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    signer: Option<&common::pki::Signer>,
    tags: &[&str],
) -> String {
    let config = format!("{{\"repo\":\"{repo}\"}}");
    let config_digest = push_blob(c, s, repo, config.as_bytes()).await;
    let m = image_manifest((&config_digest, config.len()), &[], json!({}));
    let d = sha256(&m);
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/{d}")), m.clone()).await;
    assert_eq!(res.status(), 201, "push {repo}@{d}");
    if let Some(signer) = signer {
        let subject = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()});
        assert_eq!(push_signature(c, s, repo, signer, &subject).await, 201);
    }
    for t in tags {
        let res = put_manifest(c, s.v2(&format!("{repo}/manifests/{t}")), m.clone()).await;
        assert_eq!(res.status(), 201, "tag {repo}:{t}");
    }
    d
}

async fn admin_send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    )
}

fn listed(report: &Value) -> Vec<(String, String, Value, bool)> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["repository"].as_str().unwrap().to_string(),
                i["tag"].as_str().unwrap().to_string(),
                i["policy"].clone(),
                i["pullsRefused"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_trust_change_says_which_published_images_it_no_longer_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let acme = Ca::new("Acme Root");
    acme.write_store(&d.join("truststore"), "acme");
    std::fs::write(d.join("policy.json"), policy(true).to_string()).unwrap();
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--trust-policy",
            d.join("policy.json").to_str().unwrap(),
            "--trust-store",
            d.join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
            "--admin-token",
            TOKEN,
        ],
    );
    let c = client();
    let alice = acme.signer("alice");
    let app = image(&c, &s, "prod/app", Some(&alice), &["v1", "v2"]).await;
    let svc = image(&c, &s, "gate/svc", Some(&alice), &["v1"]).await;
    image(&c, &s, "dev/tool", None, &["v1"]).await;
    let url = |p: &str| format!("{}/bonded/v1/{p}", s.url);

    // Everything meets the configuration it was admitted under.
    let (status, report) = admin_send(c.get(url("trust/noncompliant"))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["enforced"], true);
    assert_eq!(report["checkedTags"], 4);
    assert_eq!(report["noncompliantTags"], 0);

    // The store's root replaced by another CA's: alice's signatures no longer verify.
    let other = Ca::new("Other Root");
    let (status, answer) =
        admin_send(c.put(url("trust/stores/ca/acme")).body(other.pem.clone())).await;
    assert_eq!(status, 200, "{answer}");
    let report = &answer["noncompliant"];
    assert_eq!(report["trustVersion"], answer["version"]);
    assert_eq!(report["checkedTags"], 4);
    assert_eq!(report["noncompliantTags"], 3, "{report}");
    assert_eq!(
        listed(report),
        [
            ("gate/svc".into(), "v1".into(), json!("gate"), true),
            ("prod/app".into(), "v1".into(), json!("prod"), false),
            ("prod/app".into(), "v2".into(), json!("prod"), false),
        ]
    );
    assert_eq!(report["images"][0]["digest"], svc.as_str());
    assert_eq!(report["images"][1]["digest"], app.as_str());
    assert!(
        report["images"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("found 0"),
        "{report}"
    );
    assert_eq!(report["truncated"], false);
    // What the report says about pulls is what pulls do.
    let res = c.get(s.v2("gate/svc/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = c.get(s.v2("prod/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // A bounded list, an unbounded count.
    let (_, page) = admin_send(c.get(url("trust/noncompliant?limit=1"))).await;
    assert_eq!(page["noncompliantTags"], 3);
    assert_eq!(page["images"].as_array().unwrap().len(), 1);
    assert_eq!(page["truncated"], true);
    for bad in ["0", "1001", "many"] {
        let (status, body) =
            admin_send(c.get(url(&format!("trust/noncompliant?limit={bad}")))).await;
        assert_eq!(status, 400, "limit={bad}: {body}");
    }

    // The CLI's table and its count.
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args([
            "trust",
            "show",
            "--noncompliant",
            "--registry",
            &s.addr,
            "--admin-token",
            TOKEN,
        ])
        .output()
        .unwrap();
    let text = ok(&o);
    assert!(
        text.contains("3 of 4 published tag(s) do not meet the trust configuration"),
        "{text}"
    );
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert!(
        rows[0].starts_with("gate/svc:v1") && rows[0].contains("refused"),
        "{text}"
    );
    assert!(
        rows[1].starts_with("prod/app:v1") && rows[1].contains("served"),
        "{text}"
    );

    // A policy without prod: its images are covered by nothing.
    std::fs::write(d.join("noprod.json"), policy(false).to_string()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["trust", "set-policy"])
        .arg(d.join("noprod.json"))
        .args(["--registry", &s.addr, "--admin-token", TOKEN])
        .output()
        .unwrap();
    let text = ok(&o);
    assert!(text.contains("3 of 4 published tag(s)"), "{text}");
    assert!(
        text.contains("no trust policy covers registry.test/prod/app"),
        "{text}"
    );

    // Back to the configuration the images were signed for: nothing to report.
    admin_send(c.put(url("trust/policy")).body(policy(true).to_string())).await;
    let (status, answer) =
        admin_send(c.put(url("trust/stores/ca/acme")).body(acme.pem.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(answer["noncompliant"]["noncompliantTags"], 0, "{answer}");
}

#[tokio::test]
async fn only_administrators_read_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "reader", "reader", "*");
    let url = format!("{}/bonded/v1/trust/noncompliant", s.url);
    let res = client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = as_user("reader", &password("reader"))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = as_user("admin", ADMIN_PASSWORD)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(
        report["enforced"], false,
        "no trust policy: nothing is checked"
    );
}
