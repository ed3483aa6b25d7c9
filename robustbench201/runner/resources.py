"""What one array task asks the scheduler for, and how that becomes sbatch options (through submitit).

No submission and no file I/O: :mod:`.slurm` submits. :func:`sbatch_script` (what a dry run prints) renders the
script with submitit's own writer, a private function of submitit 1.5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError

# sbatch options that have their own field in a launch request (or that submitit sets itself): not allowed as extras
_OWNED = {
    "partition": "{partition}",
    "account": "{account}",
    "qos": "{qos}",
    "time": "{time_limit}",
    "constraint": "{constraint}",
    "cpus-per-task": "{cpus_per_task}",
    "gpus-per-node": "{gpus_per_task}",
    "gpus-per-task": "{gpus_per_task}",
    "gpus": "{gpus_per_task}",
    "mem": "{mem_gb}",
    "job-name": "{job_name}",
    "array": "{shards} / {array_parallelism}",
    "output": "{folder}",
    "error": "{folder}",
    "nodes": "(one node per task)",
    "ntasks-per-node": "(one task per array index)",
    "signal": "(submitit uses it to requeue a task before its time limit)",
    "open-mode": "(submitit appends to the logs of a requeued task)",
}
_KEY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


class ResourceError(RequestError):
    """A bad time limit, sbatch extra or resource request."""


@dataclass(frozen=True)
class TaskResources:
    """Resources of every array task. ``time_min``: the time limit in minutes (a task that reaches it is requeued by
    submitit and resumes from its finished architectures); ``gpus_per_task`` 0: a CPU task running one worker per
    CPU; ``array_parallelism``: at most this many tasks run at once (sbatch ``--array=0-K%N``); ``extra``:
    further sbatch options as (key, value) pairs, value ``""`` for a flag."""

    job_name: str = "rb201"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_min: int = 24 * 60
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: int | None = None
    array_parallelism: int = 64
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("time_min", "cpus_per_task", "array_parallelism"):
            _positive(name, getattr(self, name))
        if isinstance(self.gpus_per_task, bool) or not isinstance(self.gpus_per_task, int) or self.gpus_per_task < 0:
            raise ResourceError(f"gpus_per_task {self.gpus_per_task!r} not allowed; allowed: an integer >= 0")
        if self.mem_gb is not None:
            _positive("mem_gb", self.mem_gb)
        if not self.job_name or any(c.isspace() for c in self.job_name):
            raise ResourceError(f"job name {self.job_name!r} not allowed; allowed: a non-empty name without spaces")
        for key, _ in self.extra:
            check_extra_key(key)

    def describe(self) -> str:
        """One line: ``partition gpu, time 12:00:00, 1 GPU, 8 CPUs, memory 32 GB, ...``."""
        parts = [f"{k} {v}" for k, v in (("partition", self.partition), ("account", self.account),
                                         ("qos", self.qos), ("constraint", self.constraint)) if v]  # fmt: skip
        parts.append(f"time {format_time_limit(self.time_min)}")
        parts.append(f"{self.gpus_per_task} GPU{'s' if self.gpus_per_task != 1 else ''}" if self.gpus_per_task
                     else "no GPU")  # fmt: skip
        parts.append(f"{self.cpus_per_task} CPU{'s' if self.cpus_per_task != 1 else ''}")
        parts.append(f"memory {self.mem_gb} GB" if self.mem_gb else "memory: the partition's default")
        parts += [f"--{k}={v}" if v != "" else f"--{k}" for k, v in self.extra]
        return ", ".join(parts)


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ResourceError(f"{name} {value!r} not allowed; allowed: an integer >= 1")


def check_extra_key(key: str) -> str:
    """An sbatch long option name (``mail-type``, ``exclude``, ``reservation``...) that has no rb201 option."""
    if not _KEY_RE.match(key):
        raise ResourceError(
            f"sbatch option {key!r} is not a long option name; allowed: lower-case words joined by '-' "
            "(e.g. mail-type, reservation, exclude), without the leading '--'"
        )
    if key in _OWNED:
        raise ResourceError(f"sbatch option {key!r} has its own rb201 launch option: use {_OWNED[key]}")
    return key


def parse_extra(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``["mail-type=END", "exclude=node[1-3]", "requeue"]`` -> (key, value) pairs (a bare key is a flag)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).strip().partition("=")
        key = check_extra_key(key.strip().removeprefix("--"))
        if sep and not value:
            raise ResourceError(f"sbatch option {item!r} has an empty value; write KEY=VALUE, or KEY alone for a flag")
        out[key] = value
    return tuple(sorted(out.items()))


def parse_time_limit(text: str | int) -> int:
    """A time limit in minutes from ``MINUTES`` or Slurm's formats ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS`` (seconds round up to a whole minute)."""
    t = str(text).strip()
    m = _TIME_RE.match(t)
    if not m:
        raise ResourceError(
            f"time limit {text!r} not understood; allowed: minutes (720), HH:MM:SS (12:00:00), D-HH (1-12), "
            "D-HH:MM or D-HH:MM:SS"
        )
    days, a, b, c = m.groups()
    nums = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        h, mi, s = (nums + [0, 0])[:3]
        seconds = ((int(days) * 24 + h) * 60 + mi) * 60 + s
    elif len(nums) == 1:
        seconds = nums[0] * 60
    elif len(nums) == 2:  # MM:SS
        seconds = nums[0] * 60 + nums[1]
    else:
        seconds = (nums[0] * 60 + nums[1]) * 60 + nums[2]
    minutes = -(-seconds // 60)
    if minutes < 1:
        raise ResourceError(f"time limit {text!r} is zero; allowed: at least one minute")
    return minutes


def format_time_limit(minutes: int) -> str:
    """``90 -> "01:30:00"``, ``2880 -> "2-00:00:00"`` (Slurm's notation)."""
    d, rest = divmod(int(minutes), 24 * 60)
    h, m = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:00" if d else f"{h:02d}:{m:02d}:00"


def slurm_parameters(res: TaskResources) -> dict[str, Any]:
    """The parameters of submitit's ``SlurmExecutor.update_parameters`` for ``res`` (one node, one task)."""
    params: dict[str, Any] = {
        "job_name": res.job_name,
        "time": res.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": res.cpus_per_task,
        "array_parallelism": res.array_parallelism,
    }
    if res.gpus_per_task:  # omitted for CPU tasks: --gpus-per-node=0 is refused by clusters without GPUs
        params["gpus_per_node"] = res.gpus_per_task
    if res.mem_gb is not None:
        params["mem"] = f"{res.mem_gb}GB"
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(res, key):
            params[key] = getattr(res, key)
    if res.extra:
        params["additional_parameters"] = {k.replace("-", "_"): (True if v == "" else v) for k, v in res.extra}
    return params


def local_parameters(res: TaskResources) -> dict[str, Any]:
    """submitit's generic parameters for its local / debug executors (no scheduler: only what they understand)."""
    return {
        "timeout_min": res.time_min,
        "name": res.job_name,
        "gpus_per_node": res.gpus_per_task,
        "tasks_per_node": 1,
        "cpus_per_task": res.cpus_per_task,
    }


def sbatch_script(res: TaskResources, n_tasks: int, folder: str) -> str:
    """The sbatch script submitit writes for ``n_tasks`` tasks with logs under ``folder`` (its own writer, a private
    function of submitit 1.5, so ``--dry-run`` shows exactly what would be submitted)."""
    import shlex
    import sys

    from submitit.slurm import slurm as submitit_slurm

    command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(folder + '/%j')}"
    # one task is submitted as a plain job, several as an array (submitit's SlurmExecutor does the same)
    map_count = n_tasks if n_tasks > 1 else None
    writer = getattr(submitit_slurm, "_make_sbatch_string", None)
    if writer is None:
        raise _writer_changed("submitit.slurm.slurm._make_sbatch_string is gone")
    try:
        return str(writer(command=command, folder=f"{folder}/%j", map_count=map_count, **slurm_parameters(res)))
    except TypeError as exc:  # a submitit release whose private writer takes other arguments
        raise _writer_changed(str(exc)) from exc


def _writer_changed(why: str) -> RequestError:
    import submitit

    return RequestError(
        f"{{dry_run}} cannot render the sbatch script with submitit {submitit.__version__} ({why}); it uses "
        "submitit 1.5's script writer: install submitit 1.5.x or submit without {dry_run}"
    )
