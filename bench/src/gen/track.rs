//! Receive-side accounting: latency into an HDR histogram, and loss, reordering and
//! duplicates from the sequence numbers.

use hdrhistogram::Histogram;

/// Sequence numbers remembered for duplicate detection (a sliding window of bits).
const WINDOW: u64 = 1 << 22;

/// What the receiver saw.
#[derive(Debug, Clone)]
pub struct Tracker {
    bits: Vec<u64>,
    /// The highest sequence number seen.
    max_seq: Option<u64>,
    /// Packets with a signature.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Sequence numbers seen again (within the window).
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets older than the window (cannot be checked for duplication; counted as unique).
    pub late: u64,
    /// Frames without a signature.
    pub foreign: u64,
    /// Latency, nanoseconds.
    pub hist: Histogram<u64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker {
            bits: vec![0; (WINDOW / 64) as usize],
            max_seq: None,
            received: 0,
            unique: 0,
            duplicates: 0,
            reordered: 0,
            late: 0,
            foreign: 0,
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds"),
        }
    }

    #[inline]
    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = seq % WINDOW;
        (&mut self.bits[(i / 64) as usize], 1u64 << (i % 64))
    }

    /// One packet with sequence number `seq` (widened by the caller) and a latency of
    /// `latency_ns`.
    #[inline]
    pub fn record(&mut self, seq: u64, latency_ns: u64) {
        self.received += 1;
        let _ = self.hist.record(latency_ns.max(1));
        match self.max_seq {
            Some(m) if seq <= m => {
                if m - seq >= WINDOW {
                    self.late += 1;
                    self.unique += 1;
                    return;
                }
                let (w, b) = self.bit(seq);
                if *w & b != 0 {
                    self.duplicates += 1;
                } else {
                    *w |= b;
                    self.unique += 1;
                    self.reordered += 1;
                }
            }
            prev => {
                // Clear the bits of the numbers skipped over: they leave the window's past.
                let from = prev.map_or(seq, |m| m + 1);
                if seq - from >= WINDOW {
                    self.bits.iter_mut().for_each(|w| *w = 0);
                } else {
                    for s in from..seq {
                        let (w, b) = self.bit(s);
                        *w &= !b;
                    }
                }
                let (w, b) = self.bit(seq);
                *w |= b;
                self.unique += 1;
                self.max_seq = Some(seq);
            }
        }
    }

    /// Percentile `q` (0–100) of the latency, nanoseconds.
    pub fn percentile(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q / 100.0)
    }

    /// The latency CDF as (nanoseconds, cumulative fraction) points, for the picture.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let total = self.hist.len();
        if total == 0 {
            return Vec::new();
        }
        let mut pts = Vec::new();
        let mut q = 0.0f64;
        // Dense in the tail: 0..90 by 5, then 90, 95, 99, 99.5, 99.9, ..., 100.
        while q < 100.0 {
            pts.push(q);
            q += if q < 90.0 {
                5.0
            } else if q < 99.0 {
                1.0
            } else if q < 99.9 {
                0.1
            } else {
                0.01
            };
        }
        pts.push(100.0);
        pts.into_iter()
            .map(|q| (self.hist.value_at_quantile(q / 100.0), q / 100.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_reorder_and_duplicates() {
        let mut t = Tracker::new();
        for s in [0u64, 1, 2, 4, 3, 3, 5, 7, 7] {
            t.record(s, 1000);
        }
        assert_eq!(t.received, 9);
        assert_eq!(t.unique, 7); // 0 1 2 3 4 5 7: 6 is lost
        assert_eq!(t.duplicates, 2);
        assert_eq!(t.reordered, 1);
        // A big jump clears the window; old numbers are then "late".
        t.record(10 * WINDOW, 5);
        t.record(1, 5);
        assert_eq!(t.late, 1);
        assert_eq!(t.percentile(50.0), 1000);
        assert!(t.cdf().last().unwrap().1 == 1.0);
    }
}
