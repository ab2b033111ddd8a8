//! A real S3-compatible server for the tests: moto's server (PyPI `moto[server]`), which
//! implements multipart uploads with S3's rules (parts of at least 5 MiB but the last,
//! ETags, completion, abort). Started once per test process on a free loopback port;
//! found as `BONDED_MOTO_SERVER` or `moto_server` on PATH. Without it, S3 tests skip and
//! say so, unless `BONDED_REQUIRE_S3` is set (CI sets it).
//!
//! `BONDED_TEST_BLOB_STORE=s3` makes every test server keep its blobs in S3 (a bucket per
//! data directory, so a restarted server finds its blobs again): CI runs the registry,
//! trust, auth and audit tests once that way.

use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "bonded-test-key";
pub const SECRET_KEY: &str = "bonded-test-secret";

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BONDED_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// The endpoint (`http://127.0.0.1:PORT`) of the shared S3 server, or `None` (after saying
/// why) when there is none and none is required.
pub fn endpoint() -> Option<&'static str> {
    static ENDPOINT: OnceLock<Option<String>> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let Some(bin) = moto_binary() else {
                if std::env::var_os("BONDED_REQUIRE_S3").is_some() {
                    panic!("BONDED_REQUIRE_S3 is set but moto_server is not found (set BONDED_MOTO_SERVER or put it on PATH)");
                }
                return None;
            };
            Some(start(&bin))
        })
        .as_deref()
}

/// Says the test is skipped when there is no S3 server; `Some(endpoint)` otherwise.
pub fn endpoint_or_skip(test: &str) -> Option<&'static str> {
    let e = endpoint();
    if e.is_none() {
        eprintln!("skipped: {test}: moto_server not found (pip install 'moto[server]')");
    }
    e
}

fn start(bin: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Err(e) = super::spawn_for_life(cmd) {
        panic!("cannot start moto_server: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoint = format!("http://127.0.0.1:{port}");
    while Instant::now() < deadline {
        if request("GET", &endpoint, "/").is_ok() {
            return endpoint;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not answer on {endpoint} within 30 s");
}

/// One plain HTTP/1.1 request; moto accepts unsigned requests for bucket set-up and listings.
/// Returns the status and the body.
pub fn request(method: &str, endpoint: &str, path: &str) -> std::io::Result<(u16, String)> {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// Creates `bucket` (already existing is fine).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let (status, body) = request("PUT", endpoint, &format!("/{bucket}")).expect("create bucket");
    assert!(
        status == 200 || status == 409,
        "creating bucket {bucket}: {status} {body}"
    );
}

/// A bucket name of its own for `data_dir`: the same directory always maps to the same
/// bucket, so a restarted server finds its blobs.
pub fn bucket_for(data_dir: &Path) -> String {
    let h = hex::encode(Sha256::digest(data_dir.as_os_str().as_encoded_bytes()));
    format!("t-{}", &h[..24])
}

/// Every key in `bucket` under `prefix` (ListObjectsV2, all pages).
pub fn keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/{bucket}?list-type=2&prefix={prefix}");
        if let Some(t) = &token {
            path.push_str(&format!("&continuation-token={t}"));
        }
        let (status, body) = request("GET", endpoint, &path).expect("list bucket");
        assert_eq!(status, 200, "{body}");
        out.extend(between(&body, "<Key>", "</Key>"));
        match between(&body, "<NextContinuationToken>", "</NextContinuationToken>").pop() {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

/// Multipart uploads not completed nor aborted in `bucket`.
pub fn open_multipart_uploads(endpoint: &str, bucket: &str) -> Vec<String> {
    let (status, body) = request("GET", endpoint, &format!("/{bucket}?uploads")).expect("list");
    assert_eq!(status, 200, "{body}");
    between(&body, "<UploadId>", "</UploadId>")
}

fn between(text: &str, open: &str, close: &str) -> Vec<String> {
    text.split(open)
        .skip(1)
        .filter_map(|s| s.split_once(close).map(|(v, _)| v.to_string()))
        .collect()
}

/// The flags and environment that put a server's blobs in S3.
pub fn configure(cmd: &mut Command, endpoint: &str, bucket: &str, prefix: &str) {
    create_bucket(endpoint, bucket);
    cmd.args(["--blob-store", &format!("s3://{bucket}/{prefix}")])
        .args(["--s3-endpoint", endpoint, "--s3-allow-http"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1");
}

/// Whether every test server keeps its blobs in S3 (`BONDED_TEST_BLOB_STORE=s3`).
pub fn all_servers_on_s3() -> bool {
    std::env::var("BONDED_TEST_BLOB_STORE").is_ok_and(|v| v == "s3")
}
