"""Turn a run folder into report.md and a self-contained report.html (embedded plots, audio players)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.io import wavfile

from datasets.encoding import decode_states
from datasets.windows import SPLITS, WindowSpec
from eval.notes import SCALAR_METRICS, histograms, note_statistics

HEADLINE = (
    "train_windows_per_s",
    "ratio_to_roofline",
    "ceiling_ratio",
    "pl_per_unit",
    "ais_ll_per_row",
    "ais_effective_runs",
    "js_pitch_class",
)


def headline_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per implementation: mean over seeds of the headline metrics (ok rows only); status otherwise."""
    ok = frame[frame.status == "ok"]
    table = ok[ok.metric.isin(HEADLINE) & (ok.epoch.isna())].pivot_table(index="impl", columns="metric", values="value")
    table = table.reindex(columns=[m for m in HEADLINE if m in table.columns])
    problems = (
        frame[frame.status != "ok"]
        .groupby("impl")
        .apply(lambda g: "; ".join(sorted({f"{s}: {r}" for s, r in zip(g.status, g.reason)})), include_groups=False)
    )
    if len(problems):
        table = table.reindex(table.index.union(problems.index))
        table["status"] = problems.reindex(table.index).fillna("ok")
    return table


def _figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _learning_curves(frame: pd.DataFrame) -> plt.Figure:
    figure, (by_epoch, by_time, gap) = plt.subplots(1, 3, figsize=(15, 3.6))
    curves = frame[(frame.metric == "valid_pl_per_unit") & (frame.status == "ok")]
    seconds = frame[frame.metric == "epoch_seconds"]
    for (impl, seed), curve in curves.groupby(["impl", "seed"]):
        wall = seconds[(seconds.impl == impl) & (seconds.seed == seed)].sort_values("epoch")
        elapsed = wall.set_index("epoch").value.cumsum()
        by_epoch.plot(curve.epoch, curve.value, marker=".", label=f"{impl} s{seed}")
        by_time.plot(elapsed.reindex(curve.epoch).values, curve.value, marker=".", label=f"{impl} s{seed}")
    gaps = frame[(frame.metric == "free_energy_gap") & frame.epoch.notna() & (frame.status == "ok")]
    for (impl, seed), curve in gaps.groupby(["impl", "seed"]):
        gap.plot(curve.epoch, curve.value, marker=".", label=f"{impl} s{seed}")
    gap.set(xlabel="epoch", ylabel="F(valid) - F(train) (nats)", title="Free-energy gap (rising = overfitting)")
    by_epoch.set(xlabel="epoch", ylabel="validation PL (nats/unit)", title="Learning curves")
    by_time.set(xlabel="training wall time (s)", ylabel="validation PL (nats/unit)", title="Against wall time")
    by_epoch.legend(fontsize=7)
    return figure


def _throughput(frame: pd.DataFrame) -> plt.Figure:
    speeds = frame[(frame.metric.isin(["train_windows_per_s", "sklearn_windows_per_s"])) & (frame.status == "ok")]
    means = speeds.groupby("impl").value.mean().sort_values()
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.barh(means.index, means.values, color="tab:blue")
    roofline = frame[frame.metric == "roofline_windows_per_s"].value.mean()
    if np.isfinite(roofline):
        axis.axvline(roofline, color="tab:red", linestyle="--", label=f"roofline {roofline:,.0f}")
        axis.legend()
    axis.set(xlabel="training windows/s (steady state)", title="Throughput")
    return figure


def _pitch_classes(samples: dict[str, np.ndarray], data: np.ndarray, spec: WindowSpec) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(8, 3))
    names = ["data (test)", *samples]
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        _, pitch_class = histograms(data if index == 0 else samples[name], spec)
        axis.bar(np.arange(12) + index * width, pitch_class, width, label=name)
    axis.set_xticks(np.arange(12) + 0.4, ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"])
    axis.set(ylabel="share of notes", title="Pitch-class histograms")
    axis.legend(fontsize=7)
    return figure


def _piano_rolls(samples: dict[str, np.ndarray], spec: WindowSpec, per_impl: int = 4) -> plt.Figure:
    figure, axes = plt.subplots(len(samples), 1, figsize=(10, 1.8 * len(samples)), squeeze=False)
    for axis, (name, windows) in zip(axes[:, 0], samples.items()):
        rolls = [spec.to_matrix(w)[:, : spec.n_pitches].T for w in windows[:per_impl]]
        axis.imshow(
            np.hstack(rolls) if rolls else np.zeros((spec.n_pitches, 1)),
            aspect="auto",
            origin="lower",
            cmap="Greys",
            interpolation="nearest",
        )
        axis.set(ylabel=name, yticks=[])
    axes[-1, 0].set_xlabel(f"rows (sixteenth notes), {per_impl} samples each")
    return figure


def _write_audio(windows: np.ndarray, spec: WindowSpec, folder: Path, stem: str) -> list[str]:
    """MIDI and WAV (pretty_midi's sine synthesis: no sound font needed) of a few samples."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, window in enumerate(windows):
        midi = decode_states(spec.to_matrix(window), low=spec.low, articulation=spec.articulation)
        midi.write(str(folder / f"{stem}-{index}.mid"))
        audio = midi.synthesize(fs=16000)
        audio = (audio / max(1e-9, np.abs(audio).max()) * 0.8 * 32767).astype(np.int16)
        wavfile.write(folder / f"{stem}-{index}.wav", 16000, audio)
        names.append(f"{stem}-{index}")
    return names


def publish(run_dir: Path, dest: Path) -> Path:
    """Copy what a reader needs (report, results, environment, audio) without the run's bulky inputs."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in (
        "report.md",
        "report.html",
        "results.csv",
        "results.parquet",
        "env.json",
        "spec.json",
        "dataset_manifest.json",
    ):
        shutil.copy2(run_dir / name, dest / name)
    (dest / "samples").mkdir(exist_ok=True)
    for path in (run_dir / "samples").glob("*"):
        if path.suffix in (".wav", ".mid"):
            shutil.copy2(path, dest / "samples" / path.name)
    return dest / "report.html"


def render(run_dir: Path) -> Path:
    """Write report.md, report.html and samples/ for a finished (or partial) run folder."""
    frame = pd.read_csv(run_dir / "results.csv")
    spec_json = json.loads((run_dir / "spec.json").read_text())
    manifest = json.loads((run_dir / "dataset_manifest.json").read_text())
    environment = json.loads((run_dir / "env.json").read_text())
    spec = WindowSpec(**manifest["spec"])
    with np.load(manifest["artifact_path"]) as data:
        test = data["windows"][data["split"] == SPLITS.index("test")]
    samples = {p.stem: np.load(p) for p in sorted((run_dir / "samples").glob("*.npy"))}
    expected = [f"{i}-s{s}" for s in spec_json["run"]["seeds"] for i in spec_json["run"]["impls"]]
    missing = [name for name in expected if not (run_dir / "runs" / f"{name}.json").exists()]
    headline = headline_table(frame)
    stats = pd.DataFrame(
        {"data (test)": note_statistics(test, spec)}
        | {n: note_statistics(w, spec) for n, w in samples.items() if len(w)}
    ).T.reindex(columns=list(SCALAR_METRICS))
    hashes = frame[frame.status.isin(["ok", "diverged"]) & ~frame.impl.isin(["sklearn", "roofline"])]
    same = {c: hashes.groupby("seed")[c].nunique().max() == 1 for c in ("dataset_hash", "init_hash", "order_hash")}
    audio = {
        n: _write_audio(w[: spec_json["eval"].get("audio_samples", 3)], spec, run_dir / "samples", n)
        for n, w in samples.items()
        if len(w)
    }
    figures = {"Learning curves": _figure_png(_learning_curves(frame)), "Throughput": _figure_png(_throughput(frame))}
    if samples:
        figures["Pitch classes"] = _figure_png(_pitch_classes(samples, test, spec))
        figures["Piano rolls"] = _figure_png(_piano_rolls(samples, spec))
    sameness = ", ".join(f"{k.replace('_hash', '')} {'identical' if v else 'DIFFERENT'}" for k, v in same.items())
    intro = [
        f"# RBM Music Bench — run `{run_dir.name}`",
        "",
        f"Profile **{spec_json['name']}**, dataset `{manifest['source']}` ({manifest['windows_per_split']}), "
        f"seeds {spec_json['run']['seeds']}, {spec_json['run']['epochs']} epochs, "
        f"{spec_json['run']['threads']} thread(s) per run.",
        "",
        f"Inputs across implementations (per seed): {sameness}. Dataset sha256 `{manifest['windows_sha256']}`.",
        "",
    ]
    rough = frame[(frame.metric == "ais_ll_per_row") & frame.reason.fillna("").str.startswith("rough")]
    if len(rough):
        listed = "; ".join(f"{r.impl} s{r.seed} ({r.reason.removeprefix('rough: ')})" for r in rough.itertuples())
        intro += [
            f"**AIS caution** — a few annealing runs carry all the weight, so these log-likelihoods are rough "
            f"(log Z is likely underestimated): {listed}. See the README's caveats.",
            "",
        ]
    if missing:
        intro += [
            f"**Incomplete run** — missing: {', '.join(missing)}. Complete it with "
            f"`tox -e bench -- --resume {run_dir}`.",
            "",
        ]
    markdown = [
        *intro,
        "## Headline",
        "",
        headline.to_markdown(floatfmt=".4g"),
        "",
        "## Note statistics",
        "",
        stats.to_markdown(floatfmt=".3g"),
        "",
        "## Environment",
        "",
        pd.Series(environment).to_frame("value").to_markdown(),
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(markdown))
    body = [f"<p>{html.escape(line)}</p>" for line in intro[2:] if line]
    body += ["<h2>Headline</h2>", headline.to_html(float_format=lambda x: f"{x:.4g}", na_rep="—")]
    for title, png in figures.items():
        body += [f"<h2>{title}</h2>", f'<img alt="{title}" src="data:image/png;base64,{png}">']
    body += ["<h2>Note statistics (samples beside the data)</h2>", stats.to_html(float_format=lambda x: f"{x:.3g}")]
    body += ["<h2>Listen</h2>"]
    for stems in audio.values():
        for stem in stems:
            body.append(
                f'<p>{html.escape(stem)} <audio controls src="samples/{stem}.wav"></audio> '
                f'<a href="samples/{stem}.mid">MIDI</a></p>'
            )
    shown = {k: v for k, v in manifest.items() if k not in ("piece_ids", "inputs")}
    body += [
        "<h2>Environment</h2>",
        pd.Series(environment).to_frame("value").to_html(),
        "<h2>Dataset manifest</h2>",
        f"<pre>{html.escape(json.dumps(shown, indent=1))}</pre>",
    ]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>RBM Music Bench report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
        f"<h1>RBM Music Bench — {html.escape(run_dir.name)}</h1>{''.join(body)}</body></html>"
    )
    (run_dir / "report.html").write_text(page)
    return run_dir / "report.html"
