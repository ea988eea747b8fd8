"""The findings table: every verdict comes from an interval over seeds and prompts, paired, and follows the
stored per-item results when they change."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from gadbench.report.findings import findings_table
from gadbench.report.load import load_results

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "smoke"
ID_ROW = "GAD beats SeqKD (in distribution)"


def _copy(tmp_path: Path) -> Path:
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    return suite


def _rows(run_dir: Path, dataset: str = "world-id") -> tuple[Path, list[dict]]:
    step = json.loads((run_dir / "summary.json").read_text())["selection"]["checkpoint"]
    path = run_dir / "eval" / f"step-{step}" / f"{dataset}.jsonl"
    return path, [json.loads(line) for line in path.read_text().splitlines()]


def _set_accuracy(suite: Path, pattern: str, value_of) -> None:
    """Rewrite gold/accuracy of every world-id row of the runs matching `pattern`: value_of(seed, index)."""
    for run_dir in suite.glob(pattern):
        seed = int(re.search(r"--s(\d+)--", run_dir.name).group(1))
        path, rows = _rows(run_dir)
        for i, r in enumerate(rows):
            r["judgments"]["gold"]["accuracy"] = value_of(seed, i)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _finding(suite: Path, name: str) -> list:
    return next(r for r in findings_table(load_results(suite)).rows if r[0] == name)


def _interval(evidence: str) -> tuple[float, float, float]:
    m = re.search(r"GAD - SeqKD ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]", evidence)
    return tuple(float(x) for x in m.groups())


def test_difference_is_paired_by_seed_and_prompt_and_stated_with_n(tmp_path):
    suite = _copy(tmp_path)
    row = _finding(suite, ID_ROW)
    # by hand from the stored rows: mean over (seed, prompt) of GAD - SeqKD accuracy
    diffs = []
    for seed in (0, 1):
        (g,), (q,) = (list(suite.glob(f"tiny-qwen--{m}--s{seed}--*")) for m in ("gad", "seqkd"))
        ga = {r["id"]: r["judgments"]["gold"]["accuracy"] for r in _rows(g)[1]}
        qa = {r["id"]: r["judgments"]["gold"]["accuracy"] for r in _rows(q)[1]}
        diffs += [ga[k] - qa[k] for k in ga.keys() & qa.keys()]
    diff, lo, hi = _interval(row[1])
    assert diff == round(float(np.mean(diffs)), 3) and lo < diff < hi
    assert row[2] == "2 x 100 prompts"
    assert row[3] == ("reproduced" if lo > 0 else "not reproduced" if hi < 0 else "inconclusive")


def test_verdicts_follow_the_interval(tmp_path):
    suite = _copy(tmp_path)
    _set_accuracy(suite, "tiny-qwen--seqkd--s*", lambda s, i: float(i % 2))  # SeqKD right on half the prompts
    _set_accuracy(suite, "tiny-qwen--gad--s*", lambda s, i: 1.0)  # GAD on all of them
    assert _finding(suite, ID_ROW)[3] == "reproduced"
    _set_accuracy(suite, "tiny-qwen--gad--s*", lambda s, i: 0.0)
    assert _finding(suite, ID_ROW)[3] == "not reproduced"
    # GAD better on seed 0 and worse on seed 1 by as much: the prompts alone would call it, the seeds do not
    _set_accuracy(suite, "tiny-qwen--gad--s*", lambda s, i: float(i % 2) + (0.4 if s == 0 else -0.4))
    diff, lo, hi = _interval(_finding(suite, ID_ROW)[1])
    assert diff == 0.0 and lo < -0.3 and hi > 0.3
    assert _finding(suite, ID_ROW)[3] == "inconclusive"


def test_mode_seeking_reads_the_style_shares(tmp_path):
    suite = _copy(tmp_path)
    row = _finding(suite, "SeqKD covers modes, GAD seeks them")
    # fixture shares: GAD 0.89 / 0.11, SeqKD 0.69 / 0.31 -> entropies 0.347 and 0.619 nats
    assert "GAD 0.347 vs SeqKD 0.619 nats" in row[1] and row[3] == "reproduced"
    for pattern in ("tiny-qwen--gad--s*", "tiny-qwen--seqkd--s*"):  # every answer the same style: no difference
        for run_dir in suite.glob(pattern):
            path, rows = _rows(run_dir)
            for r in rows:
                r["judgments"]["gold"]["style"] = "formal"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = _finding(suite, "SeqKD covers modes, GAD seeks them")
    assert "GAD - SeqKD +0.000 [+0.000, +0.000]" in row[1] and row[3] == "inconclusive"


def test_frozen_d_verdict_needs_reward_up_and_quality_down(tmp_path):
    suite = _copy(tmp_path)
    run = next(suite.glob("tiny-qwen--gad-frozen--s0--*"))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    adversarial = [r for r in rows if r.get("stage") == "adversarial"]
    assert len(adversarial) == 8
    row = _finding(suite, "A frozen discriminator gets exploited")
    assert "last vs first third of 8 adversarial steps" in row[1] and row[2] == "1 x 2 steps"
    assert row[3] == "reproduced"  # the fixture's reward and length both rise (no gold metric in its curves)
    for r in adversarial:
        r["reward_mean"] = 0.5  # a flat reward: nothing is exploited
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _finding(suite, "A frozen discriminator gets exploited")[3] == "inconclusive"


def test_skipped_without_gad_and_seqkd_says_why(tmp_path):
    suite = _copy(tmp_path)
    for p in suite.glob("tiny-qwen--seqkd--*"):
        shutil.rmtree(p)
    assert findings_table(load_results(suite)) == (
        "Findings table skipped: it needs `gad` and `seqkd` runs whose eval rows (eval/step-K/*.jsonl) are stored.")
