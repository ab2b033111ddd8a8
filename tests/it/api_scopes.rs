//! Every credential carries only the rights it was issued for (the adversarial review's
//! "administration API ignores token scopes"): a registry bearer token from `/token` never
//! authorises `/bonded/v1`; making tokens, setting passwords and creating users needs the
//! password itself; a JWT stops working when the credential it came from is revoked or
//! changed.

use crate::common;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn json_of(res: reqwest::Response) -> Value {
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

/// A token from `/token` for `scope`, logged in as `user` with `secret`.
async fn jwt(s: &Server, user: &str, secret: &str, scope: &str) -> String {
    let res = client()
        .get(format!(
            "{}/token?service=registry.test&scope={scope}",
            s.url
        ))
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "token for {user}");
    json_of(res).await["token"].as_str().unwrap().to_string()
}

fn api(s: &Server, path: &str) -> String {
    format!("{}/bonded/v1/{path}", s.url)
}

/// What an attacker holding `auth` would try against the administration API: (method,
/// path, body). None of it may take effect.
fn takeover(name: &str) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    vec![
        (
            Method::POST,
            "accounts".into(),
            Some(json!({"name": name, "password": "attacker-password-long"})),
        ),
        (
            Method::POST,
            "accounts/admin/roles".into(),
            Some(json!({"role": "admin", "pattern": "*"})),
        ),
        (
            Method::POST,
            "accounts/admin/tokens".into(),
            Some(json!({"description": "successor", "expiresInDays": 3650})),
        ),
        (
            Method::PUT,
            "accounts/admin/password".into(),
            Some(json!({"password": "attacker-password-long"})),
        ),
        (
            Method::POST,
            "account/tokens".into(),
            Some(json!({"description": "successor", "expiresInDays": 365})),
        ),
        (
            Method::PUT,
            "account/password".into(),
            Some(json!({"password": "attacker-password-long"})),
        ),
    ]
}

/// The registry's accounts, tokens and trust version, as the administrator sees them.
async fn state(s: &Server) -> (Value, Value, Value) {
    let admin = as_user("admin", ADMIN_PASSWORD);
    let accounts = json_of(admin.get(api(s, "accounts")).send().await.unwrap()).await;
    let tokens = json_of(admin.get(api(s, "tokens")).send().await.unwrap()).await;
    let trust = json_of(admin.get(api(s, "trust")).send().await.unwrap()).await;
    (accounts, tokens, trust["version"].clone())
}

#[tokio::test]
async fn registry_bearer_tokens_do_not_authorise_the_bonded_api() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--hostname", "registry.test"]);
    let c = client();
    let before = state(&s).await;
    let skip = json!({"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
        "signatureVerification": {"level": "skip"}}]});

    // An administrator's token for pulling one repository, and an anonymous one.
    let pull = jwt(&s, "admin", ADMIN_PASSWORD, "repository:library/x:pull").await;
    let anonymous = json_of(
        c.get(format!(
            "{}/token?service=registry.test&scope=repository:library/x:pull",
            s.url
        ))
        .send()
        .await
        .unwrap(),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut refused = Vec::new();
    for (label, token) in [
        ("admin's pull token", &pull),
        ("anonymous token", &anonymous),
    ] {
        let mut tries = takeover("mallory");
        tries.push((
            reqwest::Method::PUT,
            "trust/policy".into(),
            Some(skip.clone()),
        ));
        for (method, path, body) in tries {
            let mut req = c.request(method.clone(), api(&s, &path)).bearer_auth(token);
            if let Some(b) = body {
                req = req.body(b.to_string());
            }
            let res = req.send().await.unwrap();
            refused.push((label, format!("{method} {path}"), res.status().as_u16()));
        }
        for path in ["trust", "trust/versions", "accounts", "account", "audit"] {
            let res = c
                .get(api(&s, path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            refused.push((label, format!("GET {path}"), res.status().as_u16()));
        }
    }
    let allowed: Vec<_> = refused.iter().filter(|(_, _, st)| *st != 401).collect();
    assert!(
        allowed.is_empty(),
        "bearer tokens got past /bonded/v1: {allowed:?}"
    );
    // The refusal says what to use instead.
    let res = c
        .get(api(&s, "trust"))
        .bearer_auth(&pull)
        .send()
        .await
        .unwrap();
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let body = res.text().await.unwrap();
    assert!(body.contains("HTTP Basic"), "{body}");
    // Nothing changed; the password still works.
    assert_eq!(state(&s).await, before);
    // The same token still works where it belongs.
    let res = c.get(s.v2("")).bearer_auth(&pull).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn credentials_are_made_only_with_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--hostname", "registry.test"]);
    let admin = as_user("admin", ADMIN_PASSWORD);
    // The administrator's API token, made with the password.
    let res = admin
        .post(api(&s, "account/tokens"))
        .body(json!({"description": "ci"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = json_of(res).await["token"].as_str().unwrap().to_string();
    let with_token = as_user("admin", &token);
    let before = state(&s).await;
    let mut made = Vec::new();
    for (method, path, body) in takeover("mallory") {
        if path == "accounts/admin/roles" {
            continue; // a grant makes no credential; administrators' tokens may grant
        }
        let res = with_token
            .request(method.clone(), api(&s, &path))
            .body(body.unwrap().to_string())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        if status != 403 || !text.contains("password") {
            made.push(format!("{method} {path}: {status} {text}"));
        }
    }
    assert!(made.is_empty(), "an API token made credentials: {made:?}");
    assert_eq!(state(&s).await, before);
    // A robot account (no credential) may be made with the token; its token may not.
    let res = with_token
        .post(api(&s, "accounts"))
        .body(json!({"name": "builder", "robot": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = with_token
        .post(api(&s, "accounts/builder/tokens"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // With the password, each works.
    let res = admin
        .post(api(&s, "accounts/builder/tokens"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = admin
        .post(api(&s, "accounts"))
        .body(json!({"name": "carol", "password": "carol-password-long-enough"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Whether a bearer token still opens `/v2/acme/app/tags/list`.
async fn opens(s: &Server, token: &str) -> u16 {
    client()
        .get(s.v2("acme/app/tags/list"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_jwt_stops_working_when_its_credential_is_revoked_or_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--hostname", "registry.test"]);
    user(&data, "dev", "developer", "acme/*");
    let dev = as_user("dev", &password("dev"));
    let c = client();
    push_image(&dev, &s, "acme/app", "v1", "app", json!({})).await;
    let scope = "repository:acme/app:pull";

    // A personal API token of dev's: (id, secret).
    let new_token = || async {
        let res = dev
            .post(api(&s, "account/tokens"))
            .body("{}")
            .send()
            .await
            .unwrap();
        let made = json_of(res).await;
        let text = |k: &str| made[k].as_str().unwrap().to_string();
        (text("id"), text("token"))
    };

    // From an API token revoked over HTTP: refused at once.
    let (id, secret) = new_token().await;
    let t = jwt(&s, "dev", &secret, scope).await;
    assert_eq!(opens(&s, &t).await, 200);
    let res = dev
        .delete(api(&s, &format!("account/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        opens(&s, &t).await,
        401,
        "a JWT outlived its revoked API token"
    );

    // From an API token revoked with `bonded token revoke` on the database: within the 2 s
    // the server trusts its copy of the accounts.
    let (id, secret) = new_token().await;
    let t = jwt(&s, "dev", &secret, scope).await;
    assert_eq!(opens(&s, &t).await, 200);
    ok(&bonded(&data, &["token", "revoke", &id], ""));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        opens(&s, &t).await,
        401,
        "a JWT outlived its token revoked on the CLI"
    );

    // From the password, which then changes: refused at once.
    let t = jwt(&s, "dev", &password("dev"), scope).await;
    assert_eq!(opens(&s, &t).await, 200);
    let res = dev
        .put(api(&s, "account/password"))
        .body(json!({"password": "dev-new-password-long-enough"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(opens(&s, &t).await, 401, "a JWT outlived its password");
    let t = jwt(&s, "dev", "dev-new-password-long-enough", scope).await;
    assert_eq!(opens(&s, &t).await, 200);

    // A token forged to name another credential, or none, is refused: the signature
    // covers the claim, so only the server could have made it.
    let (head, rest) = t.split_once('.').unwrap();
    let (payload, _sig) = rest.split_once('.').unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(
        claims.get("cred").is_some(),
        "the JWT names its credential: {claims}"
    );
    claims.as_object_mut().unwrap().remove("cred");
    let unsigned = format!(
        "{head}.{}.AAAA",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_eq!(
        c.get(s.v2(""))
            .bearer_auth(unsigned)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Refused bearer tokens are in the audit trail (through the journal: within 250 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let admin = as_user("admin", ADMIN_PASSWORD);
    let records = json_of(
        admin
            .get(api(&s, "audit?action=login&outcome=denied&limit=1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reasons: Vec<String> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "dev")
        .map(|r| r["reason"].as_str().unwrap_or("").to_string())
        .collect();
    for why in [
        "revoked or expired",
        "password of 'dev' this token was issued for has changed",
    ] {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("bearer token refused") && r.contains(why)),
            "no record of a bearer token refused ({why}): {reasons:?}"
        );
    }
}

/// The catalog is a registry-wide listing: a bearer token lists it only when issued for
/// `registry:catalog:*`, not because its holder could list it with a password.
#[tokio::test]
async fn the_catalog_needs_a_token_issued_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &["--hostname", "registry.test"]);
    let admin = as_user("admin", ADMIN_PASSWORD);
    push_image(&admin, &s, "acme/app", "v1", "app", json!({})).await;
    let c = client();
    let pull = jwt(&s, "admin", ADMIN_PASSWORD, "repository:library/x:pull").await;
    let res = c
        .get(s.v2("_catalog"))
        .bearer_auth(&pull)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a repository token listed the catalog");
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("scope=\"registry:catalog:*\""),
        "{challenge}"
    );
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let listing = jwt(&s, "admin", ADMIN_PASSWORD, "registry:catalog:*").await;
    let res = c
        .get(s.v2("_catalog"))
        .bearer_auth(&listing)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert_eq!(body["repositories"], json!(["acme/app"]));
    // HTTP Basic is the account itself: its roles decide.
    let res = admin.get(s.v2("_catalog")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
