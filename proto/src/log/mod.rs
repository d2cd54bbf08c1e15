//! The audit log's format and its verification, without storage.
//!
//! * [`merkle`]: RFC 9162 hashing, inclusion and consistency proofs;
//! * [`note`]: C2SP signed notes (Ed25519) and tlog checkpoints;
//! * receipts (here): a responder's signed statement that it served and
//!   logged an exchange, stored in the requester's own entry;
//! * [`verify_log`]: everything an auditor checks offline about a node's
//!   exported log, pointing at the first entry and field that is wrong.
//!
//! Entries are encoded [`pb::AuditEntry`] messages; the log keeps their
//! exact bytes, so verification never depends on re-encoding.

pub mod crosscheck;
pub mod merkle;
pub mod note;

use prost::Message;

use crate::pb;
pub use crosscheck::{cross_check, CrossCheck, Discrepancy};
pub use merkle::{Hash, MemoryTree, ProofError};
pub use note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// The name of an entry kind, as auditors read it.
pub fn kind_name(kind: i32) -> &'static str {
    use pb::audit_entry::Kind;
    match Kind::try_from(kind) {
        Ok(Kind::ExchangeRequested) => "exchange requested",
        Ok(Kind::ExchangeServed) => "exchange served",
        Ok(Kind::ExchangeDenied) => "exchange denied",
        Ok(Kind::CaseQuery) => "case query",
        Ok(Kind::Import) => "import",
        Ok(Kind::Forget) => "forget",
        Ok(Kind::ExpiryPurge) => "expiry purge",
        Ok(Kind::KeyRotation) => "key rotation",
        Ok(Kind::PolicyLoaded) => "policy loaded",
        Ok(Kind::NodeStart) => "node start",
        Ok(Kind::NodeStop) => "node stop",
        Ok(Kind::CallRefused) => "call refused",
        _ => "unknown",
    }
}

/// The origin line (and key name) of `org`'s log in `consortium`.
pub fn origin(consortium: &str, org: &str) -> String {
    format!("pluis/{consortium}/{org}")
}

/// The extension line that makes a checkpoint a receipt.
pub fn receipt_line(
    exchange_id: &[u8],
    request_digest: &[u8],
    response_digest: &[u8],
    log_index: u64,
) -> String {
    format!(
        "pluis-receipt {} {} {} {log_index}",
        crate::hex(exchange_id),
        crate::hex(request_digest),
        crate::hex(response_digest)
    )
}

/// The responder's receipt for an exchange it logged at `log_index`:
/// `checkpoint` (over durable entries, covering that index) signed with
/// one more extension line naming the exchange, its digests and the
/// index, so that one signature serves as both.
pub fn sign_receipt(
    signer: &NoteSigner,
    exchange_id: &[u8],
    request_digest: &Hash,
    response_digest: &Hash,
    log_index: u64,
    checkpoint: &Checkpoint,
) -> Result<pb::Receipt, NoteError> {
    let mut note = checkpoint.clone();
    note.extensions.push(receipt_line(
        exchange_id,
        request_digest,
        response_digest,
        log_index,
    ));
    Ok(pb::Receipt {
        exchange_id: exchange_id.to_vec(),
        request_digest: request_digest.to_vec(),
        response_digest: response_digest.to_vec(),
        log_index,
        checkpoint: signer.sign(&note.to_text())?,
    })
}

/// Why a receipt is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// It is for another exchange or other payloads than the ones seen.
    #[error("receipt {0} does not match the exchange")]
    Mismatch(&'static str),
    /// Its signature or checkpoint does not verify.
    #[error("receipt: {0}")]
    Signature(#[from] NoteError),
    /// The checkpoint does not cover the logged entry.
    #[error("receipt: checkpoint of size {size} does not cover log index {index}")]
    NotCovered {
        /// Checkpoint size.
        size: u64,
        /// The entry's index.
        index: u64,
    },
}

/// Checks a responder's receipt against what the requester sent and got,
/// and returns the responder's checkpoint in it.
pub fn verify_receipt(
    verifier: &NoteVerifier,
    receipt: &pb::Receipt,
    exchange_id: &[u8],
    request_digest: &Hash,
    response_digest: &Hash,
) -> Result<Checkpoint, ReceiptError> {
    if receipt.exchange_id != exchange_id {
        return Err(ReceiptError::Mismatch("exchange_id"));
    }
    if receipt.request_digest != request_digest {
        return Err(ReceiptError::Mismatch("request_digest"));
    }
    if receipt.response_digest != response_digest {
        return Err(ReceiptError::Mismatch("response_digest"));
    }
    let checkpoint = Checkpoint::parse(verifier.open(&receipt.checkpoint)?)?;
    let line = receipt_line(
        &receipt.exchange_id,
        &receipt.request_digest,
        &receipt.response_digest,
        receipt.log_index,
    );
    if !checkpoint.extensions.contains(&line) {
        return Err(ReceiptError::Mismatch("checkpoint's pluis-receipt line"));
    }
    if checkpoint.size <= receipt.log_index {
        return Err(ReceiptError::NotCovered {
            size: checkpoint.size,
            index: receipt.log_index,
        });
    }
    Ok(checkpoint)
}

/// The first thing wrong with an exported log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {reason}")]
pub struct LogFault {
    /// The entry index where it is, if it is in an entry.
    pub index: Option<u64>,
    /// `entry 17: sequence`, `checkpoint 3`, …
    pub place: String,
    /// What is wrong.
    pub reason: String,
}

fn fault(index: Option<u64>, place: String, reason: impl Into<String>) -> LogFault {
    LogFault {
        index,
        place,
        reason: reason.into(),
    }
}

/// An entry as exported: its index and its exact bytes.
pub type IndexedEntry = (u64, Vec<u8>);

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLog {
    /// The decoded entries, in order.
    pub entries: Vec<pb::AuditEntry>,
    /// The signed checkpoints, by size.
    pub checkpoints: Vec<Checkpoint>,
    /// The root of all entries.
    pub root: Hash,
}

/// Verifies an exported log: `entries` as `(index, bytes)`, and signed
/// checkpoint notes. Every checkpoint must be signed by `verifier` and
/// agree with the entries; entries must be consecutive from 0, decode, and
/// carry their own index as sequence; the largest checkpoint must cover
/// every entry. Returns the first fault, naming entry and field. The same
/// checks as a [`LogVerifier`] fed every entry, keeping them all.
pub fn verify_log(
    entries: &[IndexedEntry],
    checkpoints: &[String],
    verifier: &NoteVerifier,
) -> Result<VerifiedLog, LogFault> {
    let mut log = LogVerifier::new(checkpoints, verifier)?;
    let mut decoded = Vec::with_capacity(entries.len());
    for (index, bytes) in entries {
        decoded.push(log.push(*index, bytes)?);
    }
    let (root, checkpoints) = log.finish()?;
    Ok(VerifiedLog {
        entries: decoded,
        root,
        checkpoints,
    })
}

/// An exported log verified as its entries stream past, in memory that
/// does not grow with the log: the signed checkpoints (one per stretch
/// of the log) and the tree's right edge ([`merkle::Frontier`]). Feed it
/// every entry in order with [`LogVerifier::push`], then
/// [`LogVerifier::finish`].
#[derive(Debug)]
pub struct LogVerifier {
    /// Signed checkpoints, by size.
    signed: Vec<Checkpoint>,
    /// The first of `signed` not yet reached.
    next: usize,
    tree: merkle::Frontier,
    /// Entries up to here agree with a checkpoint.
    good: u64,
}

impl LogVerifier {
    /// Checks every checkpoint's signature and origin, and that no two of
    /// the same size disagree.
    pub fn new(checkpoints: &[String], verifier: &NoteVerifier) -> Result<Self, LogFault> {
        let mut signed = Vec::with_capacity(checkpoints.len());
        for (i, note) in checkpoints.iter().enumerate() {
            let place = || format!("checkpoint {i}");
            let text = verifier
                .open(note)
                .map_err(|e| fault(None, place(), e.to_string()))?;
            let checkpoint =
                Checkpoint::parse(text).map_err(|e| fault(None, place(), e.to_string()))?;
            if checkpoint.origin != verifier.name() {
                return Err(fault(
                    None,
                    place(),
                    format!(
                        "origin {:?} is not the key's log {:?}",
                        checkpoint.origin,
                        verifier.name()
                    ),
                ));
            }
            signed.push(checkpoint);
        }
        signed.sort_by_key(|c| c.size);
        for pair in signed.windows(2) {
            if pair[0].size == pair[1].size && pair[0].root != pair[1].root {
                return Err(fault(
                    Some(pair[0].size),
                    format!("checkpoints at size {}", pair[0].size),
                    "two signed checkpoints of the same size disagree: the log forked",
                ));
            }
        }
        let mut log = LogVerifier {
            signed,
            next: 0,
            tree: merkle::Frontier::new(),
            good: 0,
        };
        log.check_reached()?;
        Ok(log)
    }

    /// The next entry: at `index`, with these exact bytes; decoded.
    pub fn push(&mut self, index: u64, bytes: &[u8]) -> Result<pb::AuditEntry, LogFault> {
        let position = self.tree.size();
        let place = format!("entry {position}");
        if index != position {
            return Err(fault(
                Some(position),
                format!("{place}: index"),
                format!("is {index}: entries are missing or out of order here"),
            ));
        }
        let entry = pb::AuditEntry::decode(bytes).map_err(|e| {
            fault(
                Some(position),
                place.clone(),
                format!("does not decode: {e}"),
            )
        })?;
        if entry.sequence != position {
            return Err(fault(
                Some(position),
                format!("{place}: sequence"),
                format!(
                    "is {}: entries are missing, moved or reordered",
                    entry.sequence
                ),
            ));
        }
        self.tree.push(merkle::leaf_hash(bytes));
        self.check_reached()?;
        Ok(entry)
    }

    /// Checks the checkpoints signed at the size reached now.
    fn check_reached(&mut self) -> Result<(), LogFault> {
        let size = self.tree.size();
        while let Some(checkpoint) = self.signed.get(self.next) {
            if checkpoint.size != size {
                break;
            }
            if self.tree.root() != checkpoint.root {
                let first = self.good;
                let last = checkpoint.size.saturating_sub(1);
                return Err(fault(
                    Some(first),
                    format!("entries {first}..={last}"),
                    format!(
                        "do not hash to the root signed at size {}: an entry here was altered, removed or inserted",
                        checkpoint.size
                    ),
                ));
            }
            self.good = checkpoint.size;
            self.next += 1;
        }
        Ok(())
    }

    /// After the last entry: every checkpoint was reached, and the largest
    /// covers every entry. Returns the root and the checkpoints.
    pub fn finish(self) -> Result<(Hash, Vec<Checkpoint>), LogFault> {
        let size = self.tree.size();
        if let Some(beyond) = self.signed.get(self.next) {
            return Err(fault(
                Some(size),
                format!("checkpoint at size {}", beyond.size),
                format!(
                    "was signed over {} entries, the log holds {size}: it was truncated",
                    beyond.size
                ),
            ));
        }
        match self.signed.last() {
            Some(last) if last.size == size => {}
            Some(last) => {
                return Err(fault(
                    Some(last.size),
                    format!("entries {}..", last.size),
                    format!(
                        "{} entries are not covered by any signed checkpoint",
                        size - last.size
                    ),
                ))
            }
            None => {
                return Err(fault(
                    None,
                    "checkpoints".into(),
                    "none signed by the node's key",
                ))
            }
        }
        Ok((self.tree.root(), self.signed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> (NoteSigner, Vec<IndexedEntry>, Vec<String>) {
        let signer = NoteSigner::from_seed(&origin("t", "police"), &[3; 32]).unwrap();
        let mut tree = MemoryTree::new();
        let mut entries = Vec::new();
        let mut notes = Vec::new();
        for i in 0..n {
            let bytes = pb::AuditEntry {
                sequence: i,
                purpose: "exploitation-assessment".into(),
                keys_asked: i * 10,
                ..Default::default()
            }
            .encode_to_vec();
            tree.push(merkle::leaf_hash(&bytes));
            entries.push((i, bytes));
            if i % 3 == 2 || i + 1 == n {
                let checkpoint = Checkpoint {
                    origin: signer.name().to_owned(),
                    size: i + 1,
                    root: tree.root(i + 1).unwrap(),
                    extensions: Vec::new(),
                };
                notes.push(signer.sign(&checkpoint.to_text()).unwrap());
            }
        }
        (signer, entries, notes)
    }

    #[test]
    fn a_whole_log_verifies() {
        let (signer, entries, notes) = log(10);
        let verified = verify_log(&entries, &notes, &signer.verifier()).unwrap();
        assert_eq!(verified.entries.len(), 10);
        assert_eq!(verified.entries[9].keys_asked, 90);
    }

    #[test]
    fn tampering_is_found_and_named() {
        let (signer, entries, notes) = log(10);
        let v = signer.verifier();
        // A flipped byte in entry 4's purpose.
        let mut flipped = entries.clone();
        let last = flipped[4].1.len() - 1;
        flipped[4].1[last] ^= 0x01;
        let err = verify_log(&flipped, &notes, &v).unwrap_err();
        assert_eq!(err.index, Some(3), "{err}");
        assert!(err.to_string().contains("entries 3..=5"), "{err}");
        // A deleted entry.
        let mut deleted = entries.clone();
        deleted.remove(6);
        let err = verify_log(&deleted, &notes, &v).unwrap_err();
        assert_eq!(err.index, Some(6));
        assert!(err.to_string().contains("entry 6: index"), "{err}");
        // Two entries swapped, their indexes rewritten to look in order.
        let mut swapped = entries.clone();
        swapped.swap(1, 2);
        swapped[1].0 = 1;
        swapped[2].0 = 2;
        let err = verify_log(&swapped, &notes, &v).unwrap_err();
        assert!(err.to_string().contains("entry 1: sequence: is 2"), "{err}");
        // Truncated.
        let err = verify_log(&entries[..7], &notes, &v).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        // A checkpoint forged with another key.
        let forger = NoteSigner::from_seed(signer.name(), &[4; 32]).unwrap();
        let mut forged = notes.clone();
        let text = v.open(&notes[1]).unwrap().to_owned();
        forged[1] = forger.sign(&text).unwrap();
        let err = verify_log(&entries, &forged, &v).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("checkpoint 1: note: no valid signature"),
            "{err}"
        );
        // Entries that do not decode.
        let mut garbage = entries.clone();
        garbage[8].1 = vec![0xff, 0xff];
        let err = verify_log(&garbage, &notes, &v).unwrap_err();
        assert!(
            err.to_string().starts_with("entry 8: does not decode"),
            "{err}"
        );
    }

    #[test]
    fn receipts_bind_exchange_payloads_and_checkpoint() {
        let (signer, _, notes) = log(4);
        let v = signer.verifier();
        let (id, req, resp) = ([1u8; 16], digest(b"request"), digest(b"response"));
        let signed = Checkpoint::parse(v.open(&notes[1]).unwrap()).unwrap();
        let receipt = sign_receipt(&signer, &id, &req, &resp, 3, &signed).unwrap();
        let checkpoint = verify_receipt(&v, &receipt, &id, &req, &resp).unwrap();
        assert_eq!(checkpoint.size, 4);
        assert_eq!(
            verify_receipt(&v, &receipt, &id, &req, &digest(b"other")),
            Err(ReceiptError::Mismatch("response_digest"))
        );
        let mut moved = receipt.clone();
        moved.log_index = 2;
        assert!(verify_receipt(&v, &moved, &id, &req, &resp).is_err());
        let late = sign_receipt(&signer, &id, &req, &resp, 5, &signed).unwrap();
        assert!(matches!(
            verify_receipt(&v, &late, &id, &req, &resp),
            Err(ReceiptError::NotCovered { .. })
        ));
        let other = NoteSigner::from_seed(signer.name(), &[8; 32]).unwrap();
        assert!(verify_receipt(&other.verifier(), &receipt, &id, &req, &resp).is_err());
        // A plain checkpoint is no receipt.
        let plain = pb::Receipt {
            checkpoint: notes[1].clone(),
            ..receipt.clone()
        };
        assert_eq!(
            verify_receipt(&v, &plain, &id, &req, &resp),
            Err(ReceiptError::Mismatch("checkpoint's pluis-receipt line"))
        );
    }
}
