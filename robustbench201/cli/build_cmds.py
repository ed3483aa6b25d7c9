"""``rb201 evaluate``, ``merge``, ``validate``: build the dataset from shards (no torch or pandas import at module
level). ``launch`` and ``status`` (job arrays) are in :mod:`.launch_cmds`, sharing the options defined here."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import click

from ..vocab import PRESETS
from . import run_library
from .recipe_opts import recipe_options

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")
FAILED_EXIT = 3  # exit status when some architectures failed (they are recorded in the shard manifest)


def eval_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``evaluate`` and ``launch``."""
    opts = [
        click.option("--arch-range", "arch_ranges", multiple=True, metavar="START:END",
                     help="Half-open range of NB201 indices, e.g. 0:128 (repeatable, comma-separated allowed)."),
        click.option("--unique-only/--all", "unique_only", default=True, show_default=True,
                     help="Only isomorphism-class representatives (6466 of 15625), or every cell."),
        click.option("--missing-from", type=click.Path(exists=True, file_okay=False), metavar="DATASET",
                     help="Only the cells (of the ranges given, else of the whole space) that the merged DATASET "
                          "lacks for this job's dataset, weights, seed and spec."),
        click.option("--dataset", default="cifar10", show_default=True,
                     help="cifar10, cifar100, ImageNet16-120 or mnist5k."),
        click.option("--preset", type=click.Choice(PRESETS), default="jung2023", show_default=True,
                     help="Evaluation preset (see evaluation/README.md)."),
        click.option("--spec", "spec_file", type=click.Path(exists=True), metavar="FILE|DATASET",
                     help="An EvalSpec JSON file, or a dataset directory whose spec to reuse, instead of a preset."),
        click.option("--spec-hash", help="With --spec DATASET holding several specs: the one to reuse."),
        click.option("--weights", required=True, metavar="train|nats:PATH|DIR|init",
                     help="train: train here (--epochs); nats:PATH: official archive files (--trust-pickle); "
                          "DIR: rb201-trained networks; init: seeded initialization."),
        click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Training epochs of the weights [default: the recipe's, 200 for nb201 and the official "
                          "archives (which hold 12 or 200), 50 for wu2024]."),
        click.option("--seed", type=click.IntRange(min=0), default=777, show_default=True,
                     help="Training / initialization seed of the weights."),
        click.option("--trust-pickle", is_flag=True, help="Allow unpickling official weight files (runs code)."),
        click.option("--n-test", type=click.IntRange(min=1), help="Evaluate on a fixed subset of the test set."),
        click.option("--data-root", type=click.Path(file_okay=False), help="Data root ($RB201_DATA by default)."),
        click.option("--corruptions", default="none", show_default=True, metavar="none|generated|DIR",
                     help="Corrupted test sets: none, our seeded generator, or a CIFAR-C directory."),
        click.option("--channels", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Stem channels C (init/train)."),
        click.option("--cells", "n_cells", type=click.IntRange(min=1), default=5, show_default=True,
                     help="Cells per stage N (init/train)."),
        click.option("--train-dir", type=click.Path(file_okay=False),
                     help="Where --weights train keeps trained networks (default OUT/trained)."),
        click.option("--splits", type=click.Choice(["test", "test,valid"]), default=None,
                     help="Evaluate on the test set only, or also on the validation split the recipe holds out "
                          "[default: the spec's; wu2024: test,valid], e.g. --splits test,valid --holdout seeded."),
        click.option("--n-valid", type=click.IntRange(min=1),
                     help="Evaluate on a fixed subset (seed 0) of the validation split, e.g. --n-valid 1000."),
        click.option("--per-sample", is_flag=True,
                     help="Also store each image's predicted class and the probabilities of the predicted and true "
                          "class (float16) per key and epsilon/severity (6 bytes per image each), e.g. "
                          "--preset wu2024 --per-sample."),
        click.option("--out", required=True, type=click.Path(), help="Output directory of the shards."),
        click.option("--force-new-spec", is_flag=True, help="Allow shards of another spec in the same --out."),
        click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Retries of an architecture after an out-of-memory error."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Torch threads per worker [default: 1; use more workers for more cores, e.g. "
                          "--devices cpu,cpu]."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return recipe_options(fn)


_FACTORY_KEYS = ("preset", "spec_file", "spec_hash", "dataset", "weights", "epochs", "seed", "trust_pickle", "n_test",
                 "data_root", "corruptions", "channels", "n_cells", "train_dir", "out", "recipe", "adversarial",
                 "adv_eps", "adv_step", "adv_steps", "holdout", "splits", "per_sample", "n_valid")  # fmt: skip


def make_factory(**options: Any) -> Any:
    """The evaluator factory of the CLI options (:meth:`robustbench201.runner.providers.EvalJob.from_options`)."""
    from ..runner.providers import EvalJob

    return EvalJob.from_options(**options)


def _factory_from(kw: dict[str, Any]) -> Any:
    factory = run_library(make_factory, **{k: kw[k] for k in _FACTORY_KEYS})
    if hasattr(factory, "check"):
        run_library(factory.check)
    return factory


def _present(kw: dict[str, Any], factory: Any) -> set[int] | None:
    """Cells ``--missing-from DATASET`` already holds for this job, plus those finished in shards under OUT since
    (None without the option)."""
    if not kw["missing_from"]:
        return None
    from ..runner.shard import finished_in_out
    from ..store.validate import archs_present

    ident = factory.identity()
    present = run_library(
        archs_present, kw["missing_from"], dataset=ident["dataset"], weights=ident["weights"], seed=ident["seed"],
        spec_hash=ident["spec_hash"],
    )  # fmt: skip
    if not present:
        click.echo(
            f"note: {kw['missing_from']} holds no rows of this job ({ident['dataset']}, weights {ident['weights']}, "
            f"seed {ident['seed']}, spec {ident['spec_hash']}); every cell counts as missing",
            err=True,
        )
    since = finished_in_out(kw["out"], ident["spec_hash"], ident) - present
    if since:
        click.echo(f"{len(since)} cells are finished in shards under {kw['out']} but not merged yet: skipped "
                   "(run rb201 merge again to include them)")  # fmt: skip
    return present | since


def resolve_devices(device: str, devices: str | None, gpus: int | None) -> list[str]:
    """``--devices a,b`` | ``--gpus N`` (cuda:0..N-1) | ``--device D``; CUDA availability checked here."""
    if devices:
        out = [d.strip() for d in devices.split(",") if d.strip()]
    elif gpus:
        out = [f"cuda:{i}" for i in range(gpus)]
    else:
        out = [device]
    bad = [d for d in out if not _DEVICE_RE.match(d)]
    if bad or not out:
        raise click.BadParameter(
            f"device(s) {bad or out} not understood; allowed: cpu, cuda, cuda:N", param_hint="--devices"
        )
    if any(d.startswith("cuda") for d in out):
        import torch

        n = torch.cuda.device_count()
        for d in out:
            if d.startswith("cuda") and (n == 0 or int(d.partition(":")[2] or 0) >= n):
                raise click.BadParameter(f"{d} requested but this machine has {n} CUDA device(s)")
    return out


@click.command("evaluate")
@eval_options
@click.option("--arch", "arch_list", multiple=True, help="NB201 index or string (repeatable; comma-separated ok).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda:N (one worker).")
@click.option("--devices", help="One worker per device, e.g. cuda:0,cuda:1 (cpu,cpu for a CPU pool).")
@click.option("--gpus", type=click.IntRange(min=1), help="One worker per GPU cuda:0..N-1.")
@click.option("--workers-per-gpu", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes per device (each its own architecture; cpu too).")  # fmt: skip
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate(arch_list: tuple[str, ...], device: str, devices: str | None, gpus: int | None, workers_per_gpu: int,
             no_progress: bool, **kw: Any) -> None:  # fmt: skip
    """Evaluate architectures into resumable shards under OUT (one shard per range, one file pair per arch).

    Re-running the same command skips finished architectures and recomputes damaged ones. Exit status 3 when
    some architectures failed (their errors are in the shard's manifest.json).

    \b
    Examples:
      rb201 evaluate --arch-range 0:128 --dataset cifar10 --weights nats:/data/NATS-tss-v1_0-3ffb9-full \\
          --trust-pickle --preset jung2023 --gpus 2 --out shards/
      rb201 evaluate --arch-range 0:64 --dataset cifar10 --weights nats:/data/NATS-tss-v1_0-3ffb9-full \\
          --trust-pickle --device cuda:0 --workers-per-gpu 4 --out shards/
      rb201 evaluate --arch 1462 --arch 0 --dataset mnist5k --weights train --epochs 3 --preset smoke \\
          --channels 8 --cells 1 --threads 1 --out /tmp/shards
      rb201 evaluate --missing-from nb201rob-v1 --spec nb201rob-v1 --dataset cifar10 \\
          --weights nats:/data/NATS-tss-v1_0-3ffb9-full --trust-pickle --out shards/
    """
    from ..runner import parse_arch_list, parse_arch_ranges, run_job
    from ..runner.plan import plan_evaluate

    ranges = run_library(parse_arch_ranges, kw["arch_ranges"])
    listed = run_library(parse_arch_list, arch_list)
    if not ranges and not listed and not kw["missing_from"]:
        raise click.UsageError("give --arch-range START:END and/or --arch INDEX (or --missing-from DATASET)")
    devs = resolve_devices(device, devices, gpus)
    if workers_per_gpu > 1:
        from ..runner.pool import expand_devices

        devs = expand_devices(devs, workers_per_gpu)
    factory = _factory_from(kw)
    shards, notes = run_library(plan_evaluate, ranges, listed, kw["unique_only"], _present(kw, factory))
    for note in notes:
        click.echo(note)
    failed = 0
    for shard in shards:
        if not shard.archs:
            click.echo(f"range {shard.bounds[0]}:{shard.bounds[1]}: no architecture to evaluate" if shard.bounds
                       else "nothing to do")  # fmt: skip
            continue
        rep = run_library(
            run_job, list(shard.archs), kw["out"], factory, bounds=shard.bounds, devices=devs, retries=kw["retries"],
            force_new_spec=kw["force_new_spec"], progress=not no_progress, threads=kw["threads"],
            allow_overlap=bool(kw["missing_from"]),
        )  # fmt: skip
        click.echo(rep.summary())
        for p in rep.problems:
            click.echo(f"  recomputed: {p}")
        for idx, err in sorted(rep.failures.items())[:20]:
            click.echo(f"  failed {idx}: {err}")
        failed += len(rep.failures)
    if failed:
        click.echo(f"{failed} architecture(s) failed; re-run the same command to retry them", err=True)
        sys.exit(FAILED_EXIT)


@click.command("merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="Dataset directory to create.")
@click.option("--allow-mixed-specs", is_flag=True, help="Allow several evaluation specs per dataset.")
@click.option("--on-conflict", type=click.Choice(["error", "first"]), default="error", show_default=True,
              help="Same key, different value: refuse, or keep the first input's value.")  # fmt: skip
@click.option("--max-rows", type=click.IntRange(min=1), default=2_000_000, show_default=True,
              help="Rows per results file.")  # fmt: skip
@click.option("--name", help="Dataset name in the manifest (default: the directory name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out atomically.")
def merge(inputs: tuple[str, ...], out: str, allow_mixed_specs: bool, on_conflict: str, max_rows: int,
          name: str | None, overwrite: bool) -> None:  # fmt: skip
    """Merge shard directories (and dataset directories) into one validated dataset directory.

    \b
    Examples:
      rb201 merge shards/ --out rb201-cifar10
      rb201 merge shards-a/ shards-b/ --out merged --on-conflict first
    """
    from ..store.merge import merge_datasets

    rep = run_library(
        merge_datasets, list(inputs), out, allow_mixed_specs=allow_mixed_specs, on_conflict=on_conflict,
        max_rows_per_file=max_rows, name=name, overwrite=overwrite,
    )  # fmt: skip
    for line in rep.lines():
        click.echo(line)
    for ex in rep.conflict_examples:
        click.echo(f"  conflict: {ex}")
    _print_fill_commands(rep, out)


def _print_fill_commands(rep: Any, out: str) -> None:
    """For each evaluation job whose dataset lacks representatives or had failures: the command that fills it."""
    from ..errors import Rb201Error
    from ..runner.providers import fill_command

    missing = {d.dataset: len(d.representatives_missing) for d in (rep.coverage.datasets if rep.coverage else [])}
    for job in rep.jobs:
        ident = job.get("identity") or {}
        n_missing = missing.get(ident.get("dataset"), 0)
        if not (n_missing or job.get("failures")) or "spec_hash" not in ident:
            continue
        try:
            cmd = fill_command(ident, out, str(job.get("out")))
        except (Rb201Error, KeyError) as exc:  # a record this version cannot turn into options: say so
            click.echo(f"  (no fill command for {ident.get('dataset')}: {exc})")
            continue
        click.echo(
            f"to evaluate the {n_missing} missing representatives of {ident.get('dataset')} (add --arch-range to "
            f"limit them, and --data-root / --train-dir if you gave them):\n  {cmd}"
        )


@click.command("validate")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--no-coverage", is_flag=True, help="Skip the coverage summary.")
def validate(dataset: str, no_coverage: bool) -> None:
    """Check a dataset directory: manifest, schema version, sizes, sha256, unlisted files, duplicates, coverage.

    Exit status 1 if the dataset is invalid.

    \b
    Example:
      rb201 validate rb201-cifar10
    """
    from ..store.validate import validate_dataset

    rep = run_library(validate_dataset, dataset, coverage=not no_coverage)
    for line in rep.lines():
        click.echo(line)
    if not rep.ok:
        sys.exit(1)
