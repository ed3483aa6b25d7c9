"""``rb201 analyze``: run the analyses of Jung et al. on a wide table, write their figures and full tables, and
lay the results out for reading: a summary with the headline numbers first, then compact tables whose headers are
never cut (long ones summarised, in full in ``--out``).

The analyses use one row per isomorphism class (its representative), as the published dataset evaluated one network
per class: the other members of a class repeat its values and would count it several times.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Rb201Error, check_choice
from ..space import Arch
from ..store.schema import format_eps
from ..tables.formats import column_title, key_title
from ..tables.select import dead_mask
from .analysis import (
    ATTACKS,
    MIN_CLASSES,
    attack_columns,
    attack_matrix,
    attack_semantics,
    classes_with_values,
    clean_vs_robust,
    corruption_matrix,
    equal_params_study,
    headline_candidates,
    pareto_front,
    surrogate_correlation,
)

ANALYSES: tuple[str, ...] = ("kendall", "params", "surrogates", "all")
#: What the paper reports for the headline (Jung et al. 2023, equal parameter count): mean adversarial accuracy.
PUBLISHED_HEADLINE = "Jung et al. report 20% to 41%"
_AVERAGING = {"flat": "mean over all (attack, epsilon) values", "per-attack": "mean of the per-attack means"}
_SURROGATE_TARGETS = ("clean", "fgsm@1", "pgd@1", "fgsm@8", "pgd@8")


@dataclass(frozen=True)
class Section:
    """One table of the report: ``headers`` and ``rows``; ``note`` says what it is (or where the full one is)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    #: per column, the name whose display it takes (:func:`robustbench201.tables.formats.column_display`), e.g.
    #: ``"tau"`` for a column headed by an epsilon; None: the headers themselves
    kinds: tuple[str, ...] | None = None


@dataclass
class AnalysisReport:
    """The numbers (``results``, JSON-ready), the summary lines, the tables and the files written."""

    dataset: str
    results: dict[str, Any]
    summary: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: file stem -> the data of each figure (:mod:`.plots`), drawn into ``out`` when given
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def representatives(df: Any) -> Any:
    """The rows of isomorphism-class representatives (all rows when the table has no ``representative`` column)."""
    if "representative" not in df.columns:
        return df
    return df[df.index.to_numpy() == df["representative"].to_numpy()]


def analyze(
    df: Any, out: str | Path | None = None, which: str = "all", dataset: str = "", figure_format: str = "png"
) -> AnalysisReport:
    """Run the analyses ``which`` (kendall, params, surrogates, all) on the representatives of ``df`` that have
    values; with ``out`` write the figures (``figure_format``: png, pdf, svg) and the full tables (CSV) there (the
    folder is created when missing). Each analysis records the number of classes it used; below
    :data:`~.analysis.MIN_CLASSES` the report warns that its numbers are no finding."""
    check_choice("analysis", which, ANALYSES)
    from . import plots

    plots.figure_path("x", figure_format)  # refuse a bad format before any work
    reps = representatives(df)
    df = with_values(reps)
    semantics = attack_semantics(df)
    res: dict[str, Any] = {"dataset": dataset, "rows": len(df), "classes": len(df), "space_classes": len(reps),
                           "semantics": semantics, "figures": [], "tables": [], "skipped": {}, "classes_used": {},
                           "warnings": []}  # fmt: skip
    rep = AnalysisReport(dataset, res)
    if which in ("kendall", "all"):
        try:
            cvr = clean_vs_robust(df)
            res["clean_vs_robust"] = cvr.to_dict(orient="records")
            res["classes_used"]["clean_vs_robust"] = int(cvr["n"].max())
            am = attack_matrix(df, 1.0)
            res["attacks_eps1"] = am.round(4).to_dict()
            res["classes_used"]["attacks_eps1"] = classes_with_values(df, list(am.columns))
        except Rb201Error as exc:
            res["skipped"]["kendall"] = str(exc)
        try:
            cm = corruption_matrix(df)
            res["corruptions"] = cm.round(4).to_dict()
            res["corruption_severities"] = corruption_severities(df)
            cols = [c for k in cm.columns for c in df.columns if str(c).split(":")[0] == k and ":" in str(c)
                    and "/" not in str(c)]  # fmt: skip
            res["classes_used"]["corruptions"] = classes_with_values(df, cols)
        except Rb201Error as exc:
            res["skipped"]["corruptions"] = str(exc)
    if which in ("params", "all"):
        try:
            live = df[~dead_mask()[df.index.to_numpy()]]
            res["equal_params"] = dict(equal_params_study(live), dead_excluded=len(df) - len(live))
            res["equal_params_candidates"] = headline_candidates(live)
            res["classes_used"]["equal_params"] = res["equal_params"]["cells"]
        except Rb201Error as exc:
            res["skipped"]["params"] = str(exc)
    if which in ("surrogates", "all"):
        try:
            sc = surrogate_correlation(df)
            res["surrogates"] = sc.to_dict(orient="records")
            res["classes_used"]["surrogates"] = int(sc["n"].max()) if len(sc) else 0
        except Rb201Error as exc:
            res["skipped"]["surrogates"] = str(exc)
    few: dict[int, list[str]] = {}
    for key, n in res["classes_used"].items():
        if n < MIN_CLASSES:
            few.setdefault(n, []).append(key)
    for n, keys in few.items():
        res["warnings"].append(
            f"{', '.join(keys)}: computed over {n} classes, fewer than {MIN_CLASSES}: indicative only, not a finding"
        )
    rep.figures = figure_data(df, res, which, dataset)
    if out is not None:
        outdir = Path(out)
        from ..atomic import WriteError

        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create the folder {outdir}: {exc.strerror or exc}") from None
        tag = f"{dataset}_" if dataset else ""
        for stem, data in rep.figures.items():
            path = plots.draw(data, outdir / f"{tag}{stem}.{figure_format}")
            res["figures"].append(str(path))
            rep.files.append(str(path))
        for sec in full_sections(res):
            path = _write_csv(outdir / f"{tag}{sec.title}.csv", sec)
            res["tables"].append(str(path))
            rep.files.append(str(path))
    rep.summary = summary_lines(res)
    rep.sections = sections(res)
    return rep


def with_values(reps: Any) -> Any:
    """The rows of ``reps`` with a value in any column besides ``representative``: the classes analyses use."""
    data_cols = [c for c in reps.columns if c != "representative"]
    return reps[reps[data_cols].notna().any(axis=1)] if data_cols else reps


def corruption_severities(df: Any) -> list[int]:
    """The severities of the corruption columns of ``df`` (ascending)."""
    sevs = set()
    for c in df.columns:
        head = str(c)
        if ":" in head and "/" not in head and "@" not in head:
            with contextlib.suppress(ValueError):
                sevs.add(int(head.split(":")[1]))
    return sorted(sevs)


def severities_phrase(sevs: list[int]) -> str:
    """``[1, 2, 3, 4, 5] -> 'severities 1-5'``, ``[1, 5] -> 'severities 1 and 5'``, ``[3] -> 'severity 3'``."""
    if len(sevs) == 1:
        return f"severity {sevs[0]}"
    if sevs == list(range(sevs[0], sevs[-1] + 1)) and len(sevs) > 2:
        return f"severities {sevs[0]}-{sevs[-1]}"
    return "severities " + ", ".join(map(str, sevs[:-1])) + f" and {sevs[-1]}"


def figure_data(df: Any, res: dict[str, Any], which: str = "all", dataset: str = "") -> dict[str, dict[str, Any]]:
    """The data of every figure the analyses ``which`` draw (file stem -> :mod:`.plots` data), from the results
    ``res`` of :func:`analyze` on ``df`` (representatives with values): pure, so a figure can be checked without
    drawing it."""
    from . import plots

    name = plots.dataset_label(dataset)
    out: dict[str, dict[str, Any]] = {}
    n = res.get("classes_used", {})
    if "attacks_eps1" in res:
        m = pd_frame(res["attacks_eps1"])
        sem = ", cumulative worst case" if res.get("semantics") == "cumulative" else ""
        title = (f"{name}: Kendall tau between attacks at eps 1/255{sem}\n"
                 f"({n.get('attacks_eps1', 0)} isomorphism classes)")  # fmt: skip
        labels = [key_title(str(c).split("@")[0]) for c in m.columns]
        out["kendall_attacks_eps1"] = plots.heatmap_data(m, title, labels)
        cols = {a: attack_columns(df, a, (255.0,)) for a in ATTACKS}
        out["robust_vs_eps"] = plots.eps_curves_data(df, cols, dataset=dataset, semantics=res.get("semantics"))
    if "corruptions" in res:
        m = pd_frame(res["corruptions"])
        sevs = severities_phrase(res.get("corruption_severities", [1, 2, 3, 4, 5]))
        title = (f"{name}: Kendall tau between corruptions\n(accuracy averaged over {sevs}; "
                 f"{n.get('corruptions', 0)} isomorphism classes)")  # fmt: skip
        out["kendall_corruptions"] = plots.heatmap_data(m, title, [key_title(k) for k in m.columns])
    robust = _first_robust(df)
    if "equal_params" in res and "params" in df.columns and robust:
        front = pareto_front(df, robust, "params")
        out[f"pareto_{_stem(robust)}_params"] = plots.pareto_data(df, robust, "params", front, dataset)
    if which == "all" and robust:
        best = int(df[robust].idxmax())
        res["best_" + _stem(robust)] = {"index": best, "string": Arch.from_index(best).string,
                                        robust: float(df.at[best, robust])}  # fmt: skip
        title = f"{name}: NB201 #{best}, the most robust cell under {column_title(robust)} ({df.at[best, robust]:.3f})"
        out[f"best_cell_{_stem(robust)}"] = {"kind": "cell", "index": best, "title": title}
    return out


def _first_robust(df: Any) -> str | None:
    """The robustness column the Pareto front and the best cell use: FGSM at eps 1/255 (per-epsilon, else
    cumulative), else the first attack column of the analyses' semantics at the smallest epsilon."""
    for c in ("fgsm@1", "fgsm@1/per-epsilon", "fgsm@1/cumulative"):
        if c in df.columns and df[c].notna().any():
            return c
    for a in ATTACKS:
        cols = attack_columns(df, a)
        if cols:
            return cols[0]
    return None


def _stem(column: str) -> str:
    """A column as part of a file name: ``'fgsm@1' -> 'fgsm1'``, ``'fgsm@1/cumulative' -> 'fgsm1_cumulative'``."""
    return column.replace("@", "").replace("/", "_").replace(".", "p").replace(":", "s")


def pd_frame(matrix: dict[str, dict[str, float]]) -> Any:
    """A ``{column: {row: value}}`` dict (``DataFrame.to_dict()``) back as a DataFrame, rows in column order."""
    import pandas as pd

    names = list(matrix)
    return pd.DataFrame(matrix).loc[names, names]


def heading(res: dict[str, Any]) -> str:
    """What the analyses used: ``'cifar10: 6466 of 6466 isomorphism classes have values (one row each); attacks:
    per-epsilon values'``."""
    sem = {
        "per-epsilon": "per-epsilon values (each epsilon attacked on its own)",
        "cumulative": "the cumulative worst case (the only kind this dataset holds)",
    }.get(res.get("semantics") or "")
    out = f"{res['dataset']}: {res['classes']} of {res['space_classes']} isomorphism classes have values (one row each)"
    return out + (f"; attacks: {sem}" if sem else "")


def summary_lines(res: dict[str, Any]) -> list[str]:
    """The headline numbers, one line each (with the classes each used), then the warnings and what was skipped."""
    out = []
    used = res.get("classes_used", {})
    if "equal_params" in res:
        e = res["equal_params"]
        params = f", {e['params'][0]:.3f} M parameters" if len(e.get("params", [])) == 1 else ""
        out.append(
            f"equal parameter count ({e['cells']} classes with two 3x3 and no 1x1 conv{params}): mean adversarial "
            f"accuracy {100 * e['min']:.1f}% (#{e['argmin']}) to {100 * e['max']:.1f}% (#{e['argmax']}) "
            f"[{_AVERAGING[e['averaging']]} of {', '.join(e['attacks'])}, without eps 255; {PUBLISHED_HEADLINE}]"
        )
    if "clean_vs_robust" in res:
        rows = res["clean_vs_robust"]
        epss = sorted({r["epsilon"] for r in rows if r["epsilon"] < 255}) or sorted({r["epsilon"] for r in rows})
        parts = []
        for e in dict.fromkeys((epss[0], epss[-1])):
            taus = [r["tau"] for r in rows if r["epsilon"] == e and not math.isnan(r["tau"])]
            if taus:
                parts.append(f"{min(taus):+.2f} to {max(taus):+.2f} at eps {format_eps(e)}/255")
        out.append(f"clean vs robust accuracy, Kendall tau over the attacks ({used.get('clean_vs_robust', 0)} "
                   f"classes): {', '.join(parts) or 'no values'}")  # fmt: skip
    if "attacks_eps1" in res:
        out.append(f"attacks at eps 1/255, Kendall tau between pairs ({used.get('attacks_eps1', 0)} classes): "
                   f"{_pair_range(res['attacks_eps1'])}")  # fmt: skip
    if "corruptions" in res:
        m = res["corruptions"]
        out.append(f"{len(m)} corruptions ({severities_phrase(res.get('corruption_severities', [1, 2, 3, 4, 5]))}), "
                   f"Kendall tau between pairs ({used.get('corruptions', 0)} classes): {_pair_range(m)}")  # fmt: skip
    if "surrogates" in res:
        target = _surrogate_target(res["surrogates"])
        rows = [r for r in res["surrogates"] if r["target"] == target and not math.isnan(r["tau"])]
        if rows:
            best = sorted(rows, key=lambda r: -abs(r["tau"]))[:3]
            shown = ", ".join(f"{r['surrogate']} {r['tau']:+.2f}" for r in best)
            out.append(f"surrogates most correlated with {target} (Kendall tau, {max(r['n'] for r in rows)} classes): "
                       f"{shown}")  # fmt: skip
    out += [f"warning: {w}" for w in res.get("warnings", [])]
    for key, why in res["skipped"].items():
        out.append(f"{key}: not computed ({why})")
    return out


def _surrogate_target(rows: list[dict[str, Any]]) -> str | None:
    """The target the summary names surrogates for: ``fgsm@1``, else the first FGSM (then any non-clean) target."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    for pick in (["fgsm@1"], [t for t in targets if t.startswith("fgsm@")], [t for t in targets if t != "clean"]):
        for t in pick:
            if t in targets:
                return t
    return targets[0] if targets else None


def _pair_range(m: dict[str, dict[str, float]]) -> str:
    """The weakest and the strongest agreement of a symmetric matrix, each with its pair."""
    pairs = [(m[a][b], a, b) for a in m for b in m if a < b and not math.isnan(m[a][b])]
    if not pairs:
        return "no pair with values"
    lo, hi = min(pairs), max(pairs)
    if len(pairs) == 1:
        return f"{lo[0]:.2f} ({lo[1]} vs {lo[2]})"
    return f"{lo[0]:.2f} ({lo[1]} vs {lo[2]}) to {hi[0]:.2f} ({hi[1]} vs {hi[2]})"


def sections(res: dict[str, Any]) -> list[Section]:
    """The tables of the text report (compact: long ones summarised)."""
    out = []
    if "clean_vs_robust" in res:
        rows = res["clean_vs_robust"]
        eps = sorted({r["epsilon"] for r in rows})
        grid = {(r["attack"], r["epsilon"]): r["tau"] for r in rows}
        attacks = list(dict.fromkeys(r["attack"] for r in rows))
        out.append(
            Section(
                "clean_vs_robust",
                ("attack", *(format_eps(e) for e in eps)),
                tuple((a, *(_r(grid.get((a, e), math.nan)) for e in eps)) for a in attacks),
                "Kendall tau between clean and robust accuracy; columns: epsilon in units of 1/255; "
                f"{res.get('classes_used', {}).get('clean_vs_robust', 0)} classes",
                ("attack", *(["tau"] * len(eps))),
            )
        )
    for key, title, note in (
        ("attacks_eps1", "attacks_at_eps_1", "Kendall tau between attacks at eps = 1/255"),
        ("corruptions", "corruptions", "Kendall tau between corruptions (accuracy averaged over SEVERITIES)"),
    ):
        if key in res:
            m = res[key]
            sevs = severities_phrase(res.get("corruption_severities", [1, 2, 3, 4, 5]))
            note = f"{note.replace('SEVERITIES', sevs)}; {res.get('classes_used', {}).get(key, 0)} classes"
            names = list(m)
            rows = tuple((a, *(_r(m[b][a]) for b in names)) for a in names)
            out.append(Section(title, ("", *names), rows, note, ("", *(["tau"] * len(names)))))
    if "equal_params_candidates" in res:
        rows = tuple(
            (
                _AVERAGING[c["averaging"]],
                "all" if not c["exclude_eps"] else "without 255",
                c["cells"],
                f"{100 * c['min']:.1f}%",
                f"{100 * c['max']:.1f}%",
            )  # fmt: skip
            for c in res["equal_params_candidates"]
        )
        dead = res["equal_params"].get("dead_excluded", 0)
        out.append(
            Section(
                "equal_params",
                ("averaging", "epsilons", "classes", "min", "max"),
                rows,
                f"mean adversarial accuracy at equal parameter count under each averaging ({dead} dead classes "
                "excluded: they sit at chance)",
            )
        )
    if "surrogates" in res:
        table = {(r["surrogate"], r["target"]): r["tau"] for r in res["surrogates"]}
        n = {r["surrogate"]: r["n"] for r in res["surrogates"]}
        held = list(dict.fromkeys(r["target"] for r in res["surrogates"]))
        targets = [t for t in held if t.split("/")[0] in _SURROGATE_TARGETS]
        names = list(dict.fromkeys(r["surrogate"] for r in res["surrogates"]))
        out.append(
            Section(
                "surrogates",
                ("surrogate", *targets, "classes"),
                tuple((s, *(_r(table.get((s, t), math.nan)) for t in targets), n[s]) for s in names),
                "Kendall tau of each surrogate with accuracy; every epsilon of fgsm and pgd in the full table (--out)",
                ("surrogate", *(["tau"] * len(targets)), "classes"),
            )
        )
    return out


def _r(value: float) -> float:
    """Kendall tau as printed: 3 decimals."""
    return value if math.isnan(value) else round(float(value), 3)


#: Columns of the long table of every analysis (``rb201 analyze --format csv``): one row per number.
LONG_HEADERS: tuple[str, ...] = ("analysis", "x", "y", "statistic", "value", "classes")


def long_rows(res: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every number of the analyses as one tidy table (:data:`LONG_HEADERS`): Kendall tau of clean against each
    attack column, of each pair of attacks and of corruptions, each surrogate against each target, and the range of
    the equal-parameter-count study under each averaging."""
    used = res.get("classes_used", {})
    out: list[tuple[Any, ...]] = []
    for r in res.get("clean_vs_robust", []):
        out.append(("clean_vs_robust", "clean", r["column"], "kendall_tau", r["tau"], r["n"]))
    for key in ("attacks_eps1", "corruptions"):
        m = res.get(key, {})
        names = list(m)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                out.append((key, a, b, "kendall_tau", m[b][a], used.get(key, 0)))
    for c in res.get("equal_params_candidates", []):
        eps = "all" if not c["exclude_eps"] else "without 255"
        for stat in ("min", "max"):
            out.append(("equal_params", c["averaging"], eps, f"mean_adversarial_{stat}", c[stat], c["cells"]))
    for r in res.get("surrogates", []):
        out.append(("surrogates", r["surrogate"], r["target"], "kendall_tau", r["tau"], r["n"]))
    return out


def full_sections(res: dict[str, Any]) -> list[Section]:
    """Every number, for files: the full surrogate table and the clean-vs-robust table in long form."""
    out = []
    if "clean_vs_robust" in res:
        rows = tuple((r["attack"], r["epsilon"], r["tau"], r["n"]) for r in res["clean_vs_robust"])
        out.append(Section("clean_vs_robust", ("attack", "epsilon_1_255", "kendall_tau", "cells"), rows))
    if "surrogates" in res:
        rows = tuple((r["surrogate"], r["target"], r["tau"], r["n"]) for r in res["surrogates"])
        out.append(Section("surrogates", ("surrogate", "target", "kendall_tau", "cells"), rows))
    return out


def _write_csv(path: Path, sec: Section) -> Path:
    from ..atomic import write_text_atomic
    from ..tables.formats import render

    write_text_atomic(path, render(sec.headers, sec.rows, "csv") + "\n")
    return path
