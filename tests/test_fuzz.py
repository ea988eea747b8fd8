"""Property-based fuzzing of gadbench's inputs: suite YAML and `--set` strings, JSONL/JSON/Parquet data files.

Every input, however broken, must end in either a valid object (a SuiteConfig and its runs; examples with a
consistent LoadReport) or one of gadbench's one-line errors (ConfigError, DataError) -- never another
exception. Inputs are built from valid ones by random mutation (types, keys, nesting, raw YAML tokens, bytes)
and written to real files read through the real entry points, `load_suite` and `load_examples`.

The number of cases is bounded and the search derandomised (the Hypothesis profile in conftest.py), so CI runs
the same few hundred cases per test in seconds; GADBENCH_FUZZ_SCALE=20 runs 20x as many with fresh randomness.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gadbench import config as cfg
from gadbench.config import ConfigError
from gadbench.data import DataError, DataSpec, list_sources, load_examples
from gadbench.suite import load_suite, runs_of

FIX = Path(__file__).resolve().parent / "fixtures"
BASE = yaml.safe_load((FIX / "config" / "base.yaml").read_text(encoding="utf-8"))
BASE["methods"]["gad"]["search"] = {"lr_generator": [1e-4, 3e-4]}
BASE["data"]["eval"]["local"] = {"source": "jsonl", "path": "eval.jsonl", "prompt_field": "q", "max_chars": 500}
FUZZ_SCALE = int(os.environ.get("GADBENCH_FUZZ_SCALE", "1"))  # see conftest.py


def cases(n: int) -> settings:
    """n cases (times GADBENCH_FUZZ_SCALE). A test's tmp_path is shared by its cases: each rewrites its files."""
    return settings(max_examples=n * FUZZ_SCALE,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def one_line(err: Exception) -> None:
    msg = str(err)
    assert msg and len(msg.splitlines()) == 1 and msg == msg.strip(), repr(msg)


# ------------------------------------------------------------------------------------------ suite files

def _field_names() -> list[str]:
    names: set[str] = set()
    for obj in vars(cfg).values():
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            names.update(f.name for f in dataclasses.fields(obj))
    return sorted(names)


FIELDS = _field_names()
# raw YAML that a value may be replaced with: numbers past Python's limits, impossible dates, deep nesting,
# tags, aliases, YAML 1.1 booleans and octals, unterminated quotes
RAW_TOKENS = ["9" * 5000, "-" + "9" * 4400, "1" + "0" * 400, "1" + "0" * 400 + ".5", "0x" + "f" * 5000, "2025-13-45",
              "2025-02-30 25:61:00", "[" * 600 + "]" * 600, "{a: " * 600 + "1" + "}" * 600, "[" * 600, ".nan",
              "-.inf", "1e999", "1_000", "0o99", "0777", "yes", "off", "~", "''", "'unterminated", "*nowhere",
              "&a [*a]", "!!python/object/apply:os.system ['true']", "!!binary AAAA", "!!float x", "!!int 1.5",
              "<<: *x", "|", ">-", "%YAML 1.1", "---", "...", "\t1", "@x", "`x`", "{", "}", "- - -", "? [a, b]"]
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\x80abc"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.sampled_from(["", "world:tiny", "gad", "seqkd", "jsonl", "world", "online", "bt", "ce", "cpu",
                                     "nan", "1e999", "3e-6", "dataset", "program", "x.y:z", "a\nb", "\u2028", "🙂"]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=6), c, max_size=3), max_leaves=8)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=10), st.integers(), st.booleans(),
                 st.sampled_from(["", "a.b", "a\nb", "é", " steps", "Steps"]))


def _slots(tree, out: list | None = None) -> list[tuple[dict, object]]:
    """(mapping, key) of every entry of a nested mapping, and (mapping, None) for each mapping itself."""
    out = [] if out is None else out
    if isinstance(tree, dict):
        out.append((tree, None))
        for k, v in tree.items():
            out.append((tree, k))
            _slots(v, out)
    elif isinstance(tree, list):
        for v in tree:
            _slots(v, out)
    return out


@st.composite
def mutated_suites(draw) -> dict:
    """The base suite with 1-4 random edits: a value replaced (any type, any nesting), a key deleted,
    renamed or added, a value wrapped in a list or a mapping, `extends` pointed somewhere."""
    tree = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        node, key = draw(st.sampled_from(_slots(tree)))
        op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "rename"] if key is not None else ["add"]))
        if op == "replace":
            node[key] = draw(values)
        elif op == "delete":
            del node[key]
        elif op == "add":
            node[draw(keys)] = draw(values)
        elif op == "wrap":
            node[key] = draw(st.sampled_from([[node[key]], {"value": node[key]}, {draw(keys): node[key]}]))
        else:
            node[draw(keys)] = node.pop(key)
    if draw(st.integers(0, 4)) == 0:
        tree["extends"] = draw(st.sampled_from(["parent", "parent.yaml", "./parent.yaml", "sub/parent.yaml",
                                                "parent.yml", "nowhere", "nowhere.yaml", "", "a\x00b", 3,
                                                ["parent"], {"name": "parent"}, None, "../parent"]))
    return tree


def _dump(tree: dict) -> str:
    try:
        return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:  # a key or value the dumper refuses (it is the test's input, not gadbench)
        return yaml.safe_dump(BASE, sort_keys=False)


@st.composite
def suite_bytes(draw) -> bytes:
    """A mutated suite as YAML text, then maybe a raw token in place of a value, cut short, a BOM, a bad byte."""
    text = _dump(draw(mutated_suites()))
    lines = text.splitlines()
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(lines) - 1))
        head = lines[i].split(": ", 1)[0] if ": " in lines[i] else lines[i]
        lines[i] = head + ": " + draw(st.sampled_from(RAW_TOKENS))
    data = "\n".join(lines).encode("utf-8")
    edit = draw(st.sampled_from(["none", "none", "bom", "byte", "cut", "crlf"]))
    if edit == "bom":
        data = b"\xef\xbb\xbf" + data
    elif edit == "byte":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    elif edit == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif edit == "crlf":
        data = data.replace(b"\n", b"\r\n")
    return data


KEY_PATHS = ["train.steps", "train.lr_generator", "train.device", "methods.gad.d_loss", "methods.gad",
             "methods.gad.search", "methods.gad.search.lr_generator", "methods.new", "data.train.limit",
             "data.eval.world-id.limit", "data.eval.local.path", "students.tiny.path", "seeds", "eval.judges",
             "toy", "toy.steps", "name", "extends", "budget.tolerance", "rollout.engine", "judge.price_per_mtok"]
set_strings = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEY_PATHS) | st.text(max_size=12),
              st.sampled_from(RAW_TOKENS) | st.text(max_size=12) | values.map(
                  lambda v: yaml.safe_dump(v, default_flow_style=True).strip())),
    st.builds(lambda k, s: k + s, st.sampled_from(KEY_PATHS), st.sampled_from([".", "..x=1", ".x.y=2", "", "=", "==1"])),
    st.text(max_size=20),
)


def loads_or_fails_in_one_line(path: Path, overrides: list[str]) -> None:
    try:
        suite = load_suite(path, overrides)
        runs = runs_of(suite)
        assert [r.run_id for r in runs] == [r.run_id for r in runs_of(suite)]  # the hash is computable and stable
    except ConfigError as e:
        one_line(e)


@cases(400)
@given(data=suite_bytes(), overrides=st.lists(set_strings, max_size=2))
def test_fuzz_suite_files_load_or_fail_in_one_line(tmp_path, data, overrides):
    (tmp_path / "sub").mkdir(exist_ok=True)
    for parent in (tmp_path / "parent.yaml", tmp_path / "sub" / "parent.yaml"):
        parent.write_text("name: parent\nseeds: [3]\ntrain: {steps: 5}\n", encoding="utf-8")
    path = tmp_path / "suite.yaml"
    path.write_bytes(data)
    loads_or_fails_in_one_line(path, overrides)


@cases(300)
@given(overrides=st.lists(set_strings, min_size=1, max_size=4))
def test_fuzz_set_strings_on_a_valid_suite(overrides):
    loads_or_fails_in_one_line(FIX / "config" / "base.yaml", overrides)


# ------------------------------------------------------------------------------------------- data files

VOCAB = ["prompt", "response", "id", "q", "a", "instruction", "context", "category", "turns", "instances",
         "conversations", "conversation", "content", "teacher_response", "output", "input", "question_id"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.sampled_from(["", " ", "\ufeff"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(VOCAB) | st.text(max_size=4), c, max_size=3),
    max_leaves=6)
turns = st.lists(st.fixed_dictionaries({}, optional={
    "from": st.sampled_from(["human", "gpt", "system", "x"]) | json_values,
    "role": st.sampled_from(["user", "assistant", "system"]),
    "value": json_values, "content": json_values}), max_size=3)
records = st.dictionaries(st.sampled_from(VOCAB), json_values | turns, max_size=5)
HUGE = [json.dumps({"prompt": "x" * 300_000, "response": "y"}), "[" * 100_000 + "]" * 100_000,
        '{"prompt": ' + "9" * 5000 + "}", '{"prompt": "a", "id": ' + "9" * 4400 + "}", '{"prompt": ""}',
        '{"prompt": "\\ud800"}', '{"prompt": 1e999}', '{"prompt": NaN}', "\x00", "{" * 50_000]


@st.composite
def line_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["record", "record", "record", "text", "bytes", "huge", "blank"]))
    if kind == "record":
        return json.dumps(draw(records), ensure_ascii=draw(st.booleans())).encode("utf-8")
    if kind == "text":
        return draw(st.text(max_size=20)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        line = json.dumps(draw(records)).encode("utf-8")
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.sampled_from(BAD_BYTES)) + line[at:]
    if kind == "huge":
        return draw(st.sampled_from(HUGE)).encode("utf-8", "surrogatepass")
    return draw(st.sampled_from([b"", b"  ", b"\t"]))


@st.composite
def text_files(draw) -> bytes:
    lines = draw(st.lists(line_bytes(), max_size=6))
    if draw(st.booleans()):  # as a JSON array (sources read .json files too)
        body = b"[" + b",".join(lines) + b"]"
    else:
        body = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines) + draw(st.sampled_from([b"", b"\n"]))
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + body


specs = st.fixed_dictionaries({
    "bad_rows": st.sampled_from(["skip", "error"]),
    "require_teacher": st.booleans(),
    "multi_turn": st.sampled_from(["first", "skip"]),
    "limit": st.none() | st.integers(0, 4),
    "max_chars": st.none() | st.integers(0, 50),
    "fields": st.dictionaries(st.sampled_from(["prompt", "response", "id"]), st.sampled_from(VOCAB), max_size=2),
})
FILE_SOURCES = [s for s in list_sources() if s not in ("jsonl", "parquet")]


def check_load(spec: DataSpec) -> None:
    """A load gives consistent examples and counts, or stops with one line."""
    try:
        examples, report = load_examples(spec)
    except DataError as e:
        one_line(e)
        return
    assert report.total == report.kept + sum(report.skipped.values()) and report.kept == len(examples)
    assert spec.limit is None or report.kept <= spec.limit
    for ex in examples:  # text a tokenizer and a UTF-8 file take
        assert isinstance(ex.prompt, str) and ex.prompt.strip()
        ex.prompt.encode("utf-8")
        assert ex.teacher_response is None or ex.teacher_response.encode("utf-8")
        assert isinstance(ex.meta["id"], str)
        json.dumps(ex.meta, default=str)
    one_line(ValueError(report.summary()))


@cases(400)
@given(data=text_files(), spec=specs, source=st.sampled_from(["jsonl"] * 4 + FILE_SOURCES))
def test_fuzz_jsonl_and_json_files_load_or_fail_in_one_line(tmp_path, data, spec, source):
    path = tmp_path / ("data.json" if source == "sharegpt" or data.lstrip(b"\xef\xbb\xbf").startswith(b"[")
                       else "data.jsonl")
    path.write_bytes(data)
    fields = spec.pop("fields")  # a field mapping applies to the generic sources only
    check_load(DataSpec(source, path=str(path), fields=fields if source == "jsonl" else {}, **spec))


ARROW_TYPES = {
    "string": (pa.string(), st.text(max_size=8) | st.sampled_from(["", " "])),
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "strings": (pa.list_(pa.string()), st.lists(st.text(max_size=5), max_size=3)),
    "turns": (pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
              st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]),
                                               "content": st.text(max_size=6)}), max_size=3)),
    "null": (pa.null(), st.none()),
}


@st.composite
def parquet_files(draw) -> bytes:
    names = draw(st.lists(st.sampled_from(VOCAB), unique=True, max_size=4))
    n = draw(st.integers(0, 5))
    columns = {}
    for name in names:
        arrow_type, cells = ARROW_TYPES[draw(st.sampled_from(sorted(ARROW_TYPES)))]
        columns[name] = pa.array([draw(st.none() | cells) for _ in range(n)], type=arrow_type)
    table = pa.table(columns) if columns else pa.table({"x": pa.array([None] * n, type=pa.null())})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "bytes", "flip"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "bytes":
        data = draw(st.binary(max_size=64))
    elif damage == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    return data


@cases(250)
@given(data=parquet_files(), spec=specs,
       source=st.sampled_from(["parquet", "parquet", "jsonl", "lmsys-gad", "lmsys-chat-1m-clean"]))
def test_fuzz_parquet_files_load_or_fail_in_one_line(tmp_path, data, spec, source):
    path = tmp_path / "data.parquet"
    path.write_bytes(data)
    fields = spec.pop("fields")
    check_load(DataSpec(source, path=str(path), fields=fields if source in ("jsonl", "parquet") else {}, **spec))


@cases(150)
@given(rows=st.lists(st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=8)}, optional={
    "response": st.text(max_size=8), "id": st.text(max_size=4)}), max_size=5))
def test_fuzz_bom_and_crlf_do_not_change_what_a_jsonl_file_gives(tmp_path, rows):
    """A UTF-8 BOM and Windows line ends are encoding details: the file gives the same examples without them."""
    plain, windows = tmp_path / "plain.jsonl", tmp_path / "windows.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    plain.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    windows.write_bytes(b"\xef\xbb\xbf" + "".join(x + "\r\n" for x in lines).encode("utf-8"))
    a, ra = load_examples(DataSpec("jsonl", path=str(plain)))
    b, rb = load_examples(DataSpec("jsonl", path=str(windows)))
    assert [(e.prompt, e.teacher_response, e.meta["id"]) for e in a] == [
        (e.prompt, e.teacher_response, e.meta["id"]) for e in b]
    assert (ra.total, ra.kept, ra.skipped) == (rb.total, rb.kept, rb.skipped)


def test_the_fuzzed_base_suite_is_valid():
    """The mutations start from a valid suite (else every case would only test one error)."""
    assert len(runs_of(cfg.build(cfg.SuiteConfig, BASE, "base", ""))) == 8
