//! CNCF Distribution (Debian's docker-registry) as a test peer: a registry without the
//! referrers API.
#![allow(dead_code)]

use super::{client, sha256};
use std::process::{Child, Command, Stdio};

pub struct Distribution {
    child: Child,
    pub addr: String,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_distribution(dir: &std::path::Path) -> Distribution {
    let d = start_distribution_with(dir, "", "");
    for _ in 0..100 {
        if let Ok(r) = client().get(format!("http://{}/v2/", d.addr)).send().await {
            if r.status() == 200 {
                return d;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("docker-registry did not answer on {}", d.addr);
}

/// POST then PUT, which Distribution supports.
pub async fn put_blob(c: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let res = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let loc = res.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let res = c
        .put(format!("{loc}{sep}digest={d}"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    d
}

/// Starts Distribution with extra top-level YAML (e.g. `auth:`) and `http:` settings
/// (e.g. `tls:`), waiting only for its port to accept connections.
pub fn start_distribution_with(
    dir: &std::path::Path,
    http_extra: &str,
    extra: &str,
) -> Distribution {
    std::fs::create_dir_all(dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("distribution.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}{extra}",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry (apt-get install -y docker-registry)");
    let d = Distribution { child, addr };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&d.addr).is_ok() {
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("docker-registry did not start on {}", d.addr);
}
