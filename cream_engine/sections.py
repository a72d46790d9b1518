"""The machinery of config sections: a field with its default, help line and allowed values,
and the validation every section runs in `__post_init__` (types, choices, ranges; each error
names the field and the value).

Light layer: standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from cream_engine.errors import ConfigError


def _f(default: Any, help: str, *, choices: tuple = (), lo: float | None = None,
       hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A config field: its default, a help line and the allowed values or range."""
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi,
            "lo_open": lo_open, "hi_open": hi_open}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


class Section:
    """Shared validation for every section, driven by the field metadata."""

    _name = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            where = f"[{self._name}] {f.name}"
            value = _check_type(where, kind, value)
            object.__setattr__(self, f.name, value)
            m = f.metadata
            if m["choices"] and value not in m["choices"]:
                allowed = ", ".join(repr(c) for c in m["choices"])
                raise ConfigError(f"{where} = {value!r}: must be one of {allowed}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _check_range(where, value, m)
        self.check()

    def check(self) -> None:
        """Cross-field checks of one section (overridden where needed)."""


def _check_type(where: str, kind: str, value: Any) -> Any:
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "int | str": lambda v: isinstance(v, (int, str)) and not isinstance(v, bool),
        "tuple[str, ...]": lambda v: isinstance(v, (list, tuple))
        and all(isinstance(x, str) for x in v),
    }[kind]
    if not ok(value):
        expected = {"str": "a string", "int": "an integer", "float": "a number",
                    "bool": "true or false",
                    "int | str": "an integer or a string", "tuple[str, ...]": "a list of strings"}[kind]
        raise ConfigError(f"{where} = {_show(value)}: expected {expected}")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value}: must be a finite number")
    if kind == "tuple[str, ...]":
        value = tuple(value)
    return value


def _check_range(where: str, value: float, m: Mapping[str, Any]) -> None:
    lo, hi = m["lo"], m["hi"]
    if lo is not None and (value <= lo if m["lo_open"] else value < lo):
        raise ConfigError(f"{where} = {value}: must be {'>' if m['lo_open'] else '>='} {lo}")
    if hi is not None and (value >= hi if m["hi_open"] else value > hi):
        raise ConfigError(f"{where} = {value}: must be {'<' if m['hi_open'] else '<='} {hi}")


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'
