"""``rb201 train``'s execution options: the training levers (:mod:`robustbench201.models.train_levers`; all off by
default) and ``--workers-per-gpu``, which trains several (architecture, seed) pairs on the device at once, each in
its own ``rb201 train`` process with the same options. No torch import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

#: options added here, in the order they appear in ``--help``
NAMES = ("workers_per_gpu", "channels_last", "autocast", "tf32", "compile_step")


def lever_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--workers-per-gpu``, ``--channels-last``, ``--autocast``, ``--tf32`` and ``--compile``."""
    opts = [
        click.option("--workers-per-gpu", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Training processes on the device at once, each its own (architecture, seed), e.g. "
                          "--workers-per-gpu 4: one small network leaves most of a large GPU idle."),
        click.option("--channels-last", is_flag=True,
                     help="Training lever: weights and batches in channels-last memory format."),
        click.option("--autocast", type=click.Choice(["off", "bf16"]), default="off", show_default=True,
                     help="Training lever: bf16 runs the forward pass under bfloat16 autocast with float32 master "
                          "weights (other arithmetic, so other weights; recorded in the files)."),
        click.option("--tf32", is_flag=True,
                     help="Training lever: TF32 for CUDA matmuls and convolutions (default: true float32)."),
        click.option("--compile", "compile_step", is_flag=True,
                     help="Training lever: torch.compile the forward and loss of the training step."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def levers_of(opts: dict[str, Any]) -> Any:
    """The :class:`~robustbench201.models.train_levers.TrainLevers` of the parsed options."""
    from ..models.train_levers import TrainLevers

    return TrainLevers(channels_last=bool(opts["channels_last"]), autocast=opts["autocast"], tf32=bool(opts["tf32"]),
                       compile=bool(opts["compile_step"]))  # fmt: skip


def worker_commands(ctx: click.Context, archs: list[str], seeds: list[int]) -> list[list[str]]:
    """One ``train`` command line per (architecture, seed): the options of ``ctx`` as given, without
    ``--workers-per-gpu`` and with that one architecture and seed."""
    base: list[str] = []
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name in ("archs", "seeds", "workers_per_gpu"):
            continue
        value = ctx.params.get(p.name)
        flag = max(p.opts, key=len)
        if p.is_flag:
            if value:
                base.append(flag)
        elif value is None or (p.multiple and not value):
            continue
        elif p.multiple:
            for v in value:
                base += [flag, str(v)]
        else:
            base += [flag, str(value)]
    return [["train", "--arch", a, "--seed", str(s), *base] for a in archs for s in seeds]


def train_in_workers(archs: list[str], seeds: list[int], workers: int) -> None:
    """Run the current ``train`` command as one process per (architecture, seed), ``workers`` at a time; fail
    naming the pairs whose process failed (their checkpoints resume on a rerun)."""
    from ..runner.train_workers import run_commands
    from . import run_library

    cmds = worker_commands(click.get_current_context(), archs, seeds)
    click.echo(f"{len(cmds)} trainings, {workers} at a time")
    codes = run_library(run_commands, cmds, workers, click.echo)
    failed = [" ".join(cmds[i][1:5]) for i, code in sorted(codes.items()) if code != 0]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(cmds)} trainings failed ({'; '.join(failed)}); rerun the "
                                   "same command to resume them")  # fmt: skip
