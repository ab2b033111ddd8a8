//! docker as pipelines run it: `docker login`, `docker push` of an unsigned image into an
//! enforcing namespace, sign afterwards, `docker pull` by a reader. The test starts its own
//! Docker daemon (Debian's docker.io: `dockerd` with vfs storage, no bridge, no iptables,
//! its own data root and socket), so nothing is shared with the machine's docker. Without
//! `dockerd` (or when it cannot start) the test says `skipped: ...` and passes, unless
//! `BONDED_REQUIRE_DOCKER=1` (CI sets it), when it fails.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Dockerd {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    std::env::var("BONDED_REQUIRE_DOCKER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Says why the test cannot run: skipped (passes) or, when required, a failure.
fn cannot(why: String) -> Option<Dockerd> {
    if required() {
        panic!("docker is required (BONDED_REQUIRE_DOCKER is set): {why}");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "docker test: skipped: {why}");
    None
}

/// A Docker daemon of the test's own, or `None` after saying why not.
fn start_dockerd(dir: &Path) -> Option<Dockerd> {
    let dir = dir.join("dockerd");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = match Command::new("dockerd")
        .arg("--data-root")
        .arg(dir.join("root"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
        ])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return cannot(format!(
                "dockerd could not be run ({e}); apt-get install docker.io"
            ))
        }
    };
    let d = Dockerd { child, socket, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if docker(&d, None, &["version"]).status.success() {
            return Some(d);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(d.dir.join("log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    cannot(format!(
        "dockerd did not answer within 30 s: {}",
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// `docker ARGS` against the test's daemon, with `config` as DOCKER_CONFIG (its logins).
fn docker(d: &Dockerd, config: Option<&Path>, args: &[&str]) -> Output {
    docker_with_stdin(d, config, args, None)
}

fn docker_with_stdin(
    d: &Dockerd,
    config: Option<&Path>,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write as _;
    let mut cmd = Command::new("docker");
    cmd.arg("--host")
        .arg(format!("unix://{}", d.socket.display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.env("DOCKER_CONFIG", c);
    }
    let mut child = cmd.spawn().expect("docker client");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        writeln!(input, "{s}").unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn docker_pushes_unsigned_then_a_signature_lets_docker_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let Some(daemon) = start_dockerd(d) else {
        return;
    };
    let (s, key, cert) = start_release_gate(d);
    let login = |config: &Path, name: &str| {
        std::fs::create_dir_all(config).unwrap();
        let o = docker_with_stdin(
            &daemon,
            Some(config),
            &["login", &s.addr, "--username", name, "--password-stdin"],
            Some(&password(name)),
        );
        assert!(o.status.success(), "{}", output_text(&o));
    };
    let (dev, ops) = (d.join("docker-dev"), d.join("docker-ops"));
    login(&dev, "dev");
    login(&ops, "ops");

    // an image in the daemon, from a one-file root filesystem
    let tar = rootfs_tar(d, "hello from a docker test\n");
    let image = format!("{}/prod/demo:v1", s.addr);
    let o = docker(&daemon, None, &["import", tar.to_str().unwrap(), &image]);
    assert!(o.status.success(), "{}", output_text(&o));
    let id = |name: &str| {
        let o = docker(
            &daemon,
            None,
            &["image", "inspect", "--format", "{{.Id}}", name],
        );
        assert!(o.status.success(), "{}", output_text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let pushed_id = id(&image);

    // docker push, unsigned: it succeeds (the tag waits), as pipelines need
    let o = docker(&daemon, Some(&dev), &["push", &image]);
    assert!(o.status.success(), "{}", output_text(&o));
    let said = output_text(&o);
    let digest = said
        .split("digest: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("docker push printed no digest: {said}"))
        .to_string();

    // the reader's pull is refused and names what to sign; drop the local copy first
    assert!(docker(&daemon, None, &["rmi", &image]).status.success());
    let o = docker(&daemon, Some(&ops), &["pull", &image]);
    assert!(!o.status.success(), "a waiting tag was pulled");
    let err = output_text(&o);
    assert!(err.contains("waits for signatures"), "{err}");
    assert!(
        err.contains(&format!("registry.test/prod/demo@{digest}")),
        "{err}"
    );

    // sign the digest docker printed, with the pusher's docker login
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["sign", &format!("{}/prod/demo@{digest}", s.addr), "--key"])
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .env("DOCKER_CONFIG", &dev)
        .env("REGISTRY_AUTH_FILE", d.join("no-auth.json"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));

    // now the reader pulls the very image that was pushed
    let o = docker(&daemon, Some(&ops), &["pull", &image]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(id(&image), pushed_id);
}
