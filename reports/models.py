"""The models side by side: the window RBM, the RNN-RBM and the RNN-NADE on the same data, the same test rows, the
same scores.

A run trains one model; `models_table` reads the rows of several runs (``reports render RUN --beside OTHER ...``),
refuses runs on different data (`check_same_data`) and puts each (model, framework) on one line: the
log-likelihood bracket per row and the exact value where a model has one (a normalised model's, or one small enough
to enumerate), the sample-quality score and the whole-piece statistics that need more than one window, each a mean
± 95 % interval over seeds. Where every run scores NLL per frame over every held-out frame (the published
benchmarks), the table shows that unit, so models cut into different windows stand side by side.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import impls
from core.errors import UserError
from eval.bench.runfolder import RunFolder
from reports.tables import display_name, final_rows, with_interval

LIKELIHOOD = ("ais_ll_per_row", "raise_ll_per_row", "exact_ll_per_row")
# the published benchmarks' unit, where every run has it (the bracket's, or the exact value of a normalised model)
PER_FRAME = ("ais_nll_per_frame", "raise_nll_per_frame", "exact_nll_per_frame")
SAMPLES = (
    "music_structure_js",
    "bar_repetition",
    "bar_self_similarity_excess",
    "groove_consistency",
    "pitch_class_drift",
)


def beside_frames(frame: pd.DataFrame, others: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """This run's rows with those of ``others`` (finished runs on the same music), and a sentence per run."""
    frames, notes = [frame], []
    shown = set(frame.model.dropna())
    for path in others:
        other = RunFolder.open(path).results()
        notes.append(check_same_data(frame, other, path))
        if repeated := shown & set(other.model.dropna()):  # one line per (model, framework): two runs would merge
            raise UserError(
                f"{path}: a run of the {', '.join(sorted(repeated))} model too; beside a run go runs of other models "
                "(two runs of one model: python -m reports compare RUN_A RUN_B)"
            )
        shown |= set(other.model.dropna())
        lacking = [m for m in SAMPLES if not (other.metric == m).any()]
        if lacking:
            notes.append(f"{path.name}: recorded before {', '.join(lacking)} existed (—).")
        frames.append(other)
    return pd.concat(frames, ignore_index=True), notes


def check_same_data(frame: pd.DataFrame, other: pd.DataFrame, where: Path) -> str:
    """What the two runs share; a `UserError` (one line) for a run on other music."""
    if set(frame.dataset.dropna()) != set(other.dataset.dropna()):
        raise UserError(
            f"{where}: a run on {', '.join(sorted(set(other.dataset.dropna())))}, not on this run's "
            f"{', '.join(sorted(set(frame.dataset.dropna())))}; put runs on the same music beside each other"
        )
    if set(frame.dataset_hash.dropna()) == set(other.dataset_hash.dropna()):
        return f"{where.name}: the same dataset (sha256 {frame.dataset_hash.iloc[0][:12]}…): the same test rows."
    return (
        f"{where.name}: the same music and splits, cut into other windows: its per-row numbers are over its own "
        "scored rows (the same rows where both score every held-out frame)."
    )


def models_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per (model, framework): the bracket per row (and the exact value where a model has one) and the
    sample scores, mean ± interval over seeds."""
    rows = final_rows(frame)
    rows = rows[rows.impl.isin(list(impls.frameworks()))]
    scored = rows[rows.metric.isin([PER_FRAME[0], PER_FRAME[2]])]  # a bracket's AIS end, or an exact value
    per_frame = scored.groupby("run_id").size().reindex(rows.run_id.unique()).notna()
    likelihood = [m for m in (PER_FRAME if per_frame.all() else LIKELIHOOD) if (rows.metric == m).any()]
    columns = (*likelihood, *SAMPLES)  # a likelihood column no run has (the exact one, mostly) is left out
    known = impls.models()
    out = {}
    for (model, impl), group in rows.groupby(["model", "impl"], sort=False):
        line = {}
        for metric in columns:
            values = group[group.metric == metric].groupby("seed").value.first().tolist()
            line[metric] = with_interval(values, metric)
        name = known[model].display if model in known else model
        out[f"{name} · {display_name(impl)}"] = line
    return pd.DataFrame.from_dict(out, orient="index", columns=list(columns))
