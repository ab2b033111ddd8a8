//! podman as users run it: `podman login`, then push and pull by name, against bonded
//! requiring authentication. podman keeps its own credential file and follows the
//! Bearer challenge itself, so this checks the login flow with a second real client
//! beside skopeo; and bonded's CLI reuses the login podman stored. Each test gets its own podman storage (vfs: no kernel overlay needed)
//! and credential file, so nothing is shared with the machine's podman.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Podman {
    root: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        std::fs::create_dir_all(dir).unwrap();
        // podman refuses a REGISTRY_AUTH_FILE that does not exist yet
        std::fs::write(dir.join("auth.json"), "{}").unwrap();
        Podman {
            root: dir.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("REGISTRY_AUTH_FILE", self.root.join("auth.json"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("podman is installed (apt-get install podman)");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            writeln!(input, "{s}").unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn login(&self, addr: &str, name: &str, secret: &str) -> Output {
        self.run(
            &[
                "login",
                "--tls-verify=false",
                "--username",
                name,
                "--password-stdin",
                addr,
            ],
            Some(secret),
        )
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// An image in podman's local storage, made from a one-file root filesystem.
fn import_image(p: &Podman, dir: &Path, name: &str) {
    let tar = rootfs_tar(dir, "hello from a podman test\n");
    let o = p.run(&["import", tar.to_str().unwrap(), name], None);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// What the registry itself says about `repo:tag`, asked as the administrator.
async fn manifest_status(s: &Server, repo: &str, tag: &str) -> u16 {
    as_user("admin", ADMIN_PASSWORD)
        .get(format!("{}/v2/{repo}/manifests/{tag}", s.url))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn podman_logs_in_pushes_and_pulls_within_its_role() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "alice", "developer", "acme/*");
    user(&data, "bob", "reader", "acme/*");
    let p = Podman::new(&tmp.path().join("podman"));
    import_image(&p, tmp.path(), "localhost/demo:v1");
    let dest = format!("{}/acme/demo:v1", s.addr);
    let push = |p: &Podman| {
        p.run(
            &["push", "--tls-verify=false", "localhost/demo:v1", &dest],
            None,
        )
    };

    // not logged in: refused with the registry's reason, nothing stored
    let o = push(&p);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );
    assert_eq!(manifest_status(&s, "acme/demo", "v1").await, 404);

    // a wrong password fails the login itself (podman words the 401 itself)
    let o = p.login(&s.addr, "alice", "not-alices-password");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid username/password"),
        "{}",
        stderr(&o)
    );

    // a reader logs in but may not push: 403 DENIED naming the role, nothing stored
    let o = p.login(&s.addr, "bob", &password("bob"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = push(&p);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("denied") && err.contains("reader"), "{err}");
    assert_eq!(manifest_status(&s, "acme/demo", "v1").await, 404);

    // a developer pushes
    let o = p.login(&s.addr, "alice", &password("alice"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = push(&p);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest_status(&s, "acme/demo", "v1").await, 200);

    // bonded's own CLI uses the login podman stored, and without it is asked for one
    let inspect = |auth_file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(["inspect", &dest])
            .env("REGISTRY_AUTH_FILE", auth_file)
            .env("XDG_RUNTIME_DIR", "/nonexistent")
            .env("HOME", "/nonexistent")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("DOCKER_CONFIG")
            .output()
            .unwrap()
    };
    let o = inspect(&p.root.join("auth.json"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = inspect(&tmp.path().join("no-such-auth.json"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );

    // the reader pulls it back into an empty store, and gets the same image
    let pulled = Podman::new(&tmp.path().join("podman-pull"));
    let o = pulled.login(&s.addr, "bob", &password("bob"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = pulled.run(&["pull", "--tls-verify=false", &dest], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = |p: &Podman, name: &str| {
        let o = p.run(&["image", "inspect", "--format", "{{.Id}}", name], None);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(id(&pulled, &dest), id(&p, "localhost/demo:v1"));

    // after logout, the private namespace is closed again
    let o = pulled.run(&["logout", &s.addr], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = pulled.run(&["pull", "--tls-verify=false", &dest], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );

    // the trail names who pushed the manifest and who was refused
    let trail = as_user("admin", ADMIN_PASSWORD)
        .get(format!("{}/bonded/v1/audit?repository=acme/demo", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(trail.status(), 200);
    let trail: serde_json::Value = serde_json::from_slice(&trail.bytes().await.unwrap()).unwrap();
    let records = trail["records"].as_array().unwrap();
    let pushed = records
        .iter()
        .find(|r| r["action"] == "manifest.push" && r["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no manifest push in {records:?}"));
    assert_eq!(pushed["actor"], "alice");
    assert!(
        records
            .iter()
            .any(|r| r["actor"] == "bob" && r["outcome"] == "denied"),
        "no refusal for bob in {records:?}"
    );
}

/// `bonded login` keeps the login where podman reads it (an API token on bonded, not the
/// password), and `bonded logout` revokes that token and removes the login.
#[tokio::test]
async fn a_bonded_login_serves_podman_and_a_logout_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "alice", "developer", "acme/*");
    let p = Podman::new(&tmp.path().join("podman"));
    import_image(&p, tmp.path(), "localhost/demo:v1");
    let auth_file = p.root.join("auth.json");
    let bonded = |args: &[&str], stdin: &str| {
        bonded_with_stdin_env(args, stdin, &[("REGISTRY_AUTH_FILE", &auth_file)])
    };
    let login = |secret: &str| {
        bonded(
            &["login", &s.addr, "--username", "alice", "--password-stdin"],
            secret,
        )
    };

    // a wrong password is refused and nothing is kept
    let o = login("not-alices-password");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("wrong username or password"),
        "{}",
        output_text(&o)
    );
    assert!(!std::fs::read_to_string(&auth_file)
        .unwrap()
        .contains(&s.addr));

    let o = login(&password("alice"));
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("logged in"), "{}", output_text(&o));
    // on bonded, an API token is kept, never the password
    let kept = std::fs::read_to_string(&auth_file).unwrap();
    let entry: serde_json::Value = serde_json::from_str(&kept).unwrap();
    let auth = entry["auths"][&s.addr]["auth"].as_str().unwrap();
    let decoded = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, auth).unwrap(),
    )
    .unwrap();
    assert!(decoded.starts_with("alice:bdt_"), "{decoded}");
    assert!(!decoded.contains(&password("alice")));
    let token_id = decoded["alice:bdt_".len()..]
        .split('_')
        .next()
        .unwrap()
        .to_string();
    let dest = format!("{}/acme/demo:v1", s.addr);
    let o = p.run(
        &["push", "--tls-verify=false", "localhost/demo:v1", &dest],
        None,
    );
    assert!(
        o.status.success(),
        "podman used bonded's login: {}",
        stderr(&o)
    );

    let o = bonded(&["logout", &s.addr], "");
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains(&format!("revoked API token {token_id}")),
        "{}",
        output_text(&o)
    );
    // revoked on the server, not only forgotten here
    let res = as_user("alice", &decoded["alice:".len()..])
        .get(s.v2("acme/demo/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let o = p.run(&["pull", "--tls-verify=false", &dest], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );
    let o = bonded(&["logout", &s.addr], "");
    assert!(!o.status.success(), "nothing left to log out of");

    // logging in with a token of one's own keeps it, and logging out leaves it alive
    let own = ok(&common::bonded(&data, &["token", "create", "alice"], ""))
        .trim()
        .to_string();
    let o = login(&own);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        !output_text(&o).contains("made API token"),
        "{}",
        output_text(&o)
    );
    let o = bonded(&["logout", &s.addr], "");
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(!output_text(&o).contains("revoked"), "{}", output_text(&o));
    let res = as_user("alice", &own)
        .get(s.v2("acme/demo/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the user's own token still works");
}

/// The pipeline most teams run: `podman push` (or skopeo) first, sign the digest after.
/// Under an enforcing policy the unsigned push is kept, not lost; its tag waits, pulls of
/// it say what it waits for, and a signature (by `bonded sign` with the tag the pusher
/// used, or by digest) publishes it; then a reader pulls the very image pushed.
#[tokio::test]
async fn podman_and_skopeo_push_unsigned_then_sign_then_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (s, key, cert) = start_release_gate(d);

    // podman pushes unsigned: accepted (the default "quarantine"), the tag waits
    let p = Podman::new(&d.join("podman"));
    import_image(&p, d, "localhost/demo:v1");
    let dest = format!("{}/prod/demo:v1", s.addr);
    assert!(p.login(&s.addr, "dev", &password("dev")).status.success());
    let o = p.run(
        &["push", "--tls-verify=false", "localhost/demo:v1", &dest],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // a reader's pull of the waiting tag fails and says why and what to sign
    let reader = Podman::new(&d.join("podman-reader"));
    assert!(reader
        .login(&s.addr, "ops", &password("ops"))
        .status
        .success());
    let o = reader.run(&["pull", "--tls-verify=false", &dest], None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("waits for signatures"), "{err}");
    assert!(
        err.contains("sign registry.test/prod/demo@sha256:"),
        "{err}"
    );

    // `bonded pending` lists the tag with what it needs
    let pending = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["pending", &format!("{}/prod/demo", s.addr)])
        .env("REGISTRY_AUTH_FILE", p.root.join("auth.json"))
        .output()
        .unwrap();
    let listed = output_text(&pending);
    assert!(pending.status.success(), "{listed}");
    assert!(listed.contains("1 waiting tag"), "{listed}");
    assert!(listed.contains("v1") && listed.contains("dev"), "{listed}");
    assert!(
        listed.contains("no valid signature") || listed.contains("signature"),
        "{listed}"
    );

    // the pusher signs by the tag it pushed: the waiting manifest is what gets signed
    let sign = |image: &str, auth: &Path| {
        Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(["sign", image, "--key"])
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .env("REGISTRY_AUTH_FILE", auth)
            .output()
            .unwrap()
    };
    let o = sign(&dest, &p.root.join("auth.json"));
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("waits for signatures"),
        "{}",
        output_text(&o)
    );

    // published: the reader pulls the very image podman pushed
    let o = reader.run(&["pull", "--tls-verify=false", &dest], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = |p: &Podman, name: &str| {
        let o = p.run(&["image", "inspect", "--format", "{{.Id}}", name], None);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(id(&reader, &dest), id(&p, "localhost/demo:v1"));

    // skopeo: push unsigned (the digest it wrote is what the refusal names), sign that
    // digest, copy back out
    let layout = d.join("layout");
    let oci = OciLayout::create(&layout);
    let (config, config_len) = oci
        .blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let m = image_manifest((&config, config_len), &[], serde_json::json!({}));
    let (md, mn) = oci.blob(&m);
    oci.index(
        &serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST,
        "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "v2"}}]}),
    );
    let digest_file = d.join("digest");
    let creds = |u: &str| format!("{u}:{}", password(u));
    let skopeo = |args: &[&str]| Command::new("skopeo").args(args).output().unwrap();
    let o = skopeo(&[
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds("dev"),
        "--digestfile",
        digest_file.to_str().unwrap(),
        &format!("oci:{}:v2", layout.display()),
        &format!("docker://{}/prod/demo:v2", s.addr),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    let o = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds("ops"),
        &format!("docker://{}/prod/demo:v2", s.addr),
    ]);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains(&format!("registry.test/prod/demo@{digest}")),
        "{}",
        output_text(&o)
    );
    let o = sign(
        &format!("{}/prod/demo@{digest}", s.addr),
        &p.root.join("auth.json"),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let out = d.join("out");
    let o = skopeo(&[
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds("ops"),
        &format!("docker://{}/prod/demo:v2", s.addr),
        &format!("oci:{}:v2", out.display()),
    ]);
    assert!(o.status.success(), "{}", output_text(&o));

    // the trail: each tag waited, then was published by the signature
    let trail = as_user("admin", ADMIN_PASSWORD)
        .get(format!("{}/bonded/v1/audit?repository=prod/demo", s.url))
        .send()
        .await
        .unwrap();
    let trail: serde_json::Value = serde_json::from_slice(&trail.bytes().await.unwrap()).unwrap();
    let records = trail["records"].as_array().unwrap();
    for (action, tag) in [
        ("tag.wait", "v1"),
        ("tag.publish", "v1"),
        ("tag.wait", "v2"),
        ("tag.publish", "v2"),
    ] {
        assert!(
            records
                .iter()
                .any(|r| r["action"] == action && r["tag"] == tag),
            "no {action} of {tag} in {records:?}"
        );
    }
}
