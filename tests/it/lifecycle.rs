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
