#!/usr/bin/env bash
# Writes every podlane bench profile as a pcap for pktgen's pcap replay (pktgen -s P:FILE):
# the exact frames podlane-bench and bench/compare.sh send, including the VXLAN frames of the
# decap profile and the mix. Also writes node A's state file for podlane-fastpath.
#   deploy/pktgen/make-pcaps.sh [OUTDIR] [FLOWS] [SIZE]     (default ./pcaps 1024 64)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-pcaps}
flows=${2:-1024}
size=${3:-64}
mkdir -p "$out"
bench=${PODLANE_BENCH:-$here/../../target/release/podlane-bench}
[ -x "$bench" ] || (cd "$here/../.." && cargo build --release -q -p podlane-bench)
for p in local encap decap clusterip clusterip-new nodeport mix; do
    "$bench" pcap --profile "$p" --flows "$flows" --size "$size" --pcap "$out/$p.pcap" \
        --state "$out/node-a-state.json"
    echo "$out/$p.pcap: $("$bench" pcap --profile "$p" --flows "$flows" --size "$size" \
        --pcap /dev/null --describe)"
done
