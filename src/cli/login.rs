//! `bonded login` and `bonded logout`: keep a registry login where podman and skopeo keep
//! theirs (containers' `auth.json`), so `bonded push|sign|verify|inspect|audit`, podman
//! and skopeo all use it.

use crate::client::{credentials, ClientOptions, RegistryClient};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry, HOST[:PORT]
    pub registry: String,
    #[command(flatten)]
    pub client: ClientOptions,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry, HOST[:PORT]
    pub registry: String,
}

fn auth_file() -> Result<std::path::PathBuf, String> {
    credentials::login_file().ok_or_else(|| {
        "no place to keep logins: set REGISTRY_AUTH_FILE or XDG_RUNTIME_DIR".to_string()
    })
}

/// Checks the credentials against the registry, then stores them.
pub async fn login(args: &LoginArgs) -> Result<(), String> {
    if args.client.username.is_none() {
        return Err(
            "give --username and --password-stdin (the password or an API token on standard input)"
                .into(),
        );
    }
    let client = RegistryClient::connect(&args.registry, &args.client, None, false)
        .await
        .map_err(|e| e.to_string())?;
    let (user, secret) = client
        .credentials()
        .and_then(|c| c.split_once(':'))
        .ok_or("no credentials were read")?;
    let file = auth_file()?;
    credentials::store(&file, &args.registry, user, secret)
        .map_err(|e| format!("storing the login in {} failed: {e}", file.display()))?;
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

pub async fn logout(args: &LogoutArgs) -> Result<(), String> {
    let file = auth_file()?;
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
