//! Operational metrics in the Prometheus text format, served over plain
//! HTTP on an address of the operator's choosing (`metrics_listen`, off
//! unless set; a bare port means loopback).
//!
//! Counters and histograms live here, updated where things happen;
//! gauges that the node can read at any time (budgets, log size, stored
//! signals) are read when scraped. Labels are only ever values from the
//! node's own config (peer orgs, purpose names, fixed outcome words):
//! anything else a caller sent is counted as `other`, so a peer can
//! neither inject text into the page nor grow it without bound. Nothing
//! here is personal data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::lock;

/// A histogram with fixed bucket bounds, in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations in microseconds.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// How an exchange this node was asked for ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Answered.
    Served,
    /// Refused by policy.
    Denied,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Denied => "denied",
        }
    }
}

/// The node's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    exchanges: Mutex<BTreeMap<(String, String, Outcome), u64>>,
    /// Time to answer one `Evaluate`, from the request to the receipt.
    pub evaluate: Histogram,
    /// Time to build one labelled table.
    pub table_build: Histogram,
    imports: Mutex<BTreeMap<&'static str, u64>>,
    import_rows: AtomicU64,
    import_added: AtomicU64,
    /// Imports running now (0 or 1).
    pub imports_running: AtomicU64,
    /// Rows received by the import running now.
    pub import_rows_received: AtomicU64,
    reloads: Mutex<BTreeMap<&'static str, u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    connections: AtomicU64,
    case_queries: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            exchanges: Mutex::default(),
            evaluate: Histogram::new(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            table_build: Histogram::new(&[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
            imports: Mutex::default(),
            import_rows: AtomicU64::new(0),
            import_added: AtomicU64::new(0),
            imports_running: AtomicU64::new(0),
            import_rows_received: AtomicU64::new(0),
            reloads: Mutex::default(),
            refusals: Mutex::default(),
            connections: AtomicU64::new(0),
            case_queries: AtomicU64::new(0),
        }
    }
}

/// Values read from the node at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Per configured peer: keys evaluated today and the daily limit.
    pub budgets: Vec<(String, u64, u64)>,
    /// Audit log entries.
    pub audit_entries: u64,
    /// Audit log bytes.
    pub audit_bytes: u64,
    /// Signals stored.
    pub signals: u64,
    /// The signal set's revision.
    pub revision: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Certificates the CRLs in force list.
    pub revoked_certificates: u64,
    /// Per partner: case-query exchanges running, and case queries
    /// waiting to ride on the next one.
    pub batches: Vec<(String, u64, u64)>,
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it (`\`, `"` and newlines
/// escaped). Values are config names, but escaping costs nothing.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts an exchange `peer` asked for. `peer` and `purpose` must
    /// already be config names or `other` (see [`Metrics::known`]).
    pub fn exchange(&self, peer: &str, purpose: &str, outcome: Outcome) {
        *lock(&self.exchanges)
            .entry((peer.to_owned(), purpose.to_owned(), outcome))
            .or_default() += 1;
    }

    /// `value` if it is one of `known`, else `other`.
    pub fn known<'a>(value: &'a str, mut known: impl Iterator<Item = &'a str>) -> &'a str {
        if known.any(|k| k == value) {
            value
        } else {
            "other"
        }
    }

    /// Counts an import that ended `outcome` (`committed`, `refused`,
    /// `failed`), with its rows and new signals.
    pub fn import(&self, outcome: &'static str, rows: u64, added: u64) {
        *lock(&self.imports).entry(outcome).or_default() += 1;
        self.import_rows.fetch_add(rows, Ordering::Relaxed);
        self.import_added.fetch_add(added, Ordering::Relaxed);
    }

    /// Counts a policy reload that ended `outcome` (`loaded`, `refused`).
    pub fn reload(&self, outcome: &'static str) {
        *lock(&self.reloads).entry(outcome).or_default() += 1;
    }

    /// Counts a refused handshake or call, by reason (`revoked`, …).
    pub fn refused(&self, rule: crate::policy::Rule) {
        *lock(&self.refusals).entry(rule.name()).or_default() += 1;
    }

    /// Counts an accepted mutual-TLS connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a coordinator's case query.
    pub fn case_query(&self) {
        self.case_queries.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole page, in the order an operator reads it. Long only as a
    /// table is: one line group per metric, kept in one place so that the
    /// page's order and every metric's help text are read together.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        self.render_exchanges(&mut out, gauges);
        self.evaluate.render(
            &mut out,
            "pluis_evaluate_duration_seconds",
            "Time to answer one Evaluate, receipt included.",
        );
        self.table_build.render(
            &mut out,
            "pluis_table_build_duration_seconds",
            "Time to build one labelled table.",
        );
        let counted = |o: &AtomicU64| o.load(Ordering::Relaxed);
        plain(
            &mut out,
            &[
                (
                    "pluis_audit_log_entries",
                    "Entries in the audit log.",
                    "gauge",
                    gauges.audit_entries,
                ),
                (
                    "pluis_audit_log_bytes",
                    "Bytes of audit log entries on disk.",
                    "gauge",
                    gauges.audit_bytes,
                ),
                (
                    "pluis_signals_stored",
                    "Signals stored, active and expired.",
                    "gauge",
                    gauges.signals,
                ),
                (
                    "pluis_signal_set_revision",
                    "Revision of the signal set; changes with every import and erasure.",
                    "gauge",
                    gauges.revision,
                ),
            ],
        );
        by_word(
            &mut out,
            "pluis_imports_total",
            "Imports, by outcome.",
            "outcome",
            &self.imports,
        );
        plain(
            &mut out,
            &[
                (
                    "pluis_import_rows_total",
                    "Rows read by imports.",
                    "counter",
                    counted(&self.import_rows),
                ),
                (
                    "pluis_import_signals_added_total",
                    "New signals stored by imports.",
                    "counter",
                    counted(&self.import_added),
                ),
                (
                    "pluis_imports_running",
                    "Imports running now.",
                    "gauge",
                    counted(&self.imports_running),
                ),
                (
                    "pluis_import_rows_received",
                    "Rows received so far by the import running now.",
                    "gauge",
                    counted(&self.import_rows_received),
                ),
            ],
        );
        by_word(
            &mut out,
            "pluis_policy_reloads_total",
            "Policy reloads, by outcome.",
            "outcome",
            &self.reloads,
        );
        by_word(
            &mut out,
            "pluis_refused_total",
            "TLS handshakes and calls refused, by reason.",
            "reason",
            &self.refusals,
        );
        plain(
            &mut out,
            &[
                (
                    "pluis_revoked_certificates",
                    "Certificates listed by the CRLs in force.",
                    "gauge",
                    gauges.revoked_certificates,
                ),
                (
                    "pluis_connections_total",
                    "Mutual-TLS connections accepted.",
                    "counter",
                    counted(&self.connections),
                ),
                (
                    "pluis_case_queries_total",
                    "Case queries from this node's coordinators.",
                    "counter",
                    counted(&self.case_queries),
                ),
                (
                    "pluis_uptime_seconds",
                    "Seconds since the node started.",
                    "gauge",
                    gauges.uptime_seconds,
                ),
            ],
        );
        out
    }

    /// Exchanges by peer, purpose and outcome, each peer's budget, and
    /// the case queries this node has running and waiting per partner.
    fn render_exchanges(&self, out: &mut String, gauges: &Gauges) {
        header(
            out,
            "pluis_exchanges_total",
            "Exchanges partners asked of this node, by peer, purpose and outcome.",
            "counter",
        );
        for ((peer, purpose, outcome), n) in lock(&self.exchanges).iter() {
            let _ = writeln!(
                out,
                "pluis_exchanges_total{{peer=\"{}\",purpose=\"{}\",outcome=\"{}\"}} {n}",
                label(peer),
                label(purpose),
                outcome.label()
            );
        }
        let budgets = &gauges.budgets;
        let batches = &gauges.batches;
        per_peer(
            out,
            "pluis_budget_used_keys",
            "Keys evaluated for a peer today (UTC).",
            budgets.iter().map(|(peer, used, _)| (peer, *used)),
        );
        per_peer(
            out,
            "pluis_budget_limit_keys",
            "Keys a peer may have evaluated per day.",
            budgets.iter().map(|(peer, _, limit)| (peer, *limit)),
        );
        per_peer(
            out,
            "pluis_case_query_exchanges_running",
            "Case-query exchanges with a partner running now.",
            batches.iter().map(|(peer, running, _)| (peer, *running)),
        );
        per_peer(
            out,
            "pluis_case_queries_waiting",
            "Case queries waiting to ride on the next exchange with a partner.",
            batches.iter().map(|(peer, _, waiting)| (peer, *waiting)),
        );
    }
}

/// A gauge with a sample per peer.
fn per_peer<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (&'a String, u64)>,
) {
    header(out, name, help, "gauge");
    for (peer, value) in samples {
        let _ = writeln!(out, "{name}{{peer=\"{}\"}} {value}", label(peer));
    }
}

/// Samples without labels: (name, help, kind, value) each.
fn plain(out: &mut String, samples: &[(&str, &str, &str, u64)]) {
    for (name, help, kind, value) in samples {
        header(out, name, help, kind);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// A counter with one label, a sample per word counted.
fn by_word(
    out: &mut String,
    name: &str,
    help: &str,
    label_name: &str,
    map: &Mutex<BTreeMap<&'static str, u64>>,
) {
    header(out, name, help, "counter");
    for (word, n) in lock(map).iter() {
        let _ = writeln!(out, "{name}{{{label_name}=\"{word}\"}} {n}");
    }
}

/// Serves `GET /metrics` on `listener` until the task is aborted; every
/// scrape calls `page`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    page: std::sync::Arc<dyn Fn() -> String + Send + Sync>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let page = page.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let page = page.clone();
                async move {
                    let (status, body) = match (request.method(), request.uri().path()) {
                        (&hyper::Method::GET, "/metrics") => {
                            let page = page.clone();
                            match tokio::task::spawn_blocking(move || page()).await {
                                Ok(text) => (hyper::StatusCode::OK, text),
                                Err(_) => (
                                    hyper::StatusCode::INTERNAL_SERVER_ERROR,
                                    "metrics failed\n".to_owned(),
                                ),
                            }
                        }
                        (&hyper::Method::GET, _) => (
                            hyper::StatusCode::NOT_FOUND,
                            "only /metrics is served here\n".to_owned(),
                        ),
                        _ => (
                            hyper::StatusCode::METHOD_NOT_ALLOWED,
                            "only GET is served here\n".to_owned(),
                        ),
                    };
                    hyper::Response::builder()
                        .status(status)
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            // A scraper that stalls is dropped: one page takes milliseconds.
            let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_counts_and_escapes() {
        let metrics = Metrics::default();
        metrics.exchange("school", "exploitation-assessment", Outcome::Served);
        metrics.exchange("school", "exploitation-assessment", Outcome::Served);
        metrics.exchange("school", "other", Outcome::Denied);
        metrics.evaluate.observe(Duration::from_millis(3));
        metrics.import("committed", 10, 7);
        let page = metrics.render(&Gauges {
            budgets: vec![("school".into(), 12, 100)],
            audit_entries: 5,
            ..Gauges::default()
        });
        for line in [
            "pluis_exchanges_total{peer=\"school\",purpose=\"exploitation-assessment\",outcome=\"served\"} 2",
            "pluis_exchanges_total{peer=\"school\",purpose=\"other\",outcome=\"denied\"} 1",
            "pluis_budget_used_keys{peer=\"school\"} 12",
            "pluis_budget_limit_keys{peer=\"school\"} 100",
            "pluis_evaluate_duration_seconds_bucket{le=\"0.0025\"} 0",
            "pluis_evaluate_duration_seconds_bucket{le=\"0.005\"} 1",
            "pluis_evaluate_duration_seconds_count 1",
            "pluis_audit_log_entries 5",
            "pluis_imports_total{outcome=\"committed\"} 1",
            "pluis_import_rows_total 10",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing:\n{page}");
        }
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(
            Metrics::known("x\"}", ["a", "b"].into_iter()),
            "other",
            "values a caller made up are not labels"
        );
    }
}
