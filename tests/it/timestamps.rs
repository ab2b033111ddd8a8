//! RFC 3161 timestamps for Notary signatures end to end, with a real TSA (`openssl ts`
//! behind HTTP, common::tsa): `bonded sign --timestamp-url` countersigns, the gate of a
//! policy with a `tsa:` store requires it and publishes the waiting tag, and the signature
//! keeps verifying (`bonded verify`, pulls under `bonded.enforceOnPull`) after its
//! certificate expires; without a timestamp, with another authority's timestamp, or with
//! a timestamp moved from another signature, it does not.

use crate::common;

use common::pki::Ca;
use common::tsa::Tsa;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn bonded_cmd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args(args)
        .output()
        .unwrap()
}

/// `bonded sign IMAGE --key KEY --cert CERT`, timestamped by `tsa` (its URL, and the root
/// the answer must lead to) when given, with `extra` arguments.
fn sign(
    image: &str,
    key: &str,
    cert: &str,
    tsa: Option<(&str, &Path)>,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["sign", image, "--key", key, "--cert", cert];
    let root;
    if let Some((url, r)) = tsa {
        root = r.to_str().unwrap().to_string();
        args.extend(["--timestamp-url", url, "--timestamp-root-cert", &root]);
    }
    args.extend(extra);
    bonded_cmd(&args)
}

/// A policy file trusting `ca:acme` signers, with the `tsa` store listed when given.
fn policy(
    dir: &Path,
    name: &str,
    scope: &str,
    tsa: Option<&str>,
    extra: Value,
) -> std::path::PathBuf {
    let mut stores = vec!["ca:acme".to_string()];
    if let Some(t) = tsa {
        stores.push(format!("tsa:{t}"));
    }
    let mut statement = json!({"name": "prod", "registryScopes": [scope],
        "signatureVerification": {"level": "strict"}, "trustStores": stores,
        "trustedIdentities": ["*"]});
    for (k, v) in extra.as_object().unwrap() {
        statement[k] = v.clone();
    }
    let p = dir.join(format!("{name}.json"));
    std::fs::write(
        &p,
        json!({"version": "1.0", "trustPolicies": [statement]}).to_string(),
    )
    .unwrap();
    p
}

#[tokio::test]
async fn timestamped_signatures_outlive_their_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let tsa = Tsa::start(d, "Test TSA");
    let other = Tsa::start(d, "Other TSA");
    let ca = Ca::new("Acme Root");
    // A signer valid for 30 days, and one whose certificate expires in a few seconds.
    let (key, cert) = ca.write_signer(d, "release");
    let expires = common::pki::now() + time::Duration::seconds(8);
    let (short_key, short_cert) = ca.write_signer_until(d, "short", expires);
    let store = d.join("truststore");
    ca.write_store(&store, "acme");
    tsa.write_store(&store, "test");
    let gate_policy = policy(
        d,
        "gate",
        "registry.test/prod/*",
        Some("test"),
        json!({"bonded.enforceOnPull": true}),
    );
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--trust-policy",
            gate_policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    let c = client();
    // First, while it is valid, the short-lived signer timestamps its signature of
    // prod/short:v1 (checked after it expires, below).
    crate::cosign::image(&c, &s.url, "prod/short", "short").await;
    let short_image = format!("{}/prod/short:v1", s.addr);
    let o = sign(
        &short_image,
        short_key.to_str().unwrap(),
        short_cert.to_str().unwrap(),
        Some((&tsa.url, &tsa.root)),
        &[],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(crate::cosign::status(&c, &s, "prod/short", "v1").await, 200);

    let digest = crate::cosign::image(&c, &s.url, "prod/app", "ts").await;
    let image = format!("{}/prod/app:v1", s.addr);
    assert_eq!(
        crate::cosign::status(&c, &s, "prod/app", "v1").await,
        404,
        "waits"
    );
    let (k, crt) = (key.to_str().unwrap(), cert.to_str().unwrap());

    // No timestamp: the gate's policy lists a tsa store, so it is refused.
    let o = sign(&image, k, crt, None, &[]);
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("no timestamp countersignature"),
        "{}",
        output_text(&o)
    );
    // Another authority's timestamp (verified by bonded sign against that authority's
    // root): the gate trusts only tsa:test, and refuses it.
    let o = sign(&image, k, crt, Some((&other.url, &other.root)), &[]);
    assert!(!o.status.success(), "{}", output_text(&o));
    // bonded sign checks the answer against the root it is given: the other authority's
    // token does not lead to this TSA's root, and nothing is pushed.
    let o = sign(&image, k, crt, Some((&other.url, &tsa.root)), &[]);
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("does not verify"),
        "{}",
        output_text(&o)
    );
    assert_eq!(crate::cosign::status(&c, &s, "prod/app", "v1").await, 404);

    // Timestamped by the trusted authority: published.
    let o = sign(&image, k, crt, Some((&tsa.url, &tsa.root)), &[]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(crate::cosign::status(&c, &s, "prod/app", "v1").await, 200);
    // The envelope carries the countersignature in its unprotected header.
    let referrers = get_json(&c, s.v2(&format!("prod/app/referrers/{digest}"))).await;
    let sig = referrers["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m = get_json(&c, s.v2(&format!("prod/app/manifests/{sig}"))).await;
    let env = c
        .get(s.v2(&format!(
            "prod/app/blobs/{}",
            m["layers"][0]["digest"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let env: Value = serde_json::from_slice(&env).unwrap();
    assert!(
        env["header"]["io.cncf.notary.timestampSignature"].is_string(),
        "{env}"
    );

    // The same as COSE_Sign1 (notation's --signature-format cose), timestamped.
    crate::cosign::image(&c, &s.url, "prod/cose", "cose").await;
    let cose_image = format!("{}/prod/cose:v1", s.addr);
    let o = sign(
        &cose_image,
        k,
        crt,
        Some((&tsa.url, &tsa.root)),
        &["--signature-format", "cose"],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(crate::cosign::status(&c, &s, "prod/cose", "v1").await, 200);
    crate::cosign::image(&c, &s.url, "prod/cose-plain", "plain").await;
    let o = sign(
        &format!("{}/prod/cose-plain:v1", s.addr),
        k,
        crt,
        None,
        &["--signature-format", "cose"],
    );
    assert!(
        !o.status.success(),
        "an untimestamped COSE signature is refused too"
    );
    assert!(
        output_text(&o).contains("no timestamp countersignature"),
        "{}",
        output_text(&o)
    );

    // bonded verify, with a tsa store and without one.
    let client_store = d.join("client-store");
    ca.write_store(&client_store, "acme");
    tsa.write_store(&client_store, "test");
    let with_tsa = policy(d, "with-tsa", "*", Some("test"), json!({}));
    let without = policy(d, "without-tsa", "*", None, json!({}));
    let verify = |image: &str, p: &Path| verify_image(image, p, &client_store, &[]);
    for img in [&image, &cose_image] {
        let o = verify(img, &with_tsa);
        assert_eq!(o.status.code(), Some(0), "{img}: {}", output_text(&o));
        assert_eq!(verify(img, &without).status.code(), Some(0), "{img}");
    }

    // After the short-lived certificate expires: the timestamp keeps its signature valid;
    // without a tsa store the chain is judged now, and fails.
    while common::pki::now() <= expires + time::Duration::seconds(1) {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let o = verify(&short_image, &with_tsa);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let o = verify(&short_image, &without);
    assert_ne!(o.status.code(), Some(0), "{}", output_text(&o));
    // The gate re-checks pulls (enforceOnPull): still served.
    assert_eq!(crate::cosign::status(&c, &s, "prod/short", "v1").await, 200);
}

/// A timestamp countersignature moved from one signature onto another covers other bytes,
/// and the signature it was moved onto does not verify; and a fresh timestamp on a
/// signature whose certificate has expired (its claimed signing time backdated into the
/// certificate's validity) does not make it valid. Checked with bonded's verifier on
/// envelopes made here, the tokens from the real TSA.
#[tokio::test]
async fn a_timestamp_of_another_signature_never_counts() {
    use bonded::trust::envelope::TargetArtifact;
    use bonded::trust::sign::{sign, with_timestamp, SignRequest};
    use bonded::trust::verify::{verify_signature, Check, Subject};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let tsa = Tsa::start(d, "Test TSA");
    let ca = Ca::new("Acme Root");
    let signer = ca.signer("alice");
    let store = d.join("store");
    ca.write_store(&store, "acme");
    tsa.write_store(&store, "test");
    let stores = bonded::cli::truststore::load(&store).unwrap();
    let doc = bonded::trust::policy::TrustPolicyDocument::parse(
        std::fs::read(policy(d, "p", "*", Some("test"), json!({})))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mut envelopes = Vec::new();
    for n in 0..2u8 {
        let target = TargetArtifact {
            media_type: OCI_MANIFEST.into(),
            digest: sha256(&[n]),
            size: 1,
            annotations: None,
            artifact_type: None,
        };
        let env = sign(
            &signer.key,
            &SignRequest {
                target: &target,
                chain: &signer.chain,
                signing_time: common::pki::now(),
                expiry: None,
                signing_agent: "test",
            },
        )
        .unwrap();
        let parsed = bonded::trust::envelope::parse(&env).unwrap();
        let token = tsa.token(parsed.signature_bytes(), 7 + u64::from(n)).await;
        envelopes.push((env, token, target));
    }
    let now = common::pki::now();
    // `env` with `token` as its countersignature, verified as a signature of `t`.
    let verify = |env: &[u8], token: &[u8], t: &TargetArtifact| {
        let stamped = with_timestamp(env, token).unwrap();
        let subject = Subject {
            media_type: t.media_type.clone(),
            digest: t.digest.clone(),
            size: t.size,
        };
        verify_signature(
            &doc.policies[0],
            &stores,
            &stamped,
            "application/jose+json",
            &subject,
            now,
            &bonded::trust::revocation::Evidence::new(),
        )
    };
    // Each with its own token: verifies.
    for (env, token, target) in &envelopes {
        let v = verify(env, token, target);
        assert!(v.accepted(), "{v:?}");
    }
    // An expired certificate, a signing time claimed while it was valid, a timestamp of
    // now: the timestamp is after the certificate's validity, and the signature fails.
    let hour = time::Duration::hours(1);
    let expired = ca.signer_valid("bob", now - 3 * hour, now - hour);
    let target = &envelopes[0].2;
    let env = sign(
        &expired.key,
        &SignRequest {
            target,
            chain: &expired.chain,
            signing_time: now - 2 * hour,
            expiry: None,
            signing_agent: "test",
        },
    )
    .unwrap();
    let parsed = bonded::trust::envelope::parse(&env).unwrap();
    let token = tsa.token(parsed.signature_bytes(), 99).await;
    let v = verify(&env, &token, target);
    assert_eq!(v.integrity, Check::Passed, "{v:?}");
    assert!(
        matches!(&v.authentic_timestamp, Check::Failed(why) if why.contains("can be after certificate")),
        "{v:?}"
    );
    assert!(!v.accepted());

    // Swapped: each token covers the other signature.
    for (i, (env, _, target)) in envelopes.iter().enumerate() {
        let v = verify(env, &envelopes[1 - i].1, target);
        assert!(
            matches!(&v.authentic_timestamp, Check::Failed(why) if why.contains("other bytes")),
            "{v:?}"
        );
        assert!(!v.accepted());
    }
}

/// The signer role may push Notary signatures in either envelope format: a COSE_Sign1
/// signature is one bonded can read, not "a tagged push" or an image.
#[tokio::test]
async fn the_signer_role_pushes_cose_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "dev", "developer", "apps/*");
    user(&data, "sig", "signer", "apps/*");
    let dev = as_user("dev", &password("dev"));
    let digest = crate::cosign::image(&dev, &s.url, "apps/web", "cose-role").await;
    let (key, cert) = Ca::new("Acme Root").write_signer(d, "release");
    // (JWS by the signer role is covered in auth.rs; one certificate signs a digest once.)
    for (format, media_type) in [("cose", "application/cose")] {
        let o = bonded_with_stdin(
            &[
                "sign",
                &format!("{}/apps/web@{digest}", s.addr),
                "--key",
                key.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
                "--signature-format",
                format,
                "--username",
                "sig",
                "--password-stdin",
            ],
            &password("sig"),
        );
        assert!(o.status.success(), "{format}: {}", output_text(&o));
        let r = get_json(&dev, s.v2(&format!("apps/web/referrers/{digest}"))).await;
        let mut found = false;
        for m in r["manifests"].as_array().unwrap() {
            let sig = get_json(
                &dev,
                s.v2(&format!(
                    "apps/web/manifests/{}",
                    m["digest"].as_str().unwrap()
                )),
            )
            .await;
            found |= sig["layers"][0]["mediaType"] == media_type;
        }
        assert!(found, "{format}: {r}");
    }
}
