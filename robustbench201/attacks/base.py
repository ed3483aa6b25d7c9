"""Shared pieces of the attacks: the attack base class, norms and projections, losses, and a pass counter.

Units: inside the attacks images are float tensors in [0, 1] and radii are per-row tensors in [0, 1] units
(``eps_255 / 255``); the 1/255 units of the API boundary are converted by :mod:`robustbench201.attacks.cascade`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import ATTACKS


@dataclass(frozen=True)
class AttackOutput:
    """Per row: the returned adversarial point, the logits there, and whether it fools the model. A cascade of
    several attacks (:attr:`Attack.n_stages` > 0) also says which stage broke each row: ``stage`` (int64) is ``k`` for
    stage ``k`` (1-based, in cascade order) and ``n_stages + 1`` for a row no stage broke."""

    x_adv: torch.Tensor
    logits: torch.Tensor
    fooled: torch.Tensor
    stage: torch.Tensor | None = None


@dataclass(frozen=True)
class Attack:
    """Base class: a frozen set of hyper-parameters plus :meth:`perturb`.

    Subclasses set ``name`` (the registry key, also the stored result key) and ``norms`` (supported threat
    models). ``norm`` selects the threat model of one instance."""

    norm: str = "Linf"

    name: ClassVar[str] = "attack"
    norms: ClassVar[tuple[str, ...]] = ("Linf",)
    #: True if the whole epsilon grid costs about one run (FGSM): the grid runner then never cascades.
    cheap_grid: ClassVar[bool] = False
    #: True if the attack only needs forward passes (Square): the engine may hand it an inference-only model.
    gradient_free: ClassVar[bool] = False
    #: Number of attacks a cascade runs one after the other (0: a single attack); see ``AttackOutput.stage``.
    n_stages: ClassVar[int] = 0

    def __post_init__(self) -> None:
        # the attack's own hyper-parameters (execution options of subclasses are checked by their owners), against
        # the values robustbench201.vocab allows
        entry = ATTACKS[self.name]
        entry.check({k: v for k, v in self.params().items() if k in entry.defaults})

    def params(self) -> dict[str, object]:
        """All hyper-parameters (what a spec records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        """Attack each row ``x[i]`` (in [0, 1]) with label ``y[i]`` inside the ball of radius ``eps[i]`` ([0, 1]
        units). Rows are expected to be correctly classified at the start."""
        raise NotImplementedError

    def perturb_grid(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float], generator: torch.Generator
    ) -> AttackOutput:
        """Every row at every radius of ``eps`` ([0, 1] units), batched together: outputs have E x N rows,
        epsilon-major (row ``e * N + i`` is point ``i`` at ``eps[e]``)."""
        if x.shape[0] == 0:
            return empty_output(model, x)
        n = x.shape[0]
        xs = x.repeat(len(eps), *([1] * (x.dim() - 1)))
        ys = y.repeat(len(eps))
        es = torch.tensor(eps, dtype=x.dtype, device=x.device).repeat_interleave(n)
        return self.perturb(model, xs, ys, es, generator)


def empty_output(model: nn.Module, x: torch.Tensor) -> AttackOutput:
    """The output for zero rows."""
    with torch.no_grad():
        logits = model(x).float()
    return AttackOutput(x.clone(), logits, torch.zeros(0, dtype=torch.bool, device=x.device))


def with_restarts(
    single: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    restarts: int,
) -> AttackOutput:
    """Run ``single(x, y, eps) -> (x_adv, logits, fooled)`` up to ``restarts`` times, each time only on the points
    no earlier run fooled; a later run replaces a stored point only where it fools."""
    out_x = x.clone()
    out_logits: torch.Tensor | None = None
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        todo = (~fooled).nonzero()[:, 0]
        if todo.numel() == 0:
            break
        xa, lg, fo = single(x[todo], y[todo], eps[todo])
        if out_logits is None:
            out_logits = torch.empty((x.shape[0], lg.shape[1]), dtype=lg.dtype, device=x.device)
            out_x[todo], out_logits[todo] = xa, lg
        else:
            hit = todo[fo]
            out_x[hit], out_logits[hit] = xa[fo], lg[fo]
        fooled[todo] = fo
    assert out_logits is not None
    return AttackOutput(out_x, out_logits, fooled)


# ---- geometry -------------------------------------------------------------------------------------------------
def view_rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(R,) -> (R, 1, 1, 1) for broadcasting against images."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def l2_norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Project onto the ``norm`` ball of per-row radius ``eps`` around ``x``, then onto [0, 1]."""
    e = view_rows(eps, x)
    if norm == "Linf":
        return torch.clamp(torch.minimum(torch.maximum(x_adv, x - e), x + e), 0.0, 1.0)
    delta = x_adv - x
    factor = torch.clamp(e / (view_rows(l2_norm(delta), x) + 1e-12), max=1.0)
    return torch.clamp(x + delta * factor, 0.0, 1.0)


def steepest(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit steepest-ascent direction: sign for L-inf, normalized gradient for L2."""
    if norm == "Linf":
        return grad.sign()
    return grad / (view_rows(l2_norm(grad), grad) + 1e-12)


def uniform_start(x: torch.Tensor, eps: torch.Tensor, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniform random point of the ball (L-inf: uniform in the box; L2: uniform radius and direction)."""
    if norm == "Linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return project(x + (2 * u - 1) * view_rows(eps, x), x, eps, norm)
    d = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    d = d / (view_rows(l2_norm(d), x) + 1e-12)
    r = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    return project(x + d * view_rows(r * eps, x), x, eps, norm)


# ---- losses -----------------------------------------------------------------------------------------------------
def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row difference-of-logits-ratio loss (Croce & Hein 2020); needs at least 3 classes."""
    z = logits.float()
    zs, ind = z.sort(dim=1)
    top_is_y = (ind[:, -1] == y).float()
    zy = z.gather(1, y[:, None])[:, 0]
    return -(zy - zs[:, -2] * top_is_y - zs[:, -1] * (1.0 - top_is_y)) / (zs[:, -1] - zs[:, -3] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row targeted DLR loss ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (Croce & Hein 2020; ``pi`` sorts
    the logits in decreasing order); needs at least 4 classes. Maximising it pushes ``z_t`` above ``z_y``."""
    z = logits.float()
    zs = z.sort(dim=1).values
    zy = z.gather(1, y[:, None])[:, 0]
    zt = z.gather(1, target[:, None])[:, 0]
    return -(zy - zt) / (zs[:, -1] - 0.5 * (zs[:, -3] + zs[:, -4]) + 1e-12)


def target_classes(clean_logits: torch.Tensor, n_target_classes: int) -> torch.Tensor:
    """(R, T) target classes of the targeted attacks: per row, the classes of the 2nd, 3rd, ... largest clean logits,
    ``T = min(n_target_classes, K - 1)`` of them (AutoAttack's choice)."""
    order = clean_logits.float().sort(dim=1).indices  # ascending
    t = min(int(n_target_classes), clean_logits.shape[1] - 1)
    return torch.stack([order[:, -c] for c in range(2, t + 2)], dim=1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row margin ``z_y - max_{j != y} z_j`` (negative = misclassified)."""
    z = logits.float()
    zy = z.gather(1, y[:, None])[:, 0]
    other = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return zy - other


def loss_and_grad(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, per-row loss, gradient of the summed loss w.r.t. x), all detached."""
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xr)
        loss = loss_fn(logits, y)
        grad = torch.autograd.grad(loss.sum(), xr, allow_unused=True)[0] if loss.requires_grad else None
        if grad is None:  # the output does not depend on the input (a cell with no path from input to output)
            grad = torch.zeros_like(xr)
    return logits.detach().float(), loss.detach(), grad.detach()


# ---- instrumentation ------------------------------------------------------------------------------------------
class PassCounter(nn.Module):
    """Wraps a model and counts images sent forward and images whose input gradient was requested (a forward
    with ``requires_grad`` input, i.e. one backward pass each)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_images = 0
        self.backward_images = 0

    def reset(self) -> None:
        self.forward_images = 0
        self.backward_images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_images += int(x.shape[0])
        if x.requires_grad and torch.is_grad_enabled():
            self.backward_images += int(x.shape[0])
        return self.model(x)
