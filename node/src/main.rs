//! `pluis-node`: parses arguments and hands over to [`pluis_node::cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    pluis_transport::process::setup("info");
    let cli = pluis_node::cli::Cli::parse();
    pluis_transport::process::block_on("pluis-node", pluis_node::cli::run(cli))
}
