//! Pull rate limits: manifest GETs per client address, 429 TOOMANYREQUESTS with
//! Retry-After and RateLimit-* headers, recovery once the bucket refills, and refusals
//! in the audit trail.

use crate::common;

use common::*;
use serde_json::json;

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn pulls_over_the_limit_get_429_and_recover() {
    let tmp = tempfile::tempdir().unwrap();
    // 2 pulls per 10 s: one token every 5 s
    let s = Server::start_in(&tmp.path().join("data"), &["--pull-rate-limit", "2/10s"]);
    let c = client();
    let (_, digest) = push_image(&c, &s, "lab/app", "v1", "rl", json!({})).await;
    let url = s.v2("lab/app/manifests/v1");
    let get = || c.get(&url).header("Accept", OCI_MANIFEST).send();

    let first = get().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-limit"), "2");
    assert_eq!(header(&first, "ratelimit-remaining"), "1");
    assert_eq!(header(&first, "ratelimit-policy"), "2;w=10");

    // HEAD and blob reads are not pulls
    for _ in 0..3 {
        let head = c
            .head(&url)
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
    }

    let second = get().await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "ratelimit-remaining"), "0");

    let refused = get().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=5).contains(&retry), "retry after {retry}");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    let body: serde_json::Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    let msg = body["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("2 manifest pulls per 10 s"), "{msg}");
    assert_eq!(body["errors"][0]["detail"]["retryAfterSeconds"], retry);

    // a pull by digest counts too; pushes are not limited
    let by_digest = c
        .get(s.v2(&format!("lab/app/manifests/{digest}")))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(by_digest.status(), 429);
    push_image(&c, &s, "lab/app", "v2", "rl2", json!({})).await;

    tokio::time::sleep(
        std::time::Duration::from_secs(retry) + std::time::Duration::from_millis(200),
    )
    .await;
    let again = get().await.unwrap();
    assert_eq!(again.status(), 200, "the bucket refilled");
    assert_eq!(sha256(&again.bytes().await.unwrap()), digest);

    // the trail holds the refusals beside the pulls (pulls reach it within 250 ms)
    let mut pulls = Vec::new();
    for _ in 0..40 {
        let res = c
            .get(format!(
                "{}/bonded/v1/audit?action=manifest.pull&repository=lab/app",
                s.url
            ))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        pulls = body["records"].as_array().unwrap().clone();
        if pulls.len() == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let outcomes: Vec<_> = pulls
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["ok", "ok", "denied", "denied", "ok"],
        "{pulls:?}"
    );
    assert_eq!(pulls[2]["tag"], "v1");
    assert_eq!(pulls[3]["digest"], digest.as_str());
    assert!(
        pulls[3]["reason"]
            .as_str()
            .unwrap()
            .contains("pull rate limit reached for 127.0.0.1"),
        "{pulls:?}"
    );
}

#[tokio::test]
async fn without_a_limit_there_are_no_ratelimit_headers() {
    let s = Server::start();
    let c = client();
    push_image(&c, &s, "lab/free", "v1", "free", json!({})).await;
    for _ in 0..20 {
        let res = c
            .get(s.v2("lab/free/manifests/v1"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("ratelimit-limit").is_none());
    }
}

#[test]
fn a_malformed_limit_stops_the_server_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--pull-rate-limit",
            "lots/hour",
            "--data-dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("COUNT/WINDOW"), "{err}");
}

/// With accounts: anonymous clients are limited per address, accounts per account, and
/// a role's own limit applies to accounts holding it on the repository pulled.
#[tokio::test]
async fn accounts_and_roles_have_their_own_pull_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(
        &data,
        &[
            "--pull-rate-limit",
            "1/hour",
            "--pull-rate-limit-account",
            "2/hour",
            "--pull-rate-limit-role",
            "developer=3/hour",
        ],
    );
    user(&data, "reader", "reader", "lab/*");
    user(&data, "dev", "developer", "lab/*");
    ok(&bonded(&data, &["namespace", "public", "lab/*"], ""));
    let admin = as_user("admin", ADMIN_PASSWORD);
    push_image(&admin, &s, "lab/app", "v1", "roles", json!({})).await;
    // the server re-reads namespaces at least every two seconds
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let url = s.v2("lab/app/manifests/v1");
    for (who, allowed, policy) in [
        ("anonymous", 1, "1;w=3600"),
        ("reader", 2, "2;w=3600"),
        ("dev", 3, "3;w=3600"),
    ] {
        let c = if who == "anonymous" {
            client()
        } else {
            as_user(who, &password(who))
        };
        for i in 0..allowed {
            let res = c.get(&url).send().await.unwrap();
            assert_eq!(res.status(), 200, "{who} pull {i}");
            assert_eq!(header(&res, "ratelimit-policy"), policy, "{who}");
        }
        let res = c.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 429, "{who} over the limit");
        let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        let msg = body["errors"][0]["message"].as_str().unwrap().to_string();
        match who {
            "anonymous" => assert!(msg.contains("for 127.0.0.1"), "{msg}"),
            "reader" => assert!(msg.contains("for account 'reader':"), "{msg}"),
            _ => assert!(msg.contains("for account 'dev' (developer)"), "{msg}"),
        }
    }
    // the admin has no role limit and no pull yet: its own account bucket
    let res = admin.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
