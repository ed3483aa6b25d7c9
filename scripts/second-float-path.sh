#!/usr/bin/env bash
# The test suite again on another float path, in a random order (the Slurm tests excepted: they are not numeric and
# ran in the first pass). Expected values in the tests must hold on every machine; this pass changes what a machine
# changes (README, Testing):
#   - ATEN_CPU_CAPABILITY=default: ATen's kernels without AVX2/AVX-512 vectorisation (other summation orders);
#   - RB201_TEST_ONEDNN=0: oneDNN (mkldnn) off in the test processes (tests/conftest.py), so convolutions go through
#     ATen's own kernels and MKL's GEMM;
#   - MKL_CBWR=COMPATIBLE: MKL's conditional-numerical-reproducibility mode, its kernels for the oldest instruction set;
#   - one thread (OMP_NUM_THREADS=1, MKL_NUM_THREADS=1), also in the subprocesses tests start;
#   - a random test order (pytest-randomly, part of the test extra), modules and tests within them shuffled, its seed
#     printed in the header (RB201_TEST_SEED=N repeats an order). Global random states are not reseeded per test
#     (--randomly-dont-reset-seed), so only the order changes what a test sees.
#   bash scripts/second-float-path.sh                      # the whole pass
#   bash scripts/second-float-path.sh tests/test_bounds.py  # some modules (any pytest arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${RB201_TEST_SEED:-$(python -c 'import random; print(random.randrange(2**32))')}"
echo "second float path: ATEN_CPU_CAPABILITY=default, oneDNN off, MKL_CBWR=COMPATIBLE, 1 thread, test order seed $seed"
export ATEN_CPU_CAPABILITY=default RB201_TEST_ONEDNN=0 MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ "$#" -eq 0 ]; then set -- tests; fi
exec python -m pytest -q -m "not slurm" -p randomly --randomly-seed="$seed" --randomly-dont-reset-seed "$@"
