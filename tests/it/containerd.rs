//! containerd, the runtime under Kubernetes, nerdctl and buildkit, as a client: its
//! resolver asks for tokens with the OAuth2 form (`POST /token`) first and falls back to
//! `GET /token` on some refusals, so this is the end-to-end check of both (the form's own
//! answers are checked in auth.rs). Each test runs its own containerd daemon (no CRI plugin) on a socket in a temp dir and
//! drives it with `ctr`: fetch within a reader's role, push within a developer's, and the
//! refusals in between.

use crate::common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (apt-get install containerd)");
        let d = Containerd { child, socket };
        for _ in 0..100 {
            if d.ctr(&["version"]).status.success() {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd did not start: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }
}

#[tokio::test]
async fn containerd_fetches_and_pushes_with_oauth2_tokens_within_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with_auth(&data, &[]);
    user(&data, "dev", "developer", "acme/*");
    user(&data, "reader", "reader", "acme/*");
    let dev = as_user("dev", &password("dev"));
    let (_, digest) = push_image(&dev, &s, "acme/app", "v1", "containerd", json!({})).await;
    let ctd = Containerd::start(&tmp.path().join("containerd"));
    let image = format!("{}/acme/app:v1", s.addr);
    let creds = |who: &str| format!("{who}:{}", password(who));

    // a wrong password fails at the token request
    let o = ctd.ctr(&[
        "content",
        "fetch",
        "--plain-http",
        "--user",
        "reader:not-the-password",
        &image,
    ]);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("failed to fetch oauth token"),
        "{}",
        output_text(&o)
    );

    // the reader fetches the image (manifest, config, layer), and it is the one pushed
    let o = ctd.ctr(&[
        "content",
        "fetch",
        "--plain-http",
        "--user",
        &creds("reader"),
        &image,
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    let o = ctd.ctr(&["images", "ls"]);
    assert!(
        output_text(&o).contains(&image) && output_text(&o).contains(&digest),
        "{}",
        output_text(&o)
    );

    // pushing a copy: the reader is refused and nothing is stored; the developer may
    let copy = format!("{}/acme/copy:v2", s.addr);
    let o = ctd.ctr(&["images", "tag", &image, &copy]);
    assert!(o.status.success(), "{}", output_text(&o));
    let push = |who: &str| {
        ctd.ctr(&[
            "images",
            "push",
            "--plain-http",
            "--user",
            &creds(who),
            &copy,
        ])
    };
    let o = push("reader");
    assert!(!o.status.success());
    let admin = as_user("admin", ADMIN_PASSWORD);
    let copied = || {
        admin
            .get(s.v2("acme/copy/manifests/v2"))
            .header("Accept", OCI_MANIFEST)
            .send()
    };
    assert_eq!(copied().await.unwrap().status(), 404);
    let o = push("dev");
    assert!(o.status.success(), "{}", output_text(&o));
    let res = copied().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sha256(&res.bytes().await.unwrap()), digest);

    // the trail: the reader's failed login and pull, the developer's push (pulls reach
    // the trail through the journal within 250 ms)
    let mut records = Vec::new();
    for _ in 0..40 {
        let res = admin
            .get(format!("{}/bonded/v1/audit?limit=1000", s.url))
            .send()
            .await
            .unwrap();
        let trail: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        records = trail["records"].as_array().unwrap().clone();
        if records
            .iter()
            .any(|r| r["actor"] == "reader" && r["action"] == "manifest.pull")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let has = |actor: &str, action: &str, outcome: &str| {
        records
            .iter()
            .any(|r| r["actor"] == actor && r["action"] == action && r["outcome"] == outcome)
    };
    assert!(has("reader", "login", "denied"), "{records:?}");
    assert!(has("reader", "manifest.pull", "ok"), "{records:?}");
    assert!(has("dev", "manifest.push", "ok"), "{records:?}");
}
