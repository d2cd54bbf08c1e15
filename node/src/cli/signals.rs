//! `pluis-node signals` and `forget`: what is stored, the expiry purge,
//! and erasure on request.

use std::path::Path;

use anyhow::bail;
use pluis_proto::identifier::{Bsn, SubjectKey};
use pluis_proto::pb;

use super::import::open_store;
use super::today;
use crate::Config;

pub(super) async fn signals(config_path: &Path, purge: bool, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let today = today();
    let (purged, counts) = match crate::ops::admin::connect(&config.data_dir).await {
        Some(mut admin) => {
            let reply = admin
                .signals(pb::SignalsRequest {
                    purge_expired: purge,
                })
                .await
                .map_err(|status| anyhow::anyhow!("the node: {}", status.message()))?
                .into_inner();
            let mut counts = crate::store::SignalCounts {
                purged_total: reply.purged_total,
                forgotten_total: reply.forgotten_total,
                ..Default::default()
            };
            for row in reply.signals {
                let domain = row
                    .domain
                    .parse()
                    .map_err(|e| anyhow::anyhow!("the node sent domain {:?}: {e}", row.domain))?;
                counts
                    .by_signal
                    .insert((domain, row.signal), (row.active, row.expired));
            }
            (reply.purged as usize, counts)
        }
        None => tokio::task::block_in_place(|| -> anyhow::Result<_> {
            let store = open_store(&config)?;
            let purged = if purge {
                store.purge_expired(today)?
            } else {
                0
            };
            Ok((purged, store.counts(today)?))
        })?,
    };
    if purge {
        tracing::info!(purged, "expired signals purged");
        if !json {
            println!("purged {purged} expired signals");
        }
    }
    if json {
        let rows: Vec<serde_json::Value> = counts
            .by_signal
            .iter()
            .map(|((domain, signal), (active, expired))| {
                serde_json::json!({"domain": domain, "signal": signal, "active": active, "expired": expired})
            })
            .collect();
        let out = serde_json::json!({
            "signals": rows,
            "purged_total": counts.purged_total,
            "forgotten_total": counts.forgotten_total,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:<12} {:<32} {:>9} {:>9}",
        "domain", "signal", "active", "expired"
    );
    let (mut active, mut expired) = (0, 0);
    for ((domain, signal), (a, e)) in &counts.by_signal {
        println!("{:<12} {:<32} {:>9} {:>9}", domain.code(), signal, a, e);
        active += a;
        expired += e;
    }
    println!("{:<12} {:<32} {:>9} {:>9}", "total", "", active, expired);
    println!(
        "purged for expiry so far: {}; erased on request so far: {}",
        counts.purged_total, counts.forgotten_total
    );
    Ok(())
}

pub(super) async fn forget(
    config_path: &Path,
    bsn: Option<String>,
    key: Option<String>,
    local_ref: Option<String>,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let by = match (&bsn, &key, &local_ref) {
        (Some(_), _, _) => "bsn",
        (_, Some(_), _) => "key",
        (_, _, Some(_)) => "local_ref",
        _ => bail!("give --bsn, --key or --local-ref"),
    };
    let erased = match crate::ops::admin::connect(&config.data_dir).await {
        Some(mut admin) => {
            use pb::forget_request::Who;
            let who = match (bsn, key, local_ref) {
                (Some(bsn), _, _) => Who::Bsn(bsn),
                (_, Some(key), _) => Who::Key(key),
                (_, _, Some(local_ref)) => Who::LocalRef(local_ref),
                _ => bail!("give --bsn, --key or --local-ref"),
            };
            admin
                .forget(pb::ForgetRequest { who: Some(who) })
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?
                .into_inner()
                .erased as usize
        }
        None => tokio::task::block_in_place(|| -> anyhow::Result<usize> {
            let store = open_store(&config)?;
            let actor = format!("operator of {} (pluis-node forget)", config.org);
            Ok(match (bsn, key, local_ref) {
                (Some(bsn), _, _) => {
                    store.forget_key(&SubjectKey::Bsn(Bsn::parse(&bsn)?), &actor)?
                }
                (_, Some(key), _) => {
                    store.forget_key(&SubjectKey::parse(&key, today())?, &actor)?
                }
                (_, _, Some(local_ref)) => store.forget_local_ref(&local_ref, &actor)?,
                _ => bail!("give --bsn, --key or --local-ref"),
            })
        })?,
    };
    // Logged with how many and by which kind of key, never the key itself.
    tracing::info!(erased, by, "forget: signals erased on request");
    println!("erased {erased} signals");
    Ok(())
}
