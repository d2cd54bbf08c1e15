//! A node as a process of its own — for the end-to-end tests that need
//! exit codes, signals and kills, and for the benchmarks that read each
//! node's peak memory. One type for both: it starts a command that serves
//! as `pluis-node serve` does, reads the address it reports, and stops it
//! with SIGTERM (or kills it, as a crash would).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};

/// How long a node may take to report its address, or to stop.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running node process; killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    child: Option<Child>,
    /// `https://ADDR` the node reported on stdout.
    pub url: String,
    /// `http://ADDR/metrics`, if the node reported a metrics address.
    pub metrics_url: Option<String>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl NodeProcess {
    /// Starts `binary serve --config CONFIG` (a `pluis-node`) and waits
    /// for its `listening on URL` line, and its `metrics on URL` line when
    /// the config asks for metrics.
    pub fn spawn(binary: &Path, config: &Path) -> anyhow::Result<Self> {
        Self::spawn_with_env(binary, config, &[])
    }

    /// [`NodeProcess::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        binary: &Path,
        config: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied());
        let wants_metrics = std::fs::read_to_string(config)
            .map(|text| text.lines().any(|l| l.starts_with("metrics_listen")))
            .unwrap_or(false);
        Self::start(command, wants_metrics)
    }

    /// Starts `command`, which must serve as `pluis-node serve` does
    /// (first stdout line `listening on URL`, then `metrics on URL` if
    /// `metrics`), and waits for what it reports.
    pub fn start(mut command: Command, metrics: bool) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a node process")?;
        let lines = lines_of(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let mut process = NodeProcess {
            child: Some(child),
            url: String::new(),
            metrics_url: None,
            stderr: Some(stderr),
        };
        process.url = process.reported(&lines, "listening on ")?;
        if metrics {
            process.metrics_url = Some(process.reported(&lines, "metrics on ")?);
        }
        Ok(process)
    }

    /// The next stdout line, which must start with `prefix`; the rest of it.
    fn reported(&mut self, lines: &Receiver<String>, prefix: &str) -> anyhow::Result<String> {
        match lines.recv_timeout(DEADLINE) {
            Ok(line) => match line.strip_prefix(prefix) {
                Some(rest) => Ok(rest.to_owned()),
                None => bail!("the node said {line:?}, not {prefix:?}…"),
            },
            Err(_) => {
                let output = self.terminate()?;
                bail!(
                    "the node did not report {prefix:?}…; stderr:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            }
        }
    }

    /// The process id, for signals sent from elsewhere.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, `HUP`, …) to the running process.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("the node process has ended")?;
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to end; its exit status
    /// and everything it wrote to stderr.
    pub fn terminate(&mut self) -> anyhow::Result<Output> {
        let mut child = self.child.take().context("the node process has ended")?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if waited > DEADLINE {
                let _ = child.kill();
                bail!(
                    "the node did not stop within {} s of SIGTERM",
                    DEADLINE.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        };
        Ok(Output {
            status,
            stdout: Vec::new(),
            stderr: self
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
        })
    }

    /// Peak resident memory so far, in MiB (Linux `VmHWM`; NaN elsewhere).
    pub fn peak_mib(&self) -> f64 {
        let Some(pid) = self.pid() else {
            return f64::NAN;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The lines of `stdout`, read on a thread of their own.
fn lines_of(stdout: Option<std::process::ChildStdout>) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// Reads `pipe` to its end on a thread of its own, so the child never
/// blocks on a full pipe.
fn drain(pipe: Option<std::process::ChildStderr>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
        }
        bytes
    })
}
