"""Tabular output in the formats a researcher pastes elsewhere: aligned text for the terminal (headers never cut),
Markdown for papers and READMEs, CSV for spreadsheets and ``pandas.read_csv``, JSON for notebooks. One renderer for
every command that prints a table (``rb201 query``, ``table``, ``analyze``, ``search table``, ``compare``).

**How a column is displayed** has one owner, :func:`column_display`: for a column name (a wide name such as
``fgsm@1``, ``params``, ``edgegpu_latency``, ``ibp@1/margin_lb``, or a report column such as ``tau``) it returns the
column's kind, the decimals it is printed with, the scale applied to the stored value and the unit shown after it.
:func:`format_value` formats one value with it; text and Markdown tables use it for every column, CSV and JSON carry
the stored values unformatted (full precision, no units: a tidy table). Pure Python, no torch, no numpy needed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import check_choice

__all__ = [
    "FORMATS",
    "ColumnDisplay",
    "column_display",
    "format_value",
    "cell",
    "render",
    "key_title",
    "column_title",
    "axis_label",
    "dataset_title",
]

FORMATS: tuple[str, ...] = ("text", "markdown", "csv", "json")

#: Names of integer-valued report columns (NB201 indices, counts).
_INTEGERS = ("arch_index", "representative", "index", "cells", "classes", "queries", "budget", "runs", "n", "seed")
#: Kendall tau and differences of accuracies (3 decimals).
_STATISTICS = ("tau", "kendall_tau", "mean_abs_diff", "mean_diff", "max_abs_diff")
#: Summaries of a search's best found values and regret (4 decimals: searches differ in the fourth).
_SEARCH_STATISTICS = ("mean", "std", "min", "max", "median", "regret")
#: Measures that are fractions 0..1 like accuracies.
_FRACTIONS = ("accuracy", "confidence_pred", "confidence_true", "ece")
#: Training-free proxies and surrogates: raw scores of very different magnitudes (4 significant digits).
_SCORES = ("jacobian", "hessian", "jacov", "synflow", "snip", "grasp", "fisher", "grad_norm", "epe_nas", "nwot",
           "l2_norm", "plain", "zen")  # fmt: skip


@dataclass(frozen=True)
class ColumnDisplay:
    """How one column is shown.

    ``kind``: ``accuracy`` (fractions 0..1: accuracies, confidences, calibration error), ``params`` (millions),
    ``flops`` (millions of multiply-adds), ``latency`` (ms), ``energy`` (mJ), ``intensity`` (FLOPs/byte),
    ``margin`` (certified margin lower bounds, logits), ``score`` (surrogates and zero-cost proxies), ``statistic``
    (Kendall tau, differences, means of accuracies), ``integer`` (indices and counts) or ``number`` (anything else).
    ``decimals``: digits after the point (``style='fixed'``) or significant digits (``'significant'``,
    ``'scientific'``); ``scale``: the stored value is multiplied by it before display; ``unit``: shown after the
    number in text tables ("" for none). ``label``: a short human description of the unit for headers and axes."""

    kind: str
    decimals: int
    scale: float = 1.0
    unit: str = ""
    style: str = "fixed"
    label: str = ""


def _base(name: str) -> tuple[str, str]:
    """(the column's key without split, epsilon or severity; its measure or "" for the plain one)."""
    parts = name.split("/")
    if parts[0] in ("valid", "test") and len(parts) > 1:
        parts = parts[1:]
    head, rest = parts[0], [p for p in parts[1:] if p not in ("cumulative", "per-epsilon")]
    key = head.split("@")[0].split(":")[0]
    return key, (rest[-1] if rest else "")


def column_display(name: str) -> ColumnDisplay:
    """How column ``name`` is displayed (see :class:`ColumnDisplay`): accuracies with 3 decimals, parameters in
    millions with 3 and a unit, FLOPs in millions with 2, latencies in ms and energies in mJ with 3 and their unit,
    certified margins in scientific notation, surrogates and proxies with 4 significant digits, Kendall tau and
    other statistics with 3 decimals, indices and counts as integers.

    >>> column_display("fgsm@1").decimals, column_display("params").unit, column_display("pixel3_latency").unit
    (3, 'M', 'ms')
    """
    key, measure = _base(name)
    if name in _INTEGERS or key in _INTEGERS:
        return ColumnDisplay("integer", 0, style="integer")
    if measure == "margin_lb":
        return ColumnDisplay("margin", 3, style="scientific", label="certified margin lower bound (logits)")
    if measure in _FRACTIONS or (not measure and _is_accuracy_key(name, key)):
        return ColumnDisplay("accuracy", 3, label="fraction")
    if key == "params":
        return ColumnDisplay("params", 3, unit="M", label="millions of parameters")
    if key == "flops":
        return ColumnDisplay("flops", 2, unit="M", label="millions of multiply-adds")
    if key.endswith("_latency"):
        return ColumnDisplay("latency", 3, unit="ms", label="ms")
    if key.endswith("_energy"):
        return ColumnDisplay("energy", 3, unit="mJ", label="mJ")
    if key.endswith("_arithmetic_intensity"):
        return ColumnDisplay("intensity", 3, unit="FLOPs/B", label="FLOPs per byte")
    if key in _SCORES:
        return ColumnDisplay("score", 4, style="significant", label="raw score")
    if name in _STATISTICS:
        return ColumnDisplay("statistic", 3)
    if name in _SEARCH_STATISTICS:
        return ColumnDisplay("statistic", 4)
    return ColumnDisplay("number", 4, style="significant")


def _is_accuracy_key(name: str, key: str) -> bool:
    """A plain column that is an accuracy: clean, NB201 accuracies, any ``key@eps`` or ``key:severity`` column."""
    return key == "clean" or key.endswith("accuracy") or "@" in name or ":" in name or key == "mean_adv"


def format_value(name: str, value: Any, unit: bool = True) -> str:
    """``value`` of column ``name`` as table text (:func:`column_display`); "" for NaN / None; non-numbers as they
    are. ``unit``: append the column's unit (text tables); without it the number alone (Markdown keeps units in a
    note)."""
    if value is None or isinstance(value, str):
        return "" if value is None else value
    if isinstance(value, bool):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    d = column_display(name)
    v = value * d.scale
    if d.style == "integer":
        text = f"{v:.0f}" if isinstance(v, float) else str(v)
    elif isinstance(value, int) and d.kind in ("number", "statistic"):
        text = str(v)
    elif d.style == "scientific":
        text = f"{v:.{d.decimals - 1}e}" if v != 0 and not 1e-2 <= abs(v) < 1e4 else f"{v:.{d.decimals}g}"
    elif d.style == "significant":
        text = f"{v:.{d.decimals}g}"
    else:
        text = f"{v:.{d.decimals}f}"
    return f"{text} {d.unit}" if unit and d.unit else text


def cell(value: Any, digits: int = 4) -> str:
    """A value as table text with ``digits`` significant digits (NaN empty), for columns without a display kind."""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def _csv_value(value: Any) -> str:
    """Full precision, no unit: what ``pandas.read_csv`` reads back exactly ("" for NaN / None)."""
    value = _json_value(value)
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def render(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "text", kinds: Sequence[str] | None = None
) -> str:
    """``rows`` under ``headers`` in ``fmt`` (one of :data:`FORMATS`); ends without a newline.

    Text and Markdown format each column by :func:`column_display` of its header (or of ``kinds[k]`` when given:
    the name whose display to use, e.g. ``"tau"`` for a column headed ``fgsm@1`` that holds Kendall tau); CSV and
    JSON carry the values as they are."""
    check_choice("output format", fmt, FORMATS)
    headers = [str(h) for h in headers]
    if fmt == "json":
        return json.dumps([{h: _json_value(v) for h, v in zip(headers, r, strict=True)} for r in rows], indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows([[_csv_value(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    names = list(kinds) if kinds is not None else headers
    texts = [[format_value(n, v) for n, v in zip(names, r, strict=True)] for r in rows]
    widths = [max([len(h), *(len(r[k]) for r in texts)]) for k, h in enumerate(headers)]
    numeric = [
        all(isinstance(r[k], int | float) or hasattr(r[k], "item") for r in rows if r[k] is not None)
        and any(r[k] is not None for r in rows)
        for k in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return ("| " + " | ".join(parts) + " |") if fmt == "markdown" else "  ".join(parts).rstrip()

    out = [line(headers)]
    if fmt == "markdown":
        out.append(
            "|" + "|".join((("-" * (w + 1)) + ":" if num else "-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
        )
    out += [line(r) for r in texts]
    return "\n".join(out)


# ---- human titles of columns (figures, headings) -------------------------------------------------------------
_ATTACK_TITLES = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "aa_apgd-ce": "APGD-CE",
    "aa_apgd-dlr": "APGD-DLR",
    "aa_apgd-t": "APGD-T",
    "aa_fab-t": "FAB-T",
    "aa_square": "Square",
    "autoattack": "AutoAttack",
    "worst_case": "worst case over attacks",
    "ibp": "IBP certified",
    "crown-ibp": "CROWN-IBP certified",
}
_DEVICES = {"edgegpu": "Edge GPU", "edgetpu": "Edge TPU", "eyeriss": "Eyeriss", "fpga": "FPGA", "pixel3": "Pixel 3",
            "raspi4": "Raspberry Pi 4"}  # fmt: skip
_WORDS = {"gaussian": "Gaussian", "jpeg": "JPEG", "nb201": "NB201"}
_TITLES = {"clean": "clean accuracy", "params": "parameters", "flops": "FLOPs",
           "nb201_test_accuracy": "NB201 test accuracy", "mean_adv": "mean adversarial accuracy"}  # fmt: skip


def key_title(key: str) -> str:
    """A key in words: ``'pgd' -> 'PGD'``, ``'gaussian_noise' -> 'Gaussian noise'``, ``'edgegpu_latency' ->
    'Edge GPU latency'``."""
    if key in _ATTACK_TITLES:
        return _ATTACK_TITLES[key]
    if key in _TITLES:
        return _TITLES[key]
    head, _, rest = key.partition("_")
    if head in _DEVICES:
        return f"{_DEVICES[head]} {rest.replace('_', ' ')}".strip()
    return " ".join(_WORDS.get(w, w) for w in key.split("_"))


def column_title(name: str) -> str:
    """A wide column in words, for figure axes and titles: ``'pgd@8' -> 'PGD, eps 8/255'``, ``'fgsm@1/cumulative'
    -> 'FGSM, eps 1/255, cumulative'``, ``'fog:3' -> 'fog, severity 3'``, ``'valid/clean' -> 'clean (validation)'``,
    ``'pgd@8/confidence_pred' -> 'PGD, eps 8/255: confidence pred'``; other names as :func:`key_title` says."""
    parts = name.split("/")
    split = ""
    if parts[0] in ("valid",) and len(parts) > 1:
        split, parts = " (validation)", parts[1:]
    head, rest = parts[0], parts[1:]
    sem = ", cumulative" if "cumulative" in rest else ""
    measure = [p for p in rest if p not in ("cumulative", "per-epsilon")]
    if "@" in head:
        key, eps = head.split("@", 1)
        out = f"{key_title(key)}, eps {eps}/255{sem}"
    elif ":" in head:
        key, sev = head.split(":", 1)
        out = f"{key_title(key)}, severity {sev}"
    else:
        out = key_title(head)
    if measure:
        out += f": {measure[-1].replace('_', ' ')}"
    return out + split


def axis_label(name: str) -> str:
    """A column as an axis label, in words with its unit: ``'fgsm@1'`` -> ``'FGSM, eps 1/255 (accuracy)'``,
    ``'params'`` -> ``'parameters (millions)'``, ``'edgegpu_latency'`` -> ``'Edge GPU latency (ms)'``."""
    d = column_display(name)
    unit = {"accuracy": "accuracy", "params": "millions", "flops": "millions of multiply-adds", "latency": "ms",
            "energy": "mJ", "intensity": "FLOPs per byte", "margin": "logits"}.get(d.kind, "")  # fmt: skip
    title = column_title(name)
    if title.startswith("clean accuracy"):
        return title
    return f"{title} ({unit})" if unit else title


def dataset_title(dataset: str) -> str:
    """A dataset's name as written in figures: ``'cifar10' -> 'CIFAR-10'``, ``'mnist5k' -> 'MNIST-5k'``."""
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist5k": "MNIST-5k"}.get(dataset, dataset)
