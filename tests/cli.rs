//! `bonded sign` and `bonded verify` against a running bonded: keys and chains made by
//! rcgen and written to files, as a user would have them.

mod common;

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

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
    assert_eq!(o.status.code(), Some(2), "not signed: {}", text(&o));

    let o = bonded(&[
        "sign",
        &image,
        "--key",
        alice_key.to_str().unwrap(),
        "--cert",
        alice_cert.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("as 'C=US, ST=WA, O=Acme, CN=alice' (ES256)"),
        "{}",
        text(&o)
    );
    // the same signer again: no second signature
    let o = bonded(&[
        "sign",
        &image,
        "--key",
        alice_key.to_str().unwrap(),
        "--cert",
        alice_cert.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));

    let o = verify(&image, &acme);
    assert_eq!(o.status.code(), Some(5), "policy not met: {}", text(&o));
    assert!(text(&o).contains("needs 2 signatures from distinct trusted identities; found 1"));

    // a key that is not the certificate's
    let o = bonded(&[
        "sign",
        &image,
        "--key",
        bob_key.to_str().unwrap(),
        "--cert",
        alice_cert.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("does not match the certificate"),
        "{}",
        text(&o)
    );

    let o = bonded(&[
        "sign",
        &image,
        "--key",
        bob_key.to_str().unwrap(),
        "--cert",
        bob_cert.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&image, &acme);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
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
    assert_eq!(o.status.code(), Some(3), "untrusted: {}", text(&o));

    // an unreachable registry
    let o = verify("127.0.0.1:1/acme/app:v1", &acme);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
}
