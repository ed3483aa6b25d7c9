"""The default evaluator of ``rb201 evaluate``: real data readers, weights providers and
:func:`robustbench201.evaluate`, bound into a picklable :class:`EvalJob` factory.

Weights (``--weights``):

* ``init``: the NB201 network at its seeded PyTorch-default initialization (``weights='init'``);
* ``train``: trained here with the NB201 protocol for ``epochs`` (resumable checkpoints under ``train_dir``; the
  finished network is saved there, so a later run can use ``--weights DIR``) (``weights='train-{E}ep'``);
* ``nats:PATH``: the official NATS-Bench ``{index:06d}.pickle.pbz2`` (or NB201 ``{index:06d}-FULL.pth``) files in
  PATH; they are pickles and need ``trust=True`` (``--trust-pickle``) (``weights='nb201-{hp}ep'``);
* ``DIR``: networks trained by rb201 in the ``train.checkpoint_file`` layout (``weights='train-{E}ep'``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import code_version
from ..data.info import canonical_dataset
from ..errors import CheckpointError, Rb201Error
from .worker import ArchEvaluator, ArchOutput

log = logging.getLogger(__name__)

WEIGHT_KINDS = ("init", "train", "nats", "dir")
CORRUPTION_MODES = ("none", "generated")


@dataclass(frozen=True)
class WeightsChoice:
    """Parsed ``--weights`` value."""

    kind: str
    path: str = ""
    epochs: int = 200
    hp: str = "200"
    trust: bool = False

    @classmethod
    def parse(cls, text: str, epochs: int = 200, trust: bool = False) -> WeightsChoice:
        """``init`` | ``train`` | ``nats:PATH`` | ``DIR`` (an existing directory of rb201-trained networks)."""
        t = str(text).strip()
        if t in ("init", "train"):
            return cls(t, epochs=epochs)
        if t.startswith("nats:"):
            path = Path(t[5:]).expanduser()
            if not path.is_dir():
                raise Rb201Error(f"--weights {t!r}: {path} is not a directory of official *.pickle.pbz2 files")
            if not trust:
                raise CheckpointError(
                    f"--weights {t!r} loads pickles, which can run arbitrary code; pass --trust-pickle only for "
                    "files from a source you trust"
                )
            if epochs not in (12, 200):
                raise Rb201Error(
                    f"--weights {t!r} with --epochs {epochs}: the official archives hold networks trained for "
                    "12 or 200 epochs; allowed: --epochs 12, --epochs 200"
                )
            return cls("nats", str(path), epochs=epochs, hp=str(epochs), trust=True)
        path = Path(t).expanduser()
        if path.is_dir():
            return cls("dir", str(path), epochs=epochs)
        raise Rb201Error(
            f"--weights {t!r} is not 'init', 'train', 'nats:PATH' or an existing directory of trained networks"
        )

    @property
    def label(self) -> str:
        """The ``weights`` column value of the rows."""
        if self.kind == "init":
            return "init"
        if self.kind == "nats":
            return f"nb201-{self.hp}ep"
        return f"train-{self.epochs}ep"


def resolve_spec(preset: str, spec: str | None = None, spec_hash: str | None = None, dataset: str | None = None) -> Any:
    """The evaluation spec of a job: ``preset`` by name, or ``spec``: a JSON file written by
    :meth:`EvalSpec.to_json`, or a dataset directory whose manifest holds the spec (the one of ``dataset`` there,
    or the one named by ``spec_hash`` when it holds several)."""
    from ..spec import EvalSpec, load_spec_file
    from ..spec import preset as named_preset

    if spec is None:
        return named_preset(preset)
    p = Path(spec)
    if not p.is_dir():
        return load_spec_file(p)
    from ..store.dataset import read_manifest

    specs = read_manifest(p).specs
    if spec_hash is not None:
        if spec_hash not in specs:
            raise Rb201Error(f"--spec-hash {spec_hash!r} is not a spec of {p}; it holds {sorted(specs) or 'none'}")
        return EvalSpec.from_json(specs[spec_hash])
    if dataset is not None and len(specs) > 1:
        from ..store.validate import specs_of_dataset

        used = specs_of_dataset(p, canonical_dataset(dataset))
        if len(used) == 1:
            return EvalSpec.from_json(specs[used[0]])
    if len(specs) != 1:
        raise Rb201Error(
            f"{p} holds {len(specs)} evaluation specs ({', '.join(sorted(specs)) or 'none'}); "
            "pick one with --spec-hash HASH"
        )
    return EvalSpec.from_json(next(iter(specs.values())))


@dataclass(frozen=True)
class EvalJob:
    """Factory of per-device evaluators for one (spec, dataset, weights, seed, test subset) job."""

    spec_json: str
    spec_hash: str
    dataset: str
    weights: WeightsChoice
    seed: int = 777
    n_test: int | None = None
    data_root: str | None = None
    train_dir: str | None = None
    channels: int = 16
    n_cells: int = 5
    corruptions: str = "none"  # "none", "generated" or a CIFAR-C directory
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: Any, dataset: str, weights: WeightsChoice, **kwargs: Any) -> EvalJob:
        """From an ``EvalSpec`` (``.hash``, ``.to_json()``)."""
        return cls(spec.to_json(), spec.hash, canonical_dataset(dataset), weights, **kwargs)

    @classmethod
    def from_options(
        cls,
        *,
        preset: str,
        spec_file: str | None,
        dataset: str,
        weights: str,
        epochs: int,
        seed: int,
        trust_pickle: bool,
        out: str,
        spec_hash: str | None = None,
        n_test: int | None = None,
        data_root: str | None = None,
        corruptions: str = "none",
        channels: int = 16,
        n_cells: int = 5,
        train_dir: str | None = None,
    ) -> EvalJob:
        """The job of ``rb201 evaluate`` / ``launch`` options (``spec_file``: a spec JSON file or a dataset
        directory, see :func:`resolve_spec`; ``train_dir`` defaults to ``OUT/trained``)."""
        ds = canonical_dataset(dataset)
        spec = resolve_spec(preset, spec_file, spec_hash, ds)
        if corruptions not in CORRUPTION_MODES and not Path(corruptions).is_dir():
            raise Rb201Error(
                f"--corruptions {corruptions!r} is neither {' nor '.join(CORRUPTION_MODES)} nor a directory of "
                "CIFAR-C .npy files"
            )
        return cls.build(
            spec,
            ds,
            WeightsChoice.parse(weights, epochs=epochs, trust=trust_pickle),
            seed=seed,
            n_test=n_test,
            data_root=data_root,
            train_dir=train_dir or str(Path(out) / "trained"),
            channels=channels,
            n_cells=n_cells,
            corruptions=corruptions,
        )

    def identity(self) -> dict[str, Any]:
        """Everything that determines the stored values (names the shard; checked on resume)."""
        return {
            "spec_hash": self.spec_hash,
            "dataset": self.dataset,
            "weights": self.weights.label,
            "weights_source": self.weights.path,
            "seed": self.seed,
            "n_test": self.n_test,
            "channels": self.channels,
            "n_cells": self.n_cells,
            "corruptions": self._corruptions_id(),
        }

    def _corruptions_id(self) -> str:
        """``corruptions`` as it enters the identity: "generated" names the generator version."""
        if self.corruptions != "generated":
            return self.corruptions
        from ..corruptions import GENERATED_ID

        return GENERATED_ID

    def check(self) -> None:
        """Load the test data once (cheap compared to a job) so missing files fail before any work starts."""
        self._load("test")

    def _load(self, split: str):  # type: ignore[no-untyped-def]
        from ..data.readers import load_dataset

        n = self.n_test if split == "test" else None
        return load_dataset(self.dataset, root=self.data_root, split=split, n=n, seed=0)

    def _corruption_source(self, test_set: Any, device: str) -> Any:
        if self.corruptions == "none":
            return None
        if self.corruptions == "generated":
            from ..corruptions.sources import GeneratedCorruptions

            return GeneratedCorruptions(test_set, seed=0, device=device)
        from ..corruptions.sources import CifarCFiles

        return CifarCFiles(self.corruptions, self.dataset, test_set.indices)

    def __call__(self, device: str) -> ArchEvaluator:
        from ..evaluation import evaluate
        from ..spec import EvalSpec
        from ..store.records import result_arrays, result_rows

        spec = EvalSpec.from_json(self.spec_json)
        test_set = self._load("test")
        # training images: to train, and for the spec's surrogates (Jacobian / Hessian on training batches)
        needs_train = self.weights.kind == "train" or bool(getattr(spec, "surrogates", ()))
        train_set = self._load("train") if needs_train else None
        corruptions = self._corruption_source(test_set, device)
        version = code_version()

        def run(index: int) -> ArchOutput:
            t0 = time.perf_counter()
            model = self.model(index, device, train_set)
            t_model = time.perf_counter() - t0
            result = evaluate(model, test_set, spec, device=device, corruptions=corruptions, train_data=train_set)
            label = self.weights.label
            timings = {k: float(v) for k, v in (getattr(result, "timings", None) or {}).items()}
            timings["weights"] = t_model
            return ArchOutput(
                rows=result_rows(result, index, self.dataset, self.seed, label, version),
                arrays=result_arrays(result, index, self.dataset, self.seed, label),
                timings=timings,
            )

        return run

    def model(self, index: int, device: str, train_set: Any = None):  # type: ignore[no-untyped-def]
        """The network of architecture ``index`` with the job's weights, in eval mode on ``device``."""
        import torch

        w = self.weights
        if w.kind == "init":
            from ..models.network import create_model
            from ..train import init_default_

            model = create_model(index, self.dataset, channels=self.channels, n_cells=self.n_cells)
            init_default_(model, torch.Generator().manual_seed(self.seed))
            return model.to(device).eval()
        if w.kind == "nats":
            from ..models.weights import load_official

            folder = Path(w.path)
            path = folder / f"{index:06d}.pickle.pbz2"
            if not path.exists() and (folder / f"{index:06d}-FULL.pth").exists():
                path = folder / f"{index:06d}-FULL.pth"
            return load_official(path, self.dataset, self.seed, w.hp, trust=w.trust, arch=index).model.to(device)
        from ..train import checkpoint_file, load_trained, partial_file, save_trained, train_model

        size = {"channels": self.channels, "n_cells": self.n_cells}
        if w.kind == "dir":
            return load_trained(w.path, index, self.dataset, self.seed, w.epochs, device=device, **size)
        if self.train_dir is None:
            raise Rb201Error("--weights train needs a directory for the trained networks")
        final = checkpoint_file(self.train_dir, self.dataset, index, self.seed, w.epochs)
        if final.is_file():
            return load_trained(self.train_dir, index, self.dataset, self.seed, w.epochs, device=device, **size)
        result = train_model(
            index,
            train_set,
            epochs=w.epochs,
            seed=self.seed,
            device=device,
            channels=self.channels,
            n_cells=self.n_cells,
            checkpoint_path=partial_file(final),
            discard_unusable_checkpoint=True,  # our own scratch file: a corrupt or foreign one is retrained
        )
        save_trained(self.train_dir, result.model, self.dataset, self.seed, w.epochs, result.history)
        partial_file(final).unlink(missing_ok=True)
        return result.model.eval()


def fill_command(identity: dict[str, Any], dataset_dir: str, shards_out: str) -> str:
    """The ``rb201 evaluate --missing-from`` command that evaluates what the merged ``dataset_dir`` lacks of the job
    ``identity`` (as recorded in shard manifests), writing new shards beside the old ones in ``shards_out``.
    Options not part of the identity (``--data-root``, a non-default ``--train-dir``) must be added by hand."""
    import re
    import shlex

    label = str(identity.get("weights", ""))
    source = str(identity.get("weights_source") or "")
    if label == "init":
        weights = ["--weights", "init"]
    elif m := re.fullmatch(r"nb201-(\d+)ep", label):
        weights = ["--weights", f"nats:{source}", "--trust-pickle", "--epochs", m.group(1)]
    elif m := re.fullmatch(r"train-(\d+)ep", label):
        weights = ["--weights", source or "train", "--epochs", m.group(1)]
    else:
        raise Rb201Error(f"cannot rebuild the --weights option of weights {label!r} (source {source!r})")
    args = ["rb201", "evaluate", "--missing-from", dataset_dir, "--spec", dataset_dir]
    args += ["--spec-hash", str(identity["spec_hash"]), "--dataset", str(identity["dataset"]), *weights]
    args += ["--seed", str(identity.get("seed", 777))]
    if identity.get("n_test"):
        args += ["--n-test", str(identity["n_test"])]
    corruptions = str(identity.get("corruptions", "none"))
    if corruptions.startswith("generated"):
        from ..corruptions import GENERATED_ID

        if corruptions != GENERATED_ID:
            raise Rb201Error(
                f"the job used corruption generator {corruptions!r}; this rb201 has {GENERATED_ID!r}, whose rows would "
                "not merge with it"
            )
        args += ["--corruptions", "generated"]
    elif corruptions != "none":
        args += ["--corruptions", corruptions]
    if identity.get("channels", 16) != 16:
        args += ["--channels", str(identity["channels"])]
    if identity.get("n_cells", 5) != 5:
        args += ["--cells", str(identity["n_cells"])]
    args += ["--out", shards_out]
    return shlex.join(args)
