//! The CLI against a registry that speaks TLS and asks for a login (CNCF Distribution with
//! a certificate from a test CA and htpasswd Basic auth): credentials from docker's
//! config.json, a docker credential helper or --username/--password-stdin, the CA from
//! --ca-file, and one clear line for each way it can go wrong.

use crate::common;

use base64::Engine as _;
use common::distribution::start_distribution_with;
use common::pki::Ca;
use common::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A one-image OCI layout with its image tagged `latest`.
fn layout(dir: &Path) -> String {
    let l = OciLayout::create(&dir.join("layout"));
    let (ld, ln) = l.blob(b"tls layer");
    let (cd, cn) = l.blob(br#"{"os":"linux","architecture":"amd64"}"#);
    let m = image_manifest((&cd, cn), &[(&ld, ln)], json!({}));
    let (md, mn) = l.blob(&m);
    l.index(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}));
    l.path()
}

fn bonded(args: &[&str], docker_config: Option<&Path>, stdin: Option<&str>) -> Output {
    bonded_with_path(args, docker_config, stdin, None)
}

/// As [`bonded`], with `extra_path` in front of `PATH` (where credential helpers are).
fn bonded_with_path(
    args: &[&str],
    docker_config: Option<&Path>,
    stdin: Option<&str>,
    extra_path: Option<&Path>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
    // No stored login from this machine's podman, skopeo or docker may answer.
    cmd.args(args)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .env("XDG_RUNTIME_DIR", "/nonexistent")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dc) = docker_config {
        cmd.env("DOCKER_CONFIG", dc);
    }
    if let Some(dir) = extra_path {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", dir.display()));
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn https_with_basic_login() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // a server certificate for 127.0.0.1 from a test CA
    let ca = Ca::new("Registry CA");
    let (key, cert) = ca.issue_server("127.0.0.1");
    std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(d.join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let dist = start_distribution_with(
        &d.join("dist"),
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            d.join("server.pem").display(),
            d.join("server.key").display()
        ),
        &format!(
            "auth:\n  htpasswd:\n    realm: bonded-test\n    path: {}\n",
            d.join("htpasswd").display()
        ),
    );
    let image = format!("{}/acme/app:v1", dist.addr);
    let ca_file = d.join("ca.pem");
    let ca_arg = ca_file.to_str().unwrap();
    let src = layout(d);

    // docker's config.json holds alice's credentials
    let docker = d.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {dist.addr.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();

    let o = bonded(
        &[
            "push",
            &format!("{src}:latest"),
            &image,
            "--ca-file",
            ca_arg,
        ],
        Some(&docker),
        None,
    );
    assert!(o.status.success(), "{}", output_text(&o));

    // --username and --password-stdin, signing
    let (sk, sc) = Ca::new("Signing Root").write_signer(d, "release");
    let o = bonded(
        &[
            "sign",
            &image,
            "--key",
            sk.to_str().unwrap(),
            "--cert",
            sc.to_str().unwrap(),
            "--ca-file",
            ca_arg,
            "--username",
            "alice",
            "--password-stdin",
        ],
        None,
        Some("s3cret\n"),
    );
    assert!(o.status.success(), "{}", output_text(&o));

    // each failure in one clear line
    let o = bonded(
        &[
            "inspect",
            &image,
            "--ca-file",
            ca_arg,
            "--username",
            "alice",
            "--password-stdin",
        ],
        None,
        Some("wrong\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains(&format!(
            "login to {} failed: wrong username or password",
            dist.addr
        )),
        "{}",
        output_text(&o)
    );
    let o = bonded(&["inspect", &image, "--ca-file", ca_arg], None, None);
    assert!(
        output_text(&o).contains("asks for a login"),
        "{}",
        output_text(&o)
    );
    let o = bonded(&["inspect", &image], Some(&docker), None);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unknown CA is refused: {}",
        output_text(&o)
    );
    let o = bonded(&["inspect", &image, "--insecure"], Some(&docker), None);
    assert!(
        o.status.success(),
        "--insecure accepts the lab certificate: {}",
        output_text(&o)
    );
    assert!(
        output_text(&o).contains("referrers: 1"),
        "{}",
        output_text(&o)
    );
    let o = bonded(
        &[
            "inspect",
            &format!("{}/acme/app:nope", dist.addr),
            "--ca-file",
            ca_arg,
        ],
        Some(&docker),
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("was not found"),
        "{}",
        output_text(&o)
    );

    // `bonded login` to a registry that is not bonded keeps the password (there is no API
    // to make a token), where `inspect` then finds it
    let auth_file = d.join("auth.json");
    let o = bonded_with_stdin_env(
        &[
            "login",
            &dist.addr,
            "--ca-file",
            ca_arg,
            "--username",
            "alice",
            "--password-stdin",
        ],
        "s3cret",
        &[("REGISTRY_AUTH_FILE", &auth_file)],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        !output_text(&o).contains("API token"),
        "{}",
        output_text(&o)
    );
    let kept = std::fs::read_to_string(&auth_file).unwrap();
    let alice = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    assert!(kept.contains(&alice), "{kept}");
    let o = bonded_with_stdin_env(
        &["inspect", &image, "--ca-file", ca_arg],
        "",
        &[("REGISTRY_AUTH_FILE", &auth_file)],
    );
    assert!(o.status.success(), "{}", output_text(&o));

    // a docker credential helper named in credHelpers answers for this registry only
    let helpers = d.join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    let helper = helpers.join("docker-credential-bondedtest");
    // The helper protocol: `get`, the registry on stdin, JSON on stdout; exit 1 when the
    // registry is unknown. Each question is logged, to show what bonded asked.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r registry\necho \"$registry\" >> {log}\n\
             [ \"$registry\" = \"{addr}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             echo '{{\"ServerURL\":\"{addr}\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}}'\n",
            log = d.join("helper.log").display(),
            addr = dist.addr,
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let helped = d.join("docker-helped");
    std::fs::create_dir_all(&helped).unwrap();
    std::fs::write(
        helped.join("config.json"),
        json!({"auths": {dist.addr.clone(): {}}, "credHelpers": {dist.addr.clone(): "bondedtest"}})
            .to_string(),
    )
    .unwrap();
    let o = bonded_with_path(
        &["inspect", &image, "--ca-file", ca_arg],
        Some(&helped),
        None,
        Some(&helpers),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("helper.log"))
            .unwrap()
            .trim(),
        dist.addr
    );
    // a store (credsStore) that has nothing for this registry: a login is asked for
    let empty = helpers.join("docker-credential-empty");
    std::fs::write(
        &empty,
        "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&empty, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        helped.join("config.json"),
        json!({"credsStore": "empty"}).to_string(),
    )
    .unwrap();
    let o = bonded_with_path(
        &["inspect", &image, "--ca-file", ca_arg],
        Some(&helped),
        None,
        Some(&helpers),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("asks for a login"),
        "{}",
        output_text(&o)
    );
    // a helper that exits at once without reading what it is sent (here: `false`) must
    // not kill bonded with SIGPIPE (exit by signal, no message), however fast it exits
    std::os::unix::fs::symlink("/bin/false", helpers.join("docker-credential-false")).unwrap();
    std::fs::write(
        helped.join("config.json"),
        json!({"credsStore": "false"}).to_string(),
    )
    .unwrap();
    // (many at once: the race is between the helper's exit and bonded's write)
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..48)
            .map(|_| {
                scope.spawn(|| {
                    bonded_with_path(
                        &["inspect", &image, "--ca-file", ca_arg],
                        Some(&helped),
                        None,
                        Some(&helpers),
                    )
                })
            })
            .collect();
        for run in runs {
            let o = run.join().unwrap();
            assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
        }
    });
}
