//! The OCI Distribution Spec v1.1 endpoints, end to end against the real server: status
//! codes, headers, error codes, and that a rejected request changes nothing.

use crate::common;

use common::*;
use serde_json::{json, Value};

async fn json_body(res: reqwest::Response) -> Value {
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn base_endpoint_and_unknown_paths() {
    let s = Server::start();
    let c = client();
    let res = c.get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let res = c.get(s.v2("x/nothing/here")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = c.post(s.v2("x/tags/list")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(error_code(res).await, "UNSUPPORTED");
}

#[tokio::test]
async fn blob_get_head_and_ranges() {
    let s = Server::start();
    let c = client();
    let data: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&c, &s, "r", &data).await;

    let res = c.head(s.v2(&format!("r/blobs/{d}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-length"), "2048");
    assert_eq!(header(&res, "docker-content-digest"), d);
    assert!(res.bytes().await.unwrap().is_empty());

    let res = c.get(s.v2(&format!("r/blobs/{d}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "docker-content-digest"), d);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);

    for (range, status, want) in [
        ("bytes=500-1499", 206, Some((500usize, 1500usize))),
        ("bytes=500-", 206, Some((500, 2048))),
        ("bytes=-500", 206, Some((1548, 2048))),
        ("bytes=2000-5000", 206, Some((2000, 2048))),
        ("bytes=500-0", 416, None),
        ("bytes=5000-10000", 416, None),
    ] {
        let res = c
            .get(s.v2(&format!("r/blobs/{d}")))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{range}");
        match want {
            Some((a, b)) => {
                assert_eq!(
                    header(&res, "content-range"),
                    format!("bytes {}-{}/2048", a, b - 1)
                );
                assert_eq!(header(&res, "content-length"), (b - a).to_string());
                assert_eq!(res.bytes().await.unwrap().as_ref(), &data[a..b]);
            }
            None => assert_eq!(header(&res, "content-range"), "bytes */2048"),
        }
    }
}

#[tokio::test]
async fn unknown_and_invalid_blobs() {
    let s = Server::start();
    let c = client();
    let missing = sha256(b"never pushed");
    let res = c
        .get(s.v2(&format!("r/blobs/{missing}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "BLOB_UNKNOWN");
    for bad in [
        "sha256:xyz",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "nocolon",
    ] {
        let res = c
            .head(s.v2(&format!("r/blobs/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        let res = c.get(s.v2(&format!("r/blobs/{bad}"))).send().await.unwrap();
        assert_eq!(error_code(res).await, "DIGEST_INVALID", "{bad}");
    }
    // a blob pushed to one repository is not visible from another
    let d = push_blob(&c, &s, "one", b"private to one").await;
    let res = c
        .head(s.v2(&format!("two/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn empty_blob_round_trips() {
    let s = Server::start();
    let c = client();
    let d = push_blob(&c, &s, "r", b"").await;
    let res = c.get(s.v2(&format!("r/blobs/{d}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-length"), "0");
}

#[tokio::test]
async fn post_then_put_upload() {
    let s = Server::start();
    let c = client();
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let loc = header(&res, "location");
    assert!(loc.starts_with("/v2/r/blobs/uploads/"), "{loc}");
    assert_eq!(header(&res, "range"), "0-0");
    assert!(!header(&res, "docker-upload-uuid").is_empty());
    let data = b"post then put".to_vec();
    let d = sha256(&data);
    let res = c
        .put(format!("{}{loc}?digest={d}", s.url))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "docker-content-digest"), d);
    let blob_url = format!("{}{}", s.url, header(&res, "location"));
    let got = c.get(blob_url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    // the finished session is gone
    let res = c.get(format!("{}{loc}", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn chunked_upload_rejects_out_of_order_chunks_and_recovers() {
    let s = Server::start();
    let c = client();
    let data: Vec<u8> = (0..30u8).collect();
    let d = sha256(&data);
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    let loc = format!("{}{}", s.url, header(&res, "location"));
    let patch = |range: &'static str, bytes: Vec<u8>| {
        c.patch(&loc)
            .header("Content-Range", range)
            .header("Content-Type", "application/octet-stream")
            .body(bytes)
            .send()
    };
    let res = patch("0-9", data[0..10].to_vec()).await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(header(&res, "range"), "0-9");
    // overlapping, skipping ahead, and back to the start: all 416, nothing written
    for (range, bytes) in [
        ("5-14", &data[5..15]),
        ("20-29", &data[20..30]),
        ("0-9", &data[0..10]),
    ] {
        let res = patch(range, bytes.to_vec()).await.unwrap();
        assert_eq!(res.status(), 416, "{range}");
        assert_eq!(header(&res, "range"), "0-9");
        assert_eq!(error_code(res).await, "BLOB_UPLOAD_INVALID");
    }
    let res = c.get(&loc).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "range"), "0-9");
    assert!(header(&res, "location").contains("/blobs/uploads/"));
    // a chunk whose body disagrees with its Content-Range is refused and loses nothing
    let res = patch("10-19", data[10..15].to_vec()).await.unwrap();
    assert_eq!(res.status(), 400);
    let res = patch("10-19", data[10..20].to_vec()).await.unwrap();
    assert_eq!(res.status(), 202);
    // the last chunk comes with the PUT; an out-of-order PUT chunk is refused too
    let res = c
        .put(format!("{loc}?digest={d}"))
        .header("Content-Range", "25-29")
        .body(data[25..30].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
    let res = c
        .put(format!("{loc}?digest={d}"))
        .header("Content-Range", "20-29")
        .body(data[20..30].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let got = c.get(s.v2(&format!("r/blobs/{d}"))).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let s = Server::start();
    let c = client();
    let data = vec![7u8; 3 * 1024 * 1024 + 17];
    let d = sha256(&data);
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    let loc = format!("{}{}", s.url, header(&res, "location"));
    let res = c.patch(&loc).body(data.clone()).send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(header(&res, "range"), format!("0-{}", data.len() - 1));
    let loc = format!("{}{}", s.url, header(&res, "location"));
    let res = c.put(format!("{loc}?digest={d}")).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let res = c.head(s.v2(&format!("r/blobs/{d}"))).send().await.unwrap();
    assert_eq!(header(&res, "content-length"), data.len().to_string());
}

#[tokio::test]
async fn digest_mismatch_is_rejected_and_loses_nothing() {
    let s = Server::start();
    let c = client();
    let claimed = sha256(b"what the client says");
    let res = c
        .post(s.v2(&format!("r/blobs/uploads/?digest={claimed}")))
        .body("something else")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "DIGEST_INVALID");
    let res = c
        .head(s.v2(&format!("r/blobs/{claimed}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // a session survives a bad digest at PUT, so the client can finish it correctly
    let data = b"session data".to_vec();
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    let loc = format!("{}{}", s.url, header(&res, "location"));
    c.patch(&loc).body(data.clone()).send().await.unwrap();
    let res = c
        .put(format!("{loc}?digest={claimed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c.put(&loc).send().await.unwrap();
    assert_eq!(res.status(), 400, "PUT without digest");
    assert_eq!(error_code(res).await, "DIGEST_INVALID");
    let res = c
        .put(format!("{loc}?digest={}", sha256(&data)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn sessions_belong_to_their_repository_and_can_be_cancelled() {
    let s = Server::start();
    let c = client();
    let res = c.post(s.v2("a/blobs/uploads/")).send().await.unwrap();
    let id = header(&res, "docker-upload-uuid");
    let res = c
        .get(s.v2(&format!("b/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "another repository cannot use the session"
    );
    let res = c
        .get(s.v2("a/blobs/uploads/not-a-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = c
        .get(s.v2("a/blobs/uploads/..%2F..%2Fblobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = c
        .delete(s.v2(&format!("a/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = c
        .get(s.v2(&format!("a/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn cross_repository_mount() {
    let s = Server::start();
    let c = client();
    let d = push_blob(&c, &s, "src", b"mount me").await;
    let res = c
        .post(s.v2(&format!("dst/blobs/uploads/?mount={d}&from=src")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "location"), format!("/v2/dst/blobs/{d}"));
    assert_eq!(header(&res, "docker-content-digest"), d);
    // without `from`, a blob the registry holds anywhere is mounted
    let res = c
        .post(s.v2(&format!("other/blobs/uploads/?mount={d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = c
        .get(s.v2(&format!("other/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"mount me");
    // nothing to mount: an ordinary upload session starts instead
    let missing = sha256(b"not anywhere");
    let res = c
        .post(s.v2(&format!("dst/blobs/uploads/?mount={missing}&from=src")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(header(&res, "location").starts_with("/v2/dst/blobs/uploads/"));
    // mounting from a repository that lacks the blob does not leak it
    let res = c
        .post(s.v2(&format!("dst2/blobs/uploads/?mount={d}&from=empty")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn concurrent_pushes_of_one_blob_all_succeed() {
    let s = Server::start();
    let c = client();
    let data = vec![42u8; 8 * 1024 * 1024];
    let d = sha256(&data);
    let pushes = (0..4).map(|i| {
        let (c, url, data) = (
            c.clone(),
            s.v2(&format!("r{}/blobs/uploads/?digest={d}", i % 2)),
            data.clone(),
        );
        tokio::spawn(async move { c.post(url).body(data).send().await.unwrap().status() })
    });
    for p in pushes {
        assert_eq!(p.await.unwrap(), 201);
    }
    for repo in ["r0", "r1"] {
        let res = c
            .get(s.v2(&format!("{repo}/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(sha256(&res.bytes().await.unwrap()), d);
    }
}

#[tokio::test]
async fn names_and_tags_are_validated() {
    let s = Server::start();
    let c = client();
    for bad in ["Upper/x", "a//b", "a__-b", "-a"] {
        let res = c
            .get(s.v2(&format!("{bad}/tags/list")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(error_code(res).await, "NAME_INVALID");
    }
    let res = put_manifest(&c, s.v2("r/manifests/.hidden"), "{}").await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "TAG_INVALID");
}

#[tokio::test]
async fn deep_repository_names_work() {
    let s = Server::start();
    let c = client();
    let repo = "a/b/c/d/e/f/g/h";
    let (m, d) = push_image(&c, &s, repo, "latest", "deep", json!({})).await;
    let res = c
        .get(s.v2(&format!("{repo}/manifests/latest")))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "docker-content-digest"), d);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &m[..]);
    let res = c.get(s.v2("_catalog")).send().await.unwrap();
    assert_eq!(json_body(res).await["repositories"], json!([repo]));
}

#[tokio::test]
async fn manifests_by_tag_and_digest_with_content_negotiation() {
    let s = Server::start();
    let c = client();
    let (m, d) = push_image(&c, &s, "r", "v1", "neg", json!({})).await;
    for reference in ["v1", d.as_str()] {
        let res = c
            .get(s.v2(&format!("r/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&res, "docker-content-digest"), d);
        assert_eq!(header(&res, "content-length"), m.len().to_string());
        assert_eq!(res.bytes().await.unwrap().as_ref(), &m[..]);
        let res = c
            .head(s.v2(&format!("r/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "content-length"), m.len().to_string());
        assert!(res.bytes().await.unwrap().is_empty());
    }
    let res = c
        .get(s.v2("r/manifests/v1"))
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "an index-only client is not handed an image manifest"
    );
    assert_eq!(error_code(res).await, "MANIFEST_UNKNOWN");
    let res = c
        .get(s.v2("r/manifests/v1"))
        .header("Accept", format!("{OCI_INDEX}, {OCI_MANIFEST};q=0.9"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(s.v2("r/manifests/missing")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "MANIFEST_UNKNOWN");
    let res = c.get(s.v2("nosuchrepo/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "NAME_UNKNOWN");
    // neither a tag nor a digest: no manifest has that name
    let res = c
        .get(s.v2("r/manifests/sha256:baddigeststring"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_with_missing_blobs_is_refused_and_stores_nothing() {
    let s = Server::start();
    let c = client();
    let cd = push_blob(&c, &s, "r", b"{}").await;
    let missing = sha256(b"layer nobody pushed");
    let m = image_manifest((&cd, 2), &[(&missing, 19)], json!({}));
    let res = put_manifest(&c, s.v2("r/manifests/v1"), m.clone()).await;
    assert_eq!(res.status(), 400);
    let body = json_body(res).await;
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(body["errors"][0]["detail"]["missing"], json!([missing]));
    let res = c.get(s.v2("r/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // non-distributable layers are exempt
    let nd = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    "digest": missing, "size": 19, "urls": ["https://example.com/layer"]}]
    });
    let res = put_manifest(&c, s.v2("r/manifests/nd"), nd.to_string()).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn index_children_must_exist_and_docker_types_are_kept() {
    let s = Server::start();
    let c = client();
    let (m1, d1) = push_image(&c, &s, "r", "amd64", "one", json!({})).await;
    let child2 = image_manifest((&sha256(b"x"), 1), &[], json!({}));
    let d2 = sha256(&child2);
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d1, "size": m1.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": d2, "size": child2.len(), "platform": {"os": "linux", "architecture": "arm64"}}
        ]
    })
    .to_string();
    let res = c
        .put(s.v2("r/manifests/multi"))
        .header("Content-Type", OCI_INDEX)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = json_body(res).await;
    assert_eq!(body["errors"][0]["detail"]["missing"], json!([d2]));

    // Docker schema 2 manifest list over Docker schema 2 manifests
    let cd = push_blob(&c, &s, "d", b"{\"architecture\":\"amd64\"}").await;
    let ld = push_blob(&c, &s, "d", b"docker layer").await;
    let dm = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": 24},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld, "size": 12}]
    })
    .to_string();
    let res = c
        .put(s.v2("d/manifests/img"))
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(dm.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let list = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "digest": sha256(dm.as_bytes()), "size": dm.len(),
                       "platform": {"architecture": "amd64", "os": "linux", "features": ["sse4"]}}]
    })
    .to_string();
    let res = c
        .put(s.v2("d/manifests/list"))
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = c.get(s.v2("d/manifests/list")).send().await.unwrap();
    assert_eq!(
        header(&res, "content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
}

#[tokio::test]
async fn bad_manifests_get_clear_errors() {
    let s = Server::start();
    let c = client();
    let schema1 =
        json!({"schemaVersion": 1, "name": "r", "tag": "v1", "fsLayers": [], "history": []});
    let res = c
        .put(s.v2("r/manifests/v1"))
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )
        .body(schema1.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = json_body(res).await;
    assert_eq!(body["errors"][0]["code"], "MANIFEST_INVALID");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("schema 1"));

    let res = put_manifest(&c, s.v2("r/manifests/v1"), "{not json").await;
    assert_eq!(error_code(res).await, "MANIFEST_INVALID");

    // body bytes that do not hash to the digest in the URL
    let (m, _) = push_image(&c, &s, "r", "v2", "x", json!({})).await;
    let mut padded = m.clone();
    padded.extend_from_slice(b"  ");
    let res = put_manifest(&c, s.v2(&format!("r/manifests/{}", sha256(&m))), padded).await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "DIGEST_INVALID");
    let res = put_manifest(&c, s.v2("r/manifests/sha256:baddigeststring"), m.clone()).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn manifest_size_limit_is_four_mebibytes() {
    let s = Server::start();
    let c = client();
    let cd = push_blob(&c, &s, "r", b"{}").await;
    // just under the limit, as the conformance suite's "large manifest" is: accepted
    let annotations: serde_json::Map<String, Value> = (0..390)
        .map(|i| (format!("large-annotation-{i}"), json!("A".repeat(10_000))))
        .collect();
    let big = image_manifest((&cd, 2), &[], json!({ "annotations": annotations }));
    assert!(big.len() > 3_900_000 && big.len() < 4 * 1024 * 1024);
    let res = put_manifest(&c, s.v2("r/manifests/big"), big.clone()).await;
    assert_eq!(res.status(), 201);
    let res = c.get(s.v2("r/manifests/big")).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap().len(), big.len());
    // over the limit: refused, tag untouched
    let over = vec![b' '; 4 * 1024 * 1024 + 1];
    let res = put_manifest(&c, s.v2("r/manifests/big"), over).await;
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "SIZE_INVALID");
    let res = c.get(s.v2("r/manifests/big")).send().await.unwrap();
    assert_eq!(header(&res, "docker-content-digest"), sha256(&big));
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link_headers() {
    let s = Server::start();
    let c = client();
    let (m, _) = push_image(&c, &s, "r", "t0", "p", json!({})).await;
    for t in ["t3", "t1", "t4", "t2"] {
        let res = put_manifest(&c, s.v2(&format!("r/manifests/{t}")), m.clone()).await;
        assert_eq!(res.status(), 201);
    }
    let res = c.get(s.v2("r/tags/list")).send().await.unwrap();
    assert!(res.headers().get("link").is_none());
    assert_eq!(
        json_body(res).await,
        json!({"name": "r", "tags": ["t0", "t1", "t2", "t3", "t4"]})
    );

    let res = c.get(s.v2("r/tags/list?n=2")).send().await.unwrap();
    let link = header(&res, "link");
    assert_eq!(link, "</v2/r/tags/list?n=2&last=t1>; rel=\"next\"");
    assert_eq!(json_body(res).await["tags"], json!(["t0", "t1"]));
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let res = c.get(format!("{}{next}", s.url)).send().await.unwrap();
    assert_eq!(json_body(res).await["tags"], json!(["t2", "t3"]));
    let res = c.get(s.v2("r/tags/list?last=t2")).send().await.unwrap();
    assert_eq!(json_body(res).await["tags"], json!(["t3", "t4"]));
    let res = c.get(s.v2("r/tags/list?n=0")).send().await.unwrap();
    assert_eq!(json_body(res).await["tags"], json!([]));
    let res = c.get(s.v2("r/tags/list?n=-1")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let res = c.get(s.v2("unknown/tags/list")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "NAME_UNKNOWN");

    for repo in ["b", "a", "c/d"] {
        push_blob(&c, &s, repo, repo.as_bytes()).await;
    }
    let res = c.get(s.v2("_catalog?n=2")).send().await.unwrap();
    assert_eq!(
        header(&res, "link"),
        "</v2/_catalog?n=2&last=b>; rel=\"next\""
    );
    assert_eq!(json_body(res).await["repositories"], json!(["a", "b"]));
    let res = c.get(s.v2("_catalog?n=2&last=b")).send().await.unwrap();
    assert_eq!(json_body(res).await["repositories"], json!(["c/d", "r"]));
}

#[tokio::test]
async fn deletes_by_tag_digest_and_blob() {
    let s = Server::start();
    let c = client();
    let (m, d) = push_image(&c, &s, "r", "keep", "del", json!({})).await;
    c.put(s.v2("r/manifests/drop"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    // by tag: only the tag goes
    let res = c.delete(s.v2("r/manifests/drop")).send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        c.head(s.v2("r/manifests/drop"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.head(s.v2("r/manifests/keep"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = c.delete(s.v2("r/manifests/drop")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // by digest: the manifest and every tag on it
    let res = c
        .delete(s.v2(&format!("r/manifests/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        c.head(s.v2(&format!("r/manifests/{d}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.head(s.v2("r/manifests/keep"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let res = c.get(s.v2("r/tags/list")).send().await.unwrap();
    assert_eq!(json_body(res).await["tags"], json!([]));

    // blobs: unlinked from one repository, still served by another
    let b = push_blob(&c, &s, "r", b"shared").await;
    push_blob(&c, &s, "q", b"shared").await;
    let res = c
        .delete(s.v2(&format!("r/blobs/{b}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        c.head(s.v2(&format!("r/blobs/{b}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.head(s.v2(&format!("q/blobs/{b}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = c
        .delete(s.v2(&format!("r/blobs/{b}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn referrers_list_filter_and_subject_header() {
    let s = Server::start();
    let c = client();
    let (subject_bytes, subject) = push_image(&c, &s, "r", "app", "subj", json!({})).await;
    let subject_desc =
        json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len()});
    let empty = push_blob(&c, &s, "r", b"{}").await;
    let artifact = |kind: &str, note: &str| {
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": subject_desc, "annotations": {"note": note}
        })
        .to_string()
    };
    let mut pushed = Vec::new();
    for (kind, note) in [
        ("application/vnd.example.sbom", "one"),
        ("application/vnd.example.sig", "two"),
    ] {
        let body = artifact(kind, note);
        let d = sha256(body.as_bytes());
        let res = put_manifest(&c, s.v2(&format!("r/manifests/{d}")), body.clone()).await;
        assert_eq!(res.status(), 201);
        assert_eq!(header(&res, "oci-subject"), subject);
        pushed.push((d, body.len(), kind));
    }
    let res = c
        .get(s.v2(&format!("r/referrers/{subject}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), OCI_INDEX);
    let index = json_body(res).await;
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for (d, size, kind) in &pushed {
        let e = listed
            .iter()
            .find(|e| e["digest"] == json!(d))
            .expect("listed");
        assert_eq!(e["mediaType"], OCI_MANIFEST);
        assert_eq!(e["size"], json!(size));
        assert_eq!(e["artifactType"], json!(kind));
        assert!(e["annotations"]["note"].is_string());
    }
    let res = c
        .get(s.v2(&format!(
            "r/referrers/{subject}?artifactType=application/vnd.example.sig"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "oci-filters-applied"), "artifactType");
    let index = json_body(res).await;
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );

    // nothing refers to it, or the repository does not exist: an empty index, not an error
    for url in [
        s.v2(&format!("r/referrers/{}", sha256(b"nothing"))),
        s.v2(&format!("nope/referrers/{subject}")),
    ] {
        let res = c.get(url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(json_body(res).await["manifests"], json!([]));
    }
    let res = c
        .get(s.v2("r/referrers/sha256:nothex"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn a_referrer_may_arrive_before_its_subject() {
    let s = Server::start();
    let c = client();
    let empty = push_blob(&c, &s, "r", b"{}").await;
    let future_subject = sha256(b"pushed later");
    let sig = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": future_subject, "size": 123}
    })
    .to_string();
    let res = put_manifest(&c, s.v2("r/manifests/sig"), sig).await;
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "oci-subject"), future_subject);
    let res = c
        .get(s.v2(&format!("r/referrers/{future_subject}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(res).await["manifests"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn sha512_blobs_and_manifests() {
    let s = Server::start();
    let c = client();
    let config = b"{\"sha\":512}".to_vec();
    let layer = vec![5u8; 5000];
    let cd = sha512(&config);
    let res = c
        .post(s.v2(&format!("r/blobs/uploads/?digest={cd}")))
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "docker-content-digest"), cd);
    // chunked, finishing with a sha512 digest
    let ld = sha512(&layer);
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    let loc = format!("{}{}", s.url, header(&res, "location"));
    let res = c
        .patch(&loc)
        .header("Content-Range", "0-2499")
        .body(layer[..2500].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = c
        .put(format!("{loc}?digest={ld}"))
        .header("Content-Range", "2500-4999")
        .body(layer[2500..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = c.get(s.v2(&format!("r/blobs/{ld}"))).send().await.unwrap();
    assert_eq!(sha512(&res.bytes().await.unwrap()), ld);

    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())], json!({}));
    let md = sha512(&m);
    let res = put_manifest(
        &c,
        s.v2(&format!("r/manifests/{md}?tag=five-twelve")),
        m.clone(),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "docker-content-digest"), md);
    assert_eq!(header(&res, "location"), format!("/v2/r/manifests/{md}"));
    let res = c
        .get(s.v2(&format!("r/manifests/{md}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), &m[..]);
    let res = c.get(s.v2("r/manifests/five-twelve")).send().await.unwrap();
    assert_eq!(header(&res, "docker-content-digest"), md);
}

#[tokio::test]
async fn tag_parameters_tag_a_push_by_digest() {
    let s = Server::start();
    let c = client();
    let (m, d) = push_image(&c, &s, "r", "first", "tp", json!({})).await;
    let res = put_manifest(&c, s.v2(&format!("r/manifests/{d}?tag=a&tag=b")), m).await;
    assert_eq!(res.status(), 201);
    let tags: Vec<_> = res
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, vec!["a", "b"]);
    for t in ["a", "b"] {
        let res = c
            .head(s.v2(&format!("r/manifests/{t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&res, "docker-content-digest"), d);
    }
}

#[tokio::test]
async fn idle_upload_sessions_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_in(&tmp.path().join("d"), &["--upload-ttl", "1"]);
    let c = client();
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    let loc = format!("{}{}", s.url, header(&res, "location"));
    // the sweeper runs every second and removes sessions idle for more than one second
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if c.get(&loc).send().await.unwrap().status() == 404 {
            gone = true;
            break;
        }
    }
    assert!(gone, "idle session still present after 10 s with a 1 s ttl");
    assert!(std::fs::read_dir(s.data_dir.join("uploads"))
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let mut s = Server::start();
    push_blob(&client(), &s, "r", b"x").await;
    assert!(s.terminate(), "bonded exits 0 on SIGTERM");
}

#[tokio::test]
async fn concurrent_manifest_pushes_succeed_or_fail_independently() {
    let s = Server::start();
    let c = client();
    let cd = push_blob(&c, &s, "r", b"{}").await;
    let missing = sha256(b"missing layer");
    let pushes = (0..40).map(|i| {
        let c = c.clone();
        let layers: Vec<(&str, usize)> = if i % 2 == 0 {
            vec![]
        } else {
            vec![(&missing, 13)]
        };
        let body = image_manifest(
            (&cd, 2),
            &layers,
            json!({"annotations": {"i": i.to_string()}}),
        );
        let url = s.v2(&format!("r/manifests/t{i}"));
        tokio::spawn(async move {
            let res = c
                .put(url)
                .header("Content-Type", OCI_MANIFEST)
                .body(body)
                .send()
                .await
                .unwrap();
            (i, res.status().as_u16())
        })
    });
    for p in pushes {
        let (i, status) = p.await.unwrap();
        assert_eq!(status, if i % 2 == 0 { 201 } else { 400 }, "push {i}");
    }
    let res = c.get(s.v2("r/tags/list")).send().await.unwrap();
    let tags = json_body(res).await["tags"].as_array().unwrap().clone();
    assert_eq!(
        tags.len(),
        20,
        "only the valid pushes left a trace: {tags:?}"
    );
    assert!(tags
        .iter()
        .all(|t| t.as_str().unwrap()[1..].parse::<u32>().unwrap() % 2 == 0));
}

#[tokio::test]
async fn retagging_serves_the_new_manifest() {
    let s = Server::start();
    let c = client();
    let (_, first) = push_image(&c, &s, "r", "moving", "one", json!({})).await;
    for _ in 0..3 {
        let res = c.get(s.v2("r/manifests/moving")).send().await.unwrap();
        assert_eq!(header(&res, "docker-content-digest"), first);
    }
    let (_, second) = push_image(&c, &s, "r", "moving", "two", json!({})).await;
    let res = c.get(s.v2("r/manifests/moving")).send().await.unwrap();
    assert_eq!(header(&res, "docker-content-digest"), second);
    c.delete(s.v2(&format!("r/manifests/{second}")))
        .send()
        .await
        .unwrap();
    let res = c.get(s.v2("r/manifests/moving")).send().await.unwrap();
    assert_eq!(
        res.status(),
        404,
        "a deleted manifest is not served from memory"
    );
    let res = c
        .get(s.v2(&format!("r/manifests/{second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// The protocol edge cases the adversarial review found: a manifest reference that is
/// neither a tag nor a digest names no manifest (404, as the OCI conformance suite asks
/// with `.INVALID_MANIFEST_NAME`); a suffix range of an empty blob is unsatisfiable (it
/// underflowed); a chunk range whose length overflows 64 bits is unsatisfiable (it wrapped
/// to an accepted empty chunk).
#[tokio::test]
async fn references_and_ranges_at_their_edges() {
    let s = Server::start();
    let c = client();
    push_image(&c, &s, "edge/app", "v1", "edge", json!({})).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::HEAD,
        reqwest::Method::DELETE,
    ] {
        for reference in [".INVALID_MANIFEST_NAME", "-dash", "x".repeat(129).as_str()] {
            let res = c
                .request(
                    method.clone(),
                    s.v2(&format!("edge/app/manifests/{reference}")),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{method} {reference}");
            if method == reqwest::Method::GET {
                assert_eq!(error_code(res).await, "MANIFEST_UNKNOWN");
            }
        }
    }
    // Pushing under such a reference is still a bad request.
    let res = put_manifest(
        &c,
        s.v2("edge/app/manifests/.INVALID_MANIFEST_NAME"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "TAG_INVALID");

    // An empty blob: every range is unsatisfiable, the suffix ones included.
    let empty = push_blob(&c, &s, "edge/app", b"").await;
    for range in ["bytes=-5", "bytes=-1", "bytes=0-", "bytes=0-0"] {
        let res = c
            .get(s.v2(&format!("edge/app/blobs/{empty}")))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 416, "{range}");
        assert_eq!(res.headers()["content-range"], "bytes */0", "{range}");
    }
    let res = c
        .get(s.v2(&format!("edge/app/blobs/{empty}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A chunk claiming 2^64 bytes from 0: refused, and the session keeps what it had.
    let res = c
        .post(s.v2("edge/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let url = format!("{}{location}", s.url);
    for (range, status) in [
        ("0-18446744073709551615", 416),
        ("1-18446744073709551615", 416),
    ] {
        let res = c
            .patch(&url)
            .header("Content-Range", range)
            .header("Content-Type", "application/octet-stream")
            .body(Vec::new())
            .send()
            .await
            .unwrap();
        // the first cannot be a chunk at all; the second starts past what the session holds
        assert_eq!(res.status(), status, "{range}");
    }
    let res = c.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let done = c
        .put(format!("{url}?digest={}", sha256(b"")))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201, "the session is intact and empty");
}

/// A referrers list comes in pages of at most 1,000 (fewer with `n`), linked with `Link`,
/// each page a complete OCI index; following the links lists every referrer once, with
/// the artifactType filter kept.
#[tokio::test]
async fn referrers_come_in_linked_pages() {
    let s = Server::start();
    let c = client();
    let (subject_bytes, subject) = push_image(&c, &s, "p", "app", "paged", json!({})).await;
    let subject_desc =
        json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len()});
    let empty = push_blob(&c, &s, "p", b"{}").await;
    let mut pushed = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 {
            "application/vnd.example.sbom"
        } else {
            "application/vnd.example.other"
        };
        let body = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": subject_desc, "annotations": {"i": i.to_string()}
        })
        .to_string();
        let d = sha256(body.as_bytes());
        assert_eq!(
            put_manifest(&c, s.v2(&format!("p/manifests/{d}")), body)
                .await
                .status(),
            201
        );
        pushed.push((d, kind));
    }
    let walk = |first: String| {
        let (c, base) = (c.clone(), s.url.clone());
        async move {
            let mut seen = Vec::new();
            let mut url = first;
            let mut pages = 0;
            loop {
                pages += 1;
                assert!(pages < 10, "the pages never end");
                let res = c.get(&url).send().await.unwrap();
                assert_eq!(res.status(), 200);
                let link = res
                    .headers()
                    .get("link")
                    .map(|l| l.to_str().unwrap().to_string());
                let index = json_body(res).await;
                assert_eq!(index["mediaType"], OCI_INDEX);
                let page = index["manifests"].as_array().unwrap().clone();
                assert!(page.len() <= 2, "{page:?}");
                seen.extend(
                    page.iter()
                        .map(|m| m["digest"].as_str().unwrap().to_string()),
                );
                match link {
                    Some(l) => {
                        assert!(l.ends_with("; rel=\"next\""), "{l}");
                        let path = l.trim_start_matches('<').split('>').next().unwrap();
                        url = format!("{base}{path}");
                    }
                    None => return (seen, pages),
                }
            }
        }
    };
    let (seen, pages) = walk(s.v2(&format!("p/referrers/{subject}?n=2"))).await;
    assert_eq!(pages, 3);
    let mut all: Vec<String> = pushed.iter().map(|(d, _)| d.clone()).collect();
    all.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, all, "every referrer once");
    let (seen, _) = walk(s.v2(&format!(
        "p/referrers/{subject}?n=2&artifactType=application/vnd.example.sbom"
    )))
    .await;
    let mut sboms: Vec<String> = pushed
        .iter()
        .filter(|(_, k)| *k == "application/vnd.example.sbom")
        .map(|(d, _)| d.clone())
        .collect();
    sboms.sort();
    let mut got = seen;
    got.sort();
    assert_eq!(got, sboms, "the filter is kept across pages");
}

/// A completing PUT refused for its digest leaves the session as it was before it: the
/// last chunk it carried is not kept, so the same PUT with the right digest succeeds.
#[tokio::test]
async fn a_refused_completing_put_leaves_its_session_as_it_was() {
    let s = Server::start();
    let c = client();
    let res = c.post(s.v2("r/blobs/uploads/")).send().await.unwrap();
    let url = format!("{}{}", s.url, res.headers()["location"].to_str().unwrap());
    let res = c
        .patch(&url)
        .header("Content-Range", "0-4")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let wrong = sha256(b"something else");
    let res = c
        .put(format!("{url}?digest={wrong}"))
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "DIGEST_INVALID");
    let res = c.get(&url).send().await.unwrap();
    assert_eq!(res.headers()["range"], "0-4", "the refused chunk was kept");
    let right = sha256(b"hello world");
    let res = c
        .put(format!("{url}?digest={right}"))
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = c
        .get(s.v2(&format!("r/blobs/{right}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"hello world");
}
