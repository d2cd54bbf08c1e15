//! Policy: what this node answers, to whom, for what — "within legal limits".
//!
//! The node's config lists the purposes its own coordinators may ask for
//! (`[[purposes]]`, each with its legal basis) and, per peer, what that
//! peer may ask of this node: purposes, visible domains, granularity,
//! request and daily budgets, and the shortest tag prefix it may fetch. A
//! peer without an entry, or with no purposes, is answered with nothing.
//! Every refusal names the rule that refused.

use std::collections::{BTreeMap, BTreeSet};

use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};

mod rule;
pub use rule::Rule;

/// How much a peer may see of a matched person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Which domains have signals.
    #[default]
    Domain,
    /// Which signals, with their registration month.
    Signal,
}

/// A purpose this node's coordinators may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// Its name, the same in every partner's config.
    pub name: String,
    /// The legal basis recorded with every exchange for it.
    pub legal_basis: String,
}

/// One step of the assessment rule: at `min_domains` or more life domains
/// with signals, this `advice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentStep {
    /// The number of distinct domains from which this advice applies.
    pub min_domains: u32,
    /// What the coordinator is advised to do.
    pub advice: String,
}

/// The rule that turns a number of life domains into advice: the step
/// with the highest `min_domains` reached applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Steps, highest `min_domains` first; the last is at 0.
    steps: Vec<AssessmentStep>,
}

impl Default for Assessment {
    /// 3 or more domains: discuss in a multidisciplinary case meeting;
    /// 2: watch; else no combined signal.
    fn default() -> Self {
        let step = |min_domains, advice: &str| AssessmentStep {
            min_domains,
            advice: advice.to_owned(),
        };
        Assessment {
            steps: vec![
                step(3, "discuss in a multidisciplinary case meeting"),
                step(2, "watch"),
                step(0, "no combined signal"),
            ],
        }
    }
}

impl Assessment {
    /// A rule from `[[assessment]]` steps (none: the default rule). Below
    /// the lowest step the advice is "no combined signal". On error,
    /// the index of the bad step and the reason.
    pub fn new(mut steps: Vec<AssessmentStep>) -> Result<Self, (usize, String)> {
        if steps.is_empty() {
            return Ok(Assessment::default());
        }
        let most = LifeDomain::ALL.len() as u32;
        let mut seen = BTreeSet::new();
        for (i, step) in steps.iter().enumerate() {
            if step.min_domains > most {
                return Err((i, format!("min_domains must be 0 to {most}")));
            }
            if !seen.insert(step.min_domains) {
                return Err((
                    i,
                    format!("min_domains = {} is given twice", step.min_domains),
                ));
            }
            if step.advice.trim().is_empty() || step.advice.chars().count() > 200 {
                return Err((i, "advice must be 1 to 200 characters".into()));
            }
        }
        if !seen.contains(&0) {
            steps.push(AssessmentStep {
                min_domains: 0,
                advice: "no combined signal".into(),
            });
        }
        steps.sort_by_key(|s| std::cmp::Reverse(s.min_domains));
        Ok(Assessment { steps })
    }

    /// The advice for `domains` distinct life domains with signals.
    pub fn advice(&self, domains: u32) -> &str {
        self.steps
            .iter()
            .find(|s| domains >= s.min_domains)
            .map_or("", |s| s.advice.as_str())
    }
}

/// What one peer may ask of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Purposes this peer may ask for, each with the legal basis this
    /// node's config binds to it (its `[[purposes]]` table): a request must
    /// claim exactly that basis (after trimming).
    pub purposes: BTreeMap<String, String>,
    /// This node's domains the peer may see.
    pub domains: BTreeSet<LifeDomain>,
    /// Domain or signal level.
    pub granularity: Granularity,
    /// Most keys in one `Evaluate`.
    pub max_keys_per_request: u64,
    /// Most keys evaluated per UTC day.
    pub max_keys_per_day: u64,
    /// Shortest tag prefix for `GetTable`; 0 allows the whole table.
    pub min_prefix_bits: u32,
}

impl Default for PeerPolicy {
    /// Nothing is shared until the config says so.
    fn default() -> Self {
        PeerPolicy {
            purposes: BTreeMap::new(),
            domains: BTreeSet::new(),
            granularity: Granularity::Domain,
            max_keys_per_request: 100,
            max_keys_per_day: 10_000,
            min_prefix_bits: 16,
        }
    }
}

/// A refusal: which rule, and why, in words fit for the caller. Never
/// personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy rule {rule}: {reason}")]
pub struct Denial {
    /// The rule.
    pub rule: Rule,
    /// The explanation.
    pub reason: String,
}

/// What a request asks of the policy.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The calling peer's org.
    pub peer: &'a str,
    /// The purpose it names.
    pub purpose: &'a str,
    /// The legal basis it claims.
    pub legal_basis: &'a str,
    /// Keys in this request.
    pub keys: u64,
    /// Keys already evaluated for this peer today.
    pub used_today: u64,
}

/// Decides on a peer's `Evaluate`.
pub fn decide_evaluate(policy: Option<&PeerPolicy>, ask: Ask<'_>) -> Result<(), Denial> {
    let policy = allowed_purpose(policy, ask.peer, ask.purpose, ask.legal_basis)?;
    if ask.keys == 0 {
        return Err(Denial {
            rule: Rule::MaxKeysPerRequest,
            reason: "a request must carry at least one key".into(),
        });
    }
    if ask.keys > policy.max_keys_per_request {
        return Err(Denial {
            rule: Rule::MaxKeysPerRequest,
            reason: format!(
                "{} keys asked, at most {} per request for {}",
                ask.keys, policy.max_keys_per_request, ask.peer
            ),
        });
    }
    if ask.used_today.saturating_add(ask.keys) > policy.max_keys_per_day {
        return Err(Denial {
            rule: Rule::MaxKeysPerDay,
            reason: format!(
                "{} keys asked with {} used today; {} allows {} per day",
                ask.keys, ask.used_today, ask.peer, policy.max_keys_per_day
            ),
        });
    }
    Ok(())
}

/// Decides on a peer's `GetTable` for a prefix of `prefix_bits`.
pub fn decide_table<'p>(
    policy: Option<&'p PeerPolicy>,
    ask: Ask<'_>,
    prefix_bits: u32,
) -> Result<&'p PeerPolicy, Denial> {
    let peer = ask.peer;
    let policy = allowed_purpose(policy, peer, ask.purpose, ask.legal_basis)?;
    if prefix_bits < policy.min_prefix_bits {
        return Err(Denial {
            rule: Rule::MinPrefixBits,
            reason: format!(
                "a {prefix_bits}-bit prefix asked; {peer} needs at least {} bits",
                policy.min_prefix_bits
            ),
        });
    }
    Ok(policy)
}

/// The peer's policy, if it may ask for `purpose` on `legal_basis`.
/// Neither text is repeated in the reason: a refused value is the
/// caller's, and may be anything.
fn allowed_purpose<'p>(
    policy: Option<&'p PeerPolicy>,
    peer: &str,
    purpose: &str,
    legal_basis: &str,
) -> Result<&'p PeerPolicy, Denial> {
    let policy = policy.ok_or_else(|| Denial {
        rule: Rule::Peers,
        reason: format!("this node has no policy for {peer}, so it shares nothing with it"),
    })?;
    let Some(bound) = policy.purposes.get(purpose) else {
        return Err(Denial {
            rule: Rule::Purposes,
            reason: format!("the purpose asked for is not among those {peer} may ask for"),
        });
    };
    if legal_basis.trim() != bound.trim() {
        return Err(Denial {
            rule: Rule::LegalBasis,
            reason: format!(
                "the legal basis claimed is not the one this node binds to purpose {purpose} for {peer}"
            ),
        });
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assessment_rule_is_configurable_and_checked() {
        let default = Assessment::default();
        assert_eq!(default.advice(0), "no combined signal");
        assert_eq!(default.advice(1), "no combined signal");
        assert_eq!(default.advice(2), "watch");
        assert_eq!(
            default.advice(7),
            "discuss in a multidisciplinary case meeting"
        );
        assert_eq!(Assessment::new(Vec::new()).unwrap(), default);

        let step = |min_domains, advice: &str| AssessmentStep {
            min_domains,
            advice: advice.into(),
        };
        let strict = Assessment::new(vec![step(2, "case meeting"), step(4, "urgent")]).unwrap();
        assert_eq!(strict.advice(1), "no combined signal");
        assert_eq!(strict.advice(2), "case meeting");
        assert_eq!(strict.advice(3), "case meeting");
        assert_eq!(strict.advice(5), "urgent");

        let (i, reason) = Assessment::new(vec![step(2, "a"), step(2, "b")]).unwrap_err();
        assert_eq!((i, reason.as_str()), (1, "min_domains = 2 is given twice"));
        assert_eq!(Assessment::new(vec![step(8, "a")]).unwrap_err().0, 0);
        assert_eq!(
            Assessment::new(vec![step(1, "a"), step(3, " ")])
                .unwrap_err()
                .0,
            1
        );
    }

    fn school() -> PeerPolicy {
        PeerPolicy {
            purposes: [(
                "exploitation-assessment".to_owned(),
                "partnership agreement, art. 4".to_owned(),
            )]
            .into(),
            domains: [LifeDomain::Education, LifeDomain::Safety].into(),
            ..PeerPolicy::default()
        }
    }

    fn ask(purpose: &str, keys: u64, used_today: u64) -> Ask<'_> {
        Ask {
            peer: "school",
            purpose,
            legal_basis: " partnership agreement, art. 4 ",
            keys,
            used_today,
        }
    }

    #[test]
    fn each_rule_names_itself() {
        let p = school();
        assert_eq!(
            decide_evaluate(Some(&p), ask("exploitation-assessment", 5, 0)),
            Ok(())
        );
        let rule = |r: Result<(), Denial>| r.unwrap_err().rule.name();
        assert_eq!(
            rule(decide_evaluate(None, ask("exploitation-assessment", 5, 0))),
            "peers"
        );
        assert_eq!(
            rule(decide_evaluate(Some(&p), ask("marketing", 5, 0))),
            "purposes"
        );
        assert_eq!(
            rule(decide_evaluate(
                Some(&p),
                ask("exploitation-assessment", 101, 0)
            )),
            "max_keys_per_request"
        );
        assert_eq!(
            rule(decide_evaluate(
                Some(&p),
                ask("exploitation-assessment", 0, 0)
            )),
            "max_keys_per_request"
        );
        assert_eq!(
            rule(decide_evaluate(
                Some(&p),
                ask("exploitation-assessment", 10, 9_995)
            )),
            "max_keys_per_day"
        );
        assert_eq!(
            decide_evaluate(Some(&p), ask("exploitation-assessment", 5, 9_995)),
            Ok(())
        );
        for claimed in ["consent", "", "partnership agreement, art. 5"] {
            let asked = Ask {
                legal_basis: claimed,
                ..ask("exploitation-assessment", 5, 0)
            };
            let denial = decide_evaluate(Some(&p), asked).unwrap_err();
            assert_eq!(denial.rule, Rule::LegalBasis, "{claimed:?}");
            assert!(
                claimed.is_empty() || !denial.to_string().contains(claimed),
                "{denial}"
            );
        }
    }

    #[test]
    fn prefixes_shorter_than_allowed_are_refused() {
        let p = school();
        let asked = ask("exploitation-assessment", 0, 0);
        assert!(decide_table(Some(&p), asked, 16).is_ok());
        let denial = decide_table(Some(&p), asked, 0).unwrap_err();
        assert_eq!(denial.rule, Rule::MinPrefixBits);
        assert!(denial.to_string().contains("at least 16 bits"), "{denial}");
        let whole = PeerPolicy {
            min_prefix_bits: 0,
            ..school()
        };
        assert!(decide_table(Some(&whole), asked, 0).is_ok());
    }

    #[test]
    fn the_default_policy_shares_nothing() {
        let denial = decide_evaluate(
            Some(&PeerPolicy::default()),
            ask("exploitation-assessment", 1, 0),
        )
        .unwrap_err();
        assert_eq!(denial.rule, Rule::Purposes);
    }
}
