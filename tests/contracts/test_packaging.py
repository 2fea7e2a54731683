"""The packaging metadata: runtime pins only, test tools in the `test` extra, Python 3.11-3.13 declared and tested.

Each check is a small function run on the real pyproject.toml / tox.ini and, in the ``*_catches_*`` tests, on
a broken example, so that every assertion is shown to be able to fail.
"""

from __future__ import annotations

import configparser
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("pytest", "pytest-benchmark", "hypothesis")
LINT_TOOLS = ("ruff",)
SUPPORTED = ("3.11", "3.12", "3.13")


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def tox_env_list() -> list[str]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini", encoding="utf-8")
    return expand_env_list(config.get("tox", "env_list", fallback=config.get("tox", "envlist", fallback="")))


def normalize(name: str) -> str:
    """PEP 503 name normalization: ``Pytest_Benchmark`` and ``pytest.benchmark`` are ``pytest-benchmark``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def name_of(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"not a requirement: {requirement!r}"
    return normalize(match[1])


def unpinned(requirements: list[str]) -> list[str]:
    """The requirements not pinned to exactly one version with ``==`` (extras like ``[cuda12]`` allowed)."""
    pin = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,\s-]+\])?\s*==\s*[A-Za-z0-9.+!-]+$")
    return [r for r in requirements if not pin.match(r.strip()) or "*" in r]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def admits(specifier: str, version: str) -> bool:
    """Whether ``requires-python`` admits ``version`` (packaging's SpecifierSet when installed, else a parser
    for the comma-separated ``>=, >, <=, <, ==, !=`` clauses that requires-python uses)."""
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return _admits_fallback(specifier, version)
    return SpecifierSet(specifier).contains(version)


def _admits_fallback(specifier: str, version: str) -> bool:
    have = _version(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        op, bound = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*([0-9.]+)", clause).groups()
        want = _version(bound)
        # A release compares with its shorter bound padded with zeros: 3.13.0 == 3.13, 3.13.1 > 3.13.
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b, "==": a == b, "!=": a != b}[op]
        if not ok:
            return False
    return True


def expand_env_list(text: str) -> list[str]:
    """tox's env_list: comma- or newline-separated, with generative ``py3{12,13}`` names expanded."""
    names: list[str] = []
    for item in re.split(r"[,\s]+(?![^{]*\})", text.strip()):
        if not item:
            continue
        match = re.search(r"\{([^}]*)\}", item)
        if match:
            names += expand_env_list(
                ",".join(item[: match.start()] + alt.strip() + item[match.end() :] for alt in match[1].split(","))
            )
        else:
            names.append(item)
    return names


def env_for(python: str, env_list: list[str]) -> list[str]:
    """The environments in ``env_list`` that run ``python`` (``3.12``): a ``py312`` or ``py3.12`` factor."""
    major, minor = python.split(".")
    factors = {f"py{major}{minor}", f"py{major}.{minor}"}
    return [env for env in env_list if factors & set(env.split("-"))]


# --- the real files ---


def test_no_test_or_lint_tool_is_a_runtime_dependency():
    runtime = {name_of(r) for r in pyproject()["project"]["dependencies"]}
    leaked = sorted(runtime & {*TEST_TOOLS, *LINT_TOOLS})
    assert not leaked, f"`pip install .` would pull {leaked}: move them to an extra"


def test_the_test_extra_holds_the_test_tools():
    extras = pyproject()["project"].get("optional-dependencies", {})
    assert "test" in extras, "no `test` extra in [project.optional-dependencies]"
    missing = sorted(set(TEST_TOOLS) - {name_of(r) for r in extras["test"]})
    assert not missing, f"the `test` extra lacks {missing}"


@pytest.mark.parametrize("python", SUPPORTED)
def test_requires_python_admits(python):
    spec = pyproject()["project"]["requires-python"]
    for version in (python, f"{python}.0", f"{python}.9"):
        assert admits(spec, version), f"requires-python {spec!r} turns away Python {version}"


def test_every_requirement_is_pinned_exactly():
    project = pyproject()["project"]
    groups = {"dependencies": project["dependencies"], **project.get("optional-dependencies", {})}
    loose = {group: bad for group, reqs in groups.items() if (bad := unpinned(reqs))}
    assert not loose, f"not pinned with == (the benchmark compares numbers only on the same stack): {loose}"


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_tox_runs_an_environment_for(python):
    env_list = tox_env_list()
    assert env_for(python, env_list), f"tox's env_list {env_list} names no environment for Python {python}"


# --- each check fails on a broken example ---


def test_name_of_catches_spellings():
    assert name_of("Pytest_Benchmark==5.3.1") == "pytest-benchmark"
    assert name_of("tensorflow[and-cuda]==2.21.0") == "tensorflow"
    assert name_of("hypothesis >= 6") == "hypothesis"


def test_unpinned_catches_loose_requirements():
    assert unpinned(["numpy==2.4.6", "jax[cuda12]==0.10.2", "pretty_midi==0.2.11.post0"]) == []
    loose = ["numpy", "numpy>=2", "numpy~=2.4", "numpy==2.*", "numpy===2.4.6", "numpy==2.4.6,<3", "numpy!=2.4"]
    assert unpinned(loose) == loose


@pytest.mark.parametrize("use_packaging", [True, False])
def test_admits_catches_a_turned_away_python(use_packaging, monkeypatch):
    if use_packaging:
        pytest.importorskip("packaging.specifiers")
    else:
        monkeypatch.setitem(sys.modules, "packaging.specifiers", None)  # forces the fallback
    assert admits(">=3.11,<3.14", "3.13")
    assert admits(">=3.11,<3.14", "3.13.5")
    assert not admits(">=3.11,<3.13", "3.13")
    assert not admits(">=3.11,<3.13", "3.13.0")
    assert not admits(">=3.12", "3.11.7")
    assert not admits(">=3.11,!=3.12", "3.12")
    assert admits(">=3.11", "3.12.1")


def test_env_for_catches_a_missing_environment():
    assert expand_env_list("lint, test, py3{12,13}") == ["lint", "test", "py312", "py313"]
    assert expand_env_list("lint\ntest\npy312-fast") == ["lint", "test", "py312-fast"]
    assert env_for("3.12", ["lint", "py312-fast", "py313"]) == ["py312-fast"]
    assert env_for("3.13", ["py3.13"]) == ["py3.13"]
    assert env_for("3.12", ["lint", "test", "quality", "py313", "py3120"]) == []
    assert env_for("3.13", ["py31", "py3", "test313"]) == []
