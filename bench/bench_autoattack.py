"""AutoAttack "standard" at full budgets: rb201's ``autoattack`` cascade against pyautoattack's standard version on the
same model and the same points.

Ours: ``create_attack("autoattack")`` with the vocabulary's standard budgets (APGD-CE 100 iterations; APGD-T and FAB-T
9 target classes x 100 iterations; Square 5000 queries; one restart each), run over all epsilons at once by
``run_grid`` (per-epsilon semantics), with the robust accuracy after each stage. Peer: ``pyautoattack.AutoAttack``
(``version="standard"``, seed 0), one ``run_standard_evaluation`` per epsilon, the way a user runs it; its robust
accuracy is that of the points it returns. Both timed in one process, ours first, so the ratio of one run is the
figure to read on a shared machine.

Model: the MNIST-5k MLP of the parity tests (784-64-10 ReLU, Adam 3 epochs on the 4000 training digits), or with
``--nb201 ARCH`` a small NB201 network (C=8, N=1) trained 3 epochs with the NB201 recipe. Epsilons in 1/255 units
(MNIST needs larger radii than CIFAR).

Usage: python bench/bench_autoattack.py --n 500 --eps 8,16,24 [--threads 1] [--nb201 1462]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from robustbench201.attacks import create_attack
from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.data.mnist import load_mnist5k
from robustbench201.vocab import AUTOATTACK_STAGES


def _digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    d = load_mnist5k(split)
    return torch.from_numpy(np.ascontiguousarray(d.images)).float() / 255, torch.from_numpy(d.labels.astype(np.int64))


def mlp() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y = _digits("train")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(3):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 50):
            idx = order[i : i + 50]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval().requires_grad_(False)


def nb201(arch: str) -> nn.Module:
    from robustbench201.train import train_model

    res = train_model(arch, load_mnist5k("train"), epochs=3, seed=777, channels=8, n_cells=1, batch_size=64)
    return res.model.eval().requires_grad_(False)


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(composite robust accuracy per epsilon, accuracy after each stage: epsilons x stages)."""
    with torch.no_grad():
        clean = model(x)
    res = run_grid(create_attack("autoattack"), model, x, y, clean, eps, "per-epsilon",
                   torch.Generator().manual_seed(0), BatchPolicy(len(x) * len(eps)))  # fmt: skip
    after = np.array([[(row > k).mean() for k in range(1, len(AUTOATTACK_STAGES) + 1)] for row in res.stage])
    return res.correct.mean(1), after


def peer(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: tuple[float, ...]) -> np.ndarray:
    import pyautoattack as aa

    accs = []
    for e in eps:
        adv = aa.AutoAttack(model, eps=e / 255, norm="Linf", version="standard", seed=0)
        x_adv, _ = adv.run_standard_evaluation(x, y, batch_size=len(x))
        with torch.no_grad():
            accs.append((model(x_adv).argmax(1) == y).float().mean().item())
    return np.array(accs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="test digits (the first N of the 1000)")
    ap.add_argument("--eps", default="8,16,24", help="epsilons in 1/255 units")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nb201", default=None, help="a small NB201 network of this arch instead of the MLP")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    eps = tuple(float(e) for e in args.eps.split(","))
    model = nb201(args.nb201) if args.nb201 else mlp()
    x, y = _digits("test")
    x, y = x[: args.n], y[: args.n]
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {args.threads}")
    print(f"model: {'NB201 ' + args.nb201 + ' C=8 N=1' if args.nb201 else 'MLP 784-64-10'}; {args.n} MNIST-5k test "
          f"digits; clean accuracy {clean:.3f}")  # fmt: skip
    t0 = time.perf_counter()
    mine, after = ours(model, x, y, eps)
    t_ours = time.perf_counter() - t0
    print(f"rb201 autoattack: {' / '.join(f'{a:.3f}' for a in mine)} in {t_ours:.1f} s", flush=True)
    t0 = time.perf_counter()
    theirs = peer(model, x, y, eps)
    t_peer = time.perf_counter() - t0
    stages = " / ".join(AUTOATTACK_STAGES)
    print(f"\n| eps (1/255) | rb201 autoattack | pyautoattack standard | rb201 after {stages} |")
    print("|---|---|---|---|")
    for i, e in enumerate(eps):
        steps = " / ".join(f"{a:.3f}" for a in after[i])
        print(f"| {e:g} | {mine[i]:.3f} | {theirs[i]:.3f} | {steps} |")
    worst = float((mine - theirs).max())
    print(f"\nours - peer, worst epsilon: {100 * worst:+.1f} points ({'within' if worst <= 0.01 else 'OUTSIDE'} the "
          "1-point rule)")  # fmt: skip
    print(f"wall time: rb201 {t_ours:.1f} s, pyautoattack {t_peer:.1f} s, ratio peer/ours {t_peer / t_ours:.2f}x")


if __name__ == "__main__":
    main()
