//! The `bonded` command line: one binary, one subcommand per job.

mod serve;

use crate::config::ServeArgs;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bonded", version, about = "A trusted OCI container registry")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry (OCI Distribution Spec v1.1)
    Serve(ServeArgs),
}

impl Cli {
    pub async fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self.command {
            Command::Serve(args) => serve::run(&args).await,
        }
    }
}
