//! No personal data in logs: a node's whole log — import, serving,
//! answering a partner, asking partners for its coordinator — holds no
//! identifier, name, birth date or case reference of its data.

use std::path::Path;
use std::time::Duration;

use pluis_client::dev::consortium::PURPOSE;
use pluis_proto::Role;
use pluis_tests::{any_port, gen_data, run_to_end, NodeProcess, TestConsortium};

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");

#[tokio::test(flavor = "multi_thread")]
async fn a_nodes_log_holds_no_personal_data() {
    let mut c = TestConsortium::setup("logs", &["police", "school"])
        .create()
        .await;
    // Synthetic police data; the school's (below) overlaps with it.
    let police = c.node("police").unwrap();
    let csv = police.config.with_file_name("signals.csv");
    gen_data(Path::new(NODE), &csv, "police", 400, 5, None);

    // A second police node, as a process with debug logs, on its own data.
    let config = c.config_copy("police", "process.toml", |file| {
        any_port(file);
        file.data_dir = "process-data".into();
    });
    let (ok, import_out, import_log) = run_to_end(
        Path::new(NODE),
        &[
            "import",
            "--config",
            config.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{import_log}");
    // The school's node knows some of the same children.
    let school = c.node("school").unwrap().config.clone();
    let school_csv = school.with_file_name("signals.csv");
    gen_data(Path::new(NODE), &school_csv, "school", 400, 5, Some(800));
    let (ok, _, stderr) = run_to_end(
        Path::new(NODE),
        &[
            "import",
            "--config",
            school.to_str().unwrap(),
            school_csv.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{stderr}");
    c.start_all().unwrap();
    let mut node = NodeProcess::spawn_with_env(
        Path::new(NODE),
        &config,
        &[("RUST_LOG", "info,pluis_node=debug")],
    )
    .expect("the node starts");
    // The police coordinator asks the process node, which asks the school's
    // node (evaluations, table buckets) and adds its own signals.
    let input = std::fs::read_to_string(&csv).unwrap();
    let subjects: Vec<String> = input
        .lines()
        .skip(1)
        .take(20)
        .filter_map(|l| {
            l.split(',')
                .next()
                .filter(|b| !b.is_empty())
                .map(|b| format!("bsn:{b}"))
        })
        .collect();
    let coordinator = c.identity("police", Role::Coordinator);
    let answer = pluis_client::coordinator::matching::query(
        &node.url,
        &coordinator,
        PURPOSE,
        pluis_client::coordinator::matching::subjects_from_args(&subjects),
    )
    .await
    .unwrap();
    assert!(
        answer.subjects.iter().any(|s| s.domain_count > 0),
        "the query found something"
    );
    let output = node.terminate().expect("the node stops");
    let log = format!(
        "{import_out}{import_log}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(log.contains("case query answered"), "{log}");

    let mut needles: Vec<String> = Vec::new();
    for line in input.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        for value in [f[0], f[1], f[3], f[6]] {
            if value.len() >= 5 {
                needles.push(value.to_owned());
                needles.push(value.to_lowercase());
            }
        }
    }
    for needle in &needles {
        assert!(
            !log.contains(needle.as_str()),
            "the log holds a value of the input"
        );
    }
    c.stop().await;
}
