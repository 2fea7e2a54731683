"""Profiles as typed, validated configuration: every mistake is one line before anything is built.

A profile is a TOML file of four sections (``[data]``, ``[model]``, ``[run]``,
``[eval]``) plus the optional ``[verdict]`` (equivalence margins) and
``[sweep]`` (parameter grids). ``extends = "default"`` starts from another
profile, so a variant lists only what differs. Each section is a frozen
dataclass whose field metadata states the allowed range; `load_profile`
checks every key, type and range and names the nearest valid key for a typo.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import impls
from core.errors import ConfigError
from core.typed import at_least as _at_least
from core.typed import build, describe, suggest
from datasets import WindowSpec
from eval.config.checks import PAPER_BETAS, check_profile
from impls import RBMConfig

PROFILES = Path(__file__).parent.parent / "profiles"
PER_POINT_DATA_KEYS = ("order", "train_on")  # [data] keys a grid point applies to the one dataset of a run
MAX_SEED = 2**32 - 1  # SeedSequence takes more, but a seed is a column of int64 results and a folder name


@dataclass(frozen=True)
class DataConfig(WindowSpec):
    """Which music (``source``) and how it is cut (the `datasets.WindowSpec` fields, declared there) and ordered."""

    source: str = "bach"
    order: Literal["shuffle", "seed"] = "shuffle"
    train_on: Literal["train", "all"] = "train"  # all: every piece, as the 2016 original (no held-out songs)

    def window_spec(self) -> WindowSpec:
        return WindowSpec(**{f.name: getattr(self, f.name) for f in fields(WindowSpec)})


ModelConfig = Any  # a [model] section: the config class of its ``kind`` (``impls.model(kind).config``)


def model_section(table: Any, origin: str) -> Any:
    """A ``[model]`` table as its model's config (``kind`` picks the class, default ``rbm``), every key checked
    there: a key of another model is refused with the keys this one knows."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: [model] must be a table of keys, not {describe(table)}")
    values = dict(table)
    kind = values.pop("kind", "rbm")
    known = impls.models()
    if kind not in known:
        raise ConfigError(f"{origin}: [model] kind {kind!r}; {suggest(str(kind), list(known))}")
    cls = known[kind].config
    mine = {f.name for f in fields(cls)}
    for key in values:
        owners = [name for name, m in known.items() if name != kind and key in {f.name for f in fields(m.config)}]
        if key not in mine and owners:
            kinds = " or ".join(f'"{owner}"' for owner in owners)  # a key several models share: each of them
            raise ConfigError(f"{origin}: [model] {key} is a key of kind {kinds}, not of kind \"{kind}\"; "
                              f"remove it, or set kind = {kinds}")  # fmt: skip
    section = build(cls, values, origin, "model", exclude=cls.DERIVED)
    if section.learning_rate <= 0:  # the class takes any rate (the gate's tests inject 0); a recipe needs > 0
        raise ConfigError(f"{origin}: [model] learning_rate is {section.learning_rate:g}; it must be > 0")
    return section


@dataclass(frozen=True)
class RunConfig:
    """Which implementations, seeds and resources; how tasks are placed."""

    impls: tuple[str, ...] = field(default_factory=lambda: tuple(impls.frameworks()))  # the framework catalogue
    seeds: tuple[int, ...] = field(default=(0,), metadata={"low": 0, "high": MAX_SEED})
    epochs: int = field(default=200, metadata={"low": 1, "high": 100_000})  # the batch order is built up front
    threads: int = field(default=1, metadata=_at_least(1))
    timeout_s: float = field(default=900.0, metadata=_at_least(0, strict=True))
    device: Literal["cpu", "cuda"] = "cpu"
    executor: str = "serial"  # serial | local | local:N | dask:local:N | dask:tcp://host:port
    retries: int = field(default=1, metadata={"low": 0, "high": 10})
    timing_epochs: int = field(default=5, metadata=_at_least(2))  # the quiet throughput phase, per implementation
    # finished runs (published reports) of other models on this music; [] (none) undoes a parent's on other music
    beside: tuple[str, ...] | None = None
    # early stopping: stop after this many points of the validation curve without improvement and score, sample and
    # describe the best epoch's parameters (eval.models.base.BestEpoch); 0: every epoch, the last one's parameters
    patience: int = field(default=0, metadata=_at_least(0))
    # a long run: each training task keeps a checkpoint per epoch in the run folder and resumes from its last one
    # (a retry after a kill, or --resume), each epoch's noise from its own seed (eval.models.checkpoints)
    long: bool = False
    # execution modes by framework ({torch = "compile"}; eval.timing.ablation): unnamed, a framework's default mode
    modes: dict[str, str] = field(default_factory=dict)
    # the timing phase also times every other mode of each implementation beside its equivalence check (the
    # report's "Execution modes" table; eval.timing.ablation)
    ablation: bool = False
    # the ablation's rounds: every mode timed once a round, rounds interleaved (a slow minute lands on one measurement
    # of many modes, not on every measurement of one); each mode's median is kept, beside its spread
    ablation_rounds: int = field(default=3, metadata=_at_least(1))


@dataclass(frozen=True)
class EvalConfig:
    """How trained models are scored and sampled (by the one shared float64 scorer)."""

    curve_every: int = field(default=4, metadata=_at_least(1))
    pl_valid_windows: int = field(default=200, metadata=_at_least(1))
    pl_test_windows: int = field(default=1000, metadata=_at_least(1))
    ll_windows: int = field(default=200, metadata=_at_least(1))  # test windows of the likelihood bracket
    ais_schedule: Literal["paper", "quick"] = "paper"
    ais_betas: int = field(default=PAPER_BETAS, metadata=_at_least(10))  # "quick": this many; "paper": 14,500
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
    # RAISE on this many of the bracket's windows, extended to all by the exact free energies; 0: on every one
    raise_windows: int = field(default=0, metadata=_at_least(0))
    # sequence models: AIS on this many random scored frames, extended to all by a mean-field control variate; 0: all
    ais_frames: int = field(default=0, metadata=_at_least(0))
    # a bracket wider than eval.scoring.ais.CERTIFIED_WIDTH is scored again, once, at this many AIS and RAISE betas
    # (sequence models; 0: never): the estimator improved until the number can stand beside a published one
    certify_betas: int = field(default=0, metadata=_at_least(0))
    piece_rows: int = field(default=240, metadata=_at_least(2))  # rows of each generated piece (sequence models)
    bar_rows: int = field(default=16, metadata=_at_least(1))  # rows per bar for the whole-piece statistics


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
    "model": RBMConfig,  # the default kind's; `model_section` picks each profile's by its kind
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
    model: ModelConfig = field(default_factory=RBMConfig)
    run: RunConfig = RunConfig()
    eval: EvalConfig = EvalConfig()
    verdict: VerdictConfig = VerdictConfig()
    scaling: ScalingConfig = ScalingConfig()
    sweep: dict[str, tuple] = field(default_factory=dict)
    description: str = ""
    # "section.key" set by this profile for its model: in its own file or a parent of the same kind, or by an
    # option or a grid point (not recorded: a plug-in refuses the ones its model does not read)
    chosen: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def to_dict(self) -> dict:
        """As recorded in a run's spec.json: the chosen values of each section (`profile_from_dict` reads it)."""
        sections = {name: _table(getattr(self, name)) for name in SECTIONS}
        return {"name": self.name, "description": self.description, **sections} | {
            "sweep": {k: list(v) for k, v in self.sweep.items()}
        }

    def override(self, origin: str = "option", **sections: dict[str, Any]) -> Profile:
        """A copy with some keys replaced (command-line options), validated like the file itself."""
        changed = {}
        for section, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                merged = _table(getattr(self, section)) | values
                if section == "model" and values.get("kind", self.model.kind) != self.model.kind:
                    merged = values  # another model: its own defaults, never the first one's keys
                changed[section] = _section(section, merged, origin)
        chosen = {
            f"{section}.{key}" for section in changed for key, value in sections[section].items() if value is not None
        }
        profile = replace(self, **changed, chosen=self.chosen | chosen)
        check_profile(profile, origin)
        return profile

    def at(self, point: dict[str, Any]) -> Profile:
        """This profile at one grid point of its sweep (``{"model.n_hidden": 25, ...}``)."""
        by_section: dict[str, dict] = {}
        for key, value in point.items():
            section, _, name = key.partition(".")
            by_section.setdefault(section, {})[name] = value
        return self.override("sweep", **by_section)


def _table(section: Any) -> dict:
    """A section's chosen values (derived model fields left out; a model's ``kind`` in), as a TOML table."""
    derived = getattr(section, "DERIVED", ())
    kind = {"kind": section.kind} if isinstance(getattr(type(section), "kind", None), str) else {}
    return kind | {k: v for k, v in asdict(section).items() if k not in derived}


def _section(name: str, table: Any, origin: str) -> Any:
    """One section's dataclass from its table; each value checked against its declaration once, here."""
    if name == "model":
        return model_section(table, origin)
    if name == "run" and isinstance(table, dict) and table.get("beside") == []:
        table = table | {"beside": None}  # none beside: a child on other music than its parent's runs beside it
    cls = SECTIONS[name]
    return build(cls, table, origin, name, exclude=getattr(cls, "DERIVED", ()))


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


def _kind(table: dict) -> str:
    """The model kind a merged table runs (``rbm`` unless its ``[model]`` names another)."""
    return table["model"].get("kind", "rbm") if isinstance(table.get("model"), dict) else "rbm"


def _raw(name: str, relative_to: Path | None = None, seen: tuple[Path, ...] = ()) -> tuple[dict, Path, dict]:
    """The merged TOML tables of a profile and the profiles it extends (child keys win), and for each
    ``"section.key"`` the model kind of the file that set it last (so a key set for another model is told apart)."""
    path = profile_path(name, relative_to).resolve()
    if path in seen:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(p.stem for p in seen)}; break the cycle")
    table = _read_toml(path)
    parent = table.pop("extends", None)
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{path}: extends is {describe(parent)}; give a profile name or path")
    base, _, set_by = _raw(parent, path.parent, (*seen, path)) if parent is not None else ({}, path, {})
    inherited = _kind(base)
    for key, value in table.items():
        other_model = key == "model" and isinstance(value, dict) and value.get("kind", inherited) != inherited
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "sweep" and not other_model:
            base[key] = base[key] | value
        else:
            base[key] = value
    kind = _kind(base)
    set_by |= {f"{key}.{name}": kind for key, value in table.items() if isinstance(value, dict) for name in value}
    return base, path, set_by


def load_profile(name: str) -> Profile:
    """Read, merge (``extends``) and validate a profile; raises `ConfigError` with one line."""
    table, path, set_by = _raw(name)
    origin = str(path)
    known = [*SECTIONS, "sweep", "description"]
    for key in table:
        if key not in known:
            raise ConfigError(f"{origin}: unknown section [{key}]; {suggest(key, known)}")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{origin}: description is {describe(description)}; it must be a string")
    sections = {s: _section(s, table.get(s, {}), origin) for s in SECTIONS}
    chosen = frozenset(key for key, kind in set_by.items() if kind == sections["model"].kind)
    profile = Profile(name=path.stem, description=description, chosen=chosen, **sections)
    check_profile(profile, origin)
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
        cls = type(profile.model) if section == "model" else SECTIONS[section]
        known = [f.name for f in fields(cls) if f.name not in getattr(cls, "DERIVED", ())]
        known += ["kind"] if section == "model" else []
        if name not in known:
            raise ConfigError(f"{origin}: [sweep] unknown key {key}; {suggest(name, known)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{origin}: [sweep] {key} is {describe(values)}; give a non-empty list of values")
        if key in ("run.seeds", "run.impls"):
            raise ConfigError(f"{origin}: [sweep] {key}: list them in [run] instead; every grid point runs them all")
        if section == "data" and name not in PER_POINT_DATA_KEYS:
            raise ConfigError(
                f"{origin}: [sweep] {key}: a run builds one dataset, so a grid point cannot change it; sweep "
                f"{' or '.join(f'data.{k}' for k in PER_POINT_DATA_KEYS)} only, or run one profile per {name}"
            )
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


def _recorded_model(table: dict) -> dict:
    """A recorded ``[model]`` as its kind's config reads it: a spec.json written before each kind had its own
    config class recorded every model's keys (the RNN-RBM's beside the window RBM's); the other kinds' are dropped."""
    kind = table.get("kind", "rbm")
    if kind not in impls.models():
        return table  # refused by model_section, in one line
    known = {f.name for f in fields(impls.model(kind).config)} | {"kind"}
    return {key: value for key, value in table.items() if key in known}


def profile_from_dict(values: dict) -> Profile:
    """A profile recorded in a run's spec.json (already validated when the run began)."""
    values = values | {"model": _recorded_model(dict(values.get("model", {})))}
    sections = {s: _section(s, values.get(s, {}), "spec.json") for s in SECTIONS}
    sweep = {k: tuple(v) for k, v in values.get("sweep", {}).items()}
    return Profile(name=values["name"], description=values.get("description", ""), sweep=sweep, **sections)
