//! Refusals after the TLS handshake: each one a bounded audit entry and a
//! metric, and a flood of them a summary.
//!
//! Whatever refuses a call — authorisation in [`crate::service::auth`], a field out
//! of its bounds ([`pluis_proto::limits`]), a policy rule — hands a
//! [`Refusal`] to [`Refusals::record`]. The entry it writes holds the rule,
//! the caller's SPIFFE id (from its certificate), the call, and the sizes
//! and digests of what was refused, never its text: a purpose or legal
//! basis is recorded only when it is one this node's own config names.
//!
//! A caller may not fill the log: per caller, the first
//! [`RefusalBudget::per_interval`] refusals of an interval are logged one
//! by one; the rest are counted, per rule, and written as one summary
//! entry when the interval is over ([`Refusals::flush`], which the node
//! calls every interval and at stop). At most [`MAX_CALLERS`] callers are
//! tracked at once; refusals of callers past that are counted under one
//! shared key, so memory is bounded too.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pluis_proto::limits::FieldError;
use pluis_proto::pb::{self, audit_entry::Kind};

use super::AuditLog;
use crate::config::RefusalBudget;
use crate::ops::metrics::Metrics;
use crate::policy::Rule;

/// Callers whose refusals are tracked one by one at once.
pub const MAX_CALLERS: usize = 1024;

/// The key under which callers past [`MAX_CALLERS`] are counted.
const OVERFLOW: &str = "(other callers)";

/// One refused call, as it is logged.
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    /// The caller: its SPIFFE id, or what its certificate showed.
    pub actor: String,
    /// The call, `Service/Method`.
    pub call: &'static str,
    /// The rule that refused it: a policy rule, `input`, `authorisation`.
    pub rule: Rule,
    /// Whether this is a policy refusal of a well-formed exchange (logged
    /// as `EXCHANGE_DENIED`, cross-checkable with the requester's log);
    /// otherwise `CALL_REFUSED`.
    pub exchange: bool,
    /// The exchange id, if the request had a well-formed one.
    pub exchange_id: Vec<u8>,
    /// The purpose, only if this node's config names it.
    pub purpose: String,
    /// The legal basis, only if this node's config names it.
    pub legal_basis: String,
    /// Keys the request carried.
    pub keys: u64,
    /// SHA-256 of the request.
    pub request_digest: Vec<u8>,
    /// Our own words: the rule's explanation, a field's name, length
    /// and digest. Never the caller's text.
    pub detail: String,
}

impl Refusal {
    /// A refusal of a field out of its bounds: its name, the bound, the
    /// value's length and digest.
    pub fn input(actor: String, call: &'static str, error: &FieldError) -> Self {
        Refusal {
            actor,
            call,
            rule: Rule::Input,
            detail: format!(
                "{call}: {error} (value {} bytes, sha256 {})",
                error.len,
                pluis_proto::hex(&error.digest[..8])
            ),
            ..Refusal::default()
        }
    }
}

/// Who a connection's certificate says is calling, for a refusal's
/// entry: its SPIFFE id, else its serial (what the certificate says
/// instead is not repeated: its holder may have had anything signed).
pub fn actor_of(peer: Option<&crate::tls::PeerIdentity>) -> String {
    match peer {
        None => "no client certificate".to_owned(),
        Some(peer) => match &peer.id {
            Ok(id) => id.to_string(),
            Err(_) => format!(
                "certificate serial {} without a usable SPIFFE id",
                peer.serial
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), ToString::to_string)
            ),
        },
    }
}

#[derive(Debug, Default)]
struct Window {
    started_secs: u64,
    logged: u32,
    suppressed: u64,
    rules: BTreeMap<Rule, u64>,
}

/// Per caller, this interval's refusals.
#[derive(Debug)]
pub struct Refusals {
    budget: Mutex<RefusalBudget>,
    windows: Mutex<BTreeMap<String, Window>>,
}

impl Refusals {
    /// Refusal tracking under `budget`.
    pub fn new(budget: RefusalBudget) -> Self {
        Refusals {
            budget: Mutex::new(budget),
            windows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Puts a reloaded budget in force.
    pub fn set_budget(&self, budget: RefusalBudget) {
        *crate::lock(&self.budget) = budget;
    }

    /// Counts `refusal` and logs it: as an entry of its own within the
    /// caller's budget, else counted towards the interval's summary.
    /// Appends only; returns whether an entry was appended (the caller
    /// makes it durable, or leaves that to the next group commit).
    pub fn record(
        &self,
        audit: &AuditLog,
        metrics: &Metrics,
        now_secs: u64,
        refusal: &Refusal,
    ) -> bool {
        metrics.refused(refusal.rule);
        tracing::warn!(
            actor = %refusal.actor,
            call = refusal.call,
            rule = refusal.rule.name(),
            "call refused"
        );
        let budget = *crate::lock(&self.budget);
        let due = {
            let mut windows = crate::lock(&self.windows);
            let key = if windows.contains_key(&refusal.actor) || windows.len() < MAX_CALLERS {
                refusal.actor.as_str()
            } else {
                OVERFLOW
            };
            let window = windows.entry(key.to_owned()).or_insert_with(|| Window {
                started_secs: now_secs,
                ..Window::default()
            });
            let due = if now_secs >= window.started_secs + budget.interval_secs {
                let old = std::mem::take(window);
                window.started_secs = now_secs;
                Some(old)
            } else {
                None
            };
            let log = key != OVERFLOW && window.logged < budget.per_interval;
            if log {
                window.logged += 1;
            } else {
                window.suppressed += 1;
                *window.rules.entry(refusal.rule).or_default() += 1;
            }
            (due, log, key.to_owned())
        };
        let (due, log, key) = due;
        if let Some(old) = due {
            summarise(audit, &key, &old, budget);
        }
        if !log {
            return false;
        }
        let kind = if refusal.exchange {
            Kind::ExchangeDenied
        } else {
            Kind::CallRefused
        };
        let entry = pb::AuditEntry {
            actor: refusal.actor.clone(),
            counterparty: audit.own_id().to_owned(),
            exchange_id: refusal.exchange_id.clone(),
            purpose: refusal.purpose.clone(),
            legal_basis: refusal.legal_basis.clone(),
            keys_asked: refusal.keys,
            request_digest: refusal.request_digest.clone(),
            detail: format!("denied by policy rule {}: {}", refusal.rule, refusal.detail),
            ..audit.entry(kind)
        };
        match audit.store().append_audit(&entry) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, rule = refusal.rule.name(), "could not log a refusal");
                false
            }
        }
    }

    /// Writes the summary of every interval that is over (all of them
    /// with `all`, at stop) and forgets callers with nothing pending.
    pub fn flush(&self, audit: &AuditLog, now_secs: u64, all: bool) {
        let budget = *crate::lock(&self.budget);
        let over: Vec<(String, Window)> = {
            let mut windows = crate::lock(&self.windows);
            let done: Vec<String> = windows
                .iter()
                .filter(|(_, w)| all || now_secs >= w.started_secs + budget.interval_secs)
                .map(|(k, _)| k.clone())
                .collect();
            done.into_iter()
                .filter_map(|k| windows.remove(&k).map(|w| (k, w)))
                .collect()
        };
        for (actor, window) in over {
            summarise(audit, &actor, &window, budget);
        }
    }
}

/// The one entry for the refusals of `actor` that were not logged one by
/// one in `window`, if there were any.
fn summarise(audit: &AuditLog, actor: &str, window: &Window, budget: RefusalBudget) {
    if window.suppressed == 0 {
        return;
    }
    let rules = window
        .rules
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let entry = pb::AuditEntry {
        actor: actor.to_owned(),
        counterparty: audit.own_id().to_owned(),
        refusals: window.suppressed,
        detail: format!(
            "summary: {} more refusals in the {} s from {} not logged one by one (over {} per interval): {rules}",
            window.suppressed, budget.interval_secs, window.started_secs, budget.per_interval
        ),
        ..audit.entry(Kind::CallRefused)
    };
    if let Err(e) = audit.store().append_audit(&entry) {
        tracing::error!(error = %e, "could not log a summary of refusals");
    }
    tracing::warn!(
        actor,
        refusals = window.suppressed,
        "refusals past the per-interval budget, summarised in one entry"
    );
}
