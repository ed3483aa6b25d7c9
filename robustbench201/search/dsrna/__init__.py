"""DSRNA: differentiable search of robust NB201 cells (Hosseini, Yang & Xie, CVPR 2021), and its comparison with
plain DARTS and random cells.

Modules, lowest first: :mod:`.config` (settings of a search and of a comparison, their defaults and sources; no
torch), :mod:`.result` (what a search returns and the files it writes; no torch), :mod:`.diagnostics` (per-edge
decisions and warnings; no torch), :mod:`.table_prior` (the results table as R_table's per-cell values; no torch),
:mod:`.regularizers` (R_Jac, R_CB, R_table), :mod:`.bilevel` (the search itself),
:mod:`.summary` (what one search reports, table and transfer scores), :mod:`.comparison_report` and
:mod:`.comparison` (``rb201 search dsrna --compare``).

The public names below are importable from here (``from robustbench201.search.dsrna import search, DSRNAConfig``)
and resolved on first use, so importing the package (or its settings) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module of this package that defines it
_LAZY = {
    "DSRNAConfig": "config",
    "CompareConfig": "config",
    "DSRNAResult": "result",
    "RESULT": "result",
    "CHECKPOINT": "result",
    "search": "bilevel",
    "calibrate": "bilevel",
    "arch_objective": "bilevel",
    "load_search_data": "bilevel",
    "summarize": "summary",
    "score_on_table": "summary",
    "compare": "comparison",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
