"""The benchmark harness end to end (quick profile, synthetic data), its report, failures and resumption."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from eval.harness import load_profile, run_bench
from reports.compare import compare
from reports.render import render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick-profile run on synthetic data with the reference and one more installed framework."""
    import impls

    others = [n for n, s in impls.available().items() if isinstance(s, impls.Available) and n != "numpy"]
    profile = load_profile("quick")
    profile["data"]["source"] = "synthetic"
    profile["run"].update(impls=["numpy", *others[:1], "nosuch"], epochs=3)
    profile["eval"].update(ais_betas=200, gibbs_steps=10)
    run_dir, frame = run_bench(profile, tmp_path_factory.mktemp("runs") / "quick", log=False)
    return run_dir, frame, ["numpy", *others[:1]]


def test_every_run_has_rows_with_equal_input_hashes(quick_run):
    run_dir, frame, ran = quick_run
    trained = frame[frame.impl.isin(ran)]
    assert set(trained.impl) == set(ran) and (trained.status == "ok").all(), trained[trained.status != "ok"]
    for column in ("dataset_hash", "init_hash", "order_hash"):
        assert trained[column].nunique() == 1
    final = (
        "pl_per_unit",
        "pl_sklearn_one_bit_per_unit",
        "ais_ll_per_row",
        "train_windows_per_s",
        "js_pitch_class",
        "ratio_to_roofline",
        "draw_ms",
        "ceiling_ratio",
        "copy_rate",
        "mgeval_oa_polyphony",
        "gibbs_steps_per_s",
        "peak_rss_mb",
    )
    for metric in final:
        assert len(trained[(trained.metric == metric) & trained.epoch.isna()]) == len(ran), metric
    curves = trained[trained.metric == "valid_pl_per_unit"]
    assert sorted(curves.epoch.unique()) == [2, 3]  # every curve_every epochs and the last one
    assert {"python", "cpu", "git_commit", "blas", "framework_version", "threads"} <= set(frame.columns)
    assert pd.read_parquet(run_dir / "results.parquet").shape == pd.read_csv(run_dir / "results.csv").shape


def test_unknown_implementation_is_a_skipped_row_with_reason(quick_run):
    _, frame, _ = quick_run
    (row,) = frame[frame.impl == "nosuch"].to_dict("records")
    assert row["status"] == "skipped" and "unknown implementation" in row["reason"]


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag in ("img", "audio", "source") and attributes.get("src"):
            self.sources.append(attributes["src"])
        if tag == "a" and attributes.get("href"):
            self.sources.append(attributes["href"])


def test_report_parses_and_every_reference_exists(quick_run):
    run_dir, _, ran = quick_run
    page = render(run_dir)
    parser = _References()
    parser.feed(page.read_text())
    images = [s for s in parser.sources if s.startswith("data:image/png;base64,")]
    files = [s for s in parser.sources if not s.startswith("data:")]
    assert len(images) >= 4 and any(s.endswith(".wav") for s in files)
    for source in files:
        assert (run_dir / source).is_file(), source
    markdown = (run_dir / "report.md").read_text()
    assert "dataset identical, init identical, order identical" in markdown
    assert all(name in markdown for name in ran)


def test_crashing_run_becomes_a_failed_row_and_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setenv("RBM_BENCH_FAULT", "numpy:cd_steps=0")  # RBMConfig refuses k = 0: the worker crashes
    profile = load_profile("quick")
    profile["data"]["source"] = "synthetic"
    profile["run"].update(impls=["numpy"], epochs=1, seeds=[0, 1])
    run_dir, frame = run_bench(profile, tmp_path / "crash", log=False)
    failed = frame[frame.status == "failed"]
    assert len(failed) == 2 and failed.reason.str.contains("cd_steps is 0").all()
    assert (run_dir / "results.csv").exists()


def test_interrupted_run_resumes_only_what_is_missing(quick_run, tmp_path):
    import shutil

    run_dir, _, ran = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    kept = copy / "runs" / f"{ran[0]}-s0.json"
    before = kept.stat().st_mtime_ns
    (copy / "runs" / f"{ran[-1]}-s0.json").unlink()
    _, resumed = run_bench({}, copy, log=False)
    assert kept.stat().st_mtime_ns == before, "finished runs are not redone"
    assert set(resumed[resumed.status == "ok"].impl) >= set(ran)


def test_compare_two_runs(quick_run):
    run_dir, _, _ = quick_run
    table = compare(run_dir, run_dir)
    assert (table.dropna(subset=["change"]).change == 0).all()
    assert ("numpy", "pl_per_unit") in table.index


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reports", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--profile", "nosuch"], "no such profile"),
        (["bench", "--profile", "quick", "--epochs", "0"], "must be at least 1"),
        (["bench", "--profile", "quick", "--dataset", "midi:/no/such/folder"], "no such folder"),
        (["bench", "--resume", "/no/such/run"], "not a run folder"),
        (["compare", "/no/a", "/no/b"], "no results.csv"),
    ],
)
def test_bench_bad_input_gives_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_spec_records_the_profile(quick_run):
    run_dir, _, _ = quick_run
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["name"] == "quick" and spec["run"]["epochs"] == 3


def test_speed_table_ratios_and_ceilings_follow_from_the_fastest_products():
    from eval.speed import table

    measured = [
        {"impl": "a", "windows_per_s": 50_000.0, "five_products_ms": 1.0, "draw_ms": 0.5},
        {"impl": "b", "windows_per_s": 100_000.0, "five_products_ms": 0.5, "draw_ms": 0.5},
        {"impl": "sklearn", "step_ms": 10.0},
    ]
    results, roofline = table(measured)
    by_impl = {r["impl"]: r for r in results}
    assert roofline == pytest.approx(200_000)  # batch 100 in the fastest five products, 0.5 ms
    assert by_impl["a"]["ratio_to_roofline"] == pytest.approx(0.25)
    assert by_impl["a"]["ceiling"] == pytest.approx(0.5 / 1.5) and by_impl["b"]["ceiling"] == pytest.approx(0.5)
    assert by_impl["b"]["ratio_to_sklearn"] == pytest.approx(10)
    assert by_impl["sklearn"]["ratio_to_roofline"] == pytest.approx(0.05)


def test_speed_table_measures_roofline_and_scikit_learn_in_the_same_run():
    from eval.speed import run_all, table

    results, roofline = table(run_all(["numpy", "nosuch"], threads=1))
    by_impl = {r["impl"]: r for r in results}
    assert roofline > 0 and 0 < by_impl["numpy"]["ratio_to_roofline"] < 1
    assert by_impl["numpy"]["ratio_to_sklearn"] > 0 and by_impl["sklearn"]["windows_per_s"] > 0
    assert "unknown implementation" in by_impl["nosuch"]["error"]
