"""The RNN-NADE: the NumPy reference against oracles of its own, every other framework against the reference.

The reference's hand-written gradient is checked against central finite differences of the exact cost; its
likelihood against the paper's equations written out as loops, and against normalisation: the probabilities of all
2^8 frames after a fixed past sum to one. Its sampler must draw frames at those probabilities, and its Adam must
step as PyTorch's Adam. Each installed framework must then reproduce the reference from the same
initial weights: one update, an epoch, the per-frame biases and log-probabilities, pieces generated from the same
uniforms. Last, training on a repeating pattern must beat what a model without memory can reach.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import chi2

from core.errors import ConfigError
from impls import Skipped, Unavailable, available, frameworks, load
from impls.rnn_nade.interface import RNNNADEConfig, RNNNADENoise, RNNNADEParams, Weights, init_rnn_nade_params
from impls.rnn_nade.numpy import NumpyRNNNADE, clip, frame_log_probs, gradients

# The frameworks sum in other orders. Measured after one update and a 3-update epoch (CPU): at most 1.2e-7 apart in
# float32 (1.4e-6 in a log-probability) and 3e-15 in float64; the tolerances are tests/impls/test_rnn_rbm.py's.
F32 = {"rtol": 1e-5, "atol": 1e-5}
F64 = {"rtol": 1e-12, "atol": 1e-12}
REFERENCE = "numpy"
CLASSES = [name for name, item in frameworks().items() if "rnn_nade" in item.models]  # read from the catalogue
CANDIDATES = [name for name in CLASSES if name != REFERENCE]


def constructor(name: str, device: str = "cpu"):
    """An implementation's constructor on ``device``; skips (with the reason) what is not installed here."""
    status = available().get(name)
    if status is None or isinstance(status, Skipped):
        pytest.skip(status.reason if status else f"skipped: {name} is not catalogued")
    try:
        cls = load(name, "rnn_nade")
    except Unavailable as error:
        pytest.skip(f"skipped: not installed ({error})")
    if device != "cpu" and (reason := cls.device_unavailable(device)):
        pytest.fail(f"{reason}: --device {device} asked for a GPU this framework cannot see")
    return lambda config, params, seed: cls(replace(config, device=device), params, seed)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread for torch here (tests/impls/test_rnn_rbm.py: its BLAS threads wait on a busy machine)."""
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


def tiny(**overrides) -> RNNNADEConfig:
    values = {"n_visible": 6, "n_hidden": 4, "n_recurrent": 3, "batch_size": 2, "chunk_length": 5}
    return RNNNADEConfig(**{**values, "learning_rate": 0.1, **overrides})


def random_params(config: RNNNADEConfig, seed: int = 5, scale: float = 0.5) -> RNNNADEParams:
    """Every parameter non-zero and of order one, so no check is about zeros or a linear regime."""
    rng = np.random.default_rng(seed)
    return RNNNADEParams(*(rng.normal(0, scale, a.shape) for a in init_rnn_nade_params(config, 0).arrays()))


def sequences(config: RNNNADEConfig, n: int, seed: int = 1, T: int | None = None) -> np.ndarray:
    shape = (n, T or config.chunk_length, config.n_visible)
    return (np.random.default_rng(seed).random(shape) < 0.4).astype(float)


def every_frame(n_visible: int) -> np.ndarray:
    """All 2^n_visible binary frames, (2^n_visible, n_visible)."""
    return np.array(list(itertools.product((0, 1), repeat=n_visible)), float)


# ------------------------------------------------------------------ the reference against independent oracles
def test_reference_gradient_matches_central_finite_differences():
    config = tiny(precision="float64")
    params, v = random_params(config), sequences(config, 2)
    w = Weights(*params.arrays())
    cost, analytic = gradients(w, v)
    exact_cost = lambda: -float(frame_log_probs(RNNNADEParams(*w), v).mean())  # the scorer's copy, from the arrays
    assert exact_cost() == pytest.approx(cost, rel=1e-14)
    step = 1e-6
    for name, array, gradient in zip(Weights._fields, w, analytic):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            kept = array[index]
            array[index] = kept + step
            above = exact_cost()
            array[index] = kept - step
            below = exact_cost()
            array[index] = kept
            numeric[index] = (above - below) / (2 * step)
        assert np.abs(gradient).max() > 1e-3, f"{name}: a vanishing gradient checks nothing"
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_reference_likelihood_matches_the_papers_equations():
    """Sec. 5's equations one sequence, one frame and one unit at a time, against the batched reference and the
    scorer's blocked float64 copy."""
    config = tiny(precision="float64")
    p, v = random_params(config), sequences(config, 2, T=7)
    model = NumpyRNNNADE(config, p, 0)
    want = np.zeros(v.shape[:2])
    for b, t in np.ndindex(v.shape[:2]):
        u = p.u0
        for s in range(t):  # u(t-1) from the true frames before t
            u = np.tanh(p.b_u + p.W_uu.T @ u + p.W_vu.T @ v[b, s])
        b_v, b_h = p.b_v + p.W_uv.T @ u, p.b_h + p.W_uh.T @ u
        for i in range(config.n_visible):
            h = 1 / (1 + np.exp(-(b_h + p.W[:i].T @ v[b, t, :i])))
            p_on = 1 / (1 + np.exp(-(b_v[i] + p.V[i] @ h)))
            want[b, t] += np.log(p_on if v[b, t, i] else 1 - p_on)
    np.testing.assert_allclose(model.frame_log_probs(v), want, **F64)
    np.testing.assert_allclose(frame_log_probs(p, v, block=3), want, **F64)  # blocks of 3 frames: 3 + 3 + 1
    assert model.log_likelihood(v) == pytest.approx(want.mean(), rel=1e-12)


def test_every_frame_distribution_sums_to_one_after_any_past():
    """All 2^8 frames at frames 0, 3 and 6 of a sequence: their probabilities sum to one, and the frames before
    are scored as before (the RNN is causal)."""
    config = tiny(n_visible=8, n_hidden=5, n_recurrent=4, precision="float64")
    params, frames = random_params(config, scale=0.8), every_frame(8)
    v = sequences(config, 1, T=7)
    for t in (0, 3, 6):
        varied = np.repeat(v, len(frames), 0)
        varied[:, t] = frames
        scores = frame_log_probs(params, varied)
        assert logsumexp(scores[:, t]) == pytest.approx(0, abs=1e-12)
        np.testing.assert_allclose(scores[:, :t], np.broadcast_to(frame_log_probs(params, v)[:, :t], (256, t)), **F64)


def chi_square_p(counts: np.ndarray, probabilities: np.ndarray) -> float:
    """Pearson's test of ``counts`` against ``probabilities``, bins expecting fewer than 5 draws pooled into one."""
    expected = probabilities * counts.sum()
    rare = expected < 5
    observed = np.append(counts[~rare], counts[rare].sum()) if rare.any() else counts
    expected = np.append(expected[~rare], expected[rare].sum()) if rare.any() else expected
    return float(chi2.sf(((observed - expected) ** 2 / expected).sum(), len(observed) - 1))


def test_sampling_draws_frames_at_their_probabilities():
    """20,000 two-frame pieces: the first frame's 256 patterns, and the second's marginal over the first, at the
    likelihood's probabilities (seeded: a fixed sample, p-values far from chance)."""
    config = tiny(n_visible=8, n_hidden=5, n_recurrent=4, precision="float64")
    params, frames = random_params(config, scale=0.8), every_frame(8)
    pieces = NumpyRNNNADE(config, params, 3).generate(20_000, 2)
    codes = pieces @ (2 ** np.arange(7, -1, -1))  # the row of every_frame each sampled frame is
    pairs = np.stack([np.repeat(frames, 256, 0), np.tile(frames, (256, 1))], 1)  # every (frame 0, frame 1)
    joint = np.exp(frame_log_probs(params, pairs).sum(1)).reshape(256, 256)
    assert joint.sum() == pytest.approx(1, abs=1e-12)
    for t, probabilities in ((0, joint.sum(1)), (1, joint.sum(0))):
        assert chi_square_p(np.bincount(codes[:, t], minlength=256), probabilities) > 1e-3, f"frame {t}"
    flat = np.ones(256) / 256  # the test can fail: the same draws are far from uniform frames
    assert chi_square_p(np.bincount(codes[:, 0], minlength=256), flat) < 1e-6


def test_reference_adam_steps_as_torch_adam():
    """Three updates with clipping (active) and weight decay against PyTorch's Adam (``torch.optim.adam.adam``, the
    functional form of ``torch.optim.Adam``, whose weight_decay is the same L2 term) on the same clipped gradients."""
    torch = pytest.importorskip("torch")
    from torch.optim.adam import adam  # the optimiser class's first use imports torch._dynamo: ~10 s

    config = tiny(precision="float64", learning_rate=0.05, clip_norm=0.2, weight_decay=0.1)
    params, v = random_params(config), sequences(config, 2)
    model = NumpyRNNNADE(config, params, 0)
    tensors = [torch.tensor(a) for a in params.arrays()]
    moments = [[torch.zeros_like(t) for t in tensors] for _ in range(2)]
    steps = [torch.tensor(0.0, dtype=torch.float64) for _ in tensors]
    for _ in range(3):
        snapshot = model.params()
        cost, grads = gradients(Weights(*snapshot.arrays()), v)
        assert np.sqrt(sum((g**2).sum() for g in grads)) > 0.2, "clipping must be active to be checked"
        clipped = [torch.tensor(g) for g in clip(grads, 0.2)]
        adam(tensors, clipped, *moments, [], steps, foreach=False, amsgrad=False, beta1=0.9, beta2=0.999, lr=0.05,
             weight_decay=0.1, eps=1e-8, maximize=False)  # fmt: skip
        assert model.update(v) == pytest.approx(cost, rel=1e-14)
        assert snapshot.hash != model.params().hash, "params() is a copy, not a view of the weights the update changes"
    for name, got, want in zip(Weights._fields, model.params().arrays(), tensors):
        np.testing.assert_allclose(got, want.numpy(), **F64, err_msg=name)


def test_config_params_and_noise_are_checked():
    bad_values = ({"weight_decay": -1.0}, {"precision": "float16"}, {"n_hidden": 0}, {"n_recurrent": -1},
                  {"lr_schedule": "cosine"})  # fmt: skip
    for bad in bad_values:
        with pytest.raises(ConfigError):
            RNNNADEConfig(**bad)
    config = tiny()
    params = init_rnn_nade_params(config, np.random.SeedSequence(7))
    assert params.hash == init_rnn_nade_params(config, np.random.SeedSequence(7)).hash != random_params(config).hash
    assert params.finite() and params.astype("float32").W.dtype == np.float32 and not params.b_v.any()
    assert params.names() == Weights._fields and 0 < params.largest() < 0.1
    model = NumpyRNNNADE(config, params, 0)
    with pytest.raises(ValueError, match="noise has shape"):
        model.generate(2, 5, RNNNADENoise.draw(np.random.default_rng(0), config, 3, 5))
    with pytest.raises(ValueError, match="sequences have shape"):
        model.frame_log_probs(np.zeros((5, config.n_visible)))
    with pytest.raises(ValueError, match="cpu only"):
        NumpyRNNNADE(replace(config, device="cuda"), params, 0)


# ------------------------------------------------------------------ every framework against the reference
def assert_same_params(got: RNNNADEParams, want: RNNNADEParams, tolerance: dict) -> None:
    for name, a, b in zip(Weights._fields, got.arrays(), want.arrays()):
        np.testing.assert_allclose(a, b, **tolerance, err_msg=name)


@pytest.mark.parametrize(
    ("dtype", "clip_norm", "weight_decay"),
    [("float32", 0.0, 0.0), ("float64", 0.0, 0.0), ("float32", 0.3, 0.01)],
    ids=["f32", "f64", "clipped-decayed"],
)
def test_one_update_then_an_epoch_match_the_reference(candidate, dtype, clip_norm, weight_decay):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, chunk_length=6, precision=dtype, clip_norm=clip_norm,
                  weight_decay=weight_decay)  # fmt: skip
    params, tolerance = random_params(config), F32 if dtype == "float32" else F64
    ours, reference = candidate(config, params, 0), NumpyRNNNADE(config, params, 0)
    v = sequences(config, 2, seed=9)
    np.testing.assert_allclose(ours.update(v), reference.update(v), **tolerance)
    assert_same_params(ours.params(), reference.params(), tolerance)
    assert reference.params().hash != params.hash
    chunks = sequences(config, 5)  # updates of 2, 2 and 1 chunks: the last one smaller; Adam's state carries over
    costs = ours.train_chunks(chunks, learning_rate=0.05)
    np.testing.assert_allclose(costs, reference.train_chunks(chunks, learning_rate=0.05), **tolerance)
    assert costs.shape == (3,)
    assert_same_params(ours.params(), reference.params(), tolerance)


def test_an_epoch_of_chunks_of_many_lengths_matches_the_reference(candidate):
    """Pieces end at any frame, so an epoch's updates come in many lengths (JAX pads each to its bucket of 8 frames
    and masks the padding; it reads no cost before the epoch's end): every update as the reference's."""
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, chunk_length=20)
    params = random_params(config)
    table = (np.random.default_rng(3).random((200, config.n_visible)) < 0.3).astype(np.uint8)
    shapes = ((0, 2, 20), (50, 2, 3), (60, 1, 9), (120, 2, 17), (160, 1, 1), (170, 2, 8))  # (first row, chunks, frames)
    epoch = [np.arange(start, start + chunks * frames).reshape(chunks, frames) for start, chunks, frames in shapes]
    ours, reference = candidate(config, params, 0), NumpyRNNNADE(config, params, 0)
    ours.set_data(table)
    reference.set_data(table)
    np.testing.assert_allclose(ours.train_epoch(epoch, 0.05), reference.train_epoch(epoch, 0.05), **F32)
    assert_same_params(ours.params(), reference.params(), F32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_biases_and_frame_log_probs_match_the_reference(candidate, dtype):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, chunk_length=7, precision=dtype)
    params, v = random_params(config), sequences(config, 3)
    ours, reference = candidate(config, params, 0), NumpyRNNNADE(config, params, 0)
    tolerance = F32 if dtype == "float32" else F64
    for got, want in zip(ours.conditional_biases(v), reference.conditional_biases(v)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **tolerance)
    got = ours.frame_log_probs(v)
    assert got.shape == v.shape[:2]
    np.testing.assert_allclose(got, reference.frame_log_probs(v), **tolerance)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generation_from_explicit_noise_matches_the_reference(candidate, dtype):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, precision=dtype)
    params = random_params(config, scale=1.0)
    ours, reference = candidate(config, params, 0), NumpyRNNNADE(config, params, 0)
    noise = RNNNADENoise.draw(np.random.default_rng(4), config, 3, 9)
    want = reference.generate(3, 9, noise=noise)
    got = ours.generate(3, 9, noise=noise)
    assert got.shape == (3, 9, config.n_visible) and got.dtype == np.uint8
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(got, want)


def test_generation_with_own_draws_is_binary_reproducible_and_of_the_asked_shape(impl):
    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5)
    pieces = [impl(config, random_params(config, scale=1.0), 11).generate(2, 10) for _ in range(2)]
    assert pieces[0].shape == (2, 10, config.n_visible) and pieces[0].dtype == np.uint8
    assert set(np.unique(pieces[0])) == {0, 1}
    np.testing.assert_array_equal(pieces[0], pieces[1])


def test_the_frame_nade_is_the_same_model_with_the_recurrence_off(impl):
    """``n_recurrent = 0`` (the 2012 paper's NADE row): zero-size RNN arrays, every frame scored without its past and
    summing to one, and every framework the reference's update for update and draw for draw."""
    config = tiny(n_visible=8, n_hidden=5, n_recurrent=0, precision="float64")
    params = random_params(config, scale=0.8)
    assert [a.size for a in params.arrays()[4:]] == [0] * 6 and params.largest() > 0
    assert config.parameter_count(8) == sum(a.size for a in params.arrays())
    v = sequences(config, 2, T=6)
    scores = frame_log_probs(params, v)
    shuffled = frame_log_probs(params, v[:, ::-1])[:, ::-1]  # frames in another order: the same scores
    np.testing.assert_allclose(scores, shuffled, **F64)
    assert logsumexp(frame_log_probs(params, every_frame(8)[:, None])[:, 0]) == pytest.approx(0, abs=1e-12)
    ours, reference = impl(config, params, 0), NumpyRNNNADE(config, params, 0)
    np.testing.assert_allclose(ours.frame_log_probs(v), scores, **F64)
    np.testing.assert_allclose(ours.train_chunks(v, 0.05), reference.train_chunks(v, 0.05), **F64)
    assert_same_params(ours.params(), reference.params(), F64)
    noise = RNNNADENoise.draw(np.random.default_rng(4), config, 3, 5)
    np.testing.assert_array_equal(ours.generate(3, 5, noise), reference.generate(3, 5, noise))


# ------------------------------------------------------------------ learning
PATTERN = np.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [1, 0, 0, 0, 1, 1]], float)


def cycles(rng: np.random.Generator, n: int, T: int) -> np.ndarray:
    """``n`` chunks of a 4-frame cycle, each from a random phase: only memory predicts the next frame."""
    return PATTERN[(rng.integers(0, len(PATTERN), n)[:, None] + np.arange(T)) % len(PATTERN)]


def test_training_on_a_repeating_pattern_learns_the_sequence():
    """Without memory the best is log(1/4) per frame; after the first frame (a random phase: log(1/4)) the RNN-NADE
    must predict the next frame almost surely. The reference only: every framework equals it update for update."""
    config = tiny(n_hidden=8, n_recurrent=6, batch_size=8, chunk_length=8, learning_rate=0.03, precision="float64")
    rng = np.random.default_rng(0)
    train, valid = cycles(rng, 400, 8), cycles(rng, 50, 8)
    params = init_rnn_nade_params(config, 0)
    model = NumpyRNNNADE(config, params, seed=0)
    before = frame_log_probs(params, valid)
    costs = np.concatenate([model.train_chunks(train) for _ in range(2)])
    after = frame_log_probs(model.params(), valid)
    assert costs.shape == (100,) and np.isfinite(costs).all() and costs[-1] < costs[0] / 4
    assert before.mean() < -4 and after[:, 1:].mean() > -0.1 > np.log(1 / 4), (
        f"{before.mean():.2f} -> {after.mean():.2f}"
    )


# ------------------------------------------------------------------ execution modes (the ablation's)
MODES = []
for _name in CANDIDATES:
    try:
        _cls = load(_name, "rnn_nade")
    except (Unavailable, KeyError):
        continue
    MODES += [(_name, mode.name) for mode in _cls.MODES if "cpu" in mode.devices and len(_cls.MODES) > 1]


OFFERED = {"jax": ["scan", "update"], "tf": ["manual", "function", "update"], "torch": ["manual", "eager"]}


@pytest.mark.parametrize(("impl", "modes"), OFFERED.items())
def test_each_framework_offers_its_rnn_nade_modes_the_default_first(impl, modes):
    try:
        cls = load(impl, "rnn_nade")
    except Unavailable as error:
        pytest.skip(f"skipped: not installed ({error})")
    assert [m.name for m in cls.MODES] == modes and cls.mode_for("cpu") == modes[0]


@pytest.mark.parametrize(("impl", "mode"), MODES, ids=[f"{i}-{m}" for i, m in MODES])
def test_every_mode_trains_the_rnn_nade_as_the_reference(impl, mode):
    """One update, then calls of whole and shorter chunks (a new update shape each, a smaller last update): the
    reference's costs and parameters; and the ablation's equivalence check passes the mode."""
    from eval.models import plugin
    from eval.timing.ablation import TOLERANCE

    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, chunk_length=6)
    params = random_params(config)
    ours, reference = load(impl, "rnn_nade").in_mode(mode)(config, params, 0), NumpyRNNNADE(config, params, 0)
    assert ours.mode == mode
    v = sequences(config, 2, seed=9)
    np.testing.assert_allclose(ours.update(v), reference.update(v), **F32)
    for frames in (6, 3):
        chunks = sequences(config, 5, seed=frames, T=frames)
        np.testing.assert_allclose(ours.train_chunks(chunks, 0.05), reference.train_chunks(chunks, 0.05), **F32)
    assert_same_params(ours.params(), reference.params(), F32)
    assert plugin("rnn_nade").mode_difference(load(impl, "rnn_nade").in_mode(mode), config, params) <= TOLERANCE


def test_the_rnn_nade_equivalence_check_sees_a_wrong_update():
    from eval.models import plugin
    from eval.timing.ablation import TOLERANCE

    config = tiny(n_visible=12, n_hidden=6, n_recurrent=5, chunk_length=6)
    params = random_params(config)
    assert plugin("rnn_nade").mode_difference(NumpyRNNNADE, config, params) == 0.0

    class Hasty(NumpyRNNNADE):  # a port whose step is 1 % too long
        def rate(self, learning_rate=None):
            return 1.01 * super().rate(learning_rate)

    assert plugin("rnn_nade").mode_difference(Hasty, config, params) > 10 * TOLERANCE
