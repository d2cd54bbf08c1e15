//! `pluis match`: a case coordinator's question to their own node — which
//! life domains show signals for these persons, across the partnership?
//!
//! Subjects are given as `--subject KEY[;KEY…]` (several keys of one person
//! separated by `;`, merged into one row) or as a case file (CSV with
//! columns `label,key`; rows with the same label are one person). Keys are
//! `bsn:DIGITS` or `nd:SURNAME,INITIAL,YYYY-MM-DD[,GIVEN_NAME]` (a given
//! name lets more spelling variants be found).
//!
//! Every partner's match says its tier: *exact* (BSN, or surname, initial
//! and birth date), *probable* (a spelling variant: flags shown, marked
//! `?`, with the reason; check the identity before acting) or *possible*
//! (no flags, never counted: could be a sibling or twin).
//!
//! `--json` prints the stable schema documented in the README:
//! `{"query_id", "purpose", "subjects": [SubjectResult], "case": SubjectResult,
//! "partners": [{"org", "state", "detail", "exchange_id", "table_size"}]}` where a
//! SubjectResult is `{"label", "domains": [{"domain", "orgs", "signals",
//! "probable_orgs"}], "domain_count", "exact_domains", "probable_domains",
//! "assessment", "matches": [{"org", "tier", "reasons", "explanation"}]}`
//! and `state` is one of `answered`, `denied`, `unreachable`, `timed_out`,
//! `failed`.

use std::fmt::Write;
use std::path::Path;

use anyhow::{bail, Context};
use pluis_proto::hex;
use pluis_proto::pb::coordinator_client::CoordinatorClient;
use pluis_proto::pb::{peer_outcome::State, MatchRequest, MatchResponse, Subject, SubjectResult};
use pluis_proto::taxonomy::LifeDomain;
use pluis_transport::status_detail;
use pluis_transport::tls::TlsIdentity;

/// Subjects from `--subject` arguments.
pub fn subjects_from_args(args: &[String]) -> Vec<Subject> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| Subject {
            label: format!("subject {}", i + 1),
            keys: arg
                .split(';')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
        })
        .collect()
}

/// What is wrong with a line of a case file (never its values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseProblem {
    /// The first line is not `label,key`.
    Header,
    /// Not CSV (or not UTF-8).
    NotCsv,
    /// A label or a key is missing.
    Missing,
    /// More than two fields: a key with commas not in double quotes.
    TooManyFields,
    /// A label or key longer than the node accepts.
    TooLong(&'static str, usize),
    /// More persons than one question may ask about.
    TooManyPersons,
    /// More keys for one person than a question may hold.
    TooManyKeys,
    /// The key does not read (the identifier's own words, which name
    /// the field, never the value).
    Key(String),
    /// No person in the file.
    Empty,
}

/// A case file's problem and its line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub problem: CaseProblem,
}

impl std::fmt::Display for CaseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use pluis_proto::limits::{MAX_KEYS_PER_SUBJECT, MAX_SUBJECTS};
        match self {
            CaseProblem::Header => write!(f, "header must be exactly: label,key"),
            CaseProblem::NotCsv => write!(f, "not valid CSV (UTF-8)"),
            CaseProblem::Missing => write!(f, "needs a label and a key"),
            CaseProblem::TooManyFields => write!(
                f,
                "more than two fields: put a key that holds commas in double quotes (\"nd:…\")"
            ),
            CaseProblem::TooLong(what, most) => write!(f, "{what}: at most {most} bytes"),
            CaseProblem::TooManyPersons => {
                write!(f, "more than {MAX_SUBJECTS} persons in one question")
            }
            CaseProblem::TooManyKeys => {
                write!(f, "more than {MAX_KEYS_PER_SUBJECT} keys for one person")
            }
            CaseProblem::Key(e) => write!(f, "{e}"),
            CaseProblem::Empty => write!(f, "no persons in the file"),
        }
    }
}

/// Subjects from a case file's text: CSV `label,key`, one key per row;
/// rows with the same label are one person. Every key is checked as the
/// node would read it on `today`, and every bound the node sets is kept,
/// so a problem is named by its line here rather than by the node.
pub fn subjects_from_case_csv(
    input: impl std::io::Read,
    today: time::Date,
) -> Result<Vec<Subject>, CaseError> {
    use pluis_proto::limits::{MAX_KEYS_PER_SUBJECT, MAX_KEY_LEN, MAX_LABEL_LEN, MAX_SUBJECTS};
    let at = |line, problem| CaseError { line, problem };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|_| at(1, CaseProblem::NotCsv))?
        .clone();
    if headers.iter().collect::<Vec<_>>() != ["label", "key"] {
        return Err(at(1, CaseProblem::Header));
    }
    let mut subjects: Vec<Subject> = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|_| at(line, CaseProblem::NotCsv))?;
        if record.len() > 2 {
            return Err(at(line, CaseProblem::TooManyFields));
        }
        let (Some(label), Some(key)) = (record.get(0), record.get(1)) else {
            return Err(at(line, CaseProblem::Missing));
        };
        if label.is_empty() || key.is_empty() {
            return Err(at(line, CaseProblem::Missing));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(at(line, CaseProblem::TooLong("label", MAX_LABEL_LEN)));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(at(line, CaseProblem::TooLong("key", MAX_KEY_LEN)));
        }
        pluis_proto::identifier::SubjectKey::parse(key, today)
            .map_err(|e| at(line, CaseProblem::Key(e.to_string())))?;
        let persons = subjects.len();
        match subjects.iter_mut().find(|s| s.label == label) {
            Some(subject) if subject.keys.len() >= MAX_KEYS_PER_SUBJECT => {
                return Err(at(line, CaseProblem::TooManyKeys));
            }
            Some(subject) => subject.keys.push(key.to_owned()),
            None if persons >= MAX_SUBJECTS => {
                return Err(at(line, CaseProblem::TooManyPersons));
            }
            None => subjects.push(Subject {
                label: label.to_owned(),
                keys: vec![key.to_owned()],
            }),
        }
    }
    if subjects.is_empty() {
        return Err(at(2, CaseProblem::Empty));
    }
    Ok(subjects)
}

/// Subjects from a case file: CSV `label,key`, one key per row; a
/// problem is named by file and line.
pub fn subjects_from_case_file(path: &Path) -> anyhow::Result<Vec<Subject>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read case file {}", path.display()))?;
    subjects_from_case_csv(file, crate::clock::now_utc().date())
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.problem))
}

/// Asks the node at `url` about `subjects` for `purpose`.
pub async fn query(
    url: &str,
    identity: &TlsIdentity,
    purpose: &str,
    subjects: Vec<Subject>,
) -> anyhow::Result<MatchResponse> {
    if subjects.is_empty() {
        bail!("give at least one --subject or a --case file");
    }
    let channel = crate::connect::channel(url, identity)?;
    let response = CoordinatorClient::new(channel)
        .r#match(MatchRequest {
            purpose: purpose.to_owned(),
            subjects,
        })
        .await
        .map_err(|status| anyhow::anyhow!(status_detail(&status)))
        .with_context(|| format!("case query to node {url}"))?;
    Ok(response.into_inner())
}

fn state_name(state: i32) -> &'static str {
    match State::try_from(state) {
        Ok(State::Answered) => "answered",
        Ok(State::Denied) => "denied",
        Ok(State::Unreachable) => "unreachable",
        Ok(State::TimedOut) => "timed_out",
        Ok(State::Failed) => "failed",
        _ => "unknown",
    }
}

fn subject_json(s: &SubjectResult) -> serde_json::Value {
    serde_json::json!({
        "label": s.label,
        "domains": s.domains.iter().map(|d| serde_json::json!({
            "domain": d.domain, "orgs": d.orgs, "signals": d.signals,
            "probable_orgs": d.probable_orgs,
        })).collect::<Vec<_>>(),
        "domain_count": s.domain_count,
        "exact_domains": s.exact_domains,
        "probable_domains": s.probable_domains,
        "assessment": s.assessment,
        "matches": s.matches.iter().map(|m| serde_json::json!({
            "org": m.org, "tier": m.tier, "reasons": m.reasons,
            "explanation": m.explanation,
        })).collect::<Vec<_>>(),
    })
}

/// The documented JSON form of an answer.
pub fn to_json(purpose: &str, response: &MatchResponse) -> serde_json::Value {
    serde_json::json!({
        "query_id": hex(&response.query_id),
        "purpose": purpose,
        "subjects": response.subjects.iter().map(subject_json).collect::<Vec<_>>(),
        "case": response.case_total.as_ref().map(subject_json),
        "partners": response.peers.iter().map(|p| serde_json::json!({
            "org": p.org,
            "state": state_name(p.state),
            "detail": p.detail,
            "exchange_id": hex(&p.exchange_id),
            "table_size": p.table_size,
        })).collect::<Vec<_>>(),
    })
}

/// The count of flagged domains, and how many only through probable
/// matches.
fn domain_count(s: &SubjectResult) -> String {
    match s.probable_domains {
        0 => s.domain_count.to_string(),
        p => format!("{} ({} probable)", s.domain_count, p),
    }
}

/// Below the table: every probable match with its reason, and every
/// possible match, which shows no flags and counts for nothing.
fn render_tiers(out: &mut String, subjects: &[SubjectResult]) {
    let of_tier = |tier: &str| -> Vec<String> {
        subjects
            .iter()
            .flat_map(|s| {
                s.matches
                    .iter()
                    .filter(move |m| m.tier == tier)
                    .map(move |m| format!("  {} at {}: {}", s.label, m.org, m.explanation))
            })
            .collect()
    };
    for (tier, heading) in [
        (
            "probable",
            "probable matches (marked ?; check the identity before acting):",
        ),
        (
            "possible",
            "possible matches (no flags shown, not counted; could be a sibling or twin — ask again with more identifiers to confirm):",
        ),
    ] {
        let lines = of_tier(tier);
        if !lines.is_empty() {
            let _ = writeln!(out, "{heading}");
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

/// A table for a terminal: a row per subject, a column per life domain.
pub fn render(response: &MatchResponse) -> String {
    let cell = |s: &SubjectResult, domain: LifeDomain| -> String {
        s.domains
            .iter()
            .find(|d| d.domain == domain.code())
            .map_or_else(
                || "·".to_owned(),
                |d| {
                    // A probable match is marked: check the identity.
                    let orgs: Vec<String> = d
                        .orgs
                        .iter()
                        .map(|o| match d.probable_orgs.contains(o) {
                            true => format!("{o}?"),
                            false => o.clone(),
                        })
                        .collect();
                    let mut text = orgs.join("+");
                    if !d.signals.is_empty() {
                        let _ = write!(text, " ({})", d.signals.join(", "));
                    }
                    text
                },
            )
    };
    let mut rows: Vec<&SubjectResult> = response.subjects.iter().collect();
    if let Some(total) = &response.case_total {
        rows.push(total);
    }
    let mut table: Vec<Vec<String>> = vec![std::iter::once("subject".to_owned())
        .chain(LifeDomain::ALL.iter().map(|d| d.code().to_owned()))
        .chain(["domains".to_owned(), "assessment".to_owned()])
        .collect()];
    for s in &rows {
        table.push(
            std::iter::once(s.label.clone())
                .chain(LifeDomain::ALL.iter().map(|d| cell(s, *d)))
                .chain([domain_count(s), s.assessment.clone()])
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in table.iter().enumerate() {
        if i == table.len() - 1 && response.case_total.is_some() {
            let total: usize = widths.iter().sum::<usize>() + 2 * widths.len();
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
        for (c, value) in row.iter().enumerate() {
            let pad = widths[c] - value.chars().count();
            let _ = write!(out, "{value}{}  ", " ".repeat(pad));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    render_tiers(&mut out, &response.subjects);
    let missing: Vec<String> = response
        .peers
        .iter()
        .filter(|p| p.state() != State::Answered)
        .map(|p| format!("{} ({}: {})", p.org, state_name(p.state), p.detail))
        .collect();
    let answered = response.peers.len() - missing.len();
    let _ = writeln!(
        out,
        "partners answered: {answered} of {}",
        response.peers.len()
    );
    if !missing.is_empty() {
        let _ = writeln!(out, "PARTIAL ANSWER, missing: {}", missing.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: time::Date = time::macros::date!(2026 - 12 - 03);

    fn read(text: &str) -> Result<Vec<Subject>, CaseError> {
        subjects_from_case_csv(text.as_bytes(), TODAY)
    }

    #[test]
    fn a_case_file_groups_keys_by_label_and_names_each_problem_by_line_never_by_value() {
        let family = read(
            "label,key\nchild,bsn:111222333\nmother,\"nd:Jansen,J,04-03-1985\"\nchild,\"nd:Jansen,A,2012-03-04,Amina\"\n",
        )
        .unwrap();
        assert_eq!(family.len(), 2);
        assert_eq!(family[0].label, "child");
        assert_eq!(family[0].keys.len(), 2);
        assert_eq!(family[1].keys, ["nd:Jansen,J,04-03-1985"]);

        let problem = |text: &str| read(text).map(|_| ()).unwrap_err();
        let at = |line, problem| CaseError { line, problem };
        assert_eq!(problem("name,bsn\n"), at(1, CaseProblem::Header));
        assert_eq!(problem("label,key\n"), at(2, CaseProblem::Empty));
        assert_eq!(
            problem("label,key\nchild,bsn:111222333\nmother,\n"),
            at(3, CaseProblem::Missing)
        );
        assert_eq!(
            problem("label,key\nmother,nd:Jansen,J,04-03-1985\n"),
            at(2, CaseProblem::TooManyFields)
        );
        assert_eq!(
            subjects_from_case_csv(&b"label,key\nchild,\xff\n"[..], TODAY).unwrap_err(),
            at(2, CaseProblem::NotCsv)
        );
        assert_eq!(
            problem(&format!("label,key\n{},bsn:111222333\n", "x".repeat(65))),
            at(2, CaseProblem::TooLong("label", 64))
        );
        let many: String = (0..65).map(|i| format!("p{i},bsn:111222333\n")).collect();
        assert_eq!(
            problem(&format!("label,key\n{many}")),
            at(66, CaseProblem::TooManyPersons)
        );
        let keys: String = (0..17).map(|_| "p,bsn:111222333\n").collect();
        assert_eq!(
            problem(&format!("label,key\n{keys}")),
            at(18, CaseProblem::TooManyKeys)
        );
        let bad = problem("label,key\nchild,bsn:123456789\n");
        assert_eq!(bad.line, 2);
        let text = bad.problem.to_string();
        assert!(
            text.contains("elfproef") && !text.contains("123456789"),
            "{text}"
        );
        let bad = problem("label,key\nchild,\"nd:Jansen,J,31-02-2012\"\n");
        assert!(
            !bad.problem.to_string().contains("31-02"),
            "{}",
            bad.problem
        );
    }
}
