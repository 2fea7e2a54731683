"""The toy model's plug-in: the window RBM's sample statistics, its own training, scores and timing."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

import datasets
from eval.models.base import parameter_problem, steady_epochs
from eval.models.rbm import WindowRBM


def log_likelihood(b_v: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Exact log-likelihood of each window under independent bits (= its pseudo-log-likelihood)."""
    v = np.asarray(windows, float)
    return (v * -np.logaddexp(0, -b_v) + (1 - v) * -np.logaddexp(0, b_v)).sum(1)


class BernoulliPlugin(WindowRBM):
    name = "bernoulli"
    curve = "valid_pl_per_unit"
    roofline = None
    sklearn_reference = False
    outputs = ("pl_per_window", "pl_per_unit", "exact_nll_per_frame")

    def config(self, section, dataset_spec, device):
        return replace(section, n_visible=dataset_spec.n_visible, device=device)

    def inputs(self, at, dataset, seeds, split):
        config = self.config(at.model, dataset.spec, "cpu")
        order = datasets.batch_order(dataset, seeds[1], config.batch_size, at.run.epochs, at.data.order, split=split)
        return self.model.init(config, seeds[0]), order

    def train(self, model, task, dataset, order, record, rng, best):
        valid = dataset.subset("valid")
        for epoch, (batches, rate) in enumerate(zip(order, task.learning_rates()), start=1):
            started = time.perf_counter()
            model.train_epoch(batches, rate)
            record.add("train", "epoch_seconds", time.perf_counter() - started, epoch)
            problem = parameter_problem(model.params(), task.evaluation.max_abs_param)
            if problem:
                return f"{problem} in epoch {epoch}"
            if len(valid):
                per_unit = log_likelihood(model.params().b_v, valid).mean() / dataset.spec.n_visible
                record.add("train", "valid_pl_per_unit", per_unit, epoch)
                if best.check(epoch, per_unit, model.params()):
                    break
        return ""

    def score(self, params, task, dataset, record, rng):
        held_out = dataset.subset(task.evaluation.score_split)
        ll = log_likelihood(params.b_v, held_out)
        record.add("eval", "pl_per_window", ll.mean())
        record.add("eval", "pl_per_unit", ll.mean() / dataset.spec.n_visible)
        record.add("eval", "exact_nll_per_frame", -ll.mean() / dataset.spec.num_timesteps)
        return ""

    def draw(self, model, task, record):
        samples = model.sample(task.evaluation.n_samples)
        record.add("sample", "n_samples_kept", len(samples))
        return samples

    def time_training(self, model, task, dataset, order, record):
        steady, compile_s = steady_epochs(model.train_epoch, order, task.timing_epochs)
        record.add("timing", "train_windows_per_s", sum(len(b) for b in order[0]) / steady)
        record.add("timing", "compile_s", compile_s)


PLUGIN = BernoulliPlugin()
