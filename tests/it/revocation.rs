//! Revocation end to end, with a real CA (openssl: `ca -revoke`, `ca -gencrl`) whose CRLs
//! a test HTTP server publishes (common::crl): the gate and `bonded verify` fetch the list
//! each signing certificate names; under `strict` a revoked certificate, an expired list,
//! a list signed by another key under the issuer's name, another CA's list and an
//! unreachable distribution point all refuse the signature (and store nothing), under
//! `permissive` they are logged and the signature counts; an image signed while its
//! certificate was good stops being pullable under `bonded.enforceOnPull` once the next
//! list revokes it.

use crate::common;

use common::crl::CrlCa;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn sign(image: &str, key: &Path, chain: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bonded"))
        .arg("sign")
        .arg(image)
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(chain)
        .output()
        .unwrap()
}

/// Policies `prod` (strict) and `lax` (permissive) for `HOST/prod/*` and `HOST/lax/*`.
fn policy_file(dir: &Path, host: &str) -> std::path::PathBuf {
    let statement = |name: &str, scope: &str, level: &str| {
        json!({"name": name, "registryScopes": [scope],
            "signatureVerification": {"level": level}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["*"], "bonded.enforceOnPull": true})
    };
    // strict, but revocation only logged: the Notary Project's custom level.
    let mut custom = statement("custom", &format!("{host}/custom/*"), "strict");
    custom["signatureVerification"]["override"] = json!({"revocation": "log"});
    let p = dir.join(format!("policy-{}.json", host.replace(':', "_")));
    std::fs::write(
        &p,
        json!({"version": "1.0", "trustPolicies": [
            statement("prod", &format!("{host}/prod/*"), "strict"),
            statement("lax", &format!("{host}/lax/*"), "permissive"),
            custom,
        ]})
        .to_string(),
    )
    .unwrap();
    p
}

/// A registry in `d/data` enforcing `policy` with the trust stores in `store`, for the
/// host name `registry.test`.
fn gate(d: &Path, policy: &Path, store: &Path) -> Server {
    Server::start_in(
        &d.join("data"),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn revoked_and_unverifiable_certificates_are_refused_under_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = CrlCa::start(d, "acme", "Acme Root");
    // Same name as Acme's root, another key: a forger's list.
    let forger = CrlCa::create(d, "forger", "Acme Root");
    let other = CrlCa::create(d, "other", "Other Root");
    let store = d.join("truststore");
    ca.write_store(&store, "acme");

    // Each signer names its own distribution point.
    let good = ca.signer("good", &ca.url("good.crl"));
    let revoked = ca.signer("revoked", &ca.url("revoked.crl"));
    let stale = ca.signer("stale", &ca.url("stale.crl"));
    let forged = ca.signer("forged", &ca.url("forged.crl"));
    let foreign = ca.signer("foreign", &ca.url("foreign.crl"));
    let down = ca.signer(
        "down",
        &format!("http://127.0.0.1:{}/acme.crl", closed_port()),
    );
    ca.revoke("revoked", "keyCompromise", None);
    ca.publish(&ca, "good.crl", 86_400);
    ca.publish(&ca, "revoked.crl", 86_400);
    ca.publish(&ca, "stale.crl", 1);
    forger.publish(&ca, "forged.crl", 86_400);
    other.publish(&ca, "foreign.crl", 86_400);
    // The stale list's nextUpdate passes.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let policy = policy_file(d, "registry.test");
    let s = gate(d, &policy, &store);
    let c = client();

    // A certificate on no list: published.
    crate::cosign::image(&c, &s.url, "prod/good", "good").await;
    let o = sign(&format!("{}/prod/good:v1", s.addr), &good.0, &good.1);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(crate::cosign::status(&c, &s, "prod/good", "v1").await, 200);

    // Each of these is refused, stores nothing, and says why.
    let cases: [(&str, &(std::path::PathBuf, std::path::PathBuf), &str); 5] = [
        ("revoked", &revoked, "was revoked on"),
        ("stale", &stale, "expired at"),
        (
            "forged",
            &forged,
            "is not signed by the certificate's issuer",
        ),
        ("foreign", &foreign, "is issued by"),
        ("down", &down, "unreachable"),
    ];
    for (name, (key, chain), why) in cases {
        let repo = format!("prod/{name}");
        let digest = crate::cosign::image(&c, &s.url, &repo, name).await;
        let o = sign(&format!("{}/{repo}:v1", s.addr), key, chain);
        let text = output_text(&o);
        assert!(!o.status.success(), "{name}: {text}");
        assert!(text.contains(why), "{name}: expected '{why}' in: {text}");
        assert_eq!(
            crate::cosign::status(&c, &s, &repo, "v1").await,
            404,
            "{name}: the tag still waits"
        );
        let referrers = get_json(&c, s.v2(&format!("{repo}/referrers/{digest}"))).await;
        assert_eq!(
            referrers["manifests"].as_array().unwrap().len(),
            0,
            "{name}: a refused signature is not stored"
        );
    }

    // Permissive logs revocation failures: the revoked and the unreachable both count; so
    // does strict with the revocation check overridden to log.
    for (ns, name, (key, chain)) in [
        ("lax", "revoked", &revoked),
        ("lax", "down", &down),
        ("custom", "revoked", &revoked),
    ] {
        let repo = format!("{ns}/{name}");
        crate::cosign::image(&c, &s.url, &repo, name).await;
        let o = sign(&format!("{}/{repo}:v1", s.addr), key, chain);
        assert!(o.status.success(), "{name}: {}", output_text(&o));
        assert_eq!(crate::cosign::status(&c, &s, &repo, "v1").await, 200);
    }

    // bonded verify, on its own, reads the lists the same way.
    let policy = policy_file(d, &s.addr);
    let o = verify_image(
        &format!("{}/prod/good:v1", s.addr),
        &policy,
        &store,
        &["--output", "json"],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["signatures"][0]["checks"]["revocation"]["outcome"], "passed",
        "{report}"
    );
    let o = verify_image(
        &format!("{}/lax/revoked:v1", s.addr),
        &policy,
        &store,
        &["--output", "json"],
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let revocation = &report["signatures"][0]["checks"]["revocation"];
    assert_eq!(revocation["outcome"], "logged", "{report}");
    assert!(
        revocation["reason"]
            .as_str()
            .unwrap()
            .contains("keyCompromise"),
        "{report}"
    );
}

#[tokio::test]
async fn an_image_stops_being_pullable_once_its_signer_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = CrlCa::start(d, "acme", "Acme Root");
    let store = d.join("truststore");
    ca.write_store(&store, "acme");
    let (key, chain) = ca.signer("release", &ca.url("acme.crl"));
    // A list current for a few seconds: the verdict made from it holds until then.
    ca.publish(&ca, "acme.crl", 5);
    let published = std::time::Instant::now();
    let policy = policy_file(d, "registry.test");
    let s = gate(d, &policy, &store);
    let c = client();
    let digest = crate::cosign::image(&c, &s.url, "prod/app", "app").await;
    let o = sign(&format!("{}/prod/app:v1", s.addr), &key, &chain);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(crate::cosign::status(&c, &s, "prod/app", "v1").await, 200);

    // The CA revokes the key; its next list says so.
    ca.revoke("release", "keyCompromise", None);
    ca.publish(&ca, "acme.crl", 86_400);
    let wait = std::time::Duration::from_secs(6).saturating_sub(published.elapsed());
    tokio::time::sleep(wait).await;
    // (By digest: the tag's earlier decision may be reused for a few seconds.)
    let res = c
        .get(s.v2(&format!("prod/app/manifests/{digest}")))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body = res.text().await.unwrap();
    assert!(body.contains("revoked"), "{body}");
}

/// OCSP, answered by `openssl ocsp` from the CA's own database: a good answer admits, a
/// revoked one refuses even while the CA's list (older) still shows the certificate good,
/// an unknown certificate and an answer signed by a responder another CA certified settle
/// nothing, and an unreachable responder falls back to the certificate's list.
#[tokio::test]
async fn ocsp_answers_come_before_the_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = CrlCa::start(d, "acme", "Acme Root");
    let store = d.join("truststore");
    ca.write_store(&store, "acme");
    let (ocsp, rogue) = (ca.url("ocsp"), ca.url("ocsp-rogue"));
    let crl = ca.url("acme.crl");
    let good = ca.signer_with("good", None, Some(&ocsp));
    let revoked = ca.signer_with("revoked", None, Some(&ocsp));
    let first = ca.signer_with("first", Some(&crl), Some(&ocsp));
    let unknown = ca.unrecorded_signer("unknown", &ocsp);
    let forged = ca.signer_with("forged", None, Some(&rogue));
    let noeku = ca.signer_with("noeku-answered", None, Some(&ca.url("ocsp-noeku")));
    let replayed = ca.signer_with("other-answered", None, Some(&ca.url("ocsp-other")));
    let down = format!("http://127.0.0.1:{}/ocsp", closed_port());
    let fallback = ca.signer_with("fallback", Some(&crl), Some(&down));
    // The list is made before the revocations: it still shows every certificate good.
    ca.publish(&ca, "acme.crl", 86_400);
    ca.revoke("revoked", "keyCompromise", None);
    ca.revoke("first", "keyCompromise", None);

    let policy = policy_file(d, "registry.test");
    let s = gate(d, &policy, &store);
    let c = client();
    for (name, (key, chain)) in [("good", &good), ("fallback", &fallback)] {
        let repo = format!("prod/{name}");
        crate::cosign::image(&c, &s.url, &repo, name).await;
        let o = sign(&format!("{}/{repo}:v1", s.addr), key, chain);
        assert!(o.status.success(), "{name}: {}", output_text(&o));
        assert_eq!(
            crate::cosign::status(&c, &s, &repo, "v1").await,
            200,
            "{name}"
        );
    }
    let cases: [(&str, &(std::path::PathBuf, std::path::PathBuf), &str); 6] = [
        ("revoked", &revoked, "says its issuer's OCSP responder"),
        ("first", &first, "says its issuer's OCSP responder"),
        ("unknown", &unknown, "status unknown"),
        ("forged", &forged, "did not certify for OCSP signing"),
        // Signed by a certificate of the issuer's that may not answer OCSP.
        ("noeku", &noeku, "did not certify for OCSP signing"),
        // A genuine, current "good" about another certificate of the same issuer.
        ("replayed", &replayed, "answered about other certificates"),
    ];
    for (name, (key, chain), why) in cases {
        let repo = format!("prod/{name}");
        crate::cosign::image(&c, &s.url, &repo, name).await;
        let o = sign(&format!("{}/{repo}:v1", s.addr), key, chain);
        let text = output_text(&o);
        assert!(!o.status.success(), "{name}: {text}");
        assert!(text.contains(why), "{name}: expected '{why}' in: {text}");
        assert_eq!(
            crate::cosign::status(&c, &s, &repo, "v1").await,
            404,
            "{name}"
        );
    }
}

/// A timestamped signature is checked for the time-stamping authority's revocation too:
/// an authority whose certificate its root revoked proves no time, and the signature is
/// refused under strict; one on no list admits it.
#[tokio::test]
async fn a_revoked_time_stamping_authority_proves_no_time() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = CrlCa::start(d, "acme", "Acme Root");
    let tsa_root = CrlCa::start(d, "tsa-root", "TSA Root");
    let issuer = (tsa_root.root.as_path(), &*tsa_root.dir.join("root.key"));
    let good = common::tsa::Tsa::start_with(
        d,
        "good",
        Some((issuer.0, issuer.1)),
        Some(&tsa_root.url("good.crl")),
    );
    let bad = common::tsa::Tsa::start_with(
        d,
        "bad",
        Some((issuer.0, issuer.1)),
        Some(&tsa_root.url("bad.crl")),
    );
    std::fs::copy(bad.certificate(), tsa_root.dir.join("bad-tsa.pem")).unwrap();
    tsa_root.revoke("bad-tsa", "keyCompromise", None);
    tsa_root.publish(&tsa_root, "good.crl", 86_400);
    tsa_root.publish(&tsa_root, "bad.crl", 86_400);

    let store = d.join("truststore");
    ca.write_store(&store, "acme");
    good.write_store(&store, "tsa");
    let p = d.join("policy.json");
    std::fs::write(
        &p,
        json!({"version": "1.0", "trustPolicies": [{"name": "prod",
            "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme", "tsa:tsa"], "trustedIdentities": ["*"]}]})
        .to_string(),
    )
    .unwrap();
    let (key, chain) = ca.signer_with("release", None, None);
    let s = gate(d, &p, &store);
    let c = client();
    for (repo, tsa, admitted) in [("prod/good", &good, true), ("prod/bad", &bad, false)] {
        crate::cosign::image(&c, &s.url, repo, repo).await;
        let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
            .arg("sign")
            .arg(format!("{}/{repo}:v1", s.addr))
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&chain)
            .arg("--timestamp-url")
            .arg(&tsa.url)
            .arg("--timestamp-root-cert")
            .arg(&tsa.root)
            .output()
            .unwrap();
        let text = output_text(&o);
        assert_eq!(o.status.success(), admitted, "{repo}: {text}");
        if !admitted {
            assert!(
                text.contains("CN=bad") && text.contains("was revoked on"),
                "{repo}: {text}"
            );
        }
        let want = if admitted { 200 } else { 404 };
        assert_eq!(
            crate::cosign::status(&c, &s, repo, "v1").await,
            want,
            "{repo}"
        );
    }
}

/// A distribution point that accepts connections and never answers: the push waits at
/// most the fetch timeout (5 s) and is refused under strict; the failure is remembered,
/// so the next push of a signature by the same certificate does not wait for it again.
#[tokio::test]
async fn a_silent_crl_host_delays_one_decision_not_every_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = CrlCa::start(d, "acme", "Acme Root");
    let store = d.join("truststore");
    ca.write_store(&store, "acme");
    // Connections complete in the kernel's backlog; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/acme.crl", silent.local_addr().unwrap());
    let (key, chain) = ca.signer("release", &url);
    let policy = policy_file(d, "registry.test");
    let s = gate(d, &policy, &store);
    let c = client();
    let mut took = Vec::new();
    for repo in ["prod/one", "prod/two"] {
        crate::cosign::image(&c, &s.url, repo, repo).await;
        let started = std::time::Instant::now();
        let o = sign(&format!("{}/{repo}:v1", s.addr), &key, &chain);
        took.push(started.elapsed());
        let text = output_text(&o);
        assert!(!o.status.success(), "{repo}: {text}");
        assert!(text.contains("no answer within 5 s"), "{repo}: {text}");
        assert_eq!(crate::cosign::status(&c, &s, repo, "v1").await, 404);
    }
    assert!(
        took[0] >= std::time::Duration::from_secs(5),
        "the first decision waited for the host: {took:?}"
    );
    assert!(
        took[1] < std::time::Duration::from_secs(5),
        "the second did not wait for it again: {took:?}"
    );
    drop(silent);
}

/// A chain that leads to no trusted root makes the server fetch nothing: otherwise anyone
/// who may push a signature could have the registry send requests wherever a certificate
/// of their own making points (server-side request forgery). The locations here are a
/// listener the test owns; it sees no connection, and the push is refused for its chain.
#[tokio::test]
async fn an_untrusted_chain_makes_the_server_fetch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let trusted = CrlCa::create(d, "acme", "Acme Root");
    let attacker = CrlCa::create(d, "attacker", "Acme Root");
    let store = d.join("truststore");
    trusted.write_store(&store, "acme");
    let internal = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    internal.set_nonblocking(true).unwrap();
    let target = format!("http://{}/latest/meta-data", internal.local_addr().unwrap());
    let (key, chain) = attacker.signer_with("forged", Some(&target), Some(&target));
    let policy = policy_file(d, "registry.test");
    let s = gate(d, &policy, &store);
    let c = client();
    for ns in ["prod", "lax"] {
        let repo = format!("{ns}/app");
        crate::cosign::image(&c, &s.url, &repo, ns).await;
        let o = sign(&format!("{}/{repo}:v1", s.addr), &key, &chain);
        let text = output_text(&o);
        assert!(!o.status.success(), "{ns}: {text}");
        assert!(text.contains("does not lead to a root"), "{ns}: {text}");
    }
    match internal.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the server connected to the certificate's location: {other:?}"),
    }
}
