//! `bonded audit`: who pushed, signed, deleted or was refused what, and when; and
//! `bonded audit verify`, which walks the hash chain and reports the first break.

use crate::client::{ClientOptions, RegistryClient};
use crate::db::{ChainHead, Metadata};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    /// One JSON object a line (for a SIEM)
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditVerify>,
    /// The bonded server, HOST[:PORT]
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub registry: String,
    #[arg(long)]
    pub repository: Option<String>,
    /// e.g. "who signed sha256:...": --digest sha256:... --action signature.admit
    #[arg(long)]
    pub digest: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    /// blob.push, manifest.push, tag.push, manifest.pull, signature.admit, signature.refuse,
    /// admission.deny, access.deny, manifest.delete, tag.delete, blob.delete, trust.change,
    /// manifest.expire, login, user.add|remove|passwd, token.create|revoke,
    /// role.grant|revoke, namespace.public|private, quota.set|remove
    #[arg(long)]
    pub action: Option<String>,
    /// ok or denied
    #[arg(long)]
    pub outcome: Option<String>,
    /// RFC 3339 lower bound, e.g. 2026-11-27T00:00:00Z
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339 upper bound
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub client: ClientOptions,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditVerify {
    /// Check the audit trail's hash chain in a data directory (offline)
    Verify {
        #[arg(long, env = "BONDED_DATA_DIR", default_value = "./bonded-data")]
        data_dir: PathBuf,
        /// A head printed by an earlier run (SEQ:HASH), kept outside the server: the trail
        /// must still hold that record unchanged, so removing the newest records is caught
        #[arg(long)]
        anchor: Option<ChainHead>,
    },
}

pub async fn run(args: &AuditArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("bonded audit: {msg}");
        ExitCode::FAILURE
    };
    if let Some(AuditVerify::Verify { data_dir, anchor }) = &args.verify {
        let path = data_dir.join("bonded.db");
        if !path.exists() {
            return fail(format!("{} does not exist", path.display()));
        }
        let db = match Metadata::open_sqlite(&path).await {
            Ok(db) => db,
            Err(e) => return fail(format!("cannot open {}: {e}", path.display())),
        };
        return match db.audit_verify(anchor.as_ref()).await {
            Ok(Ok(None)) => {
                println!("audit trail intact: 0 records");
                ExitCode::SUCCESS
            }
            Ok(Ok(Some(head))) => {
                println!("audit trail intact: {} records", head.seq);
                println!("head: {head}");
                println!("(keep the head outside this server and pass it as --anchor later: the chain alone cannot show that its newest records were removed)");
                ExitCode::SUCCESS
            }
            Ok(Err(first_break)) => fail(format!("audit trail broken: {first_break}")),
            Err(e) => fail(e.to_string()),
        };
    }
    let client = match RegistryClient::connect(&args.registry, &args.client, None, false).await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let mut after: Option<i64> = None;
    if args.output == Output::Table {
        println!(
            "{:>6} {:<24} {:<10} {:<15} {:<16} {:<8} {:<28} WHAT",
            "SEQ", "AT", "ACTOR", "SOURCE", "ACTION", "OUTCOME", "REPOSITORY"
        );
    }
    loop {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("repository", &args.repository),
            ("digest", &args.digest),
            ("actor", &args.actor),
            ("action", &args.action),
            ("outcome", &args.outcome),
            ("since", &args.since),
            ("until", &args.until),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(a) = after {
            q.append_pair("after", &a.to_string());
        }
        q.append_pair("limit", "500");
        let page = match client.bonded_get(&format!("audit?{}", q.finish())).await {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        };
        for r in page["records"].as_array().into_iter().flatten() {
            match args.output {
                Output::Jsonl => println!("{r}"),
                Output::Table => {
                    let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                    let mut what = Vec::new();
                    if let Some(t) = r["tag"].as_str() {
                        what.push(format!("tag {t}"));
                    }
                    if let Some(d) = r["digest"].as_str() {
                        what.push(d.to_string());
                    }
                    if let Some(why) = r["reason"].as_str() {
                        what.push(format!("({why})"));
                    }
                    println!(
                        "{:>6} {:<24} {:<10} {:<15} {:<16} {:<8} {:<28} {}",
                        r["seq"],
                        s("at"),
                        s("actor"),
                        s("source"),
                        s("action"),
                        s("outcome"),
                        s("repository"),
                        what.join(" ")
                    );
                }
            }
        }
        match page["next"].as_i64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    ExitCode::SUCCESS
}
