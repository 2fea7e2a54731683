"""Every installed implementation agrees with the NumPy reference, and the reference with an oracle of its own.

The reference (NumPy) is checked against independent computations written out here: the conditionals and the
free energy by enumerating every hidden state of a small RBM (and scikit-learn's ``BernoulliRBM``), one CD-1
update worked out by hand, and every recipe option against a loop-by-loop float64 CD-k written from the
`RBMConfig` documentation. Each other framework is then checked against the reference (parametrised; a framework
that is not installed skips with the reason).

``pytest tests/impls/test_impls.py --device cuda`` runs every framework under test on
the GPU against the NumPy reference on the CPU, at the same 1e-5 tolerance of
the strict float32 policy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from datasets import batch_order, build
from impls import CDNoise, RBMConfig, RBMParams, Skipped, Unavailable, available, init_params, load
from impls.common import binary_bytes, uniforms

F32 = {"rtol": 1e-5, "atol": 1e-5}
F64 = {"rtol": 1e-12, "atol": 1e-12}
REFERENCE = "numpy"
NAMES = list(available())  # every catalogued implementation, installed or not
CANDIDATES = [name for name in NAMES if name != REFERENCE]  # those checked against the reference


def constructor(name: str, device: str):
    """An implementation's constructor on ``device`` (the reference stays on the CPU); skips what cannot run."""
    status = available()[name]
    if isinstance(status, Skipped):
        pytest.skip(status.reason)
    try:
        cls = load(name)
    except Unavailable as error:
        pytest.skip(str(error))
    if device != "cpu":
        if name == REFERENCE:
            pytest.skip("the NumPy reference runs on the CPU only; it is what the GPU runs are compared with")
        if reason := cls.device_unavailable(device):
            pytest.fail(f"{reason}: --device {device} asked for a GPU this framework cannot see")
    return lambda config, params, seed: cls(replace(config, device=device), params, seed)


@pytest.fixture(params=NAMES)
def impl(request, device):
    """Every implementation, the reference included (for properties each must have on its own)."""
    return constructor(request.param, device)


@pytest.fixture(params=CANDIDATES)
def candidate(request, device):
    """Every implementation but the reference (for the comparisons with it)."""
    return constructor(request.param, device)


def small(**overrides) -> RBMConfig:
    return RBMConfig(**{"n_visible": 300, "n_hidden": 20, "batch_size": 16, "learning_rate": 0.1, **overrides})


def random_batch(config: RBMConfig, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((config.batch_size, config.n_visible)) < 0.2).astype(np.float64)


def trained_params(config: RBMConfig):
    """Non-trivial parameters (biases non-zero) so the checks are not about zeros."""
    params = init_params(config, 0)
    rng = np.random.default_rng(5)
    params.W = rng.normal(0, 0.3, params.W.shape)
    params.b_v, params.b_h = rng.normal(0, 1, config.n_visible), rng.normal(0, 1, config.n_hidden)
    return params


# ------------------------------------------------------------------ the reference against independent oracles
def energy(v: np.ndarray, h: tuple[int, ...], params: RBMParams) -> float:
    """``E(v, h) = -v.b_v - h.b_h - v W h``, summed term by term."""
    V, H = len(v), len(h)
    total = -sum(v[i] * params.b_v[i] for i in range(V)) - sum(h[j] * params.b_h[j] for j in range(H))
    return total - sum(v[i] * params.W[i][j] * h[j] for i in range(V) for j in range(H))


def enumerated(v: np.ndarray, params: RBMParams) -> tuple[float, list[float]]:
    """Free energy ``-log sum_h exp(-E(v, h))`` and ``p(h_j = 1 | v)``, by summing over all 2^H hidden states."""
    states = list(itertools.product((0, 1), repeat=len(params.b_h)))
    weights = [math.exp(-energy(v, h, params)) for h in states]
    total = sum(weights)
    probs = [sum(w for w, h in zip(weights, states) if h[j]) / total for j in range(len(params.b_h))]
    return -math.log(total), probs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reference_conditionals_and_free_energy_by_enumerating_the_hidden_states(dtype):
    config = small(n_visible=12, n_hidden=5, batch_size=6, precision=dtype)
    params = trained_params(config)
    reference = load(REFERENCE)(config, params, 0)
    v = random_batch(config)
    h = (np.random.default_rng(2).random((config.batch_size, config.n_hidden)) < 0.5).astype(float)
    tolerance = F32 if dtype == "float32" else F64
    for row in range(config.batch_size):
        free_energy, hidden = enumerated(v[row], params)
        np.testing.assert_allclose(reference.free_energy(v[row : row + 1])[0], free_energy, **tolerance)
        np.testing.assert_allclose(reference.hidden_probs(v[row : row + 1])[0], hidden, **tolerance)
        # p(v_i = 1 | h) = e^{-E(v_i = 1)} / (e^{-E(v_i = 0)} + e^{-E(v_i = 1)}): the terms without v_i cancel
        visible = [1 / (1 + math.exp(-(params.b_v[i] + sum(params.W[i][j] * h[row][j] for j in range(5)))))
                   for i in range(12)]  # fmt: skip
        np.testing.assert_allclose(reference.visible_probs(h[row : row + 1])[0], visible, **tolerance)


def test_reference_conditionals_and_free_energy_match_scikit_learn():
    neural_network = pytest.importorskip("sklearn.neural_network", reason="scikit-learn is the oracle here")
    config = small(precision="float64")
    params = trained_params(config)
    theirs = neural_network.BernoulliRBM(n_components=config.n_hidden)
    theirs.components_, theirs.intercept_hidden_, theirs.intercept_visible_ = params.W.T, params.b_h, params.b_v
    reference, v = load(REFERENCE)(config, params, 0), random_batch(config)
    np.testing.assert_allclose(reference.hidden_probs(v), theirs.transform(v), **F64)
    np.testing.assert_allclose(reference.free_energy(v), theirs._free_energy(v), **F64)


@pytest.mark.parametrize(
    ("statistics", "W", "b_v", "b_h"),
    [("samples", [[0.1], [0.0]], [0.1, -0.1], [0.1]), ("probabilities", [[0.05], [-0.05]], [0.1, -0.1], [0.0])],
)
def test_reference_cd1_update_worked_out_by_hand(statistics, W, b_v, b_h):
    """Two visible units, one hidden, zero parameters, so every probability is sigmoid(0) = 1/2.

    v0 = [1, 0]; p(h|v0) = 0.5 and u = 0.3 < 0.5: h0 = 1. The chain starts from h0: p(v|h0) = [0.5, 0.5] and
    u = [0.7, 0.2]: v1 = [0, 1]; p(h|v1) = 0.5 and u = 0.9: h1 = 0. With rate 0.1:
    samples:       dW = v0'h0 - v1'h1 = [[1], [0]];  db_v = v0 - v1 = [1, -1];  db_h = h0 - h1 = 1
    probabilities: dW = v0'0.5 - v1'0.5 = [[0.5], [-0.5]];  db_v = [1, -1];  db_h = 0.5 - 0.5 = 0
    """
    config = RBMConfig(n_visible=2, n_hidden=1, batch_size=1, learning_rate=0.1, statistics=statistics,
                       precision="float64")  # fmt: skip
    reference = load(REFERENCE)(config, RBMParams(np.zeros((2, 1)), np.zeros(2), np.zeros(1)), 0)
    noise = CDNoise(h_data=np.array([[0.3]]), v=np.array([[[0.7, 0.2]]]), h=np.array([[[0.9]]]))
    reference.cd_update(np.array([[1.0, 0.0]]), noise)
    got = reference.params()
    np.testing.assert_allclose(got.W, W, **F64)
    np.testing.assert_allclose(got.b_v, b_v, **F64)
    np.testing.assert_allclose(got.b_h, b_h, **F64)


def oracle_updates(config: RBMConfig, params: RBMParams, batches, noises, rates) -> RBMParams:
    """CD-k / PCD-k as the `RBMConfig` documentation states it, one unit at a time in float64 Python floats."""
    V, H, k = config.n_visible, config.n_hidden, config.cd_steps
    W = [[float(params.W[i][j]) for j in range(H)] for i in range(V)]
    b_v, b_h = [float(x) for x in params.b_v], [float(x) for x in params.b_h]
    velocity_W, velocity_v, velocity_h = [[0.0] * H for _ in range(V)], [0.0] * V, [0.0] * H
    chain = None

    def p_hidden(v):
        return [1 / (1 + math.exp(-(b_h[j] + sum(v[i] * W[i][j] for i in range(V))))) for j in range(H)]

    def p_visible(h):
        return [1 / (1 + math.exp(-(b_v[i] + sum(W[i][j] * h[j] for j in range(H))))) for i in range(V)]

    for batch, noise, rate in zip(batches, noises, rates):
        rate = config.learning_rate if rate is None else rate
        n = len(batch)
        v0 = [list(map(float, row)) for row in batch]
        ph0 = [p_hidden(v) for v in v0]
        h0 = [[1.0 if noise.h_data[r][j] < ph0[r][j] else 0.0 for j in range(H)] for r in range(n)]
        if config.persistent and chain is not None:
            h = chain
        elif config.chain_start == "fresh":
            h = [[1.0 if noise.h_chain[r][j] < ph0[r][j] else 0.0 for j in range(H)] for r in range(n)]
        else:
            h = h0
        for step in range(k):
            vk = [[1.0 if noise.v[step][r][i] < p else 0.0 for i, p in enumerate(p_visible(h[r]))] for r in range(n)]
            phk = [p_hidden(v) for v in vk]
            h = [[1.0 if noise.h[step][r][j] < phk[r][j] else 0.0 for j in range(H)] for r in range(n)]
        if config.persistent:
            chain = h
        positive, negative = (h0, h) if config.statistics == "samples" else (ph0, phk)
        grad_W = [[sum(v0[r][i] * positive[r][j] - vk[r][i] * negative[r][j] for r in range(n)) / n
                   - config.weight_decay * W[i][j] for j in range(H)] for i in range(V)]  # fmt: skip
        grad_v = [sum(v0[r][i] - vk[r][i] for r in range(n)) / n for i in range(V)]
        grad_h = [sum(positive[r][j] - negative[r][j] for r in range(n)) / n for j in range(H)]
        for i in range(V):
            for j in range(H):
                velocity_W[i][j] = config.momentum * velocity_W[i][j] + rate * grad_W[i][j]
                W[i][j] += velocity_W[i][j]
            velocity_v[i] = config.momentum * velocity_v[i] + rate * grad_v[i]
            b_v[i] += velocity_v[i]
        for j in range(H):
            velocity_h[j] = config.momentum * velocity_h[j] + rate * grad_h[j]
            b_h[j] += velocity_h[j]
    return RBMParams(np.array(W), np.array(b_v), np.array(b_h))


@pytest.mark.parametrize(
    "recipe",
    [
        {"statistics": "samples"},
        {"statistics": "probabilities"},
        {"cd_steps": 3, "statistics": "samples"},
        {"cd_steps": 2, "statistics": "probabilities"},
        {"persistent": True, "statistics": "samples"},
        {"persistent": True, "statistics": "probabilities", "cd_steps": 2},
        {"momentum": 0.9, "weight_decay": 0.001, "persistent": True, "statistics": "probabilities"},
        {"chain_start": "fresh"},
        {"chain_start": "fresh", "persistent": True},
    ],
    ids=lambda recipe: "-".join(f"{k}={v}" for k, v in recipe.items()),
)
def test_reference_updates_match_a_unit_by_unit_oracle(recipe):
    config = RBMConfig(n_visible=12, n_hidden=5, batch_size=4, learning_rate=0.1, precision="float64", **recipe)
    params = trained_params(config)
    rng = np.random.default_rng(3)
    updates, rates = 4, [None, 0.05, 0.025, 0.0125]  # the configured rate, then a schedule's
    batches = [random_batch(config, seed) for seed in range(updates)]
    noises = [CDNoise.draw(rng, config, config.batch_size) for _ in range(updates)]
    reference = load(REFERENCE)(config, params, 0)
    for v, noise, rate in zip(batches, noises, rates):
        reference.cd_update(v, noise, rate)
    got, want = reference.params(), oracle_updates(config, params, batches, noises, rates)
    assert got.hash != params.hash, "the updates changed the parameters"
    for name in ("W", "b_v", "b_h"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), **F64, err_msg=name)


# ------------------------------------------------------------------ every framework against the reference
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conditionals_and_free_energy_match_the_reference(candidate, dtype):
    config = small(precision=dtype)
    params = trained_params(config)
    ours, reference = candidate(config, params, 0), load(REFERENCE)(config, params, 0)
    v = random_batch(config)
    h = (np.random.default_rng(2).random((config.batch_size, config.n_hidden)) < 0.5).astype(float)
    tolerance = F32 if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(ours.hidden_probs(v), reference.hidden_probs(v), **tolerance)
    np.testing.assert_allclose(ours.visible_probs(h), reference.visible_probs(h), **tolerance)
    np.testing.assert_allclose(ours.free_energy(v), reference.free_energy(v), rtol=tolerance["rtol"], atol=1e-4)


@pytest.mark.parametrize("statistics", ["samples", "probabilities"])
@pytest.mark.parametrize(("cd_steps", "persistent", "updates"), [(1, False, 1), (3, False, 1), (1, True, 5)])
def test_cd_updates_from_explicit_noise_match_the_reference(candidate, statistics, cd_steps, persistent, updates):
    config = small(cd_steps=cd_steps, persistent=persistent, statistics=statistics)
    assert_same_updates(candidate, config, updates)


@pytest.mark.parametrize(
    "recipe",
    [
        {"momentum": 0.9, "weight_decay": 0.001, "persistent": True, "statistics": "probabilities"},
        {"chain_start": "fresh"},
        {"chain_start": "fresh", "persistent": True},
    ],
    ids=["momentum-decay-pcd", "fresh-chain", "fresh-chain-pcd"],
)
def test_recipe_options_match_the_reference(candidate, recipe):
    """Momentum, weight decay, a per-update learning rate and the original's fresh chain start, from explicit noise."""
    assert_same_updates(candidate, small(**recipe), updates=4, rates=[0.1, 0.05, 0.025, 0.0125])


def assert_same_updates(candidate, config: RBMConfig, updates: int, rates: list[float] | None = None) -> None:
    params = trained_params(config)
    rng = np.random.default_rng(3)
    batches = [random_batch(config, seed) for seed in range(updates)]
    noises = [CDNoise.draw(rng, config, config.batch_size) for _ in range(updates)]
    ours, reference = candidate(config, params, 0), load(REFERENCE)(config, params, 0)
    for v, noise, rate in zip(batches, noises, rates or [None] * updates):
        ours.cd_update(v, noise, rate)
        reference.cd_update(v, noise, rate)
    got, want = ours.params(), reference.params()
    assert got.hash != params.hash, "the update changed the parameters"
    for name in ("W", "b_v", "b_h"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), **F32, err_msg=name)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build("synthetic", cache_dir=tmp_path_factory.mktemp("cache"), log=False)


def test_same_seed_same_parameters_after_an_epoch(impl, synthetic):
    config = small(n_visible=synthetic.windows.shape[1], learning_rate=0.01)
    params = init_params(config, 0)
    (epoch,) = batch_order(synthetic, 0, config.batch_size, epochs=1)
    results = []
    for _ in range(2):
        model = impl(config, params, seed=42)
        model.set_data(synthetic.windows)
        model.train_epoch(epoch)
        results.append(model.params())
    assert results[0].hash == results[1].hash != params.hash


def test_the_windows_are_kept_as_bytes_and_train_as_given(impl, synthetic):
    """Every framework keeps its training windows as bytes (a quarter of float32's memory and of each batch's gather),
    converting a batch after its gather: windows given as floats train to the very parameters of the same bytes."""
    config = small(n_visible=synthetic.windows.shape[1], learning_rate=0.01)
    (epoch,) = batch_order(synthetic, 0, config.batch_size, epochs=1)
    trained = []
    for windows in (synthetic.windows, synthetic.windows.astype(np.float32)):
        model = impl(config, init_params(config, 0), seed=5)
        model.set_data(windows)
        assert "uint8" in str(model.data.dtype)  # numpy, torch, tf and jax spell it alike
        model.train_epoch(epoch)
        trained.append(model.params())
    assert trained[0].hash == trained[1].hash


def test_windows_that_are_not_binary_are_refused_and_bytes_are_copied():
    with pytest.raises(ValueError, match="binary"):
        binary_bytes(np.array([[0.0, 0.5], [1.0, 0.0]]))
    from impls.rnn_rbm.interface import RNNRBMConfig, init_rnn_rbm_params

    config = RNNRBMConfig(n_visible=2, n_hidden=3, n_recurrent=2)
    with pytest.raises(ValueError, match="binary"):  # the sequence models' frame tables alike
        load("numpy", "rnn_rbm")(config, init_rnn_rbm_params(config, 0), 0).set_data(np.array([[0.0, 0.5]]))
    given = np.zeros((2, 3), np.uint8)
    kept = binary_bytes(given)
    kept[0, 0] = 1
    assert given[0, 0] == 0 and kept.dtype == np.uint8


def test_uniforms_are_numpys_own_stream_in_every_case():
    """The fast float32 path gives ``rng.random``'s numbers, and leaves the generator where it would: even counts,
    an odd one (a half kept for the next call), float64, and a bit generator other than PCG64; the stream goes on
    as NumPy's would."""
    shapes = [(15, 2, 7, 10), (3, 5), (4,), (3, 1, 2, 6), (1,), (2, 3)]  # (3, 5) and (1,) odd: a half left over
    for bit_generator, dtype in [(np.random.PCG64, np.float32), (np.random.PCG64, np.float64),
                                 (np.random.SFC64, np.float32)]:  # fmt: skip
        ours, numpys = np.random.Generator(bit_generator(7)), np.random.Generator(bit_generator(7))
        for shape in shapes:
            drawn, expected = uniforms(ours, shape, dtype), numpys.random(shape, dtype)
            assert drawn.shape == expected.shape and drawn.dtype == expected.dtype
            np.testing.assert_array_equal(drawn, expected)
        np.testing.assert_array_equal(ours.random(5, np.float32), numpys.random(5, np.float32))  # the stream goes on
    ours, numpys = np.random.default_rng(3), np.random.default_rng(3)  # drawn into a given array: the same numbers
    for shape in [(2, 3, 4), (3, 5), (2, 3, 4)]:
        kept = np.full(shape, np.nan, np.float32)
        drawn = uniforms(ours, shape, np.float32, out=kept)  # (3, 5): an odd count, NumPy's own path
        assert np.shares_memory(drawn, kept) and drawn.shape == shape
        np.testing.assert_array_equal(kept, numpys.random(shape, np.float32))


def test_ragged_batches_of_the_originals_loop_train_reproducibly(impl, synthetic):
    config = small(n_visible=synthetic.windows.shape[1], batch_size=3, learning_rate=0.01)
    (epoch,) = batch_order(synthetic, 0, config.batch_size, epochs=1, mode="seed")
    assert len({len(batch) for batch in epoch}) > 1, "the order has batches of different sizes"
    results = []
    for _ in range(2):
        model = impl(config, init_params(config, 0), seed=3)
        model.set_data(synthetic.windows)
        model.train_epoch(epoch)
        results.append(model.params())
    assert results[0].hash == results[1].hash and results[0].finite()


@pytest.mark.parametrize(("chain_start", "persistent", "cd_steps"), [("fresh", False, 2), ("shared", True, 1)])
def test_torch_epochs_draw_the_numbers_of_fresh_tensors(synthetic, chain_start, persistent, cd_steps):
    """PyTorch's CPU epoch draws each update's noise into tensors it keeps per batch shape: the numbers, and their
    order, must be those of fresh tensors from the same generator. The epoch is replayed update by update from noise
    drawn that way (ragged batches, so the kept tensors change shape; both chain starts, PCD)."""
    torch = pytest.importorskip("torch")
    config = small(n_visible=synthetic.windows.shape[1], batch_size=3, learning_rate=0.05, chain_start=chain_start,
                   persistent=persistent, cd_steps=cd_steps)  # fmt: skip
    (epoch,) = batch_order(synthetic, 0, config.batch_size, epochs=1, mode="seed")
    assert len({len(batch) for batch in epoch}) > 1, "the order has batches of different sizes"
    params, windows = init_params(config, 0), binary_bytes(synthetic.windows)
    trained = load("torch")(config, params, seed=11)
    trained.set_data(windows)
    trained.train_epoch(epoch)
    replayed, generator = load("torch")(config, params, seed=11), torch.Generator().manual_seed(11)
    chains = None
    for rows in epoch:
        chains = chains if persistent and chains else len(rows)
        H, V, k = config.n_hidden, config.n_visible, config.cd_steps
        h_data = torch.rand((len(rows), H), generator=generator)
        h_chain = torch.rand((len(rows), H), generator=generator) if chain_start == "fresh" else None
        v, h = torch.rand((k, chains, V), generator=generator), torch.rand((k, chains, H), generator=generator)
        replayed.cd_update(windows[rows], CDNoise(h_data, v, h, h_chain))
    assert trained.params().hash == replayed.params().hash != params.hash


def test_training_lowers_reconstruction_error(impl, synthetic):
    from eval.scoring.likelihood import reconstruction_cross_entropy

    config = small(n_visible=synthetic.windows.shape[1], n_hidden=30, learning_rate=0.05)
    params = init_params(config, 0)
    model = impl(config, params, seed=0)
    model.set_data(synthetic.windows)
    validation = synthetic.subset("valid")
    before = reconstruction_cross_entropy(params, validation)
    for epoch in batch_order(synthetic, 0, config.batch_size, epochs=5):
        model.train_epoch(epoch)
    after = reconstruction_cross_entropy(model.params(), validation)
    assert after < 0.5 * before


def test_samples_are_binary_and_of_the_right_shape(impl):
    config = small()
    model = impl(config, trained_params(config), seed=0)
    for start in ("zeros", "random", random_batch(config)[:4]):
        samples = model.sample(4, steps=3, start=start)
        assert samples.shape == (4, config.n_visible) and samples.dtype == np.uint8
        assert set(np.unique(samples)) <= {0, 1} and samples.any()


def test_timings_leave_parameters_and_random_stream_untouched(impl):
    config = small()
    timed, twin = (impl(config, trained_params(config), seed=0) for _ in range(2))
    assert 0 < timed.five_products_ms(config.batch_size, repeats=2) < np.inf
    assert 0 < timed.draw_ms(config.batch_size, repeats=2) < np.inf
    assert timed.params().hash == twin.params().hash
    np.testing.assert_array_equal(timed.sample(8, steps=2), twin.sample(8, steps=2))


def test_missing_framework_is_reported_as_skipped(monkeypatch):
    import importlib.util

    import impls

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    status = impls.available()
    assert isinstance(status["torch"], Skipped) and "not installed" in status["torch"].reason
    assert not isinstance(status["numpy"], Skipped)


def test_seed_initialisation_is_the_originals_mean_mistake():
    config = RBMConfig()
    W = init_params(config, 0, scheme="seed").W
    assert abs(W.mean() - 0.01) < 0.01 and abs(W.std() - 1) < 0.01
    assert abs(init_params(config, 0).W.std() - 0.01) < 1e-4


def test_products_are_as_precise_as_the_strict_float32_policy_says(impl):
    """TF32 keeps 10 mantissa bits: with dense inputs its products err by about 1e-3 relative, strict float32
    by about 1e-6. A framework that silently computes in TF32 (JAX's default on GPUs) fails here."""
    rng = np.random.default_rng(7)
    config = small(n_visible=2000, n_hidden=64, batch_size=32)
    params = trained_params(config)
    params.W = rng.normal(0, 0.05, params.W.shape) * (1 + rng.random(params.W.shape) / 3)  # all mantissa bits
    params.b_h = np.zeros(config.n_hidden)
    v = (rng.random((32, 2000)) < 0.5).astype(np.float64)
    exact = v @ params.W  # float64 on the host; |x| ~ 1.5, where float32 sigmoids invert well
    probs = impl(config, params, 0).hidden_probs(v).astype(np.float64)
    logits = np.log(probs) - np.log1p(-probs)
    mask = np.abs(exact) < 3
    assert mask.mean() > 0.9
    error = np.abs(logits - exact)[mask].max()
    assert error < 1e-4, f"products less precise than float32 ({error:.1e}; TF32 gives ~1e-3)"
