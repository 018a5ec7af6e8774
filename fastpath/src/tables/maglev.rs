//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI 2016, §3.4).
//!
//! A Service's backends are spread over a lookup table of `M` slots (`M` prime, `M ≫ N`); a flow
//! picks the backend in slot `f(flow_hash)`. The table is built exactly as the paper's
//! *Pseudo-code 1: Populate Maglev hashing lookup table*:
//!
//! * every backend `i` has a preference list (a permutation of `0..M`):
//!   `offset = h1(name_i) mod M`, `skip = h2(name_i) mod (M − 1) + 1`,
//!   `permutation[i][j] = (offset + j · skip) mod M` — a full permutation because `M` is prime
//!   and `1 ≤ skip ≤ M − 1`;
//! * the backends take turns (round robin, in input order); on its turn a backend claims its
//!   next preferred slot that is still empty; this repeats until all `M` slots are full.
//!
//! The permutation matrix is never materialised: each backend only keeps where it is in its
//! preference list (`offset + next · skip mod M`, advanced by adding `skip`), so a build allocates
//! the table plus O(N) and runs in the paper's expected O(M log M) steps.
//!
//! Properties the tests check: every backend owns `⌊M/N⌋` or `⌈M/N⌉` slots; the table depends
//! only on the backends' `(ip, port)` identities and their order, so every node computes the
//! same table; removing or adding one backend moves the `1/N` of flows that must move plus some
//! more, provided `M` stays the same (see [`MaglevTable::size_for`]). Maglev trades that extra
//! disruption for perfect balance; it grows with `N` at a fixed `M/N` and shrinks as `M/N`
//! grows. Measured on removal of one backend (whole hash space): N = 10, M = 1021: 1.2/N;
//! N = 100, M = 16381: 2.3/N (M = 65521: 1.6/N); N = 1000, M = 65521: 6.7/N.
//!
//! **Stability contract.** `h1`, `h2`, the prime list in [`MaglevTable::size_for`] and the
//! slot reduction in [`MaglevTable::lookup`] are part of the wire-visible behaviour: all nodes
//! must map a flow to the same backend, including nodes running different podlane versions
//! during an upgrade. `tests::pinned_*` pin them; do not change them.

use core::net::Ipv4Addr;

/// Marks an empty slot while populating. Backend indices are `< MAX_BACKENDS = u16::MAX`, so
/// they never collide with it.
const EMPTY: u16 = u16::MAX;

/// Table sizes [`MaglevTable::size_for`] chooses from: primes just below powers of two
/// (the same list Cilium uses). Part of the stability contract.
const PRIMES: [usize; 9] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521];
/// Size used only when there are more backends than [`MaglevTable::SIZE_CAP`] slots.
const PRIME_ABOVE_CAP: usize = 131_071;

/// Errors from building a [`MaglevTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// More backends than [`MaglevTable::MAX_BACKENDS`] (slot entries are `u16` indices).
    #[error("too many backends: {n} (maximum {max})")]
    TooManyBackends {
        /// Backends given.
        n: usize,
        /// [`MaglevTable::MAX_BACKENDS`].
        max: usize,
    },
    /// The table size is not prime (the preference lists would not be permutations).
    #[error("Maglev table size {size} is not prime")]
    SizeNotPrime {
        /// Requested size.
        size: usize,
    },
    /// The table size is smaller than the number of backends (some would get no slot).
    #[error("Maglev table size {size} is smaller than the number of backends {n}")]
    SizeTooSmall {
        /// Requested size.
        size: usize,
        /// Backends given.
        n: usize,
    },
    /// The table size is above [`MaglevTable::MAX_SIZE`].
    #[error("Maglev table size {size} is above the maximum {max}")]
    SizeTooLarge {
        /// Requested size.
        size: usize,
        /// [`MaglevTable::MAX_SIZE`].
        max: usize,
    },
}

/// A Maglev lookup table: for each of `M` slots, the index (into the backend slice it was built
/// from) of the backend owning that slot. Empty when built from no backends.
///
/// A backend's identity for hashing is its `(Ipv4Addr, u16)` pair: the same `(ip, port)` hashes
/// the same on every node and every run (no per-process seed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MaglevTable {
    /// Backend index per slot; empty when there are no backends.
    entries: Box<[u16]>,
}

impl MaglevTable {
    /// Most backends a table can hold: slots store `u16` indices, and `u16::MAX` is reserved as
    /// the "empty slot" marker while populating.
    pub const MAX_BACKENDS: usize = 65535;
    /// Largest size [`size_for`](Self::size_for) normally picks (largest prime below 2^16).
    pub const SIZE_CAP: usize = 65521;
    /// Largest size [`build_with_size`](Self::build_with_size) accepts (32 MiB of `u16`); also
    /// keeps the multiply-shift reduction in [`lookup`](Self::lookup) far inside its `≤ 2^32`
    /// range.
    pub const MAX_SIZE: usize = 1 << 24;

    /// The table size for `n_backends`: the smallest prime of the fixed list
    /// `251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521` that is `≥ 100 × n_backends`
    /// (so at least 251), capped at 65521.
    ///
    /// Why `100 × n`: with `M` slots shared round-robin, each backend owns `⌊M/N⌋` or `⌈M/N⌉`
    /// slots, so the spread of hash space between backends is at most `1/⌊M/N⌋`; the paper
    /// (§3.4) recommends `M > 100 × N` to keep that difference at about 1% or less, and a larger
    /// `M` also lowers the disruption when the backend set changes. Going further costs memory:
    /// the table is `2 × M` bytes, so e.g. 10,000 Services × 10 backends (`M = 1021`) is about
    /// 20 MB, per copy, per node. Beyond 655 backends the cap wins (`M/N` falls below 100, still
    /// ≥ 1 slot per backend up to 65521 backends).
    ///
    /// One exception to the cap: for more than 65521 backends (up to [`Self::MAX_BACKENDS`]) it
    /// returns 131071, so that every backend still owns at least one slot.
    ///
    /// Note: a change of `M` reshuffles almost every flow. When a Service's backend count
    /// crosses a list boundary (e.g. 10 → 11 backends moves `M` from 1021 to 2039) a caller
    /// that wants minimal disruption should keep the old size with
    /// [`build_with_size`](Self::build_with_size) while it is still `≥ n`.
    pub fn size_for(n_backends: usize) -> usize {
        let want = n_backends.saturating_mul(100);
        match PRIMES.iter().find(|&&p| p >= want) {
            Some(&p) => p,
            None if n_backends <= Self::SIZE_CAP => Self::SIZE_CAP,
            None => PRIME_ABOVE_CAP,
        }
    }

    /// Builds the table for `backends` with size [`size_for(backends.len())`](Self::size_for).
    ///
    /// No backends → an empty table ([`lookup`](Self::lookup) returns `None`). More than
    /// [`Self::MAX_BACKENDS`] → [`MaglevError::TooManyBackends`]. Backends are identified by
    /// their `(ip, port)`; duplicates are allowed (they then share one preference list and split
    /// its slots) but are pointless.
    pub fn build(backends: &[(Ipv4Addr, u16)]) -> Result<MaglevTable, MaglevError> {
        Self::build_with_size(backends, Self::size_for(backends.len()))
    }

    /// Builds the table for `backends` with `size` slots. `size` must be prime, `≥
    /// backends.len()` and `≤` [`Self::MAX_SIZE`] (checked even when `backends` is empty).
    pub fn build_with_size(
        backends: &[(Ipv4Addr, u16)],
        size: usize,
    ) -> Result<MaglevTable, MaglevError> {
        let n = backends.len();
        if n > Self::MAX_BACKENDS {
            return Err(MaglevError::TooManyBackends {
                n,
                max: Self::MAX_BACKENDS,
            });
        }
        if size > Self::MAX_SIZE {
            return Err(MaglevError::SizeTooLarge {
                size,
                max: Self::MAX_SIZE,
            });
        }
        if !is_prime(size) {
            return Err(MaglevError::SizeNotPrime { size });
        }
        if size < n {
            return Err(MaglevError::SizeTooSmall { size, n });
        }
        if n == 0 {
            return Ok(MaglevTable::default());
        }
        Ok(MaglevTable {
            entries: populate(backends, size),
        })
    }

    /// The index into the backend slice for a flow hash, or `None` if the table is empty.
    ///
    /// The slot is `(flow_hash × M) >> 32` (Lemire's multiply-shift range reduction) rather than
    /// `flow_hash mod M`: one multiply instead of a division (a 64-bit `div` costs tens of
    /// cycles on the cores we target, a multiply ~3), and it is just as even — it maps `2^32/M`
    /// consecutive hash values to each slot, so every slot gets `⌊2^32/M⌋` or `⌈2^32/M⌉` of the
    /// hash space, exactly like `mod`. It relies on the *high* bits of the hash, which is fine
    /// for the flow hashes we use (Toeplitz RSS or a full-avalanche software hash); a hash whose
    /// entropy were only in the low bits would be unsuitable. This mapping is part of the
    /// stability contract (every node must pick the same slot).
    ///
    /// The only branch is the slice bounds check, which doubles as the empty check: on an empty
    /// table the index is 0 and `get` returns `None`; otherwise the index is always `< M`.
    #[inline]
    pub fn lookup(&self, flow_hash: u32) -> Option<u16> {
        let slot = ((u64::from(flow_hash) * self.entries.len() as u64) >> 32) as usize;
        self.entries.get(slot).copied()
    }

    /// Number of slots `M` (0 for an empty table).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the table was built from no backends.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The backend index of every slot.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }
}

/// Pseudo-code 1 of the paper, with the permutation computed on the fly. Requires `m` prime,
/// `1 ≤ n ≤ m`, `n ≤ MAX_BACKENDS`.
fn populate(backends: &[(Ipv4Addr, u16)], m: usize) -> Box<[u16]> {
    // Per backend: its next candidate slot `permutation[i][next[i]]`, and its skip.
    let mut cursor: Vec<(usize, usize)> = backends
        .iter()
        .map(|&(ip, port)| {
            let key = backend_key(ip, port);
            let offset = (h1(key) % m as u64) as usize;
            let skip = if m == 1 {
                // Unreachable for a prime `m`; keeps the arithmetic total.
                1
            } else {
                (h2(key) % (m as u64 - 1)) as usize + 1
            };
            (offset, skip)
        })
        .collect();
    let mut entries = vec![EMPTY; m];
    let mut filled = 0usize;
    'fill: loop {
        for (i, (next, skip)) in cursor.iter_mut().enumerate() {
            let (mut c, skip) = (*next, *skip);
            // Terminates: the table is not full and the preference list covers every slot.
            while entries[c] != EMPTY {
                c += skip;
                if c >= m {
                    c -= m;
                }
            }
            entries[c] = i as u16;
            c += skip;
            if c >= m {
                c -= m;
            }
            *next = c;
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    entries.into_boxed_slice()
}

/// A backend's 6-byte identity (IPv4 octets, then port big-endian) packed into the low 48 bits.
fn backend_key(ip: Ipv4Addr, port: u16) -> u64 {
    let o = ip.octets();
    let p = port.to_be_bytes();
    u64::from_be_bytes([0, 0, o[0], o[1], o[2], o[3], p[0], p[1]])
}

/// `h1`: MurmurHash3's `fmix64` finaliser over the key xor a fixed constant (the fractional
/// bits of √2, so that the all-zero key does not hash to 0). Seedless; stable forever.
fn h1(key: u64) -> u64 {
    let mut k = key ^ 0x6a09_e667_f3bc_c908;
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// `h2`: the SplitMix64 output function (Stafford's mix13) over the key plus the golden-ratio
/// increment — different constants and shifts from `h1`. Seedless; stable forever.
fn h2(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Trial division; sizes are at most `MAX_SIZE = 2^24`, so at most ~2,000 divisions.
fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// xorshift64* — a seeded, dependency-free source of flow hashes.
    struct XorShift(u64);
    impl XorShift {
        fn next_u32(&mut self) -> u32 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
        }
    }

    /// `n` distinct backends 10.x.y.z:8080 (plus a varying port so the keys differ in both).
    fn backends(n: usize) -> Vec<(Ipv4Addr, u16)> {
        (0..n)
            .map(|i| {
                let i = u32::try_from(i).unwrap();
                (Ipv4Addr::from(0x0a00_0001 + i), 8080 + (i % 7) as u16)
            })
            .collect()
    }

    fn slot_counts(t: &MaglevTable, n: usize) -> Vec<usize> {
        let mut c = vec![0usize; n];
        for &e in t.entries() {
            c[usize::from(e)] += 1;
        }
        c
    }

    fn assert_balanced(t: &MaglevTable, n: usize) {
        let m = t.len();
        assert!(
            t.entries().iter().all(|&e| usize::from(e) < n),
            "unfilled or bad slot"
        );
        for (i, c) in slot_counts(t, n).into_iter().enumerate() {
            assert!(
                c == m / n || c == m.div_ceil(n),
                "backend {i}: {c} slots, M={m}, N={n}"
            );
        }
    }

    #[test]
    fn prime_list_is_prime_and_sizes() {
        for p in PRIMES.iter().chain([&PRIME_ABOVE_CAP]) {
            assert!(is_prime(*p), "{p}");
        }
        assert!(!is_prime(0) && !is_prime(1) && is_prime(2) && is_prime(3) && !is_prime(9));
        assert_eq!(MaglevTable::size_for(0), 251);
        assert_eq!(MaglevTable::size_for(1), 251);
        assert_eq!(MaglevTable::size_for(2), 251);
        assert_eq!(MaglevTable::size_for(3), 509);
        assert_eq!(MaglevTable::size_for(10), 1021);
        assert_eq!(MaglevTable::size_for(11), 2039);
        assert_eq!(MaglevTable::size_for(100), 16381);
        assert_eq!(MaglevTable::size_for(655), 65521);
        assert_eq!(MaglevTable::size_for(656), 65521);
        assert_eq!(MaglevTable::size_for(1000), 65521);
        assert_eq!(MaglevTable::size_for(65521), 65521);
        assert_eq!(MaglevTable::size_for(65522), 131_071);
        assert_eq!(MaglevTable::size_for(MaglevTable::MAX_BACKENDS), 131_071);
        assert_eq!(MaglevTable::size_for(usize::MAX), 131_071);
        for n in 1..=2000 {
            assert!(MaglevTable::size_for(n) >= (100 * n).min(65521));
        }
    }

    // (a) every slot filled, every backend gets ⌊M/N⌋ or ⌈M/N⌉ slots.
    #[test]
    fn every_slot_filled_and_balanced() {
        for n in [1, 2, 3, 7, 10, 100, 250, 655, 1000] {
            let b = backends(n);
            let t = MaglevTable::build(&b).unwrap();
            assert_eq!(t.len(), MaglevTable::size_for(n));
            assert!(!t.is_empty());
            assert_balanced(&t, n);
        }
        // M = N and tiny primes work too.
        for (n, m) in [(1, 2), (2, 2), (3, 3), (5, 5), (4, 5), (251, 251)] {
            let t = MaglevTable::build_with_size(&backends(n), m).unwrap();
            assert_eq!(t.len(), m);
            assert_balanced(&t, n);
        }
    }

    // (b) flow shares within ±5% (relative) of 1/N.
    //
    // With 100,000 flows the sampling noise alone is σ/mean = √((N−1)/100,000): 0.14% for N=3,
    // 0.95% for N=10 but 3.1% for N=100, where ±5% is only 1.6σ per backend and with 100
    // backends some backend falls outside with near certainty — that would test the random
    // numbers, not the table. So N=100 uses 20,000 flows per backend (2,000,000; σ = 0.7%),
    // i.e. max(100,000, 20,000·N) flows. The table's own skew (slot counts) is asserted ≤ 1%.
    #[test]
    fn flow_shares_within_5_percent() {
        for n in [3usize, 10, 100] {
            let b = backends(n);
            let t = MaglevTable::build(&b).unwrap();
            let slots = slot_counts(&t, n);
            let ideal = t.len() as f64 / n as f64;
            for &s in &slots {
                assert!(
                    (s as f64 - ideal).abs() / ideal <= 0.01,
                    "slot skew {s} vs {ideal}"
                );
            }
            let flows = 100_000.max(20_000 * n);
            let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ n as u64);
            let mut hits = vec![0usize; n];
            for _ in 0..flows {
                hits[usize::from(t.lookup(rng.next_u32()).unwrap())] += 1;
            }
            let expect = flows as f64 / n as f64;
            let worst = hits
                .iter()
                .map(|&h| (h as f64 - expect).abs() / expect)
                .fold(0.0, f64::max);
            println!("N={n} flows={flows}: worst relative deviation {worst:.4}");
            assert!(worst <= 0.05, "N={n}: worst relative deviation {worst}");
        }
    }

    /// Pseudo-code 1 of the paper, literally: the permutation matrix materialised, `next[i]`
    /// and `entry[j] = -1` as in the listing. Only for comparing against `populate`.
    fn reference_populate(backends: &[(Ipv4Addr, u16)], m: usize) -> Vec<u16> {
        let n_b = backends.len();
        let permutation: Vec<Vec<usize>> = backends
            .iter()
            .map(|&(ip, port)| {
                let key = backend_key(ip, port);
                let offset = (h1(key) % m as u64) as usize;
                let skip = (h2(key) % (m as u64 - 1)) as usize + 1;
                (0..m).map(|j| (offset + j * skip) % m).collect()
            })
            .collect();
        let mut next = vec![0usize; n_b];
        let mut entry = vec![-1i64; m];
        let mut n = 0;
        loop {
            for i in 0..n_b {
                let mut c = permutation[i][next[i]];
                while entry[c] >= 0 {
                    next[i] += 1;
                    c = permutation[i][next[i]];
                }
                entry[c] = i as i64;
                next[i] += 1;
                n += 1;
                if n == m {
                    return entry.into_iter().map(|e| e as u16).collect();
                }
            }
        }
    }

    #[test]
    fn matches_paper_pseudo_code() {
        for (n, m) in [
            (1, 2),
            (2, 2),
            (3, 3),
            (3, 509),
            (5, 251),
            (10, 1021),
            (37, 4093),
            (100, 16381),
            (250, 16381),
        ] {
            let b = backends(n);
            let t = MaglevTable::build_with_size(&b, m).unwrap();
            assert_eq!(t.entries(), &reference_populate(&b, m)[..], "N={n} M={m}");
        }
    }

    /// How a change of backend set moves flows. `changed`: fraction of flows whose backend
    /// identity differs. `forced`: fraction that had to move (old backend removed, or new
    /// backend newly added). `needless`: changed but not forced (a surviving backend's flow
    /// handed to another surviving backend).
    #[derive(Debug)]
    struct Moved {
        changed: f64,
        forced: f64,
        needless: f64,
    }

    fn moved(
        old: &[(Ipv4Addr, u16)],
        new: &[(Ipv4Addr, u16)],
        m: usize,
        flow_hashes: impl Iterator<Item = u32>,
    ) -> Moved {
        let to = MaglevTable::build_with_size(old, m).unwrap();
        let tn = MaglevTable::build_with_size(new, m).unwrap();
        let (mut total, mut changed, mut forced, mut needless) = (0usize, 0, 0, 0);
        for h in flow_hashes {
            let ob = old[usize::from(to.lookup(h).unwrap())];
            let nb = new[usize::from(tn.lookup(h).unwrap())];
            let must = !new.contains(&ob) || !old.contains(&nb);
            total += 1;
            forced += usize::from(must);
            if ob != nb {
                changed += 1;
                needless += usize::from(!must);
            }
        }
        let f = |x: usize| x as f64 / total as f64;
        Moved {
            changed: f(changed),
            forced: f(forced),
            needless: f(needless),
        }
    }

    /// Every slot once: with the same `M` on both sides this is the exact fraction of hash space
    /// that moves (multiply-shift gives each slot ⌊2^32/M⌋ or ⌈2^32/M⌉ hash values).
    fn moved_exact(old: &[(Ipv4Addr, u16)], new: &[(Ipv4Addr, u16)], m: usize) -> Moved {
        let m64 = m as u64;
        moved(
            old,
            new,
            m,
            (0..m64).map(move |s| (s << 32).div_ceil(m64) as u32),
        )
    }

    // (c) removing / adding one backend (same M before and after).
    //
    // The brief asked for changed ≤ 1.6/N. That holds for N = 10 but NOT for N = 100 at
    // M = size_for(100) = 16381: Maglev (exactly as in the paper) hands some surviving
    // backends' slots to other survivors, and this excess grows with N at a fixed M/N and
    // shrinks as M/N grows (Envoy's docs: "approximately double the keys will move" vs ring
    // hash). Measured here (200,000 seeded flows; `exact` = over all M slots):
    //   remove, N=10,   M=1021:  changed 0.1212 = 1.21/N   (exact 1.205/N);   needless 0.020
    //   add, N=10→11,   M=1021:  changed 0.1222 = 1.34/(N+1) (exact 1.357/(N+1)); needless 0.034
    //   remove, N=100,  M=16381: changed 0.0227 = 2.27/N   (exact 2.289/N);   needless 0.013
    //   add, N=100→101, M=16381: changed 0.0233 = 2.35/(N+1) (exact 2.324/(N+1)); needless 0.013
    // Means over 20 random backend sets (exact, remove): N=10/M=1021 1.26/N;
    // N=100/M=16381 2.34/N (max 2.47/N); N=100/M=65521 1.55/N; N=100/M=262139 1.24/N;
    // N=1000/M=65521 6.7/N. So the bound asserted is 1.6/N for N=10 and 2.6/N for N=100, and
    // `disruption_shrinks_as_m_grows` asserts the trend. In absolute terms a removal moves
    // 12% of flows at N=10, 2.3% at N=100, 0.7% at N=1000; the conntrack table keeps
    // established flows on their backend anyway (paper §3.3), so this only affects new flows
    // and flows whose conntrack entry is lost.
    //
    // Keeping M matters far more: size_for(11) = 2039 ≠ 1021, and a new M moves most flows
    // (asserted at the end).
    #[test]
    fn disruption_on_remove_and_add() {
        const FLOWS: usize = 200_000;
        for (n, bound) in [(10usize, 1.6), (100, 2.6)] {
            let all = backends(n + 1);
            let b = &all[..n];
            let m = MaglevTable::size_for(n);
            let nf = n as f64;
            let mut rng = XorShift(0x5eed ^ n as u64);
            let flows: Vec<u32> = (0..FLOWS).map(|_| rng.next_u32()).collect();

            // Remove one backend from the middle.
            let mut removed = b.to_vec();
            removed.remove(n / 2);
            let r = moved(b, &removed, m, flows.iter().copied());
            let ex = moved_exact(b, &removed, m);
            println!(
                "remove N={n} M={m}: {r:?} = {:.3}/N (exact {:.3}/N)",
                r.changed * nf,
                ex.changed * nf
            );
            assert!(r.changed >= r.forced && ex.changed >= ex.forced);
            // The removed backend's exact share is ⌊M/N⌋ or ⌈M/N⌉ slots (≥ 0.99/N).
            assert!(ex.forced >= 0.99 / nf && ex.changed >= 1.0 / nf, "{ex:?}");
            assert!(r.changed >= 0.97 / nf, "N={n}: {r:?}");
            assert!(
                r.changed <= bound / nf && ex.changed <= bound / nf,
                "N={n}: {r:?} {ex:?}"
            );
            // Flows on surviving backends mostly stay: far fewer needless moves than forced.
            assert!(r.needless <= 1.6 * r.forced, "N={n}: {r:?}");
            assert!(r.needless <= 0.03, "N={n}: {r:?}");

            // Add one backend.
            let n1 = nf + 1.0;
            let a = moved(b, &all, m, flows.iter().copied());
            let ex = moved_exact(b, &all, m);
            println!(
                "add N={n}->{} M={m}: {a:?} = {:.3}/(N+1) (exact {:.3}/(N+1))",
                n + 1,
                a.changed * n1,
                ex.changed * n1
            );
            assert!(ex.forced >= 0.99 / n1 && ex.changed >= ex.forced, "{ex:?}");
            assert!(a.changed >= 0.97 / n1, "N={n}+1: {a:?}");
            assert!(
                a.changed <= bound / n1 && ex.changed <= bound / n1,
                "N={n}+1: {a:?}"
            );
            assert!(
                a.needless <= 1.6 * a.forced && a.needless <= 0.04,
                "N={n}+1: {a:?}"
            );
        }
        // Changing M instead reshuffles most flows (why callers should keep M).
        let b = backends(11);
        let t1 = MaglevTable::build_with_size(&b, 1021).unwrap();
        let t2 = MaglevTable::build_with_size(&b, 2039).unwrap();
        let same = t1
            .entries()
            .iter()
            .enumerate()
            .filter(|&(s, &e)| t2.lookup(((s as u64) << 32).div_ceil(1021) as u32) == Some(e))
            .count();
        assert!(same < 1021 / 2, "{same}");
    }

    #[test]
    fn disruption_shrinks_as_m_grows() {
        let b = backends(100);
        let mut removed = b.clone();
        removed.remove(50);
        let mut last = f64::INFINITY;
        for (m, bound) in [(16381, 2.6), (65521, 1.7), (262_139, 1.35)] {
            let ex = moved_exact(&b, &removed, m);
            println!("remove N=100 M={m}: exact {:.3}/N", ex.changed * 100.0);
            assert!(ex.changed * 100.0 <= bound, "M={m}: {ex:?}");
            assert!(ex.changed < last);
            last = ex.changed;
        }
    }

    // (d) deterministic.
    #[test]
    fn deterministic() {
        let b = backends(37);
        let t1 = MaglevTable::build(&b).unwrap();
        let t2 = MaglevTable::build(&b.clone()).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(t1.entries(), t2.entries());
    }

    // (e) empty table, too many backends, bad sizes.
    #[test]
    fn empty_and_errors() {
        let t = MaglevTable::build(&[]).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert!(t.entries().is_empty());
        for h in [0, 1, 0x8000_0000, u32::MAX] {
            assert_eq!(t.lookup(h), None);
        }
        assert_eq!(MaglevTable::default(), t);
        assert_eq!(
            MaglevTable::build_with_size(&[], 251).unwrap().lookup(5),
            None
        );

        let too_many = vec![(Ipv4Addr::LOCALHOST, 1); MaglevTable::MAX_BACKENDS + 1];
        assert_eq!(
            MaglevTable::build(&too_many),
            Err(MaglevError::TooManyBackends {
                n: 65536,
                max: 65535
            })
        );
        let b = backends(3);
        assert_eq!(
            MaglevTable::build_with_size(&b, 1000),
            Err(MaglevError::SizeNotPrime { size: 1000 })
        );
        for size in [0, 1, 4, 65535] {
            assert_eq!(
                MaglevTable::build_with_size(&b, size),
                Err(MaglevError::SizeNotPrime { size })
            );
        }
        assert_eq!(
            MaglevTable::build_with_size(&b, 2),
            Err(MaglevError::SizeTooSmall { size: 2, n: 3 })
        );
        assert_eq!(
            MaglevTable::build_with_size(&b, MaglevTable::MAX_SIZE + 1),
            Err(MaglevError::SizeTooLarge {
                size: MaglevTable::MAX_SIZE + 1,
                max: MaglevTable::MAX_SIZE
            })
        );
        assert_eq!(
            MaglevTable::build_with_size(&[], 4),
            Err(MaglevError::SizeNotPrime { size: 4 })
        );
        assert!(!MaglevError::SizeNotPrime { size: 4 }.to_string().is_empty());
    }

    #[test]
    fn lookup_covers_all_slots_in_order() {
        // Multiply-shift: hash 0 → slot 0, u32::MAX → slot M−1, monotone in between.
        let t = MaglevTable::build(&backends(5)).unwrap();
        let m = t.len() as u64;
        assert_eq!(t.lookup(0), Some(t.entries()[0]));
        assert_eq!(t.lookup(u32::MAX), Some(t.entries()[t.len() - 1]));
        for slot in 0..m {
            // First hash value of each slot.
            let h = ((slot << 32).div_ceil(m)) as u32;
            assert_eq!(t.lookup(h), Some(t.entries()[slot as usize]));
        }
    }

    // (f) build speed: 1000 backends at M = 65521.
    #[test]
    fn build_1000_backends_is_fast() {
        let b = backends(1000);
        let start = std::time::Instant::now();
        let t = MaglevTable::build_with_size(&b, 65521).unwrap();
        let took = start.elapsed();
        println!("build N=1000 M=65521: {took:?}");
        assert_balanced(&t, 1000);
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    }

    // Stability pins: a change here changes which backend every node picks for a flow.
    #[test]
    fn pinned_hashes() {
        let k = backend_key(Ipv4Addr::new(10, 0, 0, 1), 8080);
        assert_eq!(k, 0x0000_0a00_0001_1f90);
        assert_eq!(h1(k), PIN_H1);
        assert_eq!(h2(k), PIN_H2);
        assert_ne!(h1(0), 0);
        assert_ne!(h2(0), 0);
    }

    // Cross-checked against an independent Python transcription of h1/h2 and Pseudo-code 1.
    const PIN_H1: u64 = 0x67c5_8578_1995_ac7a;
    const PIN_H2: u64 = 0x646a_3c1b_1ef8_0515;
    /// First 32 slots of the table for 10.0.0.1..=5:8080 (M = 509).
    const PIN_ENTRIES: [u16; 32] = [
        3, 0, 1, 0, 2, 2, 0, 1, 0, 4, 0, 2, 3, 1, 4, 1, 4, 0, 1, 2, 3, 1, 0, 1, 2, 3, 1, 4, 1, 2,
        3, 0,
    ];
    const PIN_LOOKUPS: [u16; 8] = [3, 3, 1, 0, 4, 0, 2, 2];

    #[test]
    fn pinned_table() {
        let b: Vec<(Ipv4Addr, u16)> = (1..=5)
            .map(|i| (Ipv4Addr::new(10, 0, 0, i), 8080))
            .collect();
        let t = MaglevTable::build(&b).unwrap();
        assert_eq!(t.len(), 509);
        assert_eq!(t.entries()[..32], PIN_ENTRIES);
        let hashes = [
            0u32,
            1,
            0x1234_5678,
            0x8000_0000,
            0xdead_beef,
            0xcafe_babe,
            0xffff_0000,
            u32::MAX,
        ];
        let got: Vec<u16> = hashes.iter().map(|&h| t.lookup(h).unwrap()).collect();
        assert_eq!(got, PIN_LOOKUPS);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn prop_balanced_any_prime(n in 1usize..300, extra in 0usize..3000, seed: u32) {
            let mut m = n + extra;
            while !is_prime(m) { m += 1; }
            let b: Vec<(Ipv4Addr, u16)> = (0..n)
                .map(|i| (Ipv4Addr::from(seed.wrapping_add((i as u32).wrapping_mul(2_654_435_761))), 443))
                .collect();
            let t = MaglevTable::build_with_size(&b, m).unwrap();
            prop_assert_eq!(t.len(), m);
            let counts = slot_counts(&t, n);
            for c in counts {
                prop_assert!(c == m / n || c == m.div_ceil(n));
            }
        }
    }
}
