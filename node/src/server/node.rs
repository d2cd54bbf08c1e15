//! A running node: loaded and checked, bound, then served — the router
//! ([`super::router`]), the accept loop ([`super::accept`]) and the
//! background work ([`super::housekeeping`]) started and stopped here.
//!
//! [`Node::new`] loads and checks everything that can be wrong before a
//! socket is opened (config, certificate, key, identity, peers), so that a
//! misconfigured node fails at start with a message naming what is wrong.
//! [`Node::serve`] then serves on a listener the caller bound, which lets
//! tests and the demo bind port 0 and read the port back before starting.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use pluis_proto::{pb, SpiffeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::accept::accept_loop;
#[cfg(unix)]
use super::housekeeping::reload_on_hangup;
use super::housekeeping::{housekeeping, summarise_refusals, tables_ahead};
use pluis_proto::pb::admin_server::AdminServer;

use crate::audit::{AuditError, AuditLog};
use crate::clock::{Clock, Stopwatch};
use crate::config::Config;
use crate::ops::metrics::Metrics;
use crate::responder::epochs::Epochs;
use crate::responder::tables::Tables;
use crate::server::live::Live;
use crate::server::state::refusal_reporter;
pub use crate::server::state::{NodeError, NodeState};
use crate::service::admin::{same_user, AdminService};
use crate::store::Store;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;

/// A node, loaded and checked, not yet serving.
#[derive(Debug)]
pub struct Node {
    state: Arc<NodeState>,
    metrics_listener: Option<TcpListener>,
    admin_socket: Option<crate::ops::admin::BoundSocket>,
    #[cfg(unix)]
    hangups: Option<tokio::signal::unix::Signal>,
}

impl Node {
    /// Loads TLS material and peers, and checks the certificate belongs to
    /// this org's node.
    pub fn new(config: Config) -> Result<Self, NodeError> {
        Node::with_clock(config, Clock::System)
    }

    /// [`Node::new`], every timestamp (audit entries, days, epochs) read
    /// from `clock`: a test's fixed moment.
    pub fn with_clock(config: Config, clock: Clock) -> Result<Self, NodeError> {
        let metrics = Arc::new(Metrics::default());
        let live = Live::load(config, refusal_reporter(metrics.clone()))?;
        let config = &live.config;
        let store = Arc::new(Store::open(&config.data_dir)?.with_clock(clock.clone()));
        let id = live.identity.id().clone();
        let signer = crate::audit::signer(&store.log_seed(), id.consortium(), id.org())
            .map_err(|e| NodeError::Audit(AuditError::Note(e)))?;
        let audit = Arc::new(AuditLog::open(store.clone(), signer, id.to_string())?);
        let state = Arc::new(NodeState {
            id,
            started: Stopwatch::start(),
            epochs: Epochs::new(
                store.clone(),
                config.epoch_length_secs,
                config.epoch_grace_secs,
            ),
            tables: Tables::new(Some(config.data_dir.join("tables")))
                .with_build_timer(metrics.clone()),
            store,
            exchanges: AtomicU64::new(0),
            denials: AtomicU64::new(0),
            refusals: crate::audit::refusals::Refusals::new(config.refusals),
            served: crate::responder::served::ServedExchanges::default(),
            connections: Arc::default(),
            audit,
            metrics,
            clock,
            operations: tokio::sync::Mutex::new(()),
            live: RwLock::new(Arc::new(live)),
        });
        Ok(Node {
            state,
            metrics_listener: None,
            admin_socket: None,
            #[cfg(unix)]
            hangups: None,
        })
    }

    /// This node's SPIFFE id.
    pub fn id(&self) -> &SpiffeId {
        &self.state.id
    }

    /// The state the services share (for tools that drive a node in
    /// this process).
    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    /// Binds the configured listen address, and the admin socket, so
    /// that both answer as soon as the caller announces the node.
    pub async fn bind(&mut self) -> Result<TcpListener, NodeError> {
        let addr = self.state.live().config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| NodeError::Bind { addr, error })?;
        self.bind_admin();
        Ok(listener)
    }

    /// Binds the admin socket in the data directory, unless bound.
    fn bind_admin(&mut self) {
        if self.admin_socket.is_none() {
            self.admin_socket = crate::ops::admin::bind(&self.state.live().config.data_dir);
        }
    }

    /// Binds the metrics address, if the config names one; returns the
    /// address bound. Call it from within the async runtime.
    pub fn bind_metrics(&mut self) -> Result<Option<SocketAddr>, NodeError> {
        let Some(addr) = self.state.live().config.metrics_listen else {
            return Ok(None);
        };
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std)
            .map_err(|error| NodeError::Bind { addr, error })?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "metrics are served in plain HTTP beyond loopback; they hold no personal data, but peer names and volumes");
        }
        let bound = listener.local_addr().ok();
        self.metrics_listener = Some(listener);
        Ok(bound)
    }

    /// Reloads the config on SIGHUP while serving (the `pluis-node serve`
    /// process; nodes run inside another program reload through their
    /// admin socket). The signal is caught from now on, so that a SIGHUP
    /// during start-up cannot end the process. Call it from within the
    /// async runtime.
    pub fn reload_on_sighup(mut self) -> Self {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hangups) => self.hangups = Some(hangups),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with `pluis-node reload`")
            }
        }
        self
    }

    /// Serves gRPC over mutual TLS on `listener` until `shutdown` resolves,
    /// then drains in-flight calls and returns. Also serves the admin
    /// socket in the data directory, and metrics if they were bound.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let local = listener.local_addr().ok();
        let state = self.state.clone();
        let live = state.live();
        let audit = &state.audit;
        let start = pb::AuditEntry {
            detail: format!("pluis-node {}", env!("CARGO_PKG_VERSION")),
            ..audit.entry(pb::audit_entry::Kind::NodeStart)
        };
        audit.record(&start).await?;
        audit
            .record(&live.policy_entry(&state.audit, "start"))
            .await?;
        let (tx, rx) = mpsc::channel(64);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(accept_loop(listener, state.clone(), tx));
        tasks.spawn(housekeeping(state.clone()));
        tasks.spawn(summarise_refusals(state.clone()));
        tasks.spawn(tables_ahead(state.clone()));
        self.bind_admin();
        let admin = self.admin_socket.take().map(|socket| {
            let admin = AdminServer::new(AdminService::new(state.clone()));
            crate::ops::admin::serve(socket, move |owner| {
                Routes::new(InterceptedService::new(admin, move |request| {
                    same_user(owner, request)
                }))
            })
        });
        if let Some(listener) = self.metrics_listener.take() {
            let page_state = state.clone();
            let page = Arc::new(move || page_state.metrics.render(&page_state.gauges()));
            tasks.spawn(crate::ops::metrics::serve(listener, page));
        }
        #[cfg(unix)]
        if let Some(hangups) = self.hangups.take() {
            tasks.spawn(reload_on_hangup(state.clone(), hangups));
        }

        let router = super::router::router(&state).await?;
        tracing::info!(
            node = %state.id,
            listen = ?local,
            peers = live.config.peers.len(),
            "serving gRPC over mutual TLS"
        );
        drop(live);
        let served = router
            .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
            .await;
        // Aborting only asks; awaiting makes sure the listening sockets are
        // closed when serve returns, so the addresses can be bound again.
        tasks.shutdown().await;
        if let Some(admin) = admin {
            admin.stop().await;
        }
        state
            .refusals
            .flush(&state.audit, state.clock.now_secs(), true);
        let stop = state.audit.entry(pb::audit_entry::Kind::NodeStop);
        let logged = state.audit.record(&stop).await;
        served.map_err(NodeError::Serve)?;
        logged?;
        tracing::info!(node = %state.id, "stopped");
        Ok(())
    }
}
