"""The rules across a profile's keys, and what the machine allows: checked once a profile's sections are built.

Each section's own keys are checked by its dataclass (`eval.config`); these rules read several keys at once (an AIS
schedule against its name, PCD sampling against the model, a sequence model's data layout), the executor's syntax,
and the memory a model's parameters and its largest update need, so a run that cannot fit is one line up front.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import impls
from core.errors import ConfigError
from core.typed import suggest
from eval.scoring import catalogue
from eval.scoring.ais import paper_schedule

Profile = Any  # `eval.config.Profile`, which imports these rules (named here without importing it back)

PAPER_BETAS = len(paper_schedule())  # Salakhutdinov & Murray's schedule


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str  # serial | local | dask
    workers: int = 1
    address: str | None = None  # dask: a scheduler address, or None for a LocalCluster


def parse_executor(text: str, origin: str = "--executor") -> ExecutorSpec:
    """``serial`` | ``local[:N]`` | ``dask:local:N`` | ``dask:ADDRESS``; a `ConfigError` otherwise."""
    kind, _, rest = text.partition(":")
    if kind == "serial" and not rest:
        return ExecutorSpec("serial")
    if kind == "local":
        if not rest:
            return ExecutorSpec("local", 0)  # 0: cores / threads, decided when the run starts
        if rest.isdigit() and int(rest) >= 1:
            return ExecutorSpec("local", int(rest))
    if kind == "dask" and rest:
        local, _, count = rest.partition(":")
        if local == "local":
            if count.isdigit() and int(count) >= 1:
                return ExecutorSpec("dask", int(count))
        else:
            return ExecutorSpec("dask", 0, rest)
    raise ConfigError(
        f"{origin}: executor {text!r}; use serial, local, local:N, dask:local:N or dask:<scheduler address>"
    )


def _check_memory(profile: Profile, origin: str) -> None:
    """Refuse a model whose parameters cannot fit in this machine's memory before anything is built (one line).

    The model's config counts its parameters (``parameter_count``); each is held about five times: float64
    initial weights, a working copy, optimiser state and gradient, and the scorer's float64 copy (28 bytes). One
    update's working memory is checked once the batch order exists (`check_update_memory`)."""
    import psutil

    model, spec = profile.model, profile.data.window_spec()
    n_visible = spec.row_width if impls.model(model.kind).data == "sequences" else spec.n_visible
    count = model.parameter_count(n_visible)
    needed, total = count * 28, psutil.virtual_memory().total
    if needed > total / 2:
        sizes = ", ".join(
            f"{f.name} {getattr(model, f.name):,}"
            for f in fields(model)
            if f.name.startswith("n_") and f.name != "n_visible"
        )
        raise ConfigError(
            f"{origin}: [model] {sizes} needs about {needed / 2**30:,.1f} GiB for its {count:,} parameters, more "
            f"than half this machine's {total / 2**30:,.0f} GiB; choose fewer units"
        )


def check_update_memory(section: Any, n_visible: int, units: int, origin: str) -> None:
    """Refuse a batch order whose largest update (``units`` windows or frames) cannot fit in half this machine's
    memory, in one line, before any process trains on it (chunks are bounded by the music, so this needs the order)."""
    import psutil

    needed, total = section.update_bytes(n_visible, units), psutil.virtual_memory().total
    if needed > total / 2:
        chunks = impls.model(section.kind).data == "sequences"
        raise ConfigError(
            f"{origin}: [model] one update of {units:,} {'frames' if chunks else 'windows'} needs about "
            f"{needed / 2**30:,.1f} GiB, more than half this machine's {total / 2**30:,.0f} GiB; choose a smaller "
            f"batch_size{' or chunk_length' if chunks else ''}"
        )


def _check_model_kind(profile: Profile, origin: str) -> None:
    """Data a sequence model cannot read as frames is refused (its keys are checked by its own config class)."""
    model, data = profile.model, profile.data
    if impls.model(model.kind).data != "sequences":
        return
    if data.stride != data.num_timesteps or data.train_stride not in (0, data.num_timesteps):
        raise ConfigError(
            f"{origin}: [data] kind {model.kind!r} reads each piece's windows end to end as its frames, so windows "
            f"must not overlap; set stride = num_timesteps ({data.num_timesteps}) and leave train_stride out"
        )
    if data.order != "shuffle":
        raise ConfigError(f'{origin}: [data] order "{data.order}" is for windows; kind "{model.kind}" shuffles '
                          'chunks of pieces: use order = "shuffle"')  # fmt: skip
    if profile.eval.sample_start == "persistent" and _has_chains(model.kind):
        raise ConfigError(f'{origin}: [eval] sample_start "persistent" needs PCD chains; kind "{model.kind}" starts '
                          'each frame\'s chain anew: set sample_start = "zeros" (silence) or "random"')  # fmt: skip


def _has_chains(kind: str) -> bool:
    """Whether a model samples by Gibbs chains, whose start ``[eval] sample_start`` chooses: a model with a partition
    function; a normalised one (the RNN-NADE) draws ancestrally and never reads the key (a profile it extends may
    hold any value)."""
    return impls.model(kind).partition != "none"


def check_profile(profile: Profile, origin: str) -> None:
    """Rules across keys: catalogued implementations, models and margins, seeds, executor syntax, couplings."""
    data, run, model, evaluation = profile.data, profile.run, profile.model, profile.eval
    known = list(impls.frameworks())
    for name in run.impls:
        if name not in known:
            raise ConfigError(f"{origin}: [run] impls names {name!r}; {suggest(name, known)}")
    for name in run.modes:  # the mode itself is the framework file's (`impls.common.Mode`), checked by the worker
        if name not in known:
            raise ConfigError(f"{origin}: [run] modes names {name!r}; {suggest(name, known)}")
    _check_memory(profile, origin)
    _check_model_kind(profile, origin)
    scores = [s.name for s in catalogue.scores()]
    for metric in profile.verdict.margins:
        if catalogue.lookup(metric) is None:
            raise ConfigError(f"{origin}: [verdict] margins names {metric!r}, not a catalogued score; "
                              f"{suggest(metric, scores)}")  # fmt: skip
    if evaluation.raise_betas == 1:
        raise ConfigError(f"{origin}: [eval] raise_betas 1 is no annealing (from 0 to 1); set 0 (no RAISE) or >= 2")
    if evaluation.ais_schedule == "paper" and evaluation.ais_betas != PAPER_BETAS:
        raise ConfigError(
            f'{origin}: [eval] ais_betas {evaluation.ais_betas} contradicts ais_schedule "paper" '
            f'({PAPER_BETAS:,} betas); set ais_betas = {PAPER_BETAS} or ais_schedule = "quick"'
        )
    persistent = evaluation.sample_start == "persistent" and _has_chains(model.kind)
    if persistent and run.patience:
        raise ConfigError(
            f"{origin}: [run] patience {run.patience} keeps the best epoch's weights, which have no persistent chains "
            'of their own; set sample_start = "random" or "zeros", or patience = 0'
        )
    if persistent and not getattr(model, "persistent", False):
        raise ConfigError(f'{origin}: [eval] sample_start "persistent" needs PCD chains; set [model] persistent = '
                          'true or choose sample_start "random" or "zeros"')  # fmt: skip
    parse_executor(run.executor, origin)
    from datasets.sources import SourceError, check_source_syntax

    try:
        check_source_syntax(data.source)
    except SourceError as error:
        raise ConfigError(f"{origin}: [data] source {error}") from None
