"""The options of the command line, defined once. Here: the request commands (``rb201 evaluate``, ``rb201
launch``), one option per field of their request (:mod:`robustbench201.runner.request`), named and defaulted by the
field; this module adds the flag, type and help. Also the way back: a request as a command line
(:func:`request_argv`), and a field's flag (:func:`flag_names`). The reader commands' options (``-d/--dataset``,
``-c/--columns``, ``--source``, ``--format``, ``--out`` of ``query``, ``table``, ``analyze``, ...) live in the
sibling :mod:`.reader_options` (re-exported here), which those commands import without the runner. No torch import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from ..runner.request import RECIPE_FIELDS, EvalRequest
from ..vocab import ADVERSARIAL, EXECUTORS, HOLDOUTS, PRESETS, RECIPE_NAMES
from .reader_options import READER_OPTIONS, reader_options

__all__ = ["OPTIONS", "READER_OPTIONS", "SHOWN", "options", "reader_options", "request_options", "recipe_options",
           "request_from_params", "flag_names", "request_argv"]  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R", bound=EvalRequest)

#: Field -> (flags, click keywords). The field's name is the option's name; its default is the field's.
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "arch_ranges": (("--arch-range",), dict(multiple=True, metavar="START:END",
                    help="Half-open range of NB201 indices, e.g. 0:128 (repeatable, comma-separated allowed).")),
    "archs": (("--arch",), dict(multiple=True, help="NB201 index or string (repeatable; comma-separated ok).")),
    "unique_only": (("--unique-only/--all",), dict(show_default=True,
                    help="Only isomorphism-class representatives (6466 of 15625), or every cell.")),
    "missing_from": (("--missing-from",), dict(type=click.Path(exists=True, file_okay=False), metavar="DATASET",
                     help="Only the cells (of the ranges given, else of the whole space) that the merged DATASET "
                          "lacks for this job's dataset, weights, seed and spec.")),
    "dataset": (("--dataset", "-d"), dict(show_default=True, help="cifar10, cifar100, ImageNet16-120 or mnist5k.")),
    "preset": (("--preset",), dict(type=click.Choice(PRESETS), show_default=True,
               help="Evaluation preset (see docs/EVALUATION.md).")),
    "spec_file": (("--spec",), dict(type=click.Path(exists=True), metavar="FILE|DATASET",
                  help="An EvalSpec JSON file, or a dataset directory whose spec to reuse, instead of a preset.")),
    "spec_hash": (("--spec-hash",), dict(help="With --spec DATASET holding several specs: the one to reuse.")),
    "weights": (("--weights",), dict(metavar="train|nats:PATH|DIR|init",
                help="train: train here (--epochs); nats:PATH: official archive files (--trust-pickle); "
                     "DIR: rb201-trained networks; init: seeded initialization.")),
    "epochs": (("--epochs",), dict(type=click.IntRange(min=1),
               help="Training epochs of the weights [default: the recipe's, 200 for nb201 and the official "
                    "archives (which hold 12 or 200), 50 for wu2024].")),
    "seed": (("--seed",), dict(type=click.IntRange(min=0), show_default=True,
             help="Training / initialization seed of the weights.")),
    "trust_pickle": (("--trust-pickle",), dict(is_flag=True,
                     help="Allow unpickling official weight files (runs code).")),
    "n_test": (("--n-test",), dict(type=click.IntRange(min=1), help="Evaluate on a fixed subset of the test set.")),
    "data_root": (("--data-root",), dict(type=click.Path(file_okay=False), help="Data root ($RB201_DATA by default).")),
    "corruptions": (("--corruptions",), dict(show_default=True, metavar="none|generated|DIR",
                    help="Corrupted test sets: none, our seeded generator, or a CIFAR-C directory.")),
    "channels": (("--channels",), dict(type=click.IntRange(min=1), show_default=True,
                 help="Stem channels C (init/train).")),
    "n_cells": (("--cells",), dict(type=click.IntRange(min=1), show_default=True,
                help="Cells per stage N (init/train).")),
    "train_dir": (("--train-dir",), dict(type=click.Path(file_okay=False),
                  help="Where --weights train keeps trained networks (default OUT/trained).")),
    "splits": (("--splits",), dict(type=click.Choice(["test", "test,valid"]),
               help="Evaluate on the test set only, or also on the validation split the recipe holds out "
                    "[default: the spec's; wu2024: test,valid], e.g. --splits test,valid --holdout seeded.")),
    "n_valid": (("--n-valid",), dict(type=click.IntRange(min=1),
                help="Evaluate on a fixed subset (seed 0) of the validation split, e.g. --n-valid 1000.")),
    "per_sample": (("--per-sample",), dict(is_flag=True,
                   help="Also store each image's predicted class and the probabilities of the predicted and true "
                        "class (float16) per key and epsilon/severity (6 bytes per image each), e.g. "
                        "--preset wu2024 --per-sample.")),
    "out": (("--out",), dict(type=click.Path(file_okay=False), help="Output directory of the shards.")),
    "force_new_spec": (("--force-new-spec",), dict(is_flag=True,
                       help="Allow shards of another spec in the same --out.")),
    "retries": (("--retries",), dict(type=click.IntRange(min=0), show_default=True,
                help="Retries of an architecture after an out-of-memory error.")),
    "threads": (("--threads",), dict(type=click.IntRange(min=1),
                help="Torch threads per worker [default: 1; use more workers for more cores, e.g. "
                     "--devices cpu,cpu].")),
    # the training recipe (also rb201 train's)
    "recipe": (("--recipe",), dict(type=click.Choice(RECIPE_NAMES),
               help="Training recipe [default: nb201]: nb201 (NAS-Bench-201, standard training) or wu2024 "
                    "(NAS-RobBench-201: 50 epochs, OneCycle, PGD-7 adversarial training), e.g. --recipe wu2024.")),
    "adversarial": (("--adversarial",), dict(type=click.Choice(ADVERSARIAL),
                    help="Adversarial training: none, or pgd (L-inf PGD with random start, model in eval mode) "
                         "[default: the recipe's], e.g. --adversarial pgd.")),
    "adv_eps": (("--adv-eps",), dict(type=click.FloatRange(min=0, max=255, min_open=True),
                help="PGD training epsilon in units of 1/255 [default: the recipe's, 8], e.g. --adv-eps 4.")),
    "adv_step": (("--adv-step",), dict(type=click.FloatRange(min=0, min_open=True),
                 help="PGD training step in units of 1/255 [default: the recipe's, 2], e.g. --adv-step 1.")),
    "adv_steps": (("--adv-steps",), dict(type=click.IntRange(min=1),
                  help="PGD training steps [default: the recipe's, 7], e.g. --adv-steps 10.")),
    "holdout": (("--holdout",), dict(type=click.Choice(HOLDOUTS),
                help="Validation split held out of the training set: none, nb201 (CIFAR-10: NB201's "
                     "cifar10-valid split, 25k/25k) or seeded (10% of each class) [default: the recipe's: "
                     "nb201 none, wu2024 seeded], e.g. --holdout nb201.")),
    # rb201 evaluate: the workers here
    "device": (("--device",), dict(show_default=True, help="cpu or cuda:N (one worker).")),
    "devices": (("--devices",), dict(help="One worker per device, e.g. cuda:0,cuda:1 (cpu,cpu for a CPU pool).")),
    "gpus": (("--gpus",), dict(type=click.IntRange(min=1), help="One worker per GPU cuda:0..N-1.")),
    "workers_per_gpu": (("--workers-per-gpu",), dict(type=click.IntRange(min=1), show_default=True,
                        help="Worker processes per device (each its own architecture; cpu too).")),
    "progress": (("--no-progress",), dict(is_flag=True, flag_value=False, help="No progress bar.")),
    # rb201 launch: the job array
    "executor": (("--executor",), dict(type=click.Choice(EXECUTORS), show_default=True,
                 help="slurm: sbatch job array; local: subprocesses here; debug: in this process.")),
    "shards": (("--shards",), dict(type=click.IntRange(min=1), required=True, help="Number of array tasks K.")),
    "partition": (("--partition",), dict(help="Slurm partition (sbatch --partition).")),
    "account": (("--account",), dict(help="Slurm account to charge (sbatch --account).")),
    "qos": (("--qos",), dict(help="Quality of service (sbatch --qos).")),
    "constraint": (("--constraint",), dict(help="Node features, e.g. 'a100|h100' (sbatch --constraint).")),
    "time_limit": (("--time",), dict(show_default=True, metavar="MINUTES|HH:MM:SS|D-HH:MM",
                   help="Time limit per task; a task that reaches it is requeued and resumes.")),
    "gpus_per_task": (("--gpus-per-task",), dict(type=click.IntRange(min=0), show_default=True,
                      help="GPUs per task (one worker each); 0: a CPU task.")),
    "cpus_per_task": (("--cpus-per-task",), dict(type=click.IntRange(min=1), show_default=True,
                      help="CPUs per task; without GPUs the task runs one worker per CPU.")),
    "mem_gb": (("--mem-gb",), dict(type=click.IntRange(min=1), help="Memory per task in GB (sbatch --mem).")),
    "array_parallelism": (("--array-parallelism",), dict(type=click.IntRange(min=1), show_default=True,
                          help="At most N tasks at once (sbatch --array=0-K%N).")),
    "slurm_extra": (("--slurm-extra", "--slurm-additional-parameters"), dict(multiple=True, metavar="KEY=VALUE",
                    help="Any other sbatch option, e.g. mail-type=END, exclude=node7, reservation=nas (repeatable; "
                         "KEY alone for a flag).")),
    "job_name": (("--job-name",), dict(help="Slurm job name [default: rb201-DATASET].")),
    "folder": (("--folder",), dict(type=click.Path(file_okay=False),
               help="Logs and pickled tasks [default: OUT/submitit]; on a cluster it must be on a shared file "
                    "system.")),
    "dry_run": (("--dry-run",), dict(is_flag=True,
                help="Print the job array (tasks, shards, resources, sbatch script); submit nothing.")),
    "wait": (("--wait",), dict(is_flag=True, help="Wait for all tasks and print how each ended.")),
}  # fmt: skip

#: Fields a command line of a request always shows (they say which rows it makes), even at their defaults.
SHOWN = ("dataset", "seed")


def options(*names: str, defaults: Mapping[str, Any] | None = None) -> Callable[[F], F]:
    """Decorate a command with the options of ``names`` (in that order), defaults from ``defaults``."""
    defaults = defaults or {}

    def decorate(fn: F) -> F:
        for name in reversed(names):
            flags, kw = OPTIONS[name]
            kw = dict(kw)
            if name in defaults and not kw.get("required"):
                kw.setdefault("default", defaults[name])
            elif not kw.get("is_flag") and not kw.get("multiple"):
                kw.setdefault("required", True)
            fn = click.option(*flags, name, **kw)(fn)
        return fn

    return decorate


def request_options(cls: type[EvalRequest]) -> Callable[[F], F]:
    """Decorate a command with one option per field of the request class ``cls``, in field order."""
    fields = dataclasses.fields(cls)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    return options(*(f.name for f in fields), defaults=defaults)


#: The options of a training recipe (``rb201 train`` shares them with the request commands).
recipe_options = options("recipe", *RECIPE_FIELDS, defaults=dict.fromkeys(("recipe", *RECIPE_FIELDS)))


def request_from_params(cls: type[R], params: Mapping[str, Any]) -> R:
    """The request of a command's parsed options (each field from the option of its name)."""
    return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})


def _params(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name}


def _flag(p: click.Option) -> str:
    """The flag that names a field: for an on/off option, the one that sets the value away from its default."""
    if p.is_flag and p.secondary_opts and p.default:
        return p.secondary_opts[0]
    return p.opts[0]


def flag_names(command: click.Command) -> dict[str, str]:
    """Field -> its flag in ``command`` (what a :class:`~robustbench201.errors.RequestError` names it)."""
    return {name: _flag(p) for name, p in _params(command).items()}


def request_argv(request: EvalRequest, command: click.Command) -> list[str]:
    """The options of ``command`` that rebuild ``request``: every field that differs from its option's default,
    and the fields in :data:`SHOWN`. Parsing them back gives ``request`` again (:func:`request_from_params`)."""
    params = _params(command)
    argv: list[str] = []
    for f in dataclasses.fields(request):
        value, p = getattr(request, f.name), params[f.name]
        default = () if p.multiple and p.default is None else p.default
        if value == default and f.name not in SHOWN:
            continue
        if p.is_flag:
            # An on/off pair names both values; a lone flag has two values and this one is not the default, so the
            # flag gives it. (Not ``p.flag_value``: click 8.5 leaves it unset for a plain ``is_flag=True``.)
            if p.secondary_opts:
                argv.append(p.opts[0] if value else p.secondary_opts[0])
            else:
                argv.append(p.opts[0])
        elif p.multiple:
            for v in value:
                argv += [p.opts[0], _text(v)]
        elif value is not None:
            argv += [p.opts[0], _text(value)]
    return argv


def _text(value: object) -> str:
    """A value as typed on a command line (a whole float without its ``.0``; others exactly as they read back)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
