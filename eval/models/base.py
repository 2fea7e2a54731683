"""What every model plug-in offers, and the steps all models share: divergence checks, early stopping on the
validation curve, and one steady-state timer.

A plug-in runs one training task as `run` lays it out — `train` (its curves, divergence checks and early stopping),
`score` (the shared float64 scorer on exported parameters), `draw` and `describe` — and one timing task
with `time_training` (the steady-state timer below, and the model's roofline). It declares the scores it
writes (`outputs`), its learning-curve measure (`curve`) and what its samples are (`samples`).
"""

from __future__ import annotations

import resource
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import datasets
import impls
from eval.config import ConfigError
from eval.scoring import catalogue

if TYPE_CHECKING:
    from eval.config import Profile
    from eval.contract.rows import Recorder
    from eval.contract.task import Task
    from eval.models.checkpoints import Checkpoints


def parameter_problem(params: impls.Params, bound: float) -> str:
    """Why parameters count as diverged (NaN/inf, or larger than the profile's bound), else ''."""
    if not params.finite():
        return "parameters became NaN/inf"
    largest = params.largest()
    return f"max |parameter| {largest:.3g} exceeds max_abs_param {bound:g}" if largest > bound else ""


def steady_epochs(work: Callable[[Any], object], order: list, epochs: int) -> tuple[float, float]:
    """The one steady-state timer: ``epochs`` epochs of ``order`` (cycled), each timed; returns the median of all
    but the first (steady state) and the first's excess over it (compilation, warm-up), in seconds."""
    chosen = (order * epochs)[:epochs]
    seconds = []
    for batches in chosen:
        started = time.perf_counter()
        work(batches)
        seconds.append(time.perf_counter() - started)
    steady = float(np.median(seconds[1:]))
    return steady, max(0.0, seconds[0] - steady)


class BestEpoch:
    """Early stopping on the validation curve, one rule for every model: the best epoch's parameters are kept, and
    training stops once ``patience`` points of the curve in a row have not improved on it (``[run] patience``).

    A plug-in's `ModelPlugin.train` hands every point of its curve to `check` and stops when it returns True;
    `ModelPlugin.run` then scores, samples and describes the best epoch's parameters (`restore`). ``patience`` 0
    (the default) keeps every epoch and the last one's parameters: the results of a run before this rule.

    Parameters
    ----------
    patience : int
        Points of the curve (one every ``curve_every`` epochs) without improvement before training stops; 0: off.
    better : {"higher", "lower"}
        Which way the curve improves (the score catalogue's direction of the plug-in's ``curve``).
    """

    def __init__(self, patience: int, better: str) -> None:
        if patience and better not in ("higher", "lower"):
            raise ValueError(f"early stopping needs a curve that is better higher or lower, not {better!r}")
        self.patience, self.sign = patience, 1.0 if better == "higher" else -1.0
        self.best: float | None = None  # the curve's best value so far
        self.epoch: int | None = None  # its epoch
        self.params: impls.Params | None = None  # its parameters (float64 copies)
        self.last: int | None = None  # the epoch of the curve's latest point
        self.waited = 0  # points since the best

    def check(self, epoch: int, value: float, params: impls.Params) -> bool:
        """Take the curve's point of ``epoch`` (``params``: that epoch's, kept if it is the best so far); True when
        patience has run out and training should stop. NaN never improves."""
        if not self.patience:
            return False
        self.last = epoch
        if self.best is None or self.sign * value > self.sign * self.best:
            self.best, self.epoch, self.params, self.waited = value, epoch, params, 0
            return False
        self.waited += 1
        return self.waited >= self.patience

    def state(self) -> dict[str, Any]:
        """The counters a long run's checkpoint keeps (`eval.models.checkpoints`; the best weights apart)."""
        return {"best": self.best, "epoch": self.epoch, "last": self.last, "waited": self.waited}

    def set_state(self, state: dict[str, Any], params: impls.Params | None) -> None:
        """Go on from a checkpoint's `state` and best weights."""
        self.best, self.epoch, self.last, self.waited = (state[k] for k in ("best", "epoch", "last", "waited"))
        self.params = params

    def restore(self, model: impls.Implementation, seed: int, data: np.ndarray) -> impls.Implementation:
        """The implementation to score and sample: ``model`` if its last epoch is the best, else a fresh one of its
        class built from the best epoch's parameters (its own generator seeded with ``seed``, ``data`` set)."""
        if self.params is None or self.epoch == self.last:
            return model
        best = type(model)(model.config, self.params, seed)
        best.set_data(data)
        return best

    def record(self, record: Recorder) -> None:
        """The rows of the rule: the best epoch and the epochs trained (or why there was nothing to stop on)."""
        if not self.patience:
            return
        if self.epoch is None:
            record.add("train", "best_epoch", None, status="skipped", reason="no validation curve to stop on")
            return
        record.add("train", "best_epoch", self.epoch)
        record.add("train", "epochs_trained", self.last)


# [eval] keys the model-blind steps read for every model: the divergence bound, the scored split, the report's audio
READ_BY_EVERY_MODEL = ("max_abs_param", "score_split", "audio_samples")


@dataclass(frozen=True)
class Roofline:
    """Where a model's timing rows hold what the one roofline rule (`eval.timing.roofline`) reads.

    ``speed``: training units/s; ``products``: the dense products of one update alone (ms); ``draws``: one
    update's noise draws (ms), None where not measured; ``units``: the units of that update, from the task's
    config, or the name of the timing row that counts them (where the music bounds an update, not the config);
    ``own_products``: whether each implementation times its own framework's products (the window RBM) or every
    task times the same NumPy products (the RNN models), when each ceiling takes the fastest of them.
    """

    speed: str
    products: str
    draws: str | None
    units: Callable[[dict], int] | str
    own_products: bool = True


class ModelPlugin(ABC):
    """One model's place in the bench. Subclasses set the class attributes and the abstract steps.

    Attributes
    ----------
    name : str
        The model's catalogue name (``[model] kind``; ``impls/<name>/``, whose config class is its ``[model]``).
    outputs : tuple of str
        The held-out scores its `score` writes (``eval`` rows), besides the score catalogue's ``params`` scores
        it computes for every model; `run` refuses an undeclared one, so each score has one declared writer.
    curve : str
        The learning-curve measure, in the model's own units (a ``train`` row per logged epoch).
    unit_of_data : str
        What ``train_<unit>_per_s`` counts (``windows``, ``frames``).
    roofline : Roofline or None
        Which timing rows the harness reads for the roofline, the ratio to it and the ceiling (one rule for every
        model, `eval.timing.roofline`); None: the model is timed without one.
    sklearn_reference : bool
        scikit-learn's BernoulliRBM of the same shape is timed beside it (a window RBM's only reference).
    checkpoints : bool
        Its `train` keeps a checkpoint per epoch and resumes from one (``[run] long = true``,
        `eval.models.checkpoints`); a long profile of a model without it is refused.
    reads : tuple of str
        The ``[eval]`` keys its steps read, besides `READ_BY_EVERY_MODEL`: a key it does not read is refused in its
        profiles and sweeps (`refuse_unread`), never accepted and ignored. A contract test holds the declaration to
        the module's code.
    """

    name: str
    outputs: tuple[str, ...] = ()
    curve: str = ""
    unit_of_data: str = "windows"
    roofline: Roofline | None = None
    sklearn_reference: bool = False
    checkpoints: bool = False
    reads: tuple[str, ...] = ()

    @property
    def model(self) -> impls.Model:
        """Its entry in the implementations' model catalogue."""
        return impls.model(self.name)

    @abstractmethod
    def config(self, section: Any, dataset_spec: datasets.WindowSpec, device: str) -> Any:
        """The implementation's config for this ``[model]`` section, data and device."""

    @abstractmethod
    def inputs(self, at: Any, dataset: datasets.Dataset, seeds: list, split: str | None) -> tuple[Any, list]:
        """The shared initial parameters and batch order of one seed (``seeds``: the init and order streams)."""

    def training_data(self, dataset: datasets.Dataset) -> np.ndarray:
        """What `impls.Implementation.set_data` takes: the windows (a sequence model: its frame table)."""
        return dataset.windows

    @abstractmethod
    def train(self, model: impls.Implementation, task: Task, dataset: datasets.Dataset, order: list,
              record: Recorder, rng: np.random.Generator, best: BestEpoch) -> str:  # fmt: skip
        """Every epoch with the schedule's rates, its curve; '' or why it diverged.

        Each point of the ``curve`` goes to ``best.check`` with that epoch's parameters; training stops where it
        returns True (early stopping, `BestEpoch`). A plug-in that declares `checkpoints` also takes
        ``checkpoints`` (`eval.models.checkpoints.Checkpoints` in a long run, else None): it resumes after the last
        saved epoch, reseeds the model's noise each epoch (`impls.Implementation.reseed`) and saves after each."""

    @abstractmethod
    def score(self, params: impls.Params, task: Task, dataset: datasets.Dataset, record: Recorder,
              rng: np.random.Generator) -> str:  # fmt: skip
        """The held-out scores; '' or why they diverged."""

    @abstractmethod
    def draw(self, model: impls.Implementation, task: Task, record: Recorder) -> np.ndarray:
        """The samples the report and the statistics read (timed after a warm-up)."""

    @abstractmethod
    def describe(self, samples: np.ndarray, dataset: datasets.Dataset, task: Task, record: Recorder,
                 rng: np.random.Generator) -> None:  # fmt: skip
        """Statistics of the samples against the held-out music."""

    @abstractmethod
    def sampling(self, evaluation: Any, section: Any) -> str:
        """The report's sentence on how `draw` made the samples, from the profile's ``[eval]`` and ``[model]``."""

    @abstractmethod
    def time_training(self, model: impls.Implementation, task: Task, dataset: datasets.Dataset, order: list,
                      record: Recorder) -> None:  # fmt: skip
        """The quiet phase: steady-state speed (`steady_epochs`) and the model's roofline."""

    def profile(self, model: impls.Implementation, order: list) -> dict:
        """One update under the framework's profiler, after the timing (`eval.timing.profile.profile_update` of the
        first epoch's first few updates): the report's "where the time goes". ``{"error": ...}`` where it could not
        run (no profiler: NumPy); a failed profile never fails the timing."""
        from eval.timing.profile import PROFILED_UPDATES, profile_update

        batches = order[0][:PROFILED_UPDATES]
        try:
            profiled = profile_update(model, batches)
        except Exception as error:  # the profiler is a guest: its failure is reported, the timing rows stand
            return {"error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
        if profiled is None:
            return {"error": f"{model.name} has no operator profiler"}
        units = sum(np.size(b) for b in batches) / len(batches)  # windows or frames of one update
        return profiled.to_dict() | {"mode": model.mode, "units_per_update": units}

    def mode_difference(self, cls: type, config: Any, init: impls.Params) -> float | None:
        """How far ``cls`` (an implementation in one execution mode) strays from the NumPy reference after a few
        updates from the same noise, relative; None where the model has no such check (its modes are then shown
        unchecked). Each model draws its own updates and noise and compares through
        `eval.timing.ablation.parameter_difference`."""
        return None

    def ablate(self, cls: type, task: Task, dataset: datasets.Dataset, order: list, init: impls.Params,
               record: Recorder) -> None:  # fmt: skip
        """Every execution mode of ``cls`` on the task's device timed as `time_training` times one, each beside its
        `mode_difference`: ``ablation`` rows, each with its mode (the report's "Execution modes" table).

        Each mode is timed once a round for ``task.ablation_rounds`` rounds, the rounds interleaved, and each of its
        timing rows keeps the median over the rounds (its compile time: the first round's), beside
        ``mode_speed_spread``, (max - min) / median of its speed: a shared machine's slow minute lands on one
        measurement of many modes, not on every measurement of one."""
        from eval.contract.rows import Recorder

        used, models, rounds = record.context["mode"], {}, {}
        for mode in cls.modes_for(task.context.device):
            try:
                models[mode] = cls.in_mode(mode)(task.model_config(), init, task.impl_seed)
                models[mode].set_data(self.training_data(dataset))
            except Exception as error:  # a mode that cannot run here (no compiler, ...): a skipped row, the rest go on
                self._skipped_mode(task, mode, error, record)
        for _ in range(task.ablation_rounds):
            for mode, model in list(models.items()):
                mine = Recorder(task)
                try:
                    self.time_training(model, task, dataset, order, mine)
                except Exception as error:
                    self._skipped_mode(task, mode, error, record)
                    del models[mode]
                    continue
                rounds.setdefault(mode, []).append(mine.rows)
        for mode, model in models.items():
            mine = Recorder(task)
            mine.context["mode"] = mode
            for position, row in enumerate(rounds[mode][0]):
                values = [r[position]["value"] for r in rounds[mode]]
                values = values[:1] if row["metric"] == "compile_s" else values
                mine.add(row["phase"], row["metric"], None if None in values else float(np.median(values)))
                if row["metric"] == f"train_{self.unit_of_data}_per_s" and None not in values and len(values) > 1:
                    mine.add("timing", "mode_speed_spread", (max(values) - min(values)) / float(np.median(values)))
            try:
                difference = self.mode_difference(cls.in_mode(mode), model.config, init)
            except Exception as error:
                self._skipped_mode(task, mode, error, record)
                continue
            mine.add("timing", "mode_max_difference", difference)
            record.rows += [row | {"phase": "ablation"} for row in mine.rows]
        record.context["mode"] = used

    @staticmethod
    def _skipped_mode(task: Task, mode: str, error: Exception, record: Recorder) -> None:
        """A mode that could not run here: one skipped ``ablation`` row with the reason."""
        from eval.contract.rows import Recorder

        mine = Recorder(task)
        mine.context["mode"] = mode
        reason = f"mode {mode}: {type(error).__name__}: {error}".splitlines()[0][:300]
        mine.add("timing", "mode_max_difference", None, status="skipped", reason=reason)
        record.rows += [row | {"phase": "ablation"} for row in mine.rows]

    def calibration_fault(self, section: Any) -> tuple[dict[str, float], str]:
        """An injected fault the verdict must catch, as ``{"model.key": value}`` of this model's section, and in
        words (`python -m eval margins --plan`). By default a gradient a quarter of the reference's (a port that
        averages over four times the terms it should): a quarter of the rate. CD-1 where the profile says CD-k was
        tried for the RNN-RBM first and moved no score beyond its noise on the small JSB recipe (README)."""
        rate = section.learning_rate
        return {"model.learning_rate": rate / 4}, (
            f"learning_rate {rate / 4:g} instead of {rate:g} (a port whose gradient is a quarter of the reference's)"
        )

    def refuse_unread(self, profile: Profile) -> None:
        """Refuse an ``[eval]`` key the profile chose (in its own files or its sweep; ``Profile.chosen``) that this
        model does not read: one rule for profiles and sweeps, one line (`ConfigError`); and a long run
        (``[run] long``) of a model that keeps no checkpoints."""
        if profile.run.long and not self.checkpoints:
            raise ConfigError(
                f'profile {profile.name}: [run] long = true needs per-epoch checkpoints, which kind "{self.name}" does '
                "not keep; remove long (a killed task then retrains from its first epoch)"
            )
        swept = {key for key in profile.sweep if key.startswith("eval.")}
        read = {*READ_BY_EVERY_MODEL, *self.reads}
        for key in sorted({key for key in profile.chosen if key.startswith("eval.")} | swept):
            name = key.partition(".")[2]
            if name not in read:
                where = "[sweep] eval." if key in swept else "[eval] "
                raise ConfigError(
                    f'profile {profile.name}: {where}{name} is not read by kind "{self.name}" (it reads '
                    f"{', '.join(sorted(read))}); remove it"
                )

    def check_declared(self, record: Recorder) -> None:
        """Every ``eval`` score written so far is one this plug-in declares (a programming error otherwise)."""
        declared = {*self.outputs, *(s.name for s in catalogue.scores() if s.needs == "params")}
        undeclared = sorted({row["metric"] for row in record.rows if row["phase"] == "eval"} - declared)
        if undeclared:
            raise RuntimeError(f"the {self.name} plug-in writes undeclared scores {undeclared}; add them to outputs")

    def run(self, model: impls.Implementation, task: Task, dataset: datasets.Dataset, order: list,
            record: Recorder, rng: np.random.Generator, checkpoints: Checkpoints | None = None) -> dict:  # fmt: skip
        """Train, score, sample and describe one implementation; the artefacts (samples, params) for the folder.

        ``checkpoints``: a long run's task (`eval.models.checkpoints`); one saved earlier restarts the model from
        its parameters, and `train` goes on after its epoch."""
        if checkpoints is not None and checkpoints.load() is not None:
            model = type(model)(model.config, checkpoints.saved.params, task.impl_seed)
        model.set_data(self.training_data(dataset))
        if task.kind == "timing":
            self.time_training(model, task, dataset, order, record)
            return {"profile": self.profile(model, order)}
        best = BestEpoch(task.patience, catalogue.describe(self.curve)[1])
        long = {"checkpoints": checkpoints} if self.checkpoints else {}  # a plug-in that keeps none never sees them
        diverged = self.train(model, task, dataset, order, record, rng, best, **long)
        if not diverged:  # the best epoch is scored, sampled and described, not the last
            best.record(record)
            model = best.restore(model, task.impl_seed, self.training_data(dataset))
        params = model.params()
        record.add("train", "max_abs_param", params.largest())
        diverged = diverged or self.score(params, task, dataset, record, rng)
        self.check_declared(record)
        if diverged:
            record.flag(catalogue.headline(), diverged)
            return {}
        samples = self.draw(model, task, record)
        self.describe(samples, dataset, task, record, rng)
        record.add("train", "peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if (device_mb := model.peak_device_mb()) is not None:
            record.add("train", "peak_device_mb", device_mb)
        return {"samples": samples, "params": params}
