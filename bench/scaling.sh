#!/usr/bin/env bash
# One worker against two: podlane's VXLAN decap path with the uplink's receive queues spread
# over the workers (as RSS would), against dpdk-testpmd io forwarding with as many forwarding
# cores, same devices, same run: net_pcap (infinite_rx=1, one rx_pcap per queue) into net_null.
#   bench/scaling.sh [SECONDS] [FLOWS]     (default 5 s, 1024 flows)
# On a 2-CPU machine the second worker shares CPU 0 with the (sleeping) main lcore: lcores
# "0@0,1@0,2@1". Writes target/bench/scaling.json. No hugepages needed (--no-huge).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
flows=${2:-1024}
out=target/bench
mkdir -p "$out"
cargo build --release -q -p podlane-bench -p podlane-daemon
run_id=$$
cleanup() { rm -rf /var/run/dpdk/pl-sc-"$run_id"-* 2>/dev/null || true; }
trap cleanup EXIT
pcap="$(pwd)/$out/scaling-decap.pcap"
state="$(pwd)/$out/scaling-decap-state.json"
target/release/podlane-benchgen --profile decap --flows "$flows" --pcap "$pcap" --state "$state"

lcores_for() { if [ "$1" = 1 ]; then echo "0@0,1@1"; else echo "0@0,1@0,2@1"; fi; }
rx_for() { local r="rx_pcap=$pcap"; [ "$1" = 2 ] && r="$r,rx_pcap=$pcap"; echo "$r"; }

podlane_mpps() {
    local w=$1 cfg="$out/scaling-w$1.toml" stats="$out/scaling-w$1.json"
    {
        bench_fastpath_head "$state" "$(lcores_for "$w")" "pl-sc-$run_id-w$w"
        bench_port "net_pcap0,$(rx_for "$w"),infinite_rx=1" uplink
        bench_port "net_null0,no-rx=1" pod 0
    } > "$cfg"
    target/release/podlane-fastpath --config "$cfg" --duration "$secs" --stats-json "$stats" >/dev/null
    python3 -c "import json; d=json.load(open('$stats')); print('%.3f' % d['tx_mpps'])"
}

testpmd_mpps() {
    local c=$1
    bench_testpmd "$secs" --lcores "$(lcores_for "$c")" --no-huge -m 1024 \
        --no-pci --no-telemetry --file-prefix "pl-sc-$run_id-t$c" \
        --vdev "net_pcap0,$(rx_for "$c"),infinite_rx=1" --vdev net_null0,no-rx=1 -- \
        --nb-cores="$c" --rxq="$c" --txq="$c"
}

printf '%-8s %10s %10s %8s\n' workers testpmd podlane ratio
json="["
for w in 1 2; do
    t=$(testpmd_mpps "$w")
    p=$(podlane_mpps "$w")
    r=$(python3 -c "print('%.2f' % ($p / $t if $t > 0 else 0))")
    printf '%-8s %10s %10s %8s\n' "$w" "$t" "$p" "$r"
    json="$json{\"workers\":$w,\"flows\":$flows,\"seconds\":$secs,\"testpmd_mpps\":$t,\"podlane_mpps\":$p,\"ratio\":$r},"
done
echo "${json%,}]" > "$out/scaling.json"
echo "wrote $out/scaling.json"
