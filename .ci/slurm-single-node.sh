#!/usr/bin/env bash
# A single-node SLURM cluster on localhost (Debian's slurm-wlm + munge), for the launcher tests and CI.
#   .ci/slurm-single-node.sh start   # as root: writes $BENCH_SLURM_DIR/slurm.conf, starts munged, slurmctld, slurmd
#   .ci/slurm-single-node.sh stop
# Clients find the cluster through SLURM_CONF=$BENCH_SLURM_DIR/slurm.conf (printed on success). No cgroups, no
# accounting database: proctrack/linuxproc, task/none, select/cons_tres over this machine's CPUs and memory.
# Idempotent: a cluster that already answers `scontrol ping` is left as it is.
set -euo pipefail
DIR="${BENCH_SLURM_DIR:-/tmp/bench-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"
cmd="${1:-start}"

if [ "$cmd" = stop ]; then
  for d in slurmd slurmctld; do
    [ -f "$DIR/$d.pid" ] && kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
  done
  exit 0
fi

if [ -f "$CONF" ] && scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
  echo "SLURM_CONF=$CONF"; exit 0
fi
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null 2>&1 || { echo "slurm: $tool not installed (apt-get install slurm-wlm munge)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "slurm: the daemons must be started as root" >&2; exit 3; }

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
cat > "$CONF" <<CONF
ClusterName=bench
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
KillWait=5
MinJobAge=600
MaxArraySize=10001
SlurmdTimeout=300
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

if ! pgrep -x munged >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
  su -s /bin/sh munge -c munged 2>/dev/null || munged --force
fi
for d in slurmctld slurmd; do
  [ -f "$DIR/$d.pid" ] && kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
done
sleep 0.5
slurmctld -f "$CONF" -c          # -c: a clean start (no jobs from an earlier cluster of this folder)
slurmd -f "$CONF"
for _ in $(seq 1 60); do
  if scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    echo "SLURM_CONF=$CONF"; exit 0
  fi
  sleep 0.5
done
echo "slurm: the cluster did not come up; see $DIR/log/slurmctld.log and slurmd.log" >&2
exit 4
