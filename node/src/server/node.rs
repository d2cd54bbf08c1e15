//! A running node: its state, its gRPC router and its accept loop.
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
use std::time::Duration;

use pluis_proto::pb::audit_server::AuditServer;
use pluis_proto::pb::coordinator_server::CoordinatorServer;
use pluis_proto::pb::partner_server::PartnerServer;
use pluis_proto::{pb, SpiffeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::audit::{AuditError, AuditLog};
use crate::config::Config;
use crate::ops::metrics::Metrics;
use crate::policy::Rule;
use crate::responder::epochs::Epochs;
use crate::responder::tables::Tables;
use crate::server::clock::{Clock, Stopwatch};
use crate::server::live::Live;
use crate::server::state::refusal_reporter;
pub use crate::server::state::{NodeError, NodeState};
use crate::service::audit::AuditService;
use crate::service::auth::{Audience, Authorizer};
use crate::service::coordinator::CoordinatorService;
use crate::service::partner::PartnerService;
use crate::store::Store;
use crate::tls::MtlsStream;

/// The largest request each service decodes: a partner's `Evaluate` of
/// the most elements the protocol allows (4096 × 34 bytes) and a context;
/// a coordinator's case query of 64 subjects of 16 keys; an auditor's
/// requests are a few numbers.
const MAX_PARTNER_MESSAGE: usize = 256 * 1024;
const MAX_COORDINATOR_MESSAGE: usize = 256 * 1024;
const MAX_AUDIT_MESSAGE: usize = 4 * 1024;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// How often expired signals are purged from disk.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

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
            refusals: crate::service::refusals::Refusals::new(config.refusals),
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
        let admin = self
            .admin_socket
            .take()
            .map(|socket| crate::ops::admin::serve(state.clone(), socket));
        if let Some(listener) = self.metrics_listener.take() {
            let page_state = state.clone();
            let page = Arc::new(move || page_state.metrics.render(&page_state.gauges()));
            tasks.spawn(crate::ops::metrics::serve(listener, page));
        }
        #[cfg(unix)]
        if let Some(hangups) = self.hangups.take() {
            tasks.spawn(reload_on_hangup(state.clone(), hangups));
        }

        let auth = Authorizer::new(&state.id)
            .with_revocation_check(revocation_check(&state))
            .with_refusal_log(refusal_log(&state))
            .with_other_auditors(other_auditors(&state));
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<PartnerServer<PartnerService>>().await;
        health
            .set_serving::<CoordinatorServer<CoordinatorService>>()
            .await;
        health.set_serving::<AuditServer<AuditService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::NETWORK_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(NodeError::Reflection)?;

        tracing::info!(
            node = %state.id,
            listen = ?local,
            peers = live.config.peers.len(),
            "serving gRPC over mutual TLS"
        );
        drop(live);
        let served = Server::builder()
            .layer(crate::service::edge::EdgeLayer::new(&state))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(InterceptedService::new(
                PartnerServer::new(PartnerService::new(state.clone()))
                    .max_decoding_message_size(MAX_PARTNER_MESSAGE),
                auth.interceptor(Audience::Partner),
            ))
            .add_service(InterceptedService::new(
                CoordinatorServer::new(CoordinatorService::new(state.clone()))
                    .max_decoding_message_size(MAX_COORDINATOR_MESSAGE),
                auth.interceptor(Audience::Coordinator),
            ))
            .add_service(InterceptedService::new(
                AuditServer::new(AuditService::new(state.clone()))
                    .max_decoding_message_size(MAX_AUDIT_MESSAGE),
                auth.interceptor(Audience::Audit),
            ))
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

/// Whether a caller's certificate is revoked by the CRLs in force now
/// (connections made before a reload are checked on every call).
fn revocation_check(state: &Arc<NodeState>) -> crate::service::auth::RevocationCheck {
    let state = Arc::downgrade(state);
    Arc::new(move |serial| {
        let Some(state) = state.upgrade() else {
            return false;
        };
        state.live().identity.revocations().is_revoked(serial)
    })
}

/// Whether the config in force lets auditors of `org` read this log.
fn other_auditors(state: &Arc<NodeState>) -> crate::service::auth::AuditorCheck {
    let state = Arc::downgrade(state);
    Arc::new(move |org| {
        state
            .upgrade()
            .is_some_and(|state| state.live().config.auditor_orgs.contains(org))
    })
}

/// Logs (and counts) every call the authoriser refuses. The entry is
/// appended at once and made durable on a task of its own: an interceptor
/// cannot wait.
fn refusal_log(state: &Arc<NodeState>) -> crate::service::auth::OnRefused {
    let state = Arc::downgrade(state);
    Arc::new(move |refusal| {
        let Some(state) = state.upgrade() else {
            return;
        };
        let logged = state.record_refusal(&refusal);
        if logged {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let audit = state.audit.clone();
                runtime.spawn(async move {
                    if let Err(e) = audit.durable().await {
                        tracing::error!(error = %e, "could not make a refusal's entry durable");
                    }
                });
            }
        }
    })
}

/// Reloads the config on every SIGHUP.
#[cfg(unix)]
async fn reload_on_hangup(state: Arc<NodeState>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        // The outcome is logged (and counted) by reload itself.
        let _ = crate::server::reload::reload(&state).await;
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
        let today = state.clock.today();
        match tokio::task::spawn_blocking(move || state_.store.purge_expired(today)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(purged)) => tracing::info!(purged, "expired signals purged"),
            Ok(Err(e)) => tracing::error!(error = %e, "expiry sweep failed"),
            Err(e) => tracing::error!(error = %e, "expiry sweep task failed"),
        }
        let state_ = state.clone();
        match tokio::task::spawn_blocking(move || ready_tables(&state_, today)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "preparing tables failed"),
            Err(e) => tracing::error!(error = %e, "table task failed"),
        }
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
}

/// Writes the summary of each caller's refusals past its budget once
/// their interval is over.
async fn summarise_refusals(state: Arc<NodeState>) {
    loop {
        let interval = state.live().config.refusals.interval_secs.clamp(1, 3600);
        tokio::time::sleep(Duration::from_secs(interval)).await;
        state
            .refusals
            .flush(&state.audit, state.clock.now_secs(), false);
        if let Err(e) = state.audit.durable().await {
            tracing::error!(error = %e, "could not make refusal summaries durable");
        }
    }
}

/// Before each new epoch and each new UTC day, builds every peer view's
/// table for it on the background pool, so that the first exchange of
/// the new epoch or day finds its table ready instead of building it in
/// the request path. Starts a quarter of an epoch (at most 15 minutes,
/// at least a second) before the change.
async fn tables_ahead(state: Arc<NodeState>) {
    loop {
        let now = state.clock.now_secs();
        let to_epoch = state.epochs.secs_to_next(now);
        let to_midnight = 86_400 - now % 86_400;
        let to_change = to_epoch.min(to_midnight);
        let lead = (state.epochs.length_secs() / 4).clamp(1, 900);
        if to_change > lead {
            state.clock.sleep_until(now + to_change - lead).await;
            continue;
        }
        let state_ = state.clone();
        let built = tokio::task::spawn_blocking(move || {
            crate::ops::background::run(|| tables_for(&state_, now + to_change))
        })
        .await;
        match built {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "building the next tables failed; they will be built on demand")
            }
            Err(e) => tracing::error!(error = %e, "table task failed"),
        }
        // Past the change, then look ahead to the next one.
        let change = now + to_change;
        state.clock.sleep_until(change.max(now + 1)).await;
    }
}

/// Builds every peer view's table for the epoch and day at `at`.
fn tables_for(state: &NodeState, at: u64) -> Result<(), String> {
    let now = state.clock.now_secs();
    let (epoch, key) = if state.epochs.current(at) > state.epochs.current(now) {
        state.epochs.next_key(now).map_err(|e| e.to_string())?
    } else {
        state.epochs.key(None, now).map_err(|e| e.to_string())?
    };
    let day = crate::server::clock::Clock::Fixed(at).today();
    let started = Stopwatch::start();
    let views = state.live().views();
    for view in &views {
        state
            .tables
            .prepare_ahead(&state.store, epoch, &key, view, day)
            .map_err(|e| e.to_string())?;
    }
    tracing::info!(
        epoch = epoch.number(),
        tables = views.len(),
        ms = started.elapsed().as_millis() as u64,
        "tables for the next epoch or day built ahead"
    );
    Ok(())
}

/// Loads or builds the current epoch's table of every peer's view.
fn ready_tables(state: &NodeState, today: time::Date) -> Result<(), String> {
    let (epoch, key) = state
        .epochs
        .key(None, state.clock.now_secs())
        .map_err(|e| e.to_string())?;
    // Only for peers that may ask for something at all.
    for view in state.live().views() {
        state
            .tables
            .get(&state.store, epoch, &key, &view, today)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

type Accepted = Result<MtlsStream, std::io::Error>;

/// A connection whose handshake is done, with a slot and its silence
/// limits; or none, if it is one too many for its identity or in all (the
/// refusal logged, the connection closed).
async fn admit(state: &Arc<NodeState>, stream: MtlsStream) -> Option<MtlsStream> {
    let limits = state.live().config.connections;
    let identity = crate::service::refusals::actor_of(Some(stream.peer()));
    match state.connections.admit(&identity, limits) {
        Ok(slot) => Some(stream.with_limits(
            Duration::from_secs(limits.first_request_secs),
            Duration::from_secs(limits.idle_secs),
            Box::new(slot),
        )),
        Err(full) => {
            let refusal = crate::service::refusals::Refusal {
                actor: identity,
                call: "connection",
                rule: Rule::Connections,
                detail: full.to_string(),
                ..Default::default()
            };
            state.refuse(refusal).await;
            None
        }
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently, so a
/// slow or hostile client cannot hold up anyone else's connection. Each
/// handshake uses the TLS material in force when the connection came in:
/// a reload changes what new connections see, never the ones in flight.
async fn accept_loop(listener: TcpListener, state: Arc<NodeState>, tx: mpsc::Sender<Accepted>) {
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
        let acceptor = state.live().acceptor.clone();
        let tx = tx.clone();
        let metrics = state.metrics.clone();
        let state = state.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    if let Some(stream) = admit(&state, MtlsStream::new(stream)).await {
                        metrics.connection();
                        let _ = tx.send(Ok(stream)).await;
                    }
                }
                Ok(Err(e)) => tracing::info!(%remote, error = %e, "TLS handshake refused"),
                Err(_) => {
                    metrics.refused(Rule::HandshakeTimeout);
                    tracing::info!(%remote, "TLS handshake timed out");
                }
            }
        });
    }
}
