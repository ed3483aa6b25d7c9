"""Text of ``rb201 search dsrna``: one line per epoch, and the summary of a finished search (formatting only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_TERM = {"jacobian": "R_Jac", "certified": "R_CB", "table": "R_table"}
_TABLE_COLUMNS = ("clean", "nb201_test_accuracy", "fgsm@1", "pgd@1", "mean_adv", "fgsm@8", "pgd@8", "aa_apgd-ce@1")


def epoch_line(epoch: int, epochs: int, stats: dict[str, float], terms: Sequence[str]) -> str:
    """``epoch 3/10  train loss .. acc ..  val loss .. acc ..  R_Jac .. (gamma R = 0.50 x loss)  7.2 s``."""
    line = (
        f"epoch {epoch + 1}/{epochs}  train loss {stats['train_loss']:.4f} acc {stats['train_acc']:.3f}"
        f"  val loss {stats['val_loss']:.4f} acc {stats['val_acc']:.3f}"
    )
    for t in terms:
        line += f"  {_TERM[t]} {stats[f'R_{t}']:.4g} (gamma R = {stats[f'ratio_{t}']:.3g} x loss)"
    return line + f"  {stats['seconds']:.1f} s"


def _score_lines(title: str, score: dict[str, Any]) -> list[str]:
    lines = [f"{title}, {score['n_classes']} classes: value, percentile among the classes"]
    chance = set(score.get("at_chance", ()))
    for col in _TABLE_COLUMNS:
        if col in score["values"]:
            pct = score["percentiles"].get(col, float("nan"))
            mark = "  at chance (1/K): the percentile ranks a value no better than guessing" if col in chance else ""
            lines.append(f"  {col:<20}{score['values'][col]:>8.4f}{pct:>8.1f}%{mark}")
    return lines


def _surrogate_lines(sur: dict[str, Any], search_dataset: str) -> list[str]:
    how = "smooth expectation" if sur["estimator"] == "expectation" else "argmax cell, straight-through gradient"
    lines = [
        f"guided by       {sur['column']} of the {sur['dataset']} table ({sur['source']}), chance handling "
        f"{sur['chance']}, {how}",
        f"  derived cell  {sur['value']:.4f} in {sur['column']}, percentile {sur['percentile']:.1f} among "
        f"{sur['n_classes']} classes" + ("  (at chance)" if sur["at_chance"] else ""),
    ]
    if sur["missing_cells"]:
        lines.append(
            f"  no value      {sur['missing_cells']} cells ({sur['missing_classes']} classes): R_table averages over "
            "the cells with a value"
        )
    if sur["transfer"]:
        taus = ", ".join(f"{k.replace('~', ' vs ')} {v:.3f}" for k, v in sur.get("kendall", {}).items())
        lines.append(
            f"  transfer      searched on {search_dataset} images under the {sur['dataset']} table's prior; Kendall "
            f"tau of {sur['column']} between the tables (the prior's expected strength): {taus or 'unavailable'}"
        )
    return lines


def summary_lines(info: dict[str, Any], seconds: float, n_epochs: int) -> list[str]:
    """The summary of :func:`robustbench201.search.dsrna.summary.summarize`'s ``info``."""
    lines = [
        f"derived cell    {info['arch']}",
        f"index           {info['index']} (representative {info['representative']})",
        "edges           top op (softmax weight; uniform is 0.2), lead over the second op",
    ]
    for e in info["edges"]:
        mark = "" if e["decided"] else "  undecided"
        lines.append(
            f"  {e['edge'][0]}->{e['edge'][1]}          {e['top']:<14}{e['weight']:.3f}  "
            f"+{e['margin']:.4f} over {e['second']}{mark}"
        )
    mv = info["movement"]
    lines.append(
        f"alphas moved    largest weight {mv['max_weight']:.3f}, largest change {mv['max_change']:.3f}; "
        f"architecture lr {info['a_lr']:.3g}, {info['steps_per_epoch']} alpha steps per epoch"
    )
    regs = info["regularizers"]
    terms = [t for t in _TERM if any(f"R_{t}" in r for r in regs)]
    if terms:
        lines.append("regularisers    per epoch: validation loss; R; gamma x R as a fraction of the loss")
        for r in regs:
            parts = "  ".join(f"{_TERM[t]} {r[f'R_{t}']:<10.4g} {r[f'ratio_{t}']:<8.3g} x loss" for t in terms)
            lines.append(f"  epoch {int(r['epoch']):<4}  val loss {r['val_loss']:.4f}  {parts}")
    if "dead_mass" in info:
        lines.append(f"dead mass       {info['dead_mass']:.4f}: probability of the dead cells under the final weights")
    if "surrogate" in info:
        lines += _surrogate_lines(info["surrogate"], info["dataset"])
    for f in info["findings"]:
        lines.append(f"warning         {f['message']}")
    lines.append(f"search time     {seconds:.1f} s ({n_epochs} epochs this run and before)")
    if "table" in info:
        lines += _score_lines(f"table ({info['dataset']})", info["table"])
    if "table_note" in info:
        lines.append(f"note            {info['table_note']}")
    if "transfer" in info:
        lines += _score_lines(info["transfer"]["label"], info["transfer"])
    if "table_error" in info:
        lines.append(f"table lookup    unavailable: {info['table_error']}")
    if "plot" in info:
        lines.append(f"alphas plot     {info['plot']}")
    return lines
