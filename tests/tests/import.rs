//! User story: a partner organisation loads its signals into its node —
//! all or nothing, repeatably, and without identifiers in clear on disk.

// Real node processes are waited for by the wall clock (a deadline for
// a port, a log line, a file), never to decide what a test asserts.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pluis_tests::{gen_data, run_to_end};

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");
const DEADLINE: Duration = Duration::from_secs(120);

/// A one-org node directory: dev PKI and config; returns the config path.
fn node_dir(dir: &Path) -> PathBuf {
    pluis_client::dev::certs::init(&pluis_client::dev::certs::InitOptions {
        out: dir.join("pki"),
        consortium: "imports".into(),
        orgs: vec!["police".into()],
        force: false,
    })
    .unwrap();
    let config = dir.join("pki/police/node.toml");
    let text =
        pluis_client::dev::consortium::node_config("police", "127.0.0.1:0".parse().unwrap(), &[]);
    std::fs::write(&config, text).unwrap();
    config
}

fn node(args: &[&str]) -> (bool, String, String) {
    run_to_end(Path::new(NODE), args, DEADLINE)
}

fn import(config: &Path, file: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["import", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    node(&args)
}

fn stored(config: &Path) -> u64 {
    pluis_tests::stored_signals(Path::new(NODE), config)
}

fn good_row(n: usize) -> String {
    // Valid BSNs: 8 digits and the check digit that passes the elfproef.
    let prefix = 10_000_000 + n as u32 * 7;
    let bsn = if let Some(check) = pluis_proto::identifier::elfproef_check_digit(prefix) {
        format!("{prefix}{check}")
    } else {
        String::new()
    };
    let (surname, initial, birth) = if bsn.is_empty() {
        ("Van der Berg", "K", "2012-03-04")
    } else {
        ("", "", "")
    };
    format!("{bsn},{surname},{initial},{birth},frequent_absence,2026-03-01,,school-ref-{n}\n")
}

const HEADER: &str = "bsn,surname,initial,birth_date,signal,registered_on,expires_on,local_ref\n";

#[test]
fn a_file_with_three_bad_rows_stores_nothing_and_names_exactly_those_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let mut csv = HEADER.to_owned();
    for line in 2..=25 {
        csv.push_str(&match line {
            7 => "123456789,,,,frequent_absence,2026-03-01,,r7\n".to_owned(),
            12 => "111222333,,,,skipping_class,2026-03-01,,r12\n".to_owned(),
            20 => ",Jansen,J,2011-02-30,frequent_absence,2026-03-01,,r20\n".to_owned(),
            _ => good_row(line),
        });
    }
    let file = dir.path().join("school.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, _, stderr) = import(&config, &file, &[]);
    assert!(!ok, "an import with bad rows must fail");
    let path = file.display().to_string();
    let reported: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{path}:")))
        .collect();
    assert_eq!(
        reported,
        [
            format!("{path}:7: bsn: fails the elfproef (11-check)"),
            format!("{path}:12: signal: unknown signal code \"skipping_class\" (see `pluis-node taxonomy`)"),
            format!("{path}:20: birth_date: no such date"),
        ]
    );
    assert!(
        stderr.contains("3 invalid rows; nothing was stored"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("123456789") && !stderr.contains("Jansen"),
        "no values in errors: {stderr}"
    );
    assert_eq!(stored(&config), 0);
}

#[test]
fn reimport_is_idempotent_replace_is_whole_and_skip_invalid_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let file = dir.path().join("a.csv");
    let rows: String = (0..30).map(good_row).collect();
    std::fs::write(&file, format!("{HEADER}{rows}")).unwrap();
    assert!(import(&config, &file, &[]).0);
    let first = stored(&config);
    assert!(first > 0);
    assert!(import(&config, &file, &[]).0);
    assert_eq!(stored(&config), first, "re-import adds nothing");

    let smaller = dir.path().join("b.csv");
    let rows: String = (0..5).map(good_row).collect();
    std::fs::write(&smaller, format!("{HEADER}{rows}")).unwrap();
    let (ok, stdout, stderr) = import(&config, &smaller, &["--replace"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("removed (replace)"), "{stdout}");
    assert_eq!(stored(&config), 5);

    let mixed = dir.path().join("c.jsonl");
    std::fs::write(
        &mixed,
        concat!(
            "{\"bsn\":\"111222333\",\"signal\":\"exhaustion\",\"registered_on\":\"2026-02-01\",\"local_ref\":\"x1\"}\n",
            "{\"bsn\":123456782,\"signal\":\"exhaustion\",\"registered_on\":\"2026-02-01\"}\n",
            "{\"bsn\":\"123456782\",\"signal\":\"exhaustion\",\"registered_on\":\"01-02-2026\"}\n",
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = import(&config, &mixed, &["--skip-invalid"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 invalid rows written to"), "{stdout}");
    assert_eq!(stored(&config), 7);
    let rejects = std::fs::read_to_string(dir.path().join("c.jsonl.rejects")).unwrap();
    assert!(
        rejects.starts_with("line,reason,row\n2,bsn: must be a string or null,"),
        "{rejects}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("c.jsonl.rejects"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Right to erasure, by BSN and by local reference.
    let c = config.to_str().unwrap();
    let (ok, stdout, _) = node(&["forget", "--config", c, "--bsn", "111-222-333"]);
    assert!(ok && stdout.contains("erased 1 signals"), "{stdout}");
    let (ok, stdout, _) = node(&["forget", "--config", c, "--local-ref", "school-ref-0"]);
    assert!(ok && stdout.contains("erased 1 signals"), "{stdout}");
    assert_eq!(stored(&config), 5);
}

#[test]
fn no_raw_identifier_or_name_is_anywhere_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let file = dir.path().join("gen.csv");
    gen_data(Path::new(NODE), &file, "police", 3000, 11, None);
    let (ok, _, stderr) = import(&config, &file, &[]);
    assert!(ok, "{stderr}");

    // Every distinct BSN, folded surname and local reference of the input.
    let input = std::fs::read_to_string(&file).unwrap();
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for line in input.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        for value in [f[0], f[1], f[6]] {
            if value.len() >= 5 {
                needles.push(value.as_bytes().to_vec());
                needles.push(value.to_lowercase().into_bytes());
            }
        }
        if !f[3].is_empty() {
            needles.push(f[3].as_bytes().to_vec()); // birth date, ISO
        }
    }
    needles.sort();
    needles.dedup();
    assert!(needles.len() > 1000, "the test must look for many values");

    let data_dir = dir.path().join("pki/police/data");
    let mut files = Vec::new();
    let mut stack = vec![data_dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    // One pass per needle length over each file, looking windows up in a set.
    let mut by_len: std::collections::BTreeMap<usize, std::collections::HashSet<Vec<u8>>> =
        Default::default();
    for needle in needles {
        by_len.entry(needle.len()).or_default().insert(needle);
    }
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for (len, set) in &by_len {
            if let Some(w) = bytes.windows(*len).find(|w| set.contains(*w)) {
                panic!(
                    "{} holds a raw value of the input ({len} bytes at offset {})",
                    path.display(),
                    w.as_ptr() as usize - bytes.as_ptr() as usize
                );
            }
        }
    }
}

#[test]
fn a_killed_import_leaves_the_previous_state_or_the_whole_import() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let c = config.to_str().unwrap();
    let small = dir.path().join("small.csv");
    let big = dir.path().join("big.csv");
    for (file, rows, seed) in [(&small, 500, 1), (&big, 60_000, 2)] {
        gen_data(Path::new(NODE), file, "police", rows, seed, None);
    }

    // How long a whole import takes here, and what it leaves, in a twin.
    let twin = tempfile::tempdir().unwrap();
    let twin_config = node_dir(twin.path());
    assert!(import(&twin_config, &small, &[]).0);
    let started = std::time::Instant::now();
    assert!(import(&twin_config, &big, &[]).0);
    let full_run = started.elapsed();
    let complete = stored(&twin_config);

    assert!(import(&config, &small, &[]).0);
    let before = stored(&config);
    assert!(complete > before);

    // Kill the import at points spread over its run (validation, sealing,
    // the write itself); each time the store must reopen holding exactly
    // the state before, or the whole import, never a part of it.
    let mut killed_mid_run = 0;
    for percent in [10u32, 30, 50, 70, 85, 95, 99] {
        let mut child = Command::new(NODE)
            .args(["import", "--config", c, big.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full_run * percent / 100);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let after = stored(&config);
        assert!(
            after == before || after == complete,
            "killed at {percent}% of a run: {after} signals stored, expected {before} or {complete}"
        );
        if after == complete {
            break;
        }
    }
    assert!(killed_mid_run >= 2, "the kills must land inside the import");
}

#[test]
fn the_taxonomy_prints_as_documented_json() {
    let (ok, stdout, stderr) = node(&["taxonomy", "--json"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let domains = json["domains"].as_array().unwrap();
    let codes: Vec<&str> = domains
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "safety",
            "education",
            "health",
            "social",
            "finances",
            "housing",
            "youth_care"
        ]
    );
    for d in domains {
        let signals = d["signals"].as_array().unwrap();
        assert!((4..=8).contains(&signals.len()));
        for s in signals {
            for field in ["code", "label", "description"] {
                assert!(!s[field].as_str().unwrap().is_empty());
            }
            assert!(s["retention_months"].as_u64().unwrap() > 0);
        }
    }
}

/// What a careless or broken nightly export looks like: each is refused
/// naming the line and field, stores nothing, and never repeats a value
/// that could be personal data.
#[test]
fn careless_exports_are_refused_without_echoing_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let file = dir.path().join("export.csv");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no header: the BSN sits where a column name belongs",
            "389064506,frequent_absence,2026-03-01\n".into(),
            "header: column 1: not a column name",
        ),
        ("a header and no rows", HEADER.into(), "no data rows"),
        (
            "an extra field",
            format!("{HEADER}389064506,,,,frequent_absence,2026-03-01,,ref-1,Jansen\n"),
            ":2: row: 9 fields, the header names 8",
        ),
        (
            "a first name as the initial",
            format!("{HEADER},Jansen,JOHN,2012-03-04,frequent_absence,2026-03-01,,ref-1\n"),
            ":2: initial: must be one letter",
        ),
        (
            "a surname of 200 characters",
            format!(
                "{HEADER},{},J,2012-03-04,frequent_absence,2026-03-01,,ref-1\n",
                "Jansen".repeat(34)
            ),
            ":2: surname: longer than 100 characters",
        ),
        (
            "a 10 MB surname",
            format!(
                "{HEADER},{},J,2012-03-04,frequent_absence,2026-03-01,,ref-1\n",
                "Jansen".repeat(1_700_000)
            ),
            "line 2 is longer than 65536 bytes",
        ),
    ];
    for (what, text, expected) in cases {
        std::fs::write(&file, &text).unwrap();
        let (ok, stdout, stderr) = import(&config, &file, &[]);
        assert!(!ok, "{what}: refused\n{stdout}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
        for value in ["389064506", "Jansen", "JOHN"] {
            assert!(!stderr.contains(value), "{what}: {value} echoed: {stderr}");
        }
        assert!(
            stderr.len() < 2_000,
            "{what}: {} bytes of error",
            stderr.len()
        );
        assert_eq!(stored(&config), 0, "{what}: nothing stored");
    }
    // JSON Lines with a value where a key belongs.
    let jsonl = dir.path().join("export.jsonl");
    std::fs::write(
        &jsonl,
        "{\"bsn\": \"389064506\", \"Jansen\": \"x\", \"signal\": \"frequent_absence\", \"registered_on\": \"2026-03-01\"}\n",
    )
    .unwrap();
    let (ok, _, stderr) = import(&config, &jsonl, &[]);
    assert!(!ok);
    assert!(
        stderr.contains(":1: json: a key of the object is not a field name")
            && !stderr.contains("Jansen"),
        "{stderr}"
    );
}

/// Every file of the store, sled's own among them, is its owner's only.
#[test]
fn the_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let csv = dir.path().join("signals.csv");
    std::fs::write(&csv, format!("{HEADER}{}", good_row(1))).unwrap();
    let (ok, _, stderr) = import(&config, &csv, &[]);
    assert!(ok, "{stderr}");
    fn walk(dir: &Path, found: &mut Vec<(PathBuf, u32)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            found.push((entry.path(), mode));
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), found);
            }
        }
    }
    let mut found = Vec::new();
    walk(&dir.path().join("pki/police/data"), &mut found);
    assert!(found.len() > 5, "{found:?}");
    for (path, mode) in found {
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
}

/// Excel writes a byte order mark and CRLF line ends; both are read as
/// the plain file would be.
#[test]
fn an_excel_export_with_a_byte_order_mark_and_crlf_imports() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_dir(dir.path());
    let csv = dir.path().join("excel.csv");
    let text = format!("\u{feff}{HEADER}{}{}", good_row(1), good_row(2)).replace('\n', "\r\n");
    std::fs::write(&csv, text).unwrap();
    let (ok, _, stderr) = import(&config, &csv, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(stored(&config), 2);
    let jsonl = dir.path().join("excel.jsonl");
    std::fs::write(
        &jsonl,
        "\u{feff}{\"bsn\": \"111222333\", \"signal\": \"frequent_absence\", \"registered_on\": \"2026-03-01\"}\r\n",
    )
    .unwrap();
    let (ok, _, stderr) = import(&config, &jsonl, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(stored(&config), 3);
}
