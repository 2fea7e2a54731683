"""Complete-or-absent writes outside the run folder: baselines, speed and scaling outputs, scratch files, publish.

Each write runs in a child process under a tiny ``RLIMIT_FSIZE``: either the write fails with ``EFBIG`` (what a
full disk does; the command must answer with one line naming the file, exit 2) or, with ``SIGXFSZ`` left at its
default action, the process is killed in the middle of the write. Either way the target must hold its old bytes
(or be absent), never part of the new ones. No training: each case calls the writing code on small inputs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from eval.bench.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import os, resource, signal, sys
from pathlib import Path

def limit(size, kill):
    # after the imports: from here on no file may grow past `size` bytes
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if kill:  # the default action of SIGXFSZ: the process dies mid-write (Python ignores it otherwise: EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

import eval.environment
eval.environment.describe_environment = lambda *a, **k: {"python": "3"}  # no git child under the limit
"""


def run_limited(code: str, size: int, kill: bool, tmp_path: Path, watch: Path) -> subprocess.CompletedProcess:
    """Run ``code`` (``LIMIT`` marks where the limit starts); ``.created``: the files it left in ``watch``."""
    script = PRELUDE + textwrap.dedent(code).replace("LIMIT", f"limit({size}, {kill})")
    files = lambda: {p for p in watch.rglob("*") if p.is_file()} if watch.exists() else set()
    before = files()
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path),
             "MPLBACKEND": "Agg", "RBM_BENCH_RUNS": str(tmp_path / "runs"), "GIT_OPTIONAL_LOCKS": "0"},
        preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_CORE, (0, 0)),
    )  # fmt: skip
    result.created = files() - before
    return result


def check_outcome(result: subprocess.CompletedProcess, kill: bool, target: Path, old: bytes | None) -> None:
    """Killed: died of SIGXFSZ. Full disk: exit 2, one line naming the file. Both: the target is old or absent."""
    if kill:
        assert result.returncode == -signal.SIGXFSZ, (result.returncode, result.stderr)
    else:
        assert result.returncode == 2, (result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "File too large" in lines[0] and str(target) in lines[0], lines[0]
    if old is None:
        assert not target.exists(), f"{target} was left behind, {target.stat().st_size} bytes"
    else:
        assert target.read_bytes() == old, f"{target} is no longer the old file"
    partial = [p for p in result.created if not p.name.startswith(".") and p != target]
    assert not partial, f"a partial file under a name readers open: {partial}"
    if not kill:
        assert not result.created - {target}, f"temporary files left after a failed write: {result.created}"


MODES = pytest.mark.parametrize("kill", [False, True], ids=["full-disk", "killed"])


def fake_run(path: Path, rows: int = 3, filler: int = 0) -> Path:
    """A complete run folder without training: results, records, a report and two samples."""
    folder = RunFolder.create("fake", path=path)
    folder.write_json(folder.spec, {"name": "fake"})
    frame = pd.DataFrame(
        {
            "impl": ["numpy"] * rows,
            "seed": list(range(rows)),
            "epoch": [float("nan")] * rows,
            "phase": ["final"] * rows,
            "metric": ["music_structure_js"] * rows,
            "value": [0.1 + i / 100 for i in range(rows)],
            "better": ["lower"] * rows,
            "status": ["ok"] * rows,
            "reason": [""] * rows,
            "framework_version": ["1.0"] * rows,
            "dataset_hash": ["ab" * 32] * rows,  # the gate's baseline records the dataset it was made on
        }
    )
    folder.write_results(frame)
    for name in ("env.json", "dataset_manifest.json"):
        folder.write_json(folder.path / name, {"name": path.name})
    folder.write_text(folder.report_md, f"# {path.name}\n")
    folder.write_text(folder.report_html, f"<html>{path.name}{'x' * filler}</html>")
    folder.write_bytes(folder.samples_dir / f"{path.name}-0.wav", b"RIFF" + b"\0" * filler)
    folder.write_bytes(folder.samples_dir / f"{path.name}-0.mid", b"MThd")
    return folder.path


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@MODES
def test_the_quality_baseline_is_the_old_one_or_the_new_one(tmp_path, kill):
    run = fake_run(tmp_path / "run")
    target = tmp_path / "quality.json"
    old = json.dumps({"schema": "old", "metrics": {}}).encode()
    target.write_bytes(old)
    code = f"""
        from eval.__main__ import main
        LIMIT
        sys.exit(main(["quality", "--results", {str(run)!r}, "--update-baseline", "--baseline", {str(target)!r}]))
    """
    check_outcome(run_limited(code, 64, kill, tmp_path, tmp_path), kill, target, old)


@MODES
def test_the_perf_baseline_is_the_old_one_or_the_new_one(tmp_path, kill):
    benchmark = tmp_path / "benchmark.json"
    extra = {"updates": 10, "batch": 100, "five_products_ms": 0.5}
    benchmarks = [{"name": f"test_train_step[{impl}]", "stats": {"min": 0.01 * (i + 1)}, "extra_info": extra}
                  for i, impl in enumerate(["numpy", "torch"])]  # fmt: skip
    benchmark.write_text(json.dumps({"benchmarks": benchmarks}))
    target = tmp_path / "perf.json"
    old = json.dumps({"ratios": {}, "relative_tolerance": 0.3}).encode()
    target.write_bytes(old)
    code = f"""
        from eval.__main__ import main
        import eval.gates.perf
        LIMIT
        sys.exit(main(["perf-check", {str(benchmark)!r}, "--baseline", {str(target)!r}, "--update-baseline"]))
    """
    check_outcome(run_limited(code, 32, kill, tmp_path, tmp_path), kill, target, old)


@MODES
def test_the_speed_record_is_complete_or_absent(tmp_path, kill):
    code = f"""
        import pandas as pd
        import eval.timing.speed as speed
        from eval.bench.cli import main_guard
        speed.ROOT = Path({str(tmp_path)!r})  # where reports/perf goes (the checkout's ROOT in a real run)
        speed.time.strftime = lambda *a: "fixed"
        frame = pd.DataFrame({{"impl": ["numpy"], "windows_per_s": [1000.0]}}).set_index("impl")
        LIMIT
        sys.exit(main_guard(lambda: speed.save(frame, 2000.0, 1) and 0))
    """
    target = tmp_path / "reports" / "perf" / "speed-fixed.json"
    check_outcome(run_limited(code, 32, kill, tmp_path, tmp_path), kill, target, None)


SCALING = """
    import matplotlib.pyplot
    import pandas as pd
    import eval.timing.scaling as scaling
    from argparse import Namespace
    from eval.bench.cli import main_guard
    frame = pd.DataFrame({"n_hidden": [10, 20, 10, 20], "batch": [100] * 4, "impl": ["numpy"] * 2 + ["torch"] * 2,
                          "device": ["cpu"] * 4, "windows_per_s": [4e4, 2e4, 5e4, 3e4],
                          "roofline_windows_per_s": [6e4, 4e4, 6e4, 4e4]})
    scaling.measure_grid = lambda *args, **kwargs: frame  # no timing: the writes only
    args = Namespace(profile="scaling", impls=["numpy", "torch"], device="cpu", out=Path(OUT))
    LIMIT
    sys.exit(main_guard(lambda: scaling.main(args)))
"""


@pytest.mark.parametrize("which", ["scaling.csv", "scaling.png"])
@MODES
def test_the_scaling_table_and_figure_are_old_or_new(tmp_path, kill, which):
    out = tmp_path / "out"
    out.mkdir()
    old = {"scaling.csv": b"old,table\n", "scaling.png": b"\x89PNG old figure"}
    for name, data in old.items():
        (out / name).write_bytes(data)
    new_csv = ("n_hidden,batch,impl,device,windows_per_s,roofline_windows_per_s,work_mflop_per_window\n" * 4).encode()
    size = 16 if which == "scaling.csv" else 2 * len(new_csv)  # the figure: the table fits, the PNG (KBs) does not
    result = run_limited(SCALING.replace("OUT", repr(str(out))), size, kill, tmp_path, out)
    check_outcome(result, kill, out / which, old[which])
    if which == "scaling.png":  # written first, complete: the new table
        table = pd.read_csv(out / "scaling.csv")
        assert len(table) == 4 and set(table.impl) == {"numpy", "torch"}


@MODES
def test_the_scikit_learn_scratch_file_is_complete_or_absent(tmp_path, kill):
    target = tmp_path / "sklearn.json"
    code = f"""
        import sklearn.neural_network
        from eval.timing.sklearn_reference import main
        from eval.bench.cli import main_guard
        LIMIT
        sys.exit(main_guard(lambda: main([{str(target)!r}, "20", "5", "10"])))
    """
    check_outcome(run_limited(code, 8, kill, tmp_path, tmp_path), kill, target, None)


@MODES
def test_publish_leaves_the_old_copy_or_the_new_one_never_a_mix(tmp_path, kill):
    from reports.render import publish

    old_run, new_run = fake_run(tmp_path / "old"), fake_run(tmp_path / "new", rows=50, filler=20_000)
    dest = tmp_path / "published"
    publish(old_run, dest)
    before = tree(dest)
    code = f"""
        from reports.__main__ import main
        LIMIT
        sys.exit(main(["publish", {str(new_run)!r}, {str(dest)!r}]))
    """
    result = run_limited(code, 10_000, kill, tmp_path, dest)
    if kill:
        assert result.returncode == -signal.SIGXFSZ, result.stderr
    else:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "File too large" in lines[0], result.stderr
        assert str(dest) in lines[0], "the line names the published file, not a hidden staging one"
    assert tree(dest) == before, "the old published copy, whole"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("published") and p != dest]
    publish(new_run, dest)
    assert tree(dest) == {k: v for k, v in tree(new_run).items() if k.split("/")[0] in {*before, "samples"}}
    assert "samples/old-0.wav" not in tree(dest), "no file of the previous copy is left in the new one"


def test_publish_refuses_to_replace_a_folder_that_is_not_a_published_report(tmp_path):
    from core.errors import UserError
    from reports.render import publish

    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a published report"):
        publish(fake_run(tmp_path / "run"), dest)
    assert (dest / "notes.txt").read_text() == "keep me"
