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

Every field is checked on reading (`problem`), so by every command that reads margins (``reports render``, ``eval
quality``, ``eval margins``, the trend gate), and before ``python -m eval margins`` writes a file: the schema, the
model (`impls.catalogue`), each score (one the verdict tests, in its unit: `eval.scoring.catalogue`) and each
field's type and range. A file that fails is one line naming it and the field: never a traceback later (a
``seeds_needed`` of ``"three"`` crashed ``reports render``), nor a field silently ignored (a typo, a model or score
this code does not know).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError
from core.paths import BASELINES
from eval.scoring import catalogue
from impls.catalogue import MODELS

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


VERDICTS = ("✓", "✗", "?", "n/a")  # `eval.scoring.stats.Equivalence.verdict`


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(least: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
        return None if ok else f"is not a whole number >= {least}"

    return check


def _text(value: object) -> str | None:
    return None if isinstance(value, str) else "is not text"


def _positive(value: object) -> str | None:
    return None if _real(value) and math.isfinite(value) and value > 0 else "is not a positive finite number"


def _non_negative(value: object) -> str | None:
    return None if _real(value) and math.isfinite(value) and value >= 0 else "is not a finite number >= 0"


def _fraction(value: object) -> str | None:
    return None if _real(value) and 0 < value < 1 else "is not a number between 0 and 1"


def _span(value: object) -> str | None:
    """``[mean, low, high]``: NaN bounds are an interval of fewer than two seeds (`eval.scoring.stats.interval`)."""
    ok = isinstance(value, list) and len(value) == 3 and all(_real(v) and not math.isinf(v) for v in value)
    return None if ok else "is not [mean, low, high] (three numbers)"


def _verdict(value: object) -> str | None:
    return None if value in VERDICTS else f"is not a verdict ({', '.join(VERDICTS)})"


def _verdicts(value: object) -> str | None:
    ok = isinstance(value, dict) and all(v in VERDICTS for v in value.values())
    return None if ok else "is not {framework: verdict}"


def _recipe(value: object) -> str | None:
    ok = isinstance(value, dict) and all(_real(v) for v in value.values())
    return None if ok else 'is not {"section.key": number}'


def _change(value: object) -> str | None:
    ok = isinstance(value, dict) and set(value) == {"from", "to"} and not any(map(_recipe, value.values()))
    return None if ok else 'is not {"from": recipe, "to": recipe}'


# Every field of a margins file (what `eval.gates.margins.write` writes, and the schema-1 file's) and its check;
# ``schema`` and ``scores`` are checked on their own. A field not listed is refused: a typo is not ignored.
FIELDS: dict[str, Callable[[object], str | None] | None] = {
    "schema": None, "model": _text, "dataset": _text, "scores": None, "row_units": _whole(1), "profile": _text,
    "basis": _text, "note": _text, "migrated_from": _text, "created": _text, "calibration_run": _text,
    "noise_run": _text, "change": _change, "change_description": _text, "fault": _recipe,
    "fault_description": _text, "verdict_seeds": _whole(2), "power": _fraction, "alpha": _fraction,
}  # fmt: skip
SCORE_FIELDS: dict[str, Callable[[object], str | None]] = {
    "margin": _positive, "unit": _text, "basis": _text, "effect_of_change": _span, "noise_sd": _non_negative,
    "noise_dof": _whole(0), "noise_floor": _non_negative, "seeds_needed": _whole(2), "fault_effect": _span,
    "fault_verdict": _verdict, "unchanged_verdicts": _verdicts, "note": _text,
}  # fmt: skip


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _score_problem(metric: str, entry: object) -> str | None:
    """What is wrong with one score's entry (``"scores.<metric>.<field>: what"``), or None."""
    where = f"scores.{metric}"
    if metric not in catalogue.verdict_scores():
        return f"{where}: not a score the verdict tests (eval/scoring/catalogue.py)"
    if not isinstance(entry, dict):
        return f"{where}: {_shown(entry)} is not an object of the margin's fields"
    if "margin" not in entry:
        return f"{where}.margin: missing"
    for name, value in entry.items():
        check = SCORE_FIELDS.get(name)
        if check is None:
            return f"{where}.{name}: not a field of a score's margin ({', '.join(SCORE_FIELDS)})"
        if what := check(value):
            return f"{where}.{name}: {_shown(value)} {what}"
    unit = catalogue.describe(metric)[0]
    if "unit" in entry and entry["unit"] != unit:
        return f"{where}.unit: {entry['unit']!r} is not the score's unit in the catalogue ({unit!r})"
    return None


def problem(record: object) -> str | None:
    """What is wrong with a margins file's content, as ``"field: what"`` (the first found), or None.

    Every field: the schema (1 or `SCHEMA`, an integer), the fields of that schema and no other, each one's type and
    range (`FIELDS`, `SCORE_FIELDS`), the model (one of `impls.catalogue.MODELS`), a plain dataset name, and each
    score (one the verdict tests, in its catalogue unit).
    """
    if not isinstance(record, dict):
        return "the file is not a JSON object"
    schema = record.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema not in (1, SCHEMA):
        return f"schema: {_shown(schema)} is not a margins schema (the integer 1 or {SCHEMA})"
    allowed = [name for name in FIELDS if schema == SCHEMA or name not in ("model", "dataset")]  # 1: no key
    required = ("model", "dataset", "scores") if schema == SCHEMA else ("scores",)
    for name in record:
        if name not in allowed:
            return f"{name}: not a field of a schema-{schema} margins file"
    for name in required:
        if name not in record:
            return f"{name}: missing"
    for name, value in record.items():
        if (check := FIELDS[name]) and (what := check(value)):
            return f"{name}: {_shown(value)} {what}"
    if schema == SCHEMA and record["model"] not in (names := [m.name for m in MODELS]):
        return f"model: {record['model']!r} is not a model of the catalogue (impls/catalogue.py: {', '.join(names)})"
    if schema == SCHEMA and (not record["dataset"] or any(c in record["dataset"] for c in "/\\:")):
        return f"dataset: {record['dataset']!r} is not a plain dataset name (no path, no ':')"
    scores = record["scores"]
    if not isinstance(scores, dict) or not scores:
        return f"scores: {_shown(scores)} is not a non-empty {{score: {{margin, ...}}}} object"
    return next((what for metric, entry in scores.items() if (what := _score_problem(metric, entry))), None)


def read(path: Path) -> Calibration:
    """One calibration file, every field checked (`problem`); schema 1 is read as the calibration of ``LEGACY``.

    A broken file is a `ConfigError` naming it and the field; a newer schema's says to update the checkout.
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a margins calibration ({error}); {FIX}") from None
    schema = record.get("schema", 1) if isinstance(record, dict) else 1
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
        raise ConfigError(f"{path}: margins schema {schema}, newer than this code reads (1 and {SCHEMA}); "
                          "update the checkout")  # fmt: skip
    if what := problem(record):
        raise ConfigError(f"{path}: not a margins calibration ({what}); {FIX}")
    model, dataset = LEGACY if schema == 1 else (record["model"], record["dataset"])
    return Calibration(model, dataset, record["scores"], record.get("row_units"), path, record)


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


def margins(
    overrides: dict[str, float] | None = None, model: str | None = None, dataset: str | None = None
) -> dict[str, float | None]:
    """The verdict's margins for a run of ``model`` on ``dataset``, in catalogue order.

    Each is the calibration's of that (model, dataset), a profile's override last; None where neither gives one:
    the verdict does not judge that score. A declared catalogue margin never applies (it was measured on nothing,
    and one model's calibration never stands in for another's). Here, not in `eval.scoring.catalogue`: the
    calibrations are checked against the catalogue, which therefore does not read them.
    """
    found = calibration(model, dataset)
    measured = found.scores if found else {}
    values = {name: measured.get(name, {}).get("margin") for name in catalogue.verdict_scores()} | dict(overrides or {})
    return {name: None if value is None else float(value) for name, value in values.items()}


def margin_basis(
    metric: str, overrides: dict[str, float] | None = None, model: str | None = None, dataset: str | None = None
) -> str:
    """Where a verdict margin comes from, in a few words (the report prints it beside the margin)."""
    if metric in (overrides or {}):
        return "the profile's [verdict] margins"
    found = calibration(model, dataset)
    if not found or metric not in found.scores:
        return f"no calibration of {model}/{dataset}"
    return found.basis(metric)
