//! Clocks: wall-clock time in milliseconds, the unit of every Kafka timestamp and
//! timeout; and a monotonic clock in nanoseconds for timing requests.

use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` (the clock behind `std::time::Instant`) in nanoseconds: one
/// integer, so a request's phases are plain subtractions (`Instant`'s arithmetic on
/// `timespec`s cost more than reading the clock; a reading is the vDSO, ~20 ns).
/// Through nix, not rustix: rustix finds the vDSO itself by reading the auxiliary
/// vector, which crashes under valgrind (the instruction counts of
/// `bench/metrics_cost_ir.sh`).
#[inline]
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; 0 would only make durations read 0.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(t.tv_nsec() as u64)
    })
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
