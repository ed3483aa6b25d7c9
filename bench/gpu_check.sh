#!/usr/bin/env bash
# The GPU check in one command, from the repository root of a copy that is not pip-installed:
#   bench/gpu_check.sh OUT [gpu_check.py options, e.g. --commit SHA --budget 360]
# Installs the wheels of .whl/ (built by bench/gpu_check_wheels.py: pyautoattack, torchattacks, mlxtend) into a
# private folder, offline and without touching the system, then runs bench/gpu_check.py with its output also in
# OUT/gpu_check.out. Where git metadata is present and no --commit is given, the commit is read here.
set -eu -o pipefail
OUT=${1:?usage: bench/gpu_check.sh OUT [gpu_check.py options]}
shift
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
SITE=$(mktemp -d "${TMPDIR:-/tmp}/rb201-site.XXXXXX")
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl
fi
COMMIT=()
if [[ " $* " != *" --commit "* ]] && git rev-parse HEAD >/dev/null 2>&1; then
    COMMIT=(--commit "$(git rev-parse HEAD)")
fi
PYTHONUNBUFFERED=1 PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" \
    python3 bench/gpu_check.py --out "$OUT" "${COMMIT[@]}" "$@" 2>&1 | tee "$OUT/gpu_check.out"
