//! Reloading a running node's config (SIGHUP, or `pluis-node reload`
//! through the admin socket): read and check all of it, prepare the
//! tables its new views need, then put the new [`Live`] in force in one
//! step and log it. On any error the old one stays.

use std::sync::Arc;

use crate::config::Config;
use crate::server::live::Live;
use crate::server::state::{NodeError, NodeState};

/// What a reload put in force.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// SHA-256 of the config file now in force.
    pub digest: [u8; 32],
    /// Peers, purposes, certificate, CRLs: one line.
    pub detail: String,
}

/// Reads the config file again and, if all of it is good and nothing
/// fixed changed, puts it in force: tables for new views are made first
/// (at background priority), then the whole [`Live`] is swapped and a
/// `policy loaded` entry logged. On any error the old one stays in force.
pub(super) async fn reload(state: &Arc<NodeState>) -> Result<Reloaded, NodeError> {
    let _one_at_a_time = state.operations.lock().await;
    let outcome = reload_now(state).await;
    match &outcome {
        Ok(reloaded) => {
            state.metrics.reload("loaded");
            tracing::info!(
                sha256 = %pluis_proto::hex(&reloaded.digest),
                detail = %reloaded.detail,
                "policy reloaded"
            );
        }
        Err(e) => {
            state.metrics.reload("refused");
            tracing::error!(error = %e, "policy reload refused; the previous policy stays in force");
        }
    }
    outcome
}

async fn reload_now(state: &Arc<NodeState>) -> Result<Reloaded, NodeError> {
    let current = state.live();
    let config = Config::load(&current.config.source)?;
    current.config.check_reload(&config)?;
    let live = Live::load(config, state.on_refusal())?;
    if live.identity.id() != &state.id {
        return Err(NodeError::IdentityChanged {
            path: live.config.tls.cert.clone(),
            was: state.id.to_string(),
            now: live.identity.id().to_string(),
        });
    }
    // Tables for views this policy adds, before it is in force.
    let views = live.views();
    let prepared = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            crate::ops::background::run(|| state.prepare_tables(&state.store.snapshot(), &views))
        })
        .await
        .map_err(|_| NodeError::Task("table"))??
    };
    state.tables.install(prepared);
    let live = Arc::new(live);
    state.refusals.set_budget(live.config.refusals);
    state.set_live(live.clone());
    let entry = live.policy_entry(&state.audit, "reload");
    state.audit.record(&entry).await?;
    Ok(Reloaded {
        digest: live.config.digest,
        detail: entry.detail,
    })
}
