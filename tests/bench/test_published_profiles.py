"""The published-result RNN-RBM profiles work for everyone, not only on their author's machine.

``--profile rnn_jsb`` once trained for minutes, then exited 2 without a report or a history record: ``beside``
compared the dataset *string*, and the committed example recorded its author's absolute path. Runs are the same
music when their content is: a local copy anywhere on disk is named by its benchmark and sha256, as the download is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval.bench.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench

# rnn_jsb as it is (its data, its beside = the committed window-RBM example), its cost cut to a minute on 2 cores
SMALL = """extends = "rnn_jsb"
[model]
n_hidden = 8
n_recurrent = 8
cd_steps = 2
[run]
impls = ["numpy"]
epochs = 1
timing_epochs = 2
[eval]
curve_every = 1
pl_valid_windows = 50
ais_betas = 20
ais_runs = 4
raise_betas = 20
raise_windows = 50
ais_frames = 100
n_samples = 2
piece_rows = 16
audio_samples = 0
"""


def test_rnn_jsb_on_a_local_copy_in_a_temporary_folder_reports_beside_the_committed_example(tmp_path, shared_data):
    copy = tmp_path / "somewhere else" / "JSB_Chorales.mat"
    copy.parent.mkdir()
    shutil.copy(shared_data / "bl2012_polyphonic" / "JSB_Chorales.mat", copy)
    profile, runs = tmp_path / "small_rnn_jsb.toml", tmp_path / "runs"
    profile.write_text(SMALL)
    environment = {k: v for k, v in os.environ.items() if k not in ("RBM_BENCH_FAULT", "RBM_BENCH_NO_BENCH")}
    environment |= {"RBM_BENCH_RUNS": str(runs), "RBM_BENCH_HISTORY": str(tmp_path / "history")}
    # what tox -e bench runs, on a copy named by its path only
    command = [sys.executable, "-m", "reports", "bench", "--profile", str(profile), "--dataset", f"jsb:{copy}"]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = RunFolder(next(runs.iterdir()))
    frame = folder.results()
    assert set(frame.dataset.dropna()) == {"jsb (sha256 ac0e6085…)"}  # the benchmark and its content, no path
    report = (folder.path / "report.md").read_text()
    assert "Models side by side" in report and "reports/examples/jsb" not in report.split("Models side by side")[0]
    side = report.split("Models side by side")[1]
    assert "RNN-RBM" in side and "RBM" in side.replace("RNN-RBM", "")  # both models in the one table
    assert str(copy.parent) not in (folder.path / "dataset_manifest.json").read_text()
    assert list((tmp_path / "history").rglob("*.parquet"))  # recorded in the history too


def test_every_shipped_profiles_beside_names_committed_runs_of_other_models():
    """A report sets runs of *other* models beside its own (`reports.models.beside_frames` refuses one of its own
    model): ``rnn_rbm_paper_nottingham`` once named the budget RNN-RBM's example and its 90-minute run ended without a
    report. Every profile's ``beside`` must name committed examples of other models, so such a run always renders."""
    import json

    from eval.config import load_profile

    checked = 0
    for path in sorted((ROOT / "eval" / "profiles").glob("*.toml")):
        profile = load_profile(path.stem)
        for other in profile.run.beside or ():
            spec = ROOT / other / "spec.json"
            assert spec.is_file(), f"{path.name}: beside names {other}, which holds no finished run"
            kind = json.loads(spec.read_text())["model"]["kind"]
            assert kind != profile.model.kind, f"{path.name}: beside names {other}, a run of its own model ({kind})"
            checked += 1
    assert checked >= 5
