//! `pluis.v1.Audit`: the auditor's view of the signed exchange log.
//!
//! Only durable entries are served, and every checkpoint is signed over
//! durable entries only: what an auditor saw can never be lost in a crash.
//! Pages are capped at [`PAGE_LIMIT`] entries.

use std::sync::Arc;

use pluis_proto::log::merkle;
use pluis_proto::pb;
use tonic::{Request, Response, Status};

use crate::state::NodeState;

/// Most entries in one `GetEntries` page.
pub const PAGE_LIMIT: u32 = 1000;

/// Serves auditors' log, checkpoint and proof requests.
#[derive(Debug)]
pub struct AuditService {
    state: Arc<NodeState>,
}

impl AuditService {
    /// A service over the node's shared state.
    pub fn new(state: Arc<NodeState>) -> Self {
        AuditService { state }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("audit log: {e}"))
}

/// Refuses a tree size past the durable log, naming the field.
fn within_log(audit: &crate::audit::AuditLog, field: &str, size: u64) -> Result<(), Status> {
    if size > audit.durable_size() {
        return Err(Status::out_of_range(format!(
            "{field}: {size} is past the log's {} entries",
            audit.durable_size()
        )));
    }
    Ok(())
}

fn hashes(proof: Vec<merkle::Hash>) -> Vec<Vec<u8>> {
    proof.into_iter().map(|h| h.to_vec()).collect()
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        let audit = &self.state.audit;
        audit.durable().await.map_err(internal)?;
        let (size, note) = audit.checkpoint().map_err(internal)?;
        let root = merkle::root(audit.store().audit_subtrees(), size).map_err(internal)?;
        Ok(Response::new(pb::SignedCheckpoint {
            note,
            tree_size: size,
            root_hash: root.to_vec(),
            verifier_key: audit.verifier().to_string(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let request = request.into_inner();
        let audit = &self.state.audit;
        let size = audit.durable_size();
        if request.start > size {
            return Err(Status::out_of_range(format!(
                "start: {} is past the log's {size} entries",
                request.start
            )));
        }
        let limit = if request.limit == 0 {
            PAGE_LIMIT
        } else {
            request.limit.min(PAGE_LIMIT)
        };
        let wanted = (size - request.start).min(u64::from(limit)) as usize;
        let entries = audit
            .store()
            .audit_entries(request.start, wanted)
            .map_err(internal)?;
        let next = request.start + entries.len() as u64;
        // Only the checkpoints of this page, read by key range.
        let checkpoints = if next > request.start {
            audit
                .store()
                .checkpoints(request.start + 1..=next)
                .map_err(internal)?
                .into_iter()
                .map(|(_, note)| note)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::GetEntriesResponse {
            entries: entries
                .into_iter()
                .map(|(index, entry)| pb::LogLeaf { index, entry })
                .collect(),
            next_start: next,
            tree_size: size,
            checkpoints,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let request = request.into_inner();
        let audit = &self.state.audit;
        within_log(audit, "tree_size", request.tree_size)?;
        let proof = merkle::inclusion_proof(
            audit.store().audit_subtrees(),
            request.leaf_index,
            request.tree_size,
        )
        .map_err(|e| Status::invalid_argument(format!("leaf_index: {e}")))?;
        Ok(Response::new(pb::InclusionProof {
            leaf_index: request.leaf_index,
            tree_size: request.tree_size,
            hashes: hashes(proof),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let request = request.into_inner();
        let audit = &self.state.audit;
        within_log(audit, "second_size", request.second_size)?;
        let proof = merkle::consistency_proof(
            audit.store().audit_subtrees(),
            request.first_size,
            request.second_size,
        )
        .map_err(|e| Status::invalid_argument(format!("first_size: {e}")))?;
        Ok(Response::new(pb::ConsistencyProof {
            first_size: request.first_size,
            second_size: request.second_size,
            hashes: hashes(proof),
        }))
    }
}
