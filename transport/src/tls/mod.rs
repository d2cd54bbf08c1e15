//! Mutual TLS for every Pluis hop, with rustls on the `ring` provider.
//!
//! Both ends are built here from one loaded [`TlsIdentity`]:
//! * the server requires a client certificate that chains to the consortium
//!   CA (authorisation by role happens afterwards, in the node's `auth`);
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

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pluis_proto::{RevocationList, Role, Serial, SpiffeId};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

mod connect;
mod stream;
mod verify;

pub use connect::{check_https_url, connect};
pub use stream::{MtlsStream, PeerIdentity};
pub use verify::{OnRefusal, Refusal, Revocations};
use verify::{ReportingClientVerifier, SpiffeServerVerifier};

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
    NodeOf(pluis_proto::OrgId),
}

#[cfg(test)]
mod tests {
    use super::*;

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
