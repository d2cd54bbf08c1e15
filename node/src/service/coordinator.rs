//! `pluis.v1.Coordinator`: a case coordinator's questions to their own
//! node. Thin: the caller's identity from the request, and the work in
//! [`crate::query`]; its errors become a `Status` in [`super`].

use std::sync::Arc;

use pluis_proto::pb;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::query;
use crate::state::NodeState;

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

/// The caller's SPIFFE id, for the audit log.
fn caller_id<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Caller>()
        .map_or_else(String::new, |c| c.0.to_string())
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn r#match(
        &self,
        request: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        let coordinator = caller_id(&request);
        let answer = query::case_query(&self.state, coordinator, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn screen(
        &self,
        request: Request<pb::ScreenRequest>,
    ) -> Result<Response<pb::ScreenResponse>, Status> {
        let coordinator = caller_id(&request);
        let answer = query::screen(&self.state, coordinator, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let state = &self.state;
        let peers = state.live().peers.check_all().await;
        Ok(Response::new(pb::StatusResponse {
            org: state.id.org().to_owned(),
            consortium: state.id.consortium().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: state.started.elapsed().as_secs(),
            peers,
        }))
    }
}
