"""rb201: a NAS-Bench-201 robustness dataset builder and query API.

``import robustbench201 as rb201`` is cheap: torch and pandas are imported only by the functions that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .space import Arch

# public name -> (module, attribute); resolved on first access
_LAZY = {
    "create_model": ("robustbench201.models.network", "create_model"),
    "NB201Network": ("robustbench201.models.network", "NB201Network"),
    "load_official": ("robustbench201.models.weights", "load_official"),
    "param_count": ("robustbench201.models.counting", "param_count"),
    "flop_count": ("robustbench201.models.counting", "flop_count"),
    "model_info": ("robustbench201.models.counting", "model_info"),
    "query": ("robustbench201._query", "query"),
    "query_many": ("robustbench201._query", "query_many"),
    "table": ("robustbench201._query", "table"),
    "load": ("robustbench201._query", "load"),
    "Dataset": ("robustbench201._query", "Dataset"),
    "QueryResult": ("robustbench201._query", "QueryResult"),
    "default_dataset": ("robustbench201._query", "default_dataset"),
    "evaluate": ("robustbench201.evaluation", "evaluate"),
    "EvalResult": ("robustbench201.evaluation", "EvalResult"),
    "EvalSpec": ("robustbench201.spec", "EvalSpec"),
    "preset": ("robustbench201.spec", "preset"),
}

__all__ = ["Arch", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'robustbench201' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
