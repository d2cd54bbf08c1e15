//! The signal taxonomy: life domains and the signals within them.
//!
//! The domains are fixed by the protocol (a peer's flags name them); the
//! signals are a consortium's agreement, shipped as a TOML file and
//! replaceable by config. Parsing checks what every later step relies on:
//! each of the seven domains exactly once, 4–8 signals each, codes unique
//! and well-formed, retention between 1 and 120 months.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The life domains of a person's situation, as codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifeDomain {
    /// Police and justice: offences, arrests, missing reports.
    Safety,
    /// School: absence, results, behaviour.
    Education,
    /// Physical and mental health.
    Health,
    /// Family and social network.
    Social,
    /// Money and debts.
    Finances,
    /// Address and living situation.
    Housing,
    /// Youth care and child protection.
    YouthCare,
}

impl LifeDomain {
    /// Every domain, in display order.
    pub const ALL: [LifeDomain; 7] = [
        LifeDomain::Safety,
        LifeDomain::Education,
        LifeDomain::Health,
        LifeDomain::Social,
        LifeDomain::Finances,
        LifeDomain::Housing,
        LifeDomain::YouthCare,
    ];

    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            LifeDomain::Safety => "safety",
            LifeDomain::Education => "education",
            LifeDomain::Health => "health",
            LifeDomain::Social => "social",
            LifeDomain::Finances => "finances",
            LifeDomain::Housing => "housing",
            LifeDomain::YouthCare => "youth_care",
        }
    }

    /// A bit per domain, for compact flag sets.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for LifeDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for LifeDomain {
    type Err = TaxonomyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LifeDomain::ALL
            .into_iter()
            .find(|d| d.code() == s)
            .ok_or_else(|| TaxonomyError::UnknownDomain(s.to_owned()))
    }
}

/// Why a taxonomy was refused, or a code not found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxonomyError {
    /// Not valid TOML for the taxonomy schema.
    #[error("{0}")]
    Parse(String),
    /// A domain code that is not one of the seven.
    #[error("unknown life domain {0:?} (expected one of safety, education, health, social, finances, housing, youth_care)")]
    UnknownDomain(String),
    /// A domain listed twice or not at all.
    #[error("domain {0}: {1}")]
    Domains(String, String),
    /// A bad signal entry.
    #[error("signal {0:?}: {1}")]
    Signal(String, String),
    /// A signal code not in the taxonomy.
    #[error("unknown signal code {0:?}")]
    UnknownSignal(String),
}

/// One signal: a stable code, its Dutch label, a description, retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// Stable English code, `[a-z0-9_]`.
    pub code: String,
    /// Dutch label, as practitioners know it.
    pub label: String,
    /// One line on what counts.
    pub description: String,
    /// Default retention from registration, in months.
    pub retention_months: u16,
}

/// One life domain and its signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The domain.
    pub code: LifeDomain,
    /// Dutch label.
    pub label: String,
    /// Its signals.
    pub signals: Vec<Signal>,
}

/// A validated taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taxonomy {
    domains: Vec<Domain>,
    #[serde(skip)]
    by_code: BTreeMap<String, (usize, usize)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    domains: Vec<Domain>,
}

impl Taxonomy {
    /// Parses and validates taxonomy TOML.
    pub fn from_toml(text: &str) -> Result<Taxonomy, TaxonomyError> {
        let raw: RawTaxonomy = toml::from_str(text)
            .map_err(|e| TaxonomyError::Parse(e.to_string().trim_end().to_owned()))?;
        let mut seen = BTreeSet::new();
        let mut by_code = BTreeMap::new();
        for (d, domain) in raw.domains.iter().enumerate() {
            if !seen.insert(domain.code) {
                return Err(TaxonomyError::Domains(
                    domain.code.to_string(),
                    "listed twice".into(),
                ));
            }
            if !(4..=8).contains(&domain.signals.len()) {
                return Err(TaxonomyError::Domains(
                    domain.code.to_string(),
                    format!("has {} signals; 4 to 8 are allowed", domain.signals.len()),
                ));
            }
            for (s, signal) in domain.signals.iter().enumerate() {
                let well_formed = !signal.code.is_empty()
                    && signal.code.len() <= 48
                    && signal
                        .code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !well_formed {
                    return Err(TaxonomyError::Signal(
                        signal.code.clone(),
                        "code must be 1-48 characters of a-z, 0-9, _".into(),
                    ));
                }
                if !(1..=120).contains(&signal.retention_months) {
                    return Err(TaxonomyError::Signal(
                        signal.code.clone(),
                        "retention_months must be 1 to 120".into(),
                    ));
                }
                if signal.label.trim().is_empty() || signal.description.trim().is_empty() {
                    return Err(TaxonomyError::Signal(
                        signal.code.clone(),
                        "needs a label and a description".into(),
                    ));
                }
                if by_code.insert(signal.code.clone(), (d, s)).is_some() {
                    return Err(TaxonomyError::Signal(
                        signal.code.clone(),
                        "listed twice".into(),
                    ));
                }
            }
        }
        if let Some(missing) = LifeDomain::ALL.iter().find(|d| !seen.contains(d)) {
            return Err(TaxonomyError::Domains(
                missing.to_string(),
                "is missing".into(),
            ));
        }
        Ok(Taxonomy {
            domains: raw.domains,
            by_code,
        })
    }

    /// The domains, in file order.
    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    /// The domain and definition of a signal code.
    pub fn signal(&self, code: &str) -> Result<(LifeDomain, &Signal), TaxonomyError> {
        let (d, s) = self
            .by_code
            .get(code)
            .ok_or_else(|| TaxonomyError::UnknownSignal(code.to_owned()))?;
        let domain = &self.domains[*d];
        Ok((domain.code, &domain.signals[*s]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(code: &str, signals: &[&str]) -> String {
        let mut text = format!("[[domains]]\ncode = \"{code}\"\nlabel = \"L\"\n");
        for s in signals {
            text.push_str(&format!(
                "[[domains.signals]]\ncode = \"{s}\"\nlabel = \"l\"\ndescription = \"d\"\nretention_months = 12\n"
            ));
        }
        text
    }

    fn full(skip: Option<LifeDomain>) -> String {
        LifeDomain::ALL
            .iter()
            .filter(|d| Some(**d) != skip)
            .map(|d| {
                let codes: Vec<String> = (0..4).map(|i| format!("{}_{i}", d.code())).collect();
                let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
                domain(d.code(), &refs)
            })
            .collect()
    }

    #[test]
    fn a_complete_taxonomy_loads_and_finds_signals() {
        let t = Taxonomy::from_toml(&full(None)).unwrap();
        assert_eq!(t.domains().len(), 7);
        let (domain, signal) = t.signal("housing_2").unwrap();
        assert_eq!(domain, LifeDomain::Housing);
        assert_eq!(signal.retention_months, 12);
        assert_eq!(
            t.signal("nope"),
            Err(TaxonomyError::UnknownSignal("nope".into()))
        );
    }

    #[test]
    fn bad_taxonomies_name_the_problem() {
        let missing = Taxonomy::from_toml(&full(Some(LifeDomain::Health))).unwrap_err();
        assert_eq!(missing.to_string(), "domain health: is missing");
        let twice = format!("{}{}", full(None), domain("safety", &["a", "b", "c", "d"]));
        assert!(Taxonomy::from_toml(&twice)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
        let few = full(Some(LifeDomain::Social)) + &domain("social", &["a", "b"]);
        assert!(Taxonomy::from_toml(&few)
            .unwrap_err()
            .to_string()
            .contains("has 2 signals"));
        let unknown = full(None).replace("code = \"housing\"", "code = \"money\"");
        assert!(Taxonomy::from_toml(&unknown)
            .unwrap_err()
            .to_string()
            .contains("money"));
        let dup = full(Some(LifeDomain::Social)) + &domain("social", &["safety_0", "b", "c", "d"]);
        assert!(Taxonomy::from_toml(&dup)
            .unwrap_err()
            .to_string()
            .contains("\"safety_0\": listed twice"));
    }
}
