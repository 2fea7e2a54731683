"""Independent bits in NumPy: the specification."""

from __future__ import annotations

import numpy as np
from impls.bernoulli.interface import Bernoulli, BernoulliParams

from impls.backends import numpy as backend


class NumpyBernoulli(Bernoulli):
    name = "numpy"
    backend = backend

    def __init__(self, config, params, seed):
        super().__init__(config, params, seed)
        self.b_v = np.array(params.b_v, config.dtype)
        self.rng = np.random.default_rng(seed)

    def set_data(self, data):
        self.data = np.asarray(data, self.b_v.dtype)

    def train_epoch(self, batches, learning_rate=None):
        for rows in batches:
            self.b_v += self.rate(learning_rate) * (self.data[rows].mean(0) - 1 / (1 + np.exp(-self.b_v)))

    def params(self):
        return BernoulliParams(self.b_v).astype(np.float64)

    def sample(self, n, *args, **kwargs):
        return (self.rng.random((n, len(self.b_v))) < 1 / (1 + np.exp(-self.b_v))).astype(np.uint8)
