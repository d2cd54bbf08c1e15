//! The bounds of every field a peer, a coordinator or an auditor sends.
//!
//! A node checks these before anything else — before policy, before a
//! log line, before an audit entry — so that no caller can make it hold,
//! log or sign text of any length. A field out of bounds is refused with
//! [`FieldError`], which names the field and the limit and never repeats
//! the value (it could be personal data, or a forged log line).
//!
//! | field | bound |
//! | --- | --- |
//! | `context.exchange_id` | exactly [`EXCHANGE_ID_LEN`] bytes |
//! | `context.purpose`, `MatchRequest.purpose`, `ScreenRequest.purpose` | 1 to [`MAX_PURPOSE_LEN`] bytes of printable text |
//! | `context.legal_basis` | 1 to [`MAX_LEGAL_BASIS_LEN`] bytes of printable text |
//! | `EvaluateRequest.blinded` | 1 to [`MAX_BLINDED`] elements of [`ELEMENT_LEN`] bytes |
//! | `EvaluateRequest.families` | none, or one known family number per element |
//! | `GetTableRequest.prefix`, `more_prefixes` | at most [`MAX_PREFIXES`] prefixes in all |
//! | `MatchRequest.subjects` | 1 to [`MAX_SUBJECTS`] subjects |
//! | `Subject.label` | at most [`MAX_LABEL_LEN`] bytes of printable text |
//! | `Subject.keys` | 1 to [`MAX_KEYS_PER_SUBJECT`] keys of at most [`MAX_KEY_LEN`] bytes |
//! | `ScreenRequest.min_domains` | 0 to 7 |
//!
//! "Printable" means no control characters (no newline, NUL or escape),
//! so that a value within bounds cannot forge a log line either.

/// Bytes in an exchange id.
pub const EXCHANGE_ID_LEN: usize = 16;
/// Most bytes in a purpose name.
pub const MAX_PURPOSE_LEN: usize = 128;
/// Most bytes in a legal basis.
pub const MAX_LEGAL_BASIS_LEN: usize = 256;
/// Most blinded elements in one `Evaluate`, whatever a policy allows.
pub const MAX_BLINDED: usize = 4096;
/// Bytes in a serialised ristretto255 element.
pub const ELEMENT_LEN: usize = 32;
/// Most bucket prefixes in one `GetTable` (`prefix` and `more_prefixes`).
pub const MAX_PREFIXES: usize = 1024;
/// Most subjects in one case query.
pub const MAX_SUBJECTS: usize = 64;
/// Most bytes in a subject's display label.
pub const MAX_LABEL_LEN: usize = 64;
/// Most keys of one subject.
pub const MAX_KEYS_PER_SUBJECT: usize = 16;
/// Most bytes in one identifier key (`bsn:…`, `nd:…`).
pub const MAX_KEY_LEN: usize = 160;

/// A field out of its bounds: which field, and which bound. Its text
/// never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field, as a path into the request (`context.purpose`).
    pub field: String,
    /// What is wrong, with the limit.
    pub problem: Problem,
    /// The offending value's length in bytes, for the refusal's entry.
    pub len: usize,
    /// SHA-256 of the offending value, for the refusal's entry.
    pub digest: [u8; 32],
}

/// How a field is out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Empty where a value is needed.
    #[error("missing")]
    Missing,
    /// Longer than allowed.
    #[error("{len} bytes; at most {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not of the one length allowed.
    #[error("{len} bytes; must be exactly {exact}")]
    WrongLength {
        /// Its length.
        len: usize,
        /// The length it must have.
        exact: usize,
    },
    /// More items than allowed.
    #[error("{count} items; at most {max} allowed")]
    TooMany {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Neither none nor one per item of the list it goes with.
    #[error("{count} items for {items}; must be none or one each")]
    NotOnePerItem {
        /// How many.
        count: usize,
        /// How many it goes with.
        items: usize,
    },
    /// A control character (newline, NUL, escape, …).
    #[error("control characters are not allowed")]
    Control,
    /// Out of its numeric range.
    #[error("{value} is out of range; {min} to {max} allowed")]
    Range {
        /// The value.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
}

impl FieldError {
    /// A refusal of `field`, whose value is `value`, for `problem`.
    pub fn new(field: impl Into<String>, value: &[u8], problem: Problem) -> Self {
        FieldError {
            field: field.into(),
            problem,
            len: value.len(),
            digest: crate::log::digest(value),
        }
    }
}

/// Checks a text field: present, at most `max` bytes, no control
/// characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    optional_text(field, value, max)?;
    if value.trim().is_empty() {
        return Err(FieldError::new(field, value.as_bytes(), Problem::Missing));
    }
    Ok(())
}

/// Checks a text field that may be empty: at most `max` bytes, no
/// control characters.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        return Err(FieldError::new(
            field,
            value.as_bytes(),
            Problem::TooLong {
                len: value.len(),
                max,
            },
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, value.as_bytes(), Problem::Control));
    }
    Ok(())
}

/// Checks a byte field of one exact length.
pub fn exact(field: &str, value: &[u8], len: usize) -> Result<(), FieldError> {
    if value.len() != len {
        return Err(FieldError::new(
            field,
            value,
            Problem::WrongLength {
                len: value.len(),
                exact: len,
            },
        ));
    }
    Ok(())
}

/// Checks a repeated field's count: 1 to `max` (or 0 to `max` if not
/// `required`).
pub fn count(field: &str, count: usize, max: usize, required: bool) -> Result<(), FieldError> {
    if count > max {
        return Err(FieldError::new(field, &[], Problem::TooMany { count, max }));
    }
    if required && count == 0 {
        return Err(FieldError::new(field, &[], Problem::Missing));
    }
    Ok(())
}

/// Checks an exchange's context: id, purpose, legal basis.
pub fn context(context: Option<&crate::pb::ExchangeContext>) -> Result<(), FieldError> {
    let Some(context) = context else {
        return Err(FieldError::new("context", &[], Problem::Missing));
    };
    exact("context.exchange_id", &context.exchange_id, EXCHANGE_ID_LEN)?;
    text("context.purpose", &context.purpose, MAX_PURPOSE_LEN)?;
    text(
        "context.legal_basis",
        &context.legal_basis,
        MAX_LEGAL_BASIS_LEN,
    )
}

/// Checks an `Evaluate` request's fields (not the elements' points: the
/// OPRF does that).
pub fn evaluate(request: &crate::pb::EvaluateRequest) -> Result<(), FieldError> {
    context(request.context.as_ref())?;
    count("blinded", request.blinded.len(), MAX_BLINDED, true)?;
    for (i, element) in request.blinded.iter().enumerate() {
        exact(&format!("blinded[{i}]"), element, ELEMENT_LEN)?;
    }
    let families = &request.families;
    if !families.is_empty() && families.len() != request.blinded.len() {
        let problem = Problem::NotOnePerItem {
            count: families.len(),
            items: request.blinded.len(),
        };
        return Err(FieldError::new("families", &[], problem));
    }
    let last = crate::families::Family::ALL.len() as u64 - 1;
    for (i, family) in families.iter().enumerate() {
        if crate::families::Family::from_wire(*family).is_none() {
            let problem = Problem::Range {
                value: u64::from(*family),
                min: 0,
                max: last,
            };
            return Err(FieldError::new(
                format!("families[{i}]"),
                &family.to_be_bytes(),
                problem,
            ));
        }
    }
    Ok(())
}

/// Checks a `GetTable` request's fields (prefix shapes are checked when
/// parsed).
pub fn get_table(request: &crate::pb::GetTableRequest) -> Result<(), FieldError> {
    context(request.context.as_ref())?;
    count(
        "more_prefixes",
        1 + request.more_prefixes.len(),
        MAX_PREFIXES,
        false,
    )?;
    if request.prefix_bits > 128 {
        return Err(FieldError::new(
            "prefix_bits",
            &[],
            Problem::Range {
                value: u64::from(request.prefix_bits),
                min: 0,
                max: 128,
            },
        ));
    }
    Ok(())
}

/// Checks a case query's fields.
pub fn match_request(request: &crate::pb::MatchRequest) -> Result<(), FieldError> {
    text("purpose", &request.purpose, MAX_PURPOSE_LEN)?;
    count("subjects", request.subjects.len(), MAX_SUBJECTS, true)?;
    for (i, subject) in request.subjects.iter().enumerate() {
        optional_text(
            &format!("subjects[{i}].label"),
            &subject.label,
            MAX_LABEL_LEN,
        )?;
        count(
            &format!("subjects[{i}].keys"),
            subject.keys.len(),
            MAX_KEYS_PER_SUBJECT,
            true,
        )?;
        for (j, key) in subject.keys.iter().enumerate() {
            text(&format!("subjects[{i}].keys[{j}]"), key, MAX_KEY_LEN)?;
        }
    }
    Ok(())
}

/// Checks a screening request's fields.
pub fn screen_request(request: &crate::pb::ScreenRequest) -> Result<(), FieldError> {
    text("purpose", &request.purpose, MAX_PURPOSE_LEN)?;
    let most = crate::taxonomy::LifeDomain::ALL.len() as u64;
    if u64::from(request.min_domains) > most {
        return Err(FieldError::new(
            "min_domains",
            &[],
            Problem::Range {
                value: u64::from(request.min_domains),
                min: 0,
                max: most,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn context(purpose: &str, legal_basis: &str) -> pb::ExchangeContext {
        pb::ExchangeContext {
            exchange_id: vec![1; 16],
            purpose: purpose.into(),
            legal_basis: legal_basis.into(),
        }
    }

    #[test]
    fn errors_name_the_field_and_the_limit_never_the_value() {
        let long = "x".repeat(900_000);
        let err = super::context(Some(&context(&long, "art. 4"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context.purpose: 900000 bytes; at most 128 allowed"
        );
        assert_eq!(err.len, 900_000);
        assert_eq!(err.digest, crate::log::digest(long.as_bytes()));

        let err = super::context(Some(&context("p\nforged line", "art. 4"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context.purpose: control characters are not allowed"
        );
        let err = super::context(Some(&context("p", ""))).unwrap_err();
        assert_eq!(err.to_string(), "context.legal_basis: missing");
        let mut short_id = context("p", "b");
        short_id.exchange_id.pop();
        assert_eq!(
            super::context(Some(&short_id)).unwrap_err().to_string(),
            "context.exchange_id: 15 bytes; must be exactly 16"
        );
        assert!(super::context(Some(&context("p", "art. 4, Wet X"))).is_ok());
    }

    #[test]
    fn evaluate_requests_are_bounded_in_count_and_element_size() {
        let mut request = pb::EvaluateRequest {
            context: Some(context("p", "b")),
            epoch: 0,
            blinded: vec![vec![0; 32]; 3],
            families: Vec::new(),
        };
        assert!(evaluate(&request).is_ok());
        request.families = vec![0, 1, 7];
        assert!(evaluate(&request).is_ok());
        request.families = vec![0, 1];
        assert_eq!(
            evaluate(&request).unwrap_err().to_string(),
            "families: 2 items for 3; must be none or one each"
        );
        request.families = vec![0, 8, 1];
        assert_eq!(
            evaluate(&request).unwrap_err().to_string(),
            "families[1]: 8 is out of range; 0 to 7 allowed"
        );
        request.families.clear();
        request.blinded[2] = vec![0; 33];
        assert_eq!(
            evaluate(&request).unwrap_err().to_string(),
            "blinded[2]: 33 bytes; must be exactly 32"
        );
        request.blinded = vec![vec![0; 32]; MAX_BLINDED + 1];
        assert_eq!(
            evaluate(&request).unwrap_err().to_string(),
            "blinded: 4097 items; at most 4096 allowed"
        );
        request.blinded.clear();
        assert_eq!(
            evaluate(&request).unwrap_err().to_string(),
            "blinded: missing"
        );
    }

    #[test]
    fn case_queries_are_bounded() {
        let subject = |label: &str, keys: &[&str]| pb::Subject {
            label: label.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let mut request = pb::MatchRequest {
            purpose: "p".into(),
            subjects: vec![subject("child", &["bsn:111222333"])],
        };
        assert!(match_request(&request).is_ok());
        request.subjects[0].keys[0] = format!("nd:{}", "a".repeat(200));
        assert_eq!(
            match_request(&request).unwrap_err().to_string(),
            "subjects[0].keys[0]: 203 bytes; at most 160 allowed"
        );
        request.subjects[0] = subject("a\u{1b}[2J", &["bsn:111222333"]);
        assert_eq!(
            match_request(&request).unwrap_err().field,
            "subjects[0].label"
        );
    }
}
