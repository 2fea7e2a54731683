"""The history of results: the store keeps every finished run exactly once and nothing else, the trend gate reads
it (its statistics: test_trend_gate.py), and the history page draws it."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import UserError
from eval.bench.runfolder import IncompleteRun, RunFolder
from eval.contract.rows import make_row
from eval.history import store, trend
from eval.scoring.stats import interval

ROOT = Path(__file__).resolve().parents[2]
MARGINS = json.loads((ROOT / "reports" / "baselines" / "margins" / "rbm-bach.json").read_text())["scores"]
SIGMA = MARGINS["pl_per_unit"]["noise_sd"]  # the measured spread of one seed
MARGIN = MARGINS["pl_per_unit"]["margin"]  # the verdict's margin (about 2.8 sigma)
SEEDS = 3
COMMITS = [f"{i:02d}" + "c" * 38 for i in range(50)]  # 40 characters, like a sha


@pytest.fixture
def history(tmp_path, monkeypatch) -> Path:
    """A private history folder (``$RBM_BENCH_HISTORY``, also read by child processes)."""
    path = tmp_path / "history"
    monkeypatch.setenv("RBM_BENCH_HISTORY", str(path))
    return path


# ------------------------------------------------------------------------------------------------ fake runs
def fake_run(parent: Path, name: str, commit: str, values: dict[tuple[str, str], list[float]], cpu: str = "Test CPU",
             finished: datetime | None = None, profile: str = "quick", complete: bool = True,
             dataset: str = "synthetic") -> Path:  # fmt: skip
    """A run folder written by `RunFolder` as the harness writes one: spec, env, results and (if complete) the
    completion record; ``values[(impl, metric)]`` holds one value per seed."""
    folder = RunFolder.create(name, path=parent / name)
    env = {"python": "3.11.7", "cpu": cpu, "cores": "2", "gpu": "none", "gpu_driver": "", "git_commit": commit,
           "blas": "openblas", "platform": "Linux"}  # fmt: skip
    folder.write_json(folder.spec, {"name": profile, "run": {"seeds": list(range(SEEDS))}})
    folder.write_json(folder.env, env)
    rows = []
    for (impl, metric), per_seed in values.items():
        for seed, value in enumerate(per_seed):
            context = {"run_id": name, "impl": impl, "model": "rbm", "seed": seed, "profile": profile,
                       "dataset": dataset, "attempts": 1}  # fmt: skip
            phase = "train" if metric == "epoch_seconds" else "eval"
            epochs = (1, 2) if phase == "train" else (None,)  # a curve: one row an epoch
            rows += [make_row(context, phase, metric, value * (e or 1), epoch=e) for e in epochs]
    environment = {k: env[k] for k in ("python", "cpu", "cores", "blas", "git_commit", "gpu", "gpu_driver")}
    frame = pd.DataFrame(rows).assign(device="cpu", precision="float32", framework_version="1", threads=1)
    frame = frame.assign(**environment)
    folder.write_results(frame)
    if finished is not None:  # the harness stamps now(); a test places runs in time
        record = folder.read_json(folder.complete_marker) | {"finished": finished.isoformat(timespec="seconds")}
        folder.write_json(folder.complete_marker, record)
    if not complete:
        folder.invalidate()  # what a run killed before its end leaves: results maybe, no complete.json
    return folder.path


def seeds(mean: float, rng: np.random.Generator, sd: float = SIGMA) -> list[float]:
    return rng.normal(mean, sd, SEEDS).tolist()


def stored_rows(history: Path) -> pd.DataFrame:
    return store.query("SELECT run_id, impl, seed, metric, epoch, value FROM rows", store=history)


# ------------------------------------------------------------------------------------------------ the trend gate
RECORD = "import sys, time; from eval.history.store import record; time.sleep(max(0, float(sys.argv[2]) - time.time())); print(record(sys.argv[1]))"  # noqa: E501


def test_runs_recorded_at_once_are_all_kept_exactly_once(tmp_path, history):
    rng = np.random.default_rng(1)
    runs = [fake_run(tmp_path, f"run{i}", COMMITS[i], {(impl, m): seeds(-0.15, rng) for impl in ("numpy", "torch")
                     for m in ("pl_per_unit", "note_density", "epoch_seconds")}) for i in range(10)]  # fmt: skip
    start = time.time() + 4  # two processes start recording at the same moment
    command = [sys.executable, "-c", RECORD]
    children = [
        subprocess.Popen([*command, str(run), str(start)], cwd=ROOT, env=os.environ, stderr=subprocess.PIPE, text=True)
        for run in runs[:2]
    ]
    barrier = threading.Barrier(len(runs) - 2)  # and eight threads of this process

    def recorded(run: Path) -> None:
        barrier.wait()
        store.record(run)

    threads = [threading.Thread(target=recorded, args=(run,)) for run in runs[2:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for child in children:
        _, error = child.communicate(timeout=120)
        assert child.returncode == 0, error
    store.record(runs[0])  # recording a run again adds nothing
    rows = stored_rows(history)
    expected = pd.concat([RunFolder(run).results() for run in runs])
    assert len(rows) == len(expected) == 10 * 2 * 3 * (1 + 1 + 2)
    assert not rows.duplicated(["run_id", "impl", "seed", "metric", "epoch"]).any()
    assert sorted(rows.value) == sorted(expected.value)
    assert len(list(store.rows_dir(history).glob("*.parquet"))) == 10
    assert not list(store.rows_dir(history).glob(".*"))  # no temporary file left behind


def test_a_run_killed_before_completion_is_refused_and_absent(tmp_path, history):
    rng = np.random.default_rng(2)
    done = fake_run(tmp_path, "done", COMMITS[0], {("numpy", "pl_per_unit"): seeds(-0.15, rng)})
    killed = fake_run(tmp_path, "killed", COMMITS[1], {("numpy", "pl_per_unit"): seeds(-0.15, rng)}, complete=False)
    assert (killed / "results.csv").exists() and not (killed / "complete.json").exists()
    with pytest.raises(IncompleteRun) as refused:
        store.record(killed)
    assert "no complete.json" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(IncompleteRun):
        store.record_many([done, killed])  # refused before anything is written
    assert stored_rows(history).empty
    skipped = []
    assert len(store.record_many([done, killed], skip=skipped.append)) == 1
    assert len(skipped) == 1 and "killed" in skipped[0]
    assert set(stored_rows(history).run_id) == {"done"}
    (done / "results.csv").write_text("run_id\n")  # altered after it finished: refused as well
    with pytest.raises(IncompleteRun):
        store.record(done)


def test_the_store_reads_its_schema_and_refuses_a_newer_one_in_one_line(tmp_path, history):
    path = store.record(fake_run(tmp_path, "run", COMMITS[0], {("numpy", "pl_per_unit"): [-0.15] * SEEDS}))
    assert store.query("SELECT DISTINCT schema FROM rows").schema.tolist() == [store.SCHEMA]
    table = pq.read_table(path)
    future = table.set_column(0, "schema", pa.array([store.SCHEMA + 1] * len(table), pa.int32()))
    pq.write_table(future, path.with_name("future.x.y.parquet"))
    with pytest.raises(UserError) as refused:
        store.series("pl_per_unit")
    assert "newer than this code reads" in str(refused.value) and "\n" not in str(refused.value)
    path.with_name("future.x.y.parquet").write_bytes(b"not parquet")  # a broken file beside: skipped, the rest read
    assert store.query("SELECT count(*) AS n FROM rows").n.tolist() == [len(table)]  # tests/history/test_history_files


def test_a_series_has_per_commit_intervals_and_never_mixes_machines(tmp_path, history):
    base, rng = datetime(2026, 1, 1), np.random.default_rng(3)
    values = {}
    for i in range(4):
        for cpu in ("CPU A", "CPU B"):
            per_seed = seeds(-0.15 + 0.01 * (cpu == "CPU B"), rng)
            values[(i, cpu)] = per_seed
            commit = COMMITS[i] + ("+dirty" if i == 3 else "")
            scores = {("numpy", "pl_per_unit"): per_seed, ("numpy", "epoch_seconds"): [1.0, 2.0, 3.0]}
            fake_run(tmp_path, f"r{i}{cpu[-1]}", commit, scores, cpu=cpu, finished=base + timedelta(hours=i))
    assert len(store.record_many(sorted(tmp_path.glob("r*")))) == 8
    frame = store.series("pl_per_unit")
    assert frame.groupby("machine").machine_label.nunique().eq(1).all() and frame.machine.nunique() == 2
    for label, rows in frame.groupby("machine_label"):
        assert rows.commit.tolist() == [*COMMITS[:3], COMMITS[3] + "+dirty"]  # in time order
        cpu = label.split(" ×")[0]
        for i, row in enumerate(rows.itertuples()):
            ci = interval(values[(i, cpu)])
            assert (row.n, row.mean, row.low, row.high) == pytest.approx((ci.n, ci.mean, ci.low, ci.high))
    assert len(store.series("pl_per_unit", machine="CPU A ×2 · no GPU", clean_only=True)) == 3
    assert store.series("epoch_seconds")["values"].map(lambda v: v[0]).eq(2.0).all()  # one value a seed: the last epoch
    assert store.series("pl_per_unit", impl="torch").empty


def test_the_trend_gate_reads_the_store(tmp_path, history):
    base, rng = datetime(2026, 1, 1), np.random.default_rng(10)
    for i in range(12):
        mean = -0.15 - MARGIN * (i >= 10)
        fake_run(tmp_path, f"r{i:02d}", COMMITS[i], {("numpy", "pl_per_unit"): seeds(mean, rng),
                 ("numpy", "note_density"): seeds(0.1, rng, 1e-4)}, finished=base + timedelta(days=i))  # fmt: skip
    store.record_many(sorted(tmp_path.glob("r*")))
    frames = {m: store.series(m) for m in ("pl_per_unit", "note_density")}
    unjudged = trend.gate(frames)  # synthetic data has no calibration: no margin is borrowed from another
    assert unjudged.status.tolist() == ["not judged"] * 2 and not unjudged.failed.any()
    verdict = trend.gate(frames, margin=MARGIN).set_index("metric")  # a margin given: judged with it
    assert verdict.loc["pl_per_unit", ["status", "first_commit", "failed"]].tolist() == ["regression", COMMITS[10], 1]
    assert verdict.loc["note_density", "status"] == "steady"


# ------------------------------------------------------------------------------------------------ the page
class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        self.tables += tag == "table"


def test_the_history_page_draws_each_metric_over_commits(tmp_path, history):
    from reports.history import render_history

    base, rng = datetime(2026, 1, 1), np.random.default_rng(11)
    metrics = ("pl_per_unit", "music_structure_js", "note_density")
    for i in range(3):
        values = {(impl, m): seeds(0.1, rng) for impl in ("numpy", "torch") for m in (*metrics, "epoch_seconds")}
        fake_run(tmp_path, f"r{i}", COMMITS[i], values, finished=base + timedelta(days=i))
    store.record_many(sorted(tmp_path.glob("r*")))
    page = render_history(tmp_path / "site", profile="quick")
    assert page == tmp_path / "site" / "history.html"
    parser = Images()
    parser.feed(page.read_text())
    parser.close()
    assert len(parser.images) == len(metrics)  # the headline scores; curves like epoch_seconds are not drawn
    for src in parser.images:
        prefix, data = src.split(",", 1)
        assert prefix == "data:image/png;base64" and base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert parser.tables >= len(metrics)
    assert "history.html" in render_history(tmp_path / "empty", profile="none").name  # nothing to draw: still a page


class Panels(HTMLParser):
    """Each metric's section (h2) with its figures (images), the class of each table's parent, and the style."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.current, self.heading, self.style, self.open = "", False, "", []
        self.table_boxes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.heading = tag == "h2"
        if tag == "img" and self.current:
            self.sections[self.current].append(dict(attrs).get("src", ""))
        if tag == "table":
            self.table_boxes.append(self.open[-1] if self.open else "")
        if tag == "div":
            self.open.append(dict(attrs).get("class", ""))

    def handle_endtag(self, tag: str) -> None:
        self.heading = False
        if tag == "div" and self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.heading:
            self.current = data
            self.sections[data] = []
        elif self.lasttag == "style":
            self.style += data


def test_the_history_page_draws_one_panel_per_profile_and_dataset(tmp_path, history):
    """Scores of different data differ in scale (a Bach window's log-likelihood is about twice a JSB frame's):
    one axis for all would flatten each into a line, so each (profile, dataset) gets its own panel and table, the
    tables scroll in their own box, and the legends sit beside the axes."""
    from reports.history import render_history

    base, rng = datetime(2026, 1, 1), np.random.default_rng(5)
    data = [("default", "bach", -14.0), ("jsb", "jsb (sha256 ac0e6085…)", -6.6), ("rnn_jsb", "jsb (sha256 ac0e6085…)",
            -7.4)]  # fmt: skip
    for i in range(2):
        for profile, dataset, level in data:
            values = {(impl, "pl_per_unit"): seeds(level, rng) for impl in ("numpy", "jax")}
            fake_run(tmp_path, f"{profile}-{i}", COMMITS[i], values, finished=base + timedelta(days=i),
                     profile=profile, dataset=dataset)  # fmt: skip
    store.record_many(sorted(p for p in tmp_path.iterdir() if p.name != "history"))
    parser = Panels()
    parser.feed(render_history(tmp_path / "site", metrics=["pl_per_unit"]).read_text())
    parser.close()
    images = parser.sections["pl_per_unit"]
    assert len(images) == len(data)  # one figure per (profile, dataset), never one axis for every scale
    assert all(base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG") for src in images)
    assert parser.table_boxes and set(parser.table_boxes) == {"wide"}  # every table in its scroll box
    assert re.search(r"\.wide\{[^}]*overflow:auto", parser.style)


def test_a_history_panel_keeps_its_legend_beside_the_axes(tmp_path, history):
    from reports.history import figure

    rng = np.random.default_rng(1)
    values = {(impl, "pl_per_unit"): seeds(-0.1, rng) for impl in ("numpy", "jax", "torch")}
    fake_run(tmp_path, "r0", COMMITS[0], values)
    store.record_many([tmp_path / "r0"])
    drawn = figure(store.series("pl_per_unit", store=history), "pl_per_unit")
    drawn.canvas.draw()
    (axis,) = drawn.axes
    (legend,) = drawn.legends
    assert axis.get_legend() is None  # a figure legend, not one inside the axes
    box, plot = legend.get_window_extent(), axis.get_window_extent()
    assert box.x0 >= plot.x1 - 1  # beside the plot: it covers no point


def test_the_ci_workflow_is_yaml_that_runs_the_gate_and_keeps_the_history():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "quality.yml").read_text())
    steps = workflow["jobs"]["quality"]["steps"]
    commands = " ".join(str(step.get("run", "")) for step in steps)
    uses = " ".join(str(step.get("uses", "")) for step in steps)
    assert "tox -e quality" in commands and "reports history" in commands
    assert "actions/cache" in uses and "upload-artifact" in uses
    assert any(step.get("with", {}).get("path") == "reports/history" for step in steps)


@pytest.mark.bench
def test_every_finished_bench_run_is_recorded_beside_its_runs_folder(window_run):
    """No import step needed: the bench keeps each run it finishes, in the history beside the runs folder (the shared
    run is made with $RBM_BENCH_RUNS set and $RBM_BENCH_HISTORY unset)."""
    (recorded,) = (window_run.runs.parent / "history" / "rows").glob("*.parquet")
    rows = pd.read_parquet(recorded)
    assert set(rows.run_id) == {window_run.path.name} and len(rows) == len(pd.read_csv(window_run.path / "results.csv"))
    assert f"recorded in the history: {recorded}" in window_run.stdout


def test_perf_ratios_join_the_history_and_a_fall_is_flagged(tmp_path, monkeypatch):
    """``perf-check --history``: each check's ratios are recorded; after a steady history a lasting collapse fails."""
    from eval.__main__ import main

    monkeypatch.setenv("RBM_BENCH_HISTORY", str(tmp_path / "history"))
    extra = {"updates": 10, "batch": 100, "five_products_ms": 0.5}
    baseline = tmp_path / "perf.json"
    baseline.write_text(json.dumps({"ratios": {}, "relative_tolerance": 0.3}))
    rng = np.random.default_rng(0)
    codes = []
    for commit in range(12):
        step = 0.02 * (1 + 0.01 * rng.normal()) * (3.0 if commit >= 10 else 1.0)  # the last two commits: 3x slower
        benchmark = tmp_path / f"benchmark-{commit}.json"
        benchmarks = [{"name": "test_train_step[numpy]", "stats": {"min": step}, "extra_info": extra},
                      {"name": "test_train_step[torch]", "stats": {"min": 0.01}, "extra_info": extra}]  # fmt: skip
        benchmark.write_text(json.dumps({"benchmarks": benchmarks}))
        sha = f"{commit:040x}"
        environment = {"git_commit": sha, "cpu": "test cpu", "cores": 2, "gpu": "none"}
        monkeypatch.setattr("eval.environment.describe_environment", lambda environment=environment: environment)
        codes.append(main(["perf-check", str(benchmark), "--baseline", str(baseline), "--history"]))
    rows = store.query("SELECT DISTINCT git_commit FROM rows WHERE metric = 'train_step_ratio'")
    assert len(rows) == 12
    assert codes[:11] == [0] * 11 and codes[11] == 1  # one slow commit may be a loaded machine; two are a fall
