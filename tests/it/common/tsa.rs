//! A real RFC 3161 time-stamping authority for tests: `openssl ts -reply` behind a small
//! HTTP endpoint, with a root and a TSA certificate (extended key usage timeStamping,
//! critical) made here by openssl. Independent of bonded's own code.
#![allow(dead_code)]

use super::openssl;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tsa {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    /// The root certificate (PEM) its timestamps lead to.
    pub root: PathBuf,
    dir: PathBuf,
}

impl Tsa {
    /// A TSA in `dir` named `name` (its root's CN is `<name> Root`). It serves from a
    /// thread and runtime of its own, so a test may block on a `bonded` subprocess that
    /// calls it; the thread ends with the test process.
    pub fn start(dir: &Path, name: &str) -> Tsa {
        Tsa::start_with(dir, name, None, None)
    }

    /// [`Tsa::start`], its certificate issued by the root `issuer` (certificate and key
    /// PEM files) instead of a root of its own, naming the CRL distribution point `cdp`.
    pub fn start_with(
        dir: &Path,
        name: &str,
        issuer: Option<(&Path, &Path)>,
        cdp: Option<&str>,
    ) -> Tsa {
        let dir = dir.join(format!("tsa-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut root = vec!["req", "-x509"];
        root.extend(ec);
        let root_subj = format!("/CN={name} Root");
        root.extend([
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            &root_subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &root);
        if let Some((cert, key)) = issuer {
            std::fs::copy(cert, dir.join("root.pem")).unwrap();
            std::fs::copy(key, dir.join("root.key")).unwrap();
        }
        let mut csr = vec!["req"];
        csr.extend(ec);
        let tsa_subj = format!("/CN={name}");
        csr.extend(["-keyout", "tsa.key", "-out", "tsa.csr", "-subj", &tsa_subj]);
        openssl(&dir, &csr);
        std::fs::write(
            dir.join("ext.cnf"),
            format!(
                "extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n{}",
                cdp.map(|u| format!("crlDistributionPoints=URI:{u}\n")).unwrap_or_default()
            ),
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-out",
                "tsa.pem",
                "-days",
                "365",
                "-extfile",
                "ext.cnf",
            ],
        );
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        std::fs::write(
            dir.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {d}\nserial = $dir/serial\ncrypto_device = builtin\n\
                 signer_cert = $dir/tsa.pem\ncerts = $dir/root.pem\nsigner_key = $dir/tsa.key\n\
                 signer_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\n\
                 accuracy = secs:1\nordering = yes\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", std_listener.local_addr().unwrap());
        let work = dir.clone();
        super::http::serve(std_listener, move |req| {
            let query = work.join(format!("q{}.tsq", req.n));
            let reply = work.join(format!("r{}.tsr", req.n));
            std::fs::write(&query, &req.body).unwrap();
            let out = Command::new("openssl")
                .args(["ts", "-reply", "-config"])
                .arg(work.join("ts.cnf"))
                .arg("-queryfile")
                .arg(&query)
                .arg("-out")
                .arg(&reply)
                .output();
            match out {
                Ok(o) if o.status.success() => (
                    "200 OK",
                    "application/timestamp-reply",
                    std::fs::read(reply).unwrap_or_default(),
                ),
                _ => ("500 Internal Server Error", "text/plain", Vec::new()),
            }
        });
        Tsa {
            url,
            root: dir.join("root.pem"),
            dir,
        }
    }

    /// The TSA's signing certificate (PEM).
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("tsa.pem")
    }

    /// A timestamp token (DER) over `signature`, asked of this TSA over HTTP with
    /// bonded's own request encoding.
    pub async fn token(&self, signature: &[u8], nonce: u64) -> Vec<u8> {
        bonded::install_crypto_provider();
        let reply = reqwest::Client::new()
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .body(bonded::trust::timestamp::request(signature, nonce))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bonded::trust::timestamp::token_der(&reply).unwrap()
    }

    /// Writes this TSA's root as `<truststore>/x509/tsa/<name>/root.pem`.
    pub fn write_store(&self, truststore: &Path, name: &str) {
        let d = truststore.join("x509/tsa").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(&self.root, d.join("root.pem")).unwrap();
    }
}
