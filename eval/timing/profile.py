"""Where the time of one update goes: operators, their time, and the time outside every operator.

Each framework's own profiler (`impls.common.Implementation.trace_operators`: ``torch.profiler``, TensorFlow's
and JAX's XPlane traces) lists the operators a few updates ran, each an `impls.common.OperatorEvent`. This module
turns any such list into one table, the same for every framework: per kind of operator its calls and its **self
time** per update (an operator's time less the operators inside it: ``aten::linear`` less its ``aten::addmm``, an
XLA ``while`` less its body), and the update's wall time split into time **in operators** (the union over
threads of the intervals in which some operator ran) and **outside every operator**: the framework's dispatch,
its executor, Python and the profiler's own cost. The bench profiles each framework's update in the timing task
(`profile_update`); the report shows the slowest framework's (`reports.where_time_goes`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from impls.common import OperatorEvent

PROFILED_UPDATES = 5  # updates under the profiler (after a warm-up of the same updates): enough for a median kind


@dataclass
class UpdateProfile:
    """One update of one implementation under its framework's profiler, per update (the mean of ``updates``).

    Attributes
    ----------
    updates : int
        Updates profiled together.
    wall_ms : float
        Wall time of one update under the profiler (the profiler's own cost included).
    in_operators_ms : float
        Time in which at least one operator ran, on any thread.
    outside_ms : float
        ``wall_ms - in_operators_ms``: dispatch, executor, Python, the profiler's own cost.
    operators : list of dict
        ``{"operator", "calls", "self_ms"}`` per kind, per update, the largest first.
    """

    updates: int
    wall_ms: float
    in_operators_ms: float
    outside_ms: float
    operators: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def self_times(events: Iterable[OperatorEvent]) -> dict[str, tuple[int, int]]:
    """Per operator kind: (calls, self time in ns). On each thread an event that starts inside another is nested in
    it, and its time is taken from its parent's (a profiler's events nest; they never partly overlap)."""
    by_thread: dict[str, list[OperatorEvent]] = defaultdict(list)
    for event in events:
        by_thread[event.thread].append(event)
    calls: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    for thread_events in by_thread.values():
        open_: list[OperatorEvent] = []  # the chain of operators containing the current one
        for event in sorted(thread_events, key=lambda e: (e.start_ns, -e.end_ns)):
            while open_ and open_[-1].end_ns <= event.start_ns:
                open_.pop()
            length = event.end_ns - event.start_ns
            calls[event.name] += 1
            own[event.name] += length
            if open_:
                own[open_[-1].name] -= min(length, open_[-1].end_ns - event.start_ns)
            open_.append(event)
    return {name: (calls[name], own[name]) for name in calls}


def busy_ns(events: Iterable[OperatorEvent]) -> int:
    """Nanoseconds in which at least one operator ran, on any thread (the union of their intervals)."""
    total, reach = 0, None
    for event in sorted(events, key=lambda e: e.start_ns):
        if reach is None or event.start_ns > reach:
            total += event.end_ns - event.start_ns
            reach = event.end_ns
        elif event.end_ns > reach:
            total += event.end_ns - reach
            reach = event.end_ns
    return total


def summarise(wall_ns: int, events: list[OperatorEvent], updates: int) -> UpdateProfile:
    """The `UpdateProfile` of ``updates`` updates traced together in ``wall_ns``."""
    per = 1e6 * updates
    busy = min(busy_ns(events), wall_ns)
    operators = [
        {"operator": name, "calls": calls / updates, "self_ms": own / per}
        for name, (calls, own) in sorted(self_times(events).items(), key=lambda item: -item[1][1])
    ]
    return UpdateProfile(updates, wall_ns / per, busy / per, (wall_ns - busy) / per, operators)


def profile_update(model, batches: list, train: Callable[[list], object] | None = None) -> UpdateProfile | None:
    """``batches`` (a few updates) once to warm up, then once more under the framework's profiler; None for a
    framework without one (`impls.common.Implementation.trace_operators`). ``train`` defaults to
    ``model.train_epoch`` (the timed path: a compiled epoch is profiled as it is timed)."""
    train = train or model.train_epoch
    train(batches)
    traced = model.trace_operators(lambda: train(batches))
    return None if traced is None else summarise(*traced, updates=len(batches))
