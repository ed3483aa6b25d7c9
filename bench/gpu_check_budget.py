"""Time and arithmetic of ``bench/gpu_check.py``: the hard budget (each part's share, a watchdog that ends a part at
its deadline) and the explicit TF32 flags every part runs under and records.

* **Shares** (:func:`share_of`): when a part starts, what is left of the budget is divided among it and the parts
  still to come in proportion to their weights; time a part does not use goes to the later ones.
* **Watchdog** (:func:`watchdog`): a one-shot ``SIGALRM`` timer raises :class:`PartCut` in the main thread at the
  part's deadline, wherever the part is (between two kernels, in a worker pool's wait loop...). ``PartCut`` is a
  ``BaseException``, so no ``except Exception`` of the library swallows it, and ``finally`` blocks still run (the
  worker pools terminate their processes, the out-of-memory part lifts its allocator cap). Parts write what they
  measure into their result dict as they go, so a cut part keeps it. Off the main thread (no signals there) the
  deadline is checked cooperatively by :meth:`Deadline.check`, which the call recorder runs on every forward.
* **Arithmetic** (:func:`arithmetic`): every part runs with TF32 set explicitly through the same switches
  ``rb201.evaluate`` uses (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``):
  off for ``fp32``, on for ``tf32``. PyTorch's default runs cuDNN convolutions in TF32, so a part that left the
  switches alone would time TF32 while calling it float32. :func:`flags` reads what is in force; reports record it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

#: arithmetic modes a part can declare: ``fp32`` (TF32 off), ``tf32`` (TF32 on), ``mixed`` (the part sets the
#: switches itself per measurement and records each: the matmul peak, the precision modes)
MODES = ("fp32", "tf32", "mixed")


class PartCut(BaseException):
    """Raised in a part when its time share is spent (a ``BaseException``: library ``except Exception`` blocks let
    it through)."""


def share_of(left: float, weights: dict[str, float], order: list[str], i: int) -> float:
    """Seconds for part ``order[i]`` when ``left`` seconds of the budget remain: ``left`` times its weight over the
    weights of it and the parts after it (0 when nothing is left)."""
    rest = sum(weights[p] for p in order[i:])
    return max(0.0, left) * weights[order[i]] / rest if rest > 0 else 0.0


class Deadline:
    """The running part's deadline (``time.perf_counter()`` seconds), for parts and helpers that scale their work
    (:meth:`left`) and for the cooperative check off the main thread (:meth:`check`)."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.at = self.start + max(0.0, seconds)
        self.cooperative = False  # set when no signal can stop the part
        self.fired = False

    def left(self) -> float:
        return self.at - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self) -> None:
        """Raise :class:`PartCut` once the deadline has passed, when no signal can do it."""
        if self.cooperative and not self.fired and time.perf_counter() >= self.at:
            self.fired = True
            raise PartCut(f"deadline reached after {self.elapsed():.1f} s")


@contextlib.contextmanager
def watchdog(deadline: Deadline) -> Iterator[Deadline]:
    """Raise :class:`PartCut` in this (main) thread when ``deadline`` passes; off the main thread, or where the
    platform has no ``setitimer``, fall back to the cooperative :meth:`Deadline.check`."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        deadline.cooperative = True
        yield deadline
        return

    def fire(signum: int, frame: Any) -> None:
        deadline.fired = True
        raise PartCut(f"deadline reached after {deadline.elapsed():.1f} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(1e-3, deadline.left()))
    try:
        yield deadline
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- arithmetic -----------------------------------------------------------------------------------------------------
def set_tf32(enabled: bool) -> None:
    """TF32 on or off for CUDA matmuls and cuDNN convolutions (the switches ``rb201.evaluate`` sets); on a CPU
    these are flags only."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


def flags() -> dict[str, Any]:
    """The arithmetic switches in force: TF32 for matmuls and cuDNN (legacy and, where this torch has them, the
    per-backend ``fp32_precision`` settings), float32 matmul precision, cuDNN benchmark and deterministic modes,
    and whether autocast is on."""
    import torch

    out: dict[str, Any] = {"cuda_matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}
    try:
        out["cudnn_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError as exc:  # conv and RNN set apart through the newer API: the legacy getter refuses
        out["cudnn_tf32"] = None
        out["cudnn_tf32_error"] = str(exc).splitlines()[0][:200]
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        out["cudnn_conv_fp32_precision"] = str(conv)
    out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    out["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    out["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)
    out["autocast_cuda"] = bool(torch.is_autocast_enabled("cuda")) if _has_device_autocast() else None
    out["autocast_cpu"] = bool(torch.is_autocast_enabled("cpu")) if _has_device_autocast() else None
    return out


def _has_device_autocast() -> bool:
    import torch

    try:
        torch.is_autocast_enabled("cpu")
        return True
    except TypeError:  # older torch: no device argument
        return False


def tf32_of(f: dict[str, Any]) -> bool | None:
    """True when both TF32 switches are on, False when both are off, None when they disagree or are unreadable."""
    a, b = f.get("cuda_matmul_tf32"), f.get("cudnn_tf32")
    return a if a == b and a is not None else None


@contextlib.contextmanager
def arithmetic(mode: str) -> Iterator[dict[str, Any]]:
    """Run a part in ``mode`` (``fp32``: TF32 off; ``tf32``: on; ``mixed``: off at the start, the part sets them
    per measurement); the switches are restored afterwards. Yields the flags in force at the start."""
    import torch

    if mode not in MODES:
        raise ValueError(f"arithmetic mode {mode!r} not allowed; allowed: {', '.join(MODES)}")
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    set_tf32(mode == "tf32")
    try:
        yield flags()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
