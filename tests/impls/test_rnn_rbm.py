"""The RNN-RBM: the NumPy reference against oracles of its own, every other framework against the reference.

The reference's hand-written CD + BPTT gradient is checked against central finite differences of the cost with
the negative samples fixed; its biases against eqs. 9-11 of the paper written out as a loop, its free energies
by enumerating the hidden states. Each installed framework must then reproduce the reference from the same
explicit uniforms: one update, an epoch, the per-frame biases and free energies, generated pieces. Last,
training on a repeating pattern must raise the exact log-likelihood (enumerated) beyond what a model without
memory can reach: a wrong gradient sign, or an RNN that learns nothing, fails there.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import logsumexp

from core.errors import ConfigError
from impls import Skipped, Unavailable, available, frameworks, load
from impls.rnn_rbm.interface import RNNRBMConfig, RNNRBMNoise, RNNRBMParams, Weights, init_rnn_rbm_params
from impls.rnn_rbm.numpy import (
    NumpyRNNRBM,
    biases,
    free_energy,
    gibbs,
    gradients,
    prediction_gradients,
    pretrained_rnn,
    recurrence,
)

# The frameworks sum in other orders. Measured after one update and a 3-update epoch (CPU): at most 6e-8 apart in
# float32 and 2e-16 in float64; the tolerances are tests/impls/test_impls.py's, which also cover its GPU runs.
F32 = {"rtol": 1e-5, "atol": 1e-5}
F64 = {"rtol": 1e-12, "atol": 1e-12}
REFERENCE = "numpy"
CLASSES = [name for name, item in frameworks().items() if "rnn_rbm" in item.models]  # read from the catalogue
CANDIDATES = [name for name in CLASSES if name != REFERENCE]


def constructor(name: str, device: str = "cpu"):
    """An implementation's constructor on ``device``; skips (with the reason) what is not installed here."""
    status = available().get(name)
    if status is None or isinstance(status, Skipped):
        pytest.skip(status.reason if status else f"skipped: {name} is not catalogued")
    try:
        cls = load(name, "rnn_rbm")
    except Unavailable as error:
        pytest.skip(f"skipped: not installed ({error})")
    if device != "cpu" and (reason := cls.device_unavailable(device)):
        pytest.fail(f"{reason}: --device {device} asked for a GPU this framework cannot see")
    return lambda config, params, seed: cls(replace(config, device=device), params, seed)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread for torch here: on a busy machine its BLAS threads wait for cores on these tiny
    products (measured: 8 ms per 4x6 @ 6x8 product with two threads on two shared cores, 0.02 ms with one)."""
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    threads = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    yield
    if torch:
        torch.set_num_threads(threads)


@pytest.fixture(params=CANDIDATES)
def candidate(request, device):
    return constructor(request.param, device)


@pytest.fixture(params=CLASSES)
def impl(request, device):
    return constructor(request.param, device if request.param != REFERENCE else "cpu")


def tiny(**overrides) -> RNNRBMConfig:
    values = {"n_visible": 6, "n_hidden": 4, "n_recurrent": 3, "cd_steps": 2, "batch_size": 2, "chunk_length": 5}
    return RNNRBMConfig(**{**values, "learning_rate": 0.1, **overrides})


def random_params(config: RNNRBMConfig, seed: int = 5, scale: float = 0.5) -> RNNRBMParams:
    """Every parameter non-zero and of order one, so no check is about zeros or a linear regime."""
    rng = np.random.default_rng(seed)
    return RNNRBMParams(*(rng.normal(0, scale, a.shape) for a in init_rnn_rbm_params(config, 0).arrays()))


def sequences(config: RNNRBMConfig, n: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, config.chunk_length, config.n_visible)) < 0.4).astype(float)


# ------------------------------------------------------------------ the reference against independent oracles
def test_reference_gradient_matches_central_finite_differences():
    config = tiny(precision="float64")
    w = Weights(*random_params(config).arrays())
    v = sequences(config, 2)
    noise = RNNRBMNoise.draw(np.random.default_rng(2), config, 2, config.chunk_length)
    cost, analytic = gradients(w, v, noise)
    u_previous, _ = recurrence(w, v)
    v_star = gibbs(w, v, *biases(w, u_previous), noise.h, noise.v)  # held fixed: the cost's v*
    assert 0 < v_star.sum() < v_star.size and not np.array_equal(v_star, v)

    def fixed_cost(w: Weights) -> float:
        b_v, b_h = biases(w, recurrence(w, v)[0])
        return float(np.mean(free_energy(w, v, b_v, b_h) - free_energy(w, v_star, b_v, b_h)))

    assert fixed_cost(w) == pytest.approx(cost, rel=1e-14)
    step = 1e-6
    for name, array, gradient in zip(Weights._fields, w, analytic):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            kept = array[index]
            array[index] = kept + step
            above = fixed_cost(w)
            array[index] = kept - step
            below = fixed_cost(w)
            array[index] = kept
            numeric[index] = (above - below) / (2 * step)
        assert np.abs(gradient).max() > 1e-3, f"{name}: a vanishing gradient checks nothing"
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_the_rnn_pretraining_gradient_matches_central_finite_differences():
    """The paper's RNN initialisation: frames predicted from their past by cross-entropy, the gradient through time."""
    config = tiny(precision="float64")
    w = Weights(*random_params(config).arrays())
    v, c = sequences(config, 2), np.random.default_rng(3).normal(0, 0.5, config.n_visible)
    cost, analytic, d_c = prediction_gradients(w, v, c)
    step = 1e-6
    for name in ("W_uv", "W_uu", "W_vu", "b_u", "u0"):
        array, gradient = getattr(w, name), getattr(analytic, name)
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            kept = array[index]
            array[index] = kept + step
            above = prediction_gradients(w, v, c)[0]
            array[index] = kept - step
            below = prediction_gradients(w, v, c)[0]
            array[index] = kept
            numeric[index] = (above - below) / (2 * step)
        assert np.abs(gradient).max() > 1e-4, f"{name}: a vanishing gradient checks nothing"
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8, err_msg=name)
    assert all(not getattr(analytic, name).any() for name in ("W", "b_v", "b_h", "W_uh"))  # the RBM's are kept
    shifted = prediction_gradients(w, v, c + np.eye(config.n_visible)[0] * step)[0]
    assert (shifted - cost) / step == pytest.approx(d_c[0], rel=1e-4)


def test_rnn_pretraining_learns_to_predict_a_repeating_pattern():
    """Pre-trained on cycles of a 4-frame pattern, the RNN predicts each frame from the last far better than chance."""
    config = tiny(n_visible=6, n_hidden=8, n_recurrent=6, chunk_length=8)
    params = init_rnn_rbm_params(config, 0, recurrent_scale=0.1)
    train = cycles(np.random.default_rng(0), 50, 8)
    w = Weights(*params.arrays())
    before = prediction_gradients(w, train, np.zeros(6))[0]
    trained = pretrained_rnn(params, list(train), epochs=30, seed=1, learning_rate=0.5)
    after = prediction_gradients(Weights(*trained.arrays()), train, np.zeros(6))[0]
    assert after < 0.6 * before, f"cross-entropy per frame {before:.2f} -> {after:.2f}"
    np.testing.assert_array_equal(trained.W, params.W)  # the RBM's weights are kept as given
    again = pretrained_rnn(params, list(train), epochs=30, seed=1, learning_rate=0.5)
    np.testing.assert_array_equal(again.W_uu, trained.W_uu)  # seeded: the same order, the same weights


def test_reference_update_is_the_gradient_step():
    config = tiny(precision="float64", learning_rate=0.25)
    params, v = random_params(config), sequences(config, 2)
    noise = RNNRBMNoise.draw(np.random.default_rng(2), config, 2, config.chunk_length)
    cost, grads = gradients(Weights(*params.arrays()), v, noise)
    model = NumpyRNNRBM(config, params, 0)
    snapshot = model.params()
    assert model.cd_update(v, noise) == pytest.approx(cost, rel=1e-14)
    assert snapshot.hash == params.hash, "params() is a copy, not a view of the weights the update changes"
    for name, before, after, gradient in zip(Weights._fields, params.arrays(), model.params().arrays(), grads):
        np.testing.assert_allclose(after, before - 0.25 * gradient, **F64, err_msg=name)


def test_reference_clipping_bounds_the_step():
    config = tiny(precision="float64", learning_rate=1.0, clip_norm=0.01)
    params, v = random_params(config), sequences(config, 2)
    model = NumpyRNNRBM(config, params, 0)
    model.cd_update(v, RNNRBMNoise.draw(np.random.default_rng(2), config, 2, config.chunk_length))
    step = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(model.params().arrays(), params.arrays())))
    assert step == pytest.approx(0.01, rel=1e-10)


def test_reference_biases_and_free_energies_match_the_papers_equations():
    """Eqs. 9-11 one sequence and one frame at a time; F_t by summing exp(-E) over all 2^H hidden states."""
    config = tiny(precision="float64")
    p, v = random_params(config), sequences(config, 2)
    model = NumpyRNNRBM(config, p, 0)
    b_v, b_h = model.conditional_biases(v)
    energies = model.frame_free_energies(v)
    hidden = np.array(list(itertools.product((0, 1), repeat=config.n_hidden)), float)
    for b, t in np.ndindex(v.shape[:2]):
        u = p.u0
        for s in range(t):  # u(t-1) from the true frames before t
            u = np.tanh(p.b_u + p.W_uu.T @ u + p.W_vu.T @ v[b, s])
        np.testing.assert_allclose(b_v[b, t], p.b_v + p.W_uv.T @ u, **F64)
        np.testing.assert_allclose(b_h[b, t], p.b_h + p.W_uh.T @ u, **F64)
        minus_energy = v[b, t] @ b_v[b, t] + hidden @ b_h[b, t] + hidden @ p.W.T @ v[b, t]  # -E(v, h) for every h
        assert energies[b, t] == pytest.approx(-logsumexp(minus_energy), rel=1e-12)


def test_config_params_and_noise_are_checked():
    with pytest.raises(ConfigError):
        RNNRBMConfig(n_recurrent=0)
    with pytest.raises(ConfigError):
        RNNRBMConfig(precision="float16")
    config = tiny()
    params = init_rnn_rbm_params(config, np.random.SeedSequence(7))
    assert params.hash == init_rnn_rbm_params(config, np.random.SeedSequence(7)).hash != random_params(config).hash
    assert params.finite() and params.astype("float32").W.dtype == np.float32 and not params.b_v.any()
    model = NumpyRNNRBM(config, params, 0)
    with pytest.raises(ValueError, match="noise has shapes"):
        model.cd_update(sequences(config, 2), RNNRBMNoise.draw(np.random.default_rng(0), config, 3, 5))
    with pytest.raises(ValueError, match="noises for 3 updates"):
        model.train_chunks(sequences(config, 5), [RNNRBMNoise.draw(np.random.default_rng(0), config, 2, 5)])
    with pytest.raises(ValueError, match="sequences have shape"):
        model.frame_free_energies(np.zeros((5, config.n_visible)))


# ------------------------------------------------------------------ every framework against the reference
def assert_same_params(got: RNNRBMParams, want: RNNRBMParams, tolerance: dict) -> None:
    for name, a, b in zip(Weights._fields, got.arrays(), want.arrays()):
        np.testing.assert_allclose(a, b, **tolerance, err_msg=name)


@pytest.mark.parametrize(
    ("dtype", "clip_norm"), [("float32", 0.0), ("float64", 0.0), ("float32", 0.05)], ids=["f32", "f64", "clipped"]
)
def test_one_update_then_an_epoch_from_explicit_noise_match_the_reference(candidate, dtype, clip_norm):
    config = tiny(
        n_visible=12, n_hidden=6, n_recurrent=5, cd_steps=3, chunk_length=6, precision=dtype, clip_norm=clip_norm
    )
    params, tolerance = random_params(config), F32 if dtype == "float32" else F64
    ours, reference = candidate(config, params, 0), NumpyRNNRBM(config, params, 0)
    rng = np.random.default_rng(3)
    v = sequences(config, 2, seed=9)
    noise = RNNRBMNoise.draw(rng, config, 2, config.chunk_length)
    np.testing.assert_allclose(ours.cd_update(v, noise), reference.cd_update(v, noise), **tolerance)
    assert_same_params(ours.params(), reference.params(), tolerance)
    assert reference.params().hash != params.hash
    chunks = sequences(config, 5)  # updates of 2, 2 and 1 chunks: the last one smaller
    noises = [RNNRBMNoise.draw(rng, config, len(batch), config.chunk_length) for batch in reference.updates(chunks)]
    costs = ours.train_chunks(chunks, noises, learning_rate=0.05)
    np.testing.assert_allclose(costs, reference.train_chunks(chunks, noises, learning_rate=0.05), **tolerance)
    assert costs.shape == (3,)
    assert_same_params(ours.params(), reference.params(), tolerance)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_biases_and_free_energies_match_the_reference(candidate, dtype):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, chunk_length=7, precision=dtype)
    params, v = random_params(config), sequences(config, 3)
    ours, reference = candidate(config, params, 0), NumpyRNNRBM(config, params, 0)
    tolerance = F32 if dtype == "float32" else F64
    for got, want in zip(ours.conditional_biases(v), reference.conditional_biases(v)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **tolerance)
    np.testing.assert_allclose(ours.frame_free_energies(v), reference.frame_free_energies(v), **tolerance)


def test_generation_from_explicit_noise_matches_the_reference(candidate):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5)
    params = random_params(config, scale=1.0)
    ours, reference = candidate(config, params, 0), NumpyRNNRBM(config, params, 0)
    noise = RNNRBMNoise.draw(np.random.default_rng(4), config, 3, 9, k=4)
    for start in (None, np.ones(config.n_visible)):
        want = reference.generate(3, 9, noise=noise, start=start)
        got = ours.generate(3, 9, noise=noise, start=start)
        assert got.shape == (3, 9, config.n_visible) and got.dtype == np.uint8
        assert 0 < want.sum() < want.size
        np.testing.assert_array_equal(got, want)


def test_generation_with_own_draws_is_binary_reproducible_and_of_the_asked_shape(impl):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5)
    pieces = [impl(config, random_params(config, scale=1.0), 11).generate(2, 10, k=3) for _ in range(2)]
    assert pieces[0].shape == (2, 10, config.n_visible) and pieces[0].dtype == np.uint8
    assert set(np.unique(pieces[0])) == {0, 1}
    np.testing.assert_array_equal(pieces[0], pieces[1])


def test_timing_the_noise_draws_leaves_the_models_stream_alone(impl):
    """`draw_ms` (the ceiling's draws, timed in every bench run) draws from a generator of its own: a model timed
    between two calls trains as one never timed."""
    config = tiny()
    chunks, params = sequences(config, 4), random_params(config)
    trained = []
    for timed in (False, True):
        model = impl(config, params, seed=3)
        model.train_chunks(chunks)
        if timed:
            assert model.draw_ms(2, config.chunk_length, repeats=2) > 0
        trained.append((model.train_chunks(chunks), model.params()))
    np.testing.assert_array_equal(trained[1][0], trained[0][0])
    assert trained[1][1].hash == trained[0][1].hash


def test_reseeding_restarts_the_training_noise(impl):
    """A long run seeds each epoch apart (`eval.models.checkpoints`): a model built with any seed and reseeded trains
    as every other reseeded alike, and another seed trains otherwise; so a resumed task draws what it would have."""
    config = tiny()
    chunks, params = sequences(config, 4), random_params(config)
    trained = []
    for built_with, reseeded in ((1, 7), (2, 7), (1, 8)):
        model = impl(config, params, seed=built_with)
        model.generate(2, 3)  # advances its own stream first: the reseed must restart it, not follow it
        model.reseed(reseeded)
        model.train_chunks(chunks)
        trained.append(model.params())
    assert_same_params(trained[1], trained[0], {"atol": 0, "rtol": 0})
    assert not np.allclose(trained[2].W, trained[0].W)


# ------------------------------------------------------------------ learning
PATTERN = np.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [1, 0, 0, 0, 1, 1]], float)


def cycles(rng: np.random.Generator, n: int, T: int) -> np.ndarray:
    """``n`` chunks of a 4-frame cycle, each from a random phase: only memory predicts the next frame."""
    return PATTERN[(rng.integers(0, len(PATTERN), n)[:, None] + np.arange(T)) % len(PATTERN)]


def log_likelihood(config: RNNRBMConfig, params: RNNRBMParams, v: np.ndarray) -> float:
    """Mean exact ``log p(v(t) | v(<t))`` per frame: ``-F_t(v(t)) - log Z_t``, Z_t summed over all 2^H states."""
    model = NumpyRNNRBM(replace(config, precision="float64", device="cpu"), params, 0)
    b_v, b_h = model.conditional_biases(v)
    hidden = np.array(list(itertools.product((0, 1), repeat=config.n_hidden)), float)
    log_z = logsumexp(b_h @ hidden.T + np.logaddexp(0, b_v[..., None, :] + hidden @ params.W.T).sum(-1), -1)
    return float(np.mean(-model.frame_free_energies(v) - log_z))


def test_training_on_a_repeating_pattern_learns_the_sequence(impl):
    """Without memory the best is log(1/4) per frame; the RNN-RBM must beat it (the first frame stays 1/4)."""
    config = tiny(n_hidden=8, n_recurrent=6, cd_steps=1, batch_size=8, chunk_length=8, learning_rate=0.3)
    rng = np.random.default_rng(0)
    train, valid = cycles(rng, 400, 8), cycles(rng, 50, 8)
    params = init_rnn_rbm_params(config, 0, recurrent_scale=0.1)  # the tutorial's 1e-4 escapes its saddle slowly
    model = impl(config, params, seed=0)
    before = log_likelihood(config, params, valid)
    costs = np.concatenate([model.train_chunks(train) for _ in range(2)])
    after = log_likelihood(config, model.params(), valid)
    assert costs.shape == (100,) and np.isfinite(costs).all()
    assert before < -4 and after > -1.0 > np.log(1 / 4), f"log-likelihood per frame {before:.2f} -> {after:.2f}"
