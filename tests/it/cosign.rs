//! cosign key-based signatures end to end: `bonded sign --signature-format cosign` against
//! bonded (OCI 1.1 referrer) and CNCF Distribution (the `sha256-<hex>.sig` tag, appended
//! to as cosign appends), then `bonded verify` with a `cosign:` trust store and
//! `cosign.key:` identities, for each key type cosign signs with; a wrong key, one key
//! twice, a tampered payload, and one Notary signer plus one cosign key making two.

use crate::common;

use common::distribution::{put_blob, start_distribution};
use common::pki::Ca;
use common::*;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(args)
        .output()
        .unwrap()
}

/// A key pair of `alg` as PKCS#8 `<dir>/<name>.key` and `<dir>/<name>.pub` (SPKI PEM,
/// what `cosign generate-key-pair` writes as cosign.pub); returns the key's
/// `sha256:<hex of DER SPKI>` fingerprint, computed by openssl, independently of bonded.
fn keypair(dir: &Path, name: &str, alg: &'static rcgen::SignatureAlgorithm) -> String {
    let k = rcgen::KeyPair::generate_for(alg).unwrap();
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(dir.join(format!("{name}.key")), k.serialize_pem()).unwrap();
    std::fs::write(&public, k.public_key_pem()).unwrap();
    let der = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&public)
        .output()
        .expect("openssl is installed");
    assert!(der.status.success(), "{}", output_text(&der));
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&der.stdout)))
}

/// `<store>/cosign/release/` holding the named public keys (`<dir>/<key>.pub`).
fn cosign_store(dir: &Path, store: &Path, keys: &[&str]) {
    let cosign = store.join("cosign/release");
    std::fs::create_dir_all(&cosign).unwrap();
    for key in keys {
        std::fs::copy(
            dir.join(format!("{key}.pub")),
            cosign.join(format!("{key}.pub")),
        )
        .unwrap();
    }
}

/// `<dir>/<store>/cosign/release/` holding the named public keys, and a policy trusting
/// `identities` with `k` required (plus `ca:acme` when `ca` is given).
fn trust(
    dir: &Path,
    keys: &[&str],
    identities: Value,
    k: u32,
    ca: Option<&Ca>,
) -> (PathBuf, PathBuf) {
    let store = dir.join(format!("store-{}", uuid_like(&identities, k)));
    cosign_store(dir, &store, keys);
    let mut stores = vec!["cosign:release"];
    if let Some(ca) = ca {
        ca.write_store(&store, "acme");
        stores.push("ca:acme");
    }
    let policy = store.join("policy.json");
    std::fs::write(
        &policy,
        json!({"version": "1.0", "trustPolicies": [{
            "name": "all", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
            "trustStores": stores, "trustedIdentities": identities, "signaturesRequired": k}]})
        .to_string(),
    )
    .unwrap();
    (policy, store)
}

fn uuid_like(v: &Value, k: u32) -> String {
    hex::encode(&sha2::Sha256::digest(format!("{v}{k}").as_bytes())[..6])
}

fn verify(image: &str, policy: &Path, store: &Path) -> (Option<i32>, String) {
    let o = verify_image(image, policy, store, &[]);
    (o.status.code(), output_text(&o))
}

fn sign(image: &str, dir: &Path, key: &str) -> String {
    let o = run(&[
        "sign",
        image,
        "--signature-format",
        "cosign",
        "--key",
        dir.join(format!("{key}.key")).to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    output_text(&o)
}

/// An image in `repo` of a registry at `base`, tagged `v1`; returns its digest.
pub(crate) async fn image(c: &reqwest::Client, base: &str, repo: &str, seed: &str) -> String {
    image_as(c, base, repo, seed, "v1").await
}

/// An image in `repo` of a registry at `base`, tagged `tag`; returns its digest.
pub(crate) async fn image_as(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    seed: &str,
    tag: &str,
) -> String {
    let config = put_blob(c, base, repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let m = image_manifest((&config, 11 + seed.len()), &[], json!({}));
    let res = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    sha256(&m)
}

#[tokio::test]
async fn cosign_key_signatures_sign_and_verify_on_bonded_and_distribution() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dist = start_distribution(&d.join("dist")).await;
    let bonded = Server::start();
    let c = client();
    let algs: [(&str, &'static rcgen::SignatureAlgorithm); 4] = [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
        ("other", &rcgen::PKCS_ECDSA_P256_SHA256),
    ];
    let mut fp = std::collections::HashMap::new();
    for (name, alg) in algs {
        fp.insert(name, keypair(d, name, alg));
    }
    for (registry, tag_form) in [(dist.addr.clone(), true), (bonded.addr.clone(), false)] {
        let base = format!("http://{registry}");
        for (i, key) in ["p256", "p384", "ed25519"].iter().enumerate() {
            let repo = format!("acme/{key}");
            let digest = image(&c, &base, &repo, &format!("{i}{tag_form}")).await;
            let image = format!("{registry}/{repo}:v1");
            let (policy, store) = trust(
                d,
                &[key],
                json!([format!("cosign.key: {}", fp[key])]),
                1,
                None,
            );
            let (code, out) = verify(&image, &policy, &store);
            assert_eq!(code, Some(2), "{registry} {key}: not signed yet: {out}");
            let said = sign(&image, d, key);
            assert!(said.contains(&fp[key]), "{said}");
            let (code, out) = verify(&image, &policy, &store);
            assert_eq!(code, Some(0), "{registry} {key}: {out}");
            assert!(out.contains(&format!("cosign.key: {}", fp[key])), "{out}");

            // where the signature went: the .sig tag on Distribution, a referrer on bonded
            let hex = digest.trim_start_matches("sha256:");
            let sig_tag = c
                .get(format!("{base}/v2/{repo}/manifests/sha256-{hex}.sig"))
                .header("Accept", OCI_MANIFEST)
                .send()
                .await
                .unwrap();
            assert_eq!(sig_tag.status() == 200, tag_form, "{registry}: .sig tag");
            if !tag_form {
                let r = get_json(&c, format!("{base}/v2/{repo}/referrers/{digest}")).await;
                assert_eq!(
                    r["manifests"][0]["artifactType"],
                    "application/vnd.dev.cosign.artifact.sig.v1+json",
                    "{r}"
                );
            }

            // a key the policy does not trust: untrusted (3), though the store holds it
            let (policy, store) = trust(d, &["other"], json!(["*"]), 1, None);
            let (code, out) = verify(&image, &policy, &store);
            assert_eq!(code, Some(3), "{registry} {key} with another key: {out}");
        }
    }

    // two keys on Distribution's .sig tag: both layers kept, 2 of 2 met; one key signing
    // again adds nothing, and one key is never two signers
    let base = format!("http://{}", dist.addr);
    let repo = "acme/two";
    let digest = image(&c, &base, repo, "two").await;
    let img = format!("{}/{repo}:v1", dist.addr);
    let both = json!([
        format!("cosign.key: {}", fp["p256"]),
        format!("cosign.key: {}", fp["ed25519"])
    ]);
    let (policy, store) = trust(d, &["p256", "ed25519"], both, 2, None);
    sign(&img, d, "p256");
    sign(&img, d, "p256");
    let (code, out) = verify(&img, &policy, &store);
    assert_eq!(
        code,
        Some(5),
        "one key, two signatures, is one signer: {out}"
    );
    sign(&img, d, "ed25519");
    let (code, out) = verify(&img, &policy, &store);
    assert_eq!(code, Some(0), "{out}");
    let hex = digest.trim_start_matches("sha256:");
    let res = c
        .get(format!("{base}/v2/{repo}/manifests/sha256-{hex}.sig"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let sig: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(sig["layers"].as_array().unwrap().len(), 2, "{sig}");

    // a payload for this image moved onto another image's .sig tag signs nothing there
    let other = image(&c, &base, "acme/moved", "moved").await;
    let payload_digest = sig["layers"][0]["digest"].as_str().unwrap();
    let payload = c
        .get(format!("{base}/v2/{repo}/blobs/{payload_digest}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    put_blob(&c, &base, "acme/moved", &payload).await;
    let cfg = put_blob(&c, &base, "acme/moved", b"{}").await;
    let mut moved = sig.clone();
    moved["config"] =
        json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2});
    moved["layers"] = json!([sig["layers"][0].clone()]);
    let res = c
        .put(format!(
            "{base}/v2/acme/moved/manifests/sha256-{}.sig",
            other.trim_start_matches("sha256:")
        ))
        .header("Content-Type", OCI_MANIFEST)
        .body(serde_json::to_vec(&moved).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (policy, store) = trust(d, &["p256"], json!(["*"]), 1, None);
    let (code, out) = verify(&format!("{}/acme/moved:v1", dist.addr), &policy, &store);
    assert_eq!(
        code,
        Some(4),
        "a signature of another digest verified: {out}"
    );
}

#[tokio::test]
async fn a_notary_signer_and_a_cosign_key_are_two_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bonded = Server::start();
    let c = client();
    let base = format!("http://{}", bonded.addr);
    image(&c, &base, "acme/mixed", "mixed").await;
    let img = format!("{}/acme/mixed:v1", bonded.addr);
    let fp = keypair(d, "ci", &rcgen::PKCS_ECDSA_P256_SHA256);
    let ca = Ca::new("Acme Root");
    let (key, cert) = ca.write_signer(d, "release");
    let ids = json!([
        "x509.subject: C=US, ST=WA, O=Acme, CN=release",
        format!("cosign.key: {fp}")
    ]);
    let (policy, store) = trust(d, &["ci"], ids, 2, Some(&ca));
    sign(&img, d, "ci");
    let (code, out) = verify(&img, &policy, &store);
    assert_eq!(code, Some(5), "one of two: {out}");
    let o = run(&[
        "sign",
        &img,
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    let (code, out) = verify(&img, &policy, &store);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("CN=release") && out.contains(&fp), "{out}");
}

/// bonded enforcing a policy over registry.test/prod/* whose identities are cosign keys.
fn enforcing(
    dir: &Path,
    keys: &[&str],
    identities: Value,
    k: u32,
    extra: Value,
    auth: bool,
) -> Server {
    let store = dir.join("truststore");
    cosign_store(dir, &store, keys);
    let mut statement = json!({
        "name": "prod", "registryScopes": ["registry.test/prod/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["cosign:release"],
        "trustedIdentities": identities, "signaturesRequired": k});
    for (key, v) in extra.as_object().unwrap() {
        statement[key] = v.clone();
    }
    std::fs::write(
        dir.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [statement]}).to_string(),
    )
    .unwrap();
    let policy = dir.join("policy.json");
    let args = [
        "--trust-policy",
        policy.to_str().unwrap(),
        "--trust-store",
        store.to_str().unwrap(),
        "--hostname",
        "registry.test",
        "--admin-token",
        "cosign-test-token",
    ];
    if auth {
        Server::start_with_auth(&dir.join("data"), &args)
    } else {
        Server::start_in(&dir.join("data"), &args)
    }
}

/// A cosign signature of `digest` under its `.sig` tag, made here (independently of
/// `bonded sign`): the payload blob, a config, and the manifest; returns the status of
/// the manifest push.
async fn push_sig_tag(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    digest: &str,
    payload_digest: &str,
    key: &Path,
) -> u16 {
    push_sig_tag_with(c, s, repo, digest, payload_digest, key, json!({})).await
}

/// [`push_sig_tag`] with more layer annotations (a certificate, a chain).
async fn push_sig_tag_with(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    digest: &str,
    payload_digest: &str,
    key: &Path,
    annotations: Value,
) -> u16 {
    let layer = signature_layer(c, s, repo, payload_digest, key, annotations).await;
    put_sig_tag(c, s, repo, digest, vec![layer])
        .await
        .status()
        .as_u16()
}

/// One cosign signature layer by `key` of a payload naming `payload_digest` (its blob
/// pushed), with more `annotations`.
async fn signature_layer(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    payload_digest: &str,
    key: &Path,
    annotations: Value,
) -> Value {
    let payload = json!({"critical": {"identity": {"docker-reference": format!("registry.test/{repo}")},
        "image": {"docker-manifest-digest": payload_digest}, "type": "cosign container image signature"},
        "optional": null}).to_string().into_bytes();
    let pem = std::fs::read_to_string(key).unwrap();
    let k = rcgen::KeyPair::from_pem(&pem).unwrap();
    let signature = rcgen::SigningKey::sign(&k, &payload).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature);
    let pd = push_blob(c, s, repo, &payload).await;
    let mut layer_annotations = json!({"dev.cosignproject.cosign/signature": b64});
    for (k, v) in annotations.as_object().unwrap() {
        layer_annotations[k] = v.clone();
    }
    json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": pd,
        "size": payload.len(), "annotations": layer_annotations})
}

/// A manifest of `layers` (and a config, pushed) under `digest`'s `.sig` tag.
pub(crate) async fn put_sig_tag(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    digest: &str,
    layers: Vec<Value>,
) -> reqwest::Response {
    let config = push_blob(c, s, repo, br#"{"architecture":"","os":"","config":{}}"#).await;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 39},
        "layers": layers});
    let hex = digest.trim_start_matches("sha256:");
    c.put(s.v2(&format!("{repo}/manifests/sha256-{hex}.sig")))
        .header("Content-Type", OCI_MANIFEST)
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .await
        .unwrap()
}

pub(crate) async fn status(c: &reqwest::Client, s: &Server, repo: &str, reference: &str) -> u16 {
    c.get(s.v2(&format!("{repo}/manifests/{reference}")))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The gate verifies cosign signatures as it verifies Notary ones: a trusted key's
/// signature (referrer by `bonded sign`, or the `.sig` tag) publishes a waiting tag; an
/// untrusted key's, or one whose payload names another digest, is refused and stores
/// nothing; 2 of 2 keys needs two keys, not one key twice; under enforceOnPull the `.sig`
/// tag stays readable, and a trust store change stops the image being pulled.
#[tokio::test]
async fn the_gate_verifies_cosign_signatures_and_publishes_what_they_satisfy() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = keypair(d, "a", &rcgen::PKCS_ECDSA_P256_SHA256);
    let b = keypair(d, "b", &rcgen::PKCS_ED25519);
    keypair(d, "stranger", &rcgen::PKCS_ECDSA_P256_SHA256);
    let s = enforcing(
        d,
        &["a", "b"],
        json!([format!("cosign.key: {a}"), format!("cosign.key: {b}")]),
        2,
        json!({"bonded.enforceOnPull": true}),
        false,
    );
    let c = client();
    let base = s.url.clone();
    let digest = image(&c, &base, "prod/app", "gate").await;
    assert_eq!(
        status(&c, &s, "prod/app", "v1").await,
        404,
        "unsigned: the tag waits"
    );

    // one key, twice (a referrer by bonded sign, then the .sig tag): still waiting
    sign(&format!("{}/prod/app@{digest}", s.addr), d, "a");
    assert_eq!(
        push_sig_tag(&c, &s, "prod/app", &digest, &digest, &d.join("a.key")).await,
        201
    );
    assert_eq!(
        status(&c, &s, "prod/app", "v1").await,
        404,
        "one key counted twice"
    );

    // a stranger's key, and a signature of another digest, are refused and leave nothing
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        push_sig_tag(
            &c,
            &s,
            "prod/app",
            &digest,
            &digest,
            &d.join("stranger.key")
        )
        .await,
        403
    );
    let other = format!("sha256:{}", "e".repeat(64));
    assert_eq!(
        push_sig_tag(&c, &s, "prod/app", &digest, &other, &d.join("b.key")).await,
        403
    );
    let sig_tag: Value = {
        let res = c
            .get(s.v2(&format!("prod/app/manifests/sha256-{hex}.sig")))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "the first, accepted .sig manifest is still there"
        );
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
    };
    assert_eq!(sig_tag["layers"].as_array().unwrap().len(), 1);

    // the second key publishes the tag
    sign(&format!("{}/prod/app@{digest}", s.addr), d, "b");
    assert_eq!(
        status(&c, &s, "prod/app", "v1").await,
        200,
        "2 of 2 keys: published"
    );
    let published: Value = get_json(
        &c,
        format!("{base}/bonded/v1/audit?action=tag.publish&repository=prod/app"),
    )
    .await;
    assert!(published.is_object());

    // the .sig tag is signature bookkeeping: readable under enforceOnPull
    assert_eq!(
        status(&c, &s, "prod/app", &format!("sha256-{hex}.sig")).await,
        200
    );

    // the compliance report counts cosign signatures: compliant now
    let report: Value = {
        let res = c
            .get(format!("{base}/bonded/v1/trust/noncompliant"))
            .bearer_auth("cosign-test-token")
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
    };
    assert_eq!(report["noncompliantTags"], 0, "{report}");

    // the store loses key b: the image no longer meets the policy and is not pulled, and
    // the change's answer says so
    let res = c
        .put(format!("{base}/bonded/v1/trust/stores/cosign/release"))
        .bearer_auth("cosign-test-token")
        .body(std::fs::read(d.join("a.pub")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    // verified again: a's referrer, the .sig tag's one layer, b's referrer
    assert_eq!(answer["reevaluatedSignatures"], 3, "{answer}");
    assert_eq!(answer["noncompliant"]["noncompliantTags"], 1, "{answer}");
    assert_eq!(answer["noncompliant"]["images"][0]["tag"], "v1", "{answer}");
    assert_eq!(
        status(&c, &s, "prod/app", "v1").await,
        403,
        "pulled after its key left the store"
    );
}

/// The signer role may push cosign signatures (referrer or `.sig` tag) and nothing else
/// under a `.sig` tag: an image there is a tagged push like any other.
#[tokio::test]
async fn the_signer_role_pushes_cosign_signatures_and_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = keypair(d, "a", &rcgen::PKCS_ECDSA_P384_SHA384);
    let s = enforcing(
        d,
        &["a"],
        json!([format!("cosign.key: {a}")]),
        1,
        json!({}),
        true,
    );
    let data = d.join("data");
    user(&data, "dev", "developer", "prod/*");
    user(&data, "sig", "signer", "prod/*");
    let dev = as_user("dev", &password("dev"));
    let signer = as_user("sig", &password("sig"));
    let config = push_blob(&dev, &s, "prod/app", b"{\"seed\":1}").await;
    let m = image_manifest((&config, 10), &[], json!({}));
    let res = dev
        .put(s.v2("prod/app/manifests/v1"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "waits");
    let digest = sha256(&m);
    assert_eq!(
        push_sig_tag(&signer, &s, "prod/app", &digest, &digest, &d.join("a.key")).await,
        201
    );
    let res = dev
        .get(s.v2("prod/app/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "published by the signer's cosign signature"
    );

    // an image manifest under another .sig tag, from the signer: refused as a tagged push
    let res = signer
        .put(s.v2(&format!("prod/app/manifests/sha256-{}.sig", "f".repeat(64))))
        .header("Content-Type", OCI_MANIFEST)
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(e["errors"][0]["detail"]["check"], "role", "{e}");
}

/// cosign's own encrypted key files sign (C16: policy-controller's `cosign.key`, password
/// ""): the password from COSIGN_PASSWORD or standard input; a wrong one is refused
/// without signing; what was signed verifies with the `cosign.pub` published beside it.
#[tokio::test]
async fn cosign_encrypted_keys_sign_with_their_password() {
    let Some(v) = common::vectors::dir() else {
        return;
    };
    let keys = v.join("cosign/keys/policy-controller");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dist = start_distribution(&d.join("dist")).await;
    let c = client();
    let base = format!("http://{}", dist.addr);
    image(&c, &base, "acme/enc", "enc").await;
    let img = format!("{}/acme/enc:v1", dist.addr);
    let sign_with = |password: Option<&str>, stdin: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
        cmd.args(["sign", &img, "--signature-format", "cosign", "--key"])
            .arg(keys.join("cosign.key"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .env_remove("COSIGN_PASSWORD");
        if let Some(p) = password {
            cmd.env("COSIGN_PASSWORD", p);
        }
        let mut child = cmd.spawn().unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = sign_with(Some("wrong"), "");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("password is wrong"),
        "{}",
        output_text(&o)
    );
    assert!(
        !output_text(&o).contains("wrong\n"),
        "the password is never echoed"
    );
    let o = sign_with(None, "\n");
    assert!(o.status.success(), "password on stdin: {}", output_text(&o));
    let cosign_dir = d.join("store/cosign/pc");
    std::fs::create_dir_all(&cosign_dir).unwrap();
    std::fs::copy(keys.join("cosign.pub"), cosign_dir.join("cosign.pub")).unwrap();
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["cosign:pc"],
            "trustedIdentities": ["*"]}]})
        .to_string(),
    )
    .unwrap();
    let (code, out) = verify(&img, &d.join("policy.json"), &d.join("store"));
    assert_eq!(code, Some(0), "{out}");
}

/// `bonded keygen cosign` writes a key pair cosign reads (PKCS#8, SPKI PEM) and names the
/// identity as openssl computes it; Ed25519 is refused for Notary certificates.
#[test]
fn keygen_makes_cosign_key_pairs_and_names_their_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for alg in ["p256", "p384", "ed25519"] {
        let prefix = d.join(alg);
        let o = run(&[
            "keygen",
            "cosign",
            "--algorithm",
            alg,
            "--out",
            prefix.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
        let der = Command::new("openssl")
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(d.join(format!("{alg}.pub")))
            .output()
            .unwrap();
        assert!(der.status.success());
        let fp = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&der.stdout)));
        assert!(
            output_text(&o).contains(&format!("cosign.key: {fp}")),
            "{}",
            output_text(&o)
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.join(format!("{alg}.key")))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = run(&[
        "keygen",
        "root",
        "--subject",
        "C=US, ST=WA, O=Acme, CN=R",
        "--curve",
        "ed25519",
        "--out",
        d.join("r").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("not Ed25519"),
        "{}",
        output_text(&o)
    );
}

/// Certificate mode: the leaf and chain annotations, checked against a `ca:` store now,
/// the leaf's subject the identity (the same one a Notary signature by that certificate
/// has, so one person signing both ways counts once). A certificate whose key did not make
/// the signature, an untrusted CA and an expired leaf never count; at the gate they are
/// refused.
#[tokio::test]
async fn certificate_mode_cosign_signatures_are_people_like_notary_signers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = Ca::new("Acme Root");
    let (alice_key, alice_cert) = ca.write_signer(d, "alice");
    let (bob_key, bob_cert) = ca.write_signer(d, "bob");
    let (expired_key, expired_cert) = ca.issue_expired("old");
    std::fs::write(d.join("old.key"), expired_key.serialize_pem()).unwrap();
    std::fs::write(
        d.join("old.pem"),
        format!("{}{}", expired_cert.pem(), ca.pem),
    )
    .unwrap();

    // bonded sign --cert, verified by bonded verify, on an open bonded and on Distribution
    let bonded = Server::start();
    let dist = start_distribution(&d.join("dist")).await;
    let c = client();
    let ids = json!([
        "x509.subject: C=US, ST=WA, O=Acme, CN=alice",
        "x509.subject: C=US, ST=WA, O=Acme, CN=bob"
    ]);
    let store = d.join("store");
    ca.write_store(&store, "acme");
    std::fs::create_dir_all(store.join("cosign/none")).unwrap();
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        json!({"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ids, "signaturesRequired": 2}]})
        .to_string(),
    )
    .unwrap();
    let sign_cert = |img: &str, key: &Path, cert: &Path| {
        run(&[
            "sign",
            img,
            "--signature-format",
            "cosign",
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ])
    };
    for registry in [bonded.addr.clone(), dist.addr.clone()] {
        let base = format!("http://{registry}");
        image(&c, &base, "acme/cert", "cert").await;
        let img = format!("{registry}/acme/cert:v1");
        // alice signs with notation's format and with cosign's, the same certificate: one
        let o = run(&[
            "sign",
            &img,
            "--key",
            alice_key.to_str().unwrap(),
            "--cert",
            alice_cert.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
        let o = sign_cert(&img, &alice_key, &alice_cert);
        assert!(o.status.success(), "{}", output_text(&o));
        let (code, out) = verify(&img, &policy, &store);
        assert_eq!(
            code,
            Some(5),
            "{registry}: alice twice is one of two: {out}"
        );
        // a certificate that is not the key's is refused before signing
        let o = sign_cert(&img, &bob_key, &alice_cert);
        assert!(!o.status.success());
        assert!(
            output_text(&o).contains("public keys differ"),
            "{}",
            output_text(&o)
        );
        let o = sign_cert(&img, &bob_key, &bob_cert);
        assert!(o.status.success(), "{}", output_text(&o));
        let (code, out) = verify(&img, &policy, &store);
        assert_eq!(code, Some(0), "{registry}: {out}");
        assert!(out.contains("CN=bob"), "{out}");
        // another CA's store: untrusted
        let other = d.join(format!("other-store-{}", registry.replace([':', '.'], "-")));
        Ca::new("Other Root").write_store(&other, "acme");
        let (code, out) = verify(&img, &policy, &other);
        assert_eq!(code, Some(3), "{registry}: {out}");
    }

    // the gate: alice's certificate-mode signature publishes the waiting tag; bob's
    // certificate on alice's signature, and an expired leaf, are refused
    let gate_dir = d.join("gate");
    std::fs::create_dir_all(&gate_dir).unwrap();
    ca.write_store(&gate_dir.join("truststore"), "acme");
    std::fs::write(
        gate_dir.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"]}]})
        .to_string(),
    )
    .unwrap();
    let s = Server::start_in(
        &gate_dir.join("data"),
        &[
            "--trust-policy",
            gate_dir.join("policy.json").to_str().unwrap(),
            "--trust-store",
            gate_dir.join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    let digest = image(&c, &s.url, "prod/app", "gate").await;
    assert_eq!(status(&c, &s, "prod/app", "v1").await, 404, "waits");
    let pem_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    let leaf_and_chain = |pem: String| {
        let end = "-----END CERTIFICATE-----";
        let i = pem.find(end).unwrap() + end.len();
        (pem[..i].to_string(), pem[i..].trim().to_string())
    };
    let (bob_leaf, chain) = leaf_and_chain(pem_of(&bob_cert));
    let swapped =
        json!({"dev.sigstore.cosign/certificate": bob_leaf, "dev.sigstore.cosign/chain": chain});
    assert_eq!(
        push_sig_tag_with(&c, &s, "prod/app", &digest, &digest, &alice_key, swapped).await,
        403,
        "bob's certificate on alice's signature"
    );
    let (old_leaf, chain) = leaf_and_chain(pem_of(&d.join("old.pem")));
    let expired =
        json!({"dev.sigstore.cosign/certificate": old_leaf, "dev.sigstore.cosign/chain": chain});
    assert_eq!(
        push_sig_tag_with(
            &c,
            &s,
            "prod/app",
            &digest,
            &digest,
            &d.join("old.key"),
            expired
        )
        .await,
        403,
        "an expired leaf"
    );
    assert_eq!(status(&c, &s, "prod/app", "v1").await, 404);
    let (alice_leaf, chain) = leaf_and_chain(pem_of(&alice_cert));
    let good =
        json!({"dev.sigstore.cosign/certificate": alice_leaf, "dev.sigstore.cosign/chain": chain});
    assert_eq!(
        push_sig_tag_with(&c, &s, "prod/app", &digest, &digest, &alice_key, good).await,
        201
    );
    assert_eq!(status(&c, &s, "prod/app", "v1").await, 200, "published");
}

/// Every key type and hash bonded accepts, with signatures made by openssl (independently
/// of bonded and of the crates it verifies with): ECDSA P-256/SHA-256, P-384 with SHA-384
/// and SHA-256, P-521 with SHA-512 and SHA-256 (what cosign made before it picked the hash
/// by key size), RSA-2048 PKCS#1 v1.5 and PSS with SHA-256, pure Ed25519; each fails on
/// another message.
#[test]
fn openssl_made_signatures_of_every_key_type_verify() {
    use bonded::trust::cosign::{parse_public_keys, PublicKey};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let payload = d.join("payload.json");
    std::fs::write(
        &payload,
        br#"{"critical":{"type":"cosign container image signature"}}"#,
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", output_text(&o));
    };
    let cases: [(&str, &[&str], &[&str], &str); 8] = [
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &["dgst", "-sha256"],
            "ECDSA-P256-SHA256",
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            &["dgst", "-sha384"],
            "ECDSA-P384-SHA384",
        ),
        ("p384", &[], &["dgst", "-sha256"], "ECDSA-P384-SHA256"),
        (
            "p521",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
            &["dgst", "-sha512"],
            "ECDSA-P521-SHA512",
        ),
        ("p521", &[], &["dgst", "-sha256"], "ECDSA-P521-SHA256"),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            &["dgst", "-sha256"],
            "RSA-PKCS1v15-SHA256",
        ),
        (
            "rsa",
            &[],
            &[
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
            "RSA-PSS-SHA256",
        ),
        (
            "ed25519",
            &["-algorithm", "ED25519"],
            &["pkeyutl", "-rawin"],
            "Ed25519",
        ),
    ];
    for (name, keygen, sign, expected) in cases {
        let key = format!("{name}.key");
        if !keygen.is_empty() {
            let mut args = vec!["genpkey"];
            args.extend_from_slice(keygen);
            args.extend(["-out", &key]);
            openssl(&args);
            openssl(&[
                "pkey",
                "-in",
                &key,
                "-pubout",
                "-out",
                &format!("{name}.pub"),
            ]);
        }
        let mut args: Vec<&str> = sign.to_vec();
        let sig = format!("{name}-{expected}.sig");
        if sign[0] == "pkeyutl" {
            args.extend(["-sign", "-inkey", &key, "-in", "payload.json", "-out", &sig]);
        } else {
            args.extend(["-sign", &key, "-out", &sig, "payload.json"]);
        }
        openssl(&args);
        let der =
            parse_public_keys(&std::fs::read(d.join(format!("{name}.pub"))).unwrap()).unwrap();
        let public = PublicKey::from_spki(&der[0]).unwrap();
        let signature = std::fs::read(d.join(&sig)).unwrap();
        let message = std::fs::read(&payload).unwrap();
        assert_eq!(
            public.verify(&message, &signature),
            Some(expected),
            "{name} {sign:?}"
        );
        assert_eq!(
            public.verify(b"another message", &signature),
            None,
            "{name} {sign:?}"
        );
    }
}

/// Under enforceOnPull, deleting the `.sig` tag (the only signature) stops pulls at once:
/// the pull decision kept for 30 s is dropped with the tag.
#[tokio::test]
async fn deleting_the_sig_tag_stops_pulls_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = keypair(d, "a", &rcgen::PKCS_ECDSA_P256_SHA256);
    let s = enforcing(
        d,
        &["a"],
        json!([format!("cosign.key: {a}")]),
        1,
        json!({"bonded.enforceOnPull": true}),
        false,
    );
    let c = client();
    let digest = image(&c, &s.url, "prod/app", "del").await;
    assert_eq!(
        push_sig_tag(&c, &s, "prod/app", &digest, &digest, &d.join("a.key")).await,
        201
    );
    assert_eq!(status(&c, &s, "prod/app", "v1").await, 200, "signed");
    let hex = digest.trim_start_matches("sha256:");
    let res = c
        .delete(s.v2(&format!("prod/app/manifests/sha256-{hex}.sig")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        status(&c, &s, "prod/app", "v1").await,
        403,
        "a cached decision outlived the signature"
    );
}

/// An attacker with push rights copies a trusted signature layer into a `.sig` manifest
/// beside a layer of their own (any blob, typed as a payload): at an enforcing gate every
/// layer must be a signature of the subject, so the push is refused and nothing is served
/// under the tag.
#[tokio::test]
async fn a_trusted_layer_cannot_carry_other_blobs_under_the_sig_tag() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = keypair(d, "a", &rcgen::PKCS_ECDSA_P256_SHA256);
    let s = enforcing(
        d,
        &["a"],
        json!([format!("cosign.key: {a}")]),
        1,
        json!({}),
        false,
    );
    let c = client();
    let digest = image(&c, &s.url, "prod/app", "smuggle").await;
    let good = signature_layer(&c, &s, "prod/app", &digest, &d.join("a.key"), json!({})).await;
    let smuggled = b"\x1f\x8b\x08\x00 a layer of someone's choosing".to_vec();
    let sd = push_blob(&c, &s, "prod/app", &smuggled).await;
    let other = json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sd,
        "size": smuggled.len(), "annotations": {"dev.cosignproject.cosign/signature":
            base64::engine::general_purpose::STANDARD.encode(b"x")}});
    let hex = digest.trim_start_matches("sha256:");
    let res = put_sig_tag(&c, &s, "prod/app", &digest, vec![good, other]).await;
    assert_eq!(res.status(), 403);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(e["errors"][0]["detail"]["layer"], 1, "{e}");
    assert_eq!(
        status(&c, &s, "prod/app", &format!("sha256-{hex}.sig")).await,
        404
    );
    assert_eq!(
        status(&c, &s, "prod/app", "v1").await,
        404,
        "nothing published"
    );
}
