//! Signing keys where users keep them: encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2
//! with PBKDF2 or scrypt and AES, as `openssl pkcs8 -topk8` writes it), the password from
//! `BONDED_KEY_PASSWORD` or standard input, never a flag.

use crate::common;

use common::pki::Ca;
use common::*;
use std::io::Write as _;
use std::process::{Command, Stdio};

fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(o.status.success(), "openssl {args:?}: {}", output_text(&o));
}

#[tokio::test]
async fn encrypted_pkcs8_keys_sign_with_their_password_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = Ca::new("Acme Root");
    let (key, cert) = ca.write_signer(d, "release");
    let s = Server::start();
    let c = client();
    let (k, crt) = (key.to_str().unwrap(), cert.to_str().unwrap());
    for (kdf, extra) in [("pbkdf2", vec![]), ("scrypt", vec!["-scrypt"])] {
        let enc = d.join(format!("release-{kdf}.key"));
        let mut args = vec![
            "pkcs8",
            "-topk8",
            "-in",
            k,
            "-out",
            enc.to_str().unwrap(),
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret",
        ];
        args.extend(extra);
        openssl(&args);
        assert!(std::fs::read_to_string(&enc)
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY"));
        let sign = |repo: &str, password: Option<&str>, stdin: Option<&str>| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
            cmd.args([
                "sign",
                &format!("{}/{repo}:v1", s.addr),
                "--key",
                enc.to_str().unwrap(),
                "--cert",
                crt,
            ])
            .env_remove("BONDED_KEY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            if let Some(p) = password {
                cmd.env("BONDED_KEY_PASSWORD", p);
            }
            let mut child = cmd.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            if let Some(line) = stdin {
                input.write_all(line.as_bytes()).unwrap();
            }
            drop(input);
            child.wait_with_output().unwrap()
        };
        for (i, (password, stdin, works)) in [
            (Some("s3cret"), None, true),
            (Some("wrong"), None, false),
            (None, Some("s3cret\n"), true),
            (None, Some("nope\n"), false),
        ]
        .into_iter()
        .enumerate()
        {
            let repo = format!("acme/{kdf}{i}");
            let digest = crate::cosign::image(&c, &s.url, &repo, &repo).await;
            let o = sign(&repo, password, stdin);
            assert_eq!(o.status.success(), works, "{kdf} {i}: {}", output_text(&o));
            if !works {
                assert!(
                    output_text(&o).contains("password is wrong"),
                    "{}",
                    output_text(&o)
                );
            }
            let r = get_json(&c, s.v2(&format!("{repo}/referrers/{digest}"))).await;
            assert_eq!(
                r["manifests"].as_array().unwrap().len(),
                usize::from(works),
                "{r}"
            );
        }
    }
}
