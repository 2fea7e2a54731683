"""Per-frame exact log Z, AIS, RAISE and their bracket (eval.scoring.frames) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from eval.scoring.frames import (
    _Chains,
    exact_frame_log_partition,
    frame_ais,
    frame_free_energy,
    frame_likelihood_bracket,
    frame_raise,
    mean_field,
    schedule,
)
from eval.scoring.likelihood import softplus


def states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def brute_force_log_z(W: np.ndarray, b_v: np.ndarray, b_h: np.ndarray) -> np.ndarray:
    """log Z_t by summing exp(v.b_v + h.b_h + vWh) over every joint state (v, h) of each frame."""
    vs, hs = states(W.shape[0]), states(W.shape[1])
    coupling = vs @ W @ hs.T
    return np.array([logsumexp((vs @ bv)[:, None] + (hs @ bh)[None] + coupling) for bv, bh in zip(b_v, b_h)])


def model(seed: int, n_frames: int = 20, n_visible: int = 30, n_hidden: int = 12, scale: float = 0.5):
    """A small frame model: shared W, per-frame biases that differ a lot, sparse frames like music."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, scale, (n_visible, n_hidden))
    b_v = rng.normal(-1.0, 1.0, (n_frames, n_visible)) + rng.normal(0, 1.0, (n_frames, 1))
    b_h = rng.normal(0.0, 1.0, (n_frames, n_hidden))
    v = (rng.random((n_frames, n_visible)) < 0.2).astype(np.float64)
    return W, b_v, b_h, v


def hidden_log_z(W, b_v, b_h) -> np.ndarray:
    """log Z_t by a plain loop over the hidden states, visible units summed out (no frames.py code)."""
    hs = states(W.shape[1])
    return np.array([logsumexp(hs @ bh + softplus(hs @ W.T + bv).sum(axis=1)) for bv, bh in zip(b_v, b_h)])


def exact_log_p(W, b_v, b_h, v) -> np.ndarray:
    """log p(v_t) = -F_t(v_t) - log Z_t by direct formulas."""
    return (v * b_v).sum(axis=1) + softplus(v @ W + b_h).sum(axis=1) - hidden_log_z(W, b_v, b_h)


def test_exact_log_z_hidden_and_visible_enumeration_agree_with_brute_force():
    rng = np.random.default_rng(0)
    W = rng.normal(0, 1.0, (10, 12))
    b_v, b_h = rng.normal(-1, 1.5, (5, 10)), rng.normal(0, 1.5, (5, 12))
    truth = brute_force_log_z(W, b_v, b_h)
    assert np.ptp(truth) > 1.0  # the frames differ, so a per-frame mix-up would show
    hidden = exact_frame_log_partition(W, b_v, b_h, over="hidden")
    visible = exact_frame_log_partition(W, b_v, b_h, over="visible", chunk=1000)  # many small blocks
    np.testing.assert_allclose(hidden, truth, atol=1e-10)
    np.testing.assert_allclose(visible, truth, atol=1e-10)
    np.testing.assert_allclose(exact_frame_log_partition(W, b_v, b_h), truth, atol=1e-10)  # the smaller: visible


def test_exact_log_z_refuses_two_large_layers():
    W = np.zeros((21, 22))
    with pytest.raises(ValueError, match="AIS") as error:
        exact_frame_log_partition(W, np.zeros((2, 21)), np.zeros((2, 22)))
    assert "\n" not in str(error.value)
    # one small layer is enough: 10 visible units under 25 hidden ones, all independent at W = 0
    log_z = exact_frame_log_partition(np.zeros((10, 25)), np.zeros((2, 10)), np.zeros((2, 25)))
    np.testing.assert_allclose(log_z, 35 * np.log(2.0), rtol=1e-12)


def test_free_energy_matches_the_formula_row_by_row():
    W, b_v, b_h, v = model(1, n_frames=7)
    direct = [-(v[t] @ b_v[t]) - np.log1p(np.exp(b_h[t] + v[t] @ W)).sum() for t in range(len(v))]
    np.testing.assert_allclose(frame_free_energy(W, b_v, b_h, v), direct, rtol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda W, b_v, b_h, v: frame_free_energy(W, b_v, b_h, v[:, :-1]),  # v too narrow
        lambda W, b_v, b_h, v: frame_free_energy(W, b_v, b_h[:-1], v),  # frames disagree
        lambda W, b_v, b_h, v: frame_ais(W[0], b_v, b_h, schedule(30), 2, np.random.default_rng(0)),  # W 1-d
        lambda W, b_v, b_h, v: frame_ais(W, b_v[:, :-1], b_h, schedule(30), 2, np.random.default_rng(0)),
        lambda W, b_v, b_h, v: frame_ais(W, b_v, b_h, np.linspace(0, 0.9, 30), 2, np.random.default_rng(0)),
        lambda W, b_v, b_h, v: frame_raise(W, b_v, b_h, v[:-1], schedule(30), 2, np.random.default_rng(0)),
        lambda W, b_v, b_h, v: exact_frame_log_partition(W, b_v, b_h.T),
    ],
)
def test_shape_errors_are_one_line_value_errors(call):
    with pytest.raises(ValueError) as error:
        call(*model(2, n_frames=4))
    assert "\n" not in str(error.value)


def test_ais_log_z_matches_exact_frame_by_frame():
    W, b_v, b_h, _ = model(3)
    exact = hidden_log_z(W, b_v, b_h)
    base = softplus(b_v).sum(axis=1) + softplus(b_h).sum(axis=1)
    assert np.all(exact - base > 1.0)  # the interaction matters: starting from the base would not pass
    ais = frame_ais(W, b_v, b_h, schedule(1000), 200, np.random.default_rng(4))
    error = ais.log_z - exact
    assert np.all(np.abs(error) < 0.05), error
    assert np.all(np.abs(error) < 4 * ais.stderr + 0.005), (error, ais.stderr)
    assert np.all(ais.stderr > 0) and np.all(ais.stderr < 0.05)
    assert np.all((ais.effective_runs > 50) & (ais.effective_runs <= 200))
    assert ais.seconds > 0
    apart = np.abs(exact[:, None] - exact[None]) > 0.1  # every pair of frames whose Z differ keeps its order
    assert np.all(np.sign(ais.log_z[:, None] - ais.log_z[None])[apart] == np.sign(exact[:, None] - exact[None])[apart])


def test_raise_is_a_lower_bound_close_to_exact():
    W, b_v, b_h, v = model(5)
    truth = exact_log_p(W, b_v, b_h, v)
    log_p, stderr, seconds = frame_raise(W, b_v, b_h, v, schedule(1000), 100, np.random.default_rng(6))
    assert log_p.shape == stderr.shape == (len(v),) and seconds > 0
    assert np.all(log_p - truth < 4 * stderr + 0.01), (log_p - truth, stderr)
    assert abs((log_p - truth).mean()) < 0.03
    assert np.all(np.abs(log_p - truth) < 0.1)


def test_bracket_contains_the_exact_nll_and_is_narrow():
    W, b_v, b_h, v = model(7, n_frames=20)
    truth = -exact_log_p(W, b_v, b_h, v).mean()
    b = frame_likelihood_bracket(W, b_v, b_h, v, schedule(600), 100, schedule(600), 0, np.random.default_rng(8))
    assert b.exact_nll_per_frame == pytest.approx(truth, abs=1e-10)
    assert b.frames == b.raise_frames == 20
    assert b.ais_nll_per_frame <= truth + 3 * b.ais_stderr + 0.005
    assert b.raise_nll_per_frame >= truth - 3 * b.raise_stderr - 0.005
    assert b.width_per_frame == pytest.approx(b.raise_nll_per_frame - b.ais_nll_per_frame)
    assert abs(b.width_per_frame) < 0.05
    assert 0 < b.ais_stderr < 0.02 and 0 < b.raise_stderr < 0.02
    assert 50 < b.min_effective_runs <= b.effective_runs <= 100
    assert b.ais_seconds > 0 and b.raise_seconds > 0


def test_raise_on_a_subset_estimates_raise_on_all_frames():
    W, b_v, b_h, v = model(9, n_frames=30)
    truth = -exact_log_p(W, b_v, b_h, v).mean()
    args = (W, b_v, b_h, v, schedule(300), 30, schedule(300))
    full = frame_likelihood_bracket(*args, 0, np.random.default_rng(10))
    part = frame_likelihood_bracket(*args, 10, np.random.default_rng(11))
    assert part.raise_frames == 10 and part.frames == 30
    assert part.raise_stderr > 0
    assert abs(part.raise_nll_per_frame - full.raise_nll_per_frame) < 4 * part.raise_stderr + 0.02
    assert abs(part.raise_nll_per_frame - truth) < 4 * part.raise_stderr + 0.02
    none = frame_likelihood_bracket(W, b_v, b_h, v, schedule(100), 10, None, 0, np.random.default_rng(12))
    assert none.raise_nll_per_frame is None and none.width_per_frame is None and none.raise_seconds is None
    assert none.raise_frames == 0


def test_uint8_frames_give_the_float_answer():
    W, b_v, b_h, v = model(13, n_frames=6)
    args = (schedule(100), 8, schedule(100), 3)
    as_float = frame_likelihood_bracket(W, b_v, b_h, v, *args, np.random.default_rng(14))
    as_bytes = frame_likelihood_bracket(W, b_v, b_h, v.astype(np.uint8), *args, np.random.default_rng(14))
    for name in ("ais_nll_per_frame", "raise_nll_per_frame", "exact_nll_per_frame", "raise_stderr"):
        assert getattr(as_bytes, name) == pytest.approx(getattr(as_float, name), abs=1e-12), name


def test_zero_weights_are_exact_with_zero_width():
    _, b_v, b_h, v = model(15, n_frames=9, n_visible=40, n_hidden=30)
    W = np.zeros((40, 30))
    truth = -((v * b_v).sum(axis=1) - softplus(b_v).sum(axis=1)).mean()  # independent Bernoulli visible units
    ais = frame_ais(W, b_v, b_h, schedule(50), 10, np.random.default_rng(16))
    np.testing.assert_allclose(ais.log_z, softplus(b_v).sum(axis=1) + softplus(b_h).sum(axis=1), atol=1e-10)
    np.testing.assert_allclose(ais.effective_runs, 10)
    b = frame_likelihood_bracket(
        W, b_v, b_h, v.astype(np.uint8), schedule(50), 10, schedule(50), 0, np.random.default_rng(17)
    )
    assert b.ais_nll_per_frame == pytest.approx(truth, abs=1e-10)
    assert b.raise_nll_per_frame == pytest.approx(truth, abs=1e-10)
    assert abs(b.width_per_frame) < 1e-10 and b.ais_stderr < 1e-10 and b.raise_stderr < 1e-10
    assert b.exact_nll_per_frame is None  # 30 hidden, 40 visible: no oracle


@pytest.mark.parametrize("case", ["grouped", "huge bias"])
def test_weight_increment_matches_softplus(case):
    """The product-of-ratios increment equals the softplus difference, including when it must be grouped."""
    rng = np.random.default_rng(18)
    W = rng.normal(0, 10.0 if case == "grouped" else 0.5, (30, 12))
    b_h = rng.normal(0, 1, (4, 12))
    if case == "huge bias":
        b_h[1, 3] = 800.0  # e^x overflows: the chains fall back to softplus
    chains = _Chains(W, rng.normal(size=(4, 30)), b_h, 3, rng)
    assert chains.fast == (case == "grouped")
    A = (rng.random((12, 30)) < 0.5) @ W
    lo, hi = 0.1, 0.9  # a long step: 0.8 * sum|W| * 12 units is far above what one product may hold
    want = (softplus(chains.b_h + hi * A) - softplus(chains.b_h + lo * A)).sum(axis=1)
    np.testing.assert_allclose(chains.step(A, lo, hi), want, rtol=1e-10, atol=1e-9)


def peaked(seed: int, n_frames: int = 12):
    """A trained-looking frame model: strong weights and biases, each frame's distribution sharply peaked."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 1.5, (24, 10))
    b_v = rng.normal(-3.0, 3.0, (n_frames, 24))
    b_h = rng.normal(0.0, 3.0, (n_frames, 10))
    v = (rng.random((n_frames, 24)) < expit_np(b_v)).astype(np.float64)
    return W, b_v, b_h, v


def expit_np(x):
    return 1 / (1 + np.exp(-x))


def test_mean_field_bound_is_below_exact_log_z_on_every_frame():
    for W, b_v, b_h, _ in (model(19), peaked(20)):
        mu, nu, bound = mean_field(W, b_v, b_h)
        exact = hidden_log_z(W, b_v, b_h)
        assert np.all(bound <= exact + 1e-9), bound - exact
        assert np.all(exact - bound < 3.0)  # and a useful one
        np.testing.assert_allclose(mu, expit_np(b_v + nu @ W.T), atol=1e-5)  # a fixed point
        np.testing.assert_allclose(nu, expit_np(b_h + mu @ W), atol=1e-5)


def test_increment_along_the_mean_field_path_matches_log_f():
    """The log step weight on the mean-field path: log f_hi(v) - log f_lo(v), f_β as in `_Chains`."""
    rng = np.random.default_rng(21)
    W, b_v, b_h, _ = peaked(22, n_frames=4)
    base_v, base_h = rng.normal(size=b_v.shape), rng.normal(size=b_h.shape)
    chains = _Chains(W, b_v, b_h, 3, rng, base_v, base_h)
    v = (rng.random((12, 24)) < 0.4).astype(np.float64)
    rep = lambda a: np.repeat(a, 3, axis=0)

    def log_f(beta):
        lin = (v * (rep(base_v) + beta * rep(b_v - base_v))).sum(axis=1)
        return lin + softplus(rep(base_h) + beta * (rep(b_h - base_h) + v @ W)).sum(axis=1)

    np.testing.assert_allclose(chains.increment(v, 0.2, 0.7), log_f(0.7) - log_f(0.2), rtol=1e-10, atol=1e-9)


def test_unknown_base_and_a_subset_without_control_variate_are_value_errors():
    W, b_v, b_h, v = model(23, n_frames=4)
    with pytest.raises(ValueError, match="base"):
        frame_ais(W, b_v, b_h, schedule(30), 2, np.random.default_rng(0), base="uniform")
    with pytest.raises(ValueError, match="mean-field"):
        rng = np.random.default_rng(0)
        frame_likelihood_bracket(W, b_v, b_h, v, schedule(30), 2, None, 0, rng, ais_frames=2, base="model")


def test_meanfield_base_is_accurate_on_peaked_frames_where_the_model_base_is_not():
    W, b_v, b_h, v = peaked(24)
    exact = hidden_log_z(W, b_v, b_h)
    short = frame_ais(W, b_v, b_h, schedule(50), 50, np.random.default_rng(25))  # a short path shows the base
    old = frame_ais(W, b_v, b_h, schedule(50), 50, np.random.default_rng(25), base="model")
    assert short.mean_field_bound is not None and old.mean_field_bound is None
    assert np.median(short.effective_runs) > 3 * np.median(old.effective_runs), old.effective_runs
    assert short.effective_runs.min() > 10 > old.effective_runs.min()
    new = frame_ais(W, b_v, b_h, schedule(300), 50, np.random.default_rng(25))
    error = new.log_z - exact
    assert np.all(np.abs(error) < 4 * new.stderr + 0.02), (error, new.stderr)
    joint = frame_ais(W, b_v, b_h, schedule(300), 50, np.random.default_rng(26), base="meanfield-joint")
    assert np.all(np.abs(joint.log_z - exact) < 4 * joint.stderr + 0.02)
    log_p, stderr, _ = frame_raise(W, b_v, b_h, v, schedule(300), 50, np.random.default_rng(27))
    truth = exact_log_p(W, b_v, b_h, v)
    assert np.all(log_p - truth < 4 * stderr + 0.02) and np.all(np.abs(log_p - truth) < 0.2)


def test_control_variate_over_frames_agrees_with_all_frames_and_exact():
    W, b_v, b_h, v = model(28, n_frames=60)
    truth = -exact_log_p(W, b_v, b_h, v).mean()
    args = (W, b_v, b_h, v, schedule(300), 40, schedule(300))
    full = frame_likelihood_bracket(*args, 0, np.random.default_rng(29))
    part = frame_likelihood_bracket(*args, 10, np.random.default_rng(30), ais_frames=20)
    assert full.ais_frames == full.frames == 60 and part.ais_frames == 20 and part.raise_frames == 10
    assert part.ais_stderr > full.ais_stderr > 0  # the subset's sampling adds to the runs' noise
    assert abs(part.ais_nll_per_frame - full.ais_nll_per_frame) < 4 * part.ais_stderr + 0.01
    assert abs(part.ais_nll_per_frame - truth) < 4 * part.ais_stderr + 0.01
    assert abs(part.raise_nll_per_frame - truth) < 4 * part.raise_stderr + 0.01
    assert part.raise_stderr >= part.ais_stderr * 0.99  # includes the AIS subset's sampling
    _, _, bound = mean_field(W, b_v, b_h)
    exact_gap = (hidden_log_z(W, b_v, b_h) - bound).mean()  # the mean-field bound's gap over all frames
    assert full.mean_field_gap == pytest.approx(exact_gap, abs=0.02)
    assert part.mean_field_gap > 0
    same = frame_likelihood_bracket(*args, 0, np.random.default_rng(31), ais_frames=60)  # >= N: every frame
    assert same.ais_frames == 60 and same.raise_frames == 60
