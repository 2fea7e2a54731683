"""Pieces as frames for the RNN-RBM: the same artifact read end to end, the chunk order, the profile's rules."""

from __future__ import annotations

import numpy as np
import pytest

import datasets
from datasets.sequences import QUANTUM, chunks
from datasets.sources import Piece
from datasets.windows import make_dataset
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import _save_order, load_order
from eval.config import ConfigError, load_profile

RNN = 'extends = "default"\n[eval]\nsample_start = "zeros"\n[model]\nkind = "rnn_rbm"\n'


def pieces(lengths: list[int], seed: int = 0, split: str = "train") -> list[Piece]:
    rng = np.random.default_rng(seed)
    return [Piece(f"p{i}", (rng.random((n, 256)) < 0.2).astype(np.uint8), split) for i, n in enumerate(lengths)]


def test_frames_are_each_pieces_rows_in_order_and_padding_is_not_a_frame():
    spec = datasets.WindowSpec(num_timesteps=4, stride=4, low=21, high=109, articulation=False, pad_last=True)
    music = pieces([10, 7, 3]) + pieces([9], seed=1, split="test")
    dataset = make_dataset(music, spec)
    table = datasets.frame_table(dataset)
    for split, expected in (("train", music[:3]), ("test", music[3:])):
        got = [table[frames] for frames in datasets.piece_frames(dataset, split)]
        assert [len(g) for g in got] == [len(p.states) for p in expected]  # padded rows left out
        for rows, piece in zip(got, expected):
            np.testing.assert_array_equal(rows, spec.rows(piece.states))


def test_overlapping_windows_are_refused():
    spec = datasets.WindowSpec(num_timesteps=4, stride=2)
    dataset = make_dataset(pieces([12]), spec)
    with pytest.raises(ValueError, match="overlap or leave gaps; a sequence model needs stride = num_timesteps"):
        datasets.piece_frames(dataset, "train")


def test_chunks_cover_each_piece_in_order_with_few_shapes():
    frames = [np.arange(0, 250), np.arange(300, 305), np.arange(400, 430)]
    cut = chunks(frames, 100)
    assert [len(c) for c in cut] == [100, 100, 48, 24]  # 250 = 2 x 100 + 48 (50 cut to 8s); 5 < 8 dropped
    for c in cut:
        assert np.all(np.diff(c) == 1)  # consecutive frames of one piece
    assert sum(len(c) for c in cut) >= sum(len(f) for f in frames) - (QUANTUM - 1) * len(frames)


def test_chunk_order_is_seeded_covers_every_chunk_each_epoch_and_batches_one_length():
    spec = datasets.WindowSpec(num_timesteps=1, stride=1)
    dataset = make_dataset(pieces([250, 130, 64, 64, 40, 17]), spec)
    order = datasets.chunk_order(dataset, 7, chunk_length=32, batch_size=3, epochs=3)
    assert datasets.order_hash(order) == datasets.order_hash(datasets.chunk_order(dataset, 7, 32, 3, 3))
    assert datasets.order_hash(order) != datasets.order_hash(datasets.chunk_order(dataset, 8, 32, 3, 3))
    expected = sorted(tuple(c) for c in chunks(datasets.piece_frames(dataset, "train"), 32))
    for epoch in order:
        assert all(update.ndim == 2 and len(update) <= 3 for update in epoch)
        assert sorted(tuple(c) for update in epoch for c in update) == expected
    assert [u.tolist() for u in order[0]] != [u.tolist() for u in order[1]]


def test_order_file_round_trips_chunked_updates_and_its_hash_sees_the_shape(tmp_path):
    dataset = make_dataset(pieces([90, 33]), datasets.WindowSpec(num_timesteps=1, stride=1))
    order = datasets.chunk_order(dataset, 0, chunk_length=16, batch_size=2, epochs=2)
    folder = RunFolder.create("run", parent=tmp_path)
    _save_order(folder, folder.path / "order.npz", order)
    back = load_order(folder.path / "order.npz")
    assert datasets.order_hash(back) == datasets.order_hash(order)
    assert all(a.shape == b.shape for x, y in zip(order, back) for a, b in zip(x, y))
    flat = [[u.reshape(-1) for u in epoch] for epoch in order]  # the same indices as windows: another order
    assert datasets.order_hash(flat) != datasets.order_hash(order)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'extends = "default"\n[model]\nn_recurrent = 20',
            'n_recurrent is a key of kind "rnn_nade" or "rnn_rbm", not of kind "rbm"; remove it, or set kind = "rnn_',
        ),
        (RNN + "momentum = 0.9\n", 'momentum is a key of kind "rbm", not of kind "rnn_rbm"'),
        (RNN + "persistent = true\n", 'persistent is a key of kind "rbm", not of kind "rnn_rbm"'),
        (RNN + "[data]\nstride = 5\n", "windows must not overlap; set stride = num_timesteps (15)"),
        (RNN + '[data]\norder = "seed"\n', 'order "seed" is for windows'),
        (RNN.replace('"zeros"', '"persistent"'), 'sample_start "persistent" needs PCD chains'),
        (RNN + 'precision = "tf32"\n', "precision is 'tf32' (a str); use one of float32, float64"),
    ],
)
def test_rnn_rbm_profiles_refuse_what_the_model_cannot_do(tmp_path, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_profile(str(path))
    assert message in str(caught.value) and "\n" not in str(caught.value) and "mine.toml" in str(caught.value)


def test_an_rnn_rbm_profile_maps_its_keys_onto_the_model(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(RNN + "n_recurrent = 30\ncd_steps = 15\nchunk_length = 64\n")
    profile = load_profile(str(path))
    config = profile.model  # the [model] section is the RNN-RBM's own config
    assert type(config).__name__ == "RNNRBMConfig"
    assert (config.n_recurrent, config.cd_steps, config.chunk_length, config.n_hidden) == (30, 15, 64, 150)


def test_pretraining_learns_the_frames_rbm_and_keeps_the_rnns_weights():
    from impls import RNNRBMConfig, init_rnn_rbm_params
    from impls.rnn_rbm.numpy import pretrained

    spec = datasets.WindowSpec(num_timesteps=1, stride=1)
    dataset = make_dataset(pieces([200, 200, 200]), spec)
    frames = datasets.frame_table(dataset)[np.concatenate(datasets.piece_frames(dataset, "train"))]
    init = init_rnn_rbm_params(RNNRBMConfig(n_visible=spec.row_width, n_hidden=8, n_recurrent=4), 0)
    first, again = (pretrained(init, frames, 5, 3, 0.1) for _ in range(2))
    assert first.hash == again.hash != init.hash  # seeded, and it moved
    for name in ("W_uv", "W_uh", "W_uu", "W_vu", "b_u", "u0"):
        np.testing.assert_array_equal(getattr(first, name), getattr(init, name))
    density = frames.mean()  # about 0.2 on every unit: the visible biases move towards its logit (-1.4)
    assert first.b_v.mean() < 0.5 * np.log(density / (1 - density)) < 0 == init.b_v.mean()
