"""The report's tables, computed from a run's rows: numbers as people read them, each with how sure it is.

Every score is a mean over seeds with its 95 % Student-t interval
(`eval.scoring.stats.interval`); the verdict is a paired TOST per metric
against the NumPy reference; the bracket puts RAISE (conservative) beside AIS
(optimistic). Functions return DataFrames of formatted strings, so Markdown
and HTML show the same thing.
"""

from __future__ import annotations

import math

import pandas as pd

import impls
from eval.scoring import calibrations, catalogue
from eval.scoring.catalogue import describe
from eval.scoring.stats import equivalence, interval
from eval.timing.roofline import NOISE_LABEL, noisy_share

MEASURED_BESIDE = {"sklearn": "scikit-learn", "roofline": "roofline"}  # rows that are no framework of the catalogue


def display_name(impl: str) -> str:
    """A framework's display name from the catalogue (or a reference measurement's)."""
    known = impls.frameworks()
    return known[impl].display if impl in known else MEASURED_BESIDE.get(impl, impl)


def number(value: float | None, metric: str = "") -> str:
    """A number as people read it: 23,070 windows/s, 0.48, -0.0953, 3.91; '—' for nothing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    value = 0.0 if abs(value) < 1e-9 else value  # -3e-14 is a rounding error, not a number to print
    unit = describe(metric)[0]
    magnitude = abs(value)
    if unit in ("windows/s", "steps/s", "MB") or magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def with_interval(values: list[float], metric: str) -> str:
    """``mean ± half-width`` (95 % t interval over seeds), or the mean alone for one seed."""
    found = interval(values)
    if found.n == 0:
        return "—"
    if found.n == 1:
        return number(found.mean, metric)
    return f"{number(found.mean, metric)} ± {number(found.half_width, metric)}"


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Final (not per-epoch) rows with a value."""
    return frame[(frame.status == "ok") & frame.epoch.isna()]


def per_seed(frame: pd.DataFrame, impl: str, metric: str) -> pd.Series:
    rows = final_rows(frame)
    rows = rows[(rows.impl == impl) & (rows.metric == metric)]
    return rows.groupby("seed").value.mean()


def implementations(frame: pd.DataFrame) -> list[str]:
    present = set(frame.impl.dropna())
    return [name for name in impls.frameworks() if name in present]


def label(frame: pd.DataFrame, impl: str) -> str:
    """An implementation's name, with its device when the run used a GPU (the headline split by device)."""
    devices = sorted(set(frame.loc[frame.impl == impl, "device"].dropna())) if "device" in frame else []
    gpu_run = "device" in frame and (frame.device == "cuda").any()
    return f"{display_name(impl)} ({', '.join(devices)})" if gpu_run and devices else display_name(impl)


def run_key(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """The (model, dataset) of a run's rows: the key of the calibration its verdict reads (None where unnamed)."""

    def pick(column: str) -> str | None:
        values = frame[column].dropna() if column in frame else pd.Series(dtype=object)
        return str(values.iloc[0]) if len(values) else None

    return pick("model"), pick("dataset")


def verdict_table(frame: pd.DataFrame, margins: dict[str, float], alpha: float) -> pd.DataFrame:
    """✓/✗ per metric and framework: paired TOST of the framework against the reference (NumPy) over seeds.

    ``margins`` are the profile's overrides; every other margin is the calibration of the run's own (model,
    dataset), and a score without either is "not judged: no margin" (another model's margin never stands in).
    """
    base = impls.reference()
    candidates = [name for name in implementations(frame) if name != base]
    model, dataset = run_key(frame)
    present = set(frame.loc[frame.epoch.isna(), "metric"])  # diverged rows too: their score shows "—"
    rows = []
    for metric, margin in calibrations.margins(margins, model, dataset).items():
        if metric not in present:  # a score this model does not have (the RNN-RBM's pseudo-likelihood)
            continue
        reference = per_seed(frame, base, metric)
        basis = calibrations.margin_basis(metric, margins, model, dataset)
        if margin is None:
            rows.append({"metric": metric, "margin": f"none ({basis})"}
                        | {label(frame, name): calibrations.NO_MARGIN for name in candidates})  # fmt: skip
            continue
        shown = f"± {number(margin, metric)} {describe(metric)[0]} ({basis})".replace("  ", " ")
        row = {"metric": metric, "margin": shown}
        for name in candidates:
            mine = per_seed(frame, name, metric)
            seeds = reference.index.intersection(mine.index)
            if not len(seeds) or not len(reference):
                row[label(frame, name)] = "—"
                continue
            test = equivalence(mine[seeds].tolist(), reference[seeds].tolist(), margin, alpha)
            detail = f"Δ {number(test.mean_difference, metric)}"
            if test.n >= 2:
                confidence = round(100 * (1 - 2 * alpha))  # the TOST's interval: 90 % at alpha 0.05
                detail += (
                    f", {confidence} % [{number(test.low, metric)}, {number(test.high, metric)}], p {test.p_value:.2g}"
                )
            row[label(frame, name)] = f"{test.verdict} {detail}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric") if rows else pd.DataFrame()


def equivalence_summary(frame: pd.DataFrame, margins: dict[str, float], alpha: float) -> str:
    """The sentence a user of a cross-framework benchmark came for."""
    table = verdict_table(frame, margins, alpha)
    if table.empty or len(table.columns) < 2:
        return "No framework besides the NumPy reference ran, so there is no equivalence verdict."
    seeds = final_rows(frame).seed.nunique()
    model, dataset = run_key(frame)
    parts = []
    for column in table.columns[1:]:
        counts = {mark: int(table[column].str.startswith(mark).sum()) for mark in ("✓", "✗", "?")}
        unjudged = int((table[column] == calibrations.NO_MARGIN).sum())
        parts.append(f"{column} {counts['✓']} equivalent, {counts['✗']} different, {counts['?']} inconclusive"
                     + (f", {unjudged} not judged" if unjudged else ""))  # fmt: skip
    undetermined = " With one seed the test cannot conclude: run more seeds." if seeds < 2 else ""
    found = calibrations.calibration(model, dataset)
    measured = found.scores if found else {}
    short = [m for m in table.index if m not in margins and measured.get(m, {}).get("seeds_needed", 0) > seeds]
    power = (
        f" At {seeds} seeds the test confirms truly equivalent implementations with 80 % power only where the "
        f"margin allows it; {', '.join(short)} need{'s' if len(short) == 1 else ''} more seeds (margins and the "
        "seeds each needs: README, The verdict's margins)."
        if short
        else ""
    )
    where = (
        f"within margins calibrated for {model} on {dataset} from the smallest recipe change that matters"
        if found
        else f"with no calibrated margins for {model} on {dataset} (scores without a profile margin are not judged)"
    )
    return (
        f"Against the NumPy reference, per metric, {where} (paired TOST over {seeds} seeds, α = {alpha}, "
        "90 % intervals; ✓ equivalent, ✗ different, ? inconclusive — more seeds would decide): "
        + "; ".join(parts)
        + f" of {len(table)} metrics.{undetermined}{power}"
    )


def bracket_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per implementation: the log-likelihood bracket [RAISE, AIS] per row, its width, AIS's effective runs."""
    rows = []
    for name in implementations(frame):
        low, high = per_seed(frame, name, "raise_ll_per_row"), per_seed(frame, name, "ais_ll_per_row")
        width = per_seed(frame, name, "bracket_width")
        rows.append(
            {
                "implementation": label(frame, name),
                "RAISE (low) nats/row": with_interval(low.tolist(), "raise_ll_per_row"),
                "AIS (high) nats/row": with_interval(high.tolist(), "ais_ll_per_row"),
                "width nats/window": with_interval(width.tolist(), "bracket_width"),
                "AIS effective runs": with_interval(per_seed(frame, name, "ais_effective_runs").tolist(), ""),
                "exact PL nats/unit": with_interval(per_seed(frame, name, "pl_per_unit").tolist(), "pl_per_unit"),
                "AIS + RAISE s": with_interval(
                    (per_seed(frame, name, "ais_seconds") + per_seed(frame, name, "raise_seconds")).tolist(), "s"
                ),
            }
        )
    return pd.DataFrame(rows).set_index("implementation") if rows else pd.DataFrame()


def exact_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per implementation: the exact log-likelihood (a normalised model's: no bracket), per row and per frame."""
    rows = []
    for name in implementations(frame):
        pick = lambda metric, name=name: with_interval(per_seed(frame, name, metric).tolist(), metric)
        rows.append(
            {
                "implementation": label(frame, name),
                "exact nats/row": pick("exact_ll_per_row"),
                "exact NLL nats/frame": pick("exact_nll_per_frame"),
                "frames scored": pick("scored_frames"),
                "scoring s": pick("exact_seconds"),
            }
        )
    return pd.DataFrame(rows).set_index("implementation") if rows else pd.DataFrame()


def samples_table(frame: pd.DataFrame, data_rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Note statistics of the samples (mean ± interval over seeds) beside held-out music (catalogue: ``samples``)."""
    metrics = catalogue.shown("samples")
    table = {row: {m: number(values.get(m), m) for m in metrics} for row, values in data_rows.items()}
    for name in implementations(frame):
        table[label(frame, name)] = {m: with_interval(per_seed(frame, name, m).tolist(), m) for m in metrics}
    return pd.DataFrame(table).T


def speed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The quiet phase's throughput: windows/s, ratio to the roofline, ceiling and share of it reached."""
    ok = frame[(frame.status == "ok") & (frame.phase == "timing")]
    unit = "frames/s" if (ok.metric == "train_frames_per_s").any() else "windows/s"  # a sequence model: frames
    rows = []
    for name in [*implementations(frame), "sklearn"]:
        mine = ok[ok.impl == name]
        pick = lambda metric, rows=mine: rows[rows.metric == metric].value.tolist()
        speed = pick("train_windows_per_s") or pick("train_frames_per_s") or pick("sklearn_windows_per_s")
        if not speed:
            continue
        rows.append(
            {
                "implementation": label(frame, name),
                unit: number(sum(speed) / len(speed), "train_windows_per_s"),
                "ratio to roofline": number(_mean(pick("ratio_to_roofline"))),
                "ceiling": number(_mean(pick("ceiling_ratio"))),
                "share of ceiling": share(_mean(pick("ratio_to_ceiling"))),
                "compile s": number(_mean(pick("compile_s"))),
            }
        )
    return pd.DataFrame(rows).set_index("implementation") if rows else pd.DataFrame()


def modes_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The execution-mode ablation (``ablation`` rows): each implementation in each mode, its speed and ratios
    against the run's roofline, its difference from the reference, its implementation's fastest equivalent mode
    (`eval.timing.ablation.fastest_equivalent`) and the mode the run trained in."""
    from eval.timing.ablation import TOLERANCE, fastest_equivalent

    ok = frame[(frame.status == "ok") & (frame.phase == "ablation")]
    if ok.empty or "mode" not in ok:
        return pd.DataFrame()
    used = frame[(frame.phase == "timing") & frame.impl.isin(ok.impl)].groupby("impl")["mode"].first()
    unit = "frames/s" if (ok.metric == "train_frames_per_s").any() else "windows/s"
    measured = []
    for (name, mode), mine in ok.groupby(["impl", "mode"], sort=False):
        pick = lambda metric, rows=mine: _mean(rows[rows.metric == metric].value.tolist())
        speed = pick("train_windows_per_s") or pick("train_frames_per_s")
        measured.append({"impl": name, "mode": mode, "speed": speed, "difference": pick("mode_max_difference"),
                         **{m: pick(m) for m in ("ratio_to_roofline", "ratio_to_ceiling", "compile_s",
                                                 "mode_speed_spread")}})  # fmt: skip
    measured = pd.DataFrame(measured)
    measured["fastest"] = fastest_equivalent(
        measured.astype({"speed": float, "difference": float}), "speed", "difference"
    )
    rows = []
    for r in measured.itertuples():
        checked = r.difference is not None and r.difference == r.difference  # a NaN: no check for this model
        rows.append(
            {
                "implementation": label(frame, r.impl),
                "mode": r.mode,
                unit: number(r.speed, "train_windows_per_s"),
                "spread": "—" if pd.isna(r.mode_speed_spread) else f"{r.mode_speed_spread:.0%}",
                "ratio to roofline": number(r.ratio_to_roofline),
                "share of ceiling": share(r.ratio_to_ceiling),
                "compile s": number(r.compile_s),
                "difference from the reference": f"{r.difference:.1e}" if checked else "not checked",
                "equivalent": "yes" if checked and r.difference <= TOLERANCE else "no" if checked else "—",
                "fastest equivalent": "yes" if r.fastest else "",
                "used by this run": "yes" if used.get(r.impl) == r.mode else "",
            }
        )
    return pd.DataFrame(rows).set_index("implementation")


def share(value: float | None) -> str:
    """A share of a ceiling; one above 1 cannot be (an update does its products and draws, and more), so it is
    marked as what it is: the ceiling's parts were timed in a slower moment than the epoch (a shared machine)."""
    return f"{number(value)} ({NOISE_LABEL})" if noisy_share(value) else number(value)


def noisy_shares(table: pd.DataFrame) -> list[str]:
    """The sentence that explains a share marked by `share` in ``table``, if one is."""
    if "share of ceiling" not in table or not table["share of ceiling"].str.contains(NOISE_LABEL).any():
        return []
    return [f"A share of ceiling above 1 ({NOISE_LABEL}) cannot be: an update does its products and its draws, and "
            "more. Its products and draws were timed in a slower moment than its epochs (a shared machine's); the "
            "row's speed stands, its ceiling and share do not: re-run for those."]  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def problems(frame: pd.DataFrame) -> list[str]:
    """One line per task that did not produce results: skipped, failed or diverged, with the reason."""
    bad = frame[frame.status != "ok"].drop_duplicates(["impl", "seed", "status", "reason"])
    return [f"{r.impl} seed {r.seed}: {r.status} — {r.reason}" for r in bad.itertuples()]
