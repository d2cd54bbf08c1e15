//! What a serving node does on its own time: purge expired signals,
//! summarise refusals, build the next epoch's and day's tables ahead,
//! and reload on SIGHUP. Every wait reads the node's clock, so a test
//! that moves it moves these too.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Stopwatch;
use crate::server::state::NodeState;

/// How often expired signals are purged from disk.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Reloads the config on every SIGHUP.
#[cfg(unix)]
pub(super) async fn reload_on_hangup(
    state: Arc<NodeState>,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        // The outcome is logged (and counted) by reload itself.
        let _ = state.reload().await;
    }
}

/// At start and then every [`SWEEP_INTERVAL`]: purges expired signals,
/// then makes sure every peer's table for the current epoch and day is
/// ready (loaded from disk or built), so that no exchange waits for a
/// build. Expired signals never match even between sweeps; the sweep is
/// what makes them gone from disk.
pub(super) async fn housekeeping(state: Arc<NodeState>) {
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
pub(super) async fn summarise_refusals(state: Arc<NodeState>) {
    loop {
        let interval = state.live().config.refusals.interval_secs.clamp(1, 3600);
        let now = state.clock.now_secs();
        state.clock.sleep_until(now + interval).await;
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
pub(super) async fn tables_ahead(state: Arc<NodeState>) {
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
    let day = crate::clock::Clock::Fixed(at).today();
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
pub(super) fn ready_tables(state: &NodeState, today: time::Date) -> Result<(), String> {
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
