//! The admin socket: how an operator's `pluis-node import`, `reload`,
//! `signals` and `forget` reach a node that is serving, without stopping
//! it.
//!
//! A serving node holds its store (one process at a time), so these
//! commands hand their work to the node instead, over gRPC on a Unix
//! socket in its data directory, `data_dir/admin.sock`. The socket is
//! mode 0600 in a directory that is 0700, and the node also refuses any
//! caller whose Unix user is neither its own nor root: only the node's
//! operator can reach it, and it never listens on the network. Plain h2 on
//! the socket, no TLS: nothing leaves the machine.
//!
//! The commands look for the socket first and fall back to opening the
//! store themselves when no node answers on it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pluis_proto::pb;
use pluis_proto::pb::admin_client::AdminClient;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Server};

use crate::ops::import::{ImportError, ImportOptions};

/// The socket's name in the data directory.
pub const SOCKET: &str = "admin.sock";

/// How long a command waits to connect to the socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin socket of the node whose data is in `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// The admin socket being served; [`AdminSocket::stop`] closes it.
pub struct AdminSocket {
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminSocket {
    /// Stops serving and removes the socket file.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The admin socket, bound (so that commands find it) but not served yet.
pub struct BoundSocket {
    path: PathBuf,
    listener: UnixListener,
    owner: u32,
}

impl std::fmt::Debug for BoundSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSocket")
            .field("path", &self.path)
            .finish()
    }
}

/// Binds `data_dir/admin.sock`. A node that cannot make the socket still
/// serves its partners; it says why, and the commands then fail with
/// "store in use" as before. Call it from within the async runtime.
pub fn bind(data_dir: &Path) -> Option<BoundSocket> {
    let path = socket_path(data_dir);
    match bind_private(&path) {
        Ok((listener, owner)) => Some(BoundSocket {
            path,
            listener,
            owner,
        }),
        Err(e) => {
            tracing::warn!(socket = %path.display(), error = %e, "no admin socket: live import, reload and erasure need a restart of the node");
            None
        }
    }
}

/// Serves the Admin service that `admin` makes for the socket's owner
/// (its Unix user id: [`crate::service::admin`] lets only that user, or
/// root, through) on a bound socket until stopped.
pub fn serve(socket: BoundSocket, admin: impl FnOnce(u32) -> Routes) -> AdminSocket {
    let BoundSocket {
        path,
        listener,
        owner,
    } = socket;
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = async_stream_of(listener);
    let service = admin(owner);
    let task = tokio::spawn(async move {
        let served = Server::builder()
            .add_routes(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %crate::error_chain(&e), "admin socket failed");
        }
    });
    tracing::info!(socket = %path.display(), "admin socket ready");
    AdminSocket {
        path,
        stop: Some(stop),
        task,
    }
}

/// Binds the socket under a temporary name, makes it 0600, then moves it
/// into place, so it is never reachable with a looser mode. A socket file
/// left by a node that was killed is replaced: the store's lock, which
/// this node holds, says no other node serves this data directory.
fn bind_private(path: &Path) -> std::io::Result<(UnixListener, u32)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let temporary = path.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(&temporary)?.uid();
    std::fs::rename(&temporary, path)?;
    listener.set_nonblocking(true)?;
    Ok((UnixListener::from_std(listener)?, owner))
}

fn async_stream_of(
    listener: UnixListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<UnixStream>> {
    tokio_stream::wrappers::UnixListenerStream::new(listener)
}

/// A client of the running node's admin socket, if a node answers on it.
/// `None`: no node serves `data_dir` (no socket, or one a stopped node
/// left behind).
pub async fn connect(data_dir: &Path) -> Option<AdminClient<Channel>> {
    let path = socket_path(data_dir);
    if !path.exists() {
        return None;
    }
    // The URI is a placeholder: every connection goes to the socket.
    let endpoint = Endpoint::from_static("http://[::1]:1").connect_timeout(CONNECT_TIMEOUT);
    let target = path.clone();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let target = target.clone();
        async move {
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                UnixStream::connect(target).await?,
            ))
        }
    });
    match endpoint.connect_with_connector(connector).await {
        Ok(channel) => Some(AdminClient::new(channel).max_decoding_message_size(64 << 20)),
        Err(e) => {
            tracing::debug!(socket = %path.display(), error = %crate::error_chain(&e), "no node answers on the admin socket");
            None
        }
    }
}

/// Why a live import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum LiveImportError {
    /// The file could not be read (here, before or while sending it).
    #[error(transparent)]
    Read(#[from] ImportError),
    /// The node refused the import or its rows: its message, as the
    /// import into a stopped node would have printed it.
    #[error("{0}")]
    Refused(String),
    /// The call to the node failed (the node stopped, say).
    #[error("the node: {0}")]
    Call(String),
}

/// Bytes per message of a live import.
const LIVE_CHUNK: usize = 256 * 1024;

/// Sends the file `options` names (or standard input) to the running
/// node for import, as [`crate::ops::import::import`] would into a stopped one;
/// returns what the node did. A file that cannot be read to its end is
/// never imported in part: the stream ends without its last mark.
pub async fn import(
    admin: &mut AdminClient<Channel>,
    options: &ImportOptions,
) -> Result<pb::ImportReply, LiveImportError> {
    let mut input = crate::ops::import::open_input(options)?;
    let source = options.path.display().to_string();
    let rejects = if options.skip_invalid {
        let file = options
            .rejects
            .clone()
            .unwrap_or_else(|| crate::ops::import::default_rejects(options));
        std::path::absolute(&file)
            .map_err(|error| ImportError::Rejects {
                path: file.clone(),
                error,
            })?
            .display()
            .to_string()
    } else {
        String::new()
    };
    let (chunks, stream) = tokio::sync::mpsc::channel::<pb::ImportChunk>(8);
    let start = pb::ImportStart {
        source: source.clone(),
        replace: options.replace,
        skip_invalid: options.skip_invalid,
        rejects,
    };
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Read;
        let mut start = Some(start);
        loop {
            let mut data = vec![0u8; LIVE_CHUNK];
            let mut filled = 0;
            while filled < data.len() {
                match input.read(&mut data[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            data.truncate(filled);
            let last = filled < LIVE_CHUNK;
            let chunk = pb::ImportChunk {
                start: start.take(),
                data,
                last,
            };
            if chunks.blocking_send(chunk).is_err() || last {
                return Ok(());
            }
        }
    });
    let reply = admin
        .import(tokio_stream::wrappers::ReceiverStream::new(stream))
        .await;
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(ImportError::Read {
                path: source,
                error,
            }
            .into())
        }
        Err(_) => return Err(LiveImportError::Call(format!("reading {source} failed"))),
    }
    let reply = reply
        .map_err(|status| LiveImportError::Call(status.message().to_owned()))?
        .into_inner();
    if !reply.error.is_empty() {
        return Err(LiveImportError::Refused(reply.error));
    }
    Ok(reply)
}
