//! Cross-checking two organisations' logs: every exchange between them
//! must be on both sides, and agree.
//!
//! Each call one node logged as *requested* from the other must be logged
//! by the other as *served* or *denied*, with the same exchange id and
//! request digest; a served call also with the same response digest and
//! counts, and an `Evaluate` (the call that releases anything) with a
//! receipt that the responder's key signed and that points at the
//! responder's entry. Each call served or denied must have its request
//! logged. A call that never reached the responder (unreachable, timed
//! out, cancelled: its `call_status` says so) is logged by the requester
//! only, and is not a discrepancy.
//!
//! Organisations are read from SPIFFE ids and log origins, never from
//! free text; nothing here looks at an entry's `detail`.

use std::str::FromStr;

use super::{verify_receipt, Hash, NoteVerifier, VerifiedLog};
use crate::pb::{self, audit_entry::Kind};
use crate::{hex, SpiffeId};

/// One discrepancy between two organisations' logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    /// The exchange id (hex).
    pub exchange: String,
    /// Which log holds the entry it is about, and its index.
    pub place: String,
    /// What is missing or different.
    pub what: String,
}

/// What a cross-check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrossCheck {
    /// Calls found on both sides, agreeing.
    pub matched: usize,
    /// Everything that does not agree.
    pub discrepancies: Vec<Discrepancy>,
}

/// The gRPC status codes (`call_status`) of a call that never reached the
/// responder: UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED.
const NEVER_ARRIVED: [i32; 3] = [14, 4, 1];

/// The organisation whose log `verifier` checks (`pluis/<consortium>/<org>`).
fn log_org(verifier: &NoteVerifier) -> &str {
    verifier.name().rsplit('/').next().unwrap_or("")
}

/// The organisation of a SPIFFE id in an entry.
fn org_of(id: &str) -> Option<String> {
    SpiffeId::from_str(id).ok().map(|id| id.org().to_string())
}

fn is_answer(entry: &pb::AuditEntry) -> bool {
    entry.kind() == Kind::ExchangeServed || entry.kind() == Kind::ExchangeDenied
}

/// Matches every exchange between the organisations of log `a` and log
/// `b`, in both directions (each log checked against its own key).
pub fn cross_check(
    a: (&VerifiedLog, &NoteVerifier),
    b: (&VerifiedLog, &NoteVerifier),
) -> CrossCheck {
    let mut result = CrossCheck::default();
    for (requester, responder) in [(a, b), (b, a)] {
        one_way(requester, responder, &mut result);
    }
    result
}

/// The calls `requester` made to `responder`, and the answers `responder`
/// logged for `requester`.
fn one_way(
    (req_log, req_key): (&VerifiedLog, &NoteVerifier),
    (resp_log, resp_key): (&VerifiedLog, &NoteVerifier),
    result: &mut CrossCheck,
) {
    let (req_org, resp_org) = (log_org(req_key), log_org(resp_key));
    let requested_from = |e: &&pb::AuditEntry, org: &str| {
        e.kind() == Kind::ExchangeRequested && org_of(&e.counterparty).as_deref() == Some(org)
    };
    for e in req_log
        .entries
        .iter()
        .filter(|e| requested_from(e, resp_org))
    {
        let answer = resp_log.entries.iter().find(|r| {
            is_answer(r)
                && org_of(&r.actor).as_deref() == Some(req_org)
                && r.exchange_id == e.exchange_id
                && r.request_digest == e.request_digest
        });
        match compare(e, answer, resp_org, resp_key) {
            Ok(true) => result.matched += 1,
            Ok(false) => {}
            Err(what) => result.discrepancies.push(Discrepancy {
                exchange: hex(&e.exchange_id),
                place: format!("{req_org} entry {}", e.sequence),
                what,
            }),
        }
    }
    for r in resp_log
        .entries
        .iter()
        .filter(|r| is_answer(r) && org_of(&r.actor).as_deref() == Some(req_org))
    {
        let logged = req_log.entries.iter().any(|e| {
            requested_from(&e, resp_org)
                && e.exchange_id == r.exchange_id
                && e.request_digest == r.request_digest
        });
        if !logged {
            result.discrepancies.push(Discrepancy {
                exchange: hex(&r.exchange_id),
                place: format!("{resp_org} entry {}", r.sequence),
                what: format!(
                    "{} by {resp_org}, but {req_org} logged no such request",
                    super::kind_name(r.kind)
                ),
            });
        }
    }
}

/// Whether the requester's entry `e` and the responder's `answer` agree:
/// `Ok(true)` matched, `Ok(false)` a call that never arrived, `Err` what
/// differs.
fn compare(
    e: &pb::AuditEntry,
    answer: Option<&pb::AuditEntry>,
    resp_org: &str,
    resp_key: &NoteVerifier,
) -> Result<bool, String> {
    let Some(other) = answer else {
        if NEVER_ARRIVED.contains(&e.call_status) {
            return Ok(false);
        }
        return Err(format!("{resp_org} has no entry for this request"));
    };
    if other.kind() != Kind::ExchangeServed {
        return Ok(true);
    }
    if other.response_digest != e.response_digest {
        return Err(format!(
            "response digests differ from {resp_org} entry {}",
            other.sequence
        ));
    }
    if other.keys_asked != e.keys_asked {
        return Err(format!(
            "{} keys asked here, {} at {resp_org} entry {}",
            e.keys_asked, other.keys_asked, other.sequence
        ));
    }
    if other.entries_served != e.entries_served {
        return Err(format!(
            "{} table entries received here, {} served at {resp_org} entry {}",
            e.entries_served, other.entries_served, other.sequence
        ));
    }
    // Evaluate calls (keys asked) carry the exchange's receipt.
    if e.keys_asked == 0 {
        return Ok(true);
    }
    let receipt = e
        .receipt
        .as_ref()
        .ok_or_else(|| format!("no receipt from {resp_org}"))?;
    let (Ok(request), Ok(response)) = (
        Hash::try_from(e.request_digest.as_slice()),
        Hash::try_from(e.response_digest.as_slice()),
    ) else {
        return Err("digests are not 32 bytes".into());
    };
    verify_receipt(resp_key, receipt, &e.exchange_id, &request, &response)
        .map_err(|err| format!("{resp_org}'s receipt: {err}"))?;
    if receipt.log_index != other.sequence {
        return Err(format!(
            "the receipt points at {resp_org} entry {}, the exchange is entry {}",
            receipt.log_index, other.sequence
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{digest, origin, sign_receipt, Checkpoint, NoteSigner};

    const POLICE: &str = "spiffe://c/org/police/node";
    const SCHOOL: &str = "spiffe://c/org/school/node";

    fn signer(org: &str) -> NoteSigner {
        NoteSigner::from_seed(&origin("c", org), &[org.len() as u8; 32]).unwrap()
    }

    fn log(entries: Vec<pb::AuditEntry>) -> VerifiedLog {
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| pb::AuditEntry {
                sequence: i as u64,
                ..e
            })
            .collect();
        VerifiedLog {
            entries,
            checkpoints: Vec::new(),
            root: [0; 32],
        }
    }

    /// One Evaluate from the police to the school, served at school entry
    /// `served_at`, with a receipt signed by `receipt_signer` pointing at
    /// `receipt_index`: (police's request entry, school's served entry).
    fn evaluate(
        id: u8,
        receipt_signer: &NoteSigner,
        receipt_index: u64,
    ) -> (pb::AuditEntry, pb::AuditEntry) {
        let (request, response) = (digest(&[id, 1]), digest(&[id, 2]));
        let checkpoint = Checkpoint {
            origin: receipt_signer.name().to_owned(),
            size: receipt_index + 1,
            root: [7; 32],
            extensions: Vec::new(),
        };
        let receipt = sign_receipt(
            receipt_signer,
            &[id; 16],
            &request,
            &response,
            receipt_index,
            &checkpoint,
        )
        .unwrap();
        let common = pb::AuditEntry {
            exchange_id: vec![id; 16],
            keys_asked: 5,
            request_digest: request.to_vec(),
            response_digest: response.to_vec(),
            ..Default::default()
        };
        (
            pb::AuditEntry {
                kind: Kind::ExchangeRequested as i32,
                actor: POLICE.into(),
                counterparty: SCHOOL.into(),
                receipt: Some(receipt),
                ..common.clone()
            },
            pb::AuditEntry {
                kind: Kind::ExchangeServed as i32,
                actor: POLICE.into(),
                counterparty: SCHOOL.into(),
                keys_evaluated: 5,
                ..common
            },
        )
    }

    fn check(police: Vec<pb::AuditEntry>, school: Vec<pb::AuditEntry>) -> CrossCheck {
        let (p, s) = (signer("police"), signer("school"));
        cross_check((&log(police), &p.verifier()), (&log(school), &s.verifier()))
    }

    fn whats(result: &CrossCheck) -> Vec<&str> {
        result
            .discrepancies
            .iter()
            .map(|d| d.what.as_str())
            .collect()
    }

    #[test]
    fn an_exchange_on_both_sides_with_its_receipt_matches() {
        let (request, served) = evaluate(1, &signer("school"), 0);
        let result = check(vec![request], vec![served]);
        assert_eq!(
            result,
            CrossCheck {
                matched: 1,
                discrepancies: Vec::new()
            }
        );
    }

    #[test]
    fn a_request_without_an_answer_is_a_discrepancy_unless_it_never_arrived() {
        let (request, _) = evaluate(1, &signer("school"), 0);
        let result = check(vec![request.clone()], Vec::new());
        assert_eq!(whats(&result), ["school has no entry for this request"]);
        assert_eq!(result.discrepancies[0].place, "police entry 0");
        for code in NEVER_ARRIVED {
            let unreachable = pb::AuditEntry {
                call_status: code,
                receipt: None,
                response_digest: Vec::new(),
                ..request.clone()
            };
            assert_eq!(check(vec![unreachable], Vec::new()), CrossCheck::default());
        }
        // A refusal (PERMISSION_DENIED) did arrive: its denial must be logged.
        let refused = pb::AuditEntry {
            call_status: 7,
            ..request
        };
        assert_eq!(check(vec![refused], Vec::new()).discrepancies.len(), 1);
    }

    #[test]
    fn a_denied_exchange_logged_on_both_sides_matches() {
        let (request, served) = evaluate(1, &signer("school"), 0);
        let denied = pb::AuditEntry {
            kind: Kind::ExchangeDenied as i32,
            response_digest: Vec::new(),
            ..served
        };
        let asked = pb::AuditEntry {
            call_status: 7,
            receipt: None,
            response_digest: Vec::new(),
            ..request
        };
        assert_eq!(check(vec![asked], vec![denied]).matched, 1);
    }

    #[test]
    fn differing_digests_counts_and_receipts_are_named() {
        let (request, served) = evaluate(1, &signer("school"), 0);
        let other_response = pb::AuditEntry {
            response_digest: digest(b"else").to_vec(),
            ..served.clone()
        };
        assert_eq!(
            whats(&check(vec![request.clone()], vec![other_response])),
            ["response digests differ from school entry 0"]
        );
        let more_keys = pb::AuditEntry {
            keys_asked: 6,
            ..served.clone()
        };
        assert_eq!(
            whats(&check(vec![request.clone()], vec![more_keys])),
            ["5 keys asked here, 6 at school entry 0"]
        );
        let no_receipt = pb::AuditEntry {
            receipt: None,
            ..request.clone()
        };
        assert_eq!(
            whats(&check(vec![no_receipt], vec![served.clone()])),
            ["no receipt from school"]
        );
        let (forged, _) = evaluate(1, &signer("intruder"), 0);
        let result = check(vec![forged], vec![served.clone()]);
        assert!(
            whats(&result)[0].starts_with("school's receipt:"),
            "{result:?}"
        );
        let (misplaced, _) = evaluate(1, &signer("school"), 3);
        assert_eq!(
            whats(&check(vec![misplaced], vec![served])),
            ["the receipt points at school entry 3, the exchange is entry 0"]
        );
    }

    #[test]
    fn an_answer_without_its_request_is_a_discrepancy() {
        let (_, served) = evaluate(1, &signer("school"), 0);
        let result = check(Vec::new(), vec![served]);
        assert_eq!(
            whats(&result),
            ["exchange served by school, but police logged no such request"]
        );
        assert_eq!(result.discrepancies[0].place, "school entry 0");
    }

    #[test]
    fn exchanges_with_third_parties_are_left_out() {
        let (request, served) = evaluate(1, &signer("school"), 0);
        let elsewhere = |e: pb::AuditEntry| pb::AuditEntry {
            counterparty: "spiffe://c/org/health/node".into(),
            ..e
        };
        let from_health = pb::AuditEntry {
            actor: "spiffe://c/org/health/node".into(),
            ..served
        };
        assert_eq!(
            check(vec![elsewhere(request)], vec![from_health]),
            CrossCheck::default()
        );
    }
}
