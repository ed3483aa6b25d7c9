#!/usr/bin/env bash
# Build the rb201 dataset (jung2023 preset) on a Slurm cluster: 6466 representatives x 3 datasets.
#
# Usage: NATS=/data/NATS-tss-v1_0-3ffb9-full CIFAR10C=/data/CIFAR-10-C CIFAR100C=/data/CIFAR-100-C \
#        SCRATCH=/scratch/$USER PARTITION=gpu bash scripts/slurm_example.sh
# Re-running the script resumes: finished architectures are skipped, failed or damaged ones are recomputed.
set -euo pipefail

: "${NATS:?path of the NATS-Bench topology full archive}"
: "${SCRATCH:?shared scratch directory for shards and logs}"
PARTITION=${PARTITION:-gpu}
SHARDS=${SHARDS:-128}          # tasks per dataset; about 51 representatives each
TIME_MIN=${TIME_MIN:-720}      # per task; tasks are requeued on timeout and resume
GPUS=${GPUS:-1}                # per task; >1 runs a local pool of one worker per GPU
PRESET=${PRESET:-jung2023}

for DS in cifar10 cifar100 ImageNet16-120; do
  case "$DS" in
    cifar10) CORR=${CIFAR10C:-none} ;;
    cifar100) CORR=${CIFAR100C:-none} ;;
    *) CORR=none ;;  # no corruptions for ImageNet16-120 in the protocol
  esac
  rb201 launch --executor slurm --shards "$SHARDS" --arch-range 0:15625 \
      --partition "$PARTITION" --time "$TIME_MIN" --gpus-per-task "$GPUS" --cpus-per-task 8 \
      --dataset "$DS" --preset "$PRESET" --weights "nats:$NATS" --trust-pickle --seed 777 \
      --corruptions "$CORR" --out "$SCRATCH/rb201/shards-$DS" --folder "$SCRATCH/rb201/logs-$DS"
done

cat <<MSG
Submitted. Progress (readable while the tasks run): rb201 status $SCRATCH/rb201/shards-cifar10
When the arrays have finished:
  rb201 merge $SCRATCH/rb201/shards-cifar10 $SCRATCH/rb201/shards-cifar100 \\
      $SCRATCH/rb201/shards-ImageNet16-120 --out $SCRATCH/rb201/rb201-$PRESET
  rb201 validate $SCRATCH/rb201/rb201-$PRESET
MSG
