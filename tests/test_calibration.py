"""Expected calibration error against a hand-computed example, and the per-sample outputs of an evaluation (predicted
class, probabilities of the predicted and the true class, float16) with the ECE column of clean and corrupted data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustbench201.data.base import ImageSet
from robustbench201.errors import Rb201Error
from robustbench201.evaluation import evaluate
from robustbench201.measures.calibration import expected_calibration_error, per_sample_outputs
from robustbench201.spec import attack, preset


def test_ece_of_a_hand_computed_example() -> None:
    # 15 bins of width 1/15. Six samples:
    #   0.95, 0.99 (bin 15: (14/15, 1]): correct, wrong   -> acc 0.5, mean conf 0.97, |diff| 0.47, weight 2/6
    #   0.50 (bin 8: (7/15, 8/15]): correct                -> acc 1,   conf 0.50,      |diff| 0.50, weight 1/6
    #   0.20, 0.21 (bin 4: (3/15, 4/15]): wrong, wrong     -> acc 0,   conf 0.205,     |diff| 0.205, weight 2/6
    #   0.0 (bin 1, a confidence of exactly 0): wrong      -> acc 0,   conf 0,         |diff| 0
    conf = np.array([0.95, 0.99, 0.50, 0.20, 0.21, 0.0])
    correct = np.array([True, False, True, False, False, False])
    expected = (2 * 0.47 + 1 * 0.50 + 2 * 0.205 + 0) / 6
    assert expected_calibration_error(conf, correct) == pytest.approx(expected, abs=1e-12)
    # a bin edge belongs to the bin below it: 1/15 and 2/15 fall into bins 1 and 2
    edges = np.array([1 / 15, 2 / 15])
    assert expected_calibration_error(edges, np.array([True, False])) == pytest.approx(
        0.5 * (1 - 1 / 15) + 0.5 * (2 / 15)
    )
    assert expected_calibration_error(np.full(4, 0.75), np.array([1, 1, 1, 0])) == pytest.approx(0.0)
    assert expected_calibration_error(conf, correct, n_bins=1) == pytest.approx(abs(2 / 6 - conf.mean()))


@pytest.mark.parametrize(
    "conf, correct, bins, needle",
    [([0.5], [True, False], 15, "one of each"), ([], [], 15, "zero samples"), ([1.5], [True], 15, r"\[0, 1\]"),
     ([0.5], [True], 0, "n_bins 0")],
)  # fmt: skip
def test_ece_rejects_bad_input(conf, correct, bins, needle) -> None:
    with pytest.raises(Rb201Error, match=needle):
        expected_calibration_error(np.array(conf), np.array(correct, dtype=bool), n_bins=bins)


def test_per_sample_outputs_are_small_and_exact_enough() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], dtype=np.float32)
    out = per_sample_outputs(probs, np.array([1, 2]))
    assert out["pred"].dtype == np.int16 and out["pred"].tolist() == [1, 0]
    assert out["prob_pred"].dtype == np.float16 and np.allclose(out["prob_pred"], [0.7, 0.6], atol=1e-3)
    assert out["prob_true"].dtype == np.float16 and np.allclose(out["prob_true"], [0.7, 0.1], atol=1e-3)


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_evaluation_stores_per_sample_outputs_and_ece_only_when_asked() -> None:
    rng = np.random.default_rng(0)
    data = ImageSet("cifar10", "test", rng.integers(0, 256, (30, 3, 4, 4), dtype=np.uint8), rng.integers(0, 10, 30))
    model = _Linear().eval()
    spec = preset("smoke").replace(attacks=(attack("fgsm", (1, 8)),), corruptions=(), surrogates=(), certified=())
    plain = evaluate(model, data, spec)
    assert not any(k.measure in ("pred", "prob_pred", "prob_true") for k in plain.arrays)
    full = evaluate(model, data, spec.replace(per_sample=True))
    assert spec.replace(per_sample=True).hash != spec.hash
    per = {(k.key, k.epsilon, k.measure): v for k, v in full.arrays.items() if k.semantics in ("", spec.semantics)}
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(data.images).float() / 255), 1).numpy()
    clean_pred = next(v for k, v in per.items() if k[0] == "clean" and k[2] == "pred")
    assert clean_pred.tolist() == probs.argmax(1).tolist()
    clean_true = next(v for k, v in per.items() if k[0] == "clean" and k[2] == "prob_true")
    assert clean_true.dtype == np.float16 and np.allclose(clean_true, probs[np.arange(30), data.labels], atol=1e-3)
    for e in (1.0, 8.0):
        assert {m for (key, eps, m) in per if key == "fgsm" and eps == e} >= {"pred", "prob_pred", "prob_true"}
    # ECE: a column of clean (and corrupted) data, computed from the model's own confidences
    ece = full.value("clean", "ece")
    assert ece == pytest.approx(expected_calibration_error(probs.max(1), probs.argmax(1) == data.labels), abs=1e-6)
    assert not any(r.measure == "ece" and r.family == "adversarial" for r in full.records)
    # the jung2023 preset keeps its size: per-sample outputs are off there
    assert not preset("jung2023").per_sample
