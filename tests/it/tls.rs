//! HTTPS: bonded serves TLS with a certificate from a test CA, real clients (bonded's own
//! CLI, reqwest) reach it, plain HTTP does not, and SIGHUP swaps in a new certificate
//! without a restart.

use crate::common;

use common::pki::Ca;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn https_client(ca_pem: &str) -> reqwest::Client {
    bonded::install_crypto_provider();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn write_server_cert(dir: &Path, ca: &Ca) {
    let (key, cert) = ca.issue_server("127.0.0.1");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
}

#[tokio::test]
async fn serves_https_and_reloads_its_certificate_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let first = Ca::new("First CA");
    write_server_cert(d, &first);
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--tls-cert",
            d.join("server.pem").to_str().unwrap(),
            "--tls-key",
            d.join("server.key").to_str().unwrap(),
        ],
    );
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let res = https_client(&first.pem)
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        client()
            .get(format!("http://{}/v2/", s.addr))
            .send()
            .await
            .is_err(),
        "plain HTTP is not served on a TLS port"
    );

    // bonded's own client, trusting the CA through --ca-file
    std::fs::write(d.join("first.pem"), &first.pem).unwrap();
    let layout = OciLayout::create(&d.join("layout"));
    let (cd, cn) = layout.blob(b"{}");
    let m = image_manifest((&cd, cn), &[], serde_json::json!({}));
    let (md, mn) = layout.blob(&m);
    layout.index(&serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn}]}));
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args([
            "push",
            &layout.path(),
            &format!("{}/tls/app:v1", s.addr),
            "--ca-file",
        ])
        .arg(d.join("first.pem"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // rotate: a certificate from another CA, then SIGHUP
    let second = Ca::new("Second CA");
    write_server_cert(d, &second);
    assert!(Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let mut rotated = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if https_client(&second.pem)
            .get(format!("{}/v2/", s.url))
            .send()
            .await
            .is_ok()
        {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "the new certificate is served after SIGHUP");
    assert!(
        https_client(&first.pem)
            .get(format!("{}/v2/", s.url))
            .send()
            .await
            .is_err(),
        "the old certificate is gone"
    );
    // the registry kept its state across the reload
    let res = https_client(&second.pem)
        .get(format!("{}/v2/tls/app/manifests/v1", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // a botched rotation (unreadable certificate) keeps the previous certificate in service
    std::fs::write(d.join("server.pem"), "not a certificate").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = https_client(&second.pem)
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// With authentication over HTTPS: the challenge names an https realm, and bonded's
/// client logs in through it (token flow) to push.
#[tokio::test]
async fn logins_go_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = Ca::new("Login CA");
    write_server_cert(d, &ca);
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    let data = d.join("data");
    let s = Server::start_with_auth(
        &data,
        &[
            "--tls-cert",
            d.join("server.pem").to_str().unwrap(),
            "--tls-key",
            d.join("server.key").to_str().unwrap(),
        ],
    );
    let res = https_client(&ca.pem)
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with(&format!("Bearer realm=\"https://{}/token\"", s.addr)));

    user(&data, "alice", "developer", "tls/*");
    let layout = OciLayout::create(&d.join("layout"));
    let (cd, cn) = layout.blob(b"{}");
    let m = image_manifest((&cd, cn), &[], serde_json::json!({}));
    let (md, mn) = layout.blob(&m);
    layout.index(&serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn}]}));
    let ca_file = d.join("ca.pem");
    let push = |tag: &str, password: &str| {
        bonded_with_stdin(
            &[
                "push",
                &layout.path(),
                &format!("{}/tls/app:{tag}", s.addr),
                "--ca-file",
                ca_file.to_str().unwrap(),
                "--username",
                "alice",
                "--password-stdin",
            ],
            password,
        )
    };
    let o = push("v1", &password("alice"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = push("v2", "not-alices-password");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong username or password"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
