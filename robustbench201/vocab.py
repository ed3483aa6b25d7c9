"""The closed vocabularies of rb201, in one torch-free place: attacks (names, aliases, norms, default budgets),
semantics, presets, precisions, corruption names and sources, surrogates, certified-bound methods.

Everything else derives from here: the attack classes take their default budgets from :data:`ATTACKS`, evaluation
specs validate against these sets, the measure registries are keyed by them, and the command line offers them as
choices. A value outside a vocabulary is refused once, at the boundary, with an error listing what is allowed.
Epsilons are in pixel units of 1/255 everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from .errors import check_choice, choice_error


class Semantics(str, Enum):
    """How a per-epsilon adversarial value was obtained (PROTOCOL.md section 6)."""

    PER_EPSILON = "per-epsilon"  # each epsilon attacked on its own (the published protocol)
    CUMULATIVE = "cumulative"  # nested over epsilons: a point broken at a smaller epsilon stays broken


SEMANTICS: tuple[str, ...] = tuple(s.value for s in Semantics)


@dataclass(frozen=True)
class AttackEntry:
    """One attack: its stored key, the other names it is known by, the threat models it implements, the minimum
    number of classes it needs, and its full default budget (AutoAttack's for APGD and Square)."""

    name: str
    defaults: Mapping[str, Any]
    aliases: tuple[str, ...] = ()
    norms: tuple[str, ...] = ("Linf", "L2")
    min_classes: int = 2
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def _attack(name: str, defaults: dict[str, Any], **kw: Any) -> AttackEntry:
    return AttackEntry(name, MappingProxyType({"norm": "Linf", **defaults}), **kw)


#: Stored key -> attack. Defaults are the full budgets of the protocol (PROTOCOL.md section 6).
ATTACKS: Mapping[str, AttackEntry] = MappingProxyType(
    {
        "fgsm": _attack("fgsm", {}, description="FGSM (Goodfellow et al. 2015): one signed-gradient step"),
        "pgd": _attack(
            "pgd",
            {"steps": 40, "step_factor": 2.5, "random_start": True, "restarts": 1},
            description="PGD (Madry et al. 2018): steps of step_factor * eps / steps from a uniform random start",
        ),
        "aa_apgd-ce": _attack(
            "aa_apgd-ce",
            {"n_iter": 100, "n_restarts": 1, "rho": 0.75},
            aliases=("apgd-ce", "apgd"),
            description="APGD on the cross-entropy loss (Croce & Hein 2020)",
        ),
        "aa_apgd-dlr": _attack(
            "aa_apgd-dlr",
            {"n_iter": 100, "n_restarts": 1, "rho": 0.75},
            aliases=("apgd-dlr",),
            min_classes=3,
            description="APGD on the DLR loss (Croce & Hein 2020)",
        ),
        "aa_square": _attack(
            "aa_square",
            {"n_queries": 5000, "p_init": 0.8, "n_restarts": 1},
            aliases=("square",),
            description="Square attack (Andriushchenko et al. 2020): score-based, no gradients",
        ),
    }
)
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)
ATTACK_ALIASES: Mapping[str, str] = MappingProxyType({a: e.name for e in ATTACKS.values() for a in e.aliases})
NORMS: tuple[str, ...] = ("Linf", "L2")

PRESETS: tuple[str, ...] = ("jung2023", "full", "smoke")
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "amp")
#: Jacobian Frobenius norm, largest Hessian eigenvalue, Hessian trace (PROTOCOL.md section 6; the trace is ours).
SURROGATES: tuple[str, ...] = ("jacobian", "hessian", "hessian_trace")
CERTIFIED_METHODS: tuple[str, ...] = ("ibp", "crown-ibp")
#: Which corrupted test sets a spec accepts: the published CIFAR-C files, our generator, or either.
CORRUPTION_SOURCES: tuple[str, ...] = ("files", "generated", "files-or-generated")
#: The 15 corruption types, in protocol order (PROTOCOL.md section 5).
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)


def canonical_attack(name: object) -> str:
    """The stored key of an attack name or alias, or an error listing the attacks."""
    key = ATTACK_ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in ATTACKS:
        raise choice_error("attack", name, [*ATTACK_NAMES, *ATTACK_ALIASES])
    return str(key)


def attack_defaults(name: str) -> dict[str, Any]:
    """The full default budget of an attack (``norm`` included)."""
    return dict(ATTACKS[canonical_attack(name)].defaults)


def check_semantics(value: str) -> str:
    return check_choice("semantics", value, SEMANTICS)
