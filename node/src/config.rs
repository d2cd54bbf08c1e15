//! The node's configuration file: TOML in, a validated [`Config`] out.
//!
//! Unknown keys are errors (a misspelt policy key must never be silently
//! ignored), and every error names the file and, where TOML knows it, the
//! line and the key. Relative paths are taken relative to the config file,
//! so a consortium directory can be moved as a whole.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pluis_proto::identity::check_name;
use pluis_proto::taxonomy::Taxonomy;
use serde::Deserialize;

/// Why a configuration was refused. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type…).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// TOML's own message: line, column, key.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The field, as a TOML path (`peers[2].url`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    org: String,
    listen: String,
    data_dir: PathBuf,
    tls: RawTls,
    taxonomy: Option<PathBuf>,
    #[serde(default)]
    peers: Vec<RawPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    org: String,
    url: String,
}

/// A node's validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's organisation id; must match its certificate.
    pub org: String,
    /// Where to listen for gRPC over mutual TLS.
    pub listen: SocketAddr,
    /// The node's own data directory (sled store, keys).
    pub data_dir: PathBuf,
    /// PEM files of the consortium CA and this node's certificate and key.
    pub tls: TlsPaths,
    /// A taxonomy file replacing the default one.
    pub taxonomy: Option<PathBuf>,
    /// The partner nodes this node knows.
    pub peers: Vec<PeerConfig>,
}

/// PEM files, as absolute or config-relative paths resolved at load.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// The consortium CA certificate.
    pub ca: PathBuf,
    /// This node's certificate (chain).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// One partner node.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The partner's organisation id; its certificate must say the same.
    pub org: String,
    /// `https://host:port` of its node.
    pub url: String,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            reason,
        };
        check_name("org", &raw.org).map_err(|e| invalid("org", e.to_string()))?;
        let listen: SocketAddr = raw.listen.parse().map_err(|e| {
            invalid(
                "listen",
                format!("{:?} is not HOST:PORT with an IP host ({e})", raw.listen),
            )
        })?;
        let mut seen = BTreeSet::new();
        for (i, peer) in raw.peers.iter().enumerate() {
            check_name("org", &peer.org)
                .map_err(|e| invalid(&format!("peers[{i}].org"), e.to_string()))?;
            if peer.org == raw.org {
                return Err(invalid(
                    &format!("peers[{i}].org"),
                    format!("{:?} is this node's own org", peer.org),
                ));
            }
            if !seen.insert(peer.org.as_str()) {
                return Err(invalid(
                    &format!("peers[{i}].org"),
                    format!("{:?} is listed twice", peer.org),
                ));
            }
            crate::tls::check_https_url(&peer.url)
                .map_err(|reason| invalid(&format!("peers[{i}].url"), reason))?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Config {
            org: raw.org,
            listen,
            data_dir: base.join(raw.data_dir),
            taxonomy: raw.taxonomy.map(|t| base.join(t)),
            tls: TlsPaths {
                ca: base.join(raw.tls.ca),
                cert: base.join(raw.tls.cert),
                key: base.join(raw.tls.key),
            },
            peers: raw
                .peers
                .into_iter()
                .map(|p| PeerConfig {
                    org: p.org,
                    url: p.url,
                })
                .collect(),
        })
    }
}

/// The taxonomy shipped with Pluis (`node/taxonomy.toml`).
pub const DEFAULT_TAXONOMY: &str = include_str!("../taxonomy.toml");

/// The taxonomy in force: the file `path` names, or the default one.
pub fn load_taxonomy(path: Option<&Path>) -> Result<Taxonomy, ConfigError> {
    match path {
        None => Taxonomy::from_toml(DEFAULT_TAXONOMY).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<built-in taxonomy>"),
            message: e.to_string(),
        }),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.to_owned(),
                error,
            })?;
            Taxonomy::from_toml(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
org = "police"
listen = "127.0.0.1:7101"
data_dir = "data"

[tls]
ca = "../ca.pem"
cert = "node.pem"
key = "node.key"

[[peers]]
org = "school"
url = "https://127.0.0.1:7102"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/pluis/police.toml"))
    }

    #[test]
    fn the_default_taxonomy_is_valid() {
        let taxonomy = load_taxonomy(None).unwrap();
        assert_eq!(taxonomy.domains().len(), 7);
        assert!(taxonomy.signal("petty_theft_young_child").is_ok());
    }

    #[test]
    fn good_config_resolves_paths_relative_to_the_file() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.org, "police");
        assert_eq!(config.listen.port(), 7101);
        assert_eq!(config.tls.ca, Path::new("/etc/pluis/../ca.pem"));
        assert_eq!(config.data_dir, Path::new("/etc/pluis/data"));
        assert_eq!(config.peers[0].org, "school");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace(
            "data_dir = \"data\"",
            "data_dir = \"data\"\nlisten_port = 1",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("/etc/pluis/police.toml"), "{err}");
        assert!(err.contains("listen_port"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn unknown_key_in_a_peer_is_named() {
        let text = GOOD.replace("url = ", "ulr = \"x\"\nurl = ");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("ulr"), "{err}");
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            (GOOD.replace("127.0.0.1:7101", "localhost"), "listen:"),
            (GOOD.replace("org = \"police\"", "org = \"Police\""), "org:"),
            (
                GOOD.replace("https://127.0.0.1:7102", "http://127.0.0.1:7102"),
                "peers[0].url: ",
            ),
            (
                GOOD.replace("org = \"school\"", "org = \"police\""),
                "peers[0].org",
            ),
            (
                format!("{GOOD}\n[[peers]]\norg = \"school\"\nurl = \"https://h:1\"\n"),
                "peers[1].org: \"school\" is listed twice",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err}");
        }
    }
}
