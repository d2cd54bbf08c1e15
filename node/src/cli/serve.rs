//! `pluis-node serve`, `reload` and `pubkey`: the node's life and its
//! identity, and the signals (SIGTERM, Ctrl-C) that end it.

use std::path::Path;

use anyhow::bail;
use pluis_proto::pb::admin_client::AdminClient;
use pluis_proto::{pb, Role};

use crate::{Config, Node};

pub(super) async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let mut node = Node::new(config)?.reload_on_sighup();
    let listener = node.bind().await?;
    let metrics = node.bind_metrics()?;
    // Before the address is printed: a script may stop the node as soon
    // as it reads it.
    let stop = shutdown_signal()?;
    // Stable lines on stdout, for scripts and test harnesses that bind
    // port 0 and need to know the port: first the gRPC address, then the
    // metrics address if there is one.
    println!("listening on https://{}", listener.local_addr()?);
    if let Some(addr) = metrics {
        println!("metrics on http://{addr}/metrics");
    }
    node.serve(listener, stop).await?;
    Ok(())
}

/// A client of the node serving `config`'s data directory, or why there
/// is none.
pub(super) async fn admin_of(
    config: &Config,
) -> anyhow::Result<AdminClient<tonic::transport::Channel>> {
    match crate::ops::admin::connect(&config.data_dir).await {
        Some(admin) => Ok(admin),
        None => bail!(
            "no node is serving {} (nothing answers on {}); a node reads its config when it starts",
            config.data_dir.display(),
            crate::ops::admin::socket_path(&config.data_dir).display()
        ),
    }
}

pub(super) async fn reload(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let mut admin = admin_of(&config).await?;
    let reply = admin
        .reload(pb::ReloadRequest {})
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    println!(
        "policy loaded: sha256 {} ({})",
        pluis_proto::hex(&reply.config_sha256),
        reply.detail
    );
    Ok(())
}

pub(super) fn pubkey(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let tls = &config.tls;
    let identity = crate::tls::TlsIdentity::load(&tls.ca, &tls.cert, &tls.key, Role::Node)?;
    let id = identity.id();
    let key = crate::audit::log_verifier(&config.data_dir, id.consortium(), id.org())?;
    println!("{key}");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT), both handlers installed now.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    let stop = pluis_transport::process::stop_requested()?;
    Ok(async move {
        let which = stop.await;
        tracing::info!("{which}: shutting down");
    })
}
