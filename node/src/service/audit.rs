//! `pluis.v1.Audit`: the auditor's view of the signed exchange log.
//!
//! Only durable entries are served, and every checkpoint is signed over
//! durable entries only: what an auditor saw can never be lost in a crash.
//! Pages are capped at [`PAGE_LIMIT`] entries and [`PAGE_BYTES`] bytes of
//! entries (at least one entry), so that any log, however large its
//! entries, pages under gRPC's 4 MiB message limit.

use std::sync::Arc;

use pluis_proto::log::merkle;
use pluis_proto::pb;
use tonic::{Request, Response, Status};

use crate::policy::Rule;
use crate::server::state::NodeState;

/// Most entries in one `GetEntries` page.
pub const PAGE_LIMIT: u32 = 1000;
/// Most bytes of entries in one `GetEntries` page, unless its first entry
/// alone is larger (an entry is at most 1 MiB).
pub const PAGE_BYTES: usize = 1 << 20;
/// Entries read from the store at a time while filling a page.
const READ_STEP: usize = 64;

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
    super::internal(&format!("audit log: {e}"))
}

/// Up to `wanted` entries from `start`, within [`PAGE_BYTES`] (the first
/// entry always).
fn page(
    store: &crate::store::Store,
    start: u64,
    wanted: usize,
) -> Result<Vec<(u64, Vec<u8>)>, Status> {
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut bytes = 0;
    while entries.len() < wanted {
        let next = start + entries.len() as u64;
        let step = READ_STEP.min(wanted - entries.len());
        let batch = store.audit_entries(next, step).map_err(internal)?;
        if batch.is_empty() {
            break;
        }
        for (index, entry) in batch {
            if !entries.is_empty() && bytes + entry.len() > PAGE_BYTES {
                return Ok(entries);
            }
            bytes += entry.len();
            entries.push((index, entry));
        }
    }
    Ok(entries)
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

impl AuditService {
    /// An auditor's malformed or out-of-range request is a refusal, and
    /// logged as one.
    async fn settle<T>(
        &self,
        caller: &pluis_proto::SpiffeId,
        call: &'static str,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        super::settle(&self.state, caller, call, result, |code| {
            matches!(code, tonic::Code::OutOfRange | tonic::Code::InvalidArgument)
                .then_some(Rule::Input)
        })
        .await
    }

    fn entries(&self, request: pb::GetEntriesRequest) -> Result<pb::GetEntriesResponse, Status> {
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
        let entries = page(audit.store(), request.start, wanted)?;
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
        Ok(pb::GetEntriesResponse {
            entries: entries
                .into_iter()
                .map(|(index, entry)| pb::LogLeaf { index, entry })
                .collect(),
            next_start: next,
            tree_size: size,
            checkpoints,
        })
    }

    fn inclusion_proof(
        &self,
        request: pb::GetInclusionProofRequest,
    ) -> Result<pb::InclusionProof, Status> {
        let audit = &self.state.audit;
        within_log(audit, "tree_size", request.tree_size)?;
        let proof = merkle::inclusion_proof(
            audit.store().audit_subtrees(),
            request.leaf_index,
            request.tree_size,
        )
        .map_err(|e| Status::invalid_argument(format!("leaf_index: {e}")))?;
        Ok(pb::InclusionProof {
            leaf_index: request.leaf_index,
            tree_size: request.tree_size,
            hashes: hashes(proof),
        })
    }

    fn consistency_proof(
        &self,
        request: pb::GetConsistencyProofRequest,
    ) -> Result<pb::ConsistencyProof, Status> {
        let audit = &self.state.audit;
        within_log(audit, "second_size", request.second_size)?;
        let proof = merkle::consistency_proof(
            audit.store().audit_subtrees(),
            request.first_size,
            request.second_size,
        )
        .map_err(|e| Status::invalid_argument(format!("first_size: {e}")))?;
        Ok(pb::ConsistencyProof {
            first_size: request.first_size,
            second_size: request.second_size,
            hashes: hashes(proof),
        })
    }
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
        let caller = super::caller(&request)?;
        let result = self.entries(request.into_inner());
        self.settle(&caller, "Audit/GetEntries", result)
            .await
            .map(Response::new)
    }
    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let caller = super::caller(&request)?;
        let result = self.inclusion_proof(request.into_inner());
        self.settle(&caller, "Audit/GetInclusionProof", result)
            .await
            .map(Response::new)
    }
    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let caller = super::caller(&request)?;
        let result = self.consistency_proof(request.into_inner());
        self.settle(&caller, "Audit/GetConsistencyProof", result)
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pluis_proto::pb;

    #[test]
    fn a_page_holds_at_most_a_mebibyte_of_entries_but_always_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        // Entries of some 300 kB, as a log written before fields were
        // bounded may hold; and one of 1 MB.
        for size in [300_000, 300_000, 300_000, 300_000, 1_040_000, 10_000] {
            let entry = pb::AuditEntry {
                detail: "x".repeat(size),
                ..Default::default()
            };
            store.append_audit(&entry).unwrap();
        }
        let first = page(&store, 0, 6).unwrap();
        assert_eq!(first.len(), 3, "three fit in 1 MiB, four do not");
        let big = page(&store, 4, 2).unwrap();
        assert_eq!(big.len(), 1, "a larger entry comes alone");
        assert_eq!(page(&store, 5, 1).unwrap().len(), 1);
    }
}
