"""Profiles as typed, validated configuration: every mistake is one line before anything is built.

A profile is a TOML file of four sections (``[data]``, ``[model]``, ``[run]``,
``[eval]``) plus the optional ``[verdict]`` (equivalence margins) and
``[sweep]`` (parameter grids). ``extends = "default"`` starts from another
profile, so a variant lists only what differs. Each section is a frozen
dataclass whose field metadata states the allowed range; `load_profile`
checks every key, type and range and names the nearest valid key for a typo.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from core.errors import ConfigError

PROFILES = Path(__file__).with_name("profiles")
IMPLEMENTATION_NAMES = ("numpy", "torch", "tf", "jax")


def _at_least(low: float, strict: bool = False) -> dict:
    return {"low": low, "strict": strict}


@dataclass(frozen=True)
class DataConfig:
    """Which music and how it is cut into windows (`datasets.WindowSpec` plus the source and batch order)."""

    source: str = "bach"
    num_timesteps: int = field(default=15, metadata=_at_least(1))
    stride: int = field(default=15, metadata=_at_least(1))
    low: int = field(default=24, metadata={"low": 0, "high": 127})
    high: int = field(default=102, metadata={"low": 1, "high": 128})
    articulation: bool = True
    cut_at_time_signature: bool = False
    min_rows: int = field(default=1, metadata=_at_least(1))
    max_rows_per_piece: int = field(default=50_000, metadata=_at_least(1))
    max_ticks: int = field(default=50_000_000, metadata=_at_least(1))
    order: Literal["shuffle", "seed"] = "shuffle"
    train_on: Literal["train", "all"] = "train"  # all: every piece, as the 2016 original (no held-out songs)


@dataclass(frozen=True)
class ModelConfig:
    """The RBM and its training recipe (becomes `impls.RBMConfig`)."""

    n_hidden: int = field(default=50, metadata=_at_least(1))
    learning_rate: float = field(default=0.005, metadata=_at_least(0, strict=True))
    lr_schedule: Literal["constant", "linear"] = "constant"  # linear: decays to lr/epochs in the last epoch
    batch_size: int = field(default=100, metadata=_at_least(1))
    cd_steps: int = field(default=1, metadata=_at_least(1))
    persistent: bool = False
    statistics: Literal["samples", "probabilities"] = "samples"
    momentum: float = field(default=0.0, metadata={"low": 0.0, "high": 0.999})
    weight_decay: float = field(default=0.0, metadata=_at_least(0))
    chain_start: Literal["shared", "fresh"] = "shared"  # fresh: the chain's first hidden sample is its own draw
    precision: Literal["float32", "tf32", "float64"] = "float32"
    init: Literal["normal", "seed"] = "normal"


@dataclass(frozen=True)
class RunConfig:
    """Which implementations, seeds and resources; how tasks are placed."""

    impls: tuple[str, ...] = IMPLEMENTATION_NAMES
    seeds: tuple[int, ...] = (0,)
    epochs: int = field(default=200, metadata=_at_least(1))
    threads: int = field(default=1, metadata=_at_least(1))
    timeout_s: float = field(default=900.0, metadata=_at_least(0, strict=True))
    device: Literal["cpu", "cuda"] = "cpu"
    executor: str = "serial"  # serial | local | local:N | dask:local:N | dask:tcp://host:port
    retries: int = field(default=1, metadata={"low": 0, "high": 10})
    timing_epochs: int = field(default=5, metadata=_at_least(2))  # the quiet throughput phase, per implementation


@dataclass(frozen=True)
class EvalConfig:
    """How trained models are scored and sampled (by the one shared float64 scorer)."""

    curve_every: int = field(default=4, metadata=_at_least(1))
    pl_valid_windows: int = field(default=200, metadata=_at_least(1))
    pl_test_windows: int = field(default=1000, metadata=_at_least(1))
    ll_windows: int = field(default=200, metadata=_at_least(1))  # test windows of the likelihood bracket
    ais_schedule: Literal["paper", "quick"] = "paper"
    ais_betas: int = field(default=2000, metadata=_at_least(10))
    ais_runs: int = field(default=100, metadata=_at_least(2))
    raise_betas: int = field(default=0, metadata=_at_least(0))  # reverse-AIS lower bound; 0 leaves it out
    ais_sweep_every: int = field(default=0, metadata=_at_least(0))  # a collapsed hidden sweep every N steps; 0: none
    n_samples: int = field(default=100, metadata=_at_least(1))
    gibbs_steps: int = field(default=200, metadata=_at_least(0))
    sample_start: Literal["random", "zeros", "persistent"] = "random"
    drop_empty_samples: bool = False
    audio_samples: int = field(default=3, metadata={"low": 0, "high": 50})
    max_abs_param: float = field(default=100.0, metadata=_at_least(0, strict=True))
    score_split: Literal["test", "train"] = "test"


@dataclass(frozen=True)
class VerdictConfig:
    """Cross-framework equivalence: a paired TOST over seeds against the NumPy reference."""

    alpha: float = field(default=0.05, metadata={"low": 0.001, "high": 0.5})
    margins: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScalingConfig:
    """The grid of `python -m eval scaling`: each shape (hidden units x batch size) per framework and device."""

    hidden: tuple[int, ...] = field(default=(50, 250, 1000), metadata=_at_least(1))
    batch_sizes: tuple[int, ...] = field(default=(100, 1000), metadata=_at_least(1))
    gpu_hidden: tuple[int, ...] = field(default=(50, 256, 1024, 4096), metadata=_at_least(1))  # with --device cuda
    gpu_batch_sizes: tuple[int, ...] = field(default=(100, 1000, 10000), metadata=_at_least(1))
    timeout_s: float = field(default=300.0, metadata=_at_least(0, strict=True))


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "run": RunConfig,
    "eval": EvalConfig,
    "verdict": VerdictConfig,
    "scaling": ScalingConfig,
}


@dataclass(frozen=True)
class Profile:
    """A whole, validated profile. ``sweep`` maps ``"section.key"`` to the values of a grid."""

    name: str
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    run: RunConfig = RunConfig()
    eval: EvalConfig = EvalConfig()
    verdict: VerdictConfig = VerdictConfig()
    scaling: ScalingConfig = ScalingConfig()
    sweep: dict[str, tuple] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self) | {"sweep": {k: list(v) for k, v in self.sweep.items()}}

    def override(self, origin: str = "option", **sections: dict[str, Any]) -> Profile:
        """A copy with some keys replaced (command-line options), validated like the file itself."""
        changed = {}
        for section, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                merged = asdict(getattr(self, section)) | values
                changed[section] = _build(SECTIONS[section], merged, f"{origin}", section)
        profile = replace(self, **changed)
        _check_profile(profile, origin)
        return profile

    def at(self, point: dict[str, Any]) -> Profile:
        """This profile at one grid point of its sweep (``{"model.n_hidden": 25, ...}``)."""
        by_section: dict[str, dict] = {}
        for key, value in point.items():
            section, _, name = key.partition(".")
            by_section.setdefault(section, {})[name] = value
        return self.override("sweep", **by_section)


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"did you mean {close[0]}?" if close else f"valid: {', '.join(valid)}"


def _describe(value: Any) -> str:
    return f"{value!r} (a {type(value).__name__})"


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """``value`` as type ``kind``, or a `ConfigError` saying what was expected."""
    origin = get_origin(kind)
    if origin is Literal:
        choices = get_args(kind)
        if value not in choices:
            raise ConfigError(f"{where} is {_describe(value)}; use one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        (item, _) = get_args(kind)
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{where} is {_describe(value)}; give a non-empty list")
        items = tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise ConfigError(f"{where} lists {_describe(value)} with repeats; list each value once")
        return items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} is {_describe(value)}; give a table of metric = margin")
        return {str(k): _coerce(float, v, f"{where}.{k}") for k, v in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is {_describe(value)}; use true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} is {_describe(value)}; it must be a whole number")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} is {_describe(value)}; it must be a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} is {value}; it must be a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} is {_describe(value)}; it must be a string")
        return value
    raise TypeError(f"unsupported field type {kind}")  # a programming error, not a user one


def _check_range(value: Any, meta: dict, where: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not isinstance(item, int | float) or isinstance(item, bool):
            continue
        low, high = meta.get("low"), meta.get("high")
        if low is not None and (item <= low if meta.get("strict") else item < low):
            raise ConfigError(f"{where} is {item:g}; it must be {'>' if meta.get('strict') else '>='} {low:g}")
        if high is not None and item > high:
            raise ConfigError(f"{where} is {item:g}; it must be <= {high:g}")


def _build(cls: type, table: dict, origin: str, section: str) -> Any:
    """One section's dataclass from a TOML table: unknown keys, wrong types and ranges are errors."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: [{section}] must be a table of keys, not {_describe(table)}")
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    for key in table:
        if key not in known:
            raise ConfigError(f"{origin}: unknown key [{section}] {key}; {_suggest(key, known)}")
    values = {}
    for spec in fields(cls):
        if spec.name not in table:
            continue
        where = f"{origin}: [{section}] {spec.name}"
        values[spec.name] = _coerce(hints[spec.name], table[spec.name], where)
        _check_range(values[spec.name], dict(spec.metadata), where)
    return cls(**values)


def _check_profile(profile: Profile, origin: str) -> None:
    """Rules across keys: known implementations, seeds, executor syntax, pitch range, margins."""
    data, run = profile.data, profile.run
    if data.low >= data.high:
        raise ConfigError(f"{origin}: [data] low {data.low} must be below high {data.high}")
    for name in run.impls:
        if name not in IMPLEMENTATION_NAMES:
            raise ConfigError(f"{origin}: [run] impls names {name!r}; {_suggest(name, list(IMPLEMENTATION_NAMES))}")
    if any(seed < 0 for seed in run.seeds):
        raise ConfigError(f"{origin}: [run] seeds {list(run.seeds)}; seeds must be >= 0")
    from eval.bench.executors import parse_executor  # the executor syntax lives with the executors

    parse_executor(run.executor, origin)
    from datasets.sources import SourceError, check_source_syntax

    try:
        check_source_syntax(data.source)
    except SourceError as error:
        raise ConfigError(f"{origin}: [data] source {error}") from None


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"{path}: not valid TOML ({error}); fix the file or copy eval/profiles/default.toml"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"{path}: cannot read ({reason}); give a readable TOML file") from None


def profile_path(name: str, relative_to: Path | None = None) -> Path:
    """A profile name (``eval/profiles/<name>.toml``) or a path to a TOML file."""
    for candidate in (PROFILES / f"{name}.toml", (relative_to or Path.cwd()) / name, Path(name)):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.toml")))
    raise ConfigError(f"{name}: no such profile; use one of {known} or a path to a .toml file")


def _raw(name: str, relative_to: Path | None = None, seen: tuple[Path, ...] = ()) -> tuple[dict, Path]:
    """The merged TOML tables of a profile and the profiles it extends (child keys win)."""
    path = profile_path(name, relative_to).resolve()
    if path in seen:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(p.stem for p in seen)}; break the cycle")
    table = _read_toml(path)
    parent = table.pop("extends", None)
    if parent is None:
        return table, path
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends is {_describe(parent)}; give a profile name or path")
    base, _ = _raw(parent, path.parent, (*seen, path))
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "sweep":
            base[key] = base[key] | value
        else:
            base[key] = value
    return base, path


def load_profile(name: str) -> Profile:
    """Read, merge (``extends``) and validate a profile; raises `ConfigError` with one line."""
    table, path = _raw(name)
    origin = str(path)
    known = [*SECTIONS, "sweep", "description"]
    for key in table:
        if key not in known:
            raise ConfigError(f"{origin}: unknown section [{key}]; {_suggest(key, known)}")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{origin}: description is {_describe(description)}; it must be a string")
    sections = {s: _build(cls, table.get(s, {}), origin, s) for s, cls in SECTIONS.items()}
    profile = Profile(name=path.stem, description=description, **sections)
    _check_profile(profile, origin)
    sweep = table.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f'{origin}: [sweep] must be a table of "section.key" = [values]')
    return replace(profile, sweep=check_sweep(profile, sweep, origin))


def check_sweep(profile: Profile, sweep: dict, origin: str) -> dict[str, tuple]:
    """Every swept key exists and every value is valid there (checked by building each point)."""
    checked = {}
    for key, values in sweep.items():
        section, _, name = key.partition(".")
        if section not in SECTIONS or section in ("verdict", "scaling"):
            raise ConfigError(f'{origin}: [sweep] {key!r}: say section.key, e.g. "model.n_hidden"')
        known = [f.name for f in fields(SECTIONS[section])]
        if name not in known:
            raise ConfigError(f"{origin}: [sweep] unknown key {key}; {_suggest(name, known)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{origin}: [sweep] {key} is {_describe(values)}; give a non-empty list of values")
        if key in ("run.seeds", "run.impls"):
            raise ConfigError(f"{origin}: [sweep] {key}: list them in [run] instead; every grid point runs them all")
        for value in values:
            profile.override(f"{origin}: [sweep] {key}", **{section: {name: value}})
        checked[key] = tuple(values)
    return checked


def sweep_points(profile: Profile) -> list[dict[str, Any]]:
    """The grid's points in a stable order (the first key varies slowest); one empty point without a sweep."""
    points: list[dict[str, Any]] = [{}]
    for key, values in profile.sweep.items():
        points = [point | {key: value} for point in points for value in values]
    return points


def as_spec_kwargs(data: DataConfig) -> dict:
    """The `datasets.WindowSpec` fields of a data section."""
    from datasets import WindowSpec

    names = {f.name for f in fields(WindowSpec)}
    return {k: v for k, v in asdict(data).items() if k in names}


def profile_from_dict(values: dict) -> Profile:
    """A profile recorded in a run's spec.json (already validated when the run began)."""
    sections = {s: _build(cls, values.get(s, {}), "spec.json", s) for s, cls in SECTIONS.items()}
    sweep = {k: tuple(v) for k, v in values.get("sweep", {}).items()}
    return Profile(name=values["name"], description=values.get("description", ""), sweep=sweep, **sections)
