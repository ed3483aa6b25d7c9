"""``rb201 analyze``: run the analyses of Jung et al. on a wide table, write their figures and full tables, and
lay the results out for reading: a summary with the headline numbers first, then compact tables whose headers are
never cut (long ones summarised, in full in ``--out``).

The analyses use one row per isomorphism class (its representative), as the published dataset evaluated one network
per class: the other members of a class repeat its values and would count it several times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Rb201Error, check_choice
from ..space import Arch
from ..store.schema import format_eps
from .analysis import (
    ATTACKS,
    attack_columns,
    attack_matrix,
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


@dataclass
class AnalysisReport:
    """The numbers (``results``, JSON-ready), the summary lines, the tables and the files written."""

    dataset: str
    results: dict[str, Any]
    summary: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def representatives(df: Any) -> Any:
    """The rows of isomorphism-class representatives (all rows when the table has no ``representative`` column)."""
    if "representative" not in df.columns:
        return df
    return df[df.index.to_numpy() == df["representative"].to_numpy()]


def analyze(
    df: Any, out: str | Path | None = None, which: str = "all", dataset: str = "", figure_format: str = "png"
) -> AnalysisReport:
    """Run the analyses ``which`` (kendall, params, surrogates, all) on the representatives of ``df``; with ``out``
    write the figures (``figure_format``: png, pdf, svg) and the full tables (CSV) there."""
    check_choice("analysis", which, ANALYSES)
    from . import plots

    plots.figure_path("x", figure_format)  # refuse a bad format before any work
    df = representatives(df)
    res: dict[str, Any] = {"dataset": dataset, "rows": len(df), "figures": [], "tables": [], "skipped": {}}
    rep = AnalysisReport(dataset, res)
    outdir = Path(out) if out is not None else None
    tag = f"{dataset}_" if dataset else ""
    name = plots.dataset_label(dataset)

    def figure(stem: str) -> Path:
        assert outdir is not None
        return outdir / f"{tag}{stem}.{figure_format}"

    def wrote(path: Path, kind: str) -> None:
        res[kind].append(str(path))
        rep.files.append(str(path))

    if which in ("kendall", "all"):
        try:
            cvr = clean_vs_robust(df)
            res["clean_vs_robust"] = cvr.drop(columns="column").to_dict(orient="records")
            am = attack_matrix(df, 1.0)
            res["attacks_eps1"] = am.round(4).to_dict()
            if outdir is not None:
                title = f"{name}: Kendall tau between attacks at eps = 1/255"
                wrote(plots.heatmap(am, figure("kendall_attacks_eps1"), title), "figures")
                cols = {a: attack_columns(df, a, (255.0,)) for a in ATTACKS}
                wrote(plots.eps_curves(df, figure("robust_vs_eps"), cols, dataset=dataset), "figures")
        except Rb201Error as exc:
            res["skipped"]["kendall"] = str(exc)
        try:
            cm = corruption_matrix(df)
            res["corruptions"] = cm.round(4).to_dict()
            if outdir is not None:
                title = f"{name}: Kendall tau between corruptions (accuracy averaged over severities 1-5)"
                wrote(plots.heatmap(cm, figure("kendall_corruptions"), title), "figures")
        except Rb201Error as exc:
            res["skipped"]["corruptions"] = str(exc)
    if which in ("params", "all"):
        try:
            live = df[[not Arch.from_index(int(i)).is_dead for i in df.index]]
            res["equal_params"] = dict(equal_params_study(live), dead_excluded=len(df) - len(live))
            res["equal_params_candidates"] = headline_candidates(live)
            if outdir is not None and "params" in df.columns and "fgsm@1" in df.columns:
                front = pareto_front(df, "fgsm@1", "params")
                wrote(plots.pareto(df, "fgsm@1", "params", front, figure("pareto_fgsm1_params"), dataset), "figures")
        except Rb201Error as exc:
            res["skipped"]["params"] = str(exc)
    if which in ("surrogates", "all"):
        try:
            res["surrogates"] = surrogate_correlation(df).to_dict(orient="records")
        except Rb201Error as exc:
            res["skipped"]["surrogates"] = str(exc)
    if outdir is not None and which == "all" and "fgsm@1" in df.columns:
        best = int(df["fgsm@1"].idxmax())
        res["best_fgsm1"] = {
            "index": best,
            "string": Arch.from_index(best).string,
            "fgsm@1": float(df.at[best, "fgsm@1"]),
        }
        from ..draw import draw_cell

        title = f"{name}: NB201 #{best}, the best FGSM accuracy at eps = 1/255 ({df.at[best, 'fgsm@1']:.3f})"
        path = figure("best_cell_fgsm1")
        draw_cell(best, path, title=title)
        wrote(path, "figures")
    rep.summary = summary_lines(res)
    rep.sections = sections(res)
    if outdir is not None:
        for sec in full_sections(res):
            wrote(_write_csv(outdir / f"{tag}{sec.title}.csv", sec), "tables")
    return rep


def summary_lines(res: dict[str, Any]) -> list[str]:
    """The headline numbers, one line each."""
    out = []
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
        small, large = min(r["epsilon"] for r in rows), max(r["epsilon"] for r in rows if r["epsilon"] < 255)
        lo = [r["tau"] for r in rows if r["epsilon"] == small]
        hi = [r["tau"] for r in rows if r["epsilon"] == large]
        out.append(
            f"clean vs robust accuracy, Kendall tau over the attacks: {min(lo):+.2f} to {max(lo):+.2f} at eps "
            f"{format_eps(small)}/255, {min(hi):+.2f} to {max(hi):+.2f} at eps {format_eps(large)}/255"
        )
    if "attacks_eps1" in res:
        out.append(f"attacks at eps 1/255, Kendall tau between pairs: {_pair_range(res['attacks_eps1'])}")
    if "corruptions" in res:
        m = res["corruptions"]
        out.append(f"{len(m)} corruptions, Kendall tau between pairs: {_pair_range(m)}")
    if "surrogates" in res:
        rows = [r for r in res["surrogates"] if r["target"] == "fgsm@1" and not math.isnan(r["tau"])]
        if rows:
            best = sorted(rows, key=lambda r: -abs(r["tau"]))[:3]
            shown = ", ".join(f"{r['surrogate']} {r['tau']:+.2f}" for r in best)
            out.append(f"surrogates most correlated with fgsm@1 (Kendall tau): {shown}")
    for key, why in res["skipped"].items():
        out.append(f"{key}: not computed ({why})")
    return out


def _pair_range(m: dict[str, dict[str, float]]) -> str:
    """The weakest and the strongest agreement of a symmetric matrix, each with its pair."""
    pairs = [(m[a][b], a, b) for a in m for b in m if a < b and not math.isnan(m[a][b])]
    if not pairs:
        return "no pair with values"
    lo, hi = min(pairs), max(pairs)
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
                "Kendall tau between clean and robust accuracy; columns: epsilon in units of 1/255",
            )
        )
    for key, title, note in (
        ("attacks_eps1", "attacks_at_eps_1", "Kendall tau between attacks at eps = 1/255"),
        ("corruptions", "corruptions", "Kendall tau between corruptions (accuracy averaged over severities 1-5)"),
    ):
        if key in res:
            m = res[key]
            names = list(m)
            out.append(Section(title, ("", *names), tuple((a, *(_r(m[b][a]) for b in names)) for a in names), note))
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
        targets = [t for t in _SURROGATE_TARGETS if any(k[1] == t for k in table)]
        names = list(dict.fromkeys(r["surrogate"] for r in res["surrogates"]))
        out.append(
            Section(
                "surrogates",
                ("surrogate", *targets, "cells"),
                tuple((s, *(_r(table.get((s, t), math.nan)) for t in targets), n[s]) for s in names),
                "Kendall tau of each surrogate with accuracy; every epsilon of fgsm and pgd in the full table (--out)",
            )
        )
    return out


def _r(value: float) -> float:
    """Kendall tau as printed: 3 decimals."""
    return value if math.isnan(value) else round(float(value), 3)


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

    write_text_atomic(path, render(sec.headers, sec.rows, "csv", digits=6) + "\n")
    return path
