"""The model contract, over every framework x model the catalogue lists: one life cycle, the same for all.

Read from the catalogue (`impls.frameworks`, `impls.models`), so a new framework file or model folder is checked
here without a line of this file changing. What each model computes is checked against its NumPy reference in
``test_impls.py`` (the window RBM) and ``test_rnn_rbm.py`` (the RNN-RBM); here, what every model promises.
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

import impls
from impls import Available, available

SMALL = {"n_hidden": 4, "n_recurrent": 3, "cd_steps": 1, "chunk_length": 5}  # where a model has the key
PAIRS = [(framework, model) for framework, item in impls.frameworks().items() for model in item.models]


def tiny(model: impls.Model, n_visible: int = 6):
    """The model's config at a tiny size (its own defaults otherwise), float64 on the CPU."""
    names = {f.name for f in fields(model.config)}
    changes = {k: v for k, v in SMALL.items() if k in names}
    return replace(model.config(), n_visible=n_visible, batch_size=2, precision="float64", device="cpu", **changes)


def data_and_batches(model: impls.Model, config) -> tuple[np.ndarray, list[np.ndarray]]:
    """Training rows and one epoch of batches of row indices, in the shape the model's data takes."""
    rows = (np.random.default_rng(0).random((12, config.n_visible)) < 0.3).astype(np.uint8)
    if model.data == "sequences":  # updates of (chunks, frames) rows of the frame table
        return rows, [np.arange(10).reshape(2, 5), np.arange(2, 12).reshape(2, 5)]
    return rows, [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]


@pytest.fixture(params=PAIRS, ids=[f"{f}-{m}" for f, m in PAIRS])
def built(request):
    framework, name = request.param
    if not isinstance(available()[framework], Available):
        pytest.skip(available()[framework].reason)
    model = impls.models()[name]
    config = tiny(model)
    init = model.init(config, np.random.SeedSequence(0))
    return framework, model, config, init, impls.load(framework, name)(config, init, 7)


def test_the_catalogue_finds_each_model_folder_and_file():
    for name, model in impls.models().items():
        assert model.name == name and issubclass(model.base, impls.Implementation)
        assert issubclass(model.params, impls.Params) and model.config.kind == name
    assert {("numpy", "rbm"), ("numpy", "rnn_rbm")} <= set(PAIRS)


def test_the_life_cycle_trains_and_returns_copies(built):
    _, model, config, init, implementation = built
    assert implementation.device_unavailable("cpu") is None
    assert implementation.framework_version() not in ("", "not installed")
    data, batches = data_and_batches(model, config)
    implementation.set_data(data)
    costs = implementation.train_epoch(batches, 0.1)
    assert costs is None or np.shape(costs) == (len(batches),)
    params = implementation.params()
    assert type(params) is model.params and params.names() == init.names() and params.finite()
    assert all(a.dtype == np.float64 for a in params.arrays())
    assert params.hash != init.hash, "an epoch at rate 0.1 changes the parameters"
    params.arrays()[0][...] = 1e6  # the caller's copy: the model's own weights are untouched
    assert implementation.params().largest() < 1e6
    copy = params.astype("float32")
    copy.arrays()[0][...] = 0
    assert params.arrays()[0].max() == 1e6  # astype copies too


def test_samples_are_binary_in_the_models_own_shape(built):
    _, model, config, _, implementation = built
    data, _ = data_and_batches(model, config)
    implementation.set_data(data)
    samples = implementation.sample(3, 4)  # windows: 4 Gibbs steps; pieces: 4 frames
    shape = (3, 4, config.n_visible) if model.samples == "pieces" else (3, config.n_visible)
    assert samples.shape == shape and samples.dtype == np.uint8 and set(np.unique(samples)) <= {0, 1}


def test_the_same_init_reaches_every_framework_bit_for_bit():
    for name, model in impls.models().items():
        config = tiny(model)
        hashes = set()
        for framework in model_frameworks(name):
            init = model.init(config, np.random.SeedSequence(0))
            hashes.add(impls.load(framework, name)(config, init, 0).params().hash)
        assert len(hashes) == 1, name


def model_frameworks(name: str) -> list[str]:
    return [
        f for f, item in impls.frameworks().items() if name in item.models and isinstance(available()[f], Available)
    ]
