//! k-of-n policies end to end: signatures from k distinct trusted identities, with distinct
//! keys, are needed before a tag is admitted, by the server and by `bonded verify` alike.
//! The attacks are the adversarial review's: one signer (alice) holding several
//! certificates from the trusted CA whose subjects all name her (attributes in another
//! order, an extra OU, no L, a second CN), or re-wrapping one signature in a second
//! certificate for the same key.

use crate::common;

use common::pki::{envelope, push_envelope, push_signature, rewrap, Ca, Signer};
use common::*;
use rcgen::{DistinguishedName, DnType, KeyPair};
use serde_json::{json, Value};
use std::process::Command;

async fn tag(c: &reqwest::Client, s: &Server, repo: &str, m: &[u8]) -> (u16, String) {
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/v1")), m.to_vec()).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, text)
}

fn dn(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    for (t, v) in attrs {
        d.push(t.clone(), *v);
    }
    d
}

use DnType::{CommonName as CN, CountryName as C, LocalityName as L};
use DnType::{OrganizationName as O, OrganizationalUnitName as OU, StateOrProvinceName as ST};

/// A second CN: rcgen keeps one value per type, but a custom type with CN's OID is another.
fn second_cn() -> DnType {
    DnType::CustomDnType(vec![2, 5, 4, 3])
}

fn new_key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// `C=US, ST=WA, O=Acme Corp, CN=<cn>` with a key of their own.
fn person(ca: &Ca, cn: &str) -> Signer {
    ca.signer_for(
        &new_key(),
        dn(&[(C, "US"), (ST, "WA"), (O, "Acme Corp"), (CN, cn)]),
    )
}

/// How alice tries to pass for two signers under listed identities: her own signature,
/// then a second one made with another certificate of hers.
const DOUBLES: [&str; 7] = [
    "reordered",
    "extra-ou",
    "no-l",
    "second-cn",
    "second-cn-first",
    "rewrapped-extra-ou",
    "rewrapped-as-bob",
];

/// Under `"*"`: subjects that differ from alice's only in order, case or spacing, one with
/// a second CN, and a second certificate under another name for her key.
const LOOKALIKES: [&str; 5] = [
    "reordered",
    "cased",
    "spaced",
    "second-cn",
    "rewrapped-as-bob",
];

/// alice's first signer and her second signature in case `name`: (signer, envelope, chain).
fn case(ca: &Ca, name: &str, subject: &Value) -> (Signer, Vec<u8>, Vec<Vec<u8>>) {
    let key = new_key();
    let alice = ca.signer_for(
        &key,
        dn(&[
            (C, "US"),
            (ST, "WA"),
            (L, "Seattle"),
            (O, "Acme Corp"),
            (CN, "alice"),
        ]),
    );
    let another = |attrs: &[(DnType, &str)]| {
        let s = ca.signer_for(&new_key(), dn(attrs));
        (envelope(&s, subject), s.chain)
    };
    // Her own signature, re-wrapped: x5c is outside what JWS signs, so a second certificate
    // for the same key carries the same signature under another subject.
    let rewrapped = |attrs: &[(DnType, &str)]| {
        let cert = ca.issue_for(&key, dn(attrs));
        let chain = vec![cert.der().to_vec(), ca.der.clone()];
        (rewrap(&envelope(&alice, subject), &chain), chain)
    };
    let (env, chain) = match name {
        "reordered" => another(&[
            (CN, "alice"),
            (O, "Acme Corp"),
            (L, "Seattle"),
            (ST, "WA"),
            (C, "US"),
        ]),
        "extra-ou" => another(&[
            (C, "US"),
            (ST, "WA"),
            (L, "Seattle"),
            (O, "Acme Corp"),
            (OU, "Release"),
            (CN, "alice"),
        ]),
        "no-l" => another(&[(C, "US"), (ST, "WA"), (O, "Acme Corp"), (CN, "alice")]),
        "second-cn" => another(&[
            (C, "US"),
            (ST, "WA"),
            (O, "Acme Corp"),
            (CN, "alice"),
            (second_cn(), "bob"),
        ]),
        "second-cn-first" => another(&[
            (C, "US"),
            (ST, "WA"),
            (O, "Acme Corp"),
            (CN, "bob"),
            (second_cn(), "alice"),
        ]),
        "cased" => another(&[
            (C, "us"),
            (ST, "wa"),
            (L, "SEATTLE"),
            (O, "ACME CORP"),
            (CN, "Alice"),
        ]),
        "spaced" => another(&[
            (C, "US"),
            (ST, " WA"),
            (L, "Seattle "),
            (O, "  Acme   Corp "),
            (CN, "alice"),
        ]),
        "rewrapped-extra-ou" => rewrapped(&[
            (C, "US"),
            (ST, "WA"),
            (O, "Acme Corp"),
            (OU, "Build"),
            (CN, "alice"),
        ]),
        "rewrapped-as-bob" => rewrapped(&[(C, "US"), (ST, "WA"), (O, "Acme Corp"), (CN, "bob")]),
        other => panic!("no case {other}"),
    };
    (alice, env, chain)
}

fn policy_file(dir: &std::path::Path, host: &str) -> std::path::PathBuf {
    let policy = json!({"version": "1.0", "trustPolicies": [
        {
            "name": "prod", "registryScopes": [format!("{host}/prod/*")],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme Corp, CN=alice", "x509.subject: C=US, ST=WA, O=Acme Corp, CN=bob"],
            "signaturesRequired": 2, "bonded.unsignedPush": "reject"
        },
        {
            "name": "any", "registryScopes": [format!("{host}/any/*")],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["*"], "signaturesRequired": 2, "bonded.unsignedPush": "reject"
        }
    ]});
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    path
}

/// Pushes a fresh image by digest into `repo`; returns its bytes and descriptor.
async fn image(c: &reqwest::Client, s: &Server, repo: &str) -> (Vec<u8>, Value) {
    let config = push_blob(c, s, repo, format!("{{\"repo\":\"{repo}\"}}").as_bytes()).await;
    let config_len = format!("{{\"repo\":\"{repo}\"}}").len();
    let layer = push_blob(c, s, repo, repo.as_bytes()).await;
    let m = image_manifest((&config, config_len), &[(&layer, repo.len())], json!({}));
    let d = sha256(&m);
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/{d}")), m.clone()).await;
    assert_eq!(res.status(), 201, "push {repo}@{d}");
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()});
    (m, subject)
}

#[tokio::test]
async fn two_distinct_signers_are_needed() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    ca.write_store(&tmp.path().join("truststore"), "acme");
    let policy = policy_file(tmp.path(), "registry.test");
    let s = Server::start_in(
        &tmp.path().join("data"),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            tmp.path().join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    let c = client();
    let repo = "prod/app";
    let (m, subject) = image(&c, &s, repo).await;
    let d = subject["digest"].as_str().unwrap().to_string();

    let (alice, bob, mallory) = (
        person(&ca, "alice"),
        person(&ca, "bob"),
        person(&ca, "mallory"),
    );
    assert_eq!(push_signature(&c, &s, repo, &alice, &subject).await, 201);
    let (status, body) = tag(&c, &s, repo, &m).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("policy 'prod' needs 2 signatures from distinct trusted identities; found 1: C=US, ST=WA, O=Acme Corp, CN=alice"),
        "{body}"
    );
    // alice again: still one identity
    assert_eq!(push_signature(&c, &s, repo, &alice, &subject).await, 201);
    assert_eq!(tag(&c, &s, repo, &m).await.0, 403);
    // mallory chains to the trusted root but is not a trusted identity: refused on push
    assert_eq!(push_signature(&c, &s, repo, &mallory, &subject).await, 403);
    // bob makes two
    assert_eq!(push_signature(&c, &s, repo, &bob, &subject).await, 201);
    let (status, body) = tag(&c, &s, repo, &m).await;
    assert_eq!(status, 201, "{body}");

    let res = c
        .get(format!(
            "{}/bonded/v1/repositories/{repo}/signatures/{d}",
            s.url
        ))
        .send()
        .await
        .unwrap();
    let store: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(store["signatures"].as_array().unwrap().len(), 3);
    assert_eq!(store["verdict"]["signers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn one_signer_with_several_certificates_never_meets_two_of_n_at_the_gate() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    ca.write_store(&tmp.path().join("truststore"), "acme");
    let policy = policy_file(tmp.path(), "registry.test");
    let s = Server::start_in(
        &tmp.path().join("data"),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            tmp.path().join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    let c = client();
    let bob = person(&ca, "bob");
    let mut bypassed = Vec::new();
    for (ns, names) in [("prod", &DOUBLES[..]), ("any", &LOOKALIKES[..])] {
        for name in names {
            let repo = format!("{ns}/{name}");
            let (m, subject) = image(&c, &s, &repo).await;
            let (alice, env, chain) = case(&ca, name, &subject);
            assert_eq!(
                push_signature(&c, &s, &repo, &alice, &subject).await,
                201,
                "{repo}: alice"
            );
            // The double is either refused at once (it names no trusted identity) or stored
            // as a valid signature that does not count a second time.
            let pushed = push_envelope(&c, &s, &repo, &env, &chain, &subject).await;
            assert!(
                pushed == 201 || pushed == 403,
                "{repo}: double pushed {pushed}"
            );
            let (status, body) = tag(&c, &s, &repo, &m).await;
            if status != 403 {
                bypassed.push(repo);
                continue;
            }
            assert!(body.contains("found 1"), "{repo}: {body}");
            // bob is the second identity
            assert_eq!(push_signature(&c, &s, &repo, &bob, &subject).await, 201);
            let (status, body) = tag(&c, &s, &repo, &m).await;
            assert_eq!(status, 201, "{repo}: alice and bob: {body}");
        }
    }
    assert!(
        bypassed.is_empty(),
        "one signer admitted a 2-of-n tag in {bypassed:?}"
    );
}

#[tokio::test]
async fn one_signer_with_several_certificates_never_verifies_two_of_n() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    ca.write_store(&tmp.path().join("truststore"), "acme");
    // A plain registry: bonded verify decides alone.
    let s = Server::start_in(&tmp.path().join("data"), &[]);
    let policy = policy_file(tmp.path(), &s.addr);
    let c = client();
    let verify = |repo: &str| {
        Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(["verify", &format!("{}/{repo}:v1", s.addr)])
            .args(["--trust-policy", policy.to_str().unwrap()])
            .args([
                "--trust-store",
                tmp.path().join("truststore").to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let bob = person(&ca, "bob");
    let mut bypassed = Vec::new();
    for (ns, names) in [("prod", &DOUBLES[..]), ("any", &LOOKALIKES[..])] {
        for name in names {
            let repo = format!("{ns}/{name}");
            let (m, subject) = image(&c, &s, &repo).await;
            let res = put_manifest(&c, s.v2(&format!("{repo}/manifests/v1")), m).await;
            assert_eq!(res.status(), 201);
            let (alice, env, chain) = case(&ca, name, &subject);
            assert_eq!(push_signature(&c, &s, &repo, &alice, &subject).await, 201);
            assert_eq!(
                push_envelope(&c, &s, &repo, &env, &chain, &subject).await,
                201
            );
            let o = verify(&repo);
            if o.status.code() != Some(5) {
                bypassed.push(format!("{repo} (exit {:?})", o.status.code()));
                continue;
            }
            assert_eq!(push_signature(&c, &s, &repo, &bob, &subject).await, 201);
            let o = verify(&repo);
            assert_eq!(o.status.code(), Some(0), "{repo}: {}", output_text(&o));
        }
    }
    assert!(
        bypassed.is_empty(),
        "bonded verify passed one signer for a 2-of-n policy: {bypassed:?}"
    );
}
