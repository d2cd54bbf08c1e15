//! A whole consortium on this machine: dev PKI, one config per org, and
//! real nodes on loopback ports chosen by the OS. The demo runs one; the
//! end-to-end tests run many side by side.
//!
//! Listeners are bound (port 0) before any config is written, so every
//! node's peers can be given real URLs and no port can be taken between
//! choosing it and using it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pluis_node::config::{ConfigFile, PeerFile, TlsFile};
use pluis_node::{Clock, Config, Node, NodeError};
use pluis_node::{Granularity, Purpose};
use pluis_proto::taxonomy::LifeDomain;
use pluis_proto::Role;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::dev::certs::{self, InitOptions};

/// One running node of a local consortium.
#[derive(Debug)]
pub struct LocalNode {
    /// The org it serves.
    pub org: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its config file.
    pub config: PathBuf,
    /// Where it serves metrics, if its config asks for them.
    pub metrics: Option<SocketAddr>,
    /// The clock it reads: the system's, or a test's.
    pub clock: Clock,
    listener: Option<TcpListener>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), NodeError>>>,
}

impl LocalNode {
    /// Loads the config and serves on `listener` in a task of its own.
    fn start(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        let config = Config::load(&self.config)?;
        let mut server = Node::with_clock(config, self.clock.clone())?;
        self.metrics = server.bind_metrics()?;
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        })));
        Ok(())
    }

    /// Stops the node and waits until it has drained and closed.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .with_context(|| format!("node {} did not stop cleanly", self.org))??;
        }
        Ok(())
    }
}

/// A consortium of nodes on loopback, all in one directory.
#[derive(Debug)]
pub struct LocalConsortium {
    /// The directory holding the dev PKI and every org's config and data.
    pub dir: PathBuf,
    /// The consortium name.
    pub name: String,
    /// The running nodes, in the order the orgs were given.
    pub nodes: Vec<LocalNode>,
}

impl LocalConsortium {
    /// Issues certificates and starts one node per org.
    pub async fn start(dir: &Path, name: &str, orgs: &[&str]) -> anyhow::Result<Self> {
        let mut consortium = Self::create(dir, name, orgs).await?;
        consortium.start_all()?;
        Ok(consortium)
    }

    /// Issues certificates, binds a loopback port per org and writes each
    /// org's config, without starting the nodes (so that data can be
    /// imported first, as an operator would).
    pub async fn create(dir: &Path, name: &str, orgs: &[&str]) -> anyhow::Result<Self> {
        certs::init(&InitOptions {
            out: dir.to_owned(),
            consortium: name.to_owned(),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
            force: false,
        })?;
        let mut listeners = Vec::new();
        for org in orgs {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .with_context(|| format!("binding a loopback port for {org}"))?;
            let addr = listener.local_addr()?;
            listeners.push((org.to_string(), addr, listener));
        }
        // Each node's log key, made now in its data directory, so that
        // every partner can check that node's receipts from the start.
        let mut log_keys = std::collections::BTreeMap::new();
        for org in orgs {
            let key = pluis_node::log_verifier(&dir.join(org).join("data"), name, org)
                .with_context(|| format!("making {org}'s log key"))?;
            log_keys.insert(org.to_string(), key.to_string());
        }
        let mut nodes = Vec::new();
        for (org, addr, _) in &listeners {
            let peers: Vec<PeerEntry<'_>> = listeners
                .iter()
                .filter(|(other, _, _)| other != org)
                .map(|(other, addr, _)| PeerEntry {
                    org: other.as_str(),
                    addr: *addr,
                    log_key: log_keys.get(other).map(String::as_str),
                })
                .collect();
            let config = dir.join(org).join("node.toml");
            std::fs::write(&config, node_config(org, *addr, &peers))
                .with_context(|| format!("writing {}", config.display()))?;
            nodes.push(LocalNode {
                org: org.clone(),
                addr: *addr,
                url: format!("https://{addr}"),
                config,
                metrics: None,
                clock: Clock::System,
                listener: None,
                stop: None,
                task: None,
            });
        }
        for (node, (_, _, listener)) in nodes.iter_mut().zip(listeners) {
            node.listener = Some(listener);
        }
        Ok(LocalConsortium {
            dir: dir.to_owned(),
            name: name.to_owned(),
            nodes,
        })
    }

    /// Starts every node that is not running yet, on its bound port.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            if let Some(listener) = node.listener.take() {
                node.start(listener)?;
            }
        }
        Ok(())
    }

    /// Stops `org`'s node and starts it again on the same address, with
    /// its config and data as they are now.
    pub async fn restart(&mut self, org: &str) -> anyhow::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.org == org)
            .with_context(|| format!("no node for org {org}"))?;
        node.stop().await?;
        let listener = TcpListener::bind(node.addr)
            .await
            .with_context(|| format!("binding {} again for {org}", node.addr))?;
        node.start(listener)
    }

    /// Closes the ports bound for nodes not started yet, so that node
    /// processes of their own (benchmarks measuring each node's memory)
    /// can bind the addresses in their configs.
    pub fn release_listeners(&mut self) {
        for node in &mut self.nodes {
            node.listener = None;
        }
    }

    /// The running node of `org`.
    pub fn node(&self, org: &str) -> anyhow::Result<&LocalNode> {
        self.nodes
            .iter()
            .find(|n| n.org == org)
            .with_context(|| format!("no node for org {org}"))
    }

    /// Changes `org`'s config file as `edit` says (before its node
    /// starts, or before it reloads).
    pub fn edit_config(&self, org: &str, edit: impl FnOnce(&mut ConfigFile)) -> anyhow::Result<()> {
        edit_config_file(&self.node(org)?.config, edit)
    }

    /// Changes what every peer may ask of `org`'s node.
    pub fn edit_peer_policies(
        &self,
        org: &str,
        edit: impl Fn(&mut PeerFile),
    ) -> anyhow::Result<()> {
        self.edit_config(org, |file| file.peers.iter_mut().for_each(edit))
    }

    /// CA, certificate and key of ORG's ROLE, as `--ca --cert --key`.
    pub fn tls_args(&self, org: &str, role: Role) -> crate::connect::TlsArgs {
        let (cert, key) = certs::identity_paths(&self.dir, org, role);
        crate::connect::TlsArgs {
            ca: self.dir.join("ca.pem"),
            cert,
            key,
        }
    }

    /// Stops every node and waits for each to close.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_all().await
    }

    /// Stops every running node and waits for each to close; the
    /// consortium's files stay.
    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.stop().await?;
        }
        Ok(())
    }
}

/// One partner in a generated config.
#[derive(Debug, Clone, Copy)]
pub struct PeerEntry<'a> {
    /// Its org.
    pub org: &'a str,
    /// Where its node listens.
    pub addr: SocketAddr,
    /// Its log's verifier key (`pluis-node pubkey`), if known.
    pub log_key: Option<&'a str>,
}

impl<'a> PeerEntry<'a> {
    /// A partner whose log key is not written into the config.
    pub fn new(org: &'a str, addr: SocketAddr) -> Self {
        PeerEntry {
            org,
            addr,
            log_key: None,
        }
    }
}

/// A node config as an operator would write it, paths relative to it.
///
/// Every peer may ask for the one purpose, `exploitation-assessment`, and
/// see every domain at domain granularity, with the default budgets. The
/// node loads the consortium's CRL (`../crl.pem`, written by `certs init`).
pub fn node_config_file(org: &str, listen: SocketAddr, peers: &[PeerEntry<'_>]) -> ConfigFile {
    ConfigFile {
        org: org.to_owned(),
        listen: listen.to_string(),
        data_dir: "data".into(),
        taxonomy: None,
        epoch_length: None,
        epoch_grace: None,
        metrics_listen: None,
        refusals_logged_per_interval: None,
        refusal_interval: None,
        auditor_orgs: Vec::new(),
        first_request_timeout: None,
        idle_timeout: None,
        max_connections: None,
        max_connections_per_identity: None,
        tls: TlsFile {
            ca: "../ca.pem".into(),
            cert: "node.pem".into(),
            key: "node.key".into(),
            crls: vec!["../crl.pem".into()],
        },
        purposes: vec![Purpose {
            name: PURPOSE.to_owned(),
            legal_basis: LEGAL_BASIS.to_owned(),
            // The demo consortium shows bulk screening too.
            screening: true,
        }],
        peers: peers
            .iter()
            .map(|peer| PeerFile {
                org: peer.org.to_owned(),
                url: format!("https://{}", peer.addr),
                log_key: peer.log_key.map(str::to_owned),
                purposes: vec![PURPOSE.to_owned()],
                domains: LifeDomain::ALL.to_vec(),
                granularity: Granularity::Domain,
                max_keys_per_request: None,
                max_keys_per_day: None,
                max_probable_keys_per_day: None,
                max_possible_keys_per_day: None,
                max_persons_per_day: None,
                min_bucket_entries: None,
                min_prefix_bits: None,
            })
            .collect(),
        assessment: Vec::new(),
    }
}

/// [`node_config_file`] as TOML text.
pub fn node_config(org: &str, listen: SocketAddr, peers: &[PeerEntry<'_>]) -> String {
    node_config_file(org, listen, peers).to_toml()
}

/// Reads the config file at `path`, lets `edit` change it, writes it back.
pub fn edit_config_file(path: &Path, edit: impl FnOnce(&mut ConfigFile)) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut file: ConfigFile =
        toml::from_str(&text).with_context(|| format!("{}: not a node config", path.display()))?;
    edit(&mut file);
    std::fs::write(path, file.to_toml()).with_context(|| format!("writing {}", path.display()))
}

/// The purpose the local consortium's policies allow.
pub const PURPOSE: &str = "exploitation-assessment";
/// Its legal basis.
pub const LEGAL_BASIS: &str = "partnership agreement, art. 4";
