//! Work a serving node does beside serving — a live import, the tables of
//! a change not yet published — on a thread pool of its own whose threads
//! run at the lowest CPU priority.
//!
//! Such work uses every core when the node is idle, and yields them to
//! exchanges and case queries as soon as there are any. On Linux the
//! threads run under `SCHED_IDLE` (and nice 19): a thread that wakes up to
//! answer a partner takes the core from them at once, where between two
//! ordinary threads it could wait out the running one's time slice.
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
    let niced = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) only reads `param`, which outlives the
    // call; pid 0 names the calling thread.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if niced != 0 || idle != 0 {
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
        // Field `n` (1-based, as proc(5) numbers them) of the running
        // thread's stat line; the fields after the parenthesised name
        // start at 3.
        fn stat_field(n: usize) -> i64 {
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
            fields[n - 3].parse().unwrap()
        }
        let nice_and_policy = || (stat_field(19), stat_field(41));
        let here = nice_and_policy();
        let there = super::run(nice_and_policy);
        assert_eq!(there, (i64::from(super::NICE), i64::from(libc::SCHED_IDLE)));
        assert_eq!(
            nice_and_policy(),
            here,
            "the caller's own priority is untouched"
        );
        assert_eq!(here.1, i64::from(libc::SCHED_OTHER));
    }
}
