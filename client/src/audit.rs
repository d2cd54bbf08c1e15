//! `pluis audit`: the auditor's side. Fetch and verify a node's signed
//! checkpoint (and its consistency with one saved earlier), export a
//! node's whole log to a bundle, verify a bundle offline, and show it.
//!
//! A bundle is JSON Lines: a header (`format`, `origin`, `verifier_key`,
//! `node`, `exported_at`), then one `{"checkpoint": NOTE}` line per signed
//! checkpoint, then one `{"index": N, "entry": BASE64}` line per entry,
//! the entry's exact bytes. Verification never trusts the node: it
//! recomputes the Merkle tree, checks every checkpoint's signature and
//! root, and names the first entry and field that is wrong. Cross-checking
//! two logs is [`pluis_proto::log::crosscheck`]; here it is rendered.

use std::io::{BufRead, Write};
use std::path::Path;

use pluis_proto::hex;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pluis_proto::log::{self, merkle, Checkpoint, NoteVerifier, VerifiedLog};
use pluis_proto::pb;
use pluis_proto::pb::audit_client::AuditClient;
use pluis_transport::status_detail;
use pluis_transport::tls::TlsIdentity;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

pub use pluis_proto::log::{cross_check, kind_name, CrossCheck, Discrepancy};

/// The bundle format this client writes and reads.
pub const BUNDLE_FORMAT: &str = "pluis-audit-bundle/1";

fn client(url: &str, identity: &TlsIdentity) -> anyhow::Result<AuditClient<Channel>> {
    Ok(AuditClient::new(crate::connect::channel(url, identity)?))
}

fn rpc(url: &str) -> impl Fn(tonic::Status) -> anyhow::Error + '_ {
    move |status| anyhow::anyhow!("node {url}: {}", status_detail(&status))
}

/// A checkpoint as saved by `--save` and read by `--since`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedCheckpoint {
    /// The log's verifier key.
    pub verifier_key: String,
    /// The signed note.
    pub note: String,
}

/// What `pluis audit checkpoint` found.
#[derive(Debug, Clone)]
pub struct CheckedCheckpoint {
    /// The checkpoint, signature verified.
    pub checkpoint: Checkpoint,
    /// The key it verified with.
    pub verifier: NoteVerifier,
    /// The note.
    pub note: String,
    /// The earlier checkpoint it was proven consistent with.
    pub consistent_with: Option<Checkpoint>,
}

/// Fetches the node's latest checkpoint and verifies its signature with
/// `pubkey` (else the key saved with `since`, else the node's own word);
/// with `since`, also proves it consistent with that earlier checkpoint.
pub async fn checkpoint(
    url: &str,
    identity: &TlsIdentity,
    pubkey: Option<&str>,
    since: Option<&Path>,
) -> anyhow::Result<CheckedCheckpoint> {
    let mut client = client(url, identity)?;
    let earlier: Option<SavedCheckpoint> = match since {
        Some(path) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{}: not a saved checkpoint", path.display()))?,
        ),
        None => None,
    };
    let signed = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .map_err(rpc(url))?
        .into_inner();
    let key = pubkey
        .map(str::to_owned)
        .or_else(|| earlier.as_ref().map(|e| e.verifier_key.clone()))
        .unwrap_or_else(|| signed.verifier_key.clone());
    let verifier: NoteVerifier = key.parse().context("--pubkey")?;
    let checkpoint = Checkpoint::parse(
        verifier
            .open(&signed.note)
            .with_context(|| format!("node {url}: checkpoint"))?,
    )?;
    let mut consistent_with = None;
    if let Some(earlier) = earlier {
        let old = Checkpoint::parse(
            verifier
                .open(&earlier.note)
                .context("the saved checkpoint is not signed by this key")?,
        )?;
        if old.origin != checkpoint.origin {
            bail!(
                "the saved checkpoint is of log {:?}, the node's of {:?}",
                old.origin,
                checkpoint.origin
            );
        }
        if old.size > checkpoint.size {
            bail!(
                "node {url} rewrote history: it now shows {} entries, it signed {} before",
                checkpoint.size,
                old.size
            );
        }
        let proof = client
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                first_size: old.size,
                second_size: checkpoint.size,
            })
            .await
            .map_err(rpc(url))?
            .into_inner();
        let hashes = to_hashes(&proof.hashes)?;
        merkle::verify_consistency(old.size, checkpoint.size, &old.root, &checkpoint.root, &hashes)
            .map_err(|e| {
                anyhow::anyhow!(
                    "node {url} rewrote history: the checkpoint at size {} is not consistent with the one saved at size {}: {e}",
                    checkpoint.size,
                    old.size
                )
            })?;
        consistent_with = Some(old);
    }
    Ok(CheckedCheckpoint {
        checkpoint,
        verifier,
        note: signed.note,
        consistent_with,
    })
}

fn to_hashes(hashes: &[Vec<u8>]) -> anyhow::Result<Vec<merkle::Hash>> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            <merkle::Hash>::try_from(h.as_slice())
                .map_err(|_| anyhow::anyhow!("proof hash {i} is not 32 bytes"))
        })
        .collect()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-11-29 01:02:03Z` for Unix milliseconds.
pub fn utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).map_or_else(
        |_| "?".into(),
        |t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    )
}

/// Renders a checked checkpoint for people.
pub fn render_checkpoint(checked: &CheckedCheckpoint) -> String {
    let c = &checked.checkpoint;
    let mut out = format!(
        "log        {}\nentries    {}\nroot       {}\nsigned at  {}\nsignature  valid ({})\n",
        c.origin,
        c.size,
        hex(&c.root),
        c.time_ms().map_or_else(|| "-".into(), utc),
        checked.verifier
    );
    if let Some(old) = &checked.consistent_with {
        out.push_str(&format!(
            "consistent with the saved checkpoint of {} entries (signed {}): history unchanged\n",
            old.size,
            old.time_ms().map_or_else(|| "-".into(), utc)
        ));
    }
    out
}

/// Saves a checkpoint for a later `--since`.
pub fn save_checkpoint(path: &Path, checked: &CheckedCheckpoint) -> anyhow::Result<()> {
    let saved = SavedCheckpoint {
        verifier_key: checked.verifier.to_string(),
        note: checked.note.clone(),
    };
    std::fs::write(path, serde_json::to_string_pretty(&saved)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    origin: String,
    verifier_key: String,
    node: String,
    exported_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Checkpoint { checkpoint: String },
    Entry { index: u64, entry: String },
}

/// A bundle, read back.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The log's origin.
    pub origin: String,
    /// The verifier key the exporter recorded.
    pub verifier_key: String,
    /// Signed checkpoint notes.
    pub checkpoints: Vec<String>,
    /// Entries, `(index, bytes)`, in file order.
    pub entries: Vec<log::IndexedEntry>,
}

/// Exports the node's whole log, up to its latest checkpoint, to `out`;
/// returns the number of entries. Page by page: each page is written out
/// before the next is asked for, so a log of any size exports in bounded
/// memory.
pub async fn export(url: &str, identity: &TlsIdentity, out: &Path) -> anyhow::Result<u64> {
    let mut client = client(url, identity)?;
    let signed = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .map_err(rpc(url))?
        .into_inner();
    let size = signed.tree_size;
    let verifier: NoteVerifier = signed.verifier_key.parse().context("the node's key")?;
    let origin = Checkpoint::parse(verifier.open(&signed.note)?)?.origin;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let header = Header {
        format: BUNDLE_FORMAT.into(),
        origin,
        verifier_key: signed.verifier_key.clone(),
        node: url.into(),
        exported_at: utc(crate::audit::now_ms()),
    };
    let written = |e: std::io::Error| anyhow::anyhow!("writing {}: {e}", out.display());
    let line = |w: &mut std::io::BufWriter<std::fs::File>, line: &Line| {
        writeln!(w, "{}", serde_json::to_string(line)?).map_err(written)
    };
    writeln!(w, "{}", serde_json::to_string(&header)?).map_err(written)?;
    let mut entries = 0;
    let mut has_signed = false;
    let mut start = 0;
    while start < size {
        let page = client
            .get_entries(pb::GetEntriesRequest { start, limit: 0 })
            .await
            .map_err(rpc(url))?
            .into_inner();
        if page.entries.is_empty() || page.next_start <= start {
            bail!("node {url}: no entries from {start}, though it signed {size}");
        }
        for checkpoint in page.checkpoints {
            // Checkpoints signed while exporting cover entries not exported.
            let covered = verifier
                .open(&checkpoint)
                .ok()
                .and_then(|t| Checkpoint::parse(t).ok())
                .is_none_or(|c| c.size <= size);
            if covered {
                has_signed |= checkpoint == signed.note;
                line(&mut w, &Line::Checkpoint { checkpoint })?;
            }
        }
        for leaf in page.entries.into_iter().filter(|leaf| leaf.index < size) {
            line(
                &mut w,
                &Line::Entry {
                    index: leaf.index,
                    entry: B64.encode(&leaf.entry),
                },
            )?;
            entries += 1;
        }
        start = page.next_start;
    }
    if !has_signed {
        line(
            &mut w,
            &Line::Checkpoint {
                checkpoint: signed.note,
            },
        )?;
    }
    w.flush().map_err(written)?;
    Ok(entries)
}

/// One line of a bundle after its header.
enum BundleLine {
    Checkpoint(String),
    Entry(u64, Vec<u8>),
}

/// Reads a bundle line by line: returns its header, and hands every
/// checkpoint and entry to `each` in file order, holding one line at a
/// time; errors name the file and line.
fn read_lines(
    path: &Path,
    mut each: impl FnMut(BundleLine) -> anyhow::Result<()>,
) -> anyhow::Result<Header> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let at = |n: usize| format!("{}:{n}", path.display());
    let first = lines
        .next()
        .with_context(|| format!("{}: empty file", at(1)))?
        .with_context(|| at(1))?;
    let header: Header =
        serde_json::from_str(&first).with_context(|| format!("{}: not a bundle header", at(1)))?;
    if header.format != BUNDLE_FORMAT {
        bail!(
            "{}: format {:?}, expected {BUNDLE_FORMAT:?}",
            at(1),
            header.format
        );
    }
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.with_context(|| at(n))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&line)
            .with_context(|| format!("{}: neither a checkpoint nor an entry", at(n)))?
        {
            Line::Checkpoint { checkpoint } => each(BundleLine::Checkpoint(checkpoint))?,
            Line::Entry { index, entry } => {
                let bytes = B64
                    .decode(entry)
                    .with_context(|| format!("{}: entry: not base64", at(n)))?;
                each(BundleLine::Entry(index, bytes))?;
            }
        }
    }
    Ok(header)
}

/// Reads a whole bundle into memory; errors name the file and line.
pub fn read_bundle(path: &Path) -> anyhow::Result<Bundle> {
    let (mut checkpoints, mut entries) = (Vec::new(), Vec::new());
    let header = read_lines(path, |line| {
        match line {
            BundleLine::Checkpoint(note) => checkpoints.push(note),
            BundleLine::Entry(index, bytes) => entries.push((index, bytes)),
        }
        Ok(())
    })?;
    Ok(Bundle {
        origin: header.origin,
        verifier_key: header.verifier_key,
        checkpoints,
        entries,
    })
}

/// What [`verify_file`] found.
#[derive(Debug, Clone)]
pub struct VerifiedFile {
    /// Entries verified.
    pub entries: u64,
    /// Signed checkpoints, all verified.
    pub checkpoints: usize,
    /// The root of all entries.
    pub root: log::Hash,
}

/// Verifies a bundle on disk as [`verify`] does, reading it twice (its
/// checkpoints, then its entries) in memory that does not grow with the
/// log.
pub fn verify_file(path: &Path, pubkey: Option<&str>) -> anyhow::Result<VerifiedFile> {
    let mut checkpoints = Vec::new();
    let header = read_lines(path, |line| {
        if let BundleLine::Checkpoint(note) = line {
            checkpoints.push(note);
        }
        Ok(())
    })?;
    let verifier = bundle_key(&header.origin, &header.verifier_key, pubkey)?;
    let mut log = log::LogVerifier::new(&checkpoints, &verifier)?;
    let mut entries = 0;
    read_lines(path, |line| {
        if let BundleLine::Entry(index, bytes) = line {
            log.push(index, &bytes)?;
            entries += 1;
        }
        Ok(())
    })?;
    let (root, signed) = log.finish()?;
    Ok(VerifiedFile {
        entries,
        checkpoints: signed.len(),
        root,
    })
}

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

/// The verifier key of a bundle of log `origin`: `pubkey` if given, else
/// the one it carries; it must be the key of that log.
fn bundle_key(origin: &str, carried: &str, pubkey: Option<&str>) -> anyhow::Result<NoteVerifier> {
    let key = pubkey.unwrap_or(carried);
    let verifier: NoteVerifier = key.parse().with_context(|| {
        if pubkey.is_some() {
            "--pubkey"
        } else {
            "the bundle's verifier_key"
        }
    })?;
    if verifier.name() != origin {
        bail!(
            "the key is for log {:?}, the bundle holds log {:?}",
            verifier.name(),
            origin
        );
    }
    Ok(verifier)
}

/// Verifies a bundle offline against `pubkey` (else the key it carries).
pub fn verify(bundle: &Bundle, pubkey: Option<&str>) -> anyhow::Result<VerifiedLog> {
    let verifier = bundle_key(&bundle.origin, &bundle.verifier_key, pubkey)?;
    Ok(log::verify_log(
        &bundle.entries,
        &bundle.checkpoints,
        &verifier,
    )?)
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
