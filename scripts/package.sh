#!/usr/bin/env bash
# Builds the Debian package: the static lvsctl and lvsctl-agent, bash/zsh/fish completions and the
# man page (both generated from lvsctl's own argument definitions), README and copyright.
#   scripts/package.sh           build target/debian/lvsctl_VERSION_amd64.deb
#   scripts/package.sh --check   build it, install it with dpkg (as root), check that the installed
#                                lvsctl runs and finds its agent, completions and man page, and
#                                purge it again
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[[ "${1:-}" == --check ]] && check=1

grep -qx x86_64-unknown-linux-musl <<<"$(rustup target list --installed)" || rustup target add x86_64-unknown-linux-musl
cargo build --release --target x86_64-unknown-linux-musl --bins
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb="target/debian/lvsctl_${version}_amd64.deb"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin/lvsctl" "$root/usr/bin/lvsctl"
install -D -m 0755 "$bin/lvsctl-agent" "$root/usr/bin/lvsctl-agent"
mkdir -p "$root/usr/share/man/man1" "$root/usr/share/man/man5" "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/lvsctl"
"$bin/lvsctl" man | gzip -9n > "$root/usr/share/man/man1/lvsctl.1.gz"
"$bin/lvsctl" man inventory | gzip -9n > "$root/usr/share/man/man5/lvsctl-inventory.5.gz"
"$bin/lvsctl" completions bash > "$root/usr/share/bash-completion/completions/lvsctl"
"$bin/lvsctl" completions zsh > "$root/usr/share/zsh/vendor-completions/_lvsctl"
"$bin/lvsctl" completions fish > "$root/usr/share/fish/vendor_completions.d/lvsctl.fish"
gzip -9n < README.md > "$root/usr/share/doc/lvsctl/README.md.gz"
cat > "$root/usr/share/doc/lvsctl/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lvsctl
Files: *
Copyright: the lvsctl authors
License: see the source repository
COPYRIGHT
mkdir -p "$root/DEBIAN"
size=$(du -ks "$root/usr" | cut -f 1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: lvsctl
Version: $version
Architecture: amd64
Maintainer: lvsctl developers <lvsctl@localhost>
Installed-Size: $size
Depends: openssh-client
Suggests: ipvsadm
Section: net
Priority: optional
Description: provision Linux Virtual Server (LVS/IPVS) labs over SSH, and undo it exactly
 lvsctl brings up a whole LVS lab (client, router, director, real servers) in NAT, DR or
 TUN mode from one inventory file, proves it with real requests (lvsctl verify), explains
 what is wrong (lvsctl doctor) and restores every host exactly (lvsctl down). Its static
 agent is installed on hosts over SSH; hosts need only sshd and a POSIX shell.
CONTROL
mkdir -p target/debian
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package: $deb ($(stat -c %s "$deb") bytes)"

if ((check)); then
    if [[ "$(dpkg-query -W -f='${Status}' lvsctl 2>/dev/null)" == *"install ok installed"* ]]; then
        echo "package: lvsctl is already installed on this machine: not touching it, no install check" >&2
        exit 1
    fi
    trap 'dpkg --purge lvsctl >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
    dpkg -i "$deb"
    test "$(command -v lvsctl)" = /usr/bin/lvsctl
    lvsctl --version
    lvsctl init --mode tun --real-servers 3 > "$root/lab.toml"
    lvsctl check "$root/lab.toml"
    # The installed lvsctl finds the installed agent beside it (and it is static).
    # `producer | grep -q` under pipefail fails with SIGPIPE (141) once the producer writes more than
    # a pipe holds after grep has stopped reading: read whole outputs first, then match.
    has() { grep -q -e "$1" <<<"$2"; }
    has "/usr/local/lib/lvsctl/[0-9a-f]\{64\}/lvsctl" "$(lvsctl plan --output json "$root/lab.toml")"
    /usr/bin/lvsctl-agent --version
    man -w lvsctl >/dev/null 2>&1 || test -s /usr/share/man/man1/lvsctl.1.gz
    has '^\.SH "LVSCTL UP"' "$(zcat /usr/share/man/man1/lvsctl.1.gz)"
    has '^\.B virtual_router_id' "$(zcat /usr/share/man/man5/lvsctl-inventory.5.gz)"
    has lvsctl "$(bash -c 'source /usr/share/bash-completion/completions/lvsctl && complete -p lvsctl')"
    grep -q "dry-run" /usr/share/fish/vendor_completions.d/lvsctl.fish /usr/share/zsh/vendor-completions/_lvsctl
    dpkg --purge lvsctl >/dev/null
    test ! -e /usr/bin/lvsctl
    echo "package: installs, runs, finds its agent, completions and man page; purged again"
fi
