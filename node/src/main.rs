//! `pluis-node`: parses arguments and hands over to [`pluis_node::cli::run`].

use std::process::ExitCode;

use clap::Parser;

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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = pluis_node::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pluis-node: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pluis_node::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pluis-node: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
