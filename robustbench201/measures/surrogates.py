"""Robustness surrogates of Jung et al. (ICLR 2023): input-Jacobian norm and input-Hessian of the loss.

All functions take images ``x`` in [0, 1] (N x C x H x W; the model normalizes inside), so derivatives are w.r.t.
the [0, 1]-scaled input (multiply a Jacobian norm by 1/255 for "per pixel level"). The model is run in eval mode
(its train/eval flags are restored afterwards); whether the weights are at initialization or trained is the
caller's choice. Each function returns ``dict(mean=float, per_batch=list[float], n_batches=int, n=int)``.

* :func:`jacobian_frobenius`: per sample, the Frobenius norm of the Jacobian of the logits w.r.t. the input,
  exact; ``mean`` averages over samples, ``per_batch`` holds each batch's mean. One forward and K backward passes
  (one per logit, each giving that row for the whole batch). On CPU this beat one batched backward
  (``is_grads_batched=True``, which also holds K copies of the graph's gradients): full-size NB201 network,
  32 CIFAR-sized images, one thread, 5.0-5.6 s against 7.5-8.4 s; ``torch.func.vmap(jacrev)`` was on par with
  the batched backward on a small network.
* :func:`hessian_max_eigenvalue`: per batch, the dominant eigenvalue of the Hessian of the batch-mean
  cross-entropy w.r.t. the batch input, by power iteration on Hessian-vector products (double backward);
  ``mean`` is the mean over batches. That Hessian is block diagonal with blocks ``H_i / B``, so the value is
  ``max_i lambda_max(H_i) / B``: compare values at the same batch size.
* :func:`hessian_trace`: per batch, Hutchinson's estimate ``E[v^T H v]`` (Rademacher ``v``) of the trace of the same
  Hessian (= mean over the batch of the per-sample traces).

ReLU networks are piecewise linear, so the input Hessian of the logits is zero almost everywhere; the Hessian of the
softmax cross-entropy is not: ``J^T (diag(p) - p p^T) J`` with ``J`` the logit Jacobian. These surrogates therefore
measure the curvature that the softmax adds on top of the locally linear network.

Networks whose output does not depend on the input (an NB201 cell with no path from input to output, PROTOCOL.md
section 1: 341 of the 15625 cells; the network then outputs a constant) have ``J = 0`` and an input Hessian of 0:
the Jacobian norm, the dominant Hessian eigenvalue and the Hessian trace are then exactly 0 (autograd reports such an
input as unused; it is read as a zero derivative, not an error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import Rb201Error

__all__ = ["hessian_max_eigenvalue", "hessian_trace", "hutchinson_trace", "jacobian_frobenius", "power_iteration"]


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Rb201Error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_x(x: Tensor, y: Tensor | None = None) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise Rb201Error(f"x must be a non-empty N x C x H x W tensor of images in [0, 1], got {shape}")
    if y is not None and (y.dim() != 1 or y.shape[0] != x.shape[0]):
        raise Rb201Error(f"y must be a vector of {x.shape[0]} labels, got shape {tuple(y.shape)}")


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in modes.items():
            m.train(flag)


def _result(values: list[float], sizes: list[int], weighted: bool) -> dict:
    n = sum(sizes)
    mean = sum(v * s for v, s in zip(values, sizes, strict=True)) / n if weighted else sum(values) / len(values)
    return {"mean": float(mean), "per_batch": [float(v) for v in values], "n_batches": len(values), "n": n}


def _param_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _input_grad(outputs: Tensor, x: Tensor, **kwargs: object) -> Tensor:
    """``d outputs / d x`` contracted as :func:`torch.autograd.grad` does; zeros where ``outputs`` does not depend on
    ``x`` (a constant-output network), instead of autograd's unused-input error."""
    if not outputs.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(outputs, x, allow_unused=True, **kwargs)  # type: ignore[arg-type]
    return torch.zeros_like(x) if g is None else g


def jacobian_frobenius(model: nn.Module, x: Tensor, batch_size: int = 128) -> dict:
    """Mean over samples of ``||d logits / d x||_F`` (x in [0, 1]); exact, ``batch_size`` samples at a time.

    0 for a network whose output does not depend on its input (a dead NB201 cell)."""
    _check_x(x)
    _check_int("batch_size", batch_size, 1)
    device = _param_device(model)
    values: list[float] = []
    sizes: list[int] = []
    with _eval_mode(model), torch.enable_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device=device, dtype=torch.float32).requires_grad_(True)
            out = model(xb)
            n, k = out.shape
            sq = torch.zeros(n, device=device)
            for c in range(k):  # row c of every sample's Jacobian (samples are independent in eval mode)
                g = _input_grad(out[:, c].sum(), xb, retain_graph=c < k - 1)
                sq += g.pow(2).flatten(1).sum(1)
            fro = sq.sqrt()
            values.append(float(fro.mean()))
            sizes.append(n)
    return _result(values, sizes, weighted=True)


def _rademacher(shape: torch.Size, generator: torch.Generator | None, like: Tensor) -> Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=generator.device if generator else like.device)
    return (bits.to(device=like.device, dtype=like.dtype) * 2 - 1).contiguous()


def power_iteration(
    matvec: Callable[[Tensor], Tensor],
    shape: torch.Size | tuple[int, ...],
    iters: int = 20,
    generator: torch.Generator | None = None,
    tol: float = 1e-3,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> float:
    """Dominant eigenvalue (largest in magnitude, with its sign) of a symmetric linear map given by ``matvec``.

    Starts from a Gaussian vector drawn with ``generator``; stops after ``iters`` products or when the Rayleigh
    quotient changes by less than ``tol`` relative to its magnitude."""
    _check_int("iters", iters, 1)
    if not tol >= 0:
        raise Rb201Error(f"tol must be >= 0, got {tol!r}")
    gen_device = generator.device if generator is not None else torch.device(device)
    v = torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)
    v = v / v.norm()
    eig = 0.0
    for i in range(iters):
        hv = matvec(v)
        new = float((hv * v).sum())
        norm = float(hv.norm())
        if norm == 0.0 or not math.isfinite(norm):
            return new if math.isfinite(new) else 0.0
        v = hv / norm
        if i > 0 and abs(new - eig) <= tol * max(abs(new), 1e-12):
            return new
        eig = new
    return eig


def hutchinson_trace(
    matvec: Callable[[Tensor], Tensor],
    shape: torch.Size | tuple[int, ...],
    n_samples: int = 16,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> float:
    """Hutchinson's unbiased trace estimate ``mean_s v_s^T M v_s`` with Rademacher vectors ``v_s``."""
    _check_int("n_samples", n_samples, 1)
    like = torch.empty(0, dtype=dtype, device=device)
    total = 0.0
    for _ in range(n_samples):
        v = _rademacher(torch.Size(shape), generator, like)
        total += float((matvec(v) * v).sum())
    return total / n_samples


def _loss_hvp(model: nn.Module, xb: Tensor, yb: Tensor) -> Callable[[Tensor], Tensor]:
    """Hessian-vector product of the batch-mean cross-entropy w.r.t. the input (double backward); the zero map when
    the loss does not depend on the input (a constant-output network)."""
    xb = xb.detach().requires_grad_(True)
    loss = F.cross_entropy(model(xb), yb)
    g = _input_grad(loss, xb, create_graph=True)

    def hvp(v: Tensor) -> Tensor:
        return _input_grad(g, xb, grad_outputs=v, retain_graph=True).detach()

    return hvp


def _per_batch(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int, fn: Callable[[Callable, Tensor], float]
) -> dict:
    _check_x(x, y)
    _check_int("batch_size", batch_size, 1)
    device = _param_device(model)
    values: list[float] = []
    sizes: list[int] = []
    with _eval_mode(model), torch.enable_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device=device, dtype=torch.float32)
            yb = y[start : start + batch_size].to(device=device, dtype=torch.long)
            values.append(fn(_loss_hvp(model, xb, yb), xb))
            sizes.append(xb.shape[0])
    return _result(values, sizes, weighted=False)


def hessian_max_eigenvalue(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    batch_size: int = 128,
    iters: int = 20,
    generator: torch.Generator | None = None,
    tol: float = 1e-3,
) -> dict:
    """Mean over batches of the dominant eigenvalue of the input Hessian of the batch-mean cross-entropy
    (x in [0, 1]), by power iteration (``iters`` Hessian-vector products at most, relative tolerance ``tol``).

    0 for a network whose output does not depend on its input (a dead NB201 cell)."""
    _check_int("iters", iters, 1)
    return _per_batch(
        model,
        x,
        y,
        batch_size,
        lambda hvp, xb: power_iteration(hvp, xb.shape, iters, generator, tol, xb.dtype, xb.device),
    )


def hessian_trace(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    batch_size: int = 128,
    n_samples: int = 16,
    generator: torch.Generator | None = None,
) -> dict:
    """Mean over batches of Hutchinson's estimate (``n_samples`` Rademacher probes) of the trace of the input
    Hessian of the batch-mean cross-entropy (x in [0, 1]); 0 for a network whose output does not depend on its
    input."""
    _check_int("n_samples", n_samples, 1)
    return _per_batch(
        model,
        x,
        y,
        batch_size,
        lambda hvp, xb: hutchinson_trace(hvp, xb.shape, n_samples, generator, xb.dtype, xb.device),
    )
