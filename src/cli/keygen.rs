//! `bonded keygen`: signing material made with rcgen: a root CA, intermediate CAs and signer
//! certificates with the key usages the Notary Project requires.

use crate::trust::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A self-signed root CA (goes into a trust store)
    Root,
    /// An intermediate CA issued by --issuer
    Intermediate,
    /// A code-signing certificate issued by --issuer
    Signer,
    /// A cosign key pair (PREFIX.key, PREFIX.pub), no certificate: for
    /// `bonded sign --signature-format cosign` and a `cosign:` trust store
    Cosign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Curve {
    P256,
    P384,
    /// Ed25519: cosign keys only (the Notary Project does not allow it)
    Ed25519,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    pub kind: Kind,
    /// Subject, e.g. "C=US, ST=WA, O=Acme, CN=alice" (C, ST and O are required, as trust
    /// policies require them of identities); not for cosign keys
    #[arg(long, required_if_eq_any([("kind", "root"), ("kind", "intermediate"), ("kind", "signer")]))]
    pub subject: Option<String>,
    /// Output prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pem (the
    /// certificate followed by its issuers' chain)
    #[arg(long)]
    pub out: PathBuf,
    /// The issuing CA's prefix (its PREFIX.key and PREFIX.pem), for intermediate and signer
    #[arg(long)]
    pub issuer: Option<PathBuf>,
    /// The key's algorithm
    #[arg(long, alias = "algorithm", value_enum, default_value = "p256")]
    pub curve: Curve,
    /// Days the certificate is valid, from now (1 to 36500: a certificate of 0 days would be
    /// expired when made)
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut p = prefix.as_os_str().to_owned();
    p.push(".");
    p.push(ext);
    PathBuf::from(p)
}

fn distinguished_name(subject: &str) -> Result<DistinguishedName, String> {
    let id = Identity::parse(&format!("x509.subject: {subject}")).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    for (k, v) in &id.subject.attributes {
        let t = match k.as_str() {
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "CN" => DnType::CommonName,
            other => {
                return Err(format!(
                    "subject attribute {other} is not supported (C, ST, L, O, OU, CN)"
                ))
            }
        };
        dn.push(t, v.as_str());
    }
    Ok(dn)
}

fn write_new(path: &Path, bytes: &[u8], private: bool, force: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists; pass --force to overwrite it", path.display())
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    f.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `bonded keygen cosign`: PREFIX.key (PKCS#8, mode 0600) and PREFIX.pub (SPKI PEM, as
/// cosign.pub), and the identity a trust policy names it by.
fn cosign_pair(args: &KeygenArgs, alg: &'static rcgen::SignatureAlgorithm) -> Result<(), String> {
    if args.issuer.is_some() || args.subject.is_some() {
        return Err("a cosign key pair has no certificate: drop --issuer and --subject".into());
    }
    let key = KeyPair::generate_for(alg).map_err(|e| e.to_string())?;
    let (key_path, pub_path) = (with_ext(&args.out, "key"), with_ext(&args.out, "pub"));
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_new(&key_path, key.serialize_pem().as_bytes(), true, args.force)?;
    write_new(
        &pub_path,
        key.public_key_pem().as_bytes(),
        false,
        args.force,
    )?;
    let public = crate::trust::cosign::PublicKey::from_spki(
        &rcgen::PublicKeyData::subject_public_key_info(&key),
    )?;
    println!(
        "wrote {} (private key, mode 0600) and {}",
        key_path.display(),
        pub_path.display()
    );
    println!(
        "trust store: copy {} into <truststore>/cosign/<name>/",
        pub_path.display()
    );
    println!(
        "identity for a trust policy: cosign.key: {}",
        public.fingerprint()
    );
    Ok(())
}

pub fn run(args: &KeygenArgs) -> Result<(), String> {
    let alg = match args.curve {
        Curve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Curve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Curve::Ed25519 => &rcgen::PKCS_ED25519,
    };
    if args.kind == Kind::Cosign {
        return cosign_pair(args, alg);
    }
    if args.curve == Curve::Ed25519 {
        return Err("Notary Project certificates take RSA or ECDSA P-256/P-384/P-521 keys, not Ed25519; Ed25519 is for cosign keys (bonded keygen cosign --algorithm ed25519)".into());
    }
    let subject = args.subject.as_deref().ok_or("--subject is required")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name = distinguished_name(subject)?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(args.days.into());
    match args.kind {
        Kind::Root | Kind::Intermediate => {
            params.is_ca = IsCa::Ca(if args.kind == Kind::Root {
                BasicConstraints::Unconstrained
            } else {
                BasicConstraints::Constrained(0)
            });
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        Kind::Signer | Kind::Cosign => {
            params.is_ca = IsCa::NoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
    }
    let key = KeyPair::generate_for(alg).map_err(|e| e.to_string())?;
    let (cert_pem, chain_rest) = match (args.kind, &args.issuer) {
        (Kind::Root, None) => (
            params.self_signed(&key).map_err(|e| e.to_string())?.pem(),
            String::new(),
        ),
        (Kind::Root, Some(_)) => return Err("a root is self-signed: drop --issuer".into()),
        (_, None) => {
            return Err(
                "an intermediate or signer needs --issuer PREFIX (its .key and .pem)".into(),
            )
        }
        (_, Some(issuer)) => {
            let (kp, cp) = (with_ext(issuer, "key"), with_ext(issuer, "pem"));
            let issuer_key = std::fs::read_to_string(&kp)
                .map_err(|e| format!("cannot read {}: {e}", kp.display()))?;
            let issuer_chain = std::fs::read_to_string(&cp)
                .map_err(|e| format!("cannot read {}: {e}", cp.display()))?;
            let issuer_key =
                KeyPair::from_pem(&issuer_key).map_err(|e| format!("{}: {e}", kp.display()))?;
            let first = issuer_chain
                .split_inclusive("-----END CERTIFICATE-----")
                .next()
                .ok_or_else(|| format!("{} holds no certificate", cp.display()))?;
            let issuer = Issuer::from_ca_cert_pem(first.trim(), issuer_key)
                .map_err(|e| format!("{}: {e}", cp.display()))?;
            let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
            (cert.pem(), issuer_chain)
        }
    };
    let (key_path, cert_path) = (with_ext(&args.out, "key"), with_ext(&args.out, "pem"));
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_new(&key_path, key.serialize_pem().as_bytes(), true, args.force)?;
    write_new(
        &cert_path,
        format!("{cert_pem}{chain_rest}").as_bytes(),
        false,
        args.force,
    )?;
    println!(
        "wrote {} (private key, mode 0600) and {}",
        key_path.display(),
        cert_path.display()
    );
    match args.kind {
        Kind::Root => println!(
            "trust store: copy {} into <truststore>/x509/ca/<name>/",
            cert_path.display()
        ),
        Kind::Intermediate | Kind::Cosign => {}
        Kind::Signer => println!("identity for a trust policy: x509.subject: {subject}"),
    }
    Ok(())
}
