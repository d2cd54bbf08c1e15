//! `pluis audit checkpoint`: a node's latest signed checkpoint, its
//! signature verified, and proven consistent with one saved earlier.

use std::path::Path;

use anyhow::{bail, Context};
use pluis_proto::hex;
use pluis_proto::log::{merkle, Checkpoint, NoteVerifier};
use pluis_proto::pb;
use pluis_proto::pb::audit_client::AuditClient;
use pluis_transport::status_detail;
use pluis_transport::tls::TlsIdentity;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

pub(super) fn client(url: &str, identity: &TlsIdentity) -> anyhow::Result<AuditClient<Channel>> {
    Ok(AuditClient::new(crate::connect::channel(url, identity)?))
}

pub(super) fn rpc(url: &str) -> impl Fn(tonic::Status) -> anyhow::Error + '_ {
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
