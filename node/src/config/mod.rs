//! The node's configuration file: TOML in, a validated [`Config`] out.
//!
//! Unknown keys are errors (a misspelt policy key must never be silently
//! ignored), and every error names the file and, where TOML knows it, the
//! line and the key. Relative paths are taken relative to the config file,
//! so a consortium directory can be moved as a whole.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pluis_proto::log::NoteVerifier;
use pluis_proto::taxonomy::Taxonomy;
use pluis_proto::OrgId;

use crate::policy::{Assessment, PeerPolicy, Purpose};

mod file;
mod limits;
pub use file::{ConfigFile, PeerFile, TlsFile};
pub use limits::{parse_listen, ConnectionLimits, RefusalBudget};

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

/// A node's validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's organisation id; must match its certificate.
    pub org: OrgId,
    /// Where to listen for gRPC over mutual TLS.
    pub listen: SocketAddr,
    /// The node's own data directory (sled store, keys).
    pub data_dir: PathBuf,
    /// PEM files of the consortium CA and this node's certificate and key.
    pub tls: TlsPaths,
    /// A taxonomy file replacing the default one.
    pub taxonomy: Option<PathBuf>,
    /// How long one OPRF key is in use, in seconds (default 24 h).
    pub epoch_length_secs: u64,
    /// How long the previous epoch's key still answers, in seconds (default 2 h).
    pub epoch_grace_secs: u64,
    /// The purposes this node's coordinators may ask for.
    pub purposes: Vec<Purpose>,
    /// The partner nodes this node knows.
    pub peers: Vec<PeerConfig>,
    /// The advice per number of life domains, for case queries.
    pub assessment: Assessment,
    /// Where to serve Prometheus metrics over plain HTTP, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How many refusals per caller are logged one by one per interval.
    pub refusals: crate::config::RefusalBudget,
    /// Other organisations whose auditors may read this node's log.
    pub auditor_orgs: BTreeSet<OrgId>,
    /// Timeouts and caps of connections.
    pub connections: crate::config::ConnectionLimits,
    /// SHA-256 of the config file's text: the policy in force, as logged.
    pub digest: [u8; 32],
    /// The file it was read from (reloads read it again).
    pub source: PathBuf,
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
    /// CRLs (PEM) signed by the consortium CA; a certificate they list is
    /// refused at the handshake.
    pub crls: Vec<PathBuf>,
}

/// One partner node.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The partner's organisation id; its certificate must say the same.
    pub org: OrgId,
    /// `https://host:port` of its node.
    pub url: String,
    /// What it may ask of this node.
    pub policy: PeerPolicy,
    /// The verifier key of its audit log (`pluis-node pubkey`), to check
    /// the receipts it returns.
    pub log_key: Option<NoteVerifier>,
    /// As a requester: the fewest entries a table bucket fetched from it
    /// must be likely to hold, so that it cannot tell which of its
    /// records was asked about.
    pub min_bucket_entries: u64,
}

/// Default [`PeerConfig::min_bucket_entries`].
pub const DEFAULT_MIN_BUCKET_ENTRIES: u64 = 32;

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
    /// relative paths. Checked in the order the file is usually read:
    /// identity, peers, timing, budgets, purposes, metrics, assessment;
    /// the first error is reported.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let at = At(path);
        let org = OrgId::new(&raw.org).map_err(|e| at.invalid("org", e))?;
        let listen: SocketAddr = raw.listen.parse().map_err(|e| {
            at.invalid(
                "listen",
                format!("{:?} is not HOST:PORT with an IP host ({e})", raw.listen),
            )
        })?;
        let peer_orgs = at.peers(&raw)?;
        let epoch_length_secs = at.duration("epoch_length", &raw.epoch_length, 24 * 3600)?;
        let epoch_grace_secs = at.duration("epoch_grace", &raw.epoch_grace, 2 * 3600)?;
        let refusals = at.refusal_budget(&raw)?;
        let connections = at.connection_limits(&raw)?;
        let auditor_orgs = raw
            .auditor_orgs
            .iter()
            .enumerate()
            .map(|(i, org)| {
                OrgId::new(org).map_err(|e| at.invalid(&format!("auditor_orgs[{i}]"), e))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        if epoch_length_secs == 0 || epoch_grace_secs >= epoch_length_secs {
            return Err(at.invalid(
                "epoch_grace",
                "epoch_length must be positive and longer than epoch_grace",
            ));
        }
        at.purposes(&raw.purposes)?;
        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(text) => Some(crate::config::parse_listen(text).ok_or_else(|| {
                at.invalid(
                    "metrics_listen",
                    format!("{text:?} is not HOST:PORT with an IP host, or a port (loopback)"),
                )
            })?),
        };
        let assessment = Assessment::new(raw.assessment)
            .map_err(|(i, reason)| at.invalid(&format!("assessment[{i}]"), reason))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let peers = peer_configs(raw.peers, peer_orgs, &raw.purposes);
        Ok(Config {
            digest: pluis_proto::log::digest(text.as_bytes()),
            source: path.to_owned(),
            metrics_listen,
            refusals,
            auditor_orgs,
            connections,
            assessment,
            org,
            listen,
            data_dir: base.join(raw.data_dir),
            taxonomy: raw.taxonomy.map(|t| base.join(t)),
            epoch_length_secs,
            epoch_grace_secs,
            purposes: raw.purposes,
            tls: TlsPaths {
                ca: base.join(raw.tls.ca),
                cert: base.join(raw.tls.cert),
                key: base.join(raw.tls.key),
                crls: raw.tls.crls.into_iter().map(|c| base.join(c)).collect(),
            },
            peers,
        })
    }
}

/// The config file being checked: every error names it, with the field.
struct At<'a>(&'a Path);

impl At<'_> {
    fn invalid(&self, field: &str, reason: impl ToString) -> ConfigError {
        ConfigError::Invalid {
            path: self.0.to_owned(),
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// A duration key (`"24h"`, `"90m"`, `"30s"`), or `default`.
    fn duration(
        &self,
        field: &str,
        value: &Option<String>,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match value {
            None => Ok(default),
            Some(text) => parse_duration(text).ok_or_else(|| {
                self.invalid(
                    field,
                    format!("{text:?} is not a duration like \"24h\", \"90m\" or \"30s\""),
                )
            }),
        }
    }

    /// Checks every `[[peers]]` table; their org ids, in order.
    fn peers(&self, raw: &ConfigFile) -> Result<Vec<OrgId>, ConfigError> {
        let mut seen = BTreeSet::new();
        let mut orgs = Vec::with_capacity(raw.peers.len());
        for (i, peer) in raw.peers.iter().enumerate() {
            let field = |key: &str| format!("peers[{i}].{key}");
            orgs.push(OrgId::new(&peer.org).map_err(|e| self.invalid(&field("org"), e))?);
            if peer.org == raw.org {
                return Err(self.invalid(
                    &field("org"),
                    format!("{:?} is this node's own org", peer.org),
                ));
            }
            if !seen.insert(peer.org.as_str()) {
                return Err(self.invalid(&field("org"), format!("{:?} is listed twice", peer.org)));
            }
            crate::tls::check_https_url(&peer.url)
                .map_err(|reason| self.invalid(&field("url"), reason))?;
            if let Some(purpose) = peer
                .purposes
                .iter()
                .find(|name| !raw.purposes.iter().any(|p| &&p.name == name))
            {
                return Err(self.invalid(
                    &field("purposes"),
                    format!("{purpose:?} is not defined in a [[purposes]] table"),
                ));
            }
            if let Some(key) = &peer.log_key {
                key.parse::<NoteVerifier>()
                    .map_err(|e| self.invalid(&field("log_key"), e))?;
            }
            let most = pluis_proto::limits::MAX_BLINDED as u64;
            if peer.max_keys_per_request.is_some_and(|n| n > most) {
                return Err(self.invalid(
                    &field("max_keys_per_request"),
                    format!("must be at most {most} (the protocol's bound)"),
                ));
            }
            if peer.min_prefix_bits.is_some_and(|b| b > 128) {
                return Err(self.invalid(&field("min_prefix_bits"), "must be 0 to 128"));
            }
            if peer.min_bucket_entries == Some(0) {
                return Err(self.invalid(&field("min_bucket_entries"), "must be at least 1"));
            }
        }
        Ok(orgs)
    }

    /// `refusals_logged_per_interval` and `refusal_interval`.
    fn refusal_budget(
        &self,
        raw: &ConfigFile,
    ) -> Result<crate::config::RefusalBudget, ConfigError> {
        let defaults = crate::config::RefusalBudget::default();
        let budget = crate::config::RefusalBudget {
            per_interval: raw
                .refusals_logged_per_interval
                .unwrap_or(defaults.per_interval),
            interval_secs: self.duration(
                "refusal_interval",
                &raw.refusal_interval,
                defaults.interval_secs,
            )?,
        };
        if budget.interval_secs == 0 {
            return Err(self.invalid("refusal_interval", "must be positive"));
        }
        Ok(budget)
    }

    /// The connection timeouts and caps; each must be positive.
    fn connection_limits(
        &self,
        raw: &ConfigFile,
    ) -> Result<crate::config::ConnectionLimits, ConfigError> {
        let defaults = crate::config::ConnectionLimits::default();
        let limits = crate::config::ConnectionLimits {
            first_request_secs: self.duration(
                "first_request_timeout",
                &raw.first_request_timeout,
                defaults.first_request_secs,
            )?,
            idle_secs: self.duration("idle_timeout", &raw.idle_timeout, defaults.idle_secs)?,
            max_total: raw.max_connections.unwrap_or(defaults.max_total),
            max_per_identity: raw
                .max_connections_per_identity
                .unwrap_or(defaults.max_per_identity),
        };
        for (field, value) in [
            ("first_request_timeout", limits.first_request_secs as usize),
            ("idle_timeout", limits.idle_secs as usize),
            ("max_connections", limits.max_total),
            ("max_connections_per_identity", limits.max_per_identity),
        ] {
            if value == 0 {
                return Err(self.invalid(field, "must be positive"));
            }
        }
        Ok(limits)
    }

    /// Every `[[purposes]]` table: named once, with a legal basis, both
    /// within what the protocol lets partners send.
    fn purposes(&self, purposes: &[Purpose]) -> Result<(), ConfigError> {
        use pluis_proto::limits;
        let mut names = BTreeSet::new();
        for (i, purpose) in purposes.iter().enumerate() {
            if purpose.name.trim().is_empty() || purpose.legal_basis.trim().is_empty() {
                return Err(
                    self.invalid(&format!("purposes[{i}]"), "needs a name and a legal_basis")
                );
            }
            let bounded = |e: limits::FieldError| {
                self.invalid(&format!("purposes[{i}].{}", e.field), e.problem)
            };
            limits::text("name", &purpose.name, limits::MAX_PURPOSE_LEN).map_err(bounded)?;
            limits::text(
                "legal_basis",
                &purpose.legal_basis,
                limits::MAX_LEGAL_BASIS_LEN,
            )
            .map_err(bounded)?;
            if !names.insert(purpose.name.as_str()) {
                return Err(self.invalid(
                    &format!("purposes[{i}].name"),
                    format!("{:?} is defined twice", purpose.name),
                ));
            }
        }
        Ok(())
    }
}

/// The checked `[[peers]]` tables as the node uses them: each purpose
/// bound to the legal basis of its `[[purposes]]` table, defaults filled.
fn peer_configs(peers: Vec<PeerFile>, orgs: Vec<OrgId>, purposes: &[Purpose]) -> Vec<PeerConfig> {
    let legal_basis = |name: &str| {
        purposes
            .iter()
            .find(|p| p.name == name)
            .map_or_else(String::new, |p| p.legal_basis.clone())
    };
    let defaults = PeerPolicy::default();
    peers
        .into_iter()
        .zip(orgs)
        .map(|(p, org)| {
            let day = p.max_keys_per_day.unwrap_or(defaults.max_keys_per_day);
            PeerConfig {
                // Checked by At::peers.
                log_key: p.log_key.and_then(|k| k.parse().ok()),
                org,
                url: p.url,
                min_bucket_entries: p.min_bucket_entries.unwrap_or(DEFAULT_MIN_BUCKET_ENTRIES),
                policy: PeerPolicy {
                    purposes: p
                        .purposes
                        .into_iter()
                        .map(|name| {
                            let basis = legal_basis(&name);
                            (name, basis)
                        })
                        .collect(),
                    domains: p.domains.into_iter().collect(),
                    granularity: p.granularity,
                    max_keys_per_request: p
                        .max_keys_per_request
                        .unwrap_or(defaults.max_keys_per_request),
                    max_keys_per_day: day,
                    max_probable_keys_per_day: p.max_probable_keys_per_day.unwrap_or(day),
                    max_possible_keys_per_day: p.max_possible_keys_per_day.unwrap_or(day / 10),
                    max_persons_per_day: p.max_persons_per_day.unwrap_or(day),
                    min_prefix_bits: p.min_prefix_bits.unwrap_or(defaults.min_prefix_bits),
                },
            }
        })
        .collect()
}

impl Config {
    /// Whether a running node could take `new` in place of this config:
    /// identity, addresses, data and epochs are fixed for the life of a
    /// process. The error names the file and the first such key.
    pub fn check_reload(&self, new: &Config) -> Result<(), ConfigError> {
        let fixed = |field: &str, old: String, new: String| {
            if old == new {
                return Ok(());
            }
            Err(ConfigError::Invalid {
                path: self.source.clone(),
                field: field.to_owned(),
                reason: format!(
                    "changed from {old} to {new}; a running node keeps its {field} (restart it to change this)"
                ),
            })
        };
        fixed("org", format!("{:?}", self.org), format!("{:?}", new.org))?;
        fixed("listen", self.listen.to_string(), new.listen.to_string())?;
        fixed(
            "data_dir",
            self.data_dir.display().to_string(),
            new.data_dir.display().to_string(),
        )?;
        fixed(
            "epoch_length",
            format!("{} s", self.epoch_length_secs),
            format!("{} s", new.epoch_length_secs),
        )?;
        fixed(
            "epoch_grace",
            format!("{} s", self.epoch_grace_secs),
            format!("{} s", new.epoch_grace_secs),
        )?;
        fixed(
            "metrics_listen",
            format!("{:?}", self.metrics_listen),
            format!("{:?}", new.metrics_listen),
        )
    }
}

/// Parses `30s`, `90m`, `24h` or `2d` into seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// The taxonomy shipped with Pluis (`node/taxonomy.toml`).
pub const DEFAULT_TAXONOMY: &str = include_str!("../../taxonomy.toml");

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
    use crate::policy::Granularity;
    use pluis_proto::taxonomy::LifeDomain;

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
    fn peer_policy_parses_with_defaults_and_checks_purposes() {
        let text = GOOD
            .replace(
                "url = \"https://127.0.0.1:7102\"",
                "url = \"https://127.0.0.1:7102\"\npurposes = [\"exploitation-assessment\"]\ndomains = [\"education\", \"safety\"]\ngranularity = \"signal\"\nmax_keys_per_day = 50",
            )
            .replace(
                "\n[tls]",
                "\n[[purposes]]\nname = \"exploitation-assessment\"\nlegal_basis = \"art. 4\"\n\n[tls]",
            );
        let config = parse(&text).unwrap();
        let policy = &config.peers[0].policy;
        assert_eq!(policy.granularity, Granularity::Signal);
        assert_eq!(policy.max_keys_per_day, 50);
        assert_eq!(policy.max_keys_per_request, 100);
        assert_eq!(policy.min_prefix_bits, 0, "whole tables by default");
        // Weak families get a tenth of the day's keys; persons and the
        // probable tier are bounded only by the day's keys.
        assert_eq!(policy.max_possible_keys_per_day, 5);
        assert_eq!(policy.max_probable_keys_per_day, 50);
        assert_eq!(policy.max_persons_per_day, 50);
        assert_eq!(config.peers[0].min_bucket_entries, 32);
        assert!(policy.domains.contains(&LifeDomain::Safety));
        let undefined = text.replace("name = \"exploitation-assessment\"", "name = \"other\"");
        let err = parse(&undefined).unwrap_err().to_string();
        assert!(
            err.contains("peers[0].purposes") && err.contains("not defined"),
            "{err}"
        );
        let bad_domain = text.replace("\"safety\"]", "\"money\"]");
        assert!(parse(&bad_domain)
            .unwrap_err()
            .to_string()
            .contains("money"));
    }

    #[test]
    fn the_assessment_rule_comes_from_the_config() {
        assert_eq!(parse(GOOD).unwrap().assessment, Assessment::default());
        let text = format!("{GOOD}\n[[assessment]]\nmin_domains = 2\nadvice = \"case meeting\"\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.assessment.advice(2), "case meeting");
        assert_eq!(config.assessment.advice(1), "no combined signal");
        let twice = format!("{text}\n[[assessment]]\nmin_domains = 2\nadvice = \"x\"\n");
        let err = parse(&twice).unwrap_err().to_string();
        assert!(
            err.contains("police.toml: assessment[1]: min_domains = 2 is given twice"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("90m"), Some(5_400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("3w"), None);
        let bad = GOOD.replace(
            "data_dir = \"data\"",
            "data_dir = \"data\"\nepoch_length = \"1h\"\nepoch_grace = \"2h\"",
        );
        assert!(parse(&bad).unwrap_err().to_string().contains("epoch_grace"));
    }

    #[test]
    fn a_reload_may_change_policy_but_not_identity_addresses_or_data() {
        let config = parse(GOOD).unwrap();
        let policy = GOOD.replace(
            "url = \"https://127.0.0.1:7102\"",
            "url = \"https://127.0.0.1:7102\"\nmax_keys_per_day = 5",
        );
        config.check_reload(&parse(&policy).unwrap()).unwrap();
        for (text, key) in [
            (GOOD.replace("127.0.0.1:7101", "127.0.0.1:7109"), "listen"),
            (
                GOOD.replace("data_dir = \"data\"", "data_dir = \"other\""),
                "data_dir",
            ),
            (
                GOOD.replace(
                    "data_dir = \"data\"",
                    "data_dir = \"data\"\nepoch_length = \"1h\"\nepoch_grace = \"1m\"",
                ),
                "epoch_length",
            ),
            (
                GOOD.replace(
                    "data_dir = \"data\"",
                    "data_dir = \"data\"\nmetrics_listen = \"9464\"",
                ),
                "metrics_listen",
            ),
        ] {
            let err = config
                .check_reload(&parse(&text).unwrap())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("/etc/pluis/police.toml: {key}: changed from"))
                    && err.contains("restart"),
                "{err}"
            );
        }
    }

    #[test]
    fn crls_resolve_relative_to_the_file() {
        let text = GOOD.replace(
            "key = \"node.key\"",
            "key = \"node.key\"\ncrls = [\"../crl.pem\"]",
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.tls.crls, [Path::new("/etc/pluis/../crl.pem")]);
        assert!(parse(GOOD).unwrap().tls.crls.is_empty());
    }

    #[test]
    fn a_config_file_written_from_values_reads_back_the_same() {
        let raw: ConfigFile = toml::from_str(GOOD).unwrap();
        let mut edited = raw.clone();
        edited.metrics_listen = Some("9464".into());
        edited.peers[0].max_keys_per_day = Some(5);
        edited.tls.crls.push("../crl.pem".into());
        let text = edited.to_toml();
        assert_eq!(toml::from_str::<ConfigFile>(&text).unwrap(), edited);
        let config = parse(&text).unwrap();
        assert_eq!(config.peers[0].policy.max_keys_per_day, 5);
        assert_eq!(config.metrics_listen.unwrap().port(), 9464);
        assert_eq!(toml::from_str::<ConfigFile>(&raw.to_toml()).unwrap(), raw);
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
