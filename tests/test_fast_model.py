"""The fast inference rewrite computes the same function as the eval-mode network (BN folded, dead edges gone)."""

from __future__ import annotations

import random

import pytest
import torch

from robustbench201.attacks.base import ce_loss, loss_and_grad
from robustbench201.models.fast import FastNB201, fast_model
from robustbench201.models.network import create_model
from robustbench201.space import Arch

DEAD_AND_ODD = [(0, 0, 3, 0, 3, 3), (0, 0, 0, 0, 0, 0), (0, 1, 0, 0, 0, 3), (2, 0, 0, 0, 3, 0), (1, 0, 3, 0, 0, 2)]
RANDOM = [tuple(random.Random(i).randrange(5) for _ in range(6)) for i in range(6)]


def _randomize_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1, generator=gen)
            m.running_var.uniform_(0.5, 2, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.uniform_(-1, 1, generator=gen)


@pytest.mark.parametrize("ops", DEAD_AND_ODD + RANDOM)
def test_fast_model_gives_the_same_logits(ops):
    gen = torch.Generator().manual_seed(sum(ops))
    model = create_model(Arch(ops), dataset=None, num_classes=10, channels=4, n_cells=2, in_channels=1).eval()
    _randomize_bn(model, gen)
    fast = fast_model(model)
    assert isinstance(fast, FastNB201)
    x = torch.rand(6, 1, 16, 16, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)  # float32 rounding of folded weights
    y = torch.zeros(6, dtype=torch.long)
    _, _, grad = loss_and_grad(fast, x, y, ce_loss)  # usable by gradient attacks (zero gradient if dead)
    _, _, ref = loss_and_grad(model, x, y, ce_loss)
    torch.testing.assert_close(grad, ref, atol=1e-4, rtol=1e-3)


def test_fast_model_drops_dead_edges():
    arch = Arch((0, 0, 3, 0, 3, 3))  # node 1 has no input: edge 1->2 becomes a constant, no conv runs at eval
    fast = fast_model(create_model(arch, dataset=None, num_classes=10, channels=4, n_cells=1, in_channels=1).eval())
    cell = fast.cells[0]
    assert cell.dynamic == [] and len(cell.static) == 3


def test_other_modules_are_returned_unchanged():
    lin = torch.nn.Linear(3, 2)
    assert fast_model(lin) is lin


def test_large_cpu_batches_run_in_cache_sized_chunks(monkeypatch):
    import robustbench201.models.fast as fast_mod

    assert fast_mod.cpu_chunk_rows(8, 28, 28) == (2 << 20) // (8 * 28 * 28 * 4)
    assert fast_mod.cpu_chunk_rows(512, 64, 64) == 8  # never fewer than 8 rows
    gen = torch.Generator().manual_seed(3)
    model = create_model(Arch((3, 3, 1, 2, 3, 3)), dataset=None, num_classes=10, channels=4, n_cells=1, in_channels=1)
    model.eval()
    _randomize_bn(model, gen)
    fast = fast_model(model)
    x = torch.rand(50, 1, 16, 16, generator=gen)
    with torch.no_grad():
        whole = fast(x)
    seen: list[int] = []
    inner = FastNB201._forward
    monkeypatch.setattr(fast_mod, "CPU_CHUNK_BYTES", 4 * 16 * 16 * 4 * 12)  # 12 rows per chunk
    monkeypatch.setattr(FastNB201, "_forward", lambda self, z: seen.append(len(z)) or inner(self, z))
    with torch.no_grad():
        torch.testing.assert_close(fast(x), whole, atol=1e-6, rtol=1e-6)
    assert seen == [12, 12, 12, 12, 2]
    # gradients flow through the chunks as through one batch
    y = torch.zeros(50, dtype=torch.long)
    _, _, grad = loss_and_grad(fast, x, y, ce_loss)
    _, _, ref = loss_and_grad(model, x, y, ce_loss)
    torch.testing.assert_close(grad, ref, atol=1e-5, rtol=1e-4)
