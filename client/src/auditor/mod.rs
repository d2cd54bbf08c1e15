//! The auditor's commands, `pluis audit …`: a node's signed checkpoint
//! ([`mod@checkpoint`]), its whole log to a bundle and a bundle verified
//! offline ([`bundle`]), a log shown as a table and a cross-check rendered
//! ([`mod@show`]), and a privacy officer's HTML page ([`report`]).
//! Verification never trusts the node; cross-checking two logs is
//! [`pluis_proto::log::crosscheck`].

pub mod bundle;
pub mod checkpoint;
pub mod report;
pub mod show;

use pluis_proto::Role;

pub use bundle::{export, read_bundle, verify, verify_file, Bundle, VerifiedFile, BUNDLE_FORMAT};
pub use checkpoint::{
    checkpoint, render_checkpoint, save_checkpoint, utc, CheckedCheckpoint, SavedCheckpoint,
};
pub use pluis_proto::log::{cross_check, kind_name, CrossCheck, Discrepancy};
pub use show::{entries_json, render_cross_check, render_entries, show, Filter};

use crate::cli::{AuditCommand, CheckpointArgs, CrossCheckArgs, ReportArgs, ShowArgs, VerifyArgs};
use crate::connect::TlsArgs;

/// `pluis audit …`.
pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Checkpoint(args) => run_checkpoint(args).await,
        AuditCommand::Export(args) => {
            let identity = args.tls.load(Role::Auditor)?;
            let entries = export(&args.node, &identity, &args.out).await?;
            println!("{entries} entries written to {}", args.out.display());
            Ok(())
        }
        AuditCommand::Verify(args) => run_verify(args),
        AuditCommand::CrossCheck(args) => run_cross_check(args),
        AuditCommand::Report(args) => run_report(args),
        AuditCommand::Show(args) => run_show(args).await,
    }
}

async fn run_checkpoint(args: CheckpointArgs) -> anyhow::Result<()> {
    let identity = args.tls.load(Role::Auditor)?;
    let checked = checkpoint(
        &args.node,
        &identity,
        args.pubkey.as_deref(),
        args.since.as_deref(),
    )
    .await?;
    print!("{}", render_checkpoint(&checked));
    if let Some(path) = args.save {
        save_checkpoint(&path, &checked)?;
        println!("saved to {}", path.display());
    }
    Ok(())
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let bundle = &args.bundle;
    let verified = verify_file(bundle, args.pubkey.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: verification FAILED: {e:#}", bundle.display()))?;
    println!(
        "{}: {} entries, {} signed checkpoints, root {}: verified{}",
        bundle.display(),
        verified.entries,
        verified.checkpoints,
        pluis_proto::hex(&verified.root),
        if args.pubkey.is_none() {
            " (against the key in the bundle; pin it with --pubkey)"
        } else {
            ""
        }
    );
    Ok(())
}

/// A bundle, verified against its own key: log, key, origin.
fn verified_bundle(
    path: &std::path::Path,
) -> anyhow::Result<(
    pluis_proto::log::VerifiedLog,
    pluis_proto::log::NoteVerifier,
    String,
)> {
    let bundle = read_bundle(path)?;
    let verified = verify(&bundle, None)
        .map_err(|e| anyhow::anyhow!("{}: verification FAILED: {e:#}", path.display()))?;
    let key = bundle.verifier_key.parse()?;
    Ok((verified, key, bundle.origin))
}

fn run_cross_check(args: CrossCheckArgs) -> anyhow::Result<()> {
    let (va, ka, oa) = verified_bundle(&args.a)?;
    let (vb, kb, ob) = verified_bundle(&args.b)?;
    let result = cross_check((&va, &ka), (&vb, &kb));
    print!("{}", render_cross_check(&result, &oa, &ob));
    if !result.discrepancies.is_empty() {
        anyhow::bail!("{} discrepancies", result.discrepancies.len());
    }
    Ok(())
}

fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    let mut logs = Vec::new();
    for path in &args.bundles {
        let (log, key, origin) = verified_bundle(path)?;
        logs.push(report::NodeLog {
            origin,
            verifier_key: key.to_string(),
            log,
        });
    }
    let out = &args.out;
    let html = report::render(&logs);
    std::fs::write(out, html).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    let flags = report::flags(&logs).len();
    println!(
        "report on {} logs written to {} ({flags} flags)",
        logs.len(),
        out.display()
    );
    Ok(())
}

async fn run_show(args: ShowArgs) -> anyhow::Result<()> {
    // From a node: export to a temporary bundle, then as from a file.
    let temp = tempfile::tempdir()?;
    let bundle = match (args.bundle, args.node) {
        (Some(bundle), _) => bundle,
        (None, Some(url)) => {
            let (Some(ca), Some(cert), Some(key)) = (args.ca, args.cert, args.key) else {
                anyhow::bail!(
                    "--node needs --ca, --cert and --key (or PLUIS_CA, PLUIS_CERT, PLUIS_KEY)"
                );
            };
            let identity = TlsArgs { ca, cert, key }.load(Role::Auditor)?;
            let path = temp.path().join("log.jsonl");
            export(&url, &identity, &path).await?;
            path
        }
        (None, None) => anyhow::bail!("give a bundle or --node URL"),
    };
    let since = args
        .since
        .map(|d| pluis_proto::identifier::parse_date("since", &d))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let filter = Filter {
        since,
        peer: args.peer,
        purpose: args.purpose,
    };
    // Verified first, then shown as read: any log, however large,
    // in bounded memory.
    show(
        &bundle,
        args.pubkey.as_deref(),
        &filter,
        args.json,
        &mut std::io::stdout().lock(),
    )
}
