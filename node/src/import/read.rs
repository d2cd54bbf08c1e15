//! Reading an import file into rows of text fields: CSV with a header
//! (columns in any order, names checked), or JSON Lines (one object per
//! line; `{` first, or a `.jsonl`/`.ndjson` name). Rows come in chunks, so
//! a million-row file is never held whole. A row that cannot even be split
//! into fields (bad UTF-8, an unclosed quote, not a JSON object) is kept
//! with why, and reported like any invalid row; messages name keys and
//! types, never values.

use std::io::{BufRead, BufReader, Read};

use super::{ImportError, CHUNK, COLUMNS};

/// One input row, fields as text.
#[derive(Debug, Default, Clone)]
pub(super) struct RawRow {
    pub(super) line: u64,
    pub(super) fields: [Option<String>; 8],
    /// The row as read, for the rejects file.
    pub(super) original: Vec<String>,
    /// Why the row could not even be split into fields, if so.
    pub(super) broken: Option<String>,
}

impl RawRow {
    pub(super) fn get(&self, column: usize) -> Option<&str> {
        self.fields[column]
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

enum Format {
    Csv,
    JsonLines,
}

/// Reads rows in chunks and hands each chunk to `chunk`.
pub(super) fn read_rows(
    path: &str,
    input: Box<dyn Read + Send>,
    mut chunk: impl FnMut(Vec<RawRow>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let read_error = |error| ImportError::Read {
        path: path.to_owned(),
        error,
    };
    let mut input = BufReader::with_capacity(1 << 20, input);
    let first = input.fill_buf().map_err(read_error)?;
    let format = match first.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::JsonLines,
        _ if path.ends_with(".jsonl") || path.ends_with(".ndjson") => Format::JsonLines,
        _ => Format::Csv,
    };
    match format {
        Format::Csv => read_csv(path, input, &mut chunk),
        Format::JsonLines => read_json_lines(path, input, &mut chunk),
    }
}

fn read_csv(
    path: &str,
    input: impl Read,
    chunk: &mut impl FnMut(Vec<RawRow>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let header_error = |reason: String| ImportError::Header {
        path: path.to_owned(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Fields)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| header_error(format!("not a CSV header: {e}")))?
        .clone();
    let mut positions = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = name
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        let column = COLUMNS.iter().position(|c| *c == name).ok_or_else(|| {
            header_error(format!(
                "unknown column {name:?} (columns are {})",
                COLUMNS.join(", ")
            ))
        })?;
        if positions.iter().any(|(_, c)| *c == column) {
            return Err(header_error(format!("column {name:?} appears twice")));
        }
        positions.push((i, column));
    }
    for required in ["signal", "registered_on"] {
        if !positions.iter().any(|(_, c)| COLUMNS[*c] == required) {
            return Err(header_error(format!("column {required:?} is missing")));
        }
    }
    let has_key = positions.iter().any(|(_, c)| *c == 0)
        || ["surname", "initial", "birth_date"]
            .iter()
            .all(|n| positions.iter().any(|(_, c)| COLUMNS[*c] == *n));
    if !has_key {
        return Err(header_error(
            "needs a bsn column, or surname, initial and birth_date columns".into(),
        ));
    }

    let mut rows = Vec::with_capacity(CHUNK);
    let mut record = csv::StringRecord::new();
    loop {
        let line_hint = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line_hint, |p| p.line());
                let mut row = RawRow {
                    line,
                    original: record.iter().map(str::to_owned).collect(),
                    ..RawRow::default()
                };
                for (i, column) in &positions {
                    row.fields[*column] = record.get(*i).map(str::to_owned);
                }
                rows.push(row);
            }
            Err(e) => {
                // A broken row (for example bad UTF-8 or an unclosed quote)
                // is reported like any other invalid row.
                let line = e.position().map_or(line_hint, |p| p.line());
                let reason = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "row: not valid UTF-8".to_owned(),
                    _ => "row: not valid CSV".to_owned(),
                };
                rows.push(RawRow {
                    line,
                    broken: Some(reason),
                    ..RawRow::default()
                });
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
        if rows.len() == CHUNK {
            chunk(std::mem::replace(&mut rows, Vec::with_capacity(CHUNK)))?;
        }
    }
    chunk(rows)
}

fn read_json_lines(
    path: &str,
    input: impl BufRead,
    chunk: &mut impl FnMut(Vec<RawRow>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut rows = Vec::with_capacity(CHUNK);
    for (n, line) in input.lines().enumerate() {
        let line_no = n as u64 + 1;
        let text = line.map_err(|error| ImportError::Read {
            path: path.to_owned(),
            error,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let mut row = RawRow {
            line: line_no,
            ..RawRow::default()
        };
        match json_fields(&text) {
            Ok(fields) => row.fields = fields,
            Err(reason) => row.broken = Some(reason),
        }
        row.original = vec![text];
        rows.push(row);
        if rows.len() == CHUNK {
            chunk(std::mem::replace(&mut rows, Vec::with_capacity(CHUNK)))?;
        }
    }
    chunk(rows)
}

/// A JSON object's fields. Errors name keys and types, never values.
fn json_fields(text: &str) -> Result<[Option<String>; 8], String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("json: not valid JSON (column {})", e.column()))?;
    let object = value
        .as_object()
        .ok_or("json: each line must be one JSON object")?;
    let mut fields: [Option<String>; 8] = Default::default();
    for (key, value) in object {
        let column = COLUMNS.iter().position(|c| c == key).ok_or_else(|| {
            let shown: String = key.chars().take(32).collect();
            format!(
                "json: unknown field {shown:?} (fields are {})",
                COLUMNS.join(", ")
            )
        })?;
        fields[column] = match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            _ => return Err(format!("{key}: must be a string or null")),
        };
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_fields_not_values() {
        let err = json_fields(r#"{"bsn": 123456782}"#).unwrap_err();
        assert_eq!(err, "bsn: must be a string or null");
        let err = json_fields(r#"{"bsn": "123456782", "nmae": "x"}"#).unwrap_err();
        assert!(err.contains("unknown field \"nmae\""), "{err}");
        let err = json_fields(r#"{"bsn": "123456782""#).unwrap_err();
        assert!(
            err.starts_with("json: not valid JSON") && !err.contains("1234"),
            "{err}"
        );
    }
}
