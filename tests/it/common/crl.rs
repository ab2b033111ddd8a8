//! A real certificate authority that publishes revocation lists and answers OCSP, for
//! tests: openssl makes the root, the signing certificates (each naming its own CRL
//! distribution point and OCSP responder), the CRLs (`openssl ca -revoke` and `-gencrl`)
//! and the OCSP answers (`openssl ocsp -index`, signed by a responder certificate the CA
//! delegated to), and a small HTTP server started here serves them: `GET /NAME` the file
//! `www/NAME`, `POST /ocsp` an answer by the CA's responder, `POST /ocsp-rogue` one
//! signed by a responder another CA certified. Independent of bonded's own code.
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
         unique_subject = no\n[ any ]\ncountryName = optional\nstateOrProvinceName = optional\n\
         organizationName = optional\ncommonName = supplied\n",
        d = dir.display()
    )
}

impl CrlCa {
    /// A CA named `cn` (subject `C=US, ST=WA, O=Acme, CN=<cn>`) in `dir/<name>`, and an
    /// HTTP server for its lists on a thread and runtime of its own.
    pub fn start(dir: &Path, name: &str, cn: &str) -> CrlCa {
        let ca = CrlCa::create(dir, name, cn);
        std::fs::create_dir_all(ca.dir.join("www")).unwrap();
        // The responder the CA delegates OCSP to, and a rogue one another CA certified.
        ca.issue(
            "responder",
            "extendedKeyUsage=OCSPSigning\nnoCheck=ignored\n",
        );
        let other = CrlCa::create(&ca.dir, "rogue-ca", "Acme Root");
        other.issue("rogue", "extendedKeyUsage=OCSPSigning\nnoCheck=ignored\n");
        for f in ["rogue.pem", "rogue.key"] {
            std::fs::copy(other.dir.join(f), ca.dir.join(f)).unwrap();
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        serve(listener, ca.dir.clone());
        CrlCa { base, ..ca }
    }

    /// A certificate `CN=<cn>` issued by `openssl ca` (recorded in its database, so the
    /// responder knows it) with the extensions `ext` besides the code-signing leaf's.
    fn issue(&self, cn: &str, ext: &str) -> PathBuf {
        let d = &self.dir;
        let subj = format!("/C=US/ST=WA/O=Acme/CN={cn}");
        let (key, csr, pem, extf) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.pem"),
            format!("{cn}.ext"),
        );
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
        std::fs::write(
            d.join(&extf),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-in",
                &csr,
                "-out",
                &pem,
                "-startdate",
                &yesterday(),
                "-days",
                "30",
                "-extfile",
                &extf,
                "-notext",
                "-preserveDN",
            ],
        );
        d.join(pem)
    }

    /// A code-signing certificate `CN=<cn>` naming the CRL distribution point `cdp` and
    /// the OCSP responder `ocsp` where given, and its key: `(key.pem, chain.pem)`.
    pub fn signer_with(
        &self,
        cn: &str,
        cdp: Option<&str>,
        ocsp: Option<&str>,
    ) -> (PathBuf, PathBuf) {
        let mut ext = String::from("extendedKeyUsage=codeSigning\n");
        if let Some(u) = cdp {
            ext.push_str(&format!("crlDistributionPoints=URI:{u}\n"));
        }
        if let Some(u) = ocsp {
            ext.push_str(&format!("authorityInfoAccess=OCSP;URI:{u}\n"));
        }
        let pem = self.issue(cn, &ext);
        let chain = self.dir.join(format!("{cn}.chain.pem"));
        let mut text = std::fs::read_to_string(pem).unwrap();
        text.push_str(&std::fs::read_to_string(&self.root).unwrap());
        std::fs::write(&chain, text).unwrap();
        (self.dir.join(format!("{cn}.key")), chain)
    }

    /// A CA's files without a server (one whose lists are published by another's).
    pub fn create(dir: &Path, name: &str, cn: &str) -> CrlCa {
        let dir = dir.join(format!("ca-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(dir.join("ca.cnf"), config(&dir)).unwrap();
        // Self-signed by `openssl ca -selfsign`, which (unlike `req -x509`) can date it
        // from yesterday: a timestamp's accuracy then never reaches before it.
        let subj = format!("/C=US/ST=WA/O=Acme/CN={cn}");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.csr",
                "-subj",
                &subj,
            ],
        );
        std::fs::write(
            dir.join("root.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "ca",
                "-batch",
                "-selfsign",
                "-config",
                "ca.cnf",
                "-in",
                "root.csr",
                "-out",
                "root.pem",
                "-startdate",
                &yesterday(),
                "-days",
                "3650",
                "-extfile",
                "root.ext",
                "-notext",
                "-preserveDN",
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
        self.signer_with(cn, Some(cdp), None)
    }

    /// A code-signing certificate like [`Self::signer_with`] that `openssl ca` never
    /// recorded, so the responder does not know it.
    pub fn unrecorded_signer(&self, cn: &str, ocsp: &str) -> (PathBuf, PathBuf) {
        let d = &self.dir;
        let subj = format!("/C=US/ST=WA/O=Acme/CN={cn}");
        let (key, csr, pem, extf) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.pem"),
            format!("{cn}.ext"),
        );
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
        std::fs::write(
            d.join(&extf),
            format!("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nauthorityInfoAccess=OCSP;URI:{ocsp}\n"),
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
                &extf,
                "-set_serial",
                "0x7777",
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

/// A day ago as `openssl ca -startdate` takes it: a certificate issued now is valid from
/// then, so a timestamp made within its first second is inside its validity.
fn yesterday() -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Serves `GET /NAME` from `dir/www/NAME` (404 when absent), and `POST /ocsp` and
/// `POST /ocsp-rogue` by `openssl ocsp` over the CA's database in `dir`.
fn serve(listener: std::net::TcpListener, dir: PathBuf) {
    let serve = async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let mut n = 0u64;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let dir = dir.clone();
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
                let method = words.next().unwrap_or("").to_string();
                let path = words.next().unwrap_or("/").to_string();
                let name = path.trim_start_matches('/').to_string();
                let (status, body) = if method == "POST" && (name == "ocsp" || name == "ocsp-rogue")
                {
                    let q = dir.join(format!("q{n}.der"));
                    let r = dir.join(format!("r{n}.der"));
                    std::fs::write(&q, &buf[head_end..head_end + length]).unwrap();
                    let signer = if name == "ocsp" { "responder" } else { "rogue" };
                    let d = dir.clone();
                    let out = tokio::task::spawn_blocking(move || {
                        Command::new("openssl")
                            .args(["ocsp", "-index", "index.txt", "-CA", "root.pem", "-rsigner"])
                            .arg(format!("{signer}.pem"))
                            .arg("-rkey")
                            .arg(format!("{signer}.key"))
                            .arg("-reqin")
                            .arg(&q)
                            .arg("-respout")
                            .arg(&r)
                            .args(["-nmin", "60"])
                            .current_dir(&d)
                            .output()
                            .map(|o| (o, r))
                    })
                    .await
                    .unwrap();
                    match out {
                        Ok((o, r)) if o.status.success() => {
                            ("200 OK", std::fs::read(r).unwrap_or_default())
                        }
                        _ => ("500 Internal Server Error", Vec::new()),
                    }
                } else {
                    let file = (!name.contains('/') && !name.contains(".."))
                        .then(|| std::fs::read(dir.join("www").join(&name)).ok())
                        .flatten();
                    match file {
                        Some(b) => ("200 OK", b),
                        None => ("404 Not Found", Vec::new()),
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
