"""Adversarial attacks behind one registry: ``create_attack(name, **params)``, ``list_attacks()``.

Registry keys are the stored result keys (``fgsm``, ``pgd``, ``aa_apgd-ce``, ``aa_apgd-dlr``, ``aa_square``);
short aliases (``apgd-ce``, ``square``, ...) are accepted. Epsilon grids, clean-misclassified points and the
per-epsilon / cumulative semantics are handled by :mod:`robustbench201.attacks.cascade`.
"""

from __future__ import annotations

from typing import Any

from ..errors import Rb201Error, choice_error
from .apgd import APGD, APGDDLR
from .base import Attack, AttackOutput, PassCounter
from .fgsm import FGSM
from .pgd import PGD
from .square import Square

#: name -> attack class (each a frozen dataclass of hyper-parameters).
ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (FGSM, PGD, APGD, APGDDLR, Square)}
_ALIASES = {"apgd-ce": "aa_apgd-ce", "apgd": "aa_apgd-ce", "apgd-dlr": "aa_apgd-dlr", "square": "aa_square"}


def canonical_attack(name: str) -> str:
    """Registry key for ``name`` (aliases accepted) or an error listing the attacks."""
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in ATTACKS:
        raise choice_error("attack", name, list(ATTACKS))
    return key


def list_attacks() -> list[str]:
    """Registered attack names."""
    return list(ATTACKS)


def attack_defaults(name: str) -> dict[str, Any]:
    """Default hyper-parameters of an attack (its full budget)."""
    return ATTACKS[canonical_attack(name)]().params()


def create_attack(name: str, **params: Any) -> Attack:
    """Instantiate attack ``name`` with hyper-parameters ``params`` (unknown ones are an error)."""
    key = canonical_attack(name)
    allowed = attack_defaults(key)
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise Rb201Error(f"attack {key!r} has no parameter(s) {bad}; allowed: {', '.join(allowed)}")
    return ATTACKS[key](**params)


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackOutput",
    "PassCounter",
    "attack_defaults",
    "canonical_attack",
    "create_attack",
    "list_attacks",
]
