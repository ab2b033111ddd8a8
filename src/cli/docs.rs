//! `bonded completion SHELL` and `bonded man`: shell completions and man pages made from
//! the command-line definition itself, so they list exactly the commands and options the
//! binary takes.

use clap::CommandFactory;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for. Install, e.g.:
    /// bash: `bonded completion bash > ~/.local/share/bash-completion/completions/bonded`;
    /// zsh: `bonded completion zsh > ~/.zfunc/_bonded` (with ~/.zfunc in fpath);
    /// fish: `bonded completion fish > ~/.config/fish/completions/bonded.fish`
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write every page (bonded.1, bonded-verify.1, bonded-trust-show.1, ...) into this
    /// directory instead of printing bonded(1) on standard output
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn completion(args: &CompletionArgs) -> Result<(), String> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "bonded", &mut std::io::stdout());
    Ok(())
}

pub fn man(args: &ManArgs) -> Result<(), String> {
    let cmd = super::Cli::command();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
            Ok(())
        }
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| format!("cannot write the man page: {e}")),
    }
}
