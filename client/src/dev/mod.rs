//! For everyone trying Pluis out, and for the tests and benches: the dev
//! PKI (`pluis certs`), a whole consortium on this machine
//! ([`consortium`], feature `local`) and `pluis demo`.

pub mod certs;
#[cfg(feature = "local")]
pub mod consortium;
#[cfg(feature = "local")]
pub mod demo;
pub mod process;

use crate::cli::{CertsCommand, CertsInitArgs, CertsIssueArgs, CertsRevokeArgs, DemoArgs};

/// `pluis certs …`.
pub fn run_certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init(args) => init(args),
        CertsCommand::Issue(args) => issue(args),
        CertsCommand::Revoke(args) => revoke(args),
    }
}

fn init(args: CertsInitArgs) -> anyhow::Result<()> {
    let issued_dir = args.out.clone();
    let issued = certs::init(&certs::InitOptions {
        out: args.out,
        consortium: args.consortium,
        orgs: args.orgs,
        force: args.force,
    })?;
    println!(
        "CA: {} (key {})",
        issued.ca_cert.display(),
        issued.ca_key.display()
    );
    for leaf in issued.leaves {
        println!("{}: {}", leaf.id, leaf.cert.display());
    }
    println!("CRL (empty): {}", certs::crl_path(&issued_dir).display());
    Ok(())
}

fn issue(args: CertsIssueArgs) -> anyhow::Result<()> {
    let issued = certs::issue(&certs::IssueOptions {
        dir: args.dir,
        org: args.org,
        role: args.role,
        out: args.out,
    })?;
    println!(
        "{}: {} (key {})",
        issued.id,
        issued.cert.display(),
        issued.key.display()
    );
    Ok(())
}

fn revoke(args: CertsRevokeArgs) -> anyhow::Result<()> {
    let revoked = certs::revoke(&certs::RevokeOptions {
        dir: args.dir,
        serials: args.serial,
        certs: args.cert,
        reason: args.reason,
        crl: args.crl,
    })?;
    for (serial, id) in &revoked.added {
        match id {
            Some(id) => println!("revoked serial {serial} ({id})"),
            None => println!("revoked serial {serial}"),
        }
    }
    println!(
        "{}: CRL number {}, {} certificates revoked in all; reload the nodes that load it",
        revoked.crl.display(),
        revoked.number,
        revoked.total
    );
    Ok(())
}

/// `pluis demo`: runs it, in a build with the local consortium (the
/// default `local` feature); a coordinator's or auditor's build without
/// a node says so.
pub async fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    #[cfg(feature = "local")]
    {
        demo::run(args.keep, args.ui).await
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = args;
        anyhow::bail!("this pluis was built without the local consortium (cargo feature `local`), so it cannot run the demo")
    }
}
