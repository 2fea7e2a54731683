"""Turn a finished run folder into report.md and a self-contained report.html (embedded plots, audio players).

The report leads with what a reader came for — the equivalence verdict, the
log-likelihood bracket, and how the samples compare with music — and only
then shows the raw tables. An unfinished or altered run is refused (see
`eval.bench.runfolder.RunFolder.results`).
"""

from __future__ import annotations

import errno
import html
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

import datasets
import impls
from core.errors import UserError
from core.files import atomic_write_bytes
from core.paths import ROOT
from datasets.sources import portable_source
from eval.bench.runfolder import RunFolder
from eval.config import EvalConfig, Profile, profile_from_dict
from eval.models import plugin
from eval.scoring import catalogue
from eval.scoring.notes import note_statistics
from eval.scoring.pieces import piece_statistics
from eval.scoring.sequences import as_windows, joined
from eval.timing.ablation import TOLERANCE
from reports import figures, published, tables, where_time_goes
from reports.audio import write_audio
from reports.models import beside_frames, models_table

CAVEATS = [
    "Pseudo-likelihood and likelihood rank recipes differently: CD-1 is close to a pseudo-likelihood method and "
    "wins on exact PL, while its Gibbs chains drift to a dense spurious mode that the log-likelihood bracket "
    "exposes. PL is shown as a diagnostic, not the objective.",
    "The bracket: AIS estimates log Z without bias in Z, so its log-likelihood is optimistic on average; RAISE "
    "anneals backwards from each test window and is conservative on average. Where they meet, the "
    "log-likelihood is known to their width.",
    "Invalid onsets (articulate without play) are expected from this model: play and articulate bits are "
    "conditionally independent given the hidden units. The decoder ignores them.",
    "Speeds come from a quiet phase after training (one implementation at a time) and are compared only as "
    "ratios measured in the same run.",
]
# a sequence model has no pseudo-likelihood and a partition function per frame: its bracket caveat says so
SEQUENCE_CAVEATS = [
    "The bracket: AIS estimates each frame's log Z_t without bias in Z_t, so its log-likelihood is optimistic on "
    "average; RAISE anneals backwards from each test frame and is conservative on average. Where they meet, the "
    "log-likelihood is known to their width.",
    *CAVEATS[2:],
]
# a normalised model (the RNN-NADE) has no partition function: nothing to bracket, and its units are not independent
EXACT_CAVEATS = [
    "The likelihood is exact: each frame's distribution is a product of conditionals that sums to one by "
    "construction, so no partition function is estimated and no bracket (AIS, RAISE) is needed.",
    CAVEATS[-1],
]


MODES_SENTENCE = (
    "Each implementation in every execution mode its framework offers here (eval.timing.ablation), timed as the "
    "quiet phase times it, once a round for `[run] ablation_rounds` interleaved rounds (its median shown, and its "
    "spread: max − min over the median, where a lead inside it decides nothing), each against the run's roofline; "
    "its difference from the NumPy reference after three "
    f"updates from the same noise (relative; equivalent within {TOLERANCE:g}). The fastest equivalent mode of each "
    "implementation is marked (a fast mode that computes something else never wins), and so is the mode the run "
    "trained in: where they differ, `[run] modes` would run the faster one."
)


def caveats(kind: str) -> list[str]:
    """The caveats that hold for a model of ``kind`` (`impls.models`)."""
    model = impls.models()[kind]
    if model.partition == "none":
        return EXACT_CAVEATS
    return SEQUENCE_CAVEATS if model.data == "sequences" else CAVEATS


def _likelihood(frame: pd.DataFrame, spec: Profile, manifest: dict) -> tuple[str, list, pd.DataFrame]:
    """The likelihood section: the bracket [RAISE, AIS], or the exact value where the model is normalised."""
    scored = _scored(frame, spec, manifest)
    if impls.models()[spec.model.kind].partition == "none":
        exact = (f"Test log-likelihood {scored}, exact: no bracket needed (the model is normalised, so there is no "
                 "partition function to estimate); mean ± 95 % t interval over seeds.")  # fmt: skip
        return "Exact log-likelihood", [exact], tables.exact_table(frame)
    bracket = ("Test log-likelihood between RAISE (a conservative, lower estimate) and AIS (an optimistic, upper "
               f"estimate) {scored}; mean ± 95 % t interval over seeds.")  # fmt: skip
    return "Log-likelihood bracket", [bracket], tables.bracket_table(frame)


def _pieces(dataset: datasets.Dataset, split: str | None, windows: np.ndarray, length: int) -> list[np.ndarray]:
    """The pieces of ``split`` cut to ``length`` rows; windows laid end to end where they are no piece's rows."""
    try:
        return datasets.held_out_pieces(dataset, split, length) if split else joined(windows, dataset.spec, length)
    except ValueError:  # overlapping windows (a stride below the window): the rows of a piece are not recoverable
        return joined(windows, dataset.spec, length)


def _data_rows(dataset: datasets.Dataset, evaluation: EvalConfig, seed: int = 0) -> dict[str, dict]:
    """Anchors for the sample scores: held-out music (valid against test) and coin flips at the music's density.

    The whole-piece statistics read each held-out piece in cuts of ``piece_rows`` rows, and the coin flips as
    pieces of that length.
    """
    spec, split, length = dataset.spec, evaluation.score_split, evaluation.piece_rows
    test, valid = dataset.subset(split), dataset.subset("valid")
    density = float(test.reshape(len(test), spec.num_timesteps, -1)[..., : spec.n_pitches].mean())
    flips = (np.random.default_rng(seed).random((len(test), spec.n_visible)) < density).astype(np.uint8)
    rows = {}
    for label, part, windows in (("music (test)", split, test), ("held-out music (valid)", "valid", valid),
                                 ("coin flips", None, flips)):  # fmt: skip
        if len(windows):
            stats = note_statistics(windows, spec)
            stats |= catalogue.computed("samples", windows, test, spec)
            rows[label] = stats | piece_statistics(_pieces(dataset, part, windows, length), spec, evaluation.bar_rows)
    return rows


def _sizes(manifest: dict, spec: Profile) -> str:
    """The dataset's size per split in the model's unit: windows, or pieces and their rows."""
    windows = manifest["windows_per_split"]
    if impls.models()[spec.model.kind].data != "sequences":
        return "windows: " + ", ".join(f"{k} {v:,}" for k, v in windows.items())
    rows = ", ".join(f"{k} {v * spec.data.num_timesteps:,}" for k, v in windows.items())
    pieces = ", ".join(f"{k} {v:,}" for k, v in manifest.get("pieces_per_split", {}).items())
    return f"pieces: {pieces}; rows: {rows}" if pieces else f"rows: {rows}"


def _scored(frame: pd.DataFrame, spec: Profile, manifest: dict) -> str:
    """What the bracket scored, in the model's terms: test windows, or frames each conditioned on its past."""
    split = spec.eval.score_split
    available = int(manifest["windows_per_split"].get(split, 0))
    windows, rows = min(spec.eval.ll_windows, available), spec.data.num_timesteps
    shape = f"{rows} rows" if rows != 1 else "one row"
    part = {"test": "test", "train": "training"}.get(split, split)
    if impls.models()[spec.model.kind].data != "sequences":
        every = f"every {part} window" if windows >= available else f"the first {windows:,} {part} windows"
        return f"on {every} ({windows:,} windows of {shape})" if windows >= available else f"on {every}"
    counted = frame[(frame.metric == "scored_frames") & (frame.status == "ok")].value
    frames = int(counted.max()) if len(counted) else windows * rows
    pieces = manifest.get("pieces_per_split", {}).get(split)
    whole = f"every {part} frame ({frames:,} frames" + (f" of {pieces:,} pieces)" if pieces else ")")
    unit = "frame" if rows == 1 else "row"
    some = f"the {frames:,} {unit}s of the first {windows:,} {part} windows ({shape} each)"
    return f"on {whole if windows >= available else some}, each {unit} conditioned on its piece's whole past"


def _sections(
    frame: pd.DataFrame, spec: Profile, manifest: dict, data_rows: dict, profiles: dict | None = None
) -> list[tuple[str, list, pd.DataFrame | None]]:
    """(title, paragraphs, table) in reading order."""
    margins, alpha = spec.verdict.margins, spec.verdict.alpha
    speeds = tables.speed_table(frame)
    out = [
        ("Verdict", [tables.equivalence_summary(frame, margins, alpha)], tables.verdict_table(frame, margins, alpha)),
        _likelihood(frame, spec, manifest),
        (
            "Samples beside music",
            [
                plugin(spec.model.kind).sampling(spec.eval, spec.model),
                "music_structure_js, the sample-quality score: mean Jensen–Shannon divergence (bits, 0 = the same) "
                "from the test music of five note-structure histograms — register, pitch class, harmony, note "
                "length, sustain; it scores structure, not count (how many notes is judged by note density and "
                "polyphony), though note length and sustain grow with density: coin flips score 0.28 at the "
                "music's density, 0.19 at 0.5. "
                "frechet_note_distance: Fréchet distance of per-window note statistics, in units of the music's "
                "spread. Held-out music and coin flips at the music's density show each score's scale.",
            ],
            tables.samples_table(frame, data_rows),
        ),
        ("Throughput (quiet phase)", tables.noisy_shares(speeds), speeds),
    ]
    if time_goes := where_time_goes.section(frame, profiles or {}):
        out.append(time_goes)
    modes = tables.modes_table(frame)
    if not modes.empty:
        out.append(("Execution modes (the ablation)", [MODES_SENTENCE, *tables.noisy_shares(modes)], modes))
    kind = published.benchmark_of(spec.data.source)
    if kind:  # a published benchmark: lead with the suite beside the literature
        model = published.model_name(spec.data.num_timesteps, spec.model.n_hidden)
        if impls.models()[spec.model.kind].data == "sequences":
            display, m = impls.models()[spec.model.kind].display, spec.model
            model = f"{display}, {m.n_hidden} hidden, " + (f"{m.n_recurrent} recurrent" if m.n_recurrent else
                                                           "no recurrence (a frame model)")  # fmt: skip
        out.insert(
            0,
            (
                f"Beside the published results: {published.TITLES[kind]}",
                [published.published_sentence(kind, spec.data)],
                published.published_table(frame, kind, model),
            ),
        )
    issues = tables.problems(frame)
    if issues:
        out.insert(0, ("Not everything ran", issues, None))
    return out


def _beside(frame: pd.DataFrame, paths: list[Path]) -> tuple[str, list, pd.DataFrame | None] | None:
    """The section of the models side by side: this run beside finished runs of other models on the same music."""
    found = [p for p in paths if (p / "spec.json").is_file()]
    missing = [f"{p}: not found (no finished run there), left out." for p in paths if p not in found]
    if not found:
        return ("Models side by side", missing, None) if missing else None
    both, notes = beside_frames(frame, found)
    paragraphs = [
        "Each model on the same music, scored by the same scorer: the bracket's two ends (AIS, RAISE) and the exact "
        "value where a model has one (a normalised model needs no bracket) as log-likelihood per row, or as NLL per "
        "frame over every held-out frame where every run scores them all, "
        "the sample-quality score, and statistics of whole pieces (the window model's samples laid end to end): "
        "bar repetition, bar self-similarity beyond other pieces', groove consistency (MusPy) and pitch-class "
        "drift between a piece's halves. Mean ± 95 % interval over seeds.",
        *notes,
        *missing,
    ]
    return ("Models side by side", paragraphs, models_table(both))


def render(run_dir: Path, beside: list[Path] | None = None) -> Path:
    """Write report.md, report.html and the audio of a finished run folder; returns report.html.

    ``beside``: finished runs of other models on the same music, shown in one table with this one (default: the
    profile's ``[run] beside``, relative to the checkout).
    """
    folder = RunFolder.open(run_dir)
    frame = folder.results()
    spec = profile_from_dict(folder.read_json(folder.spec))  # read through the same types as the run
    manifest = folder.read_json(folder.dataset_manifest)
    environment = folder.read_json(folder.env)
    dataset = datasets.load(folder.dataset_dir)
    window_spec = dataset.spec
    test = dataset.subset(spec.eval.score_split)
    pieces = {p.stem: np.load(p) for p in sorted(folder.samples_dir.glob("*.npy"))}  # windows, or whole pieces
    samples = {name: as_windows(a, window_spec.num_timesteps) if a.ndim == 3 else a for name, a in pieces.items()}
    data_rows = _data_rows(dataset, spec.eval)
    sections = _sections(frame, spec, manifest, data_rows, folder.read_profiles())
    others = (
        beside
        if beside is not None
        else [Path(p) if Path(p).is_absolute() else ROOT / p for p in spec.run.beside or ()]
    )
    if (models := _beside(frame, others)) is not None:
        sections.insert(1 if sections[0][0] != "Not everything ran" else 2, models)
    first = f"-s{spec.run.seeds[0]}"  # whole pieces are long (a WAV of 30 s is 1 MB): the first seed's are heard
    audio = {
        name: write_audio(music[: spec.eval.audio_samples], window_spec, folder.samples_dir, name)
        for name, music in pieces.items()
        if len(music) and (music.ndim == 2 or first in name)
    }
    whole = impls.models()[spec.model.kind].samples == "pieces"  # drawn as whole pieces beside held-out pieces
    music = _pieces(dataset, spec.eval.score_split, test, spec.eval.piece_rows) if whole else None
    generated = {name: a for name, a in pieces.items() if a.ndim == 3} if whole else None
    pictures = figures.all_figures(frame, samples, test, window_spec, spec.sweep, pieces=generated, music=music)
    hashes = frame[frame.status.isin(["ok", "diverged"]) & frame.impl.isin(list(impls.frameworks()))]
    same = {
        c: bool(hashes.groupby("seed")[c].nunique().max() == 1) for c in ("dataset_hash", "init_hash", "order_hash")
    }
    sameness = ", ".join(f"{k.replace('_hash', '')} {'identical' if v else 'DIFFERENT'}" for k, v in same.items())
    run = spec.run
    intro = [
        spec.description,
        f"Profile {spec.name} · model {impls.models()[spec.model.kind].display} · dataset {manifest['source']} "
        f"({_sizes(manifest, spec)}) · seeds {', '.join(map(str, run.seeds))} · {run.epochs} epochs · "
        f"{run.threads} thread(s) per task · device {run.device} · precision {spec.model.precision}.",
        f"Inputs across implementations (per seed): {sameness}. Dataset sha256 {manifest['windows_sha256'][:16]}….",
    ]
    notes = caveats(spec.model.kind)
    write_markdown(folder, intro, sections, environment, notes)
    write_html(folder, intro, sections, pictures, audio, environment, manifest, notes)
    return folder.report_html


def write_markdown(folder: RunFolder, intro: list[str], sections: list, environment: dict, notes=CAVEATS) -> None:
    lines = [f"# RBM Music Bench — run `{folder.name}`", "", *[p for p in intro if p for p in (p, "")]]
    for title, paragraphs, table in sections:
        lines += [f"## {title}", ""]
        for paragraph in paragraphs:
            lines += [f"- {paragraph}" if title == "Not everything ran" else paragraph, ""]
        if table is not None and not table.empty:
            lines += [table.to_markdown(), ""]
    lines += ["## Caveats", "", *[f"- {c}" for c in notes], "", "## Environment", ""]
    lines += [pd.Series(environment).to_frame("value").to_markdown(), ""]
    folder.write_text(folder.report_md, "\n".join(lines))


def write_html(folder, intro, sections, pictures, audio, environment, manifest, notes=CAVEATS) -> None:
    body = [f"<p>{html.escape(p)}</p>" for p in intro if p]
    for title, paragraphs, table in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if title == "Not everything ran":
            body.append("<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in paragraphs) + "</ul>")
        else:
            body += [f"<p>{html.escape(p)}</p>" for p in paragraphs]
        if table is not None and not table.empty:
            body.append(f'<div class="wide">{table.to_html(escape=True)}</div>')  # scrolls in its box, not the page
    for title, png in pictures.items():
        body += [
            f"<h2>{html.escape(title)}</h2>",
            f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">',
        ]
    if any(audio.values()):  # no heading over nothing to hear
        body.append("<h2>Listen</h2>")
    for stems in audio.values():
        for stem in stems:
            body.append(
                f'<p>{html.escape(stem)} <audio controls src="samples/{stem}.wav"></audio> '
                f'<a href="samples/{stem}.mid">MIDI</a></p>'
            )
    body += ["<h2>Caveats</h2>", "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in notes) + "</ul>"]
    shown = {k: v for k, v in manifest.items() if k not in ("piece_ids", "inputs")}
    body += [
        "<h2>Environment</h2>",
        f'<div class="wide">{pd.Series(environment).to_frame("value").to_html()}</div>',
        "<h2>Dataset manifest</h2>",
        f"<pre>{html.escape(json.dumps(shown, indent=1))}</pre>",
    ]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>RBM Music Bench report</title><style>"
        "body{font-family:sans-serif;max-width:1150px;margin:auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:13px;margin:0}.wide{overflow-x:auto;max-width:100%;margin:8px 0}"
        "img{max-width:100%;height:auto}pre{white-space:pre-wrap;overflow-wrap:anywhere}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "</style></head><body>"
        f"<h1>RBM Music Bench — {html.escape(folder.name)}</h1>{''.join(body)}</body></html>"
    )
    folder.write_text(folder.report_html, page)


PUBLISHED = ("report.md", "report.html", "results.csv", "results.parquet", "complete.json", "env.json", "spec.json",
             "dataset_manifest.json")  # fmt: skip


def _swap_folders(new: Path, old: Path) -> bool:
    """Exchange two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is unavailable."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), rename_exchange) == 0:
        return True
    number = ctypes.get_errno()
    if number in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(number, os.strerror(number), str(old))


def publish(run_dir: Path, dest: Path) -> Path:
    """Copy what a reader needs (report, results, environment, audio) without the run's bulky inputs.

    The copy is made in a hidden sibling folder and then put in place of ``dest`` in one rename: a failure or a
    kill leaves the previous published copy or the new one, never a mix of both (nor stale files of the old).
    """
    folder = RunFolder.open(run_dir)
    folder.check_complete()
    if not folder.report_html.exists():
        render(run_dir)
    dest = Path(os.path.abspath(dest))
    if dest.is_file() or (dest.is_dir() and any(p.name not in (*PUBLISHED, "profiles.json", "samples")
                                                for p in dest.iterdir())):  # fmt: skip
        raise UserError(f"{dest}: not a published report (it holds other files); publish to a new or empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "samples").mkdir(parents=True)
        for name in PUBLISHED:
            atomic_write_bytes(staging / name, (folder.path / name).read_bytes())
        if folder.profiles.is_file():  # a run from before profiles has none
            atomic_write_bytes(staging / folder.profiles.name, folder.profiles.read_bytes())
        recorded = folder.read_json(folder.spec)  # as run; the published copy names its data without a path
        if isinstance(recorded.get("data"), dict) and "source" in recorded["data"]:
            recorded["data"]["source"] = portable_source(recorded["data"]["source"])
            atomic_write_bytes(staging / "spec.json", json.dumps(recorded, indent=1, default=str).encode())
        for path in sorted(folder.samples_dir.glob("*")):
            if path.suffix in (".wav", ".mid"):
                atomic_write_bytes(staging / "samples" / path.name, path.read_bytes())
        if not dest.exists():
            os.rename(staging, dest)
        elif _swap_folders(staging, dest):
            shutil.rmtree(staging)  # now the previous copy
        else:  # no atomic exchange here: a kill between these two renames leaves the old copy under a dot-name
            previous = dest.with_name(f".{dest.name}.old{os.getpid()}")
            os.rename(dest, previous)
            os.rename(staging, dest)
            shutil.rmtree(previous)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and str(error.filename or "").startswith(str(staging)):
            error.filename = str(dest) + str(error.filename)[len(str(staging)) :]  # name the file the user asked for
        raise
    return dest / "report.html"
