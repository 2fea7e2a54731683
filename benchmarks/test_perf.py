"""pytest-benchmark micro-benchmarks per implementation, run by ``tox -e perf``.

Kept outside tests/ so that plain ``pytest`` does not collect them.

Each training-step benchmark records its framework's time for the five dense
products of one CD-1 step: the fastest of them, measured in the same session,
is the roofline that ``python -m eval perf-check`` divides by.
"""

from __future__ import annotations

import numpy as np
import pytest

from eval.scoring.likelihood import pseudo_log_likelihood
from impls import RBMConfig, init_params
from tests.impls.test_impls import impl  # noqa: F401 — the parametrised implementation fixture

CONFIG = RBMConfig()
RNG = np.random.default_rng(0)
DATA = (RNG.random((1000, CONFIG.n_visible)) < 0.05).astype(np.uint8)
BATCHES = list(RNG.permutation(1000).reshape(10, 100))


@pytest.fixture
def model(impl):  # noqa: F811
    rbm = impl(CONFIG, init_params(CONFIG, 0), 0)
    rbm.set_data(DATA)
    rbm.train_epoch(BATCHES)  # warm-up and compilation outside the timing
    rbm.sample(100, 1, "random")
    return rbm


def test_train_step(benchmark, model):
    """Ten CD-1 updates of 100 windows, with this framework's five-product time recorded beside it."""
    benchmark.extra_info["five_products_ms"] = model.five_products_ms(CONFIG.batch_size)
    benchmark.extra_info["updates"] = len(BATCHES)
    benchmark.extra_info["batch"] = CONFIG.batch_size
    benchmark(model.train_epoch, BATCHES)


def test_gibbs_step(benchmark, model):
    benchmark(model.sample, 100, 1, "random")


def test_exact_pl(benchmark):
    params = init_params(CONFIG, 0)
    benchmark(pseudo_log_likelihood, params, DATA[:100])
