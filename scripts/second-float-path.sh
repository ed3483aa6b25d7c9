#!/usr/bin/env bash
# The test suite again on another float path, in a random order (the Slurm tests excepted: they are not numeric and
# ran in the first pass). Expected values in the tests must hold on every machine; this pass changes what a machine
# changes (README, Testing). Environment variables, so the subprocesses tests start (CLI runs, pool workers, the GPU
# check) compute on the same path:
#   - ATEN_CPU_CAPABILITY=default: ATen's kernels without AVX2/AVX-512 vectorisation (other summation orders);
#   - ONEDNN_MAX_CPU_ISA=SSE41: oneDNN's convolutions with SSE4.1 kernels (other blocking) instead of AVX2/AVX-512;
#   - MKL_CBWR=COMPATIBLE: MKL's conditional-numerical-reproducibility mode, its kernels for the oldest instruction set;
#   - one thread (OMP_NUM_THREADS=1, MKL_NUM_THREADS=1);
#   - a random test order (pytest-randomly, of the test extra), modules and the tests within them shuffled, the seed
#     printed first (RB201_TEST_SEED=N repeats an order). Global random states are not reseeded per test
#     (--randomly-dont-reset-seed), so only the order changes what a test sees.
# Each switch changes the weights the tests' small networks train to (measured with torch 2.13 on an AVX-512 CPU).
#   bash scripts/second-float-path.sh                             # the whole pass (testpaths: tests/)
#   bash scripts/second-float-path.sh -n 0 tests/test_bounds.py   # some modules, any pytest options
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${RB201_TEST_SEED:-$(python -c 'import random; print(random.randrange(2**32))')}"
echo "second float path: ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=COMPATIBLE, 1 thread;" \
  "test order seed $seed (RB201_TEST_SEED=$seed repeats it)"
export ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec python -m pytest -q -m "not slurm" -p randomly --randomly-seed="$seed" --randomly-dont-reset-seed "$@"
