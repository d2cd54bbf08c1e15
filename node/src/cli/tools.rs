//! `pluis-node taxonomy` and `gen-data`: tools that need no node.

use std::path::Path;

use anyhow::Context;

use super::today;
use crate::config::load_taxonomy;
use crate::Config;

pub(super) fn taxonomy(config_path: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let file = match config_path {
        Some(path) => Config::load(path)?.taxonomy,
        None => None,
    };
    let taxonomy = load_taxonomy(file.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&taxonomy)?);
        return Ok(());
    }
    for domain in taxonomy.domains() {
        println!("{} — {}", domain.code, domain.label);
        for s in &domain.signals {
            println!(
                "  {:<30} {:>3} mo  {}: {}",
                s.code, s.retention_months, s.label, s.description
            );
        }
    }
    Ok(())
}

pub(super) fn gen_data(
    rows: u64,
    seed: u64,
    org: String,
    population: Option<u64>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let taxonomy = load_taxonomy(None)?;
    let options = crate::cli::gendata::GenOptions {
        rows,
        seed,
        org,
        population,
        today: today(),
    };
    match out {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            crate::cli::gendata::generate(&taxonomy, &options, &mut file)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => crate::cli::gendata::generate(&taxonomy, &options, &mut std::io::stdout().lock())
            .context("writing standard output")?,
    }
    Ok(())
}
