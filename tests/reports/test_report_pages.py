"""What a reader sees: every figure has something to draw, a sequence model's piano rolls show whole pieces, the
bracket says what it scored (frames or windows), and no committed report names a machine's path.

The committed example pages are parsed as they are (unit tier: no run needed); the pages of the shared finished runs
are rendered and parsed in the bench tier.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impls
from datasets.windows import WindowSpec
from eval.config import load_profile
from reports import figures
from reports.render import _scored

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in [ROOT / "reports" / "example", *(ROOT / "reports" / "examples").glob("*")] if p.is_dir())
# an absolute path of a POSIX machine's usual roots, or a Windows drive; base64 images are cut out before the scan
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home|Users|mnt|var|opt|private|srv|data)/|\b[A-Z]:\\\\")
FIGURES = {"Learning curves", "Throughput", "Pitch classes", "Piano rolls", "Piano rolls (whole pieces)"}


class Page(HTMLParser):
    """The headings in order, each with the images that follow it (before the next heading)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[tuple[str, list[str]]] = []
        self._heading = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "h2":
            self._heading = True
            self.sections.append(("", []))
        elif tag == "img" and self.sections:
            self.sections[-1][1].append(dict(attrs).get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        self._heading = self._heading and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._heading:
            title, images = self.sections[-1]
            self.sections[-1] = (title + data, images)


def parse(page: str) -> dict[str, list[str]]:
    parser = Page()
    parser.feed(page)
    parser.close()
    return dict(parser.sections)


def png_size(src: str) -> tuple[int, int]:
    """(width, height) of a ``data:image/png;base64`` image; fails on anything else or an empty image."""
    prefix, data = src.split(",", 1)
    raw = base64.b64decode(data)
    assert prefix == "data:image/png;base64" and raw.startswith(b"\x89PNG\r\n\x1a\n"), prefix
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def expected_figures(frame: pd.DataFrame, kind: str, samples: bool = True) -> set[str]:
    """The figures the rows (and, with ``samples``, the stored samples) give something to draw."""
    rolls = "Piano rolls (whole pieces)" if impls.models()[kind].samples == "pieces" else "Piano rolls"
    drawn = {"Pitch classes", rolls} if samples else set()
    per_epoch = frame[frame.epoch.notna() & (frame.status == "ok")].metric
    if set(per_epoch) & {*figures.CURVES, "free_energy_gap"}:
        drawn.add("Learning curves")
    if frame.metric.str.fullmatch(r"train_(windows|frames)_per_s").any():
        drawn.add("Throughput")
    return drawn


def check_page(page: str, frame: pd.DataFrame, kind: str, samples: bool = True) -> dict[str, list[str]]:
    """One image per figure, each a real PNG, exactly the figures the rows (and samples) can fill."""
    sections = parse(page)
    shown = {title for title in sections if title in FIGURES or title.startswith("Scores against")}
    assert shown == expected_figures(frame, kind, samples), shown
    for title in shown:
        assert len(sections[title]) == 1, title
        width, height = png_size(sections[title][0])
        assert width > 100 and height > 100, (title, width, height)
    return sections


# ------------------------------------------------------------------------------------------------ committed pages
@pytest.mark.parametrize("folder", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_a_committed_report_names_no_machine_path(folder):
    """Reports, results, specs and manifests are read by others: a machine's absolute path there is noise (and a
    leak); the dataset is named by its benchmark or folder and its sha256."""
    for path in sorted(folder.iterdir()):
        if path.suffix in (".md", ".html", ".csv", ".json"):
            text = re.sub(r"data:[a-z/]+;base64,[A-Za-z0-9+/=]+", "", path.read_text())
            found = MACHINE_PATH.search(text)
            assert found is None, f"{path.relative_to(ROOT)}: {text[max(found.start() - 60, 0) : found.end() + 60]!r}"
        elif path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            for column in frame.select_dtypes(include="object"):
                values = frame[column].dropna().astype(str).unique()
                bad = [v for v in values if MACHINE_PATH.search(v)]
                assert not bad, f"{path.relative_to(ROOT)} column {column}: {bad[:2]}"


def test_profiles_name_no_machine_path():
    for path in sorted((ROOT / "eval" / "profiles").glob("*.toml")):
        assert not MACHINE_PATH.search(path.read_text()), path.name


@pytest.mark.parametrize("folder", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_a_committed_report_draws_only_figures_with_data(folder):
    kind = json.loads((folder / "spec.json").read_text())["model"].get("kind", "rbm")
    frame = pd.read_parquet(folder / "results.parquet")
    page = (folder / "report.html").read_text()
    # a page re-rendered from a published copy (no stored samples) has no sample figures: then neither of them
    sections = check_page(page, frame, kind, samples="<h2>Pitch classes</h2>" in page)
    if "Pitch classes" in sections:  # a sequence model's piano rolls are its whole pieces, a window model's windows
        assert ("Piano rolls (whole pieces)" in sections) == (impls.models()[kind].samples == "pieces")


# ------------------------------------------------------------------------------------------------ figures, unit
def rows(*specs: tuple[str, str, float | None]) -> pd.DataFrame:
    """Result rows of two implementations, one seed: ``(phase, metric, epoch)`` each."""
    out = []
    for impl in ("numpy", "jax"):
        for phase, metric, epoch in specs:
            epochs = range(1, 4) if epoch else [None]
            out += [dict(impl=impl, seed=0, phase=phase, metric=metric, value=1.0 + (e or 0) * 0.1, epoch=e,
                         status="ok") for e in epochs]  # fmt: skip
    return pd.DataFrame(out, columns=["impl", "seed", "phase", "metric", "value", "epoch", "status"])


def test_a_figure_with_nothing_to_draw_is_left_out():
    eval_only = rows(("eval", "ais_nll_per_frame", None))
    assert figures.all_figures(eval_only, {}, np.zeros((0, 88)), WindowSpec(), {}) == {}
    assert figures.learning_curves(eval_only) is None and figures.throughput(eval_only) is None


@pytest.mark.parametrize(
    ("held", "drawn"),
    [
        ((("train", "cd_cost", 1),), "cd_cost"),
        ((("train", "cd_cost", 1), ("train", "valid_nll_per_frame", 1)), "valid_nll_per_frame"),
        ((("train", "valid_pl_per_unit", 1), ("train", "free_energy_gap", 1)), "valid_pl_per_unit"),
    ],
)
def test_learning_curves_draw_the_validation_score_the_rows_hold(held, drawn):
    frame = rows(*held, ("train", "epoch_seconds", 1))
    assert figures.curve_metric(frame) == drawn
    figure = figures.learning_curves(frame)
    panels = figure.axes
    assert all(len(axis.lines) == 2 for axis in panels)  # no empty panel: both implementations in each
    assert panels[0].get_ylabel() == figures.CURVES[drawn]
    assert ("free_energy_gap" in {m for _, m, _ in held}) == (len(panels) == 3)


def test_the_epoch_early_stopping_kept_is_circled_on_each_curve():
    frame = rows(("train", "valid_nll_per_frame", 1), ("train", "epoch_seconds", 1))
    kept = [dict(impl=impl, seed=0, phase="train", metric="best_epoch", value=float(epoch), epoch=None, status="ok")
            for impl, epoch in (("numpy", 2), ("jax", 3))]  # fmt: skip
    axis = figures.learning_curves(pd.concat([frame, pd.DataFrame(kept)], ignore_index=True)).axes[0]
    circles = [line for line in axis.lines if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in circles] == [[3], [2]]  # jax's epoch 3, numpy's epoch 2 (sorted)
    assert "best epoch" in axis.get_title()


def test_throughput_reads_frames_or_windows_as_the_rows_hold():
    frame = rows(("timing", "train_frames_per_s", None), ("timing", "roofline_frames_per_s", None))
    figure = figures.throughput(frame)
    assert figure.axes[0].get_xlabel().startswith("training frames/s") and len(figure.axes[0].patches) == 2


def test_a_share_of_ceiling_above_one_is_marked_as_timing_noise_and_explained():
    """An update contains its products and draws, so a share above 1 is a slow moment of their timing, never a result
    to read as one: marked in the throughput table, with the sentence that says why; a share below 1 as it is."""
    from reports import tables

    frame = rows(("timing", "train_windows_per_s", None), ("timing", "ratio_to_ceiling", None))
    frame.loc[(frame.impl == "jax") & (frame.metric == "ratio_to_ceiling"), "value"] = 0.78
    table = tables.speed_table(frame)  # numpy's share 1.0 stands; the rows' default 1.0 raised to 1.17 next
    assert not tables.noisy_shares(table) and table["share of ceiling"].tolist() == ["1.00", "0.78"]
    frame.loc[(frame.impl == "numpy") & (frame.metric == "ratio_to_ceiling"), "value"] = 1.17
    table = tables.speed_table(frame)
    assert table["share of ceiling"].tolist() == [f"1.17 ({tables.NOISE_LABEL})", "0.78"]
    (sentence,) = tables.noisy_shares(table)
    assert "cannot be" in sentence and "re-run" in sentence


def test_a_sequence_models_piano_rolls_are_whole_pieces():
    spec = WindowSpec(num_timesteps=1, low=21, high=109, articulation=False)
    rng = np.random.default_rng(0)
    pieces = {f"{impl}-s0": (rng.random((3, 64, 88)) < 0.05).astype(np.uint8) for impl in ("numpy", "jax")}
    music = [(rng.random((64, 88)) < 0.05).astype(np.uint8)]
    figure = figures.piece_rolls(pieces, music, spec)
    assert len(figure.axes) == 3 and all(axis.get_xlim() == (0, 64) for axis in figure.axes)  # 64 steps, not 4
    windows = {name: a.reshape(-1, 88) for name, a in pieces.items()}
    drawn = figures.all_figures(rows(), windows, music[0], spec, {}, pieces=pieces, music=music)
    assert set(drawn) == {"Pitch classes", "Piano rolls (whole pieces)"}


@pytest.mark.parametrize(
    ("profile", "windows", "pieces", "says"),
    [
        (
            "rnn_jsb",
            4725,
            77,
            "on every test frame (4,725 frames of 77 pieces), each frame conditioned on its piece's whole past",
        ),
        (
            "rnn_rbm",
            766,
            42,
            "on the 1,500 rows of the first 100 test windows (15 rows each), each row conditioned on its piece's "
            "whole past",
        ),
        ("jsb", 1221, 77, "on every test window (1,221 windows of 4 rows)"),
        ("default", 766, 42, "on the first 100 test windows"),
    ],
)
def test_the_bracket_says_what_was_scored(profile, windows, pieces, says):
    spec = load_profile(profile)
    manifest = {"windows_per_split": {"test": windows}, "pieces_per_split": {"test": pieces}}
    assert _scored(pd.DataFrame(columns=["metric", "status", "value"]), spec, manifest) == says


# ------------------------------------------------------------------------------------------------ rendered runs
@pytest.mark.bench
@pytest.mark.parametrize("which", ["window_run", "rnn_run"])
def test_a_rendered_report_draws_only_what_its_rows_hold(which, request, copy_run):
    from reports.render import render

    run = request.getfixturevalue(which)
    run_dir = copy_run(run, which)  # rendering writes into the run: on a copy
    spec = json.loads((run_dir / "spec.json").read_text())
    kind = spec["model"]["kind"]
    page = render(run_dir, beside=[]).read_text()
    sections = check_page(page, run.frame, kind)
    if impls.models()[kind].samples == "pieces":
        assert "each frame conditioned on its piece" in page or "each row conditioned on its piece" in page
        stored = np.load(sorted((run_dir / "samples").glob("*.npy"))[0])
        assert stored.ndim == 3 and stored.shape[1] == spec["eval"]["piece_rows"]  # what the rolls draw, whole
        assert "Piano rolls (whole pieces)" in sections
    else:
        assert "test windows" in page and "frame conditioned" not in page


def test_a_sequence_models_caveats_speak_of_frames_not_windows():
    from reports.render import caveats

    sequence, window = " ".join(caveats("rnn_rbm")), " ".join(caveats("rbm"))
    assert "each test frame" in sequence and "test window" not in sequence and "pseudo-likelihood" not in sequence
    assert "each test window" in window and "pseudo-likelihood" in window.lower()
