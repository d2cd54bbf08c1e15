//! Why a node could not start, serve or reload: one error for the
//! operator, naming the file, key or address at fault.

use std::path::PathBuf;

use pluis_proto::SpiffeId;

use crate::audit::AuditError;
use crate::config::ConfigError;
use crate::responder::epochs::EpochError;
use crate::store::StoreError;
use crate::tls::TlsError;

/// Why a node could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The certificate belongs to another org than the config says.
    #[error("{path}: certificate is for {id}, but the config says org = {org:?}")]
    WrongOrg {
        /// The certificate file.
        path: PathBuf,
        /// What the certificate says.
        id: SpiffeId,
        /// What the config says.
        org: pluis_proto::OrgId,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config's taxonomy is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gRPC server failed (its whole chain of causes).
    #[error("gRPC server: {}", crate::error_chain(.0))]
    Serve(#[source] tonic::transport::Error),
    /// The reflection service could not be built from the descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// A task of the node's own ended without an answer.
    #[error("{0} task failed")]
    Task(&'static str),
    /// The audit log cannot be used.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// No epoch key could be had.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// A reload found a certificate for another identity.
    #[error("{path}: certificate is for {now}, but this node is {was}; a running node keeps its identity (restart it to change this)")]
    IdentityChanged {
        /// The certificate file.
        path: PathBuf,
        /// The identity the node runs as.
        was: String,
        /// The one the new certificate says.
        now: String,
    },
}
