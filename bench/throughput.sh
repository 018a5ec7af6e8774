#!/usr/bin/env bash
# One-lcore throughput of podlane's paths against dpdk-testpmd io forwarding, on the same
# devices in the same run: 64-byte frames from net_pcap (infinite_rx=1) into net_null.
#   bench/throughput.sh [--huge] [SECONDS] [FLOWS]     (default 5 s, 1024 flows)
# Profiles: encap, decap (VXLAN as podlane sends it: no outer UDP checksum), decap-csum (as a
# Linux VXLAN device — a Flannel node — sends it: with one, which podlane verifies), DNAT +
# encap, local pod to pod. Prints a table and writes target/bench/throughput.json. No hugepages needed (--no-huge for
# both programs); --huge runs both on 2 MB hugepages instead (reserving 2 GiB for the run if
# fewer are reserved, and giving them back after), which makes testpmd's I/O about twice as
# fast here — see docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BENCH_HUGE=0
if [ "${1:-}" = --huge ]; then
    BENCH_HUGE=1
    shift
fi
export BENCH_HUGE
secs=${1:-5}
flows=${2:-1024}
out=target/bench
mkdir -p "$out"
cargo build --release -q -p podlane-bench -p podlane-daemon
gen=target/release/podlane-benchgen
fp=target/release/podlane-fastpath
run_id=$$
huge_before=$(bench_huge_reserve)
cleanup() {
    rm -rf "/var/run/dpdk/pl-tp-$run_id" "/var/run/dpdk/pl-fp-$run_id"-* 2>/dev/null || true
    bench_huge_restore "$huge_before"
}
trap cleanup EXIT

# testpmd: the I/O ceiling. Median of its per-second Rx-pps reports on port 0 (the pcap).
testpmd_mpps() {
    local pcap=$1
    # shellcheck disable=SC2046 # the memory arguments are words
    bench_testpmd "$secs" -l 0-1 $(bench_eal_memory) --no-pci --no-telemetry \
        --file-prefix "pl-tp-$run_id" \
        --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null0,no-rx=1 --
}

# podlane: the pcap port is the ingress (a pod, or the uplink for decap), net_null the egress.
podlane_mpps() {
    local profile=$1 pcap=$2 state=$3 cfg="$out/$1.toml" stats="$out/$1-stats.json"
    local in_role=pod out_role=uplink in_pod=0 out_pod='' more=''
    if [ "$profile" = decap ] || [ "$profile" = decap-csum ]; then
        in_role=uplink; out_role=pod; in_pod=''; out_pod=0
    elif [ "$profile" = local ]; then
        # Pod A to pod B: pod B's port is the sink; the uplink is an idle null device.
        out_role=pod; out_pod=1
        more=$(bench_port "net_null1,no-rx=1" uplink)
    fi
    {
        bench_fastpath_head "$state" 0-1 "pl-fp-$run_id-$profile"
        bench_port "net_pcap0,rx_pcap=$pcap,infinite_rx=1" "$in_role" "$in_pod"
        bench_port "net_null0,no-rx=1" "$out_role" "$out_pod"
        echo "$more"
    } > "$cfg"
    "$fp" --config "$cfg" --duration "$secs" --stats-json "$stats" >/dev/null
    python3 -c "import json,sys; d=json.load(open('$stats')); print('%.3f' % d['tx_mpps'])"
}

printf '%-10s %10s %10s %8s\n' profile testpmd podlane ratio
json="["
for profile in encap decap decap-csum dnat local; do
    pcap="$(pwd)/$out/$profile.pcap"
    state="$(pwd)/$out/$profile-state.json"
    gen_args=(--profile "$profile")
    [ "$profile" = decap-csum ] && gen_args=(--profile decap --outer-checksum)
    "$gen" "${gen_args[@]}" --flows "$flows" --pcap "$pcap" --state "$state"
    t=$(testpmd_mpps "$pcap")
    p=$(podlane_mpps "$profile" "$pcap" "$state")
    r=$(python3 -c "print('%.2f' % ($p / $t if $t > 0 else 0))")
    printf '%-10s %10s %10s %8s\n' "$profile" "$t" "$p" "$r"
    json="$json{\"profile\":\"$profile\",\"flows\":$flows,\"seconds\":$secs,\"hugepages\":$([ "$BENCH_HUGE" = 1 ] && echo true || echo false),\"testpmd_mpps\":$t,\"podlane_mpps\":$p,\"ratio\":$r},"
done
echo "${json%,}]" > "$out/throughput.json"
echo "wrote $out/throughput.json"
