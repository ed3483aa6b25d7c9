"""How the report shows one wide column: its kind, fixed decimals, scale, unit, label and which way is best.

:func:`column_display` is the one place the HTML report decides how a column's numbers look. It mirrors what the
command line prints today: accuracies and other fractions with 3 decimals, parameters in millions with 3 and FLOPs in
millions with 2, hardware latencies in ms and energies in mJ with 3, raw scores (zero-cost proxies, surrogates,
certified margins) with 4 significant digits. The page receives this as per-column metadata and formats the raw
values itself (nothing is pre-formatted per cell). "Best first" is :func:`robustbench201.tables.select.
best_first_descending`'s rule, so the report sorts the way ``rb201 table --sort`` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..search.plots import metric_label
from ..tables.index import Index
from ..tables.select import best_first_descending

__all__ = ["ColumnDisplay", "column_display"]

#: Measures that are fractions of images (or of probability mass): shown like accuracies.
_FRACTION_MEASURES = ("accuracy", "confidence_pred", "confidence_true", "ece")
#: Families whose plain values are accuracies (fractions 0..1).
_ACCURACY_FAMILIES = ("clean", "adversarial", "corruption", "certified", "nb201-training")


@dataclass(frozen=True)
class ColumnDisplay:
    """The display of one wide column. ``decimals`` fixed decimals after multiplying by ``scale`` (None: ``digits``
    significant digits instead); ``unit`` printed after the value in headers ("" for fractions 0..1);
    ``descending``: best first means largest first."""

    name: str
    label: str
    kind: str  # accuracy | fraction | params | flops | latency | energy | intensity | score
    decimals: int | None
    digits: int
    scale: float
    unit: str
    descending: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def column_display(idx: Index, name: str) -> ColumnDisplay:
    """The display of wide column ``name`` of one dataset's index ``idx``."""
    info = idx.info[idx.column(name)]
    family = str(info.get("family", ""))
    measure = str(info.get("measure", "") or "")
    key = str(info.get("key", name))
    label = metric_label(name)
    descending = best_first_descending(idx, name)
    if measure in _FRACTION_MEASURES and measure != "accuracy":
        return ColumnDisplay(name, label, "fraction", 3, 4, 1.0, "", descending)
    if family in _ACCURACY_FAMILIES and measure in ("accuracy", "value"):
        return ColumnDisplay(name, label, "accuracy", 3, 4, 1.0, "", descending)
    if family == "cost" and key == "params":
        return ColumnDisplay(name, label, "params", 3, 4, 1.0, "M", descending)
    if family == "cost" and key == "flops":
        return ColumnDisplay(name, label, "flops", 2, 4, 1.0, "M", descending)
    if family == "hardware":
        if key.endswith("_latency"):
            return ColumnDisplay(name, label, "latency", 3, 4, 1.0, "ms", descending)
        if key.endswith("_energy"):
            return ColumnDisplay(name, label, "energy", 3, 4, 1.0, "mJ", descending)
        if key.endswith("_arithmetic_intensity"):
            return ColumnDisplay(name, label, "intensity", 3, 4, 1.0, "FLOPs/byte", descending)
    return ColumnDisplay(name, label, "score", None, 4, 1.0, "", descending)
