"""Early stopping on the validation curve, one rule for every model (`eval.models.base.BestEpoch`, ``[run]
patience``): the rule itself, and every catalogued model's training loop stopping where the rule says.

The end-to-end case (a curve that worsens, the best epoch's weights scored and saved) is in
``tests/bench/test_rnn_nade_bench.py``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import NADE_PROFILE, RNN_PROFILE, WINDOW_PROFILE, profile_toml

import impls
from core.errors import ConfigError
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.bench.worker import load_inputs
from eval.config import load_profile
from eval.contract.rows import Recorder
from eval.models import plugin
from eval.models.base import BestEpoch
from impls import RNNNADEConfig, RNNNADEParams, init_rnn_nade_params
from impls.rnn_nade.numpy import NumpyRNNNADE

PROFILES = {"rbm": WINDOW_PROFILE, "rnn_rbm": RNN_PROFILE, "rnn_nade": NADE_PROFILE}


def params(value: float) -> RNNNADEParams:
    """A small RNN-NADE's parameters, every entry ``value`` (so an epoch's parameters say which epoch they are)."""
    config = RNNNADEConfig(n_visible=4, n_hidden=3, n_recurrent=2)
    return RNNNADEParams(*(np.full(a.shape, float(value)) for a in init_rnn_nade_params(config, 0).arrays()))


def test_off_by_default_it_never_stops_keeps_nothing_and_records_nothing():
    best = BestEpoch(0, "none")  # off: even a curve with no direction is fine
    assert not any(best.check(epoch, value, params(0.1)) for epoch, value in enumerate([3.0, 9.0, 9.0, 9.0], 1))
    model = object()
    assert best.restore(model, 0, np.zeros((1, 4))) is model
    record = Recorder(SimpleNamespace(context=SimpleNamespace(columns=lambda: {}), attempt=1))
    best.record(record)
    assert record.rows == []


@pytest.mark.parametrize(("better", "curve", "stop", "kept"), [
    ("lower", [5.0, 4.0, 4.5, 4.2, 3.9], 4, 2),  # two points without improvement after epoch 2: stop at 4
    ("higher", [-5.0, -4.0, -4.5, -3.9, -4.1, -4.2], 6, 4),  # improvement at 4 resets the count
    ("lower", [5.0, math.nan, math.nan], 3, 1),  # NaN never improves
])  # fmt: skip
def test_patience_counts_points_without_improvement_and_keeps_the_best(better, curve, stop, kept):
    best = BestEpoch(2, better)
    stopped = next(epoch for epoch, value in enumerate(curve, 1) if best.check(epoch, value, params(epoch)))
    assert stopped == stop and best.epoch == kept and best.last == stop and best.best == curve[kept - 1]
    assert best.params.W[0, 0] == kept  # that epoch's parameters


def test_the_best_epochs_model_is_a_fresh_one_of_the_same_class_from_its_weights():
    config = RNNNADEConfig(n_visible=4, n_hidden=3, n_recurrent=2, precision="float64")
    model = NumpyRNNNADE(config, params(0.0), 0)
    best = BestEpoch(2, "lower")
    best.check(1, 1.0, params(0.5))
    assert best.restore(model, 7, np.zeros((3, 4), np.uint8)) is model  # the last point is the best
    best.check(2, 2.0, params(0.9))
    restored = best.restore(model, 7, np.zeros((3, 4), np.uint8))
    assert type(restored) is NumpyRNNNADE and restored.params().hash == params(0.5).hash
    assert restored.table.shape == (3, 4)  # its data set, as the last epoch's model had it
    best.check(3, 0.5, params(0.7))  # the last point is the best again: the model as it is
    assert best.restore(model, 7, np.zeros((3, 4), np.uint8)) is model
    with pytest.raises(ValueError, match="better higher or lower"):
        BestEpoch(3, "none")


def test_patience_with_persistent_chains_is_refused_in_one_line(tmp_path):
    path = tmp_path / "pcd.toml"
    path.write_text('extends = "default"\n[run]\npatience = 3\n')  # samples from PCD's persistent chains
    with pytest.raises(ConfigError, match=r"patience 3 keeps the best epoch's weights.*sample_start"):
        load_profile(str(path))


class StopAtTwo(BestEpoch):
    """The rule saying stop at the second point of the curve, whatever its values; it keeps the epochs it saw."""

    def __init__(self) -> None:
        super().__init__(1, "lower")
        self.seen: list[int] = []

    def check(self, epoch, value, params) -> bool:
        self.seen.append(epoch)
        return len(self.seen) == 2


@pytest.mark.bench  # prepares each model's inputs and trains two epochs of each (seconds)
@pytest.mark.parametrize("kind", sorted(impls.models()))
def test_every_models_training_loop_stops_where_the_rule_says(kind, tmp_path, monkeypatch, cache_dir):
    monkeypatch.setenv("RBM_BENCH_CACHE", str(cache_dir))
    profile = {**PROFILES[kind], "run": PROFILES[kind]["run"] | {"impls": ["numpy"], "epochs": 4}}
    profile["eval"] = PROFILES[kind]["eval"] | {"curve_every": 1}
    path = tmp_path / "stop.toml"
    path.write_text(profile_toml(profile))
    folder = RunFolder.create("stop", path=tmp_path / "run")
    _, tasks, _ = prepare(load_profile(str(path)), folder, log=False)
    task = tasks[0]
    dataset, init, order = load_inputs(task, folder.path)
    found = plugin(kind)
    model = impls.load("numpy", kind)(task.model_config(), init, task.impl_seed)
    model.set_data(found.training_data(dataset))
    record, best = Recorder(task), StopAtTwo()
    assert found.train(model, task, dataset, order, record, np.random.default_rng(0), best) == ""
    assert best.seen == [1, 2]
    curve = [row["epoch"] for row in record.rows if row["metric"] == found.curve]
    assert curve == [1, 2] and max(row["epoch"] or 0 for row in record.rows) == 2  # no third epoch trained
