"""PyTorch implementation: the reference line for line, tensors kept on the device."""

from __future__ import annotations

import numpy as np
import torch

from impls.base import RBM, CDNoise, Params, RBMConfig


class TorchRBM(RBM):
    """Binary RBM trained by CD-k / PCD-k with PyTorch (eager; in-place updates, no host copies)."""

    name = "torch"

    def __init__(self, config: RBMConfig, params: Params, seed: int) -> None:
        super().__init__(config, params, seed)
        torch.use_deterministic_algorithms(True)
        self.device = torch.device(config.device)
        self.dtype = getattr(torch, config.dtype)
        self.W, self.b_v, self.b_h = (self._tensor(a) for a in (params.W, params.b_v, params.b_h))
        self.generator = torch.Generator(self.device).manual_seed(int(seed))
        self.chain: torch.Tensor | None = None
        self.data: torch.Tensor | None = None

    @staticmethod
    def framework_version() -> str:
        return torch.__version__

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device).clone()

    @staticmethod
    def _bernoulli(u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``1.0 where u < p``: ``ceil(p - u)`` is exactly that (p - u > 0 iff u < p), in one fused pass."""
        return torch.sub(p, u).ceil_()

    def _uniform(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = generator or self.generator
        return torch.rand(shape, generator=generator, dtype=self.dtype, device=self.device)

    def set_data(self, windows: np.ndarray) -> None:
        self.data = self._tensor(windows)

    @torch.no_grad()
    def train_epoch(self, batches: list[np.ndarray]) -> None:
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        flat = torch.as_tensor(np.concatenate(batches).astype(np.int64), device=self.device)  # one copy an epoch
        for rows in flat.split([len(b) for b in batches]):
            v = self.data.index_select(0, rows)
            chains = len(v) if self.chain is None else len(self.chain)
            noise = CDNoise(self._uniform(len(v), H), self._uniform(k, chains, V), self._uniform(k, chains, H))
            self._cd_update(v, noise)

    def cd_update(self, v: np.ndarray, noise: CDNoise) -> None:
        self._cd_update(self._tensor(v), CDNoise(*(self._tensor(u) for u in (noise.h_data, noise.v, noise.h))))

    @torch.no_grad()
    def _cd_update(self, v0: torch.Tensor, noise: CDNoise) -> None:
        config = self.config
        ph0 = torch.sigmoid(torch.addmm(self.b_h, v0, self.W))
        h0 = self._bernoulli(noise.h_data, ph0)
        h = self.chain if config.persistent and self.chain is not None else h0
        for step in range(config.cd_steps):
            pv = torch.sigmoid(torch.addmm(self.b_v, h, self.W.T))
            vk = self._bernoulli(noise.v[step], pv)
            phk = torch.sigmoid(torch.addmm(self.b_h, vk, self.W))
            h = self._bernoulli(noise.h[step], phk)
        if config.persistent:
            self.chain = h
        positive = h0 if config.statistics == "samples" else ph0
        negative = h if config.statistics == "samples" else phk
        rate = config.learning_rate
        self.W.addmm_(v0.T, positive, alpha=rate / len(v0)).addmm_(vk.T, negative, alpha=-rate / len(vk))
        self.b_v.add_(v0.mean(0) - vk.mean(0), alpha=rate)
        self.b_h.add_(positive.mean(0) - negative.mean(0), alpha=rate)

    @torch.no_grad()
    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        return torch.sigmoid(torch.addmm(self.b_h, self._tensor(v), self.W)).cpu().numpy()

    @torch.no_grad()
    def visible_probs(self, h: np.ndarray) -> np.ndarray:
        return torch.sigmoid(torch.addmm(self.b_v, self._tensor(h), self.W.T)).cpu().numpy()

    @torch.no_grad()
    def free_energy(self, v: np.ndarray) -> np.ndarray:
        v = self._tensor(v)
        return (-(v @ self.b_v) - torch.nn.functional.softplus(torch.addmm(self.b_h, v, self.W)).sum(1)).cpu().numpy()

    @torch.no_grad()
    def sample(self, n: int, steps: int, start: str | np.ndarray = "zeros") -> np.ndarray:
        start_rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=self.generator)))
        v = self._tensor(self._start(n, start, start_rng))
        for _ in range(steps):
            h = (self._uniform(n, self.config.n_hidden) < torch.sigmoid(torch.addmm(self.b_h, v, self.W))).to(
                self.dtype
            )
            v = (self._uniform(n, self.config.n_visible) < torch.sigmoid(torch.addmm(self.b_v, h, self.W.T))).to(
                self.dtype
            )
        return v.cpu().numpy().astype(np.uint8)

    @torch.no_grad()
    def five_products_ms(self, batch: int, repeats: int = 50) -> float:
        v, h = (self._tensor(a) for a in self.timing_batch(batch))
        v1, h1 = 1 - v, 1 - h
        return self.best_ms(
            lambda: self._synchronize(v @ self.W, h @ self.W.T, v1 @ self.W, v.T @ h, v1.T @ h1), repeats
        )

    def draw_ms(self, batch: int, repeats: int = 50) -> float:
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        generator = torch.Generator(self.device).manual_seed(0)
        shapes = (batch, H), (k, batch, V), (k, batch, H)
        return self.best_ms(
            lambda: self._synchronize(*(self._uniform(*s, generator=generator) for s in shapes)), repeats
        )

    def _synchronize(self, *results: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Wait for queued GPU work, so a timing covers it (a no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return results

    def params(self) -> Params:
        return Params(*(t.cpu().numpy() for t in (self.W, self.b_v, self.b_h))).astype(np.float64)
