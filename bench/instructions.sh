#!/usr/bin/env bash
# Instructions a packet of podlane-fastpath's worker, per profile, counted by callgrind: what to
# compare two builds with on a machine too noisy for timings (the count of one build repeats to
# ~0.1% here, where its Mpps varied by 30%). Same devices and pcaps as bench/throughput.sh
# (net_pcap infinite_rx=1 in, net_null out, no hugepages); the count covers the worker thread
# whole — net_pcap's receive and net_null's transmit included — over packets forwarded.
#   bench/instructions.sh [FASTPATH_BIN...]     (default target/release/podlane-fastpath)
# Env: PROFILES (default "encap decap dnat local"), FLOWS (1024), SECONDS_PER_RUN (8; under
# callgrind that is a few hundred thousand packets).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
export BENCH_HUGE=0
profiles=${PROFILES:-encap decap dnat local}
flows=${FLOWS:-1024}
secs=${SECONDS_PER_RUN:-8}
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/release/podlane-fastpath)
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -q -p podlane-bench -p podlane-daemon
gen=target/release/podlane-benchgen
out=target/bench/instructions
mkdir -p "$out"
run_id=$$
trap 'rm -rf /var/run/dpdk/pl-in-$run_id-* 2>/dev/null || true' EXIT

for i in "${!bins[@]}"; do echo "build $((i + 1)): ${bins[$i]}"; done
printf '%-8s' profile
for i in "${!bins[@]}"; do printf ' %10s' "build $((i + 1))"; done
echo
for profile in $profiles; do
    pcap="$(pwd)/$out/$profile.pcap"
    state="$(pwd)/$out/$profile-state.json"
    "$gen" --profile "$profile" --flows "$flows" --pcap "$pcap" --state "$state"
    in_role=pod out_role=uplink in_pod=0 out_pod='' more=''
    case $profile in
        decap) in_role=uplink; out_role=pod; in_pod=''; out_pod=0 ;;
        local) out_role=pod; out_pod=1; more=$(bench_port "net_null1,no-rx=1" uplink) ;;
    esac
    printf '%-8s' "$profile"
    for i in "${!bins[@]}"; do
        d="$out/$profile-$i"
        rm -rf "$d"; mkdir -p "$d"
        {
            bench_fastpath_head "$state" 0-1 "pl-in-$run_id-$profile-$i"
            bench_port "net_pcap0,rx_pcap=$pcap,infinite_rx=1" "$in_role" "$in_pod"
            bench_port "net_null0,no-rx=1" "$out_role" "$out_pod"
            echo "$more"
        } > "$d/fastpath.toml"
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/cg.out" \
            "${bins[$i]}" --config "$d/fastpath.toml" --duration "$secs" \
            --stats-json "$d/stats.json" > /dev/null 2> "$d/valgrind.log"
        # The worker is the thread with the most instructions.
        per=$(python3 - "$d" <<'EOF'
import glob, json, sys
d = sys.argv[1]
tx = json.load(open(d + "/stats.json"))["tx_packets"]
best = 0
for f in glob.glob(d + "/cg.out*"):
    for line in open(f):
        if line.startswith(("summary:", "totals:")):
            best = max(best, int(line.split()[1]))
            break
print("%.1f" % (best / tx) if tx else "no packets")
EOF
)
        printf ' %10s' "$per"
    done
    echo
done
