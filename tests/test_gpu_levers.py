"""The GPU levers, checked on CPU: the out-of-memory retry rewinds the attack's generator (a run that halved equals
a run started at the smaller batch), bucket-padded Square forwards give the numbers of unpadded ones, float16
Square proposals verified in float32 keep float32's decisions (strength rule), the Square options of a spec are
validated, and several pool workers on one device write exactly the rows of one worker. Training levers: the step
without levers is the plain step, channels-last and ``torch.compile`` change only float rounding, bfloat16
autocast keeps float32 master weights, TF32 is set inside the step and restored, active levers are part of the
checkpoint, and several training processes write the weights of one."""

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
from robustbench201.models.train_levers import TrainLevers, TrainStep
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


# ---- training levers ----------------------------------------------------------------------------------------------
def _small_net() -> torch.nn.Module:
    torch.manual_seed(0)  # parameter init of this test model only
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 10)
    )


def _batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _steps(levers: TrainLevers, k: int = 3) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    net = _small_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    step = TrainStep(net, opt, torch.nn.CrossEntropyLoss(), levers, torch.device("cpu"))
    x, y = _batch()
    logits = [step(x, y)[0].detach() for _ in range(k)]
    return net, logits


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    return bool((a - b).abs().max() <= rel * max(float(b.abs().max()), 1e-30))


def test_train_step_without_levers_is_the_plain_step():
    net = _small_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = _batch()
    for _ in range(3):
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    stepped, _ = _steps(TrainLevers())
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), stepped.state_dict().values()))


def test_channels_last_step_matches_the_plain_step_within_float_rounding():
    plain, z_plain = _steps(TrainLevers())
    cl, z_cl = _steps(TrainLevers(channels_last=True))
    assert cl[0].weight.is_contiguous(memory_format=torch.channels_last)
    # only the order of float32 sums changes (27 products per convolution output, 144 per logit): each value moves
    # by a few float32 roundings of its terms, far below 1e-4 of the largest value after three steps
    for a, b in zip(z_cl, z_plain):
        assert _close(a, b, 1e-4)
    for a, b in zip(cl.state_dict().values(), plain.state_dict().values()):
        assert a.dtype == b.dtype and (a.dtype != torch.float32 or _close(a, b, 1e-4))


def test_bf16_autocast_keeps_float32_master_weights_and_gradients():
    net = _small_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seen: list[torch.dtype] = []
    net[0].register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    step = TrainStep(net, opt, torch.nn.CrossEntropyLoss(), TrainLevers(autocast="bf16"), torch.device("cpu"))
    x, y = _batch()
    with torch.no_grad():
        z32 = _small_net()(x)
    logits, loss = step(x, y)
    assert seen == [torch.bfloat16]  # the convolution ran in bfloat16
    assert logits.dtype == loss.dtype == torch.float32
    for p in net.parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
    # bfloat16 keeps 8 significant bits: inputs and weights rounded by at most 2**-8 relative, products summed in
    # float32, through a convolution, a batch norm and a linear layer: the logits move by a few percent of their
    # scale at most (0.05 of the largest logit, plus 0.05 for logits near 0)
    dz = float((logits.detach() - z32).abs().max())
    assert dz <= 0.05 * float(z32.abs().max()) + 0.05
    # cross-entropy is 2-Lipschitz in the largest logit change (its gradient softmax - onehot has L1 norm <= 2)
    loss32 = torch.nn.functional.cross_entropy(z32, y)
    assert abs(float(loss.detach()) - float(loss32)) <= 2 * dz + 1e-5


def _switches() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def test_tf32_lever_sets_the_switches_inside_the_step_and_restores_them():
    for before in (True, False):
        for levers in (TrainLevers(), TrainLevers(tf32=True)):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = before
            try:
                net = _small_net()
                inside: list[tuple[bool, bool]] = []
                net.register_forward_pre_hook(lambda m, a, seen=inside: seen.append(_switches()))
                opt = torch.optim.SGD(net.parameters(), lr=0.1)
                TrainStep(net, opt, torch.nn.CrossEntropyLoss(), levers, torch.device("cpu"))(*_batch())
                assert inside == [(levers.tf32, levers.tf32)]
                assert _switches() == (before, before)
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults


def test_compiled_step_matches_the_eager_step_within_float_rounding():
    import torch._inductor.config as inductor

    eager, z_eager = _steps(TrainLevers(), k=2)
    # scalar C++: inductor's vectorized CPU code needs the ATen vector headers of the CPU capability in use, which
    # ATEN_CPU_CAPABILITY=default (the suite's second float path) leaves out
    with inductor.patch({"cpp.simdlen": 1}):
        compiled, z_comp = _steps(TrainLevers(compile=True), k=2)
    # inductor fuses and reorders float32 arithmetic: the same bound as channels-last
    for a, b in zip(z_comp, z_eager):
        assert _close(a, b, 1e-4)
    for a, b in zip(compiled.state_dict().values(), eager.state_dict().values()):
        assert a.dtype != torch.float32 or _close(a, b, 1e-4)


def test_training_levers_are_validated():
    assert not TrainLevers().active and TrainLevers(tf32=True).active
    assert TrainLevers.from_dict(TrainLevers(autocast="bf16").to_dict()) == TrainLevers(autocast="bf16")
    assert TrainLevers(channels_last=True, autocast="bf16").describe() == "autocast bf16, channels_last"
    with pytest.raises(Rb201Error, match="autocast 'fp16'; allowed: 'off', 'bf16'"):
        TrainLevers(autocast="fp16")
    with pytest.raises(Rb201Error, match="channels_last=1"):
        TrainLevers(channels_last=1)  # type: ignore[arg-type]
    with pytest.raises(Rb201Error, match="unknown training lever"):
        TrainLevers.from_dict({"amp": True})


def test_active_levers_are_part_of_the_checkpoint_and_a_resume_with_others_is_refused(tmp_path):
    from robustbench201.errors import CheckpointError
    from robustbench201.train import train_model

    data = image_set(64)
    data = type(data)("mnist5k", "train", data.images, data.labels)
    kw = {"epochs": 1, "channels": 4, "n_cells": 1, "batch_size": 32, "checkpoint_path": tmp_path / "run.partial"}
    bf16 = TrainLevers(autocast="bf16")
    train_model(1462, data, levers=bf16, **kw)
    again = train_model(1462, data, levers=bf16, **kw)
    assert again.resumed_from == 1  # same levers: the finished checkpoint is taken up
    with pytest.raises(CheckpointError, match="levers"):
        train_model(1462, data, **kw)


def test_worker_commands_repeat_the_options_per_architecture_and_seed():
    import click

    from robustbench201.cli.data_cmds import train
    from robustbench201.cli.train_lever_opts import worker_commands

    args = ["--arch", "0", "--arch", "7", "--dataset", "mnist5k", "--seed", "1", "--seed", "2", "--out", "o",
            "--epochs", "2", "--autocast", "bf16", "--channels-last", "--workers-per-gpu", "3",
            "--no-test"]  # fmt: skip
    with click.Context(train) as ctx:
        train.parse_args(ctx, args)
        cmds = worker_commands(ctx, ["0", "7"], [1, 2])
    assert [c[:5] for c in cmds] == [["train", "--arch", a, "--seed", s] for a in ("0", "7") for s in ("1", "2")]
    for c in cmds:
        opts = " ".join(c[5:])
        assert "--workers-per-gpu" not in opts and "--channels-last" in opts and "--no-test" in opts
        assert "--autocast bf16" in opts and "--epochs 2" in opts and "--out o" in opts and "--dataset mnist5k" in opts
        assert "--compile" not in opts and "--tf32" not in opts


def test_two_training_workers_write_the_weights_of_one_process(tmp_path):
    from robustbench201.cli import main
    from robustbench201.train import read_trained_meta

    common = ["train", "--arch", "0", "--arch", "1462", "--dataset", "mnist5k", "--epochs", "1", "--channels", "4",
              "--cells", "1", "--n-train", "64", "--n-test", "32", "--threads", "1", "--autocast", "bf16"]  # fmt: skip
    states = {}
    for k in (1, 2):
        out = tmp_path / f"k{k}"
        r = CliRunner().invoke(main, [*common, "--out", str(out), "--workers-per-gpu", str(k)])
        assert r.exit_code == 0, r.output
        files = sorted((out / "mnist5k").glob("*.pt"))
        assert [f.name for f in files] == ["00000-seed777-ep1.pt", "01462-seed777-ep1.pt"]
        assert all(read_trained_meta(f)["levers"]["autocast"] == "bf16" for f in files)
        states[k] = [torch.load(f, weights_only=True)["state_dict"] for f in files]
    assert "2 trainings, 2 at a time" in r.output and "[2/2]" in r.output
    for one, two in zip(states[1], states[2]):
        assert all(torch.equal(one[key], two[key]) for key in one)
