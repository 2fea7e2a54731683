"""The suite's models beside the published results of the four polyphonic benchmarks (``reports/published.json``).

Published figures are NLL per frame on the test split (nats, lower is better), each as printed in its primary
source, with the table and page it is printed on (the 2012 paper prints log-likelihood: NLL = -LL). The
suite's rows are the same unit over every frame of every test piece: the AIS estimate (optimistic) with its
95 % interval over seeds, the RAISE estimate (conservative) and the bracket's width between them, and the
exact value where the hidden layer is small enough to enumerate; a normalised model's (the RNN-NADE's) exact value
alone: it needs no bracket. A bracketed value is set beside the published ones only when it is certified: exact, or
every seed's bracket at most 0.1 nats per frame wide (`eval.scoring.ais.certified`); otherwise the table says "not
certified" where the number would stand (the bracket's ends stay in its source column, as the evidence).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from eval.scoring.ais import CERTIFIED_WIDTH, certified
from eval.scoring.stats import interval
from reports.tables import implementations, label, per_seed

PUBLISHED = Path(__file__).with_name("published.json")
TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData", "pianomidi": "Piano-midi.de"}


def published(kind: str) -> list[dict]:
    """The published rows of one benchmark (``jsb``, ...), best first; [] for any other data."""
    rows = [r for r in json.loads(PUBLISHED.read_text())["results"] if r["dataset"] == kind]
    return sorted(rows, key=lambda r: r["nll_per_frame"])


def benchmark_of(source: str) -> str | None:
    """The benchmark a run's data source names (``jsb``, ``jsb:<a local copy>``), None for other data."""
    kind = source.partition(":")[0]
    return kind if kind in TITLES else None


def model_name(num_timesteps: int, n_hidden: int) -> str:
    shape = "frame RBM" if num_timesteps == 1 else f"window RBM ({num_timesteps} frames)"
    return f"{shape}, {n_hidden} hidden"


def _ours(values: pd.Series) -> str:
    found = interval(values.tolist())
    if found.n == 0:
        return "—"
    return f"{found.mean:.3f}" if found.n == 1 else f"{found.mean:.3f} ± {found.half_width:.3f}"


def published_table(frame: pd.DataFrame, kind: str, model: str) -> pd.DataFrame:
    """Published rows and this run's, sorted by NLL per frame; each with its source or its bracket and seeds."""
    rows = []
    for name in implementations(frame):
        ais, exact = per_seed(frame, name, "ais_nll_per_frame"), per_seed(frame, name, "exact_nll_per_frame")
        ours = f"{model} — {label(frame, name)} (this run)"
        if len(ais):
            raise_ = per_seed(frame, name, "raise_nll_per_frame")
            width = per_seed(frame, name, "bracket_width_per_frame")
            detail = f"bracket: AIS {_ours(ais)} … RAISE {_ours(raise_)}, width {_ours(width)}"
            if len(exact):  # enumerated: the value itself, the bracket beside it
                shown, source = exact, f"this run: exact, mean ± 95 % interval over {len(exact)} seeds; {detail}"
            elif certified(width.tolist()):
                shown, source = ais, f"this run: AIS mean ± 95 % interval over {len(ais)} seeds; {detail}"
            else:  # no number beside the published ones: the bracket is the evidence of why
                uncertain = f"not certified (a bracket wider than {CERTIFIED_WIDTH:g} nats per frame)"
                rows.append({"model": ours, "NLL per frame": uncertain, "sort": float("inf"),
                             "source": f"this run, {len(ais)} seeds; {detail}"})  # fmt: skip
                continue
        elif len(exact):  # a normalised model (the RNN-NADE): its likelihood is exact, no bracket needed
            shown, source = exact, f"this run: exact, mean ± 95 % interval over {len(exact)} seeds (no bracket needed)"
        else:
            continue
        rows.append({"model": ours, "NLL per frame": _ours(shown), "sort": float(shown.mean()), "source": source})
    for entry in published(kind):
        rows.append(
            {
                "model": entry["model"],
                "NLL per frame": f"{entry['nll_per_frame']:g}",
                "sort": entry["nll_per_frame"],
                "source": f"{entry['source']}, {entry['where']}",
            }
        )
    table = pd.DataFrame(rows).sort_values("sort", kind="stable").drop(columns="sort")
    return table.set_index("model")


def published_sentence(kind: str, spec) -> str:
    """What the table's numbers are, in one paragraph."""
    frames = spec.num_timesteps
    if frames == 1:
        cut = "one frame at a time"
    else:
        ending = "padded with silent frames (its NLL per frame errs high: conservative)" if spec.pad_last else "dropped"
        cut = f"windows of {frames} frames, the last partial window of a piece {ending}"
    return (
        f"{TITLES[kind]} (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012 splits): negative log-likelihood per "
        "frame on the test split, in nats (lower is better), the unit of the published tables. This run scores "
        f"every frame of every test piece, {cut}; total NLL over the number of frames. Published numbers as printed "
        "in their sources (the 2012 paper prints log-likelihood; NLL = −LL); each names its table and page. A "
        "window RBM models a piece as independent blocks of frames (a proper distribution over pieces, so its NLL "
        "per frame is comparable), blind to what lies across a block's edge, where the sequence models condition "
        "every frame on the whole past."
    )
