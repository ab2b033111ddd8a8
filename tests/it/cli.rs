//! `bonded sign` and `bonded verify` against a running bonded: keys and chains made by
//! rcgen and written to files, as a user would have them.

use crate::common;

use common::pki::Ca;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

fn bonded(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(args)
        .env("BONDED_LOG", "warn")
        .output()
        .unwrap()
}

/// `bonded sign IMAGE --key KEY --cert CERT`.
fn sign(image: &str, key: &str, cert: &str) -> Output {
    bonded(&["sign", image, "--key", key, "--cert", cert])
}

#[tokio::test]
async fn sign_then_verify_with_exit_codes_per_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Acme Root");
    ca.write_store(&d.join("acme-store"), "acme");
    Ca::new("Other Root").write_store(&d.join("other-store"), "acme");
    let (alice_key, alice_cert) = ca.write_signer(d, "alice");
    let (bob_key, bob_cert) = ca.write_signer(d, "bob");
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{
            "name": "prod", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=alice", "x509.subject: C=US, ST=WA, O=Acme, CN=bob"],
            "signaturesRequired": 2}]})
        .to_string(),
    )
    .unwrap();
    let s = Server::start();
    let c = client();
    push_image(&c, &s, "acme/app", "v1", "cli", json!({})).await;
    push_image(&c, &s, "acme/app", "unsigned", "other", json!({})).await;
    let image = format!("{}/acme/app:v1", s.addr);
    let policy = d.join("policy.json");
    let acme = d.join("acme-store");
    let verify = |image: &str, store: &Path| {
        bonded(&[
            "verify",
            image,
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
        ])
    };

    let o = verify(&format!("{}/acme/app:unsigned", s.addr), &acme);
    assert_eq!(o.status.code(), Some(2), "not signed: {}", output_text(&o));

    let o = sign(
        &image,
        alice_key.to_str().unwrap(),
        alice_cert.to_str().unwrap(),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("as 'C=US, ST=WA, O=Acme, CN=alice' (ES256)"),
        "{}",
        output_text(&o)
    );
    // the same signer again: no second signature
    let o = sign(
        &image,
        alice_key.to_str().unwrap(),
        alice_cert.to_str().unwrap(),
    );
    assert!(o.status.success());
    assert!(
        output_text(&o).contains("nothing to do"),
        "{}",
        output_text(&o)
    );

    let o = verify(&image, &acme);
    assert_eq!(
        o.status.code(),
        Some(5),
        "policy not met: {}",
        output_text(&o)
    );
    assert!(
        output_text(&o).contains("needs 2 signatures from distinct trusted identities; found 1")
    );

    // a key that is not the certificate's
    let o = sign(
        &image,
        bob_key.to_str().unwrap(),
        alice_cert.to_str().unwrap(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("does not match the certificate"),
        "{}",
        output_text(&o)
    );

    let o = sign(
        &image,
        bob_key.to_str().unwrap(),
        bob_cert.to_str().unwrap(),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let o = verify(&image, &acme);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let out = output_text(&o);
    assert!(
        out.contains("VERIFIED") && out.contains("CN=alice") && out.contains("CN=bob"),
        "{out}"
    );

    let o = bonded(&[
        "verify",
        &image,
        "--trust-policy",
        policy.to_str().unwrap(),
        "--trust-store",
        acme.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["signatures"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["signatures"][0]["checks"]["integrity"]["outcome"],
        "passed"
    );

    // a trust store that holds another root: untrusted
    let o = verify(&image, &d.join("other-store"));
    assert_eq!(o.status.code(), Some(3), "untrusted: {}", output_text(&o));

    // an unreachable registry
    let o = verify("127.0.0.1:1/acme/app:v1", &acme);
    assert_eq!(o.status.code(), Some(6), "{}", output_text(&o));
}

#[tokio::test]
async fn trust_and_inspect_commands_drive_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = "cli-admin-token";
    let s = Server::start_in(
        &d.join("data"),
        &["--admin-token", token, "--hostname", "registry.test"],
    );
    let ca = Ca::new("Acme Root");
    std::fs::write(d.join("root.pem"), &ca.pem).unwrap();
    let (key, cert) = ca.write_signer(d, "alice");
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "apps", "registryScopes": ["registry.test/apps/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]})
        .to_string(),
    )
    .unwrap();
    // `with_token`: the server's admin token; otherwise the admin account's login
    let trust = |args: &[&str], with_token: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
        cmd.arg("trust")
            .args(args)
            .args(["--registry", &s.addr])
            .env_remove("BONDED_ADMIN_TOKEN");
        if with_token {
            cmd.env("BONDED_ADMIN_TOKEN", token);
            cmd.output().unwrap()
        } else {
            use std::io::Write;
            let mut child = cmd
                .args(["--username", "admin", "--password-stdin"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            writeln!(child.stdin.take().unwrap(), "{ADMIN_PASSWORD}").unwrap();
            child.wait_with_output().unwrap()
        }
    };
    // neither token nor login: refused, saying what is needed
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["trust", "set-store", "ca:acme"])
        .arg(d.join("root.pem"))
        .args(["--registry", &s.addr])
        .env_remove("BONDED_ADMIN_TOKEN")
        .env("DOCKER_CONFIG", d)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("admin role"),
        "{}",
        output_text(&o)
    );
    let o = trust(
        &["set-store", "ca:acme", d.join("root.pem").to_str().unwrap()],
        true,
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("version 1"));
    // the admin account may change the configuration as well as the token
    let o = trust(
        &["set-policy", d.join("policy.json").to_str().unwrap()],
        false,
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("version 2"), "{}", output_text(&o));
    let o = trust(&["show"], false);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["enforced"], true);
    assert_eq!(shown["policy"]["trustPolicies"][0]["name"], "apps");

    // an image pushed by digest is pending; signed with bonded sign, inspect shows who signed
    let c = client();
    let config = push_blob(&c, &s, "apps/web", b"{}").await;
    let m = image_manifest((&config, 2), &[], json!({}));
    let digest = sha256(&m);
    let res = put_manifest(&c, s.v2(&format!("apps/web/manifests/{digest}")), m).await;
    assert_eq!(res.status(), 201);
    let image = format!("{}/apps/web@{digest}", s.addr);
    let o = sign(&image, key.to_str().unwrap(), cert.to_str().unwrap());
    assert!(o.status.success(), "{}", output_text(&o));
    let o = bonded(&["inspect", &image]);
    assert!(o.status.success(), "{}", output_text(&o));
    let out = output_text(&o);
    assert!(out.contains("verdict (policy 'apps'): admitted"), "{out}");
    assert!(
        out.contains("signer 'C=US, ST=WA, O=Acme, CN=alice' ES256"),
        "{out}"
    );
    assert!(out.contains("referrers: 1"), "{out}");
}

#[tokio::test]
async fn keygen_sign_verify_round_trip_with_notations_manifest_shape() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    for args in [
        vec![
            "keygen",
            "root",
            "--subject",
            "C=US, ST=WA, O=Acme, CN=Acme Root",
            "--out",
            &p("root"),
            "--days",
            "30",
        ],
        vec![
            "keygen",
            "intermediate",
            "--subject",
            "C=US, ST=WA, O=Acme, CN=Build CA",
            "--out",
            &p("ca"),
            "--issuer",
            &p("root"),
        ],
        vec![
            "keygen",
            "signer",
            "--subject",
            "C=US, ST=WA, O=Acme, CN=ci",
            "--out",
            &p("ci"),
            "--issuer",
            &p("ca"),
            "--curve",
            "p384",
        ],
    ] {
        let o = bonded(&args);
        assert!(o.status.success(), "{}", output_text(&o));
    }
    let o = bonded(&[
        "keygen",
        "signer",
        "--subject",
        "C=US, ST=WA, O=Acme, CN=ci",
        "--out",
        &p("ci"),
        "--issuer",
        &p("ca"),
    ]);
    assert!(
        output_text(&o).contains("exists; pass --force"),
        "keygen does not overwrite: {}",
        output_text(&o)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("ci.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "private keys are written 0600");
    }
    let store = d.join("store/x509/ca/acme");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(d.join("root.pem"), store.join("root.pem")).unwrap();
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "p", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=ci"]}]})
        .to_string(),
    )
    .unwrap();

    let s = Server::start();
    let c = client();
    push_image(&c, &s, "acme/app", "v1", "keygen", json!({})).await;
    let image = format!("{}/acme/app:v1", s.addr);
    let o = sign(&image, &p("ci.key"), &p("ci.pem"));
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("(ES384)"), "{}", output_text(&o));
    let o = bonded(&[
        "verify",
        &image,
        "--trust-policy",
        &p("policy.json"),
        "--trust-store",
        &p("store"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));

    // the signature manifest, field by field, in the form notation produces
    let d_img = sha256(
        &c.get(s.v2("acme/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    );
    let index: Value = serde_json::from_slice(
        &c.get(s.v2(&format!("acme/app/referrers/{d_img}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["artifactType"],
        "application/vnd.cncf.notary.signature"
    );
    let sig: Value = serde_json::from_slice(
        &c.get(s.v2(&format!(
            "acme/app/manifests/{}",
            entry["digest"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sig["mediaType"], OCI_MANIFEST);
    assert_eq!(sig["artifactType"], "application/vnd.cncf.notary.signature");
    assert_eq!(
        sig["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        sig["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(sig["config"]["size"], 2);
    assert_eq!(sig["layers"].as_array().unwrap().len(), 1);
    assert_eq!(sig["layers"][0]["mediaType"], "application/jose+json");
    assert_eq!(sig["subject"]["digest"], d_img);
    let thumbprints: Vec<String> = serde_json::from_str(
        sig["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(thumbprints.len(), 3, "leaf, intermediate, root");
    assert!(sig["annotations"]["org.opencontainers.image.created"].is_string());

    // one clear line for a malformed policy, and for an expired certificate
    std::fs::write(
        d.join("bad.json"),
        r#"{"version":"1.0","trustPolicies":[{"name":"p"}]}"#,
    )
    .unwrap();
    let o = bonded(&[
        "verify",
        &image,
        "--trust-policy",
        &p("bad.json"),
        "--trust-store",
        &p("store"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{}",
        output_text(&o)
    );
    let ca = Ca::new("Old Root");
    let (key, cert) = ca.issue_expired("old");
    std::fs::write(d.join("old.key"), key.serialize_pem()).unwrap();
    std::fs::write(d.join("old.pem"), format!("{}{}", cert.pem(), ca.pem)).unwrap();
    let o = sign(&image, &p("old.key"), &p("old.pem"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("is not valid now"),
        "{}",
        output_text(&o)
    );
}

#[tokio::test]
async fn rsa_keys_sign_with_ps256() {
    // notation's own e2e key (RSA-2048, PKCS#8) and its self-signed certificate
    let Some(v) = common::vectors::dir() else {
        return;
    };
    let v = v.join("notation-e2e");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store/x509/ca/e2e");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(v.join("localkeys/e2e.crt"), store.join("e2e.crt")).unwrap();
    std::fs::write(
        dir.path().join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "p", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:e2e"], "trustedIdentities": ["*"]}]})
        .to_string(),
    )
    .unwrap();
    let s = Server::start();
    push_image(&client(), &s, "acme/rsa", "v1", "rsa", json!({})).await;
    let image = format!("{}/acme/rsa:v1", s.addr);
    let o = sign(
        &image,
        v.join("localkeys/e2e.key").to_str().unwrap(),
        v.join("localkeys/e2e.crt").to_str().unwrap(),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("(PS256)"), "{}", output_text(&o));
    let o = bonded(&[
        "verify",
        &image,
        "--trust-policy",
        dir.path().join("policy.json").to_str().unwrap(),
        "--trust-store",
        dir.path().join("store").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
}

/// Signing keys where users keep them: SEC1 `EC PRIVATE KEY` as `openssl ecparam -genkey`
/// writes it (with an `EC PARAMETERS` block first) and PKCS#1 `RSA PRIVATE KEY` from
/// `openssl genrsa -traditional`, each signing an image that `bonded verify` then accepts.
/// A key in no form bonded reads is refused with what it found and what it takes.
#[tokio::test]
async fn signing_keys_in_sec1_and_pkcs1_form_sign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Acme Root");
    let (policy, store) = ca.trusted_anywhere(d);
    let s = Server::start();
    let c = client();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", output_text(&o));
    };
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "ec.key",
    ]);
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    for (name, key, header) in [
        ("ec", "ec.key", "-----BEGIN EC PARAMETERS-----"),
        ("rsa", "rsa.key", "-----BEGIN RSA PRIVATE KEY-----"),
    ] {
        let text = std::fs::read_to_string(d.join(key)).unwrap();
        assert!(text.starts_with(header), "{name}: {text}");
        // A certificate for the key (rcgen reads it as PKCS#8).
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            key,
            "-out",
            &format!("{name}.p8"),
        ]);
        let kp = rcgen::KeyPair::from_pem(
            &std::fs::read_to_string(d.join(format!("{name}.p8"))).unwrap(),
        )
        .unwrap();
        let cert = ca.issue_for(&kp, common::pki::acme(name));
        std::fs::write(
            d.join(format!("{name}.pem")),
            format!("{}{}", cert.pem(), ca.pem),
        )
        .unwrap();
        let repo = format!("keys/{name}");
        push_image(&c, &s, &repo, "v1", name, json!({})).await;
        let image = format!("{}/{repo}:v1", s.addr);
        let o = sign(
            &image,
            d.join(key).to_str().unwrap(),
            d.join(format!("{name}.pem")).to_str().unwrap(),
        );
        assert!(o.status.success(), "{name}: {}", output_text(&o));
        let o = verify_image(&image, &policy, &store, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", output_text(&o));
    }
    std::fs::write(d.join("nokey.pem"), ca.pem.clone()).unwrap();
    let o = sign(
        &format!("{}/keys/ec:v1", s.addr),
        d.join("nokey.pem").to_str().unwrap(),
        d.join("ec.pem").to_str().unwrap(),
    );
    assert!(!o.status.success());
    let text = output_text(&o);
    assert!(
        text.contains("holds no private key (its blocks: CERTIFICATE)"),
        "{text}"
    );
    assert!(text.contains("EC PRIVATE KEY (SEC1)"), "{text}");
}
