//! The node's audit log: appends made durable in groups, checkpoints
//! signed only over durable entries, receipts, and the check at start.
//!
//! Entries live in the store's log files ([`Store::append_audit`], and
//! the business writes that append with their entry). Here:
//! * [`AuditLog::durable`] waits until everything appended so far is on
//!   disk; concurrent callers share one fsync (group commit), so logging
//!   every exchange does not cost an fsync each;
//! * [`AuditLog::checkpoint`] signs a C2SP checkpoint over the *durable*
//!   entries only, so a crash can never make the node sign two
//!   checkpoints of the same size with different roots;
//! * [`AuditLog::open`] refuses to run a node whose log (rehashed entry
//!   by entry when the store opened) does not match its last signed
//!   checkpoint.

pub(crate) mod refusals;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pluis_proto::log::merkle;
use pluis_proto::log::{self, Checkpoint, NoteError, NoteSigner, NoteVerifier};
use pluis_proto::pb;
use rayon::prelude::*;

use crate::store::{Store, StoreError};

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing or a stored checkpoint failed.
    #[error("audit log: {0}")]
    Note(#[from] NoteError),
    /// The stored log does not match what this node signed.
    #[error("audit log: {0}; refusing to sign more checkpoints over it")]
    Inconsistent(String),
    /// A Merkle computation failed (a subtree hash missing).
    #[error("audit log: {0}")]
    Proof(#[from] merkle::ProofError),
}

/// A node's audit log.
pub struct AuditLog {
    store: Arc<Store>,
    signer: NoteSigner,
    actor: String,
    /// Entries known to be on disk.
    durable: AtomicU64,
    sync_lock: Mutex<()>,
    /// Where async callers of [`AuditLog::durable`] wait their turn.
    async_turn: tokio::sync::Mutex<()>,
    /// The latest checkpoint signed: (size, note).
    latest: Mutex<Option<(u64, String)>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.signer.name())
            .finish()
    }
}

/// The verifier key of the node whose data is in `data_dir`, making the
/// data directory and its storage key if they do not exist yet (as the
/// node's first start would). Works while the node runs: it reads only
/// the key file.
pub fn log_verifier(
    data_dir: &std::path::Path,
    consortium: &str,
    org: &str,
) -> Result<NoteVerifier, AuditError> {
    crate::private_files::create_dir(data_dir).map_err(|error| {
        AuditError::Store(StoreError::DataDir {
            path: data_dir.to_owned(),
            error,
        })
    })?;
    let vault = crate::store::vault::Vault::open(data_dir, true).map_err(StoreError::from)?;
    Ok(signer(&vault.log_seed(), consortium, org)?.verifier())
}

/// The signer of `org`'s log in `consortium`, from the node's store key.
pub fn signer(seed: &[u8; 32], consortium: &str, org: &str) -> Result<NoteSigner, NoteError> {
    NoteSigner::from_seed(&log::origin(consortium, org), seed)
}

impl AuditLog {
    /// Opens the log of the node `actor` (its SPIFFE id) and checks it:
    /// the tree, rebuilt from every entry when the store opened, must
    /// match the last signed checkpoint.
    pub fn open(store: Arc<Store>, signer: NoteSigner, actor: String) -> Result<Self, AuditError> {
        // The store read every entry back at open, checked each against
        // its frame and rebuilt the tree from them.
        let size = store.audit_size()?;
        let verifier = signer.verifier();
        // Every checkpoint auditors are served (the latest among them)
        // must be this node's own signature over these very entries.
        let stored = store.checkpoints(1..=u64::MAX)?;
        let bad = stored.par_iter().find_map_any(|(signed_size, note)| {
            let checked = verifier
                .open(note)
                .map_err(|e| {
                    format!("the stored checkpoint at size {signed_size} does not verify: {e}")
                })
                .and_then(|text| {
                    Checkpoint::parse(text).map_err(|e| {
                        format!("the stored checkpoint at size {signed_size} does not parse: {e}")
                    })
                })
                .and_then(|c| {
                    if c.size != *signed_size || c.size > size {
                        return Err(format!(
                            "a checkpoint was signed over {} entries, {size} are stored",
                            c.size
                        ));
                    }
                    match merkle::root(store.audit_subtrees(), c.size) {
                        Ok(root) if root == c.root => Ok(()),
                        _ => Err(format!(
                            "the first {} entries do not match the checkpoint signed over them",
                            c.size
                        )),
                    }
                });
            checked.err()
        });
        if let Some(why) = bad {
            return Err(AuditError::Inconsistent(why));
        }
        // The latest is among those checked above.
        let latest = store.last_checkpoint()?;
        Ok(AuditLog {
            store,
            signer,
            actor,
            // Whatever was read back at open is on disk.
            durable: AtomicU64::new(size),
            sync_lock: Mutex::new(()),
            async_turn: tokio::sync::Mutex::new(()),
            latest: Mutex::new(latest),
        })
    }

    /// The verifier key of this log (`name+id+base64`).
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// This node's own SPIFFE id, the actor of its own entries.
    pub fn own_id(&self) -> &str {
        &self.actor
    }

    /// The SPIFFE id of `org`'s node in this node's consortium.
    pub fn peer_id(&self, org: &str) -> String {
        pluis_proto::SpiffeId::new(self.consortium(), org, pluis_proto::Role::Node)
            .map_or_else(|_| format!("org {org}"), |id| id.to_string())
    }

    fn consortium(&self) -> &str {
        // The origin is `pluis/<consortium>/<org>`.
        self.signer.name().split('/').nth(1).unwrap_or("")
    }

    /// A new entry of `kind`, timed now, by this node.
    pub fn entry(&self, kind: pb::audit_entry::Kind) -> pb::AuditEntry {
        pb::AuditEntry {
            time_unix_ms: self.store.now_ms(),
            kind: kind as i32,
            actor: self.actor.clone(),
            ..Default::default()
        }
    }

    /// Appends `entry` and waits until it is durable; returns its index.
    pub async fn record(self: &Arc<Self>, entry: &pb::AuditEntry) -> Result<u64, AuditError> {
        // An append is a few positional writes into the page cache.
        let index = self.store.append_audit(entry)?;
        self.durable().await?;
        Ok(index)
    }

    /// Waits until every entry appended so far is on disk: see
    /// [`AuditLog::durable_blocking`], here off the async runtime.
    pub async fn durable(self: &Arc<Self>) -> Result<(), AuditError> {
        let target = self.store.audit_size()?;
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        // Async callers queue here, where waking is cheap; one at a time
        // goes on to a blocking thread (and to the sync lock).
        let _turn = self.async_turn.lock().await;
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.durable_blocking())
            .await
            .map_err(|_| AuditError::Inconsistent("sync task failed".into()))?
    }

    /// Blocks until every entry appended so far is on disk. Callers that
    /// arrive while a sync runs share the next one (group commit, with
    /// no timer: under load the group is whoever came during the last
    /// sync).
    pub fn durable_blocking(&self) -> Result<(), AuditError> {
        let target = self.store.audit_size()?;
        let _turn = crate::lock(&self.sync_lock);
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let upto = self.store.audit_size()?;
        self.store.sync_log()?;
        self.durable.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// The newest checkpoint over the durable entries, signed now if the
    /// log grew since the last one.
    pub fn checkpoint(&self) -> Result<(u64, String), AuditError> {
        let mut latest = crate::lock(&self.latest);
        let size = self.durable.load(Ordering::Acquire);
        if let Some((signed, note)) = latest.as_ref() {
            if *signed >= size {
                return Ok((*signed, note.clone()));
            }
        }
        let note = self.signer.sign(&self.checkpoint_at(size)?.to_text())?;
        self.store.store_checkpoint(size, &note)?;
        *latest = Some((size, note.clone()));
        Ok((size, note))
    }

    /// The (unsigned) checkpoint over the first `size` entries, timed now.
    fn checkpoint_at(&self, size: u64) -> Result<Checkpoint, AuditError> {
        Ok(Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root: merkle::root(self.store.audit_subtrees(), size)?,
            extensions: vec![format!("time {}", self.store.now_ms())],
        })
    }

    /// A signed receipt for the exchange logged at `index`: a checkpoint
    /// over the durable entries (which must cover `index`) with the
    /// exchange's receipt line, one signature; kept as a checkpoint too.
    pub fn receipt(
        &self,
        exchange_id: &[u8],
        request_digest: &log::Hash,
        response_digest: &log::Hash,
        index: u64,
    ) -> Result<pb::Receipt, AuditError> {
        let size = self.durable.load(Ordering::Acquire);
        if size <= index {
            return Err(AuditError::Inconsistent(format!(
                "entry {index} is not durable yet; no receipt for it"
            )));
        }
        let checkpoint = self.checkpoint_at(size)?;
        let receipt = log::sign_receipt(
            &self.signer,
            exchange_id,
            request_digest,
            response_digest,
            index,
            &checkpoint,
        )?;
        self.store.store_checkpoint(size, &receipt.checkpoint)?;
        Ok(receipt)
    }

    /// The store, for reading entries and proofs.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Entries known durable.
    pub fn durable_size(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}
