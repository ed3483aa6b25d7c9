"""Every kind of dataset the project builds, small and in the real on-disk format, for the reader tests.

- ``smoke``: what ``rb201 demo`` writes (the ``smoke`` preset on MNIST-5k): 4 cells, the cumulative worst case only
  (FGSM, PGD, APGD-CE, Square at eps 1 and 8), clean accuracy and calibration error (ECE), two corruptions at
  severities 1 and 5, Jacobian and Hessian, IBP at eps 1 with certified accuracy 0 and margin lower bounds near -1e8
  (as the demo's small networks give);
- ``jung2023``: a build with the published protocol: per-epsilon values and the cumulative worst case of the same
  attacks (they differ), clean, corruptions at severities 1..5, for 40 representatives (more than the analyses'
  minimum), among them cells with two 3x3 convolutions and no 1x1 (the equal-parameter study) and a dead cell;
- ``imported``: ``rb201 import-jung`` of the published files of 200 representatives (``tests/fixtures``);
- ``embedded``: the table shipped in the package (``None`` as a source).

Values are built so the facts the tests check hold by construction (cumulative <= per-epsilon <= clean, values
differ between cells so rankings are defined)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustbench201.space import Arch, unique_indices
from robustbench201.store.dataset import write_dataset_dir
from robustbench201.store.schema import Row, rows_to_table

#: The demo's four cells (robustbench201.demo.DEMO_ARCHS).
SMOKE_CELLS = (1462, 655, 13714, 0)
ATTACKS = ("fgsm", "pgd", "aa_apgd-ce", "aa_square")


def _jung_cells(n: int = 40) -> list[int]:
    """``n`` representatives: every 100th, plus two with two 3x3 and no 1x1 convs, plus a dead one."""
    reps = list(unique_indices())
    picked = reps[:: len(reps) // (n - 3)][: n - 3]
    two = [i for i in reps if Arch.from_index(i).count("nor_conv_3x3") == 2 and not Arch.from_index(i).count(
        "nor_conv_1x1") and not Arch.from_index(i).is_dead]  # fmt: skip
    dead = next(i for i in reps if Arch.from_index(i).is_dead)
    return sorted({*picked, *two[:2], dead})


def _rows(cells: list[int], dataset: str, semantics: tuple[str, ...], severities: tuple[int, ...]) -> list[Row]:
    out = []
    rng = np.random.default_rng(0)
    for k, a in enumerate(cells):
        base = {"arch_index": a, "dataset": dataset, "seed": 777, "weights": "train-3ep", "spec_hash": "abc"}
        dead = Arch.from_index(a).is_dead
        clean = 0.1 if dead else 0.6 + 0.35 * rng.random()
        out.append(Row(family="clean", key="clean", measure="accuracy", value=round(clean, 3), n=200, **base))
        ece = round(0.02 + 0.2 * rng.random(), 4)  # every evaluation stores the calibration error of clean data
        out.append(Row(family="clean", key="clean", measure="ece", value=ece, n=200, **base))
        for j, atk in enumerate(ATTACKS):
            for eps in (1.0, 8.0):
                per = clean * (0.9 - 0.05 * j - 0.04 * eps) * (0.8 + 0.2 * rng.random())
                vals = {"per-epsilon": per, "cumulative": per * 0.95}
                for sem in semantics:
                    out.append(Row(family="adversarial", key=atk, measure="accuracy", value=round(vals[sem], 4), n=200,
                                   norm="Linf", epsilon=eps, semantics=sem, **base))  # fmt: skip
        for corr in ("fog", "gaussian_noise"):
            for sev in severities:
                v = clean * (1 - 0.1 * sev) * (0.7 + 0.3 * rng.random())
                out.append(Row(family="corruption", key=corr, measure="accuracy", value=round(v, 4), n=200,
                               severity=sev, **base))  # fmt: skip
        for sur in ("jacobian", "hessian"):
            v = 0.0 if dead else 1.0 + 5.0 * rng.random() + k / 100
            out.append(Row(family="surrogate", key=sur, measure="value", value=v, n=32, **base))
        out.append(Row(family="certified", key="ibp", measure="accuracy", value=0.0, n=32, norm="Linf", epsilon=1.0,
                       **base))  # fmt: skip
        out.append(Row(family="certified", key="ibp", measure="margin_lb", value=-1.0e8 * (1 + rng.random()), n=32,
                       norm="Linf", epsilon=1.0, **base))  # fmt: skip
    return out


def write_smoke(out: Path) -> Path:
    """A dataset laid out like the one ``rb201 demo`` builds (cumulative only, 4 cells, MNIST-5k)."""
    rows = _rows(list(SMOKE_CELLS), "mnist5k", ("cumulative",), (1, 5))
    write_dataset_dir(out, {"run": rows_to_table(rows)}, name="rb201-demo", created="2024-01-01T00:00:00Z")
    return out


def write_jung2023(out: Path) -> Path:
    """A dataset of the ``jung2023`` preset: per-epsilon and cumulative values (they differ), 40 classes, CIFAR-10."""
    rows = _rows(_jung_cells(), "cifar10", ("per-epsilon", "cumulative"), (1, 2, 3, 4, 5))
    write_dataset_dir(out, {"run": rows_to_table(rows)}, name="jung2023-build", created="2024-01-01T00:00:00Z")
    return out


def write_imported(out: Path) -> Path:
    """``rb201 import-jung`` of the published files of the fixture's representatives."""
    from published import JUNG_SAMPLE

    from robustbench201.store.jung import import_jung

    import_jung(JUNG_SAMPLE, out)
    return out
