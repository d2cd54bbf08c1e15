//! `pluis`: parses arguments ([`pluis_client::cli`]) and hands each
//! subcommand to its role's folder; nothing else.

use std::process::ExitCode;

use clap::Parser;
use pluis_client::cli::{Cli, Command};
use pluis_client::{auditor, coordinator, dev};

/// Hands each subcommand to its role's folder.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Status(args) => coordinator::run_status(args).await,
        Command::Match(args) => coordinator::run_match(args).await,
        Command::Screen(args) => coordinator::run_screen(args).await,
        Command::Audit { command } => auditor::run(command).await,
        Command::Certs { command } => dev::run_certs(command),
        Command::Demo(args) => dev::run_demo(args).await,
    }
}

fn main() -> ExitCode {
    // Files this process makes (sled's among them) are its owner's only.
    #[cfg(unix)]
    // SAFETY: umask(2) only sets this process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    // Exactly one crypto provider, ring, before any TLS object exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pluis: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pluis: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
