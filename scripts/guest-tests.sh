#!/usr/bin/env bash
# The real-kernel scenarios, in a guest that scripts/test.sh boots with `lvsctl lab vm` (which sets
# LVSCTL_IN_VM; on a kernel with IPVS and ipip it runs here). The test binaries were built before
# the guest booted; nextest runs them from the lists scripts/test.sh wrote, building nothing.
#
# Kernel modules are global, and every lab's host snapshots see them: loading ipip adds tunl0 to
# every namespace, ip6_tunnel ip6tnl0, ip_vs /proc/net/ip_vs. So two stages, each in a guest of
# its own, run at once:
#   alone     the scenarios that prove loading and unloading (the README's first `up` shows
#             `+ module ip_vs`; TUN's ipip and ip6_tunnel; the rendered files' modules-load.d),
#             one at a time, on a kernel with none of them loaded; and one-armed NAT, whose source
#             NAT rule makes nftables load the kernel's NAT modules (and this guest has the room);
#   together  every other scenario, several at once, after every module a lab loads was loaded
#             up front (so that no lab loads or unloads one under another's snapshots).
# Each prints its phase times at the end as `PHASES<TAB>scenario<TAB>phase<TAB>seconds` lines.
#
#   scripts/guest-tests.sh alone|together [NEXTEST ARGS]
#   LVSCTL_GUEST_JOBS=N   how many scenarios run at once in `together` (default 6)
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: scripts/guest-tests.sh alone|together [NEXTEST ARGS]}
shift
export LVSCTL_PHASES=/tmp/lvsctl-phases-$stage.tsv
: > "$LVSCTL_PHASES"
reuse=(--cargo-metadata target/nextest-reuse/cargo-metadata.json
       --binaries-metadata target/nextest-reuse/binaries.json)
nextest() { cargo-nextest nextest run "${reuse[@]}" --profile guest --no-fail-fast "$@"; }
real_kernel='(binary(e2e) | binary(e2e_ha)) & test(/^e2e_/)'
# In this order: e2e_tun's down unloads ipip, which e2e_rendered_files_alone needs unloaded.
alone=(e2e_dr e2e_tun e2e_tun6 e2e_tun_gue e2e_tun_gre e2e_nat_onearm e2e_rendered_files_alone)

booted=$(cut -d ' ' -f 1 /proc/uptime)
printf 'guest %s\tboot\t%s\n' "$stage" "$booted" >> "$LVSCTL_PHASES"
echo "guest-tests $stage: booted in $booted s; $(nproc) vCPUs"
status=0
started=$SECONDS
case $stage in
alone)
    for t in "${alone[@]}"; do
        echo "guest-tests alone: $t, on a kernel without the labs' modules"
        nextest --test-threads 1 -E "$real_kernel & test(=$t)" "$@" || status=1
    done
    ;;
together)
    jobs=${LVSCTL_GUEST_JOBS:-6}
    not_alone=""
    for t in "${alone[@]}"; do not_alone+=" & not test(=$t)"; done
    # fou and fou6 too: tun-ha's GUE service has its real servers open GUE ports, and the host
    # whose up loaded fou would unload it on down while the other still closes its port (one
    # kernel under every lab host here; each machine has its own outside the lab).
    modules=(ip_vs ipip ip6_tunnel fou fou6)
    for m in /lib/modules/"$(uname -r)"/kernel/net/netfilter/ipvs/ip_vs_*.ko*; do
        m=${m##*/}
        m=${m%%.ko*}
        # Schedulers only: the FTP helper and the SIP persistence engine are no lab's.
        [[ $m == ip_vs_ftp || $m == ip_vs_pe_* ]] || modules+=("$m")
    done
    modprobe -a "${modules[@]}" || { echo "guest-tests: cannot load ${modules[*]}" >&2; status=1; }
    echo "guest-tests together: ${#modules[@]} modules loaded; the scenarios, $jobs at once"
    nextest --test-threads "$jobs" -E "$real_kernel $not_alone" "$@" || status=1
    ;;
*)
    echo "guest-tests: no stage $stage (alone or together)" >&2
    exit 2
    ;;
esac
printf 'guest %s\tscenarios\t%s\n' "$stage" "$((SECONDS - started))" >> "$LVSCTL_PHASES"
sed 's/^/PHASES\t/' "$LVSCTL_PHASES"
exit $status
