//! The admission gate, end to end: bonded started with a trust policy refuses unsigned and
//! untrusted pushes and admits images whose signatures (made by notation) satisfy it.

use crate::common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const V1_IMAGE: &str = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";
const V1_SIGNATURE: &str =
    "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f";
const V3_SIGNATURE_LAYOUT: &str = "e2e-invalid-signature";

fn vectors() -> PathBuf {
    common::vectors::path()
}

fn layout(name: &str) -> PathBuf {
    vectors().join("notation-e2e/oci_layout").join(name)
}

const POLICY: &str = r#"{
  "version": "1.0",
  "trustPolicies": [
    {"name": "signed", "registryScopes": ["registry.test/signed/*"],
     "signatureVerification": {"level": "strict"},
     "trustStores": ["ca:e2e"], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary"],
     "bonded.unsignedPush": "reject"},
    {"name": "lab", "registryScopes": ["registry.test/lab/*"],
     "signatureVerification": {"level": "skip"}}
  ]
}"#;

/// Starts bonded enforcing POLICY with `anchor` as the only certificate of store ca:e2e.
fn start(tmp: &Path, anchor: &str) -> Server {
    let store = tmp.join("truststore/x509/ca/e2e");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(vectors().join(anchor), store.join("anchor.crt")).unwrap();
    std::fs::write(tmp.join("trustpolicy.json"), POLICY).unwrap();
    Server::start_in(
        &tmp.join("data"),
        &[
            "--trust-policy",
            tmp.join("trustpolicy.json").to_str().unwrap(),
            "--trust-store",
            tmp.join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    )
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// Pushes every blob of a layout into `repo` (manifests too: harmless, and simpler).
async fn push_layout_blobs(c: &reqwest::Client, s: &Server, repo: &str, layout: &Path) {
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        push_blob(c, s, repo, &bytes).await;
    }
}

async fn put_manifest(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    reference: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    c.put(s.v2(&format!("{repo}/manifests/{reference}")))
        .header("Content-Type", OCI_MANIFEST)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn error(res: reqwest::Response) -> (String, String, Value) {
    let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let e = &v["errors"][0];
    (
        e["code"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
        e["detail"].clone(),
    )
}

/// The signature manifest digest of a layout (the one whose config says notary).
fn signature_of(layout: &Path) -> (String, Vec<u8>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        let bytes = blob(layout, d);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        if v["config"]["mediaType"] == "application/vnd.cncf.notary.signature" {
            return (d.to_string(), bytes);
        }
    }
    panic!("no signature in {}", layout.display());
}

#[tokio::test]
async fn signed_images_are_admitted_and_unsigned_ones_refused() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), "notation-e2e/localkeys/e2e.crt");
    let c = client();
    let v1 = layout("e2e-valid-signature");
    push_layout_blobs(&c, &s, "signed/app", &v1).await;

    // The image by tag before its signature: refused, with what is missing and how to fix it.
    let res = put_manifest(&c, &s, "signed/app", "v1", blob(&v1, V1_IMAGE)).await;
    assert_eq!(res.status(), 403);
    let (code, message, detail) = error(res).await;
    assert_eq!(code, "DENIED");
    assert!(
        message.contains(
            "policy 'signed' needs 1 signature from distinct trusted identities; found 0: none"
        ),
        "{message}"
    );
    assert!(
        message.contains("registry.test/signed/app@sha256:b8479de3"),
        "{message}"
    );
    assert_eq!(detail["policy"], "signed");
    assert_eq!(
        c.get(s.v2("signed/app/tags/list"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // By digest, untagged: admitted (this is what gets signed).
    let res = put_manifest(&c, &s, "signed/app", V1_IMAGE, blob(&v1, V1_IMAGE)).await;
    assert_eq!(res.status(), 201);

    // notation's signature, pushed as a referrer: verified and admitted.
    let res = put_manifest(&c, &s, "signed/app", V1_SIGNATURE, blob(&v1, V1_SIGNATURE)).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["oci-subject"], V1_IMAGE);

    // Now the tag goes in.
    let res = put_manifest(&c, &s, "signed/app", "v1", blob(&v1, V1_IMAGE)).await;
    assert_eq!(res.status(), 201, "{:?}", error(res).await);

    // The signature store says who signed, how, and what each check found.
    let res = c
        .get(format!(
            "{}/bonded/v1/repositories/signed/app/signatures/{V1_IMAGE}",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let store: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(store["verdict"]["admitted"], true);
    assert_eq!(store["verdict"]["policy"], "signed");
    let sigs = store["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1);
    let sig = &sigs[0];
    assert_eq!(sig["digest"], V1_SIGNATURE);
    assert_eq!(sig["format"], "notary.jws");
    assert_eq!(sig["signer"], "C=US, ST=WA, L=Seattle, O=Notary, CN=e2e");
    assert_eq!(sig["algorithm"], "PS256");
    assert_eq!(sig["accepted"], true);
    assert_eq!(sig["checks"]["integrity"]["outcome"], "passed");
    assert_eq!(sig["checks"]["authenticity"]["outcome"], "passed");
    // e2e.crt names no CRL distribution point or OCSP responder: nothing can revoke it,
    // so the check passes (the Notary Project's rule).
    assert_eq!(sig["checks"]["revocation"]["outcome"], "passed");
    // thumbprint of e2e.crt, as notation's own annotation records it
    assert_eq!(
        sig["thumbprints"],
        serde_json::json!(["e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9"])
    );
    assert!(sig["signingTime"]
        .as_str()
        .unwrap()
        .starts_with("2023-06-27"));
    let res = c.get(s.v2("signed/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.headers()["docker-content-digest"], V1_IMAGE);

    // Any unsigned image by tag in the same namespace is refused (`"reject"`), and what
    // the refusal says to sign is stored as pending: signable, never served by tag.
    let (m, d) = {
        let config = push_blob(&c, &s, "signed/other", b"{}").await;
        let m = image_manifest((&config, 2), &[], serde_json::json!({}));
        let d = sha256(&m);
        (m, d)
    };
    let res = put_manifest(&c, &s, "signed/other", "latest", m).await;
    assert_eq!(res.status(), 403);
    let e: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let message = e["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("sign registry.test/signed/other@{d}")),
        "{message}"
    );
    assert_eq!(e["errors"][0]["detail"]["stored"], d.as_str());
    let tags = get_json(&c, s.v2("signed/other/tags/list")).await;
    assert_eq!(tags["tags"], serde_json::json!([]), "{tags}");
    let pending = get_json(
        &c,
        format!("{}/bonded/v1/repositories/signed/other/pending", s.url),
    )
    .await;
    assert_eq!(pending["pending"][0]["digest"], d.as_str(), "{pending}");
    assert_eq!(pending["waitingTags"][0]["tag"], "latest", "{pending}");
}

#[tokio::test]
async fn a_signature_that_fails_integrity_is_refused_and_not_stored() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), "notation-e2e/localkeys/e2e.crt");
    let c = client();
    let v3 = layout(V3_SIGNATURE_LAYOUT);
    push_layout_blobs(&c, &s, "signed/app", &v3).await;
    let (sig, bytes) = signature_of(&v3);
    let res = put_manifest(&c, &s, "signed/app", &sig, bytes).await;
    assert_eq!(res.status(), 403);
    let (code, message, detail) = error(res).await;
    assert_eq!(code, "DENIED");
    assert_eq!(detail["check"], "integrity");
    assert!(
        message.contains("signature refused by policy 'signed'"),
        "{message}"
    );
    let res = c
        .get(s.v2(&format!("signed/app/referrers/{V1_IMAGE}")))
        .send()
        .await
        .unwrap();
    let index: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(
        index["manifests"],
        serde_json::json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_signature_from_an_untrusted_root_fails_authenticity() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), "notation-e2e/localkeys/new_e2e.crt");
    let c = client();
    let v1 = layout("e2e-valid-signature");
    push_layout_blobs(&c, &s, "signed/app", &v1).await;
    let res = put_manifest(&c, &s, "signed/app", V1_SIGNATURE, blob(&v1, V1_SIGNATURE)).await;
    assert_eq!(res.status(), 403);
    let (_, message, detail) = error(res).await;
    assert_eq!(detail["check"], "authenticity");
    assert!(
        message.contains("signature chain does not lead to a root in trust store 'ca:e2e'"),
        "{message}"
    );
    assert!(detail["signer"].as_str().unwrap().contains("CN=e2e"));
}

#[tokio::test]
async fn uncovered_repositories_are_refused_and_skip_namespaces_are_open() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), "notation-e2e/localkeys/e2e.crt");
    let c = client();
    let (m, _) = {
        let config = push_blob(&c, &s, "elsewhere/app", b"{}").await;
        push_blob(&c, &s, "lab/app", b"{}").await;
        (image_manifest((&config, 2), &[], serde_json::json!({})), ())
    };
    let res = put_manifest(&c, &s, "elsewhere/app", "v1", m.clone()).await;
    assert_eq!(res.status(), 403);
    let (_, message, _) = error(res).await;
    assert!(
        message.contains("no trust policy covers registry.test/elsewhere/app"),
        "{message}"
    );
    let res = put_manifest(&c, &s, "lab/app", "v1", m).await;
    assert_eq!(res.status(), 201, "skip level admits unsigned images");
}

#[tokio::test]
async fn skopeo_unsigned_push_is_refused_and_signature_first_push_admitted() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), "notation-e2e/localkeys/e2e.crt");
    let c = client();
    // skopeo may write lock files: work on a copy of the read-only vector layout
    let src = tmp.path().join("layout");
    copy_dir(&layout("e2e-valid-signature"), &src);
    let copy = |dest: &str| {
        std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--dest-tls-verify=false",
                "--preserve-digests",
            ])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(format!("docker://{}/{dest}", s.addr))
            .output()
            .expect("run skopeo (apt-get install -y skopeo)")
    };
    let out = copy("signed/app:v1");
    assert!(!out.status.success(), "unsigned push must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs 1 signature"),
        "skopeo shows bonded's reason: {stderr}"
    );

    // Push notation's signature first, then the same skopeo copy is admitted.
    push_layout_blobs(&c, &s, "signed/app", &src).await;
    let res = put_manifest(&c, &s, "signed/app", V1_SIGNATURE, blob(&src, V1_SIGNATURE)).await;
    assert_eq!(res.status(), 201);
    let out = copy("signed/app:v1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_bad_policy_stops_the_server_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("truststore/x509/ca/e2e")).unwrap();
    std::fs::write(tmp.path().join("p.json"), r#"{"version":"1.0","trustPolicies":[{"name":"x","registryScopes":["*"],"signatureVerification":{"level":"strict","override":{"integrity":"log"}},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("d"))
        .arg("--trust-policy")
        .arg(tmp.path().join("p.json"))
        .arg("--trust-store")
        .arg(tmp.path().join("truststore"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("integrity verification can not be overridden"),
        "{stderr}"
    );
}

/// Starts bonded with one policy over registry.test/signed/* at `level`, `anchor` in ca:e2e.
fn start_level(tmp: &Path, anchor: &str, level: &str) -> Server {
    let store = tmp.join("truststore/x509/ca/e2e");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(vectors().join(anchor), store.join("anchor.crt")).unwrap();
    // the vectors README's T-strict: any identity the e2e store vouches for
    let policy = POLICY
        .replace("\"strict\"", &format!("\"{level}\""))
        .replace("\"x509.subject: C=US, ST=WA, O=Notary\"", "\"*\"");
    std::fs::write(tmp.join("trustpolicy.json"), policy).unwrap();
    Server::start_in(
        &tmp.join("data"),
        &[
            "--trust-policy",
            tmp.join("trustpolicy.json").to_str().unwrap(),
            "--trust-store",
            tmp.join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    )
}

/// Pushes a vector layout's blobs and its signature manifest; returns the response.
async fn push_vector_signature(s: &Server, layout_name: &str) -> reqwest::Response {
    let c = client();
    let l = layout(layout_name);
    push_layout_blobs(&c, s, "signed/app", &l).await;
    let (sig, bytes) = signature_of(&l);
    put_manifest(&c, s, "signed/app", &sig, bytes).await
}

#[tokio::test]
async fn v4_expired_signature_is_refused_by_strict_and_admitted_by_permissive() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start_level(tmp.path(), "notation-e2e/localkeys/e2e.crt", "strict");
    let res = push_vector_signature(&s, "e2e-expired-signature").await;
    assert_eq!(res.status(), 403);
    let (_, message, detail) = error(res).await;
    assert_eq!(detail["check"], "expiry");
    assert!(message.contains("expired"), "{message}");

    let tmp = tempfile::tempdir().unwrap();
    let s = start_level(tmp.path(), "notation-e2e/localkeys/e2e.crt", "permissive");
    assert_eq!(
        push_vector_signature(&s, "e2e-expired-signature")
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn v5_expired_certificate_is_refused_by_strict_and_admitted_by_permissive() {
    if common::vectors::dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start_level(
        tmp.path(),
        "notation-e2e/localkeys/expired_e2e.crt",
        "strict",
    );
    let res = push_vector_signature(&s, "e2e-with-expired-cert").await;
    assert_eq!(res.status(), 403);
    let (_, _, detail) = error(res).await;
    assert_eq!(detail["check"], "authenticTimestamp");

    let tmp = tempfile::tempdir().unwrap();
    let s = start_level(
        tmp.path(),
        "notation-e2e/localkeys/expired_e2e.crt",
        "permissive",
    );
    assert_eq!(
        push_vector_signature(&s, "e2e-with-expired-cert")
            .await
            .status(),
        201
    );
}

/// Signatures per manifest are capped (`--max-signatures-per-subject`), so nobody who
/// may push signatures can make every admission of a digest slower without end; and a
/// signature is verified once: its stored verdict is used until a time-dependent check
/// (here the signature's own expiry) could come out differently.
#[tokio::test]
async fn signatures_per_subject_are_capped_and_stored_verdicts_expire() {
    use common::pki::{push_envelope, push_signature, Ca};
    use serde_json::{json, Value};
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    ca.write_store(&tmp.path().join("truststore"), "acme");
    let policy = json!({"version": "1.0", "trustPolicies": [{
        "name": "prod", "registryScopes": ["registry.test/prod/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
        "trustedIdentities": ["*"], "bonded.unsignedPush": "reject"}]});
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
            "--max-signatures-per-subject",
            "3",
        ],
    );
    let c = client();
    let repo = "prod/app";
    let config = push_blob(&c, &s, repo, b"{\"capped\":true}").await;
    let m = image_manifest((&config, 15), &[], json!({}));
    let d = sha256(&m);
    assert_eq!(
        common::put_manifest(&c, s.v2(&format!("{repo}/manifests/{d}")), m.clone())
            .await
            .status(),
        201
    );
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()});
    for cn in ["a", "b", "c"] {
        assert_eq!(
            push_signature(&c, &s, repo, &ca.signer(cn), &subject).await,
            201,
            "{cn}"
        );
    }
    // The fourth is refused, says why, and is not stored.
    let mallory = ca.signer("d");
    let env = common::pki::envelope(&mallory, &subject);
    let status = push_envelope(&c, &s, repo, &env, &mallory.chain, &subject).await;
    assert_eq!(status, 403);
    let referrers: Value = get_json(&c, s.v2(&format!("{repo}/referrers/{d}"))).await;
    assert_eq!(referrers["manifests"].as_array().unwrap().len(), 3);
    // The refusal names the limit (pushed by hand to read the answer).
    let empty = push_blob(&c, &s, repo, b"{}").await;
    let env_d = push_blob(&c, &s, repo, &env).await;
    let sig = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": env_d, "size": env.len()}],
        "subject": subject,
    })
    .to_string();
    let res = common::put_manifest(
        &c,
        s.v2(&format!("{repo}/manifests/{}", sha256(sig.as_bytes()))),
        sig,
    )
    .await;
    assert_eq!(res.status(), 403);
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(body["errors"][0]["detail"]["limit"], 3);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("--max-signatures-per-subject"),
        "{message}"
    );

    // A signature that expires in two seconds: its stored verdict admits a tag now and
    // must not admit one after the expiry.
    let m2 = image_manifest((&config, 15), &[], json!({"annotations": {"n": "2"}}));
    let d2 = sha256(&m2);
    assert_eq!(
        common::put_manifest(&c, s.v2(&format!("{repo}/manifests/{d2}")), m2.clone())
            .await
            .status(),
        201
    );
    let subject2 = json!({"mediaType": OCI_MANIFEST, "digest": d2, "size": m2.len()});
    let signer = ca.signer("short-lived");
    let env = {
        use bonded::trust::envelope::TargetArtifact;
        use bonded::trust::sign::{sign, SignRequest};
        sign(
            &signer.key,
            &SignRequest {
                target: &TargetArtifact {
                    media_type: OCI_MANIFEST.into(),
                    digest: d2.clone(),
                    size: m2.len() as u64,
                    annotations: None,
                    artifact_type: None,
                },
                chain: &signer.chain,
                signing_time: time::OffsetDateTime::now_utc(),
                expiry: Some(time::OffsetDateTime::now_utc() + time::Duration::seconds(2)),
                signing_agent: "bonded-test",
            },
        )
        .unwrap()
    };
    assert_eq!(
        push_envelope(&c, &s, repo, &env, &signer.chain, &subject2).await,
        201
    );
    let tag = |t: &'static str| {
        let (c, url, body) = (
            c.clone(),
            s.v2(&format!("{repo}/manifests/{t}")),
            m2.clone(),
        );
        async move { common::put_manifest(&c, url, body).await.status().as_u16() }
    };
    assert_eq!(tag("before").await, 201);
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(
        tag("after").await,
        403,
        "an expired signature's stored verdict admitted a tag"
    );
}
