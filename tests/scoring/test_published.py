"""The polyphonic benchmarks scored as the literature scores them: every test frame, NLL per frame, beside the
published rows; the exact NLL of a small frame RBM lies inside the bracket on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datasets.sources import Piece
from datasets.windows import WindowSpec, make_dataset
from reports import published

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bl2012_polyphonic"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (the benchmarks' shared copies)")


def piece(rows: int, seed: int = 0) -> Piece:
    states = np.zeros((rows, 256), np.uint8)
    states[:, 21:109] = np.random.default_rng(seed).random((rows, 88)) < 0.3
    return Piece(f"p{seed}", states, "test")


def test_pad_last_keeps_every_frame_and_counts_only_real_ones():
    spec = WindowSpec(num_timesteps=4, stride=4, low=21, high=109, articulation=False, pad_last=True)
    dataset = make_dataset([piece(10)], spec)
    assert dataset.frames.tolist() == [4, 4, 2]
    last = spec.to_matrix(dataset.windows[-1])
    assert (last[2:] == 0).all() and (last[:2] == piece(10).states[8:10, 21:109]).all()
    dropped = make_dataset([piece(10)], WindowSpec(num_timesteps=4, stride=4, low=21, high=109, articulation=False))
    assert dropped.frames.tolist() == [4, 4] and len(dropped.windows) == 2
    exact = make_dataset([piece(8)], spec)  # a piece that windows evenly gets no padded window
    assert exact.frames.tolist() == [4, 4]


def test_the_option_left_off_hashes_as_before():
    """Runs, baselines and caches made before ``pad_last`` existed keep their dataset hash."""
    import hashlib
    from dataclasses import asdict

    dataset = make_dataset([piece(30)], WindowSpec(low=21, high=109, articulation=False))
    digest = hashlib.sha256()
    for array in (dataset.windows, dataset.split, dataset.piece):
        digest.update(np.ascontiguousarray(array).tobytes())
    spec = asdict(dataset.spec)
    del spec["pad_last"], spec["train_stride"]
    digest.update(json.dumps(spec, sort_keys=True).encode())
    assert dataset.hash == digest.hexdigest()
    padded = make_dataset([piece(30)], WindowSpec(low=21, high=109, articulation=False, pad_last=True))
    overlapping = make_dataset([piece(30)], WindowSpec(low=21, high=109, articulation=False, train_stride=1))
    assert len({padded.hash, overlapping.hash, dataset.hash}) == 3


def test_training_windows_may_overlap_while_held_out_ones_stay_disjoint():
    spec = WindowSpec(num_timesteps=4, stride=4, low=21, high=109, articulation=False, pad_last=True, train_stride=1)
    train, test = Piece("a", piece(10).states, "train"), Piece("b", piece(10, 1).states, "test")
    dataset = make_dataset([train, test], spec)
    assert len(dataset.indices("train")) == 7 and dataset.frames[dataset.indices("test")].tolist() == [4, 4, 2]


def test_every_published_row_names_its_source_table_and_page():
    rows = json.loads(published.PUBLISHED.read_text())["results"]
    assert {r["dataset"] for r in rows} == set(published.TITLES)
    for row in rows:
        assert row["nll_per_frame"] > 0 and "Table" in row["where"] and "p." in row["where"] and row["source"]
    jsb = {r["model"]: r["nll_per_frame"] for r in published.published("jsb")}
    assert jsb["RNN"] == 8.71 and jsb["TCN"] == 8.1 and jsb["RBM"] == 7.43 and jsb["RNN-RBM"] == 6.27
    assert [r["nll_per_frame"] for r in published.published("nottingham")] == sorted(
        r["nll_per_frame"] for r in published.published("nottingham")
    )
    assert published.benchmark_of("jsb:/x/JSB_Chorales.mat") == "jsb" and published.benchmark_of("bach") is None


def test_the_nade_rows_and_both_readings_of_the_disputed_jsb_figure_are_shown_with_their_sources():
    nade = {r["dataset"]: r["nll_per_frame"] for kind in published.TITLES for r in published.published(kind)
            if r["model"] == "NADE"}  # fmt: skip
    assert nade == {"jsb": 7.19, "nottingham": 5.48, "musedata": 10.06, "pianomidi": 10.28}
    rnn_nade = {kind: [r for r in published.published(kind) if r["model"].startswith("RNN-NADE")]
                for kind in published.TITLES}  # fmt: skip
    assert [r["nll_per_frame"] for r in rnn_nade["jsb"]] == [5.19, 5.19, 5.56]  # disputed: both, best first
    *quoted, printed = rnn_nade["jsb"]
    assert [r["source"].split(",")[0] for r in quoted] == ["Fraccaro", "Krishnan"]
    assert all("disputed" in r["model"] for r in quoted)
    assert printed["source"].startswith("Boulanger-Lewandowski") and printed["where"] == "Table 1, p. 7"
    assert {k: [r["nll_per_frame"] for r in v] for k, v in rnn_nade.items() if k != "jsb"} == {
        "nottingham": [2.31], "musedata": [5.6], "pianomidi": [7.05]}  # fmt: skip


def test_a_model_with_an_exact_likelihood_stands_beside_the_papers_without_a_bracket():
    import pandas as pd

    rows = [{"impl": "numpy", "seed": seed, "metric": "exact_nll_per_frame", "value": value, "status": "ok",
             "epoch": None} for seed, value in ((0, 5.4), (1, 5.5))]  # fmt: skip
    table = published.published_table(pd.DataFrame(rows), "jsb", "RNN-NADE, 150 hidden, 100 recurrent")
    ours = table.loc["RNN-NADE, 150 hidden, 100 recurrent — NumPy (reference) (this run)"]
    assert ours["NLL per frame"].startswith("5.450 ±") and "no bracket needed" in ours["source"]
    assert "AIS" not in ours["source"]
    order = list(table.index)
    assert order.index("RNN-NADE (as quoted; disputed)") < order.index(ours.name) < order.index("RNN-NADE (HF)")


def bracket_rows(widths: dict[int, float], exact: dict[int, float] | None = None) -> list[dict]:
    """One implementation's rows: AIS 6.3 per seed, RAISE that plus the seed's width, and any exact values."""
    rows = []
    for seed, width in widths.items():
        values = {"ais_nll_per_frame": 6.3, "raise_nll_per_frame": 6.3 + width, "bracket_width_per_frame": width}
        values |= {"exact_nll_per_frame": exact[seed]} if exact else {}
        rows += [{"impl": "numpy", "seed": seed, "metric": m, "value": v, "status": "ok", "epoch": None}
                 for m, v in values.items()]  # fmt: skip
    return rows


def test_only_a_certified_likelihood_stands_beside_the_published_ones():
    """A bracket wider than 0.1 nats per frame on any seed prints "not certified" where the number would stand
    (the Nottingham window RBM's 4.29 stood beside the papers with a bracket 0.25 wide); narrow brackets and exact
    values print their number."""
    import pandas as pd

    name = "RNN-RBM — NumPy (reference) (this run)"

    def shown(rows):
        return published.published_table(pd.DataFrame(rows), "jsb", "RNN-RBM").loc[name]

    narrow = shown(bracket_rows({0: 0.02, 1: 0.1}))
    assert narrow["NLL per frame"] == "6.300 ± 0.000" and "width" in narrow["source"]
    wide = shown(bracket_rows({0: 0.02, 1: 0.25}))  # one seed's bracket is enough to withhold the mean
    assert wide["NLL per frame"].startswith("not certified") and "6.3" not in wide["NLL per frame"]
    assert "RAISE" in wide["source"]  # the evidence stays in view
    assert shown(bracket_rows({0: -0.3, 1: 0.01}))["NLL per frame"].startswith("not certified")  # inverted
    no_raise = [r for r in bracket_rows({0: 0.01}) if r["metric"] == "ais_nll_per_frame"]
    assert shown(no_raise)["NLL per frame"].startswith("not certified")  # no bracket, no certificate
    exact = shown(bracket_rows({0: 0.5, 1: 0.5}, exact={0: 6.4, 1: 6.6}))  # enumerated: the exact value stands
    assert exact["NLL per frame"].startswith("6.500 ±") and "exact" in exact["source"]
    order = list(published.published_table(pd.DataFrame(bracket_rows({0: 0.3})), "jsb", "RNN-RBM").index)
    assert order[-1] == name  # not certified: after every number


@needs_shared
def test_every_test_frame_of_jsb_is_scored_once():
    from scipy.io import loadmat

    from datasets.artifact import build

    spec = WindowSpec(num_timesteps=4, stride=4, low=21, high=109, articulation=False, pad_last=True)
    dataset = build(f"jsb:{SHARED / 'JSB_Chorales.mat'}", spec, log=False)
    cells = loadmat(SHARED / "JSB_Chorales.mat")["testdata"][0]
    test = dataset.indices("test")
    assert int(dataset.frames[test].sum()) == sum(len(roll) for roll in cells)  # every frame, none twice
    assert len(test) == sum(-(-len(roll) // 4) for roll in cells)  # a partial window per uneven piece


@needs_shared
@pytest.mark.recipe
def test_the_exact_nll_of_a_20_hidden_frame_rbm_on_jsb_lies_inside_the_bracket():
    """The oracle on real data: enumerate 2^20 hidden states; the bracket over every test frame must contain it."""
    from datasets.artifact import build
    from datasets.windows import batch_order
    from eval.config import load_profile
    from eval.scoring.ais import ais_bases, likelihood_bracket, schedule
    from eval.scoring.likelihood import exact_log_partition, free_energy
    from impls import init_params, load

    profile = load_profile("jsb")
    spec = WindowSpec(num_timesteps=1, stride=1, low=21, high=109, articulation=False, pad_last=True)
    dataset = build(f"jsb:{SHARED / 'JSB_Chorales.mat'}", spec, log=False)
    from dataclasses import replace

    config = replace(profile.model, n_visible=spec.n_visible, n_hidden=20)
    seeds = np.random.SeedSequence(0).spawn(4)
    model = load("numpy")(config, init_params(config, seeds[0]), int(seeds[2].generate_state(1)[0]))
    model.set_data(dataset.windows)
    for epoch in batch_order(dataset, seeds[1], config.batch_size, 10):
        model.train_epoch(epoch, config.learning_rate)
    params = model.params().astype(np.float64)
    test = dataset.subset("test")
    evaluation = profile.eval
    bracket = likelihood_bracket(
        params, test, ais_bases(dataset.subset("train")), schedule(evaluation.ais_betas), evaluation.ais_runs,
        schedule(evaluation.raise_betas), np.random.default_rng(1), sweep_every=evaluation.ais_sweep_every,
        raise_windows=evaluation.raise_windows,
    )  # fmt: skip
    exact = float((free_energy(params, test)).mean() + exact_log_partition(params))  # NLL per frame
    ais_nll, raise_nll = -bracket.ais, -bracket.raise_
    error = 3 * max(bracket.ais_stderr, bracket.raise_stderr or 0.0)
    assert ais_nll - error <= exact <= raise_nll + error, (ais_nll, exact, raise_nll, error)
    assert raise_nll - ais_nll <= 0.1 and bracket.effective_runs >= 0.1 * evaluation.ais_runs


def test_raise_on_a_subset_extended_by_exact_free_energies_agrees_with_raise_on_every_window():
    """The control variate: RAISE on 300 of 1,500 windows, extended to all, lands within its error of the full."""
    from eval.scoring.ais import likelihood_bracket, schedule
    from impls import RBMParams

    rng = np.random.default_rng(0)
    params = RBMParams(rng.normal(0, 0.3, (30, 12)), rng.normal(-1, 0.5, 30), rng.normal(0, 0.5, 12))
    windows = (rng.random((1500, 30)) < 0.3).astype(np.uint8)
    args = (params, windows, np.zeros(30), schedule(300), 100, schedule(300))
    full = likelihood_bracket(*args, np.random.default_rng(1))
    part = likelihood_bracket(*args, np.random.default_rng(1), raise_windows=300)
    assert part.ais == full.ais  # AIS is untouched
    assert abs(part.raise_ - full.raise_) < 3 * part.raise_stderr + 1e-3, (part.raise_, full.raise_, part.raise_stderr)
    assert part.raise_stderr > full.raise_stderr  # the subset's sampling error is counted
    from eval.scoring.likelihood import exact_log_partition, free_energy

    exact = float(-free_energy(params, windows).mean() - exact_log_partition(params))
    assert part.raise_ - 3 * part.raise_stderr <= exact + 1e-3 and exact <= part.ais + 3 * part.ais_stderr


@needs_shared
@pytest.mark.recipe
def test_the_jsb_profile_runs_and_its_report_leads_with_the_published_table(tmp_path):
    """The jsb profile end to end (short): rows in the published unit, the report's first table beside the papers."""
    import os
    import subprocess
    import sys

    import pandas as pd

    root = Path(__file__).resolve().parents[2]
    profile = tmp_path / "jsb-short.toml"
    profile.write_text(
        'extends = "jsb"\n[run]\nepochs = 2\nseeds = [0]\nimpls = ["numpy"]\ntiming_epochs = 2\n'
        "[eval]\nais_betas = 200\nais_runs = 50\nraise_betas = 200\nraise_windows = 50\ngibbs_steps = 10\n"
    )
    command = [sys.executable, "-m", "reports", "bench", "--profile", str(profile), "--dataset",
               f"jsb:{SHARED / 'JSB_Chorales.mat'}"]  # fmt: skip
    environment = {**os.environ, "RBM_BENCH_RUNS": str(tmp_path / "runs")}
    done = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = next((tmp_path / "runs").iterdir())
    frame = pd.read_csv(run / "results.csv")
    values = {m: frame[frame.metric == m].value.iloc[0] for m in ("ais_nll_per_frame", "raise_nll_per_frame")}
    assert 0 < values["ais_nll_per_frame"] <= values["raise_nll_per_frame"] + 0.5 < 61  # below coin flips (88 ln 2)
    report = (run / "report.md").read_text()
    first = report.index("## ")
    assert report[first:].startswith("## Beside the published results: JSB Chorales")
    table = report[first : report.index("## ", first + 3)]
    assert "RNN-RBM" in table and "Table 1, p. 7" in table and "(this run)" in table
