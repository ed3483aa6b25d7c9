"""``rb201 evaluate``, ``merge``, ``validate``: build the dataset from shards (no torch or pandas import at module
level). ``launch`` and ``status`` (job arrays) are in :mod:`.launch_cmds`. The options of ``evaluate`` are the
fields of its request (:mod:`.options`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..runner.request import EvaluateRequest
from . import library_errors, render, run_library
from .options import request_argv, request_from_params, request_options

FAILED_EXIT = 3  # exit status when some architectures failed (they are recorded in the shard manifest)


@click.command("evaluate")
@request_options(EvaluateRequest)
def evaluate(**params: Any) -> None:
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
    from ..runner.batch import EmptyShard, Note, evaluate_request

    failed = 0
    with library_errors():
        for event in evaluate_request(request_from_params(EvaluateRequest, params)):
            if isinstance(event, Note):
                click.echo(render(event.text), err=event.warning)
            elif isinstance(event, EmptyShard):
                bounds = event.shard.bounds
                click.echo(f"range {bounds[0]}:{bounds[1]}: no architecture to evaluate" if bounds else "nothing to do")
            else:
                click.echo(event.summary())
                for p in event.problems:
                    click.echo(f"  recomputed: {p}")
                for idx, err in sorted(event.failures.items())[:20]:
                    click.echo(f"  failed {idx}: {err}")
                failed += len(event.failures)
    if failed:
        click.echo(f"{failed} architecture(s) failed; re-run the same command to retry them", err=True)
        sys.exit(FAILED_EXIT)


@click.command("merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory to create.")
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
    import shlex

    from ..errors import Rb201Error
    from ..runner.providers import fill_request

    missing = {d.dataset: len(d.representatives_missing) for d in (rep.coverage.datasets if rep.coverage else [])}
    for job in rep.jobs:
        ident = job.get("identity") or {}
        n_missing = missing.get(ident.get("dataset"), 0)
        if not (n_missing or job.get("failures")) or "spec_hash" not in ident:
            continue
        try:
            request = fill_request(ident, out, str(job.get("out")))
        except (Rb201Error, KeyError) as exc:  # a record this version cannot turn into options: say so
            click.echo(f"  (no fill command for {ident.get('dataset')}: {exc})")
            continue
        cmd = shlex.join(["rb201", "evaluate", *request_argv(request, evaluate)])
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
