//! How every Pluis program starts and ends: files it makes are its
//! owner's only, ring is the one crypto provider, logs go to stderr
//! (coloured only for a person at a terminal), and an error ends it with
//! one line and a failing exit code. `pluis-node` and `pluis` both begin
//! with [`setup`] and end with [`block_on`].

use std::future::Future;
use std::process::ExitCode;

/// Sets the process up before anything else runs: umask 077, the ring
/// crypto provider, and logs at `default_log` unless `RUST_LOG` says
/// otherwise.
pub fn setup(default_log: &str) {
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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs `work` to its end on a multi-threaded runtime; an error is
/// printed as `PROGRAM: error: …` (with its causes) and fails the process.
pub fn block_on<E: std::fmt::Display>(
    program: &str,
    work: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{program}: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A request to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM — the future
/// says which — with the handlers installed now. Call it before printing
/// what a person or a script answers with a signal (a listening address,
/// a launch link), so that the signal cannot arrive unhandled and end the
/// program before its clean stop. (`tokio::signal::ctrl_c` installs its
/// handler only when first awaited.)
pub fn stop_requested(
) -> std::io::Result<std::pin::Pin<Box<dyn Future<Output = &'static str> + Send>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(Box::pin(async move {
            tokio::select! {
                _ = interrupt.recv() => "Ctrl-C",
                _ = terminate.recv() => "SIGTERM",
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }))
    }
}
