"""PyTorch implementation: the reference line for line, tensors kept on the device.

Three modes (`MODES`): ``eager``; ``compile``, one update through ``torch.compile`` (the noise drawn
eagerly, so both draw the same numbers); and on a GPU ``cuda-graph``, where the default shape is
launch-bound (a CD-1 step is a handful of tiny kernels): each update is captured once into a CUDA graph and
replayed per batch, one copy of the batch's row indices and one replay instead of about twenty launches. If
capture fails the epoch runs eagerly and `precision_settings` says so.
"""

from __future__ import annotations

import numpy as np
import torch

from impls.backends import torch as backend
from impls.common import Mode, binary_bytes
from impls.rbm.interface import RBM, CDNoise, RBMConfig, RBMParams


def scaled_add(target: torch.Tensor, gradient: torch.Tensor, rate: float | torch.Tensor) -> torch.Tensor:
    """``target += rate * gradient`` in one pass (``alpha``, a fused multiply-add: within a rounding of the
    reference's product then sum); a tensor rate (``compile``) as a product."""
    return target.add_(gradient * rate) if isinstance(rate, torch.Tensor) else target.add_(gradient, alpha=rate)


def scaled_product(
    target: torch.Tensor, a: torch.Tensor, b: torch.Tensor, rate: float | torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """``target = beta * target + rate * a @ b`` in one BLAS call (``alpha``, ``beta``); a tensor rate (``compile``)
    scales ``b`` first."""
    if isinstance(rate, torch.Tensor):
        return target.addmm_(a, b * rate, beta=beta)
    return target.addmm_(a, b, beta=beta, alpha=rate)


class TorchRBM(RBM):
    """Binary RBM trained by CD-k / PCD-k with PyTorch (in-place updates, no host copies inside an epoch)."""

    name = "torch"
    backend = backend
    MODES = (
        Mode("cuda-graph", "each update captured once as a CUDA graph and replayed", ("cuda",)),
        Mode("eager", "one kernel per operation, dispatched from Python"),
        Mode("compile", "torch.compile of one update (inductor); the noise drawn eagerly"),
    )

    def __init__(self, config: RBMConfig, params: RBMParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's determinism and precision switches
        self.device = torch.device(config.device)
        self.dtype = backend.dtype(config.dtype)
        self.W, self.b_v, self.b_h = (self._tensor(a) for a in (params.W, params.b_v, params.b_h))
        self.velocity = [torch.zeros_like(t) for t in (self.W, self.b_v, self.b_h)]
        self.generator = torch.Generator(self.device).manual_seed(int(seed))
        self.chain: torch.Tensor | None = None
        self.data: torch.Tensor | None = None
        self.graphs: dict[tuple[int, int], tuple] = {}  # (batch, chains) -> (graph, rows buffer, rate buffer)
        self.graph_error = ""
        self._batch_buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # the CPU's batch, as bytes and floats
        self._noise_buffers: tuple[tuple[int, int], dict] | None = None  # (batch, chains) and the CPU's noise tensors
        self._update = torch.compile(self._cd_update, dynamic=False) if self.mode == "compile" else self._cd_update

    def precision_settings(self) -> dict[str, str]:
        settings = super().precision_settings()
        settings["torch.mode"] = f"eager ({self.graph_error})" if self.graph_error else self.mode
        return settings

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device).clone()

    @staticmethod
    def _bernoulli(u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``1.0 where u < p``: ``ceil(p - u)`` is exactly that (p - u > 0 iff u < p), in one fused pass."""
        return torch.sub(p, u).ceil_()

    @staticmethod
    def _bernoulli_(u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """`_bernoulli` written over ``p``, for probabilities not needed after their draw (the visible layer's):
        the same numbers, without a new tensor of the layer's size."""
        return p.sub_(u).ceil_()

    def _uniform(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = generator or self.generator
        return torch.rand(shape, generator=generator, dtype=self.dtype, device=self.device)

    def _noise(self, batch: int, chains: int) -> CDNoise:
        """One update's uniforms. On the CPU they are drawn into tensors kept for the shape (the same numbers): a fresh
        0.9 MB tensor an update cost about 3 % of the default update in paired epochs. On a GPU they are fresh
        tensors, which its caching allocator hands out at no cost and a captured graph owns."""
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        out: dict[str, torch.Tensor] = {}
        if self.device.type == "cpu":
            if self._noise_buffers is None or self._noise_buffers[0] != (batch, chains):
                shapes = {"h_data": (batch, H), "h_chain": (batch, H), "v": (k, chains, V), "h": (k, chains, H)}
                kept = {name: torch.empty(shape, dtype=self.dtype) for name, shape in shapes.items()}
                self._noise_buffers = ((batch, chains), kept)
            out = self._noise_buffers[1]

        def draw(name: str, *shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=self.generator, dtype=self.dtype, device=self.device, out=out.get(name))

        h_data = draw("h_data", batch, H)
        h_chain = draw("h_chain", batch, H) if self.config.chain_start == "fresh" else None
        return CDNoise(h_data, draw("v", k, chains, V), draw("h", k, chains, H), h_chain)

    def set_data(self, windows: np.ndarray) -> None:
        self.data = torch.as_tensor(binary_bytes(windows), device=self.device)  # bytes: each batch converted

    def _batch(self, rows: torch.Tensor) -> torch.Tensor:
        """The windows ``rows`` in the model's dtype: gathered as bytes, then converted; on the CPU into tensors kept
        for the batch size (1 % of the default update in paired epochs), on a GPU into its allocator's."""
        if self.device.type != "cpu":
            return self.data.index_select(0, rows).to(self.dtype)
        if self._batch_buffers is None or len(self._batch_buffers[0]) != len(rows):
            shape = (len(rows), self.data.shape[1])
            self._batch_buffers = (torch.empty(shape, dtype=self.data.dtype), torch.empty(shape, dtype=self.dtype))
        gathered, converted = self._batch_buffers
        return converted.copy_(torch.index_select(self.data, 0, rows, out=gathered))

    def _rate(self, learning_rate: float | None) -> float | torch.Tensor:
        """The rate; compiled, a tensor (a new rate of a schedule does not recompile)."""
        rate = self.rate(learning_rate)
        return torch.tensor(rate, dtype=self.dtype, device=self.device) if self.mode == "compile" else rate

    @torch.no_grad()
    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> None:
        rate = self._rate(learning_rate)
        flat = torch.as_tensor(np.concatenate(batches).astype(np.int64), device=self.device)  # one copy an epoch
        for rows in flat.split([len(b) for b in batches]):
            chains = len(rows) if self.chain is None else len(self.chain)
            ready = not self.config.persistent or self.chain is not None  # PCD's first update creates the chain
            step = self._graph(len(rows), chains) if self.mode == "cuda-graph" and ready else None
            if step is None:
                self._update(self._batch(rows), self._noise(len(rows), chains), rate)
            else:
                graph, rows_buffer, rate_buffer = step
                rows_buffer.copy_(rows)
                rate_buffer.fill_(rate)
                graph.replay()
        self._synchronize()

    def _graph(self, batch: int, chains: int) -> tuple | None:
        """One CD update captured as a CUDA graph for this batch shape (None: run eagerly)."""
        if self.graph_error:
            return None
        key = (batch, chains)
        if key not in self.graphs:
            try:
                rows = torch.zeros(batch, dtype=torch.int64, device=self.device)
                rate = torch.zeros((), dtype=self.dtype, device=self.device)
                graph = torch.cuda.CUDAGraph()
                graph.register_generator_state(self.generator)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side), torch.cuda.graph(graph):
                    self._cd_update(self._batch(rows), self._noise(batch, chains), rate)
                torch.cuda.current_stream().wait_stream(side)
                self.graphs[key] = (graph, rows, rate)
            except Exception as error:  # graphs are an optimisation: any failure keeps the eager path
                self.graph_error = f"{type(error).__name__}: {error}"[:200]
                return None
        return self.graphs[key]

    def cd_update(self, v: np.ndarray, noise: CDNoise, learning_rate: float | None = None) -> None:
        noise = CDNoise(*(None if u is None else self._tensor(u) for u in noise))
        self._update(self._tensor(v), noise, self._rate(learning_rate))

    @torch.no_grad()
    def _cd_update(self, v0: torch.Tensor, noise: CDNoise, rate: float | torch.Tensor) -> None:
        config = self.config
        ph0 = torch.addmm(self.b_h, v0, self.W).sigmoid_()
        h0 = self._bernoulli(noise.h_data, ph0)
        if config.persistent and self.chain is not None:
            h = self.chain
        elif noise.h_chain is not None:  # the original's gibbs_sample draws its own first hidden state
            h = self._bernoulli(noise.h_chain, ph0)
        else:
            h = h0
        for step in range(config.cd_steps):
            vk = self._bernoulli_(noise.v[step], torch.addmm(self.b_v, h, self.W.T).sigmoid_())  # p(v | h), sampled
            phk = torch.addmm(self.b_h, vk, self.W).sigmoid_()
            h = self._bernoulli(noise.h[step], phk)
        if config.persistent:
            if self.chain is None:
                self.chain = h.clone()
            else:
                self.chain.copy_(h)  # in place: a captured graph keeps writing the same buffer
        positive = h0 if config.statistics == "samples" else ph0
        negative = h if config.statistics == "samples" else phk
        # velocity = momentum * velocity + rate * (v0^T h0 / n - vk^T hk / m - decay * W); parameter += velocity:
        # the momentum and the rate inside the two products (BLAS's beta, the statistics scaled), not four more
        # passes over W (0.97x the default update in paired epochs, within float32 rounding of the reference)
        velocity_W = self.velocity[0]
        scaled_product(velocity_W, v0.T, positive, rate / len(v0), config.momentum)
        scaled_product(velocity_W, vk.T, negative, -rate / len(vk))
        if config.weight_decay:
            scaled_add(velocity_W, self.W, -rate * config.weight_decay)
        self.W.add_(velocity_W)
        gradients = (v0.mean(0) - vk.mean(0), positive.mean(0) - negative.mean(0))
        for parameter, velocity, gradient in zip((self.b_v, self.b_h), self.velocity[1:], gradients):
            scaled_add(velocity.mul_(config.momentum), gradient, rate)  # momentum 0: this step's change alone
            parameter.add_(velocity)

    def persistent_chain(self) -> np.ndarray | None:
        return None if self.chain is None else self.chain.cpu().numpy()

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
        seed = torch.randint(2**31, (1,), generator=self.generator, device=self.device)
        v = self._tensor(self._start(n, start, np.random.default_rng(int(seed))))
        for _ in range(steps):
            h = self._bernoulli(self._uniform(n, self.config.n_hidden), torch.sigmoid(torch.addmm(self.b_h, v, self.W)))
            v = self._bernoulli(
                self._uniform(n, self.config.n_visible), torch.sigmoid(torch.addmm(self.b_v, h, self.W.T))
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
            torch.cuda.synchronize(self.device)
        return results

    def params(self) -> RBMParams:
        return RBMParams(*(t.cpu().numpy() for t in (self.W, self.b_v, self.b_h))).astype(np.float64)
