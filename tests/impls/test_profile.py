"""Where an update's time goes (`eval.timing.profile`): self times and the time in operators from any framework's
trace, and each framework's own trace of the window RBM's and the RNN-RBM's update."""

from __future__ import annotations

import numpy as np
import pytest

from eval.timing.profile import PROFILED_UPDATES, busy_ns, self_times, summarise
from impls import RBMConfig, init_params, load
from impls.common import OperatorEvent as E
from tests.conftest import installed_frameworks

PROFILED = [name for name in installed_frameworks() if name != "numpy"]


def test_self_time_takes_nested_operators_from_their_parent_and_threads_apart():
    events = [
        E("a", "linear", 0, 100),  # contains two addmm: 30 + 20 of its 100 are theirs
        E("a", "addmm", 10, 40),
        E("a", "addmm", 50, 70),
        E("a", "sigmoid", 120, 130),
        E("b", "addmm", 60, 160),  # another thread, overlapping in time: not nested in anything
    ]
    assert self_times(events) == {"linear": (1, 50), "addmm": (3, 150), "sigmoid": (1, 10)}
    assert busy_ns(events) == 160  # 0-160 has some operator running: the union, once
    profile = summarise(200, events, updates=2)
    assert profile.wall_ms == pytest.approx(1e-4) and profile.in_operators_ms == pytest.approx(0.8e-4)
    assert profile.outside_ms == pytest.approx(0.2e-4)
    assert [o["operator"] for o in profile.operators] == ["addmm", "linear", "sigmoid"]
    assert profile.operators[0]["calls"] == 1.5  # per update


def test_gaps_between_operators_are_outside_and_a_deep_chain_keeps_each_level_own_time():
    events = [E("t", "while", 0, 90), E("t", "fusion", 10, 80), E("t", "dot", 20, 30), E("t", "copy", 95, 100)]
    assert self_times(events) == {"while": (1, 20), "fusion": (1, 60), "dot": (1, 10), "copy": (1, 5)}
    assert busy_ns(events) == 95
    assert summarise(100, events, 1).outside_ms == pytest.approx(5e-6)


def _window_model(impl: str):
    config = RBMConfig()
    rng = np.random.default_rng(0)
    data = (rng.random((PROFILED_UPDATES * config.batch_size, config.n_visible)) < 0.05).astype(np.uint8)
    model = load(impl)(config, init_params(config, 0), 0)
    model.set_data(data)
    return model, list(rng.permutation(len(data)).reshape(PROFILED_UPDATES, config.batch_size))


def test_numpy_has_no_operator_profiler_and_the_plugin_says_so():
    from eval.models import plugin

    model, order = _window_model("numpy")
    assert model.trace_operators(lambda: None) is None
    assert plugin("rbm").profile(model, [order]) == {"error": "numpy has no operator profiler"}


@pytest.mark.parametrize("impl", PROFILED)
def test_each_framework_traces_the_window_rbm_update_it_times(impl):
    """The profile of CD-1 updates: the five dense products of each update are among its operators (counted per
    update where the framework runs them as products), the time in operators is within the wall time, and the self
    times cover it (every instant in some operator belongs to one operator's self time)."""
    from eval.models import plugin

    model, order = _window_model(impl)
    profile = plugin("rbm").profile(model, [order])
    assert "error" not in profile, profile
    assert profile["updates"] == PROFILED_UPDATES and profile["units_per_update"] == model.config.batch_size
    assert 0 < profile["in_operators_ms"] <= profile["wall_ms"]
    assert profile["outside_ms"] == pytest.approx(profile["wall_ms"] - profile["in_operators_ms"])
    calls = {o["operator"]: o["calls"] for o in profile["operators"]}
    assert sum(o["self_ms"] for o in profile["operators"]) >= profile["in_operators_ms"] * 0.999
    products = {"tf": ("MatMul",), "torch": ("aten::mm", "aten::addmm", "aten::addmm_")}.get(impl)
    if products:  # XLA fuses products with their neighbours; TensorFlow and PyTorch run each as one kernel
        assert sum(calls.get(name, 0) for name in products) == 5, calls
    else:
        assert any("dot" in name or "fusion" in name for name in calls), calls


@pytest.mark.parametrize("impl", PROFILED)
def test_each_framework_traces_the_rnn_rbm_update(impl):
    """RNN-RBM updates (CD-k over a batch of chunks, the gradient through time): operators traced per update, the
    time in them within the wall time and covered by their self times."""
    from eval.models import plugin
    from tests.impls.test_rnn_rbm import random_params, tiny

    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, cd_steps=3, chunk_length=6)
    table = (np.random.default_rng(1).random((60, config.n_visible)) < 0.3).astype(np.uint8)
    model = load(impl, "rnn_rbm")(config, random_params(config), 0)
    model.set_data(table)
    order = [np.arange(u * 12, u * 12 + 12).reshape(2, 6) for u in range(PROFILED_UPDATES)]  # 2 chunks of 6 frames
    profile = plugin("rnn_rbm").profile(model, [order])
    assert "error" not in profile, profile
    assert profile["units_per_update"] == 12 and profile["mode"] == model.mode
    assert 0 < profile["in_operators_ms"] <= profile["wall_ms"]
    assert sum(o["self_ms"] for o in profile["operators"]) >= profile["in_operators_ms"] * 0.999
    assert min(o["calls"] for o in profile["operators"]) > 0
    if impl == "tf" and model.mode == "manual":  # its noise drawn by an XLA function inside the graph: listed too
        calls = {o["operator"]: o["calls"] for o in profile["operators"]}
        assert "MatMul" in calls and any(name.endswith("fusion") for name in calls), calls
