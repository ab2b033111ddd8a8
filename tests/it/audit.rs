//! The audit trail: what was pushed, signed, refused, deleted and changed, by whom and from
//! where, hash-chained so that an edit or a removal in the database is detected.

use crate::common;

use common::pki::{push_signature, Ca};
use common::*;
use serde_json::{json, Value};
use std::process::Command;

const TOKEN: &str = "audit-token";

async fn get(c: &reqwest::Client, s: &Server, query: &str) -> Value {
    let res = c
        .get(format!("{}/bonded/v1/audit?{query}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

fn verify(data: &std::path::Path) -> (Option<i32>, String) {
    verify_with(data, &[])
}

fn verify_with(data: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = common::pg::database_env(&mut Command::new(env!("CARGO_BIN_EXE_bonded")), data)
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    (o.status.code(), output_text(&o))
}

#[tokio::test]
async fn records_who_did_what_and_detects_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = Ca::new("Acme Root");
    ca.write_store(&d.join("truststore"), "acme");
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "prod", "registryScopes": ["registry.test/prod/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"], "trustedIdentities": ["*"],
            "bonded.unsignedPush": "reject"}]})
        .to_string(),
    )
    .unwrap();
    let data = d.join("data");
    let mut s = Server::start_in(
        &data,
        &[
            "--trust-policy",
            d.join("policy.json").to_str().unwrap(),
            "--trust-store",
            d.join("truststore").to_str().unwrap(),
            "--hostname",
            "registry.test",
            "--admin-token",
            TOKEN,
        ],
    );
    let c = client();
    let config = push_blob(&c, &s, "prod/app", b"{}").await;
    let m = image_manifest((&config, 2), &[], json!({}));
    let digest = sha256(&m);
    let put = |reference: String, body: Vec<u8>| {
        c.put(s.v2(&format!("prod/app/manifests/{reference}")))
            .header("Content-Type", OCI_MANIFEST)
            .body(body)
            .send()
    };
    assert_eq!(put(digest.clone(), m.clone()).await.unwrap().status(), 201);
    assert_eq!(put("v1".into(), m.clone()).await.unwrap().status(), 403);
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": m.len()});
    assert_eq!(
        push_signature(&c, &s, "prod/app", &ca.signer("alice"), &subject).await,
        201
    );
    assert_eq!(put("v1".into(), m.clone()).await.unwrap().status(), 201);
    assert_eq!(
        c.delete(s.v2("prod/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );

    // "who signed sha256:...?"
    let signed = get(&c, &s, &format!("digest={digest}&action=signature.admit")).await;
    let records = signed["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("signer 'C=US, ST=WA, O=Acme, CN=alice'"),
        "{r}"
    );
    assert_eq!(r["actor"], "anonymous");
    assert_eq!(r["source"], "127.0.0.1");
    assert_eq!(r["repository"], "prod/app");
    assert_eq!(r["outcome"], "ok");

    // "why was v1 published?": the tag's own record names the policy and who it counted
    let pushed = get(&c, &s, &format!("digest={digest}&action=tag.push")).await;
    let pushed = pushed["records"].as_array().unwrap();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let why = pushed[0]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("admitted by policy"), "{why}");
    assert!(why.contains("CN=alice"), "{why}");

    // "what was denied?"
    let denied = get(&c, &s, "outcome=denied").await;
    let denied = denied["records"].as_array().unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["action"], "admission.deny");
    assert_eq!(denied[0]["tag"], "v1");
    assert!(denied[0]["reason"]
        .as_str()
        .unwrap()
        .contains("needs 1 signature"));

    // everything, a page at a time
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = get(&c, &s, &format!("limit=3&after={after}")).await;
        for r in page["records"].as_array().unwrap() {
            seen.push(r["action"].as_str().unwrap().to_string());
        }
        match page["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    for action in [
        "trust.change",
        "blob.push",
        "manifest.push",
        "admission.deny",
        "signature.admit",
        "tag.push",
        "tag.delete",
    ] {
        assert!(
            seen.iter().any(|a| a == action),
            "{action} recorded: {seen:?}"
        );
    }

    // the CLI, as JSON lines
    let o = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args([
            "audit",
            "--registry",
            &s.addr,
            "--action",
            "tag.delete",
            "--output",
            "jsonl",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["tag"], "v1");

    // intact, then edited in the database, then a record removed
    assert!(s.terminate());
    let (code, out) = verify(&data);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("intact: {} records", seen.len())),
        "{out}"
    );
    let head = out
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .expect("verify prints the head")
        .to_string();
    assert!(head.starts_with(&format!("{}:", seen.len())), "{head}");
    assert_eq!(verify_with(&data, &["--anchor", &head]).0, Some(0));
    let forged = format!("{}:{}", seen.len(), "0".repeat(64));
    let (code, out) = verify_with(&data, &["--anchor", &forged]);
    assert_eq!(code, Some(1));
    assert!(out.contains("is not the one anchored"), "{out}");

    // The server's database, whichever it is: SQLite's file or PostgreSQL.
    sqlx::any::install_default_drivers();
    let url = common::pg::url_for(&data)
        .unwrap_or_else(|| format!("sqlite://{}", data.join("bonded.db").display()));
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let (code, out) = verify(&data);
    assert_eq!(code, Some(1));
    assert!(out.contains("record 3 was changed"), "{out}");
    sqlx::query("UPDATE audit_log SET actor = 'anonymous' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(verify(&data).0, Some(0), "restored");

    // removing the newest record keeps the chain consistent; only the anchor reveals it
    sqlx::query("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        verify(&data).0,
        Some(0),
        "a truncated chain is still a chain"
    );
    let (code, out) = verify_with(&data, &["--anchor", &head]);
    assert_eq!(code, Some(1));
    assert!(out.contains("the newest records were removed"), "{out}");
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let (code, out) = verify(&data);
    assert_eq!(code, Some(1));
    assert!(out.contains("record 2 is missing"), "{out}");
    pool.close().await;
}

/// Pulls are journaled before they are answered and reach the chained trail, even when
/// the server is killed before it moved them there; HEAD requests are not pulls.
#[tokio::test]
async fn pulls_are_recorded_and_survive_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = Server::start_in(&data, &[]);
    let c = client();
    let (_, digest) = push_image(&c, &s, "lab/app", "v1", "pulled", json!({})).await;
    for _ in 0..3 {
        let res = c.head(s.v2("lab/app/manifests/v1")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = c.get(s.v2("lab/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .get(s.v2(&format!("lab/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // killed at once: the records are (almost always) still in the journal
    s.kill9();
    let journaled: usize = std::fs::read_dir(data.join("audit-journal"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap().len())
        .sum();
    eprintln!("{journaled} bytes journaled at the kill");

    // the next start imports them into the chain, exactly once
    let s = Server::start_in(&data, &[]);
    let pulls = get(&c, &s, "action=manifest.pull").await["records"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    assert_eq!(pulls[0]["tag"], "v1");
    assert_eq!(pulls[0]["digest"], digest.as_str());
    assert_eq!(pulls[0]["actor"], "anonymous");
    assert_eq!(pulls[0]["source"], "127.0.0.1");
    assert_eq!(pulls[1]["tag"], Value::Null);
    assert_eq!(pulls[1]["digest"], digest.as_str());
    drop(s);
    let (code, out) = verify(&data);
    assert_eq!(code, Some(0), "{out}");

    // a running server moves pulls into the trail within about a second
    let s = Server::start_in(&data, &[]);
    let res = c.get(s.v2("lab/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let pulls = get(&c, &s, "action=manifest.pull").await;
    assert_eq!(pulls["records"].as_array().unwrap().len(), 3);
}

/// Time filters read offsets, dates and (on the CLI) ages, bound to the second on both
/// ends; a filter that cannot be read is refused rather than ignored.
#[tokio::test]
async fn time_filters_are_inclusive_to_the_second_and_unreadable_ones_are_refused() {
    use time::format_description::well_known::Rfc3339;
    use time::{Duration, OffsetDateTime, UtcOffset};
    let s = Server::start();
    let c = reqwest::Client::new();
    push_blob(&c, &s, "acme/app", b"a blob to be found by time").await;
    let all = get(&c, &s, "action=blob.push").await;
    let at = all["records"][0]["at"].as_str().unwrap().to_string();
    // fixed width: milliseconds and Z
    assert_eq!(at.len(), "2026-11-27T16:53:05.123Z".len(), "{at}");
    let t = OffsetDateTime::parse(&at, &Rfc3339).unwrap();
    let second = t.replace_nanosecond(0).unwrap();
    let plus_one = UtcOffset::from_hms(1, 0, 0).unwrap();
    let q = |k: &str, t: OffsetDateTime| {
        let v = t.to_offset(plus_one).format(&Rfc3339).unwrap();
        format!("action=blob.push&{k}={}", v.replace('+', "%2B"))
    };
    let found = |v: &Value| v["records"].as_array().unwrap().len();

    // the record's own second, written with another offset, includes it on either end
    assert_eq!(found(&get(&c, &s, &q("since", second)).await), 1);
    assert_eq!(found(&get(&c, &s, &q("until", second)).await), 1);
    // the seconds either side exclude it
    assert_eq!(
        found(&get(&c, &s, &q("since", second + Duration::SECOND)).await),
        0
    );
    assert_eq!(
        found(&get(&c, &s, &q("until", second - Duration::SECOND)).await),
        0
    );
    // a date is its midnight UTC
    let today = t.date().to_string();
    assert_eq!(
        found(&get(&c, &s, &format!("action=blob.push&since={today}")).await),
        1
    );
    assert_eq!(
        found(&get(&c, &s, &format!("action=blob.push&until={today}")).await),
        0
    );

    for (query, says) in [
        ("since=2026-13-01", "since: '2026-13-01' is not a time"),
        ("until=yesterday", "until: 'yesterday' is not a time"),
        ("outcome=refused", "outcome must be 'ok' or 'denied'"),
        ("limit=-1", "limit must be a non-negative integer"),
        ("after=x", "after must be a non-negative integer"),
    ] {
        let res = c
            .get(format!("{}/bonded/v1/audit?{query}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(body["errors"][0]["code"], "AUDIT_QUERY_INVALID", "{query}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }

    // the CLI: "what was pushed today", with ages and named days
    let cli = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bonded"))
            .args(["audit", "--registry", &s.addr, "--action", "blob.push"])
            .args(["--output", "jsonl"])
            .args(extra)
            .output()
            .unwrap()
    };
    for (extra, n) in [
        (&["--since", "today"][..], 1),
        (&["--since", "1h"][..], 1),
        (&["--until", "yesterday"][..], 0),
        (&["--since", "1h", "--until", "2h"][..], 0),
    ] {
        let o = cli(extra);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            n,
            "{extra:?}"
        );
    }
    let o = cli(&["--since", "last week"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--since: 'last week' is not a time"), "{err}");
}

/// Names and reasons in the trail come from clients; the table shows them escaped, so a
/// crafted account name cannot forge a row, move the cursor or hide text.
#[tokio::test]
async fn the_audit_table_escapes_what_clients_chose() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let evil = "mallory\x1b[2J\x1b[31m\r\n     1 2026-01-01T00:00:00.000Z admin ok\u{202E}";
    let res = as_user(evil, "guess").get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let o = bonded_with_stdin(
        &[
            "audit",
            "--registry",
            &s.addr,
            "--action",
            "login",
            "--username",
            "admin",
            "--password-stdin",
        ],
        ADMIN_PASSWORD,
    );
    let table = ok(&o);
    assert!(
        !table.contains('\x1b'),
        "an escape sequence reached the terminal: {table:?}"
    );
    assert!(
        !table.contains('\r') && !table.contains('\u{202E}'),
        "{table:?}"
    );
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("mallory")).collect();
    assert_eq!(rows.len(), 1, "one refusal, one row: {table}");
    assert!(rows[0].contains(r"mallory\u{1b}[2J"), "{}", rows[0]);
    assert!(
        !table
            .lines()
            .any(|l| l.trim_start().starts_with("1 2026-01-01")),
        "a forged row: {table}"
    );
}

/// Every client starts anonymous: `GET /v2/`, a 401 with a challenge, a token, then the
/// request again. Those steps are how logging in works, not refusals anyone needs to
/// read; what is recorded is an account refused what its roles do not allow.
#[tokio::test]
async fn the_login_dance_of_anonymous_clients_is_not_recorded_and_a_refused_account_is() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "reader", "reader", "lab/*");
    let admin = as_user("admin", ADMIN_PASSWORD);
    push_image(&admin, &s, "lab/app", "v1", "dance", json!({})).await;
    let before = audit_records(&admin, &s).await;

    let anon = client();
    let res = anon.get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = anon.get(s.v2("lab/app/manifests/v1")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let token = get_json(
        &anon,
        format!(
            "{}/token?service={}&scope=repository:lab/app:pull",
            s.url, s.addr
        ),
    )
    .await;
    let res = anon
        .get(s.v2("lab/app/manifests/v1"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A real client's whole anonymous attempt.
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/lab/app:v1", s.addr))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let after = audit_records(&admin, &s).await;
    assert_eq!(
        after.len(),
        before.len(),
        "anonymous requests added records: {:?}",
        &after[before.len()..]
    );

    // An account refused a push its role does not allow: one record, naming it.
    let reader = as_user("reader", &password("reader"));
    let res = reader
        .post(s.v2("lab/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let after = audit_records(&admin, &s).await;
    // (its password's first use is a login record of its own)
    let new: Vec<&Value> = after[before.len()..]
        .iter()
        .filter(|r| r["action"] != "login")
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        new[0]["reason"],
        "'reader' may not push to lab/app: its roles are reader on lab/*"
    );
    assert_eq!(new[0]["action"], "access.deny");
    assert_eq!(new[0]["actor"], "reader");
    assert_eq!(new[0]["repository"], "lab/app");
    assert_eq!(new[0]["outcome"], "denied");
}

/// The whole trail, once the journal has been drained into it.
async fn audit_records(admin: &reqwest::Client, s: &Server) -> Vec<Value> {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    get(admin, s, "limit=1000").await["records"]
        .as_array()
        .unwrap()
        .clone()
}

/// `bonded audit archive --before T --to FILE` moves the records made before T to a file
/// and the live chain continues from a checkpoint: `audit verify` still verifies the live
/// trail, with `--archive` the file and the live trail as one chain; an edited archive, an
/// archive missing, and an anchor inside the archived part without the archive are
/// reported.
#[tokio::test]
async fn old_records_move_to_an_archive_that_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Records made before the cutoff: the first administrator, two accounts and roles.
    let mut s = Server::start_with_auth(d, &[]);
    assert!(s.terminate());
    user(d, "alice", "reader", "team/*");
    user(d, "bob", "reader", "team/*");
    let (code, first) = verify(d);
    assert_eq!(code, Some(0), "{first}");
    let n: i64 = first
        .lines()
        .find_map(|l| l.strip_prefix("audit trail intact: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 5, "{first}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let cutoff = bonded::db::format_at(time::OffsetDateTime::now_utc());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    user(d, "carol", "reader", "team/*");
    let (code, before) = verify(d);
    assert_eq!(code, Some(0), "{before}");
    let head = before
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()
        .trim()
        .to_string();

    let file = d.join("audit-archive.jsonl");
    let o = common::pg::database_env(&mut Command::new(env!("CARGO_BIN_EXE_bonded")), d)
        .args(["audit", "archive", "--data-dir"])
        .arg(d)
        .args(["--before", &cutoff, "--to"])
        .arg(&file)
        .output()
        .unwrap();
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains(&format!("archived records 1..{n} ")),
        "{text}"
    );
    // A header and the records.
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().lines().count() as i64,
        n + 1
    );

    // The live trail verifies from its checkpoint and says where the rest is.
    let (code, live) = verify(d);
    assert_eq!(code, Some(0), "{live}");
    assert!(
        live.contains(&format!("records 1..{n} were archived")),
        "{live}"
    );
    // With the archive: one chain, and the earlier head still anchors it.
    let archive_arg = file.to_str().unwrap().to_string();
    let (code, all) = verify_with(d, &["--archive", &archive_arg, "--anchor", &head]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains(&format!("archives intact: records 1..{n} ")),
        "{all}"
    );

    // An anchor in the archived part needs the archive.
    let (code, out) = verify_with(
        d,
        &[
            "--anchor",
            "2:0000000000000000000000000000000000000000000000000000000000000000",
        ],
    );
    assert_ne!(code, Some(0));
    assert!(out.contains("was archived"), "{out}");
    // An edited archive is caught.
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replacen("alice", "mallory", 1);
    let forged = d.join("forged.jsonl");
    std::fs::write(&forged, edited).unwrap();
    let (code, out) = verify_with(d, &["--archive", forged.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(out.contains("was changed after it was written"), "{out}");
    // Nothing left to archive before the same cutoff.
    let o = common::pg::database_env(&mut Command::new(env!("CARGO_BIN_EXE_bonded")), d)
        .args(["audit", "archive", "--data-dir"])
        .arg(d)
        .args(["--before", &cutoff, "--to"])
        .arg(d.join("again.jsonl"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(output_text(&o).contains("nothing to archive"));
    assert!(!d.join("again.jsonl").exists());
}

/// `serve --audit-archive-after AGE --audit-archive-dir DIR`: retention without an
/// operator: old records (pulls among them) leave the database for a file, and the file
/// with the live trail still verifies as one chain.
#[tokio::test]
async fn old_records_are_archived_on_a_schedule_and_still_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let archive = tmp.path().join("archive");
    let s = Server::start_in(
        &data,
        &[
            "--audit-archive-after",
            "1s",
            "--audit-archive-dir",
            archive.to_str().unwrap(),
        ],
    );
    let c = client();
    push_image(&c, &s, "lib/app", "v1", "kept", json!({})).await;
    let res = c
        .get(s.v2("lib/app/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The first run is 10 s after start; the records are older than 1 s by then.
    let mut files = Vec::new();
    for _ in 0..300 {
        files = std::fs::read_dir(&archive)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    // Whole archives only: one being written is `*.jsonl.partial`.
                    .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(files.len(), 1, "one archive file: {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("blob.push") && text.contains("manifest.pull"),
        "{text}"
    );
    drop(s);
    let (code, out) = verify_with(&data, &["--archive", files[0].to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("archives intact"), "{out}");
    // The live trail alone verifies from its checkpoint (what was archived is the file's
    // to prove).
    let (code, out) = verify(&data);
    assert_eq!(code, Some(0), "{out}");
}
