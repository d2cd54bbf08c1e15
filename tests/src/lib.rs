//! The end-to-end harness: real consortia in temporary directories, real
//! nodes on loopback ports the OS picks (port 0, read back), real mutual
//! TLS with certificates from the project's own dev PKI.
//!
//! Every test makes its own consortium, so tests run in parallel.

// Real node processes are waited for by the wall clock (a deadline for
// a port, a log line, a file), never to decide what a test asserts.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pluis_client::dev::consortium::LocalConsortium;
use pluis_node::config::{ConfigFile, PeerFile};
use pluis_proto::pb::audit_client::AuditClient;
use pluis_proto::pb::coordinator_client::CoordinatorClient;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::{pb, Role};
use pluis_transport::tls::{self, ExpectedServer, TlsIdentity};
use tonic::transport::Channel;

pub use pluis_client::dev::demo::ORGS as DEMO_ORGS;

/// A test's consortium: dev PKI, configs and data in a temporary
/// directory of its own, so that tests run in parallel. Made with
/// [`TestConsortium::setup`]; it is a [`LocalConsortium`] (`Deref`).
pub struct TestConsortium {
    /// The consortium.
    pub inner: LocalConsortium,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for TestConsortium {
    type Target = LocalConsortium;

    fn deref(&self) -> &LocalConsortium {
        &self.inner
    }
}

impl std::ops::DerefMut for TestConsortium {
    fn deref_mut(&mut self) -> &mut LocalConsortium {
        &mut self.inner
    }
}

/// A config change for one org's node.
type Edit = Box<dyn FnOnce(&mut ConfigFile) + Send>;

/// What a test's consortium holds before its nodes start: orgs, signals,
/// config changes (typed, never text patches).
pub struct Setup {
    name: String,
    orgs: Vec<String>,
    signals: Vec<(String, Vec<Signal>)>,
    edits: Vec<(String, Edit)>,
    clocks: Vec<(String, pluis_node::Clock)>,
}

/// `count` distinct valid BSNs (passing the elfproef), from 100000000 up.
pub fn valid_bsns(count: usize) -> Vec<String> {
    (10_000_000u32..)
        .filter_map(|stem| {
            pluis_proto::identifier::elfproef_check_digit(stem).map(|d| format!("{stem:08}{d}"))
        })
        .take(count)
        .collect()
}

/// One signal a test imports at an org: for the person with a BSN, a
/// signal code, its registration date and (often) the org's own case
/// reference — the columns of an import file, typed.
#[derive(Debug, Clone)]
pub struct Signal {
    /// `bsn`, `surname`, `initial`, `given_name`, `birth_date`: who.
    person: [String; 5],
    code: String,
    registered_on: String,
    local_ref: Option<String>,
}

impl Signal {
    /// Signal `code` for the person with `bsn`, registered on
    /// `registered_on` (`YYYY-MM-DD`, as [`days_ago`] gives).
    pub fn new(bsn: &str, code: &str, registered_on: &str) -> Signal {
        Signal {
            person: [
                bsn.to_owned(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
            code: code.to_owned(),
            registered_on: registered_on.to_owned(),
            local_ref: None,
        }
    }

    /// Signal `code` for the person without a BSN known by `surname`,
    /// `given_name` (its first letter the initial) and `birth_date`
    /// (`YYYY-MM-DD`, or `YYYY-MM-00` for an unknown day).
    pub fn named(
        surname: &str,
        given_name: &str,
        birth_date: &str,
        code: &str,
        registered_on: &str,
    ) -> Signal {
        Signal {
            person: [
                String::new(),
                surname.to_owned(),
                String::new(),
                given_name.to_owned(),
                birth_date.to_owned(),
            ],
            ..Signal::new("", code, registered_on)
        }
    }

    /// The same signal, under the org's own case reference `local_ref`.
    pub fn local_ref(mut self, local_ref: &str) -> Signal {
        self.local_ref = Some(local_ref.to_owned());
        self
    }

    /// Its line of an import file with the header [`Signal::HEADER`].
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{}\n",
            self.person.join(","),
            self.code,
            self.registered_on,
            self.local_ref.as_deref().unwrap_or("")
        )
    }

    /// The header of the import files [`Signal::csv`] lines go in.
    pub const HEADER: &'static str =
        "bsn,surname,initial,given_name,birth_date,signal,registered_on,local_ref\n";
}

impl Setup {
    /// Signals for `org`, imported before its node starts.
    pub fn signals(mut self, org: &str, rows: impl IntoIterator<Item = Signal>) -> Self {
        self.signals
            .push((org.to_owned(), rows.into_iter().collect()));
        self
    }

    /// The clock `org`'s node reads (in-process nodes only): a test's
    /// [`pluis_node::Clock::manual`], to move time instead of waiting.
    pub fn clock(mut self, org: &str, clock: pluis_node::Clock) -> Self {
        self.clocks.push((org.to_owned(), clock));
        self
    }

    /// A change to `org`'s config file.
    pub fn config(
        mut self,
        org: &str,
        edit: impl FnOnce(&mut ConfigFile) + Send + 'static,
    ) -> Self {
        self.edits.push((org.to_owned(), Box::new(edit)));
        self
    }

    /// A change to what every peer may ask of `org`'s node.
    pub fn peer_policies(self, org: &str, edit: impl Fn(&mut PeerFile) + Send + 'static) -> Self {
        self.config(org, move |file| file.peers.iter_mut().for_each(edit))
    }

    /// Makes the consortium (certificates, configs, signals), nodes not
    /// started.
    pub async fn create(self) -> TestConsortium {
        install_crypto_provider();
        let dir = tempfile::tempdir().expect("temporary directory");
        let orgs: Vec<&str> = self.orgs.iter().map(String::as_str).collect();
        let mut inner = LocalConsortium::create(&dir.path().join(&self.name), &self.name, &orgs)
            .await
            .expect("consortium is made");
        for (org, rows) in &self.signals {
            import_rows(&inner, org, rows);
        }
        for (org, edit) in self.edits {
            inner.edit_config(&org, edit).expect("node config edited");
        }
        for (org, clock) in self.clocks {
            if let Some(node) = inner.nodes.iter_mut().find(|n| n.org == org) {
                node.clock = clock;
            }
        }
        TestConsortium { inner, dir }
    }

    /// Makes the consortium and starts every node in this process.
    pub async fn start(self) -> TestConsortium {
        let mut c = self.create().await;
        c.inner.start_all().expect("nodes start");
        c
    }

    /// Makes the consortium for nodes that will run as processes of their
    /// own (on the addresses in their configs), in `runtime`.
    pub fn for_processes(self, runtime: &tokio::runtime::Runtime) -> TestConsortium {
        let mut c = runtime.block_on(self.create());
        c.inner.release_listeners();
        c
    }
}

impl TestConsortium {
    /// A consortium `name` of `orgs`, to fill and start.
    pub fn setup(name: &str, orgs: &[&str]) -> Setup {
        Setup {
            name: name.to_owned(),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
            signals: Vec::new(),
            edits: Vec::new(),
            clocks: Vec::new(),
        }
    }

    /// Issues certificates for `orgs` in consortium `name` and starts a node each.
    pub async fn start(name: &str, orgs: &[&str]) -> Self {
        Self::setup(name, orgs).start().await
    }

    /// The temporary directory, for a test's own files (the consortium is
    /// in a folder of its own in it).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The verifier key of `org`'s log, as its partners pin it (read from
    /// its data directory, not from the node).
    pub fn pinned_key(&self, org: &str) -> pluis_proto::log::NoteVerifier {
        let config = pluis_node::Config::load(&self.inner.node(org).expect("org").config)
            .expect("node config");
        pluis_node::log_verifier(&config.data_dir, &self.inner.name, org).expect("the log key")
    }

    /// `org`'s log, exported by its auditor from the node at `url` into
    /// the scratch directory, and verified against the pinned key.
    pub async fn verified_log(&self, org: &str, url: &str) -> Vec<pluis_proto::pb::AuditEntry> {
        let auditor = self.identity(org, Role::Auditor);
        let out = self.scratch().join(format!(
            "{org}-{}.jsonl",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        pluis_client::auditor::export(url, &auditor, &out)
            .await
            .expect("the log exports");
        let bundle = pluis_client::auditor::read_bundle(&out).expect("the bundle reads");
        pluis_client::auditor::verify(&bundle, Some(&self.pinned_key(org).to_string()))
            .expect("the log verifies against the pinned key")
            .entries
    }

    /// A copy of `org`'s config beside it, named `name`, changed by
    /// `edit` (for a second node process on other data, say).
    pub fn config_copy(
        &self,
        org: &str,
        name: &str,
        edit: impl FnOnce(&mut ConfigFile),
    ) -> std::path::PathBuf {
        let original = &self
            .inner
            .node(org)
            .expect("org is in the consortium")
            .config;
        let copy = original.with_file_name(name);
        std::fs::copy(original, &copy).expect("config copied");
        pluis_client::dev::consortium::edit_config_file(&copy, edit).expect("config edited");
        copy
    }

    /// The consortium's directory (dev PKI, configs, data).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// `https://127.0.0.1:PORT` of ORG's node.
    pub fn url(&self, org: &str) -> String {
        self.inner
            .node(org)
            .expect("org is in the consortium")
            .url
            .clone()
    }

    /// ORG's ROLE identity from the dev PKI.
    pub fn identity(&self, org: &str, role: Role) -> TlsIdentity {
        self.inner
            .tls_args(org, role)
            .load(role)
            .expect("dev PKI identity loads")
    }

    /// A channel to `node_org`'s node as `org`'s `role`, accepting any node
    /// of the consortium as server (so that authorisation, not the client's
    /// own server check, is what a test exercises).
    pub fn channel(&self, node_org: &str, org: &str, role: Role) -> Channel {
        channel_as(&self.url(node_org), &self.identity(org, role))
    }

    /// A `Coordinator` client to `node_org`'s node as `org`'s `role`.
    pub fn coordinator(&self, node_org: &str, org: &str, role: Role) -> CoordinatorClient<Channel> {
        CoordinatorClient::new(self.channel(node_org, org, role))
    }

    /// A `Partner` client to `node_org`'s node as `org`'s `role`.
    pub fn partner(&self, node_org: &str, org: &str, role: Role) -> PartnerClient<Channel> {
        PartnerClient::new(self.channel(node_org, org, role))
    }

    /// An `Audit` client to `node_org`'s node as `org`'s `role`.
    pub fn audit(&self, node_org: &str, org: &str, role: Role) -> AuditClient<Channel> {
        AuditClient::new(self.channel(node_org, org, role))
    }

    /// Stops every node, checking each stops cleanly.
    pub async fn stop(&mut self) {
        self.inner.stop_all().await.expect("nodes stop cleanly");
    }
}

/// The context of exchange `[id; 16]` for `purpose` under `legal_basis`.
pub fn exchange_context(id: u8, purpose: &str, legal_basis: &str) -> pb::ExchangeContext {
    pb::ExchangeContext {
        exchange_id: vec![id; 16],
        purpose: purpose.into(),
        legal_basis: legal_basis.into(),
    }
}

/// An `Evaluate` of `keys` (exact family), freshly blinded, as a
/// partner's client would send it.
pub fn evaluate_request(ctx: pb::ExchangeContext, keys: &[&str]) -> pb::EvaluateRequest {
    pb::EvaluateRequest {
        context: Some(ctx),
        epoch: 0,
        blinded: keys
            .iter()
            .map(|k| {
                pluis_proto::oprf::blind(k.as_bytes(), &mut rand_core::OsRng)
                    .expect("a key blinds")
                    .element
                    .to_vec()
            })
            .collect(),
        families: Vec::new(),
    }
}

/// A channel to `url` presenting `identity`, accepting any consortium node.
pub fn channel_as(url: &str, identity: &TlsIdentity) -> Channel {
    let config = identity
        .client_config(ExpectedServer::AnyNode)
        .expect("client TLS config");
    tls::connect(url, config, Duration::from_secs(5)).expect("channel")
}

/// A channel that trusts `ca` but presents no client certificate at all.
pub fn channel_without_client_cert(url: &str, ca: &Path) -> Channel {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots
            .add(cert.expect("CA cert"))
            .expect("CA cert is usable");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tls::connect(url, Arc::new(config), Duration::from_secs(5)).expect("channel")
}

/// Installs ring as the process's rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs a binary to completion with a deadline (integration tests name
/// the product's binaries as `env!("CARGO_BIN_EXE_pluis-node-e2e")` and
/// `env!("CARGO_BIN_EXE_pluis-e2e")`); returns (exit success,
/// stdout, stderr).
pub fn run_to_end(binary: &Path, args: &[&str], deadline: Duration) -> (bool, String, String) {
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let output = wait_with_deadline(child, deadline);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits for a child, killing it (and failing the test) past the deadline.
/// Its output is drained as it comes, so a chatty child cannot block.
pub fn wait_with_deadline(mut child: Child, deadline: Duration) -> std::process::Output {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "process did not finish within {deadline:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Imports CSV rows (header `bsn,signal,registered_on,local_ref` is
/// added) into `org`'s store, before its node runs.
pub fn import_rows(c: &LocalConsortium, org: &str, rows: &[Signal]) {
    use pluis_node::{import, ImportOptions, Quiet};
    let config = pluis_node::Config::load(&c.node(org).expect("org").config).expect("config");
    let file = config.data_dir.with_file_name("signals.csv");
    let text: String = std::iter::once(Signal::HEADER.to_owned())
        .chain(rows.iter().map(Signal::csv))
        .collect();
    std::fs::write(&file, text).expect("csv");
    let store = pluis_node::Store::open(&config.data_dir).expect("store");
    let taxonomy = pluis_node::config::load_taxonomy(None).expect("taxonomy");
    let options = ImportOptions::new(file, pluis_node::cli::today());
    import(&store, &taxonomy, &options, &Quiet).expect("import");
}

/// Writes `rows` synthetic import rows for `org` (its life domains) from
/// population `seed` (of `population` persons; default 2 × rows) to
/// `out`, as an operator does: `pluis-node gen-data` of the binary `node`.
pub fn gen_data(node: &Path, out: &Path, org: &str, rows: u64, seed: u64, population: Option<u64>) {
    let (rows, seed) = (rows.to_string(), seed.to_string());
    let population = population.map(|p| p.to_string());
    let mut args = vec!["gen-data", "--rows", &rows, "--seed", &seed, "--org", org];
    if let Some(population) = &population {
        args.extend(["--population", population]);
    }
    args.extend(["--out", out.to_str().expect("a UTF-8 path")]);
    let (ok, _, stderr) = run_to_end(node, &args, Duration::from_secs(120));
    assert!(ok, "gen-data: {stderr}");
}

/// Signals the node of `config` holds, active and expired, as `pluis-node
/// signals --json` (the binary `node`) counts them: through the running
/// node's admin socket, or from the store when no node runs.
pub fn stored_signals(node: &Path, config: &Path) -> u64 {
    let config = config.to_str().expect("a UTF-8 path");
    let (ok, stdout, stderr) = run_to_end(
        node,
        &["signals", "--json", "--config", config],
        Duration::from_secs(120),
    );
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("signals JSON");
    json["signals"]
        .as_array()
        .expect("a signals list")
        .iter()
        .map(|s| s["active"].as_u64().unwrap_or(0) + s["expired"].as_u64().unwrap_or(0))
        .sum()
}

/// The family the UI tests ask about: the police and the school know
/// 111222333, the health service 123456782, and the school Amina
/// Mehmedović (born 4 March 2012) by name only.
pub fn ui_family(name: &str) -> Setup {
    let date = days_ago(30);
    TestConsortium::setup(name, &["police", "school", "healthcare"])
        .signals(
            "police",
            [Signal::new("111222333", "weapon_possession", &date).local_ref("PV-7")],
        )
        .signals(
            "school",
            [
                Signal::new("111222333", "frequent_absence", &date),
                Signal::named(
                    "Mehmedović",
                    "Amina",
                    "2012-03-04",
                    "older_peer_group",
                    &date,
                ),
            ],
        )
        .signals(
            "healthcare",
            [Signal::new("123456782", "unexplained_injuries", &date)],
        )
}

/// `org`'s coordinator's `pluis ui`, started against `org`'s node (30
/// idle minutes).
pub async fn start_ui(c: &TestConsortium, org: &str) -> pluis_client::ui::Started {
    pluis_client::ui::start(pluis_client::ui::UiOptions {
        node: c.url(org),
        identity: c.identity(org, Role::Coordinator),
        idle: Duration::from_secs(1800),
    })
    .await
    .expect("the UI starts")
}

/// A date `days` back from today, as import files write it.
pub fn days_ago(days: i64) -> String {
    pluis_proto::identifier::iso_date(pluis_node::cli::today() - time::Duration::days(days))
}

/// Has a node process listen on a port it picks (`listen` port 0).
pub fn any_port(file: &mut ConfigFile) {
    file.listen = "127.0.0.1:0".into();
}

/// A node as a process of its own (exit codes, signals, kills): the
/// client's dev type, which the benchmarks use too.
pub use pluis_client::dev::process::NodeProcess;

/// GETs `url` (`http://HOST:PORT/PATH`) with a plain HTTP/1.1 client over
/// a TCP socket; returns the status code and the body.
pub fn http_get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut tcp = std::net::TcpStream::connect(host).expect("metrics endpoint accepts");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    tcp.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

/// The value of the sample `name` (with its labels, as printed) in a
/// Prometheus text page.
///
/// A sample the page does not have fails the test, naming it: reading it
/// as 0 would let `metric(..) == 0.0` pass for a metric that was never
/// exported. Where a sample may not be there yet (a counter not yet
/// counted), use [`try_metric`].
pub fn metric(page: &str, name: &str) -> f64 {
    try_metric(page, name)
        .unwrap_or_else(|| panic!("the metrics page has no sample {name}:\n{page}"))
}

/// The value of sample `name` on a Prometheus text page, or `None` if the
/// page has no such sample.
pub fn try_metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls the metrics page at `url` until `ready` holds for it (up to
/// 60 s); returns the page.
pub fn wait_for_metrics(url: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let (status, page) = http_get(url);
        assert_eq!(status, 200, "{page}");
        if ready(&page) {
            return page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited 60 s for {what}; metrics:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
