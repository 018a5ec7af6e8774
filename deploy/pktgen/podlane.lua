-- pktgen-dpdk script: podlane's bench profiles on two real NICs (see README.md).
--
--   PROFILE=encap RATE=50 SECS=30 FLOWS=1024 SIZE=64 \
--     pktgen -l 0-2 -n 4 -a $TESTER_POD_NIC -a $TESTER_UPLINK_NIC -- -P -m "[1].0,[2].1" -f podlane.lua
--
-- Tester port 0 is cabled to the node's pod-side NIC (podlane pod port 0 = pod A),
-- tester port 1 to the node's uplink NIC. The profile decides who sends:
--   local      port 0: pod A 10.244.1.2 -> pod B 10.244.1.3 (needs pod B on a third port;
--              with two NICs, give pod B's port to the tester's port 0 as well)
--   encap      port 0: pod A -> pod C 10.244.2.2 (node B); VXLAN leaves on the uplink (port 1)
--   clusterip  port 0: pod A -> kube-dns 10.96.0.10:53/udp, DNAT to pod C + encap (port 1)
--   nodeport   port 1: external 10.1.0.99 -> node 10.1.0.10:30007/udp, DNAT to pod B
-- decap and mix are replayed from pcaps (make-pcaps.sh, pktgen -s); see README.md.
-- Addresses are the lab's (deploy/fastpath.toml, fastpath/src/fixtures.rs, and the bench's
-- UDP NodePort Service in bench/src/gen/profile.rs).

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local profile = os.getenv("PROFILE") or "encap"
local rate = tonumber(os.getenv("RATE") or "100")        -- % of line rate
local secs = tonumber(os.getenv("SECS") or "30")
local flows = tonumber(os.getenv("FLOWS") or "1024")
local size = tonumber(os.getenv("SIZE") or "64")

local GW_MAC = "02:67:77:00:01:01"      -- node A's pod gateway MAC
local NODE_MAC = "02:00:0a:01:00:0a"    -- node A's underlay MAC
local POD_A_MAC = "0a:58:0a:f4:01:02"
local EXT_MAC = "02:00:0a:01:00:63"

local p = {
  ["local"]   = { port = "0", smac = POD_A_MAC, dmac = GW_MAC, sip = "10.244.1.2", dip = "10.244.1.3", dport = 7777 },
  encap       = { port = "0", smac = POD_A_MAC, dmac = GW_MAC, sip = "10.244.1.2", dip = "10.244.2.2", dport = 7777 },
  clusterip   = { port = "0", smac = POD_A_MAC, dmac = GW_MAC, sip = "10.244.1.2", dip = "10.96.0.10", dport = 53 },
  nodeport    = { port = "1", smac = EXT_MAC, dmac = NODE_MAC, sip = "10.1.0.99", dip = "10.1.0.10", dport = 30007 },
}
local c = p[profile]
if c == nil then
  print("podlane.lua: unknown PROFILE " .. profile .. " (local, encap, clusterip, nodeport; decap and mix: pcap replay)")
  return
end
local tx = c.port

pktgen.stop("all")
pktgen.set_proto(tx, "udp")
pktgen.set(tx, "size", size)
pktgen.set(tx, "rate", rate)
pktgen.set(tx, "count", 0)
-- Flows: the source port walks 1024 .. 1024 + FLOWS - 1 (as podlane-bench's profiles do).
pktgen.range.dst_mac(tx, "start", c.dmac)
pktgen.range.src_mac(tx, "start", c.smac)
pktgen.range.src_ip(tx, "start", c.sip)
pktgen.range.src_ip(tx, "inc", "0.0.0.0")
pktgen.range.src_ip(tx, "min", c.sip)
pktgen.range.src_ip(tx, "max", c.sip)
pktgen.range.dst_ip(tx, "start", c.dip)
pktgen.range.dst_ip(tx, "inc", "0.0.0.0")
pktgen.range.dst_ip(tx, "min", c.dip)
pktgen.range.dst_ip(tx, "max", c.dip)
pktgen.range.src_port(tx, "start", 1024)
pktgen.range.src_port(tx, "inc", 1)
pktgen.range.src_port(tx, "min", 1024)
pktgen.range.src_port(tx, "max", 1024 + flows - 1)
pktgen.range.dst_port(tx, "start", c.dport)
pktgen.range.dst_port(tx, "inc", 0)
pktgen.range.dst_port(tx, "min", c.dport)
pktgen.range.dst_port(tx, "max", c.dport)
pktgen.range.ip_proto(tx, "udp")
pktgen.range.pkt_size(tx, "start", size)
pktgen.range.pkt_size(tx, "inc", 0)
pktgen.range.pkt_size(tx, "min", size)
pktgen.range.pkt_size(tx, "max", size)
pktgen.set_range(tx, "on")
pktgen.clr()

printf("podlane %s: %d flows, %d-byte frames, %d%% of line rate on port %s for %d s\n",
  profile, flows, size, rate, tx, secs)
pktgen.start(tx)
pktgen.delay(secs * 1000)
pktgen.stop(tx)
pktgen.delay(500)
local st = pktgen.portStats("all", "port")
for port = 0, 1 do
  local s = st[port]
  if s ~= nil then
    printf("port %d: tx %d rx %d (packets)\n", port, s.opackets, s.ipackets)
  end
end
