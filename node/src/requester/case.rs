//! The case query: which life domains have signals for a case's persons,
//! across the partnership. Every partner is asked at once (merged with
//! other case queries to the same partner: [`super::batch`]), this node's
//! own signals are added from one snapshot, the assessment rule is
//! applied, and the question is logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pluis_proto::families::{self, Family, Reason};
use pluis_proto::identifier::SubjectKey;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::Flags;
use time::Date;
use tracing::Instrument;

use super::exchange::{exchange_id, Fetch, PeerAnswer, PEER_DEADLINE};
use super::fanout::{ask_all, ask_one, gather};
use super::question::{own_purpose, BadField, CaseDomains, Found, QueryError, Question};
use crate::failure::Failure;
use crate::policy::View;
use crate::policy::{Assessment, Rule};
use crate::responder::tables::add_flags;
use crate::server::state::NodeState;

/// A question's persons: each key once, and per person where its keys
/// are; and every OPRF input the partners are asked (each key's exact
/// input and its variants in every key family), each once.
#[derive(Debug)]
struct Persons {
    /// Every distinct key, in the order first named.
    keys: Vec<SubjectKey>,
    /// Per person (in the order asked), its keys' places in `keys`.
    of: Vec<Vec<usize>>,
    /// Every distinct OPRF input.
    inputs: Vec<String>,
    /// Per person, its inputs' places in `inputs`, each with why it is
    /// asked (its strongest reason, where two variants coincide).
    asked: Vec<Vec<(usize, Reason)>>,
}

impl Persons {
    /// Parses every key of `subjects`; an error names the place, never
    /// the value.
    fn parse(subjects: &[pb::Subject], today: Date) -> Result<Persons, QueryError> {
        if subjects.is_empty() {
            return Err(QueryError::invalid("subjects", BadField::NoneAtAll));
        }
        let mut persons = Persons {
            keys: Vec::new(),
            of: Vec::new(),
            inputs: Vec::new(),
            asked: Vec::new(),
        };
        let mut input_places: HashMap<String, usize> = HashMap::new();
        for (i, subject) in subjects.iter().enumerate() {
            if subject.keys.is_empty() {
                return Err(QueryError::invalid(
                    format!("subjects[{i}].keys"),
                    BadField::NoKeys,
                ));
            }
            let mut places = Vec::new();
            for (j, text) in subject.keys.iter().enumerate() {
                let key = SubjectKey::parse(text, today)
                    .map_err(|e| QueryError::invalid(format!("subjects[{i}].keys[{j}]"), e))?;
                let place = match persons.keys.iter().position(|k| *k == key) {
                    Some(place) => place,
                    None => {
                        persons.keys.push(key);
                        persons.keys.len() - 1
                    }
                };
                places.push(place);
            }
            let mut asked: BTreeMap<usize, Reason> = BTreeMap::new();
            for &place in &places {
                for variant in families::query_inputs(&persons.keys[place]) {
                    let next = persons.inputs.len();
                    let input = *input_places.entry(variant.input).or_insert_with_key(|k| {
                        persons.inputs.push(k.clone());
                        next
                    });
                    let reason = asked.entry(input).or_insert(variant.reason);
                    *reason = (*reason).min(variant.reason);
                }
            }
            persons.of.push(places);
            persons.asked.push(asked.into_iter().collect());
        }
        Ok(persons)
    }
}

/// Answers a case query from `coordinator` (their SPIFFE id).
pub async fn case_query(
    state: &Arc<NodeState>,
    coordinator: String,
    request: pb::MatchRequest,
) -> Result<pb::MatchResponse, QueryError> {
    let state = state.clone();
    let live = state.live();
    let purpose = own_purpose(&live, &request.purpose)?;
    state.metrics.case_query();
    let today = state.clock.today();
    let persons = Persons::parse(&request.subjects, today)?;
    let query_id = exchange_id();
    let span = tracing::info_span!(
        "case_query",
        query = %query_id,
        purpose = %purpose.name,
        subjects = request.subjects.len(),
        keys = persons.keys.len(),
        inputs = persons.inputs.len()
    );
    async move {
        // Every partner at once, each under its own deadline; our own
        // signals meanwhile.
        let asks = ask_all(
            live.partners(),
            &state.audit,
            &purpose,
            &persons.inputs,
            PEER_DEADLINE,
            Fetch::Buckets,
        );
        let own = own_flags(&state, persons.keys.clone(), today).await?;
        let mut answers = Vec::new();
        let mut outcomes = Vec::new();
        for answer in gather(asks).await {
            // A partner whose budget for the weaker variants ran out is
            // asked again with the exact inputs: the budget costs the
            // variants, never the exact answer.
            let answer = match weak_budget_refused(&answer) {
                Some(rule) => {
                    let partners = live.partners();
                    exact_again(partners, &state, &purpose, &persons.inputs, answer, rule).await
                }
                None => answer,
            };
            answers.push((answer.outcome.org.clone(), answer.flags));
            outcomes.push(answer.outcome);
        }
        let own = (state.id.org().to_string(), own);
        let (subjects, total) = combine(
            &request.subjects,
            &persons,
            &own,
            &answers,
            live.assessment(),
        );
        let question = Question {
            coordinator,
            purpose: &purpose,
            exchange_id: query_id.to_vec(),
            // The coordinator's keys; each exchange's entry counts the
            // variants asked.
            keys: persons.keys.len(),
        };
        question
            .record(&state, detail(request.subjects.len(), &outcomes))
            .await?;
        Ok(pb::MatchResponse {
            query_id: query_id.to_vec(),
            subjects,
            case_total: Some(total),
            peers: outcomes,
        })
    }
    .instrument(span)
    .await
}

/// The tier-budget rule a partner refused an exchange under, if that is
/// why it refused.
fn weak_budget_refused(answer: &PeerAnswer) -> Option<Rule> {
    if answer.outcome.state() != State::Denied {
        return None;
    }
    [Rule::MaxProbableKeysPerDay, Rule::MaxPossibleKeysPerDay]
        .into_iter()
        .find(|rule| {
            answer
                .outcome
                .detail
                .contains(&format!("policy rule {rule}"))
        })
}

/// `refused` asked again with the exact inputs of `inputs` only, its
/// answer spread back over all of them; `refused` itself if there is
/// nothing to leave out or the partner is gone.
async fn exact_again(
    partners: super::fanout::Partners<'_>,
    state: &NodeState,
    purpose: &crate::policy::Purpose,
    inputs: &[String],
    refused: PeerAnswer,
    rule: Rule,
) -> PeerAnswer {
    let places = exact_only(inputs);
    if places.is_empty() || places.len() == inputs.len() {
        return refused;
    }
    let keys: Vec<String> = places.iter().map(|&i| inputs[i].clone()).collect();
    let org = refused.outcome.org.clone();
    tracing::info!(partner = %org, %rule, keys = keys.len(), "asking again with exact keys only");
    match ask_one(partners, &state.audit, purpose, &org, &keys, PEER_DEADLINE).await {
        Some(exact) => spread(exact, &places, inputs.len(), rule),
        None => refused,
    }
}

/// The places of `inputs` of the exact family: a question without its
/// spelling and weak variants, which no tier budget charges.
fn exact_only(inputs: &[String]) -> Vec<usize> {
    inputs
        .iter()
        .enumerate()
        .filter(|(_, input)| Family::of_input(input) == Some(Family::Exact))
        .map(|(i, _)| i)
        .collect()
}

/// The answer to the exact-only question, spread back over all `inputs`
/// (the variants: nothing), saying why the variants went unasked.
fn spread(mut exact: PeerAnswer, places: &[usize], inputs: usize, rule: Rule) -> PeerAnswer {
    let mut flags = vec![None; inputs];
    for (&place, found) in places.iter().zip(exact.flags) {
        flags[place] = found;
    }
    exact.flags = flags;
    if exact.outcome.state() == State::Answered {
        exact.outcome.detail = format!(
            "exact keys only: the partner's policy rule {rule} refused the spelling variants today"
        );
    }
    exact
}

/// This node's own flags for `keys`, from one snapshot: an import
/// published meanwhile is seen for all of them or for none.
async fn own_flags(
    state: &Arc<NodeState>,
    keys: Vec<SubjectKey>,
    today: Date,
) -> Result<Vec<Option<Flags>>, QueryError> {
    let state = state.clone();
    let flags = tokio::task::spawn_blocking(move || {
        let snapshot = state.store.snapshot();
        let mut flags = Vec::with_capacity(keys.len());
        for key in &keys {
            let mut found: Option<Flags> = None;
            for record in state.store.records_for_key_in(&snapshot, key)? {
                if !record.expired_on(today) {
                    let into = found.get_or_insert_with(Flags::default);
                    add_flags(into, &record, &View::everything());
                }
            }
            flags.push(found);
        }
        Ok(flags)
    })
    .await
    .map_err(|_| Failure::Task("local lookup"))?
    .map_err(Failure::store("local lookup"))?;
    Ok(flags)
}

/// Per person and for the whole case, the domains every org's flags show
/// (this node's own, per key, all exact; `answers`: per partner, per
/// input), each partner through its best tier for the person, with the
/// assessment rule's advice.
fn combine(
    subjects: &[pb::Subject],
    persons: &Persons,
    own: &(String, Vec<Option<Flags>>),
    answers: &[(String, Vec<Option<Flags>>)],
    assessment: &Assessment,
) -> (Vec<pb::SubjectResult>, pb::SubjectResult) {
    let mut results = Vec::new();
    let mut total = CaseDomains::new();
    for (i, subject) in subjects.iter().enumerate() {
        let mut domains = CaseDomains::new();
        let mut found = Vec::new();
        let own_hits = persons.of[i]
            .iter()
            .filter_map(|&k| own.1.get(k)?.as_ref().map(|f| (Reason::Exact, f)));
        found.extend(Found::best(own_hits).map(|f| (&own.0, f)));
        for (org, flags) in answers {
            let hits = persons.asked[i]
                .iter()
                .filter_map(|&(p, reason)| flags.get(p)?.as_ref().map(|f| (reason, f)));
            found.extend(Found::best(hits).map(|f| (org, f)));
        }
        for (org, f) in &found {
            domains.add(org, f);
            total.add(org, f);
        }
        let label = if subject.label.is_empty() {
            format!("subject {}", i + 1)
        } else {
            subject.label.clone()
        };
        results.push(domains.result(label, assessment));
    }
    let total = total.result("case (all subjects)".into(), assessment);
    (results, total)
}

/// The question's log detail: how many persons, which partners answered,
/// and the partner exchanges it rode on (shared with other queries when
/// they were merged), to find them in the logs.
fn detail(subjects: usize, outcomes: &[pb::PeerOutcome]) -> String {
    let served = outcomes
        .iter()
        .filter(|o| o.state() == State::Answered)
        .count();
    tracing::info!(
        partners = outcomes.len(),
        answered = served,
        "case query answered"
    );
    let exchanges: Vec<String> = outcomes
        .iter()
        .map(|o| format!("{}:{}", o.org, pluis_proto::hex(&o.exchange_id)))
        .collect();
    format!(
        "case query: subjects={subjects} partners answered={served}/{} exchanges={}",
        outcomes.len(),
        exchanges.join(",")
    )
}
