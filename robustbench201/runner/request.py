"""What ``rb201 evaluate`` and ``rb201 launch`` ask the runner for: one frozen, typed request each, the only thing
the command line hands over (:mod:`.batch` carries it out).

The fields are the commands' options: the command line derives each option's name and default from a field here
(``robustbench201/cli/options.py`` adds flags, types and help), builds the request from what it parsed, and turns a
request back into a command line. The runner never names a flag: an error about a field raises
:class:`robustbench201.errors.RequestError` naming it as ``{field}``, and the command line shows its flag.
Values are as typed on a command line (strings, numbers; ``None``: the recipe's, spec's or job's own value);
epsilons are in units of 1/255. No torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from ..errors import RequestError

__all__ = ["RECIPE_FIELDS", "EvalRequest", "EvaluateRequest", "LaunchRequest"]

R = TypeVar("R", bound="EvalRequest")
#: The fields of the training recipe's hyper-parameters (``TrainRecipe.of`` keywords; ``recipe`` names it).
RECIPE_FIELDS: tuple[str, ...] = ("adversarial", "adv_eps", "adv_step", "adv_steps", "holdout")


@dataclass(frozen=True, kw_only=True)
class EvalRequest:
    """An evaluation job and its shards, as ``rb201 evaluate`` and ``rb201 launch`` share them (keywords only; the
    field order is the order of a command line)."""

    # which cells
    missing_from: str | None = None  # a merged dataset: only the cells it lacks for this job
    arch_ranges: tuple[str, ...] = ()  # half-open START:END ranges of NB201 indices (comma-separated allowed)
    unique_only: bool = True  # only isomorphism-class representatives
    # the evaluation spec
    spec_file: str | None = None  # an EvalSpec JSON file, or a dataset directory whose spec to reuse
    spec_hash: str | None = None  # with a dataset directory holding several specs: the one to reuse
    preset: str = "jung2023"
    splits: str | None = None  # "test" | "test,valid"; None: the spec's
    per_sample: bool = False
    dataset: str = "cifar10"
    # the weights, and the training recipe of train / DIR weights (None: the recipe's own value)
    weights: str  # init | train | nats:PATH | DIR of rb201-trained networks
    trust_pickle: bool = False
    recipe: str | None = None
    epochs: int | None = None  # None: the recipe's (nb201 200, wu2024 50; official archives 200)
    adversarial: str | None = None
    adv_eps: float | None = None
    adv_step: float | None = None
    adv_steps: int | None = None
    holdout: str | None = None
    seed: int = 777
    # data and size
    n_test: int | None = None
    n_valid: int | None = None
    data_root: str | None = None
    corruptions: str = "none"  # none | generated | a CIFAR-C directory
    channels: int = 16
    n_cells: int = 5
    train_dir: str | None = None  # None: OUT/trained
    # where and how each shard runs
    out: str  # output directory of the shards
    force_new_spec: bool = False
    retries: int = 2
    threads: int | None = None

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples as lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The request of :meth:`to_dict`'s output; :class:`RequestError` for a key that is not a field."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RequestError(f"{cls.__name__} has no field(s) {unknown}; it has {', '.join(sorted(names))}")
        hints = get_type_hints(cls)
        return cls(**{k: tuple(v) if _is_tuple(hints[k]) else v for k, v in data.items()})


@dataclass(frozen=True, kw_only=True)
class EvaluateRequest(EvalRequest):
    """``rb201 evaluate``: the shards are evaluated here, by a worker per device."""

    archs: tuple[str, ...] = ()  # NB201 indices or strings (comma-separated indices allowed): one list shard
    device: str = "cpu"
    devices: str | None = None  # one worker per device, comma-separated (cpu,cpu for a CPU pool)
    gpus: int | None = None  # one worker per GPU cuda:0..N-1
    workers_per_gpu: int = 1
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class LaunchRequest(EvalRequest):
    """``rb201 launch``: one range split into ``shards`` array tasks, submitted through submitit."""

    shards: int = 1
    executor: str = "slurm"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_limit: str = "1440"  # MINUTES | HH:MM:SS | D-HH[:MM[:SS]]
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: int | None = None
    array_parallelism: int = 64
    slurm_extra: tuple[str, ...] = ()  # further sbatch options, KEY=VALUE or KEY
    job_name: str | None = None  # None: rb201-DATASET
    folder: str | None = None  # logs and pickled tasks; None: OUT/submitit
    dry_run: bool = False
    wait: bool = False


def _is_tuple(hint: Any) -> bool:
    return getattr(hint, "__origin__", None) is tuple


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
