//! `bonded login` and `bonded logout`: keep a registry login where podman and skopeo keep
//! theirs (containers' `auth.json`), so `bonded push|sign|verify|inspect|audit`, podman
//! and skopeo all use it.
//!
//! On a bonded registry a password is not what gets written down: login makes a personal
//! API token (90 days) and keeps that, and logout revokes it on the server, so a copied
//! `auth.json` never holds the password and stops working at logout. Other registries
//! (or `--keep-password`) get the password, as podman and docker keep it.

use crate::auth::token::ApiToken;
use crate::client::{credentials, ClientError, ClientOptions, RegistryClient};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry, HOST[:PORT]
    pub registry: String,
    /// Keep the password itself, even on a bonded registry (instead of an API token)
    #[arg(long)]
    pub keep_password: bool,
    #[command(flatten)]
    pub client: ClientOptions,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry, HOST[:PORT]
    pub registry: String,
    #[command(flatten)]
    pub client: ClientOptions,
}

/// A personal API token for this login, when the registry is bonded; `None` when it is
/// not (it has no `/bonded/v1/account`).
async fn personal_token(client: &RegistryClient) -> Result<Option<ApiToken>, String> {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let body = json!({
        "description": format!("bonded login on {}", host.trim()),
        "expiresInDays": 90,
    });
    match client
        .bonded_request(reqwest::Method::POST, "account/tokens", Some(&body))
        .await
    {
        Ok(answer) => Ok(answer["token"].as_str().and_then(ApiToken::parse)),
        Err(ClientError::NotFound(_)) => Ok(None),
        Err(ClientError::Refused {
            status: 404 | 405, ..
        }) => Ok(None),
        Err(e) => Err(format!("making an API token for this login failed: {e}")),
    }
}

fn auth_file() -> Result<std::path::PathBuf, String> {
    credentials::login_file().ok_or_else(|| {
        "no place to keep logins: set REGISTRY_AUTH_FILE or XDG_RUNTIME_DIR".to_string()
    })
}

/// Checks the credentials against the registry, then stores them.
pub async fn login(args: &LoginArgs) -> Result<(), String> {
    let options = ask_what_is_missing(&args.client)?;
    let client = RegistryClient::connect(&args.registry, &options, None, false)
        .await
        .map_err(|e| e.to_string())?;
    let (user, secret) = client
        .credentials()
        .and_then(|c| c.split_once(':'))
        .ok_or("no credentials were read")?;
    let file = auth_file()?;
    let token = if args.keep_password || ApiToken::parse(secret).is_some() || !client.logged_in() {
        None
    } else {
        personal_token(&client).await?
    };
    let kept = match &token {
        Some(t) => t.to_string(),
        None => secret.to_string(),
    };
    credentials::store(&file, &args.registry, user, &kept, token.is_some())
        .map_err(|e| format!("storing the login in {} failed: {e}", file.display()))?;
    if let Some(t) = &token {
        println!(
            "made API token {} for this login (90 days; `bonded logout` revokes it): the password is not kept",
            t.id
        );
    }
    if client.logged_in() {
        println!(
            "logged in to {} as {user} (kept in {})",
            args.registry,
            file.display()
        );
    } else {
        println!(
            "{} does not ask for a login now; kept the credentials in {} for when it does",
            args.registry,
            file.display()
        );
    }
    Ok(())
}

/// The login's username and password: as given (`--username`, `--password-stdin`), or,
/// as docker and podman do, asked for on the terminal (the password without echo). Off a
/// terminal nothing is asked: what is missing is named.
fn ask_what_is_missing(given: &ClientOptions) -> Result<ClientOptions, String> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let mut options = given.clone();
    let terminal = std::io::stdin().is_terminal();
    if options.username.is_none() {
        if !terminal || options.password_stdin {
            return Err("give --username (standard input is not a terminal to ask on)".into());
        }
        eprint!("Username: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the username: {e}"))?;
        let name = line.trim();
        if name.is_empty() {
            return Err("no username given".into());
        }
        options.username = Some(name.to_string());
    }
    if !options.password_stdin {
        if !terminal {
            return Err(
                "give --password-stdin with the password or an API token on standard \
                 input (standard input is not a terminal to ask on)"
                    .into(),
            );
        }
        let password = rpassword::prompt_password("Password: ")
            .map_err(|e| format!("cannot read the password from the terminal: {e}"))?;
        if password.is_empty() {
            return Err("no password given".into());
        }
        options.password = Some(password);
    }
    Ok(options)
}

pub async fn logout(args: &LogoutArgs) -> Result<(), String> {
    let file = auth_file()?;
    // A token `bonded login` made is revoked on the server first (with itself: revoking
    // one's own token needs no password); a token the user logged in with is left alone.
    // A server out of reach does not keep the login on this machine; it is said, and the
    // token expires on its own.
    let kept = credentials::stored_in(std::slice::from_ref(&file), &args.registry);
    if let Some(token) = kept
        .as_deref()
        .filter(|_| credentials::made_by_login(&file, &args.registry))
        .and_then(|c| c.split_once(':'))
        .and_then(|(_, secret)| ApiToken::parse(secret))
    {
        let revoked = async {
            let client = RegistryClient::connect(&args.registry, &args.client, None, false)
                .await
                .map_err(|e| e.to_string())?;
            client
                .bonded_request(
                    reqwest::Method::DELETE,
                    &format!("account/tokens/{}", token.id),
                    None,
                )
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match revoked {
            Ok(_) => println!("revoked API token {}", token.id),
            Err(e) => eprintln!(
                "bonded: could not revoke API token {} ({e}); it expires on its own, or revoke it with `bonded token revoke {}`",
                token.id, token.id
            ),
        }
    }
    let removed = credentials::forget(&file, &args.registry)
        .map_err(|e| format!("changing {} failed: {e}", file.display()))?;
    if removed {
        println!(
            "logged out of {} (removed from {})",
            args.registry,
            file.display()
        );
        Ok(())
    } else {
        Err(format!(
            "not logged in to {} in {} (docker's logins are removed with `docker logout`)",
            args.registry,
            file.display()
        ))
    }
}
