"""Comparing a set of generated windows with held-out music: histograms, MGEval-style distances, memorisation."""

from __future__ import annotations

import numpy as np

from datasets.windows import WindowSpec
from eval.scoring.notes import histograms, js_divergence, window_statistics

MGEVAL_FEATURES = ("n_pitches_used", "pitch_range", "polyphony", "onset_rate")
GRID_POINTS = 512


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (Scott's bandwidth, floored so a constant sample still has a density).

    Distances between note counts repeat a few values many times: each distinct value's kernel is summed once,
    weighted by how often it occurs (the same density, a fraction of the work on tens of thousands of pairs).
    """
    span = max(float(grid[-1] - grid[0]), 1e-9)
    bandwidth = max(1.06 * values.std() * len(values) ** -0.2, span / GRID_POINTS * 2)
    distinct, counts = np.unique(values, return_counts=True)
    z = (grid[:, None] - distinct[None, :]) / bandwidth
    density = (np.exp(-0.5 * z * z) @ counts) / (len(values) * bandwidth * np.sqrt(2 * np.pi))
    return density / (density.sum() * (grid[1] - grid[0]))


def _pairwise(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    if b is None:
        i, j = np.triu_indices(len(a), 1)
        return np.abs(a[i] - a[j])
    return np.abs(a[:, None] - b[None, :]).ravel()


def mgeval(
    samples: np.ndarray, reference: np.ndarray, spec: WindowSpec, rng: np.random.Generator, max_windows: int = 300
) -> dict[str, float]:
    """Overlapped area and KL divergence of intra-set vs inter-set distance densities (Yang & Lerch 2018).

    For each per-window feature, the distances within the samples and between
    samples and reference are turned into densities evaluated on ONE shared
    grid covering both (MGEval evaluates them on different grids, which makes
    its overlap and KL inconsistent). OA near 1 and KL near 0: the samples vary
    the way they differ from the data.
    """
    pick = lambda x: x[rng.choice(len(x), max_windows, replace=False)] if len(x) > max_windows else x
    ours, theirs = window_statistics(pick(samples), spec), window_statistics(pick(reference), spec)
    out = {}
    for name in MGEVAL_FEATURES:
        a, b = ours[name][np.isfinite(ours[name])], theirs[name][np.isfinite(theirs[name])]
        if len(a) < 2 or len(b) < 1:
            out[f"mgeval_oa_{name}"] = out[f"mgeval_kl_{name}"] = float("nan")
            continue
        intra, inter = _pairwise(a), _pairwise(a, b)
        high = max(intra.max(), inter.max())
        grid = np.linspace(0, high + 0.1 * (high or 1), GRID_POINTS)
        p, q = _kde(intra, grid), _kde(inter, grid)
        step = grid[1] - grid[0]
        out[f"mgeval_oa_{name}"] = float(np.minimum(p, q).sum() * step)
        mask = p > 1e-12
        out[f"mgeval_kl_{name}"] = float((p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))).sum() * step)
    return out


def compare_sets(
    samples: np.ndarray, reference: np.ndarray, spec: WindowSpec, rng: np.random.Generator
) -> dict[str, float]:
    """JS divergence of pitch and pitch-class histograms, plus the MGEval distances."""
    pitch_s, class_s = histograms(samples, spec)
    pitch_r, class_r = histograms(reference, spec)
    return {
        "js_pitch": js_divergence(pitch_s, pitch_r),
        "js_pitch_class": js_divergence(class_s, class_r),
        **mgeval(samples, reference, spec, rng),
    }


def _distinct_rows(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a binary matrix and, for each row, the index of its distinct row (rows packed to
    bytes and compared as one key each: far faster than ``np.unique(axis=0)``)."""
    packed = np.ascontiguousarray(np.packbits(np.asarray(windows) != 0, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return np.asarray(windows)[first], inverse.ravel()


def nearest_hamming(queries: np.ndarray, corpus: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Hamming distance from each binary query window to its nearest corpus window (``|q| + |c| - 2 q.c``).

    Both sides are reduced to their distinct rows first: a sequence model's one-frame windows repeat (Nottingham's
    176,561 training frames hold 1,252 distinct ones), and the distances are the same, 100 times faster.
    """
    queries, corpus = np.asarray(queries), np.asarray(corpus)
    if len(queries) == 0:
        return np.empty(0, dtype=np.int64)
    distinct_queries, query_of = _distinct_rows(queries)
    corpus32 = np.asarray(_distinct_rows(corpus)[0], np.float32)
    corpus_ones = corpus32.sum(1)
    nearest = np.empty(len(distinct_queries), dtype=np.int64)
    for start in range(0, len(distinct_queries), chunk):
        q = np.asarray(distinct_queries[start : start + chunk], np.float32)
        distance = q.sum(1)[:, None] + corpus_ones[None, :] - 2 * (q @ corpus32.T)
        nearest[start : start + len(q)] = np.rint(distance.min(1)).astype(np.int64)
    return nearest[query_of]


def memorisation(samples: np.ndarray, train: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    """Nearest-training-window distances of samples, with held-out windows as the reference point.

    Real unseen music sits at ``heldout_nearest_train_hamming`` from the
    training set; samples much closer than that (or exact copies) are memorised.
    """
    ours, theirs = nearest_hamming(samples, train), nearest_hamming(held_out, train)
    return {
        "nearest_train_hamming": float(ours.mean()),
        "copy_rate": float((ours == 0).mean()),
        "heldout_nearest_train_hamming": float(theirs.mean()),
        "heldout_copy_rate": float((theirs == 0).mean()),
    }


FRECHET_FEATURES = (
    "note_density",
    "polyphony",
    "pitch_range",
    "n_pitches_used",
    "scale_consistency",
    "onset_rate",
    "mean_note_length",
    "pitch_class_entropy",
)


def note_features(windows: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Per-window note statistics as a matrix (n, features); undefined values (no notes) count as 0."""
    stats = window_statistics(windows, spec)
    return np.nan_to_num(np.column_stack([stats[name] for name in FRECHET_FEATURES]).astype(float), nan=0.0)


def _covariance(features: np.ndarray) -> np.ndarray:
    """The features' sample covariance (features, features); zero for a single sample, which has no spread (NumPy's
    would be NaN, and the distance a LinAlgError: a run with ``n_samples = 1`` still gets a distance, its means')."""
    if len(features) < 2:
        return np.zeros((features.shape[1], features.shape[1]))
    return np.atleast_2d(np.cov(features, rowvar=False))


def frechet_note_distance(samples: np.ndarray, reference: np.ndarray, spec: WindowSpec) -> float:
    """Fréchet distance between Gaussians fitted to the note-statistic features of two sets.

    ``|mu_s - mu_r|^2 + Tr(S_s + S_r - 2 (S_s S_r)^(1/2))`` on features scaled by
    the reference set's standard deviations (so every feature counts in units
    of the music's own spread), as FID does with network features; 0 for two
    sets with the same statistics. Unlike pitch-class JS it also sees density,
    polyphony, range and note lengths, so coin flips cannot win by being flat.
    """
    ours, theirs = note_features(samples, spec), note_features(reference, spec)
    # the music's spread, floored at 5 % of its mean: a feature constant in the reference (synthetic music) stays finite
    scale = np.maximum(theirs.std(0), 0.05 * np.abs(theirs.mean(0)) + 1e-3)
    ours, theirs = ours / scale, theirs / scale
    mean_gap = ours.mean(0) - theirs.mean(0)
    cov_s, cov_r = _covariance(ours), _covariance(theirs)
    # Tr((S_s S_r)^(1/2)) is the sum of the square roots of the eigenvalues of S_s S_r (real, >= 0 for two
    # covariance matrices): no matrix square root, so no trouble with singular covariances
    eigenvalues = np.clip(np.linalg.eigvals(cov_s @ cov_r).real, 0, None)
    return float(mean_gap @ mean_gap + np.trace(cov_s) + np.trace(cov_r) - 2 * np.sqrt(eigenvalues).sum())
