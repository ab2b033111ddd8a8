use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = bonded::cli::Cli::parse();
    let serving = matches!(cli.command, bonded::cli::Command::Serve(_));
    if !serving {
        // A command writing to a closed pipe (`bonded audit | head`) ends quietly, as
        // other Unix tools do, instead of panicking in println!. The server keeps Rust's
        // default (SIGPIPE ignored): its sockets must never kill it.
        bonded::cli::restore_sigpipe();
    }
    // The server logs (info unless BONDED_LOG says otherwise); the other commands say
    // what they have to say in their own words and log nothing unless asked to, so no
    // library's log line (a TLS error, say) gets in front of the message that explains it.
    let default = if serving { "info" } else { "off" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BONDED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let json = matches!(&cli.command, bonded::cli::Command::Serve(a) if a.log_format == bonded::config::LogFormat::Json);
    // Lines are written by a thread of their own (tracing-appender), so a request never
    // waits for a write(2) to standard error: one info line per request written inline
    // cost manifest GETs a quarter of their rate. Not lossy: when the writer falls behind,
    // loggers wait rather than lines vanish. Flushed when `_flush` drops, at exit.
    let (writer, _flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        // One object per line, fields flattened beside the message, for log pipelines.
        log.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        // Colour only for a person at a terminal, never into a file or a pipe.
        log.with_ansi(std::io::stderr().is_terminal()).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bonded: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli.run())
}
