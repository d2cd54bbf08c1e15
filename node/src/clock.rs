//! The node's clock: the time and today's date (UTC) come from here, never
//! from the system clock directly, so that the serving node reads one
//! clock ([`crate::server::state::NodeState::clock`], the store's own for
//! the entries it writes) that a test can set. How long something took is
//! a [`Stopwatch`]'s, also from here.
//!
//! This is the one module allowed to read the system clock:
//! `clippy.toml` bans `SystemTime::now` and `Instant::now` elsewhere.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::{Date, OffsetDateTime};

/// Where the time comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A fixed moment, in seconds since the Unix epoch.
    Fixed(u64),
    /// A test's hand: a moment it moves ([`Clock::set`]), shared by every
    /// clone, so a node's epochs, days, log times and timers follow it.
    Manual(Arc<Manual>),
}

/// The moment of a [`Clock::Manual`], and who waits for it to move.
#[derive(Debug, Default)]
pub struct Manual {
    now: AtomicU64,
    moved: tokio::sync::Notify,
}

impl Clock {
    /// A clock at `secs` (since the Unix epoch) that a test moves.
    pub fn manual(secs: u64) -> Clock {
        Clock::Manual(Arc::new(Manual {
            now: AtomicU64::new(secs),
            moved: tokio::sync::Notify::new(),
        }))
    }

    /// Moves a manual clock to `secs`, waking what sleeps on it; other
    /// clocks are not moved.
    pub fn set(&self, secs: u64) {
        if let Clock::Manual(manual) = self {
            manual.now.store(secs, Ordering::SeqCst);
            manual.moved.notify_waiters();
        }
    }

    /// Waits until this clock reads `secs` or later: by the runtime's
    /// timer for the system clock, until a test moves it for a manual
    /// one, and for ever for a fixed one that is earlier.
    pub async fn sleep_until(&self, secs: u64) {
        match self {
            Clock::System => {
                let wait = secs.saturating_sub(self.now_secs());
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            Clock::Fixed(now) if *now >= secs => {}
            Clock::Fixed(_) => std::future::pending().await,
            Clock::Manual(manual) => loop {
                let moved = manual.moved.notified();
                if manual.now.load(Ordering::SeqCst) >= secs {
                    return;
                }
                moved.await;
            },
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Fixed(secs) => *secs,
            Clock::Manual(manual) => manual.now.load(Ordering::SeqCst),
        }
    }

    /// Milliseconds since the Unix epoch (audit entries' `time_unix_ms`).
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Clock::Fixed(_) | Clock::Manual(_) => {
                i64::try_from(self.now_secs()).unwrap_or(i64::MAX / 1000) * 1000
            }
        }
    }

    /// Today's date, UTC.
    pub fn today(&self) -> Date {
        let secs = i64::try_from(self.now_secs()).unwrap_or(i64::MAX);
        OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .date()
    }
}

/// Today's date by the system clock, UTC (for commands, which have no node).
pub fn today() -> Date {
    Clock::System.today()
}

/// How long something took: for metrics and log lines only, never for
/// a decision (those read a [`Clock`]).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    /// The time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_gives_its_moment_and_its_utc_date() {
        // 2026-12-02 23:59:59 UTC.
        let clock = Clock::Fixed(1_796_255_999);
        assert_eq!(clock.now_secs(), 1_796_255_999);
        assert_eq!(clock.today(), time::macros::date!(2026 - 12 - 02));
        assert_eq!(clock.now_ms(), 1_796_255_999_000);
        assert_eq!(
            Clock::Fixed(1_796_256_000).today(),
            time::macros::date!(2026 - 12 - 03)
        );
    }
}
