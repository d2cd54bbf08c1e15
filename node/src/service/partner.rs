//! `pluis.v1.Partner`: node-to-node matching (labelled OPRF-PSI). Thin:
//! the caller's identity from the request, every field's bound checked
//! before anything else, a span, and the work in [`crate::responder`]; its
//! errors become a `Status` in [`super`].

use std::pin::Pin;
use std::sync::Arc;

use pluis_proto::{limits, pb};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::policy::Rule;
use crate::responder::{self, RespondError};
use crate::server::state::NodeState;

/// Serves other nodes' `Evaluate` and `GetTable` calls.
#[derive(Debug)]
pub struct PartnerService {
    state: Arc<NodeState>,
}

impl PartnerService {
    /// A service over the node's shared state.
    pub fn new(state: Arc<NodeState>) -> Self {
        PartnerService { state }
    }

    /// The purpose for a log line: the name, if this node's config has
    /// it; a caller's other text stays out of the log.
    fn shown_purpose(&self, purpose: &str) -> String {
        let live = self.state.live();
        crate::ops::metrics::Metrics::known(
            purpose,
            live.purposes().iter().map(|p| p.name.as_str()),
        )
        .to_owned()
    }

    /// A malformed request is a refusal, logged here; policy refusals
    /// were logged where they were decided.
    async fn settle<T>(
        &self,
        caller: &pluis_proto::SpiffeId,
        call: &'static str,
        result: Result<T, RespondError>,
    ) -> Result<T, Status> {
        let result = result.map_err(Status::from);
        super::settle(&self.state, caller, call, result, |code| {
            (code == tonic::Code::InvalidArgument).then_some(Rule::Input)
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::partner_server::Partner for PartnerService {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        const CALL: &str = "Partner/Evaluate";
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        if let Err(e) = limits::evaluate(&request) {
            return Err(super::refuse_input(&self.state, &caller, CALL, &e).await);
        }
        let (ctx, id) = responder::context(request.context.clone())?;
        let span = tracing::info_span!(
            "evaluate",
            exchange = %id,
            peer = %caller.org(),
            purpose = %self.shown_purpose(&ctx.purpose),
            keys = request.blinded.len()
        );
        let response = responder::evaluate(&self.state, &caller, request, &ctx, id)
            .instrument(span)
            .await;
        Ok(Response::new(self.settle(&caller, CALL, response).await?))
    }

    type GetTableStream = Pin<Box<dyn Stream<Item = Result<pb::TableChunk, Status>> + Send>>;

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<Self::GetTableStream>, Status> {
        const CALL: &str = "Partner/GetTable";
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        if let Err(e) = limits::get_table(&request) {
            return Err(super::refuse_input(&self.state, &caller, CALL, &e).await);
        }
        let (ctx, id) = responder::context(request.context.clone())?;
        let span = tracing::info_span!(
            "get_table",
            exchange = %id,
            peer = %caller.org(),
            purpose = %self.shown_purpose(&ctx.purpose),
            prefix_bits = request.prefix_bits
        );
        let chunks = responder::table(&self.state, &caller, request, &ctx, id)
            .instrument(span)
            .await;
        let chunks = self.settle(&caller, CALL, chunks).await?;
        let stream: Self::GetTableStream = Box::pin(tokio_stream::iter(chunks.into_iter().map(Ok)));
        Ok(Response::new(stream))
    }
}
