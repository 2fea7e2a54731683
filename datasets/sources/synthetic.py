"""``synthetic[:seed]``: a small seeded generator of chord progressions and scales for tests."""

from __future__ import annotations

import numpy as np

from datasets.encoding import N_PITCHES
from datasets.sources import Piece, Source, SourceError, SourceKind

SYNTHETIC_SCALE = (0, 2, 4, 5, 7, 9, 11)  # C major: every synthetic pitch is in it


def synthetic_pieces(seed: int = 0, n_pieces: int = 40, rows: int = 96) -> list[Piece]:
    """Seeded chord progressions over a C-major scale line.

    Known statistics: every pitch class lies in C major (scale consistency 1),
    chords are triads held for 4 rows under a melody of sixteenth notes, so
    polyphony is 3 or 4 on every row and no row is empty.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    degrees = np.array(SYNTHETIC_SCALE)
    pieces = []
    for index in range(n_pieces):
        states = np.zeros((rows, 2 * N_PITCHES), dtype=np.uint8)
        for start in range(0, rows, 4):
            root = rng.integers(0, 7)
            chord = [48 + degrees[(root + k) % 7] + 12 * ((root + k) // 7) for k in (0, 2, 4)]
            states[start : start + 4, chord] = 1
            states[start, [N_PITCHES + p for p in chord]] = 1
        melody = 72 + degrees[np.clip(np.cumsum(rng.integers(-1, 2, rows)) % 7, 0, 6)]
        for row, pitch in enumerate(melody):
            states[row, pitch] = states[row, N_PITCHES + pitch] = 1
        pieces.append(Piece(f"synthetic-{index:03d}", states))
    return pieces


def check(argument: str) -> None:
    if argument and not argument.isdigit():
        raise SourceError(f"synthetic:{argument}: the synthetic seed must be a non-negative integer (synthetic:0)")


def parse(argument: str) -> Source:
    seed = int(argument or 0)
    name = f"synthetic:{seed}"
    # no input files: the seed is what tells two synthetic sources apart
    return Source(name, [], lambda options, progress: (synthetic_pieces(seed), []), cache_id=name)


KIND = SourceKind(
    name="synthetic",
    syntax="synthetic[:seed]",
    help="seeded chord progressions over a C-major scale (for tests)",
    check=check,
    parse=parse,
)
