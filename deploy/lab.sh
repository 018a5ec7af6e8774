#!/usr/bin/env bash
# The podlane lab: a two-node podlane cluster on one machine, in network namespaces, end to end,
# and a third node wired as Flannel's VXLAN backend wires a Linux node, sharing its pod network.
#
#   deploy/lab.sh            set up the host, build (release), run the lab, report, clean up
#   deploy/lab.sh --keep     leave the lab up afterwards and print how to poke at it
#   deploy/lab.sh --clean    only remove what a previous (kept or killed) run left
#   --no-setup / --no-build  skip deploy/setup-host.sh / the cargo build (CI runs the lab after
#                            the test suite has built everything)
#
# Topology (everything lives in namespaces this script creates; the root namespace gets no
# address, route or interface):
#
#   pl-lab-pod-a  pl-lab-pod-b             pl-lab-pod-c              pl-lab-pod-k
#   10.244.1.2    10.244.1.3               10.244.2.2                10.244.3.2
#      eth0 (TAP)    eth0 (TAP)               eth0 (TAP)                eth0 (veth)
#        \          /                          |                          |
#   [pl-lab-node-a: podlane-fastpath     [pl-lab-node-b: podlane-fastpath  [pl-lab-node-k: Linux,
#    + podlane-control, uplink            + podlane-control, uplink         Flannel-style: cni0
#    net_af_packet on eth0, host path     net_af_packet on eth0, host path  bridge, flannel.1
#    TAP host0 = 10.1.0.10]               TAP host0 = 10.1.0.11]
#             \                                   /                         VXLAN, eth0 10.1.0.12]
#              a-ul ---- [pl-lab-underlay: br0] ---- b-ul                    |
#                             |          \-------------------------------- k-ul
#                           x-ul --- [pl-lab-ext: eth0 10.1.0.99, a client on the underlay]
#
# Pods are created the way a container runtime does it: libcni's `cnitool` runs the `podlane`
# CNI plugin (chained with Debian's `tuning` plugin) against each pod's namespace; on node-k it
# runs Debian's `bridge` plugin with `host-local` IPAM, the plugins Flannel's CNI delegates to.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=/run/podlane-lab
PFX=pl-lab
NS_UL=$PFX-underlay; NS_EXT=$PFX-ext; NS_A=$PFX-node-a; NS_B=$PFX-node-b; NS_K=$PFX-node-k
PODS=(pod-a pod-b pod-c)   # podlane's pods; pod-k is node-k's (CNI network cbr0)
KEEP=0; SETUP=1; BUILD=1; CLEAN_ONLY=0
for a in "$@"; do
    case $a in
        --keep) KEEP=1 ;;
        --no-setup) SETUP=0 ;;
        --no-build) BUILD=0 ;;
        --clean) CLEAN_ONLY=1 ;;
        -h|--help) sed -n 2,9p "$0"; exit 0 ;;
        *) echo "lab: unknown option $a (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "lab: run as root (it creates network namespaces)" >&2; exit 1; }

cnitool_id() { printf '%s' "/var/run/netns/$PFX-$1" | sha512sum | cut -c1-20; }

cleanup() {
    if [ -d "$RUN/pids" ]; then
        for f in "$RUN"/pids/*; do
            [ -e "$f" ] || continue
            kill -TERM "$(cat "$f")" 2>/dev/null || true
        done
        sleep 0.5
        for f in "$RUN"/pids/*; do
            [ -e "$f" ] || continue
            kill -KILL "$(cat "$f")" 2>/dev/null || true
        done
    fi
    # Anything else still running inside the lab's namespaces (pod servers, captures).
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PFX-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PFX-" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf /var/run/dpdk/$PFX-node-a /var/run/dpdk/$PFX-node-b
    for p in "${PODS[@]}"; do
        rm -f "/var/lib/cni/results/podlane-cnitool-$(cnitool_id "$p")-eth0"
    done
    rm -f "/var/lib/cni/results/cbr0-cnitool-$(cnitool_id pod-k)-eth0"
    rm -rf "$RUN"
}

cleanup   # a stale or killed run first
[ $CLEAN_ONLY -eq 1 ] && { echo "lab: cleaned up"; exit 0; }

if [ $SETUP -eq 1 ]; then "$ROOT/deploy/setup-host.sh"; fi
if [ $BUILD -eq 1 ]; then
    echo "== building (release)"
    (cd "$ROOT" && cargo build --release --locked -p podlane-daemon -p podlane-control)
fi
BIN="$ROOT/target/release"
for b in podlane-fastpath podlane-control podlanectl podlane-cni; do
    [ -x "$BIN/$b" ] || { echo "lab: $BIN/$b missing (build first)" >&2; exit 1; }
done

finish() {
    local rc=$?
    if [ $KEEP -eq 1 ] && [ $rc -eq 0 ]; then
        cat <<EOF

The lab is up. Poke at it:
  ip netns exec $PFX-pod-a ping 10.244.2.2
  ip netns exec $PFX-pod-k ping 10.244.1.2        (from the Flannel-style node's pod)
  ip netns exec $NS_A $BIN/podlanectl counters
  ip netns exec $NS_B $BIN/podlanectl services
  ip netns exec $NS_UL tshark -i k-ul -f 'udp port 4789'
  logs: $RUN/node-a/*.log $RUN/node-b/*.log
Remove it with: $0 --clean
EOF
    else
        cleanup
    fi
    exit $rc
}
trap finish EXIT
trap 'echo "lab: interrupted; cleaning up"; exit 130' INT TERM

mkdir -p "$RUN/pids" "$RUN/bin" "$RUN/node-a" "$RUN/node-b"
ln -s "$BIN/podlane-cni" "$RUN/bin/podlane"
cp "$ROOT/deploy/cluster.yaml" "$RUN/cluster.yaml"

# ---- the underlay --------------------------------------------------------------------------
for ns in $NS_UL $NS_EXT $NS_A $NS_B; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n $NS_UL link add br0 type bridge
ip -n $NS_UL link set br0 up
for n in a b x; do
    case $n in a) ns=$NS_A mac=02:00:0a:01:00:0a ;; b) ns=$NS_B mac=02:00:0a:01:00:0b ;;
               x) ns=$NS_EXT mac=02:00:0a:01:00:63 ;; esac
    ip -n $NS_UL link add $n-ul type veth peer name eth0 netns "$ns"
    ip -n $NS_UL link set $n-ul master br0 up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$ns" link set eth0 address $mac up
done
ip netns exec $NS_UL sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $NS_EXT addr add 10.1.0.99/24 dev eth0
# The underlay client is a kernel behind a veth: without this its TCP/UDP checksums would be
# left to an offload that never happens (CHECKSUM_PARTIAL), and the fast path, which checks
# them on new Service flows as a NIC-fed host would see them complete, drops such frames.
ip netns exec $NS_EXT ethtool -K eth0 tx off >/dev/null

# ---- hugepages if the host has them, else anonymous memory ------------------------------------
free_huge=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free_huge:-0}" -ge 1024 ]; then MEM="no_huge = false\nin_memory = true"; else MEM="no_huge = true\nmemory_mb = 1024"; fi

# ---- the nodes --------------------------------------------------------------------------------
start_node() { # name ns underlay_ip underlay_mac vtep_last pod_cidr gw_last
    local name=$1 ns=$2 d=$RUN/$1
    mkdir -p "$d/net.d"
    sed -n '/^\[node\]/,/^\[capacities\]/p' "$ROOT/deploy/fastpath.toml" | sed '$d' \
        | sed -e "s/^name = .*/name = \"$name\"/" \
              -e "s/^underlay_ip = .*/underlay_ip = \"$3\"/" \
              -e "s/^underlay_mac = .*/underlay_mac = \"$4\"/" \
              -e "s/^host_mac = .*/host_mac = \"$4\"/" \
              -e "s/^vtep_mac = .*/vtep_mac = \"02:76:74:65:70:$5\"/" \
              -e "s#^pod_cidr = .*#pod_cidr = \"$6\"#" > "$d/node.toml"
    {
        echo "control_socket = \"$d/fastpath.sock\""
        printf '[eal]\nlcores = "0-1"\n%b\nfile_prefix = "%s"\nlog_level = "error"\nno_pci = true\n' "$MEM" "$PFX-$name"
        cat "$d/node.toml"
        printf '[queues]\nrx_desc = 256\ntx_desc = 256\nmbufs = 16383\n'
        printf '[[ports]]\ndevargs = "net_af_packet0,iface=eth0"\nrole = "uplink"\n'
        # The host path: a TAP into the node's kernel, which holds the node address (the
        # uplink's own eth0 has none: DPDK owns it) — where podlane-control's health-check
        # NodePorts listen.
        printf '[[ports]]\ndevargs = "net_tap_%s,iface=host0"\nrole = "host"\n' "$name"
    } > "$d/fastpath.toml"
    cat > "$d/control.toml" <<EOF
node_name = "$name"
state_dir = "$d/state"
cluster_file = "$RUN/cluster.yaml"
cni_socket = "$d/cni.sock"
fastpath_socket = "$d/fastpath.sock"
http_listen = "127.0.0.1:9475"
pod_mtu = 1450
max_pod_ports = 1024
host_interface = "host0"
EOF
    sed "s#/run/podlane/cni.sock#$d/cni.sock#" "$ROOT/deploy/cni/10-podlane.conflist" > "$d/net.d/10-podlane.conflist"
    ip netns exec "$ns" "$BIN/podlane-fastpath" --config "$d/fastpath.toml" > "$d/fastpath.log" 2>&1 &
    echo $! > "$RUN/pids/$name-fastpath"; disown $!
    for _ in $(seq 300); do [ -S "$d/fastpath.sock" ] && break; sleep 0.1; done
    [ -S "$d/fastpath.sock" ] || { echo "lab: $name's fast path did not start:"; cat "$d/fastpath.log"; exit 1; }
    ip -n "$ns" link set host0 address "$4" up
    ip -n "$ns" addr add "$3/24" dev host0
    # net_af_packet reads eth0 beside the node's kernel, which would answer what reaches it
    # there for the node address (a RST racing the fast path's NodePort answer); a NIC DPDK
    # owns shows the kernel nothing. So the kernel drops its own copy (the packet socket has
    # taken its copy before netfilter runs) and sees the underlay through the host path only.
    ip netns exec "$ns" iptables -t raw -A PREROUTING -i eth0 -j DROP
    ip netns exec "$ns" "$BIN/podlane-control" --config "$d/control.toml" > "$d/control.log" 2>&1 &
    echo $! > "$RUN/pids/$name-control"; disown $!
    for _ in $(seq 300); do ip netns exec "$ns" "$BIN/podlanectl" status >/dev/null 2>&1 && break; sleep 0.1; done
    ip netns exec "$ns" "$BIN/podlanectl" status >/dev/null || { echo "lab: $name's control daemon did not start:"; cat "$d/control.log"; exit 1; }
}
echo "== starting node-a and node-b"
start_node node-a $NS_A 10.1.0.10 02:00:0a:01:00:0a 0a 10.244.1.0/24
start_node node-b $NS_B 10.1.0.11 02:00:0a:01:00:0b 0b 10.244.2.0/24

# ---- node-k: a Linux node wired as Flannel's VXLAN backend wires it --------------------------
# What flanneld sets up on a node (vxlan backend, kernel 6.x): a `flannel.1` VXLAN device (VNI 1,
# UDP 4789, no learning) holding the pod CIDR's network address as a /32, and for each other
# node a route to its pod CIDR via that node's VTEP address (onlink), a permanent neighbour entry
# mapping that address to the node's VTEP MAC, and an FDB entry sending that MAC to the node's
# underlay IP. node-a and node-b are podlane nodes: their VTEP address and MAC come from
# cluster.yaml (NodeConfig::vtep_ip, the pod CIDR's network address). Strict reverse-path
# filtering, as hardened hosts run it, so a reply that would leave the tunnel is seen failing.
echo "== wiring node-k (Linux, Flannel's VXLAN backend)"
ip netns add $NS_K; ip -n $NS_K link set lo up
ip -n $NS_UL link add k-ul type veth peer name eth0 netns $NS_K
ip -n $NS_UL link set k-ul master br0 up
ip netns exec $NS_K sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.ip_forward=1 \
    net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1
ip -n $NS_K link set eth0 address 02:00:0a:01:00:0c up
ip -n $NS_K addr add 10.1.0.12/24 dev eth0
# A NIC completes the checksums a kernel leaves to it; a veth never does (see NS_EXT above).
ip netns exec $NS_K ethtool -K eth0 tx off >/dev/null
ip -n $NS_K link add flannel.1 type vxlan id 1 local 10.1.0.12 dev eth0 dstport 4789 nolearning
ip -n $NS_K link set flannel.1 address 02:76:74:65:70:0c mtu 1450 up
ip -n $NS_K addr add 10.244.3.0/32 dev flannel.1
for peer in "10.1.0.10 02:76:74:65:70:0a 10.244.1.0" "10.1.0.11 02:76:74:65:70:0b 10.244.2.0"; do
    read -r ul vmac vip <<<"$peer"
    ip -n $NS_K route add "$vip/24" via "$vip" dev flannel.1 onlink
    ip -n $NS_K neigh add "$vip" lladdr "$vmac" dev flannel.1 nud permanent
    ip netns exec $NS_K bridge fdb append "$vmac" dev flannel.1 dst "$ul"
done
mkdir -p "$RUN/node-k/net.d"
cat > "$RUN/node-k/net.d/10-flannel.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "cbr0", "plugins": [{
  "type": "bridge", "bridge": "cni0", "isGateway": true, "isDefaultGateway": true,
  "ipMasq": false, "hairpinMode": true, "mtu": 1450,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.3.0/24"}]],
           "dataDir": "$RUN/node-k/ipam"}}]}
EOF

ctl() { local n=$1; shift; ip netns exec "$PFX-$n" "$BIN/podlanectl" "$@"; }
cni() { # cmd node pod [network: podlane; node-k's is cbr0]
    ip netns exec "$PFX-$2" env NETCONFPATH="$RUN/$2/net.d" CNI_PATH="$RUN/bin:/usr/lib/cni" \
        CNI_IFNAME=eth0 CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=$3" \
        cnitool "$1" "${4:-podlane}" "/var/run/netns/$PFX-$3"
}

# ---- pods through the CNI path ---------------------------------------------------------------
echo "== creating pods through CNI (cnitool → podlane → tuning; on node-k → bridge + host-local)"
declare -A POD_NODE=([pod-a]=node-a [pod-b]=node-a [pod-c]=node-b [pod-k]=node-k)
for p in "${PODS[@]}" pod-k; do
    ip netns add "$PFX-$p"
    net=podlane; [ "$p" = pod-k ] && net=cbr0
    cni add "${POD_NODE[$p]}" "$p" $net > "$RUN/$p.result.json"
    # The address and the MAC of the interface it is on (CNI result: ips[].interface indexes
    # interfaces).
    printf '   %s on %s: %s\n' "$p" "${POD_NODE[$p]}" \
        "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); ip=r["ips"][0]; print(ip["address"], r["interfaces"][ip.get("interface", 0)]["mac"])' "$RUN/$p.result.json")"
done
inpod() { local p=$1; shift; ip netns exec "$PFX-$p" "$@"; }

# Backends: pod B (node-a), pod C (node-b) and pod K (node-k) answer UDP 5353 and TCP 5353 and
# HTTP 8080 with their own name.
for p in pod-b pod-c pod-k; do
    inpod $p python3 - "$p" > "$RUN/$p.server.log" 2>&1 <<'EOF' &
import socket, sys, threading, http.server
name = sys.argv[1].encode()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(name + b" " + d, a)
def tcp53():
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", 5353)); t.listen(16)
    while True:
        c, _ = t.accept(); c.sendall(name); c.close()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # /peer: the name and the address the connection came from (is the client's kept?).
        body = name + b" " + self.client_address[0].encode() if self.path == "/peer" else name
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
threading.Thread(target=udp, daemon=True).start()
threading.Thread(target=tcp53, daemon=True).start()
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
EOF
    echo $! > "$RUN/pids/$p-server"; disown $!
done
sleep 1

# ---- checks ------------------------------------------------------------------------------------
REPORT=(); FAILED=0
report() { # status name figure
    REPORT+=("$(printf '%-4s  %-44s %s' "$1" "$2" "$3")")
    [ "$1" = PASS ] || FAILED=1
    printf '%-4s  %-44s %s\n' "$1" "$2" "$3"
}
uplink_tx() { ctl "$1" counters --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(sum(p["tx_packets"] for p in v["ports"] if p["role"]=="uplink"))'; }
rtt() { awk -F'/' '/^rtt|^round-trip/ {print $5 " ms avg"}'; }
capture() { # iface count seconds -> tshark field lines (started in the background)
    ip netns exec $NS_UL tshark -l -n -i "$1" -a duration:"$3" -c "$2" -f "udp port 4789" \
        -T fields -E separator=' ' -e ip.src -e ip.dst -e udp.dstport -e vxlan.vni -e icmp.type 2>/dev/null
}
echo "== checks"

# 1. pod A → pod B, same node: never on the underlay.
before=$(uplink_tx node-a)
capture a-ul 1 4 > "$RUN/cap-local.txt" & cpid=$!
sleep 1.5
if out=$(inpod pod-a ping -c 3 -i 0.2 -W 2 10.244.1.3 2>&1); then
    wait $cpid || true
    after=$(uplink_tx node-a)
    if [ ! -s "$RUN/cap-local.txt" ] && [ "$before" = "$after" ]; then
        report PASS "pod A → pod B (same node)" "$(echo "$out" | rtt); underlay: 0 frames, node-a uplink tx +$((after - before))"
    else
        report FAIL "pod A → pod B (same node)" "touched the underlay: $(cat "$RUN/cap-local.txt") uplink tx +$((after - before))"
    fi
else wait $cpid || true; report FAIL "pod A → pod B (same node)" "ping failed"; fi

# 2. pod A → pod C, across nodes: VXLAN on the underlay.
capture a-ul 2 6 > "$RUN/cap-cross.txt" & cpid=$!
sleep 1.5
if out=$(inpod pod-a ping -c 3 -i 0.2 -W 2 10.244.2.2 2>&1); then
    wait $cpid || true
    line=$(head -n1 "$RUN/cap-cross.txt")
    # fields: outer,inner src; outer,inner dst; udp port; vni; icmp type
    read -r srcs dsts port vni _ <<<"$line" || true
    if [ "$srcs" = "10.1.0.10,10.244.1.2" ] && [ "$dsts" = "10.1.0.11,10.244.2.2" ] && [ "$port" = 4789 ] && [ "$vni" = 1 ]; then
        report PASS "pod A → pod C (cross-node)" "$(echo "$out" | rtt); underlay: ${srcs%%,*} → ${dsts%%,*} UDP 4789 VNI $vni, inner ${srcs##*,} → ${dsts##*,} ICMP"
    else
        report FAIL "pod A → pod C (cross-node)" "underlay capture: '$line'"
    fi
else wait $cpid || true; report FAIL "pod A → pod C (cross-node)" "ping failed"; fi

# 3. pod → ClusterIP (UDP 53), answered by a backend, reply from the VIP.
if out=$(inpod pod-a python3 - <<'EOF' 2>&1
import socket, time
seen = {}; worst = 0
for i in range(20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    t = time.perf_counter(); s.sendto(b"q%d" % i, ("10.96.0.10", 53)); d, a = s.recvfrom(2048)
    worst = max(worst, time.perf_counter() - t)
    assert a == ("10.96.0.10", 53), "reply from %s" % (a,)
    b = d.split()[0].decode(); seen[b] = seen.get(b, 0) + 1
print("20 queries, replies from 10.96.0.10:53, backends %s, max %.2f ms" % (seen, worst * 1e3))
EOF
); then report PASS "pod A → ClusterIP 10.96.0.10:53/udp" "$out"
else report FAIL "pod A → ClusterIP 10.96.0.10:53/udp" "$(echo "$out" | tail -n1)"; fi

# 4. TCP through the Service: an HTTP exchange with a ClusterIP.
if out=$(inpod pod-a python3 - <<'EOF' 2>&1
import http.client, time
seen = {}; t0 = time.perf_counter()
for i in range(10):
    c = http.client.HTTPConnection("10.96.0.20", 80, timeout=3); c.request("GET", "/")
    r = c.getresponse(); body = r.read().decode(); assert r.status == 200; c.close()
    seen[body] = seen.get(body, 0) + 1
print("10 HTTP GETs via 10.96.0.20:80, backends %s, %.2f ms each" % (seen, (time.perf_counter() - t0) * 100))
EOF
); then report PASS "pod A → ClusterIP 10.96.0.20:80/tcp (HTTP)" "$out"
else report FAIL "pod A → ClusterIP 10.96.0.20:80/tcp (HTTP)" "$(echo "$out" | tail -n1)"; fi

# 5. NodePort from the underlay (a client at 10.1.0.99), on both nodes.
if out=$(ip netns exec $NS_EXT python3 - <<'EOF' 2>&1
import http.client, time
res = []
for node in ("10.1.0.10", "10.1.0.11"):
    seen = {}
    for i in range(6):
        t = time.perf_counter()
        c = http.client.HTTPConnection(node, 30080, timeout=3); c.request("GET", "/")
        r = c.getresponse(); body = r.read().decode(); assert r.status == 200; c.close()
        seen[body] = seen.get(body, 0) + 1
    res.append("%s:30080 → %s" % (node, seen))
print("; ".join(res))
EOF
); then report PASS "10.1.0.99 → NodePort 30080 (underlay)" "$out"
else report FAIL "10.1.0.99 → NodePort 30080 (underlay)" "$(echo "$out" | tail -n1)"; fi

# 5b. NodePort of an externalTrafficPolicy Local Service (web-local, endpoints pod B on node-a
#     and pod C on node-b): each node answers from its own pod only, which sees the client's
#     address (no SNAT). Then one client port through both NodePorts of pod B (the same reply
#     tuple: taken over once the first flow is closed, remapped while it is open).
if out=$(ip netns exec $NS_EXT python3 - <<'EOF' 2>&1
import http.client, socket
res = []
for node, want in (("10.1.0.10", "pod-b"), ("10.1.0.11", "pod-c")):
    seen = set()
    for i in range(6):
        c = http.client.HTTPConnection(node, 30082, timeout=3); c.request("GET", "/peer")
        r = c.getresponse(); body = r.read().decode(); assert r.status == 200; c.close()
        seen.add(body)
    assert seen == {want + " 10.1.0.99"}, "%s:30082 → %s" % (node, seen)
    res.append("%s:30082 → %s" % (node, sorted(seen)[0]))
# One client port through 30080 to pod B, then through 30082 (also pod B): neither flow is
# SNATed, so both have the reply tuple pod B:8080 → 10.1.0.99:port. Once the first has closed
# the second takes its entry over; while the first is still open the second gets another
# port (the client's address kept).
def get_from(port, nodeport, keep=False):
    s = socket.socket(); s.settimeout(3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.1.0.99", port)); s.connect(("10.1.0.10", nodeport))
    s.sendall(b"GET /peer HTTP/1.0\r\n\r\n")
    return s if keep else answer(s)
def answer(s):
    data = b""
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()
port = next(p for p in range(20000, 20064) if get_from(p, 30080).startswith("pod-b "))
assert get_from(port, 30082) == "pod-b 10.1.0.99", "port %d reused" % port
first = get_from(port, 30080, keep=True)
assert get_from(port, 30082) == "pod-b 10.1.0.99", "port %d in two flows" % port
assert answer(first) == "pod-b 10.1.0.99"
res.append("port %d via 30080 then 30082, closed and open: pod-b" % port)
print("; ".join(res) + " (6 GETs each; pod saw the client's address)")
EOF
); then report PASS "10.1.0.99 → NodePort 30082 (Local policy)" "$out"
else report FAIL "10.1.0.99 → NodePort 30082 (Local policy)" "$(echo "$out" | tail -n1)"; fi

# 5c. NodePorts from a pod (kube-proxy serves them to pods too): pod A to its own node's
#     NodePort of the Local Service is served cluster-wide (pod traffic takes the cluster
#     policy), keeping pod A's address; to node-b's, node-b applies the Local policy (pod C
#     only), SNATed to node-b's VTEP address; node-b's NodePort of the Cluster Service answers.
if out=$(inpod pod-a python3 - <<'EOF' 2>&1
import http.client
def get(node, port, n):
    seen = {}
    for i in range(n):
        c = http.client.HTTPConnection(node, port, timeout=3); c.request("GET", "/peer")
        r = c.getresponse(); body = r.read().decode(); assert r.status == 200; c.close()
        seen[body] = seen.get(body, 0) + 1
    return seen
own = get("10.1.0.10", 30082, 16)
assert set(own) == {"pod-b 10.244.1.2", "pod-c 10.244.1.2"}, "10.1.0.10:30082 → %s" % own
other = get("10.1.0.11", 30082, 6)
assert set(other) == {"pod-c 10.244.2.0"}, "10.1.0.11:30082 → %s" % other
cluster = get("10.1.0.11", 30080, 6)
assert all(b.split()[0] in ("pod-b", "pod-c") for b in cluster), "10.1.0.11:30080 → %s" % cluster
print("10.1.0.10:30082 → %s; 10.1.0.11:30082 → %s; 10.1.0.11:30080 → %s" % (own, other, cluster))
EOF
); then report PASS "pod A → NodePorts (own node, other node)" "$out"
else report FAIL "pod A → NodePorts (own node, other node)" "$(echo "$out" | tail -n1)"; fi

# 5d. A load balancer's health checks (healthCheckNodePort of a Local Service, answered by
#     podlane-control through the host path as kube-proxy answers them): lb-a has its only
#     endpoint on node-a — 200 there, 503 on node-b, whose NodePort drops the traffic; web-local
#     has one on each node — 200 on both.
if out=$(ip netns exec $NS_EXT python3 - <<'EOF' 2>&1
import http.client, json, socket
def hc(node, port):
    c = http.client.HTTPConnection(node, port, timeout=3); c.request("GET", "/healthz")
    r = c.getresponse(); body = json.loads(r.read()); c.close()
    assert r.getheader("Content-Type") == "application/json", r.getheaders()
    assert body["serviceProxyHealthy"] is True, body
    return r.status, body["localEndpoints"]
got = {(n, p): hc(n, p) for n in ("10.1.0.10", "10.1.0.11") for p in (32083, 32082)}
want = {("10.1.0.10", 32083): (200, 1), ("10.1.0.11", 32083): (503, 0),
        ("10.1.0.10", 32082): (200, 1), ("10.1.0.11", 32082): (200, 1)}
assert got == want, got
c = http.client.HTTPConnection("10.1.0.10", 30083, timeout=3); c.request("GET", "/")
a = c.getresponse().read().decode(); c.close()
assert a == "pod-b", a
try:
    c = http.client.HTTPConnection("10.1.0.11", 30083, timeout=1); c.request("GET", "/")
    raise AssertionError("node-b answered on 30083: %r" % c.getresponse().read())
except (socket.timeout, TimeoutError, OSError) as e:
    if isinstance(e, AssertionError): raise
print("lb-a: node-a 200 (1 local endpoint), node-b 503 (0); web-local: 200 on both; "
      "10.1.0.10:30083 → %s, 10.1.0.11:30083 dropped" % a)
EOF
); then report PASS "load balancer health checks (Local)" "$out"
else report FAIL "load balancer health checks (Local)" "$(echo "$out" | tail -n1)"; fi

# 5e. The node itself (its kernel, through the host path, over the routes podlane-control
#     keeps there): kubelet's probes reach a local pod, seeing the node's address; the node
#     reaches the pods of other nodes from its VTEP address (10.244.1.0, as a Flannel node's
#     kernel sends from flannel.1's), pod K on the Linux node included, whose strict
#     reverse-path filter takes that source from its tunnel where it drops a node address; a
#     host-network client reaches ClusterIPs, NATed as kube-proxy does (a local backend sees the
#     gateway address, a remote one node-a's VTEP address) with the replies from the Service
#     address — a backend on the Linux node too.
if out=$(ip netns exec $NS_A python3 - "$(ip -n $NS_A route show proto 112 | wc -l)" <<'EOF' 2>&1
import http.client, socket, sys
def get(host, port):
    c = http.client.HTTPConnection(host, port, timeout=3); c.request("GET", "/peer")
    r = c.getresponse(); body = r.read().decode(); assert r.status == 200; c.close()
    return body
probes = [get(ip, 8080) for ip in ("10.244.1.3", "10.244.2.2", "10.244.3.2")]
assert probes == ["pod-b 10.1.0.10", "pod-c 10.244.1.0", "pod-k 10.244.1.0"], probes
import subprocess
for ip in ("10.244.2.2", "10.244.3.2"):   # echo replies to the VTEP address: the kernel's
    subprocess.run(["ping", "-c", "1", "-W", "2", ip], check=True, stdout=subprocess.DEVNULL)
seen = {}
for i in range(16):
    b = get("10.96.0.20", 80); seen[b] = seen.get(b, 0) + 1
assert set(seen) == {"pod-b 10.244.1.1", "pod-c 10.244.1.0"}, seen
k = get("10.96.0.30", 80)
assert k == "pod-k 10.244.1.0", k
dns = {}
for i in range(8):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(b"q%d" % i, ("10.96.0.10", 53)); d, a = s.recvfrom(2048); s.close()
    assert a == ("10.96.0.10", 53), "reply from %s" % (a,)
    n = d.split()[0].decode(); dns[n] = dns.get(n, 0) + 1
print("%s routes proto 112; probes: %s; pings to C and K; 10.96.0.20:80 → %s; 10.96.0.30:80 → %s; "
      "10.96.0.10:53/udp → %s" % (sys.argv[1], ", ".join(probes), seen, k, dns))
EOF
); then report PASS "node-a itself → pods, ClusterIPs (host path)" "$out"
else report FAIL "node-a itself → pods, ClusterIPs (host path)" "$(echo "$out" | tail -n1)"; fi

# 6. podlane ↔ Flannel: pods on podlane nodes and the pod on the Linux node reach each other both
#    ways (ICMP at the full pod MTU, UDP, TCP), the frames on node-k's underlay are VXLAN with
#    each side's VTEP MAC as the inner destination, and Linux's non-zero outer UDP checksums pass
#    podlane's check.
ip netns exec $NS_UL tshark -l -n -i k-ul -a duration:14 -f "udp port 4789" -T fields -E separator=' ' \
    -e ip.src -e ip.dst -e eth.dst -e udp.checksum -e vxlan.vni > "$RUN/cap-flannel.txt" 2>/dev/null & cpid=$!
sleep 1.5
if out=$( {
    inpod pod-a ping -c 3 -i 0.2 -W 2 10.244.3.2 >/dev/null && echo "ping A→K"
    inpod pod-k ping -c 3 -i 0.2 -W 2 10.244.1.2 >/dev/null && echo "ping K→A"
    inpod pod-a ping -c 2 -i 0.2 -W 2 -M do -s 1422 10.244.3.2 >/dev/null && echo "1450-byte A→K"
    inpod pod-k ping -c 2 -i 0.2 -W 2 -M do -s 1422 10.244.1.2 >/dev/null && echo "1450-byte K→A"
    inpod pod-k ping -c 2 -i 0.2 -W 2 10.244.2.2 >/dev/null && echo "ping K→C"
    # node-a's gateway and VTEP address answer other nodes' pods, as cni0 and flannel.1 do.
    inpod pod-k ping -c 1 -W 2 10.244.1.1 >/dev/null && inpod pod-k ping -c 1 -W 2 10.244.1.0 >/dev/null \
        && echo "ping K→node-a's .1 and .0"
    inpod pod-a python3 - <<'EOF'
import socket, http.client
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"hello", ("10.244.3.2", 5353)); d, a = s.recvfrom(2048)
assert d == b"pod-k hello" and a == ("10.244.3.2", 5353), (d, a)
c = http.client.HTTPConnection("10.244.3.2", 8080, timeout=3); c.request("GET", "/")
assert c.getresponse().read() == b"pod-k"
print("UDP+TCP A→K")
EOF
    inpod pod-k python3 - <<'EOF'
import http.client
for ip, name in (("10.244.1.3", b"pod-b"), ("10.244.2.2", b"pod-c")):
    c = http.client.HTTPConnection(ip, 8080, timeout=3); c.request("GET", "/")
    assert c.getresponse().read() == name, ip
print("TCP K→B, K→C")
EOF
    # node-k's own stack reaches pods through flannel.1 from its address there (10.244.3.0):
    # what a NodePort flow kube-proxy SNATed on a Flannel node looks like to a podlane pod.
    ip netns exec $NS_K python3 - <<'EOF'
import socket
s = socket.create_connection(("10.244.2.2", 8080), timeout=3)
assert s.getsockname()[0] == "10.244.3.0", s.getsockname()
s.sendall(b"GET / HTTP/1.0\r\n\r\n"); r = b""
while d := s.recv(4096):
    r += d
assert r.endswith(b"pod-c"), r
print("TCP node-k (10.244.3.0)→C")
EOF
} 2>&1 ) && [ "$(echo "$out" | wc -l)" -eq 9 ]; then
    sleep 1; kill $cpid 2>/dev/null; wait $cpid 2>/dev/null || true
    if res=$(python3 - "$RUN/cap-flannel.txt" <<'EOF'
import sys
to_k = from_k = 0; csums = set()
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 5: continue
    src, dst, macs, csum, vni = f[0].split(","), f[1].split(","), f[2].split(","), f[3].split(",")[0], f[4]
    assert vni == "1", line
    if src[0] == "10.1.0.12":   # Linux → a podlane node: inner destination its VTEP MAC
        want = {"10.1.0.10": "02:76:74:65:70:0a", "10.1.0.11": "02:76:74:65:70:0b"}[dst[0]]
        assert macs[1] == want, line
        assert csum != "0x0000", line
        from_k += 1; csums.add(csum)
    else:                       # a podlane node → Linux: inner destination flannel.1's MAC
        assert dst[0] == "10.1.0.12" and macs[1] == "02:76:74:65:70:0c", line
        to_k += 1
assert to_k > 0 and from_k > 0, (to_k, from_k)
print("%d frames to node-k, %d from it (inner dst = VTEP MACs, VNI 1; Linux's outer UDP checksums non-zero, accepted)" % (to_k, from_k))
EOF
    ); then report PASS "podlane pods ↔ Flannel node's pod K" "$(echo "$out" | paste -sd, -); $res"
    else report FAIL "podlane pods ↔ Flannel node's pod K" "underlay capture: $res"; fi
else kill $cpid 2>/dev/null; wait $cpid 2>/dev/null || true
    report FAIL "podlane pods ↔ Flannel node's pod K" "only: $(echo "$out" | paste -sd, -)"; fi

# 7. A ClusterIP whose only backend is on the Flannel node: DNAT + encap to Linux, reverse NAT
#    of Linux's encapsulated replies and of its ICMP errors.
if out=$(inpod pod-a python3 - <<'EOF' 2>&1
import socket, http.client
for i in range(10):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(b"q%d" % i, ("10.96.0.30", 53)); d, a = s.recvfrom(2048)
    assert a == ("10.96.0.30", 53) and d == b"pod-k q%d" % i, (d, a)
for i in range(5):
    c = http.client.HTTPConnection("10.96.0.30", 80, timeout=3); c.request("GET", "/")
    r = c.getresponse(); assert r.status == 200 and r.read() == b"pod-k"; c.close()
# Port 54 goes to 5354, where nothing listens: pod K's "port unreachable", translated back by
# node-a, must reach this connected socket as coming from 10.96.0.30:54 (else: a timeout).
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(("10.96.0.30", 54)); s.send(b"anyone?")
try:
    s.recv(100); raise SystemExit("an answer from a closed port")
except ConnectionRefusedError:
    pass
print("10 UDP queries and 5 HTTP GETs, all answered by pod-k from 10.96.0.30; a closed port refused (ICMP translated)")
EOF
); then report PASS "pod A → ClusterIP 10.96.0.30 (on node-k)" "$out"
else report FAIL "pod A → ClusterIP 10.96.0.30 (on node-k)" "$(echo "$out" | tail -n1)"; fi

# 8. NodePort on the podlane nodes to the backend on the Flannel node: SNATed to the node's VTEP
#    address, so Linux (strict rp_filter) answers through the tunnel to the node that NATed.
if out=$(ip netns exec $NS_EXT python3 - <<'EOF' 2>&1
import http.client
for node in ("10.1.0.10", "10.1.0.11"):
    for i in range(4):
        c = http.client.HTTPConnection(node, 30081, timeout=3); c.request("GET", "/")
        r = c.getresponse(); assert r.status == 200 and r.read() == b"pod-k", node; c.close()
print("10.1.0.10:30081 and 10.1.0.11:30081, 4 GETs each, all answered by pod-k")
EOF
); then report PASS "10.1.0.99 → NodePort 30081 (on node-k)" "$out"
else report FAIL "10.1.0.99 → NodePort 30081 (on node-k)" "$(echo "$out" | tail -n1)"; fi

# 9. CNI DEL: pod B stops receiving, its IP returns to the pool.
if cni del node-a pod-b >/dev/null 2>"$RUN/del.err"; then
    if inpod pod-a ping -c 2 -i 0.2 -W 1 10.244.1.3 >/dev/null 2>&1; then
        report FAIL "CNI DEL pod B" "pod B still answers"
    elif ctl node-a ipam --json | python3 -c 'import json,sys; v=json.load(sys.stdin); ips=[a["ip"] for a in v["allocated"]]; assert "10.244.1.3" not in ips, ips; print("free", v["free"], "allocated", ips)' > "$RUN/ipam.txt" 2>&1; then
        report PASS "CNI DEL pod B" "no reply from 10.244.1.3; 10.244.1.3 back in the pool ($(cat "$RUN/ipam.txt"))"
    else report FAIL "CNI DEL pod B" "$(cat "$RUN/ipam.txt")"; fi
else report FAIL "CNI DEL pod B" "$(cat "$RUN/del.err")"; fi

echo
echo "== fast-path counters"
for n in node-a node-b; do
    echo "-- $n"
    ctl $n counters | sed 's/^/   /'
done
echo
echo "== report"
printf '%s\n' "${REPORT[@]}"
if [ $FAILED -eq 0 ]; then
    echo "lab: all ${#REPORT[@]} checks passed"
else
    for f in "$RUN"/node-*/*.log; do echo "--- $f"; tail -n 20 "$f"; done
    echo "lab: FAILED"
    exit 1
fi
