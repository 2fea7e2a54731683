"""The report's "where the time goes": one update of the slowest framework under its own profiler.

The throughput table says how far each framework is from the roofline; this section says why, for the one
furthest from it: its update's operators (self time per update, largest first), the time spent in some operator
on any thread, and the time outside every operator (the framework's dispatch, its executor, Python), each
beside the roofline's time for the same update. The other profiled frameworks get one line each. The profiles
are the timing tasks' (`eval.timing.profile`, ``profiles.json`` of the run folder).
"""

from __future__ import annotations

import pandas as pd

from reports.tables import display_name, implementations, number

SHOWN = 10  # operators listed by name; the rest are one row


def _speeds(frame: pd.DataFrame) -> dict[str, tuple[float, float | None]]:
    """Per implementation: its mean training units/s and ratio to the roofline in the timing phase."""
    ok = frame[(frame.status == "ok") & (frame.phase == "timing")]
    out = {}
    for impl in implementations(frame):
        mine = ok[ok.impl == impl]
        speed = mine[mine.metric.isin(["train_windows_per_s", "train_frames_per_s"])].value
        ratio = mine[mine.metric == "ratio_to_roofline"].value
        if len(speed):
            out[impl] = (float(speed.mean()), float(ratio.mean()) if len(ratio) else None)
    return out


def _by_impl(profiles: dict[str, dict]) -> dict[str, dict]:
    """The first profile of each implementation (a sweep times one task per configuration)."""
    out: dict[str, dict] = {}
    for profile in profiles.values():
        out.setdefault(profile["impl"], profile)
    return out


def operator_table(profile: dict, roofline_ms: float | None, unprofiled_ms: float | None = None) -> pd.DataFrame:
    """Operators by self time per update, then the update's split: in operators, outside them, the wall time, and
    beside it the same update unprofiled (the timing phase's) and the roofline's (shares: of the profiled update)."""
    wall = profile["wall_ms"]
    share = lambda ms: f"{ms / wall:.0%}" if wall > 0 else "—"
    rows = [
        {"": o["operator"], "calls per update": number(o["calls"]), "ms per update": number(o["self_ms"]),
         "share of the update": share(o["self_ms"])}
        for o in profile["operators"][:SHOWN]
    ]  # fmt: skip
    rest = profile["operators"][SHOWN:]
    if rest:
        ms = sum(o["self_ms"] for o in rest)
        calls = sum(o["calls"] for o in rest)
        rows.append({"": f"{len(rest)} other operators", "calls per update": number(calls),
                     "ms per update": number(ms), "share of the update": share(ms)})  # fmt: skip
    for name, ms in (
        ("in some operator (any thread)", profile["in_operators_ms"]),
        ("outside every operator (dispatch, executor, Python, profiler)", profile["outside_ms"]),
        ("the update, profiled (wall)", wall),
        ("the update, unprofiled (the timing phase)", unprofiled_ms),
        ("the roofline's update (its dense products alone)", roofline_ms),
    ):
        rows.append({"": name, "calls per update": "", "ms per update": number(ms),
                     "share of the update": share(ms) if ms is not None else "—"})  # fmt: skip
    return pd.DataFrame(rows).set_index("")


def section(frame: pd.DataFrame, profiles: dict[str, dict]) -> tuple[str, list[str], pd.DataFrame | None] | None:
    """(title, paragraphs, table) for the slowest profiled framework of the run; None without profiles."""
    speeds, profiled = _speeds(frame), _by_impl(profiles)
    usable = {impl: p for impl, p in profiled.items() if "error" not in p and impl in speeds}
    if not usable:
        return None
    slowest = min(speeds, key=lambda impl: speeds[impl][0])
    chosen = min(usable, key=lambda impl: speeds[impl][0])
    profile, (speed, ratio) = usable[chosen], speeds[chosen]
    units = profile["units_per_update"]
    unprofiled = units / speed * 1e3
    roofline_ms = unprofiled * ratio if ratio else None  # the roofline runs ratio times faster
    unit = "frames" if (frame.metric == "train_frames_per_s").any() else "windows"
    lead = (
        f"One update of {display_name(chosen)} ({profile['mode']} mode), the slowest "
        + ("framework" if chosen == slowest else "profiled framework")
        + " of the run "
        f"({number(speed)} {unit}/s"
        + (f", {number(ratio)} of the roofline" if ratio else "")
        + f"), under its framework's own profiler: {profile['updates']} updates of {units:,.0f} {unit} after a "
        f"warm-up of the same updates, per update. Profiled, an update took {number(profile['wall_ms'])} ms "
        f"(unprofiled, in the timing phase: {number(unprofiled)} ms); {number(profile['in_operators_ms'])} ms "
        f"had some operator running and {number(profile['outside_ms'])} ms none: the framework's dispatch, its "
        "executor, Python and the profiler's own cost. Operators are by self time (an operator's time less the "
        "operators inside it); operators on two threads at once count twice in their rows but once in the split."
    )
    if chosen != slowest:
        why = profiled.get(slowest, {}).get("error", "not profiled")
        lead += f" The slowest, {display_name(slowest)}, is not shown: {why}."
    others = [
        f"{display_name(impl)} ({p['mode']}) {number(p['wall_ms'])} ms an update, "
        f"{p['in_operators_ms'] / p['wall_ms']:.0%} of it in operators"
        for impl, p in usable.items()
        if impl != chosen and p["wall_ms"] > 0
    ]
    paragraphs = [lead] + (["The others under their profilers: " + "; ".join(others) + "."] if others else [])
    return (f"Where the time goes: one update of {display_name(chosen)}", paragraphs,
            operator_table(profile, roofline_ms, unprofiled))  # fmt: skip
