//! What a serving node's services share: its [`NodeState`] — store, log,
//! tables, epochs, clock, metrics, and the [`Live`] policy and TLS
//! material a reload swaps.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use pluis_proto::SpiffeId;

use crate::audit::AuditLog;
use crate::clock::Stopwatch;
use crate::ops::metrics::Metrics;
use crate::policy::Rule;
use crate::policy::View;
use crate::responder::epochs::Epochs;
use crate::responder::tables::{Prepared, Tables};
pub use crate::server::error::NodeError;
use crate::server::live::Live;
use crate::store::Store;
use crate::tls::{OnRefusal, Refusal};

/// What the services share.
#[derive(Debug)]
pub struct NodeState {
    /// This node's own SPIFFE id (from its certificate; fixed for the
    /// life of the process).
    pub id: SpiffeId,
    /// When the node started, for uptime.
    pub started: Stopwatch,
    /// This organisation's signals.
    pub store: Arc<Store>,
    /// OPRF keys per epoch.
    pub epochs: Epochs,
    /// Labelled tables built so far.
    pub tables: Tables,
    /// Exchanges served since start.
    pub exchanges: AtomicU64,
    /// Calls refused since start (authorisation, input, policy).
    pub denials: AtomicU64,
    /// Refusals after the handshake, per caller and interval.
    pub refusals: crate::audit::refusals::Refusals,
    /// Open connections, in all and per identity.
    pub connections: Arc<crate::server::connections::Connections>,
    /// The exchanges this node evaluated, which table calls must belong to.
    pub served: crate::responder::served::ServedExchanges,
    /// The signed exchange log.
    pub audit: Arc<AuditLog>,
    /// Counters for the metrics endpoint.
    pub metrics: Arc<Metrics>,
    /// Where the time and today's date come from.
    pub clock: crate::clock::Clock,
    /// One operator's change at a time (import, erasure, reload), so that
    /// each prepares its tables for the policy and signals the others
    /// leave in force.
    pub operations: tokio::sync::Mutex<()>,
    /// Policy, peers and TLS material: see [`Live`].
    pub(crate) live: RwLock<Arc<Live>>,
}

impl NodeState {
    /// Reads the config file again and puts it in force if all of it is
    /// good ([`crate::server::reload`]); on any error the old one stays.
    pub async fn reload(self: &Arc<Self>) -> Result<crate::server::reload::Reloaded, NodeError> {
        crate::server::reload::reload(self).await
    }

    /// The policy, peers and TLS material in force now. Take it once per
    /// request and keep it.
    pub fn live(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(live) => live.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `live` in force for every request that starts from now on.
    pub(crate) fn set_live(&self, live: Arc<Live>) {
        let mut current = match self.live.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = live;
    }

    /// Logs a refused call (one bounded entry, or a count towards the
    /// caller's summary) and counts it; returns whether an entry was
    /// appended (not yet durable).
    pub fn record_refusal(&self, refusal: &crate::audit::refusals::Refusal) -> bool {
        self.denials
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.refusals
            .record(&self.audit, &self.metrics, self.clock.now_secs(), refusal)
    }

    /// [`NodeState::record_refusal`], then waits until the entry is durable.
    pub async fn refuse(&self, refusal: crate::audit::refusals::Refusal) {
        if self.record_refusal(&refusal) {
            if let Err(e) = self.audit.durable().await {
                tracing::error!(error = %e, "could not make a refusal's entry durable");
            }
        }
    }

    /// What the server does with a client certificate it refused: a log
    /// line with the SPIFFE id and serial it claims, and a count.
    pub fn on_refusal(&self) -> OnRefusal {
        refusal_reporter(self.metrics.clone())
    }

    /// The tables of `views` for `snapshot` (a change not yet visible, or
    /// the signal set now), in the current epoch on today's date, made
    /// now if need be; for [`Tables::install`].
    pub fn prepare_tables(
        &self,
        snapshot: &crate::store::Snapshot,
        views: &[View],
    ) -> Result<Prepared, NodeError> {
        if views.is_empty() {
            return Ok(Prepared::default());
        }
        let (epoch, key) = self.epochs.key(None, self.clock.now_secs())?;
        let started = Stopwatch::start();
        let prepared = self.tables.prepare(
            &self.store,
            snapshot,
            epoch,
            &key,
            views,
            self.clock.today(),
        )?;
        let (tables, entries) = prepared.size();
        tracing::info!(
            tables,
            entries,
            revision = snapshot.revision(),
            ms = started.elapsed().as_millis() as u64,
            "tables prepared"
        );
        Ok(prepared)
    }

    /// The tables of the live policy's views for a staged change, or
    /// `None` if they could not be made (logged): the change matters more
    /// than the head start, and its tables are then built when first
    /// asked for. Install them with [`NodeState::publish_tables`] in the
    /// change's `before_visible` hook.
    pub fn tables_for_change(
        &self,
        snapshot: &crate::store::Snapshot,
        change: &str,
    ) -> Option<Prepared> {
        self.prepare_tables(snapshot, &self.live().views())
            .map_err(|e| {
                tracing::error!(error = %e, change, "could not prepare tables; they will be built on demand");
            })
            .ok()
    }

    /// In a change's `before_visible` hook: withdraws, if the change
    /// erases or replaces signals, the tables exchanges under way were
    /// announced before `revision` (the change's), then installs the
    /// tables prepared for it.
    pub fn publish_tables(&self, prepared: Option<Prepared>, withdraws: Option<u64>) {
        if let Some(revision) = withdraws {
            self.served.withdraw_before(revision);
        }
        if let Some(prepared) = prepared {
            self.tables.install(prepared);
        }
    }

    /// Drops tables of revisions, days and epochs no longer served.
    pub fn prune_tables(&self) {
        let epoch = self.epochs.current(self.clock.now_secs());
        self.tables
            .prune(self.store.revision(), epoch, self.clock.today());
    }

    /// The gauges of the metrics page, read now.
    pub fn gauges(&self) -> crate::ops::metrics::Gauges {
        let live = self.live();
        let day = self.clock.today().to_julian_day();
        crate::ops::metrics::Gauges {
            budgets: live
                .policies
                .iter()
                .map(|(peer, policy)| {
                    let used = self.store.budget_used(peer, day).unwrap_or(0);
                    (peer.to_string(), used, policy.max_keys_per_day)
                })
                .collect(),
            audit_entries: self.store.audit_size().unwrap_or(0),
            audit_bytes: self.store.audit_bytes(),
            signals: self.store.len() as u64,
            revision: self.store.revision(),
            uptime_seconds: self.started.elapsed().as_secs(),
            revoked_certificates: live.identity.revocations().len() as u64,
            batches: live
                .batches
                .iter()
                .map(|(peer, batches)| {
                    let (running, waiting) = batches.load();
                    (peer.to_string(), running, waiting)
                })
                .collect(),
        }
    }
}

/// Logs and counts every client certificate the TLS server refuses.
pub(crate) fn refusal_reporter(metrics: Arc<Metrics>) -> OnRefusal {
    Arc::new(move |refusal: &Refusal| {
        let id = refusal
            .id
            .as_ref()
            .map_or_else(|| "no SPIFFE id".to_owned(), ToString::to_string);
        let serial = refusal
            .serial
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string);
        if refusal.revoked {
            metrics.refused(Rule::Revoked);
            tracing::warn!(spiffe_id = %id, serial = %serial, "TLS handshake refused: certificate revoked");
        } else {
            metrics.refused(Rule::Certificate);
            tracing::info!(spiffe_id = %id, serial = %serial, reason = %refusal.reason, "TLS handshake refused: certificate not accepted");
        }
    })
}
