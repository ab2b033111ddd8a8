//! What a client can hold on the server before it has made a request: slowloris heads,
//! idle and stalled connections, connection counts per address and in all, open files,
//! and bodies sent before the request is authorised. Raw sockets, as an attacker uses.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn addr(s: &Server) -> SocketAddr {
    s.addr.parse().unwrap()
}

/// A connection from `source` (any 127.0.0.0/8 address: Linux routes them all to lo).
fn connect_from(s: &Server, source: Ipv4Addr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::V4(source), 0).into())
        .unwrap();
    socket.connect(&addr(s).into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn local(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Reads until the server closes the connection (or `limit` passes); returns what came.
fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (bool, String) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (true, String::from_utf8_lossy(&got).into()),
        }
    }
    (false, String::from_utf8_lossy(&got).into())
}

/// One request on a keep-alive connection; returns the status line.
fn request(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((headers, body)) = text.split_once("\r\n\r\n") {
            let len: usize = headers
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return headers.lines().next().unwrap().to_string();
            }
        }
    }
}

const PING: &str = "GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n";

#[test]
fn slowloris_heads_and_idle_connections_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_in(&tmp.path().join("data"), &["--header-read-timeout", "2"]);
    // Twenty clients trickling a head that never ends, five that send nothing at all.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = connect_from(&s, local(1));
            c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n")
                .unwrap();
            c
        })
        .collect();
    let silent: Vec<TcpStream> = (0..5).map(|_| connect_from(&s, local(1))).collect();
    // A keep-alive client that made one request, then went quiet.
    let mut kept = connect_from(&s, local(1));
    assert_eq!(request(&mut kept, PING), "HTTP/1.1 200 OK");
    let start = Instant::now();
    let mut open = slow.len();
    while open > 0 && start.elapsed() < Duration::from_secs(12) {
        open = 0;
        for c in slow.iter_mut() {
            // one more header byte every 300 ms
            if c.write_all(b"X").is_ok() {
                open += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        open, 0,
        "slowloris connections outlived the header read timeout"
    );
    for mut c in silent.into_iter().chain([kept]) {
        let (closed, _) = read_to_close(&mut c, Duration::from_secs(8));
        assert!(
            closed,
            "an idle connection outlived the header read timeout"
        );
    }
    // Others were served all along.
    let mut c = connect_from(&s, local(2));
    assert_eq!(request(&mut c, PING), "HTTP/1.1 200 OK");
}

#[test]
fn a_stalled_body_is_closed_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_in(
        &tmp.path().join("data"),
        &["--idle-timeout", "2", "--header-read-timeout", "30"],
    );
    // A chunk that promises a MiB and sends ten bytes.
    let mut c2 = connect_from(&s, local(1));
    let location = {
        let mut c3 = connect_from(&s, local(1));
        c3.write_all(b"POST /v2/stall/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let (_, text) = read_to_close(&mut c3, Duration::from_secs(3));
        text.lines()
            .find_map(|l| l.strip_prefix("location: ").map(str::to_string))
            .unwrap()
    };
    c2.write_all(
        format!("PATCH {location} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n0123456789")
            .as_bytes(),
    )
    .unwrap();
    let (closed, _) = read_to_close(&mut c2, Duration::from_secs(10));
    assert!(
        closed,
        "a stalled body kept its connection past the idle timeout"
    );
    // The refused chunk left the session as it was: empty, so it completes as the empty
    // blob (ten bytes kept would make this a digest mismatch).
    let empty = sha256(b"");
    let mut c4 = connect_from(&s, local(1));
    c4.write_all(
        format!("PUT {location}?digest={empty} HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let (_, text) = read_to_close(&mut c4, Duration::from_secs(5));
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
}

#[test]
fn connections_are_limited_per_address_and_in_all() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_in(
        &tmp.path().join("data"),
        &[
            "--max-connections",
            "30",
            "--max-connections-per-address",
            "10",
        ],
    );
    // Each held connection made a request, so the server has certainly counted it.
    let hold = |n: u8, count: usize| -> Vec<TcpStream> {
        (0..count)
            .map(|_| {
                let mut c = connect_from(&s, local(n));
                assert_eq!(request(&mut c, PING), "HTTP/1.1 200 OK");
                c
            })
            .collect()
    };
    let first = hold(1, 10);
    // The eleventh from the same address: 503 and closed.
    let mut extra = connect_from(&s, local(1));
    let (closed, text) = read_to_close(&mut extra, Duration::from_secs(5));
    assert!(closed && text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("too many connections from 127.0.0.1"),
        "{text}"
    );
    // Another address is served.
    let second = hold(2, 10);
    let _third = hold(3, 9);
    let mut last = connect_from(&s, local(4));
    assert_eq!(request(&mut last, PING), "HTTP/1.1 200 OK");
    // Thirty open: the registry is full for everyone.
    let mut over = connect_from(&s, local(5));
    let (closed, text) = read_to_close(&mut over, Duration::from_secs(5));
    assert!(closed && text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("connection limit"), "{text}");
    // Closing some frees their places.
    drop(first);
    drop(second);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect_from(&s, local(1));
    assert_eq!(request(&mut again, PING), "HTTP/1.1 200 OK");
}

/// (soft, hard) limit on open files of a process.
fn fd_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    // "Max open files <soft> <hard> files"
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn the_open_file_limit_is_raised_at_start() {
    use std::os::unix::process::CommandExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Started as a default shell would start it: soft limit 256, hard limit whatever it is.
    let mut cmd = Server::command(&data, &["--open"]);
    unsafe {
        cmd.pre_exec(|| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            l.rlim_cur = l.rlim_max.min(256);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let s = Server::spawn(cmd, &data);
    let (soft, hard) = fd_limits(s.pid());
    assert_eq!(soft, hard, "soft limit not raised to the hard one");
    assert_ne!(soft, "256");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        .unwrap()
}

#[test]
fn bodies_are_not_read_before_the_request_is_authorised() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "dev", "developer", "acme/*");
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("dev:{}", password("dev")),
    );
    // Anonymous, and a logged-in non-administrator: the answer comes before the body.
    for (path, auth, status) in [
        ("/bonded/v1/account/tokens", String::new(), "401"),
        ("/bonded/v1/account/password", String::new(), "401"),
        ("/bonded/v1/accounts", String::new(), "401"),
        (
            "/bonded/v1/accounts",
            format!("Authorization: Basic {basic}\r\n"),
            "403",
        ),
        (
            "/bonded/v1/trust/policy",
            format!("Authorization: Basic {basic}\r\n"),
            "403",
        ),
    ] {
        let mut c = connect_from(&s, local(1));
        let method = if path.ends_with("policy") || path.ends_with("password") {
            "PUT"
        } else {
            "POST"
        };
        c.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: registry\r\n{auth}Content-Length: 1048576\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        c.write_all(&[b'x'; 4096]).unwrap();
        let (_, text) = read_to_close(&mut c, Duration::from_secs(5));
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {path}: no answer before the body was sent: {text:?}"
        );
    }
    // Two hundred stalled anonymous requests, each 256 KiB into a 1 MiB body, hold no
    // memory in the server.
    let before = rss_kib(s.pid());
    let stalled: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut c = connect_from(&s, local(10 + (i % 50) as u8));
            c.write_all(b"POST /bonded/v1/account/tokens HTTP/1.1\r\nHost: registry\r\nContent-Length: 1048576\r\n\r\n")
                .unwrap();
            c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = c.write_all(&vec![b'x'; 256 << 10]);
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib(s.pid()).saturating_sub(before);
    drop(stalled);
    assert!(
        grown < 24 << 10,
        "200 stalled anonymous bodies grew the server by {grown} KiB"
    );
}

#[test]
fn bodies_read_whole_must_arrive_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--body-timeout", "2"]);
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("admin:{ADMIN_PASSWORD}"),
    );
    for (method, path) in [
        ("PUT", "/bonded/v1/trust/policy"),
        ("PUT", "/v2/acme/app/manifests/v1"),
        ("POST", "/token"),
    ] {
        let mut c = connect_from(&s, local(1));
        c.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: registry\r\nAuthorization: Basic {basic}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1000\r\n\r\n{{\"sch")
                .as_bytes(),
        )
        .unwrap();
        let (_, text) = read_to_close(&mut c, Duration::from_secs(8));
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "{method} {path}: {text:?}"
        );
    }
    // Nothing changed: no policy, no manifest.
    let admin = as_user("admin", ADMIN_PASSWORD);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let trust: serde_json::Value = serde_json::from_slice(
            &admin
                .get(format!("{}/bonded/v1/trust", s.url))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(trust["policy"].is_null(), "{trust}");
        let res = admin
            .get(s.v2("acme/app/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    });
}

/// One upload chunk trickling in (a byte every 300 ms, never idle long enough to be cut
/// off) must not stop the sweeper that expires other, idle upload sessions.
#[test]
fn a_trickling_chunk_does_not_stall_the_upload_sweeper() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_in(&tmp.path().join("data"), &["--upload-ttl", "2"]);
    let start_upload = || {
        let mut c = connect_from(&s, local(1));
        c.write_all(b"POST /v2/trickle/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (_, text) = read_to_close(&mut c, Duration::from_secs(5));
        text.lines()
            .find_map(|l| l.strip_prefix("location: ").map(str::to_string))
            .unwrap()
    };
    let busy = start_upload();
    let mut chunk = connect_from(&s, local(1));
    chunk
        .write_all(
            format!("PATCH {busy} HTTP/1.1\r\nHost: registry\r\nContent-Length: 1000\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for _ in 0..40 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || chunk.write_all(b"x").is_err()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    // By now the busy session looks idle (untouched for its TTL) to the sweeper.
    std::thread::sleep(Duration::from_secs(3));
    let idle = start_upload();
    let status = |location: &str| {
        let mut c = connect_from(&s, local(2));
        c.write_all(
            format!("GET {location} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let (_, text) = read_to_close(&mut c, Duration::from_secs(5));
        text.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(status(&idle), "HTTP/1.1 204 No Content");
    let start = Instant::now();
    while status(&idle) != "HTTP/1.1 404 Not Found" {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "an idle session outlived its TTL while another session's chunk trickled"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
}
