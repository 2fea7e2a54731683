"""Samples you can listen to: MIDI and WAV (pretty_midi's sine synthesis: no sound font needed)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from core.files import atomic_write_bytes
from datasets.encoding import decode_states
from datasets.windows import WindowSpec


def write_audio(windows: np.ndarray, spec: WindowSpec, folder: Path, stem: str) -> list[str]:
    """``<stem>-<i>.mid`` and ``.wav`` for each window, written atomically; returns the stems."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, window in enumerate(windows):
        midi = decode_states(spec.to_matrix(window), low=spec.low, articulation=spec.articulation)
        buffer = io.BytesIO()
        midi.write(buffer)
        atomic_write_bytes(folder / f"{stem}-{index}.mid", buffer.getvalue())
        audio = midi.synthesize(fs=16000)
        audio = (audio / max(1e-9, np.abs(audio).max()) * 0.8 * 32767).astype(np.int16)
        buffer = io.BytesIO()
        wavfile.write(buffer, 16000, audio)
        atomic_write_bytes(folder / f"{stem}-{index}.wav", buffer.getvalue())
        names.append(f"{stem}-{index}")
    return names
