#!/usr/bin/env bash
# Stop the test cluster of start-cluster.sh: cancel its jobs, wait for them to end, stop slurmd, slurmctld, munged.
#
#   bash tests/slurm/stop-cluster.sh               # stop
#   bash tests/slurm/stop-cluster.sh --if-unused   # stop unless another test session still uses it (see below)
#
# A test session holds a shared lock on $RB201_SLURM_DIR/users.lock while it uses the cluster; --if-unused stops the
# daemons only when no session holds it, so two test runs on one machine never pull the cluster from each other.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=cluster-env.sh
. "$here/cluster-env.sh"
[ -d "$RB201_SLURM_DIR" ] || exit 0
exec 9>"$RB201_SLURM_DIR/start.lock"
flock 9
if [ "${1:-}" = --if-unused ]; then
  exec 8>>"$RB201_SLURM_DIR/users.lock"
  if ! flock -xn 8; then log "left running: another test session is using it"; exit 0; fi
fi
stop_daemons
log "stopped"
