//! `bonded audit`: who pushed, signed, deleted or was refused what, and when; and
//! `bonded audit verify`, which walks the hash chain and reports the first break.

use crate::client::{ClientOptions, RegistryClient};
use crate::db::{format_at, parse_time, ChainHead, Metadata};
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
    /// What the records are about (one of the listed actions)
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::db::AuditAction::names()))]
    pub action: Option<String>,
    /// ok or denied
    #[arg(long)]
    pub outcome: Option<String>,
    /// From when (inclusive): an age (90m, 24h, 7d), today or yesterday (from midnight
    /// UTC), a date (2026-11-27, midnight UTC) or RFC 3339 (2026-11-27T09:00:00+01:00)
    #[arg(long)]
    pub since: Option<String>,
    /// Until when (inclusive, to the second): the same forms as --since
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
        /// The server's PostgreSQL database (postgres://...) instead of the data
        /// directory's bonded.db
        #[arg(long, env = "BONDED_DATABASE_URL", value_name = "URL")]
        database_url: Option<String>,
        /// A head printed by an earlier run (SEQ:HASH), kept outside the server: the trail
        /// must still hold that record unchanged, so removing the newest records is caught
        #[arg(long)]
        anchor: Option<ChainHead>,
        /// Archive files `bonded audit archive` wrote, oldest first: each is checked, and
        /// together with the live trail they must form one chain
        #[arg(long = "archive")]
        archives: Vec<PathBuf>,
    },
    /// Move the records made before a time to a file (offline, on the data directory):
    /// the file keeps them checkable by `audit verify --archive`, and the live chain
    /// continues from a recorded checkpoint
    Archive {
        #[arg(long, env = "BONDED_DATA_DIR", default_value = "./bonded-data")]
        data_dir: PathBuf,
        /// The server's PostgreSQL database (postgres://...) instead of the data
        /// directory's bonded.db
        #[arg(long, env = "BONDED_DATABASE_URL", value_name = "URL")]
        database_url: Option<String>,
        /// Records made before this are moved: an age (90d), a date (2026-01-01, midnight
        /// UTC) or RFC 3339
        #[arg(long)]
        before: String,
        /// The file to write (must not exist)
        #[arg(long)]
        to: PathBuf,
    },
}

/// `bonded audit archive`.
async fn archive(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    before: &str,
    to: &std::path::Path,
) -> Result<String, String> {
    let before = resolve_time(before, time::OffsetDateTime::now_utc())
        .map_err(|e| format!("--before: {e}"))?;
    let db = Metadata::open_existing(data_dir, database_url).await?;
    match archive_to(&db, before, to, &super::accounts::operator()).await? {
        Some(done) => Ok(format!(
            "archived records {}..{} to {}\nthe live trail continues from {}",
            done.first,
            done.last.seq,
            to.display(),
            done.last
        )),
        None => Ok("nothing to archive: no record was made before then".into()),
    }
}

/// Moves the records made before `before` to the new file `to` (synced before the live
/// trail lets go of them); `None`, and no file, when there were none. For `bonded audit
/// archive` and `serve --audit-archive-after`.
pub async fn archive_to(
    db: &Metadata,
    before: time::OffsetDateTime,
    to: &std::path::Path,
    actor: &str,
) -> Result<Option<crate::db::Archived>, String> {
    // Written as `<to>.partial` and named `to` only once the records have left the live
    // trail: a file under its final name is always a whole archive.
    if to.exists() {
        return Err(format!("{} exists already", to.display()));
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let result = db
        .audit_archive(before, actor, &to.display().to_string(), &mut out)
        .await
        .map_err(|e| e.to_string());
    let file = out.into_inner().map_err(|e| e.to_string())?;
    let outcome = match result {
        Ok(Ok(Some(done))) => {
            file.sync_all()
                .and_then(|()| std::fs::rename(&partial, to))
                .map_err(|e| {
                    format!(
                        "the records were archived to {}, but naming it {} failed: {e}",
                        partial.display(),
                        to.display()
                    )
                })?;
            return Ok(Some(done));
        }
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) | Err(e) => Err(e),
    };
    drop(file);
    let _ = std::fs::remove_file(&partial);
    outcome
}

/// Checks archive files in order and that they end where the live trail's checkpoint says.
fn verify_archives(
    archives: &[PathBuf],
    checkpoint: Option<&crate::db::Checkpoint>,
    anchor: Option<&ChainHead>,
) -> Result<String, String> {
    let mut end: Option<ChainHead> = None;
    for path in archives {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (first, prev, last) = crate::db::verify_archive(std::io::BufReader::new(f), anchor)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (want_first, want_prev) = match &end {
            None => (1, crate::db::audit_genesis().to_string()),
            Some(h) => (h.seq + 1, h.hash.clone()),
        };
        if first != want_first || prev != want_prev {
            return Err(format!(
                "{} starts at record {first}, not at {want_first} where the chain before it ends",
                path.display()
            ));
        }
        end = Some(last);
    }
    match (end, checkpoint) {
        (None, _) => Ok(String::new()),
        (Some(e), Some(c)) if e.seq == c.seq && e.hash == c.hash => Ok(format!(
            "archives intact: records 1..{} in {} file(s)\n",
            e.seq,
            archives.len()
        )),
        (Some(e), Some(c)) => Err(format!(
            "the archives end at {e}, but the live trail continues from {}:{}",
            c.seq, c.hash
        )),
        (Some(_), None) => Err("archives were given, but the trail has no checkpoint".into()),
    }
}

pub async fn run(args: &AuditArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("bonded audit: {msg}");
        ExitCode::FAILURE
    };
    if let Some(AuditVerify::Archive {
        data_dir,
        database_url,
        before,
        to,
    }) = &args.verify
    {
        return match archive(data_dir, database_url.as_deref(), before, to).await {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    if let Some(AuditVerify::Verify {
        data_dir,
        database_url,
        anchor,
        archives,
    }) = &args.verify
    {
        let db = match Metadata::open_existing(data_dir, database_url.as_deref()).await {
            Ok(db) => db,
            Err(e) => return fail(e),
        };
        let checkpoint = match db.audit_checkpoint().await {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        let archived = match verify_archives(archives, checkpoint.as_ref(), anchor.as_ref()) {
            Ok(msg) => msg,
            Err(e) => return fail(format!("audit archive broken: {e}")),
        };
        if let (Some(c), Some(a)) = (&checkpoint, anchor) {
            if a.seq < c.seq && archives.is_empty() {
                return fail(format!(
                    "the anchor names record {}, which was archived (records 1..{} are in {}): pass --archive to check it",
                    a.seq, c.seq, c.file
                ));
            }
        }
        print!("{archived}");
        if let (Some(c), true) = (&checkpoint, archives.is_empty()) {
            println!(
                "records 1..{} were archived to {} on {} (pass --archive to check them); the live trail starts at {}",
                c.seq,
                c.file,
                c.archived_at,
                c.seq + 1
            );
        }
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
    let now = time::OffsetDateTime::now_utc();
    let mut bounds = [None, None];
    for (bound, (flag, given)) in bounds
        .iter_mut()
        .zip([("--since", &args.since), ("--until", &args.until)])
    {
        if let Some(given) = given {
            match resolve_time(given, now) {
                Ok(t) => *bound = Some(format_at(t)),
                Err(e) => return fail(format!("{flag}: {e}")),
            }
        }
    }
    let [since, until] = bounds;
    let client = match RegistryClient::connect(&args.registry, &args.client, None, false).await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let mut after: Option<i64> = None;
    // A table is laid out per page of records (500), so a long trail starts printing at
    // once; each page repeats no header.
    let mut first_page = true;
    loop {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("repository", &args.repository),
            ("digest", &args.digest),
            ("actor", &args.actor),
            ("action", &args.action),
            ("outcome", &args.outcome),
            ("since", &since),
            ("until", &until),
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
        let mut table = super::table::Table::new(&[
            "SEQ",
            "AT",
            "ACTOR",
            "SOURCE",
            "ACTION",
            "OUTCOME",
            "REPOSITORY",
            "WHAT",
        ])
        .right(0);
        for r in page["records"].as_array().into_iter().flatten() {
            match args.output {
                Output::Jsonl => println!("{r}"),
                Output::Table => {
                    // Names and reasons come from clients: escaped for the terminal.
                    let s = |k: &str| super::printable(r[k].as_str().unwrap_or("-"));
                    let mut what = Vec::new();
                    if let Some(t) = r["tag"].as_str() {
                        what.push(format!("tag {}", super::printable(t)));
                    }
                    if let Some(d) = r["digest"].as_str() {
                        what.push(super::printable(d));
                    }
                    if let Some(why) = r["reason"].as_str() {
                        what.push(format!("({})", super::printable(why)));
                    }
                    table.row(vec![
                        r["seq"].to_string(),
                        s("at"),
                        s("actor"),
                        s("source"),
                        s("action"),
                        s("outcome"),
                        s("repository"),
                        what.join(" "),
                    ]);
                }
            }
        }
        if args.output == Output::Table && (first_page || !table.is_empty()) {
            let text = table.render();
            // The header line only once, on the first page.
            let body = if first_page {
                text.as_str()
            } else {
                text.split_once('\n').map_or("", |(_, rest)| rest)
            };
            print!("{body}");
        }
        first_page = false;
        match page["next"].as_i64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    ExitCode::SUCCESS
}

/// A time as people write it on a command line, relative to `now`: an age (`90m`, `24h`,
/// `7d`, `2w`), `today` or `yesterday` (UTC midnights), or what [`parse_time`] reads.
fn resolve_time(s: &str, now: time::OffsetDateTime) -> Result<time::OffsetDateTime, String> {
    let s = s.trim();
    let midnight = now.date().midnight().assume_utc();
    match s {
        "now" => return Ok(now),
        "today" => return Ok(midnight),
        "yesterday" => return Ok(midnight - time::Duration::DAY),
        _ => {}
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let unit = match unit {
        "s" => Some(time::Duration::SECOND),
        "m" => Some(time::Duration::MINUTE),
        "h" => Some(time::Duration::HOUR),
        "d" => Some(time::Duration::DAY),
        "w" => Some(time::Duration::WEEK),
        _ => None,
    };
    match (n.parse::<i32>(), unit) {
        (Ok(n), Some(unit)) => now
            .checked_sub(unit * n)
            .ok_or_else(|| format!("'{s}' reaches too far back")),
        _ => {
            parse_time(s).map_err(|e| format!("{e}, an age (90m, 24h, 7d, 2w), today or yesterday"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn command_line_times_are_ages_named_days_dates_or_rfc3339() {
        let now = datetime!(2026-11-27 16:53:05 UTC);
        let t = |s: &str| resolve_time(s, now).map(format_at);
        assert_eq!(t("90m").unwrap(), "2026-11-27T15:23:05.000Z");
        assert_eq!(t("24h").unwrap(), "2026-11-26T16:53:05.000Z");
        assert_eq!(t("7d").unwrap(), "2026-11-20T16:53:05.000Z");
        assert_eq!(t("2w").unwrap(), "2026-11-13T16:53:05.000Z");
        assert_eq!(t("today").unwrap(), "2026-11-27T00:00:00.000Z");
        assert_eq!(t("yesterday").unwrap(), "2026-11-26T00:00:00.000Z");
        assert_eq!(t("2026-11-01").unwrap(), "2026-11-01T00:00:00.000Z");
        assert_eq!(
            t("2026-11-27T09:00:00+01:00").unwrap(),
            "2026-11-27T08:00:00.000Z"
        );
        for bad in ["", "7", "7y", "d", "last week", "-1d"] {
            let e = t(bad).unwrap_err();
            assert!(e.contains("an age"), "{bad}: {e}");
        }
    }
}
