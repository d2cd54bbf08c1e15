//! `pluis.v1.Partner`: node-to-node matching (labelled OPRF-PSI).

use std::pin::Pin;

use pluis_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Serves other nodes' `Evaluate` and `GetTable` calls.
#[derive(Debug, Default)]
pub struct PartnerService;

#[tonic::async_trait]
impl pb::partner_server::Partner for PartnerService {
    async fn evaluate(
        &self,
        _request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        Err(super::not_yet("Partner.Evaluate"))
    }

    type GetTableStream = Pin<Box<dyn Stream<Item = Result<pb::TableChunk, Status>> + Send>>;

    async fn get_table(
        &self,
        _request: Request<pb::GetTableRequest>,
    ) -> Result<Response<Self::GetTableStream>, Status> {
        Err(super::not_yet("Partner.GetTable"))
    }
}
