#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, to try the Slurm path (docs/scaling.md) without a cluster:
# the same daemons a cluster runs (munged, slurmctld, slurmd), one node of this machine's cores and
# memory, one partition.
#
#   scripts/slurm-local.sh install  # apt-get install slurm-wlm munge (as root), if missing
#   scripts/slurm-local.sh start    # install if missing, start, wait until the node is idle
#   scripts/slurm-local.sh stop     # stop exactly the daemons start started
#   scripts/slurm-local.sh env      # SLURM_CONF=... (export it for sbatch, squeue, sinfo)
#
# SLURM_LOCAL_NO_INSTALL=1: start never installs (the tests: they never download).
#
# State, logs and the configuration live in $SLURM_LOCAL_DIR (default /tmp/slurm-local); nothing in
# /etc is changed except munge's key, created only if the machine has none.
set -euo pipefail
DIR=${SLURM_LOCAL_DIR:-/tmp/slurm-local}
CONF=$DIR/slurm.conf
PARTITION=${SLURM_LOCAL_PARTITION:-local}

die() { echo "slurm-local: $*" >&2; exit 1; }

install_if_missing() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  [ -z "${SLURM_LOCAL_NO_INSTALL:-}" ] || die "Slurm is not installed (scripts/slurm-local.sh install)"
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || die "Slurm is not installed and this machine has no apt-get"
  echo "slurm-local: installing slurm-wlm and munge (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$DIR/log/apt.log" 2>&1 \
    || { apt-get update -q >>"$DIR/log/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$DIR/log/apt.log" 2>&1; } \
    || die "apt-get install slurm-wlm munge failed: $DIR/log/apt.log"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # what slurmd sees, less 1 GiB for the system: a job asking for more is refused by sbatch
  mem=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') - 1024 ))
  cat >"$CONF" <<CONFEOF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${SLURM_LOCAL_PORT:-6817}
SlurmdPort=$(( ${SLURM_LOCAL_PORT:-6817} + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
KillWait=5
InactiveLimit=0
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONFEOF
}

start_munge() {
  if munge -n </dev/null >/dev/null 2>&1; then   # a munged already answers: use it, never stop it
    return
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    (command -v mungekey >/dev/null && mungekey --create) || create-munge-key -f
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n </dev/null >/dev/null 2>&1 || die "munged did not start"
  cp /run/munge/munged.pid "$DIR/munged.pid"
}

case ${1:-} in
  start)
    mkdir -p "$DIR/log" "$DIR/ctld" "$DIR/spool"
    install_if_missing
    if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
      echo "slurm-local: already running ($CONF)"; exit 0
    fi
    write_conf
    start_munge
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    export SLURM_CONF=$CONF
    for _ in $(seq 120); do
      state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
      [ "$state" = idle ] && break
      sleep 0.5
    done
    [ "${state:-}" = idle ] || die "the node did not become idle (state '${state:-none}'): $DIR/log/slurmctld.log, $DIR/log/slurmd.log"
    echo "slurm-local: one node idle ($(hostname -s), $(nproc) CPUs), partition $PARTITION; export SLURM_CONF=$CONF"
    ;;
  stop)
    for daemon in slurmd slurmctld munged; do
      pidfile=$DIR/$daemon.pid
      [ -s "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"
    done
    echo "slurm-local: stopped"
    ;;
  install)
    mkdir -p "$DIR/log"
    install_if_missing
    echo "slurm-local: $(slurmctld -V)"
    ;;
  env)
    echo "SLURM_CONF=$CONF"
    ;;
  *)
    echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
