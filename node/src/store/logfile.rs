//! The audit log's files, in `data_dir/audit`, outside sled.
//!
//! sled rewrites a page in memory and in its own log on every insert; with
//! a dozen appends per case query (entry, subtree hashes, size, checkpoint)
//! that cost more CPU than the query itself. Here an append is one
//! positional write per file and durability one `fdatasync` of `entries`
//! per group of appends.
//!
//! * `entries`: the log itself, frames of `length (u32 BE) ‖ first 4 bytes
//!   of the entry's leaf hash ‖ entry bytes`. The only file that is synced
//!   and the only one read back at open.
//! * `offsets`: entry i's frame offset at byte 8·i (u64 BE);
//! * `hashes`: every perfect subtree hash of the RFC 9162 tree, in the order
//!   they complete (post-order), so that subtree (level, index) is at a
//!   position computed from its numbers ([`position`]);
//! * `checkpoints`: frames of `size (u64 BE) ‖ length (u32 BE) ‖ note`.
//!
//! `entries` is written ahead with zeros (1 MiB at a time, synced), so that
//! the `fdatasync` of an append writes its data and not the file's size.
//! `offsets` and `hashes` follow from `entries` and are rewritten from it at
//! every open, so they need no sync and cannot disagree with it. What an
//! unfinished append leaves at the end of `entries` (a partial frame before
//! the zeros) was never acknowledged: at open it is copied aside to
//! `unfinished-*` and zeroed. A frame that does not match its check with
//! data after it is an altered log, and the store refuses to open.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pluis_proto::log::merkle::{
    completed_subtrees, leaf_hash, node_hash, Hash, ProofError, Subtrees,
};

/// Entries larger than this are not ours.
const MAX_ENTRY: u32 = 1 << 20;
const FRAME_HEADER: u64 = 8;
/// Zeros written ahead of the log's end at a time.
const ALLOCATE: u64 = 1 << 20;

/// Where in `hashes` (counted in hashes) the perfect subtree `index` at
/// `level` is: after every node completed before its last leaf m, which
/// is 2m − popcount(m), and the `level` nodes below it that complete
/// with it.
pub fn position(level: u32, index: u64) -> Option<u64> {
    let last = index.checked_add(1)?.checked_shl(level)?.checked_sub(1)?;
    (2 * u128::from(last) - u128::from(last.count_ones()) + u128::from(level))
        .try_into()
        .ok()
}

/// Why the log's files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {what}")]
pub struct LogFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, naming the entry and byte where there is one.
    pub what: String,
}

struct Tail {
    /// Entries written.
    size: u64,
    /// Bytes of `entries` in use.
    end: u64,
    /// Bytes of `entries` written (zeros after `end`).
    allocated: u64,
    /// Bytes of `checkpoints` in use.
    checkpoints_end: u64,
}

/// The open log files.
pub struct LogFile {
    dir: PathBuf,
    entries: File,
    offsets: File,
    hashes: File,
    checkpoints: File,
    tail: Mutex<Tail>,
    /// Entries whose writes are complete; readers see no further.
    size: AtomicU64,
    /// Checkpoints: (size, offset of the note, its length).
    stored: Mutex<Stored>,
}

/// Where the stored checkpoints are: every one is in the file, one per
/// [`KEEP_EVERY`] entries of growth (and the latest) in memory.
#[derive(Default)]
struct Stored {
    kept: Vec<(u64, u64, u32)>,
    latest: Option<(u64, u64, u32)>,
}

/// Log growth between two checkpoints kept in the in-memory index.
const KEEP_EVERY: u64 = 64;

impl Stored {
    fn add(&mut self, checkpoint: (u64, u64, u32)) {
        if self
            .kept
            .last()
            .is_none_or(|(size, _, _)| checkpoint.0 >= size + KEEP_EVERY)
        {
            self.kept.push(checkpoint);
        }
        self.latest = Some(checkpoint);
    }
}

/// Keeps the bytes `range` of the entries file (appends that never
/// finished and were never acknowledged, after `entries` whole entries)
/// in a file of their own beside it, then zeroes them in place.
fn set_aside(
    dir: &Path,
    entries: &File,
    range: std::ops::Range<u64>,
    size: u64,
) -> Result<(), LogFileError> {
    // A file name only, made before any clock is handed to the store:
    // the system's time.
    let now = crate::clock::Clock::System.now_ms();
    let aside = dir.join(format!("unfinished-{}-{now}", range.start));
    let mut kept = vec![0u8; (range.end - range.start) as usize];
    entries
        .read_exact_at(&mut kept, range.start)
        .and_then(|()| {
            let mut file = crate::private_files::create_file(&aside)?;
            file.write_all(&kept)?;
            file.sync_all()
        })
        .map_err(at(&aside))?;
    tracing::warn!(
        kept_in = %aside.display(),
        bytes = range.end - range.start,
        entries = size,
        "set aside an unfinished append at the end of the audit log"
    );
    kept.fill(0);
    entries
        .write_all_at(&kept, range.start)
        .and_then(|()| entries.sync_all())
        .map_err(at(&dir.join("entries")))
}

/// Writes entry `index`'s leaf hash and the hash of every subtree it
/// completes, keeping `frontier` (the tree's right edge) up to date.
fn write_hashes(
    out: &mut impl Write,
    frontier: &mut Vec<Hash>,
    index: u64,
    leaf: Hash,
) -> Result<(), String> {
    let mut hash = leaf;
    out.write_all(&hash).map_err(|e| e.to_string())?;
    let mut rest = index;
    while rest & 1 == 1 {
        let left = frontier
            .pop()
            .ok_or_else(|| format!("entry {index}: tree frontier empty"))?;
        hash = node_hash(&left, &hash);
        out.write_all(&hash).map_err(|e| e.to_string())?;
        rest >>= 1;
    }
    frontier.push(hash);
    Ok(())
}

/// Reads every entry of the log in `dir` back, rewriting the derived
/// files (`offsets`, `hashes`) as it goes; `each` sees every entry. An
/// entry that does not match its check refuses the file, unless it is an
/// append that never finished (it is set aside). Returns the entries
/// read, where they end, and the file's length.
fn read_back(
    dir: &Path,
    entries: &File,
    offsets: &File,
    hashes: &File,
    each: &mut impl FnMut(u64, &[u8]),
) -> Result<(u64, u64, u64), LogFileError> {
    // Read every entry back, rewriting the derived files as we go.
    let entries_path = dir.join("entries");
    let length = entries.metadata().map_err(at(&entries_path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, entries);
    offsets.set_len(0).map_err(at(&dir.join("offsets")))?;
    hashes.set_len(0).map_err(at(&dir.join("hashes")))?;
    let mut offsets_out = BufWriter::with_capacity(1 << 16, offsets);
    let mut hashes_out = BufWriter::with_capacity(1 << 16, hashes);
    let mut frontier: Vec<Hash> = Vec::new();
    let (mut size, mut end) = (0u64, 0u64);
    let mut body = Vec::new();
    while end < length {
        let mut header = [0u8; FRAME_HEADER as usize];
        let fits = end + FRAME_HEADER <= length;
        if fits {
            reader.read_exact(&mut header).map_err(at(&entries_path))?;
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let whole = fits && len <= MAX_ENTRY && end + FRAME_HEADER + u64::from(len) <= length;
        // The entry's leaf hash, if the frame is whole and matches it.
        let leaf = if whole {
            body.resize(len as usize, 0);
            reader.read_exact(&mut body).map_err(at(&entries_path))?;
            Some(leaf_hash(&body)).filter(|hash| hash[..4] == header[4..])
        } else {
            None
        };
        let Some(hash) = leaf else {
            let frame_end = end + FRAME_HEADER + u64::from(len);
            if whole && data_end(entries, frame_end, length).map_err(at(&entries_path))? > frame_end
            {
                return Err(LogFileError {
                    path: entries_path,
                    what: format!(
                        "entry {size} (byte {end}) does not match its check: the file was altered; refusing to start on it"
                    ),
                });
            }
            // What follows is free space, or appends that never
            // finished and were never acknowledged: those bytes are
            // kept aside, not thrown away, and zeroed here.
            let used = data_end(entries, end, length).map_err(at(&entries_path))?;
            if used > end {
                set_aside(dir, entries, end..used, size)?;
            }
            break;
        };
        each(size, &body);
        offsets_out
            .write_all(&end.to_be_bytes())
            .map_err(at(&dir.join("offsets")))?;
        write_hashes(&mut hashes_out, &mut frontier, size, hash).map_err(|what| LogFileError {
            path: dir.join("hashes"),
            what,
        })?;
        size += 1;
        end += FRAME_HEADER + u64::from(len);
    }
    offsets_out.flush().map_err(at(&dir.join("offsets")))?;
    hashes_out.flush().map_err(at(&dir.join("hashes")))?;
    drop((offsets_out, hashes_out, reader));
    // A killed process's last appends may be in the page cache only:
    // nothing read back is counted durable before it is on disk.
    entries.sync_data().map_err(at(&entries_path))?;
    Ok((size, end, length))
}

impl LogFile {
    /// Opens the log in `dir`, creating it if need be; `each` sees every
    /// entry (index, bytes) as it is read back.
    pub fn open(dir: &Path, mut each: impl FnMut(u64, &[u8])) -> Result<LogFile, LogFileError> {
        crate::private_files::create_dir(dir).map_err(at(dir))?;
        let open = |name: &str| {
            let path = dir.join(name);
            crate::private_files::open_file(&path).map_err(at(&path))
        };
        let (entries, offsets, hashes, checkpoints) = (
            open("entries")?,
            open("offsets")?,
            open("hashes")?,
            open("checkpoints")?,
        );

        let (size, end, length) = read_back(dir, &entries, &offsets, &hashes, &mut each)?;
        let (stored, checkpoints_end) = read_checkpoints(&checkpoints, &dir.join("checkpoints"))?;
        Ok(LogFile {
            dir: dir.to_owned(),
            entries,
            offsets,
            hashes,
            checkpoints,
            tail: Mutex::new(Tail {
                size,
                end,
                allocated: length,
                checkpoints_end,
            }),
            size: AtomicU64::new(size),
            stored: Mutex::new(stored),
        })
    }

    fn error(&self, name: &str, what: impl std::fmt::Display) -> LogFileError {
        LogFileError {
            path: self.dir.join(name),
            what: what.to_string(),
        }
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Bytes of the entries file in use (frames, without the zeros
    /// written ahead).
    pub fn bytes(&self) -> u64 {
        crate::lock(&self.tail).end
    }

    /// Appends `bytes` as the next entry (not yet synced); returns its
    /// index. On failure nothing is appended.
    pub fn append(&self, bytes: &[u8]) -> Result<u64, LogFileError> {
        let mut tail = crate::lock(&self.tail);
        let index = tail.size;
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|len| *len <= MAX_ENTRY)
            .ok_or_else(|| self.error("entries", format!("entry {index} is too large")))?;
        let leaf = leaf_hash(bytes);
        let made = completed_subtrees(index, leaf, |level, at| self.perfect(level, at))
            .map_err(|e| self.error("hashes", e))?;
        let mut frame = Vec::with_capacity(bytes.len() + FRAME_HEADER as usize);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&leaf[..4]);
        frame.extend_from_slice(bytes);
        let mut hashes = Vec::with_capacity(made.len() * 32);
        for (_, _, hash) in &made {
            hashes.extend_from_slice(hash);
        }
        let at = position(0, index).ok_or_else(|| self.error("hashes", "log too large"))?;
        self.allocate(&mut tail, frame.len() as u64)?;
        let written = self
            .entries
            .write_all_at(&frame, tail.end)
            .map_err(|e| self.error("entries", e))
            .and_then(|()| {
                self.offsets
                    .write_all_at(&tail.end.to_be_bytes(), index * 8)
                    .map_err(|e| self.error("offsets", e))
            })
            .and_then(|()| {
                self.hashes
                    .write_all_at(&hashes, at * 32)
                    .map_err(|e| self.error("hashes", e))
            });
        if let Err(e) = written {
            // Leave no frame behind that a later open would read as logged.
            if self.entries.set_len(tail.end).is_ok() {
                tail.allocated = tail.end;
            }
            return Err(e);
        }
        tail.end += frame.len() as u64;
        tail.size = index + 1;
        self.size.store(tail.size, Ordering::Release);
        Ok(index)
    }

    /// Makes room for `more` bytes after the end: zeros written and synced
    /// ahead, in [`ALLOCATE`] steps, so that syncing an append writes data
    /// only and never the file's size (no journal commit per sync).
    fn allocate(&self, tail: &mut Tail, more: u64) -> Result<(), LogFileError> {
        if tail.end + more <= tail.allocated {
            return Ok(());
        }
        let grow = ALLOCATE.max(tail.end + more - tail.allocated);
        self.entries
            .write_all_at(&vec![0u8; grow as usize], tail.allocated)
            .and_then(|()| self.entries.sync_all())
            .map_err(|e| self.error("entries", e))?;
        tail.allocated += grow;
        Ok(())
    }

    /// Makes every entry appended so far durable.
    pub fn sync(&self) -> Result<(), LogFileError> {
        self.entries
            .sync_data()
            .map_err(|e| self.error("entries", e))
    }

    /// Where entry `index`'s frame starts in `entries`.
    fn offset(&self, index: u64) -> Result<u64, LogFileError> {
        let mut offset = [0u8; 8];
        self.offsets
            .read_exact_at(&mut offset, index * 8)
            .map_err(|e| self.error("offsets", e))?;
        Ok(u64::from_be_bytes(offset))
    }

    /// Entry `index`'s bytes.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogFileError> {
        if index >= self.size() {
            return Err(self.error("entries", format!("no entry {index}")));
        }
        let offset = self.offset(index)?;
        let mut header = [0u8; FRAME_HEADER as usize];
        self.entries
            .read_exact_at(&mut header, offset)
            .map_err(|e| self.error("entries", e))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if len > MAX_ENTRY {
            return Err(self.error(
                "entries",
                format!("entry {index} (byte {offset}): bad length"),
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        self.entries
            .read_exact_at(&mut bytes, offset + FRAME_HEADER)
            .map_err(|e| self.error("entries", e))?;
        Ok(bytes)
    }

    /// Stores a signed checkpoint (not synced: it only covers durable
    /// entries, so one lost in a crash is signed again the same).
    pub fn store_checkpoint(&self, size: u64, note: &str) -> Result<(), LogFileError> {
        let mut tail = crate::lock(&self.tail);
        let len =
            u32::try_from(note.len()).map_err(|_| self.error("checkpoints", "note too large"))?;
        let mut frame = Vec::with_capacity(note.len() + 12);
        frame.extend_from_slice(&size.to_be_bytes());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(note.as_bytes());
        self.checkpoints
            .write_all_at(&frame, tail.checkpoints_end)
            .map_err(|e| self.error("checkpoints", e))?;
        crate::lock(&self.stored).add((size, tail.checkpoints_end + 12, len));
        tail.checkpoints_end += frame.len() as u64;
        Ok(())
    }

    /// Stored checkpoints whose size lies in `sizes`: about one per
    /// [`KEEP_EVERY`] entries, and the latest.
    pub fn checkpoints(
        &self,
        sizes: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, LogFileError> {
        let wanted: Vec<(u64, u64, u32)> = {
            let stored = crate::lock(&self.stored);
            let mut wanted: Vec<_> = stored
                .kept
                .iter()
                .chain(stored.latest.iter())
                .filter(|(size, _, _)| sizes.contains(size))
                .copied()
                .collect();
            wanted.dedup();
            wanted
        };
        wanted
            .into_iter()
            .map(|(size, offset, len)| Ok((size, self.note_at(offset, len)?)))
            .collect()
    }

    /// The stored checkpoint with the largest size.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, String)>, LogFileError> {
        let last = crate::lock(&self.stored).latest;
        last.map(|(size, offset, len)| Ok((size, self.note_at(offset, len)?)))
            .transpose()
    }

    fn note_at(&self, offset: u64, len: u32) -> Result<String, LogFileError> {
        let mut note = vec![0u8; len as usize];
        self.checkpoints
            .read_exact_at(&mut note, offset)
            .map_err(|e| self.error("checkpoints", e))?;
        Ok(String::from_utf8_lossy(&note).into_owned())
    }

    /// Overwrites entry `index` with `bytes` of the same length and a
    /// matching check, as an attacker with disk access could. Only for
    /// tamper tests.
    #[cfg(feature = "tamper-tests")]
    pub fn overwrite_for_tamper_tests(&self, index: u64, bytes: &[u8]) -> Result<(), LogFileError> {
        let old = self.entry(index)?;
        if old.len() != bytes.len() {
            return Err(self.error("entries", "tamper tests overwrite same-length entries only"));
        }
        let offset = self.offset(index)?;
        self.entries
            .write_all_at(&leaf_hash(bytes)[..4], offset + 4)
            .and_then(|()| self.entries.write_all_at(bytes, offset + FRAME_HEADER))
            .and_then(|()| self.entries.sync_all())
            .map_err(|e| self.error("entries", e))
    }
}

impl Subtrees for LogFile {
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let missing =
            || ProofError::Store(format!("no subtree hash at level {level}, index {index}"));
        let complete = index
            .checked_add(1)
            .and_then(|n| n.checked_shl(level))
            .filter(|&last| level < 64 && last <= self.size())
            .is_some();
        let at = position(level, index)
            .filter(|_| complete)
            .ok_or_else(missing)?;
        let mut hash = [0u8; 32];
        self.hashes.read_exact_at(&mut hash, at * 32).map_err(|e| {
            ProofError::Store(format!("{}: {e}", self.dir.join("hashes").display()))
        })?;
        Ok(hash)
    }
}

/// The error of an I/O failure on `path`.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> LogFileError + '_ {
    move |e| LogFileError {
        path: path.to_owned(),
        what: e.to_string(),
    }
}

/// Where the data in `file` between `from` and `to` ends: after its last
/// non-zero byte, or at `from` if there is none.
fn data_end(file: &File, from: u64, to: u64) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; 1 << 16];
    let (mut at, mut end) = (from, from);
    while at < to {
        let n = buffer.len().min((to - at) as usize);
        file.read_exact_at(&mut buffer[..n], at)?;
        if let Some(last) = buffer[..n].iter().rposition(|b| *b != 0) {
            end = at + last as u64 + 1;
        }
        at += n as u64;
    }
    Ok(end)
}

/// The checkpoint index and the bytes in use; a partial last frame (a
/// write cut short) is dropped.
fn read_checkpoints(file: &File, path: &Path) -> Result<(Stored, u64), LogFileError> {
    let length = file.metadata().map_err(at(path))?.len();
    let mut stored = Stored::default();
    let mut offset = 0u64;
    let mut header = [0u8; 12];
    while offset + 12 <= length {
        file.read_exact_at(&mut header, offset).map_err(at(path))?;
        let size = u64::from_be_bytes(header[..8].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(header[8..].try_into().unwrap_or_default());
        if len == 0 || offset + 12 + u64::from(len) > length {
            break;
        }
        stored.add((size, offset + 12, len));
        offset += 12 + u64::from(len);
    }
    if offset < length {
        file.set_len(offset).map_err(at(path))?;
    }
    Ok((stored, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pluis_proto::log::merkle::{self, MemoryTree};

    #[test]
    fn positions_follow_the_order_subtrees_complete_in() {
        let mut tree = MemoryTree::new();
        let mut order = Vec::new();
        for i in 0..200u64 {
            for (level, index, _) in tree.push(leaf_hash(&i.to_be_bytes())) {
                order.push((level, index));
            }
        }
        for (at, (level, index)) in order.iter().enumerate() {
            assert_eq!(
                position(*level, *index),
                Some(at as u64),
                "({level}, {index})"
            );
        }
        assert_eq!(position(63, u64::MAX), None);
    }

    #[test]
    fn appends_read_back_and_hash_as_the_reference_tree() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = MemoryTree::new();
        {
            let log = LogFile::open(dir.path(), |_, _| {}).unwrap();
            for i in 0..37u64 {
                let bytes = format!("entry {i}").into_bytes();
                assert_eq!(log.append(&bytes).unwrap(), i);
                tree.push(leaf_hash(&bytes));
            }
            log.sync().unwrap();
            for size in 0..=37 {
                assert_eq!(merkle::root(&log, size).unwrap(), tree.root(size).unwrap());
            }
            assert_eq!(log.entry(5).unwrap(), b"entry 5");
            log.store_checkpoint(10, "ten").unwrap();
            log.store_checkpoint(37, "thirty-seven").unwrap();
        }
        let mut seen = Vec::new();
        let log = LogFile::open(dir.path(), |i, b| seen.push((i, b.to_vec()))).unwrap();
        assert_eq!(seen.len(), 37);
        assert_eq!(seen[36], (36, b"entry 36".to_vec()));
        assert_eq!(merkle::root(&log, 37).unwrap(), tree.root(37).unwrap());
        assert_eq!(
            log.last_checkpoint().unwrap(),
            Some((37, "thirty-seven".into()))
        );
        assert_eq!(log.checkpoints(1..=36).unwrap(), vec![(10, "ten".into())]);
        assert_eq!(log.append(b"next").unwrap(), 37);
    }

    #[test]
    fn an_unfinished_append_is_set_aside_and_an_altered_entry_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = LogFile::open(dir.path(), |_, _| {}).unwrap();
            for i in 0..5u64 {
                log.append(&i.to_be_bytes()).unwrap();
            }
        }
        let path = dir.path().join("entries");
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(whole.len() as u64, ALLOCATE, "written ahead");
        let data = &whole[..5 * 16];
        assert!(whole[data.len()..].iter().all(|b| *b == 0));
        let torn = &data[..data.len() - 3];
        let zeros = vec![0u8; 4096];
        for (tail, size, aside) in [
            (torn.to_vec(), 4, true),
            ([torn, &zeros].concat(), 4, true),
            ([data, &zeros].concat(), 5, false),
        ] {
            std::fs::write(&path, &tail).unwrap();
            let log = LogFile::open(dir.path(), |_, _| {}).unwrap();
            assert_eq!(log.size(), size);
            let kept: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().contains("unfinished-"))
                .collect();
            assert_eq!(kept.len(), usize::from(aside));
            for file in kept {
                let unfinished = &torn[4 * 16..];
                let last = unfinished.iter().rposition(|b| *b != 0).unwrap();
                assert_eq!(std::fs::read(&file).unwrap(), &unfinished[..=last]);
                std::fs::remove_file(file).unwrap();
            }
            assert_eq!(log.append(b"again").unwrap(), size);
            assert_eq!(log.entry(size).unwrap(), b"again");
            drop(log);
            std::fs::write(&path, &whole).unwrap();
        }
        let mut altered = whole.clone();
        altered[16 + 8 + 3] ^= 1; // entry 1's body
        std::fs::write(&path, &altered).unwrap();
        let err = LogFile::open(dir.path(), |_, _| {})
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("entry 1 (byte 16)") && err.contains("refusing"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), altered, "left as it was");
    }
}
