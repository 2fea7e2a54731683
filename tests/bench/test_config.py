"""Profiles: every shipped profile loads, `extends` merges, and every mistake is one line before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import runs_dir
from eval.config import PROFILES, ConfigError, load_profile, sweep_points

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES.glob("*.toml")))
def test_every_shipped_profile_loads(name):
    profile = load_profile(name)
    assert profile.name == name and profile.run.impls and profile.run.seeds


def test_extends_lists_only_what_differs():
    default, pcd, cd1 = load_profile("default"), load_profile("pcd"), load_profile("cd1")
    assert pcd.model.persistent and not cd1.model.persistent
    assert pcd.run.epochs == 60 and cd1.run.epochs == 200 and default.run.epochs == 150
    assert cd1.data == default.data and pcd.eval == cd1.eval
    assert (PROFILES / "pcd.toml").read_text().count("=") <= 4  # extends + three values


def write(tmp_path: Path, text: str, name: str = "mine.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('extends = "default"\n[run]\nepochz = 3', "unknown key [run] epochz; did you mean epochs?"),
        ('extends = "default"\n[data]\nsorce = "bach"', "unknown key [data] sorce; did you mean source?"),
        ('extends = "default"\n[evl]\ncurve_every = 1', "unknown section [evl]; did you mean eval?"),
        ('extends = "default"\n[model]\nhidden = 5', "unknown key [model] hidden; did you mean n_hidden?"),
        ('extends = "default"\n[model]\nn_hidden = "fifty"', "[model] n_hidden is 'fifty' (a str); it must be a whole"),
        ('extends = "default"\n[run]\nepochs = 2.5', "[run] epochs is 2.5 (a float); it must be a whole number"),
        ('extends = "default"\n[run]\nseeds = []', "[run] seeds is [] (a list); give a non-empty list"),
        ('extends = "default"\n[eval]\ncurve_every = 0', "[eval] curve_every is 0; it must be >= 1"),
        (
            'extends = "default"\n[model]\nlearning_rate = "fast"',
            "[model] learning_rate is 'fast' (a str); it must be a",
        ),
        ('extends = "default"\n[model]\nlearning_rate = 0', "[model] learning_rate is 0; it must be > 0"),
        ('extends = "default"\n[run]\ndevice = "tpu"', "[run] device is 'tpu' (a str); use one of cpu, cuda"),
        ('extends = "default"\n[run]\ntimeout_s = -1', "[run] timeout_s is -1; it must be > 0"),
        ('extends = "default"\n[eval]\nais_schedule = "bogus"', "[eval] ais_schedule is 'bogus' (a str); use one of"),
        ('extends = "default"\n[model]\nbatch_size = 0', "[model] batch_size is 0; it must be >= 1"),
        (
            'extends = "default"\n[run]\nimpls = ["numpy", "pytorch"]',
            "[run] impls names 'pytorch'; did you mean torch?",
        ),
        ('extends = "default"\n[run]\nseeds = [0, 0]', "with repeats"),
        ('extends = "default"\n[run]\nexecutor = "threads"', "executor 'threads'; use serial, local"),
        ('extends = "default"\n[data]\nsource = "wav:x"', "[data] source wav:x: unknown source"),
        ('extends = "default"\n[data]\nlow = 90\nhigh = 80', "low 90 must be below high 80"),
        ('extends = "nosuch"', "nosuch: no such profile"),
        ("[run\nepochs = 1", "not valid TOML"),
        ('extends = "default"\n[sweep]\n"model.n_hiden" = [1, 2]', "[sweep] unknown key model.n_hiden; did you mean"),
        ('extends = "default"\n[sweep]\n"model.n_hidden" = []', "[sweep] model.n_hidden is [] (a list); give a non-"),
        ('extends = "default"\n[sweep]\n"model.n_hidden" = [10, -1]', "n_hidden is -1; it must be >= 1"),
    ],
)
def test_bad_profiles_are_one_line_errors_naming_key_and_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    if "no such profile" not in message:
        assert "mine.toml" in str(caught.value)


def test_extends_cycle_is_refused(tmp_path):
    write(tmp_path, 'extends = "b.toml"', "a.toml")
    write(tmp_path, 'extends = "a.toml"', "b.toml")
    with pytest.raises(ConfigError, match="extends itself"):
        load_profile(str(tmp_path / "a.toml"))


def test_overrides_are_validated_like_the_file():
    profile = load_profile("quick")
    assert profile.override(run={"epochs": 3, "impls": ["numpy"]}).run.epochs == 3
    with pytest.raises(ConfigError, match=r"\[run\] epochs is 0; it must be >= 1"):
        profile.override(run={"epochs": 0})
    with pytest.raises(ConfigError, match="impls names 'nosuch'"):
        profile.override(run={"impls": ["nosuch"]})


def test_sweep_points_expand_in_a_stable_order(tmp_path):
    path = write(tmp_path, 'extends = "quick"\n[sweep]\n"model.n_hidden" = [10, 20]\n"model.cd_steps" = [1, 2]')
    points = sweep_points(load_profile(path))
    assert points == [
        {"model.n_hidden": 10, "model.cd_steps": 1},
        {"model.n_hidden": 10, "model.cd_steps": 2},
        {"model.n_hidden": 20, "model.cd_steps": 1},
        {"model.n_hidden": 20, "model.cd_steps": 2},
    ]
    assert load_profile(path).at(points[3]).model.n_hidden == 20


def test_bench_refuses_a_bad_profile_before_creating_a_folder(tmp_path):
    path = write(tmp_path, 'extends = "quick"\n[run]\nepochz = 3')
    runs_before = set(runs_dir().glob("*"))
    result = subprocess.run([sys.executable, "-m", "reports", "bench", "--profile", path], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "did you mean epochs?" in result.stderr
    runs_after = set(runs_dir().glob("*"))
    assert runs_after == runs_before


def test_the_rnn_nade_profiles_extend_their_datasets_recipes_and_stand_beside_runs_on_the_same_music():
    """Each RNN-NADE profile reads frames of its benchmark and names the committed runs of the other models on that
    music; a child on other music undoes its parent's ``beside`` with ``beside = []`` (an inherited one would be
    refused at render: another dataset)."""
    expected = {
        "rnn_nade_jsb": ("jsb", ("reports/examples/jsb", "reports/examples/rnn_jsb")),
        "nade_jsb": ("jsb", ("reports/examples/jsb", "reports/examples/rnn_jsb")),
        "rnn_nade_nottingham": ("nottingham", ("reports/examples/nottingham", "reports/examples/rnn_nottingham")),
        "rnn_nade_musedata": ("musedata", None),
        "rnn_nade_pianomidi": ("pianomidi", None),
    }
    for name, (source, beside) in expected.items():
        profile = load_profile(name)
        assert profile.model.kind == "rnn_nade" and profile.data.source == source and profile.run.beside == beside
        assert profile.data.num_timesteps == profile.data.stride == 1 and profile.run.patience > 0
        assert 'README, "The RNN-NADE"' in (PROFILES / f"{name}.toml").read_text(), "each says where its recipe is why"
    assert load_profile("nade_jsb").model.n_recurrent == 0 < load_profile("rnn_nade_jsb").model.n_recurrent


def test_command_line_options_set_their_profile_keys_and_an_absent_flag_keeps_the_profiles():
    import argparse

    from eval.bench.cli import add_bench_arguments, overrides

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    chosen = load_profile("rnn_rbm_modes")  # its own [run] ablation = true
    assert chosen.override(**overrides(parser.parse_args([]))).run.ablation is True
    quick = load_profile("quick").override(**overrides(parser.parse_args(["--ablation", "--modes", "torch=compile"])))
    assert quick.run.ablation is True and quick.run.modes == {"torch": "compile"}
    assert "run.ablation" in quick.chosen
