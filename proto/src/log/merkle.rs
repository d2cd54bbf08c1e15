//! RFC 9162 Merkle trees: hashing, inclusion and consistency proofs.
//!
//! `MTH({}) = SHA-256()`, `leaf = SHA-256(0x00 ‖ entry)`,
//! `node = SHA-256(0x01 ‖ left ‖ right)`, split at the largest power of
//! two below the size. Proofs are made from the hashes of *perfect*
//! subtrees (aligned blocks of 2^level leaves), which a log keeps as it
//! appends ([`Subtrees`]); any other subtree hash is combined from
//! O(log n) of them. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2
//! literally.

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof could not be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The sizes or index asked for make no proof.
    #[error("{0}")]
    Range(String),
    /// The proof does not lead to the roots given.
    #[error("{0}")]
    Mismatch(&'static str),
    /// The log's own hashes could not be read.
    #[error("log storage: {0}")]
    Store(String),
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    sha256(&[&[]])
}

/// `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[0x00], entry])
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Where a log keeps the hashes of its perfect subtrees.
pub trait Subtrees {
    /// The hash of leaves `[index·2^level, (index+1)·2^level)`, which must
    /// all exist.
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, ProofError>;
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for a range the RFC's recursion visits (`start` a
/// multiple of the largest power of two not above the range's length).
pub fn range_hash(s: &impl Subtrees, start: u64, end: u64) -> Result<Hash, ProofError> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start % n == 0 {
        return s.perfect(n.trailing_zeros(), start / n);
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(s, start, start + k)?,
        &range_hash(s, start + k, end)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn root(s: &impl Subtrees, size: u64) -> Result<Hash, ProofError> {
    range_hash(s, 0, size)
}

/// RFC 9162 §2.1.3.1: the inclusion proof of leaf `index` in the tree of
/// `size` leaves.
pub fn inclusion_proof(s: &impl Subtrees, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let mut proof = Vec::new();
    path(s, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path(
    s: &impl Subtrees,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(s, m, start, start + k, out)?;
        out.push(range_hash(s, start + k, end)?);
    } else {
        path(s, m - k, start + k, end, out)?;
        out.push(range_hash(s, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1: the proof that the tree of `first` leaves is a
/// prefix of the tree of `second` leaves.
pub fn consistency_proof(
    s: &impl Subtrees,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError> {
    if first > second {
        return Err(ProofError::Range(format!(
            "a tree of {first} leaves cannot be a prefix of one of {second}"
        )));
    }
    let mut proof = Vec::new();
    if first > 0 && first < second {
        subproof(s, first, 0, second, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof(
    s: &impl Subtrees,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(s, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(s, m, start, start + k, whole, out)?;
        out.push(range_hash(s, start + k, end)?);
    } else {
        subproof(s, m - k, start + k, end, false, out)?;
        out.push(range_hash(s, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is leaf `index` of the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Mismatch("inclusion proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Mismatch("inclusion proof is too short"));
    }
    if r != *root {
        return Err(ProofError::Mismatch(
            "inclusion proof does not lead to the root",
        ));
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `first` leaves with root
/// `first_root` is a prefix of the tree of `second` leaves with root
/// `second_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::Range(format!(
            "a tree of {first} leaves cannot be a prefix of one of {second}"
        )));
    }
    if first == second {
        return if proof.is_empty() && first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch("same size, different roots"))
        };
    }
    if first == 0 {
        // The empty tree is a prefix of every tree.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Mismatch(
                "a proof from the empty tree must be empty",
            ))
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Mismatch("consistency proof is empty"));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::Mismatch("consistency proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Mismatch("consistency proof is too short"));
    }
    if fr != *first_root {
        return Err(ProofError::Mismatch(
            "consistency proof does not lead to the earlier root: history was rewritten",
        ));
    }
    if sr != *second_root {
        return Err(ProofError::Mismatch(
            "consistency proof does not lead to the later root",
        ));
    }
    Ok(())
}

/// The right edge of a growing tree: one perfect subtree hash per set bit
/// of its size, largest first. Enough to give the root of everything
/// pushed so far, in memory logarithmic in the size, so a log of any
/// size can be verified as it streams past.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)`, levels strictly decreasing.
    subtrees: Vec<(u32, Hash)>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf by its hash.
    pub fn push(&mut self, leaf: Hash) {
        self.size += 1;
        self.subtrees.push((0, leaf));
        while let [.., (left_level, left), (right_level, right)] = self.subtrees[..] {
            if left_level != right_level {
                break;
            }
            self.subtrees.truncate(self.subtrees.len() - 2);
            self.subtrees
                .push((left_level + 1, node_hash(&left, &right)));
        }
    }

    /// The RFC 9162 root of every leaf pushed so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.subtrees.iter().rev().map(|(_, h)| *h);
        match hashes.next() {
            None => empty_root(),
            Some(last) => hashes.fold(last, |right, left| node_hash(&left, &right)),
        }
    }
}

/// A tree in memory: every perfect subtree hash, level by level. Auditors
/// rebuild a bundle's tree with it; a node's log keeps the same hashes in
/// its store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf by its hash; returns the perfect subtree hashes that
    /// became complete, as `(level, index, hash)`, leaf first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut made = Vec::new();
        let mut level = 0usize;
        let mut hash = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let index = self.levels[level].len() as u64 - 1;
            made.push((level as u32, index, hash));
            if index % 2 == 0 {
                return made;
            }
            hash = node_hash(&self.levels[level][index as usize - 1], &hash);
            level += 1;
        }
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::Range(format!(
                "the tree has {} leaves, not {size}",
                self.size()
            )));
        }
        root(self, size)
    }
}

impl Subtrees for MemoryTree {
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or_else(|| ProofError::Store(format!("no subtree at level {level}, index {index}")))
    }
}

/// Appending: what a log must add to its store for each new leaf, given
/// the left siblings it already holds. `left(level, index)` returns the
/// perfect subtree hash at that place. Returns `(level, index, hash)` for
/// every perfect subtree the new leaf `index` completes, leaf first.
pub fn completed_subtrees(
    index: u64,
    leaf: Hash,
    left: impl Fn(u32, u64) -> Result<Hash, ProofError>,
) -> Result<Vec<(u32, u64, Hash)>, ProofError> {
    let mut made = vec![(0, index, leaf)];
    let (mut level, mut at, mut hash) = (0u32, index, leaf);
    while at % 2 == 1 {
        hash = node_hash(&left(level, at - 1)?, &hash);
        level += 1;
        at /= 2;
        made.push((level, at, hash));
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Hash {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    /// RFC 6962 / RFC 9162 reference data, as published with the
    /// Certificate Transparency implementations: eight leaves and the
    /// root of every prefix.
    const LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference() -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in LEAVES {
            tree.push(leaf_hash(leaf));
        }
        tree
    }

    #[test]
    fn a_frontier_gives_the_published_root_of_every_prefix() {
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), unhex(ROOTS[0]));
        for (n, leaf) in LEAVES.iter().enumerate() {
            frontier.push(leaf_hash(leaf));
            assert_eq!(frontier.size(), n as u64 + 1);
            assert_eq!(frontier.root(), unhex(ROOTS[n + 1]), "{} leaves", n + 1);
        }
    }

    #[test]
    fn roots_match_the_published_reference() {
        let tree = reference();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(tree.root(size as u64).unwrap(), unhex(want), "size {size}");
        }
        assert_eq!(empty_root(), unhex(ROOTS[0]));
    }

    #[test]
    fn proofs_match_the_published_reference() {
        let tree = reference();
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
        ];
        for (index, size, want) in cases {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            let want: Vec<Hash> = want.iter().map(|h| unhex(h)).collect();
            assert_eq!(proof, want, "inclusion of {index} in {size}");
            let leaf = leaf_hash(LEAVES[index as usize]);
            let root = unhex(ROOTS[size as usize]);
            verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
        }
        let consistency: [(u64, u64, &[&str]); 2] = [
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (first, second, want) in consistency {
            let proof = consistency_proof(&tree, first, second).unwrap();
            let want: Vec<Hash> = want.iter().map(|h| unhex(h)).collect();
            assert_eq!(proof, want, "consistency {first} → {second}");
            let (r1, r2) = (unhex(ROOTS[first as usize]), unhex(ROOTS[second as usize]));
            verify_consistency(first, second, &r1, &r2, &proof).unwrap();
            // A rewritten past does not verify.
            let other = unhex(ROOTS[first as usize - 1]);
            assert!(verify_consistency(first, second, &other, &r2, &proof).is_err());
        }
    }

    /// MTH straight from RFC 9162 §2.1.1, on the leaf hashes.
    fn brute_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&brute_root(&leaves[..k]), &brute_root(&leaves[k..]))
            }
        }
    }

    /// PATH straight from RFC 9162 §2.1.3.1.
    fn brute_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = brute_path(m, &leaves[..k]);
            p.push(brute_root(&leaves[k..]));
            p
        } else {
            let mut p = brute_path(m - k, &leaves[k..]);
            p.push(brute_root(&leaves[..k]));
            p
        }
    }

    /// SUBPROOF straight from RFC 9162 §2.1.4.1.
    fn brute_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole {
                Vec::new()
            } else {
                vec![brute_root(leaves)]
            };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = brute_subproof(m, &leaves[..k], whole);
            p.push(brute_root(&leaves[k..]));
            p
        } else {
            let mut p = brute_subproof(m - k, &leaves[k..], false);
            p.push(brute_root(&leaves[..k]));
            p
        }
    }

    proptest! {
        #[test]
        fn proofs_agree_with_the_rfc_definitions(n in 1usize..70, a in 0usize..70, b in 0usize..70) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u32).to_be_bytes())).collect();
            let mut tree = MemoryTree::new();
            for leaf in &leaves {
                tree.push(*leaf);
            }
            prop_assert_eq!(tree.root(n as u64).unwrap(), brute_root(&leaves));
            let mut frontier = Frontier::new();
            leaves.iter().for_each(|leaf| frontier.push(*leaf));
            prop_assert_eq!(frontier.root(), brute_root(&leaves));
            let m = a % n;
            let proof = inclusion_proof(&tree, m as u64, n as u64).unwrap();
            prop_assert_eq!(&proof, &brute_path(m, &leaves));
            let root = brute_root(&leaves);
            prop_assert!(verify_inclusion(m as u64, n as u64, &leaves[m], &proof, &root).is_ok());
            // Any other leaf, index or root fails.
            let other = leaf_hash(b"other");
            prop_assert!(verify_inclusion(m as u64, n as u64, &other, &proof, &root).is_err());
            if n > 1 {
                let wrong = (m + 1) % n;
                prop_assert!(verify_inclusion(wrong as u64, n as u64, &leaves[m], &proof, &root).is_err()
                    || leaves[wrong] == leaves[m]);
            }

            let first = 1 + b % n;
            let proof = consistency_proof(&tree, first as u64, n as u64).unwrap();
            let expected = if first == n { Vec::new() } else { brute_subproof(first, &leaves, true) };
            prop_assert_eq!(&proof, &expected);
            let old = brute_root(&leaves[..first]);
            prop_assert!(verify_consistency(first as u64, n as u64, &old, &root, &proof).is_ok());
            if first < n {
                prop_assert!(verify_consistency(first as u64, n as u64, &other, &root, &proof).is_err());
                prop_assert!(verify_consistency(first as u64, n as u64, &old, &other, &proof).is_err());
                let mut short = proof.clone();
                short.pop();
                prop_assert!(verify_consistency(first as u64, n as u64, &old, &root, &short).is_err());
            }
        }

        #[test]
        fn completed_subtrees_match_the_memory_tree(n in 1usize..200) {
            let mut tree = MemoryTree::new();
            let mut store: std::collections::HashMap<(u32, u64), Hash> = Default::default();
            for i in 0..n {
                let leaf = leaf_hash(&(i as u64).to_be_bytes());
                let made = completed_subtrees(i as u64, leaf, |l, x| {
                    store.get(&(l, x)).copied().ok_or(ProofError::Store("missing".into()))
                }).unwrap();
                prop_assert_eq!(&made, &tree.push(leaf));
                for (l, x, h) in made {
                    store.insert((l, x), h);
                }
            }
        }
    }
}
