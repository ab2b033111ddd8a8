//! A real PostgreSQL for the tests: a cluster of Debian's `postgresql` package, made by
//! `initdb` in a temporary directory and started on a free loopback port once per test
//! process (as the `postgres` user when the tests run as root, which initdb refuses).
//! Found as `BONDED_PG_BIN` (the directory holding initdb and postgres) or under
//! /usr/lib/postgresql/*/bin. Without it, PostgreSQL tests skip and say so, unless
//! `BONDED_REQUIRE_POSTGRES` is set (CI sets it).
//!
//! `BONDED_TEST_DATABASE=postgres` makes every test server keep its metadata in
//! PostgreSQL (a database per data directory, so a restarted server finds its data
//! again): CI runs the integration tests once that way.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn bin_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BONDED_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop()
}

pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
}

/// The shared cluster, or `None` when PostgreSQL is not installed and not required.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let Some(bin) = bin_dir() else {
                if std::env::var_os("BONDED_REQUIRE_POSTGRES").is_some() {
                    panic!("BONDED_REQUIRE_POSTGRES is set but no PostgreSQL server is installed (apt-get install postgresql, or set BONDED_PG_BIN)");
                }
                return None;
            };
            Some(start(bin))
        })
        .as_ref()
}

/// Says the test is skipped when there is no PostgreSQL; the cluster otherwise.
pub fn cluster_or_skip(test: &str) -> Option<&'static Cluster> {
    let c = cluster();
    if c.is_none() {
        eprintln!("skipped: {test}: PostgreSQL not found (apt-get install postgresql)");
    }
    c
}

/// The `postgres` account's uid and gid when running as root.
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            return Some((f[2].parse().ok()?, f[3].parse().ok()?));
        }
    }
    None
}

fn as_postgres(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = postgres_user() {
        cmd.uid(uid).gid(gid);
    }
}

fn start(bin: PathBuf) -> Cluster {
    // Kept for the life of the process (the server's files); removed by the OS's /tmp
    // cleaning, like any test's leftovers of a killed run.
    let dir = tempfile::Builder::new()
        .prefix("bonded-test-pg-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let data = dir.join("data");
    if let Some((uid, gid)) = postgres_user() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the cluster dir");
    }
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "bonded", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_postgres(&mut initdb);
    let out = initdb.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        // A test database: durability is not what is tested here.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_postgres(&mut cmd);
    if let Err(e) = super::spawn_for_life(cmd) {
        panic!("cannot start postgres: {e}");
    }
    let cluster = Cluster { port, bin };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cluster.psql("postgres", "SELECT 1").is_ok() {
            return cluster;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("postgres did not answer on port {port} within 30 s");
}

impl Cluster {
    /// Runs one statement with psql; its output, or its error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let psql = self.bin.join("psql");
        let out = Command::new(if psql.is_file() { psql } else { "psql".into() })
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "bonded",
            ])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-XAtq", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A database of its own for `data_dir` (created if new); its URL.
    pub fn database_for(&self, data_dir: &Path) -> String {
        let h = hex::encode(Sha256::digest(data_dir.as_os_str().as_encoded_bytes()));
        let name = format!("t_{}", &h[..24]);
        self.create_database(&name);
        self.url(&name)
    }

    /// Creates database `name` (already existing is fine).
    pub fn create_database(&self, name: &str) {
        if let Err(e) = self.psql("postgres", &format!("CREATE DATABASE {name}")) {
            assert!(e.contains("already exists"), "CREATE DATABASE {name}: {e}");
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://bonded@127.0.0.1:{}/{db}", self.port)
    }
}

/// Whether every test server keeps its metadata in PostgreSQL
/// (`BONDED_TEST_DATABASE=postgres`).
pub fn all_servers_on_postgres() -> bool {
    std::env::var("BONDED_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// Points a `bonded` command on `data_dir` at that directory's database in that mode
/// (through `BONDED_DATABASE_URL`, which serve and the offline commands read).
pub fn database_env<'a>(cmd: &'a mut Command, data_dir: &Path) -> &'a mut Command {
    if let Some(url) = url_for(data_dir) {
        cmd.env("BONDED_DATABASE_URL", url);
    }
    cmd
}

/// The database URL test servers and commands on `data_dir` use in that mode.
pub fn url_for(data_dir: &Path) -> Option<String> {
    if !all_servers_on_postgres() {
        return None;
    }
    let c = cluster().expect("BONDED_TEST_DATABASE=postgres needs PostgreSQL");
    Some(c.database_for(data_dir))
}
