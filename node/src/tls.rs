//! Mutual TLS for every Pluis hop, with rustls on the `ring` provider.
//!
//! Both ends are built here from one loaded [`TlsIdentity`]:
//! * the server requires a client certificate that chains to the consortium
//!   CA (authorisation by role happens afterwards, in [`crate::auth`]);
//! * the client checks the server's chain and host name *and* that the
//!   server's SPIFFE id is a node of this consortium (optionally of one
//!   given org), so that one partner's node cannot stand in for another's.
//!
//! tonic does no TLS of its own here: the server accepts TLS streams we
//! hand it, and channels connect through [`connect`], so an `https://` URL
//! can never silently fall back to plaintext.
//!
//! A node may load CRLs signed by the consortium CA ([`TlsIdentity::with_crls`]):
//! a certificate they list is refused at the handshake, both when it calls
//! the node (a stolen coordinator laptop, a partner that left) and when
//! the node calls it; each refusal is logged with the SPIFFE id and serial.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use pluis_proto::{IdentityError, RevocationList, Role, Serial, SpiffeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// Why TLS material could not be loaded or used. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} {path}: {error}")]
    Read {
        /// "CA certificate", "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate's SPIFFE identity is missing or not what the role needs.
    #[error("{path}: {reason}")]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the material (for example a key that does not match).
    #[error("TLS setup with certificate {cert} and key {key}: {error}")]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's error.
        error: rustls::Error,
    },
    /// A URL that is not `https://host:port`.
    #[error("{0}")]
    Url(String),
    /// A CRL file is unusable, or does not fit this consortium's CA.
    #[error("CRL {path}: {reason}")]
    Crl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The certificates the loaded CRLs revoke.
#[derive(Debug, Default, Clone)]
pub struct Revocations {
    serials: BTreeSet<Serial>,
    /// Per CRL file: its number (if any) and how many it lists.
    files: Vec<(PathBuf, Option<u64>, usize)>,
}

impl Revocations {
    /// Whether a certificate with `serial` is revoked.
    pub fn is_revoked(&self, serial: &Serial) -> bool {
        self.serials.contains(serial)
    }

    /// How many certificates are revoked.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    /// One line for logs: files, CRL numbers, counts.
    pub fn describe(&self) -> String {
        if self.files.is_empty() {
            return "no CRLs".into();
        }
        self.files
            .iter()
            .map(|(path, number, count)| {
                let number = number.map_or_else(|| "-".into(), |n| n.to_string());
                format!("{} (number {number}, {count} revoked)", path.display())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A client the server refused at the handshake, for logs and metrics.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The SPIFFE id the certificate claims, if it has one.
    pub id: Option<SpiffeId>,
    /// Its serial, if it parses.
    pub serial: Option<Serial>,
    /// Whether a CRL revokes it (otherwise: any other reason).
    pub revoked: bool,
    /// rustls's reason.
    pub reason: String,
}

/// Called for every client certificate the server refuses.
pub type OnRefusal = Arc<dyn Fn(&Refusal) + Send + Sync>;

/// This side's certificate, key and trust anchor, loaded and checked.
#[derive(Clone)]
pub struct TlsIdentity {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    id: SpiffeId,
    serial: Serial,
    cert_path: PathBuf,
    key_path: PathBuf,
    ca_path: PathBuf,
    crls: Vec<CertificateRevocationListDer<'static>>,
    revocations: Arc<Revocations>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TlsIdentity").field("id", &self.id).finish()
    }
}

/// The ring provider, named once so no other provider can slip in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

fn pem_certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "holds no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

impl TlsIdentity {
    /// Loads CA, certificate and key from PEM files and reads the SPIFFE id
    /// of the certificate, which must carry the given role.
    pub fn load(ca: &Path, cert: &Path, key: &Path, role: Role) -> Result<Self, TlsError> {
        let ca_certs = pem_certs(ca, &read("CA certificate", ca)?)?;
        let mut roots = RootCertStore::empty();
        for c in ca_certs {
            roots.add(c).map_err(|e| TlsError::Pem {
                path: ca.to_owned(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let chain = pem_certs(cert, &read("certificate", cert)?)?;
        let key_der = PrivateKeyDer::from_pem_slice(&read("private key", key)?).map_err(|e| {
            TlsError::Pem {
                path: key.to_owned(),
                reason: format!("holds no usable private key: {e}"),
            }
        })?;
        let identity_error = |reason: String| TlsError::Identity {
            path: cert.to_owned(),
            reason,
        };
        let id =
            SpiffeId::from_certificate_der(&chain[0]).map_err(|e| identity_error(e.to_string()))?;
        if id.role() != role {
            return Err(identity_error(format!(
                "certificate is for {id}, but this needs a {role} certificate"
            )));
        }
        let serial =
            Serial::of_certificate(&chain[0]).map_err(|e| identity_error(e.to_string()))?;
        let identity = TlsIdentity {
            roots: Arc::new(roots),
            chain,
            key: Arc::new(key_der),
            id,
            serial,
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            ca_path: ca.to_owned(),
            crls: Vec::new(),
            revocations: Arc::default(),
        };
        // Build a client config once so that a key that does not match its
        // certificate is reported now, naming the files, not at first use.
        identity.client_config(ExpectedServer::AnyNode)?;
        Ok(identity)
    }

    /// The SPIFFE id this identity presents.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The serial of this identity's certificate.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The certificates the loaded CRLs revoke.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Loads CRLs (PEM files) that this identity's servers and clients
    /// then check every peer certificate against. Each must be signed by
    /// the consortium CA and must not revoke this identity's own
    /// certificate; otherwise the error names the file and why.
    pub fn with_crls(mut self, paths: &[PathBuf]) -> Result<Self, TlsError> {
        let mut revocations = Revocations::default();
        let mut crls = Vec::new();
        for path in paths {
            let crl_error = |reason: String| TlsError::Crl {
                path: path.clone(),
                reason,
            };
            let bytes = read("CRL", path)?;
            let found = CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crl_error(format!("not a PEM CRL file: {e}")))?;
            if found.is_empty() {
                return Err(crl_error("holds no X509 CRL block".into()));
            }
            for der in found {
                let list = RevocationList::parse(&der).map_err(|e| crl_error(e.to_string()))?;
                self.check_crl(&der)
                    .map_err(|reason| crl_error(format!("{reason} (issuer {})", list.issuer)))?;
                revocations
                    .files
                    .push((path.clone(), list.number, list.revoked.len()));
                revocations
                    .serials
                    .extend(list.revoked.into_iter().map(|r| r.serial));
                crls.push(der);
            }
        }
        self.crls = crls;
        self.revocations = Arc::new(revocations);
        Ok(self)
    }

    /// Checks one CRL the way a handshake will: this identity's own
    /// certificate, verified with only that CRL, must pass.
    fn check_crl(&self, der: &CertificateRevocationListDer<'static>) -> Result<(), String> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .with_crls([der.clone()])
            .only_check_end_entity_revocation()
            .build()
            .map_err(|e| e.to_string())?;
        let ca = self.ca_path.display();
        match verifier.verify_client_cert(&self.chain[0], &self.chain[1..], UnixTime::now()) {
            Ok(_) => Ok(()),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)) => Err(format!(
                "revokes this node's own certificate (serial {}); issue the node a new one before loading this CRL",
                self.serial
            )),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownRevocationStatus)) => {
                Err(format!("is not a CRL of the CA in {ca}"))
            }
            Err(e) => Err(format!("does not verify against the CA in {ca}: {e}")),
        }
    }

    fn rustls_error(&self, error: rustls::Error) -> TlsError {
        TlsError::Rustls {
            cert: self.cert_path.clone(),
            key: self.key_path.clone(),
            error,
        }
    }

    /// A server config that demands a client certificate from this CA,
    /// not revoked by the loaded CRLs; `on_refusal` hears of every client
    /// certificate refused.
    pub fn server_config(
        &self,
        on_refusal: Option<OnRefusal>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider());
        if !self.crls.is_empty() {
            builder = builder
                .with_crls(self.crls.iter().cloned())
                .only_check_end_entity_revocation();
        }
        let webpki = builder
            .build()
            .map_err(|e| self.rustls_error(rustls::Error::General(e.to_string())))?;
        let verifier: Arc<dyn ClientCertVerifier> = match on_refusal {
            None => webpki,
            Some(on_refusal) => Arc::new(ReportingClientVerifier {
                inner: webpki,
                on_refusal,
            }),
        };
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.rustls_error(e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.rustls_error(e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client config that presents this identity and accepts only a node
    /// of this consortium as the server.
    pub fn client_config(&self, expected: ExpectedServer) -> Result<Arc<ClientConfig>, TlsError> {
        let mut builder =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider());
        if !self.crls.is_empty() {
            builder = builder
                .with_crls(self.crls.iter().cloned())
                .only_check_end_entity_revocation();
        }
        let webpki = builder
            .build()
            .map_err(|e| self.rustls_error(rustls::Error::General(e.to_string())))?;
        let verifier = SpiffeServerVerifier {
            webpki,
            consortium: self.id.consortium().to_owned(),
            expected,
        };
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.rustls_error(e))?
            .dangerous() // only to add the SPIFFE check on top of webpki's
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.rustls_error(e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Which server a client is willing to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedServer {
    /// Any node of this consortium (a coordinator or auditor dialling a URL).
    AnyNode,
    /// The node of this organisation (a node dialling a configured peer).
    NodeOf(String),
}

/// webpki's chain and name checks, then the SPIFFE id of the server.
#[derive(Debug)]
struct SpiffeServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    consortium: String,
    expected: ExpectedServer,
}

#[derive(Debug, thiserror::Error)]
#[error("server certificate identity {found}: {reason}")]
struct WrongServer {
    found: String,
    reason: String,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let wrong = |found: String, reason: String| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(WrongServer { found, reason }),
            )))
        };
        let id = SpiffeId::from_certificate_der(end_entity)
            .map_err(|e| wrong("unknown".into(), e.to_string()))?;
        if id.consortium() != self.consortium || id.role() != Role::Node {
            return Err(wrong(
                id.to_string(),
                format!("expected a node of consortium {}", self.consortium),
            ));
        }
        if let ExpectedServer::NodeOf(org) = &self.expected {
            if id.org() != org {
                return Err(wrong(
                    id.to_string(),
                    format!("expected the node of org {org}"),
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// webpki's client certificate checks, reporting each refusal with the
/// identity and serial the certificate claims (never anything else).
struct ReportingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    on_refusal: OnRefusal,
}

impl fmt::Debug for ReportingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportingClientVerifier")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ClientCertVerifier for ReportingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                (self.on_refusal)(&Refusal {
                    id: SpiffeId::from_certificate_der(end_entity).ok(),
                    serial: Serial::of_certificate(end_entity).ok(),
                    revoked: matches!(
                        error,
                        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
                    ),
                    reason: error.to_string(),
                })
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

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

/// Checks that a URL is `https://host:port` (and nothing after the port).
pub fn check_https_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{url:?} must start with https:// (Pluis never talks plaintext)"
        ));
    }
    if uri.host().is_none() || uri.port_u16().is_none() {
        return Err(format!(
            "{url:?} must name a host and a port: https://HOST:PORT"
        ));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("{url:?} must not have a path"));
    }
    Ok(uri)
}

/// A lazily connecting gRPC channel to `url` over mutual TLS.
///
/// The connection is made on first use; a peer that is down does not hold
/// up start-up, and each call gets the error.
pub fn connect(
    url: &str,
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    check_https_url(url).map_err(TlsError::Url)?;
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| TlsError::Url(format!("{url:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    let connector = tower::service_fn(move |uri: Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("URL has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_host_port_urls_pass() {
        assert!(check_https_url("https://127.0.0.1:7101").is_ok());
        assert!(check_https_url("https://localhost:7101/").is_ok());
        for (bad, why) in [
            ("http://127.0.0.1:7101", "https://"),
            ("https://127.0.0.1", "port"),
            ("https://127.0.0.1:7101/x", "path"),
            ("127.0.0.1:7101", "https://"),
        ] {
            let err = check_https_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let err = TlsIdentity::load(
            Path::new("/nonexistent/ca.pem"),
            Path::new("/nonexistent/node.pem"),
            Path::new("/nonexistent/node.key"),
            Role::Node,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CA certificate /nonexistent/ca.pem"), "{err}");
    }
}
