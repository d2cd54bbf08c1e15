//! `pluis`: parses arguments and calls one function per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pluis_client::certs::{self, InitOptions};
use pluis_client::connect::TlsArgs;
use pluis_proto::Role;

/// Pluis: combine signals across partner organisations, without sharing records.
#[derive(Debug, Parser)]
#[command(name = "pluis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The development PKI.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Show a node's org, version, uptime and peer reachability.
    Status {
        /// The node, as https://HOST:PORT.
        #[arg(long, value_name = "URL")]
        node: String,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Ask which life domains show signals for a case's persons, across partners.
    Match {
        /// Your own organisation's node, as https://HOST:PORT.
        #[arg(long, value_name = "URL")]
        node: String,
        /// The purpose (must be in your node's and the partners' policies).
        #[arg(long)]
        purpose: String,
        /// A person: KEY or KEY;KEY (bsn:DIGITS, nd:SURNAME,INITIAL,YYYY-MM-DD). Repeatable.
        #[arg(long = "subject", value_name = "KEYS")]
        subjects: Vec<String>,
        /// A case file: CSV with columns label,key.
        #[arg(long, value_name = "FILE")]
        case: Option<PathBuf>,
        /// Print the documented JSON form.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Bulk screening: your node's active keys against every partner's table.
    Screen {
        /// Your own organisation's node, as https://HOST:PORT.
        #[arg(long, value_name = "URL")]
        node: String,
        /// The purpose (must be in your node's and the partners' policies).
        #[arg(long)]
        purpose: String,
        /// List cases with signals in at least this many life domains.
        #[arg(long, default_value_t = 3)]
        min_domains: u32,
        /// Write the hits to this CSV file (mode 0600) instead of printing them.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Run a local demo consortium: certificates, four nodes, status, shutdown.
    Demo {
        /// Keep the consortium (certificates, configs) in this new directory.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create a consortium CA and node, coordinator and auditor certificates per org.
    Init {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Consortium name (the SPIFFE trust domain).
        #[arg(long, value_name = "NAME")]
        consortium: String,
        /// An organisation id; repeat for each.
        #[arg(long = "org", value_name = "ORG", required = true)]
        orgs: Vec<String>,
        /// Replace an existing dev PKI in DIR.
        #[arg(long)]
        force: bool,
    },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Certs {
            command:
                CertsCommand::Init {
                    out,
                    consortium,
                    orgs,
                    force,
                },
        } => {
            let issued = certs::init(&InitOptions {
                out,
                consortium,
                orgs,
                force,
            })?;
            println!(
                "CA: {} (key {})",
                issued.ca_cert.display(),
                issued.ca_key.display()
            );
            for leaf in issued.leaves {
                println!("{}: {}", leaf.id, leaf.cert.display());
            }
            Ok(())
        }
        Command::Status { node, tls } => {
            let identity = tls.load(Role::Coordinator)?;
            let status = pluis_client::status::fetch(&node, &identity).await?;
            print!("{}", pluis_client::status::render(&status));
            Ok(())
        }
        Command::Match {
            node,
            purpose,
            subjects,
            case,
            json,
            tls,
        } => {
            use pluis_client::matching;
            let identity = tls.load(Role::Coordinator)?;
            let mut all = matching::subjects_from_args(&subjects);
            if let Some(case) = case {
                all.extend(matching::subjects_from_case_file(&case)?);
            }
            let response = matching::query(&node, &identity, &purpose, all).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&matching::to_json(&purpose, &response))?
                );
            } else {
                print!("{}", matching::render(&response));
            }
            Ok(())
        }
        Command::Screen {
            node,
            purpose,
            min_domains,
            out,
            tls,
        } => {
            use pluis_client::screen;
            let identity = tls.load(Role::Coordinator)?;
            let response = screen::run(&node, &identity, &purpose, min_domains).await?;
            match out {
                Some(path) => {
                    screen::write_csv(&path, &response)?;
                    println!(
                        "{} cases written to {}",
                        response.hits.len(),
                        path.display()
                    );
                }
                None => print!("{}", screen::render(&response)),
            }
            Ok(())
        }
        Command::Demo { keep } => pluis_client::demo::run(keep).await,
    }
}

fn main() -> ExitCode {
    // Exactly one crypto provider, ring, before any TLS object exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
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
