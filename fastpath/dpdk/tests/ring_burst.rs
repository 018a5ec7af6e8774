//! `Port::rx_burst` and `Port::tx_burst` hand the burst's own storage to the driver (no copy
//! through a pointer array). On `net_ring0`, whose transmit ring feeds its receive ring: bursts
//! are sent until the ring is full; the burst the ring takes only part of keeps exactly the
//! unsent packets, in order, at its front; receiving appends after what a burst already holds;
//! every frame comes back once, in order, byte for byte; every mbuf is back in the pool. And
//! `Mbuf`'s one-step narrowing (`PacketBuf::keep`) on a real mbuf.
//!
//! The EAL runs without hugepages and can be initialised once per process: one test.

use dpdk::{Burst, Eal, EalConfig, PktPool, Port, PortConfig};
use fastpath::buf::PacketBuf;

/// A 60-byte frame carrying its sequence number.
fn frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

fn seq_of(m: &dpdk::Mbuf) -> u32 {
    let d = m.data();
    assert_eq!(d.len(), 60, "frame length kept");
    u32::from_be_bytes([d[14], d[15], d[16], d[17]])
}

#[test]
fn bursts_go_to_and_come_from_the_driver_in_place() {
    let eal = Eal::init(&EalConfig::for_tests("podlane-ring-burst", &["net_ring0"])).expect("EAL");
    let pool = std::sync::Arc::new(PktPool::new("ring-burst", 8191, 0).expect("pool"));
    let id = eal.port_by_name("net_ring0").expect("net_ring0");
    let port = Port::start(id, &PortConfig::default(), &pool).expect("start");

    // Fill the ring: a short burst first (so the ring's size, a power of two or one less,
    // ends inside a later burst), then whole bursts until one is taken only in part.
    let mut next = 0u32;
    let mut sent_total = 0usize;
    let mut partial = None;
    let mut partial_sent = 0;
    for i in 0..1000 {
        let size = if i == 0 { 5 } else { 32 };
        let mut b = Burst::new();
        for _ in 0..size {
            assert!(b
                .push(pool.alloc_frame(&frame(next)).expect("mbuf"))
                .is_ok());
            next += 1;
        }
        let first = next - size;
        let sent = port.tx_burst(0, &mut b);
        sent_total += sent;
        assert_eq!(
            b.len(),
            size as usize - sent,
            "the sent ones leave the burst"
        );
        if sent < size as usize {
            partial_sent = sent;
            // The unsent ones stay, in order, at the front.
            let left: Vec<u32> = b.iter().map(seq_of).collect();
            let want: Vec<u32> = (first + sent as u32..next).collect();
            assert_eq!(left, want, "unsent packets keep their order");
            partial = Some(b);
            break;
        }
    }
    let mut partial = partial.expect("the ring filled up");
    assert!(
        partial_sent > 0 && !partial.is_empty(),
        "a burst was taken in part ({partial_sent} sent, {} left)",
        partial.len()
    );
    assert!(sent_total >= 32, "the ring took at least one burst");
    let in_flight = pool.in_use() as usize;
    assert_eq!(
        in_flight,
        sent_total + partial.len(),
        "no mbuf lost or doubled"
    );

    // A full ring takes nothing; the burst is unchanged.
    let before: Vec<u32> = partial.iter().map(seq_of).collect();
    assert_eq!(port.tx_burst(0, &mut partial), 0);
    assert_eq!(partial.iter().map(seq_of).collect::<Vec<_>>(), before);

    // Receive everything back, in order; rx appends after what a burst holds.
    let mut got = Vec::new();
    let mut b = Burst::new();
    assert!(b
        .push(pool.alloc_frame(&frame(u32::MAX)).expect("mbuf"))
        .is_ok());
    let n = port.rx_burst(0, &mut b);
    assert_eq!(n, 31, "rx fills the burst's remaining room");
    assert_eq!(b.len(), 32);
    assert_eq!(seq_of(&b[0]), u32::MAX, "what the burst held stays first");
    got.extend(b.iter().skip(1).map(seq_of));
    drop(b);
    loop {
        let mut b = Burst::new();
        if port.rx_burst(0, &mut b) == 0 {
            break;
        }
        got.extend(b.iter().map(seq_of));
    }
    assert_eq!(got, (0..sent_total as u32).collect::<Vec<_>>());

    // The rest of the partial burst now fits.
    let left = partial.len();
    assert_eq!(port.tx_burst(0, &mut partial), left);
    assert!(partial.is_empty());
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(0, &mut b), left);
    assert_eq!(
        b.iter().map(seq_of).collect::<Vec<_>>(),
        (sent_total as u32..next).collect::<Vec<_>>()
    );
    drop(b);

    // `keep` narrows an mbuf to a range of its bytes, data and packet lengths together (the
    // decap lane's one-step strip), or changes nothing.
    let f = frame(7);
    let mut m = pool.alloc_frame(&f).expect("mbuf");
    let headroom = m.headroom();
    for (start, end) in [(20, 19), (0, 61)] {
        assert!(m.keep(start, end).is_none(), "{start}..{end}");
        assert_eq!(m.data(), &f[..]);
        assert_eq!(m.pkt_len(), 60);
    }
    assert_eq!(
        m.keep(14, 18).map(|d| d.to_vec()),
        Some(7u32.to_be_bytes().to_vec())
    );
    assert_eq!(m.data(), &7u32.to_be_bytes());
    assert_eq!(m.pkt_len(), 4);
    assert_eq!(m.headroom(), headroom + 14);
    drop(m);

    assert_eq!(pool.in_use(), 0, "every mbuf back in the pool");
    port.close().expect("close");
}
