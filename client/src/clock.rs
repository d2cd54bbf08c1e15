//! The client's one reading of the wall clock: when a bundle was
//! exported or a report written, and the validity of a dev certificate
//! or CRL. `clippy.toml` bans reading it anywhere else, so that what
//! the client decides never depends on when a test runs.
#![allow(clippy::disallowed_methods)]

use time::OffsetDateTime;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A reading of the monotonic clock, for idle timeouts.
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// Now, UTC.
pub fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
