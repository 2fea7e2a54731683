"""Paths that used to accept wrong results or crash late: each is refused up front or flagged, in one line."""

from __future__ import annotations

import errno
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import os_error_line
from core.paths import runs_dir
from datasets import WindowSpec
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.config import ConfigError, load_profile
from eval.scoring.quality import music_structure_js

ROOT = Path(__file__).resolve().parents[2]


def profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text('extends = "quick"\n' + text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[sweep]\n"data.num_timesteps" = [15, 8]', "[sweep] data.num_timesteps: a run builds one dataset"),
        ('[sweep]\n"data.source" = ["bach", "synthetic"]', "sweep data.order or data.train_on only"),
        ("[model]\nn_hidden = 10000000", "n_hidden 10,000,000 needs about"),
        ("[run]\nseeds = [340282366920938463463374607431768211457]", "must be <= 4.29497e+09"),
        ("[run]\nepochs = 1000000", "epochs is 1e+06; it must be <= 100000"),
    ],
)
def test_what_cannot_run_is_refused_before_a_run_folder_exists(tmp_path, text, expected):
    before = set(runs_dir().glob("*"))
    with pytest.raises(ConfigError) as caught:
        load_profile(str(profile(tmp_path, text)))
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert set(runs_dir().glob("*")) == before


def test_a_sweep_over_train_on_gives_each_point_its_own_batch_order(tmp_path):
    swept = load_profile(
        str(profile(tmp_path, '[data]\nsource = "synthetic"\n[sweep]\n"data.train_on" = ["train", "all"]'))
    )
    swept = swept.override(run={"impls": ["numpy"], "epochs": 2})
    _, tasks, _ = prepare(swept, RunFolder.create("sweep", parent=tmp_path), log=False)
    orders = {task.context.point["data.train_on"]: task.context.order_hash for task in tasks}
    assert set(orders) == {"train", "all"} and orders["train"] != orders["all"]  # the point's own split, not the base's


def test_music_without_harmony_has_a_score_and_melodies_are_told_from_chords():
    spec = WindowSpec(num_timesteps=4, low=60, high=72)
    rng = np.random.default_rng(0)

    def windows(voices: int) -> np.ndarray:
        out = np.zeros((20, spec.num_timesteps, 2 * spec.n_pitches), np.uint8)
        for window in out:
            for row in window:
                for pitch in rng.choice(spec.n_pitches, voices, replace=False):
                    row[pitch] = row[spec.n_pitches + pitch] = 1  # play and articulate
        return out.reshape(len(out), -1)

    melody, other_melody, chords = windows(1), windows(1), windows(3)
    assert music_structure_js(melody, melody, spec) == 0.0  # no harmony on either side: they agree there
    alike, unlike = music_structure_js(other_melody, melody, spec), music_structure_js(chords, melody, spec)
    assert np.isfinite(alike) and np.isfinite(unlike) and unlike > alike + 0.15  # harmony where the music has none
    assert np.isnan(music_structure_js(np.zeros_like(melody), melody, spec))  # no notes at all: nothing to compare


@pytest.mark.bench
def test_a_run_in_which_every_task_diverged_is_a_failure(tmp_path):
    path = profile(tmp_path, '[data]\nsource = "synthetic"\n[model]\nlearning_rate = 1e9\n[run]\nepochs = 2\n'
                   'executor = "serial"\nimpls = ["numpy"]\n')  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "eval", "bench", "--profile", str(path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "error: every task diverged" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection: Connection refused; nothing"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/x/results.csv"),
            "/x/results.csv: No space left on device;",
        ),
        (OSError(errno.EROFS, "Read-only file system", "/x/a"), "the file system is read-only"),
        (PermissionError(errno.EACCES, "Permission denied", "/x/a"), "choose a folder you can write"),
    ],
)
def test_an_os_error_says_what_failed_where_and_what_to_do_for_its_cause(error, expected):
    line = os_error_line(error)
    assert line.startswith(f"{error.filename or 'connection'}: ") and expected in line and "unknown file" not in line
    assert ("free some space" in line) == (error.errno == errno.ENOSPC)


def command_line(process) -> str:
    """A child's command line, or "" for one that has exited meanwhile (a short-lived helper: zombie or reaped)."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess is a NoSuchProcess
        return ""


def running(process) -> bool:
    """Alive and not a zombie (a zombie has died; it only waits to be reaped)."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.bench
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's (prctl)")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_no_task_process_outlives_a_killed_client(tmp_path, signal_name):
    """A CI cancel (SIGTERM) or a kill of the client leaves no training process behind."""
    import signal
    import time

    import psutil

    path = profile(tmp_path, '[data]\nsource = "synthetic"\n[run]\nepochs = 400\nexecutor = "serial"\n'
                   'impls = ["numpy"]\n')  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    client = subprocess.Popen([sys.executable, "-m", "eval", "bench", "--profile", str(path)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline, workers = time.monotonic() + 120, []
        while not workers and time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.2)
            with_worker = psutil.Process(client.pid).children(recursive=True)
            workers = [p for p in with_worker if "eval.bench.worker" in command_line(p)]
        assert workers, "no task process started"
        client.send_signal(getattr(signal, signal_name))
        client.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=10)
        alive = [p for p in alive if running(p)]
        assert not alive, f"task processes outlived the client: {[p.pid for p in alive]}"
    finally:
        if client.poll() is None:
            client.kill()


def test_a_resume_may_move_the_run_to_another_executor_but_not_change_what_it_computes(tmp_path):
    from eval.bench.harness import resume_profile

    folder = RunFolder.create("moved", parent=tmp_path)
    gone = load_profile("quick").override(run={"executor": "dask:tcp://127.0.0.1:1"})  # a scheduler that is gone
    folder.write_json(folder.spec, gone.to_dict())
    moved = resume_profile(folder, {"run": {"executor": "local:2", "epochs": None}})
    assert moved.run.executor == "local:2" and moved.run.epochs == gone.run.epochs
    with pytest.raises(ConfigError, match="--epochs 99 contradicts the run's epochs 12"):
        resume_profile(folder, {"run": {"executor": "serial", "epochs": 99}})
    with pytest.raises(ConfigError, match="executor 'nonsense'"):
        resume_profile(folder, {"run": {"executor": "nonsense"}})


def test_the_verdict_table_names_the_confidence_of_the_interval_it_prints():
    import pandas as pd

    from reports.tables import verdict_table

    rows = [
        {
            "impl": impl,
            "seed": seed,
            "metric": "pl_per_unit",
            "value": value,
            "status": "ok",
            "epoch": None,
            "model": "rbm",
            "dataset": "bach",
        }  # a calibrated (model, dataset): the verdict judges it
        for impl, values in (("numpy", (-0.100, -0.101, -0.102)), ("jax", (-0.1001, -0.1012, -0.1019)))
        for seed, value in enumerate(values)
    ]
    cell = verdict_table(pd.DataFrame(rows), {}, 0.05).loc["pl_per_unit", "JAX"]
    assert ", 90 % [" in cell  # the TOST's (1 - 2 alpha) interval, not the 95 % of every other table
    assert ", 80 % [" in verdict_table(pd.DataFrame(rows), {}, 0.1).loc["pl_per_unit", "JAX"]


@pytest.mark.bench  # the executor is reached inside the bench: the refusal comes once the run has started
def test_a_tls_scheduler_without_certificates_is_one_line_not_a_traceback(tmp_path):
    pytest.importorskip("distributed")
    path = profile(tmp_path, '[data]\nsource = "synthetic"\n[run]\nepochs = 2\nimpls = ["numpy"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")} | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "eval", "bench", "--profile", str(path), "--executor",
                             "dask:tls://127.0.0.1:9"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "TLS needs this client's certificate" in result.stderr


def bench(
    tmp_path: Path, text: str, memory: int | None = None, **env: str
) -> tuple[subprocess.CompletedProcess, Path | None]:
    """``python -m eval bench`` on a tiny profile (its runs under ``tmp_path``); the result and its run folder.

    ``memory`` caps the command's address space (bytes), so that a test of memory cannot take the machine's."""
    runs = tmp_path / "runs"
    environment = {k: v for k, v in os.environ.items() if k not in ("RBM_BENCH_FAULT", "RBM_BENCH_NO_BENCH")}
    environment |= {"RBM_BENCH_RUNS": str(runs), "RBM_BENCH_HISTORY": str(tmp_path / "history"), **env}
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(profile(tmp_path, text))]
    cap = None if memory is None else lambda: resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
                          preexec_fn=cap)  # fmt: skip
    folders = list(runs.iterdir()) if runs.exists() else []
    return done, folders[0] if folders else None


TINY = (
    '[data]\nsource = "synthetic"\n[model]\nn_hidden = 12\n'
    '[run]\nimpls = ["numpy"]\nseeds = [0]\nepochs = 3\nexecutor = "serial"\ntiming_epochs = 2\n'
    "[eval]\nll_windows = 30\ngibbs_steps = 5\naudio_samples = 0\n"
)


@pytest.mark.bench
def test_a_short_ais_schedule_still_anneals_from_the_base_and_brackets_the_exact_answer(tmp_path):
    """20 betas once started at 0.5 (20 // 29 = 0 in [0, 0.5)): AIS came out pessimistic, every row 'ok'."""
    done, run = bench(tmp_path, TINY + "ais_betas = 20\nraise_betas = 20\nais_runs = 64\n")
    assert done.returncode == 0, done.stderr[-2000:]
    frame = RunFolder(run).results()
    final = frame[frame.epoch.isna() & (frame.impl == "numpy")].set_index("metric").value
    # AIS's log Z is low in expectation, so its NLL is optimistic (at or below the exact one), RAISE's pessimistic
    assert final["ais_nll_per_frame"] <= final["exact_nll_per_frame"] + 0.05
    assert final["raise_nll_per_frame"] >= final["exact_nll_per_frame"] - 0.05


@pytest.mark.bench
def test_a_failed_timing_task_fails_the_run(tmp_path):
    """A timing task killed with no retries left was only a row in results.csv and the run exited 0."""
    text = TINY.replace("timing_epochs = 2\n", "timing_epochs = 2\nretries = 0\n")
    done, run = bench(tmp_path, text, RBM_BENCH_FAULT="timing-numpy:kill")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "FAILED timing-numpy" in done.stderr and "Traceback" not in done.stderr
    frame = RunFolder(run).results()
    failed = frame[frame.status == "failed"]
    assert len(failed) == 1 and "killed" in failed.reason.item()  # the timing task's one row, with why
    assert (frame.drop(failed.index).status == "ok").all()  # the trained and scored rows are kept


@pytest.mark.bench
def test_a_run_of_the_same_model_beside_is_refused_not_merged(window_run, copy_run):
    """Two runs of one model beside each other were merged into one line (one run's seed 0 with the other's seed 1)."""
    run, other = copy_run(window_run, "run"), copy_run(window_run, "other")
    command = [sys.executable, "-m", "reports", "render", str(run), "--beside", str(other)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and "a run of the rbm model too" in done.stderr
    assert "reports compare" in done.stderr


def polyphonic(tmp_path: Path, content: dict) -> str:
    """A tiny profile on ``content`` pickled as a ``polyphonic:`` file (protocol 4 keeps shared lists shared)."""
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps(content, protocol=4))
    return f'[data]\nsource = "polyphonic:{path}"\n' + TINY.split("\n", 2)[2]


@pytest.mark.bench
def test_a_small_pickle_of_shared_references_is_refused_before_anything_is_built(tmp_path):
    """44 KB that names one piece 2,000 times (40 M frames): 80 s and 3.8 GB, then a traceback. Now counted first."""
    text = polyphonic(tmp_path, {"train": [[[60, 64, 67]] * 20_000] * 2_000, "valid": [], "test": []})
    assert (tmp_path / "shared.pkl").stat().st_size < 50_000
    started = time.monotonic()
    done, _ = bench(tmp_path, text, memory=2**31, RBM_BENCH_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert f"{tmp_path / 'shared.pkl'}: more than 4,000,000 frames" in line and "split it" in line
    assert time.monotonic() - started < 60  # the refusal comes before any array: seconds, mostly Python's start


@pytest.mark.bench
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the address-space cap is Linux's (RLIMIT_AS)")
def test_running_out_of_memory_while_building_a_dataset_is_one_line(tmp_path):
    """3.9 M frames (within the bounds: 2 GB of note states and their copy) under a 1 GB cap: one line, exit 2."""
    text = polyphonic(tmp_path, {"train": [[[]] * 50_000] * 78, "valid": [], "test": []})
    one_thread = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    cache = str(tmp_path / "cache")  # a machine's many cores would reserve address space for threads and arenas
    done, _ = bench(tmp_path, text, memory=2**30, RBM_BENCH_CACHE=cache, MALLOC_ARENA_MAX="2", **one_thread)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: polyphonic:{tmp_path / 'shared.pkl'}: out of memory while building its dataset")
