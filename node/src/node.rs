//! A running node: its state, its gRPC router and its accept loop.
//!
//! [`Node::new`] loads and checks everything that can be wrong before a
//! socket is opened (config, certificate, key, identity, peers), so that a
//! misconfigured node fails at start with a message naming what is wrong.
//! [`Node::serve`] then serves on a listener the caller bound, which lets
//! tests and the demo bind port 0 and read the port back before starting.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pluis_proto::pb::audit_server::AuditServer;
use pluis_proto::pb::coordinator_server::CoordinatorServer;
use pluis_proto::pb::partner_server::PartnerServer;
use pluis_proto::{pb, Role, SpiffeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::audit::{AuditError, AuditLog};
use crate::auth::{Audience, Authorizer};
use crate::config::{load_taxonomy, Config, ConfigError};
use crate::epochs::Epochs;
use crate::peers::Peers;
use crate::policy::{Assessment, PeerPolicy, Purpose};
use crate::service::audit::AuditService;
use crate::service::coordinator::CoordinatorService;
use crate::service::partner::PartnerService;
use crate::store::{Store, StoreError};
use crate::tables::{Tables, View};
use crate::tls::{MtlsStream, TlsError, TlsIdentity};
use pluis_proto::taxonomy::Taxonomy;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// How often expired signals are purged from disk.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Why a node could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The certificate belongs to another org than the config says.
    #[error("{path}: certificate is for {id}, but the config says org = {org:?}")]
    WrongOrg {
        /// The certificate file.
        path: std::path::PathBuf,
        /// What the certificate says.
        id: SpiffeId,
        /// What the config says.
        org: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config's taxonomy is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(String),
    /// The audit log cannot be used.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What the services share.
#[derive(Debug)]
pub struct NodeState {
    /// This node's own SPIFFE id (from its certificate).
    pub id: SpiffeId,
    /// When the node started, for uptime.
    pub started: Instant,
    /// The partner nodes.
    pub peers: Peers,
    /// This organisation's signals.
    pub store: Arc<Store>,
    /// The signal taxonomy in force.
    pub taxonomy: Arc<Taxonomy>,
    /// OPRF keys per epoch.
    pub epochs: Epochs,
    /// What each peer may ask of this node.
    pub policies: BTreeMap<String, PeerPolicy>,
    /// The purposes this node's coordinators may ask for.
    pub purposes: Vec<Purpose>,
    /// The advice per number of life domains.
    pub assessment: Assessment,
    /// Labelled tables built so far.
    pub tables: Tables,
    /// Exchanges served since start.
    pub exchanges: AtomicU64,
    /// Requests denied by policy since start.
    pub denials: AtomicU64,
    /// The signed exchange log.
    pub audit: Arc<AuditLog>,
}

/// A node, loaded and checked, not yet serving.
#[derive(Debug)]
pub struct Node {
    state: Arc<NodeState>,
    identity: TlsIdentity,
    config: Config,
}

impl Node {
    /// Loads TLS material and peers, and checks the certificate belongs to
    /// this org's node.
    pub fn new(config: Config) -> Result<Self, NodeError> {
        let tls = &config.tls;
        let identity = TlsIdentity::load(&tls.ca, &tls.cert, &tls.key, Role::Node)?;
        if identity.id().org() != config.org {
            return Err(NodeError::WrongOrg {
                path: tls.cert.clone(),
                id: identity.id().clone(),
                org: config.org.clone(),
            });
        }
        let peers = Peers::new(&config.peers, &identity)?;
        let taxonomy = load_taxonomy(config.taxonomy.as_deref())?;
        let store = Arc::new(Store::open(&config.data_dir)?);
        let id = identity.id().clone();
        let signer = crate::audit::signer(&store.log_seed(), id.consortium(), id.org())
            .map_err(|e| NodeError::Audit(AuditError::Note(e)))?;
        let audit = Arc::new(AuditLog::open(store.clone(), signer, id.to_string())?);
        let state = Arc::new(NodeState {
            id: identity.id().clone(),
            started: Instant::now(),
            peers,
            epochs: Epochs::new(
                store.clone(),
                config.epoch_length_secs,
                config.epoch_grace_secs,
            ),
            store,
            taxonomy: Arc::new(taxonomy),
            policies: config
                .peers
                .iter()
                .map(|p| (p.org.clone(), p.policy.clone()))
                .collect(),
            purposes: config.purposes.clone(),
            assessment: config.assessment.clone(),
            tables: Tables::new(Some(config.data_dir.join("tables"))),
            exchanges: AtomicU64::new(0),
            denials: AtomicU64::new(0),
            audit,
        });
        Ok(Node {
            state,
            identity,
            config,
        })
    }

    /// This node's SPIFFE id.
    pub fn id(&self) -> &SpiffeId {
        &self.state.id
    }

    /// Binds the configured listen address.
    pub async fn bind(&self) -> Result<TcpListener, NodeError> {
        let addr = self.config.listen;
        TcpListener::bind(addr)
            .await
            .map_err(|error| NodeError::Bind { addr, error })
    }

    /// Serves gRPC over mutual TLS on `listener` until `shutdown` resolves,
    /// then drains in-flight calls and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let local = listener.local_addr().ok();
        let acceptor = TlsAcceptor::from(self.identity.server_config()?);
        let audit = &self.state.audit;
        let start = pb::AuditEntry {
            detail: format!("pluis-node {}", env!("CARGO_PKG_VERSION")),
            ..audit.entry(pb::audit_entry::Kind::NodeStart)
        };
        audit.record(&start).await?;
        let policy = pb::AuditEntry {
            request_digest: self.config.digest.to_vec(),
            detail: format!(
                "config sha256; peers={} purposes={}",
                self.config.peers.len(),
                self.config.purposes.len()
            ),
            ..audit.entry(pb::audit_entry::Kind::PolicyLoaded)
        };
        audit.record(&policy).await?;
        let (tx, rx) = mpsc::channel(64);
        let accept_loop = tokio::spawn(accept_loop(listener, acceptor, tx));
        let sweeper = tokio::spawn(housekeeping(self.state.clone()));

        let auth = Authorizer::new(&self.state.id);
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<PartnerServer<PartnerService>>().await;
        health
            .set_serving::<CoordinatorServer<CoordinatorService>>()
            .await;
        health.set_serving::<AuditServer<AuditService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Serve(format!("reflection: {e}")))?;

        tracing::info!(
            node = %self.state.id,
            listen = ?local,
            peers = self.config.peers.len(),
            "serving gRPC over mutual TLS"
        );
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(PartnerServer::with_interceptor(
                PartnerService::new(self.state.clone()),
                auth.interceptor(Audience::Partner),
            ))
            .add_service(CoordinatorServer::with_interceptor(
                CoordinatorService::new(self.state.clone()),
                auth.interceptor(Audience::Coordinator),
            ))
            .add_service(AuditServer::with_interceptor(
                AuditService::new(self.state.clone()),
                auth.interceptor(Audience::Audit),
            ))
            .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
            .await;
        // Aborting only asks; awaiting makes sure the listening socket is
        // closed when serve returns, so the address can be bound again.
        accept_loop.abort();
        sweeper.abort();
        let _ = accept_loop.await;
        let _ = sweeper.await;
        let stop = self.state.audit.entry(pb::audit_entry::Kind::NodeStop);
        let logged = self.state.audit.record(&stop).await;
        served.map_err(|e| NodeError::Serve(crate::error_chain(&e)))?;
        logged?;
        tracing::info!(node = %self.state.id, "stopped");
        Ok(())
    }
}

/// At start and then every [`SWEEP_INTERVAL`]: purges expired signals,
/// then makes sure every peer's table for the current epoch and day is
/// ready (loaded from disk or built), so that no exchange waits for a
/// build. Expired signals never match even between sweeps; the sweep is
/// what makes them gone from disk.
async fn housekeeping(state: Arc<NodeState>) {
    loop {
        let state_ = state.clone();
        let today = crate::cli::today();
        match tokio::task::spawn_blocking(move || state_.store.purge_expired(today)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(purged)) => tracing::info!(purged, "expired signals purged"),
            Ok(Err(e)) => tracing::error!(error = %e, "expiry sweep failed"),
            Err(e) => tracing::error!(error = %e, "expiry sweep task failed"),
        }
        let state_ = state.clone();
        match tokio::task::spawn_blocking(move || prepare_tables(&state_, today)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "preparing tables failed"),
            Err(e) => tracing::error!(error = %e, "table task failed"),
        }
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
}

/// Loads or builds the current epoch's table of every peer's view.
fn prepare_tables(state: &NodeState, today: time::Date) -> Result<(), String> {
    let (epoch, key) = state
        .epochs
        .key(0, crate::epochs::now_secs())
        .map_err(|e| e.to_string())?;
    // Only for peers that may ask for something at all.
    let views: std::collections::HashSet<View> = state
        .policies
        .values()
        .filter(|p| !p.purposes.is_empty())
        .map(View::of)
        .collect();
    for view in views {
        state
            .tables
            .get(&state.store, epoch, &key, &view, today)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

type Accepted = Result<MtlsStream, std::io::Error>;

/// Accepts TCP connections and completes TLS handshakes concurrently, so a
/// slow or hostile client cannot hold up anyone else's connection.
async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Accepted>) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(MtlsStream::new(stream))).await;
                }
                Ok(Err(e)) => tracing::info!(%remote, error = %e, "TLS handshake refused"),
                Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
            }
        });
    }
}
