//! The `bonded` command line: one binary, one subcommand per job.

pub mod accounts;
mod audit;
mod copy;
mod docs;
mod inspect;
mod keygen;
mod lifecycle;
mod login;
mod pending;
mod pkcs11;
mod push;
mod retention;
mod serve;
mod sign;
mod table;
mod trust_cmd;
pub mod truststore;
mod verify;

pub use verify::exit;

#[cfg(test)]
mod tests {
    #[test]
    fn printable_text_cannot_forge_rows_or_move_the_cursor() {
        let p = super::printable;
        assert_eq!(p("alice"), "alice");
        assert_eq!(p("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(p("x\nforged row"), "x\\u{a}forged row");
        assert_eq!(p("x\r"), "x\\u{d}");
        assert_eq!(p("\u{202E}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(
            p("a\\u{1b}"),
            "a\\\\u{1b}",
            "a literal backslash cannot fake an escape"
        );
        assert_eq!(p("Zoë 東京"), "Zoë 東京");
    }
}

use crate::config::ServeArgs;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "bonded",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BONDED_COMMIT"), ")"),
    about = "A trusted OCI container registry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// One value per process, parsed once: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry (OCI Distribution Spec v1.1)
    Serve(ServeArgs),
    /// Make signing material: a root CA, intermediate CAs, signer certificates
    Keygen(keygen::KeygenArgs),
    /// Copy an image from an OCI layout to a registry, optionally signing it on the way
    Push(push::PushArgs),
    /// Sign an image in a registry (Notary Project JWS, pushed as an OCI 1.1 referrer)
    Sign(sign::SignArgs),
    /// Verify an image's signatures against a local trust policy and trust store
    Verify(verify::VerifyArgs),
    /// Show an image's manifest, referrers and (on bonded) stored verdicts
    Inspect(inspect::InspectArgs),
    /// List what a bonded registry holds back until signed: waiting tags, pending manifests
    Pending(pending::PendingArgs),
    /// Show or change a bonded server's trust policy and trust stores
    Trust(trust_cmd::TrustArgs),
    /// Log in to a registry and keep the login where podman and skopeo keep theirs
    Login(login::LoginArgs),
    /// Forget a login kept by `bonded login` (or podman/skopeo login)
    Logout(login::LogoutArgs),
    /// Query the audit trail (who pushed, signed, deleted, was refused) or verify its chain
    Audit(audit::AuditArgs),
    /// Manage users and robots in the server's database: add, list, remove, passwd
    User(accounts::UserArgs),
    /// Manage API tokens for robots and CI: create, list, revoke
    Token(accounts::TokenArgs),
    /// Grant or revoke roles on namespace patterns
    Role(accounts::RoleArgs),
    /// Make namespace patterns public (anonymous pull) or private
    Namespace(accounts::NamespaceArgs),
    /// Set, remove or list storage quotas on namespace patterns
    Quota(accounts::QuotaArgs),
    /// Copy an image with its signatures, SBOMs and other referrers to another repository or registry
    Copy(copy::CopyArgs),
    /// Delete a tag, or an image by digest with its signatures and other referrers
    Delete(lifecycle::DeleteArgs),
    /// Remove what no tag, index or live subject keeps (garbage collection), now
    Gc(lifecycle::GcArgs),
    /// Make tags immutable (never moved or deleted once published): add, remove, list
    Immutable(lifecycle::ImmutableArgs),
    /// Re-hash every stored blob and check the database against the store
    Scrub(lifecycle::ScrubArgs),
    /// Remove old tags and the images only they kept, by rules per repository: set, remove, show, run
    Retention(retention::RetentionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(docs::CompletionArgs),
    /// Print the man page, or write every command's page into a directory
    Man(docs::ManArgs),
}

impl Cli {
    /// Runs the command; the exit code says how it went.
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Serve(args) => {
                let result = serve::run(&args).await.map_err(|e| e.to_string());
                match (result, args.log_format) {
                    // A log pipeline gets the failure as one more JSON line.
                    (Err(e), crate::config::LogFormat::Json) => {
                        tracing::error!(error = %e, "bonded serve failed");
                        ExitCode::FAILURE
                    }
                    (result, _) => done(result),
                }
            }
            Command::Sign(args) => done(sign::run(&args).await),
            Command::Verify(args) => verify::run(&args).await,
            Command::Inspect(args) => done(inspect::run(&args).await),
            Command::Pending(args) => done(pending::run(&args).await),
            Command::Audit(args) => audit::run(&args).await,
            Command::Login(args) => done(login::login(&args).await),
            Command::Logout(args) => done(login::logout(&args).await),
            Command::Trust(args) => done(trust_cmd::run(&args).await),
            Command::Push(args) => done(push::run(&args).await),
            Command::User(args) => done(accounts::user(&args).await),
            Command::Token(args) => done(accounts::token(&args).await),
            Command::Role(args) => done(accounts::role(&args).await),
            Command::Namespace(args) => done(accounts::namespace(&args).await),
            Command::Quota(args) => done(accounts::quota(&args).await),
            Command::Copy(args) => done(copy::run(&args).await),
            Command::Delete(args) => done(lifecycle::delete(&args).await),
            Command::Gc(args) => done(lifecycle::gc(&args).await),
            Command::Immutable(args) => done(lifecycle::immutable(&args).await),
            Command::Scrub(args) => done(lifecycle::scrub(&args).await),
            Command::Retention(args) => done(retention::retention(&args).await),
            Command::Keygen(args) => done(keygen::run(&args)),
            Command::Completion(args) => done(docs::completion(&args)),
            Command::Man(args) => done(docs::man(&args)),
        }
    }
}

/// Text from elsewhere (a client's account name, a certificate's subject, a reason that
/// quotes them) made safe for a terminal and for one table row: control characters
/// (escape sequences, carriage returns, newlines) and the bidirectional-text controls
/// that reorder what a reader sees are written as `\u{..}`, and a backslash as `\\`,
/// so nothing can forge a row, move the cursor or hide text.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control()
                || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Lets a write to a closed pipe end the process (SIGPIPE's default action), as `cat` and
/// `grep` end, instead of failing the write and making `println!` panic.
pub fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to its default, before any other thread runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Success, or the error on standard error and a failing exit code.
fn done(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bonded: {e}");
            ExitCode::FAILURE
        }
    }
}
