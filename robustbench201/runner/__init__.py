"""Batch builder: shards of architectures evaluated with resume, a local device pool, and Slurm via submitit.

Heavy dependencies (torch, pyarrow, h5py, submitit) are imported by the functions that need them.
"""

from __future__ import annotations

from .job import JobReport, run_job
from .plan import parse_arch_list, parse_arch_range, parse_arch_ranges, select_archs, split_range
from .worker import ArchMessage, ArchOutput, EvaluatorFactory, Status

__all__ = [
    "ArchMessage",
    "ArchOutput",
    "Status",
    "EvaluatorFactory",
    "JobReport",
    "parse_arch_list",
    "parse_arch_range",
    "parse_arch_ranges",
    "run_job",
    "select_archs",
    "split_range",
]
