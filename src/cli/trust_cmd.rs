//! `bonded trust`: the trust policy and trust stores of a running bonded server, through
//! its admin API.

use super::printable;
use super::table::Table;
use crate::client::{ClientOptions, RegistryClient};
use crate::config::Secret;
use crate::wire::{Compliance, TrustChangeAnswer, TrustJobAnswer};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub action: TrustAction,
    /// The bonded server, HOST[:PORT]
    #[arg(long, global = true, default_value = "127.0.0.1:5000")]
    pub registry: String,
    /// The server's admin token; without it, changes use the login (--username and
    /// --password-stdin, or docker's config.json) of an account with admin on '*'
    #[arg(
        long,
        env = "BONDED_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<Secret>,
    #[command(flatten)]
    pub client: ClientOptions,
}

#[derive(Debug, clap::Subcommand)]
pub enum TrustAction {
    /// The policy and trust stores in force; with --noncompliant, the published images
    /// they do not accept
    Show {
        /// List the published images the trust configuration does not accept (needs an
        /// administrator: the admin token or a login with admin on '*')
        #[arg(long)]
        noncompliant: bool,
        /// With --noncompliant: list at most this many
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=crate::registry::MAX_LISTED as i64))]
        limit: u32,
        /// With --noncompliant: the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Every recorded version, newest first, with why it changed
    Versions,
    /// Replace the trust policy with FILE (a trustpolicy.json)
    SetPolicy { file: PathBuf },
    /// Remove the trust policy (the server becomes a plain registry)
    RemovePolicy,
    /// Create or replace trust store TYPE:NAME (e.g. ca:release) with the certificates in FILE
    SetStore { store: String, file: PathBuf },
    /// Remove trust store TYPE:NAME
    RemoveStore { store: String },
}

fn store_path(store: &str) -> Result<String, String> {
    let r: crate::trust::store::StoreRef = store.parse()?;
    Ok(format!("trust/stores/{}/{}", r.kind.as_str(), r.name))
}

pub async fn run(args: &TrustArgs) -> Result<(), String> {
    let client = RegistryClient::connect(&args.registry, &args.client, None, false)
        .await
        .map_err(|e| e.to_string())?;
    let token = args.admin_token.as_ref().map(|t| t.expose());
    let read =
        |f: &PathBuf| std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()));
    if let TrustAction::Show {
        noncompliant: true,
        limit,
        json,
    } = &args.action
    {
        let report: Compliance = client
            .bonded_get_admin(&format!("trust/noncompliant?limit={limit}"), token)
            .await
            .map_err(|e| e.to_string())?;
        if *json {
            println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        } else {
            print_compliance(&report);
        }
        return Ok(());
    }
    let answer = match &args.action {
        TrustAction::Show { .. } => client.bonded_get("trust").await,
        TrustAction::Versions => client.bonded_get("trust/versions").await,
        TrustAction::SetPolicy { file } => {
            client
                .bonded_change("trust/policy", token, Some(read(file)?))
                .await
        }
        TrustAction::RemovePolicy => client.bonded_change("trust/policy", token, None).await,
        TrustAction::SetStore { store, file } => {
            client
                .bonded_change(&store_path(store)?, token, Some(read(file)?))
                .await
        }
        TrustAction::RemoveStore { store } => {
            client.bonded_change(&store_path(store)?, token, None).await
        }
    }
    .map_err(|e| e.to_string())?;
    match &args.action {
        TrustAction::Show { .. } | TrustAction::Versions => {
            println!("{}", serde_json::to_string_pretty(&answer).expect("json"))
        }
        _ => {
            // 202: the version is in force, its re-evaluation still running: follow it.
            let answer = match serde_json::from_value::<TrustJobAnswer>(answer.clone()) {
                Ok(job) => follow_job(&client, token, job).await?,
                Err(_) => answer,
            };
            let change: TrustChangeAnswer = serde_json::from_value(answer)
                .map_err(|e| format!("the server's answer is not what this client reads: {e}"))?;
            println!(
                "trust configuration is now version {}; {} stored signature(s) re-evaluated",
                change.version, change.reevaluated_signatures
            );
            print_compliance(&change.noncompliant);
        }
    }
    Ok(())
}

/// Polls `trust/job` until the re-evaluation that `job` started ends; its result.
async fn follow_job(
    client: &RegistryClient,
    token: Option<&str>,
    mut job: TrustJobAnswer,
) -> Result<serde_json::Value, String> {
    let version = job.version;
    eprintln!("trust configuration version {version} is in force; re-evaluating stored signatures in the background");
    loop {
        match job.state.as_str() {
            "running" => {
                eprintln!(
                    "  {} of {} signature(s) so far",
                    job.reevaluated_so_far, job.signatures_found
                );
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                job = client
                    .bonded_get_admin("trust/job", token)
                    .await
                    .map_err(|e| e.to_string())?;
                if job.version != version {
                    return Err(format!(
                        "version {} was recorded meanwhile; its re-evaluation replaces this one's (bonded trust show)",
                        job.version
                    ));
                }
            }
            "done" => {
                let result = job.result.ok_or("the server's job is done but carries no result")?;
                return Ok(serde_json::to_value(result).expect("json"));
            }
            "superseded" => {
                return Err(format!(
                    "version {version} is in force, but a newer change's re-evaluation replaced this one's"
                ))
            }
            _ => {
                return Err(format!(
                    "version {version} is in force, but re-evaluating the stored signatures failed: {}",
                    job.error.unwrap_or_default()
                ))
            }
        }
    }
}

/// The compliance report for people: a count, then a table of the images listed.
fn print_compliance(report: &Compliance) {
    if !report.enforced {
        println!("no trust policy is in force: every image is served, none is checked");
        return;
    }
    if report.noncompliant_tags == 0 {
        println!(
            "all {} published tag(s) meet the trust configuration (version {})",
            report.checked_tags,
            report.trust_version.unwrap_or_default()
        );
        return;
    }
    println!(
        "{} of {} published tag(s) do not meet the trust configuration (version {}):",
        report.noncompliant_tags,
        report.checked_tags,
        report.trust_version.unwrap_or_default()
    );
    let mut table = Table::new(&["IMAGE", "DIGEST", "POLICY", "PULLS", "WHY"]);
    for i in &report.images {
        table.row(vec![
            printable(&format!("{}:{}", i.repository, i.tag)),
            i.digest.clone(),
            printable(i.policy.as_deref().unwrap_or("-")),
            if i.pulls_refused { "refused" } else { "served" }.to_string(),
            printable(&i.reason),
        ]);
    }
    table.print();
    if report.truncated {
        println!(
            "({} more not listed: `bonded trust show --noncompliant --limit N` lists up to {})",
            report.noncompliant_tags - report.images.len() as u64,
            crate::registry::MAX_LISTED
        );
    }
}
