"""The shared scorer: pseudo-likelihood, log Z (exact and AIS), monitors, note statistics, comparisons."""

from __future__ import annotations

import io

import numpy as np
import pytest

from datasets import WindowSpec, batch_order, build
from datasets.encoding import decode_states
from eval.scoring.ais import ais_bases, ais_log_partition, likelihood_bracket, paper_schedule, quick_schedule, schedule
from eval.scoring.likelihood import (
    base_rate_biases,
    exact_log_partition,
    exact_marginal_log_probability,
    free_energy,
    free_energy_gap,
    one_bit_pl,
    pseudo_log_likelihood,
    sklearn_bits,
    theano_bits,
)
from eval.scoring.notes import SCALAR_METRICS, histograms, js_divergence, note_statistics, window_statistics
from eval.scoring.sets import compare_sets, frechet_note_distance, memorisation, nearest_hamming
from impls import RBMConfig, RBMParams, init_params, load


def random_params(n_visible: int, n_hidden: int, seed: int, scale: float = 0.3) -> RBMParams:
    rng = np.random.default_rng(seed)
    return RBMParams(
        rng.normal(0, scale, (n_visible, n_hidden)), rng.normal(-1, 1, n_visible), rng.normal(0, 1, n_hidden)
    )


def brute_force_log_z(params: RBMParams) -> float:
    n_visible = params.W.shape[0]
    v = ((np.arange(1 << n_visible)[:, None] >> np.arange(n_visible)) & 1).astype(float)
    return float(np.logaddexp.reduce(-free_energy(params, v)))


def test_exact_pl_equals_brute_force_on_a_tiny_rbm():
    params = random_params(8, 3, 0, scale=1.0)
    v = (np.random.default_rng(1).random((6, 8)) < 0.5).astype(float)
    log_p = lambda x: -free_energy(params, x)  # unnormalised log p(v)
    expected = []
    for row in v:
        total = 0.0
        for i in range(8):
            flipped = row.copy()
            flipped[i] = 1 - flipped[i]
            total += log_p(row[None])[0] - np.logaddexp(log_p(row[None])[0], log_p(flipped[None])[0])
        expected.append(total)
    np.testing.assert_allclose(pseudo_log_likelihood(params, v, chunk_cells=30), expected, rtol=1e-12)


def test_one_bit_estimators_converge_to_exact_pl():
    params = random_params(40, 6, 2)
    v = (np.random.default_rng(3).random((20, 40)) < 0.4).astype(float)
    exact = pseudo_log_likelihood(params, v).mean()
    rng = np.random.default_rng(4)
    sk = np.mean([one_bit_pl(params, v, sklearn_bits(len(v), 40, rng)).mean() for _ in range(3000)])
    th = np.mean([one_bit_pl(params, v, theano_bits(len(v), k, 40)).mean() for k in range(40)])
    assert sk == pytest.approx(exact, rel=0.02)
    assert th == pytest.approx(exact, rel=1e-9)  # a full rotation of the bit index is exact


def test_free_energy_and_one_bit_pl_agree_with_scikit_learn():
    from sklearn.neural_network import BernoulliRBM

    params = random_params(30, 5, 5)
    v = (np.random.default_rng(6).random((12, 30)) < 0.5).astype(float)
    rbm = BernoulliRBM(n_components=5, random_state=7)
    rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_ = params.W.T, params.b_v, params.b_h
    np.testing.assert_allclose(free_energy(params, v), rbm._free_energy(v), rtol=1e-12)
    bits = np.random.RandomState(7).randint(0, 30, 12)  # the draw score_samples makes with random_state=7
    np.testing.assert_allclose(one_bit_pl(params, v, bits), rbm.score_samples(v), rtol=1e-12)


def test_exact_log_z_equals_brute_force():
    params = random_params(10, 4, 8)
    assert exact_log_partition(params) == pytest.approx(brute_force_log_z(params), abs=1e-10)


def test_a_padded_windows_marginal_sums_its_padding_out_by_brute_force():
    """A window's own rows scored by their marginal: the sum over every state of the padded units (not only silence);
    a whole window gets its plain exact log-probability, and scoring the silence instead costs >= 0."""
    params = random_params(10, 4, 8, scale=0.8)
    rng = np.random.default_rng(2)
    v, real = (rng.random((5, 10)) < 0.5).astype(float), np.array([10, 4, 4, 7, 1])
    got = exact_marginal_log_probability(params, v, real)
    log_z = brute_force_log_z(params)
    for i, (row, r) in enumerate(zip(v, real)):
        pads = ((np.arange(1 << (10 - r))[:, None] >> np.arange(10 - r)) & 1).astype(float)
        every = np.hstack([np.broadcast_to(row[:r], (len(pads), r)), pads])  # the own units with every padding
        assert got[i] == pytest.approx(np.logaddexp.reduce(-free_energy(params, every)) - log_z, abs=1e-10)
    silent = v.copy()
    for row, r in zip(silent, real):
        row[r:] = 0
    assert (-free_energy(params, silent) - log_z <= exact_marginal_log_probability(params, silent, real) + 1e-12).all()


def trained_small_models():
    """Small RBMs trained by the reference on synthetic music (n_visible in the hundreds)."""
    spec = WindowSpec(num_timesteps=4, stride=4, low=48, high=84)  # 4 x 72 = 288 visible units
    from datasets.sources import synthetic_pieces
    from datasets.windows import make_dataset

    data = make_dataset(synthetic_pieces(seed=1, n_pieces=20), spec).windows
    for seed, hidden, rate, epochs in ((0, 8, 0.01, 20), (1, 12, 0.02, 10)):
        config = RBMConfig(n_visible=spec.n_visible, n_hidden=hidden, batch_size=20, learning_rate=rate)
        model = load("numpy")(config, init_params(config, seed), seed)
        model.set_data(data)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            model.train_epoch(list(rng.permutation(len(data))[: len(data) // 20 * 20].reshape(-1, 20)))
        yield model.params(), data


def unimodal_models():
    """Random RBMs and small trained ones: no dense spurious mode (the earlier tests' models)."""
    cases = [
        (random_params(v, h, seed), (np.random.default_rng(seed).random((200, v)) < 0.3).astype(float))
        for seed, (v, h) in enumerate([(20, 6), (200, 10), (400, 12)])
    ]
    return cases + list(trained_small_models())


def bimodal_models():
    """Enumerable RBMs (288 visible, 12-13 hidden units) with a dense spurious mode, and music-like data.

    ``cd1``: trained with CD-1 and sampled statistics the way the 2016 default was: its random-start
    Gibbs chains sit at three times the data's density. ``dense-80`` / ``dense-90``: the same model
    plus one hidden unit that switches every visible unit on (weights +2, bias -80 / -90), so a dense
    mode far from the music holds most of the mass.
    """
    spec = WindowSpec(num_timesteps=4, stride=4, low=48, high=84)
    from datasets.sources import synthetic_pieces
    from datasets.windows import make_dataset

    data = make_dataset(synthetic_pieces(seed=1, n_pieces=40), spec).windows
    config = RBMConfig(n_visible=spec.n_visible, n_hidden=12, batch_size=20, learning_rate=0.02)
    model = load("numpy")(config, init_params(config, 0), 0)
    model.set_data(data)
    rng = np.random.default_rng(0)
    for _ in range(30):
        model.train_epoch(list(rng.permutation(len(data))[: len(data) // 20 * 20].reshape(-1, 20)))
    trained = model.params()
    models = {"cd1": trained}
    for bias in (80.0, 90.0):
        dense = np.hstack([trained.W, np.full((spec.n_visible, 1), 2.0)])
        models[f"dense-{bias:.0f}"] = RBMParams(dense, trained.b_v, np.append(trained.b_h, -bias))
    assert model.sample(100, 300, "random").mean() > 2 * data.mean(), "CD-1 grew its dense spurious mode"
    return models, data


def exact_ll(params: RBMParams, windows: np.ndarray) -> float:
    return float((-free_energy(params, windows) - exact_log_partition(params)).mean())


@pytest.fixture(scope="module")
def bimodal():
    return bimodal_models()


def test_base_rate_ais_fails_on_the_bimodal_models(bimodal):
    """The failure before the fix: AIS from the base-rate model misses the dense mode (ESS ~1, LL far too high)."""
    models, data = bimodal
    for name, params in models.items():
        exact = exact_log_partition(params)
        runs = [ais_log_partition(params, base_rate_biases(data), schedule(1000), 100, seed) for seed in range(3)]
        error = np.mean([exact - r.log_z for r in runs])  # log Z too low by this much: the LL too high by as much
        assert error > 3.0, (name, error)
        assert np.mean([r.effective_runs for r in runs]) < 4, name


# The two estimator checks below take a minute or more each on 2 cores (thousands of annealing steps per model):
# the bench tier (once per CI run, on 3.11), one test per model so that none runs past two minutes.
@pytest.mark.bench
@pytest.mark.parametrize("name", ["cd1", "dense-80", "dense-90"])
def test_the_bracket_holds_the_exact_likelihood_of_the_bimodal_models(bimodal, name):
    """Two starts and collapsed sweeps: AIS within 0.25 nat, exact inside [RAISE, AIS] (to 0.25 nat, averaged
    over three repeats); on the dense-mode models the bracket is narrower than 1 nat."""
    models, data = bimodal
    params, windows = models[name], data[:100]
    exact = exact_ll(params, windows)
    brackets = [
        likelihood_bracket(
            params,
            windows,
            ais_bases(data),
            schedule(2000),
            100,
            schedule(2000),
            np.random.default_rng(seed),
            sweep_every=10,
        )
        for seed in range(3)
    ]
    ais, low = np.mean([b.ais for b in brackets]), np.mean([b.raise_ for b in brackets])
    assert abs(ais - exact) < 0.25, (name, ais, exact)
    assert low - 0.25 < exact < ais + 0.25, (name, low, exact, ais)
    assert all(b.start == "uniform" and b.effective_runs > 10 for b in brackets), name
    if name.startswith("dense"):
        assert ais - low < 1.0, (name, ais - low)


@pytest.fixture(scope="module")
def unimodal():
    return list(unimodal_models())


@pytest.mark.bench
@pytest.mark.parametrize("index", range(5))
def test_ais_and_raise_within_a_tenth_of_a_nat_on_unimodal_models(unimodal, index):
    """One model per test: three random RBMs and two small trained ones."""
    params, data = unimodal[index]
    windows = data[:100]
    exact = exact_ll(params, windows)
    bracket = likelihood_bracket(
        params, windows, ais_bases(data), paper_schedule(), 100, paper_schedule(), np.random.default_rng(index)
    )
    assert abs(bracket.ais - exact) < 0.1, (index, bracket.ais, exact)
    assert abs(bracket.raise_ - exact) < 0.1, (index, bracket.raise_, exact)


def test_ais_is_reproducible_from_its_seed():
    params = random_params(50, 8, 9)
    base = base_rate_biases(np.random.default_rng(0).random((50, 50)) < 0.3)
    first, second = (ais_log_partition(params, base, quick_schedule(300), runs=20, seed=3) for _ in range(2))
    assert first.log_z == second.log_z
    assert 1.0 <= first.effective_runs <= 20.0 and first.log_z_stderr >= 0


def test_free_energy_gap_rises_with_overfitting():
    rng = np.random.default_rng(0)
    train = (rng.random((50, 40)) < 0.3).astype(float)
    valid = (rng.random((50, 40)) < 0.3).astype(float)
    params = RBMParams(np.zeros((40, 4)), 2 * (train.mean(0) - 0.5) * 10, np.zeros(4))  # memorises train marginals
    assert free_energy_gap(params, train, valid) > free_energy_gap(
        RBMParams(np.zeros((40, 4)), np.zeros(40), np.zeros(4)), train, valid
    )


# ------------------------------------------------------------------ note statistics
SPEC = WindowSpec()


@pytest.fixture(scope="module")
def synthetic_windows(tmp_path_factory):
    return build("synthetic", cache_dir=tmp_path_factory.mktemp("cache"), log=False).windows


def test_synthetic_music_has_its_known_statistics(synthetic_windows):
    stats = note_statistics(synthetic_windows, SPEC)
    assert stats["scale_consistency"] == 1.0 and stats["empty_row_rate"] == 0.0
    assert 3.0 <= stats["polyphony"] <= 4.0 and stats["invalid_onset_rate"] == 0.0
    assert set(stats) == set(SCALAR_METRICS)


def muspy_values(windows: np.ndarray) -> dict[str, list[float]]:
    import muspy

    names = (
        "polyphony",
        "polyphony_rate",
        "pitch_range",
        "n_pitches_used",
        "n_pitch_classes_used",
        "pitch_entropy",
        "pitch_class_entropy",
        "scale_consistency",
    )
    out = {name: [] for name in names}
    for window in windows:
        buffer = io.BytesIO()
        states = SPEC.to_matrix(window)
        decode_states(states, low=SPEC.low).write(buffer)
        buffer.seek(0)
        import pretty_midi

        music = muspy.from_pretty_midi(pretty_midi.PrettyMIDI(buffer))
        for name in names:
            function = getattr(muspy, name)
            out[name].append(function(music, POLYPHONY) if name == "polyphony_rate" else function(music))
    return out


POLYPHONY = 2


def test_statistics_equal_muspys_on_real_music(synthetic_windows, shared_data=None):
    windows = synthetic_windows[:40]
    ours = window_statistics(windows, SPEC)
    for name, values in muspy_values(windows).items():
        np.testing.assert_allclose(ours[name], values, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.shared
def test_statistics_equal_muspys_on_the_original_songs(shared_data, cache_dir):
    from tests.conftest import POP_MIDI

    windows = build(f"midi:{POP_MIDI}", cache_dir=cache_dir, log=False).windows
    chosen = windows[np.random.default_rng(0).choice(len(windows), 60, replace=False)]
    chosen = chosen[chosen.reshape(60, 15, -1)[..., :78].any((1, 2))]
    ours = window_statistics(chosen, SPEC)
    for name, values in muspy_values(chosen).items():
        np.testing.assert_allclose(ours[name], values, rtol=1e-9, atol=1e-12, err_msg=name)


def test_invalid_onsets_are_counted():
    window = np.zeros((15, 156), np.uint8)
    window[0, 78 + 10] = 1  # articulate without play
    window[1, 5] = window[1, 78 + 5] = 1
    stats = window_statistics(window.reshape(1, -1), SPEC)
    assert stats["invalid_onset_rate"][0] == 0.5


def test_set_comparisons(synthetic_windows):
    rng = np.random.default_rng(0)
    half = len(synthetic_windows) // 2
    same = compare_sets(synthetic_windows[:half], synthetic_windows[half:], SPEC, rng)
    noise = (rng.random((100, SPEC.n_visible)) < 0.05).astype(np.uint8)
    different = compare_sets(noise, synthetic_windows[half:], SPEC, rng)
    assert same["js_pitch_class"] < 0.05 < different["js_pitch_class"]
    assert same["mgeval_oa_polyphony"] > different["mgeval_oa_polyphony"]
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0) and js_divergence([1, 1], [1, 1]) == 0.0
    pitch, pitch_class = histograms(synthetic_windows, SPEC)
    assert pitch.sum() == pytest.approx(1.0) and pitch_class.sum() == pytest.approx(1.0)


def test_the_frechet_distance_of_a_single_sample_is_its_mean_gap(synthetic_windows):
    """One sample (``n_samples = 1``) has no spread: its distance is the scaled gap of its features to the music's
    mean plus the music's spread, finite, and 0 gap for a set of copies of one window against itself."""
    one = synthetic_windows[:1]
    distance = frechet_note_distance(one, synthetic_windows, SPEC)
    assert np.isfinite(distance) and distance > 0
    assert frechet_note_distance(one, np.repeat(one, 5, axis=0), SPEC) == pytest.approx(0.0, abs=1e-9)
    assert frechet_note_distance(one, synthetic_windows[1:2], SPEC) >= 0


def test_memorisation_finds_copies(synthetic_windows):
    train, held_out = synthetic_windows[:200], synthetic_windows[200:260]
    copies = train[:10]
    result = memorisation(copies, train, held_out)
    assert result["copy_rate"] == 1.0 and result["nearest_train_hamming"] == 0.0
    flipped = train[:3].copy()
    flipped[:, :7] ^= 1
    distances = nearest_hamming(flipped, train)
    brute_force = [int(np.abs(train.astype(int) - row.astype(int)).sum(1).min()) for row in flipped]
    assert distances.tolist() == brute_force and 0 < max(distances) <= 7  # 7 bits from their source, maybe nearer


def test_nearest_hamming_over_repeated_rows_equals_brute_force():
    """Queries and corpus are reduced to their distinct rows: every query, repeated or not, keeps its own distance."""
    rng = np.random.default_rng(3)
    corpus = rng.random((40, 13)) < 0.3
    corpus = corpus[rng.integers(0, 40, 500)]  # 500 rows, at most 40 distinct (a sequence model's frames repeat)
    queries = np.concatenate([corpus[:5], rng.random((30, 13)) < 0.3])[rng.permutation(35).repeat(3)]
    brute_force = [int((corpus != row).sum(1).min()) for row in queries]
    assert nearest_hamming(queries.astype(np.uint8), corpus.astype(np.uint8)).tolist() == brute_force
    assert nearest_hamming(queries[:0], corpus).shape == (0,)


def test_kde_of_repeated_values_equals_the_kernel_sum():
    from eval.scoring.sets import _kde

    values = np.random.default_rng(4).integers(0, 9, 2000).astype(float)
    grid = np.linspace(0, 10, 64)
    bandwidth = max(1.06 * values.std() * len(values) ** -0.2, 10 / 512 * 2)
    direct = np.exp(-0.5 * ((grid[:, None] - values[None, :]) / bandwidth) ** 2).mean(1)
    np.testing.assert_allclose(_kde(values, grid), direct / (direct.sum() * (grid[1] - grid[0])), rtol=1e-12)


# ------------------------------------------------------------------ the sample-quality score
def test_structure_score_is_zero_for_the_same_music_and_high_for_noise(synthetic_windows):
    from eval.scoring.quality import STRUCTURE, music_structure_js, structure_divergences

    half = len(synthetic_windows) // 2
    assert music_structure_js(synthetic_windows, synthetic_windows, SPEC) == 0.0
    noise = (np.random.default_rng(0).random((200, SPEC.n_visible)) < 0.05).astype(np.uint8)
    similar = music_structure_js(synthetic_windows[:half], synthetic_windows[half:], SPEC)
    assert similar < 0.05 < music_structure_js(noise, synthetic_windows, SPEC)
    assert set(structure_divergences(noise, synthetic_windows, SPEC)) == set(STRUCTURE)
    assert np.isnan(music_structure_js(np.zeros((3, SPEC.n_visible), np.uint8), synthetic_windows, SPEC))


def samples_of(profile_name: str, dataset) -> np.ndarray:
    """Train the NumPy reference with a profile's recipe (seed 0) and sample the way the profile says."""
    from eval.bench.tasks import model_config
    from eval.config import load_profile
    from eval.contract.task import learning_rates

    profile = load_profile(profile_name)
    config = model_config(profile, dataset.spec)
    seeds = np.random.SeedSequence(0).spawn(4)
    model = load("numpy")(config, init_params(config, seeds[0], profile.model.init), int(seeds[2].generate_state(1)[0]))
    model.set_data(dataset.windows)
    order = batch_order(dataset, seeds[1], config.batch_size, profile.run.epochs, profile.data.order)
    for epoch, rate in zip(order, learning_rates(config.learning_rate, len(order), profile.model.lr_schedule)):
        model.train_epoch(epoch, rate)
    return model.sample(profile.eval.n_samples, profile.eval.gibbs_steps, profile.eval.sample_start)


@pytest.mark.recipe
def test_the_sample_quality_score_ranks_music_model_noise_and_coin_flips():
    """Held-out music < the default model < CD-1's dense noise < coin flips at the music's density."""
    from eval.scoring.quality import music_structure_js

    dataset = build("bach", log=False)
    test, valid = dataset.subset("test"), dataset.subset("valid")
    density = float(test.reshape(len(test), 15, -1)[..., :78].mean())
    coin_flips = (np.random.default_rng(1).random((len(test), test.shape[1])) < density).astype(np.uint8)
    scores = {
        name: music_structure_js(windows, test, dataset.spec)
        for name, windows in (
            ("held-out music", valid),
            ("default model", samples_of("default", dataset)),
            ("CD-1 noise", samples_of("cd1", dataset)),
            ("coin flips", coin_flips),
        )
    }
    ranked = sorted(scores, key=scores.get)
    assert ranked == ["held-out music", "default model", "CD-1 noise", "coin flips"], scores


@pytest.mark.recipe
def test_the_structure_score_moves_with_density_only_through_length_and_sustain():
    """What the README says: register, pitch class and harmony ignore density; note length and sustain do not."""
    from eval.scoring.quality import music_structure_js, structure_divergences

    dataset = build("bach", log=False)
    test = dataset.subset("test")
    music_density = float(test.reshape(len(test), 15, -1)[..., :78].mean())
    parts, scores = {}, {}
    for density in (music_density, 0.5):
        flips = (np.random.default_rng(1).random(test.shape) < density).astype(np.uint8)
        parts[density] = structure_divergences(flips, test, dataset.spec)
        scores[density] = music_structure_js(flips, test, dataset.spec)
    for name in ("register", "pitch_class", "harmony"):
        assert abs(parts[music_density][name] - parts[0.5][name]) < 0.005, (name, parts)
    for name in ("note_length", "sustain"):
        assert parts[0.5][name] < parts[music_density][name] - 0.1, (name, parts)
    assert scores[0.5] == pytest.approx(0.193, abs=0.01) and scores[music_density] == pytest.approx(0.278, abs=0.01)
