//! `bonded sign`: a Notary Project signature over an image's manifest digest, pushed as an
//! OCI 1.1 referrer in the form notation itself produces.

use crate::client::{
    descriptor_json, ClientOptions, ImageRef, RegistryClient, EMPTY_CONFIG, EMPTY_MEDIA_TYPE,
};
use crate::oci::{media_type, Digest, Reference};
use crate::trust::certs::{self, CertInfo};
use crate::trust::envelope::TargetArtifact;
use crate::trust::sign::{sign, SignRequest, SigningKey};
use crate::trust::store::parse_certificates;
use crate::trust::{JWS_ENVELOPE, NOTARY_SIGNATURE, THUMBPRINT_ANNOTATION};
use serde_json::json;
use std::path::PathBuf;
use time::{Duration, OffsetDateTime};

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Image to sign: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST
    pub reference: String,
    /// Private key, PEM: PKCS#8 (P-256, P-384, RSA 2048/3072/4096; for cosign also
    /// Ed25519), SEC1 or PKCS#1; or, for Notary signatures, a key in a PKCS#11 token by
    /// RFC 7512 URI: 'pkcs11:token=T;object=LABEL?module-path=MODULE.so'
    #[arg(long)]
    pub key: PathBuf,
    /// Certificate chain, PEM, leaf first, ending with the root (Notary signatures; for
    /// cosign, certificate mode: the leaf and chain go into the signature's annotations)
    #[arg(long, required_if_eq_any([("signature_format", "jws"), ("signature_format", "cose")]))]
    pub cert: Option<PathBuf>,
    /// jws: a Notary Project JWS signature (what notation makes); cose: the same as
    /// COSE_Sign1 (`application/cose`); cosign: a key-based
    /// cosign simple-signing signature (what `cosign sign --key` makes), as an OCI 1.1
    /// referrer where the registry has the referrers API, else under the
    /// `sha256-<hex>.sig` tag
    #[arg(long, value_enum, default_value = "jws")]
    pub signature_format: SignatureFormat,
    /// Days until the signature expires (io.cncf.notary.expiry); none by default
    #[arg(long)]
    pub expiry_days: Option<u32>,
    /// An RFC 3161 time-stamping authority to countersign the signature (Notary JWS), so it
    /// keeps verifying after the certificate expires, as `notation sign --timestamp-url`
    #[arg(long, requires = "timestamp_root_cert")]
    pub timestamp_url: Option<String>,
    /// The root certificate (PEM) the authority's timestamps must lead to; the timestamp is
    /// verified against it before the signature is pushed
    #[arg(long, requires = "timestamp_url")]
    pub timestamp_root_cert: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOptions,
}

/// An RFC 3161 authority to timestamp signatures with, and the root its answers must
/// lead to.
pub struct Timestamper {
    url: String,
    roots: Vec<Vec<u8>>,
    http: reqwest::Client,
}

/// Largest timestamp response read.
const MAX_TIMESTAMP_RESPONSE: usize = 64 * 1024;

impl Timestamper {
    pub fn new(url: &str, root: &PathBuf) -> Result<Timestamper, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("--timestamp-url {url}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("--timestamp-url {url} must be http or https"));
        }
        let roots = parse_certificates(&read(root, "timestamp root certificate")?)
            .map_err(|e| format!("{}: {e}", root.display()))?;
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Timestamper {
            url: url.to_string(),
            roots,
            http,
        })
    }

    /// A timestamp token over `signature`, verified against the root and checked to fall
    /// within every certificate of `chain`'s validity.
    pub async fn stamp(&self, signature: &[u8], chain: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        use crate::trust::timestamp;
        let nonce: u64 = rand::random();
        let res = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .header("Accept", "application/timestamp-reply")
            .body(timestamp::request(signature, nonce))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the time-stamping authority {} is unreachable: {e}",
                    self.url
                )
            })?;
        if !res.status().is_success() {
            return Err(format!(
                "the time-stamping authority {} answered {}",
                self.url,
                res.status()
            ));
        }
        let body = crate::client::body_within(res, MAX_TIMESTAMP_RESPONSE)
            .await
            .map_err(|e| format!("reading the answer of {}: {e}", self.url))?
            .ok_or("the timestamp response is too large")?;
        let want: Vec<u8> = nonce
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        if timestamp::nonce_of(&body) != Some(want) {
            return Err(
                "the timestamp response does not answer this request (its nonce differs)".into(),
            );
        }
        let authorities: Vec<timestamp::Authority> = self
            .roots
            .iter()
            .map(|r| timestamp::Authority {
                chain: vec![r.clone()],
                valid: None,
            })
            .collect();
        let stamped = timestamp::verify_with_accuracy(&body, signature, &authorities)
            .map_err(|e| format!("the timestamp from {} does not verify: {e}", self.url))?;
        let (earliest, latest) = stamped.range();
        for der in chain {
            let c = CertInfo::parse(0, der).map_err(|e| e.to_string())?;
            if earliest < c.not_before || latest > c.not_after {
                return Err(format!(
                    "the timestamp ({}) is outside the validity of certificate '{}'",
                    crate::timefmt::rfc3339(stamped.gen_time),
                    c.subject
                ));
            }
        }
        timestamp::token_der(&body)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureFormat {
    Jws,
    /// A Notary Project COSE_Sign1 signature (`notation sign --signature-format cose`)
    Cose,
    Cosign,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The private key of a PEM file: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`, what
/// `openssl ecparam -genkey` writes; an `EC PARAMETERS` block beside it is skipped) or
/// PKCS#1 (`RSA PRIVATE KEY`, `openssl genrsa -traditional`).
fn private_key(path: &PathBuf, stdin_taken: bool) -> Result<SigningKey, String> {
    if let Some(uri) = path.to_str().filter(|p| p.starts_with("pkcs11:")) {
        return super::pkcs11::open(uri, stdin_taken);
    }
    let bytes = read(path, "key")?;
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .filter_map(Result::ok)
        .collect();
    let at = |e: crate::trust::sign::SignError| format!("{}: {e}", path.display());
    for block in &blocks {
        match block.label.as_str() {
            "PRIVATE KEY" => return SigningKey::from_pkcs8(&block.contents).map_err(at),
            "EC PRIVATE KEY" => return SigningKey::from_sec1(&block.contents).map_err(at),
            "RSA PRIVATE KEY" => return SigningKey::from_pkcs1(&block.contents).map_err(at),
            "ENCRYPTED PRIVATE KEY" => {
                let password = key_password(path, "BONDED_KEY_PASSWORD", stdin_taken)?;
                let der = decrypt_pkcs8(&block.contents, password.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                return SigningKey::from_pkcs8(&der).map_err(at);
            }
            _ => {}
        }
    }
    let found: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
    Err(format!(
        "{} holds no private key ({}): give a PEM file with a PRIVATE KEY (PKCS#8), EC PRIVATE KEY (SEC1) or RSA PRIVATE KEY (PKCS#1) block",
        path.display(),
        if found.is_empty() {
            "no PEM blocks at all".to_string()
        } else {
            format!("its blocks: {}", found.join(", "))
        }
    ))
}

/// Most work an encrypted key may ask for: PBKDF2 iterations, and scrypt memory.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_SCRYPT_MEMORY: u64 = 64 << 20;

/// An encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt, then AES) decrypted with `password`
/// to PKCS#8 DER; refused unread when its key derivation would take more than
/// [`MAX_PBKDF2_ITERATIONS`] or [`MAX_SCRYPT_MEMORY`].
fn decrypt_pkcs8(der: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    use pkcs8::der::Decode as _;
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der)
        .map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
    if let pkcs8::pkcs5::EncryptionScheme::Pbes2(p) = &info.encryption_algorithm {
        match &p.kdf {
            pkcs8::pkcs5::pbes2::Kdf::Pbkdf2(k) if k.iteration_count > MAX_PBKDF2_ITERATIONS => {
                return Err(format!(
                    "its key derivation asks for {} PBKDF2 iterations; at most {MAX_PBKDF2_ITERATIONS}",
                    k.iteration_count
                ))
            }
            pkcs8::pkcs5::pbes2::Kdf::Scrypt(k)
                if (128u64 * u64::from(k.block_size)).saturating_mul(k.cost_parameter)
                    > MAX_SCRYPT_MEMORY =>
            {
                return Err(format!(
                    "its scrypt parameters would take more than {} MiB",
                    MAX_SCRYPT_MEMORY >> 20
                ))
            }
            _ => {}
        }
    }
    let doc = info.decrypt(password).map_err(|_| {
        "the password is wrong, or the key is encrypted in a way bonded cannot read (PBES2 with PBKDF2 or scrypt and AES is)".to_string()
    })?;
    Ok(doc.as_bytes().to_vec())
}

/// The password of an encrypted key file: from the environment variable `var`, else asked
/// on the terminal, else read from standard input unless the registry's password comes
/// from there. Never a flag: flags are seen by every user of the machine.
fn key_password(path: &std::path::Path, var: &str, stdin_taken: bool) -> Result<String, String> {
    match std::env::var(var) {
        Ok(p) => Ok(p),
        Err(_) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            rpassword::prompt_password(format!("Enter password for {}: ", path.display()))
                .map_err(|e| format!("reading the key's password: {e}"))
        }
        Err(_) if !stdin_taken => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("reading the key's password from standard input: {e}"))?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
        Err(_) => Err(format!(
            "{} is encrypted and standard input carries the registry's password: give the key's password in {var}",
            path.display()
        )),
    }
}

/// A signer: key and chain, checked to belong together and to be valid now.
pub struct Signer {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
    subject: String,
    thumbprints: Vec<String>,
    timestamper: Option<Timestamper>,
    /// COSE_Sign1 instead of JWS.
    cose: bool,
}

impl Signer {
    /// `stdin_taken`: standard input carries the registry's password, so an encrypted
    /// key's password cannot come from there too.
    pub fn load(
        key_path: &PathBuf,
        cert_path: &PathBuf,
        stdin_taken: bool,
    ) -> Result<Signer, String> {
        let key = private_key(key_path, stdin_taken)?;
        let chain = parse_certificates(&read(cert_path, "certificate chain")?)
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
        let parsed =
            certs::parse_chain(&chain).map_err(|e| format!("{}: {e}", cert_path.display()))?;
        let leaf: &CertInfo = &parsed[0];
        if !key
            .matches(&leaf.public_key)
            .map_err(|e| format!("{}: {e}", key_path.display()))?
        {
            return Err(format!(
                "the key in {} does not match the certificate '{}' in {}",
                key_path.display(),
                leaf.subject,
                cert_path.display()
            ));
        }
        let now = OffsetDateTime::now_utc();
        if let Some(c) = parsed.iter().find(|c| !c.valid_at(now)) {
            return Err(format!(
                "certificate '{}' is not valid now (valid {} to {})",
                c.subject,
                crate::timefmt::rfc3339(c.not_before),
                crate::timefmt::rfc3339(c.not_after)
            ));
        }
        let thumbprints = chain
            .iter()
            .map(|d| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d)))
            .collect();
        Ok(Signer {
            key,
            subject: leaf.subject.to_string(),
            chain,
            thumbprints,
            timestamper: None,
            cose: false,
        })
    }

    /// Signs COSE_Sign1 envelopes (`application/cose`) instead of JWS.
    pub fn with_cose(mut self, cose: bool) -> Signer {
        self.cose = cose;
        self
    }

    /// Countersigns every signature with an RFC 3161 timestamp from `t`.
    pub fn with_timestamper(mut self, t: Timestamper) -> Signer {
        self.timestamper = Some(t);
        self
    }

    /// Signs the manifest `digest` (of `media_type` and `size`) in `image`'s repository and
    /// pushes the signature, unless this certificate has signed it already. Returns the
    /// signature's digest, or `None` when there was nothing to do.
    pub async fn sign_and_push(
        &self,
        client: &RegistryClient,
        image: &ImageRef,
        media_type: &str,
        digest: &Digest,
        size: usize,
        expiry_days: Option<u32>,
    ) -> Result<Option<Digest>, String> {
        let repo = &image.repository;
        for r in client
            .referrers(repo, digest, Some(NOTARY_SIGNATURE))
            .await
            .map_err(|e| e.to_string())?
        {
            let Ok((m, _, _)) = client
                .manifest(repo, &Reference::Digest(r.digest.clone()))
                .await
            else {
                continue;
            };
            let Ok(m) = serde_json::from_slice::<serde_json::Value>(&m) else {
                continue;
            };
            let existing: Vec<String> = m["annotations"][THUMBPRINT_ANNOTATION]
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            if existing.first().map(|t| t.to_ascii_lowercase()) == self.thumbprints.first().cloned()
            {
                return Ok(None);
            }
        }
        let now = OffsetDateTime::now_utc();
        let target = TargetArtifact {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size: size as u64,
            annotations: None,
            artifact_type: None,
        };
        let request = SignRequest {
            target: &target,
            chain: &self.chain,
            signing_time: now,
            expiry: expiry_days.map(|d| now + Duration::days(d.into())),
            signing_agent: concat!("bonded/", env!("CARGO_PKG_VERSION")),
        };
        let (envelope, envelope_type) = if self.cose {
            (
                crate::trust::sign::sign_cose(&self.key, &request),
                crate::trust::envelope::COSE_ENVELOPE,
            )
        } else {
            (sign(&self.key, &request), JWS_ENVELOPE)
        };
        let envelope = envelope.map_err(|e| e.to_string())?;
        let envelope = match &self.timestamper {
            None => envelope,
            Some(t) => {
                let parsed = if self.cose {
                    crate::trust::envelope::parse_cose(&envelope)
                } else {
                    crate::trust::envelope::parse(&envelope)
                }
                .map_err(|e| e.to_string())?;
                let token = t.stamp(parsed.signature_bytes(), &self.chain).await?;
                if self.cose {
                    crate::trust::sign::with_timestamp_cose(&envelope, &token)
                } else {
                    crate::trust::sign::with_timestamp(&envelope, &token)
                }
                .map_err(|e| e.to_string())?
            }
        };
        let envelope_digest = client
            .push_blob(repo, &envelope)
            .await
            .map_err(|e| e.to_string())?;
        let config_digest = client
            .push_blob(repo, EMPTY_CONFIG)
            .await
            .map_err(|e| e.to_string())?;
        let signature = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": NOTARY_SIGNATURE,
            "config": descriptor_json(EMPTY_MEDIA_TYPE, &config_digest, EMPTY_CONFIG.len()),
            "layers": [descriptor_json(envelope_type, &envelope_digest, envelope.len())],
            "subject": descriptor_json(media_type, digest, size),
            "annotations": {
                THUMBPRINT_ANNOTATION: serde_json::to_string(&self.thumbprints).expect("json"),
                "org.opencontainers.image.created": crate::timefmt::rfc3339(now),
            },
        });
        let signature = serde_json::to_vec(&signature).expect("json");
        let signature_digest = Digest::of(crate::oci::Algorithm::Sha256, &signature);
        let has_referrers_api = client
            .put_manifest(
                repo,
                &signature_digest.to_string(),
                media_type::OCI_MANIFEST,
                &signature,
            )
            .await
            .map_err(|e| e.to_string())?;
        if !has_referrers_api {
            let mut entry =
                descriptor_json(media_type::OCI_MANIFEST, &signature_digest, signature.len());
            entry["artifactType"] = json!(NOTARY_SIGNATURE);
            update_referrers_tag(client, &image.repository, digest, vec![entry]).await?;
        }
        Ok(Some(signature_digest))
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn algorithm(&self) -> &'static str {
        self.key.algorithm().as_str()
    }
}

/// On a bonded registry, the manifest a tag waits for (pushed unsigned under an enforcing
/// trust policy), when the tag names no published manifest.
async fn waiting_manifest(client: &RegistryClient, image: &ImageRef) -> Option<Digest> {
    let Reference::Tag(tag) = &image.reference else {
        return None;
    };
    let report: crate::wire::PendingReport = client
        .bonded_get_admin(&format!("repositories/{}/pending", image.repository), None)
        .await
        .ok()?;
    report
        .waiting_tags
        .iter()
        .find(|w| w.tag == tag.as_str())
        .and_then(|w| w.digest.parse().ok())
}

pub async fn run(args: &SignArgs) -> Result<(), String> {
    let image: ImageRef = args.reference.parse()?;
    if args.signature_format == SignatureFormat::Cosign {
        return cosign_sign(args, &image).await;
    }
    let cert = args
        .cert
        .as_ref()
        .ok_or("a Notary signature needs --cert (the signer's certificate chain)")?;
    let signer = Signer::load(&args.key, cert, args.client.password_stdin)?;
    let signer = match (&args.timestamp_url, &args.timestamp_root_cert) {
        (Some(url), Some(root)) => signer.with_timestamper(Timestamper::new(url, root)?),
        _ => signer,
    }
    .with_cose(args.signature_format == SignatureFormat::Cose);
    let client =
        RegistryClient::connect(&image.registry, &args.client, Some(&image.repository), true)
            .await
            .map_err(|e| e.to_string())?;
    // A tag waiting for signatures on a bonded registry (pushed unsigned under an enforcing
    // trust policy) names, to its pushers, the manifest it waits for: the latest push of
    // the tag, and what signing it means, even while an older published one is served.
    let (bytes, manifest_type, digest) = resolve_for_signing(&client, &image).await?;
    let repo = &image.repository;
    match signer
        .sign_and_push(
            &client,
            &image,
            &manifest_type,
            &digest,
            bytes.len(),
            args.expiry_days,
        )
        .await?
    {
        Some(sig) => println!(
            "signed {}/{repo}@{digest} as '{}' ({}); signature {sig}",
            image.registry,
            signer.subject(),
            signer.algorithm()
        ),
        None => println!(
            "{}/{repo}@{digest} is already signed by '{}'; nothing to do",
            image.registry,
            signer.subject()
        ),
    }
    Ok(())
}

/// For registries without the referrers API: the `sha256-<hex>` tag holds an index of the
/// subject's referrers, which whoever pushes a referrer keeps up to date (as notation
/// does). `entries` (descriptors) are added unless the index lists their digest already.
pub(super) async fn update_referrers_tag(
    client: &RegistryClient,
    repo: &crate::oci::RepositoryName,
    subject: &Digest,
    entries: Vec<serde_json::Value>,
) -> Result<(), String> {
    let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
    let tag_ref: Reference = tag
        .parse()
        .map_err(|e: crate::oci::NameError| e.to_string())?;
    let mut index = match client.manifest(repo, &tag_ref).await {
        Ok((bytes, _, _)) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("referrers tag {tag} is not an index: {e}"))?,
        Err(crate::client::ClientError::NotFound(_)) => {
            json!({ "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [] })
        }
        Err(e) => return Err(e.to_string()),
    };
    let list = index["manifests"]
        .as_array_mut()
        .ok_or_else(|| format!("referrers tag {tag} has no manifests list"))?;
    let before = list.len();
    for entry in entries {
        if !list.iter().any(|m| m["digest"] == entry["digest"]) {
            list.push(entry);
        }
    }
    if list.len() == before {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&index).expect("json");
    client
        .put_manifest(repo, &tag, media_type::OCI_INDEX, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// What a tag resolves to for signing: on a bonded registry, the manifest a tag waits for
/// when it waits (see [`waiting_manifest`]); else the tag's manifest.
async fn resolve_for_signing(
    client: &RegistryClient,
    image: &ImageRef,
) -> Result<(Vec<u8>, String, Digest), String> {
    let reference = match waiting_manifest(client, image).await {
        Some(waiting) => {
            eprintln!(
                "note: {image} waits for signatures; signing the manifest it waits for, {waiting}"
            );
            Reference::Digest(waiting)
        }
        None => image.reference.clone(),
    };
    client
        .manifest(&image.repository, &reference)
        .await
        .map_err(|e| e.to_string())
}

/// A private key to make cosign signatures with: PKCS#8 PEM, or cosign's encrypted key
/// (`ENCRYPTED SIGSTORE PRIVATE KEY`, `ENCRYPTED COSIGN PRIVATE KEY`) decrypted with the
/// password from `COSIGN_PASSWORD`, as cosign takes it, else asked on the terminal, else
/// read from standard input unless the registry's password comes from there.
fn cosign_private_key(path: &PathBuf, stdin_taken: bool) -> Result<rcgen::KeyPair, String> {
    if path.to_str().is_some_and(|p| p.starts_with("pkcs11:")) {
        return Err(
            "a PKCS#11 key signs Notary signatures (--signature-format jws or cose); a cosign signature needs a key file"
                .into(),
        );
    }
    use crate::trust::cosign;
    let bytes = read(path, "key")?;
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .filter_map(Result::ok)
        .collect();
    let unusable = |e: String| {
        format!(
            "{}: not a private key cosign signatures can be made with (PKCS#8 ECDSA P-256/P-384, RSA, Ed25519): {e}",
            path.display()
        )
    };
    if let Some(enc) = blocks
        .iter()
        .find(|b| cosign::ENCRYPTED_KEY_LABELS.contains(&b.label.as_str()))
    {
        let password = key_password(path, "COSIGN_PASSWORD", stdin_taken)?;
        let der = cosign::decrypt_private_key(&enc.contents, password.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        return rcgen::KeyPair::try_from(der.as_slice()).map_err(|e| {
            unusable(format!(
                "it decrypts to something other than a PKCS#8 key, which cosign refuses too ({e})"
            ))
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| unusable("not a PEM file".into()))?;
    rcgen::KeyPair::from_pem(&text).map_err(|e| unusable(e.to_string()))
}

/// `bonded sign --signature-format cosign`: a simple-signing payload for the digest, signed
/// with the key as cosign signs (ECDSA ASN.1 DER with the curve's hash, RSA PKCS#1 v1.5
/// SHA-256, Ed25519), pushed as cosign pushes it.
async fn cosign_sign(args: &SignArgs, image: &ImageRef) -> Result<(), String> {
    use crate::trust::cosign;
    let key = cosign_private_key(&args.key, args.client.password_stdin)?;
    let public =
        cosign::PublicKey::from_spki(&rcgen::PublicKeyData::subject_public_key_info(&key))?;
    // Certificate mode: the leaf (first) and its chain (the rest) as cosign's annotations;
    // the leaf must be the key's.
    let certificate = match &args.cert {
        None => None,
        Some(path) => {
            let ders = parse_certificates(&read(path, "certificate chain")?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if ders.len() > cosign::MAX_CHAIN {
                return Err(format!(
                    "{}: more than {} certificates",
                    path.display(),
                    cosign::MAX_CHAIN
                ));
            }
            use x509_parser::prelude::FromDer as _;
            let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(&ders[0])
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if leaf.public_key().raw != public.spki.as_slice() {
                return Err(format!(
                    "{} is not the certificate of {}: their public keys differ",
                    path.display(),
                    args.key.display()
                ));
            }
            let pem = |der: &[u8]| {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(der);
                let lines: Vec<&str> = b64
                    .as_bytes()
                    .chunks(64)
                    .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
                    .collect();
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    lines.join("\n")
                )
            };
            let chain: String = ders[1..].iter().map(|d| pem(d)).collect();
            Some((pem(&ders[0]), chain))
        }
    };
    let client =
        RegistryClient::connect(&image.registry, &args.client, Some(&image.repository), true)
            .await
            .map_err(|e| e.to_string())?;
    let repo = &image.repository;
    let (_, _, digest) = resolve_for_signing(&client, image).await?;
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": { "docker-reference": format!("{}/{repo}", image.registry) },
            "image": { "docker-manifest-digest": digest.to_string() },
            "type": cosign::PAYLOAD_TYPE,
        },
        "optional": null,
    }))
    .expect("json");
    let signature = rcgen::SigningKey::sign(&key, &payload).map_err(|e| e.to_string())?;
    // What is pushed is checked with the verifier first: a key rcgen signs with in another
    // form than cosign's would be caught here, not by the next verifier.
    let algorithm = public
        .verify(&payload, &signature)
        .ok_or("the signature made does not verify with the key's own public key")?;
    use base64::Engine as _;
    let payload_digest = Digest::of(crate::oci::Algorithm::Sha256, &payload);
    let leaf_pem = certificate.as_ref().map(|(leaf, _)| leaf.as_str());
    if signed_by(
        &client,
        image,
        &digest,
        &payload_digest,
        &payload,
        &public,
        leaf_pem,
    )
    .await?
    {
        println!(
            "{}/{repo}@{digest} is already signed by cosign key {}; nothing to do",
            image.registry,
            public.fingerprint()
        );
        return Ok(());
    }
    let signature_b64 = base64::engine::general_purpose::STANDARD.encode(&signature);
    let payload_digest = client
        .push_blob(repo, &payload)
        .await
        .map_err(|e| e.to_string())?;
    let mut layer = descriptor_json(cosign::SIMPLE_SIGNING, &payload_digest, payload.len());
    layer["annotations"] = json!({ cosign::SIGNATURE_ANNOTATION: signature_b64 });
    if let Some((leaf, chain)) = &certificate {
        layer["annotations"][cosign::CERTIFICATE_ANNOTATION] = json!(leaf);
        if !chain.is_empty() {
            layer["annotations"][cosign::CHAIN_ANNOTATION] = json!(chain);
        }
    }
    let pushed = if client
        .has_referrers_api(repo, &digest)
        .await
        .map_err(|e| e.to_string())?
    {
        let (subject_bytes, subject_type, _) = client
            .manifest(repo, &Reference::Digest(digest.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let config = b"{}";
        let config_digest = client
            .push_blob(repo, config)
            .await
            .map_err(|e| e.to_string())?;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": cosign::COSIGN_ARTIFACT,
            "config": descriptor_json(cosign::COSIGN_ARTIFACT, &config_digest, config.len()),
            "layers": [layer],
            "subject": descriptor_json(&subject_type, &digest, subject_bytes.len()),
        });
        let bytes = serde_json::to_vec(&m).expect("json");
        let d = Digest::of(crate::oci::Algorithm::Sha256, &bytes);
        client
            .put_manifest(repo, &d.to_string(), media_type::OCI_MANIFEST, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        format!("referrer {d}")
    } else {
        // The tag form: one manifest under sha256-<hex>.sig, a layer per signature; this
        // one is appended to those already there, as cosign appends.
        let tag = format!("sha256-{}.sig", digest.hex());
        let tag_ref: Reference = tag
            .parse()
            .map_err(|e: crate::oci::NameError| e.to_string())?;
        let mut layers: Vec<serde_json::Value> = match client.manifest(repo, &tag_ref).await {
            Ok((bytes, _, _)) => {
                let old: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{tag} is not a manifest: {e}"))?;
                old["layers"].as_array().cloned().unwrap_or_default()
            }
            Err(crate::client::ClientError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        if layers.len() >= cosign::MAX_LAYERS {
            return Err(format!(
                "{tag} already holds {} signatures, the most a cosign signature manifest may hold",
                layers.len()
            ));
        }
        layers.push(layer);
        let diff_ids: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .expect("json");
        let config_digest = client
            .push_blob(repo, &config)
            .await
            .map_err(|e| e.to_string())?;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": descriptor_json("application/vnd.oci.image.config.v1+json", &config_digest, config.len()),
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&m).expect("json");
        client
            .put_manifest(repo, &tag, media_type::OCI_MANIFEST, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        format!("tag {tag}")
    };
    println!(
        "signed {}/{repo}@{digest} with cosign key {} ({algorithm}); signature {pushed}",
        image.registry,
        public.fingerprint()
    );
    Ok(())
}

/// Whether a cosign signature of `digest` by `key` (with `certificate`, or none) over this
/// very payload is already in the registry (a referrer or a layer of the `.sig` tag): signing again would add a second
/// signature that counts for nothing (ECDSA signatures differ each time).
async fn signed_by(
    client: &RegistryClient,
    image: &ImageRef,
    digest: &Digest,
    payload_digest: &Digest,
    payload: &[u8],
    key: &crate::trust::cosign::PublicKey,
    certificate: Option<&str>,
) -> Result<bool, String> {
    use base64::Engine as _;
    let found = super::verify::fetch_cosign_signatures(client, &image.repository, digest)
        .await
        .map_err(|e| e.to_string())?;
    for (_, sigs) in found {
        for l in sigs.layers {
            let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(l.signature.trim())
            else {
                continue;
            };
            // the same key, and the same certificate (or none): a signature in another
            // mode names another identity, so it is not the same signature
            if &l.payload.digest == payload_digest
                && l.certificate.as_deref().map(str::trim) == certificate.map(str::trim)
                && key.verify(payload, &sig).is_some()
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
