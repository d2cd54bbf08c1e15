//! A server-side mutual-TLS connection that carries who is on the other
//! end into every request made on it.

use std::pin::Pin;
use std::task::{Context, Poll};

use pluis_proto::{IdentityError, Serial, SpiffeId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A server-side mutual-TLS connection, which tells tonic who is on the
/// other end: the SPIFFE id is read once per connection, at accept, and
/// every request on it carries the [`PeerIdentity`] in its extensions.
#[derive(Debug)]
pub struct MtlsStream {
    inner: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: PeerIdentity,
}

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
        MtlsStream { inner, peer }
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
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
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
