//! What operators and load balancers ask a running registry: `/healthz` (alive) and
//! `/readyz` (database and blob store reachable, 503 otherwise), both unauthenticated and
//! never in the audit trail.

use crate::common;

use common::*;
use serde_json::Value;

async fn audit_count(s: &Server) -> usize {
    let admin = as_user("admin", ADMIN_PASSWORD);
    let v = get_json(&admin, format!("{}/bonded/v1/audit?limit=1000", s.url)).await;
    v["records"].as_array().map_or(0, |r| r.len())
}

/// `GET /<path>` on `s`: asserts the status, returns the JSON body.
async fn probe(c: &reqwest::Client, s: &Server, path: &str, status: u16) -> Value {
    let res = c.get(format!("{}/{path}", s.url)).send().await.unwrap();
    assert_eq!(res.status(), status, "{path}");
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn health_and_readiness_answer_anyone_and_leave_no_audit_record() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let anonymous = client();
    // The registry itself asks for credentials...
    let res = anonymous.get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let before = audit_count(&s).await;

    // ...the probes do not.
    let v = probe(&anonymous, &s, "healthz", 200).await;
    assert_eq!(v["status"], "ok");
    let v = probe(&anonymous, &s, "readyz", 200).await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["database"]["status"].as_str(),
            v["blobStore"]["status"].as_str()
        ),
        (Some("ok"), Some("ok"), Some("ok")),
        "{v}"
    );

    // The blob store goes away: not ready, and it says which part; alive all the same.
    std::fs::rename(data.join("blobs"), data.join("blobs.away")).unwrap();
    let v = probe(&anonymous, &s, "readyz", 503).await;
    assert_eq!(v["status"], "unavailable", "{v}");
    assert_eq!(v["database"]["status"], "ok", "{v}");
    assert_eq!(v["blobStore"]["status"], "unavailable", "{v}");
    probe(&anonymous, &s, "healthz", 200).await;
    // Back: ready again.
    std::fs::rename(data.join("blobs.away"), data.join("blobs")).unwrap();
    probe(&anonymous, &s, "readyz", 200).await;

    // None of it is in the audit trail (the admin's own audit reads are not either).
    assert_eq!(audit_count(&s).await, before);
}

/// `--log-format json`: every line the server logs is one JSON object, each request is
/// logged at info with its method, path, status and latency, and no credential reaches
/// the log (passwords, bearer tokens, query strings).
#[tokio::test]
async fn json_logs_have_one_object_per_line_and_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log_path = tmp.path().join("server.log");
    let mut cmd = Server::command(&data, &["--log-format", "json"]);
    cmd.env("BONDED_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut s = Server::spawn(cmd, &data);
    let admin = as_user("admin", ADMIN_PASSWORD);
    let res = admin.get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // A bearer token, asked for and used.
    let res = admin
        .get(format!(
            "{}/token?service={}&scope=repository:team/app:pull",
            s.url, s.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let res = client()
        .get(s.v2("team/app/tags/list?n=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error() || res.status().is_success());
    assert!(s.terminate());

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let base = requests
        .iter()
        .find(|l| l["path"] == "/v2/" && l["status"] == 200)
        .unwrap_or_else(|| panic!("no request line for GET /v2/: {log}"));
    assert_eq!(base["level"], "INFO");
    assert_eq!(base["method"], "GET");
    assert!(base["latency_ms"].is_number());
    assert!(requests.iter().any(|l| l["path"] == "/token"), "{log}");
    for secret in [ADMIN_PASSWORD, token.as_str(), "scope=repository", "n=1"] {
        assert!(!log.contains(secret), "the log holds '{secret}': {log}");
    }
}

/// Under `--log-format json` a generated first password never enters the log: it goes to
/// `auth/initial-admin-password` (0600), and the log line says where.
#[tokio::test]
async fn a_generated_admin_password_goes_to_a_file_not_the_json_log() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log_path = tmp.path().join("server.log");
    let mut cmd = Server::command(&data, &["--log-format", "json"]);
    cmd.env_remove("BONDED_ADMIN_PASSWORD")
        .env("BONDED_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut s = Server::spawn(cmd, &data);
    let file = data.join("auth/initial-admin-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 16, "{password}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let res = as_user("admin", &password)
        .get(s.v2(""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the file's password logs in");
    assert!(s.terminate());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains(&password), "{log}");
    let line: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("generated password")
        })
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(line["file"], file.to_str().unwrap());
}

/// `--metrics-addr`: Prometheus text on a listener of its own, counting what the registry
/// did: requests by family, method and status, body bytes both ways, latency, uploads
/// open, pool use, admissions and signature verifications by outcome.
#[tokio::test]
async fn metrics_count_requests_bytes_admissions_and_verifications() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let ca = common::pki::Ca::new("Acme Root");
    let (policy, store) = ca.trusted_anywhere(d);
    let (key, cert) = ca.write_signer(d, "release");
    let s = Server::start_in(
        &d.join("data"),
        &[
            "--metrics-addr",
            &metrics_addr,
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
        ],
    );
    let c = client();
    // An unsigned image by tag (held, its tag waits), then its signature (verified).
    let digest = crate::cosign::image(&c, &s.url, "team/app", "metrics").await;
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bonded"))
        .arg("sign")
        .arg(format!("{}/team/app:v1", s.addr))
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let pulled = c
        .get(s.v2(&format!("team/app/manifests/{digest}")))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    let manifest_len = pulled.bytes().await.unwrap().len();
    // An upload left open.
    let res = c
        .post(s.v2("team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // Not on the registry's own listener.
    let res = c.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = c
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert!(
        value(r#"bonded_http_requests_total{family="manifest",method="PUT",status="201"}"#) >= 2.0
    );
    // The image's config, the signature's config and envelope (bonded sign), the open one.
    assert_eq!(
        value(r#"bonded_http_requests_total{family="blob_upload",method="POST",status="202"}"#),
        4.0
    );
    assert!(
        value(r#"bonded_http_response_body_bytes_total{family="manifest"}"#) >= manifest_len as f64
    );
    assert!(value(r#"bonded_http_request_body_bytes_total{family="blob_upload"}"#) > 0.0);
    assert!(value(r#"bonded_http_request_duration_seconds_count{family="manifest"}"#) >= 3.0);
    assert_eq!(value("bonded_uploads_in_progress"), 1.0);
    assert_eq!(
        value(r#"bonded_admissions_total{outcome="held"}"#),
        1.0,
        "the unsigned image"
    );
    assert_eq!(
        value(r#"bonded_admissions_total{outcome="signature"}"#),
        1.0,
        "its signature"
    );
    assert_eq!(
        value(r#"bonded_signature_verifications_total{format="notary.jws",outcome="accepted"}"#),
        1.0
    );
    // SQLite's read and write pools, or PostgreSQL's one shared pool.
    let pools: &[&str] = if common::pg::all_servers_on_postgres() {
        &["shared"]
    } else {
        &["read", "write"]
    };
    for pool in pools {
        for state in ["idle", "busy"] {
            let series = format!(r#"bonded_db_connections{{pool="{pool}",state="{state}"}}"#);
            assert!(value(&series) >= 0.0);
        }
    }
    if !common::pg::all_servers_on_postgres() {
        // The one write connection is open (migrations ran on it): one connection counted.
        let open = value(r#"bonded_db_connections{pool="write",state="idle"}"#)
            + value(r#"bonded_db_connections{pool="write",state="busy"}"#);
        assert_eq!(open, 1.0, "{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}
