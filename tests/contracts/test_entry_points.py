"""The commands tox.ini and the README promise exist (a renamed subcommand must not break `tox -e bench`)."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_commands() -> list[tuple[str, str]]:
    """Every ``python -m MODULE SUBCOMMAND`` in tox.ini's commands."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    found = set()
    for section in config.sections():
        for line in config[section].get("commands", "").splitlines():
            match = re.search(r"python -m (\w+) ([\w-]+)", line)
            if match and match.group(1) in ("datasets", "eval", "reports"):
                found.add(match.groups())
    return sorted(found)


def test_tox_runs_the_bench_quality_and_perf_commands():
    assert {("reports", "bench"), ("eval", "quality"), ("eval", "perf-check")} <= set(module_commands())


@pytest.mark.parametrize(("module", "command"), module_commands())
def test_every_tox_command_exists(module, command):
    result = subprocess.run([sys.executable, "-m", module, command, "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
