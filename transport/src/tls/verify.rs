//! The certificate checks added on top of webpki's: the server's SPIFFE
//! id (a node of this consortium, of the expected org), the serials the
//! loaded CRLs revoke, and a report of every client certificate refused.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use pluis_proto::{Role, Serial, SpiffeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::ExpectedServer;

/// The certificates the loaded CRLs revoke.
#[derive(Debug, Default, Clone)]
pub struct Revocations {
    pub(super) serials: BTreeSet<Serial>,
    /// Per CRL file: its number (if any) and how many it lists.
    pub(super) files: Vec<(PathBuf, Option<u64>, usize)>,
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

/// webpki's chain and name checks, then the SPIFFE id of the server.
#[derive(Debug)]
pub(super) struct SpiffeServerVerifier {
    pub(super) webpki: Arc<WebPkiServerVerifier>,
    pub(super) consortium: String,
    pub(super) expected: ExpectedServer,
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
pub(super) struct ReportingClientVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) on_refusal: OnRefusal,
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
