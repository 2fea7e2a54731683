"""``python -m reports rescore``: a finished run's too-wide brackets scored again from its saved parameters."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from eval.bench.rescore import rescore as _rescore
from eval.bench.runfolder import RunFolder
from eval.models.rnn_rbm import RNNRBMPlugin
from eval.scoring.ais import CERTIFIED_WIDTH
from reports.__main__ import main
from tests.conftest import RNN_PROFILE, ROOT, finish_run

pytestmark = pytest.mark.bench

# The shared RNN-RBM recipe sharpened (rate 0.5), NumPy x two seeds, its bracket at 10 temperatures and 8 runs: seed 1's
# comes out wider than CERTIFIED_WIDTH (0.137 nats per frame), seed 0's just inside it (0.082)
COARSE = {
    **RNN_PROFILE,
    "model": {**RNN_PROFILE["model"], "learning_rate": 0.5},
    "run": {**RNN_PROFILE["run"], "impls": ["numpy"], "seeds": [0, 1]},
    "eval": {**RNN_PROFILE["eval"], "ais_betas": 10, "raise_betas": 10, "ais_runs": 8},
}


def rescore(run, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "reports", "rescore", str(run), *options]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def scores(run) -> dict:
    frame = RunFolder(run).results()
    final = frame[frame.epoch.isna() & (frame.status == "ok") & (frame.impl == "numpy")]
    return {(row.seed, row.phase, row.metric): row.value for row in final.itertuples()}


def test_rescore_certifies_wide_brackets_and_changes_nothing_else(tmp_path, cache_dir, monkeypatch):
    run = finish_run(tmp_path, "coarse", COARSE, cache_dir).path
    before = scores(run)
    widths = {seed: before[(seed, "eval", "bracket_width_per_frame")] for seed in (0, 1)}
    assert widths[0] <= CERTIFIED_WIDTH < widths[1], widths  # the premise: one seed certified, one too wide
    assert before[(1, "eval", "bracket_betas")] == 10

    diverging = tmp_path / "diverging"  # a seed whose finer scoring diverges is left as it was, and the command fails
    shutil.copytree(run, diverging)
    monkeypatch.setattr(RNNRBMPlugin, "score", lambda *args: "the per-frame AIS log-likelihood is NaN/inf")
    seeds = _rescore(diverging, 800)
    assert [seed.failed for seed in seeds] == [False, True] and scores(diverging) == before
    assert main(["rescore", str(diverging), "--betas", "800"]) == 1

    done = rescore(run, "--betas", "400")
    assert done.returncode == 0, done.stderr[-2000:]
    after = scores(run)  # the run is still finished and intact (its hashes re-recorded)
    assert f"numpy-s0: kept (certified already: {widths[0]:.3f}" in done.stdout
    assert {key: value for key, value in after.items() if key[0] == 0} == {k: v for k, v in before.items() if k[0] == 0}
    assert f"numpy-s1: bracket {widths[1]:.3f} -> " in done.stdout
    assert after[(1, "eval", "bracket_betas")] == 400
    assert abs(after[(1, "eval", "bracket_width_per_frame")]) < CERTIFIED_WIDTH
    exact = after[(1, "eval", "exact_nll_per_frame")]  # 10 hidden units: the oracle, unchanged
    assert exact == before[(1, "eval", "exact_nll_per_frame")]
    assert after[(1, "eval", "ais_nll_per_frame")] - 0.02 <= exact <= after[(1, "eval", "raise_nll_per_frame")] + 0.02
    changed = {key[2] for key in before if before[key] != after.get(key)}
    assert changed <= {"ais_nll_per_frame", "raise_nll_per_frame", "bracket_width_per_frame", "bracket_width",
                       "bracket_betas", "ais_ll_per_row", "ais_ll_per_window", "raise_ll_per_row",
                       "raise_ll_per_window", "ais_ll_stderr", "raise_ll_stderr", "ais_effective_runs",
                       "ais_min_effective_runs", "mean_field_gap", "ais_seconds", "raise_seconds"}, changed  # fmt: skip
    assert json.loads((run / "spec.json").read_text())["eval"]["certify_betas"] == 400
    assert "report:" in done.stdout and (run / "report.md").is_file()

    again = rescore(run, "--betas", "800")  # every seed certified now: nothing is redone
    assert again.returncode == 0 and again.stdout.count("kept (certified already") == 2, again.stdout
    assert scores(run) == after


def test_rescore_refuses_no_finer_schedule_and_unfinished_runs(tmp_path, rnn_run, copy_run):
    run = copy_run(rnn_run)
    coarse = rescore(run, "--betas", "100")  # the run scored at 300
    assert coarse.returncode == 2 and coarse.stderr.count("\n") == 1 and "no finer" in coarse.stderr
    (run / "complete.json").unlink()
    unfinished = rescore(run, "--betas", "1000")
    assert unfinished.returncode == 2 and "incomplete" in unfinished.stderr and "Traceback" not in unfinished.stderr
