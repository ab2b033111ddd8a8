//! Accounts, roles and logins against the real server with authentication required:
//! skopeo with `--creds` through the token flow, each role's allowed and forbidden
//! actions (401/403 and nothing changed), public namespaces, API tokens for robots,
//! bearer-token scopes, failed-login limits, mounts and the catalog, and the refusal to
//! serve logins unsafely.

use crate::common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};

async fn json(res: reqwest::Response) -> Value {
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

async fn audit(s: &Server, query: &str) -> Vec<Value> {
    let admin = as_user("admin", ADMIN_PASSWORD);
    let res = admin
        .get(format!("{}/bonded/v1/audit?{query}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    json(res).await["records"].as_array().unwrap().clone()
}

/// A Notary signature manifest over `subject` with its envelope and empty config (no
/// trust policy runs here: it is what a signer may push, a signature bonded can read).
fn signature_manifest(
    envelope: (&str, usize),
    empty: &str,
    subject: &str,
    subject_size: usize,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": envelope.0, "size": envelope.1}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
    }))
    .unwrap()
}

fn skopeo(args: &[&str]) -> Output {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    Command::new("skopeo").args(&all).output().unwrap()
}

fn small_layout(dir: &Path) -> String {
    let layout = OciLayout::create(dir);
    let (ld, ln) = layout.blob(b"a layer for the auth tests");
    let (cd, cn) = layout.blob(
        json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}})
            .to_string()
            .as_bytes(),
    );
    let m = image_manifest((&cd, cn), &[(&ld, ln)], json!({}));
    let (md, mn) = layout.blob(&m);
    layout.index(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}));
    layout.path()
}

#[test]
fn skopeo_logs_in_with_creds_and_anonymous_pulls_only_public_namespaces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "alice", "developer", "acme/*");
    let layout = small_layout(&tmp.path().join("layout"));
    let src = format!("oci:{layout}:v1");
    let dest = format!("docker://{}/acme/app:v1", s.addr);
    let creds = format!("alice:{}", password("alice"));

    // no credentials: refused, nothing stored
    let o = skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("authentication required"), "{err}");

    // skopeo follows the Bearer challenge to /token with alice's credentials
    let o = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src,
        &dest,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // private by default: anonymous inspection fails, alice's succeeds
    let o = skopeo(&["inspect", "--tls-verify=false", &dest]);
    assert!(!o.status.success());
    let o = skopeo(&["inspect", "--tls-verify=false", "--creds", &creds, &dest]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // a wrong password is refused with a clear message
    let o = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:not-her-password",
        &dest,
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid username or password"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // public namespace: anonymous pulls work, anonymous pushes still do not
    ok(&bonded(&data, &["namespace", "public", "acme/*"], ""));
    // the server re-reads accounts and namespaces at least every two seconds
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = skopeo(&["inspect", "--tls-verify=false", &dest]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{}/acme/app:v2", s.addr),
    ]);
    assert!(!o.status.success());

    // the audit trail names alice for the push, and records logins and the refusal
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pushes = audit(&s, "action=manifest.push&repository=acme/app").await;
        assert!(pushes
            .iter()
            .any(|r| r["actor"] == "alice" && r["outcome"] == "ok"));
        let logins = audit(&s, "action=login").await;
        assert!(logins
            .iter()
            .any(|r| r["actor"] == "alice" && r["outcome"] == "ok"));
        assert!(logins.iter().any(|r| r["actor"] == "alice"
            && r["outcome"] == "denied"
            && r["reason"] == "wrong password"));
        let changes = audit(&s, "action=namespace.public").await;
        assert_eq!(changes.len(), 1);
    });
}

/// One account per role on acme/* (admin on *), and one with no role at all.
#[tokio::test]
async fn each_role_may_do_exactly_what_it_grants() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    for role in ["reader", "signer", "developer", "maintainer"] {
        user(&data, role, role, "acme/*");
    }
    user(&data, "outsider", "developer", "other/*");
    let admin = as_user("admin", ADMIN_PASSWORD);

    // the image everybody works on, and a signature envelope of it
    let (image, image_digest) = push_image(&admin, &s, "acme/app", "v1", "base", json!({})).await;
    let envelope = common::pki::envelope(
        &common::pki::Ca::new("Acme Root").signer("release"),
        &json!({"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len()}),
    );
    let envelope_digest = push_blob(&admin, &s, "acme/app", &envelope).await;
    let empty = push_blob(&admin, &s, "acme/app", b"{}").await;

    for who in [
        "anonymous",
        "outsider",
        "reader",
        "signer",
        "developer",
        "maintainer",
        "admin",
    ] {
        let c = match who {
            "anonymous" => client(),
            "admin" => admin.clone(),
            _ => as_user(who, &password(who)),
        };
        let allowed = |action: &str| -> bool {
            match action {
                "pull" => !matches!(who, "anonymous" | "outsider"),
                "push_signature" => matches!(who, "signer" | "developer" | "maintainer" | "admin"),
                "push_image" => matches!(who, "developer" | "maintainer" | "admin"),
                "delete" => matches!(who, "maintainer" | "admin"),
                "audit" => who == "admin",
                _ => unreachable!(),
            }
        };
        // a forbidden action: 401 UNAUTHORIZED for anonymous, 403 DENIED for accounts
        let refused = |res: reqwest::Response, what: &'static str| async move {
            let (status, code) = if who == "anonymous" {
                (401, "UNAUTHORIZED")
            } else {
                (403, "DENIED")
            };
            assert_eq!(res.status(), status, "{who} {what}");
            if status == 401 {
                // The registry API challenges for its token flow; bonded's own API for
                // HTTP Basic, the only scheme it takes.
                let scheme = if what == "audit" {
                    "Basic realm="
                } else {
                    "Bearer realm="
                };
                let challenge = res.headers()["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with(scheme), "{who} {what}: {challenge}");
            }
            assert_eq!(error_code(res).await, code, "{who} {what}");
        };

        // pull
        let res = c
            .get(s.v2(&format!("acme/app/manifests/{image_digest}")))
            .send()
            .await
            .unwrap();
        if allowed("pull") {
            assert_eq!(res.status(), 200, "{who} pull");
            assert_eq!(res.bytes().await.unwrap(), image);
        } else {
            refused(res, "pull").await;
        }

        // blob upload (what signatures and images both need)
        let blob = format!("{{\"by\":\"{who}\"}}").into_bytes();
        let blob_digest = sha256(&blob);
        let res = c
            .post(s.v2(&format!("acme/app/blobs/uploads/?digest={blob_digest}")))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        if allowed("push_signature") {
            assert_eq!(res.status(), 201, "{who} blob push");
        } else {
            refused(res, "blob push").await;
            // nothing stored
            let res = admin
                .head(s.v2(&format!("acme/app/blobs/{blob_digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{who}'s refused blob is not there");
            // the admin uploads it so the manifest tests below can run
            push_blob(&admin, &s, "acme/app", &blob).await;
        }

        // a signature manifest over the image
        let sig = signature_manifest(
            (&envelope_digest, envelope.len()),
            &empty,
            &image_digest,
            image.len(),
        );
        let sig_digest = sha256(&sig);
        let res = put_manifest(
            &c,
            s.v2(&format!("acme/app/manifests/{sig_digest}")),
            sig.clone(),
        )
        .await;
        if allowed("push_signature") {
            assert_eq!(res.status(), 201, "{who} signature push");
        } else {
            refused(res, "signature push").await;
        }

        // an image under a new tag
        let m = image_manifest((&blob_digest, blob.len()), &[], json!({}));
        let tag = format!("by-{who}");
        let res = put_manifest(&c, s.v2(&format!("acme/app/manifests/{tag}")), m.clone()).await;
        if allowed("push_image") {
            assert_eq!(res.status(), 201, "{who} image push");
        } else {
            let status = res.status();
            let body: Value = json(res).await;
            let code = body["errors"][0]["code"].as_str().unwrap().to_string();
            if who == "anonymous" {
                assert_eq!((status.as_u16(), code.as_str()), (401, "UNAUTHORIZED"));
            } else {
                assert_eq!(
                    (status.as_u16(), code.as_str()),
                    (403, "DENIED"),
                    "{who}: {body}"
                );
            }
            if who == "signer" {
                let msg = body["errors"][0]["message"].as_str().unwrap();
                assert!(msg.contains("may push only signatures"), "{msg}");
            }
            let res = admin
                .get(s.v2(&format!("acme/app/manifests/{tag}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{who}'s refused tag is not there");
        }

        // delete a tag made for the purpose
        let victim = format!("delete-me-{who}");
        push_image(&admin, &s, "acme/app", &victim, "base", json!({})).await;
        let res = c
            .delete(s.v2(&format!("acme/app/manifests/{victim}")))
            .send()
            .await
            .unwrap();
        let still_there = admin
            .get(s.v2(&format!("acme/app/manifests/{victim}")))
            .send()
            .await
            .unwrap()
            .status();
        if allowed("delete") {
            assert_eq!(res.status(), 202, "{who} delete");
            assert_eq!(still_there, 404);
        } else {
            refused(res, "delete").await;
            assert_eq!(still_there, 200, "{who}'s refused delete changed nothing");
        }

        // registry administration: the audit trail
        let res = c
            .get(format!("{}/bonded/v1/audit", s.url))
            .send()
            .await
            .unwrap();
        if allowed("audit") {
            assert_eq!(res.status(), 200, "{who} audit");
        } else {
            refused(res, "audit").await;
        }
    }

    // the catalog shows each account what it may pull
    let catalog = |c: reqwest::Client| {
        let url = s.v2("_catalog");
        async move { json(c.get(url).send().await.unwrap()).await["repositories"].clone() }
    };
    push_image(
        &as_user("outsider", &password("outsider")),
        &s,
        "other/tool",
        "v1",
        "o",
        json!({}),
    )
    .await;
    assert_eq!(
        catalog(admin.clone()).await,
        json!(["acme/app", "other/tool"])
    );
    assert_eq!(
        catalog(as_user("reader", &password("reader"))).await,
        json!(["acme/app"])
    );
    assert_eq!(
        catalog(as_user("outsider", &password("outsider"))).await,
        json!(["other/tool"])
    );

    // a mount needs read access to its source: the outsider gets an upload session instead
    let res = as_user("outsider", &password("outsider"))
        .post(s.v2(&format!(
            "other/tool/blobs/uploads/?mount={image_digest}&from=acme/app"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        202,
        "no mount from a repository the outsider cannot read"
    );
    let res = admin
        .post(s.v2(&format!(
            "other/tool/blobs/uploads/?mount={}&from=acme/app",
            sha256(br#"{"seed":"base"}"#)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "the admin may mount");
}

/// The JWT's claims, unverified (the test reads what the server granted).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn bearer_tokens_carry_only_the_scopes_roles_allow() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--hostname", "registry.test"]);
    user(&data, "reader", "reader", "acme/*");
    user(&data, "dev", "developer", "acme/*");
    let c = client();

    // /v2/ challenges anonymous clients with the token realm
    let res = c.get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"http://{}/token\",service=\"registry.test\"",
            s.addr
        )
    );
    // a push challenge names the scope
    let res = c
        .post(s.v2("acme/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("scope=\"repository:acme/app:pull,push\""));

    let token_for = |user: &'static str, scope: &'static str| {
        let c = c.clone();
        let url = format!("{}/token?service=registry.test&scope={scope}", s.url);
        async move {
            let res = c
                .get(url)
                .basic_auth(user, Some(password(user)))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            json(res).await["token"].as_str().unwrap().to_string()
        }
    };
    // the reader asks for push and gets pull only
    let t = token_for("reader", "repository:acme/app:pull,push").await;
    let cl = claims(&t);
    assert_eq!(cl["sub"], "reader");
    assert_eq!(cl["aud"], "registry.test");
    assert_eq!(
        cl["access"],
        json!([{"type": "repository", "name": "acme/app", "actions": ["pull"]}])
    );
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        300
    );

    // a scope naming no possible repository grants nothing
    for bad in [
        "repository:../x:pull",
        "repository:UPPER:pull",
        "repository::pull",
    ] {
        let t = token_for("reader", bad).await;
        let access = claims(&t)["access"].clone();
        assert!(
            access
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["actions"] == json!([])),
            "{bad}: {access}"
        );
    }

    // a developer's pull-only token cannot push: 401 insufficient_scope, asking for more
    let t = token_for("dev", "repository:acme/app:pull").await;
    let res = c
        .post(s.v2("acme/app/blobs/uploads/"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    // with push in scope it can; the token is for acme/app only
    let t = token_for("dev", "repository:acme/app:pull,push").await;
    let res = c
        .post(s.v2("acme/app/blobs/uploads/"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = c
        .post(s.v2("acme/other/blobs/uploads/"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // a tampered token is refused
    let mut forged = t.clone();
    forged.pop();
    forged.push(if t.ends_with('A') { 'B' } else { 'A' });
    let res = c.get(s.v2("")).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "UNAUTHORIZED");

    // wrong credentials at /token: 401; anonymous: a token without rights on private repos
    let res = c
        .get(format!(
            "{}/token?service=registry.test&scope=repository:acme/app:pull",
            s.url
        ))
        .basic_auth("dev", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(format!(
            "{}/token?service=registry.test&scope=repository:acme/app:pull",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let anon = json(res).await["token"].as_str().unwrap().to_string();
    assert_eq!(claims(&anon)["access"][0]["actions"], json!([]));
    let res = c
        .get(s.v2("acme/app/tags/list"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // removing the account ends its tokens at once
    let t = token_for("dev", "repository:acme/app:pull,push").await;
    ok(&bonded(&data, &["user", "remove", "dev"], ""));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let res = c
        .post(s.v2("acme/app/blobs/uploads/"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// containerd (and so Kubernetes nodes) asks for tokens with the OAuth2 form first.
#[tokio::test]
async fn oauth2_password_grants_give_the_same_scoped_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--hostname", "registry.test"]);
    user(&data, "dev", "developer", "acme/*");
    let c = client();
    let post = |form: Vec<(&'static str, String)>| {
        let c = c.clone();
        let url = format!("{}/token", s.url);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        async move {
            c.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let grant = |secret: String| {
        vec![
            ("grant_type", "password".to_string()),
            ("service", "registry.test".into()),
            ("client_id", "containerd-client".into()),
            ("username", "dev".into()),
            ("password", secret),
            (
                "scope",
                "repository:acme/app:pull,push repository:other/x:pull".into(),
            ),
        ]
    };

    let res = post(grant(password("dev"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    // only what the roles allow is granted, and said so
    assert_eq!(body["scope"], "repository:acme/app:pull,push");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["sub"], "dev");
    let res = c
        .post(s.v2("acme/app/blobs/uploads/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // no role there: refused as for any account (403), token or not
    let res = c
        .get(s.v2("other/x/tags/list"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // a wrong password is a failed login (counted and audited like any other)
    let res = post(grant("wrong".into())).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "UNAUTHORIZED");
    let refused = audit(&s, "action=login&outcome=denied&actor=dev").await;
    assert_eq!(refused.len(), 1, "{refused:?}");

    // refresh tokens are not issued, so that grant is a 400 (clients then use GET)
    for (form, says) in [
        (
            vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", "x".into()),
            ],
            "grant_type 'refresh_token' is not supported",
        ),
        (vec![("username", "dev".to_string())], "no grant_type"),
        (
            vec![("grant_type", "password".to_string())],
            "needs username and password",
        ),
    ] {
        let res = post(form).await;
        assert_eq!(res.status(), 400);
        let e = json(res).await;
        assert_eq!(e["errors"][0]["code"], "UNSUPPORTED");
        let message = e["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }

    // what no route takes still answers in the OCI error format
    for (method, path, status, code) in [
        (reqwest::Method::DELETE, "/v2/", 405, "UNSUPPORTED"),
        (reqwest::Method::PUT, "/token", 405, "UNSUPPORTED"),
        (reqwest::Method::GET, "/nowhere", 404, "NAME_UNKNOWN"),
    ] {
        let res = c
            .request(method.clone(), format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{method} {path}");
        assert_eq!(error_code(res).await, code, "{method} {path}");
    }
}

/// Self-service: a user sees their account, changes their password and makes and revokes
/// personal API tokens, without an administrator and without touching anyone else's.
#[tokio::test]
async fn users_change_their_password_and_manage_their_own_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "alice", "developer", "acme/*");
    user(&data, "bob", "reader", "acme/*");
    let url = |p: &str| format!("{}/bonded/v1/account{p}", s.url);
    let alice = as_user("alice", &password("alice"));
    let tags = |c: reqwest::Client| {
        let u = s.v2("acme/app/tags/list");
        async move { c.get(u).send().await.unwrap().status().as_u16() }
    };

    let res = client().get(url("")).send().await.unwrap();
    assert_eq!(res.status(), 401, "anonymous has no account");
    let me = json(alice.get(url("")).send().await.unwrap()).await;
    assert_eq!(me["name"], "alice");
    assert!(me["roles"].to_string().contains("acme/*"), "{me}");
    assert_eq!(me["tokens"], json!([]));

    // a personal token, shown once, that logs in as alice
    let res = alice
        .post(url("/tokens"))
        .body(r#"{"description": "ci", "expiresInDays": 30}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let made = json(res).await;
    let token = made["token"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(token.starts_with(&format!("bdt_{id}_")), "{made}");
    let with_token = as_user("alice", &token);
    assert_eq!(
        tags(with_token.clone()).await,
        404,
        "logged in; no such repository yet"
    );
    let me = json(alice.get(url("")).send().await.unwrap()).await;
    assert_eq!(me["tokens"][0]["id"], id.as_str());
    assert_eq!(me["tokens"][0]["description"], "ci");
    assert!(
        me["tokens"][0].get("token").is_none(),
        "never the secret again"
    );

    // the token cannot make tokens or change the password
    for (method, path, body) in [
        (reqwest::Method::POST, "/tokens", "{}"),
        (
            reqwest::Method::PUT,
            "/password",
            r#"{"password": "taken-over-by-a-token"}"#,
        ),
    ] {
        let res = with_token
            .request(method.clone(), url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        let e = json(res).await;
        assert!(
            e["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("your password"),
            "{e}"
        );
    }
    for bad in ["0", "366", "\"x\""] {
        let res = alice
            .post(url("/tokens"))
            .body(format!(r#"{{"expiresInDays": {bad}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "expiresInDays {bad}");
    }

    // bob cannot revoke alice's token
    let bob = as_user("bob", &password("bob"));
    let res = bob
        .delete(url(&format!("/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(tags(with_token.clone()).await, 404, "still alice's");

    // a new password: too weak is refused; then the old one stops working at once
    let res = alice
        .put(url("/password"))
        .body(r#"{"password": "short"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = alice
        .put(url("/password"))
        .body(r#"{"password": "alices-new-password-2026"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tags(alice.clone()).await, 401);
    assert_eq!(
        tags(as_user("alice", "alices-new-password-2026")).await,
        404
    );

    // revoking her token ends it at once
    let alice = as_user("alice", "alices-new-password-2026");
    let res = alice
        .delete(url(&format!("/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tags(with_token).await, 401);

    let changes: Vec<String> = audit(&s, "actor=alice")
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("token.") || a.starts_with("user."))
        .collect();
    assert_eq!(changes, ["token.create", "user.passwd", "token.revoke"]);
}

/// What `bonded user|token|role|namespace|quota` do on the database, an administrator does
/// over HTTP; each change applies to the very next request.
#[tokio::test]
async fn administrators_manage_accounts_roles_namespaces_and_quotas_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "dev", "developer", "acme/*");
    let api = |p: &str| format!("{}/bonded/v1/{p}", s.url);
    let admin = as_user("admin", ADMIN_PASSWORD);

    // only an administrator: anonymous 401, a developer 403, nothing made
    let create = r#"{"name": "carol"}"#;
    let res = client()
        .post(api("accounts"))
        .body(create)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let dev = as_user("dev", &password("dev"));
    let res = dev.post(api("accounts")).body(create).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "DENIED");

    // a user with a generated password, shown once; a second one by that name conflicts
    let res = admin
        .post(api("accounts"))
        .body(create)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let carol_password = json(res).await["password"].as_str().unwrap().to_string();
    let res = admin
        .post(api("accounts"))
        .body(create)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // malformed requests are refused, not read generously: nothing is made
    for body in [
        r#"{"name": "Not Valid"}"#,
        r#"{"name": "dave", "robot": "yes"}"#,
        r#"{"name": "dave", "password": 123456789012345}"#,
        r#"{"name": "bonded"}"#,
        "{",
    ] {
        let res = admin.post(api("accounts")).body(body).send().await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
    }
    let res = admin
        .put(api("accounts/carol/password"))
        .body(r#"{"password": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a number is not 'no password given'");
    let res = admin
        .put(api("quotas?pattern=acme/*"))
        .body(r#"{"bytes": 18446744073709551615}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "more than the database holds");

    // a role granted is usable at once; revoked, refused at once
    let carol = as_user("carol", &carol_password);
    let upload = || carol.post(s.v2("acme/app/blobs/uploads/")).send();
    assert_eq!(upload().await.unwrap().status(), 403, "no role yet");
    let res = admin
        .post(api("accounts/carol/roles"))
        .body(r#"{"role": "developer", "pattern": "acme/*"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(upload().await.unwrap().status(), 202);
    let res = admin
        .delete(api("accounts/carol/roles?role=developer&pattern=acme/*"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(upload().await.unwrap().status(), 403);
    let listed = json(admin.get(api("accounts")).send().await.unwrap()).await;
    let names: Vec<&str> = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol", "dev"]);

    // a robot and its token; revoking the token ends it
    let res = admin
        .post(api("accounts"))
        .body(r#"{"name": "ci", "robot": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = admin
        .post(api("accounts/ci/roles"))
        .body(r#"{"role": "reader", "pattern": "acme/*"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = admin
        .post(api("accounts/ci/tokens"))
        .body(r#"{"description": "pipeline", "expiresInDays": 730}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let made = json(res).await;
    let robot = as_user("ci", made["token"].as_str().unwrap());
    let tags = || robot.get(s.v2("acme/app/tags/list")).send();
    assert_eq!(tags().await.unwrap().status(), 404, "logged in");
    let listed = json(admin.get(api("tokens?account=ci")).send().await.unwrap()).await;
    assert_eq!(listed["tokens"][0]["description"], "pipeline");
    assert!(!listed.to_string().contains(made["token"].as_str().unwrap()));
    let res = admin
        .delete(api(&format!("tokens/{}", made["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tags().await.unwrap().status(), 401);

    // a public namespace opens to anonymous pulls at once
    let (_, digest) = push_image(&dev, &s, "acme/app", "v1", "admin-api", json!({})).await;
    let anonymous_pull = || {
        client()
            .get(s.v2("acme/app/manifests/v1"))
            .header("Accept", OCI_MANIFEST)
            .send()
    };
    assert_eq!(anonymous_pull().await.unwrap().status(), 401);
    let res = admin
        .put(api("namespaces/public?pattern=acme/*"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(res).await["changed"], true);
    let res = anonymous_pull().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sha256(&res.bytes().await.unwrap()), digest);

    // a quota below what is stored refuses the next push
    let res = admin
        .put(api("quotas?pattern=acme/*"))
        .body(r#"{"bytes": 10}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(json(res).await["usedBytes"].as_u64().unwrap() > 10);
    let res = dev
        .post(s.v2(&format!(
            "acme/app/blobs/uploads/?digest={}",
            sha256(b"over quota")
        )))
        .body(&b"over quota"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = admin
        .delete(api("quotas?pattern=acme/*"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // the last administrator can be neither removed nor demoted, over HTTP or the CLI
    let res = admin.delete(api("accounts/admin")).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let e = json(res).await;
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("'admin' is the last administrator"),
        "{e}"
    );
    let res = admin
        .delete(api("accounts/admin/roles?role=admin&pattern=*"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let o = bonded(&data, &["user", "remove", "admin"], "");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("last administrator"),
        "{}",
        output_text(&o)
    );
    let res = admin.get(api("accounts")).send().await.unwrap();
    assert_eq!(res.status(), 200, "still an administrator");

    // removing an account ends its logins at once; every change is audited as admin
    let res = admin.delete(api("accounts/carol")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(upload().await.unwrap().status(), 401);
    let actions: Vec<String> = audit(&s, "actor=admin&limit=1000")
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    for action in [
        "user.add",
        "role.grant",
        "role.revoke",
        "token.create",
        "token.revoke",
        "namespace.public",
        "quota.set",
        "quota.remove",
        "user.remove",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn robots_use_api_tokens_that_are_stored_hashed_expire_and_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    ok(&bonded(&data, &["user", "add", "ci", "--robot"], ""));
    ok(&bonded(
        &data,
        &["role", "grant", "ci", "developer", "builds/*"],
        "",
    ));
    let o = bonded(
        &data,
        &["token", "create", "ci", "--description", "pipeline"],
        "",
    );
    let token = ok(&o).trim().to_string();
    assert!(token.starts_with("bdt_"), "{token}");
    let id = token[4..20].to_string();

    // the token is the password; robots have no password to guess
    let ci = as_user("ci", &token);
    push_image(&ci, &s, "builds/app", "1", "ci", json!({})).await;
    let res = as_user("ci", "").get(s.v2("")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // the secret is stored hashed, the list never shows it
    let list = ok(&bonded(&data, &["token", "list", "ci"], ""));
    assert!(list.contains(&id) && list.contains("live") && list.contains("pipeline"));
    assert!(!list.contains(&token[21..]));
    let db = std::fs::read(data.join("bonded.db")).unwrap();
    assert!(!db.windows(64).any(|w| w == &token.as_bytes()[21..]));

    // expired (moved into the past in the database): refused, then live again
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("bonded.db").display()))
        .await
        .unwrap();
    let expiry: i64 = sqlx::query_scalar("SELECT expires_at FROM api_tokens WHERE id = ?")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE id = ?")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let res = ci.get(s.v2("builds/app/tags/list")).send().await.unwrap();
    assert_eq!(res.status(), 401, "an expired token is refused");
    sqlx::query("UPDATE api_tokens SET expires_at = ? WHERE id = ?")
        .bind(expiry)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let res = ci.get(s.v2("builds/app/tags/list")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // revoked: refused within the directory's refresh time
    ok(&bonded(&data, &["token", "revoke", &id], ""));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let res = ci.get(s.v2("builds/app/tags/list")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(error_code(res).await, "UNAUTHORIZED");
    assert!(ok(&bonded(&data, &["token", "list"], "")).contains("revoked"));

    // Token refusals go through the journal (they are not rate limited, so not bounded
    // in number): chained within 250 ms.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let denied = audit(&s, "action=login&outcome=denied").await;
    assert!(denied
        .iter()
        .any(|r| r["reason"].as_str().unwrap().contains("was revoked")));
    assert!(denied
        .iter()
        .any(|r| r["reason"].as_str().unwrap().contains("has expired")));
    // the CLI answers the same question, logged in as the administrator
    let o = bonded_with_stdin(
        &[
            "audit",
            "--registry",
            &s.addr,
            "--action",
            "token.create",
            "--output",
            "jsonl",
            "--username",
            "admin",
            "--password-stdin",
        ],
        ADMIN_PASSWORD,
    );
    let line = ok(&o);
    assert!(
        line.contains(&id) && line.contains("\"actor\":\"local:"),
        "{line}"
    );
    let created = audit(&s, "action=token.create").await;
    assert!(created[0]["reason"].as_str().unwrap().contains(&id));
    assert!(
        !created[0].to_string().contains(&token[21..]),
        "no secret in the audit trail"
    );
}

/// A client logging in as `name` from loopback address `source` (127.0.0.N).
fn as_user_from(name: &str, secret: &str, source: &str) -> reqwest::Client {
    bonded::install_crypto_provider();
    reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{secret}"));
            h.insert(
                reqwest::header::AUTHORIZATION,
                format!("Basic {v}").parse().unwrap(),
            );
            h
        })
        .build()
        .unwrap()
}

async fn ping(c: &reqwest::Client, s: &Server) -> u16 {
    c.get(s.v2("")).send().await.unwrap().status().as_u16()
}

/// Failed logins are counted per (account, address) and per address: an attacker locks
/// out only what it guesses from where it is. A correct password from elsewhere works,
/// an API token works from anywhere, and refusals past a limit are tallied, not recorded
/// one by one.
#[tokio::test]
async fn failed_logins_lock_out_only_their_source() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = [
        "--failed-login-limit",
        "10/15min",
        "--failed-login-limit-address",
        "50/15min",
        "--trusted-proxy",
        "127.0.0.5",
    ];
    let mut s = Server::start_with_auth(&data, &args);
    user(&data, "alice", "reader", "acme/*");
    let token = ok(&bonded(&data, &["token", "create", "alice"], ""))
        .trim()
        .to_string();
    let attacker = "127.0.0.1";
    for _ in 0..10 {
        assert_eq!(
            ping(&as_user_from("alice", "guess", attacker), &s).await,
            401
        );
    }
    // From the attacker's address, alice's password now waits...
    let res = as_user_from("alice", &password("alice"), attacker)
        .get(s.v2(""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let msg = res.text().await.unwrap();
    assert!(msg.contains("'alice' from 127.0.0.1"), "{msg}");
    // ...but not from alice's own, and her API token is never blocked.
    assert_eq!(
        ping(&as_user_from("alice", &password("alice"), "127.0.0.2"), &s).await,
        200
    );
    assert_eq!(
        ping(&as_user_from("alice", &token, attacker), &s).await,
        200
    );
    assert_eq!(
        ping(&as_user_from("admin", ADMIN_PASSWORD, attacker), &s).await,
        200
    );

    // Thirty more refusals: one record, and a tally when the window ends.
    for _ in 0..30 {
        assert_eq!(
            ping(&as_user_from("alice", "guess", attacker), &s).await,
            429
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let limited: Vec<Value> = audit(&s, "action=login&outcome=denied&actor=alice")
        .await
        .into_iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .unwrap()
                .contains("too many failed logins")
        })
        .collect();
    assert_eq!(
        limited.len(),
        1,
        "refusals past the limit recorded one by one: {limited:?}"
    );
    // Fifty failures from one address, whatever the names, lock out that address only.
    let sprayer = "127.0.0.3";
    for i in 0..50 {
        assert_eq!(
            ping(&as_user_from(&format!("nobody{i}"), "guess", sprayer), &s).await,
            401
        );
    }
    let res = as_user_from("admin", ADMIN_PASSWORD, sprayer)
        .get(s.v2(""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let msg = res.text().await.unwrap();
    assert!(msg.contains("address 127.0.0.3"), "{msg}");
    assert_eq!(
        ping(&as_user_from("admin", ADMIN_PASSWORD, "127.0.0.4"), &s).await,
        200
    );

    // Behind a trusted proxy, the forwarded client is who is counted; from anyone else
    // the header is ignored.
    let through = |who: &str, secret: &str, client: &str, peer: &str| {
        let c = as_user_from(who, secret, peer);
        let url = s.v2("");
        let client = client.to_string();
        async move {
            c.get(url)
                .header("X-Forwarded-For", client)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..10 {
        assert_eq!(
            through("admin", "guess", "198.51.100.7", "127.0.0.5").await,
            401
        );
    }
    assert_eq!(
        through("admin", ADMIN_PASSWORD, "198.51.100.7", "127.0.0.5").await,
        429
    );
    assert_eq!(
        through("admin", ADMIN_PASSWORD, "198.51.100.8", "127.0.0.5").await,
        200
    );
    // An untrusted peer cannot borrow someone else's address, nor escape its own count.
    assert_eq!(
        through("admin", ADMIN_PASSWORD, "198.51.100.7", "127.0.0.6").await,
        200
    );
    assert_eq!(
        through("admin", "guess", "198.51.100.9", "127.0.0.6").await,
        401
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let sources: Vec<String> = audit(&s, "action=login&actor=admin")
        .await
        .iter()
        .map(|r| r["source"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(sources.iter().any(|s| s == "198.51.100.7"), "{sources:?}");
    assert!(sources.iter().any(|s| s == "127.0.0.6"), "{sources:?}");

    // The thirty refusals past alice's limit are reported once, with their count, when
    // their window ends; a shutdown ends every window.
    assert!(s.terminate());
    let s = Server::start_with_auth(&data, &args);
    let tally: Vec<Value> = audit(&s, "action=login&outcome=denied&actor=alice")
        .await
        .into_iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .unwrap()
                .contains("more logins refused")
        })
        .collect();
    assert_eq!(tally.len(), 1, "no tally of the refusals past the limit");
    let reason = tally[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("30 more logins refused"), "{reason}");
    assert_eq!(tally[0]["source"], "127.0.0.1");
}

#[test]
fn unsafe_listeners_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bonded"))
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(tmp.path().join("d"))
            .output()
            .unwrap()
    };
    let o = serve(&["--open", "--addr", "0.0.0.0:0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("loopback"));
    let o = serve(&["--addr", "0.0.0.0:0"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plain HTTP") && err.contains("--insecure-http"),
        "{err}"
    );

    // with consent it serves, and says it is unsafe
    let mut child = Command::new(env!("CARGO_BIN_EXE_bonded"))
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--insecure-http",
            "--data-dir",
        ])
        .arg(tmp.path().join("d"))
        .env("BONDED_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(
        first.starts_with("bonded listening on http://0.0.0.0:"),
        "{first}"
    );
    child.kill().unwrap();
    let err = String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).to_string();
    assert!(err.contains("serving logins over plain HTTP"), "{err}");
}

#[test]
fn the_first_start_creates_an_administrator_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let mut child =
        common::pg::database_env(&mut Command::new(env!("CARGO_BIN_EXE_bonded")), &data)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env_remove("BONDED_ADMIN_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let generated = err
        .split("with password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated password in {err}"))
        .to_string();
    assert!(generated.len() >= 20);
    let list = ok(&bonded(&data, &["user", "list"], ""));
    assert!(
        list.contains("admin") && list.contains("admin on *"),
        "{list}"
    );
    // not again on the next start
    let s = Server::start_with_auth(&data, &[]);
    drop(s);
    assert_eq!(
        ok(&bonded(&data, &["user", "list", "--json"], ""))
            .lines()
            .count(),
        1
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = Server::start_with_auth(&data, &[]);
        let res = as_user("admin", &generated)
            .get(s.v2(""))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "the printed password works");
    });
}

/// `bonded.signerMustNotBePusher`: the developer who pushed an image cannot also sign it
/// into the registry; a signer can.
#[tokio::test]
async fn signers_must_not_be_pushers_when_the_policy_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = pki::Ca::new("Acme Root");
    std::fs::create_dir_all(d.join("truststore/x509/ca/acme")).unwrap();
    std::fs::write(d.join("truststore/x509/ca/acme/root.pem"), &ca.pem).unwrap();
    std::fs::write(
        d.join("policy.json"),
        json!({"version": "1.0", "trustPolicies": [{"name": "apps", "registryScopes": ["registry.test/apps/*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"], "trustedIdentities": ["*"],
            "bonded.signerMustNotBePusher": true}]})
        .to_string(),
    )
    .unwrap();
    let data = d.join("data");
    let s = Server::start_with_auth(
        &data,
        &[
            "--hostname",
            "registry.test",
            "--trust-policy",
            d.join("policy.json").to_str().unwrap(),
            "--trust-store",
            d.join("truststore").to_str().unwrap(),
        ],
    );
    user(&data, "dev", "developer", "apps/*");
    user(&data, "sig", "signer", "apps/*");
    user(&data, "rdr", "reader", "apps/*");
    let (key, cert) = ca.write_signer(d, "release");

    // dev pushes by digest: held as pending
    let dev = as_user("dev", &password("dev"));
    let config = push_blob(&dev, &s, "apps/web", b"{}").await;
    let m = image_manifest((&config, 2), &[], json!({}));
    let digest = sha256(&m);
    let res = put_manifest(&dev, s.v2(&format!("apps/web/manifests/{digest}")), m).await;
    assert_eq!(res.status(), 201);
    let image = format!("{}/apps/web@{digest}", s.addr);
    // pending: those who may push or sign can read it, readers cannot yet
    let by_digest = s.v2(&format!("apps/web/manifests/{digest}"));
    let rdr = as_user("rdr", &password("rdr"));
    let res = rdr.get(&by_digest).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "MANIFEST_UNKNOWN");
    for who in ["dev", "sig"] {
        let res = as_user(who, &password(who))
            .get(&by_digest)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{who} reads the pending manifest");
    }
    let sign_as = |who: &str| {
        bonded_with_stdin(
            &[
                "sign",
                &image,
                "--key",
                key.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
                "--username",
                who,
                "--password-stdin",
            ],
            &password(who),
        )
    };
    // dev signs its own image: refused, and nothing is stored
    let o = sign_as("dev");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("'dev' pushed") && err.contains("may not also sign"),
        "{err}"
    );
    let res = dev
        .get(s.v2(&format!("apps/web/referrers/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json(res).await["manifests"], json!([]));
    // the signer may: the image is admitted and can be tagged
    let o = sign_as("sig");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let res = rdr.get(&by_digest).send().await.unwrap();
    assert_eq!(res.status(), 200, "admitted: readers may pull it");
    let res = put_manifest(
        &dev,
        s.v2("apps/web/manifests/v1"),
        image_manifest((&config, 2), &[], json!({})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let refused = audit(&s, "action=signature.refuse").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], "dev");
}

/// `bonded user|token|role|namespace|quota --registry HOST` administer a running server
/// through its API, as the account of a `bonded login`.
#[tokio::test]
async fn the_account_commands_administer_a_running_server_with_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let auth_file = tmp.path().join("auth.json");
    let run = |args: &[&str], stdin: &str| {
        bonded_with_stdin_env(args, stdin, &[("REGISTRY_AUTH_FILE", &auth_file)])
    };
    let remote = |args: &[&str], stdin: &str| {
        let mut all = args.to_vec();
        all.extend(["--registry", &s.addr]);
        run(&all, stdin)
    };
    // Making credentials (a user, a password, a token) takes the password itself, which
    // `bonded login` does not keep: the administrator gives it in BONDED_PASSWORD.
    let with_password = |args: &[&str], stdin: &str| {
        let mut all = args.to_vec();
        all.extend(["--registry", &s.addr]);
        bonded_with_stdin_env(
            &all,
            stdin,
            &[
                ("REGISTRY_AUTH_FILE", &auth_file),
                ("BONDED_PASSWORD", std::path::Path::new(ADMIN_PASSWORD)),
            ],
        )
    };

    let o = remote(&["user", "list"], "");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("no login for"),
        "{}",
        output_text(&o)
    );
    ok(&run(
        &["login", &s.addr, "--username", "admin", "--password-stdin"],
        ADMIN_PASSWORD,
    ));

    let o = remote(
        &["user", "add", "alice", "--password-stdin"],
        &password("alice"),
    );
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("set BONDED_PASSWORD to the password of 'admin'"),
        "{}",
        output_text(&o)
    );
    let out = ok(&with_password(
        &["user", "add", "alice", "--password-stdin"],
        &password("alice"),
    ));
    assert!(out.contains("added user 'alice'"), "{out}");
    let out = ok(&remote(
        &["role", "grant", "alice", "developer", "acme/*"],
        "",
    ));
    assert!(
        out.contains("granted developer on 'acme/*' for 'alice'"),
        "{out}"
    );
    let out = ok(&remote(&["user", "list"], ""));
    assert!(
        out.lines()
            .any(|l| l.starts_with("alice") && l.contains("developer on acme/*")),
        "{out}"
    );
    // applied at once: alice may push now
    let alice = as_user("alice", &password("alice"));
    let res = alice
        .post(s.v2("acme/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    let o = with_password(&["token", "create", "alice", "--description", "laptop"], "");
    let token = ok(&o).trim().to_string();
    assert!(
        output_text(&o).contains("shown once"),
        "{}",
        output_text(&o)
    );
    let res = as_user("alice", &token)
        .get(s.v2("acme/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "the token logs in");
    let out = ok(&remote(&["token", "list", "alice"], ""));
    assert!(out.contains("laptop") && out.contains("live"), "{out}");

    let out = ok(&remote(&["quota", "set", "acme/*", "1MiB"], ""));
    assert!(out.contains("quota of 'acme/*' is 1.0 MiB"), "{out}");
    let out = ok(&remote(&["quota", "list"], ""));
    assert!(out.contains("acme/*"), "{out}");
    let out = ok(&remote(&["namespace", "public", "library/*"], ""));
    assert!(out.contains("'library/*' is now public"), "{out}");
    assert_eq!(ok(&remote(&["namespace", "list"], "")).trim(), "library/*");

    // the server's refusals come through: a name taken, and a non-administrator
    let o = with_password(
        &["user", "add", "alice", "--password-stdin"],
        &password("alice"),
    );
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("exists already"),
        "{}",
        output_text(&o)
    );
    ok(&run(
        &["login", &s.addr, "--username", "alice", "--password-stdin"],
        &password("alice"),
    ));
    let o = remote(&["user", "add", "mallory"], "");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("not an administrator"),
        "{}",
        output_text(&o)
    );

    // audited as the administrator who made them, not as a local shell user
    let granted = audit(&s, "action=role.grant").await;
    assert_eq!(granted[0]["actor"], "admin");
}

/// `bonded trust` changes log in as an account (no admin token) against a server that
/// requires authentication: the request carries the login, and only an administrator's
/// is accepted.
#[tokio::test]
async fn trust_commands_log_in_as_an_administrator() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "dev", "developer", "acme/*");
    let root = tmp.path().join("root.pem");
    std::fs::write(&root, common::pki::Ca::new("Trust Login Root").pem).unwrap();
    let no_logins = tmp.path().join("no-auth.json");
    let set_store = |who: &str, secret: &str| {
        bonded_with_stdin_env(
            &[
                "trust",
                "set-store",
                "ca:acme",
                root.to_str().unwrap(),
                "--registry",
                &s.addr,
                "--username",
                who,
                "--password-stdin",
            ],
            secret,
            &[("REGISTRY_AUTH_FILE", &no_logins)],
        )
    };
    let o = set_store("dev", &password("dev"));
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("403") && output_text(&o).contains("not an administrator"),
        "{}",
        output_text(&o)
    );
    let o = set_store("admin", ADMIN_PASSWORD);
    assert!(o.status.success(), "{}", output_text(&o));
    let trust = json(
        as_user("admin", ADMIN_PASSWORD)
            .get(format!("{}/bonded/v1/trust", s.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(trust.to_string().contains("acme"), "{trust}");
}

/// The catalog's pages, and the `Link` between them, name only repositories the caller may
/// pull: walking it one entry at a time must not spell out the private ones.
#[tokio::test]
async fn catalog_pages_and_links_name_only_visible_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    let admin = as_user("admin", ADMIN_PASSWORD);
    for repo in [
        "a-secret/x",
        "b-secret/y",
        "library/base",
        "m-secret/z",
        "team/app",
        "team/tool",
        "teamx/hidden",
        "z-secret/last",
    ] {
        push_image(&admin, &s, repo, "v1", repo, json!({})).await;
    }
    user(&data, "dev", "reader", "team/*");
    ok(&bonded(&data, &["namespace", "public", "library/*"], ""));
    let walk = |c: reqwest::Client, n: u32| {
        let s = &s;
        async move {
            let mut seen = Vec::new();
            let mut url = s.v2(&format!("_catalog?n={n}"));
            for _ in 0..20 {
                let res = c.get(&url).send().await.unwrap();
                assert_eq!(res.status(), 200);
                let link = res
                    .headers()
                    .get("link")
                    .map(|l| l.to_str().unwrap().to_string());
                let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
                let page: Vec<String> = body["repositories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect();
                assert!(page.len() <= n as usize);
                seen.push(format!("page {page:?} link {link:?}"));
                match link {
                    Some(l) => {
                        let path = l.trim_start_matches('<').split('>').next().unwrap();
                        url = format!("{}{path}", s.url);
                    }
                    None => return seen,
                }
            }
            panic!("the catalog never ends: {seen:?}");
        }
    };
    for n in [1, 2, 100] {
        let seen = walk(as_user("dev", &password("dev")), n).await.join("\n");
        for secret in ["secret", "teamx"] {
            assert!(!seen.contains(secret), "n={n}: {seen}");
        }
        for visible in ["library/base", "team/app", "team/tool"] {
            assert!(seen.contains(visible), "n={n}: {visible} missing: {seen}");
        }
    }
    // The administrator sees everything, in order.
    let seen = walk(admin.clone(), 3).await.join("\n");
    assert!(seen.contains("z-secret/last"), "{seen}");
}

/// The signer role pushes signatures, nothing else: a manifest is one only when it is a
/// signature in a format bonded verifies (here a Notary JWS: the empty config, exactly one
/// `application/jose+json` layer holding an envelope, a subject), whatever it calls
/// itself. Without a trust policy nothing else would stop a runnable image labelled a
/// signature.
#[tokio::test]
async fn signers_push_only_signatures_bonded_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "sig", "signer", "apps/*");
    let admin = as_user("admin", ADMIN_PASSWORD);
    let signer = as_user("sig", &password("sig"));
    let (image, image_digest) = push_image(&admin, &s, "apps/app", "v1", "app", json!({})).await;
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len()});
    let ca = common::pki::Ca::new("Acme Root");
    let envelope = common::pki::envelope(&ca.signer("release"), &subject);
    let env = push_blob(&signer, &s, "apps/app", &envelope).await;
    let empty = push_blob(&signer, &s, "apps/app", b"{}").await;
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_d = push_blob(&signer, &s, "apps/app", config).await;
    let layer = b"not really a tar, but pulled and unpacked as one";
    let layer_d = push_blob(&signer, &s, "apps/app", layer).await;
    let garbage = push_blob(&signer, &s, "apps/app", b"{\"not\":\"a jws\"}").await;
    let notary = "application/vnd.cncf.notary.signature";
    let empty_config =
        json!({"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2});
    let jws = json!({"mediaType": "application/jose+json", "digest": env, "size": envelope.len()});
    let manifest = |artifact: &str, config: Value, layers: Value| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact,
            "config": config, "layers": layers, "subject": subject,
        }))
        .unwrap()
    };
    let refused = [
        (
            "a runnable image labelled a signature",
            manifest(
                notary,
                json!({"mediaType": OCI_CONFIG, "digest": config_d, "size": config.len()}),
                json!([{"mediaType": OCI_LAYER, "digest": layer_d, "size": layer.len()}]),
            ),
        ),
        (
            "a layer that is not an envelope",
            manifest(
                notary,
                empty_config.clone(),
                json!([{"mediaType": OCI_LAYER, "digest": layer_d, "size": layer.len()}]),
            ),
        ),
        (
            "an envelope layer that holds no envelope",
            manifest(
                notary,
                empty_config.clone(),
                json!([{"mediaType": "application/jose+json", "digest": garbage, "size": 17}]),
            ),
        ),
        (
            "an envelope and an image layer",
            manifest(
                notary,
                empty_config.clone(),
                json!([jws.clone(), {"mediaType": OCI_LAYER, "digest": layer_d, "size": layer.len()}]),
            ),
        ),
        (
            "another kind of artifact",
            manifest(
                "application/spdx+json",
                empty_config.clone(),
                json!([jws.clone()]),
            ),
        ),
    ];
    for (what, m) in refused {
        let d = sha256(&m);
        let res = put_manifest(&signer, s.v2(&format!("apps/app/manifests/{d}")), m).await;
        assert_eq!(res.status(), 403, "{what}");
        let body = json(res).await;
        assert_eq!(body["errors"][0]["code"], "DENIED", "{what}");
        let res = admin
            .get(s.v2(&format!("apps/app/manifests/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{what} was stored");
    }
    // A real Notary signature goes in.
    let m = manifest(notary, empty_config, json!([jws]));
    let res = put_manifest(
        &signer,
        s.v2(&format!("apps/app/manifests/{}", sha256(&m))),
        m,
    )
    .await;
    assert_eq!(res.status(), 201);
}
