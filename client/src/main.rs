//! `pluis`: parses arguments ([`pluis_client::cli`]) and hands each
//! subcommand to its role's folder; nothing else.

use std::process::ExitCode;

use clap::Parser;
use pluis_client::cli::{Cli, Command};
use pluis_client::{auditor, coordinator, dev, ui};

/// Hands each subcommand to its role's folder.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Status(args) => coordinator::run_status(args).await,
        Command::Match(args) => coordinator::run_match(args).await,
        Command::Screen(args) => coordinator::run_screen(args).await,
        Command::Ui(args) => ui::run(args).await,
        Command::Audit { command } => auditor::run(command).await,
        Command::Certs { command } => dev::run_certs(command),
        Command::Demo(args) => dev::run_demo(args).await,
    }
}

fn main() -> ExitCode {
    pluis_transport::process::setup("warn");
    let cli = Cli::parse();
    pluis_transport::process::block_on("pluis", run(cli))
}
