#!/usr/bin/env bash
# Install rb201 (editable) with an extra: demo (default) or test.
#   bash scripts/setup.sh [demo|test]
# torch is pinned to what is installed; with no torch installed, to the CPU build 2.13.0 (which pip takes from the
# local wheel on CPU machines). GPU users: install the CUDA torch build first, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-demo}"
case "$extra" in demo|test) ;; *) echo "usage: bash scripts/setup.sh [demo|test] (got '$extra')" >&2; exit 2 ;; esac
py="${PYTHON:-python}"
torch_version="$("$py" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo 2.13.0)"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${torch_version}" > "$constraints"
"$py" -m pip install -q -c "$constraints" -e ".[${extra}]"
if [ "$extra" = test ]; then
  # Reference implementations used as peers in tests; their declared pins (torchvision, old numpy) are not needed.
  "$py" -m pip install -q --no-deps torchattacks==3.5.1 xautodl==1.0.0
fi
