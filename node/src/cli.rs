//! The `pluis-node` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{Config, Node};

/// A Pluis partner node.
#[derive(Debug, Parser)]
#[command(name = "pluis-node", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `pluis-node` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC over mutual TLS until SIGTERM or Ctrl-C.
    Serve {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Runs one subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(&config).await,
    }
}

async fn serve(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let node = Node::new(config)?;
    let listener = node.bind().await?;
    // One stable line on stdout, for scripts and test harnesses that bind
    // port 0 and need to know the port.
    println!("listening on https://{}", listener.local_addr()?);
    node.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
