"""Reference throughput measured beside the implementations: scikit-learn's BernoulliRBM.

``python -m eval.timing.sklearn_reference OUT.json V H BATCH`` runs in its own process with the
same thread settings as the implementations. (The roofline — the fastest
framework's time for the five products of one CD-1 step — is measured by each
implementation in its own process, see `impls.rbm.interface.RBM.five_products_ms`.)
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

from core.files import atomic_write_json


def sklearn_step_ms(n_visible: int, n_hidden: int, batch: int, repeats: int = 30, seed: int = 0) -> float:
    """Best-of-``repeats`` milliseconds of one ``BernoulliRBM.partial_fit`` on one batch (CD-1/PCD, float32)."""
    from sklearn.neural_network import BernoulliRBM

    rng = np.random.default_rng(seed)
    data = (rng.random((batch, n_visible)) < 0.05).astype(np.float32)
    rbm = BernoulliRBM(n_components=n_hidden, learning_rate=0.005, batch_size=batch, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rbm.partial_fit(data)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            rbm.partial_fit(data)
            best = min(best, time.perf_counter() - start)
    return best * 1e3


def main(argv: list[str]) -> int:
    out, n_visible, n_hidden, batch = Path(argv[0]), *map(int, argv[1:4])
    milliseconds = sklearn_step_ms(n_visible, n_hidden, batch)
    atomic_write_json(out, {"sklearn_step_ms": milliseconds, "batch": batch})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
