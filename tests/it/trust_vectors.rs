//! bonded's verification against real signatures made by notation, with the results that
//! ../shared/vectors/README.md states for 2026-11-27.

use crate::common;
use bonded::trust::policy::TrustPolicyDocument;
use bonded::trust::store::TrustStores;
use bonded::trust::verify::{decide, verify_signature, Check, SignatureVerdict, Subject};
use serde_json::Value;
use std::path::PathBuf;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

fn vectors() -> PathBuf {
    common::vectors::path()
}

/// A trust store directory holding `certs` as `ca:<name>` (or another type).
fn store_with(kind: &str, name: &str, certs: &[&str]) -> (tempfile::TempDir, TrustStores) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x509").join(kind).join(name);
    std::fs::create_dir_all(&d).unwrap();
    for c in certs {
        let src = vectors().join(c);
        std::fs::copy(&src, d.join(src.file_name().unwrap())).unwrap();
    }
    let stores = bonded::cli::truststore::load(dir.path()).unwrap();
    (dir, stores)
}

fn policy(level: &str, store: &str) -> TrustPolicyDocument {
    let doc = format!(
        r#"{{"version":"1.0","trustPolicies":[{{"name":"e2e","registryScopes":["*"],
            "signatureVerification":{{"level":"{level}"}},"trustStores":["{store}"],"trustedIdentities":["*"]}}]}}"#
    );
    TrustPolicyDocument::parse(doc.as_bytes()).unwrap()
}

/// The signature in an OCI layout from notation's e2e data: envelope bytes, its media type,
/// and the subject it claims.
fn layout_signature(layout: &str) -> (Vec<u8>, String, Subject) {
    let root = vectors().join("notation-e2e/oci_layout").join(layout);
    let blob = |d: &str| {
        std::fs::read(
            root.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let manifest: Value = serde_json::from_slice(&blob(m["digest"].as_str().unwrap())).unwrap();
        let is_sig = manifest["config"]["mediaType"] == "application/vnd.cncf.notary.signature"
            || manifest["artifactType"] == "application/vnd.cncf.notary.signature";
        if is_sig {
            let layer = &manifest["layers"][0];
            let s = &manifest["subject"];
            return (
                blob(layer["digest"].as_str().unwrap()),
                layer["mediaType"].as_str().unwrap().to_string(),
                Subject {
                    media_type: s["mediaType"].as_str().unwrap().into(),
                    digest: s["digest"].as_str().unwrap().into(),
                    size: s["size"].as_u64().unwrap(),
                },
            );
        }
    }
    panic!("no signature manifest in {layout}");
}

fn verify_layout(layout: &str, level: &str, trusted: &str) -> SignatureVerdict {
    let (_dir, stores) = store_with("ca", "e2e", &[trusted]);
    let doc = policy(level, "ca:e2e");
    let (env, mt, subject) = layout_signature(layout);
    verify_signature(
        &doc.policies[0],
        &stores,
        &env,
        &mt,
        &subject,
        NOW,
        &bonded::trust::revocation::Evidence::new(),
    )
}

const E2E: &str = "notation-e2e/localkeys/e2e.crt";

#[test]
fn v1_valid_notation_signature_verifies() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_layout("e2e-valid-signature", "strict", E2E);
    assert_eq!(v.failure(), None, "{v:?}");
    assert!(v.accepted());
    assert_eq!(v.algorithm.map(|a| a.as_str()), Some("PS256"));
    assert_eq!(
        v.signer.unwrap().to_string(),
        "C=US, ST=WA, L=Seattle, O=Notary, CN=e2e"
    );
    assert_eq!(v.authentic_timestamp, Check::Passed);
}

#[test]
fn v2_wrong_trust_anchor_fails_authenticity_unless_audited() {
    if common::vectors::dir().is_none() {
        return;
    }
    for level in ["strict", "permissive"] {
        let v = verify_layout(
            "e2e-valid-signature",
            level,
            "notation-e2e/localkeys/new_e2e.crt",
        );
        assert_eq!(v.integrity, Check::Passed);
        let why = v.failure().expect("rejected");
        assert!(
            why.contains("does not lead to a root in trust store 'ca:e2e'"),
            "{why}"
        );
    }
    let v = verify_layout(
        "e2e-valid-signature",
        "audit",
        "notation-e2e/localkeys/new_e2e.crt",
    );
    assert!(matches!(v.authenticity, Check::Logged(_)), "{v:?}");
    assert!(v.accepted());
}

#[test]
fn v3_invalid_signature_fails_integrity_at_every_level_but_skip() {
    if common::vectors::dir().is_none() {
        return;
    }
    for level in ["strict", "permissive", "audit"] {
        let v = verify_layout("e2e-invalid-signature", level, E2E);
        assert!(matches!(v.integrity, Check::Failed(_)), "{level}: {v:?}");
        assert!(!v.accepted());
    }
    let (_d, stores) = store_with("ca", "e2e", &[E2E]);
    let skip = TrustPolicyDocument::parse(
        br#"{"version":"1.0","trustPolicies":[{"name":"s","registryScopes":["*"],"signatureVerification":{"level":"skip"}}]}"#,
    )
    .unwrap();
    let (env, mt, subject) = layout_signature("e2e-invalid-signature");
    let v = verify_signature(
        &skip.policies[0],
        &stores,
        &env,
        &mt,
        &subject,
        NOW,
        &bonded::trust::revocation::Evidence::new(),
    );
    assert_eq!(v.integrity, Check::NotRun);
    assert!(decide(&skip.policies[0], &[v])
        .reason
        .contains("skips verification"));
}

#[test]
fn v4_expired_signature_fails_strict_and_is_logged_by_permissive() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_layout("e2e-expired-signature", "strict", E2E);
    assert!(v.failure().expect("rejected").contains("expired"), "{v:?}");
    for level in ["permissive", "audit"] {
        let v = verify_layout("e2e-expired-signature", level, E2E);
        assert!(matches!(v.expiry, Check::Logged(_)), "{level}: {v:?}");
        assert!(v.accepted());
    }
}

#[test]
fn v5_expired_certificate_fails_authentic_timestamp_despite_signing_time() {
    if common::vectors::dir().is_none() {
        return;
    }
    let cert = "notation-e2e/localkeys/expired_e2e.crt";
    let v = verify_layout("e2e-with-expired-cert", "strict", cert);
    assert_eq!(v.integrity, Check::Passed, "valid when signed");
    assert_eq!(v.authenticity, Check::Passed);
    assert!(matches!(v.authentic_timestamp, Check::Failed(_)), "{v:?}");
    for level in ["permissive", "audit"] {
        let v = verify_layout("e2e-with-expired-cert", level, cert);
        assert!(matches!(v.authentic_timestamp, Check::Logged(_)), "{level}");
        assert!(v.accepted());
    }
}

fn mock(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join("notation-go/mock").join(name)).unwrap()
}

/// The subject notation-go's mock envelopes sign (the manifest itself is not available).
fn mock_subject() -> Subject {
    Subject {
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        digest: "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e".into(),
        size: 528,
    }
}

fn verify_mock(name: &str, level: &str, kind: &str) -> SignatureVerdict {
    let store_dir = vectors().join("notation-go/truststore");
    let stores = bonded::cli::truststore::load(&store_dir).unwrap();
    let doc = policy(level, &format!("{kind}:valid-trust-store"));
    verify_signature(
        &doc.policies[0],
        &stores,
        &mock(name),
        "application/jose+json",
        &mock_subject(),
        NOW,
        &bonded::trust::revocation::Evidence::new(),
    )
}

#[test]
fn v9_ps384_two_certificate_chain_verifies() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_mock("ca_valid_sig_env.json", "strict", "ca");
    assert_eq!(v.failure(), None, "{v:?}");
    assert_eq!(v.algorithm.map(|a| a.as_str()), Some("PS384"));
}

#[test]
fn v10_payload_that_is_not_base64url_fails_integrity() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_mock("ca_invalid_sig_env.json", "strict", "ca");
    assert!(matches!(v.integrity, Check::Failed(_)), "{v:?}");
}

#[test]
fn v11_expired_envelope_fails_strict_only() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_mock("ca_expired_sig_env.json", "strict", "ca");
    assert!(matches!(v.expiry, Check::Failed(_)), "{v:?}");
    let v = verify_mock("ca_expired_sig_env.json", "permissive", "ca");
    assert!(matches!(v.expiry, Check::Logged(_)));
    assert!(v.accepted());
}

#[test]
fn v12_signing_authority_scheme() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_mock("sa_valid_sig_env.json", "strict", "signingAuthority");
    assert_eq!(v.failure(), None, "{v:?}");
    let v = verify_mock("sa_invalid_sig_env.json", "strict", "signingAuthority");
    assert!(matches!(v.integrity, Check::Failed(_)), "{v:?}");
    let v = verify_mock("sa_expired_sig_env.json", "strict", "signingAuthority");
    assert!(matches!(v.expiry, Check::Failed(_)), "{v:?}");
    // a signing-authority signature is not trusted through a plain CA store
    let v = verify_mock("sa_valid_sig_env.json", "strict", "ca");
    assert!(matches!(v.authenticity, Check::Failed(_)), "{v:?}");
}

#[test]
fn v13_unknown_critical_header_fails_integrity() {
    if common::vectors::dir().is_none() {
        return;
    }
    let v = verify_mock("ca_plugin_sig_env.json", "strict", "ca");
    match &v.integrity {
        Check::Failed(why) => assert!(why.contains("critical header"), "{why}"),
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

#[test]
fn a_signature_over_another_subject_fails_integrity() {
    if common::vectors::dir().is_none() {
        return;
    }
    let (_dir, stores) = store_with("ca", "e2e", &[E2E]);
    let doc = policy("strict", "ca:e2e");
    let (env, mt, mut subject) = layout_signature("e2e-valid-signature");
    subject.size += 1;
    let v = verify_signature(
        &doc.policies[0],
        &stores,
        &env,
        &mt,
        &subject,
        NOW,
        &bonded::trust::revocation::Evidence::new(),
    );
    match v.integrity {
        Check::Failed(why) => assert!(why.contains("not the subject"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn k_of_n_counts_distinct_signers() {
    if common::vectors::dir().is_none() {
        return;
    }
    let (_dir, stores) = store_with("ca", "e2e", &[E2E]);
    let doc = TrustPolicyDocument::parse(
        br#"{"version":"1.0","trustPolicies":[{"name":"prod","registryScopes":["*"],
            "signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],
            "trustedIdentities":["x509.subject: C=US, ST=WA, O=Notary, CN=e2e", "x509.subject: C=US, ST=WA, O=Notary, CN=other"],
            "signaturesRequired":2}]}"#,
    )
    .unwrap();
    let p = &doc.policies[0];
    let (env, mt, subject) = layout_signature("e2e-valid-signature");
    let one = verify_signature(
        p,
        &stores,
        &env,
        &mt,
        &subject,
        NOW,
        &bonded::trust::revocation::Evidence::new(),
    );
    assert!(one.accepted());
    // the same signer twice still counts once
    let d = decide(p, &[one.clone(), one]);
    assert!(!d.admitted);
    assert!(
        d.reason.contains("needs 2 signatures from distinct trusted identities; found 1: C=US, ST=WA, L=Seattle, O=Notary, CN=e2e"),
        "{}",
        d.reason
    );
    let none = decide(p, &[]);
    assert!(none.reason.contains("found 0: none"), "{}", none.reason);
}

// ---- RFC 3161 timestamp countersignatures (V21, V23, V25–V27: notation-go's
// verifier/timestamp_test.go; policy trustStores ca:valid-trust-store + tsa:<store>)

/// The stores notation-go's timestamp tests use: every certificate of its
/// `ca/valid-trust-store`, and `tsa/<tsa>` when given.
fn timestamp_stores(tsa: Option<&str>) -> (tempfile::TempDir, TrustStores) {
    let base = vectors().join("notation-go/timestamp/truststore/x509");
    let dir = tempfile::tempdir().unwrap();
    let copy = |kind: &str, name: &str| {
        let to = dir.path().join("x509").join(kind).join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(base.join(kind).join(name)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    };
    copy("ca", "valid-trust-store");
    if let Some(t) = tsa {
        copy("tsa", t);
    }
    let stores = bonded::cli::truststore::load(dir.path()).unwrap();
    (dir, stores)
}

/// A JWS of notation-go's timestamp test data verified under strict with
/// `verifyTimestamp` and the tsa store given, at `now`. Authenticity is only logged:
/// notation-go's tests check the authentic timestamp alone, and the leaves of these
/// vectors do not all lead to a root of `ca/valid-trust-store`.
fn verify_timestamped(
    file: &str,
    tsa: Option<&str>,
    verify_timestamp: &str,
    now: OffsetDateTime,
) -> SignatureVerdict {
    let env = std::fs::read(vectors().join("notation-go/timestamp/sigEnv").join(file)).unwrap();
    // COSE_Sign1 (CBOR tag 18) or JWS; the subject is what the payload names.
    let (media_type, parsed) = if env.first() == Some(&0xd2) {
        (
            "application/cose",
            bonded::trust::envelope::parse_cose(&env).unwrap(),
        )
    } else {
        (
            "application/jose+json",
            bonded::trust::envelope::parse(&env).unwrap(),
        )
    };
    let subject = Subject {
        media_type: parsed.target.media_type.clone(),
        digest: parsed.target.digest.clone(),
        size: parsed.target.size,
    };
    let mut stores = vec!["\"ca:valid-trust-store\"".to_string()];
    if let Some(t) = tsa {
        stores.push(format!("\"tsa:{t}\""));
    }
    // Revocation is skipped: these vectors' GlobalSign TSA certificates name OCSP
    // responders and CRLs on the Internet, which tests (offline) cannot ask; what is
    // checked here is the timestamp rules. (With the check on and nothing fetched, the
    // TSA's status is unavailable and strict refuses, as it should.)
    let doc = format!(
        r#"{{"version":"1.0","trustPolicies":[{{"name":"ts","registryScopes":["*"],
            "signatureVerification":{{"level":"strict","verifyTimestamp":"{verify_timestamp}",
                "override":{{"authenticity":"log","revocation":"skip"}}}},
            "trustStores":[{}],"trustedIdentities":["*"]}}]}}"#,
        stores.join(",")
    );
    let doc = TrustPolicyDocument::parse(doc.as_bytes()).unwrap();
    let (_dir, stores) = timestamp_stores(tsa);
    verify_signature(
        &doc.policies[0],
        &stores,
        &env,
        media_type,
        &subject,
        now,
        &bonded::trust::revocation::Evidence::new(),
    )
}

/// V21, V23: a JWS with a timestamp verifies, also once its signing certificate has
/// expired (the timestamp, not the signer's claimed signing time, proves when), under
/// `always` and `afterCertExpiry`; far in the future too, since nothing depends on "now".
#[test]
fn v21_v23_timestamped_signatures_verify_after_their_certificate_expires() {
    if common::vectors::dir().is_none() {
        return;
    }
    let later = datetime!(2040-01-01 0:00 UTC);
    for (file, verify_timestamp, now) in [
        ("jwsWithTimestamp.sig", "always", NOW),
        ("jwsExpiredWithTimestamp.sig", "always", NOW),
        ("jwsExpiredWithTimestamp.sig", "afterCertExpiry", NOW),
        ("jwsExpiredWithTimestamp.sig", "always", later),
        // V22, V23 in COSE_Sign1
        ("coseWithTimestamp.sig", "always", NOW),
        ("coseExpiredWithTimestamp.sig", "always", NOW),
        ("coseExpiredWithTimestamp.sig", "afterCertExpiry", NOW),
    ] {
        let v = verify_timestamped(file, Some("test-timestamp"), verify_timestamp, now);
        assert_eq!(v.integrity, Check::Passed, "{file}: {v:?}");
        assert_eq!(
            v.authentic_timestamp,
            Check::Passed,
            "{file} {verify_timestamp}: {v:?}"
        );
    }
    // jwsWithTimestamp's chain is also trusted: the whole verdict is accepted.
    let v = verify_timestamped(
        "jwsWithTimestamp.sig",
        Some("test-timestamp"),
        "always",
        NOW,
    );
    assert!(v.accepted(), "{v:?}");
    // Without a tsa store, the expired certificate is judged at "now" and fails (V24 for
    // COSE: "verification time is after certificate ... validity period").
    for file in [
        "jwsExpiredWithTimestamp.sig",
        "coseExpiredWithTimestamp.sig",
    ] {
        let v = verify_timestamped(file, None, "always", NOW);
        assert!(
            matches!(&v.authentic_timestamp, Check::Failed(why) if why.contains("not valid at")),
            "{file}: {v:?}"
        );
    }
}

/// A COSE_Sign1 envelope verifies over exactly its bytes: a flipped signature byte, or a
/// changed payload byte, fails integrity; JWS bytes under the COSE media type too.
#[test]
fn cose_envelopes_fail_integrity_when_touched() {
    if common::vectors::dir().is_none() {
        return;
    }
    let dir = vectors().join("notation-go/timestamp/sigEnv");
    let env = std::fs::read(dir.join("coseWithTimestamp.sig")).unwrap();
    let parsed = bonded::trust::envelope::parse_cose(&env).unwrap();
    let subject = Subject {
        media_type: parsed.target.media_type.clone(),
        digest: parsed.target.digest.clone(),
        size: parsed.target.size,
    };
    let doc = policy("strict", "ca:valid-trust-store");
    let (_dir, stores) = timestamp_stores(None);
    let check = |bytes: &[u8], media_type: &str| {
        verify_signature(
            &doc.policies[0],
            &stores,
            bytes,
            media_type,
            &subject,
            NOW,
            &bonded::trust::revocation::Evidence::new(),
        )
        .integrity
    };
    assert_eq!(check(&env, "application/cose"), Check::Passed);
    let mut sig = env.clone();
    let last = sig.len() - 3;
    sig[last] ^= 1;
    assert!(matches!(check(&sig, "application/cose"), Check::Failed(_)));
    // The payload's digest text, one hex digit changed (the CBOR stays well-formed).
    let hex = parsed
        .target
        .digest
        .trim_start_matches("sha256:")
        .as_bytes()
        .to_vec();
    let at = env
        .windows(hex.len())
        .position(|w| w == hex.as_slice())
        .unwrap();
    let mut payload = env.clone();
    payload[at] = if payload[at] == b'0' { b'1' } else { b'0' };
    assert!(matches!(
        check(&payload, "application/cose"),
        Check::Failed(_)
    ));
    let jws = std::fs::read(dir.join("jwsWithTimestamp.sig")).unwrap();
    assert!(matches!(check(&jws, "application/cose"), Check::Failed(_)));
}

/// V25: with a tsa store and `verifyTimestamp: always`, a signature without a timestamp
/// fails; V26: a timestamp outside the leaf's validity fails. (Both vectors' chains are
/// not valid at their claimed signing times, which bonded's integrity check refuses
/// first; the missing-timestamp rule is shown on V1's signature.)
#[test]
fn v25_v26_missing_or_misplaced_timestamps_fail() {
    if common::vectors::dir().is_none() {
        return;
    }
    // V25's own envelope already fails integrity here: its chain is not valid at the
    // signing time it claims (a certificate valid from 2099). It fails, as expected.
    let v = verify_timestamped(
        "withoutTimestamp.sig",
        Some("test-timestamp"),
        "always",
        NOW,
    );
    assert!(!v.accepted(), "{v:?}");
    // The rule itself, on V1's untimestamped notation signature: a tsa store listed,
    // no timestamp, refused for that reason; with afterCertExpiry (its certificate is
    // valid until 2122) it verifies.
    let (_dir, stores) = {
        let dir = tempfile::tempdir().unwrap();
        for (kind, name, file) in [
            ("ca", "e2e", vectors().join(E2E)),
            (
                "tsa",
                "test-timestamp",
                vectors().join(
                    "notation-go/timestamp/truststore/x509/tsa/test-timestamp/globalsignRoot.cer",
                ),
            ),
        ] {
            let d = dir.path().join("x509").join(kind).join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(&file, d.join(file.file_name().unwrap())).unwrap();
        }
        let stores = bonded::cli::truststore::load(dir.path()).unwrap();
        (dir, stores)
    };
    let (env, mt, subject) = layout_signature("e2e-valid-signature");
    for (verify_timestamp, verifies) in [("always", false), ("afterCertExpiry", true)] {
        let doc = TrustPolicyDocument::parse(
            format!(
                r#"{{"version":"1.0","trustPolicies":[{{"name":"e2e","registryScopes":["*"],
                "signatureVerification":{{"level":"strict","verifyTimestamp":"{verify_timestamp}"}},
                "trustStores":["ca:e2e","tsa:test-timestamp"],"trustedIdentities":["*"]}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let v = verify_signature(
            &doc.policies[0],
            &stores,
            &env,
            &mt,
            &subject,
            NOW,
            &bonded::trust::revocation::Evidence::new(),
        );
        assert_eq!(v.accepted(), verifies, "{verify_timestamp}: {v:?}");
        if !verifies {
            assert!(
                matches!(&v.authentic_timestamp, Check::Failed(why)
                    if why.contains("no timestamp countersignature was found")),
                "{v:?}"
            );
        }
    }
    // V26: its timestamp (2024) is before its certificate's validity (from 2099). Here
    // it already fails integrity, as V25 does: the signing time it claims (2024) is
    // outside that validity too.
    let v = verify_timestamped(
        "timestampBeforeNotBefore.sig",
        Some("test-timestamp"),
        "always",
        NOW,
    );
    assert!(!v.accepted(), "{v:?}");
    // V26's COSE case: its timestamp is after the certificate's validity.
    let v = verify_timestamped(
        "timestampAfterNotAfter.sig",
        Some("test-timestamp"),
        "always",
        NOW,
    );
    assert!(!v.accepted(), "{v:?}");
}

/// V27: TSA stores that do not fit fail: another authority's root, a root that is not a
/// CA, a CA that is not self-issued.
#[test]
fn v27_tsa_stores_that_do_not_fit_fail() {
    if common::vectors::dir().is_none() {
        return;
    }
    for (tsa, why) in [
        ("test-mismatch", "does not verify"),
        ("test-nonCA", "not a self-issued CA"),
        ("test-nonSelfIssued", "not a self-issued CA"),
    ] {
        let v = verify_timestamped("jwsWithTimestamp.sig", Some(tsa), "always", NOW);
        assert!(
            matches!(&v.authentic_timestamp, Check::Failed(w) if w.contains(why)),
            "{tsa}: {v:?}"
        );
        assert!(!v.accepted(), "{tsa}");
    }
}
