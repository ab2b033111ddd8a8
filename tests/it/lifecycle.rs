//! Lifecycle (issue 14): deletion with referrers, online garbage collection with a grace
//! period, immutable tags. Each expectation comes from the rules: a referrer lives
//! exactly as long as its subject; nothing pushed within the grace period is collected;
//! no pullable manifest ever references a missing blob; an immutable tag once published
//! is never moved or deleted, by any route.

use crate::common;

use common::pki::{push_signature, Ca};
use common::*;
use serde_json::{json, Value};
use std::path::Path;

fn admin() -> reqwest::Client {
    as_user("admin", ADMIN_PASSWORD)
}

async fn gc(s: &Server, query: &str) -> Value {
    let res = admin()
        .post(format!("{}/bonded/v1/gc?{query}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "gc answers its report");
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

async fn status(c: &reqwest::Client, url: String) -> u16 {
    c.get(url).send().await.unwrap().status().as_u16()
}

/// A manifest with `subject` (an artifact such as an SBOM or signature) pushed by digest.
async fn push_referrer(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    subject: &str,
    subject_size: usize,
    seed: &str,
) -> String {
    let blob = push_blob(c, s, repo, format!("sbom {seed}").as_bytes()).await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": blob, "size": 5 + seed.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
    }))
    .unwrap();
    let d = sha256(&m);
    let res = put_manifest(c, s.v2(&format!("{repo}/manifests/{d}")), m).await;
    assert_eq!(res.status(), 201, "push referrer of {subject}");
    d
}

fn blob_file(dir: &Path, digest: &str) -> std::path::PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    dir.join("blobs").join(alg).join(&hex[..2]).join(hex)
}

async fn used(s: &Server, pattern: &str) -> u64 {
    let v = get_json(&admin(), format!("{}/bonded/v1/quotas", s.url)).await;
    v["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["pattern"] == pattern)
        .unwrap()["usedBytes"]
        .as_u64()
        .unwrap()
}

async fn audited(s: &Server, action: &str) -> Vec<Value> {
    let v = get_json(
        &admin(),
        format!("{}/bonded/v1/audit?action={action}&limit=1000", s.url),
    )
    .await;
    v["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_deleted_image_takes_its_referrers_and_its_space_while_a_live_one_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &[]);
    let c = client();
    ok(&bonded(&data, &["quota", "set", "team/*", "1GiB"], ""));
    // The empty config every referrer shares.
    push_blob(&c, &s, "team/app", b"{}").await;
    let (old, old_d) = push_image(&c, &s, "team/app", "old", "old", json!({})).await;
    let (live, live_d) = push_image(&c, &s, "team/app", "live", "live", json!({})).await;
    let old_ref = push_referrer(&c, &s, "team/app", &old_d, old.len(), "old").await;
    // A referrer of the referrer (a signature of the SBOM) goes too.
    let old_ref_ref = push_referrer(&c, &s, "team/app", &old_ref, 300, "old-sig").await;
    // cosign's tag schema: `sha256-<hex>.sig` holds the old image's signature.
    let sig_tag = format!("{}.sig", old_d.replacen(':', "-", 1));
    let (_, sig_d) = push_image(&c, &s, "team/app", &sig_tag, "cosign-sig", json!({})).await;
    let live_ref = push_referrer(&c, &s, "team/app", &live_d, live.len(), "live").await;
    let before = used(&s, "team/*").await;
    let old_layer = sha256(b"layer of old");

    // Deleting by digest: 202, and with it its tag, its referrers and its `.sig` tag.
    let res = c
        .delete(s.v2(&format!("team/app/manifests/{old_d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    for d in [&old_d, &old_ref, &old_ref_ref, &sig_d] {
        assert_eq!(
            status(&c, s.v2(&format!("team/app/manifests/{d}"))).await,
            404,
            "{d} went with its subject"
        );
    }
    assert_eq!(status(&c, s.v2("team/app/manifests/old")).await, 404);
    assert_eq!(
        status(&c, s.v2(&format!("team/app/manifests/{sig_tag}"))).await,
        404
    );
    let refs = get_json(&c, s.v2(&format!("team/app/referrers/{old_d}"))).await;
    assert_eq!(refs["manifests"], json!([]));
    let deleted = audited(&s, "manifest.delete").await;
    for d in [&old_d, &old_ref, &old_ref_ref, &sig_d] {
        assert!(
            deleted.iter().any(|r| r["digest"] == d.as_str()),
            "manifest.delete of {d} in {deleted:?}"
        );
    }

    // The blobs stay until garbage collection; a dry run names them and removes nothing.
    assert_eq!(
        status(&c, s.v2(&format!("team/app/blobs/{old_layer}"))).await,
        200
    );
    let dry = gc(&s, "dryRun=true&gracePeriod=0s").await;
    assert_eq!(dry["dryRun"], true);
    let would: Vec<&str> = dry["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "blob")
        .map(|i| i["digest"].as_str().unwrap())
        .collect();
    assert!(would.contains(&old_layer.as_str()), "{dry}");
    assert_eq!(
        status(&c, s.v2(&format!("team/app/blobs/{old_layer}"))).await,
        200,
        "a dry run removes nothing"
    );
    let report = gc(&s, "gracePeriod=0s").await;
    assert_eq!(report["dryRun"], false);
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "blob")
        .map(|i| i["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed, would,
        "the dry run listed exactly what the run removed"
    );
    assert_eq!(
        status(&c, s.v2(&format!("team/app/blobs/{old_layer}"))).await,
        404
    );
    if !s3::all_servers_on_s3() {
        assert!(!blob_file(&data, &old_layer).exists(), "its bytes are gone");
    }
    assert!(
        used(&s, "team/*").await < before,
        "quota usage dropped with the space freed"
    );
    let runs = audited(&s, "gc.run").await;
    assert_eq!(
        runs.len(),
        1,
        "one record per run (the dry run changed nothing)"
    );
    assert!(runs[0]["reason"].as_str().unwrap().contains("blobs"));

    // The live image and its referrer survive many runs, every byte of them pullable.
    for _ in 0..5 {
        gc(&s, "gracePeriod=0s").await;
    }
    assert_eq!(status(&c, s.v2("team/app/manifests/live")).await, 200);
    assert_eq!(
        status(&c, s.v2(&format!("team/app/manifests/{live_ref}"))).await,
        200
    );
    let refs = get_json(&c, s.v2(&format!("team/app/referrers/{live_d}"))).await;
    assert_eq!(refs["manifests"][0]["digest"], live_ref.as_str());
    for b in [
        sha256(b"layer of live"),
        sha256(b"{\"seed\":\"live\"}"),
        sha256(b"sbom live"),
        sha256(b"{}"),
    ] {
        assert_eq!(
            status(&c, s.v2(&format!("team/app/blobs/{b}"))).await,
            200,
            "{b} of the live image"
        );
    }
}

#[tokio::test]
async fn untagged_manifests_go_after_the_grace_period_and_index_children_stay_with_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &[]);
    let c = client();
    let (child, child_d) = push_image(&c, &s, "r/app", "tmp", "child", json!({})).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child_d, "size": child.len()}],
    }))
    .unwrap();
    let res = c
        .put(s.v2("r/app/manifests/multi"))
        .header("Content-Type", OCI_INDEX)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (_, untagged) = push_image(&c, &s, "r/app", "gone-soon", "untagged", json!({})).await;
    // Untag both images: the child is still listed by the tagged index.
    for t in ["tmp", "gone-soon"] {
        let res = c
            .delete(s.v2(&format!("r/app/manifests/{t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    // Deleting a listed child is refused: the index would lose it.
    let res = c
        .delete(s.v2(&format!("r/app/manifests/{child_d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("listed by index"),
        "{e}"
    );
    // Within the grace period nothing goes.
    let report = gc(&s, "gracePeriod=1h").await;
    assert_eq!(report["manifestsRemoved"], 0, "{report}");
    assert_eq!(
        status(&c, s.v2(&format!("r/app/manifests/{untagged}"))).await,
        200
    );
    let report = gc(&s, "gracePeriod=0s").await;
    assert_eq!(report["manifestsRemoved"], 1, "{report}");
    assert_eq!(
        status(&c, s.v2(&format!("r/app/manifests/{untagged}"))).await,
        404
    );
    assert_eq!(
        status(&c, s.v2(&format!("r/app/manifests/{child_d}"))).await,
        200,
        "the index keeps its child"
    );
    // Untagging the index lets both go in one run.
    let res = c
        .delete(s.v2("r/app/manifests/multi"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let report = gc(&s, "gracePeriod=0s").await;
    assert_eq!(report["manifestsRemoved"], 2, "{report}");
    assert_eq!(
        status(&c, s.v2(&format!("r/app/manifests/{child_d}"))).await,
        404
    );
    // Everything is gone; the audit trail names each manifest the collector removed.
    let deleted = audited(&s, "manifest.delete").await;
    assert!(deleted.iter().any(|r| r["digest"] == child_d.as_str()
        && r["reason"].as_str().unwrap().contains("garbage collection")));
}

#[tokio::test]
async fn gc_racing_thirty_pushes_removes_nothing_they_need() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &[]);
    let c = client();
    // Garbage for the runs to find: an image untagged, then older than the grace period.
    let (junk_bytes, junk) = push_image(&c, &s, "race/junk", "junk", "junk", json!({})).await;
    let (_, gone) = push_image(&c, &s, "race/gone", "gone", "gone", json!({})).await;
    for (repo, d) in [("race/junk", &junk), ("race/gone", &gone)] {
        let res = c
            .delete(s.v2(&format!("{repo}/manifests/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (stop, url) = (stop.clone(), s.url.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = admin()
                    .post(format!("{url}/bonded/v1/gc?gracePeriod=3s"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let r: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
                removed += r["blobsRemoved"].as_u64().unwrap();
                runs += 1;
            }
            (runs, removed)
        })
    };
    let mut pushes = Vec::new();
    for i in 0..30u64 {
        let (c, url) = (c.clone(), s.url.clone());
        pushes.push(tokio::spawn(async move {
            let repo = format!("race/app{}", i % 3);
            let config = format!("{{\"n\":{i}}}").into_bytes();
            let layer = format!("layer {i}").repeat(100).into_bytes();
            for b in [&config, &layer] {
                let res = c
                    .post(format!(
                        "{url}/v2/{repo}/blobs/uploads/?digest={}",
                        sha256(b)
                    ))
                    .body(b.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
            // The manifest comes later, within the grace period.
            tokio::time::sleep(std::time::Duration::from_millis(50 * (i % 20))).await;
            let m = image_manifest(
                (&sha256(&config), config.len()),
                &[(&sha256(&layer), layer.len())],
                json!({}),
            );
            let res = put_manifest(&c, format!("{url}/v2/{repo}/manifests/v{i}"), m).await;
            assert_eq!(res.status(), 201, "push {i} raced a collection and lost");
            (repo, i, config, layer)
        }));
    }
    // The garbage image pushed again under a tag while collections run: either it comes
    // back whole (201, pullable, its blobs there) or the push fails for its blobs.
    let revived = {
        let (c, url) = (c.clone(), s.url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            put_manifest(
                &c,
                format!("{url}/v2/race/junk/manifests/revived"),
                junk_bytes,
            )
            .await
        })
    };
    let mut pushed = Vec::new();
    for p in pushes {
        pushed.push(p.await.unwrap());
    }
    let res = revived.await.unwrap();
    match res.status().as_u16() {
        201 => {
            assert_eq!(status(&c, s.v2("race/junk/manifests/revived")).await, 200);
            for b in [&b"layer of junk"[..], &b"{\"seed\":\"junk\"}"[..]] {
                assert_eq!(
                    status(&c, s.v2(&format!("race/junk/blobs/{}", sha256(b)))).await,
                    200,
                    "a revived image keeps its blobs"
                );
            }
        }
        400 => assert_eq!(error_code(res).await, "MANIFEST_BLOB_UNKNOWN"),
        other => panic!("revived push answered {other}"),
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (runs, removed) = collector.await.unwrap();
    assert!(runs >= 2, "collections ran during the pushes ({runs})");
    assert!(
        removed >= 2,
        "the deleted image's blobs were collected ({removed})"
    );
    // Every manifest pullable, every blob whole.
    for (repo, i, config, layer) in pushed {
        assert_eq!(
            status(&c, s.v2(&format!("{repo}/manifests/v{i}"))).await,
            200
        );
        for b in [config, layer] {
            let res = c
                .get(s.v2(&format!("{repo}/blobs/{}", sha256(&b))))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.bytes().await.unwrap().as_ref(), b.as_slice());
        }
    }
}

#[tokio::test]
async fn immutable_tags_refuse_every_route_that_moves_or_deletes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let c = admin();
    // Adding a rule needs the admin role.
    user(&data, "dev", "developer", "prod/*");
    let dev = as_user("dev", &password("dev"));
    let res = dev
        .post(format!("{}/bonded/v1/immutable", s.url))
        .body(json!({"pattern": "prod/*", "tags": "v*"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = c
        .post(format!("{}/bonded/v1/immutable", s.url))
        .body(json!({"pattern": "prod/*", "tags": "v*"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // A rule that names no repository pattern is refused with what to write instead.
    let res = c
        .post(format!("{}/bonded/v1/immutable", s.url))
        .body(json!({"pattern": "Prod App", "tags": "v*"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(e["errors"][0]["code"], "UNSUPPORTED");
    assert!(e["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("'NAMESPACE/*'"));
    let listed = ok(&bonded(&data, &["immutable", "list"], ""));
    assert!(
        listed.contains("prod/*") && listed.contains("v*"),
        "{listed}"
    );

    let (_, a) = push_image(&c, &s, "prod/app", "v1", "a", json!({})).await;
    let (b_bytes, b) = push_image(&c, &s, "prod/app", "latest", "b", json!({})).await;
    let refused = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 403);
        let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        let msg = e["errors"][0]["message"].as_str().unwrap().to_string();
        assert_eq!(e["errors"][0]["code"], "DENIED");
        assert!(
            msg.contains("immutable") && msg.contains("'prod/*'"),
            "{msg}"
        );
        msg
    };
    // PUT by tag.
    refused(put_manifest(&c, s.v2("prod/app/manifests/v1"), b_bytes.clone()).await).await;
    // PUT by digest with ?tag=.
    refused(
        put_manifest(
            &c,
            s.v2(&format!("prod/app/manifests/{b}?tag=v1")),
            b_bytes.clone(),
        )
        .await,
    )
    .await;
    // DELETE of the tag, and of its manifest (which would take the tag).
    refused(
        c.delete(s.v2("prod/app/manifests/v1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    refused(
        c.delete(s.v2(&format!("prod/app/manifests/{a}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = c.get(s.v2("prod/app/manifests/v1")).send().await.unwrap();
    assert_eq!(
        res.headers()["docker-content-digest"],
        a.as_str(),
        "v1 unmoved"
    );
    // The same manifest again is not a move; other tags stay mutable.
    let (a_bytes, _) = push_image(&c, &s, "prod/app", "v1", "a", json!({})).await;
    let res = put_manifest(&c, s.v2("prod/app/manifests/latest"), a_bytes).await;
    assert_eq!(res.status(), 201, "latest is mutable");
    let refusals = audited(&s, "manifest.push").await;
    assert!(refusals
        .iter()
        .any(|r| r["outcome"] == "denied" && r["reason"].as_str().unwrap().contains("immutable")));
    assert!(!audited(&s, "immutable.add").await.is_empty());

    // Without the rule, v1 moves.
    ok(&bonded(
        &data,
        &["immutable", "remove", "prod/*", "--tags", "v*"],
        "",
    ));
    let res = put_manifest(&c, s.v2("prod/app/manifests/v1"), b_bytes).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_waiting_immutable_tag_is_published_once_signed_and_then_never_moved() {
    let ca = Ca::new("Acme Root");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ca.write_store(&dir.join("truststore"), "acme");
    std::fs::write(
        dir.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{
            "name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"],
            "bonded.unsignedPush": "quarantine"
        }]})
        .to_string(),
    )
    .unwrap();
    let data = dir.join("data");
    let s = Server::start_in(
        &data,
        &[
            "--trust-policy",
            dir.join("policy.json").to_str().unwrap(),
            "--trust-store",
            dir.join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
        ],
    );
    ok(&bonded(
        &data,
        &["immutable", "add", "prod/*", "--tags", "v*"],
        "",
    ));
    let c = client();
    let image = |seed: &'static str| {
        let (c, s) = (c.clone(), &s);
        async move {
            let config = push_blob(
                &c,
                s,
                "prod/app",
                format!("{{\"seed\":\"{seed}\"}}").as_bytes(),
            )
            .await;
            let m = image_manifest((&config, 11 + seed.len()), &[], json!({}));
            let desc = json!({"mediaType": OCI_MANIFEST, "digest": sha256(&m), "size": m.len()});
            (m, desc)
        }
    };
    let (m1, d1) = image("one").await;
    let res = put_manifest(&c, s.v2("prod/app/manifests/v1"), m1).await;
    assert_eq!(res.status(), 201, "accepted; the tag waits");
    assert_eq!(status(&c, s.v2("prod/app/manifests/v1")).await, 404);
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &d1).await,
        201
    );
    let res = c.get(s.v2("prod/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 200, "the waiting immutable tag was published");
    assert_eq!(
        res.headers()["docker-content-digest"],
        d1["digest"].as_str().unwrap()
    );
    // A new push of v1 would wait to move it once signed: refused at once.
    let (m2, _) = image("two").await;
    let res = put_manifest(&c, s.v2("prod/app/manifests/v1"), m2).await;
    assert_eq!(res.status(), 403);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert!(e["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("immutable"));
}

#[tokio::test]
async fn an_offline_gc_refuses_a_data_directory_in_use_and_runs_on_a_stopped_one() {
    if pg::url_for(Path::new("/")).is_some() || s3::all_servers_on_s3() {
        // The offline collection works on the data directory's own database and blobs.
        eprintln!("skipped: an offline gc needs the embedded backends");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = Server::start_in(&data, &[]);
    let c = client();
    let (_, d) = push_image(&c, &s, "o/app", "v1", "x", json!({})).await;
    let res = c
        .delete(s.v2(&format!("o/app/manifests/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let o = bonded(&data, &["gc", "--grace-period", "0s"], "");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("a bonded serve is using"),
        "{}",
        output_text(&o)
    );
    assert!(s.terminate());
    let dry = ok(&bonded(
        &data,
        &["gc", "--dry-run", "--grace-period", "0s"],
        "",
    ));
    assert!(
        dry.contains("would remove 0 manifests, 2 links, 2 blobs"),
        "{dry}"
    );
    let run = ok(&bonded(&data, &["gc", "--grace-period", "0s"], ""));
    assert!(
        run.contains("removed 0 manifests, 2 links, 2 blobs"),
        "{run}"
    );
    assert!(!blob_file(&data, &sha256(b"layer of x")).exists());
    let again = ok(&bonded(&data, &["gc", "--grace-period", "0s"], ""));
    assert!(
        again.contains("removed 0 manifests, 0 links, 0 blobs"),
        "{again}"
    );
}

#[tokio::test]
async fn scrub_finds_a_corrupt_blob_which_is_never_served() {
    if s3::all_servers_on_s3() {
        eprintln!("skipped: corrupts a blob file on disk (the S3 pass has none)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let c = admin();
    let (_, _) = push_image(&c, &s, "scrub/app", "v1", "s", json!({})).await;
    let layer_d = sha256(b"layer of s");
    let clean = c
        .post(format!("{}/bonded/v1/scrub", s.url))
        .send()
        .await
        .unwrap();
    let clean: Value = serde_json::from_slice(&clean.bytes().await.unwrap()).unwrap();
    assert_eq!(clean["problemCount"], 0, "{clean}");
    assert_eq!(clean["blobsChecked"], 2);

    // One byte flipped on disk, same length.
    let file = blob_file(&data, &layer_d);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    // A stray file no record names.
    let stray = b"stray bytes";
    let stray_file = blob_file(&data, &sha256(stray));
    std::fs::create_dir_all(stray_file.parent().unwrap()).unwrap();
    std::fs::write(&stray_file, stray).unwrap();

    // A pull does not get the wrong bytes as if right: the body falls short, or (a blob
    // of one chunk) the connection closes before the answer's head.
    let pulled = async {
        let res = c
            .get(s.v2(&format!("scrub/app/blobs/{layer_d}")))
            .send()
            .await?;
        res.bytes().await
    }
    .await;
    if let Ok(b) = pulled {
        assert_ne!(b.as_ref(), bytes.as_slice(), "corrupt bytes served whole");
    }
    let report = c
        .post(format!("{}/bonded/v1/scrub", s.url))
        .send()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&report.bytes().await.unwrap()).unwrap();
    assert_eq!(report["problemCount"], 2, "{report}");
    let problems = report["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p["kind"] == "corrupt"
        && p["digest"] == layer_d.as_str()
        && p["repositories"] == json!(["scrub/app"])));
    assert!(problems
        .iter()
        .any(|p| p["kind"] == "unrecorded" && p["digest"] == sha256(stray).as_str()));
    assert_eq!(audited(&s, "scrub.run").await.len(), 2, "each run audited");
    // The CLI says the same and exits non-zero.
    let mut s = s;
    assert!(s.terminate());
    if pg::url_for(&data).is_none() {
        let o = bonded(&data, &["scrub"], "");
        assert!(!o.status.success());
        let text = output_text(&o);
        assert!(
            text.contains(&format!("corrupt {layer_d} in scrub/app")),
            "{text}"
        );
        assert!(text.contains("2 problems"), "{text}");
    }
}

/// Pushes an index listing `children` (digest, size) under `reference` (a tag or its digest).
async fn push_index(
    c: &reqwest::Client,
    s: &Server,
    repo: &str,
    children: &[(&str, usize)],
    tag: Option<&str>,
) -> String {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(d, n)| json!({"mediaType": OCI_MANIFEST, "digest": d, "size": n})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let d = sha256(&index);
    let res = c
        .put(s.v2(&format!("{repo}/manifests/{}", tag.unwrap_or(&d))))
        .header("Content-Type", OCI_INDEX)
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "push index {repo}");
    d
}

async fn retention_run(s: &Server, dry_run: bool) -> Value {
    let res = admin()
        .post(format!(
            "{}/bonded/v1/retention/run?dryRun={dry_run}",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "retention run answers its report");
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

/// (tags, manifests) a retention report lists, sorted.
fn listed(report: &Value) -> (Vec<String>, Vec<String>) {
    let items = report["removed"].as_array().unwrap();
    let mut tags: Vec<String> = items
        .iter()
        .filter(|i| i["kind"] == "tag")
        .map(|i| i["tag"].as_str().unwrap().to_string())
        .collect();
    let mut manifests: Vec<String> = items
        .iter()
        .filter(|i| i["kind"] == "manifest")
        .map(|i| i["digest"].as_str().unwrap().to_string())
        .collect();
    tags.sort();
    manifests.sort();
    (tags, manifests)
}

#[tokio::test]
async fn retention_keeps_the_last_images_kept_tags_and_what_a_kept_index_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let c = admin();
    let rule = json!({"pattern": "ci/*", "keepLast": 2, "keepTags": "release-*"});
    // Setting a rule and running retention need the admin role; reading the rules, a login.
    user(&data, "dev", "developer", "ci/*");
    let dev = as_user("dev", &password("dev"));
    for (method, path, body) in [
        (reqwest::Method::POST, "retention", rule.to_string()),
        (
            reqwest::Method::POST,
            "retention/run?dryRun=true",
            String::new(),
        ),
        (
            reqwest::Method::DELETE,
            "retention?pattern=ci/*",
            String::new(),
        ),
    ] {
        let res = dev
            .request(method, format!("{}/bonded/v1/{path}", s.url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path} by a developer");
    }
    let bad = c
        .post(format!("{}/bonded/v1/retention", s.url))
        .body(json!({"pattern": "ci/", "keepLast": 2}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a pattern that is no repository pattern");

    push_blob(&c, &s, "ci/app", b"{}").await;
    // First second: an index no rule keeps, with an untagged child; an image tagged
    // `arm64` that an index kept by name (`release-multi`) lists; b1 as `release-1`.
    let (c2, c2_d) = push_image(&c, &s, "ci/app", "c2-tmp", "c2", json!({})).await;
    let res = c
        .delete(s.v2("ci/app/manifests/c2-tmp"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let multi_old = push_index(&c, &s, "ci/app", &[(&c2_d, c2.len())], Some("multi-old")).await;
    let (arm, arm_d) = push_image(&c, &s, "ci/app", "arm64", "arm64", json!({})).await;
    let release_multi = push_index(
        &c,
        &s,
        "ci/app",
        &[(&arm_d, arm.len())],
        Some("release-multi"),
    )
    .await;
    let (b1, b1_d) = push_image(&c, &s, "ci/app", "release-1", "b1", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Later: b1..b5 in order (b1 tagged again), signatures of b2 and b5, b2's cosign
    // `.sig` tag, and an untagged image.
    let res = put_manifest(&c, s.v2("ci/app/manifests/b1"), b1.clone()).await;
    assert_eq!(res.status(), 201);
    let mut b = vec![(b1.clone(), b1_d.clone())];
    for n in 2..=5 {
        b.push(
            push_image(
                &c,
                &s,
                "ci/app",
                &format!("b{n}"),
                &format!("b{n}"),
                json!({}),
            )
            .await,
        );
    }
    let sig2 = push_referrer(&c, &s, "ci/app", &b[1].1, b[1].0.len(), "sig2").await;
    let sig5 = push_referrer(&c, &s, "ci/app", &b[4].1, b[4].0.len(), "sig5").await;
    let cosign_tag = format!("{}.sig", b[1].1.replacen(':', "-", 1));
    let (_, cosign_d) = push_image(&c, &s, "ci/app", &cosign_tag, "cosign2", json!({})).await;
    let (u_bytes, u_d) = {
        let (bytes, d) = push_image(&c, &s, "ci/app", "u-tmp", "u", json!({})).await;
        let res = c
            .delete(s.v2("ci/app/manifests/u-tmp"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        (bytes, d)
    };
    // Another repository no rule covers keeps everything.
    push_image(&c, &s, "other/app", "old", "other", json!({})).await;

    let res = c
        .post(format!("{}/bonded/v1/retention", s.url))
        .body(rule.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let shown = ok(&bonded(&data, &["retention", "show"], ""));
    assert!(
        shown.contains("ci/*") && shown.contains("release-*"),
        "{shown}"
    );
    let read = dev
        .get(format!("{}/bonded/v1/retention", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    // What the rule says: b5 and b4 are the two images most recently tagged; release-1
    // and release-multi match the kept glob. The tags b3, b2, b1, arm64 and multi-old go.
    // Manifests: b3, b2 with its signature and its `.sig` image, multi-old with its
    // child c2. b1 (release-1), the arm64 image (release-multi lists it), b5 with its
    // signature, b4 and the untagged u (no untagged-after) stay.
    let want_tags: Vec<String> = {
        let mut t: Vec<String> = ["b1", "b2", "b3", "arm64", "multi-old"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        t.sort();
        t
    };
    let want_manifests: Vec<String> = {
        let mut m = vec![
            b[2].1.clone(),
            b[1].1.clone(),
            sig2.clone(),
            cosign_d.clone(),
            multi_old.clone(),
            c2_d.clone(),
        ];
        m.sort();
        m
    };
    let dry = retention_run(&s, true).await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(
        listed(&dry),
        (want_tags.clone(), want_manifests.clone()),
        "{dry}"
    );
    assert_eq!(
        status(&c, s.v2("ci/app/manifests/b3")).await,
        200,
        "a dry run removes nothing"
    );
    let run = retention_run(&s, false).await;
    assert_eq!(
        listed(&run),
        (want_tags.clone(), want_manifests.clone()),
        "{run}"
    );
    assert_eq!(run["tagsRemoved"], 5);
    assert_eq!(run["manifestsRemoved"], 6);
    for t in &want_tags {
        assert_eq!(
            status(&c, s.v2(&format!("ci/app/manifests/{t}"))).await,
            404,
            "tag {t}"
        );
    }
    assert_eq!(
        status(&c, s.v2(&format!("ci/app/manifests/{cosign_tag}"))).await,
        404
    );
    for d in &want_manifests {
        assert_eq!(
            status(&c, s.v2(&format!("ci/app/manifests/{d}"))).await,
            404,
            "{d}"
        );
    }
    for kept in ["b4", "b5", "release-1", "release-multi"] {
        assert_eq!(
            status(&c, s.v2(&format!("ci/app/manifests/{kept}"))).await,
            200,
            "{kept}"
        );
    }
    for d in [&arm_d, &release_multi, &sig5, &u_d, &b1_d] {
        assert_eq!(
            status(&c, s.v2(&format!("ci/app/manifests/{d}"))).await,
            200,
            "{d}"
        );
    }
    assert_eq!(status(&c, s.v2("other/app/manifests/old")).await, 200);
    let refs = get_json(&c, s.v2(&format!("ci/app/referrers/{}", b[4].1))).await;
    assert_eq!(
        refs["manifests"].as_array().unwrap().len(),
        1,
        "b5 keeps its signature"
    );
    // Audited: each tag, each manifest, one record for the run.
    let tag_deletes = audited(&s, "tag.delete").await;
    assert!(
        tag_deletes.iter().any(|r| r["tag"] == "b3"
            && r["reason"]
                .as_str()
                .unwrap()
                .contains("retention (rule 'ci/*')")),
        "{tag_deletes:?}"
    );
    let deleted = audited(&s, "manifest.delete").await;
    assert!(deleted.iter().any(
        |r| r["digest"] == sig2.as_str() && r["reason"].as_str().unwrap().contains("retention")
    ));
    assert_eq!(audited(&s, "retention.run").await.len(), 1);
    assert_eq!(audited(&s, "retention.set").await.len(), 1);
    // A second run finds nothing more; the removed images' blobs go at garbage collection.
    let again = retention_run(&s, false).await;
    assert_eq!(
        (
            again["tagsRemoved"].as_u64(),
            again["manifestsRemoved"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    let b3_layer = sha256(b"layer of b3");
    assert_eq!(
        status(&c, s.v2(&format!("ci/app/blobs/{b3_layer}"))).await,
        200
    );
    gc(&s, "gracePeriod=0s").await;
    assert_eq!(
        status(&c, s.v2(&format!("ci/app/blobs/{b3_layer}"))).await,
        404
    );
    assert_eq!(
        status(
            &c,
            s.v2(&format!("ci/app/blobs/{}", sha256(b"layer of b4")))
        )
        .await,
        200
    );

    // Untagged manifests: kept by retention until --untagged-after says otherwise (the
    // collection at 0s took u; a new one is pushed).
    assert!(!u_bytes.is_empty());
    let (_, u_d) = push_image(&c, &s, "ci/app", "u2-tmp", "u2", json!({})).await;
    let res = c
        .delete(s.v2("ci/app/manifests/u2-tmp"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let kept = retention_run(&s, false).await;
    assert_eq!(kept["manifestsRemoved"], 0, "{kept}");
    let res = c
        .post(format!("{}/bonded/v1/retention", s.url))
        .body(json!({"pattern": "ci/*", "keepLast": 2, "keepTags": "release-*", "untaggedAfterSeconds": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Whole seconds: pushed at T is "longer ago than 1s" from T+2 on.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = retention_run(&s, false).await;
    assert_eq!(listed(&run), (vec![], vec![u_d.clone()]), "{run}");
    assert_eq!(
        status(&c, s.v2(&format!("ci/app/manifests/{u_d}"))).await,
        404
    );
    assert_eq!(
        status(&c, s.v2(&format!("ci/app/manifests/{arm_d}"))).await,
        200,
        "listed by a kept index"
    );
    // Removing the rule: runs change nothing more.
    let res = c
        .delete(format!("{}/bonded/v1/retention?pattern=ci/*", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let none = retention_run(&s, false).await;
    assert_eq!(none["tagsRemoved"], 0);
}

#[tokio::test]
async fn retention_runs_on_its_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &["--retention-interval", "1s"]);
    let c = client();
    let said = ok(&bonded(
        &data,
        &["retention", "set", "nightly/*", "--keep-last", "1"],
        "",
    ));
    assert!(
        said.contains("keep the 1 images most recently tagged"),
        "{said}"
    );
    push_image(&c, &s, "nightly/app", "n1", "n1", json!({})).await;
    push_image(&c, &s, "nightly/app", "n2", "n2", json!({})).await;
    let mut gone = false;
    for _ in 0..100 {
        if status(&c, s.v2("nightly/app/manifests/n1")).await == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the scheduled run removed the older tag");
    assert_eq!(status(&c, s.v2("nightly/app/manifests/n2")).await, 200);
    let runs = audited(&s, "retention.run").await;
    assert!(runs.iter().any(|r| r["actor"] == "bonded"), "{runs:?}");
}

#[tokio::test]
async fn a_push_completing_while_its_bytes_are_collected_is_refused_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &[]);
    let c = client();
    let blob = b"bytes being collected";
    let d = push_blob(&c, &s, "gc/a", blob).await;
    // What garbage collection does before it deletes bytes: it marks the row. (The
    // window is milliseconds in a real run; here it is held open.)
    sqlx::any::install_default_drivers();
    let url = common::pg::url_for(&data)
        .unwrap_or_else(|| format!("sqlite://{}", data.join("bonded.db").display()));
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE blobs SET doomed_at = 1 WHERE digest = $1")
        .bind(&d)
        .execute(&pool)
        .await
        .unwrap();
    // A monolithic push of the same bytes: 503 with Retry-After, saying to push again.
    let res = c
        .post(s.v2(&format!("gc/b/blobs/uploads/?digest={d}")))
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(e["errors"][0]["code"], "BLOB_UPLOAD_INVALID");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("push it again"),
        "{e}"
    );
    // A mount of it is no mount: an upload session instead (the spec's fallback).
    let res = c
        .post(s.v2(&format!("gc/b/blobs/uploads/?mount={d}&from=gc/a")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Nothing was linked, and a manifest naming it is refused.
    assert_eq!(status(&c, s.v2(&format!("gc/b/blobs/{d}"))).await, 404);
    let m = image_manifest((&d, blob.len()), &[], json!({}));
    let res = put_manifest(&c, s.v2("gc/b/manifests/v1"), m.clone()).await;
    assert_eq!(res.status(), 400);
    let e: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(e["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    // Once the collection is done with it (here: the mark lifted), the retry succeeds.
    sqlx::query("UPDATE blobs SET doomed_at = NULL WHERE digest = $1")
        .bind(&d)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(push_blob(&c, &s, "gc/b", blob).await, d);
    assert_eq!(
        put_manifest(&c, s.v2("gc/b/manifests/v1"), m)
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn a_collection_that_outlasts_the_request_answers_202_and_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &[]);
    let c = client();
    for i in 0..20 {
        let (_, d) = push_image(&c, &s, "gc/slow", "t", &format!("i{i}"), json!({})).await;
        assert!(d.starts_with("sha256:"));
    }
    // Nothing followed yet.
    let res = admin()
        .get(format!("{}/bonded/v1/gc", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // `wait=0s`: the answer does not wait for the run.
    let res = admin()
        .post(format!("{}/bonded/v1/gc?gracePeriod=0s&wait=0s", s.url))
        .send()
        .await
        .unwrap();
    let first = res.status().as_u16();
    if first == 202 {
        assert_eq!(res.headers()["location"], "/bonded/v1/gc");
        let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(v["state"], "running");
    } else {
        // The run ended before the answer was made: its report, as ever.
        assert_eq!(first, 200);
    }
    let mut report = Value::Null;
    for _ in 0..100 {
        let res = admin()
            .get(format!("{}/bonded/v1/gc", s.url))
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            report = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
            break;
        }
        assert_eq!(res.status(), 202);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Nineteen images lost their tag to the next push of `t`.
    assert_eq!(report["manifestsRemoved"], 19, "{report}");
    // Following a run needs the admin role: its report names every repository's digests.
    let res = client()
        .get(format!("{}/bonded/v1/gc", s.url))
        .send()
        .await
        .unwrap();
    assert!(
        [401, 403].contains(&res.status().as_u16()),
        "{}",
        res.status()
    );
}

#[tokio::test]
async fn retention_leaves_pending_manifests_and_waiting_tags_to_their_ttl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("Acme Root");
    let (policy, store) = ca.trusted_anywhere(tmp.path());
    let s = Server::start_in(
        &tmp.path().join("data"),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
        ],
    );
    let c = client();
    // Unsigned under an enforcing policy: by digest, pending; by tag, the tag waits.
    let config = push_blob(&c, &s, "held/app", b"{\"held\":1}").await;
    let by_digest = image_manifest((&config, 10), &[], json!({"annotations": {"n": "1"}}));
    let p = sha256(&by_digest);
    let res = put_manifest(&c, s.v2(&format!("held/app/manifests/{p}")), by_digest).await;
    assert_eq!(res.status(), 201);
    let tagged = image_manifest((&config, 10), &[], json!({"annotations": {"n": "2"}}));
    let w = sha256(&tagged);
    let res = put_manifest(&c, s.v2("held/app/manifests/w"), tagged).await;
    assert!(res.status().is_success(), "{}", res.status());
    let res = admin()
        .post(format!("{}/bonded/v1/retention", s.url))
        .body(json!({"pattern": "*", "keepLast": 0, "untaggedAfterSeconds": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Both untagged (as published tags go) and older than the rule's second.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = retention_run(&s, false).await;
    assert_eq!(listed(&run), (vec![], vec![]), "{run}");
    let pending = get_json(
        &admin(),
        format!("{}/bonded/v1/repositories/held/app/pending", s.url),
    )
    .await;
    let digests: Vec<&str> = pending["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(
        digests.contains(&p.as_str()) && digests.contains(&w.as_str()),
        "{pending}"
    );
    assert_eq!(pending["waitingTags"][0]["tag"], "w", "{pending}");
}
