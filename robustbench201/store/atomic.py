"""The atomic writes of :mod:`robustbench201.atomic` under their earlier name, for the DSRNA search modules that
still import them from here (they move into ``search/dsrna/``; this module goes with that move)."""

from __future__ import annotations

from ..atomic import atomic_path, write_text_atomic

__all__ = ["atomic_path", "write_text_atomic"]
