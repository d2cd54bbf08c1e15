//! The decisions on a partner's calls: each returns the peer's policy, or
//! a [`Denial`] naming the [`Rule`] that refused, in words fit for the
//! caller (never the refused text).

use super::{PeerPolicy, Rule};

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
    use pluis_proto::taxonomy::LifeDomain;

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
        let p = PeerPolicy {
            min_prefix_bits: 16,
            ..school()
        };
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
