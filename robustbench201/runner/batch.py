"""Carry out a request (:mod:`.request`): ``rb201 evaluate`` plans its shards and evaluates them here, ``rb201
launch`` plans its array tasks and submits them (or describes them, for a dry run). Both report as they go, with
:class:`Note` lines and per-shard reports the command line prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError
from ..space import NUM_ARCHS
from .job import JobReport, run_job
from .plan import PlannedShard, parse_arch_list, parse_arch_ranges, plan_evaluate, plan_launch
from .request import EvalRequest, EvaluateRequest, LaunchRequest
from .worker import EvaluatorFactory

__all__ = ["Note", "EmptyShard", "DryRun", "job_factory", "evaluate_request", "launch_request",
           "request_devices", "task_resources", "cells_present"]  # fmt: skip

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Note:
    """A line for the user; ``warning`` lines go to the error stream."""

    text: str
    warning: bool = False


@dataclass(frozen=True)
class EmptyShard:
    """A planned shard with nothing to evaluate."""

    shard: PlannedShard


@dataclass(frozen=True)
class DryRun:
    """What a launch would submit (:func:`robustbench201.runner.slurm.dry_run`'s lines)."""

    lines: list[str]


def job_factory(request: EvalRequest) -> EvaluatorFactory:
    """The evaluator factory of a request (:meth:`.providers.EvalJob.from_request`), its test data loaded once so
    missing files fail before any work starts."""
    from .providers import EvalJob

    job = EvalJob.from_request(request)
    job.check()
    return job


def evaluate_request(request: EvaluateRequest) -> Iterator[Note | EmptyShard | JobReport]:
    """Everything ``rb201 evaluate`` does: plan one shard per range and one for the listed cells (or, with
    ``missing_from``, one of the cells that dataset lacks), then evaluate each shard under ``request.out`` with a
    worker per device, yielding notes and each shard's report as it finishes."""
    ranges = parse_arch_ranges(request.arch_ranges)
    listed = parse_arch_list(request.archs)
    if not ranges and not listed and not request.missing_from:
        raise RequestError("give {arch_ranges} START:END and/or {archs} INDEX (or {missing_from} DATASET)")
    devices = request_devices(request)
    factory = job_factory(request)
    present, notes = cells_present(request, factory)
    yield from notes
    shards, plan_notes = plan_evaluate(ranges, listed, request.unique_only, present)
    yield from (Note(n) for n in plan_notes)
    for shard in shards:
        if not shard.archs:
            yield EmptyShard(shard)
            continue
        yield run_job(
            list(shard.archs), request.out, factory, bounds=shard.bounds, devices=devices, retries=request.retries,
            force_new_spec=request.force_new_spec, progress=request.progress, threads=request.threads,
            allow_overlap=bool(request.missing_from),
        )  # fmt: skip


def launch_request(request: LaunchRequest) -> Iterator[Note | DryRun | Any]:
    """Everything ``rb201 launch`` does: split the range (or, with ``missing_from``, the cells of the range that
    dataset lacks) into ``request.shards`` array tasks and submit them through submitit, yielding notes and then the
    :class:`robustbench201.runner.slurm.Launch` (a :class:`DryRun` for ``dry_run``; nothing when no cell is left)."""
    from . import slurm

    ranges = parse_arch_ranges(request.arch_ranges)
    if len(ranges) > 1 or (not ranges and not request.missing_from):
        raise RequestError("launch needs exactly one {arch_ranges} START:END (optional with {missing_from})")
    resources = task_resources(request)
    factory = job_factory(request)
    present, notes = cells_present(request, factory)
    yield from notes
    parts = plan_launch(ranges[0] if ranges else (0, NUM_ARCHS), request.shards, request.unique_only, present)
    if not parts:
        yield Note("nothing to do: no cell is missing")
        return
    folder = request.folder or f"{request.out.rstrip('/')}/submitit"
    if request.dry_run:
        yield DryRun(slurm.dry_run(parts, request.out, factory, resources, folder, request.executor))
        return
    yield slurm.launch_shards(
        parts, request.out, factory, executor=request.executor, resources=resources, folder=folder,
        retries=request.retries, force_new_spec=request.force_new_spec, threads=request.threads,
        allow_overlap=bool(request.missing_from), request=request.to_dict(),
    )  # fmt: skip


def request_devices(request: EvaluateRequest) -> list[str]:
    """The worker devices: ``devices`` (comma-separated) | ``gpus`` N (cuda:0..N-1) | ``device``, each
    ``workers_per_gpu`` times; CUDA devices are checked against this machine's."""
    if request.devices:
        out = [d.strip() for d in request.devices.split(",") if d.strip()]
    elif request.gpus:
        out = [f"cuda:{i}" for i in range(request.gpus)]
    else:
        out = [request.device]
    bad = [d for d in out if not _DEVICE_RE.match(d)]
    if bad or not out:
        raise RequestError(f"{{devices}}: device(s) {bad or out} not understood; allowed: cpu, cuda, cuda:N")
    if any(d.startswith("cuda") for d in out):
        import torch

        n = torch.cuda.device_count()
        for d in out:
            if d.startswith("cuda") and (n == 0 or int(d.partition(":")[2] or 0) >= n):
                raise RequestError(f"{{devices}}: {d} requested but this machine has {n} CUDA device(s)")
    if request.workers_per_gpu > 1:
        from .pool import expand_devices

        out = expand_devices(out, request.workers_per_gpu)
    return out


def task_resources(request: LaunchRequest) -> Any:
    """What each array task of a launch asks the scheduler for (:class:`.resources.TaskResources`)."""
    from .resources import TaskResources, parse_extra, parse_time_limit

    return TaskResources(
        job_name=request.job_name or f"rb201-{request.dataset}", partition=request.partition,
        account=request.account, qos=request.qos, constraint=request.constraint,
        time_min=parse_time_limit(request.time_limit), gpus_per_task=request.gpus_per_task,
        cpus_per_task=request.cpus_per_task, mem_gb=request.mem_gb, array_parallelism=request.array_parallelism,
        extra=parse_extra(request.slurm_extra),
    )  # fmt: skip


def cells_present(request: EvalRequest, factory: EvaluatorFactory) -> tuple[set[int] | None, list[Note]]:
    """With ``missing_from``: the cells that dataset already holds for this job, plus those finished in shards
    under ``out`` since (None without it), and notes saying so."""
    if not request.missing_from:
        return None, []
    from ..store.validate import archs_present
    from .shard import finished_in_out

    ident = factory.identity()
    present = archs_present(
        request.missing_from, dataset=ident["dataset"], weights=ident["weights"], seed=ident["seed"],
        spec_hash=ident["spec_hash"],
    )  # fmt: skip
    notes = []
    if not present:
        notes.append(
            Note(
                f"note: {request.missing_from} holds no rows of this job ({ident['dataset']}, weights "
                f"{ident['weights']}, seed {ident['seed']}, spec {ident['spec_hash']}); every cell counts as missing",
                warning=True,
            )
        )
    since = finished_in_out(request.out, ident["spec_hash"], ident) - present
    if since:
        notes.append(Note(f"{len(since)} cells are finished in shards under {request.out} but not merged yet: skipped "
                          "(run rb201 merge again to include them)"))  # fmt: skip
    return present | since, notes
