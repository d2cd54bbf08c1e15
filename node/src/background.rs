//! Work a serving node does beside serving — a live import, the tables of
//! a change not yet published — on a thread pool of its own whose threads
//! run at the lowest CPU priority.
//!
//! Such work uses every core when the node is idle, and yields them to
//! exchanges and case queries as soon as there are any: the scheduler
//! gives a thread at nice 19 about 1.5 % of a core against one at nice 0.
//! Partners are served at full speed during a nightly import; the import
//! takes longer when the node is busy.

use std::sync::OnceLock;

/// The nice value of background threads (the lowest priority).
const NICE: i32 = 19;

static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

fn pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pluis-background-{i}"))
            .start_handler(|_| lower_priority())
            .build()
        {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::warn!(error = %e, "no background thread pool; background work runs at normal priority");
                None
            }
        }
    })
    .as_ref()
}

/// Runs `work` on the background pool: its parallel iterators use the
/// pool's low-priority threads, not the shared ones that answer partners.
/// Blocks the calling thread until `work` is done.
pub fn run<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    match pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority(2) takes plain integers and touches no memory of
    // ours. On Linux the nice value is per thread, and `who = 0` names the
    // calling thread, so only this pool thread's priority changes.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "could not lower a background thread's priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    let _ = NICE;
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn background_threads_run_at_the_lowest_priority() {
        // The nice value of the running thread, from /proc (field 19 of
        // its stat line, after the parenthesised name).
        fn nice() -> i64 {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            fields[16].parse().unwrap()
        }
        let here = nice();
        let there = super::run(nice);
        assert_eq!(there, i64::from(super::NICE));
        assert_eq!(nice(), here, "the caller's own priority is untouched");
    }
}
