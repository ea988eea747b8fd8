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


def _note_counts(table) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:resamples|refits), MC s\.e\.", table.note)]


def test_findings_start_at_the_suites_bootstrap_setting_and_print_count_and_mc_error(tmp_path):
    suite = _copy(tmp_path)
    table = findings_table(load_results(suite))
    assert "eval.bootstrap = 2,000" in table.note  # the fixture stores no setting: the setting's default
    assert len(_note_counts(table)) >= len(table.rows) and min(_note_counts(table)) >= 2000, table.note
    record = json.loads((suite / "suite.json").read_text())
    record["config"]["eval"] = {"bootstrap": 3000}
    (suite / "suite.json").write_text(json.dumps(record))
    table = findings_table(load_results(suite))
    assert "eval.bootstrap = 3,000" in table.note and min(_note_counts(table)) >= 3000, table.note
    assert f"{ID_ROW}: " in table.note and "MC s.e. of the bounds ±" in table.note


REFERENCE = Path(__file__).parents[1] / "baselines" / "reference" / "sharegpt-smol"


def test_the_sharegpt_smol_headline_verdict_does_not_depend_on_the_rng_seed():
    """The stored reference (2 seeds x 48 prompts, embedding GAD - SeqKD, upper bound about +0.2 in an interval
    7.6 wide): at its eval.bootstrap of 1000 fixed resamples, RNG seed 0 put the upper bound at -0.075 ("not
    reproduced") and most seeds above 0; with the resamples grown until both bounds are settled, every seed
    gives the same verdict, and the report computes it at the suite's setting."""
    from gadbench.metrics import paired_seeds_and_items, verdict
    from gadbench.report.findings import _by_seed, _runs

    suite = load_results(REFERENCE)
    a, b = (_by_seed(_runs(suite, key, "smol135m"), "sharegpt-test", "embedding/score") for key in ("gad", "seqkd"))
    fixed = paired_seeds_and_items(a, b, 1000, seed=0, max_resamples=1000)
    assert fixed["ci_high"] < 0 and verdict(fixed["ci_low"], fixed["ci_high"], +1) == "not reproduced", fixed
    grown = [paired_seeds_and_items(a, b, 1000, seed=s) for s in range(12)]
    assert {verdict(r["ci_low"], r["ci_high"], +1, r["mc_low"], r["mc_high"]) for r in grown} == {"inconclusive"}, [
        (r["ci_high"], r["mc_high"], r["n_resamples"]) for r in grown]
    table = findings_table(suite)
    row = next(r for r in table.rows if r[0] == ID_ROW)
    assert row[3] == "inconclusive" and "eval.bootstrap = 1,000" in table.note, (row, table.note)
