#!/usr/bin/env bash
# Two "hosts" on one machine: network namespaces joined by a veth pair (10.201.0.1 and
# 10.201.0.2), one rank in each, talking over Open MPI's TCP transport only. mpirun runs in the
# first; its remote-shell agent (normally ssh) enters the second instead. The trained parameters
# must equal a one-process run of the same micro-batches, byte for byte.
#   two_hosts.sh path/to/dist_train
# Exits 77 (CTest's skip) where namespaces cannot be made (not root, no iproute2, no CAP_NET_ADMIN).
set -euo pipefail
train=$1
skip() { echo "two_hosts: SKIPPED: $*"; exit 77; }
command -v ip >/dev/null || skip "iproute2 ('ip') is not installed"
[ "$(id -u)" -eq 0 ] || skip "creating network namespaces needs root"

tag=sg$$
a=${tag}a b=${tag}b
work=$(mktemp -d)
cleanup() {
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true  # deleting a namespace deletes its end of the veth pair
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$a" 2>/dev/null || skip "cannot create network namespaces here (ip netns add failed)"
ip netns add "$b"
ip link add "v$a" type veth peer name "v$b"
ip link set "v$a" netns "$a"
ip link set "v$b" netns "$b"
ip -n "$a" addr add 10.201.0.1/24 dev "v$a"
ip -n "$b" addr add 10.201.0.2/24 dev "v$b"
for ns in "$a" "$b"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "v$ns" up
done

# Open MPI starts its daemon on a remote host as `AGENT HOST COMMAND...`, COMMAND for a shell.
cat >"$work/agent" <<AGENT
#!/bin/sh
host=\$1; shift
[ "\$host" = 10.201.0.2 ] || { echo "agent: unknown host \$host" >&2; exit 1; }
exec ip netns exec $b sh -c "\$*"
AGENT
chmod +x "$work/agent"
printf '10.201.0.1 slots=1\n10.201.0.2 slots=1\n' >"$work/hosts"

net=10.201.0.0/24
timeout 100 ip netns exec "$a" mpirun -n 2 --hostfile "$work/hosts" --mca plm_rsh_agent "$work/agent" \
  --mca btl tcp,self --mca btl_tcp_if_include $net --mca oob_tcp_if_include $net \
  "$train" "$work/two_hosts.safetensors"
"$train" "$work/one_process.safetensors" --simulate 2
cmp "$work/two_hosts.safetensors" "$work/one_process.safetensors"
echo "two_hosts: the ranks in two namespaces trained the same parameters as one process"
