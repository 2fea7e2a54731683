"""Every installed implementation agrees with the NumPy reference (parametrised; missing frameworks skip).

``pytest tests/test_impls.py --device cuda`` runs every framework under test on
the GPU against the NumPy reference on the CPU, at the same 1e-5 tolerance of
the strict float32 policy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from datasets import batch_order, build
from impls import IMPLEMENTATIONS, CDNoise, RBMConfig, Skipped, Unavailable, available, init_params, load

F32 = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request, device):
    """An implementation's constructor, building it on ``--device`` (the reference stays on the CPU)."""
    status = available()[request.param]
    if isinstance(status, Skipped):
        pytest.skip(status.reason)
    try:
        cls = load(request.param)
    except Unavailable as error:
        pytest.skip(str(error))
    if device != "cpu":
        if request.param == "numpy":
            pytest.skip("the NumPy reference runs on the CPU only; it is what the GPU runs are compared with")
        if reason := cls.device_unavailable(device):
            pytest.fail(f"{reason}: --device {device} asked for a GPU this framework cannot see")
    return lambda config, params, seed: cls(replace(config, device=device), params, seed)


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conditionals_and_free_energy_match_the_reference(impl, dtype):
    config = small(precision=dtype)
    params = trained_params(config)
    ours, reference = impl(config, params, 0), load("numpy")(config, params, 0)
    v = random_batch(config)
    h = (np.random.default_rng(2).random((config.batch_size, config.n_hidden)) < 0.5).astype(float)
    tolerance = F32 if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(ours.hidden_probs(v), reference.hidden_probs(v), **tolerance)
    np.testing.assert_allclose(ours.visible_probs(h), reference.visible_probs(h), **tolerance)
    np.testing.assert_allclose(ours.free_energy(v), reference.free_energy(v), rtol=tolerance["rtol"], atol=1e-4)


@pytest.mark.parametrize("statistics", ["samples", "probabilities"])
@pytest.mark.parametrize(("cd_steps", "persistent", "updates"), [(1, False, 1), (3, False, 1), (1, True, 5)])
def test_cd_updates_from_explicit_noise_match_the_reference(impl, statistics, cd_steps, persistent, updates):
    config = small(cd_steps=cd_steps, persistent=persistent, statistics=statistics)
    assert_same_updates(impl, config, updates)


@pytest.mark.parametrize(
    "recipe",
    [
        {"momentum": 0.9, "weight_decay": 0.001, "persistent": True, "statistics": "probabilities"},
        {"chain_start": "fresh"},
        {"chain_start": "fresh", "persistent": True},
    ],
    ids=["momentum-decay-pcd", "fresh-chain", "fresh-chain-pcd"],
)
def test_recipe_options_match_the_reference(impl, recipe):
    """Momentum, weight decay, a per-update learning rate and the original's fresh chain start, from explicit noise."""
    assert_same_updates(impl, small(**recipe), updates=4, rates=[0.1, 0.05, 0.025, 0.0125])


def assert_same_updates(impl, config: RBMConfig, updates: int, rates: list[float] | None = None) -> None:
    params = trained_params(config)
    rng = np.random.default_rng(3)
    batches = [random_batch(config, seed) for seed in range(updates)]
    noises = [CDNoise.draw(rng, config, config.batch_size) for _ in range(updates)]
    ours, reference = impl(config, params, 0), load("numpy")(config, params, 0)
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
