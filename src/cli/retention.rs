//! `bonded retention`: rules that remove old tags and the images only they kept, over a
//! server's API (`--registry`) or on its database (a run: on a stopped data directory).

use clap::{Args, Subcommand};
use reqwest::Method;

use super::accounts::{admin_client, operator, DataDir};
use super::lifecycle::{local_actor, offline_registry, stopped_data_dir};
use crate::db::{AuditAction, AuditEvent, Metadata, RetentionRule};
use crate::wire;

#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub command: RetentionCommand,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Set the rule of repositories PATTERN (replacing the one it had): the other tags go,
    /// with the images nothing else keeps (a kept tag or index, a waiting tag, a pending
    /// state, a subject); their blobs go at the next garbage collection
    Set {
        /// Repositories: '*', 'NAMESPACE/*' or one repository; the most specific pattern
        /// matching a repository is its rule
        pattern: String,
        /// The N images (manifests) most recently tagged keep all their tags
        #[arg(long, value_name = "N")]
        keep_last: u32,
        /// Tags matching this glob are kept whatever their age ('v*', 'release-?.*')
        #[arg(long, value_name = "GLOB")]
        keep_tags: Option<String>,
        /// Untagged manifests nothing references go once last pushed longer ago than
        /// this (90d, 12h, 30m)
        #[arg(long, value_name = "AGE")]
        untagged_after: Option<String>,
    },
    /// Remove the rule of PATTERN
    Remove { pattern: String },
    /// List the rules
    Show,
    /// Apply the rules now
    Run {
        /// List what a run would remove; remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn retention(args: &RetentionArgs) -> Result<(), String> {
    match &args.command {
        RetentionCommand::Set {
            pattern,
            keep_last,
            keep_tags,
            untagged_after,
        } => {
            let untagged_after = untagged_after
                .as_deref()
                .map(|a| crate::config::parse_duration("--untagged-after", a, false))
                .transpose()
                .map_err(|e| e.to_string())?
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let rule = RetentionRule {
                pattern: pattern.clone(),
                keep_last: i64::from(*keep_last),
                keep_tags: keep_tags.clone(),
                untagged_after,
                created_at: 0,
                created_by: operator(),
            };
            crate::registry::check_retention(
                pattern,
                rule.keep_last,
                rule.keep_tags.as_deref(),
                untagged_after,
            )?;
            let changed = match &args.dir.registry {
                Some(registry) => {
                    let body = serde_json::to_vec(&wire::RetentionRule {
                        pattern: pattern.clone(),
                        keep_last: *keep_last,
                        keep_tags: keep_tags.clone(),
                        untagged_after_seconds: untagged_after.map(|s| s as u64),
                        created_at: None,
                        created_by: None,
                    })
                    .expect("wire types serialise");
                    admin_client(registry, &args.dir)
                        .await?
                        .bonded_typed::<wire::Changed>(Method::POST, "retention", Some(body))
                        .await
                        .map_err(|e| e.to_string())?
                        .changed
                }
                None => {
                    let db = local_db(&args.dir).await?;
                    let e = event(
                        AuditAction::RetentionSet,
                        crate::registry::describe_retention(&rule),
                    );
                    let changed = db
                        .retention_set(&rule, &[e])
                        .await
                        .map_err(|e| e.to_string())?;
                    db.close().await;
                    changed
                }
            };
            let says = crate::registry::describe_retention(&rule);
            if changed {
                println!("retention {says}");
            } else {
                println!("retention {says} (unchanged)");
            }
        }
        RetentionCommand::Remove { pattern } => {
            let removed = match &args.dir.registry {
                Some(registry) => {
                    let q: String = form_urlencoded::Serializer::new(String::new())
                        .append_pair("pattern", pattern)
                        .finish();
                    admin_client(registry, &args.dir)
                        .await?
                        .bonded_typed::<wire::Changed>(
                            Method::DELETE,
                            &format!("retention?{q}"),
                            None,
                        )
                        .await
                        .map_err(|e| e.to_string())?
                        .changed
                }
                None => {
                    let db = local_db(&args.dir).await?;
                    let e = event(AuditAction::RetentionRemove, format!("'{pattern}'"));
                    let removed = db
                        .retention_remove(pattern, &[e])
                        .await
                        .map_err(|e| e.to_string())?;
                    db.close().await;
                    removed
                }
            };
            if !removed {
                return Err(format!("no retention rule for '{pattern}'"));
            }
            println!("'{pattern}' has no retention rule any more");
        }
        RetentionCommand::Show => {
            let rules: Vec<wire::RetentionRule> = match &args.dir.registry {
                Some(registry) => {
                    admin_client(registry, &args.dir)
                        .await?
                        .bonded_typed::<wire::RetentionRules>(Method::GET, "retention", None)
                        .await
                        .map_err(|e| e.to_string())?
                        .rules
                }
                None => {
                    let db = local_db(&args.dir).await?;
                    let rules = db.retention_rules().await.map_err(|e| e.to_string())?;
                    db.close().await;
                    rules.into_iter().map(wire::RetentionRule::from).collect()
                }
            };
            let mut table = super::table::Table::new(&[
                "PATTERN",
                "KEEP LAST",
                "KEEP TAGS",
                "UNTAGGED AFTER",
                "SINCE",
                "BY",
            ])
            .right(1);
            for r in rules {
                table.row(vec![
                    r.pattern,
                    r.keep_last.to_string(),
                    r.keep_tags.unwrap_or_else(|| "-".into()),
                    r.untagged_after_seconds
                        .map(|s| crate::config::format_duration(s as i64))
                        .unwrap_or_else(|| "-".into()),
                    r.created_at.unwrap_or_default(),
                    r.created_by.unwrap_or_default(),
                ]);
            }
            table.print();
        }
        RetentionCommand::Run { dry_run, json } => {
            let report = match &args.dir.registry {
                Some(registry) => admin_client(registry, &args.dir)
                    .await?
                    .bonded_typed::<wire::RetentionReport>(
                        Method::POST,
                        &format!("retention/run?dryRun={dry_run}"),
                        None,
                    )
                    .await
                    .map_err(|e| e.to_string())?,
                None => {
                    if args.dir.database_url.is_some() {
                        return Err("an offline retention run works on a data directory's own database; for PostgreSQL run it on the server: bonded retention run --registry HOST".into());
                    }
                    let dir = &args.dir.data_dir;
                    let _lock = stopped_data_dir(dir, "bonded retention run")?;
                    let (db, registry) = offline_registry(dir).await?;
                    let report = registry
                        .retention(*dry_run, &local_actor())
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("a garbage collection or retention run is in progress")?;
                    db.close().await;
                    report
                }
            };
            if *json {
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
                let repo = item.repository.as_deref().unwrap_or_default();
                match &item.tag {
                    Some(tag) => println!(
                        "{verb} tag {repo}:{tag} ({})  ({})",
                        item.digest, item.reason
                    ),
                    None => println!("{verb} manifest {repo}@{}  ({})", item.digest, item.reason),
                }
            }
            println!(
                "{verb} {} tags and {} manifests ({:.2} s); their blobs go at the next garbage collection",
                report.tags_removed, report.manifests_removed, report.seconds
            );
        }
    }
    Ok(())
}

async fn local_db(dir: &DataDir) -> Result<Metadata, String> {
    Metadata::open_existing(&dir.data_dir, dir.database_url.as_deref()).await
}

/// A record of `action` by whoever runs this command on the database.
fn event(action: AuditAction, reason: String) -> AuditEvent {
    local_actor().event(action, None, None, Some(reason))
}
