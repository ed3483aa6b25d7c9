"""The default evaluator of ``rb201 evaluate``: real data readers, weights providers and
:func:`robustbench201.evaluate`, bound into a picklable :class:`EvalJob` factory built from an
:class:`~robustbench201.runner.request.EvalRequest`.

Weights (the request's ``weights``):

* ``init``: the NB201 network at its seeded PyTorch-default initialization (``weights='init'``);
* ``train``: trained here with a training recipe (``--recipe nb201`` by default, ``wu2024`` for NAS-RobBench-201's
  adversarial training; :mod:`robustbench201.recipe`) for ``epochs`` (resumable checkpoints under ``train_dir``; the
  finished network is saved there, so a later run can use ``--weights DIR``) (``weights='train-{E}ep'`` for the
  plain NB201 recipe, ``'train-{recipe}-{E}ep-{hash8}'`` for any other: every hyper-parameter is in the label);
* ``nats:PATH``: the official NATS-Bench ``{index:06d}.pickle.pbz2`` (or NB201 ``{index:06d}-FULL.pth``) files in
  PATH; they are pickles and need ``trust=True`` (``trust_pickle``) (``weights='nb201-{hp}ep'``);
* ``DIR``: networks trained by rb201 in the ``train.checkpoint_file`` layout, with the request's recipe (same
  labels as ``train``).

A spec with the ``valid`` split evaluates also on the split the recipe held out of the training set
(:mod:`robustbench201.data.splits`): it needs weights trained without those images (``train`` or ``DIR`` with a
recipe whose holdout is not ``none``, or ``init``, which never saw any image).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import code_version
from ..data.info import canonical_dataset
from ..errors import Rb201Error, RequestError
from ..recipe import TrainRecipe, resolve_recipe
from .request import RECIPE_FIELDS, EvalRequest, EvaluateRequest
from .worker import ArchEvaluator, ArchOutput

__all__ = ["CORRUPTION_MODES", "WeightsChoice", "resolve_spec", "EvalJob", "fill_request"]

log = logging.getLogger(__name__)

CORRUPTION_MODES = ("none", "generated")


@dataclass(frozen=True)
class WeightsChoice:
    """A parsed ``weights`` value, with the training recipe of ``train`` / ``DIR`` weights (and the holdout that
    defines the validation split of any weights)."""

    kind: str
    path: str = ""
    epochs: int = 200
    hp: str = "200"
    trust: bool = False
    recipe: TrainRecipe = field(default_factory=lambda: TrainRecipe.of("nb201"))

    def __post_init__(self) -> None:
        if self.recipe.epochs != self.epochs:  # ``epochs`` is the recipe's epoch count (one source of truth)
            object.__setattr__(self, "recipe", self.recipe.replace(epochs=self.epochs))

    @classmethod
    def parse(
        cls, text: str, epochs: int | None = None, trust: bool = False, recipe: TrainRecipe | str | None = None
    ) -> WeightsChoice:
        """``init`` | ``train`` | ``nats:PATH`` | ``DIR`` (an existing directory of rb201-trained networks).
        ``epochs``: the recipe's when None (``nats``: 200)."""
        t = str(text).strip()
        r = resolve_recipe(recipe, epochs)
        if t in ("init", "train"):
            return cls(t, epochs=r.epochs, recipe=r)
        if t.startswith("nats:"):
            path = Path(t[5:]).expanduser()
            if not path.is_dir():
                raise RequestError(f"{{weights}} {t!r}: {path} is not a directory of official *.pickle.pbz2 files")
            if not trust:
                raise RequestError(
                    f"{{weights}} {t!r} loads pickles, which can run arbitrary code; set {{trust_pickle}} only for "
                    "files from a source you trust"
                )
            hp = 200 if epochs is None else epochs
            if hp not in (12, 200):
                raise RequestError(
                    f"{{weights}} {t!r} with {{epochs}} {hp}: the official archives hold networks trained for "
                    "12 or 200 epochs; allowed: {epochs} 12, {epochs} 200"
                )
            if recipe is not None and not r.plain:
                raise RequestError(
                    f"{{weights}} {t!r}: official networks were trained with the NB201 protocol on every training "
                    f"image; {{recipe}} and its options describe weights trained here (got {r.describe()})"
                )
            return cls("nats", str(path), epochs=hp, hp=str(hp), trust=True, recipe=TrainRecipe.of("nb201", epochs=hp))
        path = Path(t).expanduser()
        if path.is_dir():
            return cls("dir", str(path), epochs=r.epochs, recipe=r)
        raise RequestError(
            f"{{weights}} {t!r} is not 'init', 'train', 'nats:PATH' or an existing directory of trained networks"
        )

    @property
    def label(self) -> str:
        """The ``weights`` column value of the rows."""
        if self.kind == "init":
            return "init"
        if self.kind == "nats":
            return f"nb201-{self.hp}ep"
        return self.recipe.label

    @classmethod
    def of_identity(cls, identity: dict[str, Any]) -> WeightsChoice:
        """The weights a job identity records (its ``weights`` label, ``weights_source`` and, for recipes other
        than plain NB201, ``recipe``): the inverse of :attr:`label`."""
        label, source = str(identity.get("weights", "")), str(identity.get("weights_source") or "")
        kind = "dir" if source else "train"
        if label == "init":
            return cls("init")
        if (m := re.fullmatch(r"nb201-(12|200)ep", label)) and source:
            return cls("nats", source, epochs=int(m[1]), hp=m[1], trust=True, recipe=TrainRecipe.of("nb201"))
        if m := re.fullmatch(r"train-(\d+)ep", label):
            return cls(kind, source, epochs=int(m[1]), recipe=TrainRecipe.of("nb201", epochs=int(m[1])))
        if isinstance(identity.get("recipe"), dict):
            r = TrainRecipe.from_dict(identity["recipe"])
            if r.label == label:
                return cls(kind, source, epochs=r.epochs, recipe=r)
        raise RequestError(f"cannot rebuild the {{weights}} of weights {label!r} (source {source!r})")


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
            raise RequestError(f"{{spec_hash}} {spec_hash!r} is not a spec of {p}; it holds {sorted(specs) or 'none'}")
        return EvalSpec.from_json(specs[spec_hash])
    if dataset is not None and len(specs) > 1:
        from ..store.validate import specs_of_dataset

        used = specs_of_dataset(p, canonical_dataset(dataset))
        if len(used) == 1:
            return EvalSpec.from_json(specs[used[0]])
    if len(specs) != 1:
        raise RequestError(
            f"{p} holds {len(specs)} evaluation specs ({', '.join(sorted(specs)) or 'none'}); "
            "pick one with {spec_hash} HASH"
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
    n_valid: int | None = None  # a fixed subset of the validation split (seed 0), when the spec evaluates it
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: Any, dataset: str, weights: WeightsChoice, **kwargs: Any) -> EvalJob:
        """From an ``EvalSpec`` (``.hash``, ``.to_json()``)."""
        return cls(spec.to_json(), spec.hash, canonical_dataset(dataset), weights, **kwargs)

    @classmethod
    def from_request(cls, request: EvalRequest) -> EvalJob:
        """The job of a request: its spec (``spec_file``: a spec JSON file or a dataset directory, see
        :func:`resolve_spec`; ``splits`` and ``per_sample`` change it, and so its hash), its weights and their
        training recipe (the recipe fields: None keeps the recipe's value), data and size; ``train_dir`` defaults
        to ``OUT/trained``."""
        q = request
        ds = canonical_dataset(q.dataset)
        spec = resolve_spec(q.preset, q.spec_file, q.spec_hash, ds)
        if q.splits is not None:
            spec = spec.replace(splits=tuple(p.strip() for p in q.splits.split(",") if p.strip()))
        if q.per_sample:
            spec = spec.replace(per_sample=True)
        options = {k: getattr(q, k) for k in RECIPE_FIELDS}
        r = TrainRecipe.of(q.recipe or "nb201", **options)
        explicit = q.recipe is not None or any(v is not None for v in options.values())
        if q.corruptions not in CORRUPTION_MODES and not Path(q.corruptions).is_dir():
            raise RequestError(
                f"{{corruptions}} {q.corruptions!r} is neither {' nor '.join(CORRUPTION_MODES)} nor a directory of "
                "CIFAR-C .npy files"
            )
        job = cls.build(
            spec,
            ds,
            WeightsChoice.parse(q.weights, epochs=q.epochs, trust=q.trust_pickle, recipe=r if explicit else None),
            seed=q.seed,
            n_test=q.n_test,
            data_root=q.data_root,
            train_dir=q.train_dir or str(Path(q.out) / "trained"),
            channels=q.channels,
            n_cells=q.n_cells,
            corruptions=q.corruptions,
            n_valid=q.n_valid,
        )
        job.check_splits()
        return job

    def identity(self) -> dict[str, Any]:
        """Everything that determines the stored values (names the shard; checked on resume). The recipe (when it is
        not the plain NB201 one) and the validation split (when the spec evaluates it) are added only then, so the
        identity of every other job is what it was before they existed."""
        ident: dict[str, Any] = {
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
        if self.weights.kind in ("train", "dir") and not self.weights.recipe.plain:
            ident["recipe"] = self.weights.recipe.to_dict()
        if self._evaluates_valid():
            r = self.weights.recipe
            ident["valid_split"] = {"holdout": r.holdout, "n_valid": self.n_valid}
            if r.holdout == "seeded":
                ident["valid_split"] |= {"fraction": r.holdout_fraction, "seed": r.holdout_seed}
        return ident

    def _spec(self) -> Any:
        from ..spec import EvalSpec

        return EvalSpec.from_json(self.spec_json)

    def _evaluates_valid(self) -> bool:
        return "valid" in self._spec().splits

    def check_splits(self) -> None:
        """A spec with the validation split needs images these weights never trained on: refuse it before any work
        for weights trained on every training image."""
        if not self._evaluates_valid():
            return
        w = self.weights
        if w.kind == "nats":
            raise RequestError(
                "the spec evaluates the validation split, but official NB201 networks were trained on every training "
                "image; evaluate them with {splits} test"
            )
        if w.recipe.holdout == "none":
            raise RequestError(
                f"the spec evaluates the validation split, but recipe {w.recipe.name!r} holds nothing out of the "
                "training set (holdout 'none'); set {holdout} seeded (or nb201 on CIFAR-10: NB201's cifar10-valid "
                "split), or evaluate with {splits} test"
            )

    def _corruptions_id(self) -> str:
        """``corruptions`` as it enters the identity: "generated" names the generator version."""
        if self.corruptions != "generated":
            return self.corruptions
        from ..corruptions import GENERATED_ID

        return GENERATED_ID

    def check(self) -> None:
        """Load the test data once (cheap compared to a job) so missing files fail before any work starts; check
        the validation split can be made."""
        self._load("test")
        self.check_splits()
        if self._evaluates_valid():
            self._valid_set(self._load("train"))

    def _valid_set(self, train_set: Any) -> Any:
        """The validation split of the recipe's holdout (a fixed subset of ``n_valid`` images when given)."""
        from ..data.splits import holdout_split

        r = self.weights.recipe
        _, valid = holdout_split(train_set, r.holdout, r.holdout_fraction, r.holdout_seed)
        if valid is None:
            raise Rb201Error(f"recipe {r.name!r} holds out no validation split (holdout 'none')")
        return valid.subset(self.n_valid, seed=0) if self.n_valid is not None else valid

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
        from .records import result_arrays, result_rows

        spec = self._spec()
        self.check_splits()
        test_set = self._load("test")
        # training images: to train, for the spec's surrogates (Jacobian / Hessian on training batches) and to hold
        # the validation split out of
        valid = "valid" in spec.splits
        needs_train = self.weights.kind == "train" or bool(getattr(spec, "surrogates", ())) or valid
        train_set = self._load("train") if needs_train else None
        valid_set = self._valid_set(train_set) if valid else None
        corruptions = self._corruption_source(test_set, device)
        version = code_version()

        def run(index: int) -> ArchOutput:
            t0 = time.perf_counter()
            model = self.model(index, device, train_set)
            t_model = time.perf_counter() - t0
            result = evaluate(
                model,
                test_set,
                spec,
                device=device,
                corruptions=corruptions,
                train_data=train_set,
                valid_data=valid_set,
            )
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
        from ..train import ensure_trained, load_trained

        size = {"channels": self.channels, "n_cells": self.n_cells}
        if w.kind == "dir":
            return load_trained(w.path, index, self.dataset, self.seed, recipe=w.recipe, device=device, **size)
        if self.train_dir is None:
            raise RequestError("{weights} train needs a directory for the trained networks ({train_dir})")
        net = ensure_trained(
            self.train_dir,
            index,
            self.dataset,
            train_set,
            seed=self.seed,
            recipe=w.recipe,
            device=device,
            discard_unusable_checkpoint=True,  # our own scratch file: a corrupt or foreign one is retrained
            **size,
        )
        if net.result is not None:
            return net.result.model.eval()
        return load_trained(self.train_dir, index, self.dataset, self.seed, recipe=w.recipe, device=device, **size)


def fill_request(identity: dict[str, Any], dataset_dir: str, shards_out: str) -> EvaluateRequest:
    """The request that evaluates what the merged ``dataset_dir`` lacks of the job ``identity`` (as recorded in shard
    manifests: :meth:`EvalJob.identity`), writing new shards beside the old ones in ``shards_out``. What is not part
    of the identity (``data_root``, a ``train_dir`` other than ``OUT/trained``) keeps its default."""
    w = WeightsChoice.of_identity(identity)
    fields: dict[str, Any] = {"weights": "init"}
    if w.kind == "nats":
        fields = {"weights": f"nats:{w.path}", "trust_pickle": True, "epochs": int(w.hp)}
    elif w.kind in ("train", "dir"):
        fields = {"weights": w.path or "train", "epochs": w.recipe.epochs, **_recipe_fields(w.recipe)}
    corruptions = str(identity.get("corruptions", "none"))
    if corruptions.startswith("generated"):
        from ..corruptions import GENERATED_ID

        if corruptions != GENERATED_ID:
            raise Rb201Error(
                f"the job used corruption generator {corruptions!r}; this rb201 has {GENERATED_ID!r}, whose rows would "
                "not merge with it"
            )
        corruptions = "generated"
    valid = identity.get("valid_split")
    if isinstance(valid, dict):
        if "recipe" not in identity:  # init weights: the holdout alone defines the validation split
            fields["holdout"] = str(valid.get("holdout"))
        fields["n_valid"] = valid.get("n_valid") or None
    return EvaluateRequest(
        out=shards_out,
        missing_from=dataset_dir,
        spec_file=dataset_dir,
        spec_hash=str(identity["spec_hash"]),
        dataset=str(identity["dataset"]),
        seed=int(identity.get("seed", 777)),
        n_test=identity.get("n_test") or None,
        corruptions=corruptions,
        channels=int(identity.get("channels", 16)),
        n_cells=int(identity.get("n_cells", 5)),
        **fields,
    )


def _recipe_fields(recipe: TrainRecipe) -> dict[str, Any]:
    """The request fields that rebuild ``recipe``: its name and each recipe field whose value differs from the named
    recipe's; :class:`RequestError` when a hyper-parameter without a field differs."""
    if recipe.plain:
        return {}
    named = TrainRecipe.of(recipe.name)
    out: dict[str, Any] = {k: getattr(recipe, k) for k in RECIPE_FIELDS if getattr(recipe, k) != getattr(named, k)}
    rebuilt = TrainRecipe.of(recipe.name, epochs=recipe.epochs, **out).to_dict()
    held = recipe.to_dict()
    if rebuilt != held:
        diff = ", ".join(
            f"{k}={held.get(k)!r}" for k in sorted(set(held) | set(rebuilt)) if held.get(k) != rebuilt.get(k)
        )
        raise RequestError(f"recipe hyper-parameter(s) {diff} have no request field")
    return {"recipe": recipe.name, **out}
