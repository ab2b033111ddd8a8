//! The README's quick start, command for command: bonded enforcing keys-example's policy
//! keeps an unsigned skopeo push with its tag waiting, `bonded pending` says what it
//! needs, two signers publish it, `bonded verify` passes, and the signature store shows
//! who signed; `bonded push --sign` (signatures first) never waits. Also for a
//! multi-platform index.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn keys(file: &str) -> String {
    root()
        .join("keys-example")
        .join(file)
        .to_str()
        .unwrap()
        .to_string()
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"))
}

/// `bonded ARGS --username admin --password-stdin`, the password on standard input.
fn bonded(args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--username", "admin", "--password-stdin"]);
    bonded_with_stdin(&all, ADMIN_PASSWORD)
}

fn creds() -> String {
    format!("admin:{ADMIN_PASSWORD}")
}

/// An OCI layout with one image, built by umoci.
fn umoci_layout(dir: &Path) -> String {
    let layout = dir.join("app").to_str().unwrap().to_string();
    assert!(run("umoci", &["init", "--layout", &layout])
        .status
        .success());
    assert!(
        run("umoci", &["new", "--image", &format!("{layout}:latest")])
            .status
            .success()
    );
    let payload = dir.join("hello.txt");
    std::fs::write(&payload, "hello from bonded's quick start\n").unwrap();
    let o = run(
        "umoci",
        &[
            "insert",
            "--image",
            &format!("{layout}:latest"),
            payload.to_str().unwrap(),
            "/hello.txt",
        ],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    layout
}

/// A two-platform index as an OCI layout.
fn multi_layout(dir: &Path) -> String {
    let layout = OciLayout::create(&dir.join("multi"));
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (ld, ln) = layout.blob(format!("{arch} layer").as_bytes());
        let (cd, cn) = layout.blob(json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}}).to_string().as_bytes());
        let m = image_manifest((&cd, cn), &[(&ld, ln)], json!({}));
        let (md, mn) = layout.blob(&m);
        children.push(json!({"mediaType": OCI_MANIFEST, "digest": md, "size": mn, "platform": {"os": "linux", "architecture": arch}}));
    }
    let (id, n) = layout.blob(
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
            .to_string()
            .as_bytes(),
    );
    layout.index(
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_INDEX, "digest": id, "size": n,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}),
    );
    layout.path()
}

#[tokio::test]
async fn the_quick_start_works() {
    let tmp = tempfile::tempdir().unwrap();
    // `--hostname 127.0.0.1:5000`: the example policy's scopes name the default address
    // BONDED_ADMIN_PASSWORD (set by start_with_auth) names the first administrator's
    // password, as the README exports it
    let s = Server::start_with_auth(
        &tmp.path().join("data"),
        &[
            "--trust-policy",
            &keys("trustpolicy.json"),
            "--trust-store",
            &keys("truststore"),
            "--hostname",
            "127.0.0.1:5000",
        ],
    );
    let layout = umoci_layout(tmp.path());

    // 1. an unsigned push is accepted and kept, its tag waiting; a pull says what for
    let skopeo_push = |from: String, to: String, extra: &[&str]| {
        let mut args = vec![
            "--insecure-policy".to_string(),
            "copy".into(),
            "--dest-tls-verify=false".into(),
            "--dest-creds".into(),
            creds(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend([from, to]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("skopeo", &args)
    };
    let o = skopeo_push(
        format!("oci:{layout}:latest"),
        format!("docker://{}/prod/app:v1", s.addr),
        &[],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let inspect = |image: &str| {
        run(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                &creds(),
                &format!("docker://{image}"),
            ],
        )
    };
    let image = format!("{}/prod/app:v1", s.addr);
    let o = inspect(&image);
    assert!(!o.status.success(), "a waiting tag was served");
    assert!(
        output_text(&o).contains("waits for signatures"),
        "{}",
        output_text(&o)
    );
    let o = bonded(&["pending", &format!("{}/prod/app", s.addr)]);
    assert!(
        output_text(&o)
            .contains("policy 'prod' needs 2 signatures from distinct trusted identities; found 0"),
        "{}",
        output_text(&o)
    );

    // 2. signed by alice, still waiting (2 of 2 needed); by bob too, published
    let sign = |who: &str| {
        let o = bonded(&[
            "sign",
            &image,
            "--key",
            &keys(&format!("{who}.key")),
            "--cert",
            &keys(&format!("{who}.pem")),
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
    };
    sign("alice");
    assert!(
        !inspect(&image).status.success(),
        "one of two signatures published the tag"
    );
    sign("bob");
    let o = inspect(&image);
    assert!(o.status.success(), "{}", output_text(&o));

    // 2b. or signatures first, then the tag: `bonded push --sign` never waits
    let o = bonded(&[
        "push",
        &format!("{layout}:latest"),
        &format!("{}/prod/app2:v1", s.addr),
        "--sign",
        &keys("alice.key"),
        "--cert",
        &keys("alice.pem"),
        "--sign",
        &keys("bob.key"),
        "--cert",
        &keys("bob.pem"),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("tagged"), "{}", output_text(&o));
    assert!(!output_text(&o).contains("waits"), "{}", output_text(&o));

    // 3. bonded verify passes
    let o = bonded(&[
        "verify",
        &image,
        "--trust-policy",
        &keys("trustpolicy.json"),
        "--trust-store",
        &keys("truststore"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(output_text(&o).contains("CN=alice") && output_text(&o).contains("CN=bob"));

    // 4. the registry says who signed
    let c = client();
    let digest = c
        .head(s.v2("prod/app/manifests/v1"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let res = c
        .get(format!(
            "{}/bonded/v1/repositories/prod/app/signatures/{digest}",
            s.url
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let store: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(store["verdict"]["admitted"], true);
    assert_eq!(store["verdict"]["policy"], "prod");
    assert_eq!(store["signatures"].as_array().unwrap().len(), 2);

    // A multi-platform index: signed push admitted, plain skopeo copy --all refused.
    let multi = multi_layout(tmp.path());
    let o = bonded(&[
        "push",
        &format!("{multi}:latest"),
        &format!("{}/prod/multi:v1", s.addr),
        "--sign",
        &keys("alice.key"),
        "--cert",
        &keys("alice.pem"),
        "--sign",
        &keys("bob.key"),
        "--cert",
        &keys("bob.pem"),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("3 manifest(s)"),
        "{}",
        output_text(&o)
    );
    let o = skopeo_push(
        format!("oci:{multi}:latest"),
        format!("docker://{}/prod/multi2:v1", s.addr),
        &["--all", "--preserve-digests"],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let o = inspect(&format!("{}/prod/multi2:v1", s.addr));
    assert!(!o.status.success(), "an unsigned index was served");
}
