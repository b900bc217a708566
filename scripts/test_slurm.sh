#!/usr/bin/env bash
# End-to-end test against a real Slurm: installs Debian's slurm-wlm and munge if missing, starts
# a one-node cluster on 127.0.0.1 (munged, slurmctld, slurmd) in a scratch folder, submits a
# 4-task array sweep with `sbatch --wait`, merges the shards with `gradtrace summary`, and checks
# the merged table equals the same sweep run on this machine in one process.
#
# Where this machine cannot host slurmd at all, it prints the exact failure and "SKIPPED" and
# exits 0, so the rest of the suite still runs; any other failure exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
bin="$root/target/release/gradtrace"
[ -x "$bin" ] || { echo "slurm test: build first (cargo build --release)" >&2; exit 1; }

skip() {
  echo "slurm test: SKIPPED: $*"
  exit 0
}

# Slurm and munge from Debian, once per machine.
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm test: installing slurm-wlm and munge" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

scratch=$(mktemp -d /tmp/gradtrace-slurm.XXXXXX)
chmod 755 "$scratch"
stop() {
  scontrol shutdown >/dev/null 2>&1 || true
  sleep 1
  for pidfile in "$scratch"/*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap stop EXIT

# munge: a key, and the daemon on its own socket.
mkdir -p "$scratch/munge"
chown munge:munge "$scratch/munge" 2>/dev/null || true
[ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
socket="$scratch/munge/munge.socket"
runuser -u munge -- munged --socket="$socket" --pid-file="$scratch/munge/munged.pid" \
  --force 2>"$scratch/munged.err" || skip "munged did not start: $(cat "$scratch/munged.err")"
cp "$scratch/munge/munged.pid" "$scratch/munged.pid"

# The one-node cluster.
cat >"$scratch/slurm.conf" <<CONF
ClusterName=gradtrace-test
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$scratch/state
SlurmdSpoolDir=$scratch/spool
SlurmctldPidFile=$scratch/slurmctld.pid
SlurmdPidFile=$scratch/slurmd.pid
SlurmctldLogFile=$scratch/slurmctld.log
SlurmdLogFile=$scratch/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=gtnode NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=gtnode Default=YES MaxTime=INFINITE State=UP
CONF
printf 'CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n' >"$scratch/cgroup.conf"
mkdir -p "$scratch/state" "$scratch/spool"
export SLURM_CONF="$scratch/slurm.conf"

slurmctld -i 2>"$scratch/slurmctld.err" || skip "slurmctld did not start: $(tail -n 3 "$scratch/slurmctld.log" "$scratch/slurmctld.err" 2>/dev/null | tr '\n' ' ')"
slurmd -N gtnode 2>"$scratch/slurmd.err" || skip "slurmd did not start: $(tail -n 3 "$scratch/slurmd.log" "$scratch/slurmd.err" 2>/dev/null | tr '\n' ' ')"
for _ in $(seq 60); do
  state=$(sinfo -h -n gtnode -o %t 2>/dev/null || true)
  [ "$state" = "idle" ] && break
  sleep 1
done
[ "$state" = "idle" ] || skip "the node never became idle (state '$state'): $(tail -n 5 "$scratch/slurmd.log" 2>/dev/null | tr '\n' ' ')"

# The same grid, as a 4-task array and on this machine.
grid=(--activation sigmoid,tanh --init normal,glorot-uniform --seed-count 4 --hidden 5,5
  --epochs 10 --samples 200 --record stats)
sharded="$scratch/sharded"
whole="$scratch/whole"
(cd "$scratch" && GRADTRACE="$bin" sbatch --wait --quiet --array=0-3 \
  --output="$scratch/task-%a.out" "$root/scripts/slurm/sweep.sbatch" "${grid[@]}" \
  --out-dir "$sharded") || { cat "$scratch"/task-*.out >&2 || true; echo "slurm test: the array job failed" >&2; exit 1; }
"$bin" sweep --quiet "${grid[@]}" --out-dir "$whole"

shards=$(ls "$sharded"/index-shard-*-of-4.jsonl | wc -l)
[ "$shards" -eq 4 ] || { echo "slurm test: expected 4 shard indexes, found $shards" >&2; exit 1; }
"$bin" summary "$sharded" --json "$scratch/sharded.json" >/dev/null 2>&1
"$bin" summary "$whole" --json "$scratch/whole.json" >/dev/null 2>&1
if ! cmp -s "$scratch/sharded.json" "$scratch/whole.json"; then
  diff "$scratch/sharded.json" "$scratch/whole.json" >&2 || true
  echo "slurm test: the merged shards differ from the one-machine sweep" >&2
  exit 1
fi
runs=$(ls "$sharded/runs" | wc -l)
echo "slurm test: 4 array tasks ran $runs runs; merged summary equals the one-machine sweep"
