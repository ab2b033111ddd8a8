//! Shared test support: starts the real `bonded` binary on an ephemeral loopback port with
//! its own data directory, and a few helpers for talking to it.
#![allow(dead_code)]

pub mod crl;
pub mod distribution;
pub mod http;
pub mod pg;
pub mod pki;
pub mod s3;
#[path = "../../../src/test_sigstore.rs"]
pub mod sigstore;
pub mod tsa;
#[path = "../../../src/test_vectors.rs"]
pub mod vectors;

use sha2::{Digest as _, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The first administrator's password in test servers.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub addr: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts bonded on 127.0.0.1:0 with a fresh data directory.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// Starts bonded on 127.0.0.1:0 over an existing (or new) data directory, as an open
    /// lab registry (`--open`: no login needed) as most tests want.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--open"];
        args.extend_from_slice(extra);
        Server::start_with_auth(data_dir, &args)
    }

    /// Starts bonded on 127.0.0.1:0 with authentication required; the first administrator
    /// is `admin` with password [`ADMIN_PASSWORD`].
    pub fn start_with_auth(data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(Server::command(data_dir, extra), data_dir)
    }

    /// The command [`Server::start_with_auth`] runs, to adjust before [`Server::spawn`]:
    /// [`Server::own_command`] on the database and blob store `BONDED_TEST_DATABASE` and
    /// `BONDED_TEST_BLOB_STORE` name.
    pub fn command(data_dir: &Path, extra: &[&str]) -> Command {
        let mut cmd = Server::own_command(data_dir, extra);
        if let Some(url) = pg::url_for(data_dir) {
            cmd.arg("--database-url").arg(url);
        }
        if s3::all_servers_on_s3() {
            let endpoint = s3::endpoint().expect("BONDED_TEST_BLOB_STORE=s3 needs moto_server");
            s3::configure(&mut cmd, endpoint, &s3::bucket_for(data_dir), "bonded");
        }
        cmd
    }

    /// `bonded serve` on `data_dir` whatever the test backends: for tests that choose
    /// the database or blob store themselves.
    pub fn own_command(data_dir: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("BONDED_LOG", "error")
            .env("BONDED_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    /// Starts `cmd` (from [`Server::command`]) and waits for its address.
    pub fn spawn(mut cmd: Command, data_dir: &Path) -> Server {
        let mut child = cmd.spawn().expect("start bonded");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read bonded's first line");
        let url = line
            .trim()
            .strip_prefix("bonded listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from bonded: {line:?}"))
            .to_string();
        let addr = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string();
        Server {
            child: Some(child),
            url,
            addr,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
        }
    }

    pub fn v2(&self, path: &str) -> String {
        format!("{}/v2/{}", self.url, path)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill");
            c.wait().expect("wait");
        }
    }

    /// SIGTERM, then waits for a clean exit; returns whether it exited with success.
    pub fn terminate(&mut self) -> bool {
        let c = self.child.take().expect("running");
        let pid = c.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let out = c.wait_with_output().expect("wait");
        out.status.success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `cmd` as a server that lives exactly as long as this test process (a shared
/// S3 or PostgreSQL server): spawned from a thread that never ends, with the parent-death
/// signal set, which follows the spawning thread, not the process.
pub fn spawn_for_life(mut cmd: Command) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn();
        let _ = tx.send(child.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        if let Ok(mut c) = child {
            let _ = c.wait();
        }
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|e| e.to_string())?
}

pub fn client() -> reqwest::Client {
    bonded::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

/// GET `url` and read the answer as JSON (whatever its status).
pub async fn get_json(c: &reqwest::Client, url: String) -> serde_json::Value {
    let res = c.get(url).send().await.unwrap();
    serde_json::from_slice(&res.bytes().await.unwrap()).expect("the answer is JSON")
}

/// The first error code of an OCI error body.
pub async fn error_code(res: reqwest::Response) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&res.bytes().await.unwrap()).expect("error body is JSON");
    let e = &v["errors"][0];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error has a message: {v}"
    );
    e["code"].as_str().expect("error has a code").to_string()
}

/// Pushes a blob monolithically; panics unless 201.
pub async fn push_blob(c: &reqwest::Client, s: &Server, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let res = c
        .post(s.v2(&format!("{repo}/blobs/uploads/?digest={d}")))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "push blob {d}");
    d
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image manifest over the given config and layers (digest, size).
pub fn image_manifest(
    config: (&str, usize),
    layers: &[(&str, usize)],
    extra: serde_json::Value,
) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, n)| serde_json::json!({
            "mediaType": OCI_LAYER, "digest": d, "size": n})).collect::<Vec<_>>(),
    });
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            m[k] = v;
        }
    }
    serde_json::to_vec(&m).unwrap()
}

/// PUTs an OCI image manifest to `url`.
pub async fn put_manifest(
    c: &reqwest::Client,
    url: String,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    c.put(url)
        .header("Content-Type", OCI_MANIFEST)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Pushes a config and one layer, then an image manifest under `tag`; returns the manifest
/// bytes and digest.
pub async fn push_image(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    tag: &str,
    seed: &str,
    extra: serde_json::Value,
) -> (Vec<u8>, String) {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer of {seed}").into_bytes();
    let cd = push_blob(c, s, repo, &config).await;
    let ld = push_blob(c, s, repo, &layer).await;
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())], extra);
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/{tag}")), m.clone()).await;
    assert_eq!(res.status(), 201, "push manifest {repo}:{tag}");
    let d = sha256(&m);
    (m, d)
}

/// An OCI image layout a test writes by hand (`oci-layout`, `blobs/sha256/`, `index.json`).
pub struct OciLayout {
    pub dir: PathBuf,
}

impl OciLayout {
    /// Creates the layout's skeleton under `dir`.
    pub fn create(dir: &Path) -> OciLayout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// Stores a blob; returns its (digest, size).
    pub fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let d = sha256(bytes);
        std::fs::write(
            self.dir
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            bytes,
        )
        .unwrap();
        (d, bytes.len())
    }

    /// Writes `index.json`.
    pub fn index(&self, index: &serde_json::Value) {
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    pub fn path(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }
}

// ---- accounts -----------------------------------------------------------------------

/// Runs `bonded ARGS` with `stdin` (a line) on standard input.
pub fn bonded_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    bonded_with_stdin_env(args, stdin, &[])
}

/// [`bonded_with_stdin`] with extra environment variables (e.g. `REGISTRY_AUTH_FILE`).
pub fn bonded_with_stdin_env(
    args: &[&str],
    stdin: &str,
    env: &[(&str, &Path)],
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{stdin}").unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `openssl ARGS` in `dir` (the test peers' certificates, CRLs, timestamps); panics
/// with its error output when it fails; returns its standard output.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `bonded ARGS --data-dir DIR` (an account command on a server's database).
pub fn bonded(dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    let url = pg::url_for(dir);
    let dir = dir.to_str().unwrap();
    all.extend(["--data-dir", dir]);
    if let Some(url) = &url {
        all.extend(["--database-url", url]);
    }
    bonded_with_stdin(&all, stdin)
}

/// A finished command's standard output then standard error, for messages and asserts.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn password(user: &str) -> String {
    format!("{user}-password-long-enough")
}

/// Adds a user (password [`password`]) with `role` on `pattern`.
pub fn user(dir: &Path, name: &str, role: &str, pattern: &str) {
    ok(&bonded(
        dir,
        &["user", "add", name, "--password-stdin"],
        &password(name),
    ));
    ok(&bonded(dir, &["role", "grant", name, role, pattern], ""));
}

/// `bonded verify IMAGE --trust-policy POLICY --trust-store STORE EXTRA...`
pub fn verify_image(
    image: &str,
    policy: &Path,
    store: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["verify", image, "--trust-policy"])
        .arg(policy)
        .arg("--trust-store")
        .arg(store)
        .args(extra)
        .output()
        .unwrap()
}

/// A client that sends HTTP Basic credentials on every request.
pub fn as_user(name: &str, secret: &str) -> reqwest::Client {
    bonded::install_crypto_provider();
    let mut h = reqwest::header::HeaderMap::new();
    let v = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{name}:{secret}"),
    );
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {v}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// A registry enforcing one strict policy over `registry.test/prod/*` that trusts the
/// signer `CN=release` of a fresh CA, with authentication, and the accounts `dev`
/// (developer) and `ops` (reader) on `prod/*`: what the push-then-sign tests of real
/// clients run against. Returns the server and the signer's key and certificate files.
pub fn start_release_gate(d: &Path) -> (Server, std::path::PathBuf, std::path::PathBuf) {
    let ca = pki::Ca::new("Acme Root");
    ca.write_store(&d.join("store"), "acme");
    let (key, cert) = ca.write_signer(d, "release");
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=release"]}]})
        .to_string(),
    )
    .unwrap();
    let data = d.join("data");
    let s = Server::start_with_auth(
        &data,
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            d.join("store").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    user(&data, "dev", "developer", "prod/*");
    user(&data, "ops", "reader", "prod/*");
    (s, key, cert)
}

/// `<dir>/rootfs.tar`: a root filesystem of one file, `hello.txt` holding `text`, for
/// `podman import` and `docker import`.
pub fn rootfs_tar(dir: &Path, text: &str) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("hello.txt"), text).unwrap();
    let tar = dir.join("rootfs.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    tar
}
