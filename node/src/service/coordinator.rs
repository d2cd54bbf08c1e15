//! `pluis.v1.Coordinator`: a case coordinator's questions to their own
//! node. Thin: the caller's identity from the request, and the work in
//! [`crate::requester::case`] and [`crate::requester::screen`]; its
//! errors become a `Status` in [`super`].

use std::sync::Arc;

use pluis_proto::{limits, pb};
use tonic::{Request, Response, Status};

use crate::policy::Rule;
use crate::requester::question::QueryError;
use crate::requester::{case, screen};
use crate::server::state::NodeState;

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

/// Hits per page of a streamed screening answer: a hit is a case
/// reference and a few domains, so a page stays far below 4 MiB.
pub const SCREEN_PAGE: usize = 5_000;

/// A screening's answer as the pages it is streamed in (each hit moved
/// once).
fn pages(answer: pb::ScreenResponse) -> Vec<pb::ScreenResponse> {
    let mut hits = answer.hits.into_iter().peekable();
    let mut pages = Vec::new();
    loop {
        let page: Vec<pb::ScreenHit> = hits.by_ref().take(SCREEN_PAGE).collect();
        if hits.peek().is_none() {
            pages.push(pb::ScreenResponse {
                hits: page,
                peers: answer.peers,
                keys_screened: answer.keys_screened,
                last: true,
                progress: None,
            });
            return pages;
        }
        pages.push(pb::ScreenResponse {
            hits: page,
            ..Default::default()
        });
    }
}

/// Progress pages a screening may have waiting for a slow reader.
const SCREEN_PROGRESS_QUEUE: usize = 16;

/// A coordinator's answer, or its error as a `Status`: a refused
/// question is logged like any refusal; a failed one is not a refusal.
async fn settle<T>(
    state: &NodeState,
    caller: &pluis_proto::SpiffeId,
    call: &'static str,
    result: Result<T, QueryError>,
) -> Result<T, Status> {
    let result = result.map_err(Status::from);
    super::settle(state, caller, call, result, |code| match code {
        tonic::Code::InvalidArgument => Some(Rule::Input),
        tonic::Code::PermissionDenied => Some(Rule::Purposes),
        _ => None,
    })
    .await
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
        let answer = case::case_query(&self.state, caller.to_string(), request).await;
        Ok(Response::new(
            settle(&self.state, &caller, CALL, answer).await?,
        ))
    }

    type ScreenStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::ScreenResponse, Status>> + Send>,
    >;

    async fn screen(
        &self,
        request: Request<pb::ScreenRequest>,
    ) -> Result<Response<Self::ScreenStream>, Status> {
        const CALL: &str = "Coordinator/Screen";
        let caller = super::caller(&request)?;
        let request = request.into_inner();
        if let Err(e) = limits::screen_request(&request) {
            return Err(super::refuse_input(&self.state, &caller, CALL, &e).await);
        }
        // The screening runs on a task of its own, streaming how far it
        // is (dropped, not waited for, if the caller reads slowly), then
        // its answer in pages.
        let (pages_tx, pages_rx) = tokio::sync::mpsc::channel(SCREEN_PROGRESS_QUEUE);
        let state = self.state.clone();
        tokio::spawn(async move {
            let progress = pages_tx.clone();
            let report = move |p: pb::ScreenProgress| {
                let _ = progress.try_send(Ok(pb::ScreenResponse {
                    progress: Some(p),
                    ..Default::default()
                }));
            };
            let answer = screen::screen(&state, caller.to_string(), request, report).await;
            match settle(&state, &caller, CALL, answer).await {
                Ok(answer) => {
                    for page in pages(answer) {
                        if pages_tx.send(Ok(page)).await.is_err() {
                            break;
                        }
                    }
                }
                Err(status) => {
                    let _ = pages_tx.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(pages_rx),
        )))
    }

    async fn purposes(
        &self,
        _request: Request<pb::PurposesRequest>,
    ) -> Result<Response<pb::PurposesResponse>, Status> {
        let purposes = self
            .state
            .live()
            .purposes()
            .iter()
            .map(|p| pb::PurposeInfo {
                name: p.name.clone(),
                legal_basis: p.legal_basis.clone(),
                screening: p.screening,
            })
            .collect();
        Ok(Response::new(pb::PurposesResponse { purposes }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let state = &self.state;
        let peers = state.live().peers.check_all().await;
        Ok(Response::new(pb::StatusResponse {
            org: state.id.org().to_string(),
            consortium: state.id.consortium().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: state.started.elapsed().as_secs(),
            peers,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screening_answer_is_paged_with_the_outcome_last() {
        let hit = |n: usize| pb::ScreenHit {
            local_ref: format!("ref-{n}"),
            ..Default::default()
        };
        let answer = pb::ScreenResponse {
            hits: (0..SCREEN_PAGE * 2 + 1).map(hit).collect(),
            peers: vec![pb::PeerOutcome::default()],
            keys_screened: 7,
            last: true,
            progress: None,
        };
        let pages = pages(answer);
        let sizes: Vec<usize> = pages.iter().map(|p| p.hits.len()).collect();
        assert_eq!(sizes, [SCREEN_PAGE, SCREEN_PAGE, 1]);
        assert!(pages[..2].iter().all(|p| !p.last && p.peers.is_empty()));
        assert!(pages[2].last && pages[2].keys_screened == 7 && pages[2].peers.len() == 1);
        assert_eq!(
            pages[2].hits[0].local_ref,
            format!("ref-{}", SCREEN_PAGE * 2)
        );
        let empty = pages_of_nothing();
        assert_eq!(empty.len(), 1);
        assert!(empty[0].last);
    }

    fn pages_of_nothing() -> Vec<pb::ScreenResponse> {
        pages(pb::ScreenResponse::default())
    }
}
