//! Connection tracking and NAT state for Service flows. Owned by one worker; fixed capacity,
//! allocated once at start; no allocation, lock or syscall afterwards.
//!
//! One entry holds both directions of a flow: the original tuple (client → ClusterIP:port, or
//! client → node:NodePort) and the reply tuple (backend → client, or backend → node IP:SNAT port).
//! The NAT is implied by the pair: a packet matching one tuple leaves with the *reverse of the
//! other*. Both tuples are keys of one open-addressing index (linear probing, backward-shift
//! deletion, ≤ 50% load), whose slots carry the full 32-bit hash so a probe rarely touches an
//! entry that does not match.
//!
//! Idle timeouts follow the TCP state (SYN, established, closing, closed) and, for UDP, whether
//! the flow was answered. Expired entries are reclaimed by a clock hand that the worker advances
//! a number of entries per elapsed millisecond (the whole table about once a second), and lazily
//! when a lookup meets one. When the table is full, an insert
//! first reclaims an expired entry near the hand and otherwise evicts the least recently used of
//! a few sampled entries — counted, never silent. A closed TCP flow's entry gives its tuples up
//! to a new connection at once ([`Entry::reopened_by`], `Conntrack::take_over`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::counters::{Counters, Event};
use crate::wire::checksum;

/// A 5-tuple, addresses and ports in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Source IP.
    pub src: u32,
    /// Destination IP.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
}

impl FlowKey {
    /// The tuple seen from the other end.
    #[inline(always)]
    pub const fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }

    #[inline(always)]
    fn pack(&self) -> [u64; 2] {
        [
            ((self.src as u64) << 32) | self.dst as u64,
            ((self.sport as u64) << 32) | ((self.dport as u64) << 16) | self.proto as u64,
        ]
    }

    #[inline(always)]
    fn unpack(p: &[u64; 2]) -> FlowKey {
        FlowKey {
            src: (p[0] >> 32) as u32,
            dst: p[0] as u32,
            sport: (p[1] >> 32) as u16,
            dport: (p[1] >> 16) as u16,
            proto: p[1] as u8,
        }
    }

    /// A 32-bit hash of the tuple (multiply-xorshift; good high bits).
    #[inline(always)]
    pub fn hash(&self) -> u32 {
        hash_packed(&self.pack())
    }

    /// A 64-bit hash of the tuple whose top bits are well mixed: the VXLAN source port is its
    /// top 14 bits ([`vxlan::source_port`](crate::wire::vxlan::source_port)). The same mix
    /// as [`FlowKey::hash`], without the fold to 32 bits.
    #[inline(always)]
    pub fn wide_hash(&self) -> u64 {
        self.packed().wide_hash()
    }

    /// The tuple as conntrack stores and hashes it.
    #[inline(always)]
    pub fn packed(&self) -> PackedKey {
        PackedKey(self.pack())
    }

    /// The checksum deltas (RFC 1624 eqn. 3, `Σ(~m + m')`, folded to 16 bits) of rewriting a
    /// packet carrying this tuple to `to`: for the IPv4 header (the addresses) and for TCP/UDP
    /// (the addresses through the pseudo header, and the ports). See
    /// [`checksum::apply_folded`].
    #[inline(always)]
    pub fn rewrite_deltas(&self, to: &FlowKey) -> (u16, u16) {
        let addrs = checksum::delta32(self.src, to.src) + checksum::delta32(self.dst, to.dst);
        let l4 = addrs
            + checksum::delta16(self.sport, to.sport)
            + checksum::delta16(self.dport, to.dport);
        (checksum::fold(addrs), checksum::fold(l4))
    }
}

/// A 5-tuple as conntrack stores, compares and hashes it: two words, `src << 32 | dst` and
/// `sport << 32 | dport << 16 | proto`. The fast lanes build it from a packet's bytes and take
/// a NAT rewrite's tuple in this form, so nothing is unpacked into fields and packed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedKey([u64; 2]);

impl PackedKey {
    /// The tuple of an IPv4 packet read from its bytes: `addrs` the header's bytes 12..20
    /// (source, destination), `ports` the TCP/UDP header's first four bytes as a big-endian
    /// word, zero for a packet without ports (as the pipeline's tuple has them).
    #[inline(always)]
    pub fn from_wire(addrs: [u8; 8], ports: u32, proto: u8) -> PackedKey {
        PackedKey([
            u64::from_be_bytes(addrs),
            (u64::from(ports) << 16) | u64::from(proto),
        ])
    }

    /// The tuple seen from the other end ([`FlowKey::reversed`]).
    #[inline(always)]
    pub fn reversed(self) -> PackedKey {
        let [a, p] = self.0;
        let sport = (p >> 32) & 0xffff;
        let dport = (p >> 16) & 0xffff;
        PackedKey([
            a.rotate_left(32),
            (dport << 32) | (sport << 16) | (p & 0xff),
        ])
    }

    /// The tuple's fields.
    #[inline(always)]
    pub fn key(self) -> FlowKey {
        FlowKey::unpack(&self.0)
    }

    /// The destination address.
    #[inline(always)]
    pub fn dst(self) -> u32 {
        self.0[0] as u32
    }

    /// The addresses as they are on the wire (IPv4 header bytes 12..20).
    #[inline(always)]
    pub fn addrs_wire(self) -> [u8; 8] {
        self.0[0].to_be_bytes()
    }

    /// The ports as they are on the wire (TCP/UDP header bytes 0..4).
    #[inline(always)]
    pub fn ports_wire(self) -> [u8; 4] {
        ((self.0[1] >> 16) as u32).to_be_bytes()
    }

    /// [`FlowKey::wide_hash`] of the tuple.
    #[inline(always)]
    pub fn wide_hash(self) -> u64 {
        mix(&self.0)
    }
}

/// A pod slot as an entry stores it (the /16 broadcast slot, never a pod's, reads as none).
fn pod16(slot: u32) -> u16 {
    u16::try_from(slot).unwrap_or(NO_POD)
}

/// An entry's pod slot as [`PodRefs`] takes it.
fn pod32(slot: u16) -> u32 {
    if slot == NO_POD {
        NO_SLOT
    } else {
        u32::from(slot)
    }
}

#[inline(always)]
fn hash_packed(p: &[u64; 2]) -> u32 {
    let h = mix(p);
    ((h >> 32) ^ (h >> 7)) as u32
}

/// The 64-bit multiply-xorshift mix of a packed tuple; its top bits are the best mixed.
#[inline(always)]
fn mix(p: &[u64; 2]) -> u64 {
    (p[0].wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ p[1]).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
}

/// Which tuple of an entry a packet matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → frontend.
    Orig = 0,
    /// Backend → client (or → SNAT address).
    Reply = 1,
}

/// TCP connection state as conntrack follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpState {
    /// Not TCP.
    None,
    /// SYN seen, no answer yet.
    SynSent,
    /// Both directions seen.
    Established,
    /// A FIN seen in one direction.
    FinWait,
    /// FINs in both directions, or a RST.
    Closed,
}

/// Idle timeouts, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP after a SYN, before the answer (Linux: 120 s; Cilium: 60 s).
    pub tcp_syn_ms: u64,
    /// Established TCP (Cilium: 6 h; Linux: 5 days).
    pub tcp_established_ms: u64,
    /// TCP with a FIN seen in one direction (Linux fin_wait: 120 s).
    pub tcp_fin_ms: u64,
    /// TCP closed by FINs both ways or a RST (Cilium: 10 s).
    pub tcp_closed_ms: u64,
    /// UDP never answered (Linux: 30 s).
    pub udp_ms: u64,
    /// UDP answered at least once (Linux udp stream: 120 s).
    pub udp_replied_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_ms: 60_000,
            tcp_established_ms: 6 * 3600 * 1000,
            tcp_fin_ms: 120_000,
            tcp_closed_ms: 10_000,
            udp_ms: 30_000,
            udp_replied_ms: 120_000,
        }
    }
}

/// Entry flags.
pub mod flags {
    /// The entry is in use.
    pub const USED: u8 = 0x01;
    /// The source was rewritten too (NodePort to a remote backend, hairpin, the node's own
    /// flows), or only its port (a flow without SNAT whose reply tuple clashed with a live
    /// flow's).
    pub const SNAT: u8 = 0x02;
    /// The client is outside the cluster (NodePort from the uplink): replies go out raw, to
    /// the stored client MAC.
    pub const EXTERNAL_CLIENT: u8 = 0x04;
    /// A packet in the reply direction was seen.
    pub const REPLIED: u8 = 0x08;
    /// FIN seen from the client.
    pub const FIN_ORIG: u8 = 0x10;
    /// FIN seen from the backend.
    pub const FIN_REPLY: u8 = 0x20;
    /// The client is the node itself (its kernel, through the host path: host-network pods,
    /// the API server reaching a webhook's ClusterIP): replies go to the host path, whatever
    /// address the kernel chose as its source.
    pub const HOST_CLIENT: u8 = 0x40;
}

const NO_SLOT: u32 = u32::MAX;
/// [`NO_SLOT`] as an entry stores it.
const NO_POD: u16 = u16::MAX;

// One cache line: a lookup that hits reads one line of the entry array.
const _: () = assert!(core::mem::size_of::<Entry>() == 64);

/// What the pipeline records about a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewFlow {
    /// Endpoint liveness slot of the chosen backend.
    pub ep_slot: u32,
    /// Its generation when chosen.
    pub ep_gen: u32,
    /// [`flags::SNAT`] / [`flags::EXTERNAL_CLIENT`].
    pub flags: u8,
    /// L2 address to send replies to, for external clients.
    pub client_mac: [u8; 6],
}

/// One tracked flow: one cache line, aligned to one.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub struct Entry {
    keys: [[u64; 2]; 2],
    last_seen: u64,
    /// Endpoint liveness slot.
    pub ep_slot: u32,
    /// Endpoint generation at creation.
    pub ep_gen: u32,
    /// Local pod slots of the client and the backend ([`NO_POD`]: not a local pod). A pod CIDR
    /// is /16 or longer, so a slot fits 16 bits; `u16::MAX` would be a /16's broadcast
    /// address, which no pod has.
    client_pod: u16,
    backend_pod: u16,
    /// The checksum deltas of the NAT rewrite in the original direction, folded: IPv4 header
    /// and TCP/UDP ([`FlowKey::rewrite_deltas`] of the original tuple to the reversed reply
    /// tuple). The reply direction's are their one's complement negation
    /// ([`Entry::nat_deltas`]). Computed once at insert, so a packet's rewrite adds one delta
    /// per checksum instead of computing it from the two tuples.
    nat_ip: u16,
    nat_l4: u16,
    /// TCP state.
    pub state: TcpState,
    /// [`flags`].
    pub flags: u8,
    /// Where replies go for external clients.
    pub client_mac: [u8; 6],
}

impl Entry {
    const EMPTY: Entry = Entry {
        keys: [[0; 2]; 2],
        last_seen: 0,
        ep_slot: 0,
        ep_gen: 0,
        client_pod: NO_POD,
        backend_pod: NO_POD,
        nat_ip: 0,
        nat_l4: 0,
        state: TcpState::None,
        flags: 0,
        client_mac: [0; 6],
    };

    /// The tuple of one direction.
    #[inline(always)]
    pub fn key(&self, dir: Dir) -> FlowKey {
        FlowKey::unpack(&self.keys[dir as usize])
    }

    /// The tuple a packet matching `dir` must leave with: the reverse of the other direction.
    #[inline(always)]
    pub fn rewrite_for(&self, dir: Dir) -> FlowKey {
        self.rewrite_packed(dir).key()
    }

    /// [`Entry::rewrite_for`], packed.
    #[inline(always)]
    pub fn rewrite_packed(&self, dir: Dir) -> PackedKey {
        PackedKey(self.keys[1 - dir as usize]).reversed()
    }

    /// The checksum deltas (IPv4 header, TCP/UDP) of rewriting a packet matching `dir` to
    /// [`Entry::rewrite_for`]`(dir)`: what [`FlowKey::rewrite_deltas`] gives for the two
    /// tuples, up to one's complement representation (congruent modulo `0xffff`, and not zero
    /// as the sums are not for any real rewrite — an unchanged word alone adds `0xffff` — so
    /// [`checksum::apply_folded`] gives the same checksum; property-tested against frames built
    /// from scratch in `rewrite.rs`). The reply direction undoes the original's rewrite: its
    /// delta is the negation, `!d` (`0xffff` for `!d == 0`).
    #[inline(always)]
    pub fn nat_deltas(&self, dir: Dir) -> (u16, u16) {
        let neg = |d: u16| match !d {
            0 => 0xffff,
            n => n,
        };
        match dir {
            Dir::Orig => (self.nat_ip, self.nat_l4),
            Dir::Reply => (neg(self.nat_ip), neg(self.nat_l4)),
        }
    }

    /// Milliseconds timestamp of the last packet.
    pub fn last_seen(&self) -> u64 {
        self.last_seen
    }

    /// Whether the reply direction has been seen.
    pub fn replied(&self) -> bool {
        self.flags & flags::REPLIED != 0
    }

    /// The protocol.
    pub fn proto(&self) -> u8 {
        self.keys[0][1] as u8
    }

    /// True when a packet with `tcp_flags` opens a new connection on this entry's tuple after
    /// its flow closed: a SYN without ACK. Linux's conntrack deletes such an entry and tracks
    /// the SYN afresh ("attempt to reopen a closed/aborted connection"); so does the pipeline
    /// ([`Conntrack::remove_closed`], then a new flow with a fresh backend pick), where keeping
    /// the entry would hold the new connection in the closed state's short timeout and on a
    /// backend that may have gone.
    #[inline(always)]
    pub fn reopened_by(&self, tcp_flags: u8) -> bool {
        use crate::wire::tcp::flags as tf;
        self.state == TcpState::Closed && tcp_flags & (tf::SYN | tf::ACK | tf::RST) == tf::SYN
    }

    /// The TCP state after a packet with `tcp_flags` in direction `dir` (REPLIED already set
    /// for a reply). Out of line: most packets change nothing ([`Conntrack::touch`]).
    #[inline(never)]
    fn follow_tcp(&mut self, dir: Dir, tcp_flags: u8) {
        use crate::wire::tcp::flags as tf;
        if tcp_flags & tf::RST != 0 {
            self.state = TcpState::Closed;
            return;
        }
        if tcp_flags & tf::FIN != 0 {
            self.flags |= if dir == Dir::Orig {
                flags::FIN_ORIG
            } else {
                flags::FIN_REPLY
            };
        }
        let both_fin = flags::FIN_ORIG | flags::FIN_REPLY;
        self.state = if self.flags & both_fin == both_fin {
            TcpState::Closed
        } else if self.flags & both_fin != 0 {
            TcpState::FinWait
        } else if self.state == TcpState::SynSent && self.flags & flags::REPLIED != 0 {
            TcpState::Established
        } else {
            self.state
        };
    }

    /// Where the entry's idle timeout is in [`Limits`]: its TCP state, or for UDP
    /// whether it was answered.
    #[inline(always)]
    fn limit_index(&self) -> usize {
        match self.state as usize {
            0 if self.flags & flags::REPLIED != 0 => Limits::UDP_REPLIED,
            i => i,
        }
    }

    #[inline(always)]
    fn expired(&self, now: u64, limits: &Limits) -> bool {
        now.saturating_sub(self.last_seen) > limits.0[self.limit_index()]
    }
}

/// The idle timeouts as a table indexed by [`TcpState`] (`None`: UDP not answered), plus UDP
/// answered at the end: a lookup's expiry check is one indexed load, not a branch per state.
#[derive(Debug, Clone, Copy)]
struct Limits([u64; 6]);

impl Limits {
    const UDP_REPLIED: usize = 5;

    fn new(t: &Timeouts) -> Limits {
        let mut l = [0; 6];
        l[TcpState::None as usize] = t.udp_ms;
        l[TcpState::SynSent as usize] = t.tcp_syn_ms;
        l[TcpState::Established as usize] = t.tcp_established_ms;
        l[TcpState::FinWait as usize] = t.tcp_fin_ms;
        l[TcpState::Closed as usize] = t.tcp_closed_ms;
        l[Limits::UDP_REPLIED] = t.udp_replied_ms;
        Limits(l)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u32,
    /// entry index << 1 | direction; `u32::MAX` when empty.
    r: u32,
}

const EMPTY_SLOT: Slot = Slot {
    hash: 0,
    r: u32::MAX,
};

/// Why a flow could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The reply tuple is already some other flow's (an SNAT port collision).
    ReplyCollision,
    /// The original tuple is already tracked.
    Exists,
}

/// A worker's conntrack table.
pub struct Conntrack {
    entries: Box<[Entry]>,
    index: Box<[Slot]>,
    mask: usize,
    free: Box<[u32]>,
    free_len: usize,
    hand: usize,
    timeouts: Timeouts,
    limits: Limits,
    pod_base: u32,
    /// Per local pod: live entries (of every worker) with that pod as client or backend.
    refs: Arc<PodRefs>,
    len: usize,
}

/// Per local pod slot, how many live conntrack entries — of all workers' tables — have that pod
/// as their client and as their backend. Shared by the workers of one node: a worker that
/// receives a packet for a pod can tell whether some worker's table may hold NAT state for it
/// (and hand the packet to that flow's owner) without reading another worker's table. Written
/// only when an entry is inserted or removed (an atomic add), read per packet (a plain load).
#[derive(Debug)]
pub struct PodRefs {
    client: Box<[AtomicU32]>,
    backend: Box<[AtomicU32]>,
}

impl PodRefs {
    /// Counts for a pod CIDR of `pod_slots` addresses.
    pub fn new(pod_slots: usize) -> PodRefs {
        let zeros = || (0..pod_slots).map(|_| AtomicU32::new(0)).collect();
        PodRefs {
            client: zeros(),
            backend: zeros(),
        }
    }

    #[inline(always)]
    fn get(v: &[AtomicU32], slot: usize) -> bool {
        v.get(slot).is_some_and(|n| n.load(Ordering::Acquire) != 0)
    }

    #[inline(always)]
    fn bump(v: &[AtomicU32], slot: u32, up: bool) {
        if let Some(n) = v.get(slot as usize) {
            if up {
                n.fetch_add(1, Ordering::Release);
            } else {
                n.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

impl core::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conntrack")
            .field("capacity", &self.entries.len())
            .field("len", &self.len)
            .finish()
    }
}

/// Entries sampled when the table is full.
const EVICT_SAMPLE: usize = 8;
/// Entries scanned for an expired one before evicting a live one.
const RECLAIM_SCAN: usize = 64;

impl Conntrack {
    /// A table of `capacity` entries (at least 1) for a node whose pod CIDR starts at `pod_base`
    /// and has `pod_slots` addresses.
    pub fn new(capacity: u32, timeouts: Timeouts, pod_base: u32, pod_slots: usize) -> Conntrack {
        Conntrack::with_refs(
            capacity,
            timeouts,
            pod_base,
            Arc::new(PodRefs::new(pod_slots)),
        )
    }

    /// A table like [`Conntrack::new`] whose per-pod counts are `refs`, shared with the other
    /// workers' tables of the node.
    pub fn with_refs(
        capacity: u32,
        timeouts: Timeouts,
        pod_base: u32,
        refs: Arc<PodRefs>,
    ) -> Conntrack {
        let cap = capacity.max(1) as usize;
        let idx_len = (cap * 4).next_power_of_two();
        Conntrack {
            entries: vec![Entry::EMPTY; cap].into_boxed_slice(),
            index: vec![EMPTY_SLOT; idx_len].into_boxed_slice(),
            mask: idx_len - 1,
            free: (0..cap as u32).rev().collect::<Vec<_>>().into_boxed_slice(),
            free_len: cap,
            hand: 0,
            timeouts,
            limits: Limits::new(&timeouts),
            pod_base,
            refs,
            len: 0,
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fixed capacity.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// True if some live entry (of any worker sharing these counts) has the local pod at `ip`
    /// (host order) as its client (so replies to that pod may need reverse NAT). False for an
    /// address outside the node's pod CIDR: the slot is out of range (no `pod_slot` here: its
    /// extra range check cost decap 4 instructions a packet).
    #[inline(always)]
    pub fn pod_is_client(&self, ip: u32) -> bool {
        PodRefs::get(&self.refs.client, ip.wrapping_sub(self.pod_base) as usize)
    }

    /// True if some live entry (of any worker sharing these counts) has the local pod at `ip`
    /// (host order) as its backend. False for an address outside the node's pod CIDR.
    #[inline(always)]
    pub fn pod_is_backend(&self, ip: u32) -> bool {
        PodRefs::get(&self.refs.backend, ip.wrapping_sub(self.pod_base) as usize)
    }

    /// The entry at `idx`.
    #[inline(always)]
    pub fn entry(&self, idx: u32) -> &Entry {
        &self.entries[idx as usize]
    }

    /// Sends the replies of the external client's flow at `idx` to `mac` from now on.
    #[inline]
    pub fn set_client_mac(&mut self, idx: u32, mac: [u8; 6]) {
        if let Some(e) = self.entries.get_mut(idx as usize) {
            e.client_mac = mac;
        }
    }

    /// Finds the entry one of whose tuples is `key`. Expired entries are not returned (they are
    /// removed on the spot).
    #[inline(always)]
    pub fn lookup(&mut self, key: &FlowKey, now: u64, c: &Counters) -> Option<(u32, Dir)> {
        self.lookup_packed(key.packed(), now, c)
    }

    /// [`Conntrack::lookup`] of a packed tuple.
    #[inline(always)]
    pub fn lookup_packed(&mut self, key: PackedKey, now: u64, c: &Counters) -> Option<(u32, Dir)> {
        self.lookup_hashed(key, hash_packed(&key.0), now, c)
    }

    /// The hash a lookup of `key` starts from ([`Conntrack::lookup_hashed`]).
    #[inline(always)]
    pub fn hash_of(key: PackedKey) -> u32 {
        hash_packed(&key.0)
    }

    /// [`Conntrack::lookup_packed`] of `key` whose hash the caller computed already
    /// ([`Conntrack::hash_of`]).
    #[inline(always)]
    pub fn lookup_hashed(
        &mut self,
        key: PackedKey,
        h: u32,
        now: u64,
        c: &Counters,
    ) -> Option<(u32, Dir)> {
        debug_assert_eq!(h, hash_packed(&key.0));
        let p = key.0;
        let (pos, r) = self.find(&p, h)?;
        let idx = r >> 1;
        if self.entries[idx as usize].expired(now, &self.limits) {
            let _ = pos;
            self.drop_expired(idx, c);
            return None;
        }
        Some((idx, if r & 1 == 0 { Dir::Orig } else { Dir::Reply }))
    }

    /// The address of the index slot where a lookup of the key whose hash is `h`
    /// ([`Conntrack::hash_of`]) starts, for a prefetch a few packets ahead
    /// (`PacketBuf::prefetch`): with 1,024 flows the slots are all over a 2 MB index, and the
    /// lookup's first load is where a DNAT packet waits longest (perf).
    #[inline(always)]
    pub fn slot_addr_hashed(&self, h: u32) -> *const u8 {
        self.index.as_ptr().wrapping_add(self.home(h)).cast()
    }

    /// Removes an entry a lookup found expired (out of line: lookups are inlined into the
    /// per-packet path, and this is the rare case).
    #[cold]
    #[inline(never)]
    fn drop_expired(&mut self, idx: u32, c: &Counters) {
        self.remove(idx);
        c.inc(Event::CtExpired);
    }

    #[inline(always)]
    fn find(&self, p: &[u64; 2], h: u32) -> Option<(usize, u32)> {
        let mut i = self.home(h);
        loop {
            let s = self.index[i];
            if s.r == u32::MAX {
                return None;
            }
            if s.hash == h && self.entries[(s.r >> 1) as usize].keys[(s.r & 1) as usize] == *p {
                return Some((i, s.r));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Records a packet of the flow: refreshes the idle timer and follows TCP flags.
    #[inline(always)]
    pub fn touch(&mut self, idx: u32, dir: Dir, tcp_flags: u8, now: u64) {
        let e = &mut self.entries[idx as usize];
        e.last_seen = now;
        if dir == Dir::Reply {
            e.flags |= flags::REPLIED;
        }
        // UDP, and established TCP without FIN or RST (an established entry has seen no FIN:
        // the first one moves it on), change nothing else: the per-packet case stays inline.
        use crate::wire::tcp::flags as tf;
        let quiet = tcp_flags & (tf::RST | tf::FIN) == 0;
        if e.state == TcpState::None || (e.state == TcpState::Established && quiet) {
            return;
        }
        e.follow_tcp(dir, tcp_flags);
    }

    /// True when no flow holds tuple `p` (hash `h`), or the flow holding it is over and its
    /// entry goes now (`Conntrack::take_over`).
    #[inline(always)]
    fn tuple_free(&mut self, p: &[u64; 2], h: u32, now: u64, c: &Counters) -> bool {
        match self.find(p, h) {
            None => true,
            Some((_, r)) => self.take_over(r >> 1, now, c),
        }
    }

    /// Removes entry `idx`, whose tuple a new flow wants, if its flow is over, and says whether
    /// it did: an expired entry (`ct_expired`), or a **closed** TCP flow's (FINs both ways or
    /// a RST; `ct_closed_taken_over`), which stays only to carry a last ACK or a retransmitted
    /// FIN. A new connection with one of a closed flow's tuples is an endpoint reusing its port
    /// — the side that closed second keeps no TIME_WAIT and may reuse it at once. The typical
    /// case: an external client that reached a backend through one NodePort comes back from the
    /// same source port through another NodePort of the same backend; without SNAT both flows
    /// have the same reply tuple (backend → client), and refusing the second would leave the
    /// client retrying for as long as the closed entry lasts.
    #[cold]
    #[inline(never)]
    fn take_over(&mut self, idx: u32, now: u64, c: &Counters) -> bool {
        let e = &self.entries[idx as usize];
        if e.expired(now, &self.limits) {
            self.drop_expired(idx, c);
        } else if e.state == TcpState::Closed {
            self.remove_closed(idx, c);
        } else {
            return false;
        }
        true
    }

    /// Removes entry `idx`, a closed TCP flow that a new connection takes over
    /// ([`Entry::reopened_by`], `Conntrack::take_over`), counted as `ct_closed_taken_over`.
    #[cold]
    #[inline(never)]
    pub fn remove_closed(&mut self, idx: u32, c: &Counters) {
        self.remove(idx);
        c.inc(Event::CtClosedTakenOver);
    }

    /// Inserts a flow with tuples `orig` and `reply`. Makes room when full (reclaiming an expired
    /// entry, else evicting the least recently used of a sample, counted as `ct_evicted_full`).
    /// `tcp_flags` of the first packet set the initial TCP state: a SYN starts `SynSent`; any
    /// other first packet (a flow picked up mid-stream, e.g. after a restart) starts
    /// `Established`, so live connections survive.
    pub fn insert(
        &mut self,
        orig: FlowKey,
        reply: FlowKey,
        nf: NewFlow,
        tcp_flags: u8,
        now: u64,
        c: &Counters,
    ) -> Result<u32, InsertError> {
        self.insert_inner(orig, reply, nf, tcp_flags, now, c, true)
    }

    /// [`Conntrack::insert`] for a caller that has just looked `orig` up and missed, in the
    /// same packet (the pipeline's new-flow path): skips the second lookup of `orig`.
    pub fn insert_after_miss(
        &mut self,
        orig: FlowKey,
        reply: FlowKey,
        nf: NewFlow,
        tcp_flags: u8,
        now: u64,
        c: &Counters,
    ) -> Result<u32, InsertError> {
        self.insert_inner(orig, reply, nf, tcp_flags, now, c, false)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn insert_inner(
        &mut self,
        orig: FlowKey,
        reply: FlowKey,
        nf: NewFlow,
        tcp_flags: u8,
        now: u64,
        c: &Counters,
        check_orig: bool,
    ) -> Result<u32, InsertError> {
        let po = orig.pack();
        let pr = reply.pack();
        let ho = hash_packed(&po);
        let hr = hash_packed(&pr);
        if check_orig && !self.tuple_free(&po, ho, now, c) {
            return Err(InsertError::Exists);
        }
        if !self.tuple_free(&pr, hr, now, c) {
            return Err(InsertError::ReplyCollision);
        }
        if self.free_len == 0 {
            self.make_room(now, c);
        }
        self.free_len -= 1;
        let idx = self.free[self.free_len];
        let state = if orig.proto != crate::wire::ipproto::TCP {
            TcpState::None
        } else if tcp_flags & crate::wire::tcp::flags::SYN != 0
            && tcp_flags & crate::wire::tcp::flags::ACK == 0
        {
            TcpState::SynSent
        } else {
            TcpState::Established
        };
        // Stored in 16 bits: the counts go up for the slot the entry keeps (and so down again
        // when it goes).
        let client_pod = pod16(self.pod_slot(orig.src));
        let backend_pod = pod16(self.pod_slot(reply.src));
        let (ip_d, l4_d) = orig.rewrite_deltas(&reply.reversed());
        self.entries[idx as usize] = Entry {
            keys: [po, pr],
            last_seen: now,
            ep_slot: nf.ep_slot,
            ep_gen: nf.ep_gen,
            client_pod,
            backend_pod,
            nat_ip: ip_d,
            nat_l4: l4_d,
            state,
            flags: nf.flags | flags::USED,
            client_mac: nf.client_mac,
        };
        PodRefs::bump(&self.refs.client, pod32(client_pod), true);
        PodRefs::bump(&self.refs.backend, pod32(backend_pod), true);
        self.index_insert(ho, idx << 1);
        self.index_insert(hr, (idx << 1) | 1);
        self.len += 1;
        Ok(idx)
    }

    /// True if `reply` is some entry's tuple (used to pick a free SNAT port).
    #[inline]
    pub fn contains(&self, key: &FlowKey) -> bool {
        let p = key.pack();
        self.find(&p, hash_packed(&p)).is_some()
    }

    fn pod_slot(&self, ip: u32) -> u32 {
        let s = ip.wrapping_sub(self.pod_base);
        if (s as usize) < self.refs.client.len() {
            s
        } else {
            NO_SLOT
        }
    }

    fn make_room(&mut self, now: u64, c: &Counters) {
        let cap = self.entries.len();
        // `hand < cap` always; positions wrap by a compare, not a division (this runs on
        // every insert into a full table).
        let wrap = |i: usize| if i >= cap { i - cap } else { i };
        let mut oldest: Option<(u64, usize)> = None;
        for n in 0..RECLAIM_SCAN.min(cap) {
            let i = wrap(self.hand + n);
            let e = &self.entries[i];
            if e.flags & flags::USED == 0 {
                continue;
            }
            if e.expired(now, &self.limits) {
                self.hand = wrap(i + 1);
                self.remove(i as u32);
                c.inc(Event::CtExpired);
                return;
            }
            if n < EVICT_SAMPLE && oldest.is_none_or(|(t, _)| e.last_seen < t) {
                oldest = Some((e.last_seen, i));
            }
        }
        let victim = oldest.map_or(self.hand, |(_, i)| i);
        self.hand = wrap(victim + 1);
        self.remove(victim as u32);
        c.inc(Event::CtEvicted);
    }

    /// The index slot where the probe run of hash `h` starts.
    #[inline(always)]
    fn home(&self, h: u32) -> usize {
        h as usize & self.mask
    }

    fn index_insert(&mut self, h: u32, r: u32) {
        let mut i = self.home(h);
        while self.index[i].r != u32::MAX {
            i = (i + 1) & self.mask;
        }
        self.index[i] = Slot { hash: h, r };
    }

    fn index_remove(&mut self, h: u32, r: u32) {
        let mut i = self.home(h);
        while self.index[i].r != r {
            if self.index[i].r == u32::MAX {
                return;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.index[j];
            if s.r == u32::MAX {
                break;
            }
            let home = self.home(s.hash);
            // Move s into the hole if its home is not cyclically within (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = s;
                hole = j;
            }
        }
        self.index[hole] = EMPTY_SLOT;
    }

    /// Removes the entry at `idx` (no-op if unused).
    pub fn remove(&mut self, idx: u32) {
        let e = self.entries[idx as usize];
        if e.flags & flags::USED == 0 {
            return;
        }
        self.index_remove(hash_packed(&e.keys[0]), idx << 1);
        self.index_remove(hash_packed(&e.keys[1]), (idx << 1) | 1);
        PodRefs::bump(&self.refs.client, pod32(e.client_pod), false);
        PodRefs::bump(&self.refs.backend, pod32(e.backend_pod), false);
        self.entries[idx as usize] = Entry::EMPTY;
        self.free[self.free_len] = idx;
        self.free_len += 1;
        self.len -= 1;
    }

    /// Advances the clock hand over up to `budget` entries, removing expired ones. The worker
    /// calls this once per poll with a small budget, so aging costs a bounded few cycles.
    pub fn expire(&mut self, now: u64, budget: usize, c: &Counters) -> usize {
        if self.len == 0 {
            return 0; // nothing to age: no per-poll work for pod-to-pod-only traffic
        }
        let cap = self.entries.len();
        let mut removed = 0;
        for _ in 0..budget.min(cap) {
            let i = self.hand;
            // A compare, not `% cap`: a division per entry is dearer than the check itself.
            self.hand = if i + 1 == cap { 0 } else { i + 1 };
            let e = &self.entries[i];
            if e.flags & flags::USED != 0 && e.expired(now, &self.limits) {
                self.remove(i as u32);
                removed += 1;
            }
        }
        c.add(Event::CtExpired, removed as u64);
        removed
    }

    /// Every live entry with its index (for the CLI; not for the data cores).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.flags & flags::USED != 0)
            .map(|(i, e)| (i as u32, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(src: u32, sport: u16, dst: u32, dport: u16) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto: 17,
        }
    }

    const NF: NewFlow = NewFlow {
        ep_slot: 0,
        ep_gen: 0,
        flags: 0,
        client_mac: [0; 6],
    };

    fn ct(cap: u32) -> Conntrack {
        Conntrack::new(cap, Timeouts::default(), 0x0af4_0100, 256)
    }

    /// `slot_addr_hashed` of the key's hash is the index slot a lookup of the key starts at:
    /// after an insert, the slot there (or, on a collision, the probe after it) holds the entry.
    #[test]
    fn slot_addr_hashed_is_where_the_lookup_starts() {
        let mut t = ct(64);
        let c = Counters::default();
        for i in 0..40u16 {
            let o = k(0x0af4_0105, 40_000 + i, 0x0a60_000a, 53);
            let r = k(0x0af4_0207, 53, 0x0af4_0105, 40_000 + i);
            t.insert(o, r, NF, 0, 1_000, &c).unwrap();
            let key = o.packed();
            let h = Conntrack::hash_of(key);
            let start = h as usize & t.mask;
            assert_eq!(
                t.slot_addr_hashed(h),
                (&t.index[start] as *const Slot).cast::<u8>()
            );
            let (idx, dir) = t.lookup_packed(key, 1_000, &c).unwrap();
            assert_eq!(dir, Dir::Orig);
            assert_eq!(t.lookup_hashed(key, h, 1_000, &c), Some((idx, dir)));
            assert_eq!(
                t.lookup_hashed(r.packed(), Conntrack::hash_of(r.packed()), 1_000, &c),
                Some((idx, Dir::Reply))
            );
            let at = (start..start + t.index.len())
                .map(|p| p & t.mask)
                .find(|&p| t.index[p].r >> 1 == idx && t.index[p].r & 1 == 0)
                .unwrap();
            // Probing is linear from the start slot.
            assert!((at.wrapping_sub(start) & t.mask) < 8, "{start} {at}");
        }
    }

    /// Every entry is one cache line, aligned to one, so a lookup touches one line of the
    /// entries.
    #[test]
    fn entries_are_cache_lines() {
        assert_eq!(core::mem::size_of::<Entry>(), 64);
        assert_eq!(core::mem::align_of::<Entry>(), 64);
        let t = ct(100);
        assert_eq!(t.entries.as_ptr() as usize % 64, 0);
    }

    proptest::proptest! {
        /// A tuple read from packet bytes is the tuple, with and without ports; reversing and
        /// hashing it packed is reversing and hashing the fields.
        #[test]
        fn packed_from_wire_is_the_tuple(
            src: u32, dst: u32, sport: u16, dport: u16, proto: u8, ports: bool
        ) {
            let (sport, dport) = if ports { (sport, dport) } else { (0, 0) };
            let key = FlowKey { src, dst, sport, dport, proto };
            let mut addrs = [0u8; 8];
            addrs[..4].copy_from_slice(&src.to_be_bytes());
            addrs[4..].copy_from_slice(&dst.to_be_bytes());
            let mut l4 = [0u8; 4];
            l4[..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..].copy_from_slice(&dport.to_be_bytes());
            let wire = u32::from_be_bytes(l4);
            let p = PackedKey::from_wire(addrs, wire, proto);
            proptest::prop_assert_eq!(p, key.packed());
            proptest::prop_assert_eq!(p.key(), key);
            proptest::prop_assert_eq!(p.wide_hash(), key.wide_hash());
            proptest::prop_assert_eq!(p.reversed(), key.reversed().packed());
            proptest::prop_assert_eq!(p.reversed().reversed(), p);
            proptest::prop_assert_eq!(p.dst(), dst);
            proptest::prop_assert_eq!(p.addrs_wire(), addrs);
            proptest::prop_assert_eq!(p.ports_wire(), l4);
        }
    }

    #[test]
    fn both_directions_and_rewrite() {
        let c = Counters::default();
        let mut t = ct(16);
        let client = 0x0af4_0102;
        let vip = 0x0a60_000a;
        let be = 0x0af4_0203;
        let orig = k(client, 40000, vip, 53);
        let reply = k(be, 5353, client, 40000);
        let idx = t.insert(orig, reply, NF, 0, 0, &c).unwrap();
        assert_eq!(t.lookup(&orig, 1, &c), Some((idx, Dir::Orig)));
        assert_eq!(t.lookup(&reply, 1, &c), Some((idx, Dir::Reply)));
        let e = t.entry(idx);
        // Original direction leaves towards the backend, from the client.
        assert_eq!(e.rewrite_for(Dir::Orig), k(client, 40000, be, 5353));
        // Replies leave from the VIP to the client.
        assert_eq!(e.rewrite_for(Dir::Reply), k(vip, 53, client, 40000));
        assert!(t.pod_is_client(client));
        assert!(!t.pod_is_backend(client));
        assert_eq!(
            t.insert(orig, k(be, 1, client, 2), NF, 0, 0, &c),
            Err(InsertError::Exists)
        );
        assert_eq!(
            t.insert(k(client, 1, vip, 53), reply, NF, 0, 0, &c),
            Err(InsertError::ReplyCollision)
        );
        t.remove(idx);
        assert!(t.lookup(&orig, 1, &c).is_none());
        assert!(t.lookup(&reply, 1, &c).is_none());
        assert!(!t.pod_is_client(client));
        assert!(t.is_empty());
    }

    /// A new flow whose tuple a live flow holds is refused; one whose tuple a closed TCP flow
    /// or an expired one holds takes it over, the old entry gone and counted.
    #[test]
    fn a_closed_or_expired_flows_tuple_is_taken_over() {
        use crate::wire::tcp::flags as tf;
        let c = Counters::default();
        let mut t = ct(16);
        let tcp = |mut k: FlowKey| {
            k.proto = 6;
            k
        };
        // Two frontends (2:80 and 2:81) of one backend (3:8080), one client port: the same
        // reply tuple.
        let reply = tcp(k(3, 8080, 1, 5000));
        let first = t
            .insert(tcp(k(1, 5000, 2, 80)), reply, NF, tf::SYN, 0, &c)
            .unwrap();
        let second = tcp(k(1, 5000, 2, 81));
        t.touch(first, Dir::Reply, tf::SYN | tf::ACK, 1);
        t.touch(first, Dir::Orig, tf::FIN | tf::ACK, 2);
        assert_eq!(
            t.insert(second, reply, NF, tf::SYN, 3, &c),
            Err(InsertError::ReplyCollision)
        );
        t.touch(first, Dir::Reply, tf::FIN | tf::ACK, 4);
        assert_eq!(t.entry(first).state, TcpState::Closed);
        let i = t.insert(second, reply, NF, tf::SYN, 5, &c).unwrap();
        assert_eq!(c.events(Event::CtClosedTakenOver), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&reply, 5, &c), Some((i, Dir::Reply)));
        assert!(t.lookup(&tcp(k(1, 5000, 2, 80)), 5, &c).is_none());
        // Expired (a SYN never answered), any state: taken over, counted as expired.
        let late = 5 + t.timeouts().tcp_syn_ms + 1;
        t.insert(tcp(k(1, 5000, 2, 80)), reply, NF, tf::SYN, late, &c)
            .unwrap();
        assert_eq!(c.events(Event::CtExpired), 1);
        assert_eq!(c.events(Event::CtClosedTakenOver), 1);
        assert_eq!(t.len(), 1);
        // A SYN reopens only a closed entry, and only a bare SYN does.
        let (j, _) = t.lookup(&reply, late, &c).unwrap();
        let e = t.entry(j);
        assert!(!e.reopened_by(tf::SYN));
        let mut closed = *e;
        closed.state = TcpState::Closed;
        assert!(closed.reopened_by(tf::SYN));
        assert!(!closed.reopened_by(tf::SYN | tf::ACK));
        assert!(!closed.reopened_by(tf::ACK));
        assert!(!closed.reopened_by(tf::RST));
        let i = t
            .insert(
                tcp(k(7, 1, 2, 80)),
                tcp(k(2, 80, 7, 1)),
                NF,
                tf::SYN,
                late,
                &c,
            )
            .unwrap();
        t.touch(i, Dir::Reply, tf::RST, late);
        assert_eq!(t.entry(i).state, TcpState::Closed);
        // A late ACK of the old connection refreshes the closed entry; a SYN would reopen it.
        t.touch(i, Dir::Orig, tf::ACK, late + 1);
        assert_eq!(t.entry(i).last_seen(), late + 1);
        assert_eq!(t.entry(i).state, TcpState::Closed);
        assert!(t.entry(i).reopened_by(tf::SYN));
    }

    #[test]
    fn idle_timeouts_follow_state() {
        let c = Counters::default();
        let mut t = ct(16);
        let orig = k(1, 2, 3, 4);
        let reply = k(3, 4, 1, 2);
        let i = t.insert(orig, reply, NF, 0, 0, &c).unwrap();
        let to = *t.timeouts();
        assert!(t.lookup(&orig, to.udp_ms, &c).is_some());
        t.touch(i, Dir::Reply, 0, to.udp_ms);
        // Answered UDP lives longer.
        assert!(t.lookup(&orig, to.udp_ms + to.udp_replied_ms, &c).is_some());
        assert!(t
            .lookup(&orig, to.udp_ms + to.udp_replied_ms + 1, &c)
            .is_none());
        assert_eq!(c.events(Event::CtExpired), 1);

        use crate::wire::tcp::flags as tf;
        let mut o = orig;
        o.proto = 6;
        let mut r = reply;
        r.proto = 6;
        let i = t.insert(o, r, NF, tf::SYN, 0, &c).unwrap();
        assert_eq!(t.entry(i).state, TcpState::SynSent);
        t.touch(i, Dir::Reply, tf::SYN | tf::ACK, 1);
        assert_eq!(t.entry(i).state, TcpState::Established);
        t.touch(i, Dir::Orig, tf::FIN | tf::ACK, 2);
        assert_eq!(t.entry(i).state, TcpState::FinWait);
        t.touch(i, Dir::Reply, tf::FIN | tf::ACK, 3);
        assert_eq!(t.entry(i).state, TcpState::Closed);
        assert!(t.lookup(&o, 3 + to.tcp_closed_ms + 1, &c).is_none());
        // Mid-stream pickup starts established.
        let i = t.insert(o, r, NF, tf::ACK, 0, &c).unwrap();
        assert_eq!(t.entry(i).state, TcpState::Established);
        t.touch(i, Dir::Orig, tf::RST, 1);
        assert_eq!(t.entry(i).state, TcpState::Closed);
    }

    #[test]
    fn each_state_expires_after_its_own_timeout() {
        // Six different timeouts, so a state read against another's limit shows.
        let to = Timeouts {
            tcp_syn_ms: 100,
            tcp_established_ms: 200,
            tcp_fin_ms: 300,
            tcp_closed_ms: 400,
            udp_ms: 500,
            udp_replied_ms: 600,
        };
        use crate::wire::tcp::flags as tf;
        let c = Counters::default();
        // (protocol, first packet's flags, a later packet: direction and flags, state, limit)
        type Case = (u8, u8, Option<(Dir, u8)>, TcpState, u64);
        let cases: [Case; 6] = [
            (17, 0, None, TcpState::None, 500),
            (17, 0, Some((Dir::Reply, 0)), TcpState::None, 600),
            (6, tf::SYN, None, TcpState::SynSent, 100),
            (
                6,
                tf::ACK,
                Some((Dir::Reply, tf::ACK)),
                TcpState::Established,
                200,
            ),
            (
                6,
                tf::ACK,
                Some((Dir::Orig, tf::FIN | tf::ACK)),
                TcpState::FinWait,
                300,
            ),
            (
                6,
                tf::ACK,
                Some((Dir::Reply, tf::RST)),
                TcpState::Closed,
                400,
            ),
        ];
        for (proto, first, then, state, limit) in cases {
            for late in [false, true] {
                let mut t = Conntrack::new(16, to, 0x0af4_0100, 256);
                let (mut o, mut r) = (k(1, 2, 3, 4), k(3, 4, 1, 2));
                o.proto = proto;
                r.proto = proto;
                let i = t.insert(o, r, NF, first, 0, &c).unwrap();
                if let Some((dir, fl)) = then {
                    t.touch(i, dir, fl, 10);
                }
                assert_eq!(t.entry(i).state, state);
                let seen = if then.is_some() { 10 } else { 0 };
                let at = seen + limit + u64::from(late);
                assert_eq!(t.lookup(&o, at, &c).is_none(), late, "{state:?} at {at}");
            }
        }
    }

    #[test]
    fn full_table_evicts_and_counts() {
        let c = Counters::default();
        let mut t = ct(4);
        for n in 0..4u16 {
            t.insert(k(1, n, 2, 53), k(3, 53, 1, n), NF, 0, u64::from(n), &c)
                .unwrap();
        }
        assert_eq!(t.len(), 4);
        // A fifth live flow evicts the least recently used (the first).
        t.insert(k(1, 9, 2, 53), k(3, 53, 1, 9), NF, 0, 10, &c)
            .unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(c.events(Event::CtEvicted), 1);
        assert!(t.lookup(&k(1, 0, 2, 53), 10, &c).is_none());
        assert!(t.lookup(&k(1, 9, 2, 53), 10, &c).is_some());
        // When one is expired, it is reclaimed instead of evicting a live one.
        let late = 10 + t.timeouts().udp_ms + 5;
        let (i9, _) = t.lookup(&k(1, 9, 2, 53), late - 10, &c).unwrap();
        t.touch(i9, Dir::Orig, 0, late - 10);
        t.insert(k(1, 10, 2, 53), k(3, 53, 1, 10), NF, 0, late, &c)
            .unwrap();
        assert_eq!(c.events(Event::CtEvicted), 1);
        assert!(t.lookup(&k(1, 9, 2, 53), late, &c).is_some());
    }

    #[test]
    fn index_stays_consistent_under_churn() {
        // Random inserts and removals against a model; backward-shift deletion must never lose
        // a key that is still present.
        let c = Counters::default();
        let mut t = ct(512);
        let mut model: std::collections::HashMap<FlowKey, u32> = Default::default();
        let mut x: u64 = 0x1234_5678;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 700) as u16;
            let orig = k(7, n, 9, 80);
            let reply = k(9, 80, 7, n);
            if let Some(&i) = model.get(&orig) {
                assert_eq!(t.lookup(&orig, step, &c), Some((i, Dir::Orig)));
                assert_eq!(t.lookup(&reply, step, &c), Some((i, Dir::Reply)));
                if x & 1 == 0 {
                    t.remove(i);
                    model.remove(&orig);
                }
            } else if model.len() < 512 {
                let i = t.insert(orig, reply, NF, 0, step, &c).unwrap();
                model.insert(orig, i);
            }
            assert_eq!(t.len(), model.len());
        }
        for (key, i) in &model {
            assert_eq!(t.lookup(key, 20_000, &c), Some((*i, Dir::Orig)));
        }
        let mut k2 = model.keys().copied().collect::<Vec<_>>();
        k2.sort_by_key(|f| f.sport);
        for key in k2 {
            let (i, _) = t.lookup(&key, 20_000, &c).unwrap();
            t.remove(i);
        }
        assert!(t.is_empty());
        assert!(t.index.iter().all(|s| s.r == u32::MAX));
    }
}
