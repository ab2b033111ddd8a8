//! `bonded trust`: the trust policy and trust stores of a running bonded server, through
//! its admin API.

use crate::client::{ClientOptions, RegistryClient};
use crate::config::Secret;
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
    /// The policy and trust stores in force
    Show,
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
    let answer = match &args.action {
        TrustAction::Show => client.bonded_get("trust").await,
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
        TrustAction::Show | TrustAction::Versions => {
            println!("{}", serde_json::to_string_pretty(&answer).expect("json"))
        }
        _ => println!(
            "trust configuration is now version {}; {} stored signature(s) re-evaluated",
            answer["version"], answer["reevaluatedSignatures"]
        ),
    }
    Ok(())
}
