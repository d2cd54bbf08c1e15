//! The config file's shape: what TOML a node reads (unknown keys are
//! errors), and what tools write (the local consortium, the tests), so
//! that a config is always made from typed values, never by patching text.
//! [`super::Config::parse`] turns one into a checked [`super::Config`].

use std::path::PathBuf;

use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};

use crate::policy::{AssessmentStep, Granularity, Purpose};

/// A node config file as written: paths relative to the file, durations
/// and addresses as text, optional keys absent.
///
/// Plain keys come before tables, so that it serialises as valid TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This node's organisation; must match its certificate.
    pub org: String,
    /// `IP:PORT` to serve on.
    pub listen: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// A taxonomy file instead of the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxonomy: Option<PathBuf>,
    /// How long one OPRF key is used (`24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_length: Option<String>,
    /// How long the previous key still answers (`2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_grace: Option<String>,
    /// Where to serve metrics (`HOST:PORT` or a port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Refusals per caller logged one by one per interval (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusals_logged_per_interval: Option<u32>,
    /// The interval of that budget (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_interval: Option<String>,
    /// How long a connection may take to send anything after its
    /// handshake (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_request_timeout: Option<String>,
    /// How long a connection may stay silent after that (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Open connections in all (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Open connections per SPIFFE id (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_identity: Option<usize>,
    /// Other organisations whose auditors may read this node's log (its
    /// own organisation's auditors always may).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auditor_orgs: Vec<String>,
    /// Certificates and keys.
    pub tls: TlsFile,
    /// What this node's coordinators may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<Purpose>,
    /// The partner nodes, each with what it may ask of this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerFile>,
    /// The assessment rule's steps (none: the default rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assessment: Vec<AssessmentStep>,
}

/// `[tls]`: PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// The consortium CA certificate.
    pub ca: PathBuf,
    /// This node's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// CRLs to check peers' certificates against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crls: Vec<PathBuf>,
}

/// One `[[peers]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    /// Its organisation.
    pub org: String,
    /// `https://HOST:PORT` of its node.
    pub url: String,
    /// The verifier key of its audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
    /// What it may ask of this node.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Which of this node's domains it may see.
    #[serde(default)]
    pub domains: Vec<LifeDomain>,
    /// Domain or signal level.
    #[serde(default)]
    pub granularity: Granularity,
    /// Most keys in one request (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys_per_request: Option<u64>,
    /// Most keys a day (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys_per_day: Option<u64>,
    /// Of those, most keys of the probable tier's spelling-variant
    /// families (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_probable_keys_per_day: Option<u64>,
    /// Of those, most keys of the possible tier's weak families (default:
    /// a tenth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_possible_keys_per_day: Option<u64>,
    /// Most persons asked about a day (default: `max_keys_per_day`, which
    /// a request's persons never exceed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_persons_per_day: Option<u64>,
    /// As a requester: the fewest entries a table bucket this node
    /// fetches from the partner must be likely to hold (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bucket_entries: Option<u64>,
    /// Shortest table bucket prefix (default 0: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_prefix_bits: Option<u32>,
}

impl ConfigFile {
    /// The file as TOML text.
    pub fn to_toml(&self) -> String {
        // These plain types (strings, numbers, arrays, tables, plain keys
        // before tables) always serialise.
        toml::to_string(self).unwrap_or_default()
    }
}
