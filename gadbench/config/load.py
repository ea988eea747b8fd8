"""Suite files to settings: YAML with `extends:`, `--set` overrides, and type-checked building of the dataclasses of
gadbench.config.schema.

A suite file is a UTF-8 YAML mapping whose keys are the fields of `SuiteConfig`; a key given twice in one mapping
stops the load. `extends: NAME` deep-merges this file over suite NAME, and `extends: PATH.yaml` over that file,
relative to this one (a `null` value deletes an inherited key, e.g. a method). File paths written in a suite
file (`baseline`, `data.train.path`, `data.eval.<name>.path`) are read from that file's folder, like `extends:`;
given with `--set`, from the current directory; either way the loaded suite holds them as absolute paths. Every
value is type-checked; an unknown key, a wrong type, a bad enum value, an out-of-range or non-finite number
stops with one line naming the key, the file and the fix (for unknown keys: the closest valid key).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from gadbench import shown
from gadbench.config.schema import INT_MAX, ConfigError, RunSpec, SuiteConfig


def read_suite_file(path: str | Path, overrides: list[str] = (), search_dir: Path | None = None) -> SuiteConfig:
    """Read a suite file, resolve `extends:` (a suite name is looked up in `search_dir`, default the file's
    folder), apply `--set a.b=c` overrides, and check every setting's type, range and dataclass `check()`."""
    path = Path(path)
    raw = _resolve_extends(path, search_dir or path.parent, seen=())
    written = {id(node): node.get(key) for node, key in _file_paths(raw)}
    for item in overrides:
        apply_override(raw, item)
    for node, key in _file_paths(raw):  # paths --set gave or changed: from the current directory
        if written.get(id(node), None) != node[key]:
            node[key] = _absolute(node[key], Path.cwd())
    return build(SuiteConfig, raw, str(path), "")


def _file_paths(raw: dict) -> list[tuple[dict, str]]:
    """(mapping, key) of each file path set in a raw suite mapping: baseline, data.train.path, data.eval.*.path."""
    out = [(raw, "baseline")] if isinstance(raw.get("baseline"), str) else []
    data = raw.get("data")
    if isinstance(data, dict):
        sets = [data.get("train"), *(data["eval"].values() if isinstance(data.get("eval"), dict) else ())]
        out += [(d, "path") for d in sets if isinstance(d, dict) and isinstance(d.get("path"), str)]
    return out


def _absolute(path: str, folder: Path) -> str:
    """`path` read from `folder` (a `~` path from the home folder); an absolute path, or one that is no path at
    all (empty, or holding NUL, which the type and file checks report), as it is."""
    if not path or "\0" in path:
        return path
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(os.path.abspath(folder), path))


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: explicit keys may override it
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """yaml.safe_load, refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def _read_yaml(path: Path) -> dict:
    """The mapping in suite file `path`; anything else stops with a ConfigError naming the file and the fix."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; check the suite name with `gadbench suites`.") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}); check the path and its permissions.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: byte 0x{data[e.start]:02x} at line {line} is not UTF-8 text; save the file "
                          "as UTF-8.") from None
    try:
        data = load_yaml(text)
    except _DuplicateKey as e:
        lines = f"line {e.first}" if e.first == e.again else f"lines {e.first} and {e.again}"
        raise ConfigError(f"{path}: key `{_text(e.key)}` is given twice in one mapping ({lines}); keep one of "
                          "them.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or type(e).__name__
        raise ConfigError(f"{path}: malformed YAML{where} ({problem}); fix the syntax there.") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply to read; flatten it.") from None
    except ValueError as e:  # a value YAML types but Python cannot hold: 2025-13-45, an int of 5000 digits
        raise ConfigError(f"{path}: a value cannot be read ({str(e).split(';')[0]}); fix it, or quote it to make "
                          "it a string.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite file must be a YAML mapping of settings; found {type(data).__name__}.")
    return data


def _resolve_extends(path: Path, search_dir: Path, seen: tuple[str, ...]) -> dict:
    if str(path.resolve()) in seen:
        raise ConfigError(f"{path}: `extends` forms a cycle ({' -> '.join(seen)}); remove one of them.")
    data = _read_yaml(path)
    for node, key in _file_paths(data):  # a file's own paths: from its folder
        node[key] = _absolute(node[key], path.parent)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = _resolve_extends(_parent_file(path, parent, search_dir), search_dir, seen + (str(path.resolve()),))
    return _deep_merge(base, data)


def _parent_file(path: Path, parent: Any, search_dir: Path) -> Path:
    """The file that `extends: parent` in suite file `path` names: a path ending in .yaml/.yml, relative to
    `path`'s folder, or a suite name, NAME.yaml in `search_dir`."""
    if not isinstance(parent, str) or not parent.strip() or "\0" in parent:
        raise ConfigError(f"{path}: `extends` = {shown(parent)} is neither a suite name nor a .yaml path; write "
                          "e.g. `extends: smoke` or `extends: ../smoke.yaml`.")
    by_path = parent.endswith((".yaml", ".yml"))
    found = path.parent / parent if by_path else search_dir / f"{parent}.yaml"
    try:
        exists = found.is_file()
    except OSError:  # e.g. a name too long for the filesystem
        exists = False
    if not exists:
        how = (f"a path is read from the folder of {path.name}" if by_path
               else f"a name without .yaml is a suite in {search_dir}")
        raise ConfigError(f"{path}: `extends: {parent}` names no suite file {found} ({how}); fix the name.")
    return found


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:  # null deletes an inherited entry, i.e. resets it to its default
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(raw: dict, item: str) -> None:
    """Apply one `--set KEY=VALUE` (VALUE parsed as YAML; null removes the key) to a raw config mapping."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.steps=20.")
    key, _, value = item.partition("=")
    parts = key.strip().split(".")
    node: Any = raw
    i = 0
    while True:  # a name with dots (students.Qwen2.5-7B-Instruct.path) is taken whole where the config has it
        j = next((j for j in range(len(parts), i + 1, -1) if ".".join(parts[i:j]) in node), i + 1)
        part = ".".join(parts[i:j])
        if j == len(parts):
            break
        if not isinstance(node.get(part), dict):
            node[part] = {} if part not in node else _not_mapping(key, ".".join(parts[:j]))
        node = node[part]
        i = j
    try:
        parsed = load_yaml(value)
    except _DuplicateKey as e:
        raise ConfigError(f"--set {key.strip()}: key `{_text(e.key)}` is given twice; keep one of them.") from None
    except (yaml.YAMLError, ValueError, RecursionError):  # not YAML, or a value Python cannot hold: a string
        parsed = value
    if parsed is None:  # `--set methods.gad-ce=null` removes an entry or resets a setting to its default
        node.pop(part, None)
    else:
        node[part] = parsed


def _not_mapping(key: str, prefix: str) -> dict:
    raise ConfigError(f"--set {key}: {prefix} is a single value, not a group of settings; set {prefix}=VALUE.")


def build(cls: type, raw: Any, source: str, where: str) -> Any:
    """Build dataclass `cls` from plain data, type-checking each field; `where` is the dotted key path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: `{where or '<top>'}` must be a mapping of settings, got {shown(raw)}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(_text(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean `{_join(where, close[0])}`?" if close else f"; valid keys: {', '.join(fields)}."
            raise ConfigError(f"{source}: unknown key `{_join(where, _text(key))}`{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key `{key}`; add it to the suite.")
            continue
        value = _coerce(hints[name], raw[name], source, key)
        lo, hi = f.metadata.get("range", (None, None))
        if isinstance(value, int | float) and not isinstance(value, bool):
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
                raise ConfigError(f"{source}: `{key}` = {shown(value)} is out of range {bounds}; pick a value inside it.")
        kwargs[name] = value
    obj = cls(**kwargs)
    problem = obj.check() if hasattr(obj, "check") else None
    if problem:
        raise ConfigError(f"{source}: `{where}`: {problem}." if where else f"{source}: {problem}.")
    return obj


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            text = _text(value)
            close = difflib.get_close_matches(text, [str(a) for a in args], n=1) or [
                str(a) for a in args if str(a).startswith(text)][:1]
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            choices = ", ".join(str(a) for a in args)
            raise ConfigError(f"{source}: `{key}` = {shown(value)} is not one of {choices}{hint}; use one of those.")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: `{key}` must be a mapping of name -> settings, got {shown(value)}.")
        return {_text(k): _coerce(args[1], v, source, _join(key, _text(k))) for k, v in value.items()}
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(items))
    if tp is float and not isinstance(value, bool) and isinstance(value, int | float | str):
        return _as_float(value, source, key)
    if tp is int and type(value) is int and abs(value) > INT_MAX:
        raise ConfigError(f"{source}: `{key}` = {shown(value)} is out of range [-{INT_MAX}, {INT_MAX}]; pick a "
                          "value inside it.")
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(
        f"{source}: `{key}` = {shown(value)} should be of type {getattr(tp, '__name__', tp)}; write it as one."
    )


def _as_float(value: int | float | str, source: str, key: str) -> float:
    """`value` as a float setting: a number, or text that reads as one ("3e-6"); never NaN."""
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{source}: `{key}` = {shown(value)} is too large for a float; write a smaller number.") from None
    except ValueError:
        raise ConfigError(f"{source}: `{key}` = {shown(value)} should be of type float; write it as one.") from None
    if math.isnan(number):
        raise ConfigError(f"{source}: `{key}` is NaN; write a number.")
    if math.isinf(number):
        raise ConfigError(f"{source}: `{key}` = {shown(value)} is infinite; write a finite number.")
    return number


def _text(value: Any) -> str:
    """A key or value as message text: a string as it is, anything else as `shown` writes it."""
    return value if isinstance(value, str) else shown(value)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def run_spec_from_dict(raw: dict, source: str = "config.yaml") -> RunSpec:
    """Rebuild a RunSpec from a run directory's config.yaml (used by --resume and `gadbench eval`)."""
    return build(RunSpec, raw, source, "")
