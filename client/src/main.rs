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
    /// Inspect and verify a node's signed exchange log (auditor role).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run a local demo consortium: certificates, nodes, a case query, audit.
    Demo {
        /// Keep the consortium (certificates, configs) in this new directory.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print and verify the node's latest signed checkpoint.
    Checkpoint {
        /// The node.
        #[arg(long, value_name = "URL")]
        node: String,
        /// The log's verifier key (`pluis-node pubkey`); else the saved
        /// one's, else the node's own word for it.
        #[arg(long, value_name = "KEY")]
        pubkey: Option<String>,
        /// A checkpoint saved earlier: prove the new one consistent with it.
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
        /// Save the new checkpoint here, for a later --since.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Write the node's whole log (entries, checkpoints, key) to a bundle.
    Export {
        /// The node.
        #[arg(long, value_name = "URL")]
        node: String,
        /// The bundle file (JSON Lines).
        #[arg(long, value_name = "BUNDLE")]
        out: PathBuf,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Verify a bundle offline; points to the first bad entry.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// The log's verifier key (`pluis-node pubkey`); else the bundle's.
        #[arg(long, value_name = "KEY")]
        pubkey: Option<String>,
    },
    /// Match every exchange between two organisations on both sides.
    CrossCheck {
        /// One organisation's bundle.
        a: PathBuf,
        /// The other's.
        b: PathBuf,
    },
    /// Write one self-contained HTML page (charts, flags) from bundles.
    Report {
        /// The bundles (each verified first).
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
        /// The HTML file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a log's entries as a table (verified first), from a bundle
    /// or straight from a node.
    Show {
        /// The bundle.
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        bundle: Option<PathBuf>,
        /// Or the node to read the log from (with --ca --cert --key of an
        /// auditor, or PLUIS_CA, PLUIS_CERT, PLUIS_KEY).
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        /// The consortium CA certificate (PEM), with --node.
        #[arg(long, env = "PLUIS_CA", value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Your certificate (PEM), with --node.
        #[arg(long, env = "PLUIS_CERT", value_name = "FILE")]
        cert: Option<PathBuf>,
        /// Your private key (PEM), with --node.
        #[arg(long, env = "PLUIS_KEY", value_name = "FILE")]
        key: Option<PathBuf>,
        /// Only entries from this UTC date on (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only exchanges with this organisation.
        #[arg(long, value_name = "ORG")]
        peer: Option<String>,
        /// Only this purpose.
        #[arg(long)]
        purpose: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The log's verifier key; else the bundle's.
        #[arg(long, value_name = "KEY")]
        pubkey: Option<String>,
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
    /// Issue a new certificate and key for one identity from the dev CA
    /// (a replacement laptop, a node's rotated key); by default over the
    /// identity's usual files.
    Issue {
        /// The dev PKI directory (its ca.pem and ca.key).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The organisation.
        #[arg(long, value_name = "ORG")]
        org: String,
        /// node, coordinator or auditor.
        #[arg(long, value_name = "ROLE")]
        role: Role,
        /// Write OUT.pem and OUT.key instead of DIR/ORG/ROLE.pem and .key.
        #[arg(long, value_name = "OUT")]
        out: Option<PathBuf>,
    },
    /// Revoke certificates: add them to the CRL signed by the dev CA
    /// (DIR/crl.pem). Nodes that name it in `[tls] crls` refuse them once
    /// reloaded (`pluis-node reload`, or SIGHUP).
    #[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["serial", "cert"])))]
    Revoke {
        /// The dev PKI directory (its ca.pem and ca.key).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A serial to revoke (hex, as `openssl x509 -serial` shows it); repeatable.
        #[arg(long, value_name = "HEX", value_parser = parse_serial)]
        serial: Vec<pluis_proto::Serial>,
        /// A certificate file to revoke; repeatable.
        #[arg(long, value_name = "FILE")]
        cert: Vec<PathBuf>,
        /// Why.
        #[arg(long, value_enum, default_value = "key-compromise")]
        reason: certs::Reason,
        /// The CRL to extend (default: DIR/crl.pem).
        #[arg(long, value_name = "FILE")]
        crl: Option<PathBuf>,
    },
}

fn parse_serial(text: &str) -> Result<pluis_proto::Serial, String> {
    pluis_proto::Serial::parse_hex(text).map_err(|e| e.to_string())
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
            let issued_dir = out.clone();
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
            println!("CRL (empty): {}", certs::crl_path(&issued_dir).display());
            Ok(())
        }
        Command::Certs {
            command:
                CertsCommand::Issue {
                    dir,
                    org,
                    role,
                    out,
                },
        } => {
            let issued = certs::issue(&certs::IssueOptions {
                dir,
                org,
                role,
                out,
            })?;
            println!(
                "{}: {} (key {})",
                issued.id,
                issued.cert.display(),
                issued.key.display()
            );
            Ok(())
        }
        Command::Certs {
            command:
                CertsCommand::Revoke {
                    dir,
                    serial,
                    cert,
                    reason,
                    crl,
                },
        } => {
            let revoked = certs::revoke(&certs::RevokeOptions {
                dir,
                serials: serial,
                certs: cert,
                reason,
                crl,
            })?;
            for (serial, id) in &revoked.added {
                match id {
                    Some(id) => println!("revoked serial {serial} ({id})"),
                    None => println!("revoked serial {serial}"),
                }
            }
            println!(
                "{}: CRL number {}, {} certificates revoked in all; reload the nodes that load it",
                revoked.crl.display(),
                revoked.number,
                revoked.total
            );
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
        Command::Audit { command } => run_audit(command).await,
        Command::Demo { keep } => pluis_client::run_demo(keep).await,
    }
}

/// A bundle, verified against its own key: log, key, origin.
fn verified_bundle(
    path: &std::path::Path,
) -> anyhow::Result<(
    pluis_proto::log::VerifiedLog,
    pluis_proto::log::NoteVerifier,
    String,
)> {
    let bundle = pluis_client::audit::read_bundle(path)?;
    let verified = pluis_client::audit::verify(&bundle, None)
        .map_err(|e| anyhow::anyhow!("{}: verification FAILED: {e:#}", path.display()))?;
    let key = bundle.verifier_key.parse()?;
    Ok((verified, key, bundle.origin))
}

async fn run_audit(command: AuditCommand) -> anyhow::Result<()> {
    use pluis_client::audit;
    match command {
        AuditCommand::Checkpoint {
            node,
            pubkey,
            since,
            save,
            tls,
        } => {
            let identity = tls.load(Role::Auditor)?;
            let checked =
                audit::checkpoint(&node, &identity, pubkey.as_deref(), since.as_deref()).await?;
            print!("{}", audit::render_checkpoint(&checked));
            if let Some(path) = save {
                audit::save_checkpoint(&path, &checked)?;
                println!("saved to {}", path.display());
            }
            Ok(())
        }
        AuditCommand::Export { node, out, tls } => {
            let identity = tls.load(Role::Auditor)?;
            let entries = audit::export(&node, &identity, &out).await?;
            println!("{entries} entries written to {}", out.display());
            Ok(())
        }
        AuditCommand::Verify { bundle, pubkey } => {
            let verified = audit::verify_file(&bundle, pubkey.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: verification FAILED: {e:#}", bundle.display()))?;
            println!(
                "{}: {} entries, {} signed checkpoints, root {}: verified{}",
                bundle.display(),
                verified.entries,
                verified.checkpoints,
                pluis_proto::hex(&verified.root),
                if pubkey.is_none() {
                    " (against the key in the bundle; pin it with --pubkey)"
                } else {
                    ""
                }
            );
            Ok(())
        }
        AuditCommand::CrossCheck { a, b } => {
            let (va, ka, oa) = verified_bundle(&a)?;
            let (vb, kb, ob) = verified_bundle(&b)?;
            let result = audit::cross_check((&va, &ka), (&vb, &kb));
            print!("{}", audit::render_cross_check(&result, &oa, &ob));
            if !result.discrepancies.is_empty() {
                anyhow::bail!("{} discrepancies", result.discrepancies.len());
            }
            Ok(())
        }
        AuditCommand::Report { bundles, out } => {
            let mut logs = Vec::new();
            for path in &bundles {
                let (log, key, origin) = verified_bundle(path)?;
                logs.push(pluis_client::report::NodeLog {
                    origin,
                    verifier_key: key.to_string(),
                    log,
                });
            }
            let html = pluis_client::report::render(&logs);
            std::fs::write(&out, html)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            let flags = pluis_client::report::flags(&logs).len();
            println!(
                "report on {} logs written to {} ({flags} flags)",
                logs.len(),
                out.display()
            );
            Ok(())
        }
        AuditCommand::Show {
            bundle,
            node,
            ca,
            cert,
            key,
            since,
            peer,
            purpose,
            json,
            pubkey,
        } => {
            // From a node: export to a temporary bundle, then as from a file.
            let temp = tempfile::tempdir()?;
            let bundle = match (bundle, node) {
                (Some(bundle), _) => bundle,
                (None, Some(url)) => {
                    let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
                        anyhow::bail!(
                            "--node needs --ca, --cert and --key (or PLUIS_CA, PLUIS_CERT, PLUIS_KEY)"
                        );
                    };
                    let identity = TlsArgs { ca, cert, key }.load(Role::Auditor)?;
                    let path = temp.path().join("log.jsonl");
                    audit::export(&url, &identity, &path).await?;
                    path
                }
                (None, None) => anyhow::bail!("give a bundle or --node URL"),
            };
            let since = since
                .map(|d| pluis_proto::identifier::parse_date("since", &d))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
            let filter = audit::Filter {
                since,
                peer,
                purpose,
            };
            // Verified first, then shown as read: any log, however large,
            // in bounded memory.
            audit::show(
                &bundle,
                pubkey.as_deref(),
                &filter,
                json,
                &mut std::io::stdout().lock(),
            )?;
            Ok(())
        }
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
