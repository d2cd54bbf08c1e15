//! `pluis.v1.Partner`: node-to-node matching (labelled OPRF-PSI). Thin:
//! the caller's identity from the request, a span, and the work in
//! [`crate::respond`]; its errors become a `Status` in [`super`].

use std::pin::Pin;
use std::sync::Arc;

use pluis_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::respond;
use crate::state::NodeState;

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
}

#[tonic::async_trait]
impl pb::partner_server::Partner for PartnerService {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        let (ctx, exchange) = respond::context(request.context.clone())?;
        let span = tracing::info_span!(
            "evaluate",
            %exchange,
            peer = %caller.org(),
            purpose = %ctx.purpose,
            keys = request.blinded.len()
        );
        let response = respond::evaluate(&self.state, &caller, request, &ctx)
            .instrument(span)
            .await?;
        Ok(Response::new(response))
    }

    type GetTableStream = Pin<Box<dyn Stream<Item = Result<pb::TableChunk, Status>> + Send>>;

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<Self::GetTableStream>, Status> {
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        let (ctx, exchange) = respond::context(request.context.clone())?;
        let span = tracing::info_span!(
            "get_table",
            %exchange,
            peer = %caller.org(),
            purpose = %ctx.purpose,
            prefix_bits = request.prefix_bits
        );
        let chunks = respond::table(&self.state, &caller, request, &ctx)
            .instrument(span)
            .await?;
        let stream: Self::GetTableStream = Box::pin(tokio_stream::iter(chunks.into_iter().map(Ok)));
        Ok(Response::new(stream))
    }
}
