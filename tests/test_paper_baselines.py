"""baselines/paper.json: schema-valid, complete per table, and consistent across tables."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from statistics import mean

import pytest

from gadbench.report.baselines import load_baselines
from gadbench.report.schema import validate

ROOT = Path(__file__).resolve().parents[1] / "baselines"
DOC = json.loads((ROOT / "paper.json").read_text())
SCHEMA = json.loads((ROOT / "paper.schema.json").read_text())
ENTRIES = DOC["entries"]
TABLE = [e for e in ENTRIES if "table" in e]


def _find(table, student, key, dataset, metric="score"):
    hits = [
        e["value"]
        for e in TABLE
        if e["table"] == table
        and e["student"] == student
        and e["key"] == key
        and e["dataset"] == dataset
        and e["metric"] == metric
    ]
    assert len(hits) <= 1
    return hits[0] if hits else None


def test_schema_accepts_the_file():
    assert validate(DOC, SCHEMA) == []


@pytest.mark.parametrize(
    "broken, expected",
    [
        ({"value": "50.8"}, "expected number"),
        ({"source": None}, "expected string"),
        ({"figure": "3", "vs": "SeqKD", "vs_key": "seqkd"}, "oneOf"),  # both a table and a figure
        ({"dataset": "MT-Bench"}, "is not one of"),
        ({"extra": 1}, "unexpected key"),
    ],
)
def test_schema_rejects_broken_entries(broken, expected):
    bad = {**DOC, "entries": [{**ENTRIES[0], **broken}]}
    errors = validate(bad, SCHEMA)
    assert any(expected in e for e in errors), errors


def test_counts_per_table():
    counts = Counter(e.get("table") or f"fig{e['figure']}" for e in ENTRIES)
    assert counts == {"2": 64, "3": 8, "4": 6, "5": 8, "6": 128, "7": 28, "fig3": 18}
    assert Counter(e["metric"] for e in TABLE if e["table"] == "6") == {"score": 64, "length": 64}


def test_every_entry_names_its_source():
    for e in ENTRIES:
        where = f"Table {e['table']}" if "table" in e else "Figure 3"
        assert e["source"].startswith(where), e


def test_spot_values():
    assert _find("2", "Qwen2.5-7B-Instruct", "gad", "LMSYS") == 50.8
    assert _find("2", "GPT-5-Chat", "teacher", "Vicuna") == 49.9
    assert _find("7", "Llama-3.2-3B-Instruct", "gad", "SelfInst") == 47.3
    assert _find("7", "Llama-3.2-3B-Instruct", "seqkd", "SelfInst") == 47.6
    assert _find("6", "Qwen2.5-14B-Instruct", "gad", "LMSYS", "length") == 438.9
    assert _find("5", "Qwen2.5-7B-Instruct", "gad:d_model=Qwen2.5-14B-Instruct", "Others") == 49.9


def test_table6_scores_repeat_table2():
    for e in TABLE:
        if e["table"] == "6" and e["metric"] == "score":
            assert _find("2", e["student"], e["key"], e["dataset"]) == e["value"], e


def test_others_in_tables_3_to_5_are_the_mean_of_table2_ood_sets():
    checked = 0
    for e in TABLE:
        if e["table"] not in ("3", "4", "5"):
            continue
        if e["dataset"] == "Others":
            ood = [_find("2", e["student"], e["key"], d) for d in ("Dolly", "SelfInst", "Vicuna")]
            if all(v is not None for v in ood):
                assert abs(e["value"] - mean(ood)) <= 0.05 + 1e-9, (e, ood)
                checked += 1
        elif (lmsys := _find("2", e["student"], e["key"], "LMSYS")) is not None:
            assert e["value"] == lmsys, e
            checked += 1
    assert checked == 12  # the SeqKD and GAD rows of Tables 3-5 (2 + 2 + 2 rows), LMSYS and Others


def test_human_evaluation_rows_sum_to_100():
    rows = Counter()
    for e in ENTRIES:
        if "figure" in e:
            rows[(e["student"], e["vs"])] += e["value"]
    assert len(rows) == 6 and set(rows.values()) == {100.0}


def test_lookup_by_run_names():
    base = load_baselines()
    assert base.value("GPT-5-Chat", "Qwen/Qwen2.5-7B-Instruct", "gad", "LMSYS") == 50.8
    assert base.value("Qwen/Qwen2.5-14B-Instruct", "Llama-3.2-3B-Instruct", "gad", "LMSYS") == 47.5
    assert base.value("", "Qwen2.5-7B-Instruct", "seqkd", "Others") == 48.3  # printed in Table 3
    assert base.value("", "Qwen2.5-14B-Instruct", "gad", "Others") == pytest.approx((50.4 + 51.1 + 51.6) / 3)
    assert base.value("", "Qwen2.5-7B-Instruct", "gad", "LMSYS", "length") == 414.0
    assert base.value("", "tiny-qwen", "gad", "LMSYS") is None
