//! Clocks: wall-clock time in milliseconds, the unit of every Kafka timestamp and
//! timeout; and a monotonic clock in nanoseconds for timing requests.

use std::time::{SystemTime, UNIX_EPOCH};

use nix::libc;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` (the clock behind `std::time::Instant`) in nanoseconds: one
/// integer, so a request's phases are plain subtractions (`Instant`'s arithmetic on
/// `timespec`s cost more than reading the clock; a reading is the vDSO, ~20 ns).
/// Called directly: nix's wrapper (its `Result`, a `TimeSpec` copy, a call that does
/// not inline) cost as much again as glibc's side, four times per request.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a live timespec for the call to write. CLOCK_MONOTONIC exists on
    // every Linux, so the call does not fail (if it did, `t` would read 0).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_counts_nanoseconds() {
        let (start, instant) = (monotonic_ns(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (ns, elapsed) = (monotonic_ns() - start, instant.elapsed());
        assert!(ns >= 20_000_000, "{ns}");
        // The same clock as `Instant`: the two readings agree to well within a sleep.
        assert!(
            ns.abs_diff(elapsed.as_nanos() as u64) < 5_000_000,
            "{ns} {elapsed:?}"
        );
    }
}
