//! Real clients against bonded: skopeo copies an image built by umoci, and a multi-platform
//! index written here as an OCI layout, into the registry and back, byte for byte.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (install it: apt-get install -y {cmd}): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo(args: &[&str]) -> String {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all)
}

/// Every blob of an OCI layout, by digest.
fn layout_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for alg in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let alg = alg.unwrap();
        for blob in std::fs::read_dir(alg.path()).unwrap() {
            let blob = blob.unwrap();
            out.insert(
                format!(
                    "{}:{}",
                    alg.file_name().to_string_lossy(),
                    blob.file_name().to_string_lossy()
                ),
                std::fs::read(blob.path()).unwrap(),
            );
        }
    }
    out
}

/// Digests reachable from a layout's `index.json` entry (the manifest or index, its children,
/// configs and layers).
fn reachable(blobs: &BTreeMap<String, Vec<u8>>, root: &str, out: &mut Vec<String>) {
    out.push(root.to_string());
    let v: Value = serde_json::from_slice(&blobs[root]).unwrap();
    for d in v["manifests"].as_array().into_iter().flatten() {
        reachable(blobs, d["digest"].as_str().unwrap(), out);
    }
    if let Some(c) = v["config"]["digest"].as_str() {
        out.push(c.to_string());
    }
    for l in v["layers"].as_array().into_iter().flatten() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
}

fn root_digest(layout: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts everything reachable from `src`'s root arrived in `dst` unchanged.
fn assert_same_image(src: &Path, dst: &Path) {
    let (a, b) = (layout_blobs(src), layout_blobs(dst));
    let root = root_digest(src);
    assert_eq!(
        root_digest(dst),
        root,
        "manifest digest survives the round trip"
    );
    let mut digests = Vec::new();
    reachable(&a, &root, &mut digests);
    assert!(digests.len() >= 3);
    for d in digests {
        assert_eq!(
            a.get(&d),
            b.get(&d),
            "blob {d} identical after the round trip"
        );
    }
}

#[test]
fn skopeo_copies_a_umoci_image_in_and_out() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let src_s = src.to_str().unwrap();
    run("umoci", &["init", "--layout", src_s]);
    run("umoci", &["new", "--image", &format!("{src_s}:latest")]);
    let payload = tmp.path().join("payload");
    let bytes: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&payload, &bytes).unwrap();
    run(
        "umoci",
        &[
            "insert",
            "--image",
            &format!("{src_s}:latest"),
            payload.to_str().unwrap(),
            "/payload",
        ],
    );

    let remote = format!("docker://{}/clients/umoci:v1", s.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{src_s}:latest"),
        &remote,
    ]);
    let back = tmp.path().join("back");
    let back_s = back.to_str().unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{back_s}:latest"),
    ]);
    assert_same_image(&src, &back);

    let tags: Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/clients/umoci", s.addr),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]));

    // converted to Docker schema 2 on the way in, served as such
    let docker = format!("docker://{}/clients/umoci:docker", s.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{src_s}:latest"),
        &docker,
    ]);
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &docker,
    ]))
    .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn skopeo_copies_a_multi_platform_index_with_all() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("multi");
    let layout = OciLayout::create(&src);
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer: Vec<u8> = format!("layer for {arch}\n").repeat(20_000).into_bytes();
        let (ld, ln) = layout.blob(&layer);
        let config = json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [ld]}
        });
        let (cd, cn) = layout.blob(config.to_string().as_bytes());
        let m = image_manifest((&cd, cn), &[(&ld, ln)], json!({}));
        let (md, mn) = layout.blob(&m);
        children.push(json!({
            "mediaType": OCI_MANIFEST, "digest": md, "size": mn,
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children});
    let (idx_d, idx_n) = layout.blob(index.to_string().as_bytes());
    let layout_index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": idx_d, "size": idx_n,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
    });
    layout.index(&layout_index);

    let remote = format!("docker://{}/clients/multi:latest", s.addr);
    let src_s = src.to_str().unwrap();
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{src_s}:latest"),
        &remote,
    ]);
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &remote,
    ]))
    .unwrap();
    assert_eq!(raw["mediaType"], OCI_INDEX);
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);

    let back = tmp.path().join("back");
    let back_s = back.to_str().unwrap();
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{back_s}:latest"),
    ]);
    assert_same_image(&src, &back);
}
