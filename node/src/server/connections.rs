//! Connection slots: how many mutual-TLS connections are open, in all and
//! per identity, so that no certificate holder can hold the node's file
//! descriptors and memory with connections that never ask for anything.
//!
//! A connection takes a [`Slot`] once its handshake is done and gives it
//! back when it closes; past `max_connections` in all, or
//! `max_connections_per_identity` for its SPIFFE id, it is closed at once
//! and the refusal logged. A connection that sends nothing within
//! `first_request_timeout` of its handshake, or nothing for
//! `idle_timeout` later, is closed (see [`crate::tls::MtlsStream::with_limits`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::config::ConnectionLimits;

/// Which limit a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_connections`.
    Total(usize),
    /// `max_connections_per_identity`.
    Identity(usize),
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::Total(max) => write!(f, "{max} connections open, at most max_connections = {max}"),
            Full::Identity(max) => write!(
                f,
                "{max} connections open for this identity, at most max_connections_per_identity = {max}"
            ),
        }
    }
}

/// Open connections, in all and per identity.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per: BTreeMap<String, usize>,
}

/// One open connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    identity: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = crate::lock(&self.connections.open);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per.get_mut(&self.identity) {
            *n -= 1;
            if *n == 0 {
                open.per.remove(&self.identity);
            }
        }
    }
}

impl Connections {
    /// A slot for a connection of `identity`, if both limits allow one.
    pub fn admit(self: &Arc<Self>, identity: &str, limits: ConnectionLimits) -> Result<Slot, Full> {
        let mut open = crate::lock(&self.open);
        if open.total >= limits.max_total {
            return Err(Full::Total(limits.max_total));
        }
        let mine = open.per.get(identity).copied().unwrap_or(0);
        if mine >= limits.max_per_identity {
            return Err(Full::Identity(limits.max_per_identity));
        }
        open.total += 1;
        open.per.insert(identity.to_owned(), mine + 1);
        Ok(Slot {
            connections: self.clone(),
            identity: identity.to_owned(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        crate::lock(&self.open).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_all_and_per_identity_and_given_back() {
        let connections = Arc::new(Connections::default());
        let limits = ConnectionLimits {
            max_total: 3,
            max_per_identity: 2,
            ..ConnectionLimits::default()
        };
        let a1 = connections.admit("a", limits).unwrap();
        let _a2 = connections.admit("a", limits).unwrap();
        assert_eq!(
            connections.admit("a", limits).unwrap_err(),
            Full::Identity(2)
        );
        let _b1 = connections.admit("b", limits).unwrap();
        assert_eq!(connections.admit("c", limits).unwrap_err(), Full::Total(3));
        drop(a1);
        assert_eq!(connections.open(), 2);
        let _a3 = connections.admit("a", limits).unwrap();
    }
}
