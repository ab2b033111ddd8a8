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
    let v = verify_with(&envelope(&c, None), &c.root, now());
    assert_eq!(v.failure(), None, "{v:?}");
    assert_eq!(v.algorithm, Some("ES256"));
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
    assert_eq!(v.algorithm, Some("ES384"));
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
    let env = envelope(&c, Some(now() + Duration::hours(1)));
    assert!(verify_with(&env, &c.root, now()).accepted());
    let v = verify_with(&env, &c.root, now() + Duration::hours(2));
    assert!(
        matches!(v.expiry, Check::Failed(ref w) if w.contains("expired")),
        "{v:?}"
    );
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
