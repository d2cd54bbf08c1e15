//! What `Evaluate` and `GetTable` share: the error a partner's call
//! ends in, the exchange's context, and the call as this node answers it
//! — who, under which policy, its audit entry, and how a refusal is
//! logged (one bounded entry, or a count towards the caller's summary)
//! and counted.

use pluis_proto::exchange::{self, Epoch, ExchangeId};
use pluis_proto::oprf::EpochKey;
use pluis_proto::pb::{self, audit_entry::Kind};
use pluis_proto::{OrgId, SpiffeId};

use crate::audit::refusals::Refusal;
use crate::audit::AuditError;
use crate::failure::Failure;
use crate::ops::metrics::{Metrics, Outcome};
use crate::policy::Rule;
use crate::responder::epochs::EpochError;
use crate::responder::served::ExchangeOf;
use crate::server::live::Live;
use crate::server::state::NodeState;

/// Why a partner's call was not answered. Messages name the field or the
/// policy rule, never a value. The first three are the caller's doing;
/// the rest are this node's, and cross to the caller only as a reference
/// ([`crate::service`]).
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// A field is not what the protocol allows (the field named).
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, as a path into the request.
        field: String,
        /// What is wrong with it.
        problem: Malformed,
    },
    /// A rule refuses it (the refusal is logged): the rule, and the
    /// message the caller gets.
    #[error("{message}")]
    Denied {
        /// The rule that refused.
        rule: Rule,
        /// The caller's message: the rule and our own words.
        message: String,
    },
    /// The epoch asked for is not served.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// This node failed: its store, a task or its audit log.
    #[error(transparent)]
    Failed(#[from] Failure),
}

impl From<AuditError> for RespondError {
    fn from(e: AuditError) -> Self {
        RespondError::Failed(Failure::Audit(e))
    }
}

/// How a field of a partner's request is malformed.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// Absent where the call needs it.
    #[error("missing")]
    Missing,
    /// Not of the length the protocol fixes.
    #[error("must be {0} bytes")]
    Length(usize),
    /// A blinded element that is not a group element.
    #[error(transparent)]
    Element(#[from] pluis_proto::oprf::OprfError),
    /// A bucket prefix that does not fit its bit length.
    #[error(transparent)]
    Prefix(#[from] pluis_proto::table::TableError),
}

impl RespondError {
    pub(super) fn invalid(field: impl Into<String>, problem: impl Into<Malformed>) -> Self {
        RespondError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// An exchange's context, whose bounds [`pluis_proto::limits::context`]
/// checked at the service edge; with its id.
pub fn context(
    context: Option<pb::ExchangeContext>,
) -> Result<(pb::ExchangeContext, ExchangeId), RespondError> {
    let context = context.ok_or_else(|| RespondError::invalid("context", Malformed::Missing))?;
    let id = ExchangeId::from_wire(&context.exchange_id).ok_or_else(|| {
        RespondError::invalid("context.exchange_id", Malformed::Length(ExchangeId::LEN))
    })?;
    Ok((context, id))
}

/// One partner's call, as this node answers it: who, the policy in force
/// when it came (a reload during it changes the next call, not this one),
/// the exchange, the request's digest.
pub(super) struct Call<'a> {
    pub state: &'a NodeState,
    pub call: &'static str,
    pub live: std::sync::Arc<Live>,
    pub caller: &'a SpiffeId,
    pub ctx: &'a pb::ExchangeContext,
    pub request_digest: [u8; 32],
}

impl<'a> Call<'a> {
    /// A call with `request` from `caller`, under the policy in force now.
    pub fn new(
        state: &'a NodeState,
        call: &'static str,
        caller: &'a SpiffeId,
        ctx: &'a pb::ExchangeContext,
        request: &impl prost::Message,
    ) -> Self {
        Call {
            state,
            call,
            live: state.live(),
            caller,
            ctx,
            request_digest: exchange::request_digest(request),
        }
    }

    /// The audit entry of this exchange: who, which exchange, purpose,
    /// legal basis and the request's digest.
    pub fn entry(&self, kind: Kind) -> pb::AuditEntry {
        pb::AuditEntry {
            actor: self.caller.to_string(),
            counterparty: self.state.id.to_string(),
            exchange_id: self.ctx.exchange_id.clone(),
            purpose: self.ctx.purpose.clone(),
            legal_basis: self.ctx.legal_basis.clone(),
            request_digest: self.request_digest.to_vec(),
            ..self.state.audit.entry(kind)
        }
    }

    /// The key of the epoch asked for (`None`: the current one), and the
    /// exchange as [`crate::responder::served`] knows it; an epoch not served is a
    /// refusal, logged.
    pub async fn epoch<'p>(
        &'p self,
        requested: Option<Epoch>,
        keys: u64,
        peer: &'p str,
        id: ExchangeId,
    ) -> Result<(Epoch, std::sync::Arc<EpochKey>, ExchangeOf<'p>), RespondError> {
        match self
            .state
            .epochs
            .key(requested, self.state.clock.now_secs())
        {
            Ok((epoch, key)) => {
                let of = ExchangeOf {
                    peer,
                    id,
                    purpose: &self.ctx.purpose,
                    epoch,
                };
                Ok((epoch, key, of))
            }
            Err(e) => {
                self.refuse(keys, Rule::Epoch, e.to_string()).await;
                Err(e.into())
            }
        }
    }

    /// Counts the exchange for the metrics page, labelled only with names
    /// from this node's own config.
    pub fn count(&self, outcome: Outcome) {
        let live = &self.live;
        let peer = Metrics::known(self.caller.org(), live.policies.keys().map(OrgId::as_str));
        let purpose = Metrics::known(
            &self.ctx.purpose,
            live.purposes().iter().map(|p| p.name.as_str()),
        );
        self.state.metrics.exchange(peer, purpose, outcome);
    }

    /// Logs a refusal (one bounded entry, durably, or a count towards the
    /// caller's summary), counts it, and makes its error. The purpose and
    /// legal basis go into the entry only where this node's own config
    /// names them for this peer: a refused text is the caller's.
    pub async fn refuse(&self, keys: u64, rule: Rule, message: String) -> RespondError {
        self.count(Outcome::Denied);
        let bound = self
            .live
            .policies
            .get(self.caller.org())
            .and_then(|p| p.purposes.get(&self.ctx.purpose));
        let legal_basis = match bound {
            Some(basis) if basis.trim() == self.ctx.legal_basis.trim() => basis.clone(),
            _ => String::new(),
        };
        let claimed = |field: &str, text: &str| {
            format!(
                "{field} {} bytes sha256 {}",
                text.len(),
                pluis_proto::hex(&pluis_proto::log::digest(text.as_bytes())[..8])
            )
        };
        let refusal = Refusal {
            actor: self.caller.to_string(),
            call: self.call,
            rule,
            exchange: true,
            exchange_id: self.ctx.exchange_id.clone(),
            purpose: bound.map_or_else(String::new, |_| self.ctx.purpose.clone()),
            legal_basis,
            keys,
            request_digest: self.request_digest.to_vec(),
            detail: format!(
                "{message} ({}, {})",
                claimed("purpose", &self.ctx.purpose),
                claimed("legal_basis", &self.ctx.legal_basis)
            ),
        };
        self.state.refuse(refusal).await;
        RespondError::Denied { rule, message }
    }
}
