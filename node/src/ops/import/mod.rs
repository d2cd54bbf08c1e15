//! `pluis-node import`: signals from a CSV or JSON Lines file into the store.
//!
//! Validation first, then one atomic write: if any row is bad, nothing is
//! stored and every bad row is reported as `PATH:LINE: field: reason` (the
//! first [`MAX_REPORTED`], then a count). With `--skip-invalid` the good
//! rows are stored and the bad ones written, with their reason, to a
//! rejects file (mode 0600: it holds the organisation's own raw rows).
//!
//! Messages name the field and the rule, never the value: an identifier
//! must not end up in a terminal scrollback or a log.
//!
//! Columns: `bsn`, `surname`, `initial`, `birth_date`, `signal`,
//! `registered_on`, `expires_on` (optional: default from the taxonomy's
//! retention), `local_ref` (optional), `given_name` (optional: the
//! typo-tolerant key families use it). Each row needs a `bsn` or a
//! `surname` + `birth_date`, with `initial` or `given_name` where known
//! (without either, only the weakest key family: a possible match); a
//! birth date may leave the day out (`YYYY-MM-00`) where the register
//! does not know it, which gives only the key families that need no day.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use pluis_proto::identifier::{self, Bsn, NameDobKey, SubjectKey};
use pluis_proto::taxonomy::Taxonomy;
use rayon::prelude::*;
use time::{Date, Month};

use crate::store::{CommitCounts, Import, NewSignal, PreparedSignal, Staged, Store, StoreError};

mod read;
use read::{read_rows, RawRow};

/// How many bad rows an error report lists before it just counts.
pub const MAX_REPORTED: usize = 100;
/// Rows parsed, validated and sealed per parallel chunk.
const CHUNK: usize = 32 * 1024;
/// The longest local case reference accepted.
const MAX_LOCAL_REF: usize = 128;

/// The columns an import file may have.
pub const COLUMNS: [&str; 9] = [
    "bsn",
    "surname",
    "initial",
    "birth_date",
    "signal",
    "registered_on",
    "expires_on",
    "local_ref",
    "given_name",
];

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The file, or `-` for standard input.
    pub path: PathBuf,
    /// Replace all of this organisation's signals in the same atomic step.
    pub replace: bool,
    /// Store the good rows; write the bad ones to `rejects`.
    pub skip_invalid: bool,
    /// Where rejects go (default: `PATH.rejects`).
    pub rejects: Option<PathBuf>,
    /// The date that counts as today (future dates, expiry).
    pub today: Date,
}

impl ImportOptions {
    /// A plain import of `path`: merge, all or nothing, no rejects file.
    pub fn new(path: PathBuf, today: Date) -> ImportOptions {
        ImportOptions {
            path,
            replace: false,
            skip_invalid: false,
            rejects: None,
            today,
        }
    }
}

/// One bad row: where, which field, what rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the input.
    pub line: u64,
    /// `field: reason`.
    pub message: String,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The input.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The CSV header is unusable.
    #[error("{path}:1: header: {reason}")]
    Header {
        /// The input.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Some rows are invalid; nothing was stored.
    #[error("{}", InvalidRows { path, errors, total: *total })]
    Invalid {
        /// The input.
        path: String,
        /// The first bad rows.
        errors: Vec<RowError>,
        /// How many rows were bad in all.
        total: usize,
    },
    /// The file has a header but no rows: almost always a broken export.
    #[error("{path}: no data rows; nothing to import (an export that lost its rows?)")]
    Empty {
        /// The input.
        path: String,
    },
    /// The rejects file could not be written; nothing was stored.
    #[error("cannot write rejects file {path}: {error}")]
    Rejects {
        /// The rejects file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The store failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct InvalidRows<'a> {
    path: &'a str,
    errors: &'a [RowError],
    total: usize,
}

impl fmt::Display for InvalidRows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} invalid row{}; nothing was stored (fix them, or pass --skip-invalid)",
            self.path,
            self.total,
            if self.total == 1 { "" } else { "s" }
        )?;
        for e in self.errors {
            writeln!(f, "{}:{}: {}", self.path, e.line, e.message)?;
        }
        if self.total > self.errors.len() {
            writeln!(f, "… and {} more", self.total - self.errors.len())?;
        }
        Ok(())
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// What the store did with the valid ones.
    pub stored: CommitCounts,
    /// Rows already past their expiry date: valid, but not stored.
    pub already_expired: u64,
    /// Invalid rows written to the rejects file (with `--skip-invalid`).
    pub rejected: u64,
    /// The rejects file, if one was written.
    pub rejects_file: Option<PathBuf>,
}

impl ImportReport {
    /// The report as the admin socket carries it, with the store's total
    /// afterwards.
    pub fn reply(&self, total: u64) -> pluis_proto::pb::ImportReply {
        pluis_proto::pb::ImportReply {
            error: String::new(),
            rows: self.rows,
            added: self.stored.added as u64,
            unchanged: self.stored.unchanged as u64,
            removed: self.stored.removed as u64,
            already_expired: self.already_expired,
            rejected: self.rejected,
            rejects_file: self
                .rejects_file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            total,
        }
    }
}

/// Progress callbacks, so the CLI can draw a bar or print counts.
pub trait Progress: Sync {
    /// `rows` rows have been read and checked so far.
    fn rows_checked(&self, rows: u64);
    /// All rows are checked; the atomic write of `signals` begins.
    fn writing(&self, signals: u64);
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn rows_checked(&self, _: u64) {}
    fn writing(&self, _: u64) {}
}

/// Adds months to a date, clamping the day to the month's length.
pub fn add_months(date: Date, months: u16) -> Date {
    let total = date.year() * 12 + i32::from(u8::from(date.month())) - 1 + i32::from(months);
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    // month0 is 0..=11 by rem_euclid, so the conversion cannot fail.
    let month = Month::try_from(month0 as u8 + 1).unwrap_or(Month::December);
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(date)
}

/// Most characters per column (`local_ref` has [`MAX_LOCAL_REF`]; the
/// surname's bound is the identifier's own).
const MAX_CHARS: [usize; COLUMNS.len()] = [
    32,
    identifier::MAX_SURNAME_CHARS,
    8,
    32,
    64,
    32,
    32,
    MAX_LOCAL_REF,
    identifier::MAX_SURNAME_CHARS,
];

fn validate(row: &RawRow, taxonomy: &Taxonomy, today: Date) -> Result<NewSignal, String> {
    for (column, max) in MAX_CHARS.iter().enumerate() {
        if row.get(column).is_some_and(|v| v.chars().count() > *max) {
            return Err(format!("{}: longer than {max} characters", COLUMNS[column]));
        }
    }
    let mut keys = Vec::new();
    if let Some(bsn) = row.get(0) {
        keys.push(SubjectKey::Bsn(Bsn::parse(bsn).map_err(|e| e.to_string())?));
    }
    let (surname, initial, birth, given) = (row.get(1), row.get(2), row.get(3), row.get(8));
    if [surname, initial, birth, given].iter().any(Option::is_some) {
        let missing = if surname.is_none() {
            Some("surname")
        } else if birth.is_none() {
            Some("birth_date")
        } else {
            None
        };
        match (surname, birth, missing) {
            (Some(surname), Some(birth), None) => keys.push(SubjectKey::NameDob(
                NameDobKey::with_given(surname, initial, given, birth, today)
                    .map_err(|e| e.to_string())?,
            )),
            (_, _, missing) => {
                return Err(format!(
                    "{}: missing (a name key needs surname and birth_date)",
                    missing.unwrap_or("surname")
                ));
            }
        }
    }
    if keys.is_empty() {
        return Err(
            "bsn: missing (each row needs a bsn or surname, initial and birth_date)".into(),
        );
    }
    let code = row.get(4).ok_or("signal: missing")?;
    let (domain, signal) = taxonomy.signal(code).map_err(|_| {
        let looks_like_code = code.len() <= 48
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if looks_like_code {
            format!("signal: unknown signal code {code:?} (see `pluis-node taxonomy`)")
        } else {
            "signal: not a signal code (see `pluis-node taxonomy`)".to_owned()
        }
    })?;
    let registered_on =
        identifier::parse_date("registered_on", row.get(5).ok_or("registered_on: missing")?)
            .map_err(|e| e.to_string())?;
    if registered_on > today {
        return Err("registered_on: lies in the future".into());
    }
    let expires_on = match row.get(6) {
        Some(text) => identifier::parse_date("expires_on", text).map_err(|e| e.to_string())?,
        None => add_months(registered_on, signal.retention_months),
    };
    if expires_on <= registered_on {
        return Err("expires_on: must be after registered_on".into());
    }
    let local_ref = row.get(7).map(str::to_owned);
    if local_ref
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_LOCAL_REF)
    {
        return Err(format!("local_ref: longer than {MAX_LOCAL_REF} characters"));
    }
    Ok(NewSignal {
        keys,
        signal: signal.code.clone(),
        domain,
        registered_on,
        expires_on,
        local_ref,
    })
}

/// Validates every row, then stores the valid ones in one atomic step.
pub fn import(
    store: &Store,
    taxonomy: &Taxonomy,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    let checked = check(store, taxonomy, options, open_input(options)?, progress)?;
    let (staged, mut report) = checked.stage(progress)?;
    report.stored = staged.publish(|| ())?;
    Ok(report)
}

/// The file `options` names, or standard input for `-`.
pub fn open_input(options: &ImportOptions) -> Result<Box<dyn Read + Send>, ImportError> {
    let path = options.path.display().to_string();
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = std::fs::File::open(&options.path).map_err(|error| ImportError::Read {
        path: path.clone(),
        error,
    })?;
    Ok(Box::new(file))
}

/// Rows read, checked and sealed, not yet written: see [`Checked::stage`].
pub struct Checked<'a> {
    import: Import<'a>,
    report: ImportReport,
    written: u64,
}

impl<'a> Checked<'a> {
    /// Who runs the import, for its audit entry.
    pub fn set_actor(&mut self, actor: &str) {
        self.import.set_actor(actor);
    }

    /// Writes the new generation beside the active one, unseen until it
    /// is published ([`Staged::publish`]); returns it with the report so
    /// far (its `stored` counts are the staged generation's).
    pub fn stage(self, progress: &dyn Progress) -> Result<(Staged<'a>, ImportReport), ImportError> {
        progress.writing(self.written);
        let staged = self.import.stage()?;
        let mut report = self.report;
        report.stored = staged.counts();
        Ok((staged, report))
    }
}

/// Reads `input` as `options` says and checks every row. If any is bad
/// (without `skip_invalid`) nothing will be stored, and the error lists
/// them; with `skip_invalid` the rejects file is written here, before
/// anything is stored.
pub fn check<'a>(
    store: &'a Store,
    taxonomy: &Taxonomy,
    options: &ImportOptions,
    input: Box<dyn Read + Send>,
    progress: &dyn Progress,
) -> Result<Checked<'a>, ImportError> {
    let path = options.path.display().to_string();
    let mut report = ImportReport::default();
    // Checked rows are gathered for a new store generation; it is written
    // only when staged, and becomes visible only when published.
    let mut writer = store.begin_import(options.replace)?;
    let mut written = 0u64;
    let mut errors: Vec<RowError> = Vec::new();
    let mut error_count = 0usize;
    let mut rejects: Vec<(RawRow, String)> = Vec::new();
    read_rows(&path, input, |rows| {
        report.rows += rows.len() as u64;
        let checked: Vec<Result<Option<PreparedSignal>, String>> = rows
            .par_iter()
            .map(|row| {
                if let Some(reason) = &row.broken {
                    return Err(reason.clone());
                }
                let signal = validate(row, taxonomy, options.today)?;
                if signal.expires_on <= options.today {
                    return Ok(None);
                }
                store.prepare(&signal).map(Some).map_err(|e| e.to_string())
            })
            .collect();
        let mut prepared = Vec::with_capacity(rows.len());
        for (row, result) in rows.into_iter().zip(checked) {
            match result {
                Ok(Some(p)) => prepared.push(p),
                Ok(None) => report.already_expired += 1,
                Err(message) => {
                    error_count += 1;
                    if options.skip_invalid {
                        rejects.push((row, message));
                    } else if errors.len() < MAX_REPORTED {
                        errors.push(RowError {
                            line: row.line,
                            message,
                        });
                    }
                }
            }
        }
        // Once a row is bad (without --skip-invalid) nothing will be
        // stored: keep checking, to report every bad row, but stop writing.
        if error_count == 0 || options.skip_invalid {
            written += prepared.len() as u64;
            writer.write(prepared)?;
        }
        progress.rows_checked(report.rows);
        Ok(())
    })?;
    if report.rows == 0 {
        return Err(ImportError::Empty { path });
    }
    if error_count > 0 && !options.skip_invalid {
        return Err(ImportError::Invalid {
            path,
            errors,
            total: error_count,
        });
    }
    if !rejects.is_empty() {
        let file = options
            .rejects
            .clone()
            .unwrap_or_else(|| default_rejects(options));
        write_rejects(&file, &rejects)?;
        report.rejected = rejects.len() as u64;
        report.rejects_file = Some(file);
    }
    Ok(Checked {
        import: writer,
        report,
        written,
    })
}

/// Where rejects go without `--rejects`: `PATH.rejects`, or
/// `stdin.rejects` for standard input.
pub fn default_rejects(options: &ImportOptions) -> PathBuf {
    if options.path.as_os_str() == "-" {
        return PathBuf::from("stdin.rejects");
    }
    let mut name = options.path.clone().into_os_string();
    name.push(".rejects");
    PathBuf::from(name)
}

/// Rejects as CSV: line, reason, then the row as read. Mode 0600.
fn write_rejects(path: &Path, rejects: &[(RawRow, String)]) -> Result<(), ImportError> {
    let error = |error| ImportError::Rejects {
        path: path.to_owned(),
        error,
    };
    let file = crate::private_files::create_file(path).map_err(error)?;
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(file);
    let csv_error = |e: csv::Error| error(std::io::Error::other(e.to_string()));
    writer
        .write_record(["line", "reason", "row"])
        .map_err(csv_error)?;
    for (row, reason) in rejects {
        let mut record = vec![row.line.to_string(), reason.clone()];
        record.extend(row.original.iter().cloned());
        writer.write_record(&record).map_err(csv_error)?;
    }
    let mut file = writer
        .into_inner()
        .map_err(|e| error(std::io::Error::other(e.to_string())))?;
    file.flush().map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn months_are_added_with_clamped_days() {
        assert_eq!(add_months(date!(2024 - 01 - 31), 1), date!(2024 - 02 - 29));
        assert_eq!(add_months(date!(2024 - 11 - 15), 14), date!(2026 - 01 - 15));
        assert_eq!(
            add_months(date!(2024 - 05 - 01), 120),
            date!(2034 - 05 - 01)
        );
    }
}
