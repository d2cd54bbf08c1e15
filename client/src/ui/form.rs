//! The question form: what the coordinator typed, checked field by field
//! (errors name the field, never repeat its value), and the subjects it
//! becomes.

use std::collections::HashMap;

use maud::{html, Markup};
use pluis_proto::identifier::{Bsn, NameDobKey};
use pluis_proto::limits::MAX_SUBJECTS;
use pluis_proto::pb::Subject;

use crate::coordinator::matching::{subjects_from_case_csv, CaseError, CaseProblem};

/// Person rows on the form.
pub const PERSON_ROWS: usize = 5;
/// Longest value of any field.
const MAX_FIELD: usize = 100;
/// Largest case file (64 persons × 16 keys fit many times over).
pub const MAX_CASE_FILE: usize = 64 * 1024;

/// Why an uploaded case file was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileProblem {
    /// Larger than [`MAX_CASE_FILE`].
    TooLarge,
    /// Not UTF-8 text.
    NotText,
}

/// One person as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonRow {
    pub bsn: String,
    pub surname: String,
    pub initial: String,
    pub birth: String,
    pub given: String,
}

impl PersonRow {
    fn is_empty(&self) -> bool {
        [
            &self.bsn,
            &self.surname,
            &self.initial,
            &self.birth,
            &self.given,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }
}

/// The whole form as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub case: String,
    pub purpose: String,
    /// The rows with anything in them, in order.
    pub persons: Vec<PersonRow>,
    /// A case file's text (CSV `label,key`, as for `pluis match
    /// --case`), carried from step to step; empty: none.
    pub case_file: String,
    /// Why an uploaded file could not be taken.
    pub file_problem: Option<FileProblem>,
}

impl Form {
    /// The form from posted fields (unknown fields ignored, every value
    /// cut to its bound).
    pub fn from_fields(fields: &HashMap<String, String>) -> Form {
        let get = |name: &str| -> String {
            fields
                .get(name)
                .map(|v| v.chars().take(MAX_FIELD).collect())
                .unwrap_or_default()
        };
        let persons = (0..PERSON_ROWS)
            .map(|i| PersonRow {
                bsn: get(&format!("bsn-{i}")),
                surname: get(&format!("surname-{i}")),
                initial: get(&format!("initial-{i}")),
                birth: get(&format!("birth-{i}")),
                given: get(&format!("given-{i}")),
            })
            .filter(|p| !p.is_empty())
            .collect();
        let case_file = if fields.contains_key("casedrop") {
            String::new()
        } else {
            fields.get("casetext").cloned().unwrap_or_default()
        };
        let file_problem = if case_file.len() > MAX_CASE_FILE {
            Some(FileProblem::TooLarge)
        } else {
            match fields.get("casefile-problem").map(String::as_str) {
                Some("too-large") => Some(FileProblem::TooLarge),
                Some(_) => Some(FileProblem::NotText),
                None => None,
            }
        };
        Form {
            case: get("case").trim().to_owned(),
            purpose: get("purpose"),
            persons,
            case_file: if file_problem.is_some() {
                String::new()
            } else {
                case_file
            },
            file_problem,
        }
    }

    /// The posted fields of a multipart form (the question form, which
    /// can carry a case file): text fields by name, and the file's text
    /// as `casetext` — or, if it is too large or not text, only why.
    pub async fn read_multipart(
        mut multipart: axum::extract::Multipart,
    ) -> Result<HashMap<String, String>, axum::extract::multipart::MultipartError> {
        let mut fields = HashMap::new();
        while let Some(mut field) = multipart.next_field().await? {
            let name = field.name().unwrap_or_default().to_owned();
            let mut bytes = Vec::new();
            let mut too_large = false;
            while let Some(chunk) = field.chunk().await? {
                if bytes.len() + chunk.len() > MAX_CASE_FILE {
                    too_large = true;
                    continue;
                }
                bytes.extend_from_slice(&chunk);
            }
            if name == "casefile" {
                if too_large {
                    fields.insert("casefile-problem".into(), "too-large".into());
                } else if !bytes.is_empty() {
                    match String::from_utf8(bytes) {
                        Ok(text) => {
                            fields.insert("casetext".into(), text);
                        }
                        Err(_) => {
                            fields.insert("casefile-problem".into(), "not-text".into());
                        }
                    }
                }
            } else if !too_large {
                // A new file replaces the one carried along.
                if name == "casetext" && fields.contains_key("casetext") {
                    continue;
                }
                fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        Ok(fields)
    }

    /// The form's fields as hidden inputs (the confirmation step).
    pub fn hidden(&self) -> Markup {
        html! {
            input type="hidden" name="case" value=(self.case);
            input type="hidden" name="purpose" value=(self.purpose);
            @if !self.case_file.is_empty() {
                input type="hidden" name="casetext" value=(self.case_file);
            }
            @for (i, p) in self.persons.iter().enumerate() {
                input type="hidden" name={ "bsn-" (i) } value=(p.bsn);
                input type="hidden" name={ "surname-" (i) } value=(p.surname);
                input type="hidden" name={ "initial-" (i) } value=(p.initial);
                input type="hidden" name={ "birth-" (i) } value=(p.birth);
                input type="hidden" name={ "given-" (i) } value=(p.given);
            }
        }
    }

    /// The subjects the form asks about, or every problem as (field id,
    /// message); `purposes` are the ones the node allows.
    pub fn subjects(
        &self,
        purposes: &[String],
        lang: super::text::Lang,
        today: time::Date,
    ) -> Result<Vec<Subject>, Vec<(String, String)>> {
        let mut errors = Vec::new();
        if self.case.is_empty() {
            errors.push(("case".into(), lang.t("question.no_case").into()));
        }
        if !purposes.contains(&self.purpose) {
            errors.push(("purpose-0".into(), lang.t("question.no_purpose").into()));
        }
        if self.persons.is_empty() && self.case_file.is_empty() && self.file_problem.is_none() {
            errors.push(("bsn-0".into(), lang.t("question.no_persons").into()));
        }
        let mut subjects = Vec::new();
        for (i, p) in self.persons.iter().enumerate() {
            let mut keys = Vec::new();
            let label = format!("{} {}", lang.t("question.person"), i + 1);
            if !p.bsn.trim().is_empty() {
                match Bsn::parse(&p.bsn) {
                    Ok(bsn) => keys.push(format!("bsn:{}", bsn.digits())),
                    Err(e) => errors.push((format!("bsn-{i}"), format!("{label}: {e}"))),
                }
            }
            let name = [&p.surname, &p.initial, &p.birth, &p.given];
            if name.iter().any(|v| !v.trim().is_empty()) {
                let (field, result) = if p.surname.trim().is_empty() {
                    ("surname", Err("surname: missing".to_owned()))
                } else if p.birth.trim().is_empty() {
                    ("birth", Err("birth_date: missing".to_owned()))
                } else {
                    let key = NameDobKey::with_given(
                        &p.surname,
                        opt(&p.initial),
                        opt(&p.given),
                        &p.birth,
                        today,
                    );
                    let field = match &key {
                        Err(e) if e.to_string().starts_with("initial") => "initial",
                        Err(e) if e.to_string().starts_with("given") => "given",
                        Err(e) if e.to_string().starts_with("surname") => "surname",
                        _ => "birth",
                    };
                    (field, key.map(|_| ()).map_err(|e| e.to_string()))
                };
                match result {
                    Ok(()) => keys.push(name_key(p)),
                    Err(e) => errors.push((format!("{field}-{i}"), format!("{label}: {e}"))),
                }
            }
            subjects.push(Subject { label, keys });
        }
        match self.file_problem {
            Some(FileProblem::TooLarge) => {
                errors.push(("casefile".into(), lang.t("file.too_large").into()));
            }
            Some(FileProblem::NotText) => {
                errors.push(("casefile".into(), lang.t("file.not_text").into()));
            }
            None if !self.case_file.is_empty() => {
                match subjects_from_case_csv(self.case_file.as_bytes(), today) {
                    Ok(from_file) => subjects.extend(from_file),
                    Err(e) => errors.push(("casefile".into(), file_error(lang, &e))),
                }
            }
            None => {}
        }
        if subjects.len() > MAX_SUBJECTS {
            errors.push(("casefile".into(), lang.t("file.too_many").into()));
        }
        if errors.is_empty() {
            Ok(subjects)
        } else {
            Err(errors)
        }
    }

    /// How many persons the case file holds, if it reads.
    pub fn file_persons(&self, today: time::Date) -> Option<usize> {
        subjects_from_case_csv(self.case_file.as_bytes(), today)
            .ok()
            .map(|s| s.len())
    }
}

/// A case file's problem, in the page's language, by line (never a value).
fn file_error(lang: super::text::Lang, e: &CaseError) -> String {
    let what = match &e.problem {
        CaseProblem::Header => lang.t("file.header").to_owned(),
        CaseProblem::NotCsv => lang.t("file.not_text").to_owned(),
        CaseProblem::Missing => lang.t("file.missing").to_owned(),
        CaseProblem::TooManyFields => lang.t("file.fields").to_owned(),
        CaseProblem::TooLong(..) => lang.t("file.too_long").to_owned(),
        CaseProblem::TooManyPersons => lang.t("file.too_many").to_owned(),
        CaseProblem::TooManyKeys => lang.t("file.too_many_keys").to_owned(),
        CaseProblem::Key(reason) => format!("{}: {reason}", lang.t("file.key")),
        CaseProblem::Empty => lang.t("file.empty").to_owned(),
    };
    format!(
        "{}, {} {}: {what}",
        lang.t("file.name"),
        lang.t("file.line"),
        e.line
    )
}

/// A field's text, if anything is in it.
fn opt(v: &str) -> Option<&str> {
    Some(v.trim()).filter(|v| !v.is_empty())
}

/// `nd:SURNAME,INITIAL,DATE[,GIVEN]` as typed (the node normalises it).
fn name_key(p: &PersonRow) -> String {
    let clean = |v: &str| v.trim().replace([',', ';'], " ");
    let mut key = format!(
        "nd:{},{},{}",
        clean(&p.surname),
        clean(&p.initial),
        clean(&p.birth)
    );
    if !p.given.trim().is_empty() {
        key.push(',');
        key.push_str(&clean(&p.given));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::text::Lang;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const TODAY: time::Date = time::macros::date!(2026 - 12 - 03);

    #[test]
    fn a_family_becomes_subjects_and_bad_fields_are_named_not_echoed() {
        let purposes = vec!["exploitation-assessment".to_owned()];
        let form = Form::from_fields(&fields(&[
            ("case", " Z-2026-17 "),
            ("purpose", "exploitation-assessment"),
            ("bsn-0", "111222333"),
            ("surname-1", "Mehmedović"),
            ("given-1", "Amina"),
            ("birth-1", "04-03-2012"),
            ("bsn-3", "123456782"),
        ]));
        assert_eq!(form.case, "Z-2026-17");
        assert_eq!(form.persons.len(), 3, "empty rows are left out");
        let subjects = form.subjects(&purposes, Lang::Nl, TODAY).unwrap();
        assert_eq!(subjects[0].keys, ["bsn:111222333"]);
        assert_eq!(subjects[1].keys, ["nd:Mehmedović,,04-03-2012,Amina"]);
        assert_eq!(subjects[2].label, "Persoon 3");

        let bad = Form::from_fields(&fields(&[
            ("purpose", "something-else"),
            ("bsn-0", "123456789"),
            ("surname-1", "Jansen"),
            ("birth-1", "31-02-2012"),
        ]));
        let errors = bad.subjects(&purposes, Lang::Nl, TODAY).unwrap_err();
        let ids: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(ids, ["case", "purpose-0", "bsn-0", "birth-1"]);
        for (_, message) in &errors {
            assert!(
                !message.contains("123456789") && !message.contains("31-02"),
                "{message}"
            );
        }
    }
}
