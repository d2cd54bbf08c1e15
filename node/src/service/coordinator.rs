//! `pluis.v1.Coordinator`: a case coordinator's questions to their own node.

use std::sync::Arc;

use pluis_proto::pb;
use tonic::{Request, Response, Status};

use crate::node::NodeState;

/// Serves this organisation's coordinators.
#[derive(Debug)]
pub struct CoordinatorService {
    state: Arc<NodeState>,
}

impl CoordinatorService {
    /// A service over the node's shared state.
    pub fn new(state: Arc<NodeState>) -> Self {
        CoordinatorService { state }
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn r#match(
        &self,
        _request: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        Err(super::not_yet("Coordinator.Match"))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let state = &self.state;
        let peers = state.peers.check_all().await;
        Ok(Response::new(pb::StatusResponse {
            org: state.id.org().to_owned(),
            consortium: state.id.consortium().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: state.started.elapsed().as_secs(),
            peers,
        }))
    }
}
