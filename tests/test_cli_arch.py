"""``rb201 arch`` and CLI start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from robustbench201.cli import COMMANDS, main


def test_arch_by_index_string_and_ops():
    runner = CliRunner()
    by_index = runner.invoke(main, ["arch", "1462"])
    assert by_index.exit_code == 0, by_index.output
    assert "1.532 M" in by_index.output and "220.12 M" in by_index.output  # text: params 3 decimals, FLOPs 2
    full = json.loads(runner.invoke(main, ["arch", "1462", "--format", "json"]).output)["per_dataset"]["cifar10"]
    assert full["params_m"] == pytest.approx(1.531546, abs=5e-7) and full["flops_m"] == pytest.approx(
        220.11969, abs=5e-6
    )
    s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert runner.invoke(main, ["arch", s]).output == by_index.output
    assert runner.invoke(main, ["arch", "3,3,3,3,3,3"]).output == by_index.output


def test_arch_json_reports_class_and_dead_flag():
    out = CliRunner().invoke(main, ["arch", "12645", "--json"])
    info = json.loads(out.output)
    assert info["representative"] == 42 and info["is_representative"] is False and info["dead"] is False
    assert info["per_dataset"]["cifar10"]["params_m"] == pytest.approx(0.802426)
    dead = json.loads(CliRunner().invoke(main, ["arch", "0,0,0,0,0,0", "--json"]).output)
    assert dead["dead"] is True


def test_arch_draw_writes_a_png(tmp_path):
    import matplotlib  # noqa: F401 - part of the test extra

    out = tmp_path / "cell.png"
    res = CliRunner().invoke(main, ["arch", "0", "--draw", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


@pytest.mark.parametrize("bad", ["15625", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "1,2,3"])
def test_arch_bad_input_is_one_clean_line(bad):
    res = CliRunner().invoke(main, ["arch", bad])
    assert res.exit_code != 0
    assert res.output.startswith("Error: ") and "Traceback" not in res.output


def test_help_does_not_import_torch_or_pandas():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from robustbench201.cli import main, COMMANDS\n"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output\n"
        "for name in COMMANDS:\n"
        "    r = CliRunner().invoke(main, [name, '--help'])\n"
        "    assert r.exit_code == 0, (name, r.output)\n"
        "bad = [m for m in ('torch', 'pandas') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_registered_command_is_listed_and_has_help_with_an_example():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in top.output, f"{name} is registered but not listed by rb201 --help"
        res = runner.invoke(main, [name, "--help"])
        assert res.exit_code == 0 and "Usage:" in res.output, (name, res.output)
        assert "Example" in res.output, f"rb201 {name} --help shows no example"
