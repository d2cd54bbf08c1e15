//! The case coordinator's commands: `pluis status`, `pluis match` and
//! `pluis screen`, each a question to the coordinator's own node over
//! mutual TLS with the coordinator's certificate.

pub mod matching;
pub mod screen;
pub mod status;

use pluis_proto::Role;

use crate::cli::{MatchArgs, ScreenArgs, StatusArgs};

/// `pluis status`: the node, its version, uptime and partners.
pub async fn run_status(args: StatusArgs) -> anyhow::Result<()> {
    let identity = args.tls.load(Role::Coordinator)?;
    let status = status::fetch(&args.node, &identity).await?;
    print!("{}", status::render(&status));
    Ok(())
}

/// `pluis match`: which life domains show signals for a case's persons.
pub async fn run_match(args: MatchArgs) -> anyhow::Result<()> {
    let identity = args.tls.load(Role::Coordinator)?;
    let mut all = matching::subjects_from_args(&args.subjects);
    if let Some(case) = &args.case {
        all.extend(matching::subjects_from_case_file(case)?);
    }
    let response = matching::query(&args.node, &identity, &args.purpose, all).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&matching::to_json(&args.purpose, &response))?
        );
    } else {
        print!("{}", matching::render(&response));
    }
    Ok(())
}

/// `pluis screen`: this organisation's cases that reach a number of domains.
pub async fn run_screen(args: ScreenArgs) -> anyhow::Result<()> {
    let identity = args.tls.load(Role::Coordinator)?;
    let response = screen::run_reporting(
        &args.node,
        &identity,
        &args.purpose,
        args.min_domains,
        |p| {
            eprintln!(
                "screening {} keys: {} of {} partners done",
                p.keys, p.partners_done, p.partners
            )
        },
    )
    .await?;
    match &args.out {
        Some(path) => {
            screen::write_csv(path, &response)?;
            println!(
                "{} cases written to {}",
                response.hits.len(),
                path.display()
            );
        }
        None => print!("{}", screen::render(&response)),
    }
    Ok(())
}
