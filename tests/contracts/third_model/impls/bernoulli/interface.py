"""Independent bits: ``p(v) = prod_i sigmoid(b_i)^v_i (1 - sigmoid(b_i))^(1 - v_i)``, fitted by gradient ascent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from core.typed import at_least, check
from impls.common import Implementation, Model, Params


@dataclass(frozen=True)
class BernoulliConfig:
    """The ``[model]`` section of ``kind = "bernoulli"``."""

    kind: ClassVar[str] = "bernoulli"
    DERIVED: ClassVar[tuple[str, ...]] = ("n_visible", "device")

    n_visible: int = field(default=2340, metadata=at_least(1))
    learning_rate: float = 0.5
    batch_size: int = field(default=100, metadata=at_least(1))
    precision: Literal["float32", "float64"] = "float64"
    device: Literal["cpu", "cuda"] = "cpu"
    lr_schedule: Literal["constant", "linear"] = "constant"

    def __post_init__(self) -> None:
        check(self)

    @property
    def dtype(self) -> str:
        return self.precision

    def parameter_count(self, n_visible: int) -> int:
        """One bias per unit (the memory guard's measure)."""
        return n_visible

    def update_bytes(self, n_visible: int, units: int) -> int:
        """One update's windows and their gradient, in float64."""
        return units * n_visible * 8 * 2


@dataclass
class BernoulliParams(Params):
    b_v: np.ndarray


def init_bernoulli(config: BernoulliConfig, seed: object) -> BernoulliParams:
    return BernoulliParams(np.zeros(config.n_visible))


class Bernoulli(Implementation):
    """Independent bits in one framework: ``train_epoch`` ascends the mean log-likelihood of each batch."""

    def __init__(self, config: BernoulliConfig, params: BernoulliParams, seed: int) -> None:
        super().__init__(config, params, seed)
        self.backend.configure(config.precision)


MODEL = Model(
    "bernoulli", "independent bits", data="windows", partition="one", samples="windows",
    config=BernoulliConfig, params=BernoulliParams, base=Bernoulli, init=init_bernoulli,
)  # fmt: skip
