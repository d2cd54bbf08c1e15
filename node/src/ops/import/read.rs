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
    pub(super) fields: [Option<String>; COLUMNS.len()],
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

/// Most bytes in one line of an import file: a row of this many bytes is
/// far past every field's bound, and reading stops there, so no file can
/// make the reader hold a field of any size.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Passes bytes through, failing at a line longer than [`MAX_LINE`]
/// (naming the line, never its content).
struct LineCap<R> {
    inner: R,
    line: u64,
    run: usize,
}

impl<R> LineCap<R> {
    fn new(inner: R) -> Self {
        LineCap {
            inner,
            line: 1,
            run: 0,
        }
    }
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.run = 0;
            } else {
                self.run += 1;
                if self.run > MAX_LINE {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "line {} is longer than {MAX_LINE} bytes; no row of an import file can be",
                            self.line
                        ),
                    ));
                }
            }
        }
        Ok(n)
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
    let mut input = BufReader::with_capacity(1 << 20, LineCap::new(input));
    // A UTF-8 byte order mark (Excel writes one) is not part of the data.
    if input
        .fill_buf()
        .map_err(read_error)?
        .starts_with(b"\xef\xbb\xbf")
    {
        input.consume(3);
    }
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

/// Where each known column is in a CSV header: (position, column) pairs.
/// The header must name only known columns, each once, with `signal`,
/// `registered_on`, and a person key (`bsn`, or `surname` and
/// `birth_date`, with `initial` or `given_name` where known). An unknown name is not repeated: a file without a
/// header has a person's data where the names should be.
fn columns_of(path: &str, header: &csv::StringRecord) -> Result<Vec<(usize, usize)>, ImportError> {
    let header_error = |reason: String| ImportError::Header {
        path: path.to_owned(),
        reason,
    };
    let mut positions = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = name
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        let column = COLUMNS.iter().position(|c| *c == name).ok_or_else(|| {
            header_error(format!(
                "column {}: not a column name (the first line must name the columns: {})",
                i + 1,
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
    let has = |n: &str| positions.iter().any(|(_, c)| COLUMNS[*c] == n);
    let has_key = has("bsn") || (has("surname") && has("birth_date"));
    if !has_key {
        return Err(header_error(
            "needs a bsn column, or surname and birth_date columns (with initial or given_name)"
                .into(),
        ));
    }
    Ok(positions)
}

fn read_csv(
    path: &str,
    input: impl Read,
    chunk: &mut impl FnMut(Vec<RawRow>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Fields)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| ImportError::Header {
            path: path.to_owned(),
            reason: format!("not a CSV header: {e}"),
        })?
        .clone();
    let positions = columns_of(path, &header)?;

    let mut rows = Vec::with_capacity(CHUNK);
    let mut record = csv::StringRecord::new();
    loop {
        let line_hint = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.len() > header.len() => {
                let line = record.position().map_or(line_hint, |p| p.line());
                rows.push(RawRow {
                    line,
                    broken: Some(format!(
                        "row: {} fields, the header names {}",
                        record.len(),
                        header.len()
                    )),
                    ..RawRow::default()
                });
            }
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
fn json_fields(text: &str) -> Result<[Option<String>; COLUMNS.len()], String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("json: not valid JSON (column {})", e.column()))?;
    let object = value
        .as_object()
        .ok_or("json: each line must be one JSON object")?;
    let mut fields: [Option<String>; COLUMNS.len()] = Default::default();
    for (key, value) in object {
        // An unknown key is not repeated: it may be a value put where a
        // key belongs.
        let column = COLUMNS.iter().position(|c| c == key).ok_or_else(|| {
            format!(
                "json: a key of the object is not a field name (fields are {})",
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
        let err = json_fields(r#"{"bsn": "123456782", "Jansen": "x"}"#).unwrap_err();
        assert!(
            err.starts_with("json: a key of the object is not a field name")
                && !err.contains("Jansen"),
            "{err}"
        );
        let err = json_fields(r#"{"bsn": "123456782""#).unwrap_err();
        assert!(
            err.starts_with("json: not valid JSON") && !err.contains("1234"),
            "{err}"
        );
    }

    #[test]
    fn a_line_past_the_cap_stops_reading_naming_its_line() {
        let text = format!("a\nb\n{}\n", "x".repeat(MAX_LINE + 1));
        let mut out = Vec::new();
        let err = LineCap::new(text.as_bytes())
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("line 3 is longer than {MAX_LINE} bytes; no row of an import file can be")
        );
    }
}
