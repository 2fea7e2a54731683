"""A profile key its model does not read is refused, in the profile and in a sweep alike: never run and ignored.

Before, ``gibbs_steps``, ``ais_sweep_every`` or a sweep over them ran with ``kind = "rnn_rbm"``: two grid points with
bit-identical score rows, and no word that the key did nothing.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import impls
from eval.config import ConfigError, EvalConfig, load_profile
from eval.models import plugin
from eval.models.base import READ_BY_EVERY_MODEL

ROOT = Path(__file__).resolve().parents[2]
RNN = 'extends = "rnn_rbm"\n'
WINDOW = 'extends = "quick"\n'


def bench(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess, list[Path]]:
    """``python -m eval bench`` on the profile ``text``; the result and the run folders it left."""
    path, runs = tmp_path / "mine.toml", tmp_path / "runs"
    path.write_text(text)
    environment = {k: v for k, v in os.environ.items() if k not in ("RBM_BENCH_FAULT", "RBM_BENCH_NO_BENCH")}
    environment |= {"RBM_BENCH_RUNS": str(runs), "RBM_BENCH_HISTORY": str(tmp_path / "history")}
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    return done, list(runs.iterdir()) if runs.exists() else []


@pytest.mark.bench  # the refusal is the bench's first step: before any folder, data or process
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RNN + "[eval]\ngibbs_steps = 50\n", '[eval] gibbs_steps is not read by kind "rnn_rbm"'),
        (RNN + '[eval]\nais_schedule = "quick"\nais_betas = 1000\n', '[eval] ais_schedule is not read by kind'),
        (RNN + '[sweep]\n"eval.ais_sweep_every" = [0, 10]\n', '[sweep] eval.ais_sweep_every is not read by kind'),
        (RNN + '[sweep]\n"eval.pl_test_windows" = [10, 20]\n', '[sweep] eval.pl_test_windows is not read by kind'),
        (WINDOW + "[eval]\nais_frames = 100\n", '[eval] ais_frames is not read by kind "rbm"'),
    ],
)  # fmt: skip
def test_a_key_the_model_does_not_read_is_refused_in_one_line_before_a_run_exists(tmp_path, text, expected):
    done, folders = bench(tmp_path, text)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr and "remove it" in done.stderr
    assert folders == []


def test_keys_inherited_from_a_profile_of_another_model_are_not_the_childs_choice():
    """``rnn_rbm`` extends the window RBM's ``default`` (its gibbs_steps, ais_sweep_every): not refused, not chosen."""
    profile = load_profile("rnn_rbm")
    assert "eval.gibbs_steps" not in profile.chosen and "eval.ais_betas" in profile.chosen
    plugin("rnn_rbm").refuse_unread(profile)


def test_every_shipped_profile_chooses_only_keys_its_model_reads():
    for path in sorted((ROOT / "eval" / "profiles").glob("*.toml")):
        profile = load_profile(path.stem)
        plugin(profile.model.kind).refuse_unread(profile)


def _eval_keys_read(module: Path) -> set[str]:
    """The ``EvalConfig`` fields a plug-in module reads (``<anything>.evaluation.key`` or ``evaluation.key``)."""
    names = {f for f in EvalConfig.__dataclass_fields__}
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in names:
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "evaluation") or (
                isinstance(owner, ast.Attribute) and owner.attr == "evaluation"
            ):
                found.add(node.attr)
    return found


@pytest.mark.parametrize("kind", sorted(impls.models()))
def test_a_plug_in_declares_exactly_the_eval_keys_its_code_reads(kind):
    declared = set(plugin(kind).reads)
    read = _eval_keys_read(ROOT / "eval" / "models" / f"{kind}.py")
    assert read - set(READ_BY_EVERY_MODEL) == declared, "declare in `reads` what the module reads, and only that"
    common = _eval_keys_read(ROOT / "eval" / "models" / "base.py")
    assert common <= set(READ_BY_EVERY_MODEL)


@pytest.mark.parametrize("key", ['sample_start = "zeros"', "gibbs_steps = 50", "ais_betas = 300", "raise_betas = 100"])
def test_the_rnn_nade_draws_and_scores_without_chains_so_their_keys_are_refused(tmp_path, key):
    """No chain to start, no Gibbs steps, no partition function to anneal: every such key is refused for the NADE."""
    path = tmp_path / "nade.toml"
    path.write_text(f'extends = "rnn_nade_jsb"\n[eval]\n{key}\n')
    with pytest.raises(ConfigError, match=rf'\[eval\] {key.split()[0]} is not read by kind "rnn_nade".*remove it'):
        plugin("rnn_nade").refuse_unread(load_profile(str(path)))
    plugin("rnn_nade").refuse_unread(load_profile("rnn_nade_jsb"))  # inherited from the window RBM's jsb: not chosen
