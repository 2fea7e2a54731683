"""A bracket too wide to stand beside a published figure is scored again at finer temperatures (certify_betas)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eval.config import EvalConfig
from eval.models.rnn_rbm import certified_bracket
from eval.scoring.ais import CERTIFIED_WIDTH
from tests.scoring.test_frame_likelihood import exact_log_p, model

COARSE = EvalConfig(ais_betas=10, raise_betas=10, ais_runs=50)  # 10 temperatures: a bracket ~0.17 nats/frame wide


def test_a_wide_bracket_is_scored_again_at_certify_betas_and_then_certifies():
    W, b_v, b_h, v = model(7, n_frames=20, scale=1.0)
    truth = -exact_log_p(W, b_v, b_h, v).mean()
    first, betas = certified_bracket(W, b_v, b_h, v, COARSE, np.random.default_rng(1))
    assert betas == 10 and first.width_per_frame > CERTIFIED_WIDTH  # without certify_betas: left wide, as scored
    finer, betas = certified_bracket(W, b_v, b_h, v, replace(COARSE, certify_betas=400), np.random.default_rng(1))
    assert betas == 400
    assert finer.width_per_frame < CERTIFIED_WIDTH / 4
    assert finer.ais_nll_per_frame - 0.01 <= truth <= finer.raise_nll_per_frame + 0.01  # still a bracket of the truth


def test_a_narrow_bracket_is_not_scored_again():
    W, b_v, b_h, v = model(7, n_frames=20, scale=0.5)
    evaluation = replace(COARSE, certify_betas=400)
    bracket, betas = certified_bracket(W, b_v, b_h, v, evaluation, np.random.default_rng(1))
    again, _ = certified_bracket(W, b_v, b_h, v, replace(evaluation, certify_betas=0), np.random.default_rng(1))
    assert betas == 10 and bracket.width_per_frame <= CERTIFIED_WIDTH
    assert bracket.ais_nll_per_frame == again.ais_nll_per_frame  # the same draws: nothing was redone


@pytest.mark.parametrize("certify_betas", [0, 10])
def test_no_finer_schedule_means_no_second_scoring(certify_betas):
    W, b_v, b_h, v = model(7, n_frames=20, scale=1.0)
    evaluation = replace(COARSE, certify_betas=certify_betas)
    bracket, betas = certified_bracket(W, b_v, b_h, v, evaluation, np.random.default_rng(1))
    assert betas == 10 and bracket.width_per_frame > CERTIFIED_WIDTH
