"""DSRNA against plain DARTS against random cells: the claim of Hosseini et al., measured (``rb201 search dsrna
--compare``).

For each regulariser in ``metrics`` (``none`` is plain DARTS) and each search seed, one search with the shared
settings derives a cell. The cells are then scored:

* ``table`` mode, for a dataset with a results table (CIFAR-10, CIFAR-100, ImageNet16-120): each cell's table values
  (clean, FGSM / PGD at 1/255, mean adversarial accuracy) and percentiles among the isomorphism classes; random cells
  are the exact expectation over a uniform draw of a live cell (plus ``n_random`` drawn cells); the table's optimum
  per column is the ceiling.
* ``trained`` mode, for a dataset without one (MNIST-5k): each distinct cell, ``n_random`` random live cells and a
  reference cell (the CIFAR-10 table's optimum for FGSM at 1/255) are trained with the project's trainer
  (:func:`robustbench201.train.train_model`, NB201 protocol, ``train_epochs``) for each of ``train_seeds`` (single
  trainings of one cell vary a lot) and attacked with FGSM and PGD at ``score_eps`` (1/255 units; each epsilon
  attacked on its own) on ``n_test`` test images.

Every search and every trained score is written under ``out`` as it finishes (``searches/<metric>-seed<s>/``,
``cells/<index>-seed<s>.json``), so an interrupted comparison resumes where it stopped. ``workers`` runs the jobs
in that many processes (one torch thread each). Aggregation and rendering: :mod:`.comparison_report`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import write_text_atomic
from ...data.base import ImageSet
from ...data.info import canonical_dataset, dataset_info
from ...errors import Rb201Error
from ...space import NUM_ARCHS, Arch
from .comparison_report import build_report, render
from .config import METRIC_TERMS, CompareConfig, DSRNAConfig
from .table_prior import load_prior

log = logging.getLogger(__name__)

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
COMPARE_PNG = "compare.png"
SCORE_FORMAT = "rb201-dsrna-cell-score"


def random_cells(n: int, seed: int) -> list[int]:
    """``n`` distinct live (not dead) cells drawn uniformly with ``numpy.random.default_rng(seed)``."""
    live = np.array([i for i in range(NUM_ARCHS) if not Arch.from_index(i).is_dead])
    return [int(i) for i in np.random.default_rng(seed).choice(live, size=n, replace=False)]


# ---- jobs (top-level functions: they also run in worker processes) ------------------------------------------------
def search_job(cfg: DSRNAConfig, out: str, data: ImageSet | None, data_root: str | None, device: str) -> dict:
    """One search into ``out`` (resumed from its checkpoint, or read back when finished with the same settings);
    returns its result JSON."""
    from .bilevel import search
    from .result import RESULT

    path = Path(out) / RESULT
    if path.is_file():
        saved = json.loads(path.read_text())
        config = DSRNAConfig.from_json(saved.get("config", {}))
        if config.identity() == cfg.identity() and config.epochs == cfg.epochs:
            return saved
    search(cfg, out, resume=True, data=data, data_root=data_root, threads=1, device=device)
    return json.loads(path.read_text())


def score_spec(cfg: CompareConfig):  # type: ignore[no-untyped-def]
    """The attacks of trained scoring: FGSM and PGD (``pgd_steps``) at ``score_eps``, each epsilon on its own."""
    from ...spec import EvalSpec, attack

    eps = cfg.score_eps
    return EvalSpec(
        name="dsrna-compare",
        attacks=(attack("fgsm", eps), attack("pgd", eps, steps=cfg.pgd_steps)),
        semantics="per-epsilon",
        batch_size=500,
    )


def train_score_job(
    arch_index: int, seed: int, cfg: CompareConfig, out: str, data_root: str | None, device: str
) -> dict[str, Any]:
    """Train one cell with one seed and attack it; cached in ``out`` (a file per cell and seed)."""
    import torch

    from ...data.readers import load_dataset
    from ...evaluation import evaluate
    from ...store.schema import format_eps
    from ...train import train_model

    path = Path(out) / f"{arch_index:05d}-seed{seed}.json"
    settings = _score_settings(cfg)
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("format") == SCORE_FORMAT and saved.get("settings") == settings:
            return saved
    ds = cfg.search.dataset
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train = load_dataset(ds, data_root, "train", n=cfg.n_score_train, seed=0)
        test = load_dataset(ds, data_root, "test", n=min(cfg.n_test, dataset_info(ds).n_test), seed=0)
        t0 = time.perf_counter()
        res = train_model(arch_index, train, cfg.train_epochs, seed, device, cfg.search.channels, cfg.search.n_cells)
        t1 = time.perf_counter()
        ev = evaluate(res.model, test, score_spec(cfg), device=device)
    finally:
        torch.set_num_threads(before)
    values = {"clean": ev.value("clean")}
    for key in ("fgsm", "pgd"):
        for e in cfg.score_eps:
            values[f"{key}@{format_eps(e)}"] = ev.value(key, epsilon=float(e), semantics="per-epsilon")
    values["mean_adv"] = float(np.mean([v for k, v in values.items() if k != "clean"]))
    record = {
        "format": SCORE_FORMAT,
        "settings": settings,
        "arch": Arch.from_index(arch_index).string,
        "index": arch_index,
        "seed": seed,
        "values": values,
        "train_seconds": t1 - t0,
        "eval_seconds": time.perf_counter() - t1,
    }
    write_text_atomic(path, json.dumps(record, indent=1))
    return record


def _score_settings(cfg: CompareConfig) -> dict[str, Any]:
    return {
        "dataset": cfg.search.dataset,
        "channels": cfg.search.channels,
        "n_cells": cfg.search.n_cells,
        "train_epochs": cfg.train_epochs,
        "n_score_train": cfg.n_score_train,
        "n_test": cfg.n_test,
        "score_eps": list(cfg.score_eps),
        "pgd_steps": cfg.pgd_steps,
    }


# ---- orchestration ------------------------------------------------------------------------------------------------
def _run_jobs(
    jobs: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    workers: int,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run ``(fn, args)`` jobs in order (``workers == 1``) or in a pool of spawned processes; results in job order."""
    results: list[Any] = [None] * len(jobs)
    if workers == 1 or len(jobs) <= 1:
        for i, (fn, args) in enumerate(jobs):
            results[i] = fn(*args)
            if on_done is not None:
                on_done(i, results[i])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): i for i, (fn, args) in enumerate(jobs)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if on_done is not None:
                on_done(i, results[i])
    return results


def compare(
    cfg: CompareConfig,
    out: str | Path,
    *,
    data: ImageSet | None = None,
    data_root: str | Path | None = None,
    table_source: object | None = None,
    workers: int = 1,
    device: str = "cpu",
    plot: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison into ``out`` and return its report (see :func:`.comparison_report.build_report` for
    its fields), written to ``out/compare.json`` with its tables in ``out/compare.md`` and (``plot``) the figure
    in ``out/compare.png``. ``data`` overrides the search images (every run uses them); ``on_progress(line)``
    hears about every finished job."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise Rb201Error(f"workers must be an integer >= 1, got {workers!r}")
    if data is not None and canonical_dataset(data.name) != cfg.search.dataset:
        raise Rb201Error(f"data holds {data.name} images but the search is on {cfg.search.dataset}")
    s = cfg.search
    if any("table" in METRIC_TERMS[m] for m in cfg.metrics) and s.surrogate_dataset is not None:
        load_prior(s.surrogate_dataset, s.surrogate_column, s.surrogate_source, s.surrogate_chance)  # fail early
    out = Path(out)
    root = None if data_root is None else str(data_root)
    t0 = time.perf_counter()
    runs = [(m, s) for m in cfg.metrics for s in cfg.seeds]
    jobs = [
        (search_job, (cfg.run_config(m, s), str(out / "searches" / f"{m}-seed{s}"), data, root, device))
        for m, s in runs
    ]

    results = _run_jobs(jobs, workers, _search_progress(runs, on_progress))
    searches = [{"metric": m, "seed": s, "result": r} for (m, s), r in zip(runs, results, strict=True)]
    random = random_cells(cfg.n_random, cfg.random_seed)
    scores: list[dict[str, Any]] = []
    reference: int | None = None
    if cfg.mode == "trained":
        from .summary import TRANSFER_DATASET, TableScorer

        if cfg.reference:
            reference = TableScorer(TRANSFER_DATASET, table_source).optimum("fgsm@1")[0]
        cells = list(dict.fromkeys([Arch.parse(s["result"]["arch"]).index for s in searches] + random))
        if reference is not None and reference not in cells:
            cells.append(reference)
        jobs = [
            (train_score_job, (c, seed, cfg, str(out / "cells"), root, device))
            for c in cells
            for seed in cfg.train_seeds
        ]
        scores = _run_jobs(jobs, workers, _score_progress(on_progress))
    report = build_report(cfg, searches, random, scores, reference, table_source)
    report["seconds"] = time.perf_counter() - t0
    write_text_atomic(out / COMPARE_JSON, json.dumps(report, indent=1))
    write_text_atomic(out / COMPARE_MD, render(report, "markdown") + "\n")
    if plot:
        report["plot"] = str(_figure(report, out / COMPARE_PNG, table_source))
    return report


def _figure(report: dict[str, Any], path: Path, table_source: object | None) -> Path:
    from .. import plots

    background = None
    if report["mode"] == "table":
        from .summary import TableScorer

        scorer = TableScorer(report["config"]["search"]["dataset"], table_source)
        background = (scorer.column("clean"), scorer.column("fgsm@1"))
    return plots.dsrna_compare(report, path, background=background)


def _search_progress(runs: list[tuple[str, int]], on_progress: Callable[[str], None] | None) -> Callable[..., None]:
    def hook(i: int, res: dict[str, Any]) -> None:
        if on_progress is not None:
            m, s = runs[i]
            on_progress(f"search {m} seed {s}: {res['arch']} (#{res['index']}), {res['total_seconds']:.0f} s")

    return hook


def _score_progress(on_progress: Callable[[str], None] | None) -> Callable[..., None]:
    def hook(i: int, res: dict[str, Any]) -> None:
        if on_progress is not None:
            v = res["values"]
            robust = "  ".join(f"{k} {x:.3f}" for k, x in v.items() if k != "clean")
            on_progress(f"cell #{res['index']} seed {res['seed']}: clean {v['clean']:.3f}  {robust}")

    return hook
