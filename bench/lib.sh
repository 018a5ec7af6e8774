# Shared by the bench scripts (sourced, from the repository root): the podlane-fastpath config
# they all write, and testpmd's figure.

# The head of a podlane-fastpath config for a bench run: state file, EAL without hugepages
# (lcores, file prefix), node A's [node] section from deploy/fastpath.toml. The caller appends
# its ports (bench_port) and anything else.
#   bench_fastpath_head STATE_FILE LCORES FILE_PREFIX
bench_fastpath_head() {
    cat <<TOML
state_file = "$1"
[eal]
lcores = "$2"
no_huge = true
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
