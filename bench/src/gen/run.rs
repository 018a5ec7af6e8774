//! The DPDK side of the generator: ports, the paced transmit loop (a token bucket on the
//! TSC), the receive side, trials, the zero-loss search.

use std::sync::Arc;
use std::time::Duration;

use dpdk::eal::{rdtsc, tsc_hz};
use dpdk::{Burst, PktPool, Port, PortConfig};
use fastpath::buf::PacketBuf;

use super::profile::{Side, Template};
use super::stamp;
use super::track::Tracker;

/// The generator's ports: the pods' and the uplink's other ends. Any may be absent; the one a
/// profile sends on must be there.
#[derive(Debug, Default)]
pub struct Ports {
    /// Pod A's side.
    pub pod_a: Option<Port>,
    /// Pod B's side.
    pub pod_b: Option<Port>,
    /// The uplink's side.
    pub uplink: Option<Port>,
}

impl Ports {
    /// The port of `side`.
    pub fn get(&self, side: Side) -> Option<&Port> {
        match side {
            Side::PodA => self.pod_a.as_ref(),
            Side::PodB => self.pod_b.as_ref(),
            Side::Uplink => self.uplink.as_ref(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Port> {
        self.pod_a
            .iter()
            .chain(self.pod_b.iter())
            .chain(self.uplink.iter())
    }

    /// Attaches and starts the given devices (devargs) on `pool`.
    pub fn open(
        eal: &dpdk::Eal,
        pool: &Arc<PktPool>,
        pod_a: Option<&str>,
        pod_b: Option<&str>,
        uplink: Option<&str>,
    ) -> Result<Ports, String> {
        let cfg = PortConfig {
            rx_desc: 1024,
            tx_desc: 1024,
            ..PortConfig::default()
        };
        let open = |d: Option<&str>| -> Result<Option<Port>, String> {
            let Some(d) = d else { return Ok(None) };
            let id = eal.attach(d).map_err(|e| e.to_string())?;
            Port::start(id, &cfg, pool)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        Ok(Ports {
            pod_a: open(pod_a)?,
            pod_b: open(pod_b)?,
            uplink: open(uplink)?,
        })
    }
}

/// What one trial measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trial {
    /// Offered rate, packets per second (None: as fast as the generator goes).
    pub offered_pps: Option<f64>,
    /// Seconds of sending.
    pub seconds: f64,
    /// Packets the generator tried to send.
    pub attempted: u64,
    /// Packets the transmit queue took.
    pub sent: u64,
    /// Packets the transmit queue refused (a full ring: the device under test is not keeping
    /// up); counted as lost.
    pub refused: u64,
    /// Packets received with a signature.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// attempted − unique.
    pub lost: u64,
    /// lost / attempted.
    pub loss_ratio: f64,
    /// Received after a higher sequence number.
    pub reordered: u64,
    /// Received twice.
    pub duplicates: u64,
    /// Frames without a signature.
    pub foreign: u64,
    /// Achieved transmit rate, Mpps (sent / seconds).
    pub tx_mpps: f64,
    /// Rate the generator actually offered, Mpps (attempted / seconds): below the asked rate
    /// when the generator itself was starved of CPU.
    pub offered_mpps: f64,
    /// The generator offered at least 97% of the asked rate (else the trial says nothing
    /// about the device under test, and the search counts it as a failure).
    pub valid: bool,
    /// Received rate, Mpps.
    pub rx_mpps: f64,
    /// Latency percentiles, nanoseconds.
    pub latency_ns: Latency,
    /// The latency CDF: (nanoseconds, fraction).
    pub cdf: Vec<(u64, f64)>,
}

/// Latency percentiles, nanoseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    /// Minimum.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// The generator: templates of one profile, a pool, ports.
#[derive(Debug)]
pub struct Generator<'p> {
    /// Its ports.
    pub ports: &'p Ports,
    /// Its mbuf pool.
    pub pool: &'p PktPool,
    /// The flows, sent round robin.
    pub templates: &'p [Template],
    /// Packets per transmit burst at most.
    pub burst: usize,
}

impl Generator<'_> {
    /// Sends at `rate_pps` (None: flat out) for `secs`, receiving all the while and for
    /// `drain` after, and reports.
    pub fn trial(
        &self,
        rate_pps: Option<f64>,
        secs: f64,
        drain: Duration,
    ) -> Result<Trial, String> {
        let side = self.templates.first().ok_or("no flows")?.ingress;
        let tx = self
            .ports
            .get(side)
            .ok_or_else(|| format!("profile sends on {side:?}, which has no device"))?;
        let hz = tsc_hz().max(1);
        let ns_per_tick = 1e9 / hz as f64;
        let mut track = Tracker::new();
        let start = rdtsc();
        let end = start + (secs * hz as f64) as u64;
        let drain_end_extra = (drain.as_secs_f64() * hz as f64) as u64;
        let burst_max = self.burst.clamp(1, dpdk::mbuf::BURST);
        let mut tokens = 0.0f64;
        let mut last = start;
        let (mut seq, mut flow) = (0u64, 0usize);
        let (mut attempted, mut sent, mut refused) = (0u64, 0u64, 0u64);
        let mut out = Burst::new();
        let mut rx = Burst::new();
        let n_flows = self.templates.len();
        let mut sending = true;
        let mut tx_end = end;
        loop {
            let now = rdtsc();
            if sending && now >= end {
                sending = false;
                tx_end = now;
            }
            if !sending && now >= tx_end + drain_end_extra {
                break;
            }
            if sending {
                let n = match rate_pps {
                    Some(r) => {
                        tokens += (now - last) as f64 * r / hz as f64;
                        // At most one burst of credit: a stall does not turn into a burst.
                        tokens = tokens.min(burst_max as f64);
                        last = now;
                        tokens as usize
                    }
                    None => burst_max,
                };
                if n > 0 {
                    let ts = rdtsc();
                    for _ in 0..n {
                        let t = &self.templates[flow];
                        let mut m = self.pool.alloc_frame(&t.frame).map_err(|e| e.to_string())?;
                        stamp::write(&mut m.data_mut()[t.stamp_at..], seq as u32, ts);
                        seq += 1;
                        flow += 1;
                        if flow == n_flows {
                            flow = 0;
                        }
                        let _ = out.push(m);
                    }
                    let k = tx.tx_burst(0, &mut out);
                    attempted += n as u64;
                    sent += k as u64;
                    refused += (n - k) as u64;
                    out.clear(); // refused mbufs go back to the pool
                    if rate_pps.is_some() {
                        tokens -= n as f64;
                    }
                }
            }
            for p in self.ports.all() {
                p.rx_burst(0, &mut rx);
                let now_rx = rdtsc();
                for m in rx.iter() {
                    let d = m.data();
                    match stamp::find(d, 42).and_then(|at| stamp::read(&d[at..])) {
                        Some(s) => {
                            let lat = now_rx.saturating_sub(s.tsc) as f64 * ns_per_tick;
                            track.record(u64::from(s.seq), lat as u64);
                        }
                        None => track.foreign += 1,
                    }
                }
                rx.clear();
            }
        }
        let secs = (tx_end - start) as f64 / hz as f64;
        let h = &track.hist;
        let lost = attempted.saturating_sub(track.unique);
        Ok(Trial {
            offered_pps: rate_pps,
            seconds: secs,
            attempted,
            sent,
            refused,
            received: track.received,
            unique: track.unique,
            lost,
            loss_ratio: if attempted > 0 {
                lost as f64 / attempted as f64
            } else {
                0.0
            },
            reordered: track.reordered,
            duplicates: track.duplicates,
            foreign: track.foreign,
            tx_mpps: sent as f64 / secs / 1e6,
            offered_mpps: attempted as f64 / secs / 1e6,
            valid: rate_pps.is_none_or(|r| attempted as f64 >= 0.97 * r * secs),
            rx_mpps: track.received as f64 / secs / 1e6,
            latency_ns: if h.is_empty() {
                Latency::default()
            } else {
                Latency {
                    min: h.min(),
                    p50: track.percentile(50.0),
                    p90: track.percentile(90.0),
                    p99: track.percentile(99.0),
                    p999: track.percentile(99.9),
                    max: h.max(),
                    mean: h.mean(),
                }
            },
            cdf: track.cdf(),
        })
    }

    /// Sends slowly until packets come back (the device under test is connected and
    /// forwarding), for at most `timeout`. Returns whether they did.
    pub fn wait_ready(&self, timeout: Duration) -> Result<bool, String> {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < timeout {
            let t = self.trial(Some(10_000.0), 0.2, Duration::from_millis(100))?;
            if t.received > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// RFC 2544 §26.1-style throughput: the highest offered rate whose trial loses at most
    /// `tolerance` of its packets, by binary search between 0 and the generator's own maximum
    /// (a flat-out trial), to a resolution of `resolution` (relative). Returns the rate and
    /// every trial.
    pub fn zero_loss_search(
        &self,
        trial_secs: f64,
        tolerance: f64,
        resolution: f64,
        max_trials: usize,
    ) -> Result<(f64, Vec<Trial>), String> {
        let drain = Duration::from_millis(200);
        let flat = self.trial(None, trial_secs, drain)?;
        let mut trials = vec![flat.clone()];
        let max_pps = flat.attempted as f64 / flat.seconds.max(1e-9);
        if flat.loss_ratio <= tolerance {
            // The device under test keeps up with the generator's maximum.
            return Ok((max_pps, trials));
        }
        let (mut lo, mut hi) = (0.0f64, max_pps);
        while trials.len() < max_trials && (hi - lo) > resolution * hi {
            let r = (lo + hi) / 2.0;
            let t = self.trial(Some(r), trial_secs, drain)?;
            if t.valid && t.loss_ratio <= tolerance {
                lo = r;
            } else {
                hi = r;
            }
            trials.push(t);
        }
        Ok((lo, trials))
    }
}
