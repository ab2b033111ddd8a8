//! A real certificate authority that publishes revocation lists and answers OCSP, for
//! tests: openssl makes the root, the signing certificates (each naming its own CRL
//! distribution point and OCSP responder), the CRLs (`openssl ca -revoke` and `-gencrl`)
//! and the OCSP answers (`openssl ocsp -index`, signed by a responder certificate the CA
//! delegated to), and a small HTTP server started here serves them: `GET /NAME` the file
//! `www/NAME`, `POST /ocsp` an answer by the CA's responder, `POST /ocsp-rogue` one
//! signed by a responder another CA certified, `POST /ocsp-noeku` one signed by a
//! certificate of the CA not certified for OCSP signing, `POST /ocsp-other` the CA's
//! responder's answer about another (good) certificate than the one asked about.
//! Independent of bonded's own code.
#![allow(dead_code)]

use super::openssl;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct CrlCa {
    /// The directory of the CA's files.
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT`, where `www/NAME` is served as `/NAME`.
    pub base: String,
    /// The root certificate (PEM).
    pub root: PathBuf,
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
        // A certificate of the CA's own that may not sign OCSP answers (no OCSPSigning),
        // and a good certificate whose status `/ocsp-other` answers whatever is asked.
        ca.issue("noeku", "extendedKeyUsage=codeSigning\n");
        ca.issue("decoy", "extendedKeyUsage=codeSigning\n");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        serve(listener, ca.dir.clone());
        CrlCa { base, ..ca }
    }

    /// A certificate `CN=<cn>` issued by `openssl ca` (recorded in its database, so the
    /// responder knows it) with the extensions `ext` besides the code-signing leaf's.
    fn issue(&self, cn: &str, ext: &str) -> PathBuf {
        self.issue_by(cn, ext, true)
    }

    /// A key, a request and a leaf certificate `CN=<cn>` with `ext` besides the leaf's
    /// basic constraints and key usage: issued by `openssl ca` when `recorded` (in the
    /// database the responder answers from), else by `openssl x509 -req`, which records
    /// nothing.
    fn issue_by(&self, cn: &str, ext: &str, recorded: bool) -> PathBuf {
        let d = &self.dir;
        let (key, csr, pem, extf) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.pem"),
            format!("{cn}.ext"),
        );
        ec_request(d, &key, &csr, cn);
        std::fs::write(
            d.join(&extf),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"
            ),
        )
        .unwrap();
        let start = yesterday();
        let args: Vec<&str> = if recorded {
            vec![
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-in",
                &csr,
                "-out",
                &pem,
                "-startdate",
                &start,
                "-days",
                "30",
                "-extfile",
                &extf,
                "-notext",
                "-preserveDN",
            ]
        } else {
            vec![
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
            ]
        };
        openssl(d, &args);
        d.join(pem)
    }

    /// `(key.pem, chain.pem)` of `cn`, the chain being its certificate `pem` then the root.
    fn with_chain(&self, cn: &str, pem: PathBuf) -> (PathBuf, PathBuf) {
        let chain = self.dir.join(format!("{cn}.chain.pem"));
        let mut text = std::fs::read_to_string(pem).unwrap();
        text.push_str(&std::fs::read_to_string(&self.root).unwrap());
        std::fs::write(&chain, text).unwrap();
        (self.dir.join(format!("{cn}.key")), chain)
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
        self.with_chain(cn, pem)
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
        ec_request(&dir, "root.key", "root.csr", cn);
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
        let ext = format!("extendedKeyUsage=codeSigning\nauthorityInfoAccess=OCSP;URI:{ocsp}\n");
        let pem = self.issue_by(cn, &ext, false);
        self.with_chain(cn, pem)
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

/// A P-256 key (`key`, unencrypted PEM) and a request for it (`csr`) with the subject
/// `C=US, ST=WA, O=Acme, CN=<cn>`, in `dir`.
fn ec_request(dir: &Path, key: &str, csr: &str, cn: &str) {
    let subj = format!("/C=US/ST=WA/O=Acme/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            &subj,
        ],
    );
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
    super::http::serve(listener, move |req| {
        let name = req.path.trim_start_matches('/').to_string();
        let signer = match name.as_str() {
            "ocsp" | "ocsp-other" => Some("responder"),
            "ocsp-rogue" => Some("rogue"),
            "ocsp-noeku" => Some("noeku"),
            _ => None,
        };
        if let (true, Some(signer)) = (req.method == "POST", signer) {
            let q = dir.join(format!("q{}.der", req.n));
            let r = dir.join(format!("r{}.der", req.n));
            if name == "ocsp-other" {
                // The question it answers is not the one asked.
                openssl(
                    &dir,
                    &[
                        "ocsp",
                        "-sha256",
                        "-issuer",
                        "root.pem",
                        "-cert",
                        "decoy.pem",
                        "-no_nonce",
                        "-reqout",
                        q.to_str().unwrap(),
                    ],
                );
            } else {
                std::fs::write(&q, &req.body).unwrap();
            }
            let out = Command::new("openssl")
                .args(["ocsp", "-index", "index.txt", "-CA", "root.pem", "-rsigner"])
                .arg(format!("{signer}.pem"))
                .arg("-rkey")
                .arg(format!("{signer}.key"))
                .arg("-reqin")
                .arg(&q)
                .arg("-respout")
                .arg(&r)
                .args(["-nmin", "60"])
                .current_dir(&dir)
                .output();
            return match out {
                Ok(o) if o.status.success() => (
                    "200 OK",
                    "application/ocsp-response",
                    std::fs::read(r).unwrap_or_default(),
                ),
                _ => ("500 Internal Server Error", "text/plain", Vec::new()),
            };
        }
        let file = (!name.contains('/') && !name.contains(".."))
            .then(|| std::fs::read(dir.join("www").join(&name)).ok())
            .flatten();
        match file {
            Some(b) => ("200 OK", "application/pkix-crl", b),
            None => ("404 Not Found", "text/plain", Vec::new()),
        }
    });
}
