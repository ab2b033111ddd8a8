//! Storage quotas on namespace patterns: pushes that would exceed one are refused with
//! what is used and allowed, change nothing, and blobs already stored in the namespace
//! cost nothing.

use crate::common;

use common::*;
use serde_json::Value;

async fn body(res: reqwest::Response) -> Value {
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn pushes_over_a_namespace_quota_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_in(&data, &[]);
    let c = client();
    ok(&bonded(&data, &["quota", "set", "team/*", "3000"], ""));

    let first = vec![b'a'; 1000];
    let second = vec![b'b'; 1500];
    let third = vec![b'c'; 1000];
    let d1 = push_blob(&c, &s, "team/a", &first).await;
    push_blob(&c, &s, "team/b", &second).await;

    // 2500 of 3000 bytes used: 1000 more is refused, monolithic...
    let d3 = sha256(&third);
    let res = c
        .post(s.v2(&format!("team/a/blobs/uploads/?digest={d3}")))
        .body(third.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let e = body(res).await;
    assert_eq!(e["errors"][0]["code"], "DENIED");
    let msg = e["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("quota of 'team/*' exceeded: 2.4 KiB used of 2.9 KiB allowed"),
        "{msg}"
    );
    assert_eq!(e["errors"][0]["detail"]["usedBytes"], 2500);
    assert_eq!(e["errors"][0]["detail"]["allowedBytes"], 3000);
    let res = c
        .head(s.v2(&format!("team/a/blobs/{d3}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "the refused blob is not in the repository"
    );

    // ...and chunked: the session is left as it was before the refused request (its
    // first chunk kept, the refused last chunk not), so the client can retry
    let res = c.post(s.v2("team/a/blobs/uploads/")).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let res = c
        .patch(format!("{}{location}", s.url))
        .header("Content-Range", "0-499")
        .body(third[..500].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = c
        .put(format!("{}{location}?digest={d3}", s.url))
        .body(third[500..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = c.get(format!("{}{location}", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 204, "the refused request ended the session");
    assert_eq!(
        res.headers()["range"],
        "0-499",
        "the refused last chunk was kept"
    );
    // neither refusal put bytes in the content store
    let hex = d3.trim_start_matches("sha256:");
    assert!(!data.join("blobs/sha256").join(&hex[..2]).join(hex).exists());

    // a blob the namespace already stores costs nothing: mount and re-push work
    let res = c
        .post(s.v2(&format!("team/c/blobs/uploads/?mount={d1}&from=team/a")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    push_blob(&c, &s, "team/b", &first).await;
    // other namespaces are not limited
    push_blob(&c, &s, "other/x", &third).await;

    let list = ok(&bonded(&data, &["quota", "list"], ""));
    assert!(
        list.contains("team/*") && list.contains("2.4 KiB"),
        "{list}"
    );

    // raising the quota lets the push through: the same request on the same session
    ok(&bonded(&data, &["quota", "set", "team/*", "1MiB"], ""));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let res = c
        .put(format!("{}{location}?digest={d3}", s.url))
        .body(third[500..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    push_blob(&c, &s, "team/a", &third).await;
    let o = bonded(&data, &["quota", "set", "team/*", "lots"], "");
    assert!(!o.status.success());
}
