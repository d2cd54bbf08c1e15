//! `pluis`'s arguments: one `Args` struct per subcommand, so that each
//! subcommand's code takes exactly what it needs (as ripgrep's `flags`).
//! `main.rs` parses these and hands each to its role's folder.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pluis_proto::Role;

use crate::connect::TlsArgs;

/// Pluis: combine signals across partner organisations, without sharing records.
#[derive(Debug, Parser)]
#[command(name = "pluis", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `pluis`'s subcommands, by who uses them: coordinators (`status`,
/// `match`, `screen`), auditors (`audit`), everyone trying Pluis out
/// (`certs`, `demo`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The development PKI.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Show a node's org, version, uptime and peer reachability.
    Status(StatusArgs),
    /// Ask which life domains show signals for a case's persons, across partners.
    Match(MatchArgs),
    /// Bulk screening: your node's active keys against every partner's table.
    Screen(ScreenArgs),
    /// Ask your questions in a browser (Dutch by default), on this computer only.
    Ui(UiArgs),
    /// Inspect and verify a node's signed exchange log (auditor role).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run a local demo consortium: certificates, nodes, a case query, audit.
    Demo(DemoArgs),
}

/// `pluis audit`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print and verify the node's latest signed checkpoint.
    Checkpoint(CheckpointArgs),
    /// Write the node's whole log (entries, checkpoints, key) to a bundle.
    Export(ExportArgs),
    /// Verify a bundle offline; points to the first bad entry.
    Verify(VerifyArgs),
    /// Match every exchange between two organisations on both sides.
    CrossCheck(CrossCheckArgs),
    /// Write one self-contained HTML page (charts, flags) from bundles.
    Report(ReportArgs),
    /// Print a log's entries as a table (verified first), from a bundle
    /// or straight from a node.
    Show(ShowArgs),
}

/// `pluis certs`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a consortium CA and node, coordinator and auditor certificates per org.
    Init(CertsInitArgs),
    /// Issue a new certificate and key for one identity from the dev CA
    /// (a replacement laptop, a node's rotated key); by default over the
    /// identity's usual files.
    Issue(CertsIssueArgs),
    /// Revoke certificates: add them to the CRL signed by the dev CA
    /// (DIR/crl.pem). Nodes that name it in `[tls] crls` refuse them once
    /// reloaded (`pluis-node reload`, or SIGHUP).
    Revoke(CertsRevokeArgs),
}

/// A serial in hex, as `openssl x509 -serial` shows it.
fn parse_serial(text: &str) -> Result<pluis_proto::Serial, String> {
    pluis_proto::Serial::parse_hex(text).map_err(|e| e.to_string())
}

/// Show a node's org, version, uptime and peer reachability.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The node, as https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub node: String,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Ask which life domains show signals for a case's persons, across partners.
#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    /// Your own organisation's node, as https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The purpose (must be in your node's and the partners' policies).
    #[arg(long)]
    pub purpose: String,
    /// A person: KEY or KEY;KEY (bsn:DIGITS, nd:SURNAME,INITIAL,YYYY-MM-DD). Repeatable.
    #[arg(long = "subject", value_name = "KEYS")]
    pub subjects: Vec<String>,
    /// A case file: CSV with columns label,key.
    #[arg(long, value_name = "FILE")]
    pub case: Option<PathBuf>,
    /// Print the documented JSON form.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `pluis ui`: the coordinator's questions in a browser.
#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Your own organisation's node, as https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// Open the launch link in the system's browser.
    #[arg(long)]
    pub open: bool,
    /// Minutes a session may sit idle before it ends (and its answers are forgotten).
    #[arg(long, value_name = "MINUTES", default_value_t = 30)]
    pub idle_minutes: u64,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Bulk screening: your node's active keys against every partner's table.
#[derive(Debug, clap::Args)]
pub struct ScreenArgs {
    /// Your own organisation's node, as https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The purpose (must be in your node's and the partners' policies).
    #[arg(long)]
    pub purpose: String,
    /// List cases with signals in at least this many life domains.
    #[arg(long, default_value_t = 3)]
    pub min_domains: u32,
    /// Write the hits to this CSV file (mode 0600) instead of printing them.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Run a local demo consortium: certificates, nodes, a case query, audit.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the consortium (certificates, configs) in this new directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// After the checks, keep the nodes running and serve the police
    /// coordinator's page (`pluis ui`) until Ctrl-C.
    #[arg(long)]
    pub ui: bool,
}

/// Print and verify the node's latest signed checkpoint.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The node.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The log's verifier key (`pluis-node pubkey`); else the saved
    /// one's, else the node's own word for it.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// A checkpoint saved earlier: prove the new one consistent with it.
    #[arg(long, value_name = "FILE")]
    pub since: Option<PathBuf>,
    /// Save the new checkpoint here, for a later --since.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Write the node's whole log (entries, checkpoints, key) to a bundle.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The node.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The bundle file (JSON Lines).
    #[arg(long, value_name = "BUNDLE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Verify a bundle offline; points to the first bad entry.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The bundle.
    pub bundle: PathBuf,
    /// The log's verifier key (`pluis-node pubkey`); else the bundle's.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
}

/// Match every exchange between two organisations on both sides.
#[derive(Debug, clap::Args)]
pub struct CrossCheckArgs {
    /// One organisation's bundle.
    pub a: PathBuf,
    /// The other's.
    pub b: PathBuf,
}

/// Write one self-contained HTML page (charts, flags) from bundles.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The bundles (each verified first).
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// The HTML file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Print a log's entries as a table (verified first), from a bundle
/// or straight from a node.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The bundle.
    #[arg(required_unless_present = "node", conflicts_with = "node")]
    pub bundle: Option<PathBuf>,
    /// Or the node to read the log from (with --ca --cert --key of an
    /// auditor, or PLUIS_CA, PLUIS_CERT, PLUIS_KEY).
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// The consortium CA certificate (PEM), with --node.
    #[arg(long, env = "PLUIS_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Your certificate (PEM), with --node.
    #[arg(long, env = "PLUIS_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Your private key (PEM), with --node.
    #[arg(long, env = "PLUIS_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Only entries from this UTC date on (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only exchanges with this organisation.
    #[arg(long, value_name = "ORG")]
    pub peer: Option<String>,
    /// Only this purpose.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The log's verifier key; else the bundle's.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
}

/// Create a consortium CA and node, coordinator and auditor certificates per org.
#[derive(Debug, clap::Args)]
pub struct CertsInitArgs {
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Consortium name (the SPIFFE trust domain).
    #[arg(long, value_name = "NAME")]
    pub consortium: String,
    /// An organisation id; repeat for each.
    #[arg(long = "org", value_name = "ORG", required = true)]
    pub orgs: Vec<String>,
    /// Replace an existing dev PKI in DIR.
    #[arg(long)]
    pub force: bool,
}

/// Issue a new certificate and key for one identity from the dev CA
/// (a replacement laptop, a node's rotated key); by default over the
/// identity's usual files.
#[derive(Debug, clap::Args)]
pub struct CertsIssueArgs {
    /// The dev PKI directory (its ca.pem and ca.key).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The organisation.
    #[arg(long, value_name = "ORG")]
    pub org: String,
    /// node, coordinator or auditor.
    #[arg(long, value_name = "ROLE")]
    pub role: Role,
    /// Write OUT.pem and OUT.key instead of DIR/ORG/ROLE.pem and .key.
    #[arg(long, value_name = "OUT")]
    pub out: Option<PathBuf>,
}

/// Revoke certificates: add them to the CRL signed by the dev CA
/// (DIR/crl.pem). Nodes that name it in `[tls] crls` refuse them once
/// reloaded (`pluis-node reload`, or SIGHUP).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["serial", "cert"])))]
pub struct CertsRevokeArgs {
    /// The dev PKI directory (its ca.pem and ca.key).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// A serial to revoke (hex, as `openssl x509 -serial` shows it); repeatable.
    #[arg(long, value_name = "HEX", value_parser = parse_serial)]
    pub serial: Vec<pluis_proto::Serial>,
    /// A certificate file to revoke; repeatable.
    #[arg(long, value_name = "FILE")]
    pub cert: Vec<PathBuf>,
    /// Why.
    #[arg(long, value_enum, default_value = "key-compromise")]
    pub reason: crate::dev::certs::Reason,
    /// The CRL to extend (default: DIR/crl.pem).
    #[arg(long, value_name = "FILE")]
    pub crl: Option<PathBuf>,
}
