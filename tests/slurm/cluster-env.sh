# Paths and helpers shared by start-cluster.sh and stop-cluster.sh (sourced, not run).
# Everything of the test cluster lives under one folder, so it never touches a system Slurm or munge set-up:
# config, munge key and socket, daemon state, pid files and logs. Non-default ports for the same reason.
RB201_SLURM_DIR="${RB201_SLURM_DIR:-/tmp/rb201-slurm}"
RB201_SLURM_PORT="${RB201_SLURM_PORT:-16817}"   # slurmctld; slurmd listens on the next port
RB201_SLURM_PARTITION="${RB201_SLURM_PARTITION:-rb201}"
export SLURM_CONF="$RB201_SLURM_DIR/slurm.conf"
export PATH="$PATH:/usr/sbin:/sbin"   # slurmctld, slurmd, munged (not on every user's PATH)
MUNGE_DIR="$RB201_SLURM_DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"

log() { echo "rb201-slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_alive FILE NAME: the pid in FILE is a running (not zombie) process called NAME (guards against pid reuse)
pid_alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1   # the daemon may remove its pid file as it exits
  [ -n "$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  [ "$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)" != Z ]
}

# stop_pid FILE NAME: TERM the process named in FILE and wait up to 15 s for it to exit (then KILL)
stop_pid() {
  local file="$1" name="$2" pid i
  pid="$(cat "$file" 2>/dev/null)" || return 0
  pid_alive "$file" "$name" || { rm -f "$file"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do pid_alive "$file" "$name" || break; sleep 0.1; done
  if pid_alive "$file" "$name"; then log "$name (pid $pid) ignored TERM for 15 s; killing it"; kill -KILL "$pid" || true; fi
  rm -f "$file"
}

# cancel_all_jobs: cancel every job of the test cluster and wait (up to 60 s) until none is left, so that no job
# step outlives the daemons
cancel_all_jobs() {
  local i
  pid_alive "$RB201_SLURM_DIR/slurmctld.pid" slurmctld || return 0
  scancel --partition="$RB201_SLURM_PARTITION" 2>/dev/null || true
  for i in $(seq 600); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  log "jobs still listed after 60 s: $(squeue -h -o '%i %T' 2>/dev/null | tr '\n' ' ')"
}

stop_daemons() {
  cancel_all_jobs
  stop_pid "$RB201_SLURM_DIR/slurmd.pid" slurmd
  stop_pid "$RB201_SLURM_DIR/slurmctld.pid" slurmctld
  stop_pid "$MUNGE_DIR/munged.pid" munged
}

# elapsed START_NS: seconds since START_NS (from date +%s%N), one decimal
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
