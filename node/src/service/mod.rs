//! The gRPC services, one file each. Handlers are thin: they check every
//! field's bounds first ([`pluis_proto::limits`]), translate between wire
//! types and the node's domain, and leave authorisation to
//! [`crate::service::auth`], which has run before any handler is reached.
//!
//! This is the one place a domain error becomes a [`Status`], and the one
//! place a refusal of a caller's input is logged ([`refuse_input`]). An
//! internal failure never crosses to another organisation as text: the
//! caller gets a generic message with a reference that this node's own
//! log has beside the full error ([`internal`]).

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod coordinator;
pub(crate) mod edge;
pub(crate) mod partner;

use pluis_proto::limits::FieldError;
use pluis_proto::SpiffeId;
use ring::rand::SecureRandom;
use tonic::Status;

use crate::audit::refusals::Refusal;
use crate::policy::Rule;
use crate::requester::question::QueryError;
use crate::responder::RespondError;
use crate::server::state::NodeState;

/// An internal failure, as the caller sees it: no paths, no store or
/// log messages, only a reference to the line in this node's log that
/// holds the error.
pub(crate) fn internal(error: &dyn std::fmt::Display) -> Status {
    let mut reference = [0u8; 6];
    // Without an OS RNG a zero reference still finds the line by time.
    let _ = ring::rand::SystemRandom::new().fill(&mut reference);
    let reference = pluis_proto::hex(&reference);
    tracing::error!(%reference, error = %error, "internal error answered to a caller");
    Status::internal(format!(
        "internal error at this node; its operator can find it in the node's log under reference {reference}"
    ))
}

/// The one place a partner's refused or failed call becomes a status.
impl From<RespondError> for Status {
    fn from(e: RespondError) -> Status {
        match e {
            RespondError::Invalid { .. } => Status::invalid_argument(e.to_string()),
            RespondError::Denied { message, .. } => Status::permission_denied(message),
            RespondError::Epoch(e) => Status::failed_precondition(e.to_string()),
            RespondError::Failed(failure) => internal(&failure),
        }
    }
}

/// The one place a coordinator's refused or failed question becomes a status.
impl From<QueryError> for Status {
    fn from(e: QueryError) -> Status {
        match e {
            QueryError::Invalid { .. } => Status::invalid_argument(e.to_string()),
            QueryError::Denied(denial) => Status::permission_denied(denial.to_string()),
            QueryError::Failed(failure) => internal(&failure),
        }
    }
}

/// The authenticated caller of a request (put there by [`crate::service::auth`]).
fn caller<T>(request: &tonic::Request<T>) -> Result<SpiffeId, Status> {
    request
        .extensions()
        .get::<crate::service::auth::Caller>()
        .map(|c| c.0.clone())
        .ok_or_else(|| internal(&"caller identity missing after authorisation"))
}

/// Logs a field out of its bounds as a refusal (rule `input`: the field,
/// the bound, the value's length and digest) and makes its status.
async fn refuse_input(
    state: &NodeState,
    caller: &SpiffeId,
    call: &'static str,
    error: &FieldError,
) -> Status {
    state
        .refuse(Refusal::input(caller.to_string(), call, error))
        .await;
    Status::invalid_argument(error.to_string())
}

/// Hands `result` back as the caller gets it; a status that `rule_of`
/// names a rule for is a refusal no one logged yet, and is logged here
/// (its message is this node's own words, naming a field or rule, never
/// a value).
async fn settle<T>(
    state: &NodeState,
    caller: &SpiffeId,
    call: &'static str,
    result: Result<T, Status>,
    rule_of: impl Fn(tonic::Code) -> Option<Rule>,
) -> Result<T, Status> {
    let status = match result {
        Ok(answer) => return Ok(answer),
        Err(status) => status,
    };
    if let Some(rule) = rule_of(status.code()) {
        let refusal = Refusal {
            actor: caller.to_string(),
            call,
            rule,
            detail: status.message().to_owned(),
            ..Refusal::default()
        };
        state.refuse(refusal).await;
    }
    Err(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_crosses_as_a_reference_only() {
        let status = internal(&"/var/lib/pluis/police/data/tables/e7.table: Permission denied");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            !status.message().contains("/var/lib") && !status.message().contains("Permission"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("reference"),
            "{}",
            status.message()
        );
        let from_respond = Status::from(RespondError::Failed(crate::failure::Failure::Task(
            "table /data/x",
        )));
        assert!(!from_respond.message().contains("/data/x"));
    }
}
