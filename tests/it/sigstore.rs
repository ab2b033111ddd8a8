//! Keyless cosign signatures and Sigstore bundles end to end, against a Sigstore instance
//! made in the test (common::sigstore): the gate publishes a waiting tag once a trusted
//! identity's keyless signature (cosign's `.sig` annotations) or bundle referrer arrives,
//! verified at its log time although its ten-minute certificate expired long ago; and it
//! refuses, storing nothing, an untrusted identity, a log entry of another signature, a
//! bundle of another image, an entry from a log the trusted root does not list.
//! `bonded verify` agrees, on bonded and on CNCF Distribution.

use crate::common;

use common::distribution::start_distribution;
use common::sigstore::{sign_prehash, Signer, Sigstore};
use common::*;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::path::Path;
use time::{Duration, OffsetDateTime};

const ISSUER: &str = "https://issuer.sigstore.test";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A registry whose `registry.test/prod/*` statement trusts `identities` of the
/// test's Sigstore (`sigstore:test`).
fn gate(dir: &Path, sigstore: &Sigstore, identities: Value) -> Server {
    let store = dir.join("truststore");
    sigstore.write_store(&store, "test");
    std::fs::write(
        dir.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{
            "name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["sigstore:test"],
            "trustedIdentities": identities}]})
        .to_string(),
    )
    .unwrap();
    Server::start_in(
        &dir.join("data"),
        &[
            "--trust-policy",
            dir.join("policy.json").to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    )
}

/// The simple-signing payload cosign signs for `digest`.
fn payload(repo: &str, digest: &str) -> Vec<u8> {
    json!({"critical": {"identity": {"docker-reference": format!("registry.test/{repo}")},
        "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
        "optional": null})
    .to_string()
    .into_bytes()
}

/// A keyless signature layer: `signer` signs the payload of `digest`, logged at `at`;
/// the payload blob is pushed to `base`. Returns the layer and the Rekor annotation.
async fn keyless_layer(
    c: &reqwest::Client,
    base: &str,
    sigstore: &Sigstore,
    signer: &Signer,
    repo: &str,
    digest: &str,
    at: OffsetDateTime,
) -> Value {
    let payload = payload(repo, digest);
    let signature = signer.sign(&payload);
    let body = Sigstore::hashedrekord(
        &sha2::Sha256::digest(&payload),
        &signature,
        &signer.cert_pem,
    );
    let entry = sigstore.log(&body, at);
    let pd = common::distribution::put_blob(c, base, repo, &payload).await;
    json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": pd,
        "size": payload.len(), "annotations": {
            "dev.cosignproject.cosign/signature": b64(&signature),
            "dev.sigstore.cosign/certificate": signer.cert_pem,
            "dev.sigstore.cosign/bundle": Sigstore::annotation(&entry)}})
}

/// Pushes a `.sig` manifest of `layers` for `digest` to the registry at `base`.
async fn put_sig(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    digest: &str,
    layers: Vec<Value>,
) -> u16 {
    let config = common::distribution::put_blob(
        c,
        base,
        repo,
        br#"{"architecture":"","os":"","config":{}}"#,
    )
    .await;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 39},
        "layers": layers});
    let hex = digest.trim_start_matches("sha256:");
    c.put(format!("{base}/v2/{repo}/manifests/sha256-{hex}.sig"))
        .header("Content-Type", OCI_MANIFEST)
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Pushes `bundle` as a Sigstore bundle referrer of `subject` (as cosign's new bundle
/// format does); returns the status.
async fn put_bundle(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    subject: &str,
    bundle: &[u8],
) -> u16 {
    let config = push_blob(c, s, repo, b"{}").await;
    let layer = push_blob(c, s, repo, bundle).await;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": layer, "size": bundle.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}});
    let bytes = serde_json::to_vec(&m).unwrap();
    c.put(s.v2(&format!("{repo}/manifests/{}", sha256(&bytes))))
        .header("Content-Type", OCI_MANIFEST)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn keyless_signatures_publish_for_trusted_identities_at_their_log_time() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sigstore = Sigstore::new();
    let s = gate(
        d,
        &sigstore,
        json!([format!(
            "sigstore: issuer={ISSUER}; subject=alice@example.com"
        )]),
    );
    let c = client();
    let base = s.url.clone();
    let repo = "prod/app";
    // Signed an hour ago: the certificate expired fifty minutes ago.
    let then = OffsetDateTime::now_utc() - Duration::hours(1);
    let alice = sigstore.signer(ISSUER, "alice@example.com", then);
    let mallory = sigstore.signer(ISSUER, "mallory@example.com", then);
    let google_alice = sigstore.signer("https://accounts.google.com", "alice@example.com", then);

    let a = crate::cosign::image(&c, &base, repo, "a").await;
    assert_eq!(
        crate::cosign::status(&c, &s, repo, "v1").await,
        404,
        "waits for signatures"
    );

    // Untrusted identities: refused, nothing stored, the tag still waits.
    for who in [&mallory, &google_alice] {
        let layer = keyless_layer(
            &c,
            &base,
            &sigstore,
            who,
            repo,
            &a,
            then + Duration::minutes(1),
        )
        .await;
        assert_eq!(put_sig(&c, &base, repo, &a, vec![layer]).await, 403);
    }
    let hex = a.trim_start_matches("sha256:");
    assert_eq!(
        crate::cosign::status(&c, &s, repo, &format!("sha256-{hex}.sig")).await,
        404
    );
    assert_eq!(crate::cosign::status(&c, &s, repo, "v1").await, 404);

    // A log entry made for alice's signature of another image, carried by mallory's
    // layer over this one: it names another signature and certificate.
    let other = crate::cosign::image(&c, &base, "prod/other", "o").await;
    let alice_other = keyless_layer(&c, &base, &sigstore, &alice, "prod/other", &other, then).await;
    let mut forged = keyless_layer(&c, &base, &sigstore, &mallory, repo, &a, then).await;
    forged["annotations"]["dev.sigstore.cosign/bundle"] =
        alice_other["annotations"]["dev.sigstore.cosign/bundle"].clone();
    forged["annotations"]["dev.sigstore.cosign/certificate"] = json!(alice.cert_pem);
    assert_eq!(put_sig(&c, &base, repo, &a, vec![forged]).await, 403);
    // An entry logged by a log the trusted root does not list.
    let elsewhere = Sigstore::new();
    let foreign = keyless_layer(&c, &base, &elsewhere, &alice, repo, &a, then).await;
    assert_eq!(put_sig(&c, &base, repo, &a, vec![foreign]).await, 403);
    // Logged after the certificate expired: the chain is checked at the log's time.
    let late = keyless_layer(
        &c,
        &base,
        &sigstore,
        &alice,
        repo,
        &a,
        then + Duration::minutes(30),
    )
    .await;
    assert_eq!(put_sig(&c, &base, repo, &a, vec![late]).await, 403);
    assert_eq!(crate::cosign::status(&c, &s, repo, "v1").await, 404);

    // alice's keyless signature, logged while her certificate was valid: published.
    let layer = keyless_layer(
        &c,
        &base,
        &sigstore,
        &alice,
        repo,
        &a,
        then + Duration::minutes(2),
    )
    .await;
    assert_eq!(put_sig(&c, &base, repo, &a, vec![layer]).await, 201);
    assert_eq!(crate::cosign::status(&c, &s, repo, "v1").await, 200);

    // The same by a bundle referrer (cosign's new bundle format), for a second image.
    let b = crate::cosign::image_as(&c, &base, repo, "b", "v2").await;
    assert_eq!(crate::cosign::status(&c, &s, repo, "v2").await, 404);
    // mallory's bundle: refused.
    let bundle = sigstore.sign_digest_as_bundle(&mallory, &b, then);
    assert_eq!(put_bundle(&c, &s, repo, &b, &bundle).await, 403);
    // alice's bundle for image a, attached to b: it signs another image.
    let for_a = sigstore.sign_digest_as_bundle(&alice, &a, then);
    assert_eq!(put_bundle(&c, &s, repo, &b, &for_a).await, 403);
    // A bundle whose entry names another digest than its message signature.
    let digest_b = hex::decode(b.trim_start_matches("sha256:")).unwrap();
    let sig_b = sign_prehash(&alice.key, &digest_b);
    let entry_a = sigstore.log(
        &Sigstore::hashedrekord(
            &hex::decode(a.trim_start_matches("sha256:")).unwrap(),
            &sig_b,
            &alice.cert_pem,
        ),
        then,
    );
    let mixed = Sigstore::message_bundle(&alice, &digest_b, &sig_b, &entry_a);
    assert_eq!(put_bundle(&c, &s, repo, &b, &mixed).await, 403);
    assert_eq!(crate::cosign::status(&c, &s, repo, "v2").await, 404);
    // alice's own bundle for b: published.
    let bundle = sigstore.sign_digest_as_bundle(&alice, &b, then + Duration::minutes(1));
    assert_eq!(put_bundle(&c, &s, repo, &b, &bundle).await, 201);
    assert_eq!(crate::cosign::status(&c, &s, repo, "v2").await, 200);
    let r = get_json(&c, format!("{base}/v2/{repo}/referrers/{b}")).await;
    assert_eq!(
        r["manifests"][0]["artifactType"], "application/vnd.dev.sigstore.bundle.v0.3+json",
        "{r}"
    );

    // bonded verify agrees, from a trust store and policy of its own.
    let client_store = d.join("client-store");
    sigstore.write_store(&client_store, "test");
    let policy = |identity: &str| {
        let p = d.join(format!(
            "policy-{}.json",
            hex::encode(&sha2::Sha256::digest(identity.as_bytes())[..4])
        ));
        std::fs::write(
            &p,
            json!({"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"}, "trustStores": ["sigstore:test"],
                "trustedIdentities": [identity]}]})
            .to_string(),
        )
        .unwrap();
        p
    };
    let trusted = policy(&format!(
        r"sigstore: issuer={ISSUER}; subject~=alice@example\.com"
    ));
    let others = policy(&format!(
        "sigstore: issuer={ISSUER}; subject=bob@example.com"
    ));
    for tag in ["v1", "v2"] {
        let image = format!("{}/{repo}:{tag}", s.addr);
        let o = verify_image(&image, &trusted, &client_store, &[]);
        assert_eq!(o.status.code(), Some(0), "{tag}: {}", output_text(&o));
        assert!(
            output_text(&o).contains("alice@example.com"),
            "{}",
            output_text(&o)
        );
        let o = verify_image(&image, &others, &client_store, &[]);
        assert_ne!(o.status.code(), Some(0), "{tag}: {}", output_text(&o));
    }
}

/// `bonded verify` reads keyless `.sig` signatures from CNCF Distribution too: two
/// people's signatures meet 2 of {alice, bob}; alice signing twice (two certificates, two
/// keys, as Fulcio issues them) does not.
#[tokio::test]
async fn bonded_verify_counts_keyless_identities_on_distribution() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dist = start_distribution(&d.join("dist")).await;
    let c = client();
    let base = format!("http://{}", dist.addr);
    let sigstore = Sigstore::new();
    let then = OffsetDateTime::now_utc() - Duration::days(3);
    let alice = sigstore.signer(ISSUER, "alice@example.com", then);
    let alice_again = sigstore.signer(ISSUER, "alice@example.com", then + Duration::minutes(20));
    let bob = sigstore.signer(ISSUER, "bob@example.com", then + Duration::minutes(20));
    let store = d.join("store");
    sigstore.write_store(&store, "test");
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        json!({"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["sigstore:test"],
            "trustedIdentities": [format!("sigstore: issuer={ISSUER}; subject=alice@example.com"),
                format!("sigstore: issuer={ISSUER}; subject=bob@example.com")],
            "signaturesRequired": 2}]})
        .to_string(),
    )
    .unwrap();
    for (i, (first, second, verifies)) in [(&alice, &alice_again, false), (&alice, &bob, true)]
        .into_iter()
        .enumerate()
    {
        let repo = format!("acme/app{i}");
        let digest = crate::cosign::image(&c, &base, &repo, &format!("k{i}")).await;
        let l1 = keyless_layer(
            &c,
            &base,
            &sigstore,
            first,
            &repo,
            &digest,
            then + Duration::minutes(1),
        )
        .await;
        let l2 = keyless_layer(
            &c,
            &base,
            &sigstore,
            second,
            &repo,
            &digest,
            then + Duration::minutes(21),
        )
        .await;
        assert_eq!(put_sig(&c, &base, &repo, &digest, vec![l1, l2]).await, 201);
        let o = verify_image(&format!("{}/{repo}:v1", dist.addr), &policy, &store, &[]);
        assert_eq!(
            o.status.code() == Some(0),
            verifies,
            "{i}: {}",
            output_text(&o)
        );
    }
}

/// On a registry without the referrers API (CNCF Distribution), cosign's new bundle format
/// keeps the referrers tag schema: the bundle manifest, and the `sha256-<hex>` index
/// listing it. `bonded verify` finds it there: alice's bundle verifies, a bundle of
/// another image listed for this one does not.
#[tokio::test]
async fn bonded_verify_reads_bundles_through_the_referrers_tag_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dist = start_distribution(&d.join("dist")).await;
    let c = client();
    let base = format!("http://{}", dist.addr);
    let sigstore = Sigstore::new();
    let then = OffsetDateTime::now_utc() - Duration::days(1);
    let alice = sigstore.signer(ISSUER, "alice@example.com", then);
    let store = d.join("store");
    sigstore.write_store(&store, "test");
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        json!({"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["sigstore:test"],
            "trustedIdentities": [format!("sigstore: issuer={ISSUER}; subject=alice@example.com")]}]})
        .to_string(),
    )
    .unwrap();
    let other = crate::cosign::image(&c, &base, "acme/other", "x").await;
    for (repo, signs_itself) in [("acme/good", true), ("acme/moved", false)] {
        let digest = crate::cosign::image(&c, &base, repo, repo).await;
        let signed = if signs_itself { &digest } else { &other };
        let bundle = sigstore.sign_digest_as_bundle(&alice, signed, then + Duration::minutes(1));
        let put = |reference: String, media_type: &'static str, body: Vec<u8>| {
            let c = c.clone();
            let url = format!("{base}/v2/{repo}/manifests/{reference}");
            async move {
                c.put(url)
                    .header("Content-Type", media_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let layer = common::distribution::put_blob(&c, &base, repo, &bundle).await;
        let config = common::distribution::put_blob(&c, &base, repo, b"{}").await;
        let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": layer, "size": bundle.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1}}))
        .unwrap();
        assert_eq!(put(sha256(&m), OCI_MANIFEST, m.clone()).await, 201);
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(&m), "size": m.len(),
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]}))
        .unwrap();
        let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
        assert_eq!(put(tag, OCI_INDEX, index).await, 201);
        let o = verify_image(&format!("{}/{repo}:v1", dist.addr), &policy, &store, &[]);
        assert_eq!(
            o.status.code() == Some(0),
            signs_itself,
            "{repo}: {}",
            output_text(&o)
        );
        if !signs_itself {
            // Found, and refused for what it signs (not merely missing).
            assert!(
                output_text(&o).contains("signs another artifact"),
                "{}",
                output_text(&o)
            );
        }
    }
}
