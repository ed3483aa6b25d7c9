"""The architecture, checked: import contracts (layers, no cycles) with import-linter, a planted upward import is
caught, every public name of ``robustbench201`` resolves to what it says after every submodule was imported, and the
vocabularies have one owner."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import robustbench201 as rb201

REPO = Path(__file__).resolve().parent.parent


_LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter of this Python (not whatever ``lint-imports`` is first on PATH: a pyenv or pipx shim, another
    environment's copy), with only ``root`` on the path of the imported package."""
    assert importlib.util.find_spec("importlinter"), "import-linter (part of the 'test' extra) is not installed"
    return subprocess.run(
        [sys.executable, "-c", _LINT_IMPORTS, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "HOME": str(root)},
    )


def test_import_contracts_are_kept():
    res = _lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 2 kept, 0 broken." in res.stdout


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("space.py", "from robustbench201.cli import main as _planted  # noqa\n"),  # lowest layer imports the top
        ("store/merge.py", "from robustbench201.runner import plan as _planted  # noqa\n"),  # store imports runner
        ("runner/worker.py", "from robustbench201.runner import job as _planted  # noqa\n"),  # a cycle in runner
    ],
)
def test_a_planted_upward_import_or_cycle_breaks_the_contracts(tmp_path, module, planted):
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "robustbench201", copy / "robustbench201", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "robustbench201" / module
    target.write_text(target.read_text() + "\n" + planted)
    res = _lint_imports(copy)
    assert res.returncode != 0 and "BROKEN" in res.stdout, res.stdout


def _all_modules() -> list[str]:
    names = (m.name for m in pkgutil.walk_packages(rb201.__path__, "robustbench201."))
    return sorted(n for n in names if "_data" not in n and not n.endswith("__main__"))


def test_every_public_name_is_what_it_says_after_importing_every_submodule():
    """Importing a submodule must never rebind a public name of the package (``rb201.query`` stays the function
    even after ``import robustbench201.<anything>``)."""
    for name in _all_modules():
        importlib.import_module(name)
    for name in rb201.__all__:
        obj = getattr(rb201, name)
        assert not inspect.ismodule(obj), f"rb201.{name} is a module, not the public object"
    assert callable(rb201.query) and callable(rb201.evaluate) and callable(rb201.table)
    r = rb201.query(1462, "cifar10")
    assert isinstance(r, rb201.QueryResult) and 0 < r.clean_accuracy < 1
    assert rb201.query_many([1462], "clean", "cifar10")[0] == r.clean_accuracy
    assert rb201.Arch.from_index(1462).index == 1462
    assert rb201.preset("smoke").name == "smoke"
    assert rb201.param_count(1462, 10) > 0


def test_importing_the_package_and_the_query_path_stay_light():
    code = (
        "import sys, robustbench201 as rb201\n"
        "rb201.query(13433, 'cifar10').robust('pgd', eps=1)\n"
        "heavy = [m for m in ('torch', 'pandas', 'scipy', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_vocabularies_have_one_owner():
    """The closed sets are defined in robustbench201.vocab and only referenced elsewhere."""
    from robustbench201 import vocab
    from robustbench201.attacks import ATTACKS as attack_classes
    from robustbench201.attacks.cascade import SEMANTICS as cascade_semantics
    from robustbench201.corruptions import CORRUPTIONS, REGISTRY
    from robustbench201.measures.bounds import METHODS
    from robustbench201.search.regularizers import BOUND_METHODS
    from robustbench201.spec import preset

    assert set(attack_classes) == set(vocab.ATTACKS)
    assert cascade_semantics is vocab.SEMANTICS
    assert CORRUPTIONS is vocab.CORRUPTIONS and set(REGISTRY) == set(CORRUPTIONS)
    assert METHODS is vocab.CERTIFIED_METHODS and BOUND_METHODS is vocab.CERTIFIED_METHODS
    for name in vocab.PRESETS:
        assert preset(name).name == name
    for alias, key in vocab.ATTACK_ALIASES.items():
        assert vocab.canonical_attack(alias) == key


def test_attack_budgets_are_validated_at_the_spec_without_torch():
    code = (
        "import sys\n"
        "from robustbench201.spec import attack\n"
        "from robustbench201.errors import Rb201Error\n"
        "for kw, want in (({'steps': 0}, 'steps=0'), ({'rho': 1.0}, 'rho=1.0'), ({'colour': 1}, 'colour')):\n"
        "    name = 'aa_apgd-ce' if 'rho' in kw else 'pgd'\n"
        "    try:\n"
        "        attack(name, (1,), **kw)\n"
        "    except Rb201Error as e:\n"
        "        assert want in str(e) and 'allowed' in str(e), str(e)\n"
        "    else:\n"
        "        raise AssertionError(kw)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
