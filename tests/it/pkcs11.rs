//! Keys in a PKCS#11 token: SoftHSM2 (Debian's softhsm2) with a token the test initialises
//! in a directory of its own, a P-256 key generated inside it by OpenSC's `pkcs11-tool`
//! (sensitive, not extractable), and a certificate for its public key. `bonded sign
//! --key 'pkcs11:token=...;object=...?module-path=...'` signs with it (JWS and COSE), the
//! gate verifies the signature, and the private key stays in the token: the token refuses
//! to give it out, bonded only asks it to sign. A wrong PIN, a key that does not belong to
//! the certificate and a PIN in the URI are refused. Without softhsm2 and pkcs11-tool the
//! test says `skipped: ...` and passes, unless `BONDED_REQUIRE_SOFTHSM=1` (CI sets it).

use crate::common;

use common::pki::Ca;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];
const PIN: &str = "4711";

fn module() -> Option<&'static str> {
    let tools = ["softhsm2-util", "pkcs11-tool"]
        .iter()
        .all(|t| Command::new(t).arg("--help").output().is_ok());
    MODULES
        .into_iter()
        .find(|m| Path::new(m).exists())
        .filter(|_| tools)
}

struct Token {
    conf: PathBuf,
    module: &'static str,
}

impl Token {
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", &self.conf);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let o = self.cmd(program).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{program} {args:?}: {}",
            output_text(&o)
        );
        o
    }

    fn tool(&self, args: &[&str]) -> Output {
        let mut all = vec!["--module", self.module, "--token-label", "bonded-test"];
        all.extend(args);
        self.cmd("pkcs11-tool").args(&all).output().unwrap()
    }

    /// A key pair of `kind` (pkcs11-tool's `--key-type`) generated in the token, and its
    /// public key (DER SPKI).
    fn keypair(&self, dir: &Path, kind: &str, label: &str, id: &str) -> Vec<u8> {
        let o = self.tool(&[
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            kind,
            "--label",
            label,
            "--id",
            id,
            "--sensitive",
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
        let out = dir.join(format!("{label}.pub.der"));
        let o = self.tool(&[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            label,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
        std::fs::read(out).unwrap()
    }
}

fn bonded_sign(
    token: &Token,
    image: &str,
    key: &str,
    cert: &Path,
    extra: &[&str],
    pin: &str,
) -> Output {
    let mut c = token.cmd(env!("CARGO_BIN_EXE_bonded"));
    c.args(["sign", image, "--key", key, "--cert"])
        .arg(cert)
        .args(extra)
        .env("BONDED_PKCS11_PIN", pin)
        .stdin(std::process::Stdio::null());
    c.output().unwrap()
}

#[tokio::test]
async fn a_key_generated_in_a_softhsm_token_signs_without_leaving_it() {
    let Some(module) = module() else {
        let why = "softhsm2 and OpenSC's pkcs11-tool are not installed";
        if std::env::var("BONDED_REQUIRE_SOFTHSM").is_ok_and(|v| !v.is_empty() && v != "0") {
            panic!("SoftHSM2 is required (BONDED_REQUIRE_SOFTHSM is set): {why}");
        }
        eprintln!("pkcs11 test: skipped: {why}");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let tokens = d.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let token = Token { conf, module };
    token.run(
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            "bonded-test",
            "--pin",
            PIN,
            "--so-pin",
            "123456",
        ],
    );
    let spki = token.keypair(d, "EC:prime256v1", "release", "01");
    token.keypair(d, "EC:prime256v1", "other", "02");
    let rsa_spki = token.keypair(d, "rsa:2048", "rsa", "03");
    let ca = Ca::new("Acme Root");
    let cert = ca.write_cert_for_spki(d, "release", &spki);
    let rsa_cert = ca.write_cert_for_spki(d, "rsa", &rsa_spki);
    let (policy, store) = ca.trusted_anywhere(d);
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
        ],
    );
    let c = client();
    let uri = format!("pkcs11:token=bonded-test;object=release?module-path={module}");

    // JWS and COSE, each verified by the gate, which then publishes the waiting tag.
    for (repo, format) in [("hsm/jws", "jws"), ("hsm/cose", "cose")] {
        crate::cosign::image(&c, &s.url, repo, format).await;
        assert_eq!(
            crate::cosign::status(&c, &s, repo, "v1").await,
            404,
            "waits"
        );
        let o = bonded_sign(
            &token,
            &format!("{}/{repo}:v1", s.addr),
            &uri,
            &cert,
            &["--signature-format", format],
            PIN,
        );
        assert!(o.status.success(), "{format}: {}", output_text(&o));
        assert_eq!(
            crate::cosign::status(&c, &s, repo, "v1").await,
            200,
            "{format}"
        );
    }
    // An RSA key in the token signs PS256 (RSASSA-PSS, CKM_RSA_PKCS_PSS).
    crate::cosign::image(&c, &s.url, "hsm/rsa", "rsa").await;
    let o = bonded_sign(
        &token,
        &format!("{}/hsm/rsa:v1", s.addr),
        &format!("pkcs11:token=bonded-test;id=%03?module-path={module}"),
        &rsa_cert,
        &[],
        PIN,
    );
    assert!(o.status.success(), "rsa: {}", output_text(&o));
    assert_eq!(crate::cosign::status(&c, &s, "hsm/rsa", "v1").await, 200);
    // bonded verify, independently, accepts what the token signed.
    let o = verify_image(&format!("{}/hsm/jws:v1", s.addr), &policy, &store, &[]);
    assert!(o.status.success(), "{}", output_text(&o));

    // The key stays in the token, as the token itself reports it (OpenSC reading its
    // attributes): sensitive (CKA_SENSITIVE: its value is never revealed) and never
    // extractable (not even wrapped under another key). bonded held only a handle.
    let listed = output_text(&token.tool(&[
        "--login",
        "--pin",
        PIN,
        "--list-objects",
        "--type",
        "privkey",
    ]));
    let release = listed
        .split("Private Key Object")
        .find(|o| o.contains("label:      release"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        release.contains("never extractable") && release.contains("sensitive"),
        "{listed}"
    );

    // Refusals, each saying why, nothing stored.
    crate::cosign::image(&c, &s.url, "hsm/refused", "refused").await;
    let image = format!("{}/hsm/refused:v1", s.addr);
    let o = bonded_sign(&token, &image, &uri, &cert, &[], "0000");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("logging in"),
        "{}",
        output_text(&o)
    );
    let other = format!("pkcs11:token=bonded-test;object=other?module-path={module}");
    let o = bonded_sign(&token, &image, &other, &cert, &[], PIN);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("does not match the certificate"),
        "{}",
        output_text(&o)
    );
    let o = bonded_sign(
        &token,
        &image,
        &format!("{uri}&pin-value={PIN}"),
        &cert,
        &[],
        PIN,
    );
    assert!(!o.status.success());
    assert!(output_text(&o).contains("pin-value"), "{}", output_text(&o));
    let o = bonded_sign(
        &token,
        &image,
        &format!("pkcs11:token=no-such-token;object=release?module-path={module}"),
        &cert,
        &[],
        PIN,
    );
    assert!(
        output_text(&o).contains("no token matches (tokens: bonded-test)"),
        "{}",
        output_text(&o)
    );
    assert_eq!(
        crate::cosign::status(&c, &s, "hsm/refused", "v1").await,
        404
    );
}
