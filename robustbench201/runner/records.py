"""An evaluation's records and arrays as schema rows (v2: each says its ``split``) and HDF5 array paths (the storage
side of :class:`robustbench201.evaluation.EvalResult`, which knows nothing about storage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..store.schema import Row, array_path

if TYPE_CHECKING:
    from ..evaluation import EvalResult


def result_rows(
    result: EvalResult, arch_index: int, dataset: str, seed: int, weights: str, code_version: str
) -> list[Row]:
    """Schema rows of ``result`` stamped with its spec hash and each record's split; corruption rows carry the
    corruption source's ``source`` (the generator version for generated sets), every other row ``rb201``."""
    return [
        Row(
            arch_index=arch_index,
            dataset=dataset,
            family=r.family,
            key=r.key,
            measure=r.measure,
            value=float(r.value),
            seed=seed,
            weights=weights,
            norm=r.norm,
            epsilon=r.epsilon,
            severity=r.severity,
            semantics=r.semantics,
            n=r.n,
            source=result.corruption_row_source if r.family == "corruption" else "rb201",
            spec_hash=result.spec.hash,
            code_version=code_version,
            split=r.split,
        )
        for r in result.records
    ]


def result_arrays(result: EvalResult, arch_index: int, dataset: str, seed: int, weights: str) -> dict[str, np.ndarray]:
    """The arrays of ``result`` keyed by :func:`robustbench201.store.schema.array_path`."""
    return {
        array_path(
            dataset, arch_index, k.family, k.key, k.measure, k.epsilon, k.severity, seed, weights, k.semantics, k.split
        ): v
        for k, v in result.arrays.items()
    }
