//! `bonded inspect`: an image's manifest, its referrers and, on a bonded server, the
//! verification verdicts it stored.

use crate::client::{ClientError, ClientOptions, ImageRef, RegistryClient};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Image: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST
    pub reference: String,
    #[command(flatten)]
    pub client: ClientOptions,
}

pub async fn run(args: &InspectArgs) -> Result<(), String> {
    let image: ImageRef = args.reference.parse()?;
    let client = RegistryClient::connect(
        &image.registry,
        &args.client,
        Some(&image.repository),
        false,
    )
    .await
    .map_err(|e| e.to_string())?;
    let repo = &image.repository;
    let (bytes, media_type, digest) = client
        .manifest(repo, &image.reference)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}/{repo}@{digest}", image.registry);
    println!("  media type: {media_type}, {} bytes", bytes.len());
    let referrers = client
        .referrers(repo, &digest, None)
        .await
        .map_err(|e| e.to_string())?;
    println!("  referrers: {}", referrers.len());
    for r in &referrers {
        println!("    {} {}", r.digest, r.media_type);
    }
    match client
        .bonded_get(&format!("repositories/{repo}/signatures/{digest}"))
        .await
    {
        Ok(store) => {
            match store["verdict"].as_object() {
                Some(v) => println!(
                    "  verdict (policy '{}'): {} — {}",
                    v.get("policy").and_then(|p| p.as_str()).unwrap_or("none"),
                    if v.get("admitted").and_then(|a| a.as_bool()) == Some(true) {
                        "admitted"
                    } else {
                        "NOT admitted"
                    },
                    v.get("reason").and_then(|r| r.as_str()).unwrap_or("")
                ),
                None => println!("  verdict: the server enforces no trust policy"),
            }
            for s in store["signatures"].as_array().into_iter().flatten() {
                println!(
                    "    {} signer '{}' {} signed {} — {}",
                    s["digest"].as_str().unwrap_or(""),
                    s["signer"].as_str().unwrap_or("?"),
                    s["algorithm"].as_str().unwrap_or("?"),
                    s["signingTime"].as_str().unwrap_or("?"),
                    if s["accepted"].as_bool() == Some(true) {
                        "accepted"
                    } else {
                        "rejected"
                    }
                );
            }
        }
        Err(ClientError::NotFound(_)) => println!("  (not a bonded registry: no stored verdicts)"),
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}
