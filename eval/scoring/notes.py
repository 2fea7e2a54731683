"""Note statistics of windows (samples or data), set comparisons and memorisation.

Windows are note-state matrices ``[rows, play(P) | articulate(P)]``. A note
starts where play is set and either articulate is set or the pitch was
silent in the row before (the decoder's rule, `datasets.encoding.decode_states`),
so statistics count the notes a listener would hear. Names and definitions
follow MusPy (``muspy.metrics``) wherever MusPy has the metric; tests check
equality with MusPy on decoded pieces.
"""

from __future__ import annotations

import numpy as np

from datasets.windows import WindowSpec

POLYPHONY_THRESHOLD = 2  # MusPy's polyphony_rate counts rows with MORE than this many pitches
MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)  # natural minor, as MusPy
SCALES = np.array([np.roll(m, r) for m in (MAJOR, MINOR) for r in range(12)])  # (24, 12)
SCALAR_METRICS = (
    "note_density",
    "polyphony",
    "polyphony_rate",
    "empty_row_rate",
    "pitch_range",
    "n_pitches_used",
    "n_pitch_classes_used",
    "pitch_entropy",
    "pitch_class_entropy",
    "scale_consistency",
    "onset_rate",
    "mean_note_length",
    "invalid_onset_rate",
)


def split_halves(windows: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``play``, ``articulate`` (bool, [n, rows, P]) and note ``starts`` of flat windows."""
    matrix = np.asarray(windows).reshape(len(windows), spec.num_timesteps, spec.row_width).astype(bool)
    play = matrix[..., : spec.n_pitches]
    articulate = matrix[..., spec.n_pitches :] if spec.articulation else np.zeros_like(play)
    silent_before = np.concatenate([np.ones_like(play[:, :1]), ~play[:, :-1]], axis=1)
    return play, articulate, play & (articulate | silent_before)


def _entropy(counts: np.ndarray) -> np.ndarray:
    """Base-2 entropy of count histograms along the last axis; NaN where there are no notes."""
    total = counts.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / total
        terms = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0.0)
    return np.where(total[..., 0] > 0, -terms.sum(-1), np.nan)


def window_statistics(windows: np.ndarray, spec: WindowSpec) -> dict[str, np.ndarray]:
    """Per-window statistics (NaN where a statistic is undefined, e.g. no notes).

    ``polyphony``, ``polyphony_rate``, ``pitch_range``, ``n_pitches_used``,
    ``n_pitch_classes_used``, ``pitch_entropy``, ``pitch_class_entropy`` and
    ``scale_consistency`` are MusPy's (notes counted once each; the rate's
    denominator runs to the end of the last note, as MusPy's piano roll does).
    ``note_density`` is the fraction of play cells on; ``empty_row_rate`` the
    fraction of rows with nothing sounding; ``onset_rate`` notes per row;
    ``mean_note_length`` sounding cells per note (in rows, within the window);
    ``invalid_onset_rate`` the fraction of articulate bits set without their
    play bit — impossible in real music, common in raw RBM samples.
    """
    play, articulate, starts = split_halves(windows, spec)
    rows = play.shape[1]
    pitches = np.arange(spec.low, spec.high)
    sounding = play.sum(-1)  # (n, rows)
    note_counts = starts.sum(1).astype(float)  # (n, P) notes per pitch
    class_counts = note_counts @ (pitches[:, None] % 12 == np.arange(12)).astype(float)  # (n, 12)
    has_notes = note_counts.sum(-1) > 0
    used = note_counts > 0
    last_row = np.where(sounding.any(1), rows - np.argmax(sounding[:, ::-1] > 0, axis=1), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        highest = np.where(used, pitches, -1).max(1)
        lowest = np.where(used, pitches, 999).min(1)
        in_scale = (class_counts @ SCALES.T.astype(float)).max(1) / class_counts.sum(1)
        stats = {
            "note_density": play.mean((1, 2)),
            "polyphony": np.where(sounding.any(1), sounding.sum(1) / (sounding > 0).sum(1), np.nan),
            "polyphony_rate": np.where(last_row > 0, (sounding > POLYPHONY_THRESHOLD).sum(1) / last_row, np.nan),
            "empty_row_rate": (sounding == 0).mean(1),
            "pitch_range": np.where(has_notes, highest - lowest, 0).astype(float),
            "n_pitches_used": used.sum(1).astype(float),
            "n_pitch_classes_used": (class_counts > 0).sum(1).astype(float),
            "pitch_entropy": _entropy(note_counts),
            "pitch_class_entropy": _entropy(class_counts),
            "scale_consistency": np.where(has_notes, in_scale, np.nan),
            "onset_rate": starts.sum((1, 2)) / rows,
            "mean_note_length": np.where(has_notes, play.sum((1, 2)) / starts.sum((1, 2)), np.nan),
            "invalid_onset_rate": np.where(
                articulate.any((1, 2)), (articulate & ~play).sum((1, 2)) / articulate.sum((1, 2)), 0.0
            ),
        }
    return stats


def note_statistics(windows: np.ndarray, spec: WindowSpec) -> dict[str, float]:
    """Set-level statistics: the mean of each per-window statistic over windows where it is defined."""
    per_window = window_statistics(windows, spec)
    out = {}
    for name in SCALAR_METRICS:
        values = per_window[name]
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def histograms(windows: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Pitch (over ``low..high-1``) and pitch-class note-count histograms of a set, normalised."""
    _, _, starts = split_halves(windows, spec)
    pitch = starts.sum((0, 1)).astype(float)
    pitch_class = np.bincount(np.arange(spec.low, spec.high) % 12, weights=pitch, minlength=12)
    total = pitch.sum()
    return (pitch / total, pitch_class / total) if total else (pitch, pitch_class)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0 = identical, 1 = disjoint); NaN if either is empty."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)
