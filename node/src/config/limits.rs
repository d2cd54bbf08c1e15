//! The config's limits and addresses as the parts of the node take them:
//! connection caps and timeouts, the refusal log's budget, the metrics
//! address. Each has its defaults here, where the config reads it.

use std::net::SocketAddr;

/// The connection limits of the config (reloadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Seconds from handshake to the first bytes (default 10).
    pub first_request_secs: u64,
    /// Seconds a connection may stay silent later (default 300).
    pub idle_secs: u64,
    /// Open connections in all (default 1024).
    pub max_total: usize,
    /// Open connections per SPIFFE id (default 64).
    pub max_per_identity: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            first_request_secs: 10,
            idle_secs: 300,
            max_total: 1024,
            max_per_identity: 64,
        }
    }
}

/// How many refusals per caller are logged one by one, per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalBudget {
    /// Entries per caller per interval (config `refusals_logged_per_interval`, default 20).
    pub per_interval: u32,
    /// The interval in seconds (config `refusal_interval`, default 60 s).
    pub interval_secs: u64,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        RefusalBudget {
            per_interval: 20,
            interval_secs: 60,
        }
    }
}

/// Parses `metrics_listen`: `HOST:PORT`, or a bare port for loopback.
pub fn parse_listen(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(
            parse_listen("9464"),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse_listen("0.0.0.0:9464"),
            Some("0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(parse_listen("localhost:1"), None);
    }
}
