//! C2SP `signed-note` with Ed25519 (ring), and the C2SP `tlog-checkpoint`
//! body it signs, so that transparency-log tools can read Pluis logs.
//!
//! A note is its text (lines ending in `\n`), a blank line, and one line
//! per signature: `— <name> <base64(key id ‖ signature)>`. The key id is
//! `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4]`; the verifier key is
//! written `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use super::merkle::Hash;
use crate::hex;

/// The algorithm byte of Ed25519 keys in signed notes.
const ALG_ED25519: u8 = 0x01;

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string that does not parse.
    #[error("key: {0}")]
    Key(&'static str),
    /// A note that is not well-formed.
    #[error("note: {0}")]
    Malformed(&'static str),
    /// No valid signature by the expected key.
    #[error("note: no valid signature by {0}")]
    Unsigned(String),
    /// A checkpoint body that is not well-formed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(name.as_bytes());
    context.update(&[b'\n', ALG_ED25519]);
    context.update(public);
    let mut id = [0u8; 4];
    id.copy_from_slice(&context.finish().as_ref()[..4]);
    id
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::Key(
            "a key name must be non-empty, without '+' or spaces",
        ));
    }
    Ok(())
}

/// A note signer: an Ed25519 key with a name.
pub struct NoteSigner {
    name: String,
    id: [u8; 4],
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{})", self.name, hex(&self.id))
    }
}

impl NoteSigner {
    /// The signer named `name` with the Ed25519 private key `seed`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| NoteError::Key("not an Ed25519 private key"))?;
        Ok(NoteSigner {
            name: name.to_owned(),
            id: key_id(name, pair.public_key().as_ref()),
            pair,
            seed: *seed,
        })
    }

    /// A signer from the Go `note` private key encoding,
    /// `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn from_private_key(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::Key("a private key starts with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest)?;
        let key = B64
            .decode(key)
            .map_err(|_| NoteError::Key("key is not base64"))?;
        let seed: [u8; 32] = match key.split_first() {
            Some((&ALG_ED25519, seed)) => seed
                .try_into()
                .map_err(|_| NoteError::Key("an Ed25519 private key is 32 bytes"))?,
            _ => return Err(NoteError::Key("not an Ed25519 key")),
        };
        let signer = NoteSigner::from_seed(name, &seed)?;
        if hex(&signer.id) != id {
            return Err(NoteError::Key("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The Go `note` private key encoding of this signer.
    pub fn private_key(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.seed);
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&self.id),
            B64.encode(key)
        )
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this signer's notes.
    pub fn verifier(&self) -> NoteVerifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            public,
        }
    }

    /// Signs `text` (lines ending in `\n`, none of them empty) and returns
    /// the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.pair.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(signature.as_ref());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end with a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError::Malformed("text must not contain a blank line"));
    }
    Ok(())
}

fn split_key(key: &str) -> Result<(&str, &str, &str), NoteError> {
    let mut parts = key.splitn(3, '+');
    let (Some(name), Some(id), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("expected NAME+ID+KEY"));
    };
    check_name(name)?;
    if id.len() != 8
        || !id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(NoteError::Key("key id must be 8 lowercase hex digits"));
    }
    Ok((name, id, rest))
}

/// A note verifier: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    public: [u8; 32],
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.public);
        write!(f, "{}+{}+{}", self.name, hex(&self.id), B64.encode(key))
    }
}

impl std::str::FromStr for NoteVerifier {
    type Err = NoteError;

    /// Parses `<name>+<hex id>+<base64(0x01 ‖ public key)>`.
    fn from_str(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(vkey.trim())?;
        let key = B64
            .decode(key)
            .map_err(|_| NoteError::Key("key is not base64"))?;
        let public: [u8; 32] = match key.split_first() {
            Some((&ALG_ED25519, public)) => public
                .try_into()
                .map_err(|_| NoteError::Key("an Ed25519 public key is 32 bytes"))?,
            _ => return Err(NoteError::Key("not an Ed25519 key")),
        };
        let computed = key_id(name, &public);
        if hex(&computed) != id {
            return Err(NoteError::Key("key id does not match the key"));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            id: computed,
            public,
        })
    }
}

impl NoteVerifier {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that `note` carries a valid signature by this key and returns
    /// its text. Signatures by other keys are ignored.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note
            .find("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        check_text(text)?;
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature lines must end with a newline",
            ));
        }
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(NoteError::Malformed(
                    "a signature line starts with an em dash",
                ));
            };
            let (name, blob) = rest.rsplit_once(' ').ok_or(NoteError::Malformed(
                "a signature line is '— NAME SIGNATURE'",
            ))?;
            if name != self.name {
                continue;
            }
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if blob.len() != 4 + 64 || blob[..4] != self.id {
                continue;
            }
            if self.verify_bytes(text.as_bytes(), &blob[4..]).is_ok() {
                return Ok(text);
            }
        }
        Err(NoteError::Unsigned(self.to_string()))
    }

    /// Checks an Ed25519 signature over `message`.
    fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> Result<(), NoteError> {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .map_err(|_| NoteError::Unsigned(self.to_string()))
    }
}

/// A C2SP `tlog-checkpoint`: origin, tree size, root hash, and extension
/// lines (Pluis adds `time <unix ms>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (`pluis/<consortium>/<org>`).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// The RFC 9162 root of those entries.
    pub root: Hash,
    /// Extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint's text, to be signed.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint's text.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |what: &str| NoteError::Checkpoint(what.to_owned());
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad("tree size is not a decimal number"));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| bad("tree size out of range"))?;
        let root = B64
            .decode(lines.next().ok_or_else(|| bad("no root hash line"))?)
            .ok()
            .and_then(|r| <Hash>::try_from(r.as_slice()).ok())
            .ok_or_else(|| bad("root hash is not 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions: lines.map(str::to_owned).collect(),
        })
    }

    /// The `time` extension, in Unix milliseconds, if present.
    pub fn time_ms(&self) -> Option<i64> {
        self.extensions
            .iter()
            .find_map(|l| l.strip_prefix("time ")?.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note of the Go reference implementation
    // (golang.org/x/mod/sumdb/note).
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_reference_note_verifies_and_signing_reproduces_it() {
        let verifier: NoteVerifier = VKEY.parse().unwrap();
        assert_eq!(verifier.to_string(), VKEY);
        assert_eq!(verifier.open(NOTE).unwrap(), TEXT);
        let signer = NoteSigner::from_private_key(SKEY).unwrap();
        assert_eq!(signer.verifier(), verifier);
        assert_eq!(signer.private_key(), SKEY);
        // Ed25519 is deterministic: the same bytes, byte for byte.
        assert_eq!(signer.sign(TEXT).unwrap(), NOTE);
    }

    #[test]
    fn altered_notes_and_keys_are_refused() {
        let verifier: NoteVerifier = VKEY.parse().unwrap();
        let altered = NOTE.replace("cryptography", "cryptographY");
        assert!(matches!(
            verifier.open(&altered),
            Err(NoteError::Unsigned(_))
        ));
        let other = NoteSigner::from_seed("PeterNeumann", &[7; 32]).unwrap();
        let forged = other.sign(TEXT).unwrap();
        assert!(matches!(
            verifier.open(&forged),
            Err(NoteError::Unsigned(_))
        ));
        assert!(verifier.open(TEXT).is_err(), "no signatures");
        for bad in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3",
        ] {
            assert!(bad.parse::<NoteVerifier>().is_err(), "{bad}");
        }
        let signer = NoteSigner::from_private_key(SKEY).unwrap();
        assert!(signer.sign("no newline").is_err());
        assert!(signer.sign("a\n\nb\n").is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_strict_parsing() {
        let checkpoint = Checkpoint {
            origin: "pluis/demo/police".into(),
            size: 42,
            root: [9; 32],
            extensions: vec!["time 1764380000000".into()],
        };
        let text = checkpoint.to_text();
        assert_eq!(
            text,
            "pluis/demo/police\n42\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\ntime 1764380000000\n"
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), checkpoint);
        assert_eq!(checkpoint.time_ms(), Some(1_764_380_000_000));
        for bad in [
            "",
            "o\n042\nCQ==\n",
            "o\n-1\n",
            "o\n1\nnot base64\n",
            "o\n1\nCQ==\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
