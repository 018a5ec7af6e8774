/*
 * podlane DPDK shim: real, linkable symbols for DPDK's `static inline`
 * fast-path functions, which have no symbol in the shared libraries and so
 * cannot be called through bindgen declarations.
 *
 * Every function is `podlane_<dpdk name>` and does nothing but call the
 * DPDK function of that name, so its contract is the DPDK one (see the
 * DPDK 22.11 headers). The bodies are in shim.c, compiled by build.rs with
 * the cflags of `pkg-config --cflags libdpdk`.
 *
 * This header is also fed to bindgen (through wrapper.h), so the Rust
 * declarations can never drift from the C definitions.
 */
#ifndef PODLANE_DPDK_SHIM_H
#define PODLANE_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* ---- ethdev fast path (rte_ethdev.h) ---- */
uint16_t podlane_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
				  struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t podlane_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
				  struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* ---- mbuf (rte_mbuf.h) ---- */
struct rte_mbuf *podlane_rte_pktmbuf_alloc(struct rte_mempool *mp);
int podlane_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
				   struct rte_mbuf **mbufs, unsigned int count);
/* Frees the whole chain. (rte_pktmbuf_free_bulk is a real symbol in 22.11
 * and comes from bindgen directly.) */
void podlane_rte_pktmbuf_free(struct rte_mbuf *m);
/* rte_pktmbuf_mtod(m, void *): start of the data in the first segment. */
void *podlane_rte_pktmbuf_mtod(struct rte_mbuf *m);
/* rte_pktmbuf_data_len(m): bytes in the first segment. */
uint16_t podlane_rte_pktmbuf_data_len(const struct rte_mbuf *m);
/* rte_pktmbuf_pkt_len(m): bytes in the whole chain. */
uint32_t podlane_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
char *podlane_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *podlane_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *podlane_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int podlane_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t podlane_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t podlane_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
int podlane_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint16_t podlane_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
uint16_t podlane_rte_mbuf_refcnt_read(const struct rte_mbuf *m);

/* ---- ring (rte_ring.h / rte_ring_elem.h) ---- */
int podlane_rte_ring_enqueue(struct rte_ring *r, void *obj);
int podlane_rte_ring_dequeue(struct rte_ring *r, void **obj_p);
unsigned int podlane_rte_ring_enqueue_burst(struct rte_ring *r,
					    void *const *obj_table,
					    unsigned int n,
					    unsigned int *free_space);
unsigned int podlane_rte_ring_dequeue_burst(struct rte_ring *r,
					    void **obj_table, unsigned int n,
					    unsigned int *available);
unsigned int podlane_rte_ring_count(const struct rte_ring *r);
unsigned int podlane_rte_ring_free_count(const struct rte_ring *r);

/* ---- cycles, lcore, errno ---- */
uint64_t podlane_rte_rdtsc(void);
/* rte_get_timer_cycles / rte_get_timer_hz are static inline in 22.11
 * (generic/rte_cycles.h); rte_get_tsc_hz is a real symbol. */
uint64_t podlane_rte_get_timer_cycles(void);
uint64_t podlane_rte_get_timer_hz(void);
/* rte_lcore_id(): this thread's lcore id, LCORE_ID_ANY on non-EAL threads. */
unsigned int podlane_rte_lcore_id(void);
/* Reads rte_errno, a per-lcore (thread-local) variable behind a macro. */
int podlane_rte_errno(void);

#endif /* PODLANE_DPDK_SHIM_H */
