//! The pull journal: how a pull is recorded without making it wait for a database commit.
//!
//! A manifest pull served from memory takes about 0.1 ms; a SQLite commit takes longer.
//! So each pull record is appended to a journal file with one `write(2)` before the
//! response is sent (the kernel holds it from then on: a crash of bonded cannot lose it,
//! the same durability as a commit under `synchronous=NORMAL`), and a background task
//! moves the journal into the hash-chained `audit_log` every second. On start, journal
//! files left by a crash are imported first. Each file is imported in one transaction
//! together with its name in `audit_imports`, so a crash between importing and deleting
//! it never imports it twice.
//!
//! Records of a file are chained when imported, so a pull's sequence number can come
//! after records of actions up to a second younger; its `at` is the time of the pull.

use super::{audit, now, AuditEvent, Metadata, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Journal {
    dir: PathBuf,
    /// The file being appended to, and its name.
    current: Mutex<(std::fs::File, String)>,
}

fn new_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Names sort in creation order; the random part keeps them unique across restarts.
    format!("{nanos:024}-{}.jsonl", uuid::Uuid::new_v4().simple())
}

fn create(dir: &Path) -> std::io::Result<(std::fs::File, String)> {
    let name = new_name();
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.join(&name))?;
    Ok((f, name))
}

impl Journal {
    /// Opens the journal in `dir`, importing what a previous run left there.
    pub async fn open(dir: &Path, db: &Metadata) -> Result<Journal> {
        std::fs::create_dir_all(dir)?;
        import_closed(dir, None, db).await?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            current: Mutex::new(create(dir)?),
        })
    }

    /// Appends a record; it is in the kernel's hands when this returns.
    pub fn record(&self, event: &AuditEvent) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.0.write_all(&line)
    }

    /// Moves what was journaled so far into the audit trail (and any file an earlier
    /// drain failed to import).
    pub async fn drain(&self, db: &Metadata) -> Result<()> {
        let current = {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if current.0.metadata()?.len() > 0 {
                *current = create(&self.dir)?;
            }
            current.1.clone()
        };
        import_closed(&self.dir, Some(&current), db).await
    }
}

/// Imports every journal file in `dir` but `current`, oldest first.
async fn import_closed(dir: &Path, current: Option<&str>, db: &Metadata) -> Result<()> {
    let mut closed: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jsonl") && Some(n.as_str()) != current)
        .collect();
    closed.sort();
    for name in closed {
        import(dir, &name, db).await?;
    }
    Ok(())
}

/// Imports one closed journal file in one transaction, then deletes it.
async fn import(dir: &Path, name: &str, db: &Metadata) -> Result<()> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path)?;
    let mut events = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<AuditEvent>(line) {
            Ok(e) => events.push(e),
            // Only a crash in the middle of a write leaves a torn line (its pull was never
            // answered); anything else in the file is kept.
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping a torn pull-journal line")
            }
        }
    }
    let mut tx = super::begin_write(&db.write).await?;
    let done = sqlx::query(
        "INSERT INTO audit_imports (name, imported_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 0;
    if !done {
        audit::append(&mut tx, &events).await?;
    }
    tx.commit().await?;
    std::fs::remove_file(&path)?;
    Ok(())
}
