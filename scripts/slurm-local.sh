#!/usr/bin/env bash
# Starts a real single-node Slurm (Debian's slurm-wlm 22.05 and munge) on this
# machine, without systemd: for CI and for trying `joulebench slurm` locally.
# Run as root. `scripts/slurm-local.sh stop` shuts it down.
# Recipe and its caveats: see README "Running on a cluster".
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "slurm-local.sh: run as root" >&2; exit 1; fi

if [ "${1:-}" = stop ]; then
  scontrol shutdown >/dev/null 2>&1 || true
  [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# Already up (a second call): nothing to do.
if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
  echo "slurm-local: already running"; exit 0
fi

install -d -o munge -g munge -m 0755 /run/munge
install -d /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
test -s /etc/munge/munge.key || su munge -s /bin/sh -c 'mungekey -c'
if ! [ -f /run/munge/munged.pid ] || ! kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
  su munge -s /bin/sh -c /usr/sbin/munged
fi

H=$(hostname -s)
C=$(nproc)
M=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))
cat >/etc/slurm/slurm.conf <<CONF
# Written by joulebench scripts/slurm-local.sh: one node, no cgroups, no accounting.
ClusterName=local
SlurmctldHost=$H
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=10
NodeName=$H CPUs=$C RealMemory=$M State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld
slurmd -N "$H" 2>/dev/null || slurmd
if ! timeout 60 sh -c 'until sinfo -h -o %T | grep -q idle; do sleep 1; done'; then
  echo "slurm-local: the node did not become idle within 60 s" >&2
  sinfo >&2 || true
  tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  exit 1
fi
echo "slurm-local: node $H idle ($C CPUs, $M MiB)"
