//! # pluis-proto — the Pluis protocol, without I/O
//!
//! Pluis lets partner organisations learn which *life domains* (safety,
//! education, health, social, finances, housing, youth care) have signals
//! about the same person, without any organisation handing over a record or
//! a raw identifier. This crate is what both ends of every connection share:
//!
//! * [`pb`]: the generated gRPC types of `pluis.proto` (package `pluis.v1`):
//!   `Partner` (node to node), `Coordinator` (client to own node) and
//!   `Audit` (auditor to node), over mutual TLS; and `Admin` (an
//!   operator's import, reload and erasure on the node's own machine,
//!   over a Unix socket only);
//! * [`identity`]: the SPIFFE identities in certificates
//!   (`spiffe://<consortium>/org/<org>/<role>`) on which every call is
//!   authorised, the [`OrgId`] they carry, certificate serials and the
//!   CRLs that revoke them;
//! * [`identifier`]: person keys (BSN with elfproef, surname + initial +
//!   date of birth, given name), normalised to canonical bytes;
//! * [`families`]: the typo-tolerant key families a person yields
//!   (spelling, sound, date part, …), their tiers and reasons;
//! * [`limits`]: the bound of every field a caller sends, checked first;
//! * [`taxonomy`]: life domains and signal codes;
//! * [`oprf`]: RFC 9497 OPRF (ristretto255-SHA512) for epochs, blinding
//!   and evaluation;
//! * [`table`]: tags, sealed labels, flags and bucket prefixes;
//! * [`exchange`]: the requester's side of an exchange without I/O — its
//!   nouns ([`exchange::ExchangeId`], [`exchange::Epoch`]), the steps
//!   (blind, unblind, ask for buckets, open labels, the digests both sides
//!   log) and their order ([`exchange::Sequence`]: which batch under which
//!   epoch, which table call and how many entries it may bring), which
//!   the node only moves bytes for; a `Pair` test drives it against an
//!   in-memory responder;
//! * [`log`]: the audit log's format: RFC 9162 Merkle proofs, C2SP signed
//!   checkpoints (Ed25519), receipts, and offline verification.
//!
//! The matching protocol is a labelled OPRF-PSI (RFC 9497,
//! ristretto255-SHA512). A responder R keeps an OPRF key per epoch and
//! publishes, per epoch, a table of `(tag, label)` pairs: for every key `y`
//! it holds, `o = OPRF(k_R, y)`, `tag = HKDF(o, "pluis/tag")[..16]` and
//! `label = AEAD(HKDF(o, "pluis/label"), flags)`. A requester Q blinds its
//! own keys, has R evaluate them (`Partner.Evaluate`, policy-checked and
//! logged), unblinds to `o`, fetches the table bucket that starts with its
//! tag's prefix (`Partner.GetTable`) and opens the labels whose tag equals
//! its own. R learns how many keys Q asked about and the bucket prefixes; Q
//! learns R's allowed flags for persons it already knows. Every exchange is
//! logged on both sides in a signed, append-only Merkle log (`Audit`).
//!
//! Nothing here opens a socket, a file or a runtime: node and client move
//! the bytes; the protocol's rules live here, where they can be unit-tested.

#[cfg(feature = "grpc")]
pub mod codec;
pub mod exchange;
pub mod families;
pub mod identifier;
pub mod identity;
pub mod limits;
pub mod log;
pub mod oprf;
pub mod pb;
pub mod table;
pub mod taxonomy;

pub use identity::{IdentityError, OrgId, RevocationList, Role, Serial, SpiffeId};

/// Lowercase hex of `bytes`: exchange ids, digests and key ids in logs,
/// JSON and key strings.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
