//! The assessment rule: how many life domains with signals make which
//! advice for the coordinator (`[[assessment]]` steps, or the default).

use std::collections::BTreeSet;

use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};

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
}
