//! The client's side of mutual TLS: which certificate to present and which
//! node to accept, from `--ca --cert --key` or `PLUIS_CA`, `PLUIS_CERT`,
//! `PLUIS_KEY`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use pluis_proto::Role;
use pluis_transport::tls::{self, ExpectedServer, TlsIdentity};
use tonic::transport::Channel;

/// How long to wait for a node's TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS identity options shared by every subcommand that talks to a node.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// The consortium CA certificate (PEM).
    #[arg(long, env = "PLUIS_CA", value_name = "FILE")]
    pub ca: PathBuf,
    /// Your certificate (PEM).
    #[arg(long, env = "PLUIS_CERT", value_name = "FILE")]
    pub cert: PathBuf,
    /// Your private key (PEM).
    #[arg(long, env = "PLUIS_KEY", value_name = "FILE")]
    pub key: PathBuf,
}

impl TlsArgs {
    /// Loads the identity, which must hold `role`.
    pub fn load(&self, role: Role) -> anyhow::Result<TlsIdentity> {
        Ok(TlsIdentity::load(&self.ca, &self.cert, &self.key, role)?)
    }
}

/// A channel to the node at `url`. A coordinator only accepts its own
/// organisation's node; an auditor accepts any node of the consortium.
pub fn channel(url: &str, identity: &TlsIdentity) -> anyhow::Result<Channel> {
    let expected = match identity.id().role() {
        Role::Coordinator => ExpectedServer::NodeOf(identity.id().org().to_owned()),
        _ => ExpectedServer::AnyNode,
    };
    let config = identity.client_config(expected)?;
    tls::connect(url, config, CONNECT_TIMEOUT).with_context(|| format!("node {url}"))
}
