"""The RNN-RBM's execution modes (`impls.common.Mode`): every mode computes the reference's updates from the same
noise (chunks shorter than ``chunk_length`` and a smaller last update included: the padded, masked modes), a mode on
the framework's own random stream trains as the default does, and the equivalence check the ablation prints sees a
wrong update."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eval.models import plugin
from eval.timing.ablation import TOLERANCE
from impls import Unavailable, available, load
from impls.common import bucketed_shape
from impls.rnn_rbm.interface import RNNRBMNoise
from tests.impls.test_impls import F32
from tests.impls.test_rnn_rbm import REFERENCE, assert_same_params, random_params, sequences, tiny

MODES = []
for name in available():
    try:
        cls = load(name, "rnn_rbm")
    except (Unavailable, KeyError):
        continue
    MODES += [(name, mode.name) for mode in cls.MODES if "cpu" in mode.devices and len(cls.MODES) > 1]
SAME_STREAM = [(i, m) for i, m in MODES if (i, m) != ("tf", "xla")]  # XLA draws with its own Philox numbers
CONFIG = tiny(n_visible=12, n_hidden=6, n_recurrent=5, cd_steps=3, chunk_length=6)


EXPECTED = {
    "numpy": {"buffers", "plain"},
    "jax": {"scan", "update", "autodiff"},
    "tf": {"manual", "function", "xla"},
    "torch": {"manual", "eager", "compile"},
}


@pytest.mark.parametrize("impl", sorted(EXPECTED))
def test_each_framework_offers_its_compiled_mode_the_default_first(impl):
    try:
        cls = load(impl, "rnn_rbm")
    except Unavailable as error:
        pytest.skip(f"skipped: not installed ({error})")
    assert {m.name for m in cls.MODES} == EXPECTED[impl]
    assert cls.mode_for("cpu") == cls.MODES[0].name


@pytest.mark.parametrize(("impl", "mode"), MODES, ids=[f"{i}-{m}" for i, m in MODES])
def test_every_mode_computes_the_references_updates_from_the_same_noise(impl, mode):
    params, rng = random_params(CONFIG), np.random.default_rng(3)
    ours = load(impl, "rnn_rbm").in_mode(mode)(CONFIG, params, 0)
    reference = load(REFERENCE, "rnn_rbm").in_mode("plain")(CONFIG, params, 0)
    assert ours.mode == mode
    for frames in (CONFIG.chunk_length, 4):  # a whole chunk, then chunks shorter than chunk_length (padded)
        v = sequences(replace(CONFIG, chunk_length=frames), 2, seed=frames)
        noise = RNNRBMNoise.draw(rng, CONFIG, 2, frames)
        np.testing.assert_allclose(ours.cd_update(v, noise), reference.cd_update(v, noise), **F32)
    chunks = sequences(CONFIG, 5)  # updates of 2, 2 and 1 chunks: the last one smaller
    noises = [RNNRBMNoise.draw(rng, CONFIG, len(batch), CONFIG.chunk_length) for batch in reference.updates(chunks)]
    costs = ours.train_chunks(chunks, noises, learning_rate=0.05)
    np.testing.assert_allclose(costs, reference.train_chunks(chunks, noises, learning_rate=0.05), **F32)
    short = sequences(replace(CONFIG, chunk_length=3), 3, seed=7)  # padded to a bucket (JAX), masked
    noises = [RNNRBMNoise.draw(rng, CONFIG, len(batch), 3) for batch in reference.updates(short)]
    costs = ours.train_chunks(short, noises, learning_rate=0.05)
    np.testing.assert_allclose(costs, reference.train_chunks(short, noises, learning_rate=0.05), **F32)
    assert_same_params(ours.params(), reference.params(), F32)
    assert plugin("rnn_rbm").mode_difference(load(impl, "rnn_rbm").in_mode(mode), CONFIG, params) <= TOLERANCE


@pytest.mark.parametrize(("impl", "mode"), MODES, ids=[f"{i}-{m}" for i, m in MODES])
def test_every_mode_computes_the_references_cd_1_update(impl, mode):
    """A chain of one Gibbs step: JAX's written-out gradient takes step 0 apart (it reuses p(h | v)) and scans over
    no further step."""
    config = replace(CONFIG, cd_steps=1)
    params, rng = random_params(config), np.random.default_rng(5)
    ours = load(impl, "rnn_rbm").in_mode(mode)(config, params, 0)
    reference = load(REFERENCE, "rnn_rbm").in_mode("plain")(config, params, 0)
    for frames in (config.chunk_length, 4):
        v = sequences(replace(config, chunk_length=frames), 2, seed=frames)
        noise = RNNRBMNoise.draw(rng, config, 2, frames)
        np.testing.assert_allclose(ours.cd_update(v, noise), reference.cd_update(v, noise), **F32)
    assert_same_params(ours.params(), reference.params(), F32)


@pytest.mark.parametrize(
    "config",
    [CONFIG, replace(CONFIG, precision="float64"), replace(CONFIG, cd_steps=1, batch_size=3)],
    ids=["f32", "f64", "k1-batch3"],
)
def test_the_numpy_buffers_are_the_specification_bit_for_bit(config):
    """The same parameters bit for bit after an epoch (whole chunks, a smaller last update, then shorter chunks: a
    new buffer shape each), the cost within float32 rounding (the buffers' softplus is vectorised)."""
    params, trained = random_params(config), {}
    for mode in ("plain", "buffers"):
        model = load("numpy", "rnn_rbm").in_mode(mode)(config, params, 0)
        costs = []
        for frames in (config.chunk_length, 3):
            chunks = sequences(replace(config, chunk_length=frames), 5, seed=frames)
            noises = [
                RNNRBMNoise.draw(np.random.default_rng(frames), config, len(b), frames) for b in model.updates(chunks)
            ]
            costs += list(model.train_chunks(chunks, noises, learning_rate=0.2))
        trained[mode] = (np.array(costs), model.params())
    assert trained["buffers"][1].hash == trained["plain"][1].hash != params.hash
    np.testing.assert_allclose(trained["buffers"][0], trained["plain"][0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("impl", "mode"), SAME_STREAM, ids=[f"{i}-{m}" for i, m in SAME_STREAM])
def test_a_mode_on_the_frameworks_random_stream_trains_as_the_default_does(impl, mode):
    chunks = sequences(CONFIG, 6, seed=4)
    trained = []
    for cls in (load(impl, "rnn_rbm"), load(impl, "rnn_rbm").in_mode(mode)):
        model = cls(CONFIG, random_params(CONFIG), 11)
        costs = model.train_chunks(chunks, learning_rate=0.05)
        trained.append((costs, model.params()))
    np.testing.assert_allclose(trained[1][0], trained[0][0], **F32)
    assert_same_params(trained[1][1], trained[0][1], F32)


@pytest.mark.parametrize("mode", ["manual", "function"])
def test_tensorflows_own_draws_are_the_threefry_numbers_its_update_uses(mode):
    """TensorFlow's ``manual`` and ``function`` modes draw with XLA's threefry, seeded by the model's generator: the
    reference fed the numbers a fresh model of the same seed draws trains to the same parameters."""
    try:
        cls = load("tf", "rnn_rbm").in_mode(mode)
    except Unavailable as error:
        pytest.skip(f"skipped: not installed ({error})")
    chunks, params = sequences(CONFIG, 2, seed=5), random_params(CONFIG)  # one update
    model = cls(CONFIG, params, 11)
    model.train_chunks(chunks, learning_rate=0.05)
    drawn = cls(CONFIG, params, 11)._compiled_noise(2, CONFIG.chunk_length, CONFIG.cd_steps)
    reference = load(REFERENCE, "rnn_rbm").in_mode("plain")(CONFIG, params, 0)
    reference.train_chunks(chunks, [RNNRBMNoise(*(u.numpy() for u in drawn))], learning_rate=0.05)
    assert_same_params(model.params(), reference.params(), F32)


def test_the_equivalence_check_sees_a_wrong_update():
    reference = load(REFERENCE, "rnn_rbm").in_mode("plain")
    params = random_params(CONFIG)
    assert plugin("rnn_rbm").mode_difference(reference, CONFIG, params) == 0.0

    class Hasty(reference):  # a port whose step is 1 % too long
        def rate(self, learning_rate=None):
            return 1.01 * super().rate(learning_rate)

    assert plugin("rnn_rbm").mode_difference(Hasty, CONFIG, params) > 10 * TOLERANCE


@pytest.mark.parametrize(("impl", "mode"), MODES, ids=[f"{i}-{m}" for i, m in MODES])
def test_a_mode_trains_on_its_own_draws_as_chunk_lengths_change(impl, mode):
    """Pieces end at any frame, so successive calls bring chunks of other lengths (TensorFlow's XLA mode crashed the
    process on the second length before its updates were padded to one shape)."""
    model = load(impl, "rnn_rbm").in_mode(mode)(CONFIG, random_params(CONFIG), 0)
    for frames in (6, 4, 1, 5):
        costs = model.train_chunks(sequences(replace(CONFIG, chunk_length=frames), 3, seed=frames))
        assert costs.shape == (2,) and np.isfinite(costs).all()
    assert model.params().hash != random_params(CONFIG).hash


def test_updates_are_padded_to_a_bucket_of_lengths_not_to_the_longest_chunk():
    """Frameworks that compile one shape pad each update only to its length's bucket (JSB's chunks are ~55 of 100
    frames on average: padding to 100 doubled their work), never below the update or past the chunk length."""
    shape = lambda *lengths: bucketed_shape([np.zeros((1, n, 6)) for n in lengths], 2, 100, 8)
    assert shape(48) == (2, 48) and shape(49) == (2, 56) and shape(3) == (2, 8)
    assert shape(97) == (2, 100) and shape(100) == (2, 100) and shape(130) == (2, 130)
    assert shape(20, 41) == (2, 48)  # the call's longest update


def test_jax_trains_an_epoch_as_it_trains_its_updates_one_call_each():
    """JAX's `train_epoch` reads no update's cost before the next is dispatched, and splits its keys inside the
    compiled call: the same draws, parameters and costs as one `train_chunks` call per update."""
    try:
        cls = load("jax", "rnn_rbm")
    except Unavailable as error:
        pytest.skip(f"skipped: not installed ({error})")
    table = (np.random.default_rng(2).random((60, CONFIG.n_visible)) < 0.3).astype(np.uint8)
    epoch = [np.arange(start, start + 2 * frames).reshape(2, frames) for start, frames in ((0, 6), (20, 3), (40, 5))]
    trained = []
    for by_epoch in (True, False):
        model = cls(CONFIG, random_params(CONFIG), 11)
        model.set_data(table)
        if by_epoch:
            costs = model.train_epoch(epoch, learning_rate=0.05)
        else:
            costs = np.array([model.train_chunks(table[rows], learning_rate=0.05).mean() for rows in epoch])
        trained.append((costs, model.params()))
    np.testing.assert_array_equal(trained[0][0], trained[1][0])
    assert trained[0][1].hash == trained[1][1].hash != random_params(CONFIG).hash


def test_the_rnn_roofline_counts_every_update_shape_of_the_epoch():
    """An epoch's roofline is its own updates' products: each shape timed once, weighted by its count (chunks end
    with their music, so short updates are many, and each pays the fixed cost of an update)."""
    from eval.timing.rnn_roofline import epoch_products

    timed = []

    def products_ms(chunks: int, frames: int) -> float:
        timed.append((chunks, frames))
        return 1.0 + 0.01 * chunks * frames  # a cost per update and one per frame

    updates = [np.zeros((2, 100), int)] * 3 + [np.zeros((1, 40), int), np.zeros((2, 10), int)]
    frames, ms = epoch_products(products_ms, updates)
    assert sorted(timed) == [(1, 40), (2, 10), (2, 100)]  # each shape once
    assert frames == (3 * 200 + 40 + 20) / 5 and ms == pytest.approx((3 * 3.0 + 1.4 + 1.2) / 5)
    assert frames / ms < 200 / 3.0  # fewer frames a millisecond than the largest update's, extrapolated


def test_jax_lowers_the_rnn_rbms_threefry_unrolled_with_the_same_numbers():
    """Inside `unrolled_threefry` threefry compiles without its loop of rounds (so the swap happened) and draws the
    same numbers; outside, JAX's own CPU lowering (the loop) is back."""
    jax = pytest.importorskip("jax")
    from impls.backends import jax as backend

    def compiled_draws():  # a fresh jit: lowered and compiled under whatever rule holds now
        draw = jax.jit(lambda key: jax.random.uniform(key, (3, 5, 7)))
        key = jax.random.key(3)
        return draw(key), draw.lower(key).as_text()

    rolled, rolled_text = compiled_draws()
    with backend.unrolled_threefry() as swapped:
        unrolled, unrolled_text = compiled_draws()
    assert swapped, "the pinned JAX's lowering registry moved: the RNN-RBM's draws are lowered as a loop again"
    assert "while" in rolled_text and "while" not in unrolled_text
    np.testing.assert_array_equal(np.asarray(rolled), np.asarray(unrolled))
    assert "while" in compiled_draws()[1]  # restored after the block
