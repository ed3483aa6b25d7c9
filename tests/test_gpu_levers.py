"""The GPU levers, checked on CPU: the out-of-memory retry rewinds the attack's generator (a run that halved equals
a run started at the smaller batch), bucket-padded Square forwards give the numbers of unpadded ones, float16
Square proposals verified in float32 keep float32's decisions (strength rule), the Square options of a spec are
validated, and several pool workers on one device write exactly the rows of one worker."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from test_attacks import correct_points, test_images, tiny_model
from test_evaluate import image_set

from robustbench201.attacks import create_attack
from robustbench201.attacks.base import margin
from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.attacks.square import Square
from robustbench201.attacks.square_fast import (
    BucketedForward,
    FastSquare,
    Fp16VerifiedScores,
    SquareStats,
    apply_square_options,
    bucket_size,
    square_options,
)
from robustbench201.errors import Rb201Error
from robustbench201.evaluation import evaluate
from robustbench201.models.fast import fast_model
from robustbench201.runner.pool import expand_devices
from robustbench201.spec import EvalSpec, attack


# ---- out-of-memory retry ------------------------------------------------------------------------------------------
def test_out_of_memory_retry_rewinds_the_generator():
    def draws(size: int, oom_above: int) -> list[float]:
        gen = torch.Generator().manual_seed(3)
        out: list[float] = []

        def fn(a: int, b: int) -> None:
            v = torch.rand(b - a, generator=gen)  # drawn before the failure, as an attack's random start is
            if b - a > oom_above:
                raise torch.OutOfMemoryError("fake")
            out.extend(v.tolist())

        BatchPolicy(size).run(20, fn, generator=gen)
        return out

    assert draws(64, oom_above=5) == draws(4, oom_above=10**9)


class _OOMUnlessInference(torch.nn.Module):
    """Raises a fake out-of-memory error for attack forwards (not the clean pass) over ``limit`` rows."""

    def __init__(self, inner: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit

    def forward(self, x):
        if x.shape[0] > self.limit and not torch.is_inference_mode_enabled():
            raise torch.OutOfMemoryError("fake")
        return self.inner(x)


@pytest.mark.parametrize("name", ["pgd", "aa_square"])
def test_an_attack_that_halved_gives_the_numbers_of_a_run_started_at_the_smaller_batch(name):
    model = fast_model(tiny_model())
    x, y = test_images(40)
    with torch.no_grad():
        clean = model(x)
    params = {"steps": 4} if name == "pgd" else {"n_queries": 25}
    atk = create_attack(name, **params)
    eps = (4.0, 16.0)

    def grid(m: torch.nn.Module, size: int):  # type: ignore[no-untyped-def]
        gen = torch.Generator().manual_seed(5)
        return run_grid(atk, m, x, y, clean, eps, "per-epsilon", gen, BatchPolicy(size))

    got, ref = grid(_OOMUnlessInference(model, 8), 128), grid(model, 8)
    assert np.array_equal(got.correct, ref.correct) and torch.equal(got.logits, ref.logits)


# ---- bucket padding -----------------------------------------------------------------------------------------------
def test_bucket_sizes_are_min_rows_times_powers_of_two():
    assert [bucket_size(n, 16) for n in (1, 16, 17, 33, 64, 65)] == [16, 16, 32, 64, 64, 128]
    assert bucket_size(5, 1) == 8
    with pytest.raises(Rb201Error, match="n >= 1"):
        bucket_size(0, 16)


def test_bucketed_forward_gives_the_unpadded_outputs():
    net = fast_model(tiny_model())
    padded = BucketedForward(net, min_rows=16)
    x = torch.rand(70, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # a convolution library may sum a row's products in another order for another batch size (oneDNN with
        # AVX-512 does not from 16 rows on, ATen's own kernels do), so equal up to float32 rounding: a few units in
        # the last place of the largest logit
        for n in (2, 5, 16, 17, 40, 70):
            a, b = padded(x[:n]), net(x[:n])
            assert torch.allclose(a, b, rtol=0, atol=1e-6 * float(b.abs().max())), n
            assert torch.equal(a.argmax(1), b.argmax(1)), n
    assert padded.stats.rows == 150 and padded.stats.padded_rows == 16 + 32 + 64 + 128 + 16 + 16
    assert padded.stats.graph_captures == 0  # graphs are never used on a CPU


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_square_with_buckets_equals_square(norm):
    model = fast_model(tiny_model())
    x, y = correct_points(model, 40)
    eps = torch.full((len(x),), (8 if norm == "Linf" else 255) / 255)
    ref = Square(norm=norm, n_queries=60).perturb(model, x, y, eps, torch.Generator().manual_seed(1))
    fast = FastSquare(norm=norm, n_queries=60, buckets=16)
    got = fast.perturb(model, x, y, eps, torch.Generator().manual_seed(1))
    assert torch.equal(got.x_adv, ref.x_adv) and torch.equal(got.fooled, ref.fooled)
    # the padded forwards' logits equal up to float32 rounding (test_bucketed_forward_gives_the_unpadded_outputs)
    assert torch.allclose(got.logits, ref.logits, rtol=0, atol=1e-6 * float(ref.logits.abs().max()))
    assert fast.stats.padded_rows > fast.stats.rows > 0


def test_evaluate_with_square_buckets_in_the_spec_gives_the_same_flags():
    base = EvalSpec(name="b", attacks=(attack("aa_square", (4, 16), n_queries=40),), semantics="per-epsilon")
    bucketed = base.replace(extra=(("square_buckets", 16),))
    assert bucketed.hash != base.hash  # the option is part of the protocol record only when set
    a = evaluate(tiny_model(), image_set(40), base)
    b = evaluate(tiny_model(), image_set(40), bucketed)
    assert {k: v.tolist() for k, v in a.arrays.items()} == {k: v.tolist() for k, v in b.arrays.items()}


# ---- float16 proposals verified in float32 ------------------------------------------------------------------------
def test_fp16_verified_proposals_keep_float32_decisions_and_strength():
    model = fast_model(tiny_model())
    x, y = correct_points(model, 30)
    eps = torch.full((len(x),), 16 / 255)
    ref = Square(n_queries=40).perturb(model, x, y, eps, torch.Generator().manual_seed(2))
    fast = FastSquare(n_queries=40, proposals="fp16-verified", audit=True)
    got = fast.perturb(model, x, y, eps, torch.Generator().manual_seed(2))
    st = fast.stats
    assert st.proposals > 0 and st.audit_decisions == st.proposals
    assert st.audit_disagreements - st.audit_ties == 0  # every decision beyond float32 ties is float32's
    assert 0 < st.reevaluated_fraction() < 1  # some decisions came from float16 alone, some needed float32
    # strength rule: not weaker than float32 (here: the very same points are fooled)
    assert int(got.fooled.sum()) >= int(ref.fooled.sum()) - 1
    assert torch.equal(got.fooled, ref.fooled)
    # returned logits are float32 logits of the returned points
    with torch.no_grad():
        assert torch.allclose(got.logits, model(got.x_adv), atol=1e-5)


class _Shifted(torch.nn.Module):
    """``model`` plus ``shift`` on the true-class logit (a float16 stand-in whose error we control)."""

    def __init__(self, model: torch.nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y, self.shift = model, y, 0.0

    def forward(self, x):
        z = self.model(x).float()
        return z.scatter_add(1, self.y[: len(x), None], torch.full((len(x), 1), self.shift))


def test_fp16_band_violations_are_counted_and_widen_the_band():
    model = fast_model(tiny_model())
    x, y = correct_points(model, 8)
    stats = SquareStats()
    half = _Shifted(model, y)
    scores = Fp16VerifiedScores(model, half, safety=4.0, stats=stats)
    with torch.no_grad():
        _, m32 = scores.start(x, y)
        c0 = scores.c
        half.shift = -float(m32.max()) - 1.0  # every proposal now looks like a success in "float16"
        rows = torch.arange(len(x))
        keep, m, _ = scores.step(rows, x, y, x, m32)
    # all were re-checked in float32 (possible successes): none fools, none improves on itself
    assert not keep.any() and torch.equal(m, margin(model(x), y))
    assert stats.fp32_proposal_rows == len(x) and stats.band_violations == len(x) and scores.c > c0


def test_fp16_proposals_need_a_float32_reference_and_options_are_validated():
    assert not square_options(()).active
    opts = square_options({"square_proposals": "fp16-verified", "square_buckets": 32, "square_cuda_graphs": True})
    assert opts.active and opts.buckets == 32 and opts.cuda_graphs
    sq = apply_square_options(Square(n_queries=7), opts)
    assert isinstance(sq, FastSquare) and sq.n_queries == 7 and sq.buckets == 32
    assert apply_square_options(Square(), square_options(())).__class__ is Square
    for bad, msg in (
        ({"square_proposals": "bf16"}, "allowed: fp32, fp16-verified"),
        ({"square_buckets": -1}, "square_buckets -1"),
        ({"square_buckets": True}, "square_buckets True"),
        ({"square_cuda_graphs": True}, "needs square_buckets"),
        ({"square_band_safety": 0.5}, "square_band_safety 0.5"),
        ({"square_graphs": True}, "unknown Square option"),
    ):
        with pytest.raises(Rb201Error, match=msg):
            square_options(bad)
    with pytest.raises(Rb201Error, match="needs precision fp32 or tf32"):
        square_options({"square_proposals": "fp16-verified"}, precision="amp")
    with pytest.raises(Rb201Error, match="cannot capture autocast"):
        square_options({"square_buckets": 16, "square_cuda_graphs": True}, precision="amp")
    spec = EvalSpec(attacks=(attack("aa_square", (8,), n_queries=5),), extra=(("square_proposals", "half"),))
    with pytest.raises(Rb201Error, match="square_proposals 'half'"):
        evaluate(tiny_model(), image_set(8), spec)


# ---- several workers per device -----------------------------------------------------------------------------------
def test_expand_devices_interleaves_and_validates():
    assert expand_devices(["cuda:0", "cuda:1"], 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert expand_devices(["cpu"], 1) == ["cpu"]
    with pytest.raises(Rb201Error, match="workers per device 0"):
        expand_devices(["cpu"], 0)


def test_two_workers_on_one_device_write_the_rows_of_one_worker(tmp_path):
    from robustbench201.cli import main

    spec = EvalSpec(
        name="workers",
        attacks=(attack("fgsm", (1, 8)), attack("pgd", (8,), steps=3), attack("aa_square", (8,), n_queries=20)),
        semantics="per-epsilon",
        batch_size=64,
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    common = ["evaluate", "--arch", "0,7,1462", "--dataset", "mnist5k", "--weights", "init", "--spec", str(spec_file),
              "--channels", "4", "--cells", "1", "--n-test", "24", "--no-progress"]  # fmt: skip
    runs = {}
    for k in (1, 2):
        out = tmp_path / f"k{k}"
        r = CliRunner().invoke(main, [*common, "--device", "cpu", "--workers-per-gpu", str(k), "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert "3 evaluated, 0 already done, 0 failed of 3" in r.output
        (shard,) = out.glob("shard-list-*")
        tables = [pq.read_table(p).to_pandas() for p in sorted(shard.glob("arch-*.parquet"))]
        runs[k] = [t.sort_values(list(t.columns)).reset_index(drop=True) for t in tables]
    assert len(runs[1]) == len(runs[2]) == 3
    for one, two in zip(runs[1], runs[2]):
        assert one.equals(two)
