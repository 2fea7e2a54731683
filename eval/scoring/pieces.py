"""Statistics of whole pieces that need more than one window: bar structure, repetition and key over time.

A window RBM generates 15-row windows; a sequence model (the RNN-RBM) generates pieces of hundreds of rows.
Whether the longer pieces are more *musical* is a question about structure across bars, which no 15-row
window statistic (`eval.scoring.notes`) can see. These statistics can, and each separates real music from
coin flips at the music's density:

* ``groove_consistency`` — MusPy's rhythmic regularity (Wu & Yang 2020): how alike the onset patterns of
  consecutive bars are (0 … 1; 1 = every bar has the same rhythm).
* ``bar_repetition`` — the fraction of sounding bars that repeat an earlier bar of the same piece exactly
  (0 … 1; music repeats bars, coin flips never do).
* ``bar_self_similarity`` — the mean Jaccard similarity (0 … 1) of the play cells of bars 1 … 4 bars apart,
  cell by cell (the same row of the bar, the same pitch).
* ``bar_self_similarity_excess`` — the same minus the similarity of bars taken from *different* pieces at the
  same distance: what is similar within a piece beyond the shared density and register of the whole set
  (about 0 for coin flips, and for windows of different pieces concatenated).
* ``pitch_class_drift`` — the Jensen–Shannon divergence (bits; 0 = the same, 1 = disjoint) between the
  pitch-class histograms of the first and second half of a piece: tonal coherence over the whole piece
  (0 = the same key distribution throughout).

A piece is a note-state matrix ``[rows, play(P) | articulate(P)]`` (or play only); a note starts where the
decoder (`datasets.encoding.decode_states`) starts one: play set and either articulate set or the pitch
silent in the row before. Bars are ``bar_rows`` consecutive rows from row 0 (16 sixteenth-note rows make a
4/4 bar of the Bach data; 4 quarter-note rows of the JSB benchmark data); a trailing partial bar is left out
of the bar statistics. Bars are counted from row 0, so a piece that opens with an upbeat has its bar lines
shifted; repetition and similarity do not depend on where the grid sits, only on the bar length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from datasets.windows import WindowSpec
from eval.scoring.notes import js_divergence, split_halves

MAX_LAG = 4  # bar_self_similarity pairs bars 1 … MAX_LAG bars apart
PIECE_METRICS = (
    "groove_consistency",
    "bar_repetition",
    "bar_self_similarity",
    "bar_self_similarity_excess",
    "pitch_class_drift",
)


def piece_names() -> tuple[str, ...]:
    """The names of the statistics `piece_statistics` returns, in order."""
    return PIECE_METRICS


def play_and_starts(piece: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """``play`` and note ``starts`` (bool, [rows, P]) of one piece, by the decoder's rule (`split_halves`)."""
    play, _, starts = split_halves(piece[None], replace(spec, num_timesteps=len(piece), stride=len(piece)))
    return play[0], starts[0]


def groove_consistency(starts: np.ndarray, bar_rows: int) -> float:
    """MusPy's groove consistency of a piece's note starts: 1 - mean Hamming distance of bar onset patterns.

    A bar's onset pattern marks each of its ``bar_rows`` rows where any note starts; the distance of two
    consecutive bars is the number of rows where the patterns differ, divided by ``bar_rows``. This is
    ``muspy.groove_consistency(music, measure_resolution=bar_rows)`` with one row per time step, counted over
    the piece's whole bars. MusPy instead counts ``end // bar_rows + 1`` measures, ``end`` being where the
    last note ends: it drops trailing silent bars, and when the last note ends exactly on a bar line (a piece
    cut to whole bars that sounds in its last row) it adds an empty measure, which would charge a piece for
    being cut. The two agree whenever the last note ends inside the last whole bar (tested), and MusPy's
    value is this one on the piece cut or padded with silence to ``(end // bar_rows + 1) * bar_rows`` rows
    (tested). NaN for fewer than two bars.
    """
    n_bars = len(starts) // bar_rows
    if n_bars < 2:
        return float("nan")
    patterns = starts[: n_bars * bar_rows].any(1).reshape(n_bars, bar_rows)
    return 1.0 - np.count_nonzero(patterns[:-1] != patterns[1:]) / (bar_rows * (n_bars - 1))


def _bars(play: np.ndarray, bar_rows: int) -> np.ndarray:
    """The play cells of each whole bar, flattened: bool [n_bars, bar_rows * P]."""
    n_bars = len(play) // bar_rows
    return play[: n_bars * bar_rows].reshape(n_bars, -1)


def bar_repetition(bars: np.ndarray) -> float:
    """The fraction of sounding bars whose play cells equal those of an earlier bar of the piece.

    One bar played eight times scores 7/8: the first statement is new, the seven after it repeat it.
    Articulation is ignored (a held note and the same note struck again make the same bar). NaN when no
    bar sounds.
    """
    sounding = bars.any(1)
    if not sounding.any():
        return float("nan")
    _, first = np.unique(bars, axis=0, return_index=True)
    repeated = np.ones(len(bars), bool)
    repeated[first] = False  # the first occurrence of each distinct bar is not a repetition
    return float((repeated & sounding).sum() / sounding.sum())


def _jaccard_pairs(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Jaccard similarities of bar ``k`` of ``a`` with bar ``k + lag`` of ``b``, lag 1 … MAX_LAG.

    Pairs where both bars are silent have no similarity to measure and are left out.
    """
    values = []
    for lag in range(1, MAX_LAG + 1):
        n = min(len(a), len(b) - lag)
        if n <= 0:
            continue
        left, right = a[:n], b[lag : lag + n]
        union = (left | right).sum(1)
        both = (left & right).sum(1)
        values.extend((both[union > 0] / union[union > 0]).tolist())
    return values


def _mean(values: Sequence[float]) -> float:
    finite = [value for value in values if np.isfinite(value)]
    return float(np.mean(finite)) if finite else float("nan")


def piece_statistics(pieces: Sequence[np.ndarray], spec: WindowSpec, bar_rows: int = 16) -> dict[str, float]:
    """Means over pieces of the whole-piece statistics (`piece_names`).

    Parameters
    ----------
    pieces : sequence of arrays of shape (rows, spec.row_width)
        Note-state matrices, one per piece; lengths may differ.
    spec : WindowSpec
        Which pitches the columns hold and whether there is an articulate half.
    bar_rows : int
        Rows per bar (16 for 4/4 in sixteenth-note rows, 4 for 4/4 in quarter-note rows).

    Returns
    -------
    dict
        Each statistic's mean over the pieces where it is defined. Pieces shorter than two bars are left out;
        with none left (or none where a statistic is defined) the value is NaN. ``bar_self_similarity_excess``
        pairs each piece with the next one in the sequence (the last with the first), so it needs two pieces.

    Raises
    ------
    ValueError
        A piece that is not a 2-D array with ``spec.row_width`` columns, or ``bar_rows`` below 1.
    """
    if bar_rows < 1:
        raise ValueError(f"bar_rows must be at least 1, not {bar_rows}")
    arrays = [np.asarray(piece) for piece in pieces]
    for index, piece in enumerate(arrays):
        if piece.ndim != 2 or piece.shape[1] != spec.row_width:
            raise ValueError(f"piece {index} has shape {piece.shape}; expected (rows, {spec.row_width})")
    kept = [play_and_starts(piece, spec) for piece in arrays if len(piece) >= 2 * bar_rows]
    pitch_classes = (np.arange(spec.low, spec.high)[:, None] % 12 == np.arange(12)).astype(float)  # (P, 12)
    bars = [_bars(play, bar_rows) for play, _ in kept]
    groove, repetition, similarity, excess, drift = [], [], [], [], []
    for index, (_, starts) in enumerate(kept):
        groove.append(groove_consistency(starts, bar_rows))
        repetition.append(bar_repetition(bars[index]))
        similarity.append(_mean(_jaccard_pairs(bars[index], bars[index])))
        if len(kept) > 1:
            other = bars[(index + 1) % len(kept)]
            excess.append(similarity[-1] - _mean(_jaccard_pairs(bars[index], other)))
        half = len(starts) // 2
        first, second = starts[:half].sum(0) @ pitch_classes, starts[half:].sum(0) @ pitch_classes
        drift.append(js_divergence(first, second))
    return {
        "groove_consistency": _mean(groove),
        "bar_repetition": _mean(repetition),
        "bar_self_similarity": _mean(similarity),
        "bar_self_similarity_excess": _mean(excess),
        "pitch_class_drift": _mean(drift),
    }


def defined(statistics: dict[str, float]) -> dict[str, float]:
    """The statistics that exist for these pieces: NaN means undefined (too few or too short pieces), not diverged."""
    return {name: value for name, value in statistics.items() if not np.isnan(value)}
