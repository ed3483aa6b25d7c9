"""Official weight files, written by the tests in exactly the NATS-Bench / NB201 archive formats."""

from __future__ import annotations

import bz2
import pickle
from pathlib import Path

import pytest
import torch

from robustbench201.errors import CheckpointError, InvalidChoiceError
from robustbench201.models import create_model
from robustbench201.models.counting import param_count
from robustbench201.models.weights import load_official, read_archive_record
from robustbench201.space import Arch

ARCH = Arch.from_index(13433)
C, N = 4, 1


def _run(arch: Arch, dataset: str, seed: int, state: dict | None, params: float | None = None) -> dict:
    """One ``ResultsCount`` state dict as the official archives store it."""
    classes = {"cifar10": 10, "cifar10-valid": 10, "cifar100": 100, "ImageNet16-120": 120}[dataset]
    return {
        "name": dataset,
        "net_state_dict": state,
        "train_acc1es": {0: 10.0},
        "train_acc5es": None,
        "train_losses": {0: 2.3},
        "train_times": None,
        "arch_config": {"channel": C, "num_cells": N, "arch_str": arch.string, "class_num": classes},
        "params": param_count(arch, classes, C, N) / 1e6 if params is None else params,
        "flop": 1.0,
        "seed": seed,
        "epochs": 200,
        "latency": [0.01],
        "eval_names": ["ori-test"],
        "eval_acc1es": {"ori-test@199": 90.0},
        "eval_times": {},
        "eval_losses": {},
    }


def _record(arch: Arch, runs: dict) -> dict:
    """One ``ArchResults`` state dict."""
    return {
        "arch_index": arch.index,
        "arch_str": arch.string,
        "all_results": runs,
        "dataset_seed": {},
        "clear_net_done": False,
    }


def _state(arch: Arch, dataset: str, seed: int) -> dict:
    torch.manual_seed(seed)
    model = create_model(arch, "cifar10" if dataset == "cifar10-valid" else dataset, channels=C, n_cells=N)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture()
def archives(tmp_path: Path) -> dict[str, Path]:
    full = {
        ("cifar10", 777): _run(ARCH, "cifar10", 777, _state(ARCH, "cifar10", 777)),
        ("cifar10", 888): _run(ARCH, "cifar10", 888, _state(ARCH, "cifar10", 888)),
        ("cifar100", 777): _run(ARCH, "cifar100", 777, _state(ARCH, "cifar100", 777)),
    }
    less = {("cifar10", 777): _run(ARCH, "cifar10", 777, _state(ARCH, "cifar10", 12))}
    nats = tmp_path / f"{ARCH.index:06d}.pickle.pbz2"
    with bz2.open(nats, "wb") as fh:
        pickle.dump({"12": _record(ARCH, less), "200": _record(ARCH, full)}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    nb201 = tmp_path / f"{ARCH.index:06d}-FULL.pth"
    torch.save({"full": _record(ARCH, full), "less": _record(ARCH, less)}, nb201)
    return {"nats": nats, "nb201": nb201}


@pytest.mark.parametrize("fmt", ["nats", "nb201"])
def test_loads_strictly_with_200_epochs_by_default(archives, fmt):
    loaded = load_official(archives[fmt], "cifar10", seed=888, trust=True)
    assert loaded.arch == ARCH and loaded.hp == "200" and loaded.seed == 888
    expected = _state(ARCH, "cifar10", 888)
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, expected[k])
    assert not loaded.model.training


@pytest.mark.parametrize("fmt", ["nats", "nb201"])
def test_hp_12_is_explicit_and_different(archives, fmt):
    w12 = load_official(archives[fmt], "cifar10", seed=777, hp="12", trust=True).model.state_dict()
    w200 = load_official(archives[fmt], "cifar10", seed=777, trust=True).model.state_dict()
    assert not torch.equal(w12["classifier.weight"], w200["classifier.weight"])


def test_loaded_network_gives_the_reference_logits(archives):
    import xautodl  # noqa: F401 - part of the test extra
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure

    loaded = load_official(archives["nats"], "cifar100", seed=777, trust=True)
    ref = TinyNetwork(C, N, Structure.str2structure(ARCH.string), 100)
    ref.load_state_dict(_state(ARCH, "cifar100", 777), strict=True)
    ref.eval()
    x = torch.rand(3, 3, 32, 32)
    mean, std = loaded.model.normalize.mean, loaded.model.normalize.std
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ref((x - mean) / std)[1], rtol=1e-5, atol=1e-5)


def test_pickles_need_an_explicit_trust_acknowledgement(archives):
    with pytest.raises(CheckpointError, match="trust=True"):
        load_official(archives["nats"], "cifar10")
    with pytest.raises(CheckpointError, match="trust=True"):
        read_archive_record(archives["nb201"], trust=False)


def test_missing_seed_lists_what_exists(archives):
    with pytest.raises(CheckpointError, match=r"seed=999; available: \['cifar10/777', 'cifar10/888', 'cifar100/777'\]"):
        load_official(archives["nats"], "cifar10", seed=999, trust=True)


def test_unknown_dataset_and_hp(archives):
    with pytest.raises(InvalidChoiceError, match="unknown archive dataset 'cifar-10'"):
        load_official(archives["nats"], "cifar-10", trust=True)
    with pytest.raises(InvalidChoiceError, match="hp"):
        load_official(archives["nats"], "cifar10", hp="100", trust=True)


def test_params_mismatch_is_refused(tmp_path):
    other = Arch.from_index(1462)
    runs = {("cifar10", 777): _run(ARCH, "cifar10", 777, _state(ARCH, "cifar10", 777), params=param_count(other) / 1e6)}
    path = tmp_path / f"{ARCH.index:06d}.pickle.pbz2"
    with bz2.open(path, "wb") as fh:
        pickle.dump({"200": _record(ARCH, runs)}, fh)
    with pytest.raises(CheckpointError, match="belongs to another architecture"):
        load_official(path, "cifar10", trust=True)


def test_state_dict_of_another_architecture_is_refused(tmp_path):
    other = Arch.from_index(1462)
    runs = {("cifar10", 777): _run(ARCH, "cifar10", 777, _state(other, "cifar10", 777))}
    path = tmp_path / f"{ARCH.index:06d}.pickle.pbz2"
    with bz2.open(path, "wb") as fh:
        pickle.dump({"200": _record(ARCH, runs)}, fh)
    with pytest.raises(CheckpointError, match="does not fit the network"):
        load_official(path, "cifar10", trust=True)


def test_requested_arch_must_match_the_file(archives):
    with pytest.raises(CheckpointError, match="not the requested"):
        load_official(archives["nats"], "cifar10", trust=True, arch=1462)
    assert load_official(archives["nats"], "cifar10", trust=True, arch=ARCH.string).arch == ARCH


def test_simple_archive_without_weights(tmp_path):
    path = tmp_path / f"{ARCH.index:06d}.pickle.pbz2"
    with bz2.open(path, "wb") as fh:
        pickle.dump({"200": _record(ARCH, {("cifar10", 777): _run(ARCH, "cifar10", 777, None)})}, fh)
    with pytest.raises(CheckpointError, match="no weights"):
        load_official(path, "cifar10", trust=True)


def test_truncated_and_foreign_files(archives, tmp_path):
    data = archives["nats"].read_bytes()
    cut = tmp_path / "000001.pickle.pbz2"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        load_official(cut, "cifar10", trust=True)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown weights file type"):
        load_official(other, "cifar10", trust=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_official(tmp_path / "nope.pickle.pbz2", "cifar10", trust=True)
