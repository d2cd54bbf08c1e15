//! The accept loop: TCP connections, TLS handshakes done concurrently
//! under a deadline, and a connection slot per identity and in all
//! before a connection reaches the router.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::policy::Rule;
use crate::server::state::NodeState;
use crate::tls::MtlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
pub(super) type Accepted = Result<MtlsStream, std::io::Error>;

/// A connection whose handshake is done, with a slot and its silence
/// limits; or none, if it is one too many for its identity or in all (the
/// refusal logged, the connection closed).
async fn admit(state: &Arc<NodeState>, stream: MtlsStream) -> Option<MtlsStream> {
    let limits = state.live().config.connections;
    let identity = crate::audit::refusals::actor_of(Some(stream.peer()));
    match state.connections.admit(&identity, limits) {
        Ok(slot) => Some(stream.with_limits(
            Duration::from_secs(limits.first_request_secs),
            Duration::from_secs(limits.idle_secs),
            Box::new(slot),
        )),
        Err(full) => {
            let refusal = crate::audit::refusals::Refusal {
                actor: identity,
                call: "connection",
                rule: Rule::Connections,
                detail: full.to_string(),
                ..Default::default()
            };
            state.refuse(refusal).await;
            None
        }
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently, so a
/// slow or hostile client cannot hold up anyone else's connection. Each
/// handshake uses the TLS material in force when the connection came in:
/// a reload changes what new connections see, never the ones in flight.
pub(super) async fn accept_loop(
    listener: TcpListener,
    state: Arc<NodeState>,
    tx: mpsc::Sender<Accepted>,
) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = state.live().acceptor.clone();
        let tx = tx.clone();
        let metrics = state.metrics.clone();
        let state = state.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    if let Some(stream) = admit(&state, MtlsStream::new(stream)).await {
                        metrics.connection();
                        let _ = tx.send(Ok(stream)).await;
                    }
                }
                Ok(Err(e)) => tracing::info!(%remote, error = %e, "TLS handshake refused"),
                Err(_) => {
                    metrics.refused(Rule::HandshakeTimeout);
                    tracing::info!(%remote, "TLS handshake timed out");
                }
            }
        });
    }
}
