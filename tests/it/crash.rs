//! Crash safety: SIGKILL the server in the middle of large uploads, restart it on the same
//! data directory, and check that no partial blob is visible, the store is consistent, the
//! interrupted chunked session resumes from what was durably received, and a retried push
//! succeeds.

use crate::common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Deterministic pseudo-random bytes (xorshift), cheap to make in a debug build.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends the head of an HTTP request and the first `send` bytes of its body, then stalls.
fn start_request(addr: &str, head: &str, body: &[u8], send: usize) -> TcpStream {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(&body[..send]).unwrap();
    sock.flush().unwrap();
    sock
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().metadata().unwrap().len()).sum())
        .unwrap_or(0)
}

/// Every committed blob hashes to its own name.
fn assert_blob_store_consistent(data: &Path) {
    let root = data.join("blobs/sha256");
    let Ok(prefixes) = std::fs::read_dir(&root) else {
        return;
    };
    for prefix in prefixes {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap();
            let name = format!("sha256:{}", blob.file_name().to_string_lossy());
            assert_eq!(
                sha256(&std::fs::read(blob.path()).unwrap()),
                name,
                "blob file is whole"
            );
        }
    }
}

#[tokio::test]
async fn sigkill_mid_upload_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut s = Server::start_in(&data_dir, &[]);
    let c = client();

    // A chunked session with one complete chunk...
    let chunked = bytes(48 << 20, 7);
    let chunked_digest = sha256(&chunked);
    let res = c.post(s.v2("crash/blobs/uploads/")).send().await.unwrap();
    let loc = res.headers()["location"].to_str().unwrap().to_string();
    let first = 16 << 20;
    let res = c
        .patch(format!("{}{loc}", s.url))
        .header("Content-Range", format!("0-{}", first - 1))
        .body(chunked[..first].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // ...then a second chunk and a monolithic upload, both cut off part way.
    let mono = bytes(64 << 20, 11);
    let mono_digest = sha256(&mono);
    let _patch = start_request(
        &s.addr,
        &format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Range: {first}-{}\r\nContent-Length: {}\r\n\r\n",
            chunked.len() - 1,
            chunked.len() - first
        ),
        &chunked[first..],
        12 << 20,
    );
    let _post = start_request(
        &s.addr,
        &format!(
            "POST /v2/crash/blobs/uploads/?digest={mono_digest} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            mono.len()
        ),
        &mono,
        20 << 20,
    );
    // Kill once the server has written a good part of both bodies.
    let uploads = data_dir.join("uploads");
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir_bytes(&uploads) < (first as u64 + (8 << 20) + (8 << 20)) {
        assert!(
            Instant::now() < deadline,
            "server never received the partial bodies"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill9();

    assert_blob_store_consistent(&data_dir);
    let s = Server::start_in(&data_dir, &[]);
    assert_blob_store_consistent(&data_dir);
    for d in [&mono_digest, &chunked_digest] {
        let res = c
            .head(s.v2(&format!("crash/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "no partial blob is visible");
    }
    // The interrupted monolithic upload's file was swept; only the session's file remains.
    let left: Vec<_> = std::fs::read_dir(&uploads).unwrap().collect();
    assert_eq!(left.len(), 1, "orphan upload files are removed at start");

    // The session reports what it durably holds and resumes from there.
    let res = c.get(format!("{}{loc}", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let range = res.headers()["range"].to_str().unwrap().to_string();
    let held: usize = range.trim_start_matches("0-").parse::<usize>().unwrap() + 1;
    assert!(
        held >= first && held < chunked.len(),
        "session holds {held} bytes"
    );
    let res = c
        .put(format!("{}{loc}?digest={chunked_digest}", s.url))
        .header("Content-Range", format!("{held}-{}", chunked.len() - 1))
        .body(chunked[held..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "resumed session completes");

    // The retried monolithic push succeeds and serves the right bytes.
    let res = c
        .post(s.v2(&format!("crash/blobs/uploads/?digest={mono_digest}")))
        .body(mono.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for (d, want) in [(&mono_digest, mono.len()), (&chunked_digest, chunked.len())] {
        let got = c
            .get(s.v2(&format!("crash/blobs/{d}")))
            .send()
            .await
            .unwrap();
        let got = got.bytes().await.unwrap();
        assert_eq!(got.len(), want);
        assert_eq!(&sha256(&got), d);
    }
    assert_blob_store_consistent(&data_dir);
}
