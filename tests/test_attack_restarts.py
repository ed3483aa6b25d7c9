"""Restarts: a later run only attacks points no earlier run fooled, and only replaces a point where it fools."""

from __future__ import annotations

import pytest
import torch

from robustbench201.attacks import create_attack
from robustbench201.models import create_model


@pytest.fixture(scope="module")
def model_and_data():
    torch.manual_seed(0)
    model = create_model(1462, dataset=None, num_classes=10, channels=4, n_cells=1, in_channels=1).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(48, 1, 28, 28, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)  # every point starts correctly classified
    return model, x, y


@pytest.mark.parametrize(
    ("name", "restart_key", "budget"),
    [
        ("pgd", "restarts", {"steps": 3}),
        ("aa_apgd-ce", "n_restarts", {"n_iter": 4}),
        ("aa_square", "n_restarts", {"n_queries": 10}),
    ],
)
def test_more_restarts_fool_a_superset(model_and_data, name, restart_key, budget):
    model, x, y = model_and_data
    eps = torch.full((len(y),), 2.0 / 255)
    outs = {}
    for r in (1, 3):
        attack = create_attack(name, **budget, **{restart_key: r})
        outs[r] = attack.perturb(model, x, y, eps, torch.Generator().manual_seed(7))
    one, three = outs[1], outs[3]
    assert bool((one.fooled <= three.fooled).all())
    assert int(three.fooled.sum()) >= int(one.fooled.sum())
    # stored points are inside the ball and their logits are the model's logits there
    assert float((three.x_adv - x).abs().amax()) <= 2.0 / 255 + 1e-6
    with torch.no_grad():
        torch.testing.assert_close(model(three.x_adv), three.logits, rtol=1e-4, atol=1e-4)
    assert bool(((three.logits.argmax(1) != y) == three.fooled).all())
