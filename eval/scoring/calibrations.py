"""The verdict's calibrations: measured margins, one per (model, dataset), each score with its unit.

A calibration is what ``python -m eval margins`` derives from one calibration run (`eval.gates.margins`): per
verdict score, the margin, its basis (half the effect of the smallest recipe change that matters, or the noise
floor), the seeds it needs and the injected fault's verdict. It holds for the model and the data it was measured
on and nothing else: a margin of 0.96 nats per row of the Bach window RBM says nothing about the RNN-RBM's nats
per JSB frame. So each calibration is keyed by the ``model`` and ``dataset`` columns of the rows it came from, and
the verdict of a run looks up its own (`calibration`); a run whose (model, dataset) has none is not judged on
those scores (the report says "not judged: no margin") unless its profile's ``[verdict] margins`` gives them.

Layout: one JSON file per calibration under ``reports/baselines/margins/``, named ``<model>-<dataset>.json``
(schema 2: ``model``, ``dataset``, ``row_units``, ``scores`` with each score's ``unit``). Migration: schema 1 was
one file, ``reports/baselines/margins.json``, with no key; it was measured on the window RBM's default profile on
the Bach data, so a schema-1 file is read as the calibration of (``rbm``, ``bach``) (`read`), and the committed
one was rewritten as ``rbm-bach.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError
from core.paths import BASELINES

FOLDER = BASELINES / "margins"
SCHEMA = 2
LEGACY = ("rbm", "bach")  # what a schema-1 file (no key) was measured on: the default profile's window RBM
FIX = "regenerate it with python -m eval margins RUN (README, The verdict's margins)"
NO_MARGIN = "not judged: no margin"


@dataclass(frozen=True)
class Calibration:
    """One calibration: margins measured for one model on one dataset.

    Attributes
    ----------
    model, dataset : str
        The key, as the rows' ``model`` and ``dataset`` columns name them.
    scores : dict
        ``{metric: {"margin", "unit", "basis", "seeds_needed", "fault_effect", "fault_verdict", ...}}``.
    row_units : int or None
        Units of one row of the data (what "per row" means); None where not recorded.
    path : Path or None
        The file it was read from.
    record : dict
        The whole file (the recipe change, the fault, the runs it came from).
    """

    model: str
    dataset: str
    scores: dict[str, dict]
    row_units: int | None = None
    path: Path | None = None
    record: dict = field(default_factory=dict, compare=False, repr=False)

    def basis(self, metric: str) -> str:
        """Where a margin comes from, for the report: the calibration's key, its unit and its basis."""
        entry = self.scores[metric]
        how = "½ lr/2 effect" if str(entry.get("basis", "")).startswith("half") else "noise floor"
        unit = entry.get("unit") or "no unit"
        width = f", {self.row_units}-unit rows" if self.row_units and "/row" in unit else ""
        return f"calibration {self.model}/{self.dataset}, {unit}{width}: {how}"


def file_name(model: str, dataset: str) -> str:
    """``<model>-<dataset>.json``; a dataset name holding a path or a ``:`` is refused (names must travel)."""
    if not dataset or any(c in dataset for c in "/\\:") or not model:
        raise ConfigError(
            f"dataset {dataset!r} of model {model!r}: a calibration is keyed by a plain dataset name, not a path; "
            "run the calibration on a named source (e.g. jsb from the download cache)"
        )
    return f"{model}-{dataset}.json"


def read(path: Path) -> Calibration:
    """One calibration file (schema 1 is read as the calibration of ``LEGACY``); a broken one is a `ConfigError`."""
    try:
        record = json.loads(path.read_text())
        schema = record.get("schema", 1)
        if schema not in (1, SCHEMA):
            raise ValueError(f"schema {schema!r}, this code reads 1 and {SCHEMA}")
        model, dataset = LEGACY if schema == 1 else (str(record["model"]), str(record["dataset"]))
        scores = record["scores"]
        for metric, entry in scores.items():
            margin = entry["margin"]
            if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0):
                raise ValueError(f"{metric}: margin {margin!r} is not a positive finite number")
        units = record.get("row_units")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{path}: not a margins calibration ({error}); {FIX}") from None
    return Calibration(model, dataset, scores, units if isinstance(units, int) else None, path, record)


def calibrations(folder: Path | None = None) -> dict[tuple[str, str], Calibration]:
    """Every calibration in ``folder`` (default ``reports/baselines/margins/``) by (model, dataset); {} without one.

    Two files with one key are a `ConfigError`: which one the verdict reads must not depend on file order.
    """
    found: dict[tuple[str, str], Calibration] = {}
    for path in sorted((folder or FOLDER).glob("*.json")):
        calibration = read(path)
        key = (calibration.model, calibration.dataset)
        if key in found:
            raise ConfigError(f"{path}: a second calibration of {key[0]} on {key[1]} beside {found[key].path.name}; "
                              "keep one (python -m eval margins writes <model>-<dataset>.json)")  # fmt: skip
        found[key] = calibration
    return found


def dataset_key(dataset: str | None) -> str:
    """The name a calibration is keyed by: a pinned benchmark's rows say ``jsb (sha256 ac0e6085…)`` (its content,
    the same bytes wherever it came from), the calibration says ``jsb``."""
    return str(dataset).split(" (sha256 ")[0]


def calibration(model: str | None, dataset: str | None, folder: Path | None = None) -> Calibration | None:
    """The calibration of (model, dataset), None where there is none (the verdict then does not judge)."""
    return calibrations(folder).get((str(model), dataset_key(dataset)))
