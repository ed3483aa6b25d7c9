"""What a finished DSRNA search is: :class:`DSRNAResult` and the names of the files a search writes. No torch import
(reports and summaries read results without the search engine)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ...errors import Rb201Error
from ...space import OPS, Arch
from .config import DSRNAConfig

__all__ = ["CHECKPOINT", "RESULT", "DSRNAResult"]

#: The checkpoint a search writes after every epoch (``torch.save`` of plain tensors).
CHECKPOINT = "checkpoint.pt"
#: The result a finished search writes (:meth:`DSRNAResult.to_json`).
RESULT = "dsrna_result.json"


@dataclass(frozen=True)
class DSRNAResult:
    """What a search found: the derived cell, the softmax alphas after each epoch (entry 0: at initialisation;
    each 6 x 5 in NB201 edge and op order), per-epoch statistics and timings (seconds); ``a_lr`` the architecture
    learning rate used, ``steps_per_epoch`` the alpha (and weight) steps per epoch, ``reg_scale`` the ``s`` of each
    regulariser (1 in absolute gamma mode)."""

    config: DSRNAConfig
    arch: Arch
    alpha_history: list[list[list[float]]]
    history: list[dict[str, float]]
    total_seconds: float
    a_lr: float = math.nan
    steps_per_epoch: int = 0
    reg_scale: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def arch_string(self) -> str:
        return self.arch.string

    @property
    def index(self) -> int:
        return self.arch.index

    @property
    def representative(self) -> int:
        """Index of the isomorphism-class representative (the id the table holds)."""
        return self.arch.representative.index

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "rb201-dsrna",
            "config": self.config.to_json(),
            "arch": self.arch_string,
            "index": self.index,
            "representative": self.representative,
            "is_dead": self.arch.is_dead,
            "ops": list(OPS),
            "a_lr": self.a_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "reg_scale": self.reg_scale,
            "alpha_history": self.alpha_history,
            "history": self.history,
            "total_seconds": self.total_seconds,
            **self.extra,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DSRNAResult:
        """Read back what :meth:`to_json` wrote (a ``dsrna_result.json``)."""
        if d.get("format") != "rb201-dsrna":
            raise Rb201Error(f"not a DSRNA result (format {d.get('format')!r}, expected 'rb201-dsrna')")
        known = {"format", "config", "arch", "index", "representative", "is_dead", "ops", "a_lr", "steps_per_epoch"}
        known |= {"reg_scale", "alpha_history", "history", "total_seconds"}
        return cls(
            DSRNAConfig.from_json(d["config"]),
            Arch.parse(d["arch"]),
            d["alpha_history"],
            d["history"],
            float(d["total_seconds"]),
            float(d.get("a_lr", math.nan)),
            int(d.get("steps_per_epoch", 0)),
            dict(d.get("reg_scale", {})),
            {k: v for k, v in d.items() if k not in known},
        )
