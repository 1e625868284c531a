#!/usr/bin/env bash
# Installs what lvsctl's build and tests need on a Debian machine, idempotently (run as root).
#  - the musl target: lvsctl installs a static build of itself on hosts;
#  - qemu, a Debian kernel and busybox: the real-kernel tests boot a guest when this kernel lacks IPVS;
#  - openssh-server/-client and iproute2: lab hosts run a real sshd; ipvsadm is the tests' independent
#    view of the IPVS table (lvsctl itself talks generic netlink and needs no ipvsadm on hosts);
#  - sudo: the quick-start test logs in as a non-root user with become = "sudo";
#  - nftables: firewall-mark services are marked by an nftables table lvsctl feeds to `nft -j`;
#  - iputils-ping: the impairment test measures a segment's round trip with ping;
#  - tcpdump: the trace and capture tests check lvsctl's packets against a capture of their own
#    (lvsctl itself captures with its agent and needs no tcpdump on hosts);
#  - keepalived: the HA tests run the packaged keepalived on lab directors (lvsctl never
#    installs it on hosts; it is here because lab hosts share this machine's programs);
set -euo pipefail

packages=(qemu-system-x86 linux-image-amd64 busybox-static openssh-server openssh-client iproute2 kmod ipvsadm procps sudo keepalived nftables iputils-ping tcpdump)
missing=()
for p in "${packages[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! grep -qx x86_64-unknown-linux-musl <<<"$(rustup target list --installed)"; then
    echo "setup: adding the Rust target x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi

# ldirectord's example configuration, which `lvsctl import`'s tests read: the package is fetched
# (not installed: it would pull in perl modules and start nothing useful here) and unpacked.
ld=/var/cache/lvsctl-tests/ldirectord
if [ ! -f "$ld/usr/share/doc/ldirectord/examples/ldirectord.cf" ]; then
    echo "setup: fetching ldirectord's example configuration (apt-get download ldirectord)"
    mkdir -p "$ld"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && apt-get download -q ldirectord 2>/dev/null || { apt-get update -q && apt-get download -q ldirectord; })
    dpkg-deb -x "$tmp"/ldirectord_*.deb "$ld"
    rm -rf "$tmp"
fi

# Prometheus's own tools, which the metrics tests use (`promtool check metrics`; later a real
# Prometheus scraping the lab's directors): the package is fetched and unpacked, not installed
# (installing it would start a Prometheus server on this machine).
pm=/var/cache/lvsctl-tests/prometheus
if [ ! -x "$pm/usr/bin/promtool" ]; then
    echo "setup: fetching Prometheus (apt-get download prometheus; unpacked, not installed)"
    mkdir -p "$pm"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && apt-get download -q prometheus 2>/dev/null || { apt-get update -q && apt-get download -q prometheus; })
    dpkg-deb -x "$tmp"/prometheus_*.deb "$pm"
    rm -rf "$tmp"
fi
