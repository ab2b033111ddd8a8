//! `bonded user|token|role|namespace|quota`: accounts, API tokens, roles, public namespaces
//! and storage quotas. Changed directly in the server's database (the server picks changes
//! up within two seconds; audited as `local:<OS user>`), or with `--registry HOST` through
//! a running server's administration API, as the account of a `bonded login` (applied at
//! once; audited as that account). Both go through [`crate::admin`].

use crate::admin::{Admin, AdminError};
use crate::auth::AccountKind;
use crate::client::{ClientOptions, RegistryClient};
use crate::db::{self, AccountInfo, Metadata, TokenInfo};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;

/// Where the change is made: the server's database, or a running server.
#[derive(Debug, Args)]
pub struct DataDir {
    /// The server's data directory (the one holding bonded.db)
    #[arg(long, env = "BONDED_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// The server's PostgreSQL database (postgres://...) instead of the data directory's
    /// bonded.db
    #[arg(long, env = "BONDED_DATABASE_URL", global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Change a running bonded at HOST[:PORT] over its administration API instead, logged
    /// in as with `bonded login` (the account needs admin on '*')
    #[arg(long, global = true)]
    pub registry: Option<String>,
    /// With --registry: accept any TLS certificate (self-signed lab registries)
    #[arg(long, global = true)]
    pub insecure: bool,
    /// With --registry: trust the CA certificates in this PEM file as well
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
}

/// The database (through [`Admin`]) or a server's administration API (which calls the same
/// [`Admin`] there). Every method answers in the same types, so the commands print alike.
enum Target {
    Local(Metadata),
    Remote(RegistryClient),
}

fn remote_err(e: crate::client::ClientError) -> String {
    e.to_string()
}

/// One call to a server's administration API.
async fn call(
    client: &RegistryClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    client
        .bonded_request(method, path, body.as_ref())
        .await
        .map_err(remote_err)
}

/// The variable holding the acting account's own password, for the changes that make a
/// credential (a user, a password, an API token): the server takes those only with the
/// password, and `bonded login` keeps an API token, not the password.
pub const PASSWORD_VARIABLE: &str = "BONDED_PASSWORD";

/// [`call`] for a change that makes a credential: logged in with the password from
/// [`PASSWORD_VARIABLE`] when it is set; otherwise the server's refusal, with what to do.
async fn call_with_password(
    client: &RegistryClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let password = std::env::var(PASSWORD_VARIABLE)
        .ok()
        .filter(|p| !p.is_empty());
    let answer = match &password {
        Some(p) => client
            .bonded_request_with_password(method, path, body.as_ref(), p)
            .await
            .map_err(remote_err),
        None => call(client, method, path, body).await,
    };
    answer.map_err(|e| {
        if password.is_none() && e.contains("needs a login with your password") {
            let user = client
                .credentials()
                .and_then(|c| c.split_once(':'))
                .map_or("you", |(u, _)| u);
            format!("{e}\n(`bonded login` keeps an API token: set {PASSWORD_VARIABLE} to the password of '{user}' for this command)")
        } else {
            e
        }
    })
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Target {
    async fn open(dir: &DataDir) -> Result<Target, String> {
        let Some(registry) = &dir.registry else {
            return open(dir).await.map(Target::Local);
        };
        admin_client(registry, dir).await.map(Target::Remote)
    }

    async fn close(self) {
        if let Target::Local(db) = self {
            db.close().await;
        }
    }

    async fn add_account(
        &self,
        name: &str,
        kind: AccountKind,
        given: Option<&str>,
    ) -> Result<Option<String>, String> {
        match self {
            Target::Local(db) => local_admin(db)
                .add_account(name, kind, given)
                .await
                .map_err(admin_err),
            Target::Remote(c) => {
                let body =
                    json!({"name": name, "robot": kind == AccountKind::Robot, "password": given});
                let answer = match kind {
                    AccountKind::User => {
                        call_with_password(c, Method::POST, "accounts", Some(body)).await?
                    }
                    AccountKind::Robot => call(c, Method::POST, "accounts", Some(body)).await?,
                };
                Ok(answer["password"].as_str().map(str::to_string))
            }
        }
    }

    async fn accounts(&self) -> Result<Vec<AccountInfo>, String> {
        match self {
            Target::Local(db) => db.accounts().await.map_err(db_err),
            Target::Remote(c) => {
                let answer = call(c, Method::GET, "accounts", None).await?;
                serde_json::from_value(answer["accounts"].clone()).map_err(|e| e.to_string())
            }
        }
    }

    async fn remove_account(&self, name: &str) -> Result<(), String> {
        match self {
            Target::Local(db) => local_admin(db)
                .remove_account(name)
                .await
                .map_err(admin_err),
            Target::Remote(c) => {
                let path = format!("accounts/{name}");
                call(c, Method::DELETE, &path, None).await.map(|_| ())
            }
        }
    }

    async fn set_password(
        &self,
        name: &str,
        given: Option<&str>,
    ) -> Result<Option<String>, String> {
        match self {
            Target::Local(db) => local_admin(db)
                .set_password(name, given)
                .await
                .map_err(admin_err),
            Target::Remote(c) => {
                let path = format!("accounts/{name}/password");
                let body = Some(json!({"password": given}));
                let answer = call_with_password(c, Method::PUT, &path, body).await?;
                Ok(answer["password"].as_str().map(str::to_string))
            }
        }
    }

    /// A new token: (the token, its id, when it expires).
    async fn create_token(
        &self,
        account: &str,
        description: &str,
        days: u32,
    ) -> Result<(String, String, String), String> {
        match self {
            Target::Local(db) => {
                let new = local_admin(db)
                    .create_token(account, description, days)
                    .await
                    .map_err(admin_err)?;
                Ok((
                    new.token.to_string(),
                    new.token.id.clone(),
                    db::format_unix(new.expires_at),
                ))
            }
            Target::Remote(c) => {
                let path = format!("accounts/{account}/tokens");
                let body = json!({"description": description, "expiresInDays": days});
                let a = call_with_password(c, Method::POST, &path, Some(body)).await?;
                let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
                Ok((s("token"), s("id"), s("expiresAt")))
            }
        }
    }

    async fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenInfo>, String> {
        match self {
            Target::Local(db) => db.tokens(account).await.map_err(db_err),
            Target::Remote(c) => {
                let path = match account {
                    Some(a) => format!("tokens?{}", query(&[("account", a)])),
                    None => "tokens".into(),
                };
                let answer = call(c, Method::GET, &path, None).await?;
                serde_json::from_value(answer["tokens"].clone()).map_err(|e| e.to_string())
            }
        }
    }

    async fn revoke_token(&self, id: &str) -> Result<(), String> {
        match self {
            Target::Local(db) => local_admin(db)
                .revoke_token(id, None)
                .await
                .map_err(admin_err),
            Target::Remote(c) => {
                let path = format!("tokens/{id}");
                call(c, Method::DELETE, &path, None).await.map(|_| ())
            }
        }
    }

    async fn set_role(
        &self,
        account: &str,
        role: &str,
        pattern: &str,
        grant: bool,
    ) -> Result<String, String> {
        match self {
            Target::Local(db) => local_admin(db)
                .set_role(account, role, pattern, grant)
                .await
                .map_err(admin_err),
            Target::Remote(c) if grant => {
                let path = format!("accounts/{account}/roles");
                let body = json!({"role": role, "pattern": pattern});
                let a = call(c, Method::POST, &path, Some(body)).await?;
                Ok(a["granted"].as_str().unwrap_or_default().to_string())
            }
            Target::Remote(c) => {
                let q = query(&[("role", role), ("pattern", pattern)]);
                let path = format!("accounts/{account}/roles?{q}");
                let a = call(c, Method::DELETE, &path, None).await?;
                Ok(a["revoked"].as_str().unwrap_or_default().to_string())
            }
        }
    }

    /// Whether it changed.
    async fn set_public(&self, pattern: &str, public: bool) -> Result<bool, String> {
        match self {
            Target::Local(db) => local_admin(db)
                .set_public(pattern, public)
                .await
                .map_err(admin_err),
            Target::Remote(c) => {
                let method = if public { Method::PUT } else { Method::DELETE };
                let path = format!("namespaces/public?{}", query(&[("pattern", pattern)]));
                let a = call(c, method, &path, None).await?;
                Ok(a["changed"].as_bool().unwrap_or(false))
            }
        }
    }

    async fn public(&self) -> Result<Vec<String>, String> {
        match self {
            Target::Local(db) => Ok(db.directory().await.map_err(db_err)?.public),
            Target::Remote(c) => {
                let a = call(c, Method::GET, "namespaces/public", None).await?;
                serde_json::from_value(a["public"].clone()).map_err(|e| e.to_string())
            }
        }
    }

    /// Sets or removes a quota; with a quota set, the bytes used under it now.
    async fn set_quota(&self, pattern: &str, bytes: Option<u64>) -> Result<Option<u64>, String> {
        match self {
            Target::Local(db) => {
                local_admin(db)
                    .set_quota(pattern, bytes)
                    .await
                    .map_err(admin_err)?;
                match bytes {
                    Some(_) => Ok(Some(db.namespace_usage(pattern).await.map_err(db_err)?)),
                    None => Ok(None),
                }
            }
            Target::Remote(c) => {
                let path = format!("quotas?{}", query(&[("pattern", pattern)]));
                match bytes {
                    Some(b) => {
                        let a = call(c, Method::PUT, &path, Some(json!({"bytes": b}))).await?;
                        Ok(a["usedBytes"].as_u64())
                    }
                    None => call(c, Method::DELETE, &path, None).await.map(|_| None),
                }
            }
        }
    }

    /// (pattern, allowed bytes, used bytes) of every quota.
    async fn quotas(&self) -> Result<Vec<(String, u64, u64)>, String> {
        match self {
            Target::Local(db) => {
                let mut out = Vec::new();
                for (pattern, allowed) in db.quotas().await.map_err(db_err)? {
                    let used = db.namespace_usage(&pattern).await.map_err(db_err)?;
                    out.push((pattern, allowed, used));
                }
                Ok(out)
            }
            Target::Remote(c) => {
                let a = call(c, Method::GET, "quotas", None).await?;
                Ok(a["quotas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|q| {
                        (
                            q["pattern"].as_str().unwrap_or_default().to_string(),
                            q["allowedBytes"].as_u64().unwrap_or(0),
                            q["usedBytes"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect())
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (password) or a robot (API tokens only)
    Add {
        name: String,
        /// A robot account: no password; log in with `bonded token create`'s tokens
        #[arg(long)]
        robot: bool,
        /// Read the password from standard input instead of generating one
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts and their roles
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account, its tokens and its roles
    Remove { name: String },
    /// Set a user's password (generated and printed unless --password-stdin)
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for an account; it is printed once and stored hashed
    Create {
        account: String,
        /// What the token is for (shown in lists)
        #[arg(long, default_value = "")]
        description: String,
        /// Days until the token expires
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: u32,
    },
    /// List tokens (never their secrets)
    List {
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    #[command(subcommand)]
    pub command: RoleCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Grant a role (reader, signer, developer, maintainer, admin) on a namespace pattern
    /// (`*`, `acme/*`, `acme/app`)
    Grant {
        account: String,
        role: String,
        pattern: String,
    },
    /// Revoke a role granted on a pattern
    Revoke {
        account: String,
        role: String,
        pattern: String,
    },
}

#[derive(Debug, Args)]
pub struct NamespaceArgs {
    #[command(subcommand)]
    pub command: NamespaceCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Let anyone pull from repositories matching a pattern without logging in
    Public { pattern: String },
    /// Make a pattern private again (the default)
    Private { pattern: String },
    /// List public patterns
    List,
}

#[derive(Debug, Args)]
pub struct QuotaArgs {
    #[command(subcommand)]
    pub command: QuotaCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Limit the bytes stored under a namespace pattern (e.g. 10GiB, 500MiB)
    Set { pattern: String, size: String },
    /// Remove a pattern's quota
    Remove { pattern: String },
    /// List quotas with what is used now
    List,
}

/// `10GiB`, `500MiB`, `2G`, `4096` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (n, unit) = t.split_at(digits);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("size '{s}' does not start with a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "size '{s}' has an unknown unit '{u}': use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let bytes = (n * mult as f64).round();
    if !(1.0..=9.0e18).contains(&bytes) {
        return Err(format!("size '{s}' must be at least one byte"));
    }
    Ok(bytes as u64)
}

pub async fn quota(args: &QuotaArgs) -> Result<(), String> {
    let target = Target::open(&args.dir).await?;
    let human = crate::registry::human_bytes;
    match &args.command {
        QuotaCommand::Set { pattern, size } => {
            let bytes = parse_size(size)?;
            let used = target.set_quota(pattern, Some(bytes)).await?.unwrap_or(0);
            println!(
                "quota of '{pattern}' is {}; {} used now",
                human(bytes),
                human(used)
            );
        }
        QuotaCommand::Remove { pattern } => {
            target.set_quota(pattern, None).await?;
            println!("removed the quota of '{pattern}'");
        }
        QuotaCommand::List => {
            let mut table = super::table::Table::new(&["PATTERN", "USED", "ALLOWED"])
                .right(1)
                .right(2);
            for (pattern, allowed, used) in target.quotas().await? {
                table.row(vec![pattern, human(used), human(allowed)]);
            }
            table.print();
        }
    }
    target.close().await;
    Ok(())
}

/// Who runs a local command, as the audit trail names them: `local:<OS user>`.
pub(crate) fn operator() -> String {
    format!(
        "local:{}",
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into())
    )
}

/// Changes made from this machine's shell, audited as `local:<OS user>`.
/// A client of `registry`'s administration API, logged in as with `bonded login`.
pub(crate) async fn admin_client(registry: &str, dir: &DataDir) -> Result<RegistryClient, String> {
    let options = ClientOptions {
        insecure: dir.insecure,
        ca_file: dir.ca_file.clone(),
        ..ClientOptions::default()
    };
    let client = RegistryClient::connect(registry, &options, None, false)
        .await
        .map_err(remote_err)?;
    if client.credentials().is_none() {
        return Err(format!(
            "no login for {registry}: run `bonded login {registry} --username NAME --password-stdin` first"
        ));
    }
    Ok(client)
}

fn local_admin(db: &Metadata) -> Admin<'_> {
    Admin::new(db, &operator(), None)
}

fn admin_err(e: AdminError) -> String {
    e.to_string()
}

async fn open(dir: &DataDir) -> Result<Metadata, String> {
    Metadata::open_existing(&dir.data_dir, dir.database_url.as_deref()).await
}

/// A password from standard input (its first line).
fn read_password() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("reading the password from standard input failed: {e}"))?;
    Ok(s.lines().next().unwrap_or("").to_string())
}

fn db_err(e: db::DbError) -> String {
    e.to_string()
}

pub async fn user(args: &UserArgs) -> Result<(), String> {
    let target = Target::open(&args.dir).await?;
    match &args.command {
        UserCommand::Add {
            name,
            robot,
            password_stdin,
        } => {
            let kind = if *robot {
                AccountKind::Robot
            } else {
                AccountKind::User
            };
            let given = match kind {
                AccountKind::User if *password_stdin => Some(read_password()?),
                _ => None,
            };
            let generated = target.add_account(name, kind, given.as_deref()).await?;
            match (kind, generated) {
                (AccountKind::User, Some(p)) => println!(
                    "added user '{name}' with password {p}\n(shown once; grant roles with `bonded role grant {name} ROLE PATTERN`)"
                ),
                (AccountKind::User, None) => println!("added user '{name}'"),
                (AccountKind::Robot, _) => println!(
                    "added robot '{name}'; make it a token with `bonded token create {name}`"
                ),
            }
        }
        UserCommand::List { json } => {
            let accounts = target.accounts().await?;
            if *json {
                for a in &accounts {
                    println!("{}", serde_json::to_string(a).expect("serialises"));
                }
            } else {
                let mut table = super::table::Table::new(&["NAME", "KIND", "CREATED", "ROLES"]);
                for a in &accounts {
                    table.row(vec![
                        a.name.clone(),
                        a.kind.to_string(),
                        db::format_unix(a.created_at),
                        if a.grants.is_empty() {
                            "-".to_string()
                        } else {
                            a.grants.join(", ")
                        },
                    ]);
                }
                table.print();
            }
        }
        UserCommand::Remove { name } => {
            target.remove_account(name).await?;
            println!("removed '{name}' with its tokens and roles");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let given = if *password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            match target.set_password(name, given.as_deref()).await? {
                Some(p) => println!("new password for '{name}': {p}\n(shown once)"),
                None => println!("password of '{name}' changed"),
            }
        }
    }
    target.close().await;
    Ok(())
}

pub async fn token(args: &TokenArgs) -> Result<(), String> {
    let target = Target::open(&args.dir).await?;
    match &args.command {
        TokenCommand::Create {
            account,
            description,
            expires_in_days,
        } => {
            let (token, id, expires) = target
                .create_token(account, description, *expires_in_days)
                .await?;
            eprintln!(
                "token {id} for '{account}', expires {expires} (shown once; use it as the password):"
            );
            println!("{token}");
        }
        TokenCommand::List { account, json } => {
            let tokens = target.tokens(account.as_deref()).await?;
            if *json {
                for t in &tokens {
                    println!("{}", serde_json::to_string(t).expect("serialises"));
                }
            } else {
                let mut table =
                    super::table::Table::new(&["ID", "ACCOUNT", "EXPIRES", "STATE", "DESCRIPTION"]);
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                for t in &tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.expires_at <= now {
                        "expired"
                    } else {
                        "live"
                    };
                    table.row(vec![
                        t.id.clone(),
                        t.account.clone(),
                        db::format_unix(t.expires_at),
                        state.into(),
                        super::printable(&t.description),
                    ]);
                }
                table.print();
            }
        }
        TokenCommand::Revoke { id } => {
            target.revoke_token(id).await?;
            println!("revoked token {id}");
        }
    }
    target.close().await;
    Ok(())
}

pub async fn role(args: &RoleArgs) -> Result<(), String> {
    let target = Target::open(&args.dir).await?;
    let (account, role, pattern, grant) = match &args.command {
        RoleCommand::Grant {
            account,
            role,
            pattern,
        } => (account, role, pattern, true),
        RoleCommand::Revoke {
            account,
            role,
            pattern,
        } => (account, role, pattern, false),
    };
    let what = target.set_role(account, role, pattern, grant).await?;
    println!("{} {what}", if grant { "granted" } else { "revoked" });
    target.close().await;
    Ok(())
}

pub async fn namespace(args: &NamespaceArgs) -> Result<(), String> {
    let target = Target::open(&args.dir).await?;
    match &args.command {
        NamespaceCommand::Public { pattern } | NamespaceCommand::Private { pattern } => {
            let public = matches!(args.command, NamespaceCommand::Public { .. });
            let word = if public { "public" } else { "private" };
            let changed = target.set_public(pattern, public).await?;
            if changed {
                println!("'{pattern}' is now {word}");
            } else {
                println!("'{pattern}' was {word} already");
            }
        }
        NamespaceCommand::List => {
            for p in target.public().await? {
                println!("{p}");
            }
        }
    }
    target.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5 MiB").unwrap(), 3 << 19);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
