"""`gadbench suites --explain KEY`: one line per setting, with its type, default, range and the paper's value, and
with `--suite NAME` that suite's value."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from gadbench import shown
from gadbench.config.schema import ConfigError, SuiteConfig, to_dict


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is dict:
        return f"mapping of name -> {_type_name(args[1])}"
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _settings(cls: type, prefix: str):
    """(dotted key, type, field) of every setting under `cls`, groups expanded (mapping entries as `<name>`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], prefix + f.name
        yield key, tp, f
        entry = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else tp
        inner = next((a for a in (entry, *typing.get_args(entry)) if dataclasses.is_dataclass(a)), None)
        if inner is not None:
            yield from _settings(inner, f"{key}.<name>." if entry is not tp else f"{key}.")


def _default(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "required"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return "a group" if dataclasses.is_dataclass(value) else f"default {to_dict(value)!r}"


def _value(obj: Any, names: list[str]) -> Any:
    """The value at dotted `names` under `obj`; at a `<name>` part, a mapping of each entry's value."""
    if not names:
        return obj
    head, rest = names[0], names[1:]
    if head == "<name>":
        return {k: _value(v, rest) for k, v in (obj or {}).items()}
    return _value(obj.get(head) if isinstance(obj, dict) else getattr(obj, head, None), rest)


def _suite_value(suite: SuiteConfig, key: str) -> str:
    value = _value(suite, key.split("."))
    if dataclasses.is_dataclass(value):
        return ""
    return f"; suite {suite.name}: {shown(to_dict(value), 120)}"


def explain(key: str = "", suite: SuiteConfig | None = None) -> list[str]:
    """One line per suite setting under `key` ("" for all): key, type, default, range, what it does and the
    paper's value, and `suite`'s value when given. Mapping entries are written `<name>` (`methods.<name>.kind`);
    any name matches them."""
    parts = key.split(".") if key else []
    lines = []
    for k, tp, f in _settings(SuiteConfig, ""):
        names = k.split(".")
        if len(names) < len(parts) or not all(n in (q, "<name>") for q, n in zip(parts, names, strict=False)):
            continue
        lo, hi = f.metadata.get("range", (None, None))
        bounds = "" if (lo, hi) == (None, None) else f", range [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        paper = f" (paper: {f.metadata['paper']})" if f.metadata.get("paper") else ""
        outside = "; not part of the run id" if f.metadata.get("in_run_id") is False else ""
        asked = [q if n == "<name>" else n for n, q in zip(names, parts + names[len(parts):], strict=True)]
        mine = _suite_value(suite, ".".join(asked)) if suite is not None else ""
        lines.append(f"{k} ({_type_name(tp)}, {_default(f)}{bounds}): {f.metadata.get('doc', '')}{outside}{paper}{mine}")
    if not lines:
        close = difflib.get_close_matches(key, [k for k, _, _ in _settings(SuiteConfig, "")], n=1)
        hint = f"; did you mean `{close[0]}`?" if close else "; `gadbench suites --explain` lists them all."
        raise ConfigError(f"no setting `{key}`{hint}")
    return lines
