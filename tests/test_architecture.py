"""The architecture, checked: import contracts (layers, no cycles) with import-linter, a planted upward import is
caught, every public name of ``robustbench201`` resolves to what it says after every submodule was imported, and the
vocabularies have one owner."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
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
    assert "Contracts: 3 kept, 0 broken." in res.stdout


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("space.py", "from robustbench201.cli import main as _planted  # noqa\n"),  # lowest layer imports the top
        ("store/merge.py", "from robustbench201.runner import plan as _planted  # noqa\n"),  # store imports runner
        ("runner/worker.py", "from robustbench201.runner import job as _planted  # noqa\n"),  # a cycle in runner
        ("search/dsrna/config.py", "from robustbench201.search.dsrna import bilevel as _planted  # noqa\n"),  # dsrna
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


#: The modules users import (docs/ARCHITECTURE.md): each says what it exports.
PUBLIC_MODULES = (
    "robustbench201", "robustbench201.space", "robustbench201.spec", "robustbench201.recipe",
    "robustbench201.evaluation", "robustbench201.train", "robustbench201.errors", "robustbench201.vocab",
    "robustbench201.atomic", "robustbench201.published", "robustbench201._query", "robustbench201.data.base",
    "robustbench201.data.info", "robustbench201.data.readers", "robustbench201.data.splits", "robustbench201.models",
    "robustbench201.attacks", "robustbench201.measures", "robustbench201.corruptions", "robustbench201.store.dataset",
    "robustbench201.store.schema", "robustbench201.store.shardfile", "robustbench201.store.merge",
    "robustbench201.store.validate", "robustbench201.runner", "robustbench201.runner.request",
    "robustbench201.runner.batch", "robustbench201.runner.providers",
)  # fmt: skip


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_modules_say_what_they_export(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert len(set(exported)) == len(exported) and all(hasattr(module, n) for n in exported), name


def test_the_package_ships_its_type_hints():
    assert (REPO / "robustbench201" / "py.typed").is_file()
    assert '\n"robustbench201" = ["py.typed"]\n' in (REPO / "pyproject.toml").read_text()  # its package data


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
    from robustbench201.search.dsrna.regularizers import BOUND_METHODS
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


# ---- one owner per file name, one contract between the command line and the runner ---------------------------------
#: The start of each file name of rb201's on-disk formats -> the one module that builds (and globs) such names.
FILE_NAME_OWNERS = {
    "results-": "store/dataset.py",
    "arrays-": "store/dataset.py",
    "wide-": "store/dataset.py",
    "shard-": "store/shardfile.py",
    "arch-": "store/shardfile.py",
    "launch-": "runner/launch_record.py",
}


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module's code (f-string pieces included, docstrings not), with their lines."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def file_name_builders(root: Path) -> list[str]:
    """Every place outside its owner that builds or globs a file name of an rb201 format."""
    package = root / "robustbench201"
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for line, text in _code_strings(path):
            for prefix, owner in FILE_NAME_OWNERS.items():
                if text.startswith(prefix) and rel != owner:
                    found.append(f"{rel}:{line}: {text!r} (file names {prefix}* belong to {owner})")
    return found


def test_every_file_name_is_built_by_its_owner_alone():
    assert file_name_builders(REPO) == []


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("store/merge.py", 'PLANTED = f"results-{0:03d}.parquet"  # a second writer of results files\n'),
        ("runner/status.py", 'PLANTED = sorted(Path(".").glob("arch-*.parquet"))  # globbing shard files by hand\n'),
    ],
)
def test_a_planted_second_writer_of_a_format_is_caught(tmp_path, module, planted):
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "robustbench201", copy / "robustbench201", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "robustbench201" / module
    target.write_text(target.read_text() + "\n" + planted)
    found = file_name_builders(copy)
    assert len(found) == 1 and found[0].startswith(f"{module}:"), found


#: Run against a copy of the package: the options of ``evaluate`` and ``launch`` are exactly the fields of their
#: request (same names, same defaults), and the runner, which consumes requests, names none of their flags.
_REQUEST_CONTRACT = r"""
import ast, dataclasses, re, sys
from pathlib import Path
import robustbench201
from robustbench201.cli.build_cmds import evaluate
from robustbench201.cli.launch_cmds import launch
from robustbench201.runner.request import EvaluateRequest, LaunchRequest
sys.path.insert(0, sys.argv[1])
from test_architecture import _code_strings

problems, flags = [], set()
for command, cls in ((evaluate, EvaluateRequest), (launch, LaunchRequest)):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    params = {p.name: p for p in command.params}
    cmd = f"{command.name}:"
    problems += [f"{cmd} option {n} is not a field of {cls.__name__}" for n in sorted(set(params) - set(fields))]
    problems += [f"{cmd} field {n} of {cls.__name__} has no option" for n in sorted(set(fields) - set(params))]
    for name in sorted(set(params) & set(fields)):
        f, p = fields[name], params[name]
        want = () if f.default is dataclasses.MISSING and p.multiple else f.default
        if f.default is not dataclasses.MISSING and p.default != want and not p.required:
            problems.append(f"{command.name}: option {name} defaults to {p.default!r}, its field to {want!r}")
        flags.update(p.opts + p.secondary_opts)
runner = Path(robustbench201.__file__).parent / "runner"
for path in sorted(runner.glob("*.py")):
    for line, text in _code_strings(path):
        named = sorted(set(re.findall(r"--[a-z][a-z0-9-]*", text)) & flags)
        if named:
            problems.append(f"runner/{path.name}:{line} names command-line flag(s) {named}: name fields as {{field}}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
"""


def _request_contract(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _REQUEST_CONTRACT, str(Path(__file__).parent)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_the_request_commands_options_are_their_requests_fields_and_the_runner_names_no_flag():
    res = _request_contract(REPO)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("module", "planted", "caught"),
    [
        (  # an option that reaches the runner around the request
            "cli/build_cmds.py",
            'evaluate = click.option("--shard-size", "shard_size", type=int, default=None)(evaluate)\n',
            "evaluate: option shard_size is not a field of EvaluateRequest",
        ),
        (  # the runner writing a command line of its own
            "runner/batch.py",
            'HINT = "rerun with --trust-pickle"\n',
            "runner/batch.py:",
        ),
    ],
)
def test_a_planted_option_leak_between_the_command_line_and_the_runner_is_caught(tmp_path, module, planted, caught):
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "robustbench201", copy / "robustbench201", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "robustbench201" / module
    target.write_text(target.read_text() + "\n" + planted)
    res = _request_contract(copy)
    assert res.returncode == 1 and caught in res.stdout, res.stdout + res.stderr
