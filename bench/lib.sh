# Shared by the bench scripts (sourced, from the repository root): the podlane-fastpath config
# they all write, and testpmd's figure.

# The head of a podlane-fastpath config for a bench run: state file, EAL without hugepages
# (lcores, file prefix), node A's [node] section from deploy/fastpath.toml. The caller appends
# its ports (bench_port) and anything else. BENCH_HUGE=1 puts the EAL on hugepages instead
# (`in_memory`; see bench_eal_memory).
#   bench_fastpath_head STATE_FILE LCORES FILE_PREFIX
bench_fastpath_head() {
    local mem='no_huge = true'
    if [ "${BENCH_HUGE:-0}" = 1 ]; then mem='in_memory = true'; fi
    cat <<TOML
state_file = "$1"
[eal]
lcores = "$2"
$mem
memory_mb = 1024
file_prefix = "$3"
log_level = "lib.eal:error"
no_pci = true
$(sed -n '/^\[node\]/,/^host_mac/p' deploy/fastpath.toml)
TOML
}

# One [[ports]] entry.
#   bench_port DEVARGS ROLE [POD_PORT]
bench_port() {
    printf '[[ports]]\ndevargs = "%s"\nrole = "%s"\n' "$1" "$2"
    if [ -n "${3:-}" ]; then printf 'pod_port = %s\n' "$3"; fi
}

# testpmd's figure from its output on stdin (--stats-period 1): the median of port 0's
# per-second Rx-pps reports (the input port's; the sink's reports alternate with them), Mpps.
bench_testpmd_median() {
    awk '/Rx-pps:/ { n++; if (n % 2 == 1 && $2 > 0) print $2 }' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "0"; else printf "%.3f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1e6 }'
}

# dpdk-testpmd io forwarding for about SECONDS, its figure in Mpps (bench_testpmd_median).
# ARGS are the EAL arguments, `--`, and any testpmd options beyond io forwarding of every port
# with a report a second. testpmd starts in a few seconds and reports once a second after; on a
# loaded machine a short run can end before its first non-zero report (seen once in CI, in
# compare.sh --short), so a run without a figure is repeated once, 10 s longer.
#   bench_testpmd SECONDS ARGS...
bench_testpmd() {
    local secs=$1 mpps=0 t
    shift
    for t in $((secs + 3)) $((secs + 13)); do
        mpps=$({ timeout -s INT "$t" dpdk-testpmd "$@" \
            --forward-mode=io --no-flush-rx -a --stats-period 1 2>/dev/null || true; } |
            bench_testpmd_median)
        [ "$mpps" != 0 ] && break
        echo "$(date +%T)   testpmd gave no figure in ${t} s; once more, longer" >&2
    done
    echo "$mpps"
}

# The EAL memory arguments for dpdk-testpmd that match bench_fastpath_head's: no hugepages
# (1 GiB of ordinary memory), or with BENCH_HUGE=1 hugepages without a runtime directory.
bench_eal_memory() {
    if [ "${BENCH_HUGE:-0}" = 1 ]; then echo --in-memory; else echo --no-huge -m 1024; fi
}

# With BENCH_HUGE=1: makes sure COUNT 2 MB hugepages are reserved (default 1,024: 2 GiB), when
# fewer are, and prints the count to restore afterwards (bench_huge_restore). Without: prints
# nothing.
#   bench_huge_reserve [COUNT]
bench_huge_reserve() {
    [ "${BENCH_HUGE:-0}" = 1 ] || return 0
    local f=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages before want=${1:-1024}
    before=$(cat "$f")
    if [ "$before" -lt "$want" ]; then
        echo "$want" > "$f"
        if [ "$(cat "$f")" -lt "$want" ]; then
            echo "could not reserve $want hugepages of 2 MB (got $(cat "$f")); free memory or run without --huge" >&2
            echo "$before" > "$f"
            return 1
        fi
    fi
    echo "$before"
}

#   bench_huge_restore COUNT     (COUNT from bench_huge_reserve; nothing when empty)
bench_huge_restore() {
    [ -n "${1:-}" ] && echo "$1" > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    return 0
}
