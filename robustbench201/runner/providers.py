"""The default evaluator of ``rb201 evaluate``: real data readers, weights providers and
:func:`robustbench201.evaluate`, bound into a picklable :class:`EvalJob` factory.

Weights (``--weights``):

* ``init``: the NB201 network at its seeded PyTorch-default initialization (``weights='init'``);
* ``train``: trained here with a training recipe (``--recipe nb201`` by default, ``wu2024`` for NAS-RobBench-201's
  adversarial training; :mod:`robustbench201.recipe`) for ``epochs`` (resumable checkpoints under ``train_dir``; the
  finished network is saved there, so a later run can use ``--weights DIR``) (``weights='train-{E}ep'`` for the
  plain NB201 recipe, ``'train-{recipe}-{E}ep-{hash8}'`` for any other: every hyper-parameter is in the label);
* ``nats:PATH``: the official NATS-Bench ``{index:06d}.pickle.pbz2`` (or NB201 ``{index:06d}-FULL.pth``) files in
  PATH; they are pickles and need ``trust=True`` (``--trust-pickle``) (``weights='nb201-{hp}ep'``);
* ``DIR``: networks trained by rb201 in the ``train.checkpoint_file`` layout, with the recipe named by ``--recipe``
  (same labels as ``train``).

A spec with the ``valid`` split evaluates also on the split the recipe held out of the training set
(:mod:`robustbench201.data.splits`): it needs weights trained without those images (``train`` or ``DIR`` with a
recipe whose holdout is not ``none``, or ``init``, which never saw any image).
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
from ..recipe import TrainRecipe, resolve_recipe
from .worker import ArchEvaluator, ArchOutput

log = logging.getLogger(__name__)

WEIGHT_KINDS = ("init", "train", "nats", "dir")
CORRUPTION_MODES = ("none", "generated")


@dataclass(frozen=True)
class WeightsChoice:
    """Parsed ``--weights`` value, with the training recipe of ``train`` / ``DIR`` weights (and the holdout that
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
                raise Rb201Error(f"--weights {t!r}: {path} is not a directory of official *.pickle.pbz2 files")
            if not trust:
                raise CheckpointError(
                    f"--weights {t!r} loads pickles, which can run arbitrary code; pass --trust-pickle only for "
                    "files from a source you trust"
                )
            hp = 200 if epochs is None else epochs
            if hp not in (12, 200):
                raise Rb201Error(
                    f"--weights {t!r} with --epochs {hp}: the official archives hold networks trained for "
                    "12 or 200 epochs; allowed: --epochs 12, --epochs 200"
                )
            if recipe is not None and not r.plain:
                raise Rb201Error(
                    f"--weights {t!r}: official networks were trained with the NB201 protocol on every training "
                    f"image; --recipe and its options describe weights trained here (got {r.describe()})"
                )
            return cls("nats", str(path), epochs=hp, hp=str(hp), trust=True, recipe=TrainRecipe.of("nb201", epochs=hp))
        path = Path(t).expanduser()
        if path.is_dir():
            return cls("dir", str(path), epochs=r.epochs, recipe=r)
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
        return self.recipe.label


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
    n_valid: int | None = None  # a fixed subset of the validation split (seed 0), when the spec evaluates it
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
        epochs: int | None,
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
        recipe: str | None = None,
        adversarial: str | None = None,
        adv_eps: float | None = None,
        adv_step: float | None = None,
        adv_steps: int | None = None,
        holdout: str | None = None,
        splits: str | None = None,
        per_sample: bool = False,
        n_valid: int | None = None,
    ) -> EvalJob:
        """The job of ``rb201 evaluate`` / ``launch`` options (``spec_file``: a spec JSON file or a dataset
        directory, see :func:`resolve_spec`; ``train_dir`` defaults to ``OUT/trained``). ``recipe`` and the options
        after it build the training recipe (None: the recipe's own value); ``splits`` (``test`` or ``test,valid``)
        and ``per_sample`` change the spec (and so its hash)."""
        ds = canonical_dataset(dataset)
        spec = resolve_spec(preset, spec_file, spec_hash, ds)
        if splits is not None:
            spec = spec.replace(splits=tuple(p.strip() for p in splits.split(",") if p.strip()))
        if per_sample:
            spec = spec.replace(per_sample=True)
        r = TrainRecipe.of(
            recipe or "nb201",
            adversarial=adversarial,
            adv_eps=adv_eps,
            adv_step=adv_step,
            adv_steps=adv_steps,
            holdout=holdout,
        )
        explicit = any(v is not None for v in (recipe, adversarial, adv_eps, adv_step, adv_steps, holdout))
        if corruptions not in CORRUPTION_MODES and not Path(corruptions).is_dir():
            raise Rb201Error(
                f"--corruptions {corruptions!r} is neither {' nor '.join(CORRUPTION_MODES)} nor a directory of "
                "CIFAR-C .npy files"
            )
        job = cls.build(
            spec,
            ds,
            WeightsChoice.parse(weights, epochs=epochs, trust=trust_pickle, recipe=r if explicit else None),
            seed=seed,
            n_test=n_test,
            data_root=data_root,
            train_dir=train_dir or str(Path(out) / "trained"),
            channels=channels,
            n_cells=n_cells,
            corruptions=corruptions,
            n_valid=n_valid,
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
            raise Rb201Error(
                "the spec evaluates the validation split, but official NB201 networks were trained on every training "
                "image; evaluate them with --splits test"
            )
        if w.recipe.holdout == "none":
            raise Rb201Error(
                f"the spec evaluates the validation split, but recipe {w.recipe.name!r} holds nothing out of the "
                "training set (holdout 'none'); pass --holdout seeded (or nb201 on CIFAR-10: NB201's cifar10-valid "
                "split), or evaluate with --splits test"
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
            raise Rb201Error("--weights train needs a directory for the trained networks")
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
    elif re.fullmatch(r"train-[a-z0-9]+-\d+ep-[0-9a-f]{8}", label) and isinstance(identity.get("recipe"), dict):
        weights = ["--weights", source or "train", *recipe_options(TrainRecipe.from_dict(identity["recipe"]))]
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
    valid = identity.get("valid_split")
    if isinstance(valid, dict):
        if "recipe" not in identity:  # init weights: the holdout alone defines the validation split
            args += ["--holdout", str(valid.get("holdout"))]
        if valid.get("n_valid"):
            args += ["--n-valid", str(valid["n_valid"])]
    args += ["--out", shards_out]
    return shlex.join(args)


#: Recipe hyper-parameters the command line sets (``--epochs`` and these options); others stay the recipe's.
RECIPE_OPTIONS = {
    "adversarial": "--adversarial",
    "adv_eps": "--adv-eps",
    "adv_step": "--adv-step",
    "adv_steps": "--adv-steps",
    "holdout": "--holdout",
}


def recipe_options(recipe: TrainRecipe) -> list[str]:
    """The command-line options that rebuild ``recipe``: ``--recipe``, ``--epochs`` and the options of the
    hyper-parameters that differ from the named recipe's; an error when one that differs has no option."""
    base = TrainRecipe.of(recipe.name).to_dict()
    out = ["--recipe", recipe.name, "--epochs", str(recipe.epochs)]
    for key, value in recipe.to_dict().items():
        if key in ("name", "epochs") or base.get(key) == value:
            continue
        if key not in RECIPE_OPTIONS:
            raise Rb201Error(f"recipe hyper-parameter {key}={value!r} has no command-line option")
        out += [RECIPE_OPTIONS[key], f"{value:g}" if isinstance(value, float) else str(value)]
    return out
