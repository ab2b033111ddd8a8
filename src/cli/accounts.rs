//! `bonded user|token|role|namespace|quota`: accounts, API tokens, roles, public namespaces
//! and storage quotas,
//! changed directly in the server's database (the server picks changes up within two
//! seconds). Every change is recorded in the audit trail as `local:<OS user>`.

use crate::admin::{Admin, AdminError};
use crate::auth::AccountKind;
use crate::db::{self, Metadata};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DataDir {
    /// The server's data directory (the one holding bonded.db)
    #[arg(long, env = "BONDED_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
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
    let db = open(&args.dir).await?;
    let human = crate::registry::human_bytes;
    match &args.command {
        QuotaCommand::Set { pattern, size } => {
            let bytes = parse_size(size)?;
            local_admin(&db)
                .set_quota(pattern, Some(bytes))
                .await
                .map_err(admin_err)?;
            let used = db.namespace_usage(pattern).await.map_err(db_err)?;
            println!(
                "quota of '{pattern}' is {}; {} used now",
                human(bytes),
                human(used)
            );
        }
        QuotaCommand::Remove { pattern } => {
            local_admin(&db)
                .set_quota(pattern, None)
                .await
                .map_err(admin_err)?;
            println!("removed the quota of '{pattern}'");
        }
        QuotaCommand::List => {
            println!("{:<32} {:>12} {:>12}", "PATTERN", "USED", "ALLOWED");
            for (pattern, allowed) in db.quotas().await.map_err(db_err)? {
                let used = db.namespace_usage(&pattern).await.map_err(db_err)?;
                println!("{pattern:<32} {:>12} {:>12}", human(used), human(allowed));
            }
        }
    }
    db.close().await;
    Ok(())
}

fn operator() -> String {
    format!(
        "local:{}",
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into())
    )
}

/// Changes made from this machine's shell, audited as `local:<OS user>`.
fn local_admin(db: &Metadata) -> Admin<'_> {
    Admin::new(db, &operator(), None)
}

fn admin_err(e: AdminError) -> String {
    e.to_string()
}

async fn open(dir: &DataDir) -> Result<Metadata, String> {
    let path = dir.data_dir.join("bonded.db");
    if !path.exists() {
        return Err(format!(
            "no bonded database at {}: start `bonded serve --data-dir {}` once, or pass --data-dir",
            path.display(),
            dir.data_dir.display()
        ));
    }
    Metadata::open_sqlite(&path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
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
    let db = open(&args.dir).await?;
    let admin = local_admin(&db);
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
            let generated = admin
                .add_account(name, kind, given.as_deref())
                .await
                .map_err(admin_err)?;
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
            let accounts = db.accounts().await.map_err(db_err)?;
            if *json {
                for a in &accounts {
                    println!("{}", serde_json::to_string(a).expect("serialises"));
                }
            } else {
                println!("{:<24} {:<6} {:<21} ROLES", "NAME", "KIND", "CREATED");
                for a in &accounts {
                    println!(
                        "{:<24} {:<6} {:<21} {}",
                        a.name,
                        a.kind,
                        db::format_unix(a.created_at),
                        if a.grants.is_empty() {
                            "-".to_string()
                        } else {
                            a.grants.join(", ")
                        }
                    );
                }
            }
        }
        UserCommand::Remove { name } => {
            admin.remove_account(name).await.map_err(admin_err)?;
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
            match admin
                .set_password(name, given.as_deref())
                .await
                .map_err(admin_err)?
            {
                Some(p) => println!("new password for '{name}': {p}\n(shown once)"),
                None => println!("password of '{name}' changed"),
            }
        }
    }
    db.close().await;
    Ok(())
}

pub async fn token(args: &TokenArgs) -> Result<(), String> {
    let db = open(&args.dir).await?;
    let admin = local_admin(&db);
    match &args.command {
        TokenCommand::Create {
            account,
            description,
            expires_in_days,
        } => {
            let new = admin
                .create_token(account, description, *expires_in_days)
                .await
                .map_err(admin_err)?;
            eprintln!(
                "token {} for '{account}', expires {} (shown once; use it as the password):",
                new.token.id,
                db::format_unix(new.expires_at)
            );
            println!("{}", new.token);
        }
        TokenCommand::List { account, json } => {
            let tokens = db.tokens(account.as_deref()).await.map_err(db_err)?;
            if *json {
                for t in &tokens {
                    println!("{}", serde_json::to_string(t).expect("serialises"));
                }
            } else {
                println!(
                    "{:<16} {:<20} {:<21} {:<8} DESCRIPTION",
                    "ID", "ACCOUNT", "EXPIRES", "STATE"
                );
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                for t in &tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.expires_at <= now {
                        "expired"
                    } else {
                        "live"
                    };
                    println!(
                        "{:<16} {:<20} {:<21} {:<8} {}",
                        t.id,
                        t.account,
                        db::format_unix(t.expires_at),
                        state,
                        t.description
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            admin.revoke_token(id, None).await.map_err(admin_err)?;
            println!("revoked token {id}");
        }
    }
    db.close().await;
    Ok(())
}

pub async fn role(args: &RoleArgs) -> Result<(), String> {
    let db = open(&args.dir).await?;
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
    let what = local_admin(&db)
        .set_role(account, role, pattern, grant)
        .await
        .map_err(admin_err)?;
    println!("{} {what}", if grant { "granted" } else { "revoked" });
    db.close().await;
    Ok(())
}

pub async fn namespace(args: &NamespaceArgs) -> Result<(), String> {
    let db = open(&args.dir).await?;
    match &args.command {
        NamespaceCommand::Public { pattern } | NamespaceCommand::Private { pattern } => {
            let public = matches!(args.command, NamespaceCommand::Public { .. });
            let word = if public { "public" } else { "private" };
            let changed = local_admin(&db)
                .set_public(pattern, public)
                .await
                .map_err(admin_err)?;
            if changed {
                println!("'{pattern}' is now {word}");
            } else {
                println!("'{pattern}' was {word} already");
            }
        }
        NamespaceCommand::List => {
            for p in db.directory().await.map_err(db_err)?.public {
                println!("{p}");
            }
        }
    }
    db.close().await;
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
