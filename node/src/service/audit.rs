//! `pluis.v1.Audit`: the auditor's view of the signed exchange log.

use pluis_proto::pb;
use tonic::{Request, Response, Status};

/// Serves auditors' log, checkpoint and proof requests.
#[derive(Debug, Default)]
pub struct AuditService;

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        Err(super::not_yet("Audit.GetCheckpoint"))
    }

    async fn get_entries(
        &self,
        _request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        Err(super::not_yet("Audit.GetEntries"))
    }

    async fn get_inclusion_proof(
        &self,
        _request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        Err(super::not_yet("Audit.GetInclusionProof"))
    }

    async fn get_consistency_proof(
        &self,
        _request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        Err(super::not_yet("Audit.GetConsistencyProof"))
    }
}
