"""`rb201 fetch-data` and `rb201 train` through click's CliRunner."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from robustbench201.cli import main
from robustbench201.recipe import TrainRecipe
from robustbench201.space import Arch
from robustbench201.train import checkpoint_file, load_trained, partial_file, read_trained_meta

ARCH = Arch.from_ops((2, 0, 0, 4, 0, 1))
SMALL = ["--epochs", "2", "--channels", "4", "--cells", "1", "--n-train", "64", "--n-test", "40", "--batch-size", "32",
         "--threads", "1"]  # fmt: skip


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_data_module_does_not_import_torch() -> None:
    code = "import sys, robustbench201.cli.data_cmds; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_train_saves_resumes_and_skips(tmp_path) -> None:
    import mlxtend  # noqa: F401 - part of the test extra

    out = tmp_path / "w"
    recipe = TrainRecipe.of("nb201", epochs=2, batch_size=32)  # batch 32 is not NB201's: its own file name
    final = checkpoint_file(out, "mnist5k", ARCH.index, 777, recipe=recipe)
    assert final.name == f"{ARCH.index:05d}-seed777-{recipe.label.removeprefix('train-')}.pt"
    # an interrupted run: a partial checkpoint after epoch 1 of 2
    from robustbench201.data.readers import load_dataset
    from robustbench201.train import train_model

    train_set, test_set = load_dataset("mnist5k", None, "train", n=64), load_dataset("mnist5k", None, "test", n=40)

    class Stop(Exception):
        pass

    def stop(_stats) -> None:
        raise Stop

    with pytest.raises(Stop):
        train_model(ARCH, train_set, 2, 777, channels=4, n_cells=1, batch_size=32,
                    checkpoint_path=partial_file(final), test_set=test_set, on_epoch_end=stop)  # fmt: skip
    res = _run(["train", "--arch", str(ARCH.index), "--dataset", "mnist", "--out", str(out), *SMALL])
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "epoch 2/2" in res.output and "epoch 1/2" not in res.output
    assert final.is_file() and not partial_file(final).exists()
    meta = read_trained_meta(final)
    assert meta["n_train"] == 64 and meta["n_test"] == 40 and meta["dataset"] == "mnist5k"
    model = load_trained(out, ARCH, "mnist5k", 777, channels=4, n_cells=1, recipe=recipe)
    uninterrupted = train_model(ARCH, train_set, 2, 777, channels=4, n_cells=1, batch_size=32)
    assert all(torch.equal(v, uninterrupted.model.state_dict()[k]) for k, v in model.state_dict().items())
    again = _run(["train", "--arch", ARCH.string, "--dataset", "mnist5k", "--out", str(out), *SMALL])
    assert again.exit_code == 0 and "already trained" in again.output
    same_recipe = [*SMALL[:2], "--batch-size", "32", "--n-train", "64", "--threads", "1"]  # but C=16, N=5
    other = _run(["train", "--arch", str(ARCH.index), "--dataset", "mnist5k", "--out", str(out), *same_recipe])
    assert other.exit_code != 0 and "C=4, N=1" in other.output


def test_train_adversarially_names_the_file_by_its_recipe(tmp_path) -> None:
    import mlxtend  # noqa: F401 - part of the test extra

    out = tmp_path / "w"
    adv = ["--adversarial", "pgd", "--adv-eps", "32", "--adv-step", "16", "--adv-steps", "2", "--holdout", "seeded"]
    small = [*SMALL[:6], "--n-train", "100", *SMALL[8:]]  # SMALL with 100 training images
    res = _run(["train", "--arch", str(ARCH.index), "--dataset", "mnist5k", "--out", str(out), *small, *adv])
    assert res.exit_code == 0, res.output
    assert "PGD-2 at 32/255, step 16/255" in res.output and "0.1 of each class held out" in res.output
    recipe = TrainRecipe.of("nb201", epochs=2, batch_size=32, adversarial="pgd", adv_eps=32, adv_step=16, adv_steps=2,
                            holdout="seeded")  # fmt: skip
    final = checkpoint_file(out, "mnist5k", ARCH.index, 777, recipe=recipe)
    assert final.is_file() and final.name.endswith(f"-nb201-2ep-{recipe.hash[:8]}.pt")
    meta = read_trained_meta(final)
    from robustbench201.data.readers import load_dataset
    from robustbench201.data.splits import holdout_split

    kept, held = holdout_split(load_dataset("mnist5k", None, "train", n=100, seed=0), "seeded")
    assert meta["recipe"] == recipe.to_dict() and meta["n_train"] == len(kept) == 100 - len(held) < 100
    # the same network trained normally is another file
    plain = _run(["train", "--arch", str(ARCH.index), "--dataset", "mnist5k", "--out", str(out), *SMALL])
    assert plain.exit_code == 0 and "already trained" not in plain.output
    assert len(list((out / "mnist5k").glob("*.pt"))) == 2
    bad = _run(["train", "--arch", "1462", "--dataset", "mnist5k", "--out", str(out), "--recipe", "madry"])
    assert bad.exit_code != 0 and "'madry'" in bad.output and "wu2024" in bad.output


def test_train_bad_input_messages(tmp_path) -> None:
    res = _run(["train", "--arch", "1462", "--dataset", "svhn", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "svhn" in res.output and "cifar10" in res.output
    res = _run(["train", "--arch", "99999", "--dataset", "cifar10", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "0..15624" in res.output
    res = _run(["train", "--arch", "1462", "--dataset", "cifar10", "--out", str(tmp_path / "w"),
                "--root", str(tmp_path / "empty")])  # fmt: skip
    assert res.exit_code != 0 and "data_batch_1" in res.output and "rb201 fetch-data cifar10" in res.output
    assert "Traceback" not in res.output
    res = _run(["train", "--arch", "1462", "--dataset", "mnist5k", "--out", str(tmp_path), "--device", "tpu"])
    assert res.exit_code != 0 and "cpu" in res.output


def test_fetch_data_cli(httpserver, tmp_path) -> None:
    from test_fetch_data import cifar10_archive

    data = cifar10_archive()
    httpserver.expect_request("/c10.tar.gz").respond_with_data(data)
    url = httpserver.url_for("/c10.tar.gz")
    md5 = "md5:" + hashlib.md5(data).hexdigest()
    res = _run(["fetch-data", "cifar10", "--root", str(tmp_path), "--url", url, "--hash", md5, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert str(tmp_path / "cifar-10-batches-py") in res.output
    bad = _run(["fetch-data", "cifar10", "--root", str(tmp_path / "x"), "--url", url, "--hash", "md5:" + "1" * 32,
                "--no-progress"])  # fmt: skip
    assert bad.exit_code != 0 and "hash" in bad.output and not (tmp_path / "x").exists()
    unknown = _run(["fetch-data", "svhn", "--root", str(tmp_path)])
    assert unknown.exit_code != 0 and "cifar100" in unknown.output


def test_help_lists_examples() -> None:
    assert "rb201 train --arch" in _run(["train", "--help"]).output
    assert "rb201 fetch-data cifar10" in _run(["fetch-data", "--help"]).output
