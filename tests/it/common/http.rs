//! A small HTTP/1.1 server for the test peers (time-stamping authority, CRL and OCSP
//! responders): one request per connection, its head, then `Content-Length` bytes of
//! body, answered by a blocking handler (they run `openssl`). On a thread and runtime of
//! its own, so a test may block on a `bonded` subprocess that calls it; the thread ends
//! with the test process.
#![allow(dead_code)]

use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What the handler sees of a request.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// The connection's number, from 1 (for file names that must not collide).
    pub n: u64,
}

/// An answer: status line text ("200 OK"), content type, body.
pub type Answer = (&'static str, &'static str, Vec<u8>);

/// Serves `listener` (non-blocking already) with `handle`; returns at once.
pub fn serve(
    listener: std::net::TcpListener,
    handle: impl Fn(Request) -> Answer + Send + Sync + 'static,
) {
    let handle = Arc::new(handle);
    let serve = async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let mut n = 0u64;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let got = sock.read(&mut chunk).await.unwrap_or(0);
                    if got == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..got]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let got = sock.read(&mut chunk).await.unwrap_or(0);
                    if got == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..got]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut words = head.split_whitespace();
                let req = Request {
                    method: words.next().unwrap_or("").to_string(),
                    path: words.next().unwrap_or("/").to_string(),
                    body: buf[head_end..head_end + length].to_vec(),
                    n,
                };
                let (status, content_type, body) = tokio::task::spawn_blocking(move || handle(req))
                    .await
                    .unwrap();
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    };
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(serve)
    });
}

/// A blocking HTTP/1.1 server for hostile peers whose answers this module's `serve` cannot
/// write (a wrong `Content-Length`, endless chunks): keep-alive connections, each request's
/// head read and its headers skipped, then `answer(path, stream)` writes the whole
/// response itself; an error closes the connection. Returns the address it listens on.
pub fn serve_raw(
    answer: impl Fn(&str, &mut std::net::TcpStream) -> std::io::Result<()> + Send + Sync + 'static,
) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    if answer(&path, &mut stream).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
