//! What a new user meets in their first hour: every failure says what to do, exit codes
//! tell a configuration mistake from an untrusted image, output fits a terminal and a pipe.

use crate::common;

use common::pki::Ca;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn bonded(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let o = bonded(&["--version"]);
    let text = output_text(&o);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = head.unwrap_or_else(|| "unknown".into());
    assert!(
        text.starts_with(&format!(
            "bonded {} (commit {expected}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn keygen_refuses_a_certificate_that_would_be_born_expired() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("root");
    let o = bonded(&[
        "keygen",
        "root",
        "--subject",
        "C=US, ST=WA, O=Acme",
        "--out",
        out.to_str().unwrap(),
        "--days",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        output_text(&o).contains("0 is not in 1..=36500"),
        "{}",
        output_text(&o)
    );
    assert!(!out.with_extension("pem").exists());
}

#[tokio::test]
async fn a_mistyped_trust_store_is_a_configuration_error_not_an_untrusted_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Acme Root");
    let (policy, _) = ca.trusted_anywhere(d);
    let s = Server::start();
    push_image(&client(), &s, "a/b", "v1", "typo", json!({})).await;
    let image = format!("{}/a/b:v1", s.addr);
    // A directory that does not exist, and one that exists without the store the policy
    // names: both exit 1 (bad configuration), saying what is wrong.
    for (store, says) in [
        (d.join("nonexistent"), "cannot read trust store"),
        (
            d.join("empty"),
            "names trust store 'ca:acme', which does not exist",
        ),
    ] {
        std::fs::create_dir_all(d.join("empty")).unwrap();
        let o = verify_image(&image, &policy, &store, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
        assert!(output_text(&o).contains(says), "{}", output_text(&o));
    }
}

#[tokio::test]
async fn a_closed_pipe_ends_a_command_quietly() {
    let s = Server::start();
    let c = client();
    // More than a pipe holds (64 KiB): four records a push, about 150 bytes a row.
    for i in 0..200 {
        push_image(
            &c,
            &s,
            "pipe/app",
            &format!("v{i}"),
            &format!("p{i}"),
            json!({}),
        )
        .await;
    }
    // `bonded audit | head -1`: the reader goes away after one line.
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{} audit --registry {} | head -1; echo \"bonded: ${{PIPESTATUS[0]}}\" >&2",
                env!("CARGO_BIN_EXE_bonded"),
                s.addr
            ),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // 141: ended by SIGPIPE, as cat or grep end; never 101 (a panic)
    assert!(
        err.contains("bonded: 141") || err.contains("bonded: 0"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
}

#[test]
fn server_logs_into_a_pipe_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["serve", "--open", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("BONDED_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("bonded is serving");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let all = lines.join("\n");
    assert!(all.contains("bonded is serving"), "{all}");
    assert!(
        !all.contains('\x1b'),
        "colour codes in a piped log: {all:?}"
    );
}

/// Whether `s` is an RFC 3339 UTC time to the second, `2026-12-01T06:50:08Z`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn times_are_rfc3339_and_table_columns_line_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Acme Root");
    let (policy, store) = ca.trusted_anywhere(d);
    let s = Server::start();
    push_image(&client(), &s, "t/app", "v1", "times", json!({})).await;
    let image = format!("{}/t/app:v1", s.addr);
    // Two signers with subjects of different lengths.
    for cn in ["a", "a-signer-with-a-much-longer-common-name"] {
        let (key, cert) = ca.write_signer(d, cn);
        let o = bonded(&[
            "sign",
            &image,
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
    }
    let verify = |output: &str| verify_image(&image, &policy, &store, &["--output", output]);
    let o = verify("json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for sig in v["signatures"].as_array().unwrap() {
        let t = sig["signingTime"].as_str().unwrap();
        assert!(is_rfc3339_utc(t), "{t}");
    }
    let o = verify("table");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("SIGNER"))
        .expect("a header");
    let col = lines[header].find("ALG").unwrap();
    let at = lines[header].find("SIGNED AT").unwrap();
    for row in &lines[header + 1..header + 3] {
        assert_eq!(row.get(col..col + 5), Some("ES256"), "{text}");
        assert!(is_rfc3339_utc(&row[at..at + 20]), "{text}");
    }
}

#[tokio::test]
async fn a_misspelt_audit_action_is_refused_with_the_known_ones() {
    let s = Server::start();
    let o = bonded(&[
        "audit",
        "--registry",
        &s.addr,
        "--action",
        "signature.admitt",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let text = output_text(&o);
    assert!(
        text.contains("a similar value exists: 'signature.admit'"),
        "{text}"
    );
    assert!(
        text.contains("manifest.push") && text.contains("quota.remove"),
        "{text}"
    );
    let res = client()
        .get(format!("{}/bonded/v1/audit?action=signature.admitt", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errors"][0]["code"], "AUDIT_QUERY_INVALID");
    let msg = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("not an audit action; the actions are blob.push"),
        "{msg}"
    );
}

/// Starts `serve` on `data`, waits until it listens, stops it and returns its stderr.
fn one_start(data: &std::path::Path, admin_password: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
    common::pg::database_env(&mut cmd, data);
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("BONDED_ADMIN_PASSWORD")
        .env_remove("BONDED_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = admin_password {
        cmd.env("BONDED_ADMIN_PASSWORD", p);
    }
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("listening"), "{first}");
    child.kill().unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()
}

#[test]
fn an_admin_password_variable_that_can_no_longer_apply_is_named_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let first = one_start(&data, None);
    let generated = first
        .split("with password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated password in {first}"))
        .to_string();

    // The README's order: a first start made the account, then the variable is exported.
    let other = "another-long-password-42";
    let err = one_start(&data, Some(other));
    assert!(
        err.contains("BONDED_ADMIN_PASSWORD is ignored")
            && err.contains("NOT the password of 'admin'")
            && err.contains("bonded user passwd admin"),
        "{err}"
    );
    assert!(!err.contains(other), "the password is never printed: {err}");
    assert!(!err.contains(&generated), "{err}");

    // The same variable that made the account: it is ignored, and still right.
    let err = one_start(&data, Some(&generated));
    assert!(
        err.contains("BONDED_ADMIN_PASSWORD is ignored")
            && err.contains("still the password of 'admin'"),
        "{err}"
    );
    assert!(!err.contains(&generated), "{err}");

    // Without the variable a later start says nothing about it.
    let err = one_start(&data, None);
    assert!(!err.contains("BONDED_ADMIN_PASSWORD"), "{err}");
}

// Tests that read ../shared/vectors skip without them, unless CI requires them.
#[test]
fn a_missing_directory_skips_unless_required() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("vectors");
    assert_eq!(vectors::locate(&missing, false), Ok(None));
    let err = vectors::locate(&missing, true).unwrap_err();
    assert!(err.contains("BONDED_REQUIRE_VECTORS"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn a_present_directory_runs_whether_required_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        vectors::locate(tmp.path(), false),
        Ok(Some(tmp.path().into()))
    );
    assert_eq!(
        vectors::locate(tmp.path(), true),
        Ok(Some(tmp.path().into()))
    );
}

#[test]
fn a_file_where_the_directory_should_be_is_missing_vectors() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    assert_eq!(vectors::locate(tmp.path(), false), Ok(None));
    assert!(vectors::locate(tmp.path(), true).is_err());
}

/// This test binary itself, running one test that reads the vectors, with the vectors
/// pointed somewhere they are not.
fn run_vector_test_without_vectors(required: bool) -> std::process::Output {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "trust_vectors::v1_valid_notation_signature_verifies",
        "--exact",
        "--test-threads=1",
    ])
    .env("BONDED_VECTORS", tmp.path().join("absent"))
    .env_remove("BONDED_REQUIRE_VECTORS");
    if required {
        cmd.env("BONDED_REQUIRE_VECTORS", "1");
    }
    cmd.output().unwrap()
}

#[test]
fn a_clone_without_the_vectors_skips_their_tests_and_says_so() {
    let o = run_vector_test_without_vectors(false);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("1 passed") && text.contains(vectors::SKIPPED),
        "{text}"
    );
    assert_eq!(vectors::SKIPPED, "skipped: ../shared/vectors not found");
}

#[test]
fn ci_without_the_vectors_fails_instead_of_skipping() {
    let o = run_vector_test_without_vectors(true);
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("1 failed") && text.contains("BONDED_REQUIRE_VECTORS"),
        "{text}"
    );
}

/// stderr of a failed `bonded inspect`, checked to be one line with none of reqwest's or
/// rustls's own words.
fn one_line_failure(args: &[&str]) -> String {
    let o = bonded(args);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains("ERROR") && !err.contains("error sending request for url"),
        "{err}"
    );
    err
}

#[tokio::test]
async fn network_and_tls_failures_name_their_cause_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = Ca::new("Private CA");
    let (key, cert) = ca.issue_server("127.0.0.1");
    std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--tls-cert",
            d.join("server.pem").to_str().unwrap(),
            "--tls-key",
            d.join("server.key").to_str().unwrap(),
        ],
    );
    let image = format!("{}/a/b:v1", s.addr);

    // A private CA's server without --ca-file: the cause, and the option that fixes it.
    let err = one_line_failure(&["inspect", &image]);
    assert!(
        err.contains("signed by an unknown authority") && err.contains("--ca-file"),
        "{err}"
    );
    // With it the registry is reached (and says the image is not there).
    let o = bonded(&[
        "inspect",
        &image,
        "--ca-file",
        d.join("ca.pem").to_str().unwrap(),
    ]);
    assert!(output_text(&o).contains("not found"), "{}", output_text(&o));
    // A name the certificate is not for.
    let port = s.addr.rsplit(':').next().unwrap();
    let err = one_line_failure(&[
        "inspect",
        &format!("localhost:{port}/a/b:v1"),
        "--ca-file",
        d.join("ca.pem").to_str().unwrap(),
    ]);
    assert!(err.contains("not for this name"), "{err}");
    // Plain HTTP to a TLS port.
    let err = one_line_failure(&["inspect", &image, "--plain-http"]);
    assert!(err.contains("drop --plain-http"), "{err}");

    // Nothing listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let err = one_line_failure(&["inspect", &format!("{addr}/a/b:v1")]);
    assert!(
        err.contains("connection refused") && err.contains(&addr.to_string()),
        "{err}"
    );
    // A name that cannot resolve (.invalid never does, RFC 2606).
    let err = one_line_failure(&["inspect", "registry.invalid/a/b:v1"]);
    assert!(
        err.contains("cannot resolve the host name 'registry.invalid'"),
        "{err}"
    );
}

/// A pseudo-terminal for a child: what it writes to its terminal can be read, and what is
/// written here it reads as typed.
struct Pty {
    master: std::fs::File,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Pty {
    /// Spawns `cmd` with the pty as its controlling terminal, stdin and stderr (stdout
    /// stays a pipe, as in `bonded login | cat`).
    fn spawn(mut cmd: Command) -> (Pty, std::process::Child) {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two new descriptors into the out-parameters.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors are new and owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .stdout(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let master = std::fs::File::from(master);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut reader, into) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        (Pty { master, seen }, child)
    }

    /// Waits until the terminal shows `text`.
    fn expect(&self, text: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.seen.lock().unwrap().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "the terminal never showed {text:?}: {:?}",
                self.seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until the program has turned the terminal's echo off (as a password prompt
    /// does right after printing itself): typing before that would be echoed by the
    /// terminal, not by the program.
    fn expect_no_echo(&self) {
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // SAFETY: tcgetattr fills a termios for a descriptor we own.
            let echo = unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                assert_eq!(libc::tcgetattr(self.master.as_raw_fd(), &mut t), 0);
                t.c_lflag & libc::ECHO != 0
            };
            if !echo {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the program never turned echo off"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn type_line(&mut self, line: &str) {
        std::io::Write::write_all(&mut self.master, format!("{line}\r").as_bytes()).unwrap();
    }
}

#[test]
fn login_on_a_terminal_asks_for_the_username_and_the_password_without_echo() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_with_auth(&tmp.path().join("data"), &[]);
    let auth_file = tmp.path().join("auth.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
    cmd.args(["login", &s.addr])
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .env_remove("BONDED_LOG");
    let (mut pty, child) = Pty::spawn(cmd);
    pty.expect("Username: ");
    pty.type_line("admin");
    pty.expect("Password: ");
    pty.expect_no_echo();
    pty.type_line(ADMIN_PASSWORD);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let terminal = pty.seen.lock().unwrap().clone();
    assert!(out.status.success(), "{stdout} {terminal}");
    assert!(
        stdout.contains(&format!("logged in to {} as admin", s.addr)),
        "{stdout}"
    );
    assert!(
        !terminal.contains(ADMIN_PASSWORD),
        "the password is not echoed: {terminal:?}"
    );
    let kept = std::fs::read_to_string(&auth_file).unwrap();
    assert!(kept.contains(&s.addr), "{kept}");

    // With --username only the password is asked for.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonded"));
    cmd.args(["login", &s.addr, "--username", "admin"])
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .env_remove("BONDED_LOG");
    let (mut pty, child) = Pty::spawn(cmd);
    pty.expect("Password: ");
    assert!(!pty.seen.lock().unwrap().contains("Username"));
    pty.type_line("not-the-password");
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    pty.expect("wrong username or password");
}

#[test]
fn login_off_a_terminal_names_what_is_missing() {
    let s = Server::start();
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["login", &s.addr, "--username", "admin"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = output_text(&o);
    assert!(
        text.contains("give --password-stdin") && text.contains("not a terminal"),
        "{text}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["login", &s.addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output_text(&o).contains("give --username"),
        "{}",
        output_text(&o)
    );
}

#[tokio::test]
async fn messages_name_images_as_repo_colon_tag_and_repo_at_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example");
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--trust-policy",
            keys.join("trustpolicy.json").to_str().unwrap(),
            "--trust-store",
            keys.join("truststore").to_str().unwrap(),
        ],
    );
    // A digest that is not there.
    let missing = format!("sha256:{}", "0".repeat(64));
    let o = bonded(&["inspect", &format!("{}/prod/pod@{missing}", s.addr)]);
    let text = output_text(&o);
    assert!(!o.status.success());
    assert!(text.contains(&format!("prod/pod@{missing}")), "{text}");
    assert!(!text.contains("pod:sha256"), "{text}");

    // A tag the policy does not accept yet (unsigned).
    let layout = OciLayout::create(&d.join("layout"));
    let (cd, cn) = layout.blob(b"{}");
    let m = image_manifest((&cd, cn), &[], json!({}));
    let (md, mn) = layout.blob(&m);
    layout.index(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}));
    let o = bonded(&[
        "push",
        &format!("{}:latest", layout.path()),
        &format!("{}/prod/nosign:v1", s.addr),
    ]);
    let text = output_text(&o);
    // accepted (the policy's default "quarantine"), the tag waiting: the server's warning
    // is passed on, naming the image as it was named
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "warning: {}/prod/nosign:v1: tag waits for signatures",
            s.addr
        )),
        "{text}"
    );
    assert!(!text.contains("nosign@v1"), "{text}");
}

#[test]
fn bash_completes_commands_and_options_from_the_generated_script() {
    let script = ok(&bonded(&["completion", "bash"]));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bonded.bash");
    std::fs::write(&file, script).unwrap();
    // What bash does on TAB: set COMP_WORDS and COMP_CWORD, call the function.
    let complete = |words: &str| {
        let n = words.split_whitespace().count();
        let cword = if words.ends_with(' ') { n } else { n - 1 };
        let program = format!(
            "source '{}'; COMP_WORDS=({words}{}); COMP_CWORD={cword}; _bonded bonded \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            if words.ends_with(' ') { " ''" } else { "" },
        );
        let o = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", output_text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("bonded ver"), ["verify"]);
    assert!(complete("bonded verify --trust-s").contains(&"--trust-store".to_string()));
    let trust = complete("bonded trust ");
    for sub in ["show", "set-policy", "set-store", "versions"] {
        assert!(trust.contains(&sub.to_string()), "{trust:?}");
    }
}

#[test]
fn zsh_and_fish_get_scripts_of_their_own_form() {
    let zsh = ok(&bonded(&["completion", "zsh"]));
    assert!(
        zsh.starts_with("#compdef bonded"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    assert!(zsh.contains("--trust-store"));
    let fish = ok(&bonded(&["completion", "fish"]));
    assert!(fish.contains("complete -c bonded"));
    assert!(
        fish.contains("-l trust-store"),
        "fish completes long options by name"
    );
    let o = bonded(&["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        output_text(&o).contains("possible values"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn every_command_has_a_man_page() {
    use clap::CommandFactory;
    let tmp = tempfile::tempdir().unwrap();
    ok(&bonded(&["man", "--out", tmp.path().to_str().unwrap()]));
    fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        let name = if prefix.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{prefix}-{}", cmd.get_name())
        };
        out.push(format!("{name}.1"));
        for sub in cmd.get_subcommands() {
            pages(sub, &name, out);
        }
    }
    let mut expected = Vec::new();
    pages(&bonded::cli::Cli::command(), "", &mut expected);
    assert!(expected.len() > 30, "{expected:?}");
    for page in &expected {
        let text = std::fs::read_to_string(tmp.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is a man page");
    }
    let verify = std::fs::read_to_string(tmp.path().join("bonded-verify.1")).unwrap();
    assert!(verify.contains("trust\\-store"), "options are documented");
    // Without --out, bonded(1) itself on standard output.
    let top = ok(&bonded(&["man"]));
    assert!(
        top.contains(".TH bonded 1") && top.contains("bonded\\-verify(1)"),
        "{top}"
    );
}
