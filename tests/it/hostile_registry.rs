//! `bonded verify` against a registry that sends more than any manifest can be: the
//! client reads at most what it would accept (4 MiB for a manifest) and says so, whether
//! the registry announces the size or streams without one.

use crate::common;

use common::pki::Ca;
use common::*;
use std::io::Write;
use std::process::Command;

/// Serves `/v2/` and answers every other GET with `size` bytes of a "manifest", with a
/// Content-Length or chunked. Returns its address.
fn oversized_registry(size: usize, announce: bool) -> String {
    common::http::serve_raw(move |path, stream| {
        if path == "/v2/" {
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        } else if announce {
            stream
                .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ncontent-length: {size}\r\n\r\n").as_bytes())
                .and_then(|_| stream.write_all(&vec![b' '; size]))
        } else {
            let chunk = vec![b' '; 64 << 10];
            let mut r = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ntransfer-encoding: chunked\r\n\r\n");
            let mut sent = 0;
            while r.is_ok() && sent < size {
                r = stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|_| stream.write_all(&chunk))
                    .and_then(|_| stream.write_all(b"\r\n"));
                sent += chunk.len();
            }
            r.and_then(|_| stream.write_all(b"0\r\n\r\n"))
        }
    })
}

#[test]
fn bonded_verify_reads_no_more_of_a_manifest_than_it_would_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("Acme Root");
    ca.write_store(&tmp.path().join("truststore"), "acme");
    for announce in [true, false] {
        let addr = oversized_registry(8 << 20, announce);
        let policy = serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "all", "registryScopes": [format!("{addr}/x")],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["*"]}]});
        let policy_file = tmp.path().join("policy.json");
        std::fs::write(&policy_file, policy.to_string()).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(["verify", &format!("{addr}/x:v1")])
            .args(["--trust-policy", policy_file.to_str().unwrap()])
            .args([
                "--trust-store",
                tmp.path().join("truststore").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(6), "announce={announce}: {text}");
        assert!(
            text.contains("is larger than 4194304 bytes"),
            "announce={announce}: {text}"
        );
    }
}

/// A registry that lists more signature referrers than bonded reads: `bonded verify`
/// fetches at most 100 Notary signatures, says so, and does not verify an image none of
/// whose first 100 is a signature it trusts.
#[tokio::test]
async fn bonded_verify_reads_a_bounded_number_of_referrers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = Server::start_in(&d.join("data"), &["--max-signatures-per-subject", "200"]);
    let c = client();
    let digest = crate::cosign::image(&c, &s.url, "acme/app", "many").await;
    let subject = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 1});
    let config = push_blob(&c, &s, "acme/app", b"{}").await;
    for i in 0..150u32 {
        let bytes = format!("not an envelope {i}");
        let env = push_blob(&c, &s, "acme/app", bytes.as_bytes()).await;
        let m = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.notary.signature",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/jose+json", "digest": env, "size": bytes.len()}],
            "subject": subject}))
        .unwrap();
        let res = c
            .put(s.v2(&format!("acme/app/manifests/{}", sha256(&m))))
            .header("Content-Type", OCI_MANIFEST)
            .body(m)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{i}");
    }
    let (policy, store) = Ca::new("Acme Root").trusted_anywhere(d);
    let o = verify_image(&format!("{}/acme/app:v1", s.addr), &policy, &store, &[]);
    assert_ne!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("150 Notary signature referrers; only the first 100 are read"),
        "{}",
        output_text(&o)
    );
}
