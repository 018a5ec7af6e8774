#!/usr/bin/env bash
# What idle pods cost the worker: podlane-fastpath forwards VXLAN decap traffic (net_pcap
# infinite_rx=1 → net_null, one worker) beside N idle TAP pod ports, created inside a private
# network namespace (no address, no traffic; gone with the daemon and the namespace).
#   bench/idle_taps.sh [TAPS] [SECONDS]     (default 100 TAPs, 4 s)
# Prints Mpps and polls per second with no TAP and with TAPS TAPs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
taps=${1:-100}
secs=${2:-4}
out=target/bench
mkdir -p "$out"
cargo build --release -q -p podlane-bench -p podlane-daemon
run_id=$$
ns="pl-idle-$run_id"
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    rm -rf /var/run/dpdk/pl-idle-"$run_id"-* 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
pcap="$(pwd)/$out/idle-decap.pcap"
state="$(pwd)/$out/idle-decap-state.json"
target/release/podlane-benchgen --profile decap --flows 1024 --pcap "$pcap" --state "$state"
for n in 0 "$taps"; do
    cfg="$out/idle-$n.toml"
    {
        bench_fastpath_head "$state" 0-1 "pl-idle-$run_id-$n"
        bench_port "net_pcap0,rx_pcap=$pcap,infinite_rx=1" uplink
        bench_port "net_null0,no-rx=1" pod 0
    } > "$cfg"
    for i in $(seq 1 "$n"); do
        bench_port "tap:plidle$i@/var/run/netns/$ns" pod "$i" >> "$cfg"
    done
    target/release/podlane-fastpath --config "$cfg" --duration "$secs" --stats-json "$out/idle-$n.json" >/dev/null
    python3 -c "import json; d=json.load(open('$out/idle-$n.json')); print('%4d idle TAPs: %6.2f Mpps, %7.0f polls/s' % ($n, d['tx_mpps'], d['polls'] / d['seconds']))"
done
