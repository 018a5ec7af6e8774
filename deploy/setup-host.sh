#!/usr/bin/env bash
# Installs what podlane needs on a Debian 12 host (as root). Idempotent: a second run only
# checks. Used by the lab, by the test suite and by CI.
#   deploy/setup-host.sh          build + test dependencies
set -euo pipefail

need_pkgs=(build-essential pkg-config clang libclang-dev libpcap-dev dpdk-dev libdpdk-dev
           tshark iproute2 iptables iputils-ping python3 util-linux procps ethtool containernetworking-plugins
           openvswitch-switch-dpdk)
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "podlane: missing packages: ${missing[*]} — run this script as root" >&2
        exit 1
    fi
    echo "podlane: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "podlane: cargo not found; install a Rust toolchain (rustup, 1.85 or newer)" >&2
    exit 1
fi
# The reference CNI client (libcni's cnitool), as container runtimes drive plugins; Debian
# ships libcni but not cnitool, so it is built from Debian's own source package.
if ! command -v cnitool >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "podlane: cnitool missing — run this script as root" >&2
        exit 1
    fi
    echo "podlane: building cnitool (libcni's reference client) from Debian's packages"
    "$(dirname "$0")/tools/build-cnitool.sh" /usr/local/bin/cnitool >/dev/null
fi
pkg-config --exists libdpdk || { echo "podlane: pkg-config cannot find libdpdk" >&2; exit 1; }
echo "podlane: host ready (DPDK $(pkg-config --modversion libdpdk), $(cargo --version))"
