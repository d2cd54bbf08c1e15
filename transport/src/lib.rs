//! # pluis-transport — how Pluis programs reach a node
//!
//! The node, the coordinator's and auditor's client and the tests all
//! talk gRPC over mutual TLS, and keep some files private. What they share
//! for that lives here, so that the client does not depend on the node
//! (and its store):
//!
//! * [`tls`]: a [`tls::TlsIdentity`] loaded from PEM files and checked
//!   (its SPIFFE id, the CRLs it checks peers against), server and client
//!   configs on rustls with the ring provider, the server-side
//!   [`tls::MtlsStream`] that carries the caller's identity into every
//!   request, and [`tls::connect`] for `https://HOST:PORT` channels only;
//! * [`private_files`]: directories and files only their owner may read;
//! * [`process`]: how every Pluis program starts (umask, the ring
//!   provider, logs) and ends (one line for an error, an exit code);
//! * [`error_chain`] and [`status_detail`]: errors on one line a person
//!   can act on.

pub mod private_files;
pub mod process;
pub mod tls;

/// An error and all its causes on one line, `a: b: c`, leaving out a cause
/// whose text is already there (wrappers often repeat their source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    append_causes(&mut text, error.source());
    text
}

fn append_causes(text: &mut String, mut source: Option<&dyn std::error::Error>) {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) && cause_text != "transport error" {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
}

/// A gRPC status as one line a person can act on: code, message, causes.
pub fn status_detail(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    append_causes(&mut text, std::error::Error::source(status));
    text
}
