"""The findings table: each verdict follows the sign of the difference it names."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from gadbench.report.findings import findings_table
from gadbench.report.load import load_suite

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "smoke"


def _summary(suite: Path, run: str) -> tuple[Path, dict]:
    path = next(suite.glob(f"{run}/summary.json"))
    return path, json.loads(path.read_text())


def _mean(suite: Path, pattern: str, dataset: str, metric: str) -> float:
    values = [json.loads(p.read_text())["eval"][dataset][metric]["mean"] for p in suite.glob(f"{pattern}/summary.json")]
    return sum(values) / len(values)


def test_verdicts_follow_the_fixture_numbers(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    table = findings_table(load_suite(suite))
    rows = {r[0]: r for r in table.rows}
    g = _mean(suite, "tiny-qwen--gad--s*", "world-id", "gold/teacher_logprob")
    s = _mean(suite, "tiny-qwen--seqkd--s*", "world-id", "gold/teacher_logprob")
    row = rows["GAD beats SeqKD (in distribution)"]
    assert f"GAD {g:.3f} vs SeqKD {s:.3f}" in row[1]
    assert row[2] == ("yes" if g > s else "no")

    shares = {}
    for p in suite.glob("tiny-qwen--gad--s*/summary.json"):
        for k, v in json.loads(p.read_text())["eval"]["world-id"].items():
            if k.startswith("gold/style_share/"):
                shares.setdefault(k, []).append(v["mean"])
    h = -sum(m * math.log(m) for m in (sum(v) / len(v) for v in shares.values()) if m > 0)
    assert f"GAD {h:.3f}" in rows["SeqKD covers modes, GAD seeks them"][1]


def test_flipping_the_numbers_flips_the_verdict(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    before = {r[0]: r[2] for r in findings_table(load_suite(suite)).rows}
    for pattern, value in (("tiny-qwen--gad--s*", -1.0), ("tiny-qwen--seqkd--s*", -5.0)):
        for path in suite.glob(f"{pattern}/summary.json"):
            s = json.loads(path.read_text())
            s["eval"]["world-id"]["gold/teacher_logprob"]["mean"] = value
            path.write_text(json.dumps(s))
    after = {r[0]: r[2] for r in findings_table(load_suite(suite)).rows}
    assert after["GAD beats SeqKD (in distribution)"] == "yes"
    for path in suite.glob("tiny-qwen--gad--s*/summary.json"):
        s = json.loads(path.read_text())
        s["eval"]["world-id"]["gold/teacher_logprob"]["mean"] = -9.0
        path.write_text(json.dumps(s))
    assert {r[0]: r[2] for r in findings_table(load_suite(suite)).rows}["GAD beats SeqKD (in distribution)"] == "no"
    assert before.keys() == after.keys()


def test_skipped_without_gad_and_seqkd(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    for p in suite.glob("tiny-qwen--seqkd--*"):
        shutil.rmtree(p)
    assert isinstance(findings_table(load_suite(suite)), str)


def test_paired_interval_from_stored_items(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    for run, values in (("tiny-qwen--gad--s0--*", [-1.0, -2.0, -3.0]), ("tiny-qwen--seqkd--s0--*", [-2.0, -2.5, -3.0])):
        run_dir = next(suite.glob(run))
        step = json.loads((run_dir / "summary.json").read_text())["selection"]["checkpoint"]
        rows = [{"id": f"p{i}", "prompt": "add 1 2", "answer": "x", "answer_tokens": 1, "teacher_response": "3",
                 "judgments": {"gold": {"teacher_logprob": v, "valid": True}}} for i, v in enumerate(values)]
        (run_dir / "eval" / f"step-{step}" / "world-id.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = next(r for r in findings_table(load_suite(suite)).rows if r[0] == "GAD beats SeqKD (in distribution)")
    # per-prompt differences +1.0, +0.5, 0.0: mean +0.5; bootstrap means lie within [0, 1]
    assert "paired difference +0.500 [" in row[1] and "n=3" in row[1]
    lo, hi = (float(x) for x in row[1].split("paired difference +0.500 [")[1].split("]")[0].split(","))
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
