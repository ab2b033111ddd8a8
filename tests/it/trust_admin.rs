//! Changing the trust configuration at run time through /bonded/v1/trust: authorised by
//! the admin token, validated, versioned, applied at once, re-evaluating stored signatures,
//! and still in force after a restart.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

const TOKEN: &str = "test-admin-token-4f1c";
const V1_IMAGE: &str = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";
const V1_SIGNATURE: &str =
    "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f";

fn vectors() -> PathBuf {
    common::vectors::path()
}

fn v1() -> PathBuf {
    vectors().join("notation-e2e/oci_layout/e2e-valid-signature")
}

fn blob(digest: &str) -> Vec<u8> {
    std::fs::read(
        v1().join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

const POLICY: &str = r#"{"version":"1.0","trustPolicies":[
  {"name":"signed","registryScopes":["registry.test/signed/*"],"signatureVerification":{"level":"strict"},
   "trustStores":["ca:e2e"],"trustedIdentities":["*"],"bonded.unsignedPush":"reject"}]}"#;

struct Admin<'a> {
    c: reqwest::Client,
    s: &'a Server,
}

impl Admin<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/bonded/v1/{path}", self.s.url)
    }

    async fn put(&self, path: &str, body: Vec<u8>, token: Option<&str>) -> reqwest::Response {
        let mut req = self.c.put(self.url(path)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let res = self.c.get(self.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
    }
}

async fn body(res: reqwest::Response) -> Value {
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

async fn push_signed_v1(c: &reqwest::Client, s: &Server) -> reqwest::Response {
    for entry in std::fs::read_dir(v1().join("blobs/sha256")).unwrap() {
        push_blob(
            c,
            s,
            "signed/app",
            &std::fs::read(entry.unwrap().path()).unwrap(),
        )
        .await;
    }
    for (reference, digest) in [(V1_IMAGE, V1_IMAGE), (V1_SIGNATURE, V1_SIGNATURE)] {
        let res = put_manifest(
            c,
            s.v2(&format!("signed/app/manifests/{reference}")),
            blob(digest),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    c.put(s.v2("signed/app/manifests/v1"))
        .header("Content-Type", OCI_MANIFEST)
        .body(blob(V1_IMAGE))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn trust_changes_are_authorised_validated_versioned_and_reevaluate_signatures() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = ["--hostname", "registry.test", "--admin-token", TOKEN];
    let s = Server::start_in(&data, &args);
    let a = Admin { c: client(), s: &s };
    let c = client();
    let e2e = std::fs::read(vectors().join("notation-e2e/localkeys/e2e.crt")).unwrap();

    assert_eq!(a.get("trust").await["enforced"], false);

    // no token, a wrong token: refused, nothing recorded
    for token in [None, Some("wrong")] {
        let res = a.put("trust/stores/ca/e2e", e2e.clone(), token).await;
        assert_eq!(res.status(), 401);
        assert_eq!(body(res).await["errors"][0]["code"], "UNAUTHORIZED");
    }
    assert_eq!(a.get("trust/versions").await, json!([]));

    let res = a.put("trust/stores/ca/e2e", e2e.clone(), Some(TOKEN)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["version"], 1);

    // invalid policies are refused with the reason, and change nothing
    let bad = POLICY.replace(
        "\"strict\"}",
        "\"strict\",\"override\":{\"integrity\":\"log\"}}",
    );
    let res = a.put("trust/policy", bad.into_bytes(), Some(TOKEN)).await;
    assert_eq!(res.status(), 400);
    let e = body(res).await;
    assert_eq!(e["errors"][0]["code"], "TRUST_CONFIG_INVALID");
    assert!(e["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("integrity verification can not be overridden"));
    let res = a
        .put(
            "trust/policy",
            POLICY.replace("ca:e2e", "ca:nope").into_bytes(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(a.get("trust").await["enforced"], false);

    let res = a
        .put("trust/policy", POLICY.as_bytes().to_vec(), Some(TOKEN))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["version"], 2);
    let snapshot = a.get("trust").await;
    assert_eq!(snapshot["enforced"], true);
    assert_eq!(snapshot["stores"][0]["store"], "ca:e2e");
    assert_eq!(
        snapshot["stores"][0]["certificates"][0]["thumbprint"],
        "e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9"
    );

    // enforced at once: the signed image is admitted
    let res = push_signed_v1(&c, &s).await;
    assert_eq!(res.status(), 201);
    let store = a
        .get(&format!("repositories/signed/app/signatures/{V1_IMAGE}"))
        .await;
    assert_eq!(store["signatures"][0]["accepted"], true);

    // the trust store changes: the stored signature is re-evaluated and no longer counts
    let other = std::fs::read(vectors().join("notation-e2e/localkeys/new_e2e.crt")).unwrap();
    let res = a.put("trust/stores/ca/e2e", other, Some(TOKEN)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["reevaluatedSignatures"], 1);
    let store = a
        .get(&format!("repositories/signed/app/signatures/{V1_IMAGE}"))
        .await;
    let sig = &store["signatures"][0];
    assert_eq!(sig["accepted"], false);
    assert_eq!(sig["checks"]["authenticity"]["outcome"], "failed");
    assert_eq!(store["verdict"]["admitted"], false);
    let res = put_manifest(&c, s.v2("signed/app/manifests/v2"), blob(V1_IMAGE)).await;
    assert_eq!(
        res.status(),
        403,
        "re-tagging now needs a signature the new store trusts"
    );

    // a store the policy names cannot be removed
    let res =
        a.c.delete(a.url("trust/stores/ca/e2e"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 400);
    assert!(body(res).await["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("names trust store 'ca:e2e'"));

    let versions = a.get("trust/versions").await;
    let reasons: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3);
    assert!(reasons[0].contains("trust store 'ca:e2e' set"));
    assert!(reasons[1].contains("policy replaced"));

    // after a restart without flags, the recorded configuration is still in force
    drop(s);
    let s = Server::start_in(&data, &["--hostname", "registry.test"]);
    let a = Admin { c: client(), s: &s };
    let snapshot = a.get("trust").await;
    assert_eq!(snapshot["enforced"], true);
    assert_eq!(snapshot["version"], 3);
    // without a token configured, the old token is just a bad credential...
    let res = a
        .put("trust/policy", POLICY.as_bytes().to_vec(), Some(TOKEN))
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(body(res).await["errors"][0]["code"], "UNAUTHORIZED");
    // ...and an administrator account (admin on '*') may change the configuration
    let res =
        a.c.put(format!("{}/bonded/v1/trust/policy", s.url))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .body(POLICY)
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["version"], 4);
    let who =
        a.c.get(format!("{}/bonded/v1/audit?action=trust.change", s.url))
            .send()
            .await
            .unwrap();
    let records = body(who).await;
    let last = records["records"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor"], "admin", "{last}");
}

/// A trust change whose re-evaluation outlasts the wait (`--trust-change-wait 0`): the
/// change answers 202 with the job, is in force at once (pushes are decided by it before
/// the re-evaluation ends), and `GET trust/job` follows it to the result a quick change
/// gives; the CLI follows it the same way.
#[tokio::test]
async fn a_slow_trust_change_answers_202_and_finishes_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(
        &data,
        &[
            "--hostname",
            "registry.test",
            "--admin-token",
            TOKEN,
            "--trust-change-wait",
            "0",
        ],
    );
    let c = client();
    // Signed images stored before any policy: the change must verify their signatures.
    let ca = common::pki::Ca::new("Job Root");
    let signer = ca.signer("alice");
    for i in 0..3 {
        let (m, digest) = push_image(
            &c,
            &s,
            "prod/app",
            &format!("v{i}"),
            &format!("s{i}"),
            json!({}),
        )
        .await;
        let subject = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": m.len()});
        assert_eq!(
            common::pki::push_signature(&c, &s, "prod/app", &signer, &subject).await,
            201
        );
    }
    let put = |path: &str, body: Vec<u8>| {
        let url = format!("{}/bonded/v1/{path}", s.url);
        let c = c.clone();
        async move {
            c.put(url)
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let job_of = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 202);
        assert_eq!(res.headers()["location"], "/bonded/v1/trust/job");
        serde_json::from_slice::<Value>(&res.bytes().await.unwrap()).unwrap()
    };
    let first = job_of(put("trust/stores/ca/job", ca.pem.clone().into_bytes()).await).await;
    assert_eq!(first["version"], 1);
    let policy = json!({"version": "1.0", "trustPolicies": [{
        "name": "prod", "registryScopes": ["registry.test/prod/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:job"],
        "trustedIdentities": ["*"], "bonded.unsignedPush": "reject"}]});
    let job = job_of(put("trust/policy", policy.to_string().into_bytes()).await).await;
    assert_eq!(job["version"], 2);
    assert!(
        ["running", "done"].contains(&job["state"].as_str().unwrap()),
        "{job}"
    );

    // In force already: an unsigned push is refused whatever the job's progress.
    let config = b"{\"unsigned\":true}".to_vec();
    let cd = push_blob(&c, &s, "prod/app", &config).await;
    let m = image_manifest((&cd, config.len()), &[], json!({}));
    let res = put_manifest(&c, s.v2("prod/app/manifests/unsigned"), m).await;
    assert!(
        res.status() == 403 || res.status() == 400,
        "{}",
        res.status()
    );

    // Followed to the end: the three signatures verified again under version 2.
    let mut done = Value::Null;
    for _ in 0..100 {
        let res = c
            .get(format!("{}/bonded/v1/trust/job", s.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(v["version"], 2, "{v}");
        if v["state"] == "done" {
            done = v;
            break;
        }
        assert_eq!(v["state"], "running", "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(done["result"]["version"], 2, "{done}");
    assert_eq!(done["result"]["reevaluatedSignatures"], 3, "{done}");
    assert_eq!(done["reevaluatedSoFar"], 3, "{done}");
    assert_eq!(done["signaturesFound"], 3, "{done}");
    assert_eq!(
        done["result"]["noncompliant"]["noncompliantTags"], 0,
        "{done}"
    );

    // The CLI follows a 202 to the same result.
    let file = tmp.path().join("policy.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["trust", "set-policy"])
        .arg(&file)
        .args(["--registry", &s.addr])
        .env("BONDED_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("version 3") && text.contains("3 stored signature(s) re-evaluated"),
        "{text}"
    );
}
