//! Credentials a user already stored with `podman login`, `skopeo login` or `docker login`,
//! so `bonded push|sign|verify` work after those without asking again.
//!
//! Files are consulted in the order containers/image (podman, skopeo) uses, then docker's:
//! `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` (without that variable,
//! as for root, `/run/containers/<uid>/auth.json`),
//! `$XDG_CONFIG_HOME/containers/auth.json` (or `~/.config/containers/auth.json`), then
//! `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`). In each, a registry's
//! `credHelpers` entry wins, then its `auths` entry, then the file's `credsStore`. A helper
//! is the program `docker-credential-<name>`, asked with `get` and the registry on standard
//! input, answering `{"Username": ..., "Secret": ...}` (docker's credential-helper protocol).

use base64::Engine as _;
use serde_json::Value;
use std::io::{Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a credential for one registry lives, as one file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `user:password`, from an `auths` entry.
    Basic(String),
    /// Ask the credential helper of this name.
    Helper(String),
}

/// Whether an `auths` or `credHelpers` key names `registry` (keys may carry a scheme, a
/// trailing slash or, for containers' files, a repository path).
fn key_names(key: &str, registry: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    k == registry || k.split('/').next() == Some(registry)
}

/// What one auth file says about `registry`.
pub fn lookup(config: &Value, registry: &str) -> Option<Found> {
    let entry = |section: &str| {
        config[section]
            .as_object()?
            .iter()
            .find(|(k, _)| key_names(k, registry))
            .map(|(_, v)| v.clone())
    };
    let helper = entry("credHelpers").and_then(|v| v.as_str().map(str::to_string));
    if let Some(helper) = helper.filter(|h| !h.is_empty()) {
        return Some(Found::Helper(helper));
    }
    if let Some(auth) = entry("auths") {
        if let Some(encoded) = auth["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            return String::from_utf8(decoded).ok().map(Found::Basic);
        }
        if let (Some(u), Some(p)) = (auth["username"].as_str(), auth["password"].as_str()) {
            return Some(Found::Basic(format!("{u}:{p}")));
        }
    }
    config["credsStore"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|s| Found::Helper(s.to_string()))
}

/// The auth files to read, in order, from the environment.
pub fn auth_files() -> Vec<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("HOME");
    let mut files = Vec::new();
    files.extend(var("REGISTRY_AUTH_FILE"));
    match var("XDG_RUNTIME_DIR") {
        Some(d) => files.push(d.join("containers/auth.json")),
        None => {
            // /proc/self belongs to the process's user: no libc call needed for the uid.
            use std::os::unix::fs::MetadataExt as _;
            if let Ok(me) = std::fs::metadata("/proc/self") {
                files.push(PathBuf::from(format!(
                    "/run/containers/{}/auth.json",
                    me.uid()
                )));
            }
        }
    }
    files.extend(
        var("XDG_CONFIG_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("containers/auth.json")),
    );
    files.extend(
        var("DOCKER_CONFIG")
            .or_else(|| home.as_ref().map(|h| h.join(".docker")))
            .map(|d| d.join("config.json")),
    );
    files
}

/// Where `bonded login` stores a login: the file podman and skopeo write
/// (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `/run/containers/<uid>/auth.json`), so one login serves all of them.
pub fn login_file() -> Option<PathBuf> {
    auth_files().into_iter().next()
}

/// The field marking an entry whose secret is a token `bonded login` made (so `bonded
/// logout` may revoke it; a token the user logged in with is theirs, not ours to revoke).
/// podman, skopeo and docker ignore fields they do not know.
const MADE_BY_LOGIN: &str = "bondedLoginToken";

/// Stores `user:secret` for `registry` in the auth file `file` (other entries kept; the
/// file is written whole to a temporary file, mode 0600, then renamed over the old one).
/// `made_by_login`: the secret is a token `bonded login` made.
pub fn store(
    file: &Path,
    registry: &str,
    user: &str,
    secret: &str,
    made_by_login: bool,
) -> std::io::Result<()> {
    let mut config = read_for_update(file)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    let mut entry = serde_json::json!({ "auth": auth });
    if made_by_login {
        entry[MADE_BY_LOGIN] = Value::Bool(true);
    }
    config["auths"][registry] = entry;
    write_private(file, &config)
}

/// Whether `registry`'s entry in `file` holds a token `bonded login` made.
pub fn made_by_login(file: &Path, registry: &str) -> bool {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|c| c["auths"][registry][MADE_BY_LOGIN] == Value::Bool(true))
}

/// Removes `registry`'s entry from `file`; `false` when it had none.
pub fn forget(file: &Path, registry: &str) -> std::io::Result<bool> {
    let mut config = read_for_update(file)?;
    let removed = config["auths"]
        .as_object_mut()
        .and_then(|auths| auths.remove(registry))
        .is_some();
    if removed {
        write_private(file, &config)?;
    }
    Ok(removed)
}

/// The auth file's JSON with an `auths` object, or a new one when there is no file. A file
/// that is not JSON is an error: it is not ours to overwrite.
fn read_for_update(file: &Path) -> std::io::Result<Value> {
    let mut config = match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
            std::io::Error::other(format!("{} is not JSON ({e}); not changed", file.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e),
    };
    if !config["auths"].is_object() {
        config["auths"] = serde_json::json!({});
    }
    Ok(config)
}

fn write_private(file: &Path, config: &Value) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("auth.json"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(config)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// `docker-credential-<name>`, when `name` is a plain program name: a helper is looked up
/// on PATH, never given as a path (`x/../../tmp/evil` would run a file relative to the
/// working directory).
fn helper_program(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    plain.then(|| format!("docker-credential-{name}"))
}

/// Asks `docker-credential-<helper>` for `registry`'s credentials. A helper that is not
/// installed, fails or knows nothing gives `None`; its error output is passed on.
pub fn ask_helper(helper: &str, registry: &str) -> Option<String> {
    let Some(program) = helper_program(helper) else {
        tracing::warn!(
            helper,
            "credential helper name refused: not a plain program name"
        );
        return None;
    };
    // The registry's name reaches the helper as a file, not a pipe: a helper that exits
    // without reading it (one that knows nothing) must not kill us with SIGPIPE, whose
    // default action the CLI restores, nor block us.
    let mut input = tempfile::tempfile()
        .map_err(|e| tracing::warn!(error = %e, "no temporary file for a credential helper"))
        .ok()?;
    input.write_all(registry.as_bytes()).ok()?;
    input.seek(std::io::SeekFrom::Start(0)).ok()?;
    let child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| tracing::warn!(helper = %program, error = %e, "credential helper not run"))
        .ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        // "credentials not found" is how a helper says it has none: not worth a word.
        let said = String::from_utf8_lossy(&out.stdout);
        if !said.contains("credentials not found") {
            tracing::warn!(helper = %program, said = %said.trim(), "credential helper failed");
        }
        return None;
    }
    let answer: Value = serde_json::from_slice(&out.stdout).ok()?;
    match (answer["Username"].as_str(), answer["Secret"].as_str()) {
        (Some(u), Some(s)) if !s.is_empty() => Some(format!("{u}:{s}")),
        _ => None,
    }
}

/// `user:password` for `registry` from the first of `files` that knows it.
pub fn stored_in(files: &[PathBuf], registry: &str) -> Option<String> {
    for file in files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        let Ok(config) = serde_json::from_slice::<Value>(&bytes) else {
            tracing::warn!(file = %file.display(), "not JSON; skipped for credentials");
            continue;
        };
        match lookup(&config, registry) {
            Some(Found::Basic(c)) => return Some(c),
            Some(Found::Helper(h)) => {
                if let Some(c) = ask_helper(&h, registry) {
                    return Some(c);
                }
            }
            None => {}
        }
    }
    None
}

/// `user:password` for `registry` from podman's, skopeo's or docker's stored logins.
pub fn stored(registry: &str) -> Option<String> {
    stored_in(&auth_files(), registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn entries_are_found_by_registry_with_helpers_first_then_auths_then_the_store() {
        let config = json!({
            "auths": {
                "https://reg.example:5000": {"auth": b64("alice:pw")},
                "other.example/v1/": {"username": "bob", "password": "pw2"},
                "helped.example": {},
                "containers.example/team/app": {"auth": b64("carol:pw3")},
            },
            "credHelpers": {"helped.example": "pass", "reg.example:5000": ""},
            "credsStore": "desktop",
        });
        let find = |r: &str| lookup(&config, r);
        assert_eq!(
            find("reg.example:5000"),
            Some(Found::Basic("alice:pw".into()))
        );
        assert_eq!(find("other.example"), Some(Found::Basic("bob:pw2".into())));
        assert_eq!(
            find("containers.example"),
            Some(Found::Basic("carol:pw3".into()))
        );
        assert_eq!(find("helped.example"), Some(Found::Helper("pass".into())));
        // docker's marker entries without credentials defer to the store
        assert_eq!(
            find("unknown.example"),
            Some(Found::Helper("desktop".into()))
        );
        assert_eq!(find("reg.example"), Some(Found::Helper("desktop".into())));
        let no_store = json!({"auths": {"reg.example:5000": {"auth": b64("alice:pw")}}});
        assert_eq!(lookup(&no_store, "unknown.example"), None);
        assert_eq!(lookup(&json!({}), "reg.example:5000"), None);
    }

    #[test]
    fn files_are_read_in_order_and_unreadable_ones_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("auth.json");
        let second = dir.path().join("config.json");
        let broken = dir.path().join("broken.json");
        std::fs::write(
            &first,
            json!({"auths": {"a.example": {"auth": b64("podman:1")}}}).to_string(),
        )
        .unwrap();
        std::fs::write(
            &second,
            json!({"auths": {"a.example": {"auth": b64("docker:2")}, "b.example": {"auth": b64("docker:3")}}})
                .to_string(),
        )
        .unwrap();
        std::fs::write(&broken, "{not json").unwrap();
        let files = [dir.path().join("missing.json"), broken, first, second];
        assert_eq!(stored_in(&files, "a.example").as_deref(), Some("podman:1"));
        assert_eq!(stored_in(&files, "b.example").as_deref(), Some("docker:3"));
        assert_eq!(stored_in(&files, "c.example"), None);
    }

    #[test]
    fn logins_are_stored_beside_other_entries_privately_and_forgotten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("containers/auth.json");
        store(&file, "a.example", "alice", "pw", false).unwrap();
        assert!(!made_by_login(&file, "a.example"));
        std::fs::write(
            &file,
            json!({"auths": {"a.example": {"auth": b64("alice:pw")}, "b.example": {"auth": b64("bob:1")}},
                   "credHelpers": {"c.example": "pass"}})
            .to_string(),
        )
        .unwrap();
        store(&file, "a.example", "alice", "new:pw", true).unwrap();
        assert!(made_by_login(&file, "a.example"));
        let files = [file.clone()];
        assert_eq!(
            stored_in(&files, "a.example").as_deref(),
            Some("alice:new:pw")
        );
        assert_eq!(stored_in(&files, "b.example").as_deref(), Some("bob:1"));
        let kept: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(kept["credHelpers"]["c.example"], "pass");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(forget(&file, "a.example").unwrap());
        assert!(!forget(&file, "a.example").unwrap());
        assert_eq!(stored_in(&files, "a.example"), None);
        assert_eq!(stored_in(&files, "b.example").as_deref(), Some("bob:1"));
        // a file that is not JSON is left alone
        std::fs::write(&file, "not json").unwrap();
        assert!(store(&file, "a.example", "alice", "pw", false).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"not json");
    }

    #[test]
    fn a_missing_helper_gives_nothing_and_paths_are_not_helpers() {
        assert_eq!(ask_helper("bonded-test-no-such-helper", "a.example"), None);
        assert_eq!(
            helper_program("osxkeychain").as_deref(),
            Some("docker-credential-osxkeychain")
        );
        assert_eq!(
            helper_program("ecr-login").as_deref(),
            Some("docker-credential-ecr-login")
        );
        for bad in ["", "x/../../tmp/evil", "/bin/sh", "a b", "pass;rm"] {
            assert_eq!(helper_program(bad), None, "{bad}");
        }
    }
}
