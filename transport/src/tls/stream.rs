//! A server-side mutual-TLS connection that carries who is on the other
//! end into every request made on it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pluis_proto::{IdentityError, Serial, SpiffeId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A server-side mutual-TLS connection, which tells tonic who is on the
/// other end: the SPIFFE id is read once per connection, at accept, and
/// every request on it carries the [`PeerIdentity`] in its extensions.
pub struct MtlsStream {
    inner: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: PeerIdentity,
    quiet: Option<Quiet>,
    /// Held for as long as the connection lives (a connection slot).
    _held: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for MtlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsStream")
            .field("peer", &self.peer)
            .finish()
    }
}

/// How long a connection may stay silent: before its first bytes, and
/// between any two reads after that. Past it, reading fails with
/// `TimedOut` and the server closes the connection.
struct Quiet {
    idle: std::time::Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// Why a silent connection was closed (the error reading it gives).
#[derive(Debug, thiserror::Error)]
#[error("connection closed: nothing received within {0:?}")]
pub struct SilentTooLong(pub std::time::Duration);

/// Who is on the other end of a server-side connection.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// The client's socket address (for diagnostics, never for authorisation).
    pub remote: Option<std::net::SocketAddr>,
    /// The client certificate's SPIFFE id, or why there is none.
    pub id: Result<SpiffeId, IdentityError>,
    /// The client certificate's serial, to check against CRLs loaded
    /// after the connection was made.
    pub serial: Option<Serial>,
}

impl MtlsStream {
    /// Wraps a completed server-side handshake.
    pub fn new(inner: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Self {
        let (tcp, session) = inner.get_ref();
        let leaf = session.peer_certificates().and_then(|certs| certs.first());
        let id = leaf
            .ok_or(IdentityError::NoSpiffeSan)
            .and_then(|leaf| SpiffeId::from_certificate_der(leaf));
        let peer = PeerIdentity {
            remote: tcp.peer_addr().ok(),
            id,
            serial: leaf.and_then(|leaf| Serial::of_certificate(leaf).ok()),
        };
        MtlsStream {
            inner,
            peer,
            quiet: None,
            _held: None,
        }
    }

    /// Closes the connection if its first bytes do not come within
    /// `first`, or if it then stays silent for `idle`; `held` (a
    /// connection slot, say) is dropped when the connection is.
    pub fn with_limits(
        mut self,
        first: std::time::Duration,
        idle: std::time::Duration,
        held: Box<dyn Send + Sync>,
    ) -> Self {
        self.quiet = Some(Quiet {
            idle,
            deadline: Box::pin(tokio::time::sleep(first)),
        });
        self._held = Some(held);
        self
    }

    /// Who is on the other end.
    pub fn peer(&self) -> &PeerIdentity {
        &self.peer
    }
}

impl tonic::transport::server::Connected for MtlsStream {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> PeerIdentity {
        self.peer.clone()
    }
}

impl AsyncRead for MtlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(quiet) = &mut this.quiet else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let next = tokio::time::Instant::now() + quiet.idle;
                quiet.deadline.as_mut().reset(next);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match quiet.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let waited = quiet.idle;
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        SilentTooLong(waited),
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for MtlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
