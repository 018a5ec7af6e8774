/* Headers bindgen reads to generate src/ bindings (see build.rs). */
#ifndef PODLANE_DPDK_WRAPPER_H
#define PODLANE_DPDK_WRAPPER_H

/* pkg-config's cflags carry `-include rte_config.h`; bindgen gets the same
 * include explicitly so the generated constants match the installed build. */
#include <rte_config.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_ring.h>
#include <rte_errno.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_malloc.h>
#include <rte_version.h>

/* The C shim for static inline functions (src/shim.c). */
#include "src/shim.h"

#endif
