"""CI runs what the README tells a user to run: its test command verbatim, then the second float path that the
Testing section documents."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_test_command() -> str:
    readme = (REPO / "README.md").read_text()
    commands = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()]
    (line,) = [c for c in commands if c.startswith("bash scripts/setup.sh test")]
    return line


def test_ci_runs_the_readme_test_command_then_the_second_float_path():
    lines = [s for s in (REPO / ".ci" / "run").read_text().splitlines() if s and not s.startswith(("#", "set ", "cd "))]
    assert lines == [_readme_test_command(), "bash scripts/second-float-path.sh"]
    assert "bash scripts/second-float-path.sh" in (REPO / "README.md").read_text()
