/*
 * Bodies of the podlane DPDK shim, see shim.h.
 *
 * These are ordinary external functions (not inline) so the Rust side links
 * against them like any other C symbol: no cross-language LTO is needed for
 * correctness. Each is a handful of instructions around the inlined DPDK
 * body; a call costs a few cycles, which is why rx/tx take whole bursts.
 * (Cross-language inlining is possible later with clang + -Clinker-plugin-lto,
 * but nothing relies on it.)
 */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_cycles.h>
#include <rte_ring.h>

#include "shim.h"

#define PODLANE_EXPORT __attribute__((visibility("default"), used))

PODLANE_EXPORT uint16_t
podlane_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			 struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

PODLANE_EXPORT uint16_t
podlane_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			 struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

PODLANE_EXPORT struct rte_mbuf *
podlane_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

PODLANE_EXPORT int
podlane_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			       unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

PODLANE_EXPORT void
podlane_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

PODLANE_EXPORT void *
podlane_rte_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

PODLANE_EXPORT uint16_t
podlane_rte_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

PODLANE_EXPORT uint32_t
podlane_rte_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

PODLANE_EXPORT char *
podlane_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

PODLANE_EXPORT char *
podlane_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

PODLANE_EXPORT char *
podlane_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

PODLANE_EXPORT int
podlane_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

PODLANE_EXPORT uint16_t
podlane_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

PODLANE_EXPORT uint16_t
podlane_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

PODLANE_EXPORT int
podlane_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

PODLANE_EXPORT uint16_t
podlane_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

PODLANE_EXPORT uint16_t
podlane_rte_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

PODLANE_EXPORT int
podlane_rte_ring_enqueue(struct rte_ring *r, void *obj)
{
	return rte_ring_enqueue(r, obj);
}

PODLANE_EXPORT int
podlane_rte_ring_dequeue(struct rte_ring *r, void **obj_p)
{
	return rte_ring_dequeue(r, obj_p);
}

PODLANE_EXPORT unsigned int
podlane_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
			       unsigned int n, unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

PODLANE_EXPORT unsigned int
podlane_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
			       unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

PODLANE_EXPORT unsigned int
podlane_rte_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

PODLANE_EXPORT unsigned int
podlane_rte_ring_free_count(const struct rte_ring *r)
{
	return rte_ring_free_count(r);
}

PODLANE_EXPORT uint64_t
podlane_rte_rdtsc(void)
{
	return rte_rdtsc();
}

PODLANE_EXPORT uint64_t
podlane_rte_get_timer_cycles(void)
{
	return rte_get_timer_cycles();
}

PODLANE_EXPORT uint64_t
podlane_rte_get_timer_hz(void)
{
	return rte_get_timer_hz();
}

PODLANE_EXPORT unsigned int
podlane_rte_lcore_id(void)
{
	return rte_lcore_id();
}

PODLANE_EXPORT int
podlane_rte_errno(void)
{
	return rte_errno;
}
