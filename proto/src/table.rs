//! The labelled table: what a responder publishes per epoch, and how a
//! requester reads it.
//!
//! For every key `y` a responder holds, with `o = OPRF(k, y)`:
//! * `tag = HKDF-SHA256(ikm = o, info = "pluis/tag")[..16]` — what the
//!   table is sorted and searched by;
//! * `label = AES-256-GCM(key = HKDF-SHA256(o, "pluis/label"), nonce,
//!   aad = tag, flags)` — the [`Flags`] this requester may see, openable
//!   only by someone who knows `o`, that is, who already holds `y` and had
//!   the responder evaluate it.
//!
//! Requesters fetch a bucket (every entry whose tag starts with a
//! [`Prefix`]) or the whole table, then open the entry whose tag is theirs.

use std::collections::BTreeSet;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{self, KeyType, HKDF_SHA256};
use ring::rand::SecureRandom;

use crate::oprf::OprfOutput;
use crate::taxonomy::LifeDomain;

/// Tag length in bytes.
pub const TAG_LEN: usize = 16;
/// A table tag.
pub type Tag = [u8; TAG_LEN];
const FLAGS_V1: u8 = 1;

/// Why a table operation failed. Never carries a tag or a flag's owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The label does not open under this key (not ours, or corrupted).
    #[error("label does not open")]
    Open,
    /// Sealing needed randomness the system could not give.
    #[error("no randomness for a nonce")]
    Random,
    /// Flags that do not decode.
    #[error("flags: {0}")]
    Flags(&'static str),
    /// A bucket prefix that is not well-formed.
    #[error("prefix: {0}")]
    Prefix(String),
    /// A stored table that does not decode (offset in bytes).
    #[error("stored table at byte {offset}: {reason}")]
    Stored {
        /// Where decoding stopped.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(output: &OprfOutput, info: &[u8], out: &mut [u8]) {
    let prk = hkdf::Salt::new(HKDF_SHA256, &[]).extract(output);
    // Expanding to at most 32 bytes is far below HKDF's 255·32 limit.
    if let Ok(okm) = prk.expand(&[info], Len(out.len())) {
        let _ = okm.fill(out);
    }
}

/// The tag of an OPRF output.
pub fn tag(output: &OprfOutput) -> Tag {
    let mut tag = [0u8; TAG_LEN];
    expand(output, b"pluis/tag", &mut tag);
    tag
}

fn label_key(output: &OprfOutput) -> LessSafeKey {
    let mut key = [0u8; 32];
    expand(output, b"pluis/label", &mut key);
    // 32 bytes is AES-256's key length: this cannot fail.
    let unbound = UnboundKey::new(&AES_256_GCM, &key)
        .unwrap_or_else(|_| unreachable!("AES-256 takes a 32-byte key"));
    LessSafeKey::new(unbound)
}

/// Seals flags for the holder of `output`: `nonce || ciphertext || tag`.
/// The nonce is random: a table rebuilt in the same epoch seals under the
/// same key again.
pub fn seal_label(
    output: &OprfOutput,
    flags: &[u8],
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, TableError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| TableError::Random)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + flags.len() + 16);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(flags);
    let aead_tag = label_key(output)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(tag(output)),
            &mut sealed[NONCE_LEN..],
        )
        .map_err(|_| TableError::Random)?;
    sealed.extend_from_slice(aead_tag.as_ref());
    Ok(sealed)
}

/// Opens a label sealed for `output`.
pub fn open_label(output: &OprfOutput, label: &[u8]) -> Result<Vec<u8>, TableError> {
    if label.len() < NONCE_LEN + 16 {
        return Err(TableError::Open);
    }
    let (nonce, body) = label.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| TableError::Open)?;
    let mut body = body.to_vec();
    let plain = label_key(output)
        .open_in_place(nonce, Aad::from(tag(output)), &mut body)
        .map_err(|_| TableError::Open)?;
    Ok(plain.to_vec())
}

/// One signal in a label, where the responder's policy allows signal
/// granularity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignalFlag {
    /// Its domain.
    pub domain: LifeDomain,
    /// The taxonomy code.
    pub code: String,
    /// Registration month, as `year * 12 + month - 1`.
    pub month: u16,
}

/// What a label says about one person: domains, and signals where allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Life domains with at least one active signal.
    pub domains: BTreeSet<LifeDomain>,
    /// Individual signals (empty at domain granularity).
    pub signals: Vec<SignalFlag>,
}

impl Flags {
    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &Flags) {
        self.domains.extend(other.domains.iter().copied());
        self.signals.extend(other.signals.iter().cloned());
        self.signals.sort();
        self.signals.dedup();
    }

    /// Compact encoding: version, domain bitmask, then per signal
    /// (domain, code length, code, month).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FLAGS_V1, self.domains.iter().fold(0, |m, d| m | d.bit())];
        let n = self.signals.len().min(255);
        out.push(n as u8);
        for s in &self.signals[..n] {
            let code = &s.code.as_bytes()[..s.code.len().min(255)];
            out.push(s.domain as u8);
            out.push(code.len() as u8);
            out.extend_from_slice(code);
            out.extend_from_slice(&s.month.to_be_bytes());
        }
        out
    }

    /// Decodes [`Flags::encode`]'s output; refuses anything else.
    pub fn decode(bytes: &[u8]) -> Result<Flags, TableError> {
        let domain_of = |i: u8| {
            LifeDomain::ALL
                .get(usize::from(i))
                .copied()
                .ok_or(TableError::Flags("unknown domain"))
        };
        let [version, mask, n, rest @ ..] = bytes else {
            return Err(TableError::Flags("too short"));
        };
        if *version != FLAGS_V1 {
            return Err(TableError::Flags("unknown version"));
        }
        let domains = LifeDomain::ALL
            .into_iter()
            .filter(|d| mask & d.bit() != 0)
            .collect();
        let mut signals = Vec::with_capacity(usize::from(*n));
        let mut rest = rest;
        for _ in 0..*n {
            let [domain, len, tail @ ..] = rest else {
                return Err(TableError::Flags("truncated"));
            };
            let len = usize::from(*len);
            if tail.len() < len + 2 {
                return Err(TableError::Flags("truncated"));
            }
            let code = std::str::from_utf8(&tail[..len])
                .map_err(|_| TableError::Flags("code is not UTF-8"))?
                .to_owned();
            let month = u16::from_be_bytes([tail[len], tail[len + 1]]);
            signals.push(SignalFlag {
                domain: domain_of(*domain)?,
                code,
                month,
            });
            rest = &tail[len + 2..];
        }
        if !rest.is_empty() {
            return Err(TableError::Flags("trailing bytes"));
        }
        Ok(Flags { domains, signals })
    }
}

/// The leading bits of a tag that select a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    bits: u32,
    bytes: Vec<u8>,
}

impl Prefix {
    /// The whole table.
    pub fn all() -> Prefix {
        Prefix {
            bits: 0,
            bytes: Vec::new(),
        }
    }

    /// The first `bits` bits of `tag`.
    pub fn of(tag: &Tag, bits: u32) -> Prefix {
        let bits = bits.min(8 * TAG_LEN as u32);
        let mut bytes = tag[..bits.div_ceil(8) as usize].to_vec();
        if bits % 8 != 0 {
            if let Some(last) = bytes.last_mut() {
                *last &= 0xff << (8 - bits % 8);
            }
        }
        Prefix { bits, bytes }
    }

    /// A prefix from the wire, checked: length matches, unused bits zero.
    pub fn parse(bits: u32, bytes: &[u8]) -> Result<Prefix, TableError> {
        if bits > 8 * TAG_LEN as u32 {
            return Err(TableError::Prefix(format!(
                "{bits} bits is longer than a tag"
            )));
        }
        if bytes.len() != bits.div_ceil(8) as usize {
            return Err(TableError::Prefix(format!(
                "{bits} bits need {} bytes, got {}",
                bits.div_ceil(8),
                bytes.len()
            )));
        }
        let mut padded = [0u8; TAG_LEN];
        padded[..bytes.len()].copy_from_slice(bytes);
        let canonical = Prefix::of(&padded, bits);
        if canonical.bytes != bytes {
            return Err(TableError::Prefix(
                "bits past the prefix length must be zero".into(),
            ));
        }
        Ok(canonical)
    }

    /// Its length in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Its bytes (the last one zero-padded).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `tag` starts with this prefix.
    pub fn matches(&self, tag: &Tag) -> bool {
        Prefix::of(tag, self.bits) == *self
    }
}

/// One table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The tag.
    pub tag: Tag,
    /// The sealed flags.
    pub label: Vec<u8>,
}

/// A responder's table for one epoch and one policy view, sorted by tag.
///
/// Its [`digest`](LabelledTable::digest) names this exact table (labels
/// carry random nonces, so every build has its own): requesters that
/// cache a whole table compare it with the digest `Evaluate` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelledTable {
    entries: Vec<TableEntry>,
    digest: [u8; 32],
}

impl LabelledTable {
    /// A table from entries in any order.
    pub fn new(mut entries: Vec<TableEntry>) -> LabelledTable {
        entries.sort_unstable_by(|a, b| a.tag.cmp(&b.tag).then_with(|| a.label.cmp(&b.label)));
        let digest = digest_of(&entries);
        LabelledTable { entries, digest }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// SHA-256 over the entries in order (`tag ‖ u16 label length ‖ label`).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The entries whose tag starts with `prefix`, in tag order.
    pub fn bucket(&self, prefix: &Prefix) -> &[TableEntry] {
        let mut low = [0u8; TAG_LEN];
        low[..prefix.bytes.len()].copy_from_slice(&prefix.bytes);
        let start = self.entries.partition_point(|e| e.tag < low);
        let len = self.entries[start..]
            .iter()
            .take_while(|e| prefix.matches(&e.tag))
            .count();
        &self.entries[start..start + len]
    }

    /// The entries with exactly this tag (normally zero or one).
    pub fn find(&self, tag: &Tag) -> &[TableEntry] {
        let start = self.entries.partition_point(|e| e.tag < *tag);
        let len = self.entries[start..]
            .iter()
            .take_while(|e| e.tag == *tag)
            .count();
        &self.entries[start..start + len]
    }

    /// The stored form: entry count (u64, big-endian), the entries as
    /// hashed by [`digest`](LabelledTable::digest), then the digest.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .entries
            .iter()
            .map(|e| TAG_LEN + 2 + e.label.len())
            .sum();
        let mut out = Vec::with_capacity(8 + size + 32);
        out.extend_from_slice(&(self.entries.len() as u64).to_be_bytes());
        for entry in &self.entries {
            encode_entry(entry, &mut out);
        }
        out.extend_from_slice(&self.digest);
        out
    }

    /// Reads [`encode`](LabelledTable::encode)'s output back, checking its
    /// order, its length and its digest.
    pub fn decode(bytes: &[u8]) -> Result<LabelledTable, TableError> {
        let bad = |offset: usize, reason: &'static str| TableError::Stored { offset, reason };
        let count = bytes
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or(bad(0, "truncated entry count"))?;
        let body_end = bytes.len().checked_sub(32).ok_or(bad(0, "truncated"))?;
        let mut at = 8;
        // Every entry takes at least 18 bytes, which bounds the allocation.
        let mut entries = Vec::with_capacity((count as usize).min(body_end / (TAG_LEN + 2)));
        for _ in 0..count {
            let head = bytes
                .get(at..at + TAG_LEN + 2)
                .filter(|_| at + TAG_LEN + 2 <= body_end)
                .ok_or(bad(at, "truncated entry"))?;
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&head[..TAG_LEN]);
            let len = usize::from(u16::from_be_bytes([head[TAG_LEN], head[TAG_LEN + 1]]));
            let start = at + TAG_LEN + 2;
            let label = bytes
                .get(start..start + len)
                .filter(|_| start + len <= body_end)
                .ok_or(bad(at, "truncated label"))?;
            let entry = TableEntry {
                tag,
                label: label.to_vec(),
            };
            if entries.last().is_some_and(|last: &TableEntry| {
                (&last.tag, &last.label) > (&entry.tag, &entry.label)
            }) {
                return Err(bad(at, "entries out of order"));
            }
            entries.push(entry);
            at = start + len;
        }
        if at != body_end {
            return Err(bad(at, "trailing bytes"));
        }
        let digest = digest_of(&entries);
        if bytes[body_end..] != digest {
            return Err(bad(body_end, "digest does not match the entries"));
        }
        Ok(LabelledTable { entries, digest })
    }
}

fn encode_entry(entry: &TableEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&entry.tag);
    // Labels are a few dozen bytes; seal_label never makes one over 64 KiB.
    out.extend_from_slice(&(entry.label.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&entry.label[..entry.label.len().min(usize::from(u16::MAX))]);
}

fn digest_of(entries: &[TableEntry]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = Vec::with_capacity(64 * 1024);
    for entry in entries {
        encode_entry(entry, &mut buffer);
        if buffer.len() > 60 * 1024 {
            context.update(&buffer);
            buffer.clear();
        }
    }
    context.update(&buffer);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn flags() -> Flags {
        Flags {
            domains: [LifeDomain::Safety, LifeDomain::YouthCare]
                .into_iter()
                .collect(),
            signals: vec![SignalFlag {
                domain: LifeDomain::Safety,
                code: "weapon_possession".into(),
                month: 2026 * 12 + 3,
            }],
        }
    }

    #[test]
    fn labels_open_only_for_the_same_output() {
        let rng = SystemRandom::new();
        let o1 = [1u8; 64];
        let o2 = [2u8; 64];
        let label = seal_label(&o1, &flags().encode(), &rng).unwrap();
        assert_eq!(
            Flags::decode(&open_label(&o1, &label).unwrap()).unwrap(),
            flags()
        );
        assert_eq!(open_label(&o2, &label), Err(TableError::Open));
        assert_ne!(tag(&o1), tag(&o2));
        assert_ne!(
            label,
            seal_label(&o1, &flags().encode(), &rng).unwrap(),
            "fresh nonce"
        );
        let mut tampered = label.clone();
        tampered[20] ^= 1;
        assert_eq!(open_label(&o1, &tampered), Err(TableError::Open));
    }

    #[test]
    fn flags_decoding_refuses_garbage() {
        let good = flags().encode();
        for bad in [&good[..2], &good[..good.len() - 1], &[9, 0, 0][..]] {
            assert!(Flags::decode(bad).is_err(), "{bad:?}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Flags::decode(&trailing).is_err());
    }

    #[test]
    fn prefixes_select_buckets() {
        let entries: Vec<TableEntry> = (0..=255u8)
            .map(|b| TableEntry {
                tag: [b; TAG_LEN],
                label: vec![b],
            })
            .collect();
        let table = LabelledTable::new(entries);
        let p = Prefix::of(&[0xabu8; TAG_LEN], 4); // 0xa0
        let bucket = table.bucket(&p);
        assert_eq!(bucket.len(), 16);
        assert!(bucket.iter().all(|e| e.tag[0] >> 4 == 0xa));
        assert_eq!(table.bucket(&Prefix::all()).len(), 256);
        assert_eq!(table.find(&[7; TAG_LEN]).len(), 1);
        assert_eq!(Prefix::parse(4, &[0xa0]).unwrap(), p);
        assert!(Prefix::parse(4, &[0xa1]).is_err());
        assert!(Prefix::parse(16, &[0xa1]).is_err());
        assert!(Prefix::parse(200, &[0; 25]).is_err());
    }

    #[test]
    fn stored_tables_round_trip_and_damage_is_refused() {
        let rng = SystemRandom::new();
        let entries: Vec<TableEntry> = (0..50u8)
            .map(|b| {
                let output = [b; 64];
                TableEntry {
                    tag: tag(&output),
                    label: seal_label(&output, &flags().encode(), &rng).unwrap(),
                }
            })
            .collect();
        let table = LabelledTable::new(entries.clone());
        let bytes = table.encode();
        let back = LabelledTable::decode(&bytes).unwrap();
        assert_eq!(back, table);
        assert_eq!(back.digest(), table.digest());
        // The same entries in another order are the same table.
        let mut reversed = entries;
        reversed.reverse();
        assert_eq!(LabelledTable::new(reversed).digest(), table.digest());

        // A flipped byte anywhere is caught, by the digest or the framing.
        for at in [3, 8, 8 + 17, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(LabelledTable::decode(&damaged).is_err(), "flip at {at}");
        }
        let err = LabelledTable::decode(&bytes[..bytes.len() - 40]).unwrap_err();
        assert!(matches!(err, TableError::Stored { .. }), "{err}");
        assert!(LabelledTable::decode(&[]).is_err());
        let mut longer = bytes.clone();
        longer.insert(8, 0);
        assert!(LabelledTable::decode(&longer).is_err());
    }
}
