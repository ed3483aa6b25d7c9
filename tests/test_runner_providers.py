"""Weights providers of the default evaluator: seeded init, rb201-trained directories, training with a kept
checkpoint, and official NATS-Bench archive files (a small archive in the real format)."""

from __future__ import annotations

import bz2
import pickle

import numpy as np
import pytest
import torch

from robustbench201.data.base import ImageSet
from robustbench201.errors import CheckpointError, Rb201Error
from robustbench201.models.counting import param_count
from robustbench201.models.network import create_model
from robustbench201.runner.providers import EvalJob, WeightsChoice
from robustbench201.runner.worker import Status, process_arch
from robustbench201.train import checkpoint_file, save_trained


def job(weights: WeightsChoice, **kw) -> EvalJob:
    kw.setdefault("dataset", "mnist5k")
    return EvalJob("{}", "abc123", weights=weights, channels=4, n_cells=1, **kw)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_init_weights_are_seeded_and_labelled():
    a = job(WeightsChoice("init"), seed=1).model(7, "cpu")
    b = job(WeightsChoice("init"), seed=1).model(7, "cpu")
    c = job(WeightsChoice("init"), seed=2).model(7, "cpu")
    assert same_weights(a, b) and not same_weights(a, c) and not a.training
    assert job(WeightsChoice("init")).identity()["weights"] == "init"


def test_dir_weights_load_rb201_trained_networks_and_refuse_mismatches(tmp_path):
    model = create_model(11, "mnist5k", channels=4, n_cells=1)
    save_trained(tmp_path, model, "mnist5k", seed=3, epochs=5)
    w = WeightsChoice.parse(str(tmp_path), epochs=5)
    assert same_weights(job(w, seed=3).model(11, "cpu"), model)
    with pytest.raises(CheckpointError, match="no trained network"):
        job(w, seed=4).model(11, "cpu")


def test_train_weights_train_once_and_keep_the_network(tmp_path):
    rng = np.random.default_rng(0)
    train = ImageSet("mnist5k", "train", rng.integers(0, 255, (32, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, 32))
    j = job(WeightsChoice.parse("train", epochs=1), seed=5, train_dir=str(tmp_path))
    first = j.model(2, "cpu", train)
    assert checkpoint_file(tmp_path, "mnist5k", 2, 5, 1).is_file()
    assert same_weights(j.model(2, "cpu", None), first)  # loaded, not trained again (no data needed)


def _archive(path, arch: int, params_arch: int | None = None) -> None:
    model = create_model(arch, "cifar10")
    p_arch = arch if params_arch is None else params_arch
    run = {
        "net_state_dict": model.state_dict(),
        "params": param_count(create_model(p_arch, "cifar10").arch, 10, 16, 5, 3) / 1e6,
        "arch_config": {"arch_str": model.arch.string, "channel": 16, "num_cells": 5, "class_num": 10},
    }
    with bz2.open(path, "wb") as fh:
        pickle.dump({"200": {"all_results": {("cifar10", 777): run}}}, fh)


def test_nats_weights_load_official_files_and_bad_ones_become_failures(tmp_path):
    _archive(tmp_path / "001462.pickle.pbz2", 1462)
    _archive(tmp_path / "000000.pickle.pbz2", 0, params_arch=1462)  # a record of another architecture
    w = WeightsChoice.parse(f"nats:{tmp_path}", trust=True)
    j = job(w, dataset="cifar10", seed=777)
    assert w.label == "nb201-200ep" and not j.model(1462, "cpu").training
    with pytest.raises(CheckpointError, match="another architecture"):
        j.model(0, "cpu")

    def evaluator(index):
        return j.model(index, "cpu")  # raises before producing rows

    msg = process_arch(evaluator, tmp_path, 0, "abc123", "{}", "cpu", retries=2)
    assert msg.status == Status.FAILED and msg.error_type == "CheckpointError" and msg.attempts == 1


def test_missing_dataset_files_fail_before_any_work(tmp_path):
    from robustbench201.data.readers import MissingDataError

    j = job(WeightsChoice("init"), dataset="cifar10", data_root=str(tmp_path))
    with pytest.raises(MissingDataError, match="cifar"):
        j.check()


@pytest.mark.parametrize("stale", [b"garbage", "other-run"])
def test_a_stale_partial_checkpoint_is_retrained_not_a_failure_on_every_rerun(tmp_path, stale):
    """A killed training leaves ``*.pt.partial``; a corrupt one, or one of another run, must not fail every re-run."""
    from robustbench201.train import partial_file, train_model

    rng = np.random.default_rng(0)
    train = ImageSet("mnist5k", "train", rng.integers(0, 255, (32, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, 32))
    part = partial_file(checkpoint_file(tmp_path, "mnist5k", 2, 5, 1))
    part.parent.mkdir(parents=True)
    if stale == "other-run":  # a resumable state of the same file name but another network size
        train_model(2, train, epochs=1, seed=5, channels=8, n_cells=1, checkpoint_path=part)
    else:
        part.write_bytes(stale)
    j = job(WeightsChoice.parse("train", epochs=1), seed=5, train_dir=str(tmp_path))
    model = j.model(2, "cpu", train)
    assert model.channels == 4 and checkpoint_file(tmp_path, "mnist5k", 2, 5, 1).is_file()
    assert not part.exists()
    # the library default still refuses, with a one-line reason and no advice to unpickle code
    part.write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as err:
        train_model(2, train, epochs=1, seed=5, channels=4, n_cells=1, checkpoint_path=part)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def test_trained_networks_of_another_size_are_refused(tmp_path):
    model = create_model(11, "mnist5k", channels=8, n_cells=1)
    save_trained(tmp_path, model, "mnist5k", seed=3, epochs=5)
    w = WeightsChoice.parse(str(tmp_path), epochs=5)
    with pytest.raises(CheckpointError, match="channels"):
        job(w, seed=3).model(11, "cpu")  # the job asks for channels=4


def test_official_weights_need_an_official_training_length(tmp_path):
    with pytest.raises(Rb201Error, match="12 or 200 epochs"):
        WeightsChoice.parse(f"nats:{tmp_path}", epochs=50, trust=True)
    assert WeightsChoice.parse(f"nats:{tmp_path}", epochs=12, trust=True).label == "nb201-12ep"
