"""Dataclasses from plain values and back, every value checked against its declared type and range.

One checker for everything typed: a profile's TOML tables, a task's JSON crossing the process boundary, a
config built in code. A field declares its type (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
``tuple[X, ...]``, ``dict[str, X]``, ``X | None``, a nested dataclass) and, in its metadata, its range
(``low``/``high``, ``strict`` for an open lower bound). Mistakes are one-line `ConfigError` naming where.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from core.errors import ConfigError


def at_least(low: float, strict: bool = False) -> dict:
    """Field metadata: a lower bound (``strict``: the bound itself is not allowed)."""
    return {"low": low, "strict": strict}


def suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"did you mean {close[0]}?" if close else f"valid: {', '.join(valid)}"


def describe(value: Any) -> str:
    return f"{value!r} (a {type(value).__name__})"


def coerce(kind: Any, value: Any, where: str) -> Any:
    """``value`` as type ``kind``, or a `ConfigError` saying what was expected."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return coerce(inner, value, where)
    if origin is Literal:
        choices = get_args(kind)
        if value not in choices:
            raise ConfigError(f"{where} is {describe(value)}; use one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        (item, _) = get_args(kind)
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{where} is {describe(value)}; give a non-empty list")
        items = tuple(coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(set(map(repr, items))) != len(items):
            raise ConfigError(f"{where} lists {describe(value)} with repeats; list each value once")
        return items
    if origin is dict:
        _, item = get_args(kind)
        if not isinstance(value, dict):
            raise ConfigError(f"{where} is {describe(value)}; give a table of name = value")
        return {str(k): coerce(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        return value if isinstance(value, kind) else build(kind, value, where)
    if kind is Any:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is {describe(value)}; use true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} is {describe(value)}; it must be a whole number")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} is {describe(value)}; it must be a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} is {value}; it must be a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} is {describe(value)}; it must be a string")
        return value
    raise TypeError(f"unsupported field type {kind}")  # a programming error, not a user one


def check_range(value: Any, meta: dict, where: str) -> None:
    """The field's declared range (``low``/``high``/``strict`` metadata), for a number or each item of a tuple."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not isinstance(item, int | float) or isinstance(item, bool):
            continue
        low, high = meta.get("low"), meta.get("high")
        if low is not None and (item <= low if meta.get("strict") else item < low):
            raise ConfigError(f"{where} is {item:g}; it must be {'>' if meta.get('strict') else '>='} {low:g}")
        if high is not None and item > high:
            raise ConfigError(f"{where} is {item:g}; it must be <= {high:g}")


def build(cls: type, table: Any, origin: str, section: str = "", exclude: tuple[str, ...] = ()) -> Any:
    """An instance of dataclass ``cls`` from a table: unknown keys, wrong types and ranges are errors.

    Messages read ``{origin}: [{section}] key ...`` (``origin``: the file; ``section``: the table in it).
    ``exclude`` names fields the table may not set (derived elsewhere, e.g. a model's input size).
    """
    where = f"{origin}: [{section}]" if section else origin
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of keys, not {describe(table)}")
    hints = get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in exclude]
    for key in table:
        if key in exclude:
            raise ConfigError(f"{where} {key} is derived (not chosen); remove it")
        if key not in known:
            shown = f"[{section}] {key}" if section else key
            raise ConfigError(f"{origin}: unknown key {shown}; {suggest(key, known)}")
    values = {}
    for spec in dataclasses.fields(cls):
        if spec.name in table:
            place = f"{where} {spec.name}"
            kind = hints[spec.name]
            if dataclasses.is_dataclass(kind):
                inner = f"{section}.{spec.name}" if section else spec.name
                values[spec.name] = build(kind, table[spec.name], origin, inner)
                continue
            values[spec.name] = coerce(kind, table[spec.name], place)
            check_range(values[spec.name], dict(spec.metadata), place)
    try:
        return cls(**values)
    except ConfigError as error:  # a rule across fields, checked by the class itself
        raise ConfigError(f"{where}: {error}") from None


def check(instance: Any, where: str = "") -> None:
    """Every field of a constructed dataclass against its declared type and range (for ``__post_init__``)."""
    hints = get_type_hints(type(instance))
    for spec in dataclasses.fields(instance):
        place = f"{where or type(instance).__name__}: {spec.name}"
        value = getattr(instance, spec.name)
        if isinstance(value, list):
            value = tuple(value)
        coerce(hints[spec.name], value, place)
        check_range(value, dict(spec.metadata), place)


def to_plain(instance: Any) -> Any:
    """A dataclass (nested, with tuples) as JSON-ready dicts and lists."""
    return json.loads(json.dumps(dataclasses.asdict(instance)))


def to_json(instance: Any) -> str:
    return json.dumps(dataclasses.asdict(instance))


def from_json(cls: type, text: str, where: str) -> Any:
    """The inverse of `to_json`, checked field by field: a task file edited or truncated on the way is refused."""
    try:
        table = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where}: not valid JSON ({error})") from None
    return build(cls, table, where)
