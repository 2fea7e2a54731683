"""Independent bits in PyTorch: the NumPy file line for line."""

from __future__ import annotations

import numpy as np
import torch
from impls.bernoulli.interface import Bernoulli, BernoulliParams

from impls.backends import torch as backend


class TorchBernoulli(Bernoulli):
    name = "torch"
    backend = backend

    def __init__(self, config, params, seed):
        super().__init__(config, params, seed)
        self.dtype = backend.dtype(config.dtype)
        self.b_v = torch.as_tensor(np.asarray(params.b_v), dtype=self.dtype).clone()
        self.generator = torch.Generator().manual_seed(int(seed))

    def set_data(self, data):
        self.data = torch.as_tensor(np.asarray(data), dtype=self.dtype)

    def train_epoch(self, batches, learning_rate=None):
        for rows in batches:
            v = self.data[torch.as_tensor(rows)]
            self.b_v += self.rate(learning_rate) * (v.mean(0) - torch.sigmoid(self.b_v))

    def params(self):
        return BernoulliParams(self.b_v.numpy()).astype(np.float64)

    def sample(self, n, *args, **kwargs):
        u = torch.rand((n, len(self.b_v)), generator=self.generator, dtype=self.dtype)
        return (u < torch.sigmoid(self.b_v)).numpy().astype(np.uint8)
