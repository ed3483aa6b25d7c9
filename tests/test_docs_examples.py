"""Every Python block of README.md and docs/*.md runs as written, so the documentation cannot drift from the code.

Blocks are extracted from the Markdown and executed statement by statement in a fresh namespace; an expression whose
line ends in a comment that starts with a value (``r.clean_accuracy  # 0.893``, ``...  # True``) must give that value
(floats to the digits written). A block may be marked by an HTML comment on the line before its fence:

- ``<!-- docs-test: skip (REASON) -->``: not run; the reason (e.g. it needs a GPU or CIFAR files that are not
  here) must be given;
- ``<!-- docs-test: demo-dataset (...) -->``: run with a dataset laid out like the one ``rb201 demo`` builds (the
  smoke preset's cumulative values for its 4 cells, ``tests/dataset_kinds.py``) at ``default_out() / "dataset"``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"(?:<!--\s*docs-test:\s*(?P<mark>[^>]*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.DOTALL)
_EXPECTED = re.compile(r"#\s*(?P<value>-?\d+\.\d+|-?\d+|True|False)\b")


def _blocks() -> list[tuple[str, str, str]]:
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for k, m in enumerate(_FENCE.finditer(text)):
            line = text[: m.start("code")].count("\n") + 1
            out.append((f"{path.relative_to(ROOT)}:{line}", m.group("mark") or "", m.group("code")))
            assert k < 100
    return out


BLOCKS = _blocks()


def test_the_readme_has_python_blocks_and_every_mark_is_known():
    assert any(name.startswith("README.md") for name, _, _ in BLOCKS)
    for name, mark, _ in BLOCKS:
        if mark:
            assert re.fullmatch(r"skip \(.{10,}\)|demo-dataset(?: \(.*\))?", mark), f"{name}: unknown mark {mark!r}"


def _expected(source_line: str) -> str | None:
    """The value a line's comment says its expression gives, or None."""
    code, sep, comment = source_line.partition("#")
    if not sep:
        return None
    m = _EXPECTED.match("#" + comment)
    return m.group("value") if m else None


def _run(code: str, name: str) -> None:
    lines = code.splitlines()
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for node in ast.parse(code).body:
        src = ast.get_source_segment(code, node)
        assert src is not None
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), name, "eval"), namespace)  # noqa: S307 - our own docs
            want = _expected(lines[node.end_lineno - 1])
            if want is not None:
                if want in ("True", "False"):
                    assert value is (want == "True"), f"{name}: {src} gives {value!r}, the docs say {want}"
                else:
                    digits = len(want.split(".")[1]) if "." in want else 0
                    assert round(float(value), digits) == float(want), f"{name}: {src} gives {value!r}, not {want}"
        else:
            exec(compile(ast.Module([node], type_ignores=[]), name, "exec"), namespace)  # noqa: S102 - our own docs


@pytest.mark.parametrize("name, mark, code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_every_python_block_of_the_docs_runs(name, mark, code, tmp_path, monkeypatch):
    if mark.startswith("skip"):
        pytest.skip(f"{name}: {mark}")
    monkeypatch.chdir(tmp_path)
    if mark.startswith("demo-dataset"):
        from dataset_kinds import write_smoke

        monkeypatch.setenv("RB201_CACHE", str(tmp_path / "cache"))
        from robustbench201.demo import default_out

        write_smoke(default_out() / "dataset")
    _run(code, name)


def test_a_drifted_value_in_a_comment_is_caught():
    with pytest.raises(AssertionError, match="not 0.894"):
        _run('import robustbench201 as rb201\nrb201.query(13433, "cifar10").clean_accuracy  # 0.894\n', "x")
