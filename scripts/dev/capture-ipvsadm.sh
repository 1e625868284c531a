#!/bin/sh
# Developer tool: the netlink payloads ipvsadm sends for each ARGS line below, in the format of
# crates/agent/tests/fixtures/ipvsadm-netlink.txt (ARGS, a tab, the payload after nlmsghdr in hex). Needs an
# IPVS kernel, ipvsadm and strace; here, inside a guest:
#
#   lvsctl lab vm -- "$PWD/scripts/dev/capture-ipvsadm.sh" > /tmp/captured.txt
#
# The last sendmsg of each ipvsadm run is the command itself (the ones before resolve the family).
set -u
modprobe ip_vs; modprobe ip_vs_wrr; modprobe ip_vs_sh; modprobe ip_vs_mh
ipvsadm -C
while IFS= read -r args; do
    # shellcheck disable=SC2086 # the arguments are split on purpose
    strace -f -e trace=sendmsg -xx -s 4096 -o /run/capture.txt ipvsadm $args >/dev/null || echo "FAILED: $args" >&2
    hex=$(grep sendmsg /run/capture.txt | tail -n 1 | sed -n 's/.*}, "\(\(\\x[0-9a-f][0-9a-f]\)*\)"\].*/\1/p' | sed 's/\\x//g')
    printf '%s\t%s\n' "$args" "$hex"
done <<'LIST'
-A -t [2001:db8:188::100]:80 -s wrr -p 300 -M 64
-a -t [2001:db8:188::100]:80 -r [2001:db8:188::81]:8080 -m -w 3
-A -f 10 -s rr -p 60
-a -f 10 -r 192.168.188.81:0 -g -w 1
-A -f 10 -6 -s rr -p 60
-a -f 10 -6 -r [2001:db8:188::81]:0 -g -w 1
-e -f 10 -6 -r [2001:db8:188::81]:0 -i -w 2
-d -f 10 -6 -r [2001:db8:188::81]:0
-D -f 10 -6
-A -u 192.168.188.100:53 -s sh -b sh-fallback,sh-port -o
-A -t 192.168.188.100:443 -s mh -b mh-fallback,mh-port
-A --sctp-service 192.168.188.100:3868 -s rr
LIST
ipvsadm -C
