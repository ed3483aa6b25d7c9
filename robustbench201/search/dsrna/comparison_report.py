"""The report of a DSRNA comparison (:mod:`.comparison`): per-run scores, one row per method, text and markdown
tables. Pure functions of the searches' results and the trained scores (the table is read for table scoring).

Groups: ``DARTS`` (metric ``none``), ``DSRNA (R_Jac)``, ``DSRNA (R_CB)``, ``DSRNA (R_Jac + R_CB)``, random live
cells, and the ceiling: the table's optimum per column (table mode) or the CIFAR-10 table's fgsm@1 optimum cell
trained like the others (trained mode). A group's value is the mean over its runs (one run = one search seed, or one
random cell) of the run's value (the table value, or the mean over the training seeds), with the range over runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...data.info import dataset_info
from ...space import Arch
from ...store.schema import format_eps
from .config import METHOD_LABELS, METRIC_TERMS, CompareConfig
from .diagnostics import cell_findings, edge_decisions, movement
from .table_prior import at_chance, column_kendall, guided_columns, load_prior

#: Columns of table scoring (accuracies; ``mean_adv``: flat mean over the four attacks, eps 255 excluded).
TABLE_COLUMNS: tuple[str, ...] = ("clean", "fgsm@1", "pgd@1", "mean_adv")
#: Columns whose percentile table scoring reports.
TABLE_PERCENTILES: tuple[str, ...] = ("fgsm@1", "mean_adv")


def score_columns(cfg: CompareConfig) -> list[str]:
    """Wide names of trained scoring: ``clean``, ``fgsm@e``, ``pgd@e`` (per epsilon, 1/255 units), ``mean_adv`` (their
    mean over the attacks and epsilons)."""
    eps = [format_eps(e) for e in cfg.score_eps]
    return ["clean", *(f"fgsm@{e}" for e in eps), *(f"pgd@{e}" for e in eps), "mean_adv"]


def _run_record(search: dict[str, Any]) -> dict[str, Any]:
    res = search["result"]
    arch = Arch.parse(res["arch"])
    exclude_none = bool(res["config"].get("exclude_none", False))
    findings = cell_findings(arch, edge_decisions(res["alpha_history"][-1], exclude_none))
    return {
        "group": search["metric"],
        "seed": search["seed"],
        "arch": arch.string,
        "index": arch.index,
        "representative": arch.representative.index,
        "a_lr": res.get("a_lr"),
        "movement": movement(res["alpha_history"]),
        "findings": [f.code for f in findings],
        "search_seconds": res["total_seconds"],
    }


def _trained_values(scores: Sequence[dict[str, Any]], index: int, columns: Sequence[str]) -> dict[str, Any]:
    mine = [s for s in scores if s["index"] == index]
    per_seed = {c: [float(s["values"][c]) for s in mine] for c in columns}
    return {
        "values": {c: float(np.mean(v)) for c, v in per_seed.items()},
        "spread": {c: float(np.std(v)) for c, v in per_seed.items()},
        "per_seed": per_seed,
        "train_seeds": [s["seed"] for s in mine],
    }


def build_report(
    cfg: CompareConfig,
    searches: Sequence[dict[str, Any]],
    random: Sequence[int],
    scores: Sequence[dict[str, Any]],
    reference: int | None,
    table_source: object | None = None,
) -> dict[str, Any]:
    """The comparison's report: ``config``, ``mode``, ``columns``, ``runs`` (one per search), ``random`` (the drawn
    cells), ``groups`` (one row per method), and per mode ``optimum`` + ``random_expectation`` (table) or
    ``reference`` (trained)."""
    from .summary import TRANSFER_DATASET, TRANSFER_LABEL, TableScorer

    mode = cfg.mode
    runs = [_run_record(s) for s in searches]
    report: dict[str, Any] = {"format": "rb201-dsrna-compare", "config": cfg.to_json(), "mode": mode}
    if mode == "table":
        scorer = TableScorer(cfg.search.dataset, table_source)
        columns = [c for c in TABLE_COLUMNS if c in scorer.columns]
        for r in runs:
            sc = scorer.score(r["index"])
            r["values"] = {c: sc.values.get(c, math.nan) for c in columns}
            r["percentiles"] = {c: sc.percentiles.get(c, math.nan) for c in columns}
        rand = []
        for i in random:
            sc = scorer.score(i)
            rand.append({"group": "random", "index": i, "arch": Arch.from_index(i).string,
                         "values": {c: sc.values.get(c, math.nan) for c in columns},
                         "percentiles": {c: sc.percentiles.get(c, math.nan) for c in columns}})  # fmt: skip
        report["random_expectation"] = {c: scorer.random_expectation(c) for c in columns}
        report["optimum"] = {c: dict(zip(("index", "value"), scorer.optimum(c), strict=True)) for c in columns}
    else:
        columns = score_columns(cfg)
        transfer = TableScorer(TRANSFER_DATASET, table_source)
        for r in runs:
            r |= _trained_values(scores, r["index"], columns)
            sc = transfer.score(r["index"])
            r["transfer"] = {c: sc.values.get(c, math.nan) for c in ("clean", "fgsm@1", "mean_adv")}
        rand = [
            {"group": "random", "index": i, "arch": Arch.from_index(i).string} | _trained_values(scores, i, columns)
            for i in random
        ]
        if reference is not None:
            report["reference"] = {
                "group": "reference",
                "index": reference,
                "arch": Arch.from_index(reference).string,
                "label": f"{TRANSFER_LABEL} table optimum for fgsm@1 (#{reference}), trained here",
            } | _trained_values(scores, reference, columns)
    report |= {"columns": columns, "runs": runs, "random": rand}
    surrogate = _surrogate(cfg, [*runs, *rand], columns)
    if surrogate is not None:
        report["surrogate"] = surrogate
    report["groups"] = _groups(report)
    return report


def _surrogate(cfg: CompareConfig, cells: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, Any] | None:
    """When some metric is guided by the table: which table and column guided it, whether it is a transfer (with the
    Kendall tau of the column between the published tables), the report columns it reads (``guided``: not held out
    in table mode), and every cell's value and percentile in that column (``cells``, in place)."""
    metrics = [m for m in cfg.metrics if "table" in METRIC_TERMS[m]]
    s = cfg.search
    if not metrics or s.surrogate_dataset is None:
        return None
    prior = load_prior(s.surrogate_dataset, s.surrogate_column, s.surrogate_source, s.surrogate_chance)
    for c in cells:
        c["surrogate"] = {"value": float(prior.raw[c["index"]]), "percentile": prior.percentile(c["index"])}
    out: dict[str, Any] = {
        "metrics": metrics,
        "dataset": prior.dataset,
        "column": prior.column,
        "source": prior.source or "embedded",
        "chance": prior.chance_mode,
        "missing_cells": prior.n_missing_cells,
        "transfer": s.dataset != prior.dataset,
        "guided": guided_columns(prior, columns) if cfg.mode == "table" else [],
    }
    if out["transfer"]:
        out["kendall"] = column_kendall(prior.column, prior.source)
    return out


def _group_row(label: str, key: str, members: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"label": label, "key": key, "n": len(members), "cells": [m["index"] for m in members]}
    for c in columns:
        v = np.array([m["values"][c] for m in members], dtype=float)
        row[c] = {"mean": float(np.nanmean(v)), "min": float(np.nanmin(v)), "max": float(np.nanmax(v))}
        if "percentiles" in members[0]:
            row[f"pct {c}"] = float(np.nanmean([m["percentiles"][c] for m in members]))
    row["findings"] = sorted({f for m in members for f in m.get("findings", [])})
    return row


def _groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    cols = report["columns"]
    rows = []
    for key in dict.fromkeys(r["group"] for r in report["runs"]):
        members = [r for r in report["runs"] if r["group"] == key]
        rows.append(_group_row(METHOD_LABELS.get(key, key), key, members, cols))
    if report["random"]:
        rows.append(_group_row(f"random cells ({len(report['random'])} drawn)", "random", report["random"], cols))
    if report["mode"] == "table":
        exp = report["random_expectation"]
        row: dict[str, Any] = {"label": "random cell (expectation)", "key": "random_expectation", "n": 0, "cells": []}
        for c in cols:
            row[c] = {"mean": exp[c]["mean"], "min": exp[c]["p10"], "max": exp[c]["p90"]}
        rows.append(row)
        best: dict[str, Any] = {"label": "table optimum (per column)", "key": "optimum", "n": 0, "cells": []}
        for c in cols:
            o = report["optimum"][c]
            best[c] = {"mean": o["value"], "min": o["value"], "max": o["value"], "index": o["index"]}
            best["cells"].append(o["index"])
        rows.append(best)
    elif "reference" in report:
        rows.append(_group_row(report["reference"]["label"], "reference", [report["reference"]], cols))
    return rows


# ---- rendering ----------------------------------------------------------------------------------------------------
def _fmt_cell(v: dict[str, float], n: int) -> str:
    if n > 1 and v["max"] - v["min"] > 5e-4:
        return f"{v['mean']:.3f} [{v['min']:.3f}, {v['max']:.3f}]"
    return f"{v['mean']:.3f}"


def group_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-method table (means, with [min, max] over runs)."""
    cols = report["columns"]
    pct = [c for c in TABLE_PERCENTILES if c in cols] if report["mode"] == "table" else []
    guided = set(report.get("surrogate", {}).get("guided", ()))
    shown = [f"{c}*" if c in guided else c for c in cols]
    headers = ["method", "runs", "cells", *shown, *(f"pct {c}*" if c in guided else f"pct {c}" for c in pct)]
    rows = []
    for g in report["groups"]:
        cells = ", ".join(f"#{i}" for i in dict.fromkeys(g["cells"]))
        n = g["n"] if g["key"] != "random_expectation" else 2
        row = [g["label"], str(g["n"] or "-"), cells or "-", *(_fmt_cell(g[c], n) for c in cols)]
        row += [f"{g[f'pct {c}']:.1f}" if f"pct {c}" in g else "-" for c in pct]
        rows.append(row)
    return headers, rows


def _chance(report: dict[str, Any]) -> tuple[float, int]:
    """Chance accuracy and the number of test images behind a value of the report."""
    ds = report["config"]["search"]["dataset"]
    info = dataset_info(ds)
    n = info.n_test if report["mode"] == "table" else min(report["config"]["n_test"], info.n_test)
    return 1.0 / info.num_classes, n


def _value(r: dict[str, Any], c: str, chance: tuple[float, int]) -> str:
    v = r["values"][c]
    text = f"{v:.3f} +- {r['spread'][c]:.3f}" if "spread" in r else f"{v:.3f}"
    return text + (" (chance)" if c != "clean" and at_chance(v, *chance) else "")


def run_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-run table: each search's cell, how far its alphas moved, its warnings and
    values (trained mode: mean +- std over the training seeds; ``(chance)``: a robust accuracy within three binomial
    standard deviations of chance), and with a table-guided search, every cell's percentile in the guiding column."""
    cols = report["columns"]
    sur = report.get("surrogate")
    guided = set(sur["guided"]) if sur else set()
    headers = ["method", "seed", "cell", "max weight", "warnings", *(f"{c}*" if c in guided else c for c in cols)]
    if sur:
        headers.append(f"pct {sur['column']} ({sur['dataset']})")
    chance = _chance(report)
    rows = []
    for r in report["runs"]:
        vals = [_value(r, c, chance) for c in cols]
        if sur:
            vals.append(f"{r['surrogate']['percentile']:.1f}")
        rows.append(
            [
                METHOD_LABELS.get(r["group"], r["group"]),
                str(r["seed"]),
                f"#{r['index']}",
                f"{r['movement']['max_weight']:.3f}",
                ", ".join(r["findings"]) or "-",
                *vals,
            ]
        )
    return headers, rows


def _text(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render(report: dict[str, Any], fmt: str = "text") -> str:
    """The two tables (per method, per run) and a note on what the numbers are, as ``text`` or ``markdown``."""
    table = _markdown if fmt == "markdown" else _text
    cfg = report["config"]
    ds = cfg["search"]["dataset"]
    if report["mode"] == "table":
        note = (
            f"Scored on the {ds} results table (accuracies as fractions; eps in 1/255; mean_adv = mean over the "
            "attacks' per-epsilon accuracies, 255 excluded; pct = percentile among the isomorphism classes). "
            "Random cell: a uniform draw of a live cell, mean [10th, 90th percentile]."
        )
    else:
        eps = ", ".join(f"{e:g}" for e in cfg["score_eps"])
        note = (
            f"Each cell trained {cfg['train_epochs']} epoch(s) (NB201 protocol, C={cfg['search']['channels']}, "
            f"N={cfg['search']['n_cells']}) with training seeds {', '.join(map(str, cfg['train_seeds']))} and "
            f"attacked on {cfg['n_test']} {ds} test images with FGSM and PGD-{cfg['pgd_steps']} at eps {eps}/255 "
            "(each epsilon on its own); a run's value is the mean over the training seeds; per method: mean "
            "[min, max] over runs."
        )
    g_head, g_rows = group_table(report)
    r_head, r_rows = run_table(report)
    parts = [table(g_head, g_rows), "", table(r_head, r_rows), "", note]
    if "surrogate" in report:
        parts.append(surrogate_note(report))
    return "\n".join(parts)


def surrogate_note(report: dict[str, Any]) -> str:
    """What guided the table-regularised searches and how far their scores are held out from it."""
    sur = report["surrogate"]
    ds = report["config"]["search"]["dataset"]
    labels = ", ".join(METHOD_LABELS.get(m, m) for m in sur["metrics"])
    text = (
        f"{labels}: guided by {sur['column']} of the {sur['dataset']} table ({sur['source']}; chance handling "
        f"{sur['chance']}); pct column: each cell's percentile in it among the isomorphism classes."
    )
    if sur["transfer"]:
        taus = ", ".join(f"{k.replace('~', ' vs ')} {v:.3f}" for k, v in sur.get("kendall", {}).items())
        text += (
            f" A transfer: the searches saw {ds} images under the {sur['dataset']} table's prior; Kendall tau of "
            f"{sur['column']} between the published tables: {taus or 'unavailable'}."
        )
    if sur["guided"]:
        text += (
            f" Columns marked * ({', '.join(sur['guided'])}) read the guiding column: for the table-guided searches "
            "they are not held-out scores."
        )
    elif report["mode"] == "table":
        text += " No reported column reads the guiding column: every score is held out from the prior."
    return text
