//! `pluis audit report`: one self-contained HTML page for a privacy
//! officer, from verified bundles. No scripts, no external files: tables,
//! inline SVG charts, and flags for patterns that warrant a look.
//!
//! Flags:
//! * a partner whose keys asked on a day jump far above its usual level
//!   (over 3× the median of its other days, and over 100 keys);
//! * requests that took a partner's daily key budget to 90 % or more;
//! * many denials (5 or more, or over 20 % of a partner's requests);
//! * Evaluate calls logged without a receipt, or with one that does not
//!   verify against the partner's key (where its log is in the report).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use pluis_proto::log::{NoteVerifier, VerifiedLog};
use pluis_proto::pb::{self, audit_entry::Kind};

use crate::auditor::{kind_name, utc};

/// One node's verified log, as the report reads it.
#[derive(Debug)]
pub struct NodeLog {
    /// The log's origin (`pluis/<consortium>/<org>`).
    pub origin: String,
    /// The key it verified against.
    pub verifier_key: String,
    /// The verified log.
    pub log: VerifiedLog,
}

/// Something a privacy officer should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Whose log shows it.
    pub node: String,
    /// The pattern, in a few words.
    pub pattern: &'static str,
    /// What exactly.
    pub detail: String,
}

fn org_of(id: &str) -> String {
    id.split("/org/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(id)
        .to_owned()
}

fn day_of(ms: i64) -> String {
    utc(ms).chars().take(10).collect()
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Served, denied or refused calls in `log`, by the calling partner.
fn answered(log: &VerifiedLog) -> impl Iterator<Item = &pb::AuditEntry> {
    log.entries.iter().filter(|e| {
        e.kind() == Kind::ExchangeServed
            || e.kind() == Kind::ExchangeDenied
            || e.kind() == Kind::CallRefused
    })
}

/// How many refusals an entry stands for: a summary counts all it
/// summarises.
fn refusals_in(e: &pb::AuditEntry) -> u64 {
    e.refusals.max(1)
}

/// Why `receipt` on the requester's entry `e` is not valid under the
/// partner's log `key`, if it is not.
fn receipt_problem(
    key: &NoteVerifier,
    receipt: &pb::Receipt,
    e: &pb::AuditEntry,
) -> Option<String> {
    let (Ok(request), Ok(response)) = (
        <pluis_proto::log::Hash>::try_from(e.request_digest.as_slice()),
        <pluis_proto::log::Hash>::try_from(e.response_digest.as_slice()),
    ) else {
        return Some("digests are not 32 bytes".into());
    };
    pluis_proto::log::verify_receipt(key, receipt, &e.exchange_id, &request, &response)
        .err()
        .map(|err| format!("the receipt does not verify against the partner's key: {err}"))
}

/// The flags for `logs`.
pub fn flags(logs: &[NodeLog]) -> Vec<Flag> {
    // The partners' log keys, where their logs are in the report, to
    // check the receipts each requester kept.
    let keys: BTreeMap<String, NoteVerifier> = logs
        .iter()
        .filter_map(|l| {
            let key: NoteVerifier = l.verifier_key.parse().ok()?;
            Some((l.origin.rsplit('/').next()?.to_owned(), key))
        })
        .collect();
    let mut flags = Vec::new();
    for node in logs {
        let name = org_of(&node.origin);
        let name = if name == node.origin {
            node.origin.rsplit('/').next().unwrap_or("").to_owned()
        } else {
            name
        };
        let mut flag = |pattern, detail| {
            flags.push(Flag {
                node: name.clone(),
                pattern,
                detail,
            })
        };
        let answers = Answers::of(&node.log, &mut flag);
        volume_jumps(&answers.per_day, &mut flag);
        many_denials(&answers.denials, &mut flag);
        missing_receipts(&node.log, &keys, &mut flag);
    }
    flags
}

/// What a node's answers to its partners add up to, per partner.
#[derive(Default)]
struct Answers {
    /// Keys asked per day in served Evaluates.
    per_day: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests denied, and in all.
    denials: BTreeMap<String, (u64, u64)>,
}

impl Answers {
    /// Counts `log`'s answers, flagging each near the daily key budget.
    fn of(log: &VerifiedLog, flag: &mut impl FnMut(&'static str, String)) -> Answers {
        let mut answers = Answers::default();
        for e in answered(log) {
            let partner = org_of(&e.actor);
            let counts = answers.denials.entry(partner.clone()).or_default();
            if e.kind() != Kind::ExchangeServed {
                counts.0 += refusals_in(e);
                counts.1 += refusals_in(e);
                continue;
            }
            counts.1 += 1;
            *answers
                .per_day
                .entry(partner.clone())
                .or_default()
                .entry(day_of(e.time_unix_ms))
                .or_default() += e.keys_asked;
            if e.budget_limit > 0 && e.budget_used * 10 >= e.budget_limit * 9 {
                let detail = format!(
                    "{partner} on {}: {} of {} keys used (entry {})",
                    day_of(e.time_unix_ms),
                    e.budget_used,
                    e.budget_limit,
                    e.sequence
                );
                flag("near the daily key budget", detail);
            }
        }
        answers
    }
}

/// A partner that asked far more keys on a day than on its other days
/// (over 3× their median, and over 100).
fn volume_jumps(
    per_day: &BTreeMap<String, BTreeMap<String, u64>>,
    flag: &mut impl FnMut(&'static str, String),
) {
    for (partner, days) in per_day {
        for (day, keys) in days {
            let mut others: Vec<u64> = days
                .iter()
                .filter(|(d, _)| *d != day)
                .map(|(_, k)| *k)
                .collect();
            if others.is_empty() {
                continue;
            }
            others.sort_unstable();
            let median = others[others.len() / 2].max(1);
            if *keys > 100 && *keys > 3 * median {
                let detail =
                    format!("{partner} asked {keys} keys on {day}, usually about {median} a day");
                flag("volume jump", detail);
            }
        }
    }
}

/// A partner denied 5 times or more, or in over 20 % of its requests.
fn many_denials(
    denials: &BTreeMap<String, (u64, u64)>,
    flag: &mut impl FnMut(&'static str, String),
) {
    for (partner, (denied, total)) in denials {
        if *denied >= 5 || (*denied > 0 && denied * 5 > *total) {
            let detail = format!("{partner}: {denied} of {total} requests denied");
            flag("many denials", detail);
        }
    }
}

/// A request that released keys' evaluations without a receipt, or with
/// one that does not verify against the partner's key (where its log is
/// in the report).
fn missing_receipts(
    log: &VerifiedLog,
    keys: &BTreeMap<String, NoteVerifier>,
    flag: &mut impl FnMut(&'static str, String),
) {
    for e in log
        .entries
        .iter()
        .filter(|e| e.kind() == Kind::ExchangeRequested && e.keys_asked > 0)
    {
        let partner = org_of(&e.counterparty);
        let problem = match &e.receipt {
            // A call that failed released nothing, and has no receipt.
            None if e.call_status == 0 => Some("no receipt".to_owned()),
            None => None,
            Some(receipt) => keys
                .get(partner.as_str())
                .and_then(|key| receipt_problem(key, receipt, e)),
        };
        if let Some(problem) = problem {
            let detail = format!(
                "entry {} to {partner} on {}: {problem}",
                e.sequence,
                day_of(e.time_unix_ms),
            );
            flag("missing receipt", detail);
        }
    }
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// A horizontal bar chart of `(label, value)`.
fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let height = 30 + 24 * bars.len().max(1);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg role=\"img\" width=\"640\" height=\"{height}\" viewBox=\"0 0 640 {height}\">",
        esc(title)
    );
    if bars.is_empty() {
        svg.push_str("<text x=\"10\" y=\"20\">none</text>");
    }
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 10 + 24 * i;
        let width = (*value as f64 / max as f64 * 400.0).round() as u64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"200\" y=\"{y}\" width=\"{width}\" height=\"18\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"13\">{value}</text>",
            y + 14,
            esc(label),
            COLOURS[i % COLOURS.len()],
            205 + width,
            y + 14
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Stacked columns: per day, one segment per series.
fn stacked_chart(
    title: &str,
    days: &[String],
    series: &BTreeMap<String, BTreeMap<String, u64>>,
) -> String {
    let totals: Vec<u64> = days
        .iter()
        .map(|d| {
            series
                .values()
                .map(|s| s.get(d).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let column = 40;
    let width = (80 + column * days.len().max(1)).max(640);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg role=\"img\" width=\"{width}\" height=\"300\" viewBox=\"0 0 {width} 300\">",
        esc(title)
    );
    for (i, day) in days.iter().enumerate() {
        let x = 60 + column * i;
        let mut top = 250.0;
        for (s, values) in series.values().enumerate() {
            let v = values.get(day).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = v as f64 / max as f64 * 220.0;
            top -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{top:.1}\" width=\"{}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {v}</title></rect>",
                column - 8,
                COLOURS[s % COLOURS.len()],
                esc(day)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"268\" font-size=\"10\">{}</text><text x=\"{x}\" y=\"{:.0}\" font-size=\"11\">{}</text>",
            esc(&day[5..]),
            top - 4.0,
            totals[i]
        );
    }
    for (s, name) in series.keys().enumerate() {
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"282\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"292\" font-size=\"12\">{}</text>",
            60 + 170 * s,
            COLOURS[s % COLOURS.len()],
            76 + 170 * s,
            esc(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// The whole page.
pub fn render(logs: &[NodeLog]) -> String {
    let flags = flags(logs);
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pluis exchange report</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}td code{word-break:break-all}td:nth-child(5){max-width:360px}\
         .flag{background:#fff4e5}.ok{color:#2a7d2a}figure{margin:1.5em 0}figcaption{font-weight:bold;margin-bottom:.5em}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>Pluis exchange report</h1><p>Generated {} from {} verified log(s). Every entry below was checked against its node's signed checkpoints (RFC 9162 Merkle tree, Ed25519). The logs hold no personal data: only who asked, for which purpose and legal basis, how much, when, and digests.</p>",
        utc(crate::clock::now_ms()),
        logs.len()
    );
    logs_table(&mut html, logs);
    flags_table(&mut html, &flags);
    for node in logs {
        node_section(&mut html, node);
    }
    html.push_str("</body></html>\n");
    html
}

/// The verified logs, one row each.
fn logs_table(html: &mut String, logs: &[NodeLog]) {
    html.push_str("<h2>Logs</h2><table><tr><th>log</th><th>entries</th><th>signed checkpoints</th><th>root</th><th>verifier key</th><th>status</th></tr>");
    for node in logs {
        let root = pluis_proto::hex(&node.log.root);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}…</code></td><td><code>{}</code></td><td class=\"ok\">verified</td></tr>",
            esc(&node.origin),
            node.log.entries.len(),
            node.log.checkpoints.len(),
            &root[..16],
            esc(&node.verifier_key)
        );
    }
    html.push_str("</table>");
}

/// The flags, or that there are none.
fn flags_table(html: &mut String, flags: &[Flag]) {
    let _ = write!(html, "<h2>Flags ({})</h2>", flags.len());
    if flags.is_empty() {
        html.push_str("<p class=\"ok\">Nothing that warrants a look.</p>");
    } else {
        html.push_str("<table><tr><th>log</th><th>pattern</th><th>detail</th></tr>");
        for f in flags {
            let _ = write!(
                html,
                "<tr class=\"flag\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.node),
                esc(f.pattern),
                esc(&f.detail)
            );
        }
        html.push_str("</table>");
    }
}

/// One node's exchanges per day, keys and denials per partner, and its
/// event counts.
fn node_section(html: &mut String, node: &NodeLog) {
    let _ = write!(html, "<h2>{}</h2>", esc(&node.origin));
    // Exchanges served per day, by partner and purpose.
    let mut series: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut days: BTreeSet<String> = BTreeSet::new();
    let mut keys: BTreeMap<String, u64> = BTreeMap::new();
    let mut denials: BTreeMap<String, u64> = BTreeMap::new();
    for e in answered(&node.log) {
        let partner = org_of(&e.actor);
        let day = day_of(e.time_unix_ms);
        days.insert(day.clone());
        if e.kind() != Kind::ExchangeServed {
            *denials.entry(partner).or_default() += refusals_in(e);
            continue;
        }
        *series
            .entry(format!("{partner} / {}", e.purpose))
            .or_default()
            .entry(day)
            .or_default() += 1;
        *keys.entry(partner).or_default() += e.keys_asked;
    }
    let days: Vec<String> = days.into_iter().collect();
    html.push_str(&stacked_chart(
        "Exchanges served per day, by partner and purpose",
        &days,
        &series,
    ));
    html.push_str(&bar_chart(
        "Keys asked per partner (served)",
        &keys.into_iter().collect::<Vec<_>>(),
    ));
    html.push_str(&bar_chart(
        "Denials per partner",
        &denials.into_iter().collect::<Vec<_>>(),
    ));
    // Event counts.
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &node.log.entries {
        *kinds.entry(kind_name(e.kind)).or_default() += 1;
    }
    html.push_str("<table><tr><th>event</th><th>count</th></tr>");
    for (kind, count) in kinds {
        let _ = write!(html, "<tr><td>{kind}</td><td>{count}</td></tr>");
    }
    html.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: Vec<pb::AuditEntry>) -> NodeLog {
        NodeLog {
            origin: "pluis/t/school".into(),
            verifier_key: "key".into(),
            log: VerifiedLog {
                entries,
                checkpoints: Vec::new(),
                root: [0; 32],
            },
        }
    }

    fn served(day: u32, keys: u64, used: u64) -> pb::AuditEntry {
        pb::AuditEntry {
            kind: Kind::ExchangeServed as i32,
            time_unix_ms: 1_764_374_400_000 + i64::from(day) * 86_400_000,
            actor: "spiffe://t/org/police/node".into(),
            purpose: "exploitation-assessment".into(),
            keys_asked: keys,
            budget_used: used,
            budget_limit: 10_000,
            ..Default::default()
        }
    }

    #[test]
    fn patterns_that_warrant_a_look_are_flagged() {
        let mut entries = vec![served(0, 50, 50), served(1, 60, 60), served(2, 40, 40)];
        entries.push(served(3, 9_500, 9_500));
        for _ in 0..5 {
            entries.push(pb::AuditEntry {
                kind: Kind::ExchangeDenied as i32,
                actor: "spiffe://t/org/municipality/node".into(),
                ..Default::default()
            });
        }
        entries.push(pb::AuditEntry {
            kind: Kind::ExchangeRequested as i32,
            counterparty: "spiffe://t/org/police/node".into(),
            keys_asked: 5,
            ..Default::default()
        });
        // A call the partner never answered has no receipt, and is no flag.
        entries.push(pb::AuditEntry {
            kind: Kind::ExchangeRequested as i32,
            counterparty: "spiffe://t/org/police/node".into(),
            keys_asked: 5,
            call_status: 14,
            ..Default::default()
        });
        let found = flags(&[log(entries)]);
        let patterns: BTreeSet<&str> = found.iter().map(|f| f.pattern).collect();
        assert_eq!(
            patterns,
            [
                "many denials",
                "missing receipt",
                "near the daily key budget",
                "volume jump"
            ]
            .into()
        );
        let missing: Vec<&Flag> = found
            .iter()
            .filter(|f| f.pattern == "missing receipt")
            .collect();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(
            missing[0]
                .detail
                .ends_with("to police on 1970-01-01: no receipt"),
            "{missing:?}"
        );
        let jump = found.iter().find(|f| f.pattern == "volume jump").unwrap();
        assert!(jump.detail.contains("police asked 9500 keys"), "{jump:?}");
        // A quiet log raises nothing.
        assert!(flags(&[log(vec![served(0, 50, 50), served(1, 55, 105)])]).is_empty());
    }

    #[test]
    fn refused_calls_and_their_summaries_count_as_denials() {
        let refused = |refusals| pb::AuditEntry {
            kind: Kind::CallRefused as i32,
            actor: "spiffe://t/org/school/node".into(),
            refusals,
            ..Default::default()
        };
        // One refusal and a summary of 40 more against 10 served calls.
        let mut entries: Vec<pb::AuditEntry> = (0..10).map(|d| served(d, 5, 5)).collect();
        entries.extend([refused(0), refused(40)]);
        let found = flags(&[log(entries)]);
        let denials: Vec<&Flag> = found
            .iter()
            .filter(|f| f.pattern == "many denials")
            .collect();
        assert_eq!(denials.len(), 1, "{found:?}");
        assert!(denials[0].detail.contains("41"), "{:?}", denials[0]);
    }

    #[test]
    fn a_receipt_that_does_not_verify_against_the_partners_key_is_flagged() {
        use pluis_proto::log::{digest, origin, sign_receipt, Checkpoint, NoteSigner};
        let school = NoteSigner::from_seed(&origin("t", "school"), &[1; 32]).unwrap();
        let intruder = NoteSigner::from_seed(&origin("t", "school"), &[2; 32]).unwrap();
        let (request, response) = (digest(b"q"), digest(b"a"));
        let receipt_by = |signer: &NoteSigner| {
            let checkpoint = Checkpoint {
                origin: signer.name().to_owned(),
                size: 1,
                root: [0; 32],
                extensions: Vec::new(),
            };
            sign_receipt(signer, &[9; 16], &request, &response, 0, &checkpoint).unwrap()
        };
        let asked = |receipt| pb::AuditEntry {
            kind: Kind::ExchangeRequested as i32,
            counterparty: "spiffe://t/org/school/node".into(),
            exchange_id: vec![9; 16],
            keys_asked: 5,
            request_digest: request.to_vec(),
            response_digest: response.to_vec(),
            receipt: Some(receipt),
            ..Default::default()
        };
        let logs = |entry| {
            [
                NodeLog {
                    origin: origin("t", "police"),
                    verifier_key: "police key".into(),
                    log: log(vec![entry]).log,
                },
                NodeLog {
                    origin: origin("t", "school"),
                    verifier_key: school.verifier().to_string(),
                    log: log(Vec::new()).log,
                },
            ]
        };
        assert!(flags(&logs(asked(receipt_by(&school)))).is_empty());
        let found = flags(&logs(asked(receipt_by(&intruder))));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .detail
                .contains("does not verify against the partner's key"),
            "{found:?}"
        );
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let mut entry = served(0, 5, 5);
        entry.purpose = "<script>alert(1)</script>".into();
        let html = render(&[log(vec![entry])]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resources"
        );
        assert!(html.contains("<svg"));
    }
}
