//! The node's storage secrets: how identifiers are kept at rest.
//!
//! A 32-byte master key is created from the OS RNG at first start, in
//! `data_dir/storage.key` with mode 0600. Two keys are derived from it with
//! HKDF-SHA256, one per job, so neither use can weaken the other:
//! * a sealing key (AES-256-GCM): normalised identifiers and local case
//!   references are stored only sealed, each under a fresh random nonce and
//!   bound to their record by associated data;
//! * an index key (HMAC-SHA256): keyed digests of identifiers let the store
//!   find and de-duplicate records without holding them in clear.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{self, HKDF_SHA256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The file that holds the master storage key.
pub const KEY_FILE: &str = "storage.key";

/// Why the storage secrets are unusable.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file could not be read or created.
    #[error("storage key {path}: {error}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The key file is not 32 bytes.
    #[error("storage key {path}: must hold exactly 32 bytes, holds {len}")]
    Length {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The OS random generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// A sealed value did not open: corrupted, or sealed under another key.
    #[error(
        "a sealed value does not open under this node's storage key (corrupted, or another key)"
    )]
    Open,
}

/// A keyed digest (HMAC-SHA256) of an identifier or reference.
pub type IndexDigest = [u8; 32];

/// Sealing and indexing keys, derived from the master storage key.
pub struct Vault {
    log_seed: [u8; 32],
    seal: LessSafeKey,
    index: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(…)")
    }
}

struct KeyLen(usize);

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(master: &hkdf::Prk, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // HKDF-Expand to 32 bytes cannot fail: the limit is 255 * 32 bytes.
    if let Ok(okm) = master.expand(&[info], KeyLen(32)) {
        let _ = okm.fill(&mut out);
    }
    out
}

impl Vault {
    /// Opens `data_dir/storage.key`, creating it (mode 0600) if `create`.
    pub fn open(data_dir: &Path, create: bool) -> Result<Vault, VaultError> {
        let path = data_dir.join(KEY_FILE);
        let io = |error| VaultError::Io {
            path: path.clone(),
            error,
        };
        let rng = SystemRandom::new();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut key = [0u8; 32];
                rng.fill(&mut key).map_err(|_| VaultError::Random)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path).map_err(io)?;
                file.write_all(&key).map_err(io)?;
                file.sync_all().map_err(io)?;
                key.to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        let master: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Length {
                path: path.clone(),
                len: bytes.len(),
            })?;
        Ok(Vault::from_master(&master, rng))
    }

    fn from_master(master: &[u8; 32], rng: SystemRandom) -> Vault {
        let prk = hkdf::Salt::new(HKDF_SHA256, b"pluis/store/v1").extract(master);
        let seal_key = derive(&prk, b"pluis/store/seal");
        let index_key = derive(&prk, b"pluis/store/index");
        // 32 bytes is exactly AES-256's key length, so this cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM, &seal_key)
            .unwrap_or_else(|_| unreachable!("AES-256 takes a 32-byte key"));
        Vault {
            log_seed: derive(&prk, b"pluis/log/ed25519"),
            seal: LessSafeKey::new(unbound),
            index: hmac::Key::new(hmac::HMAC_SHA256, &index_key),
            rng,
        }
    }

    /// The Ed25519 private key (seed) that signs the audit log's
    /// checkpoints and receipts, derived from the storage key so that it
    /// lives and dies with the node's data.
    pub fn log_seed(&self) -> [u8; 32] {
        self.log_seed
    }

    /// 32 fresh bytes from the OS RNG.
    pub fn random_seed(&self) -> Result<[u8; 32], VaultError> {
        let mut seed = [0u8; 32];
        self.rng.fill(&mut seed).map_err(|_| VaultError::Random)?;
        Ok(seed)
    }

    /// The keyed digest of `value` in domain `what` (e.g. "key", "ref").
    pub fn index(&self, what: &str, value: &[u8]) -> IndexDigest {
        let mut ctx = hmac::Context::with_key(&self.index);
        ctx.update(what.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Seals `plain`, bound to `context` (the record it belongs to):
    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + aead::MAX_TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .seal
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| VaultError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`Vault::seal`] sealed under the same `context`.
    pub fn open_sealed(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return Err(VaultError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(context), &mut body)
            .map_err(|_| VaultError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_with_the_same_context_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path(), true).unwrap();
        let sealed = vault.seal(b"record-1", b"bsn:123456782").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"123456782"));
        assert_eq!(
            vault.open_sealed(b"record-1", &sealed).unwrap(),
            b"bsn:123456782"
        );
        assert!(vault.open_sealed(b"record-2", &sealed).is_err());
        let other = tempfile::tempdir().unwrap();
        let other = Vault::open(other.path(), true).unwrap();
        assert!(other.open_sealed(b"record-1", &sealed).is_err());
        // Same key file, same derived keys.
        let again = Vault::open(dir.path(), false).unwrap();
        assert_eq!(
            again.open_sealed(b"record-1", &sealed).unwrap(),
            b"bsn:123456782"
        );
        assert_eq!(again.index("key", b"x"), vault.index("key", b"x"));
        assert_ne!(vault.index("key", b"x"), vault.index("ref", b"x"));
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private_and_never_silently_recreated() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Vault::open(dir.path(), true).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(Vault::open(dir.path(), false).is_err());
        std::fs::write(dir.path().join(KEY_FILE), [1u8; 5]).unwrap();
        let err = Vault::open(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("holds 5"), "{err}");
    }
}
