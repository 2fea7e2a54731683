"""Execution modes (`impls.common.Mode`): every mode of every framework computes the reference's update, a mode
that keeps the framework's random stream trains bit for bit (or within float32) as the default does, and the
ablation's table picks the fastest *equivalent* mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval.__main__ import window_difference
from eval.timing.ablation import TOLERANCE, ablation_table, verdicts
from impls import RBMConfig, Unavailable, available, init_params, load
from impls.rbm.interface import CDNoise
from tests.impls.test_impls import F32, REFERENCE, random_batch, small, trained_params

MODES = []
for name in available():
    try:
        MODES += [(name, mode.name) for mode in load(name).MODES if "cpu" in mode.devices]
    except Unavailable:
        continue
RECIPES = [  # one recipe with every option, so a compiling mode compiles once (torch.compile: ~20 s a shape)
    {"momentum": 0.9, "weight_decay": 0.001, "persistent": True, "statistics": "probabilities",
     "chain_start": "fresh", "cd_steps": 2},
]  # fmt: skip


@pytest.mark.parametrize(("impl", "mode"), MODES, ids=[f"{i}-{m}" for i, m in MODES])
def test_every_mode_computes_the_references_updates_from_the_same_noise(impl, mode):
    for recipe in RECIPES:
        config = small(**recipe)
        params = trained_params(config)
        rng = np.random.default_rng(3)
        ours, reference = load(impl).in_mode(mode)(config, params, 0), load(REFERENCE)(config, params, 0)
        assert ours.mode == mode
        for seed, rate in enumerate([0.1, 0.05, 0.025]):
            v, noise = random_batch(config, seed), CDNoise.draw(rng, config, config.batch_size)
            ours.cd_update(v, noise, rate)
            reference.cd_update(v, noise, rate)
        for got, want in zip(ours.params().arrays(), reference.params().arrays()):
            np.testing.assert_allclose(got, want, **F32, err_msg=f"{impl} {mode} {recipe}")


def numpy_trained(mode: str, config: RBMConfig, data: np.ndarray, epochs: list) -> object:
    """NumPy's parameters after ``epochs`` in ``mode``, from the same initial weights and seed."""
    model = load("numpy").in_mode(mode)(config, init_params(config, 0), 7)
    model.set_data(data)
    for epoch in epochs:
        model.train_epoch(epoch)
    return model.params()


def test_numpys_fused_epochs_train_as_the_specification_within_rounding():
    """NumPy's ``fused`` mode sums in another order (the biases inside the products, the gradient one product of
    the stacked phases), so it trains to the specification's parameters within float32 rounding, float64's in
    float64; its epochs draw the batch and the noise into kept arrays, which must hold the very same numbers (ragged
    batches change their shape)."""
    rng = np.random.default_rng(0)
    recipes = [*RECIPES, {"statistics": "samples", "chain_start": "fresh", "cd_steps": 3},
               {"momentum": 0.0, "weight_decay": 0.0},
               {"precision": "float64", "persistent": True, "momentum": 0.5}]  # fmt: skip
    for recipe in recipes:
        config = small(**recipe)
        data = (rng.random((60, config.n_visible)) < 0.2).astype(np.uint8)
        epochs = [np.array_split(rng.permutation(60), [16, 32, 48, 55]) for _ in range(2)]  # 16, 16, 16, 7, 5 rows
        trained = [numpy_trained(mode, config, data, epochs) for mode in ("plain", "fused")]
        tolerance = {"rtol": 1e-10, "atol": 1e-10} if recipe.get("precision") == "float64" else F32
        for got, want in zip(trained[1].arrays(), trained[0].arrays()):
            np.testing.assert_allclose(got, want, **tolerance, err_msg=f"fused {recipe}")
        assert trained[0].hash != init_params(config, 0).hash


def test_the_numpy_buffers_are_the_specification_bit_for_bit():
    """Preallocated buffers change where results are written, never a bit of them (any recipe, float32 and 64)."""
    rng = np.random.default_rng(0)
    for recipe in [*RECIPES, {"chain_start": "fresh"}, {"precision": "float64", "persistent": True}]:
        config = small(**recipe)
        data = (rng.random((64, config.n_visible)) < 0.2).astype(np.uint8)
        epochs = [list(rng.permutation(64).reshape(4, 16)) for _ in range(2)]
        trained = [numpy_trained(mode, config, data, epochs) for mode in ("plain", "buffers")]
        assert trained[0].hash == trained[1].hash != init_params(config, 0).hash


SAME_STREAM = [(i, m) for i, m in MODES if (i, m) not in {("tf", "xla")}]  # XLA draws with its own Philox


@pytest.mark.parametrize(("impl", "mode"), SAME_STREAM, ids=[f"{i}-{m}" for i, m in SAME_STREAM])
def test_a_mode_on_the_frameworks_random_stream_trains_as_the_default_does(impl, mode):
    config = small(learning_rate=0.05)
    rng = np.random.default_rng(1)
    data = (rng.random((64, config.n_visible)) < 0.2).astype(np.uint8)
    epoch = list(rng.permutation(64).reshape(4, 16))
    trained = []
    for cls in (load(impl), load(impl).in_mode(mode)):
        model = cls(config, init_params(config, 0), 11)
        model.set_data(data)
        model.train_epoch(epoch)
        trained.append(model.params())
    for got, want in zip(trained[1].arrays(), trained[0].arrays()):
        np.testing.assert_allclose(got, want, **F32)


def test_jax_draws_a_few_updates_noise_at_once_with_the_numbers_of_one_update_at_a_time(monkeypatch):
    """The ``scan`` mode draws a few updates' noise in one call (`draws_ahead`: as many as a byte budget holds), the
    epoch's remainder in one more: each update's key is still its own, so the parameters are the ``update`` mode's
    (drawn inside each update) bit for bit, with PCD's chain and a fresh chain start too."""
    pytest.importorskip("jax")
    from impls.rbm import jax as jax_rbm

    default = RBMConfig()
    assert jax_rbm.draws_ahead(default, 100, 100, np.float32) == 4  # 0.98 MB an update: four in 4 MiB
    assert jax_rbm.draws_ahead(default, 1000, 1000, np.float32) == 1  # 9.8 MB: one at a time, never none
    rng = np.random.default_rng(2)
    for recipe in [{}, RECIPES[0]]:
        config = small(**recipe)
        one_update = jax_rbm.noise_bytes(config, 16, 16, np.float32)
        monkeypatch.setattr(jax_rbm, "DRAW_GROUP_BYTES", 4 * one_update + 1)  # four at a time
        assert jax_rbm.draws_ahead(config, 16, 16, np.float32) == 4
        data = (rng.random((112, config.n_visible)) < 0.2).astype(np.uint8)
        epoch = list(rng.permutation(112).reshape(7, 16))  # one group of four and a remainder of three
        trained = []
        for mode in ("scan", "update"):
            model = load("jax").in_mode(mode)(config, init_params(config, 0), 4)
            model.set_data(data)
            model.train_epoch(epoch)
            trained.append(model.params())
        assert trained[0].hash == trained[1].hash, recipe


def test_an_unknown_mode_or_one_of_another_device_is_refused_naming_the_modes():
    numpy = load("numpy")
    with pytest.raises(ValueError, match="no mode 'fast'; its modes: fused, plain, buffers"):
        numpy.in_mode("fast")
    assert numpy.in_mode(None) is numpy and numpy.in_mode("default") is numpy
    assert numpy(RBMConfig(), init_params(RBMConfig(), 0), 0).mode == "fused"  # the first mode is the default
    if ("torch", "eager") in MODES:
        with pytest.raises(ValueError, match="no mode 'cuda-graph' on cpu"):
            load("torch").in_mode("cuda-graph")(RBMConfig(), init_params(RBMConfig(), 0), 0)


def test_the_equivalence_check_sees_a_wrong_update(monkeypatch):
    import impls

    assert window_difference("cpu", "numpy", "buffers") == 0.0
    plain = load("numpy").in_mode("plain")

    class Off(plain):  # a mode whose update is off by 1 % of its step: the check must catch it
        def cd_update(self, v, noise, learning_rate=None):
            super().cd_update(v, noise, 1.01 * self.rate(learning_rate))

    monkeypatch.setattr(impls, "load", lambda name, model="rbm": Off if name == "torch" else load(name, model))
    assert window_difference("cpu", "torch", "default") > TOLERANCE  # "torch" stands for any framework here


def test_the_ablation_picks_the_fastest_equivalent_mode_and_says_so():
    rows = [
        {"impl": "torch", "mode": "eager", "threads": 1, "windows_per_s": 100.0, "five_products_ms": 2.0,
         "draw_ms": 1.0, "max_difference": 1e-7},
        {"impl": "torch", "mode": "compile", "threads": 1, "windows_per_s": 150.0, "five_products_ms": 2.0,
         "draw_ms": 1.0, "max_difference": 2e-7},
        {"impl": "tf", "mode": "function", "threads": 1, "windows_per_s": 80.0, "five_products_ms": 1.0,
         "draw_ms": 0.5, "max_difference": 1e-7},
        {"impl": "tf", "mode": "xla", "threads": 1, "windows_per_s": 400.0, "five_products_ms": 1.0,
         "draw_ms": 0.5, "max_difference": 0.01},  # fast and wrong: never the winner
    ]  # fmt: skip
    table = ablation_table(rows).set_index(["impl", "mode"])
    assert table.loc[("torch", "compile"), "fastest"] and not table.loc[("torch", "eager"), "fastest"]
    assert table.loc[("tf", "function"), "fastest"] and not table.loc[("tf", "xla"), "equivalent"]
    assert table.loc[("torch", "compile"), "speedup_over_default"] == pytest.approx(1.5)
    # the roofline is the fastest products of the run (1 ms for 100 windows): 100,000 windows/s
    assert table.loc[("torch", "eager"), "ratio_to_roofline"] == pytest.approx(100 / 100_000)
    lines = verdicts(ablation_table(rows))
    assert "torch at 1 thread(s): compile wins (150 windows/s, 1.50x the default; not the default (eager))" in lines[0]
    assert lines[1].startswith("tf at 1 thread(s): function wins") and "the default" in lines[1]


def test_the_ablation_keeps_each_modes_median_over_interleaved_rounds_and_its_spread():
    def row(mode: str, speed: float, round_: int) -> dict:
        return {"impl": "numpy", "mode": mode, "threads": 1, "round": round_, "windows_per_s": speed,
                "five_products_ms": 1.0, "draw_ms": 1.0, "max_difference": 0.0}  # fmt: skip

    # one slow minute hit plain's second round: its median is unmoved, and buffers' 4 % lead is inside the spread
    speeds = {"plain": [100.0, 40.0, 100.0], "buffers": [104.0, 104.0, 103.0]}
    rows = [row(mode, speed, r) for r in range(3) for mode, values in speeds.items() for speed in values[r : r + 1]]
    table = ablation_table(rows).set_index("mode")
    assert table.loc["plain", "windows_per_s"] == 100.0 and table.loc["plain", "rounds"] == 3
    assert table.loc["plain", "spread"] == pytest.approx(0.6) and table.loc["buffers", "spread"] == pytest.approx(
        0.01 / 1.04
    )
    assert table.loc["buffers", "fastest"]
    (line,) = verdicts(ablation_table(rows))
    assert "buffers wins" in line and "within the rounds' spread of 60%: no reason to change it" in line
    clear = [row(mode, speed, r) for r in range(3) for mode, speed in (("plain", 100.0), ("buffers", 150.0))]
    assert "no reason" not in verdicts(ablation_table(clear))[0]


def test_a_mode_that_failed_to_run_is_shown_with_its_reason_and_never_wins():
    rows = [
        {"impl": "numpy", "mode": "plain", "threads": 2, "windows_per_s": 10.0, "five_products_ms": 1.0,
         "draw_ms": 1.0, "max_difference": 0.0},
        {"impl": "numpy", "mode": "buffers", "threads": 2, "error": "timed out after 900 s"},
    ]  # fmt: skip
    table = ablation_table(rows)
    assert list(table.fastest) == [True, False] and table.error.iloc[1] == "timed out after 900 s"
    assert isinstance(table, pd.DataFrame)


def test_each_modes_check_runs_once_outside_the_timed_processes_and_joins_every_round(monkeypatch):
    from eval.timing import ablation

    monkeypatch.setattr(ablation, "modes_of", lambda impl, device: ("plain", "buffers"))
    timed = lambda impl, mode, n, device: {"impl": impl, "mode": mode, "threads": n, "windows_per_s": 1.0}
    monkeypatch.setattr(ablation, "run_mode", timed)
    checked = []

    def difference(impl, mode):
        checked.append((impl, mode))
        return 0.5 if mode == "buffers" else 0.0

    rows = ablation.run_ablation(["numpy"], [1, 2], repeats=3, difference=difference)
    assert sorted(checked) == [("numpy", "buffers"), ("numpy", "plain")]  # once per mode, not per round or thread
    assert len(rows) == 12 and {r["max_difference"] for r in rows if r["mode"] == "buffers"} == {0.5}
