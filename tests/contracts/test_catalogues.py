"""Adding to a catalogue is the whole change: a fifth framework is its glue, one file per model and one entry.

The test copies the layers into a temporary folder, adds a fifth framework (its glue in ``impls/backends/``,
one file in each model's folder, one `Framework` entry) and one `Score` entry, edits nothing else, and runs
the real commands there: the bench, the report, the gate. Both must then be everywhere a framework or a
score belongs: rows, report tables and figures, ``env.json``, profile validation, the verdict and the gate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import impls
from eval.scoring import catalogue

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("core", "datasets", "impls", "eval", "reports")

FAKE_BACKEND = '''"""A fifth framework's glue: NumPy's, under its own version."""

from impls.backends.numpy import configure, device_unavailable, peak_device_mb, settings  # noqa: F401


def version() -> str:
    return "0.1-fake"
'''
FAKE_FILES = {  # the NumPy reference of each model under another name: one file per model
    model: f'''"""The fifth framework's {model}."""

from impls.backends import fake as backend
from impls.{model}.numpy import {cls}


class Fake{cls}({cls}):
    name = "fake"
    backend = backend
'''
    for model, cls in (("rbm", "NumpyRBM"), ("rnn_rbm", "NumpyRNNRBM"))
}
FRAMEWORK_ENTRY = """
FRAMEWORKS += (
    Framework("fake", "Fake Framework", "numpy", ("numpy",), devices=("cpu",)),
)
"""
SCORE_ENTRY = """
SCORES += (
    Score("fake_play_share", "fraction", "higher", margin=0.5, gated=True, shown=("samples",), needs="samples",
          compute=lambda samples, music, spec: float(samples.mean() + 0.25)),
)
"""
PROFILE = """extends = "quick"
[data]
source = "synthetic"
[run]
impls = ["numpy", "fake"]
seeds = [0, 1]
epochs = 2
executor = "serial"
timing_epochs = 2
[eval]
ais_betas = 100
raise_betas = 50
ll_windows = 20
gibbs_steps = 5
audio_samples = 0
"""

RNN_PROFILE = """extends = "quick"
[data]
source = "synthetic"
[model]
kind = "rnn_rbm"
n_hidden = 6
n_recurrent = 5
cd_steps = 2
batch_size = 4
chunk_length = 16
learning_rate = 0.05
[run]
impls = ["numpy", "fake"]
seeds = [0]
epochs = 2
executor = "serial"
timing_epochs = 2
[eval]
ais_betas = 50
ais_runs = 8
raise_betas = 50
ll_windows = 8
n_samples = 2
piece_rows = 16
sample_start = "zeros"
audio_samples = 0
"""


def run(copy: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy), "RBM_BENCH_RUNS": str(copy / "runs")}
    result = subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert not check or result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """A copy of the layers with one new framework file, one framework entry and one score entry; one bench run."""
    copy = tmp_path_factory.mktemp("extended")
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, copy / layer, ignore=shutil.ignore_patterns("__pycache__", "runs", "example"))
    (copy / "impls" / "backends" / "fake.py").write_text(FAKE_BACKEND)
    for model, text in FAKE_FILES.items():
        (copy / "impls" / model / "fake.py").write_text(text)
    with (copy / "impls" / "catalogue.py").open("a") as handle:
        handle.write(FRAMEWORK_ENTRY)
    with (copy / "eval" / "scoring" / "catalogue.py").open("a") as handle:
        handle.write(SCORE_ENTRY)
    (copy / "tiny.toml").write_text(PROFILE)
    bench = run(copy, "-m", "reports", "bench", "--profile", "tiny.toml")
    run_dir = Path(bench.stdout.split("run folder: ")[1].split()[0])
    return copy, run_dir, pd.read_csv(run_dir / "results.csv")


@pytest.mark.bench
def test_the_fifth_framework_runs_the_second_model_too(extended):
    copy, _, _ = extended
    (copy / "rnn.toml").write_text(RNN_PROFILE)
    bench = run(copy, "-m", "eval", "bench", "--profile", "rnn.toml")
    frame = pd.read_csv(Path(bench.stdout.split("run folder: ")[1].split()[0]) / "results.csv")
    fake = frame[frame.impl == "fake"]
    assert set(fake.model) == {"rnn_rbm"} and (fake.status == "ok").all(), fake[fake.status != "ok"]
    final = frame[frame.epoch.isna() & (frame.metric == "exact_nll_per_frame")].set_index("impl").value
    assert abs(final["fake"] - final["numpy"]) < 1e-9  # the reference under another name: the same numbers


@pytest.mark.bench
def test_the_change_is_one_file_and_two_entries(extended):
    copy, _, _ = extended
    changed = []
    for layer in LAYERS:
        for path in (copy / layer).rglob("*.py"):
            original = ROOT / path.relative_to(copy)
            if not original.exists() or original.read_text() != path.read_text():
                changed.append(str(path.relative_to(copy)))
    assert sorted(changed) == [
        "eval/scoring/catalogue.py", "impls/backends/fake.py", "impls/catalogue.py", "impls/rbm/fake.py",
        "impls/rnn_rbm/fake.py",
    ]  # fmt: skip
    assert "fake" not in impls.frameworks() and catalogue.lookup("fake_play_share") is None  # only in the copy


@pytest.mark.bench
def test_the_fifth_framework_and_the_score_reach_the_rows(extended):
    _, run_dir, frame = extended
    fake = frame[frame.impl == "fake"]
    assert len(fake) and (fake.status == "ok").all(), fake[fake.status != "ok"]
    assert {"train_windows_per_s", "pl_per_unit", "ratio_to_roofline"} <= set(fake.metric)
    for column in ("dataset_hash", "init_hash", "order_hash"):  # the same inputs as the reference, seed by seed
        assert frame[frame.impl.isin(["numpy", "fake"])].groupby("seed")[column].nunique().max() == 1
    score = frame[frame.metric == "fake_play_share"]
    assert sorted(score.impl) == ["fake", "fake", "numpy", "numpy"]
    assert (score.unit == "fraction").all() and (score.better == "higher").all()
    play = frame[(frame.metric == "note_density") & (frame.impl == "fake")].value
    assert (score[score.impl == "fake"].value > 0.25).all() and play.notna().all()
    environment = json.loads((run_dir / "env.json").read_text())
    assert environment["fake"] == environment["numpy"]  # its version, read from its distribution


@pytest.mark.bench
def test_the_report_shows_both_in_tables_verdict_and_figures(extended):
    copy, run_dir, _ = extended
    report = (run_dir / "report.md").read_text()
    verdict = report.split("## Verdict")[1].split("## ")[0]
    assert "Fake Framework" in verdict and "fake_play_share" in verdict
    samples = report.split("## Samples beside music")[1].split("## ")[0]
    assert "Fake Framework" in samples and "fake_play_share" in samples
    assert "Fake Framework" in report.split("## Throughput")[1]
    assert "dataset identical, init identical, order identical" in report
    labels = run(copy, "-c", (
        "import pandas as pd; from reports import figures; "
        f"frame = pd.read_csv({str(run_dir / 'results.csv')!r}); "
        "curves = figures.learning_curves(frame); bars = figures.throughput(frame); "
        "print([t.get_text() for legend in curves.legends for t in legend.get_texts()]); "
        "print([t.get_text() for t in bars.axes[0].get_yticklabels()])"
    )).stdout  # fmt: skip
    legend, bars = labels.strip().splitlines()[-2:]
    assert "Fake Framework" in legend and "Fake Framework" in bars


@pytest.mark.bench
def test_profile_validation_and_the_gate_know_them(extended, tmp_path):
    copy, run_dir, _ = extended
    typo = run(copy, "-m", "eval", "bench", "--profile", "tiny.toml", "--impls", "numpy,fakee", check=False)
    assert typo.returncode == 2 and "did you mean fake?" in typo.stderr
    baseline = tmp_path / "baseline.json"
    run(copy, "-m", "eval", "quality", "--results", str(run_dir), "--baseline", str(baseline), "--update-baseline")
    assert {"numpy", "fake"} <= set(json.loads(baseline.read_text())["metrics"])
    assert "fake_play_share" in json.loads(baseline.read_text())["metrics"]["fake"]
    gate = run(copy, "-m", "eval", "quality", "--results", str(run_dir), "--baseline", str(baseline))
    rows = [line.split() for line in gate.stdout.splitlines()]
    assert ["baseline", "fake", "fake_play_share"] in [row[:3] for row in rows]
    assert ["vs numpy", "fake", "fake_play_share"] in [[f"{r[0]} {r[1]}", *r[2:4]] for r in rows if len(r) > 3]
