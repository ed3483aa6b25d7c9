"""Adversarial attacks behind one registry: ``create_attack(name, **params)``, ``list_attacks()``.

Registry keys are the stored result keys (``fgsm``, ``pgd``, ``aa_apgd-ce``, ``aa_apgd-dlr``, ``aa_apgd-t``,
``aa_fab-t``, ``aa_square`` and the AutoAttack "standard" cascade ``autoattack``); short aliases (``apgd-ce``,
``square``, ...) are accepted. Epsilon grids, clean-misclassified points and the
per-epsilon / cumulative semantics are handled by :mod:`robustbench201.attacks.cascade`.
"""

from __future__ import annotations

from typing import Any

from ..vocab import ATTACKS as VOCAB
from ..vocab import attack_defaults, canonical_attack
from .apgd import APGD, APGDDLR, APGDT
from .autoattack import AutoAttack
from .base import Attack, AttackOutput, PassCounter
from .fab import FABT
from .fgsm import FGSM
from .pgd import PGD
from .square import Square

#: name -> attack class (each a frozen dataclass of hyper-parameters); the names, aliases and default budgets are
#: those of :data:`robustbench201.vocab.ATTACKS`.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, APGD, APGDDLR, APGDT, FABT, Square, AutoAttack)
}


def list_attacks() -> list[str]:
    """Registered attack names."""
    return list(ATTACKS)


def create_attack(name: str, **params: Any) -> Attack:
    """Instantiate attack ``name`` (aliases accepted) with hyper-parameters ``params`` (checked against the
    vocabulary: unknown names and values out of range are an error listing what is allowed)."""
    key = canonical_attack(name)
    return ATTACKS[key](**VOCAB[key].check(params))


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
