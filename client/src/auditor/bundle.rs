//! `pluis audit export` and `verify`: a node's whole log to a bundle, and
//! a bundle verified offline.
//!
//! A bundle is JSON Lines: a header (`format`, `origin`, `verifier_key`,
//! `node`, `exported_at`), then one `{"checkpoint": NOTE}` line per signed
//! checkpoint, then one `{"index": N, "entry": BASE64}` line per entry,
//! the entry's exact bytes. Verification never trusts the node: it
//! recomputes the Merkle tree, checks every checkpoint's signature and
//! root, and names the first entry and field that is wrong.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pluis_proto::log::{self, Checkpoint, NoteVerifier, VerifiedLog};
use pluis_proto::pb;
use pluis_transport::tls::TlsIdentity;
use serde::{Deserialize, Serialize};

use super::checkpoint::{client, rpc, utc};

/// The bundle format this client writes and reads.
pub const BUNDLE_FORMAT: &str = "pluis-audit-bundle/1";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
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
        exported_at: utc(crate::clock::now_ms()),
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
pub(super) enum BundleLine {
    Checkpoint(String),
    Entry(u64, Vec<u8>),
}

/// Reads a bundle line by line: returns its header, and hands every
/// checkpoint and entry to `each` in file order, holding one line at a
/// time; errors name the file and line.
pub(super) fn read_lines(
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
