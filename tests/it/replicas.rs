//! Two `bonded serve` processes on one PostgreSQL database and one S3 bucket, as behind a
//! load balancer: each must answer as the one registry both are. What one process
//! writes, the other serves at once; what one changes (a tag, the trust policy, a grant)
//! the other applies within a second, whatever it had cached; an upload one began and
//! acknowledged survives its death on the other; the audit trail both write is one chain.

use crate::common::{self, as_user, pg, s3, sha256, Server, ADMIN_PASSWORD};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "replica-admin-token-for-tests";

struct Fleet {
    url: String,
    endpoint: &'static str,
    bucket: String,
    tmp: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Option<Fleet> {
        let cluster = pg::cluster_or_skip("replicas")?;
        let endpoint = s3::endpoint_or_skip("replicas")?;
        let tmp = tempfile::tempdir().unwrap();
        // The database and bucket are the fleet's, not any one data directory's.
        let url = cluster.database_for(&tmp.path().join("fleet"));
        let bucket = s3::bucket_for(&tmp.path().join("fleet"));
        s3::create_bucket(endpoint, &bucket);
        Some(Fleet {
            url,
            endpoint,
            bucket,
            tmp,
        })
    }

    /// A replica with a data directory of its own (its pull journal, nothing shared).
    fn replica(&self, name: &str) -> Server {
        let dir = self.tmp.path().join(name);
        Server::spawn(self.command(&dir), &dir)
    }

    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Server::own_command(
            dir,
            &[
                "--hostname",
                "registry.test",
                "--admin-token",
                TOKEN,
                "--database-url",
                &self.url,
            ],
        );
        s3::configure(&mut cmd, self.endpoint, &self.bucket, "fleet");
        cmd
    }

    /// `bonded ARGS --database-url URL`: an offline command on the fleet's database.
    fn bonded(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--database-url", &self.url]);
        common::bonded_with_stdin(&all, stdin)
    }
}

/// Polls `check` every 20 ms until it holds, for at most `limit`; whether it did.
async fn within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn digest_of_tag(c: &reqwest::Client, s: &Server, repo: &str, tag: &str) -> Option<String> {
    let res = c
        .get(s.v2(&format!("{repo}/manifests/{tag}")))
        .header("Accept", common::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    if res.status() != 200 {
        return None;
    }
    res.headers()
        .get("docker-content-digest")
        .map(|d| d.to_str().unwrap().to_string())
}

#[tokio::test]
async fn two_replicas_on_one_database_and_bucket_act_as_one_registry() {
    let Some(fleet) = Fleet::new() else { return };
    let mut a = fleet.replica("a");
    let b = fleet.replica("b");
    let admin = as_user("admin", ADMIN_PASSWORD);

    // Pushed through A, pullable through B at once: manifest and blobs.
    let (m1, d1) = common::push_image(&admin, &a, "team/app", "v1", "one", json!({})).await;
    assert_eq!(
        digest_of_tag(&admin, &b, "team/app", "v1").await,
        Some(d1.clone())
    );
    let got = admin
        .get(b.v2(&format!("team/app/manifests/{d1}")))
        .header("Accept", common::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), m1.as_slice());
    let layer = sha256(b"layer of one");
    let blob = admin
        .get(b.v2(&format!("team/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"layer of one");

    // B has v1 cached now; moved through A, B serves the new manifest within a second.
    let (_, d2) = common::push_image(&admin, &a, "team/app", "v1", "two", json!({})).await;
    assert_ne!(d1, d2);
    assert!(
        within(Duration::from_secs(1), || async {
            digest_of_tag(&admin, &b, "team/app", "v1").await.as_deref() == Some(d2.as_str())
        })
        .await,
        "B still serves the old v1"
    );

    // A bearer token A issued works on B (one signing key for the fleet).
    let res = admin
        .get(format!(
            "{}/token?service=registry.test&scope=repository:team/app:pull",
            a.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let bearer = token["token"].as_str().unwrap().to_string();
    let res = common::client()
        .get(b.v2("team/app/tags/list"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "A's token on B");

    // A grant removed through one process stops working on the other within a second.
    common::ok(&fleet.bonded(
        &["user", "add", "carol", "--password-stdin"],
        &common::password("carol"),
    ));
    common::ok(&fleet.bonded(&["role", "grant", "carol", "reader", "team/*"], ""));
    let carol = as_user("carol", &common::password("carol"));
    let pull = |s: &Server| {
        let (carol, url) = (carol.clone(), s.v2("team/app/manifests/v1"));
        async move {
            carol
                .get(url)
                .header("Accept", common::OCI_MANIFEST)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(pull(&b).await, 200);
    common::ok(&fleet.bonded(&["role", "revoke", "carol", "reader", "team/*"], ""));
    assert!(
        within(Duration::from_secs(1), || async { pull(&b).await != 200 }).await,
        "B still lets carol pull"
    );

    // A trust change through A: B decides pushes by it within a second.
    let ca = common::pki::Ca::new("Fleet Root");
    let admin_api = |s: &Server, path: &str, body: Vec<u8>| {
        let url = format!("{}/bonded/v1/{path}", s.url);
        async move {
            common::client()
                .put(url)
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        admin_api(&a, "trust/stores/ca/fleet", ca.pem.clone().into_bytes()).await,
        200
    );
    let policy = json!({"version": "1.0", "trustPolicies": [{
        "name": "signed", "registryScopes": ["registry.test/signed/*"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:fleet"],
        "trustedIdentities": ["*"], "bonded.unsignedPush": "reject"}]});
    assert_eq!(
        admin_api(&a, "trust/policy", policy.to_string().into_bytes()).await,
        200
    );
    let mut n = 0;
    assert!(
        within(Duration::from_secs(1), || {
            n += 1;
            let (admin, b) = (&admin, &b);
            async move {
                let config = format!("{{\"try\":{n}}}").into_bytes();
                let cd = common::push_blob(admin, b, "signed/app", &config).await;
                let m = common::image_manifest((&cd, config.len()), &[], json!({}));
                let res =
                    common::put_manifest(admin, b.v2(&format!("signed/app/manifests/t{n}")), m)
                        .await;
                res.status() == 403 || res.status() == 400
            }
        })
        .await,
        "B still admits unsigned pushes"
    );

    // A killed mid-upload: what it acknowledged is there, and B completes the session.
    let body = vec![7u8; 6 << 20];
    let digest = sha256(&body);
    let res = admin
        .post(a.v2("team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let at = res.headers()["location"].to_str().unwrap().to_string();
    let res = admin
        .patch(format!("{}{at}", a.url))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("0-{}", (4 << 20) - 1))
        .body(body[..4 << 20].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let at = res.headers()["location"].to_str().unwrap().to_string();
    a.kill9();
    let status = admin.get(format!("{}{at}", b.url)).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(
        status.headers()["range"].to_str().unwrap(),
        format!("0-{}", (4 << 20) - 1)
    );
    let sep = if at.contains('?') { '&' } else { '?' };
    let res = admin
        .put(format!("{}{at}{sep}digest={digest}", b.url))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{}-{}", 4 << 20, body.len() - 1))
        .body(body[4 << 20..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let got = admin
        .get(b.v2(&format!("team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice());

    // Both wrote the audit trail: one chain, intact.
    drop(b);
    let out = fleet.bonded(&["audit", "verify"], "");
    let text = common::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("intact"), "{text}");
}
