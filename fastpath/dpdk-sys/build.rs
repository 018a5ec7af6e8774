//! Build script for `podlane-dpdk-sys`.
//!
//! 1. Finds DPDK with pkg-config (`libdpdk`, Debian 12 ships 22.11).
//! 2. Compiles `src/shim.c` (real symbols for DPDK's `static inline` fast-path
//!    functions) with exactly the cflags pkg-config gives.
//! 3. Emits the link lines for the shim and for DPDK's shared libraries, in
//!    that order (the shim archive must come before the libraries it uses).
//! 4. Runs bindgen over `wrapper.h` (DPDK headers + `src/shim.h`).
//!
//! This script contains no `unsafe` code.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use bindgen::callbacks::{IntKind, ParseCallbacks};

/// DPDK release the bindings were written and tested against.
const TESTED_DPDK: &str = "22.11";

const INSTALL_HINT: &str = "podlane-dpdk-sys needs DPDK's development files (pkg-config module \
     `libdpdk`, DPDK >= 22.11). On Debian/Ubuntu: `apt-get install dpdk-dev libdpdk-dev` \
     (plus `pkg-config`, `clang` and `libclang-dev` for bindgen). If DPDK is installed \
     elsewhere, point PKG_CONFIG_PATH at the directory holding libdpdk.pc.";

/// DPDK functions the bindings expose. Everything that is `static inline` in
/// the headers is absent from the shared libraries and reached through the
/// `podlane_*` shim instead (see `src/shim.h`).
const FUNCTIONS: &[&str] = &[
    // EAL life cycle and process
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_process_type",
    "rte_eal_has_hugepages",
    "rte_eal_hotplug_add",
    "rte_eal_hotplug_remove",
    // launching work on lcores
    "rte_eal_remote_launch",
    "rte_eal_mp_remote_launch",
    "rte_eal_wait_lcore",
    "rte_eal_mp_wait_lcore",
    "rte_eal_get_lcore_state",
    // lcores and sockets
    "rte_lcore_count",
    "rte_lcore_index",
    "rte_lcore_is_enabled",
    "rte_lcore_to_socket_id",
    "rte_lcore_to_cpu_id",
    "rte_get_main_lcore",
    "rte_get_next_lcore",
    "rte_socket_id",
    "rte_socket_count",
    "rte_socket_id_by_idx",
    "rte_thread_register",
    "rte_thread_unregister",
    // time
    "rte_get_tsc_hz",
    "rte_delay_us_block",
    // errors
    "rte_strerror",
    // ethdev control path
    "rte_eth_dev_configure",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_reset",
    "rte_eth_dev_info_get",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_dev_set_mtu",
    "rte_eth_dev_get_mtu",
    "rte_eth_dev_set_link_up",
    "rte_eth_dev_set_link_down",
    "rte_eth_link_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_xstats_get_names",
    "rte_eth_xstats_get",
    "rte_eth_xstats_reset",
    "rte_eth_macaddr_get",
    "rte_eth_dev_default_mac_addr_set",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_promiscuous_get",
    "rte_eth_allmulticast_enable",
    "rte_eth_allmulticast_disable",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_count_total",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_socket_id",
    "rte_eth_find_next",
    "rte_eth_find_next_owned_by",
    // mempools and mbufs (the non-inline ones)
    "rte_mempool_create",
    "rte_mempool_free",
    "rte_mempool_lookup",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_pool_create",
    "rte_pktmbuf_free_bulk",
    // devices and virtual devices
    "rte_dev_probe",
    "rte_dev_remove",
    "rte_dev_name",
    "rte_vdev_init",
    "rte_vdev_uninit",
    // rings (control path; enqueue/dequeue are inline -> shim)
    "rte_ring_create",
    "rte_ring_free",
    "rte_ring_lookup",
    // DPDK heap
    "rte_malloc",
    "rte_zmalloc",
    "rte_malloc_socket",
    "rte_zmalloc_socket",
    "rte_free",
    // version
    "rte_version",
    // the C shim (src/shim.h)
    "podlane_.*",
];

/// Types needed beyond what the functions above pull in by themselves.
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_stats",
    "rte_eth_link",
    "rte_eth_xstat",
    "rte_eth_xstat_name",
    "rte_ether_addr",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "rte_lcore_state_t",
    "rte_proc_type_t",
    "rte_rmt_call_main_t",
    "lcore_function_t",
];

/// Constants (object-like macros and anonymous enums).
const VARS: &[&str] = &[
    "RTE_.*",
    "RING_F_.*",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
    "E_RTE_.*",
];

/// Gives the 64-bit flag families their C type.
///
/// bindgen types an integer macro by its value (`u32` if it fits), but these
/// macros are OR-ed into `uint64_t` fields (`rxmode.offloads`,
/// `rss_conf.rss_hf`, `ol_flags`, `dev_capa`, ...). `RTE_BIT64(63)` would even
/// come out as a negative `i64`. Declaring them `u64` keeps every use site
/// cast-free.
#[derive(Debug)]
struct Dpdk64BitFlags;

impl ParseCallbacks for Dpdk64BitFlags {
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        const U64_FAMILIES: &[&str] = &[
            "RTE_ETH_RX_OFFLOAD_",
            "RTE_ETH_TX_OFFLOAD_",
            "RTE_ETH_RSS_",
            "RTE_ETH_DEV_CAPA_",
            "RTE_ETH_RX_METADATA_",
            "RTE_MBUF_F_",
        ];
        // RTE_ETH_RSS_RETA_SIZE_* are table sizes (uint16_t), not hash flags.
        if name.starts_with("RTE_ETH_RSS_RETA_SIZE_") {
            return None;
        }
        U64_FAMILIES
            .iter()
            .any(|family| name.starts_with(family))
            .then_some(IntKind::U64)
    }
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    for file in ["build.rs", "wrapper.h", "src/shim.h", "src/shim.c"] {
        println!("cargo:rerun-if-changed={file}");
    }

    // 1. Find DPDK. No cargo metadata yet: the shim must be linked first.
    let dpdk = match pkg_config::Config::new()
        .atleast_version(TESTED_DPDK)
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(err) => panic!("\n\n{INSTALL_HINT}\n\npkg-config said: {err}\n"),
    };
    if !dpdk.version.starts_with(TESTED_DPDK) {
        println!(
            "cargo:warning=podlane-dpdk-sys was tested with DPDK {TESTED_DPDK}, found {}; \
             bindings are regenerated from your headers but the shim may need changes",
            dpdk.version
        );
    }
    // The pkg-config crate keeps only -I/-D from the cflags and drops the rest,
    // but DPDK's cflags carry two things that matter: `-include rte_config.h`
    // (the build configuration every DPDK header assumes) and the `-march`
    // DPDK was built for (Debian: `-march=corei7`, i.e. SSE4.2, which the
    // inline fast-path code in the headers needs). So use the raw cflags.
    let cflags = raw_cflags();

    // 2. The C shim, with DPDK's own cflags. Always optimised: its functions
    // exist only to be fast, and -O0 would turn rx/tx bursts into slow calls.
    let mut shim = cc::Build::new();
    shim.file(manifest_dir.join("src/shim.c"))
        .opt_level(3)
        .warnings(true)
        .extra_warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("podlane_dpdk_shim"); // emits rustc-link-lib=static=podlane_dpdk_shim

    // 3. Link DPDK's shared libraries after the shim archive. Debian's shared
    // build also dlopen()s every PMD in its plugin directory
    // (`/usr/lib/<triple>/dpdk/pmds-23.0`) during rte_eal_init, so the
    // virtual devices (net_ring, net_null, net_pcap, net_tap, net_memif,
    // net_af_packet) need no extra link flags.
    if let Err(err) = pkg_config::Config::new()
        .atleast_version(TESTED_DPDK)
        .probe("libdpdk")
    {
        panic!("\n\n{INSTALL_HINT}\n\npkg-config said: {err}\n");
    }
    // rte_vdev_init/rte_vdev_uninit (rte_bus_vdev.h) live in the vdev *bus
    // driver*, librte_bus_vdev.so, which `pkg-config --libs libdpdk` does not
    // list (drivers only appear in its static Libs.private). Debian symlinks
    // it from the library directory to the plugin folder; the EAL's plugin
    // scan later dlopen()s the same file, which the dynamic loader recognises
    // as already loaded. With --as-needed it is only linked if referenced.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");

    // For dependents with their own C code (`DEP_DPDK_INCLUDE`, `DEP_DPDK_VERSION`).
    let includes: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("cargo:include={}", includes.join(":"));
    println!("cargo:version={}", dpdk.version);

    // 4. bindgen.
    let mut builder = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").display().to_string())
        .clang_args(&cflags)
        .clang_arg(format!("-I{}", manifest_dir.display()))
        // C enums as modules of integer constants, not Rust enums. A Rust
        // enum is UB when C hands back a value without a variant, and
        // `rte_eth_conf` holds `enum rte_eth_nb_pools` (8/16/32/64) and
        // `enum rte_eth_nb_tcs` (4/8), which have no 0: `mem::zeroed()` /
        // `Default` of `rte_eth_conf` (DPDK's documented way to start one,
        // `memset(&conf, 0, ...)`) panics "attempted to zero-initialize
        // type ... which is invalid" and aborts.
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        // Two packed protocol headers from rte_flow.h (included by
        // rte_ethdev.h) that bindgen cannot express in Rust: the L2TPv2 one
        // comes out as a packed struct holding a `#[repr(align)]` type
        // (E0588), the GTP PSC one as a struct whose derived `Debug` fails
        // (E0277). The allowlists below never reach them, so today these two
        // lines change nothing; they keep the build working if someone
        // widens the allowlist (e.g. `allowlist_type("rte_.*")`), which is
        // exactly how both errors were seen on this machine.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        // The `RTE_BIT64(n)` / `RTE_BIT32(n)` flag macros (offloads, RSS hash
        // types, link speeds, device capabilities) are function-like macro
        // expansions that bindgen's own evaluator (cexpr) gives up on. Let
        // clang evaluate those: it builds a precompiled header of wrapper.h
        // in OUT_DIR and asks clang for each macro's value.
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(&out_dir)
        .parse_callbacks(Box::new(Dpdk64BitFlags))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .derive_default(true)
        .derive_debug(true)
        .generate_cstr(true)
        .merge_extern_blocks(true)
        .rust_target(bindgen::RustTarget::stable(80, 0).expect("Rust 1.80 is a bindgen target"));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder.generate().unwrap_or_else(|err| {
        panic!(
            "bindgen failed on wrapper.h ({err}). It needs libclang: \
             `apt-get install clang libclang-dev`.\n{INSTALL_HINT}"
        )
    });
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");
}

/// `pkg-config --cflags libdpdk`, split on whitespace, honouring `$PKG_CONFIG`
/// the way the pkg-config crate does.
fn raw_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|err| panic!("\n\nrunning `{pkg_config}`: {err}\n\n{INSTALL_HINT}\n"));
    assert!(
        output.status.success(),
        "\n\n`{pkg_config} --cflags libdpdk` failed: {}\n{INSTALL_HINT}\n",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
