#!/usr/bin/env bash
# Start (or reuse) a real single-node Slurm cluster on this machine for the tests in tests/test_slurm.py.
#
#   bash tests/slurm/start-cluster.sh          # as root; installs slurmctld, slurmd, slurm-client, munge if missing
#   export SLURM_CONF=/tmp/rb201-slurm/slurm.conf   # what sbatch / squeue / sinfo need to find it
#   bash tests/slurm/stop-cluster.sh
#
# The node is this host as slurmd reports it (its CPUs and memory; node feature rb201test for --constraint), in one
# partition ($RB201_SLURM_PARTITION), with select/cons_tres and per-core, per-memory allocation, requeue on, and no
# accounting database (so --qos is accepted but not recorded). Everything lives under $RB201_SLURM_DIR (default
# /tmp/rb201-slurm) and the daemons listen on ports 16817/16818, so a system Slurm set-up is never touched.
# Idempotent: a cluster already running with the same configuration is reused; one with another configuration, or
# half up, is stopped and started again. The last line printed is the time taken.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=cluster-env.sh
. "$here/cluster-env.sh"

[ "$(id -u)" = 0 ] || die "needs root (installs Debian packages, runs slurmctld/slurmd as root); running as $(id -un)"
t0=$(date +%s%N)
mkdir -p "$RB201_SLURM_DIR"
chmod 755 "$RB201_SLURM_DIR"
exec 9>"$RB201_SLURM_DIR/start.lock"
flock 9   # one start or stop at a time (several test processes may ask at once)

# ---- packages -----------------------------------------------------------------------------------------------------
install_s=0
missing=""
for bin in slurmctld slurmd sbatch munged mungekey; do command -v "$bin" >/dev/null || missing="$missing $bin"; done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null || die "Slurm is not installed (missing:$missing) and apt-get is not available"
  log "installing slurmctld slurmd slurm-client munge (missing:$missing)"
  ti=$(date +%s%N)
  export DEBIAN_FRONTEND=noninteractive
  # the packages' own services (system slurmd/slurmctld/munged) must not start: this cluster runs its own daemons.
  # policy-rc.d exit status 101 = "action forbidden" for invoke-rc.d; put in place only if none exists, then removed
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq >"$RB201_SLURM_DIR/apt.log" 2>&1 || { tail -20 "$RB201_SLURM_DIR/apt.log" >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >>"$RB201_SLURM_DIR/apt.log" 2>&1 \
    || { tail -20 "$RB201_SLURM_DIR/apt.log" >&2; die "apt-get install failed"; }
  [ -z "$policy" ] || rm -f "$policy"
  install_s=$(elapsed "$ti")
fi
version="$(slurmd -V 2>/dev/null || true)"

# ---- configuration ------------------------------------------------------------------------------------------------
host="$(hostname -s)"
hw="$(slurmd -C 2>&1 | head -1)" || die "slurmd -C cannot describe this host: $hw"   # NodeName=... CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=...
field() { echo "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
cpus="$(field CPUs)"; mem="$(field RealMemory)"
[ -n "$cpus" ] && [ -n "$mem" ] || die "cannot read this host's CPUs and memory from 'slurmd -C': $hw"
mkdir -p "$MUNGE_DIR" "$RB201_SLURM_DIR/state" "$RB201_SLURM_DIR/spool" "$RB201_SLURM_DIR/log"
chmod 755 "$MUNGE_DIR"
conf_new="$RB201_SLURM_DIR/slurm.conf.new"
cat >"$conf_new" <<CONF
# rb201 test cluster: one node (this host), one partition; written by tests/slurm/start-cluster.sh
ClusterName=rb201test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$RB201_SLURM_PORT
SlurmdPort=$((RB201_SLURM_PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$RB201_SLURM_DIR/state
SlurmdSpoolDir=$RB201_SLURM_DIR/spool
SlurmctldPidFile=$RB201_SLURM_DIR/slurmctld.pid
SlurmdPidFile=$RB201_SLURM_DIR/slurmd.pid
SlurmctldLogFile=$RB201_SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$RB201_SLURM_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups (containers): processes are tracked through /proc, tasks are not bound to cores
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# scheduling passes every 2 s (defaults: 60 s main, 30 s backfill): a requeued task starts again within seconds of
# becoming eligible
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
MaxArraySize=10001
# requeue: preempted / requeued batch jobs start again from their script (submitit reloads its pickled task)
JobRequeue=1
# seconds between SIGTERM and SIGKILL when a job is cancelled, requeued or hits its time limit
KillWait=5
# finished jobs stay visible to squeue/scontrol for 5 minutes (there is no accounting database for sacct)
MinJobAge=300
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $(echo "$hw" | tr ' ' '\n' | grep -E '^(Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')Features=rb201test State=UNKNOWN
PartitionName=$RB201_SLURM_PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

node_state() { sinfo -h -N -n "$host" -o %T 2>/dev/null | head -1; }
if cmp -s "$conf_new" "$SLURM_CONF" && pid_alive "$MUNGE_DIR/munged.pid" munged && pid_alive "$RB201_SLURM_DIR/slurmctld.pid" slurmctld \
   && pid_alive "$RB201_SLURM_DIR/slurmd.pid" slurmd && [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing) ]]; then
  rm -f "$conf_new"
  log "reusing the running cluster ($version, node $host: $(node_state))"
  echo "SLURM_CONF=$SLURM_CONF"
  echo "started_s=0 install_s=$install_s version=${version#slurm-wlm } reused=1"
  exit 0
fi
if pid_alive "$RB201_SLURM_DIR/slurmctld.pid" slurmctld || pid_alive "$RB201_SLURM_DIR/slurmd.pid" slurmd || pid_alive "$MUNGE_DIR/munged.pid" munged; then
  log "restarting the cluster (configuration changed or not fully up)"
  stop_daemons
fi
mv "$conf_new" "$SLURM_CONF"

# ---- daemons ------------------------------------------------------------------------------------------------------
fail() { for f in "$MUNGE_DIR/munged.log" "$RB201_SLURM_DIR/log/slurmctld.log" "$RB201_SLURM_DIR/log/slurmd.log"; do
           [ -f "$f" ] && { log "--- last lines of $f"; tail -15 "$f" >&2; }; done; die "$1"; }
ts=$(date +%s%N)
if [ ! -s "$MUNGE_DIR/munge.key" ]; then
  mungekey --create --keyfile="$MUNGE_DIR/munge.key" || die "mungekey failed"
fi
chmod 600 "$MUNGE_DIR/munge.key"
munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" --pid-file="$MUNGE_DIR/munged.pid" \
  --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" 9>&- || fail "munged did not start"
munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET" >/dev/null || fail "munge cannot encode/decode a credential"
# the daemons must not inherit the lock (fd 9), or they would hold it as long as they run.
# -c: start from an empty job state (jobs of an earlier run were cancelled before it stopped)
slurmctld -c -f "$SLURM_CONF" 9>&- || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" 9>&- || fail "slurmd did not start"
for i in $(seq 600); do
  state="$(node_state)"
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$(node_state)" = idle ] || fail "node $host is not idle after 60 s (sinfo: '$(node_state)')"
scontrol ping | grep -q UP || fail "scontrol ping does not report slurmctld UP"
started_s=$(elapsed "$ts")
log "cluster up: $version, node $host ($cpus CPUs, $mem MB), partition $RB201_SLURM_PARTITION; daemons started in ${started_s} s (install ${install_s} s, total $(elapsed "$t0") s)"
echo "SLURM_CONF=$SLURM_CONF"
echo "started_s=$started_s install_s=$install_s version=${version#slurm-wlm } reused=0"
