//! The refusals no handler sees: a request that does not decode (bad
//! UTF-8, a broken field, past the message size), or that names a method
//! no service has. tonic answers those before any handler runs; this
//! layer, around every network service, logs each as a refusal like any
//! other ([`crate::audit::refusals`]): the caller from its certificate, the rule,
//! and never the bytes or the path it sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use tonic::Code;

use crate::audit::refusals::Refusal;
use crate::policy::Rule;
use crate::server::state::NodeState;
use crate::tls::PeerIdentity;

/// Wraps the node's router so that tonic's own refusals are logged.
#[derive(Clone)]
pub struct EdgeLayer {
    state: Weak<NodeState>,
}

impl EdgeLayer {
    /// The layer for the node whose state is `state`.
    pub fn new(state: &Arc<NodeState>) -> Self {
        EdgeLayer {
            state: Arc::downgrade(state),
        }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    state: Weak<NodeState>,
}

/// The calls a node serves, by path; any other path is "unknown".
fn known_call(path: &str) -> Option<&'static str> {
    const CALLS: [&str; 13] = [
        "/pluis.v1.Partner/Evaluate",
        "/pluis.v1.Partner/GetTable",
        "/pluis.v1.Coordinator/Match",
        "/pluis.v1.Coordinator/Status",
        "/pluis.v1.Coordinator/Screen",
        "/pluis.v1.Coordinator/Purposes",
        "/pluis.v1.Audit/GetCheckpoint",
        "/pluis.v1.Audit/GetEntries",
        "/pluis.v1.Audit/GetInclusionProof",
        "/pluis.v1.Audit/GetConsistencyProof",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ];
    CALLS
        .iter()
        .find(|c| **c == path)
        .map(|c| c.trim_start_matches("/pluis.v1."))
}

/// The unlogged refusal a response's trailers-only status shows, if any.
fn refusal_of(headers: &http::HeaderMap) -> Option<(Rule, &'static str)> {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    unlogged_refusal(code, &message)
}

/// What a response's status says about an unlogged refusal, if anything:
/// the rule and our own words for it.
fn unlogged_refusal(code: Code, message: &str) -> Option<(Rule, &'static str)> {
    match code {
        Code::InvalidArgument if message.starts_with("not a valid message") => Some((
            Rule::Input,
            "the request did not decode as its message type",
        )),
        Code::OutOfRange | Code::ResourceExhausted
            if message.contains("message length too large") =>
        {
            Some((Rule::Input, "the request was larger than this call takes"))
        }
        Code::Unimplemented => Some((Rule::Method, "no such method is served here")),
        _ => None,
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Edge<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    R: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let peer = request.extensions().get::<PeerIdentity>().cloned();
        let call = known_call(request.uri().path());
        let state = self.state.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let refused = refusal_of(response.headers());
            if let (Some((rule, detail)), Some(state)) = (refused, state.upgrade()) {
                let actor = crate::audit::refusals::actor_of(peer.as_ref());
                let refusal = Refusal {
                    actor,
                    call: call.unwrap_or("unknown method"),
                    rule,
                    detail: detail.to_owned(),
                    ..Refusal::default()
                };
                state.refuse(refusal).await;
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_own_refusals_are_picked_up_here() {
        assert_eq!(
            unlogged_refusal(Code::InvalidArgument, "not a valid message: x").map(|r| r.0),
            Some(Rule::Input)
        );
        assert_eq!(
            unlogged_refusal(Code::InvalidArgument, "context.purpose: missing"),
            None,
            "a handler's refusal is logged by the handler"
        );
        assert_eq!(
            unlogged_refusal(Code::Unimplemented, "").map(|r| r.0),
            Some(Rule::Method)
        );
        assert_eq!(unlogged_refusal(Code::PermissionDenied, ""), None);
        assert_eq!(
            known_call("/pluis.v1.Partner/Evaluate"),
            Some("Partner/Evaluate")
        );
        assert_eq!(known_call("/x\n/forged"), None);
    }
}
