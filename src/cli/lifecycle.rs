//! `bonded delete`, `bonded gc` and `bonded immutable`: lifecycle administration, over a
//! server's API (`--registry`) or, stopped, on its data directory.

use std::sync::Arc;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::accounts::{admin_client, operator, DataDir};
use crate::client::{ClientOptions, ImageRef, RegistryClient};
use crate::db::Metadata;
use crate::registry::{Actor, GcOptions, Registry};
use crate::wire;

/// The lock `bonded serve` holds (shared) on its data directory and an offline command
/// that changes blobs takes alone.
pub const DATA_DIR_LOCK: &str = "serve.lock";

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// REGISTRY/REPOSITORY:TAG deletes the tag; REGISTRY/REPOSITORY@DIGEST deletes the
    /// manifest with its tags and (on bonded) its signatures and other referrers
    pub reference: String,
    #[command(flatten)]
    pub client: ClientOptions,
}

pub async fn delete(args: &DeleteArgs) -> Result<(), String> {
    let image: ImageRef = args.reference.parse()?;
    let client = RegistryClient::connect_for(
        &image.registry,
        &args.client,
        Some(&image.repository),
        "delete",
    )
    .await
    .map_err(|e| e.to_string())?;
    client
        .delete_manifest(&image.repository, &image.reference.to_string())
        .await
        .map_err(|e| e.to_string())?;
    println!("deleted {image}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what a run would remove; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep what was pushed, mounted or tagged within this long (90d, 12h, 30m, 0s)
    /// [default: the server's --gc-grace-period; 24h offline]
    #[arg(long, value_name = "AGE")]
    pub grace_period: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dir: DataDir,
}

pub async fn gc(args: &GcArgs) -> Result<(), String> {
    let grace = args
        .grace_period
        .as_deref()
        .map(|g| crate::config::parse_duration("grace period", g, true))
        .transpose()
        .map_err(|e| e.to_string())?;
    let report = match &args.dir.registry {
        Some(registry) => {
            let client = admin_client(registry, &args.dir).await?;
            let mut path = format!("gc?dryRun={}", args.dry_run);
            if let Some(g) = grace {
                path.push_str(&format!("&gracePeriod={}s", g.as_secs()));
            }
            let mut answer: serde_json::Value = client
                .bonded_typed(Method::POST, &path, None)
                .await
                .map_err(|e| e.to_string())?;
            // A long run answers 202: followed until it ends.
            while answer.get("state").and_then(|s| s.as_str()) == Some("running") {
                eprintln!("garbage collection running...");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                answer = client
                    .bonded_typed(Method::GET, "gc", None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            serde_json::from_value::<wire::GcReport>(answer).map_err(|e| {
                format!("the server's garbage collection report is not what this client reads: {e}")
            })?
        }
        None => {
            if args.dir.database_url.is_some() {
                return Err("an offline garbage collection works on a data directory's own database and blobs; for PostgreSQL or S3 run it on the server: bonded gc --registry HOST".into());
            }
            let dir = &args.dir.data_dir;
            let _lock = stopped_data_dir(dir, "bonded gc")?;
            let (db, registry) = offline_registry(dir).await?;
            let opts = GcOptions {
                grace: grace.unwrap_or(std::time::Duration::from_secs(86_400)),
                dry_run: args.dry_run,
            };
            let actor = local_actor();
            let report = registry
                .gc(opts, &actor)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("a garbage collection is running already")?;
            db.close().await;
            report
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("wire types serialise")
        );
        return Ok(());
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for item in &report.removed {
        let place = item
            .repository
            .as_deref()
            .map(|r| format!("{r}@"))
            .unwrap_or_default();
        println!(
            "{verb} {} {place}{}  ({})",
            item.kind, item.digest, item.reason
        );
    }
    println!(
        "{verb} {} manifests, {} links, {} blobs, {} leftovers: {} (grace period {} s, {:.2} s)",
        report.manifests_removed,
        report.links_removed,
        report.blobs_removed,
        report.leftovers_removed,
        crate::registry::human_bytes(report.bytes_freed),
        report.grace_period_seconds,
        report.seconds
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dir: DataDir,
}

/// Exits non-zero when any problem is found.
pub async fn scrub(args: &ScrubArgs) -> Result<(), String> {
    let report = match &args.dir.registry {
        Some(registry) => admin_client(registry, &args.dir)
            .await?
            .bonded_typed::<wire::ScrubReport>(Method::POST, "scrub", None)
            .await
            .map_err(|e| e.to_string())?,
        None => {
            if args.dir.database_url.is_some() {
                return Err("an offline scrub reads a data directory's own database and blobs; for PostgreSQL or S3 run it on the server: bonded scrub --registry HOST".into());
            }
            let dir = &args.dir.data_dir;
            let (db, registry) = offline_registry(dir).await?;
            let actor = local_actor();
            let report = registry.scrub(&actor).await.map_err(|e| e.to_string())?;
            db.close().await;
            report
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("wire types serialise")
        );
    } else {
        for p in &report.problems {
            let repos = if p.repositories.is_empty() {
                String::new()
            } else {
                format!(" in {}", p.repositories.join(", "))
            };
            println!("{} {}{repos}: {}", p.kind, p.digest, p.detail);
        }
        println!(
            "checked {} blobs ({}) in {:.2} s: {} problems",
            report.blobs_checked,
            crate::registry::human_bytes(report.bytes_checked),
            report.seconds,
            report.problem_count
        );
    }
    if report.problem_count > 0 {
        return Err(format!("scrub found {} problems", report.problem_count));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ImmutableArgs {
    #[command(subcommand)]
    pub command: ImmutableCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum ImmutableCommand {
    /// Make tags immutable: once published, never moved or deleted
    Add {
        /// Repositories: '*', 'NAMESPACE/*' or one repository
        pattern: String,
        /// Tags the rule covers, a glob ('v*', 'release-?.*') [default: every tag]
        #[arg(long, default_value = "*")]
        tags: String,
    },
    /// Remove a rule
    Remove {
        pattern: String,
        #[arg(long, default_value = "*")]
        tags: String,
    },
    /// List the rules
    List,
}

pub async fn immutable(args: &ImmutableArgs) -> Result<(), String> {
    match &args.dir.registry {
        Some(registry) => {
            let client = admin_client(registry, &args.dir).await?;
            match &args.command {
                ImmutableCommand::Add { pattern, tags } => {
                    let body = serde_json::to_vec(&wire::ImmutableRule {
                        pattern: pattern.clone(),
                        tags: tags.clone(),
                        created_at: None,
                        created_by: None,
                    })
                    .expect("wire types serialise");
                    let a: wire::Changed = client
                        .bonded_typed(Method::POST, "immutable", Some(body))
                        .await
                        .map_err(|e| e.to_string())?;
                    say_added(pattern, tags, a.changed);
                }
                ImmutableCommand::Remove { pattern, tags } => {
                    let q: String = form_urlencoded::Serializer::new(String::new())
                        .append_pair("pattern", pattern)
                        .append_pair("tags", tags)
                        .finish();
                    client
                        .bonded_typed::<wire::Changed>(
                            Method::DELETE,
                            &format!("immutable?{q}"),
                            None,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    println!("tags '{tags}' of '{pattern}' are mutable again");
                }
                ImmutableCommand::List => {
                    let a: wire::ImmutableRules = client
                        .bonded_typed(Method::GET, "immutable", None)
                        .await
                        .map_err(|e| e.to_string())?;
                    print_rules(a.rules);
                }
            }
        }
        None => {
            let db = Metadata::open_existing(&args.dir.data_dir, args.dir.database_url.as_deref())
                .await?;
            let actor = local_actor();
            let event = |action, pattern: &str, tags: &str| {
                actor.event(
                    action,
                    None,
                    None,
                    Some(format!("tags '{tags}' of '{pattern}'")),
                )
            };
            match &args.command {
                ImmutableCommand::Add { pattern, tags } => {
                    crate::registry::check_rule(pattern, tags)?;
                    let e = event(crate::db::AuditAction::ImmutableAdd, pattern, tags);
                    let changed = db
                        .immutable_add(pattern, tags, &actor.name, &[e])
                        .await
                        .map_err(|e| e.to_string())?;
                    say_added(pattern, tags, changed);
                }
                ImmutableCommand::Remove { pattern, tags } => {
                    let e = event(crate::db::AuditAction::ImmutableRemove, pattern, tags);
                    if !db
                        .immutable_remove(pattern, tags, &[e])
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        return Err(format!(
                            "no immutability rule for tags '{tags}' of '{pattern}'"
                        ));
                    }
                    println!("tags '{tags}' of '{pattern}' are mutable again");
                }
                ImmutableCommand::List => {
                    let rules = db.immutable_rules().await.map_err(|e| e.to_string())?;
                    print_rules(rules.into_iter().map(wire::ImmutableRule::from).collect());
                }
            }
            db.close().await;
        }
    }
    Ok(())
}

fn say_added(pattern: &str, tags: &str, changed: bool) {
    if changed {
        println!("tags '{tags}' of '{pattern}' are immutable once published");
    } else {
        println!("tags '{tags}' of '{pattern}' were immutable already");
    }
}

fn print_rules(rules: Vec<wire::ImmutableRule>) {
    let mut table = super::table::Table::new(&["PATTERN", "TAGS", "SINCE", "BY"]);
    for r in rules {
        table.row(vec![
            r.pattern,
            r.tags,
            r.created_at.unwrap_or_default(),
            r.created_by.unwrap_or_default(),
        ]);
    }
    table.print();
}

/// Holds `dir`'s lock alone for as long as the answer lives: refused while a `bonded
/// serve` uses the directory (`command` over the API is the way then).
pub(super) fn stopped_data_dir(
    dir: &std::path::Path,
    command: &str,
) -> Result<std::fs::File, String> {
    let path = dir.join(DATA_DIR_LOCK);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if lock.try_lock().is_err() {
        return Err(format!(
            "a bonded serve is using {}: run it on the server ({command} --registry HOST), or stop the server first",
            dir.display()
        ));
    }
    Ok(lock)
}

/// Who runs an offline command, as the audit trail names them.
pub(super) fn local_actor() -> Actor {
    Actor {
        name: operator(),
        source: None,
    }
}

/// A stopped server's data directory as a `Registry`: its SQLite database and its blobs.
pub(super) async fn offline_registry(
    dir: &std::path::Path,
) -> Result<(Metadata, Registry), String> {
    let db = Metadata::open_existing(dir, None).await?;
    let store = crate::storage::FsBlobStore::open(dir)
        .map_err(|e| format!("cannot open the blob store in {}: {e}", dir.display()))?;
    let registry = Registry::new(
        Arc::new(store),
        db.clone(),
        std::time::Duration::from_secs(3600),
    );
    Ok((db, registry))
}
