"""Training recipes: a frozen, hashable :class:`TrainRecipe` whose hyper-parameters are part of the weights' identity.

Two named recipes live in :data:`robustbench201.vocab.RECIPES` (defaults and allowed values):

* ``nb201``: the NAS-Bench-201 protocol (PROTOCOL.md section 3): 200 epochs, SGD lr 0.1, momentum 0.9, Nesterov,
  weight decay 5e-4, batch 256, cosine to 0 set once per epoch, standard training on every training image;
* ``wu2024``: NAS-RobBench-201 (Wu et al., ICLR 2024; PROTOCOL.md section 8): 50 epochs, SGD momentum 0.9 (no
  Nesterov), weight decay 5e-4, batch 256, PyTorch's OneCycleLR to a peak of 0.05 stepped per batch (its
  learning-rate defaults: 30% warm-up, cosine annealing; its momentum cycling off, so momentum stays 0.9 as the
  protocol records), adversarial training
  with L-inf PGD-7 at 8/255, step 2/255, uniform random start, computed with the model in eval mode, loss on the
  adversarial batch only. They report their numbers on a validation set (``val_pgd_8.0_acc``) without saying here
  how it is formed; rb201 holds out 10% of each class of the training set, seed 0 (``holdout='seeded'``), so that
  the validation rows come from images the network never trained on; ``holdout='none'`` trains on every image.

Epsilon and step are in pixel units of 1/255. :attr:`TrainRecipe.label` is the ``weights`` value of every row and
names the trained-network files: ``train-{E}ep`` for the plain ``nb201`` recipe (as before recipes existed),
``train-{name}-{E}ep-{hash8}`` for anything else, the hash covering every hyper-parameter that changes training
(:meth:`TrainRecipe.to_dict`). No torch import.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any

from .errors import Rb201Error, choice_error
from .vocab import RECIPES

__all__ = ["TrainRecipe", "resolve_recipe"]


@dataclass(frozen=True)
class TrainRecipe:
    """All hyper-parameters of one training run except the seed and the network size (validated on creation)."""

    name: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    adversarial: str
    adv_eps: float
    adv_step: float
    adv_steps: int
    adv_random_start: bool
    holdout: str
    holdout_fraction: float
    holdout_seed: int

    def __post_init__(self) -> None:
        if self.name not in RECIPES:
            raise choice_error("training recipe", self.name, list(RECIPES))
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        full = RECIPES[self.name].check(values)
        for key in ("lr", "momentum", "weight_decay", "adv_eps", "adv_step", "holdout_fraction"):
            object.__setattr__(self, key, float(full[key]))
        for key in ("epochs", "batch_size", "adv_steps", "holdout_seed"):
            object.__setattr__(self, key, int(full[key]))

    @classmethod
    def of(cls, name: str = "nb201", **overrides: Any) -> TrainRecipe:
        """The named recipe with some hyper-parameters changed (``None`` values keep the recipe's)."""
        if name not in RECIPES:
            raise choice_error("training recipe", name, list(RECIPES))
        changes = {k: v for k, v in overrides.items() if v is not None}
        RECIPES[name].check(changes)  # unknown names and bad values, before anything else
        return cls(name=name, **{**RECIPES[name].defaults, **changes})

    def replace(self, **changes: Any) -> TrainRecipe:
        """A copy with some hyper-parameters changed (``None`` values keep the current ones)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters that change training: the PGD settings only with adversarial training, the holdout
        fraction and seed only with a seeded holdout."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.adversarial == "none":
            for k in ("adv_eps", "adv_step", "adv_steps", "adv_random_start"):
                d.pop(k)
        if self.holdout != "seeded":
            d.pop("holdout_fraction")
            d.pop("holdout_seed")
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainRecipe:
        """Inverse of :meth:`to_dict` (parameters it leaves out take the recipe's defaults)."""
        if not isinstance(d, dict) or "name" not in d:
            raise Rb201Error(f"not a training recipe (a dict with 'name' and hyper-parameters): {d!r:.80}")
        rest = {k: v for k, v in d.items() if k != "name"}
        return cls.of(str(d["name"]), **rest)

    @cached_property
    def hash(self) -> str:
        """First 16 hex digits of the sha256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def plain(self) -> bool:
        """True for the NB201 protocol unchanged apart from its epoch count (the weights of ``train-{E}ep``)."""
        return self.to_dict() == TrainRecipe.of("nb201", epochs=self.epochs).to_dict()

    @property
    def label(self) -> str:
        """The ``weights`` value of the rows of networks trained with this recipe."""
        if self.plain:
            return f"train-{self.epochs}ep"
        return f"train-{self.name}-{self.epochs}ep-{self.hash[:8]}"

    def file_stem(self, arch_index: int, seed: int) -> str:
        """Stem of a trained-network file: ``{index:05d}-seed{S}-ep{E}`` (plain NB201), else with the label's recipe
        part (``00042-seed0-wu2024-50ep-1a2b3c4d``)."""
        if self.plain:
            return f"{arch_index:05d}-seed{int(seed)}-ep{self.epochs}"
        return f"{arch_index:05d}-seed{int(seed)}-{self.label.removeprefix('train-')}"

    @property
    def step_factor(self) -> float:
        """PGD's step as a multiple of ``eps / steps`` (what :class:`robustbench201.attacks.pgd.PGD` takes)."""
        return self.adv_step * self.adv_steps / self.adv_eps

    def describe(self) -> str:
        """One line for logs and the CLI."""
        adv = "standard training"
        if self.adversarial == "pgd":
            adv = f"PGD-{self.adv_steps} at {self.adv_eps:g}/255, step {self.adv_step:g}/255"
        hold = {"none": "all training images", "nb201": "NB201 cifar10-valid split held out"}.get(
            self.holdout, f"{self.holdout_fraction:g} of each class held out (seed {self.holdout_seed})"
        )
        return (
            f"{self.name}: {self.epochs} epochs, batch {self.batch_size}, lr {self.lr:g} ({self.schedule}), {adv}, "
            f"{hold}"
        )


def resolve_recipe(recipe: TrainRecipe | str | None, epochs: int | None = None) -> TrainRecipe:
    """A recipe object from a name or object (``None``: ``nb201``), with ``epochs`` replaced when given."""
    r = TrainRecipe.of(recipe or "nb201") if not isinstance(recipe, TrainRecipe) else recipe
    return r.replace(epochs=epochs)
