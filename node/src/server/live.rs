//! The part of a node that can change while it serves: its policy, peers,
//! TLS material and CRLs, all read from the config file.
//!
//! A [`Live`] is made whole and checked before it is used: config parsed,
//! certificate and key loaded (the same SPIFFE id as at start), CRLs
//! checked against the CA, peer channels made. A reload swaps the whole of
//! it in one step, so a request sees the old policy or the new one, never
//! part of each. Requests take their `Live` once and keep it: an exchange
//! in flight finishes under the policy it started with, on the
//! connections it started on.
//!
//! What a running node cannot change — its identity, listen address,
//! data directory, epochs, metrics address — a reload refuses, naming the
//! key ([`Config::check_reload`]); the reload itself is [`crate::server::reload`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pluis_proto::pb;
use pluis_proto::taxonomy::Taxonomy;
use pluis_proto::{OrgId, Role};
use tokio_rustls::TlsAcceptor;

use crate::audit::AuditLog;
use crate::config::{load_taxonomy, Config};
use crate::policy::View;
use crate::policy::{Assessment, PeerPolicy, Purpose};
use crate::requester::batch::Batches;
use crate::requester::fanout::Partners;
use crate::requester::peers::Peers;
use crate::server::error::NodeError;
use crate::tls::{OnRefusal, TlsIdentity};

/// A node's policy, peers and TLS material, as one config file gives them.
pub struct Live {
    /// The config it was made from.
    pub config: Config,
    /// This node's certificate, key, CA and CRLs.
    pub identity: TlsIdentity,
    /// The partner nodes, with channels made with this identity.
    pub peers: Peers,
    /// Per partner org, the case queries waiting for its next exchange.
    pub batches: BTreeMap<OrgId, Batches>,
    /// What each peer may ask of this node.
    pub policies: BTreeMap<OrgId, PeerPolicy>,
    /// The signal taxonomy in force.
    pub taxonomy: Arc<Taxonomy>,
    /// Accepts new connections with this identity and these CRLs.
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config", &self.config.source)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Live {
    /// Loads and checks everything `config` names. `on_refusal` hears of
    /// every client certificate the server refuses.
    pub fn load(config: Config, on_refusal: OnRefusal) -> Result<Live, NodeError> {
        let tls = &config.tls;
        let identity =
            TlsIdentity::load(&tls.ca, &tls.cert, &tls.key, Role::Node)?.with_crls(&tls.crls)?;
        if *identity.id().org() != config.org {
            return Err(NodeError::WrongOrg {
                path: tls.cert.clone(),
                id: identity.id().clone(),
                org: config.org.clone(),
            });
        }
        if !identity.revocations().is_empty() || !tls.crls.is_empty() {
            tracing::info!(crls = %identity.revocations().describe(), "certificate revocation lists checked");
        }
        let peers = Peers::new(&config.peers, &identity)?;
        let taxonomy = Arc::new(load_taxonomy(config.taxonomy.as_deref())?);
        let acceptor = TlsAcceptor::from(identity.server_config(Some(on_refusal))?);
        Ok(Live {
            batches: config
                .peers
                .iter()
                .map(|p| (p.org.clone(), Batches::default()))
                .collect(),
            policies: config
                .peers
                .iter()
                .map(|p| (p.org.clone(), p.policy.clone()))
                .collect(),
            identity,
            peers,
            taxonomy,
            acceptor,
            config,
        })
    }

    /// The partners to ask for a coordinator's question.
    pub fn partners(&self) -> Partners<'_> {
        Partners {
            peers: &self.peers,
            batches: &self.batches,
        }
    }

    /// The purposes this node's coordinators may ask for.
    pub fn purposes(&self) -> &[Purpose] {
        &self.config.purposes
    }

    /// The advice per number of life domains.
    pub fn assessment(&self) -> &Assessment {
        &self.config.assessment
    }

    /// The table views of the peers that may ask for anything at all.
    pub fn views(&self) -> Vec<View> {
        let views: BTreeSet<View> = self
            .policies
            .values()
            .filter(|p| !p.purposes.is_empty())
            .map(View::of)
            .collect();
        views.into_iter().collect()
    }

    /// The `policy loaded` audit entry for this config.
    pub fn policy_entry(&self, audit: &AuditLog, why: &str) -> pb::AuditEntry {
        pb::AuditEntry {
            request_digest: self.config.digest.to_vec(),
            detail: format!(
                "config sha256; {why}; peers={} purposes={} cert={} revoked={}",
                self.config.peers.len(),
                self.config.purposes.len(),
                self.identity.serial(),
                self.identity.revocations().len(),
            ),
            ..audit.entry(pb::audit_entry::Kind::PolicyLoaded)
        }
    }
}
