//! Blobs in an S3-compatible store (`--blob-store s3://`), against a real S3 server (moto).
//! What must hold, from the OCI distribution spec and S3's multipart rules: chunks of any
//! size (S3 wants 5 MiB parts) make the blob the client sent; a blob is visible only once
//! whole and verified; a refused request leaves the session as it was; a session outlives
//! the server process that began it; nothing is left in the bucket once a session ends.

use crate::common::{self, s3, sha256, sha512, Server};
use std::time::Duration;

const MIB: usize = 1 << 20;

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible, reproducible, no dependency.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct S3Server {
    server: Server,
    endpoint: &'static str,
    bucket: String,
    _tmp: tempfile::TempDir,
}

fn start(endpoint: &'static str, tmp: tempfile::TempDir) -> S3Server {
    let dir = tmp.path().join("data");
    let bucket = s3::bucket_for(&dir);
    let mut cmd = Server::command(&dir, &["--open"]);
    if !s3::all_servers_on_s3() {
        s3::configure(&mut cmd, endpoint, &bucket, "reg");
    }
    let server = Server::spawn(cmd, &dir);
    S3Server {
        server,
        endpoint,
        bucket,
        _tmp: tmp,
    }
}

/// The prefix `Server::command` or `start` gave the server's keys.
fn prefix() -> &'static str {
    if s3::all_servers_on_s3() {
        "bonded"
    } else {
        "reg"
    }
}

async fn begin(c: &reqwest::Client, s: &Server, repo: &str) -> String {
    let res = c
        .post(s.v2(&format!("{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.headers()["location"].to_str().unwrap().to_string()
}

async fn patch(c: &reqwest::Client, s: &Server, at: &str, offset: usize, chunk: &[u8]) -> String {
    let res = c
        .patch(format!("{}{at}", s.url))
        .header("Content-Type", "application/octet-stream")
        .header(
            "Content-Range",
            format!("{offset}-{}", offset + chunk.len() - 1),
        )
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "chunk at {offset}");
    let range = res.headers()["range"].to_str().unwrap().to_string();
    assert_eq!(range, format!("0-{}", offset + chunk.len() - 1));
    res.headers()["location"].to_str().unwrap().to_string()
}

fn with_digest(at: &str, digest: &str) -> String {
    let sep = if at.contains('?') { '&' } else { '?' };
    format!("{at}{sep}digest={digest}")
}

async fn upload_range(c: &reqwest::Client, s: &Server, at: &str) -> Option<String> {
    let res = c.get(format!("{}{at}", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 204, "upload status of {at}");
    res.headers()
        .get("range")
        .map(|r| r.to_str().unwrap().to_string())
}

#[tokio::test]
async fn chunks_smaller_than_a_part_make_the_blob_which_appears_only_whole() {
    let Some(endpoint) = s3::endpoint_or_skip("s3 chunked upload") else {
        return;
    };
    let s = start(endpoint, tempfile::tempdir().unwrap());
    let c = common::client();
    // 21 MiB + 5 bytes in chunks of 1 MiB + 7 (not aligned to anything): two whole 8 MiB
    // parts and a tail, all from chunks far below S3's 5 MiB part minimum.
    let blob = random_bytes(21 * MIB + 5, 7);
    let digest = sha256(&blob);
    let mut at = begin(&c, &s.server, "lib/big").await;
    for (i, chunk) in blob.chunks(MIB + 7).enumerate() {
        at = patch(&c, &s.server, &at, i * (MIB + 7), chunk).await;
    }
    // Before the commit: not pullable, no key under blobs/, the parts in an open upload.
    let head = c
        .head(s.server.v2(&format!("lib/big/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    let blob_keys = s3::keys(s.endpoint, &s.bucket, &format!("{}/blobs/", prefix()));
    assert!(blob_keys.is_empty(), "{blob_keys:?}");
    assert_eq!(s3::open_multipart_uploads(s.endpoint, &s.bucket).len(), 1);

    let res = c
        .put(format!("{}{}", s.server.url, with_digest(&at, &digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let got = c
        .get(s.server.v2(&format!("lib/big/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
    // A range across the first part boundary.
    let (from, to) = (8 * MIB - 10, 8 * MIB + 9);
    let part = c
        .get(s.server.v2(&format!("lib/big/blobs/{digest}")))
        .header("Range", format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &blob[from..=to]);

    // Exactly one object, at the blob's key; no session objects, no open multipart upload.
    let hex = digest.trim_start_matches("sha256:");
    let all = s3::keys(s.endpoint, &s.bucket, prefix());
    assert_eq!(
        all,
        vec![format!("{}/blobs/sha256/{}/{hex}", prefix(), &hex[..2])]
    );
    assert!(s3::open_multipart_uploads(s.endpoint, &s.bucket).is_empty());

    // A monolithic push and a sha512 one go the same way.
    let small = random_bytes(3000, 9);
    let d = common::push_blob(&c, &s.server, "lib/big", &small).await;
    let got = c
        .get(s.server.v2(&format!("lib/big/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), small.as_slice());
    let d512 = sha512(&small);
    let res = c
        .post(
            s.server
                .v2(&format!("lib/big/blobs/uploads/?digest={d512}")),
        )
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let wrong = c
        .post(
            s.server
                .v2(&format!("lib/big/blobs/uploads/?digest={d512}")),
        )
        .body(b"other bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(common::error_code(wrong).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn a_refused_last_chunk_is_cut_off_and_the_session_goes_on() {
    let Some(endpoint) = s3::endpoint_or_skip("s3 refused chunk") else {
        return;
    };
    let s = start(endpoint, tempfile::tempdir().unwrap());
    let c = common::client();
    let blob = random_bytes(10 * MIB + 100, 11);
    let digest = sha256(&blob);
    let (first, last) = blob.split_at(9 * MIB);
    let at = begin(&c, &s.server, "lib/cut").await;
    let at = patch(&c, &s.server, &at, 0, first).await;
    let wrong = sha256(b"not these bytes");
    // The completing PUT carrying the last chunk, claiming `digest`.
    let finish = |digest: String| {
        let url = format!("{}{}", s.server.url, with_digest(&at, &digest));
        let range = format!("{}-{}", first.len(), blob.len() - 1);
        let (c, body) = (c.clone(), last.to_vec());
        async move {
            c.put(url)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", range)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        let res = finish(wrong.clone()).await;
        assert_eq!(common::error_code(res).await, "DIGEST_INVALID");
        // As the first chunk left it, so the client can send the last chunk again.
        assert_eq!(
            upload_range(&c, &s.server, &at).await.as_deref(),
            Some(format!("0-{}", first.len() - 1).as_str())
        );
    }
    let res = finish(digest.clone()).await;
    assert_eq!(res.status(), 201);
    let got = c
        .get(s.server.v2(&format!("lib/cut/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());

    // A cancelled session (with a part already sent) leaves nothing behind.
    let at = begin(&c, &s.server, "lib/cut").await;
    let at = patch(&c, &s.server, &at, 0, first).await;
    assert_eq!(s3::open_multipart_uploads(s.endpoint, &s.bucket).len(), 1);
    let res = c
        .delete(format!("{}{at}", s.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let uploads = s3::keys(s.endpoint, &s.bucket, &format!("{}/uploads/", prefix()));
    assert!(uploads.is_empty(), "{uploads:?}");
    assert!(s3::open_multipart_uploads(s.endpoint, &s.bucket).is_empty());
}

#[tokio::test]
async fn an_upload_outlives_the_server_that_began_it() {
    let Some(endpoint) = s3::endpoint_or_skip("s3 upload after a crash") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = start(endpoint, tmp);
    let c = common::client();
    let blob = random_bytes(20 * MIB, 13);
    let digest = sha256(&blob);
    let acknowledged = 10 * MIB + 3;
    let at = begin(&c, &s.server, "lib/crash").await;
    let at = patch(&c, &s.server, &at, 0, &blob[..acknowledged]).await;

    // A second chunk is on its way (its first 6 MiB sent, enough for a part) when the
    // server is killed.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let url = format!("{}{at}", s.server.url);
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move {
            c.patch(url)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{acknowledged}-{}", 20 * MIB - 1))
                .body(body)
                .send()
                .await
        }
    });
    for piece in blob[acknowledged..acknowledged + 6 * MIB].chunks(MIB) {
        tx.send(Ok(piece.to_vec())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.server.kill9();
    drop(tx);
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed server answered"
    );

    // Another process over the same database and bucket: the session is where the last
    // acknowledged chunk left it, and goes on to the right blob.
    let mut cmd = Server::command(&dir, &["--open"]);
    if !s3::all_servers_on_s3() {
        s3::configure(&mut cmd, s.endpoint, &s.bucket, "reg");
    }
    let again = Server::spawn(cmd, &dir);
    assert_eq!(
        upload_range(&c, &again, &at).await.as_deref(),
        Some(format!("0-{}", acknowledged - 1).as_str())
    );
    let at = patch(&c, &again, &at, acknowledged, &blob[acknowledged..]).await;
    let res = c
        .put(format!("{}{}", again.url, with_digest(&at, &digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let got = c
        .get(again.v2(&format!("lib/crash/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn an_unreachable_store_makes_the_server_unready_not_dead() {
    let Some(_) = s3::endpoint_or_skip("s3 readiness") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = Server::own_command(&dir, &["--open"]);
    cmd.args(["--blob-store", "s3://nowhere-bucket/x"])
        .args([
            "--s3-endpoint",
            &format!("http://{closed}"),
            "--s3-allow-http",
        ])
        .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("AWS_REGION", "us-east-1");
    let s = Server::spawn(cmd, &dir);
    let c = common::client();
    let alive = c.get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert_eq!(alive.status(), 200);
    let ready = c.get(format!("{}/readyz", s.url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let v: serde_json::Value = serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
    assert_eq!(v["database"]["status"], "ok", "{v}");
    assert_ne!(v["blobStore"]["status"], "ok", "{v}");

    // A plain-HTTP endpoint without --s3-allow-http is refused at start, saying what to do.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(["serve", "--open", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("other"))
        .args(["--blob-store", "s3://ok-bucket"])
        .args(["--s3-endpoint", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--s3-allow-http"), "{err}");
}
