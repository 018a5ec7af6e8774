#!/usr/bin/env bash
# The comparison harness (issue 7): one run measuring, on the same devices, traffic and lcore,
#   (a) dpdk-testpmd io forwarding (--no-flush-rx) — the DPDK I/O ceiling,
#   (b) podlane-fastpath: VXLAN encap, decap, ClusterIP DNAT + encap (and, in full mode, the
#       other profiles),
#   (c) Open vSwitch 3.1 with its DPDK datapath: the same vdevs as dpdk ports, a VXLAN tunnel
#       port, decap by tnl_pop, DNAT by ct(commit,nat) flows;
# throughput: 64-byte frames from net_pcap (infinite_rx=1) into net_null, one forwarding lcore
# (lcore 1 for all three), with 1 and 1,024 flows; correctness: podlane's output for every
# profile written to a tx_pcap and checked byte-wise; latency: podlane-bench as a net_memif
# peer of podlane-fastpath, then of testpmd, at the same offered loads (a zero-loss search
# first). Prints a table, writes target/bench/compare.json and target/bench/compare.svg.
#
#   bench/compare.sh            full mode (3 × 5 s per system and case, ~15 minutes)
#   bench/compare.sh --short    CI mode: a second or two per system, 1,024 flows (~1 minute)
# Options: --latency-only (adds latency figures to the last run's results), --secs N (per
# measurement), --reps N (measurements per system, interleaved; the median is reported),
# --flows "1 1024", --no-ovs, --no-latency, --out DIR, --huge (all three systems, and the
# latency phase, on 2 MB hugepages instead of --no-huge: 4 GiB are reserved for the run when
# fewer are, and given back after).
# Environment: PODLANE_BIN_DIR=dir with podlane-bench and podlane-fastpath (skips the build).
#
# Needs root (network namespace for OVS), dpdk-testpmd, and openvswitch-switch-dpdk (installed
# with apt when missing). No hugepages (--no-huge everywhere) unless --huge. Everything it
# starts — processes, the network namespace, OVS's private database and run directory, DPDK
# runtime directories, temporary files — is removed on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
orig_args="$*"
BENCH_HUGE=0

short=0
secs=""
reps=""
flows_list=""
want_ovs=1
want_latency=1
latency_only=0
out=target/bench
while [ $# -gt 0 ]; do
    case "$1" in
        --short) short=1 ;;
        --secs) secs=$2; shift ;;
        --reps) reps=$2; shift ;;
        --flows) flows_list=$2; shift ;;
        --no-ovs) want_ovs=0 ;;
        --no-latency) want_latency=0 ;;
        --latency-only) latency_only=1; want_ovs=0 ;;
        --out) out=$2; shift ;;
        --huge) BENCH_HUGE=1 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
export BENCH_HUGE
if [ "$short" = 1 ]; then
    secs=${secs:-1}
    reps=${reps:-1}
    flows_list=${flows_list:-1024}
    profiles_all="encap decap clusterip"
else
    secs=${secs:-5}
    reps=${reps:-3}
    flows_list=${flows_list:-"1 1024"}
    profiles_all="encap decap clusterip"
fi
# Profiles podlane and testpmd (not OVS) are also measured on, in full mode, at 1,024 flows.
profiles_extra=$([ "$short" = 1 ] && echo "" || echo "local nodeport clusterip-new mix")
check_profiles="local encap decap clusterip clusterip-new nodeport mix"

[ "$(id -u)" = 0 ] || { echo "compare.sh: needs root (network namespace, OVS)" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "compare.sh: dpdk-testpmd missing (apt install dpdk)" >&2; exit 1; }
ovs_bin=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
if [ "$want_ovs" = 1 ] && [ ! -x "$ovs_bin" ]; then
    echo "compare.sh: installing openvswitch-switch-dpdk"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends openvswitch-switch-dpdk >/dev/null
fi

if [ -n "${PODLANE_BIN_DIR:-}" ]; then
    bin=$PODLANE_BIN_DIR
else
    cargo build --release -q -p podlane-bench -p podlane-daemon
    bin=target/release
fi
bin=$(cd "$bin" && pwd)
gen=$bin/podlane-bench
fp=$bin/podlane-fastpath
[ -x "$gen" ] && [ -x "$fp" ] || { echo "compare.sh: $gen or $fp missing" >&2; exit 1; }

id=$$
tmp=$(mktemp -d "/tmp/podlane-compare.XXXXXX")
res="$out/compare"
# --latency-only adds to (and reports with) the results of an earlier run.
[ "$latency_only" = 1 ] || rm -rf "$res"
mkdir -p "$res"
res=$(cd "$res" && pwd)
ns="plcmp-$id"
ovsd="$tmp/ovs"
pids=()

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ -S "$ovsd/ovs-vswitchd.ctl" ]; then
        timeout 10 ovs-appctl -t "$ovsd/ovs-vswitchd.ctl" exit --cleanup >/dev/null 2>&1
    fi
    if [ -S "$ovsd/ovsdb-server.ctl" ]; then
        timeout 5 ovs-appctl -t "$ovsd/ovsdb-server.ctl" exit >/dev/null 2>&1
    fi
    for p in "${ovs_pids[@]:-}"; do
        [ -n "$p" ] && { kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
    done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$tmp" /var/run/dpdk/plcmp-"$id"-* 2>/dev/null
    bench_huge_restore "$huge_before"
}
ovs_pids=()
huge_before=""
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf "%s %s\n" "$(date +%T)" "$*" >&2; }
# The first lines of /proc/loadavg and the other processes' CPU use, for the noise note.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)
jsonl="$res/throughput.jsonl"
emit() { # system profile flows "samples..." -> the median, with every sample
    local med samples
    med=$(printf '%s\n' $4 | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "0"; else printf "%.3f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    samples=$(printf '%s\n' $4 | paste -sd, -)
    printf '{"system":"%s","profile":"%s","flows":%s,"mpps":%s,"samples":[%s],"seconds":%s,"load":"%s"}\n' \
        "$1" "$2" "$3" "$med" "$samples" "$secs" "$(loadavg)" >> "$jsonl"
    log "  $(printf '%-8s %-14s %5s flows %8s Mpps (median of %s)' "$1" "$2" "$3" "$med" "$samples")"
}

# ---- inputs --------------------------------------------------------------------------------
mkpcap() { # profile flows -> $tmp/<profile>-<flows>.pcap
    "$gen" pcap --profile "$1" --flows "$2" --pcap "$tmp/$1-$2.pcap" --state "$tmp/state.json"
}

# ---- (a) testpmd ---------------------------------------------------------------------------
# Median of its per-second Rx-pps reports on port 0 (the pcap); see bench_testpmd.
testpmd_mpps() { # pcap
    # shellcheck disable=SC2046 # the memory arguments are words
    bench_testpmd "$secs" -l 0-1 $(bench_eal_memory) --no-pci \
        --no-telemetry --file-prefix "plcmp-$id-tp" --log-level lib.eal:error \
        --vdev "net_pcap0,rx_pcap=$1,infinite_rx=1" --vdev net_null0,no-rx=1 --
}

# ---- (b) podlane ---------------------------------------------------------------------------
# Ports: pod A = 0, pod B = 1, uplink. The profile's ingress gets $in_dev, the others $sink
# devices (net_null, or tx_pcap files for the correctness runs).
fp_config() { # profile in_dev sink_kind(null|pcap) tag -> config path
    local profile=$1 in_dev=$2 kind=$3 tag=$4 ct=""
    local cfg="$tmp/fp-$tag.toml"
    local ingress
    ingress=$("$gen" pcap --profile "$profile" --flows 1 --pcap "$tmp/describe.pcap" --describe |
        sed 's/.*"ingress":"\([a-z_]*\)".*/\1/')
    # clusterip-new: 64,512 flows through 4,096 conntrack entries, so nearly every packet is
    # a new flow (insert + evict).
    # (net_pcap's infinite_rx keeps a copy of every frame of the pcap in mbufs: 64,512 here.)
    [ "$profile" = clusterip-new ] &&
        ct=$(sed -n '/^\[capacities\]/,/^conntrack_entries/p' deploy/fastpath.toml |
            sed 's/^conntrack_entries.*/conntrack_entries = 4096/'; printf '[queues]\nmbufs = 131071\n')
    sink() { # name index
        if [ "$kind" = pcap ]; then echo "net_pcap$2,tx_pcap=$tmp/out-$tag-$1.pcap"
        else echo "net_null$2,no-rx=1"; fi
    }
    local a b u
    a=$(sink pod_a 1); b=$(sink pod_b 2); u=$(sink uplink 3)
    case "$ingress" in
        pod_a) a=$in_dev ;;
        uplink) u=$in_dev ;;
    esac
    {
        bench_fastpath_head "$tmp/state.json" 0-1 "plcmp-$id-fp"
        echo "$ct"
        bench_port "$u" uplink
        bench_port "$a" pod 0
        bench_port "$b" pod 1
    } > "$cfg"
    echo "$cfg"
}

podlane_mpps() { # profile pcap
    local cfg
    cfg=$(fp_config "$1" "net_pcap0,rx_pcap=$2,infinite_rx=1" null "tp")
    rm -f "$tmp/fp-stats.json"
    "$fp" --config "$cfg" --duration "$secs" --stats-json "$tmp/fp-stats.json" >/dev/null ||
        { echo 0; return; }
    sed -n 's/.*"tx_mpps": *\([0-9.e+-]*\).*/\1/p' "$tmp/fp-stats.json" | head -1 |
        awk '{ printf "%.3f\n", $1 }'
}

# Byte-wise check: the profile's pcap once through podlane, every output port to a tx_pcap,
# each frame compared with the frame podlane must emit for its flow.
podlane_check() { # profile
    local p=$1 cfg flows=64
    "$gen" pcap --profile "$p" --flows "$flows" --pcap "$tmp/chk-$p.pcap" --state "$tmp/state.json"
    cfg=$(fp_config "$p" "net_pcap0,rx_pcap=$tmp/chk-$p.pcap" pcap "chk-$p")
    "$fp" --config "$cfg" --duration 0.5 >/dev/null
    local side total=0 ok=1 n
    for side in pod_a pod_b uplink; do
        local f="$tmp/out-chk-$p-$side.pcap"
        [ -s "$f" ] || continue
        if ! "$gen" verify --profile "$p" --flows "$flows" --side "${side//_/-}" --pcap "$f" --min 0 \
                --json "$tmp/v.json" >/dev/null 2>"$tmp/v.err"; then
            ok=0
            log "  podlane output check FAILED for $p on $side: $(head -c 600 "$tmp/v.err")"
        fi
        n=$(sed -n 's/.*"checked":\([0-9]*\).*/\1/p' "$tmp/v.json")
        total=$((total + ${n:-0}))
    done
    local want
    want=$("$gen" pcap --profile "$p" --flows "$flows" --pcap "$tmp/describe.pcap" --describe |
        sed 's/.*"flows":\([0-9]*\).*/\1/')
    # Every input frame must come out (clusterip-new: 64,512 frames, one per flow).
    [ "$total" = "$want" ] || { ok=0; log "  $p: $total of $want frames out"; }
    printf '{"profile":"%s","checked":%s,"expected":%s,"ok":%s}\n' "$p" "$total" "$want" \
        "$([ $ok = 1 ] && echo true || echo false)" > "$res/check-$p.json"
    log "  check $p: $total/$want frames byte-for-byte $([ $ok = 1 ] && echo ok || echo FAILED)"
}

# ---- (c) Open vSwitch with DPDK ------------------------------------------------------------
ovs_vsctl() { ovs-vsctl --db="unix:$ovsd/db.sock" --timeout=30 "$@"; }
ovs_ofctl() { ovs-ofctl "$@"; }
ovs_appctl() { ovs-appctl -t "$ovsd/ovs-vswitchd.ctl" "$@"; }
ovs_dev=0

ovs_start() {
    mkdir -p "$ovsd"
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ovsdb-tool create "$ovsd/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec "$ns" ovsdb-server "$ovsd/conf.db" --remote="punix:$ovsd/db.sock" \
        --unixctl="$ovsd/ovsdb-server.ctl" --log-file="$ovsd/ovsdb-server.log" \
        --pidfile="$ovsd/ovsdb-server.pid" -vconsole:off 2>/dev/null &
    ovs_pids+=($!)
    for _ in $(seq 50); do [ -S "$ovsd/db.sock" ] && break; sleep 0.1; done
    ovs_vsctl --no-wait init
    # Without hugepages: OVS adds --in-memory by default, which DPDK refuses with --no-huge
    # (it implies legacy memory); an explicit --legacy-mem stops OVS from adding it. With
    # --huge, OVS's default (--in-memory on hugepages) is what the others get too.
    local mem="--no-huge -m 2048 --legacy-mem"
    [ "$BENCH_HUGE" = 1 ] && mem=""
    ovs_vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
        other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 \
        "other_config:dpdk-extra=$mem --no-pci --no-telemetry --file-prefix plcmp-$id-ovs --log-level=lib.eal:error"
    # The DPDK build, run directly (no update-alternatives switch to restore); OVS_RUNDIR keeps
    # its management sockets in the private directory.
    ip netns exec "$ns" env OVS_RUNDIR="$ovsd" OVS_DBDIR="$ovsd" OVS_LOGDIR="$ovsd" \
        "$ovs_bin" "unix:$ovsd/db.sock" --unixctl="$ovsd/ovs-vswitchd.ctl" \
        --log-file="$ovsd/ovs-vswitchd.log" --pidfile="$ovsd/ovs-vswitchd.pid" -vconsole:off 2>/dev/null &
    ovs_pids+=($!)
    for _ in $(seq 100); do [ -S "$ovsd/ovs-vswitchd.ctl" ] && break; sleep 0.1; done
    # br-phy: the underlay, with node A's MAC (tnl_pop needs the outer destination MAC to be
    # the bridge's) and IP (tnl_push needs a route and a source address on it).
    ovs_vsctl add-br br-phy -- set bridge br-phy datapath_type=netdev \
        other_config:hwaddr=02:00:0a:01:00:0a
    ovs_vsctl add-br br-int -- set bridge br-int datapath_type=netdev
    ip netns exec "$ns" ip addr add 10.1.0.10/24 dev br-phy
    ip netns exec "$ns" ip link set br-phy up
    ip netns exec "$ns" ip link set br-int up
    ovs_vsctl add-port br-int vx -- set Interface vx type=vxlan options:remote_ip=10.1.0.11 \
        options:local_ip=10.1.0.10 options:key=1 ofport_request=3
    ovs_appctl tnl/arp/set br-phy 10.1.0.11 02:00:0a:01:00:0b >/dev/null
    for _ in $(seq 50); do [ -S "$ovsd/br-int.mgmt" ] && [ -S "$ovsd/br-phy.mgmt" ] && break; sleep 0.1; done
}

# One OVS measurement: the input pcap as a dpdk port, a net_null sink, the profile's flows
# (replace-flows fails here: del-flows + add-flows), the sink added first, a warm-up, then
# the sink's tx counter (ovs-ofctl dump-ports reads it live; the database's statistics
# column only refreshes every 5 s) over $secs.
ovs_mpps() { # profile pcap
    local p=$1 pcap=$2 in_br sink_br sink
    local P="unix:$ovsd/br-phy.mgmt" I="unix:$ovsd/br-int.mgmt"
    ovs_vsctl --if-exists del-port in -- --if-exists del-port sink
    ovs_ofctl del-flows "$P"
    ovs_ofctl del-flows "$I"
    case "$p" in
        decap) in_br=br-phy; sink_br=br-int ;;
        *) in_br=br-int; sink_br=br-phy ;;
    esac
    ovs_dev=$((ovs_dev + 1))
    ovs_vsctl add-port "$sink_br" sink -- set Interface sink type=dpdk \
        "options:dpdk-devargs=net_null$ovs_dev,no-rx=1" ofport_request=2
    {
        case "$p" in
            encap)
                echo "table=0,priority=10,in_port=LOCAL,actions=output:sink" > "$tmp/phy.flows"
                echo "table=0,priority=10,ip,nw_dst=10.244.2.0/24,actions=mod_dl_src:02:76:74:65:70:0a,mod_dl_dst:02:76:74:65:70:0b,dec_ttl,output:vx"
                ;;
            clusterip)
                echo "table=0,priority=10,in_port=LOCAL,actions=output:sink" > "$tmp/phy.flows"
                # The cheapest OVS pipeline that DNATs: one conntrack pass (commit + nat on
                # the existing connection), then encap. (With ct(nat) then a separate commit
                # for +new, as OVN does, every packet of these reply-less UDP flows stays
                # +new and takes two conntrack passes.)
                echo "table=0,priority=10,udp,nw_dst=10.96.0.10,tp_dst=53,actions=ct(commit,zone=1,nat(dst=10.244.2.2:5353),table=1)"
                echo "table=1,priority=10,ip,nw_dst=10.244.2.0/24,actions=mod_dl_src:02:76:74:65:70:0a,mod_dl_dst:02:76:74:65:70:0b,dec_ttl,output:vx"
                ;;
            decap)
                # Outer destination = br-phy's MAC and IP, UDP 4789: output to LOCAL pops.
                echo "table=0,priority=10,udp,tp_dst=4789,actions=LOCAL" > "$tmp/phy.flows"
                echo "table=0,priority=10,in_port=vx,ip,nw_dst=10.244.1.2,actions=mod_dl_src:02:67:77:00:01:01,mod_dl_dst:0a:58:0a:f4:01:02,dec_ttl,output:sink"
                ;;
        esac
    } > "$tmp/int.flows"
    ovs_ofctl add-flows "$P" "$tmp/phy.flows"
    ovs_ofctl add-flows "$I" "$tmp/int.flows"
    ovs_dev=$((ovs_dev + 1))
    ovs_vsctl add-port "$in_br" in -- set Interface in type=dpdk \
        "options:dpdk-devargs=net_pcap$ovs_dev,rx_pcap=$pcap,infinite_rx=1" ofport_request=1
    local mgmt="unix:$ovsd/$sink_br.mgmt"
    txp() { ovs_ofctl dump-ports "$mgmt" sink | sed -n 's/.*tx pkts=\([0-9]*\).*/\1/p'; }
    sleep 1.5 # warm-up: upcalls, megaflows, conntrack entries
    local t0 c0 t1 c1
    t0=$(date +%s.%N); c0=$(txp)
    sleep "$secs"
    t1=$(date +%s.%N); c1=$(txp)
    # Remove the ports again: OVS's PMD thread must not poll (and spin on lcore 1) while the
    # other systems are measured.
    ovs_vsctl --if-exists del-port in -- --if-exists del-port sink
    awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.3f\n", (b - a) / (e - s) / 1e6 }'
}

# ---- latency over net_memif ----------------------------------------------------------------
# podlane-bench is the memif server of two sockets (pod A's and the uplink's side); the device
# under test connects as the client. Abstract sockets (the 22.11 default): nothing on disk.
# Rings of 4,096 slots (the client sets the size) for both devices under test: a shared
# machine deschedules them for milliseconds at a time.
rsize=12
latency_run() { # label profile
    local label=$1 p=$2 dut
    local sa="/plcmp-$id-poda.sock" su="/plcmp-$id-up.sock"
    local args=(run --profile "$p" --flows 1024 --file-prefix "plcmp-$id-gen" --lcores 0
        --label "$label" --json "$res/latency-$label-$p.json"
        --pod-a "net_memif0,role=server,socket=$sa" --uplink "net_memif1,role=server,socket=$su")
    if [ "$BENCH_HUGE" = 1 ]; then args+=(--hugepages); fi
    if [ "$short" = 1 ]; then
        args+=(--rate-mpps 0.05 --loads 100 --duration 1 --ready-timeout 20)
    elif [ "$label" = podlane ]; then
        args+=(--search --trial-secs 2 --loads 10,50,90 --duration 5)
    else
        args+=(--rates-from "$res/latency-podlane-$p.json" --loads 10,50,90 --duration 5)
    fi
    "$gen" "${args[@]}" 2> "$tmp/gen-$label.log" &
    local g=$!
    pids+=("$g")
    sleep 1
    if [ "$label" = podlane ]; then
        local cfg
        mkpcap "$p" 1024
        cfg=$(fp_config "$p" "net_memif0,role=client,socket=$sa,rsize=$rsize" null "lat")
        sed -i "s|net_null3,no-rx=1|net_memif1,role=client,socket=$su,rsize=$rsize|" "$cfg"
        "$fp" --config "$cfg" --stats-json "$res/dut-podlane-$p.json" >/dev/null 2>"$tmp/dut.log" &
    else
        # shellcheck disable=SC2046 # the memory arguments are words
        dpdk-testpmd -l 0-1 $(bench_eal_memory) --no-pci --no-telemetry \
            --file-prefix "plcmp-$id-tpl" --log-level lib.eal:error \
            --vdev "net_memif0,role=client,socket=$sa,rsize=$rsize" \
            --vdev "net_memif1,role=client,socket=$su,rsize=$rsize" -- \
            --forward-mode=io -a --stats-period 60 --total-num-mbufs 16384 \
            >/dev/null 2>"$tmp/dut.log" &
    fi
    dut=$!
    pids+=("$dut")
    local rc=0
    wait "$g" || rc=$?
    kill -INT "$dut" 2>/dev/null || true
    wait "$dut" 2>/dev/null || true
    sed 's/^/    /' "$tmp/gen-$label.log" >&2
    [ "$rc" = 0 ] || log "  latency run $label $p failed (rc $rc)"
}

# ---- the run -------------------------------------------------------------------------------
# OVS keeps its memory for the whole run while testpmd or podlane (and, in the latency phase,
# the generator beside a device under test) take theirs: 4 GiB.
huge_before=$(bench_huge_reserve 2048)
log "== compare.sh: $([ "$short" = 1 ] && echo short || echo full) mode, $secs s per measurement, flows: $flows_list, $([ "$BENCH_HUGE" = 1 ] && echo "2 MB hugepages" || echo "no hugepages"); load average $load_start"
if [ "$latency_only" = 1 ]; then
    check_profiles=""
    flows_list=""
    profiles_extra=""
else
    : > "$jsonl"
fi
log "== byte-wise output checks (podlane, every profile)"
for p in $check_profiles; do podlane_check "$p"; done

if [ "$want_ovs" = 1 ]; then
    log "== starting ovs-vswitchd (DPDK) in network namespace $ns"
    ovs_start
fi
for flows in $flows_list; do
    log "== throughput, $flows flows"
    for p in $profiles_all; do
        mkpcap "$p" "$flows"
        pcap="$tmp/$p-$flows.pcap"
        # The systems take turns, $reps times, so slow phases of the shared machine hit each.
        st="" sp="" so=""
        for _ in $(seq "$reps"); do
            st="$st $(testpmd_mpps "$pcap")"
            sp="$sp $(podlane_mpps "$p" "$pcap")"
            [ "$want_ovs" = 1 ] && so="$so $(ovs_mpps "$p" "$pcap")"
        done
        emit testpmd "$p" "$flows" "$st"
        emit podlane "$p" "$flows" "$sp"
        [ "$want_ovs" = 1 ] && emit ovs "$p" "$flows" "$so"
    done
done
if [ -n "$profiles_extra" ]; then
    log "== throughput, more profiles (podlane and testpmd), 1024 flows"
    for p in $profiles_extra; do
        mkpcap "$p" 1024
        pcap="$tmp/$p-1024.pcap"
        st="" sp=""
        for _ in $(seq "$reps"); do
            st="$st $(testpmd_mpps "$pcap")"
            sp="$sp $(podlane_mpps "$p" "$pcap")"
        done
        emit testpmd "$p" 1024 "$st"
        emit podlane "$p" 1024 "$sp"
    done
fi
if [ "$want_ovs" = 1 ]; then
    cp "$ovsd/ovs-vswitchd.log" "$res/ovs-vswitchd.log" 2>/dev/null || true
fi
if [ "$want_latency" = 1 ]; then
    for p in ${LAT_PROFILES:-encap}; do
        log "== latency over net_memif, $p: podlane, then testpmd at the same rates"
        latency_run podlane "$p"
        latency_run testpmd "$p"
    done
fi

load_end=$(loadavg)
cat > "$res/meta.json" <<JSON
{"date":"$(date -u +%Y-%m-%dT%H:%MZ)","mode":"$([ "$short" = 1 ] && echo short || echo full)",
 "command":"bench/compare.sh $orig_args","seconds_per_measurement":$secs,"repetitions":$reps,"flows":"$flows_list",
 "commit":"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
 "hugepages":$([ "$BENCH_HUGE" = 1 ] && echo true || echo false),"cpus":$(nproc),"loadavg_start":"$load_start","loadavg_end":"$load_end",
 "cpu":"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"}
JSON
log "== report (load average at the start $load_start, at the end $load_end)"
"$gen" report --dir "$res" --json "$out/compare.json" --svg "$out/compare.svg"
echo "wrote $out/compare.json, $out/compare.svg (raw results in $res)"
