"""The harness end to end (quick profile, synthetic data): rows, report, exit codes, failures, resume, integrity."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from core.paths import runs_dir
from eval.bench.harness import run_bench
from eval.bench.runfolder import IncompleteRun, RunFolder
from eval.config import load_profile
from reports.compare import compare
from reports.render import render
from tests.conftest import other_framework

ROOT = Path(__file__).resolve().parents[2]


def quick(**run) -> object:
    """The quick profile on synthetic data, tiny enough for a test."""
    profile = load_profile("quick").override(data={"source": "synthetic"})
    return profile.override(run={"epochs": 3, "executor": "serial", **run}, eval={"ais_betas": 200, "gibbs_steps": 10,
                            "raise_betas": 100, "ll_windows": 30})  # fmt: skip


@pytest.fixture
def quick_run(window_run):
    """The session's finished window-RBM run (tests/conftest.py): NumPy and one more installed framework."""
    return window_run.path, window_run.frame, window_run.impls


@pytest.mark.bench
def test_every_task_has_rows_with_equal_input_hashes(quick_run):
    run_dir, frame, ran = quick_run
    trained = frame[frame.impl.isin(ran)]
    assert set(trained.impl) == set(ran) and (trained.status == "ok").all(), trained[trained.status != "ok"]
    for column in ("dataset_hash", "init_hash", "order_hash"):
        assert trained[column].nunique() == 1
    final = (
        "pl_per_unit",
        "pl_sklearn_one_bit_per_unit",
        "ais_ll_per_row",
        "raise_ll_per_row",
        "bracket_width",
        "frechet_note_distance",
        "train_windows_per_s",
        "js_pitch_class",
        "ratio_to_roofline",
        "ceiling_ratio",
        "ratio_to_ceiling",
        "draw_ms",
        "copy_rate",
        "mgeval_oa_polyphony",
        "gibbs_steps_per_s",
        "peak_rss_mb",
        "bar_repetition",  # the window model's samples laid end to end as pieces, beside the RNN-RBM's
        "groove_consistency",
    )
    for metric in final:
        assert len(trained[(trained.metric == metric) & trained.epoch.isna()]) == len(ran), metric
    curves = trained[trained.metric == "valid_pl_per_unit"]
    assert sorted(curves.epoch.unique()) == [3]  # every curve_every (4) epochs and the last one
    assert {"python", "cpu", "git_commit", "blas", "framework_version", "threads", "device", "gpu"} <= set(
        frame.columns
    )
    assert pd.read_parquet(run_dir / "results.parquet").shape == pd.read_csv(run_dir / "results.csv").shape
    assert RunFolder(run_dir).check_complete()["rows"] == len(frame)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag in ("img", "audio", "source") and attributes.get("src"):
            self.sources.append(attributes["src"])
        if tag == "a" and attributes.get("href"):
            self.sources.append(attributes["href"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.bench
def test_report_parses_leads_with_the_verdict_and_every_reference_exists(quick_run, copy_run, window_run):
    run_dir = copy_run(window_run)
    page = render(run_dir)
    parser = _References()
    parser.feed(page.read_text())
    images = [s for s in parser.sources if s.startswith("data:image/png;base64,")]
    files = [s for s in parser.sources if not s.startswith("data:")]
    assert len(images) >= 4 and any(s.endswith(".wav") for s in files)
    for source in files:
        assert (run_dir / source).is_file(), source
    text = " ".join(parser.text)
    assert "**" not in text and "`" not in text, "no raw Markdown in the HTML"
    assert text.index("Verdict") < text.index("Log-likelihood bracket") < text.index("Throughput")
    markdown = (run_dir / "report.md").read_text()
    assert "dataset identical, init identical, order identical" in markdown
    assert "e+0" not in markdown, "numbers as people read them, not 2.307e+04"


def run_cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env, **kwargs)  # fmt: skip


def profile_file(tmp_path: Path, **run) -> str:
    """A profile file for the command line: quick on synthetic data, 1 epoch, a tiny scorer."""
    lines = ['extends = "quick"', "[data]", 'source = "synthetic"', "[run]", "epochs = 1", 'executor = "serial"',
             "timing_epochs = 2"]  # fmt: skip
    lines += [f"{key} = {json.dumps(value)}" for key, value in run.items()]
    lines += [
        "[eval]",
        "ais_betas = 100",
        "raise_betas = 50",
        "gibbs_steps = 5",
        "ll_windows = 20",
        "ais_runs = 16",
        "n_samples = 20",
        "audio_samples = 0",
    ]
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(lines))
    return str(path)


@pytest.mark.bench
def test_a_crashing_task_is_a_failed_row_exit_1_and_the_others_go_on(tmp_path):
    env = {**os.environ, "RBM_BENCH_FAULT": "numpy:cd_steps=0"}  # RBMConfig refuses k = 0: the worker crashes
    result = run_cli("bench", "--profile", profile_file(tmp_path, impls=["numpy"], seeds=[0, 1]), env=env)
    assert result.returncode == 1, result.stderr
    assert (
        "FAILED numpy-s0: exit code 1: core.errors.ConfigError: task numpy-s0: [model] cd_steps is 0" in result.stderr
    )
    assert "FAILED numpy-s1" in result.stderr and "Traceback" not in result.stderr
    run_dir = Path(result.stdout.split("run folder: ")[1].split()[0])
    frame = RunFolder(run_dir).results()
    assert (frame[frame.impl == "numpy"].status == "failed").all()
    shutil.rmtree(run_dir)


def test_unknown_implementation_is_refused_before_anything_runs(tmp_path):
    result = run_cli("bench", "--profile", profile_file(tmp_path), "--impls", "numpy,nosuch")
    assert result.returncode == 2 and "impls names 'nosuch'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.bench
@pytest.mark.skipif(other_framework() is None, reason="needs a framework besides NumPy to be skipped for want of a GPU")
def test_a_framework_without_a_gpu_is_skipped_and_fails_only_under_strict(tmp_path):
    name = other_framework()
    args = ("bench", "--profile", profile_file(tmp_path), "--impls", f"numpy,{name}", "--device", "cuda")
    relaxed = run_cli(*args)
    assert relaxed.returncode == 0, relaxed.stderr
    assert f"skipped {name}-s0: skipped: no GPU" in relaxed.stderr
    strict = run_cli(*args, "--strict")
    assert strict.returncode == 1 and "1 skipped" in strict.stderr
    alone = run_cli("bench", "--profile", profile_file(tmp_path), "--impls", name, "--device", "cuda")
    assert alone.returncode == 1 and "nothing ran" in alone.stderr, "every task skipped is not a run, strict or not"
    for output in (relaxed, strict, alone):
        shutil.rmtree(output.stdout.split("run folder: ")[1].split()[0])


@pytest.mark.bench
def test_divergence_is_flagged_by_bounds_with_the_reason(tmp_path):
    profile = quick(impls=["numpy"], epochs=1).override(model={"learning_rate": 1e9})
    frame = run_bench(profile, RunFolder(tmp_path / "diverged"), log=False).frame
    flagged = frame[(frame.status == "diverged") & (frame.metric == "pl_per_unit")]
    assert len(flagged) == 1 and "exceeds max_abs_param 100" in flagged.reason.iloc[0]
    assert frame[frame.metric == "pl_per_unit"].value.isna().all(), "a diverged score is never printed as a result"


@pytest.mark.bench
def test_resume_retries_failed_tasks_and_keeps_finished_ones(quick_run, tmp_path):
    run_dir, _, ran = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    folder = RunFolder(copy)
    kept = folder.result_path(f"{ran[0]}-s0")
    before = kept.stat().st_mtime_ns
    failed = folder.result_path(f"{ran[-1]}-s0")
    stored = json.loads(failed.read_text())
    stored["rows"] = [stored["rows"][0] | {"status": "failed", "reason": "worker process killed by SIGKILL"}]
    failed.write_text(json.dumps(stored))
    result = run_bench(None, folder, log=False)
    assert result.retried == [f"{ran[-1]}-s0"] and kept.stat().st_mtime_ns == before
    assert set(result.frame[result.frame.status == "ok"].impl) >= set(ran) and not result.failed


@pytest.mark.bench
def test_resume_refuses_options_that_contradict_the_spec(quick_run, tmp_path):
    run_dir, _, _ = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    result = run_cli("bench", "--resume", str(copy), "--epochs", "99")
    assert result.returncode == 2 and "--epochs 99 contradicts the run's epochs 3" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.bench
@pytest.mark.parametrize("damage", ["truncate", "unfinished"])
def test_compare_gate_and_render_refuse_an_incomplete_or_truncated_run(quick_run, tmp_path, damage):
    run_dir, _, _ = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    results = copy / "results.csv"
    if damage == "truncate":  # what a full disk did to the earlier harness: half the rows, no error
        lines = results.read_text().splitlines(keepends=True)
        results.write_text("".join(lines[: len(lines) // 2]))
        expected = "truncated or changed since the run finished"
    else:
        (copy / "complete.json").unlink()
        expected = "the run is incomplete (no complete.json)"
    with pytest.raises(IncompleteRun, match=re.escape(expected)):
        RunFolder(copy).results()
    for command in (
        ["compare", str(run_dir), str(copy)],
        ["render", str(copy)],
        ["-m", "eval", "quality", "--results", str(copy)],
    ):
        if command[0] == "-m":
            result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
        else:
            result = run_cli(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.bench
def test_a_full_disk_during_a_run_is_one_line_exit_2_and_no_partial_file(tmp_path):
    import resource

    limit = 30_000
    result = run_cli("bench", "--profile", profile_file(tmp_path, impls=["numpy"]),
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))  # fmt: skip
    assert result.returncode == 2 and "File too large" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "unknown file" not in result.stderr
    runs = sorted(runs_dir().glob("*-tiny"), key=lambda p: p.stat().st_mtime)
    assert runs, "the folder was created before the write failed"
    partial = [p for p in runs[-1].rglob("*") if p.is_file() and (".tmp" in p.name or p.stat().st_size >= limit)]
    assert not partial and not (runs[-1] / "complete.json").exists()
    shutil.rmtree(runs[-1])


@pytest.mark.bench
def test_compare_two_runs(quick_run, tmp_path):
    """B: a copy of the quick run in which NumPy's pseudo-likelihood rose by 0.5 (higher is better) and its Frechet
    note distance by 3 (lower is better), re-finished through `RunFolder.write_results`; nothing else moved."""
    run_dir, _, _ = quick_run
    copy = tmp_path / "changed"
    shutil.copytree(run_dir, copy)
    folder = RunFolder(copy)
    frame = folder.results()
    final = (frame.impl == "numpy") & frame.epoch.isna() & (frame.status == "ok")
    shifts = {"pl_per_unit": 0.5, "frechet_note_distance": 3.0}
    for metric, shift in shifts.items():
        rows = final & (frame.metric == metric)
        assert rows.sum() == 1, "one seed: one final row"
        frame.loc[rows, "value"] += shift
    folder.write_results(frame)

    table = compare(run_dir, copy)
    moved = [("numpy", metric) for metric in shifts]
    one_seed = " (one seed: no interval, not a finding)"  # the quick run has one seed
    for key, shift, verdict in zip(moved, shifts.values(), ("better" + one_seed, "worse" + one_seed)):
        before = frame.loc[final & (frame.metric == key[1]), "value"].iloc[0] - shift
        row = table.loc[key]
        assert (row["A"], row["B"], row["change"]) == pytest.approx((before, before + shift, shift)), key
        assert row["verdict"] == verdict, key
    rest = table.drop(index=moved).dropna(subset=["change"])
    assert len(rest) > 10 and (rest.change == 0).all(), rest[rest.change != 0]
    assert set(rest.verdict) <= {"same", ""} and table.loc[("numpy", "ais_ll_per_row"), "verdict"] == "same"
    backwards = compare(copy, run_dir)  # B -> A: each change reverses
    assert [backwards.loc[key, "verdict"] for key in moved] == ["worse" + one_seed, "better" + one_seed]
    assert backwards.loc[moved[0], "change"] == pytest.approx(-0.5)


@pytest.mark.bench
def test_spec_records_the_profile(quick_run):
    run_dir, _, _ = quick_run
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["name"] == "tiny" and spec["run"]["epochs"] == 3 and spec["data"]["source"] == "synthetic"


def test_speed_table_ratios_and_ceilings_follow_from_the_fastest_products():
    from eval.timing.speed import speed_table

    measured = [
        {"impl": "a", "windows_per_s": 50_000.0, "five_products_ms": 1.0, "draw_ms": 0.5},
        {"impl": "b", "windows_per_s": 100_000.0, "five_products_ms": 0.5, "draw_ms": 0.5},
        {"impl": "sklearn", "step_ms": 10.0},
    ]
    frame, roofline = speed_table(measured)
    assert roofline == pytest.approx(200_000)  # batch 100 in the fastest five products, 0.5 ms
    assert frame.loc["a", "ratio_to_roofline"] == pytest.approx(0.25)
    assert frame.loc["a", "ceiling"] == pytest.approx(0.5 / 1.5) and frame.loc["b", "ceiling"] == pytest.approx(0.5)
    assert frame.loc["a", "ratio_to_ceiling"] == pytest.approx(0.75) and frame.loc["b", "ratio_to_ceiling"] == 1.0
    assert frame.loc["b", "ratio_to_sklearn"] == pytest.approx(10)
    assert frame.loc["sklearn", "ratio_to_roofline"] == pytest.approx(0.05)


def test_a_share_of_ceiling_above_one_is_called_timing_noise_by_the_speed_commands():
    """An update does its products and draws, so a share above 1 means their timing caught a slow moment: `eval
    speed` (and its ablation) say so per row, naming mode and threads where the table has them; 1 itself is fine."""
    from eval.timing.roofline import noisy_share_lines
    from eval.timing.speed import speed_table

    measured = [
        {"impl": "b", "windows_per_s": 100_000.0, "five_products_ms": 0.5, "draw_ms": 0.5},  # exactly its ceiling
        {"impl": "c", "windows_per_s": 150_000.0, "five_products_ms": 0.5, "draw_ms": 0.5},  # faster than its parts
    ]
    frame, _ = speed_table(measured)
    (line,) = noisy_share_lines(frame)
    assert line.startswith("c: share of ceiling 1.50 is timing noise")
    ablation = pd.DataFrame(
        {"threads": [1, 1, 2], "impl": ["jax", "jax", "tf"], "mode": ["scan", "update", "xla"],
         "ratio_to_ceiling": [1.17, 0.5, float("nan")]}
    )  # fmt: skip
    assert noisy_share_lines(ablation) == [
        "jax (mode scan, threads 1): share of ceiling 1.17 is timing noise (above 1 cannot be); its speed stands, "
        "re-run for its ceiling"
    ]


def test_speed_table_measures_roofline_and_scikit_learn_in_the_same_run():
    from eval.timing.speed import run_all, speed_table

    frame, roofline = speed_table(run_all(["numpy"], threads=1))
    assert roofline > 0 and 0 < frame.loc["numpy", "ratio_to_roofline"] < 1
    assert frame.loc["numpy", "ratio_to_sklearn"] > 0 and frame.loc["sklearn", "windows_per_s"] > 0


@pytest.mark.bench
def test_compare_refuses_runs_of_different_experiments_or_labels_them(quick_run, tmp_path):
    """B's spec says another learning rate: the change of every score would be the recipe's, not the code's."""
    from reports.compare import DifferentExperiments

    run_dir, _, _ = quick_run
    other = tmp_path / "other-recipe"
    shutil.copytree(run_dir, other)
    spec = json.loads((other / "spec.json").read_text())
    spec["model"]["learning_rate"] = 0.5
    (other / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(DifferentExperiments, match=r"model.learning_rate 0.02 vs 0.5"):
        compare(run_dir, other)
    labelled = compare(run_dir, other, allow_different=True)
    assert (labelled.loc[("numpy", "ais_ll_per_row"), "verdict"]).endswith("(different experiments)")
    cli = subprocess.run([sys.executable, "-m", "reports", "compare", str(run_dir), str(other)], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1 and "--different" in cli.stderr
