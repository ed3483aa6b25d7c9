"""The jung2023 attack grid on one small trained NB201 net: ours (``rb201.evaluate``) against the reference way.

Ours: ``evaluate`` with the jung2023 attacks (FGSM 11 epsilons; PGD-40, APGD-CE 100 iterations and Square 5000
queries at 7 epsilons each; per-epsilon semantics; no corruptions, no surrogates), one ``evaluate`` call per attack
so that passes can be counted per attack. The model handed to ``evaluate`` is the fast exact rewrite
(``fast_model``: BatchNorm folded, dead edges removed) wrapped in :class:`PassCounter`, exactly what ``evaluate``
builds itself when ``spec.fast_forward`` is on; the rewrite is built inside the timed region.

Reference: the peer libraries run the way a user runs them, one call per attack and epsilon, on the eval-mode
network as trained: torchattacks FGSM and PGD (40 steps, step ``2.5 * eps / 40``, uniform random start: the same
budget and start as ours), pyautoattack APGD-CE (100 iterations, ``n_restarts=1``) and Square (5000 queries,
``p_init=0.8``), both in AutoAttack's custom mode. torchattacks attacks every image, so a reference point counts
as robust if it is clean-correct and its adversarial point is classified correctly (the definition AutoAttack and
ours use).

Epsilons in 1/255 units. ``--grid scaled`` multiplies the jung2023 epsilons by 8 (capped at 255), which suits
MNIST (a CIFAR-sized radius barely moves an MNIST net). Wall time is measured in one process, ours and the
reference interleaved per attack, so the ratio of one run is the figure to read on a shared machine.

Usage: python bench/bench_attacks.py --n 200 --dataset mnist5k --channels 8 --cells 1 --arch 1462 \\
    --train-epochs 3 [--grid jung2023|scaled] [--peers] [--threads 1] [--attacks fgsm,pgd,aa_apgd-ce,aa_square]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from robustbench201.attacks import PassCounter
from robustbench201.data.mnist import load_mnist5k
from robustbench201.evaluation import evaluate
from robustbench201.models.fast import fast_model
from robustbench201.spec import attack, preset
from robustbench201.train import train_model

ATTACK_KEYS = ("fgsm", "pgd", "aa_apgd-ce", "aa_square")


def scaled_spec(grid: str):  # type: ignore[no-untyped-def]
    """The jung2023 attack spec without corruptions; ``scaled`` multiplies every epsilon by 8 (capped at 255)."""
    spec = preset("jung2023").replace(corruptions=(), surrogates=(), certified=())
    if grid == "jung2023":
        return spec
    attacks = tuple(
        attack(a.name, tuple(sorted({min(255.0, 8.0 * e) for e in a.epsilons})), **dict(a.params)) for a in spec.attacks
    )
    return spec.replace(attacks=attacks, name="jung2023-x8")


class Counting(nn.Module):
    """Counts images sent forward and images whose input gradient can be requested (one backward each)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_images = 0
        self.backward_images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_images += int(x.shape[0])
        if x.requires_grad and torch.is_grad_enabled():
            self.backward_images += int(x.shape[0])
        return self.model(x)


def run_ours(net: nn.Module, data, base, a, seed: int, device: str = "cpu") -> dict:  # type: ignore[no-untyped-def]
    """``evaluate`` of one attack grid on ``device`` (the network is moved there); wall seconds, robust accuracy per
    epsilon (per-epsilon semantics), forward / backward images counted, and the clean-correct points attacked."""
    spec = base.replace(attacks=(a,), fast_forward=False, seed=seed)
    t0 = time.perf_counter()
    counter = PassCounter(fast_model(net))
    res = evaluate(counter, data, spec, device=device)
    wall = time.perf_counter() - t0
    accs = [res.value(a.name, epsilon=e, semantics="per-epsilon") for e in a.epsilons]
    n = len(data)
    return {
        "wall": wall,
        "acc": accs,
        "fwd": counter.forward_images,
        "bwd": counter.backward_images,
        "attacked": int(round(res.value("clean") * n)),
        "robust": [int(round(v * n)) for v in accs],
    }


def run_reference(  # type: ignore[no-untyped-def]
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    a,
    seed: int,
    device: str = "cpu",
    deadline: float | None = None,
) -> dict:
    """The peer libraries on ``x, y`` (already on ``device``), one call per epsilon. With ``deadline`` (a
    ``time.perf_counter()`` value), an epsilon is not started when the previous one's time would overrun it;
    ``eps_done`` lists the epsilons run (1/255 units) and ``acc`` has one value per epsilon done."""
    p = dict(a.params)
    counter = Counting(net).eval()
    with torch.no_grad():
        clean_ok = net(x).argmax(1) == y
    accs: list[float] = []
    done: list[float] = []
    t0 = time.perf_counter()
    last = 0.0
    for e255 in a.epsilons:
        if deadline is not None and done and time.perf_counter() + last > deadline:
            break
        t_eps = time.perf_counter()
        eps = e255 / 255.0
        if a.name in ("fgsm", "pgd"):
            import torchattacks as ta

            if a.name == "fgsm":
                atk = ta.FGSM(counter, eps=eps)
            else:
                atk = ta.PGD(
                    counter, eps=eps, alpha=p["step_factor"] * eps / p["steps"], steps=p["steps"], random_start=True
                )
            torch.manual_seed(seed)  # torchattacks draws its random start from the global generator
            x_adv = atk(x, y)
        else:
            import pyautoattack as aa

            name = "apgd-ce" if a.name == "aa_apgd-ce" else "square"
            adv = aa.AutoAttack(counter, attacks=[name], eps=eps, version="custom", seed=seed, device=device)
            if name == "apgd-ce":
                adv.apgd.n_restarts = p["n_restarts"]
                adv.apgd.n_iter = p["n_iter"]  # the default (100) too; checkpoints follow from it
            else:
                adv.square.n_queries, adv.square.p_init = p["n_queries"], p["p_init"]
            x_adv, _ = adv.run_standard_evaluation(x, y, batch_size=len(x))
        with torch.no_grad():
            accs.append(float(((net(x_adv).argmax(1) == y) & clean_ok).float().mean()))
        done.append(e255)
        last = time.perf_counter() - t_eps
    wall = time.perf_counter() - t0
    return {"wall": wall, "acc": accs, "fwd": counter.forward_images, "bwd": counter.backward_images, "eps_done": done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="test images")
    ap.add_argument("--dataset", default="mnist5k", choices=["mnist5k"])
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--arch", default="1462", help="NB201 index or arch string")
    ap.add_argument("--train-epochs", type=int, default=3)
    ap.add_argument("--grid", default="scaled", choices=["jung2023", "scaled"])
    ap.add_argument("--peers", action="store_true", help="also run the reference (torchattacks, pyautoattack)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--attacks", default=",".join(ATTACK_KEYS), help="comma-separated subset of " + ",".join(ATTACK_KEYS)
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = int(args.arch) if args.arch.isdigit() else args.arch
    keys = [k.strip() for k in args.attacks.split(",") if k.strip()]
    spec = scaled_spec(args.grid)

    print(
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} thread(s); load average before: {os.getloadavg()}"
    )
    t0 = time.perf_counter()
    train = load_mnist5k("train")
    tr = train_model(arch, train, epochs=args.train_epochs, seed=777, channels=args.channels, n_cells=args.cells)
    net = tr.model.eval().requires_grad_(False)
    test = load_mnist5k("test").subset(args.n, seed=0)
    x = torch.from_numpy(np.ascontiguousarray(test.images)).float() / 255
    y = torch.from_numpy(np.asarray(test.labels, dtype=np.int64))
    with torch.no_grad():
        clean = float((net(x).argmax(1) == y).float().mean())
    print(
        f"# arch {tr.arch.string} C={args.channels} N={args.cells}, trained {args.train_epochs} epochs in "
        f"{time.perf_counter() - t0:.1f} s; clean accuracy {clean:.3f} on {len(test)} test images; grid {spec.name}"
    )

    tot_o = tot_r = 0.0
    for a in spec.attacks:
        if a.name not in keys:
            continue
        o = run_ours(net, test, spec, a, args.seed)
        tot_o += o["wall"]
        r = run_reference(net, x, y, a, args.seed) if args.peers else None
        print(f"\n## {a.name}  {dict(a.params)}")
        if r is None:
            print(f"ours {o['wall']:.1f} s; passes/image fwd {o['fwd'] / len(test):.1f} bwd {o['bwd'] / len(test):.1f}")
            print("eps(1/255)  " + "  ".join(f"{e:>6g}" for e in a.epsilons))
            print("ours        " + "  ".join(f"{v:6.3f}" for v in o["acc"]))
            continue
        tot_r += r["wall"]
        print(f"wall: ours {o['wall']:.1f} s, reference {r['wall']:.1f} s, ratio {r['wall'] / o['wall']:.2f}x")
        print(
            f"passes/image: ours fwd {o['fwd'] / len(test):.1f} bwd {o['bwd'] / len(test):.1f}; "
            f"reference fwd {r['fwd'] / len(test):.1f} bwd {r['bwd'] / len(test):.1f}"
        )
        print("eps(1/255)  " + "  ".join(f"{e:>6g}" for e in a.epsilons))
        print("ours        " + "  ".join(f"{v:6.3f}" for v in o["acc"]))
        print("reference   " + "  ".join(f"{v:6.3f}" for v in r["acc"]))
        diff = np.array(o["acc"]) - np.array(r["acc"])
        print("ours-ref    " + "  ".join(f"{v:+6.3f}" for v in diff) + f"   (worst {diff.max():+.3f})", flush=True)
    print(
        f"\n# total attack wall: ours {tot_o:.1f} s"
        + (f", reference {tot_r:.1f} s, ratio {tot_r / tot_o:.2f}x" if tot_r else "")
    )
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
