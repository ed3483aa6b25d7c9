"""The closed vocabularies of rb201, in one torch-free place: attacks (names, aliases, norms, default budgets),
semantics, presets, precisions, launch executors, corruption names and sources, surrogates, certified-bound methods,
evaluation splits, training recipes (with their default hyper-parameters) and held-out validation splits.

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

from .errors import Rb201Error, check_choice, choice_error

__all__ = ["Semantics", "SEMANTICS", "Rule", "AttackEntry", "ATTACKS", "AUTOATTACK_STAGES", "ATTACK_NAMES",
           "ATTACK_ALIASES", "NORMS", "PRESETS", "SPLITS", "FLOAT32_PRECISIONS", "PRECISIONS", "EXECUTORS",
           "SURROGATES", "CERTIFIED_METHODS", "CORRUPTION_SOURCES", "CORRUPTIONS", "canonical_attack",
           "attack_defaults", "HOLDOUTS", "SCHEDULES", "ADVERSARIAL", "RecipeEntry", "RECIPES", "RECIPE_NAMES",
           "DSRNA_METRICS", "DSRNA_GAMMA_MODES", "NAS_ALGORITHMS"]  # fmt: skip


class Semantics(str, Enum):
    """How a per-epsilon adversarial value was obtained (PROTOCOL.md section 6)."""

    PER_EPSILON = "per-epsilon"  # each epsilon attacked on its own (the published protocol)
    CUMULATIVE = "cumulative"  # nested over epsilons: a point broken at a smaller epsilon stays broken


SEMANTICS: tuple[str, ...] = tuple(s.value for s in Semantics)


@dataclass(frozen=True)
class Rule:
    """The allowed values of one hyper-parameter: a bool, one of ``choices`` (strings), or a number within bounds
    (``low_open`` / ``high_open``: the bound itself is excluded), an integer when ``integer``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    boolean: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.boolean:
            return "True or False"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.integer else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f"{kind} {' and '.join(parts)}".strip()

    def allows(self, value: object) -> bool:
        if self.boolean:
            return isinstance(value, bool)
        if self.choices:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            return False
        if self.integer and not float(value).is_integer():
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


_COUNT = Rule(low=1, integer=True)
_POSITIVE = Rule(low=0, low_open=True)
_FLAG = Rule(boolean=True)
_RHO = Rule(low=0, high=1, low_open=True, high_open=True)
#: AutoAttack's "standard" version compares against 9 target classes (the 2nd to 10th largest clean logits).
_TARGETS = Rule(low=1, integer=True)


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
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full hyper-parameters (defaults filled in) after checking names and values; an error naming the bad
        one and what is allowed otherwise."""
        bad = sorted(set(params) - set(self.defaults))
        if bad:
            raise Rb201Error(f"attack {self.name!r} has no parameter(s) {bad}; allowed: {', '.join(self.defaults)}")
        full = {**self.defaults, **params}
        check_choice(f"norm of attack {self.name!r}", full["norm"], self.norms)
        for key, rule in self.rules.items():
            if not rule.allows(full[key]):
                raise Rb201Error(f"attack {self.name!r}: {key}={full[key]!r} not allowed; allowed: {rule.describe()}")
        return full


def _attack(name: str, defaults: dict[str, Any], rules: dict[str, Rule] | None = None, **kw: Any) -> AttackEntry:
    return AttackEntry(
        name, MappingProxyType({"norm": "Linf", **defaults}), rules=MappingProxyType(dict(rules or {})), **kw
    )


#: Stored key -> attack. Defaults are the full budgets of the protocol (PROTOCOL.md section 6).
ATTACKS: Mapping[str, AttackEntry] = MappingProxyType(
    {
        "fgsm": _attack("fgsm", {}, description="FGSM (Goodfellow et al. 2015): one signed-gradient step"),
        "pgd": _attack(
            "pgd",
            {"steps": 40, "step_factor": 2.5, "random_start": True, "restarts": 1},
            {"steps": _COUNT, "step_factor": _POSITIVE, "random_start": _FLAG, "restarts": _COUNT},
            description="PGD (Madry et al. 2018): steps of step_factor * eps / steps from a uniform random start",
        ),
        "aa_apgd-ce": _attack(
            "aa_apgd-ce",
            {"n_iter": 100, "n_restarts": 1, "rho": 0.75},
            {"n_iter": _COUNT, "n_restarts": _COUNT, "rho": Rule(low=0, high=1, low_open=True, high_open=True)},
            aliases=("apgd-ce", "apgd"),
            description="APGD on the cross-entropy loss (Croce & Hein 2020)",
        ),
        "aa_apgd-dlr": _attack(
            "aa_apgd-dlr",
            {"n_iter": 100, "n_restarts": 1, "rho": 0.75},
            {"n_iter": _COUNT, "n_restarts": _COUNT, "rho": Rule(low=0, high=1, low_open=True, high_open=True)},
            aliases=("apgd-dlr",),
            min_classes=3,
            description="APGD on the DLR loss (Croce & Hein 2020)",
        ),
        "aa_apgd-t": _attack(
            "aa_apgd-t",
            {"n_iter": 100, "n_restarts": 1, "rho": 0.75, "n_target_classes": 9},
            {"n_iter": _COUNT, "n_restarts": _COUNT, "rho": _RHO, "n_target_classes": _TARGETS},
            aliases=("apgd-t",),
            min_classes=4,
            description="targeted APGD on the targeted DLR loss, one run per target class (Croce & Hein 2020)",
        ),
        "aa_fab-t": _attack(
            "aa_fab-t",
            {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9},
            {
                "n_iter": _COUNT,
                "n_restarts": _COUNT,
                "n_target_classes": _TARGETS,
                "alpha_max": Rule(low=0, high=1, low_open=True),
                "eta": Rule(low=1),
                "beta": _RHO,
            },
            aliases=("fab-t",),
            norms=("Linf",),
            description="targeted FAB, minimally distorted points, one run per target class (Croce & Hein 2020)",
        ),
        "aa_square": _attack(
            "aa_square",
            {"n_queries": 5000, "p_init": 0.8, "n_restarts": 1},
            {"n_queries": _COUNT, "p_init": Rule(low=0, high=1, low_open=True), "n_restarts": _COUNT},
            aliases=("square",),
            description="Square attack (Andriushchenko et al. 2020): score-based, no gradients",
        ),
        "autoattack": _attack(
            "autoattack",
            {
                "n_iter": 100,
                "n_target_classes": 9,
                "n_queries": 5000,
                "p_init": 0.8,
                "rho": 0.75,
                "alpha_max": 0.1,
                "eta": 1.05,
                "beta": 0.9,
            },
            {
                "n_iter": _COUNT,
                "n_target_classes": _TARGETS,
                "n_queries": _COUNT,
                "p_init": Rule(low=0, high=1, low_open=True),
                "rho": _RHO,
                "alpha_max": Rule(low=0, high=1, low_open=True),
                "eta": Rule(low=1),
                "beta": _RHO,
            },
            aliases=("aa-standard",),
            norms=("Linf",),
            min_classes=4,
            description="AutoAttack 'standard' (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square as a per-sample "
            "worst-case cascade (only points no earlier stage broke go on)",
        ),
    }
)
#: The stages of the ``autoattack`` cascade, in order (stored keys of the attacks it runs).
AUTOATTACK_STAGES: tuple[str, ...] = ("aa_apgd-ce", "aa_apgd-t", "aa_fab-t", "aa_square")
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)
ATTACK_ALIASES: Mapping[str, str] = MappingProxyType({a: e.name for e in ATTACKS.values() for a in e.aliases})
NORMS: tuple[str, ...] = ("Linf", "L2")

PRESETS: tuple[str, ...] = ("jung2023", "full", "smoke", "wu2024")
#: Which images an evaluation row is computed on: the test set (NB201's test / ImageNet16-120 val set), or a split
#: held out of the training set (``valid``; see :data:`HOLDOUTS`).
SPLITS: tuple[str, ...] = ("test", "valid")
#: Precisions that compute in float32 (a float32 reference for float16 work); ``amp`` autocasts to float16.
FLOAT32_PRECISIONS: tuple[str, ...] = ("fp32", "tf32")
PRECISIONS: tuple[str, ...] = (*FLOAT32_PRECISIONS, "amp")
#: Where ``rb201 launch`` runs its shard tasks (submitit): an sbatch job array, subprocesses here, this process.
EXECUTORS: tuple[str, ...] = ("slurm", "local", "debug")
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


# ---- training ----------------------------------------------------------------------------------------------------
#: How a validation split is held out of the training set: ``none`` (train on every training image), ``nb201``
#: (CIFAR-10 only: NAS-Bench-201's ``cifar10-valid`` split, 25,000 training and 25,000 validation images), ``seeded``
#: (a class-stratified fraction ``holdout_fraction`` of each class, drawn with ``holdout_seed``).
HOLDOUTS: tuple[str, ...] = ("none", "nb201", "seeded")
#: Learning-rate schedules: NB201's cosine to 0 set once per epoch; PyTorch's OneCycleLR stepped per batch.
SCHEDULES: tuple[str, ...] = ("cosine-epoch", "onecycle-batch")
#: Adversarial training: none, or PGD (Madry et al. 2018) with the model in eval mode while it runs.
ADVERSARIAL: tuple[str, ...] = ("none", "pgd")


@dataclass(frozen=True)
class RecipeEntry:
    """One named training recipe: its full default hyper-parameters (epsilons and PGD steps in 1/255 units) and
    the values each may take."""

    name: str
    defaults: Mapping[str, Any]
    rules: Mapping[str, Rule]
    description: str = ""

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full hyper-parameters (defaults filled in) after checking names and values."""
        bad = sorted(set(params) - set(self.defaults))
        if bad:
            raise Rb201Error(f"recipe {self.name!r} has no parameter(s) {bad}; allowed: {', '.join(self.defaults)}")
        full = {**self.defaults, **params}
        for key, rule in self.rules.items():
            if not rule.allows(full[key]):
                raise Rb201Error(f"recipe {self.name!r}: {key}={full[key]!r} not allowed; allowed: {rule.describe()}")
        return full


_RECIPE_RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "epochs": _COUNT,
        "batch_size": _COUNT,
        "lr": _POSITIVE,
        "momentum": Rule(low=0, high=1, high_open=True),
        "nesterov": _FLAG,
        "weight_decay": Rule(low=0),
        "schedule": Rule(choices=SCHEDULES),
        "adversarial": Rule(choices=ADVERSARIAL),
        "adv_eps": Rule(low=0, high=255, low_open=True),
        "adv_step": _POSITIVE,
        "adv_steps": _COUNT,
        "adv_random_start": _FLAG,
        "holdout": Rule(choices=HOLDOUTS),
        "holdout_fraction": Rule(low=0, high=1, low_open=True, high_open=True),
        "holdout_seed": Rule(low=0, integer=True),
    }
)
_PGD_8_2_7 = {"adv_eps": 8.0, "adv_step": 2.0, "adv_steps": 7, "adv_random_start": True}

#: Named training recipes (PROTOCOL.md sections 3 and 8). ``lr`` is the peak learning rate of the schedule.
RECIPES: Mapping[str, RecipeEntry] = MappingProxyType(
    {
        "nb201": RecipeEntry(
            "nb201",
            MappingProxyType(
                {
                    "epochs": 200,
                    "batch_size": 256,
                    "lr": 0.1,
                    "momentum": 0.9,
                    "nesterov": True,
                    "weight_decay": 5e-4,
                    "schedule": "cosine-epoch",
                    "adversarial": "none",
                    **_PGD_8_2_7,
                    "holdout": "none",
                    "holdout_fraction": 0.1,
                    "holdout_seed": 0,
                }
            ),
            _RECIPE_RULES,
            "NAS-Bench-201 (Dong & Yang 2020): 200 epochs, SGD 0.1 Nesterov, cosine per epoch, standard training",
        ),
        "wu2024": RecipeEntry(
            "wu2024",
            MappingProxyType(
                {
                    "epochs": 50,
                    "batch_size": 256,
                    "lr": 0.05,
                    "momentum": 0.9,
                    "nesterov": False,
                    "weight_decay": 5e-4,
                    "schedule": "onecycle-batch",
                    "adversarial": "pgd",
                    **_PGD_8_2_7,
                    "holdout": "seeded",
                    "holdout_fraction": 0.1,
                    "holdout_seed": 0,
                }
            ),
            _RECIPE_RULES,
            "NAS-RobBench-201 (Wu et al. 2024): 50 epochs, OneCycle to 0.05 per batch, PGD-7 at 8/255 step 2/255",
        ),
    }
)
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES)


# ---- NAS on the table (search/nas.py) ------------------------------------------------------------------------------
#: Baselines ``rb201 search table --algo`` runs on the results table, with the names figures and reports give them:
#: random search, regularized evolution, local search, and gradient ascent of the expected objective over DARTS'
#: architecture weights (no images).
NAS_ALGORITHMS: Mapping[str, str] = MappingProxyType(
    {"rs": "random search", "re": "regularized evolution", "ls": "local search", "ga": "gradient ascent"}
)


# ---- DSRNA search (search/dsrna/config.py) -------------------------------------------------------------------------
#: Robustness regulariser of a DSRNA search: R_Jac, R_CB, both, none (plain DARTS); R_table, the results table's
#: expectation under the architecture distribution (``table``), or the value of the current argmax cell with a
#: straight-through gradient (``table-st``), alone or with R_Jac or R_CB.
DSRNA_METRICS: tuple[str, ...] = (
    "jacobian",
    "certified",
    "combined",
    "none",
    "table",
    "table-st",
    "table+jacobian",
    "table+certified",
)
#: How R_table handles chance accuracy (dead cells and cells at chance): gate robustness by clean accuracy above
#: chance, penalise the mass of dead cells, accuracy retained relative to clean, or the raw column.
DSRNA_CHANCE_MODES: tuple[str, ...] = ("gate", "dead-penalty", "retained", "none")
#: How gamma weighs R: ``absolute`` (the paper's L_val - gamma R) or ``relative`` (gamma in units of the ratio of the
#: validation loss to |R| measured at the start of the search: one gamma means the same for every metric).
DSRNA_GAMMA_MODES: tuple[str, ...] = ("absolute", "relative")
