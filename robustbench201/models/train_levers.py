"""Execution levers of a training step (:func:`robustbench201.train.train_model`'s ``levers``). None changes the
recipe (optimizer, schedule, batches, augmentation, seeds); each is off by default and is switched on only where a
measurement shows it pays (``BENCHMARKS.md``, the GPU check's ``train_levers`` part).

* ``channels_last``: the network's 4-D weights and every batch in channels-last memory format (N x H x W x C), the
  layout cuDNN's fastest convolution kernels read on recent GPUs. Values change only by the order of float sums.
* ``autocast="bf16"``: the forward pass under ``torch.autocast`` with bfloat16. The parameters, their gradients,
  SGD's momentum and the update stay float32 (float32 master weights: autocast casts a copy of each weight per op);
  the loss is taken in float32 from float32 logits. bfloat16 has float32's exponent range, so no loss scaling is
  needed. This changes the arithmetic, so the trained weights differ from float32 training; the run's metadata
  records the levers.
* ``tf32``: TF32 for CUDA matmuls and cuDNN convolutions during the step. Off by default: the step sets both
  switches explicitly, so training runs in true float32 (as evaluation does) whatever PyTorch's default (cuDNN
  convolutions in TF32). On a CPU these are flags only.
* ``compile``: the forward and loss compiled with ``torch.compile`` (its backward through AOTAutograd); the first
  steps pay for the compilation, and a last, smaller batch compiles once more.

:class:`TrainStep` is the whole step (forward, loss, backward, SGD update) with the levers applied. With every lever
off it computes exactly ``model(x)``, the loss, ``zero_grad``, ``backward`` and ``opt.step()``, in that order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import Rb201Error, choice_error

AUTOCAST = ("off", "bf16")


@dataclass(frozen=True)
class TrainLevers:
    """How a training step runs (not what it computes): memory format, autocast, TF32, compilation."""

    channels_last: bool = False
    autocast: str = "off"
    tf32: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("channels_last", "tf32", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise Rb201Error(f"training lever {name}={getattr(self, name)!r} not allowed; allowed: true, false")
        if self.autocast not in AUTOCAST:
            raise choice_error("training autocast", self.autocast, list(AUTOCAST))

    @property
    def active(self) -> bool:
        """True when any lever differs from the default."""
        return self != TrainLevers()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrainLevers:
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise Rb201Error(f"unknown training lever(s) {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def describe(self) -> str:
        on = [k for k in ("channels_last", "tf32", "compile") if getattr(self, k)]
        if self.autocast != "off":
            on.insert(0, f"autocast {self.autocast}")
        return ", ".join(on) or "none (float32, contiguous, eager)"


@contextlib.contextmanager
def tf32_switches(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions set to ``enabled`` inside, restored afterwards."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class TrainStep:
    """One training step of ``model`` with ``opt`` and ``loss_fn`` under ``levers`` (see the module docstring):
    ``logits, loss = step(x, y)`` with ``x`` a float batch on the model's device; returns float32 logits and the
    float32 loss (both attached to the graph that was just back-propagated; detach them to keep them)."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, loss_fn: nn.Module, levers: TrainLevers,
                 device: torch.device) -> None:  # fmt: skip
        self.model, self.opt, self.loss_fn, self.levers = model, opt, loss_fn, levers
        self.device = torch.device(device)
        if levers.channels_last:
            model.to(memory_format=torch.channels_last)  # parameters keep their identity: the optimizer still has them
        fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self._forward_loss
        self._fn = torch.compile(fn) if levers.compile else fn

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.levers.autocast == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                logits = self.model(x)
            logits = logits.float()
        else:
            logits = self.model(x)
        return logits, self.loss_fn(logits, y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.levers.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with tf32_switches(self.levers.tf32):
            logits, loss = self._fn(x, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return logits, loss
