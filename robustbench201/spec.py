"""Evaluation specs: a frozen, hashable :class:`EvalSpec` and the presets ``jung2023``, ``full``, ``smoke`` and
``wu2024``.

Units: every epsilon is in pixel units of 1/255 (``1.0`` = an L-inf radius of 1/255 on [0, 1] images; L2 radii use
the same unit), ``0 < eps <= 255``. A spec records the full attack budgets (defaults filled in), so its canonical
JSON and short hash (:attr:`EvalSpec.hash`, stamped on every result row) identify the protocol exactly.
No torch import.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import Rb201Error, check_choice, choice_error
from .vocab import (
    ATTACKS,
    CERTIFIED_METHODS,
    CORRUPTION_SOURCES,
    CORRUPTIONS,
    PRECISIONS,
    SEMANTICS,
    SPLITS,
    SURROGATES,
    canonical_attack,
)

__all__ = ["AttackSpec", "attack", "EvalSpec", "load_spec_file", "preset"]


def _check_eps(what: str, eps: tuple[float, ...]) -> tuple[float, ...]:
    out = []
    for e in eps:
        if isinstance(e, bool) or not isinstance(e, int | float) or math.isnan(e) or not 0 < e <= 255:
            raise Rb201Error(f"{what}: epsilon {e!r} out of range; allowed: 0 < eps <= 255 (units of 1/255)")
        out.append(float(e))
    if len(set(out)) != len(out):
        raise Rb201Error(f"{what}: epsilons {tuple(out)} contain duplicates")
    return tuple(sorted(out))


@dataclass(frozen=True)
class AttackSpec:
    """One attack over an epsilon grid (1/255 units, stored ascending) with its full hyper-parameters."""

    name: str
    epsilons: tuple[float, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        name = canonical_attack(self.name)
        object.__setattr__(self, "name", name)
        if not self.epsilons:
            raise Rb201Error(f"attack {name!r} needs at least one epsilon (0 < eps <= 255, units of 1/255)")
        object.__setattr__(self, "epsilons", _check_eps(f"attack {name!r}", tuple(self.epsilons)))
        full = ATTACKS[name].check(dict(self.params))  # names and values, before any work starts
        object.__setattr__(self, "params", tuple(sorted(full.items())))

    @property
    def norm(self) -> str:
        return str(dict(self.params)["norm"])

    def kwargs(self) -> dict[str, Any]:
        """Hyper-parameters for :func:`robustbench201.attacks.create_attack`."""
        return dict(self.params)


def attack(name: str, epsilons: tuple[float, ...] | list[float], **params: Any) -> AttackSpec:
    """Shorthand: ``attack("pgd", (1, 2, 8), steps=10)`` (epsilons in 1/255 units)."""
    return AttackSpec(name, tuple(epsilons), tuple(params.items()))


@dataclass(frozen=True)
class EvalSpec:
    """Everything that defines an evaluation run (and nothing about where it runs).

    ``semantics``: ``per-epsilon`` (each attack at each epsilon on its own; cumulative numbers derived from the
    same run and stored too) or ``cumulative`` (nested cascade over epsilons; cheaper). ``precision``: ``fp32``
    (default), ``tf32`` (TensorFloat-32 matmuls/convs on GPUs that have them) or ``amp`` (autocast; explicit
    opt-in). ``batch_size``: rows per forward pass at the start (halved on out-of-memory). Corruptions are
    evaluated only when a corruption source is given; ``corruption_source`` says which sources the spec accepts.
    Surrogates are computed on ``surrogate_n`` training images, certified bounds on the first ``certified_n``
    test images.

    ``splits``: where clean accuracy and the attacks are evaluated: always the test set (``test``), and with
    ``valid`` also a split held out of the training set (corruptions and certified bounds stay on the test set).
    ``per_sample``: also store, per (key, epsilon or severity), each image's predicted class and the softmax
    probability of the predicted and of the true class (float16) in the arrays. Both fields enter the canonical JSON
    (and so the hash) only when they differ from their defaults, so specs that do not use them keep their hash."""

    name: str = "custom"
    attacks: tuple[AttackSpec, ...] = ()
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    corruption_source: str = "files-or-generated"
    surrogates: tuple[str, ...] = ()
    surrogate_n: int = 256
    hessian_iters: int = 20
    certified: tuple[str, ...] = ()
    certified_epsilons: tuple[float, ...] = ()
    certified_n: int = 1000
    seed: int = 0
    batch_size: int = 512
    precision: str = "fp32"
    semantics: str = "cumulative"
    fast_forward: bool = True
    extra: tuple[tuple[str, Any], ...] = field(default=())
    splits: tuple[str, ...] = ("test",)
    per_sample: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "attacks", tuple(self.attacks))
        splits = tuple(self.splits)
        for sp in splits:
            check_choice("evaluation split", sp, SPLITS)
        if "test" not in splits:
            raise Rb201Error(f"splits {splits} lack 'test'; allowed: ('test',) or ('test', 'valid')")
        object.__setattr__(self, "splits", tuple(sp for sp in SPLITS if sp in splits))
        if not isinstance(self.per_sample, bool):
            raise Rb201Error(f"per_sample {self.per_sample!r} not allowed; allowed: True or False")
        names = [a.name for a in self.attacks]
        if len(set(names)) != len(names):
            raise Rb201Error(f"attacks {names} list an attack twice; give one grid per attack")
        for c in self.corruptions:
            check_choice("corruption", c, CORRUPTIONS)
        for s in self.severities:
            if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 5:
                raise Rb201Error(f"severity {s!r} out of range; allowed: 1..5")
        check_choice("corruption source policy", self.corruption_source, CORRUPTION_SOURCES)
        for s in self.surrogates:
            check_choice("surrogate", s, SURROGATES)
        for m in self.certified:
            check_choice("certified method", m, CERTIFIED_METHODS)
        if self.certified and not self.certified_epsilons:
            raise Rb201Error("certified methods need certified_epsilons (0 < eps <= 255, units of 1/255)")
        object.__setattr__(self, "certified_epsilons", _check_eps("certified", tuple(self.certified_epsilons)))
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("semantics", self.semantics, SEMANTICS)
        for what, v in (
            ("batch_size", self.batch_size),
            ("surrogate_n", self.surrogate_n),
            ("certified_n", self.certified_n),
            ("hessian_iters", self.hessian_iters),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise Rb201Error(f"{what} {v!r} out of range; allowed: an integer >= 1")

    # ---- serialization ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        optional: dict[str, Any] = {}
        if self.splits != ("test",):
            optional["splits"] = list(self.splits)
        if self.per_sample:
            optional["per_sample"] = True
        return {
            "name": self.name,
            "attacks": [{"name": a.name, "epsilons": list(a.epsilons), "params": dict(a.params)} for a in self.attacks],
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
            "corruption_source": self.corruption_source,
            "surrogates": list(self.surrogates),
            "surrogate_n": self.surrogate_n,
            "hessian_iters": self.hessian_iters,
            "certified": list(self.certified),
            "certified_epsilons": list(self.certified_epsilons),
            "certified_n": self.certified_n,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "precision": self.precision,
            "semantics": self.semantics,
            "fast_forward": self.fast_forward,
            "extra": dict(self.extra),
            **optional,
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace): equal specs give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @cached_property
    def hash(self) -> str:
        """First 16 hex digits of the sha256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> EvalSpec:
        """Inverse of :meth:`to_json` (also accepts the parsed dict)."""
        if isinstance(text, str):
            try:
                d = json.loads(text)
            except json.JSONDecodeError as exc:
                raise Rb201Error(f"an evaluation spec must be a JSON object; this text is not JSON ({exc})") from None
        else:
            d = text
        if not isinstance(d, dict):
            raise Rb201Error(
                f"an evaluation spec must be a JSON object with keys such as 'attacks', 'corruptions'; got "
                f"{type(d).__name__} {d!r:.40}"
            )
        d = dict(d)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise Rb201Error(
                f"unknown evaluation spec field(s) {unknown}; allowed: {', '.join(cls.__dataclass_fields__)}"
            )
        try:
            attacks = tuple(
                AttackSpec(a["name"], tuple(a["epsilons"]), tuple(a["params"].items())) for a in d.pop("attacks", [])
            )
            tuples = ("corruptions", "severities", "surrogates", "certified", "certified_epsilons", "splits")
            kw = {k: tuple(v) if k in tuples else v for k, v in d.items()}
            kw["extra"] = tuple(sorted(kw.get("extra", {}).items()))
            return cls(attacks=attacks, **kw)
        except (KeyError, TypeError, AttributeError) as exc:
            raise Rb201Error(f"not an rb201 evaluation spec: {type(exc).__name__}: {exc}") from None

    def replace(self, **changes: Any) -> EvalSpec:
        """A copy with some fields changed (validated again)."""
        import dataclasses

        return dataclasses.replace(self, **changes)


def load_spec_file(path: str | Path) -> EvalSpec:
    """Read an evaluation spec from a JSON file (as written by :meth:`EvalSpec.to_json`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Rb201Error(f"spec file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Rb201Error(f"spec file {str(p)!r} cannot be read as UTF-8 text: {exc}") from None
    try:
        return EvalSpec.from_json(text)
    except Rb201Error as exc:
        raise Rb201Error(f"spec file {str(p)!r}: {exc}") from None


# ---- presets ----------------------------------------------------------------------------------------------------
_FGSM_EPS = (0.1, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 255)
_GRID_EPS = (0.1, 0.5, 1, 2, 3, 4, 8)


def _jung2023() -> EvalSpec:
    return EvalSpec(
        name="jung2023",
        attacks=(
            attack("fgsm", _FGSM_EPS),
            attack("pgd", _GRID_EPS),
            attack("aa_apgd-ce", _GRID_EPS),
            attack("aa_square", _GRID_EPS),
        ),
        corruptions=CORRUPTIONS,
        semantics="per-epsilon",
    )


def _full() -> EvalSpec:
    published = _jung2023().attacks
    return EvalSpec(
        name="full",
        attacks=(*published[:3], attack("aa_apgd-dlr", _GRID_EPS), *published[3:]),
        corruptions=CORRUPTIONS,
        surrogates=("jacobian", "hessian"),
        certified=CERTIFIED_METHODS,
        certified_epsilons=(0.1, 0.5, 1, 2),
        semantics="cumulative",
    )


def _smoke() -> EvalSpec:
    eps = (1, 8)
    return EvalSpec(
        name="smoke",
        attacks=(
            attack("fgsm", eps),
            attack("pgd", eps, steps=5),
            attack("aa_apgd-ce", eps, n_iter=10),
            attack("aa_square", eps, n_queries=50),
        ),
        corruptions=("gaussian_noise", "fog"),
        severities=(1, 5),
        surrogates=("jacobian", "hessian"),
        surrogate_n=32,
        hessian_iters=5,
        certified=("ibp",),
        certified_epsilons=(1,),
        certified_n=32,
        batch_size=256,
        semantics="cumulative",
    )


def _wu2024() -> EvalSpec:
    """NAS-RobBench-201's evaluation (PROTOCOL.md section 8): clean, FGSM and PGD-20 (step 2.5 eps / 20, uniform
    random start) at 3/255 and 8/255, each epsilon on its own, on the held-out validation split and the test set."""
    eps = (3, 8)
    return EvalSpec(
        name="wu2024",
        attacks=(attack("fgsm", eps), attack("pgd", eps, steps=20, step_factor=2.5, random_start=True)),
        semantics="per-epsilon",
        splits=("test", "valid"),
    )


_PRESETS = {"jung2023": _jung2023, "full": _full, "smoke": _smoke, "wu2024": _wu2024}


def preset(name: str) -> EvalSpec:
    """A named spec: ``jung2023`` (the published protocol, per-epsilon semantics), ``full`` (everything,
    cumulative semantics), ``smoke`` (tiny budgets for tests and CPU demos) or ``wu2024`` (NAS-RobBench-201's
    evaluation of adversarially trained networks, on the validation split and the test set)."""
    if name not in _PRESETS:
        raise choice_error("evaluation preset", name, list(_PRESETS))
    return _PRESETS[name]()
