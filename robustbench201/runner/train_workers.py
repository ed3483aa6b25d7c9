"""Several ``rb201`` processes at once (``rb201 train --workers-per-gpu K``): each command runs as its own
``python -m robustbench201`` process, at most ``workers`` at a time, its output lines passed on with a prefix as
they come. Each process owns its (architecture, seed), so its checkpoints are its own; an interrupted run resumes
as the single-process command does."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable

from ..errors import Rb201Error


def run_commands(commands: list[list[str]], workers: int, echo: Callable[[str], None]) -> dict[int, int]:
    """Run each ``python -m robustbench201 *command`` with at most ``workers`` running; ``echo`` gets each output
    line as ``[i/n] line``. Returns the exit code per command index (in the order they ended)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise Rb201Error(f"workers {workers!r} not allowed; allowed: an integer >= 1")
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    todo = list(enumerate(commands))
    running: dict[int, subprocess.Popen[str]] = {}
    codes: dict[int, int] = {}
    n = len(commands)

    def pump(i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((i, line.rstrip("\n")))
        lines.put((i, None))

    try:
        while todo or running:
            while todo and len(running) < workers:
                i, cmd = todo.pop(0)
                proc = subprocess.Popen([sys.executable, "-m", "robustbench201", *cmd], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)  # fmt: skip
                running[i] = proc
                threading.Thread(target=pump, args=(i, proc), daemon=True).start()
            i, line = lines.get()
            if line is not None:
                echo(f"[{i + 1}/{n}] {line}")
                continue
            codes[i] = running.pop(i).wait()
    finally:
        for proc in running.values():
            proc.terminate()
            proc.wait(timeout=30)
    return codes
