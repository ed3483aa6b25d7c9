"""The training-recipe options shared by ``rb201 train``, ``rb201 evaluate`` and ``rb201 launch`` (choices from
:mod:`robustbench201.vocab`; a value left out keeps the recipe's own). No torch import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..vocab import ADVERSARIAL, HOLDOUTS, RECIPE_NAMES


def recipe_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--recipe``, ``--adversarial``, ``--adv-eps``, ``--adv-step``, ``--adv-steps`` and ``--holdout``."""
    opts = [
        click.option("--recipe", type=click.Choice(RECIPE_NAMES), default=None,
                     help="Training recipe [default: nb201]: nb201 (NAS-Bench-201, standard training) or wu2024 "
                          "(NAS-RobBench-201: 50 epochs, OneCycle, PGD-7 adversarial training), e.g. --recipe wu2024."),
        click.option("--adversarial", type=click.Choice(ADVERSARIAL), default=None,
                     help="Adversarial training: none, or pgd (L-inf PGD with random start, model in eval mode) "
                          "[default: the recipe's], e.g. --adversarial pgd."),
        click.option("--adv-eps", type=click.FloatRange(min=0, max=255, min_open=True), default=None,
                     help="PGD training epsilon in units of 1/255 [default: the recipe's, 8], e.g. --adv-eps 4."),
        click.option("--adv-step", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="PGD training step in units of 1/255 [default: the recipe's, 2], e.g. --adv-step 1."),
        click.option("--adv-steps", type=click.IntRange(min=1), default=None,
                     help="PGD training steps [default: the recipe's, 7], e.g. --adv-steps 10."),
        click.option("--holdout", type=click.Choice(HOLDOUTS), default=None,
                     help="Validation split held out of the training set: none, nb201 (CIFAR-10: NB201's "
                          "cifar10-valid split, 25k/25k) or seeded (10% of each class) [default: the recipe's: "
                          "nb201 none, wu2024 seeded], e.g. --holdout nb201."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return fn
