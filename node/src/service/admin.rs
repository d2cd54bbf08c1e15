//! `pluis.v1.Admin`: an operator's changes to the running node, over its
//! admin socket ([`crate::ops::admin`]).
//!
//! An import here is the same import as into a stopped node (same checks,
//! same all-or-nothing, same error lines, same audit entry), run at
//! background priority ([`crate::ops::background`]) while the node goes on
//! serving. Its new generation is staged beside the active one, the
//! tables of every peer's view are built for it, and only then are both
//! made visible together: a partner's exchange and a coordinator's query
//! see the old signals or the new ones, never a mix. An erasure goes the
//! same way. One operator's change runs at a time.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pluis_proto::identifier::{Bsn, SubjectKey};
use pluis_proto::pb;
use tokio::sync::mpsc;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status, Streaming};

use crate::ops::import::{ImportError, ImportOptions, Progress};
use crate::server::state::NodeState;

/// Serves the operator's admin calls.
#[derive(Debug)]
pub struct AdminService {
    state: Arc<NodeState>,
}

impl AdminService {
    /// A service over the node's shared state.
    pub fn new(state: Arc<NodeState>) -> Self {
        AdminService { state }
    }
}

/// The Unix user on the other end of an admin call, for audit entries.
fn caller_uid<T>(request: &Request<T>) -> Option<u32> {
    request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| cred.uid())
}

/// Who made a change, for its audit entry.
fn actor<T>(request: &Request<T>) -> String {
    match caller_uid(request) {
        Some(uid) => format!("local operator (admin socket, uid {uid})"),
        None => "local operator (admin socket)".to_owned(),
    }
}

/// The import's bytes as they arrive over the stream, for the checker's
/// blocking reader.
struct StreamReader {
    chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Counts rows for the metrics page as they are checked.
struct Received<'a>(&'a crate::ops::metrics::Metrics);

impl Progress for Received<'_> {
    fn rows_checked(&self, rows: u64) {
        self.0.import_rows_received.store(rows, Ordering::Relaxed);
    }

    fn writing(&self, signals: u64) {
        tracing::info!(
            signals,
            "import: all rows checked; staging the new generation"
        );
    }
}

/// Runs a checked live import to its end: stage, tables, publish.
fn import_now(
    state: &NodeState,
    options: &ImportOptions,
    input: StreamReader,
    actor: &str,
) -> Result<pb::ImportReply, ImportError> {
    let live = state.live();
    let progress = Received(&state.metrics);
    let mut checked = crate::ops::import::check(
        &state.store,
        &live.taxonomy,
        options,
        Box::new(input),
        &progress,
    )?;
    checked.set_actor(actor);
    let (staged, mut report) = checked.stage(&progress)?;
    let prepared = state.tables_for_change(staged.snapshot(), "import");
    // A replacing import withdraws signals: no exchange under way is
    // served a table that still holds them once it is published.
    let withdraws = options.replace.then(|| staged.snapshot().revision());
    report.stored = staged.publish(|| state.publish_tables(prepared, withdraws))?;
    state.prune_tables();
    Ok(report.reply(state.store.len() as u64))
}

/// What the first message of an import says to do; a rejects file must
/// be named absolutely (the node's working directory is not the
/// operator's).
fn import_options(start: &pb::ImportStart, today: time::Date) -> Result<ImportOptions, Status> {
    if start.skip_invalid && !std::path::Path::new(&start.rejects).is_absolute() {
        return Err(Status::invalid_argument(
            "rejects: an absolute path is needed with skip_invalid",
        ));
    }
    Ok(ImportOptions {
        path: PathBuf::from(&start.source),
        replace: start.replace,
        skip_invalid: start.skip_invalid,
        rejects: start.skip_invalid.then(|| PathBuf::from(&start.rejects)),
        today,
    })
}

/// Hands the import stream's data to the reader, `first` first, until
/// the message marked last; a stream that ends or breaks before then is
/// an error the import reports.
async fn forward_chunks(
    first: pb::ImportChunk,
    mut stream: Streaming<pb::ImportChunk>,
    chunks: mpsc::Sender<std::io::Result<Vec<u8>>>,
) {
    let mut next = Some(first);
    loop {
        let chunk = match next.take() {
            Some(chunk) => chunk,
            None => match stream.message().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    let ended = "the import stream ended before the end of the file";
                    let _ = chunks.send(Err(std::io::Error::other(ended))).await;
                    return;
                }
                Err(status) => {
                    let broke = format!(
                        "the import stream broke off ({:?}: {})",
                        status.code(),
                        status.message()
                    );
                    let _ = chunks.send(Err(std::io::Error::other(broke))).await;
                    return;
                }
            },
        };
        if !chunk.data.is_empty() && chunks.send(Ok(chunk.data)).await.is_err() {
            return;
        }
        if chunk.last {
            // Dropping the sender ends the reader's input.
            return;
        }
    }
}

/// The reply to an import, counted and logged: what it stored, or why it
/// stored nothing (the error names files, lines, fields and rules, never
/// a value).
fn imported(state: &NodeState, done: Result<pb::ImportReply, ImportError>) -> pb::ImportReply {
    match done {
        Ok(reply) => {
            state.metrics.import("committed", reply.rows, reply.added);
            tracing::info!(
                rows = reply.rows,
                added = reply.added,
                unchanged = reply.unchanged,
                removed = reply.removed,
                rejected = reply.rejected,
                total = reply.total,
                "live import committed"
            );
            reply
        }
        Err(e) => {
            let outcome = match &e {
                ImportError::Invalid { .. } | ImportError::Header { .. } => "refused",
                _ => "failed",
            };
            let rows = state.metrics.import_rows_received.load(Ordering::Relaxed);
            state.metrics.import(outcome, rows, 0);
            tracing::warn!(outcome, "live import stored nothing");
            pb::ImportReply {
                error: e.to_string(),
                ..Default::default()
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn import(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportReply>, Status> {
        let actor = actor(&request);
        let mut stream = request.into_inner();
        let mut first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no import request"))?;
        let start = first.start.take().ok_or_else(|| {
            Status::invalid_argument("start: the first message must say what to import")
        })?;
        let options = import_options(&start, self.state.clock.today())?;
        let state = self.state.clone();
        let _one_at_a_time = state.operations.lock().await;
        let (chunks, received) = mpsc::channel(16);
        let forward = tokio::spawn(forward_chunks(first, stream, chunks));
        state.metrics.imports_running.store(1, Ordering::Relaxed);
        state
            .metrics
            .import_rows_received
            .store(0, Ordering::Relaxed);
        tracing::info!(replace = options.replace, "live import started");
        let input = StreamReader {
            chunks: received,
            current: Vec::new(),
            at: 0,
        };
        let done = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                crate::ops::background::run(|| import_now(&state, &options, input, &actor))
            })
            .await
        };
        forward.abort();
        state.metrics.imports_running.store(0, Ordering::Relaxed);
        let done = done.map_err(|_| Status::internal("import task failed"))?;
        Ok(Response::new(imported(&state, done)))
    }

    async fn reload(
        &self,
        _request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadReply>, Status> {
        let reloaded = self
            .state
            .reload()
            .await
            .map_err(|e| Status::failed_precondition(crate::error_chain(&e)))?;
        Ok(Response::new(pb::ReloadReply {
            config_sha256: reloaded.digest.to_vec(),
            detail: reloaded.detail,
        }))
    }

    async fn signals(
        &self,
        request: Request<pb::SignalsRequest>,
    ) -> Result<Response<pb::SignalsReply>, Status> {
        let purge = request.into_inner().purge_expired;
        let state = self.state.clone();
        let today = self.state.clock.today();
        let reply = tokio::task::spawn_blocking(move || {
            let purged = if purge {
                state.store.purge_expired(today).map_err(internal)?
            } else {
                0
            };
            let counts = state.store.counts(today).map_err(internal)?;
            Ok::<_, Status>(pb::SignalsReply {
                signals: counts
                    .by_signal
                    .iter()
                    .map(|((domain, signal), (active, expired))| pb::SignalCount {
                        domain: domain.code().to_owned(),
                        signal: signal.clone(),
                        active: *active,
                        expired: *expired,
                    })
                    .collect(),
                purged: purged as u64,
                purged_total: counts.purged_total,
                forgotten_total: counts.forgotten_total,
            })
        })
        .await
        .map_err(|_| Status::internal("signals task failed"))??;
        Ok(Response::new(reply))
    }

    async fn forget(
        &self,
        request: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ForgetReply>, Status> {
        let actor = actor(&request);
        let today = self.state.clock.today();
        // Parse errors name the kind of key, never the value.
        enum Who {
            Key(SubjectKey),
            LocalRef(String),
        }
        let who = match request.into_inner().who {
            Some(pb::forget_request::Who::Bsn(bsn)) => Who::Key(SubjectKey::Bsn(
                Bsn::parse(&bsn).map_err(|e| Status::invalid_argument(format!("bsn: {e}")))?,
            )),
            Some(pb::forget_request::Who::Key(key)) => Who::Key(
                SubjectKey::parse(&key, today)
                    .map_err(|e| Status::invalid_argument(format!("key: {e}")))?,
            ),
            Some(pb::forget_request::Who::LocalRef(local_ref)) => Who::LocalRef(local_ref),
            None => {
                return Err(Status::invalid_argument(
                    "who: give a bsn, key or local_ref",
                ))
            }
        };
        let state = self.state.clone();
        let _one_at_a_time = state.operations.lock().await;
        let erased = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                crate::ops::background::run(|| {
                    let staged = match &who {
                        Who::Key(key) => state.store.stage_forget_key(key, &actor),
                        Who::LocalRef(local_ref) => {
                            state.store.stage_forget_local_ref(local_ref, &actor)
                        }
                    }
                    .map_err(internal)?;
                    // Tables without the erased signals first, so that no
                    // exchange waits for them once the erasure is seen.
                    let changes = staged.changes_revision();
                    let prepared = changes
                        .then(|| state.tables_for_change(staged.snapshot(), "forget"))
                        .flatten();
                    let withdraws = changes.then(|| staged.snapshot().revision());
                    let erased = staged
                        .publish(|| state.publish_tables(prepared, withdraws))
                        .map_err(internal)?;
                    state.prune_tables();
                    Ok::<_, Status>(erased)
                })
            })
            .await
            .map_err(|_| Status::internal("forget task failed"))??
        };
        tracing::info!(erased, "forget: signals erased on request");
        Ok(Response::new(pb::ForgetReply {
            erased: erased as u64,
        }))
    }
}

/// Lets through only callers running as the node's own Unix user (or root).
pub(crate) fn same_user(owner: u32, request: Request<()>) -> Result<Request<()>, Status> {
    let uid = request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| cred.uid());
    match uid {
        Some(uid) if uid == owner || uid == 0 => Ok(request),
        Some(uid) => {
            tracing::warn!(uid, "admin call refused: another Unix user");
            Err(Status::permission_denied(format!(
                "the admin socket serves Unix user {owner} (the node's own) only, not {uid}"
            )))
        }
        None => Err(Status::permission_denied(
            "the admin socket could not tell who is calling",
        )),
    }
}
