//! `pluis audit show` and the rendering of a cross-check: a verified log
//! as a table or JSON, filtered by date, partner and purpose.

use std::io::Write;
use std::path::Path;

use pluis_proto::hex;
use pluis_proto::log::{kind_name, CrossCheck};
use pluis_proto::pb;

use super::bundle::{read_lines, verify_file, BundleLine};
use super::checkpoint::utc;

/// Verifies the bundle at `path` (as [`verify_file`]), then writes the
/// entries `filter` admits to `out` one by one as it reads them again: a
/// table, or a JSON array. Memory does not grow with the log.
pub fn show(
    path: &Path,
    pubkey: Option<&str>,
    filter: &Filter,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    verify_file(path, pubkey)
        .map_err(|e| anyhow::anyhow!("{}: verification FAILED: {e:#}", path.display()))?;
    let mut first = true;
    if json {
        write!(out, "[")?;
    } else {
        out.write_all(table_header().as_bytes())?;
    }
    read_lines(path, |line| {
        let BundleLine::Entry(_, bytes) = line else {
            return Ok(());
        };
        let entry = <pb::AuditEntry as prost::Message>::decode(bytes.as_slice())?;
        if !filter.admits(&entry) {
            return Ok(());
        }
        if json {
            let comma = if first { "" } else { "," };
            write!(
                out,
                "{comma}\n  {}",
                serde_json::to_string(&entry_json(&entry))?
            )?;
        } else {
            out.write_all(table_row(&entry).as_bytes())?;
        }
        first = false;
        Ok(())
    })?;
    if json {
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(())
}

/// Which entries `pluis audit show` lists.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries at or after this UTC date.
    pub since: Option<time::Date>,
    /// Only exchanges with this org (as actor or counterparty).
    pub peer: Option<String>,
    /// Only this purpose.
    pub purpose: Option<String>,
}

impl Filter {
    /// Whether `entry` passes.
    pub fn admits(&self, entry: &pb::AuditEntry) -> bool {
        let since_ok = self.since.is_none_or(|d| {
            let start = d.midnight().assume_utc().unix_timestamp() * 1000;
            entry.time_unix_ms >= start
        });
        let peer_ok = self.peer.as_ref().is_none_or(|org| {
            let marker = format!("/org/{org}/");
            entry.actor.contains(&marker) || entry.counterparty.contains(&marker)
        });
        let purpose_ok = self.purpose.as_ref().is_none_or(|p| &entry.purpose == p);
        since_ok && peer_ok && purpose_ok
    }
}

/// The org in a SPIFFE id, or the text as is.
fn org_of(id: &str) -> &str {
    id.split("/org/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(id)
}

/// The header line of [`render_entries`]' table.
fn table_header() -> String {
    format!(
        "{:>6}  {:<20}  {:<18}  {:<12}  {:<12}  {:<24}  {:>6}  {:>8}  {}\n",
        "#", "time (UTC)", "event", "by", "with", "purpose", "keys", "entries", "detail"
    )
}

/// One entry as a line of [`render_entries`]' table.
fn table_row(e: &pb::AuditEntry) -> String {
    format!(
        "{:>6}  {:<20}  {:<18}  {:<12}  {:<12}  {:<24}  {:>6}  {:>8}  {}\n",
        e.sequence,
        utc(e.time_unix_ms),
        kind_name(e.kind),
        org_of(&e.actor),
        org_of(&e.counterparty),
        e.purpose,
        e.keys_asked,
        e.entries_served,
        e.detail
    )
}

/// A readable table of the entries `filter` admits.
pub fn render_entries(entries: &[pb::AuditEntry], filter: &Filter) -> String {
    let mut out = table_header();
    for e in entries.iter().filter(|e| filter.admits(e)) {
        out.push_str(&table_row(e));
    }
    out
}

/// One entry as JSON.
fn entry_json(e: &pb::AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "sequence": e.sequence,
        "time": utc(e.time_unix_ms),
        "time_unix_ms": e.time_unix_ms,
        "kind": kind_name(e.kind),
        "actor": e.actor,
        "counterparty": e.counterparty,
        "exchange_id": hex(&e.exchange_id),
        "purpose": e.purpose,
        "legal_basis": e.legal_basis,
        "keys_asked": e.keys_asked,
        "keys_evaluated": e.keys_evaluated,
        "entries_served": e.entries_served,
        "signals": e.signals,
        "refusals": e.refusals,
        "request_digest": hex(&e.request_digest),
        "response_digest": hex(&e.response_digest),
        "epoch": e.epoch,
        "receipt": e.receipt.is_some(),
        "detail": e.detail,
    })
}

/// The entries `filter` admits, as JSON.
pub fn entries_json(entries: &[pb::AuditEntry], filter: &Filter) -> serde_json::Value {
    serde_json::Value::Array(
        entries
            .iter()
            .filter(|e| filter.admits(e))
            .map(entry_json)
            .collect(),
    )
}

/// Renders a cross-check for people.
pub fn render_cross_check(result: &CrossCheck, a: &str, b: &str) -> String {
    let mut out = format!(
        "{} calls between {a} and {b} logged on both sides and agreeing\n",
        result.matched
    );
    if result.discrepancies.is_empty() {
        out.push_str("no discrepancies\n");
    } else {
        out.push_str(&format!("{} discrepancies:\n", result.discrepancies.len()));
        for d in &result.discrepancies {
            out.push_str(&format!(
                "  exchange {}: {}: {}\n",
                d.exchange, d.place, d.what
            ));
        }
    }
    out
}
