//! `bonded pending`: what a bonded registry holds back in a repository until it is signed
//! enough (pending manifests, tags waiting for them) and what each still needs.

use super::printable;
use super::table::Table;
use crate::client::{ClientOptions, RegistryClient};
use crate::oci::RepositoryName;
use crate::wire::PendingReport;

#[derive(Debug, clap::Args)]
pub struct PendingArgs {
    /// Repository: REGISTRY/REPOSITORY (for example 127.0.0.1:5000/prod/app)
    pub repository: String,
    /// Print the server's answer as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientOptions,
}

/// `REGISTRY/REPOSITORY`, refusing a tag or digest (this lists a whole repository).
fn parse(s: &str) -> Result<(String, RepositoryName), String> {
    let usage =
        || format!("'{s}' is not REGISTRY/REPOSITORY (for example 127.0.0.1:5000/prod/app)");
    let (registry, repo) = s.split_once('/').ok_or_else(usage)?;
    if registry.is_empty()
        || repo.contains('@')
        || repo.rsplit('/').next().is_some_and(|l| l.contains(':'))
    {
        return Err(format!(
            "{}: name the repository without a tag or digest",
            usage()
        ));
    }
    let repo = repo
        .parse::<RepositoryName>()
        .map_err(|e| format!("{}: {e}", usage()))?;
    Ok((registry.to_string(), repo))
}

pub async fn run(args: &PendingArgs) -> Result<(), String> {
    let (registry, repo) = parse(&args.repository)?;
    let client = RegistryClient::connect(&registry, &args.client, Some(&repo), false)
        .await
        .map_err(|e| e.to_string())?;
    let report: PendingReport = client
        .bonded_get_admin(&format!("repositories/{repo}/pending"), None)
        .await
        .map_err(|e| match e {
            crate::client::ClientError::NotFound(_) => format!(
                "{registry} has no /bonded/v1 API: it is not a bonded registry, so nothing is held pending there"
            ),
            e => e.to_string(),
        })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises")
        );
        return Ok(());
    }
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "{registry}/{repo}: {}, {}",
        plural(report.waiting_tags.len(), "waiting tag", "waiting tags"),
        plural(
            report.pending.len(),
            "pending manifest",
            "pending manifests"
        ),
    );
    if !report.waiting_tags.is_empty() {
        let mut t = Table::new(&["TAG", "WAITS FOR", "SINCE", "PUSHED BY", "NEEDS"]);
        for w in &report.waiting_tags {
            t.row(vec![
                printable(&w.tag),
                w.digest.clone(),
                w.since.clone(),
                printable(w.pushed_by.as_deref().unwrap_or("-")),
                printable(&w.needs),
            ]);
        }
        print!("{}", t.render());
    }
    if !report.pending.is_empty() {
        let mut t = Table::new(&["PENDING MANIFEST", "SIZE", "SINCE", "NEEDS"]).right(1);
        for p in &report.pending {
            t.row(vec![
                p.digest.clone(),
                p.size.to_string(),
                p.pending_since.clone(),
                printable(&p.needs),
            ]);
        }
        print!("{}", t.render());
    }
    if report.truncated {
        println!("(lists cut at {} entries each)", crate::wire::PENDING_LIMIT);
    }
    if !report.waiting_tags.is_empty() || !report.pending.is_empty() {
        println!("Sign a digest (`bonded sign {registry}/{repo}@DIGEST ...`) and what waits for it is published once its policy is met.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_repository_is_named_without_tag_or_digest() {
        let (r, n) = parse("127.0.0.1:5000/prod/app").unwrap();
        assert_eq!((r.as_str(), n.as_str()), ("127.0.0.1:5000", "prod/app"));
        for bad in [
            "prod",
            "/prod/app",
            "127.0.0.1:5000/prod/app:v1",
            "127.0.0.1:5000/prod/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "127.0.0.1:5000/Prod",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
