//! Every certificate rule and envelope check, positive and negative, with chains made per
//! test by rcgen and signatures made by bonded's own signer.

use bonded::trust::envelope::TargetArtifact;
use bonded::trust::policy::TrustPolicyDocument;
use bonded::trust::sign::{sign, SignRequest, SigningKey};
use bonded::trust::store::TrustStores;
use bonded::trust::verify::{verify_signature, Check, SignatureVerdict, Subject};
use common::pki::{ca_params, leaf_params, now};
use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

use crate::common;

/// A chain root -> intermediate -> leaf, each customisable, with the leaf's key.
struct Chain {
    /// DER, leaf first, root last.
    ders: Vec<Vec<u8>>,
    root: Vec<u8>,
    leaf_key: KeyPair,
}

fn chain_with(
    alg: &'static SignatureAlgorithm,
    root: CertificateParams,
    intermediate: CertificateParams,
    leaf: CertificateParams,
) -> Chain {
    let root_key = KeyPair::generate_for(alg).unwrap();
    let root_cert = root.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root, root_key);
    let int_key = KeyPair::generate_for(alg).unwrap();
    let int_cert = intermediate.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(intermediate, int_key);
    let leaf_key = KeyPair::generate_for(alg).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &int_issuer).unwrap();
    Chain {
        ders: vec![
            leaf_cert.der().to_vec(),
            int_cert.der().to_vec(),
            root_cert.der().to_vec(),
        ],
        root: root_cert.der().to_vec(),
        leaf_key,
    }
}

fn p256_chain() -> Chain {
    chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Acme Root", None),
        ca_params("Acme Build CA", Some(0)),
        leaf_params("alice"),
    )
}

fn subject() -> Subject {
    Subject {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: 1234,
    }
}

fn envelope(chain: &Chain, expiry: Option<OffsetDateTime>) -> Vec<u8> {
    let key = SigningKey::from_pkcs8(&chain.leaf_key.serialize_der()).unwrap();
    let s = subject();
    let target = TargetArtifact {
        media_type: s.media_type,
        digest: s.digest,
        size: s.size,
        annotations: None,
        artifact_type: None,
    };
    sign(
        &key,
        &SignRequest {
            target: &target,
            chain: &chain.ders,
            signing_time: now() - Duration::minutes(1),
            expiry,
            signing_agent: "bonded-test",
        },
    )
    .unwrap()
}

/// Verifies under a strict policy whose store `ca:acme` holds `anchor`.
fn verify_with(env: &[u8], anchor: &[u8], at: OffsetDateTime) -> SignatureVerdict {
    let mut stores = TrustStores::default();
    stores.insert("ca:acme".parse().unwrap(), vec![anchor.to_vec()]);
    let doc = TrustPolicyDocument::parse(
        br#"{"version":"1.0","trustPolicies":[{"name":"prod","registryScopes":["*"],
            "signatureVerification":{"level":"strict"},"trustStores":["ca:acme"],
            "trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme"]}]}"#,
    )
    .unwrap();
    verify_signature(
        &doc.policies[0],
        &stores,
        env,
        "application/jose+json",
        &subject(),
        at,
        &bonded::trust::revocation::Evidence::new(),
    )
}

fn integrity_failure(v: &SignatureVerdict) -> String {
    match &v.integrity {
        Check::Failed(why) => why.clone(),
        other => panic!("expected an integrity failure, got {other:?} ({v:?})"),
    }
}

#[test]
fn es256_three_certificate_chain_verifies() {
    let c = p256_chain();
    let at = now();
    let v = verify_with(&envelope(&c, None), &c.root, at);
    assert_eq!(v.failure(), None, "{v:?}");
    assert_eq!(v.algorithm.map(|a| a.as_str()), Some("ES256"));
    // It holds while every certificate is valid: from the latest notBefore (the leaf's,
    // a day ago) to the earliest notAfter (the leaf's, in 30 days).
    let leaf = bonded::trust::certs::CertInfo::parse(0, &c.ders[0]).unwrap();
    assert_eq!(
        (v.valid_from, v.valid_until),
        (Some(leaf.not_before), Some(leaf.not_after))
    );
    assert!(
        v.holds_at(at)
            && v.holds_at(leaf.not_after)
            && !v.holds_at(leaf.not_after + Duration::seconds(1))
    );
    assert_eq!(
        v.signer.unwrap().to_string(),
        "C=US, ST=WA, O=Acme, CN=alice"
    );
}

#[test]
fn es384_verifies() {
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P384_SHA384,
        ca_params("Acme Root", None),
        ca_params("Acme Build CA", None),
        leaf_params("alice"),
    );
    let v = verify_with(&envelope(&c, None), &c.root, now());
    assert_eq!(v.failure(), None, "{v:?}");
    assert_eq!(v.algorithm.map(|a| a.as_str()), Some("ES384"));
}

#[test]
fn untrusted_root_fails_authenticity() {
    let c = p256_chain();
    let other = p256_chain();
    let v = verify_with(&envelope(&c, None), &other.root, now());
    assert_eq!(v.integrity, Check::Passed);
    match v.authenticity {
        Check::Failed(why) => assert!(why.contains("trust store 'ca:acme'"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn expired_and_not_yet_valid_leaves_fail_authentic_timestamp() {
    let mut expired = leaf_params("alice");
    expired.not_before = now() - Duration::days(10);
    expired.not_after = now() - Duration::days(2);
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", None),
        ca_params("CA", None),
        expired,
    );
    // signed while it was valid...
    let key = SigningKey::from_pkcs8(&c.leaf_key.serialize_der()).unwrap();
    let s = subject();
    let target = TargetArtifact {
        media_type: s.media_type,
        digest: s.digest,
        size: s.size,
        annotations: None,
        artifact_type: None,
    };
    let env = sign(
        &key,
        &SignRequest {
            target: &target,
            chain: &c.ders,
            signing_time: now() - Duration::days(5),
            expiry: None,
            signing_agent: "t",
        },
    )
    .unwrap();
    let v = verify_with(&env, &c.root, now());
    assert_eq!(v.integrity, Check::Passed);
    // ...but a claimed signing time is not trusted: the certificate must be valid now.
    assert!(
        matches!(v.authentic_timestamp, Check::Failed(ref w) if w.contains("CN=alice")),
        "{v:?}"
    );

    let mut future = leaf_params("alice");
    future.not_before = now() + Duration::days(2);
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", None),
        ca_params("CA", None),
        future,
    );
    let v = verify_with(&envelope(&c, None), &c.root, now());
    assert!(
        !v.accepted(),
        "a certificate not yet valid at signing time: {v:?}"
    );
}

#[test]
fn envelope_expiry_is_enforced() {
    let c = p256_chain();
    let expiry = now() + Duration::hours(1);
    let env = envelope(&c, Some(expiry));
    let v = verify_with(&env, &c.root, now());
    assert!(v.accepted());
    // accepted until the expiry, and no longer
    assert_eq!(v.valid_until, Some(expiry));
    let later = now() + Duration::hours(2);
    let v = verify_with(&env, &c.root, later);
    assert!(
        matches!(v.expiry, Check::Failed(ref w) if w.contains("expired")),
        "{v:?}"
    );
    // refused from just after the expiry on (until the leaf expires as well)
    assert!(v.holds_at(later) && !v.holds_at(expiry));
}

#[test]
fn leaf_with_server_auth_eku_is_refused() {
    let mut leaf = leaf_params("alice");
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", None),
        ca_params("CA", None),
        leaf,
    );
    let why = integrity_failure(&verify_with(&envelope(&c, None), &c.root, now()));
    assert!(
        why.contains("certificate 'C=US, ST=WA, O=Acme, CN=alice' cannot sign"),
        "{why}"
    );
    assert!(why.contains("serverAuth"), "{why}");
}

#[test]
fn leaf_without_digital_signature_or_with_cert_sign_is_refused() {
    let mut leaf = leaf_params("alice");
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", None),
        ca_params("CA", None),
        leaf,
    );
    let why = integrity_failure(&verify_with(&envelope(&c, None), &c.root, now()));
    assert!(why.contains("keyCertSign"), "{why}");
}

#[test]
fn intermediate_that_is_not_a_ca_is_refused() {
    let mut intermediate = ca_params("Build CA", None);
    intermediate.is_ca = IsCa::ExplicitNoCa;
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", None),
        intermediate,
        leaf_params("alice"),
    );
    let why = integrity_failure(&verify_with(&envelope(&c, None), &c.root, now()));
    assert!(
        why.contains("intermediate 'C=US, ST=WA, O=Acme, CN=Build CA' is not a CA"),
        "{why}"
    );
}

#[test]
fn path_length_constraint_is_honoured() {
    // the root allows no intermediate CA below it
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", Some(0)),
        ca_params("CA", None),
        leaf_params("alice"),
    );
    let v = verify_with(&envelope(&c, None), &c.root, now());
    let why = integrity_failure(&v);
    assert!(
        why.contains("CA 'C=US, ST=WA, O=Acme, CN=Root' allows 0 intermediate CA(s) below it, but the chain has 1"),
        "{why}"
    );
    // one level allowed: fine
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", Some(1)),
        ca_params("CA", Some(0)),
        leaf_params("alice"),
    );
    assert!(verify_with(&envelope(&c, None), &c.root, now()).accepted());
}

#[test]
fn rsa_1024_leaf_is_refused() {
    let weak =
        rcgen::SubjectPublicKeyInfo::from_pem(include_str!("data/rsa1024-public.pem")).unwrap();
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root = ca_params("Root", None);
    let root_cert = root.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(root, root_key);
    let leaf = leaf_params("weak").signed_by(&weak, &issuer).unwrap();
    // Signed by someone else's key: the certificate rules must refuse it before any
    // signature is looked at.
    let donor = p256_chain();
    let mut env: serde_json::Value = serde_json::from_slice(&envelope(&donor, None)).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    env["header"]["x5c"] = serde_json::json!([b64.encode(leaf.der()), b64.encode(root_cert.der())]);
    let v = verify_with(&serde_json::to_vec(&env).unwrap(), root_cert.der(), now());
    let why = integrity_failure(&v);
    assert!(why.contains("RSA key of 1024 bits"), "{why}");
}

#[test]
fn tampered_payload_and_algorithm_mismatch_fail_integrity() {
    use base64::Engine as _;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let c = p256_chain();
    let mut env: serde_json::Value = serde_json::from_slice(&envelope(&c, None)).unwrap();
    let original = env.clone();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&url.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    payload["targetArtifact"]["size"] = serde_json::json!(9999);
    env["payload"] = serde_json::json!(url.encode(serde_json::to_vec(&payload).unwrap()));
    let why = integrity_failure(&verify_with(
        &serde_json::to_vec(&env).unwrap(),
        &c.root,
        now(),
    ));
    assert!(why.contains("signature does not verify"), "{why}");

    let mut env = original.clone();
    let mut header: serde_json::Value =
        serde_json::from_slice(&url.decode(env["protected"].as_str().unwrap()).unwrap()).unwrap();
    header["alg"] = serde_json::json!("ES384");
    env["protected"] = serde_json::json!(url.encode(serde_json::to_vec(&header).unwrap()));
    let why = integrity_failure(&verify_with(
        &serde_json::to_vec(&env).unwrap(),
        &c.root,
        now(),
    ));
    assert!(why.contains("requires ES256"), "{why}");

    let mut env = original;
    let mut header: serde_json::Value =
        serde_json::from_slice(&url.decode(env["protected"].as_str().unwrap()).unwrap()).unwrap();
    header["crit"] =
        serde_json::json!(["io.cncf.notary.signingScheme", "com.example.mustUnderstand"]);
    header["com.example.mustUnderstand"] = serde_json::json!(true);
    env["protected"] = serde_json::json!(url.encode(serde_json::to_vec(&header).unwrap()));
    let why = integrity_failure(&verify_with(
        &serde_json::to_vec(&env).unwrap(),
        &c.root,
        now(),
    ));
    assert!(
        why.contains("critical header 'com.example.mustUnderstand'"),
        "{why}"
    );
}

#[test]
fn signatures_made_by_bonded_have_notations_shape() {
    use base64::Engine as _;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let c = p256_chain();
    let env: serde_json::Value =
        serde_json::from_slice(&envelope(&c, Some(now() + Duration::days(1)))).unwrap();
    let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["header", "payload", "protected", "signature"]);
    let header: serde_json::Value =
        serde_json::from_slice(&url.decode(env["protected"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(header["cty"], "application/vnd.cncf.notary.payload.v1+json");
    assert_eq!(header["io.cncf.notary.signingScheme"], "notary.x509");
    assert_eq!(
        header["crit"],
        serde_json::json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"])
    );
    assert!(header["io.cncf.notary.signingTime"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // ECDSA signatures are raw r||s, 64 bytes for P-256
    assert_eq!(
        url.decode(env["signature"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
    assert_eq!(env["header"]["x5c"].as_array().unwrap().len(), 3);
}

/// RSASSA-PSS (RFC 8017 8.1.1 and 9.1.1, MGF1 with the same hash, salt as long as the
/// hash) with a key given as its modulus and private exponent.
fn rsa_pss_sign<H: sha2::Digest>(
    n: &num_bigint::BigUint,
    d: &num_bigint::BigUint,
    message: &[u8],
) -> Vec<u8> {
    let h_len = <H as sha2::Digest>::output_size();
    let mod_bits = n.bits() as usize;
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let m_hash = H::digest(message);
    let salt: Vec<u8> = (0..h_len).map(|_| rand::random::<u8>()).collect();
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(&m_hash);
    m_prime.extend_from_slice(&salt);
    let h = H::digest(&m_prime);
    let mut db = vec![0u8; em_len - h_len - h_len - 2];
    db.push(1);
    db.extend_from_slice(&salt);
    // MGF1
    let mut mask = Vec::new();
    let mut counter = 0u32;
    while mask.len() < db.len() {
        let mut block = H::new();
        block.update(&h);
        block.update(counter.to_be_bytes());
        mask.extend_from_slice(&block.finalize());
        counter += 1;
    }
    for (b, m) in db.iter_mut().zip(mask) {
        *b ^= m;
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&h);
    em.push(0xbc);
    let s = num_bigint::BigUint::from_bytes_be(&em).modpow(d, n);
    let k = mod_bits.div_ceil(8);
    let bytes = s.to_bytes_be();
    [vec![0u8; k - bytes.len()], bytes].concat()
}

/// A Notary JWS over `subject()`, signed with `alg` by the RSA key (n, d), its x5c `chain`.
fn rsa_envelope(
    alg: &str,
    n: &num_bigint::BigUint,
    d: &num_bigint::BigUint,
    chain: &[Vec<u8>],
) -> Vec<u8> {
    use base64::Engine as _;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD;
    let signed = (now() - Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let header = serde_json::json!({
        "alg": alg, "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509", "io.cncf.notary.signingTime": signed,
    });
    let s = subject();
    let payload = serde_json::json!({"targetArtifact": {"mediaType": s.media_type, "digest": s.digest, "size": s.size}});
    let protected = url.encode(header.to_string());
    let payload = url.encode(payload.to_string());
    let input = format!("{protected}.{payload}");
    let sig = match alg {
        "PS256" => rsa_pss_sign::<sha2::Sha256>(n, d, input.as_bytes()),
        "PS384" => rsa_pss_sign::<sha2::Sha384>(n, d, input.as_bytes()),
        _ => unreachable!(),
    };
    serde_json::to_vec(&serde_json::json!({
        "payload": payload, "protected": protected,
        "header": {"x5c": chain.iter().map(|c| std.encode(c)).collect::<Vec<_>>()},
        "signature": url.encode(sig),
    }))
    .unwrap()
}

/// (n, d) of a test key in tests/it/data.
fn rsa_numbers(text: &str) -> (num_bigint::BigUint, num_bigint::BigUint) {
    let get = |k: &str| {
        let hex = text.lines().find_map(|l| l.strip_prefix(k)).unwrap();
        num_bigint::BigUint::parse_bytes(hex.as_bytes(), 16).unwrap()
    };
    (get("n="), get("d="))
}

#[test]
fn rsa_keys_of_sizes_notation_refuses_are_refused() {
    // Read by whole bytes, 2050 bits looked like 2048 (PS256) and 3073 like 3072 (PS384):
    // properly signed with those algorithms, such signatures were accepted.
    for (public, private, bits, alg) in [
        (
            include_str!("data/rsa2050-public.pem"),
            include_str!("data/rsa2050-private.txt"),
            2050,
            "PS256",
        ),
        (
            include_str!("data/rsa3073-public.pem"),
            include_str!("data/rsa3073-private.txt"),
            3073,
            "PS384",
        ),
    ] {
        let spki = rcgen::SubjectPublicKeyInfo::from_pem(public).unwrap();
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let root = ca_params("Root", None);
        let root_der = root.self_signed(&root_key).unwrap().der().to_vec();
        let leaf = leaf_params("odd")
            .signed_by(&spki, &Issuer::new(root, root_key))
            .unwrap();
        let (n, d) = rsa_numbers(private);
        assert_eq!(n.bits(), bits);
        let env = rsa_envelope(alg, &n, &d, &[leaf.der().to_vec(), root_der.clone()]);
        let v = verify_with(&env, &root_der, now());
        let why = integrity_failure(&v);
        assert!(
            why.contains(&format!("RSA key of {bits} bits")),
            "{bits}: {why}"
        );
    }
}

#[test]
fn leaf_with_ocsp_signing_eku_is_refused() {
    let mut leaf = leaf_params("alice");
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsagePurpose::OcspSigning,
    ];
    let c = chain_with(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        ca_params("Root", None),
        ca_params("CA", None),
        leaf,
    );
    let why = integrity_failure(&verify_with(&envelope(&c, None), &c.root, now()));
    assert!(why.contains("OCSPSigning"), "{why}");
}

#[test]
fn an_expiry_no_later_than_the_signing_time_fails_integrity() {
    let c = p256_chain();
    // envelope() signs one minute ago: an expiry before that, or at that very second
    for expiry in [now() - Duration::hours(1), now() - Duration::minutes(1)] {
        let env = envelope(&c, Some(expiry));
        let why = integrity_failure(&verify_with(&env, &c.root, now() - Duration::hours(2)));
        assert!(why.contains("no later than it was signed"), "{why}");
    }
}

/// `der` (a certificate) with the first byte of its serial number replaced by `first`,
/// re-signed with `key` (an ECDSA P-256 issuer): rcgen writes only positive serials.
fn with_serial_first_byte(der: &[u8], first: u8, key: &KeyPair) -> Vec<u8> {
    use rcgen::SigningKey as _;
    // (offset of the content, its length) of the TLV at `at`
    let tlv = |at: usize| -> (usize, usize) {
        let l = der[at + 1];
        if l < 0x80 {
            (at + 2, l as usize)
        } else {
            let n = (l & 0x7f) as usize;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (at + 2 + n, len)
        }
    };
    let (cert_body, _) = tlv(0);
    let (tbs_body, tbs_len) = tlv(cert_body);
    let tbs_end = tbs_body + tbs_len;
    let (version_body, version_len) = tlv(tbs_body); // [0] EXPLICIT version
    let (serial_body, _) = tlv(version_body + version_len);
    let mut tbs = der[cert_body..tbs_end].to_vec();
    tbs[serial_body - cert_body] = first;
    let (alg_body, alg_len) = tlv(tbs_end);
    let alg = &der[tbs_end..alg_body + alg_len];
    let signature = key.sign(&tbs).unwrap();
    let len = |n: usize| -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else if n < 0x100 {
            vec![0x81, n as u8]
        } else {
            vec![0x82, (n >> 8) as u8, n as u8]
        }
    };
    let mut bits = vec![0x03];
    bits.extend(len(signature.len() + 1));
    bits.push(0);
    bits.extend(signature);
    let body: Vec<u8> = [tbs, alg.to_vec(), bits].concat();
    [vec![0x30], len(body.len()), body].concat()
}

#[test]
fn negative_serial_numbers_are_refused() {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root = ca_params("Root", None);
    let root_der = root.self_signed(&root_key).unwrap().der().to_vec();
    // The issuer takes its key; keep a copy to re-sign with.
    let issuer = Issuer::new(root, KeyPair::from_pem(&root_key.serialize_pem()).unwrap());
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf_der = leaf_params("alice")
        .signed_by(&leaf_key, &issuer)
        .unwrap()
        .der()
        .to_vec();
    let sign_with = |ders: Vec<Vec<u8>>| {
        let root = ders.last().unwrap().clone();
        let chain = Chain {
            ders,
            root,
            leaf_key: KeyPair::from_pem(&leaf_key.serialize_pem()).unwrap(),
        };
        envelope(&chain, None)
    };
    // The chain as issued verifies, so only the serial decides below.
    let v = verify_with(
        &sign_with(vec![leaf_der.clone(), root_der.clone()]),
        &root_der,
        now(),
    );
    assert!(v.accepted(), "{v:?}");
    // 0x81...: a negative serial in the leaf, properly signed by the root.
    let negative_leaf = with_serial_first_byte(&leaf_der, 0x81, &root_key);
    let v = verify_with(
        &sign_with(vec![negative_leaf, root_der.clone()]),
        &root_der,
        now(),
    );
    let why = integrity_failure(&v);
    assert!(why.contains("serial number is negative"), "{why}");
    // And in the root (self-signed again).
    let negative_root = with_serial_first_byte(&root_der, 0x81, &root_key);
    let v = verify_with(
        &sign_with(vec![leaf_der, negative_root.clone()]),
        &negative_root,
        now(),
    );
    let why = integrity_failure(&v);
    assert!(why.contains("serial number is negative"), "{why}");
}

#[test]
fn chains_longer_than_ten_certificates_are_not_read() {
    use base64::Engine as _;
    let c = p256_chain();
    let mut env: serde_json::Value = serde_json::from_slice(&envelope(&c, None)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut x5c = vec![b64.encode(&c.ders[0])];
    x5c.extend(std::iter::repeat_n(b64.encode(&c.ders[1]), 9));
    x5c.push(b64.encode(&c.root));
    env["header"]["x5c"] = serde_json::json!(x5c);
    let why = integrity_failure(&verify_with(
        &serde_json::to_vec(&env).unwrap(),
        &c.root,
        now(),
    ));
    assert!(
        why.contains("x5c chain has 11 certificates; at most 10"),
        "{why}"
    );
}
