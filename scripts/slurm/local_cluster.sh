#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1, for trying sweep arrays on one machine (and for the
# test suite). Needs root; installs Debian's slurm-wlm and munge when missing.
#
#   scripts/slurm/local_cluster.sh start [DIR]   # prints the SLURM_CONF line to export
#   scripts/slurm/local_cluster.sh stop [DIR]
#
# DIR (default /tmp/gradtrace-slurm) holds the configuration, state, logs and sockets; the munge
# user must be able to reach it. `start` exits 3, saying why, when this machine cannot host the
# daemons (some containers cannot).
set -euo pipefail

action=${1:-}
dir=${2:-/tmp/gradtrace-slurm}
cannot() {
  echo "local cluster: cannot start: $*" >&2
  exit 3
}

stop() {
  if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF="$dir/slurm.conf" timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    sleep 1
  fi
  for pidfile in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  return 0
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "local cluster: installing slurm-wlm and munge" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  stop
  rm -rf "$dir"
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  chmod 755 "$dir"
  chown munge:munge "$dir/munge" 2>/dev/null || true

  # munge: a key, and the daemon on a socket of our own.
  [ -s /etc/munge/munge.key ] || mungekey --create 2>/dev/null || create-munge-key -f
  socket="$dir/munge/munge.socket"
  runuser -u munge -- munged --socket="$socket" --pid-file="$dir/munge/munged.pid" --force \
    2>"$dir/munged.err" || cannot "munged: $(cat "$dir/munged.err")"

  cat >"$dir/slurm.conf" <<CONF
ClusterName=gradtrace-local
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=gtnode NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=gtnode Default=YES MaxTime=INFINITE State=UP
CONF
  printf 'CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n' >"$dir/cgroup.conf"
  export SLURM_CONF="$dir/slurm.conf"

  slurmctld -i 2>"$dir/slurmctld.err" ||
    cannot "slurmctld: $(tail -n 3 "$dir/slurmctld.log" "$dir/slurmctld.err" 2>/dev/null | tr '\n' ' ')"
  slurmd -N gtnode 2>"$dir/slurmd.err" ||
    cannot "slurmd: $(tail -n 3 "$dir/slurmd.log" "$dir/slurmd.err" 2>/dev/null | tr '\n' ' ')"
  state=
  for _ in $(seq 60); do
    state=$(sinfo -h -n gtnode -o %t 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    sleep 1
  done
  [ "$state" = "idle" ] ||
    cannot "the node never became idle (state '$state'): $(tail -n 5 "$dir/slurmd.log" | tr '\n' ' ')"
  echo "export SLURM_CONF=$dir/slurm.conf"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
