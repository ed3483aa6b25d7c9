"""One option vocabulary: walk every command of ``rb201`` (click's command objects, and each ``--help``) and check
that the shared options have the same flags everywhere, and the same choices and defaults in every reader command."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from robustbench201.cli import main
from robustbench201.cli.reader_options import READER_OPTIONS, STATUS_FORMATS
from robustbench201.tables.formats import FORMATS

#: Commands that read results and print them.
READERS = ("query", "table", "analyze", "search table", "compare", "status")
#: Long flag -> the short flag it always comes with.
SHORT = {"--dataset": "-d", "--columns": "-c"}


def _commands() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = cmd

    walk(main, [])
    return out


COMMANDS = _commands()


def _option(cmd: click.Command, flag: str) -> click.Option | None:
    for p in cmd.params:
        if isinstance(p, click.Option) and flag in p.opts:
            return p
    return None


def _default(p: click.Option) -> object:
    d = p.default
    return None if d in ((), None) or repr(d).startswith("Sentinel") else d


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_its_shared_flags_pair_up(name):
    res = CliRunner().invoke(main, [*name.split(), "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output, res.output
    cmd = COMMANDS[name]
    for long, short in SHORT.items():
        p = _option(cmd, long)
        if p is not None:
            assert short in p.opts, f"{name}: {long} without {short}"
        q = _option(cmd, short)
        if q is not None:
            assert long in q.opts, f"{name}: {short} is not {long}"
    out = _option(cmd, "--out")
    if out is not None:  # --out is always a folder
        assert isinstance(out.type, click.Path) and not out.type.file_okay, name
    fmt = _option(cmd, "--format")
    if fmt is not None:
        assert isinstance(fmt.type, click.Choice) and set(fmt.type.choices) <= set(FORMATS), name
        assert fmt.default == "text", name


def test_every_reader_takes_the_shared_options_from_one_definition():
    for name in READERS:
        assert name in COMMANDS, name
    expect = {
        "--dataset": (None, None),
        "--columns": (None, None),
        "--source": (None, None),
        "--format": ("text", tuple(FORMATS)),
        "--out": (None, None),
    }
    seen = {flag: [] for flag in expect}
    for name in READERS:
        cmd = COMMANDS[name]
        for flag, (default, choices) in expect.items():
            p = _option(cmd, flag)
            if p is None:
                continue
            seen[flag].append(name)
            want = tuple(STATUS_FORMATS) if (name, flag) == ("status", "--format") else choices
            got = tuple(p.type.choices) if isinstance(p.type, click.Choice) else None
            assert (_default(p), got) == (default, want), (name, flag)
            shared = READER_OPTIONS["status_fmt" if (name, flag) == ("status", "--format") else _key(flag, p)]
            assert p.opts == list(shared[0]) or sorted(p.opts) == sorted(shared[0]), (name, flag)
            assert p.help is not None and p.help.startswith(shared[1]["help"]), (name, flag)
    # where each shared option is: every reader prints in --format; -d wherever a source has several datasets
    assert sorted(seen["--format"]) == sorted(READERS)
    assert sorted(seen["--dataset"]) == sorted(set(READERS) - {"status"})
    assert sorted(seen["--source"]) == ["analyze", "query", "search table", "table"]
    assert sorted(seen["--columns"]) == ["compare", "query", "table"]


def _key(flag: str, p: click.Option) -> str:
    if flag == "--dataset":
        return "datasets" if p.multiple else "dataset"
    return {"--columns": "columns", "--source": "source", "--format": "fmt", "--out": "out"}[flag]


def test_request_commands_round_trip_with_the_short_dataset_flag():
    from robustbench201.cli.build_cmds import evaluate
    from robustbench201.cli.options import request_argv
    from robustbench201.runner.request import EvaluateRequest

    req = EvaluateRequest(arch_ranges=("0:4",), dataset="mnist5k", weights="init", out="x")
    argv = request_argv(req, evaluate)
    assert argv[argv.index("--dataset") + 1] == "mnist5k"  # the long flag names the field on a printed line
