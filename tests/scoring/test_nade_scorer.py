"""The scorer's exact RNN-NADE likelihood: a cumulative sum over units where the implementations take a masked
product, so the two are checked against each other; and normalised on its own (every frame after any past)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from eval.scoring import nade
from impls import RNNNADEConfig, RNNNADEParams, init_rnn_nade_params
from impls.rnn_nade.numpy import frame_log_probs


def random_params(n_recurrent: int, seed: int = 3) -> RNNNADEParams:
    config = RNNNADEConfig(n_visible=7, n_hidden=5, n_recurrent=n_recurrent)
    rng = np.random.default_rng(seed)
    return RNNNADEParams(*(rng.normal(0, 0.7, a.shape) for a in init_rnn_nade_params(config, 0).arrays()))


@pytest.mark.parametrize("n_recurrent", [4, 0], ids=["rnn-nade", "frame-nade"])
def test_the_scorer_equals_the_reference_on_pieces_of_any_length(n_recurrent, monkeypatch):
    params = random_params(n_recurrent)
    rng = np.random.default_rng(1)
    pieces = [(rng.random((length, 7)) < 0.4).astype(np.uint8) for length in (9, 1, 14)]
    monkeypatch.setattr(nade, "BLOCK", 4)  # blocks of 4 frames cut across pieces: 24 frames in 6 blocks
    got = nade.pieces_log_probs(params, pieces)
    want = np.concatenate([frame_log_probs(params, piece[None])[0] for piece in pieces])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    chosen = np.array([0, 9, 10, 23])  # the first frame of each piece and the last: each after its own past only
    np.testing.assert_allclose(nade.pieces_log_probs(params, pieces, chosen), want[chosen], rtol=1e-12, atol=1e-12)


def test_every_frame_after_a_past_sums_to_one():
    params, frames = random_params(4), np.array(list(itertools.product((0, 1), repeat=7)), np.uint8)
    past = (np.random.default_rng(2).random((5, 7)) < 0.5).astype(np.uint8)
    pieces = [np.vstack([past, frame]) for frame in frames]
    scores = nade.pieces_log_probs(params, pieces, np.arange(5, 6 * len(frames), 6))  # each piece's last frame
    assert logsumexp(scores) == pytest.approx(0, abs=1e-12)
