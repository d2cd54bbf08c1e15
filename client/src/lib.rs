//! # pluis-client — the `pluis` command
//!
//! What people other than a node's operator use: case coordinators
//! (`pluis status`, `pluis match`, `pluis screen`), auditors (`pluis
//! audit`), and everyone trying Pluis out (`pluis certs init`, `pluis
//! demo`). Each subcommand is one module; `main.rs` only parses arguments.

pub mod audit;
pub mod certs;
pub mod connect;
#[cfg(feature = "local")]
pub mod consortium;
#[cfg(feature = "local")]
pub mod demo;
pub mod matching;
pub mod report;
pub mod screen;
pub mod status;

/// `pluis demo`: runs it, in a build with the local consortium (the
/// default `local` feature); a coordinator's or auditor's build without
/// a node says so.
pub async fn run_demo(keep: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    #[cfg(feature = "local")]
    {
        demo::run(keep).await
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = keep;
        anyhow::bail!("this pluis was built without the local consortium (cargo feature `local`), so it cannot run the demo")
    }
}
