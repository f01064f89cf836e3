//! The mutator-side stall meter: the longest gap the workload itself saw.
//!
//! Collector timestamps say how long the collector *thinks* it paused the
//! program; this meter says how long the program actually waited. Every
//! allocation (and every step of loops that do not allocate) calls
//! [`StallMeter::tick`], which only increments a counter; every
//! [`SAMPLE_EVERY`] ticks it reads the monotonic clock (vDSO, ~20 ns) and
//! keeps the largest gap between two samples. The figure is therefore the
//! longest stall plus at most `SAMPLE_EVERY` units of ordinary work (a few
//! microseconds), at a cost of well under a nanosecond per tick. Time the
//! worker spends descheduled (more runnable threads than cores) is
//! indistinguishable from a stall and is counted; compare configurations
//! measured in the same run, never absolute figures.

use std::time::Instant;

/// Ticks between two clock reads.
pub const SAMPLE_EVERY: u32 = 64;

/// Tracks the longest gap between clock samples.
#[derive(Debug)]
pub struct StallMeter {
    ticks: u32,
    last: Instant,
    max_gap_ns: u64,
}

impl Default for StallMeter {
    fn default() -> Self {
        StallMeter::new()
    }
}

impl StallMeter {
    /// A meter whose first gap starts now.
    pub fn new() -> StallMeter {
        StallMeter {
            ticks: 0,
            last: Instant::now(),
            max_gap_ns: 0,
        }
    }

    /// Count one unit of work; samples the clock every [`SAMPLE_EVERY`] ticks.
    #[inline]
    pub fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks >= SAMPLE_EVERY {
            self.sample();
        }
    }

    /// Read the clock now and fold the gap since the previous sample in.
    #[inline(never)]
    pub fn sample(&mut self) {
        self.ticks = 0;
        let now = Instant::now();
        let gap = now.duration_since(self.last).as_nanos() as u64;
        self.max_gap_ns = self.max_gap_ns.max(gap);
        self.last = now;
    }

    /// Forget the time since the last sample without counting it as a
    /// stall (the workload chose to wait, e.g. to hold a store rate).
    pub fn skip_gap(&mut self) {
        self.ticks = 0;
        self.last = Instant::now();
    }

    /// Start measuring afresh (e.g. after setup the meter should not see).
    pub fn restart(&mut self) {
        *self = StallMeter::new();
    }

    /// The longest gap seen so far, nanoseconds.
    pub fn max_gap_ns(&self) -> u64 {
        self.max_gap_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_between_samples_is_seen_as_a_stall() {
        let mut meter = StallMeter::new();
        for _ in 0..SAMPLE_EVERY * 4 {
            meter.tick();
        }
        let quiet = meter.max_gap_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        for _ in 0..SAMPLE_EVERY {
            meter.tick();
        }
        assert!(meter.max_gap_ns() >= 20_000_000, "{}", meter.max_gap_ns());
        assert!(quiet < 20_000_000);
    }
}
