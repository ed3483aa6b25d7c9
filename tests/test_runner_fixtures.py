"""A small real evaluator for runner tests: a seeded small NB201 network, seeded synthetic images, clean accuracy.

Importable by worker processes (pool, submitit, subprocess) when ``tests/`` is on ``PYTHONPATH``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from robustbench201.runner.worker import ArchOutput
from robustbench201.store.schema import Row, array_path

SPEC = {"name": "clean-test", "n": 48}
SPEC_JSON = json.dumps(SPEC, sort_keys=True)
SPEC_HASH = hashlib.sha256(SPEC_JSON.encode()).hexdigest()[:16]


def images(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 1x12x12 uint8 images whose label is the brightest of 4 quadrants (learnable, not random)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    x = rng.integers(0, 100, size=(n, 1, 12, 12), dtype=np.uint8)
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        x[i, 0, r * 6 : r * 6 + 6, c * 6 : c * 6 + 6] += 120
    return x, labels.astype(np.int64)


@dataclass(frozen=True)
class CleanEvalFactory:
    """Clean accuracy and mean confidence of a seeded-init C=4, N=1 NB201 net; ``delay`` seconds per arch;
    ``fail`` indices raise; ``nan`` indices return a NaN value. With ``hold_from``, an architecture of that index or
    above waits until the file ``release`` exists before it is evaluated: a test then knows how far a job got when
    it kills or overtakes it, instead of racing it."""

    dataset: str = "mnist5k"
    seed: int = 0
    delay: float = 0.0
    fail: tuple[int, ...] = ()
    nan: tuple[int, ...] = ()
    hold_from: int | None = None
    release: str = ""
    spec_hash: str = SPEC_HASH
    spec_json: str = SPEC_JSON

    def identity(self) -> dict:
        return {"spec_hash": self.spec_hash, "dataset": self.dataset, "weights": "init", "seed": self.seed}

    def __call__(self, device: str):
        import torch

        from robustbench201.models.network import create_model

        torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine

        x, y = images(SPEC["n"], self.seed)
        xt = torch.from_numpy(x).float().div(255)

        def evaluate(index: int) -> ArchOutput:
            if self.hold_from is not None and index >= self.hold_from:
                while not os.path.exists(self.release):
                    time.sleep(0.02)
            if index in self.fail:
                raise RuntimeError(f"bad checkpoint for {index}")
            t0 = time.perf_counter()
            with torch.random.fork_rng():
                torch.manual_seed(self.seed * 100003 + index)
                model = create_model(index, None, num_classes=4, channels=4, n_cells=1, in_channels=1).eval()
            with torch.inference_mode():
                prob = model(xt.to(device)).softmax(1).cpu().numpy()
            if self.delay:
                time.sleep(self.delay)
            pred = prob.argmax(1)
            correct = pred == y
            acc = float("nan") if index in self.nan else float(correct.mean())
            common = dict(
                arch_index=index,
                dataset=self.dataset,
                seed=self.seed,
                weights="init",
                family="clean",
                key="clean",
                n=len(y),
                spec_hash=self.spec_hash,
                code_version="test",
            )
            rows = [
                Row(measure="accuracy", value=acc, **common),
                Row(measure="confidence_pred", value=float(prob.max(1).mean()), **common),
            ]
            conf = np.zeros((4, 4), dtype=np.int64)
            np.add.at(conf, (y, pred), 1)
            key = dict(
                dataset=self.dataset, arch_index=index, family="clean", key="clean", seed=self.seed, weights="init"
            )
            arrays = {array_path(measure="confusion", **key): conf, array_path(measure="correct", **key): correct}
            return ArchOutput(rows, arrays, {"clean": time.perf_counter() - t0})

        return evaluate
