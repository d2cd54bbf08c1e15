//! `pluis.v1.Coordinator`: a case coordinator's questions to their own
//! node. Thin: the caller's identity from the request, and the work in
//! [`crate::query`]; its errors become a `Status` in [`super`].

use std::sync::Arc;

use pluis_proto::{limits, pb};
use tonic::{Request, Response, Status};

use crate::query::{self, QueryError};
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

impl CoordinatorService {
    /// A refused question is logged like any refusal; a failed one is not
    /// a refusal.
    async fn settle<T>(
        &self,
        caller: &pluis_proto::SpiffeId,
        call: &'static str,
        result: Result<T, QueryError>,
    ) -> Result<T, Status> {
        match result {
            Ok(answer) => Ok(answer),
            Err(QueryError::Invalid(message)) => {
                let status = Status::invalid_argument(message);
                Err(super::refused(&self.state, caller, call, "input", status).await)
            }
            Err(QueryError::Denied(message)) => {
                let status = Status::permission_denied(message);
                Err(super::refused(&self.state, caller, call, "purposes", status).await)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn r#match(
        &self,
        request: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        const CALL: &str = "Coordinator/Match";
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        if let Err(e) = limits::match_request(&request) {
            return Err(super::refuse_input(&self.state, &caller, CALL, &e).await);
        }
        let answer = query::case_query(&self.state, caller.to_string(), request).await;
        Ok(Response::new(self.settle(&caller, CALL, answer).await?))
    }

    async fn screen(
        &self,
        request: Request<pb::ScreenRequest>,
    ) -> Result<Response<pb::ScreenResponse>, Status> {
        const CALL: &str = "Coordinator/Screen";
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        if let Err(e) = limits::screen_request(&request) {
            return Err(super::refuse_input(&self.state, &caller, CALL, &e).await);
        }
        let answer = query::screen(&self.state, caller.to_string(), request).await;
        Ok(Response::new(self.settle(&caller, CALL, answer).await?))
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
