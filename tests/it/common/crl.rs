//! A real certificate authority that publishes revocation lists, for tests: openssl makes
//! the root, the signing certificates (each naming its own CRL distribution point) and the
//! CRLs (`openssl ca -revoke` and `-gencrl`), and a small HTTP server started here serves
//! them. Independent of bonded's own code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub struct CrlCa {
    /// The directory of the CA's files.
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT`, where `www/NAME` is served as `/NAME`.
    pub base: String,
    /// The root certificate (PEM).
    pub root: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> String {
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

/// The `openssl ca` configuration of a CA in `dir`.
fn config(dir: &Path) -> String {
    format!(
        "[ ca ]\ndefault_ca = ca1\n[ ca1 ]\ndir = {d}\ndatabase = $dir/index.txt\nserial = $dir/serial\n\
         crlnumber = $dir/crlnumber\ncertificate = $dir/root.pem\nprivate_key = $dir/root.key\n\
         new_certs_dir = $dir\ndefault_md = sha256\ndefault_crl_days = 7\npolicy = any\n\
         unique_subject = no\n[ any ]\ncommonName = supplied\n",
        d = dir.display()
    )
}

impl CrlCa {
    /// A CA named `cn` (subject `C=US, ST=WA, O=Acme, CN=<cn>`) in `dir/<name>`, and an
    /// HTTP server for its lists on a thread and runtime of its own.
    pub fn start(dir: &Path, name: &str, cn: &str) -> CrlCa {
        let ca = CrlCa::create(dir, name, cn);
        let www = ca.dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        serve(listener, www);
        CrlCa { base, ..ca }
    }

    /// A CA's files without a server (one whose lists are published by another's).
    pub fn create(dir: &Path, name: &str, cn: &str) -> CrlCa {
        let dir = dir.join(format!("ca-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(dir.join("ca.cnf"), config(&dir)).unwrap();
        let subj = format!("/C=US/ST=WA/O=Acme/CN={cn}");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-days",
                "3650",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        CrlCa {
            root: dir.join("root.pem"),
            dir,
            base: String::new(),
        }
    }

    /// A code-signing certificate `CN=<cn>` whose CRL distribution point is `cdp`, and
    /// its key: `(key.pem, chain.pem)` (leaf then root).
    pub fn signer(&self, cn: &str, cdp: &str) -> (PathBuf, PathBuf) {
        let d = &self.dir;
        let subj = format!("/C=US/ST=WA/O=Acme/CN={cn}");
        let key = format!("{cn}.key");
        let csr = format!("{cn}.csr");
        let pem = format!("{cn}.pem");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
        );
        let ext = format!("{cn}.ext");
        std::fs::write(
            d.join(&ext),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=codeSigning\ncrlDistributionPoints=URI:{cdp}\n"
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-out",
                &pem,
                "-days",
                "30",
                "-extfile",
                &ext,
                "-CAcreateserial",
            ],
        );
        let chain = d.join(format!("{cn}.chain.pem"));
        let mut text = std::fs::read_to_string(d.join(&pem)).unwrap();
        text.push_str(&std::fs::read_to_string(&self.root).unwrap());
        std::fs::write(&chain, text).unwrap();
        (d.join(key), chain)
    }

    /// Revokes `cn`'s certificate with `reason` (an `openssl ca -crl_reason` name), or
    /// as compromised at `compromised` (`YYYYMMDDHHMMSSZ`, the entry's invalidity date).
    pub fn revoke(&self, cn: &str, reason: &str, compromised: Option<&str>) {
        let pem = format!("{cn}.pem");
        let mut args = vec!["ca", "-config", "ca.cnf", "-revoke", &pem];
        match compromised {
            Some(t) => args.extend(["-crl_compromise", t]),
            None => args.extend(["-crl_reason", reason]),
        }
        openssl(&self.dir, &args);
    }

    /// Generates a CRL of this CA's revocations, current for `seconds`, and writes it (DER)
    /// to `www/<name>` of `publisher` (this CA or another).
    pub fn publish(&self, publisher: &CrlCa, name: &str, seconds: u32) {
        let secs = seconds.to_string();
        openssl(
            &self.dir,
            &[
                "ca", "-config", "ca.cnf", "-gencrl", "-crlsec", &secs, "-out", "crl.pem",
            ],
        );
        let www = publisher.dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        let out = www.join(name);
        openssl(
            &self.dir,
            &[
                "crl",
                "-in",
                "crl.pem",
                "-outform",
                "DER",
                "-out",
                out.to_str().unwrap(),
            ],
        );
    }

    /// The URL of `www/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Writes the root as `<truststore>/x509/ca/<name>/root.pem`.
    pub fn write_store(&self, truststore: &Path, name: &str) {
        let d = truststore.join("x509/ca").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(&self.root, d.join("root.pem")).unwrap();
    }
}

/// Serves `GET /NAME` from `www/NAME` (404 when absent), one connection at a time per task.
fn serve(listener: std::net::TcpListener, www: PathBuf) {
    let serve = async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let www = www.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let got = sock.read(&mut chunk).await.unwrap_or(0);
                    if got == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..got]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let name = path.trim_start_matches('/');
                let file = (!name.contains('/') && !name.contains(".."))
                    .then(|| std::fs::read(www.join(name)).ok())
                    .flatten();
                let (status, body) = match file {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
