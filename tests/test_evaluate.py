"""evaluate(): records and arrays, semantics, worst case, spec presets and validation, input checks, the
out-of-memory fallback, and the corruption integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import beyond_chance
from test_attacks import mnist5k, tiny_model

from robustbench201.data.base import ImageSet
from robustbench201.errors import Rb201Error
from robustbench201.evaluation import ArrayKey, evaluate
from robustbench201.runner.records import result_arrays, result_rows
from robustbench201.spec import EvalSpec, attack, preset
from robustbench201.store.schema import array_path


def image_set(n: int) -> ImageSet:
    images, labels = mnist5k()
    return ImageSet("mnist5k", "test", images[4000 : 4000 + n], labels[4000 : 4000 + n])


SPEC = EvalSpec(
    name="test",
    attacks=(attack("fgsm", (1, 4, 8)), attack("pgd", (1, 8), steps=5), attack("aa_square", (1, 8), n_queries=30)),
    semantics="per-epsilon",
    batch_size=256,
)


@pytest.fixture(scope="module")
def result():
    return evaluate(tiny_model(), image_set(80), SPEC)


def test_records_have_every_measure_and_semantics(result):
    clean = result.value("clean")
    clean_ok = result.arrays[ArrayKey("clean", "clean", "correct")]
    assert clean == clean_ok.mean() and beyond_chance(image_set(80).labels) < clean <= 1
    for key, eps in (("fgsm", 4.0), ("pgd", 8.0), ("aa_square", 1.0)):
        for sem in ("per-epsilon", "cumulative"):
            acc = result.value(key, epsilon=eps, semantics=sem)
            assert 0 <= acc <= clean
            for m in ("confidence_pred", "confidence_true"):
                assert 0 <= result.value(key, m, epsilon=eps, semantics=sem) <= 1
            correct = result.arrays[ArrayKey("adversarial", key, "correct", eps, 0, sem)]
            assert correct.dtype == bool and correct.shape == (80,) and correct.mean() == acc
            conf = result.arrays[ArrayKey("adversarial", key, "confusion", eps, 0, sem)]
            assert conf.shape == (10, 10) and conf.sum() == 80 and np.trace(conf) == correct.sum()
    assert all(not math.isnan(r.epsilon) for r in result.records if r.family == "adversarial")


def test_worst_case_is_the_and_over_attacks(result):
    for sem in ("per-epsilon", "cumulative"):
        w = result.arrays[ArrayKey("adversarial", "worst_case", "correct", 8.0, 0, sem)]
        for key in ("fgsm", "pgd", "aa_square"):
            assert not (w & ~result.arrays[ArrayKey("adversarial", key, "correct", 8.0, 0, sem)]).any()


def test_cumulative_is_monotone_and_never_above_per_epsilon(result):
    accs = [result.value("fgsm", epsilon=e, semantics="cumulative") for e in (1.0, 4.0, 8.0)]
    assert accs == sorted(accs, reverse=True)
    for e in (1.0, 4.0, 8.0):
        assert result.value("fgsm", epsilon=e, semantics="cumulative") <= result.value(
            "fgsm", epsilon=e, semantics="per-epsilon"
        )


def test_rows_and_array_paths_follow_the_schema(result):
    rows = result_rows(result, 42, "mnist5k", 0, "train-2ep", "0.1.0")
    assert len(rows) == len(result.records)
    assert {r.spec_hash for r in rows} == {SPEC.hash}
    items = result_arrays(result, 42, "mnist5k", 0, "train-2ep")
    key = array_path("mnist5k", 42, "adversarial", "pgd", "correct", 8.0, 0, 0, "train-2ep", "cumulative")
    assert key in items and items[key].shape == (80,)


def test_evaluation_is_deterministic_given_the_seed():
    spec = SPEC.replace(attacks=(attack("pgd", (2,), steps=3), attack("aa_square", (4,), n_queries=20)))
    a = evaluate(tiny_model(), image_set(40), spec)
    b = evaluate(tiny_model(), image_set(40), spec)
    assert [r.value for r in a.records] == [r.value for r in b.records]


class _OOMModel(torch.nn.Module):
    """Raises a fake out-of-memory error for batches over 16 rows."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if x.shape[0] > 16:
            raise torch.OutOfMemoryError("fake")
        return self.inner(x)


def test_out_of_memory_halves_the_batch_and_gives_the_same_numbers():
    spec = SPEC.replace(attacks=(attack("fgsm", (1, 8)),), batch_size=128, fast_forward=False)
    ref = evaluate(tiny_model(), image_set(40), spec)
    got = evaluate(_OOMModel(tiny_model()), image_set(40), spec)
    assert [r.value for r in got.records] == pytest.approx([r.value for r in ref.records])


class _Const(torch.nn.Module):
    def __init__(self, value: float, k: int = 10) -> None:
        super().__init__()
        self.value, self.k = value, k

    def forward(self, x):
        return torch.full((x.shape[0], self.k), self.value) + x.flatten(1)[:, :1]


def test_bad_inputs_fail_before_any_attack():
    with pytest.raises(Rb201Error, match="NaN or inf"):
        evaluate(_Const(float("nan")), image_set(8), SPEC)
    with pytest.raises(Rb201Error, match="labels range"):
        evaluate(_Const(0.0, k=3), image_set(8), SPEC)
    with pytest.raises(Rb201Error, match="EvalSpec"):
        evaluate(_Const(0.0), image_set(8), "jung2023")


def test_presets_are_hashable_roundtrip_and_match_the_protocol():
    j = preset("jung2023")
    assert j.semantics == "per-epsilon" and preset("full").semantics == "cumulative"
    grids = {a.name: a.epsilons for a in j.attacks}
    assert grids["fgsm"] == (0.1, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 255)
    assert grids["pgd"] == grids["aa_apgd-ce"] == grids["aa_square"] == (0.1, 0.5, 1, 2, 3, 4, 8)
    params = {a.name: a.kwargs() for a in j.attacks}
    assert params["pgd"]["steps"] == 40 and params["aa_apgd-ce"]["n_iter"] == 100
    assert params["aa_square"]["n_queries"] == 5000 and params["aa_square"]["p_init"] == 0.8
    assert len(j.corruptions) == 15 and j.severities == (1, 2, 3, 4, 5)
    for name in ("jung2023", "full", "smoke"):
        s = preset(name)
        assert EvalSpec.from_json(s.to_json()) == s and hash(s) == hash(EvalSpec.from_json(s.to_json()))
        assert len(s.hash) == 16
    assert preset("smoke").hash != SPEC.hash


def test_spec_defaults_match_the_attack_classes():
    from robustbench201.attacks import ATTACKS as CLASSES
    from robustbench201.vocab import ATTACKS

    assert set(CLASSES) == set(ATTACKS)
    for name, entry in ATTACKS.items():
        assert CLASSES[name]().params() == dict(entry.defaults), name
        assert attack(name, (1,)).kwargs() == dict(entry.defaults)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: attack("pgd", (0,)), "0 < eps <= 255"),
        (lambda: attack("pgd", (300,)), "0 < eps <= 255"),
        (lambda: attack("cw", (1,)), "aa_apgd-ce"),
        (lambda: EvalSpec(corruptions=("rain",)), "gaussian_noise"),
        (lambda: EvalSpec(precision="fp16"), "amp"),
        (lambda: preset("fast"), "jung2023"),
    ],
)
def test_spec_validation_names_the_bad_value(make, match):
    with pytest.raises(Rb201Error, match=match):
        make()


def test_corruptions_are_evaluated_through_a_corruption_source():
    import robustbench201.corruptions.sources as sources

    data = image_set(16)
    spec = EvalSpec(corruptions=("gaussian_noise", "brightness"), severities=(1, 5))
    source = sources.GeneratedCorruptions(data, seed=0)
    res = evaluate(tiny_model(), data, spec, corruptions=source)
    for c in ("gaussian_noise", "brightness"):
        for s in (1, 5):
            assert 0 <= res.value(c, severity=s) <= 1
            assert res.arrays[ArrayKey("corruption", c, "confusion", math.nan, s)].sum() == 16
