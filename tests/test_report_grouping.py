"""Which runs a report pools as seeds: runs of one configuration (config.yaml minus the seed) only. A suite
folder that holds runs of an earlier configuration reports the runs suite.json lists and names the others;
where suite.json does not settle it, the report refuses with one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from gadbench.cli import main
from gadbench.report import build_report
from gadbench.report.load import MixedConfigurations, load_results

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "smoke"
OLD, NEW = "3f9c2a71", "77aa77aa"


def _rerun_with_another_lr(tmp_path: Path) -> Path:
    """What `gadbench run --suite smoke --set train.lr=0.0003 --set seeds=[0]` leaves in an --out that held the
    fixture's suite (seeds 0 and 1): new seed-0 folders beside the old ones, suite.json listing the new ones. The
    new GAD answers every world-id prompt right; the old ones did so on 61% and 63%."""
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    new_ids = []
    for old in sorted(suite.glob(f"tiny-qwen--*--s0--{OLD}")):
        new = suite / old.name.replace(OLD, NEW)
        shutil.copytree(old, new)
        cfg = yaml.safe_load((new / "config.yaml").read_text())
        cfg["train"]["lr"] = 0.0003
        (new / "config.yaml").write_text(yaml.safe_dump(cfg))
        summary = json.loads((new / "summary.json").read_text())
        summary["run_id"] = new.name
        if summary["method"] == "gad":
            summary["eval"]["world-id"]["gold/accuracy"].update(mean=1.0, ci_low=1.0, ci_high=1.0)
            for rows_path in new.glob("eval/step-*/world-id.jsonl"):
                rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
                for r in rows:
                    r["judgments"]["gold"]["accuracy"] = 1.0
                rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (new / "summary.json").write_text(json.dumps(summary))
        new_ids.append(new.name)
    meta = json.loads((suite / "suite.json").read_text())
    meta["runs"] = new_ids
    (suite / "suite.json").write_text(json.dumps(meta))
    return suite


def test_runs_of_an_earlier_configuration_are_left_out_not_pooled_as_seeds(tmp_path):
    suite = _rerun_with_another_lr(tmp_path)
    build_report(suite)
    main_rows = list(csv.DictReader((suite / "tables" / "main.csv").open()))
    gad = next(r for r in main_rows if r["Method"] == "GAD")
    # the new configuration's one seed, not the old seeds 0 and 1 with it
    assert (float(gad["world-id"]), gad["world-id seeds"], gad["world-id n"]) == (1.0, "1", "200"), gad
    findings = list(csv.DictReader((suite / "tables" / "findings.csv").open()))
    in_dist = next(r for r in findings if r["Finding"] == "GAD beats SeqKD (in distribution)")
    assert in_dist["n (seeds x items)"] == "1 x 100 prompts" and "GAD 1.000" in in_dist[
        "Evidence (difference, 95% interval)"], in_dist
    md = (suite / "REPORT.md").read_text()
    section = md[md.index("### Left out of this report"):md.index("### Warnings")]
    assert "another configuration than the runs suite.json lists (train.lr 0.0001 vs 0.0003)" in section, section
    assert f"tiny-qwen--gad--s1--{OLD}" in (suite / "report.html").read_text()
    assert "run folders of another configuration than the runs suite.json lists are left out" in md.splitlines()[2]


def test_without_suite_json_to_settle_it_the_report_refuses_in_one_line(tmp_path, capsys):
    suite = _rerun_with_another_lr(tmp_path)
    (suite / "suite.json").unlink()
    with pytest.raises(MixedConfigurations, match=r"differ in more than their seed \(train.lr 0.0001 vs 0.0003\)"):
        load_results(suite)
    assert main(["report", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gadbench: runs tiny-qwen--") and "\n" not in err and "own folder" in err


def test_seeds_of_one_configuration_are_still_pooled(tmp_path):
    """The fixture's two GAD seeds share every setting but the seed: one row of 2 seeds."""
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    assert load_results(suite).superseded == []
    build_report(suite)
    gad = next(r for r in csv.DictReader((suite / "tables" / "main.csv").open()) if r["Method"] == "GAD")
    assert gad["world-id seeds"] == "2" and gad["world-id n"] == "200"


def _main_md_row(suite: Path, method: str) -> str:
    """The main table's row of `method` on REPORT.md's first screen (which always shows intervals)."""
    md = (suite / "REPORT.md").read_text()
    section = md[md.index("### Main results"):]
    return next(line for line in section.splitlines() if line.startswith("|") and f" {method} " in line)


def test_before_rows_get_the_interval_of_the_step_0_rows_they_were_copied_from(tmp_path):
    """sharegpt-smol's `before` rows are summaries copied from step 0 of a run of each seed (gadbench.runner):
    they read that run's step-0 rows, so they get a bootstrap interval like every row, not a range of two equal
    seed means ([53.3, 53.3])."""
    suite = tmp_path / "sharegpt-smol"
    shutil.copytree(Path(__file__).parents[1] / "baselines" / "reference" / "sharegpt-smol", suite)
    build_report(suite)
    line = _main_md_row(suite, "Before distill.")
    assert "range" not in line and "n=2x48" in line, line
    rows = [json.loads(x) for x in next(suite.glob("smol135m--gad--s0--*/eval/step-0/sharegpt-test.jsonl"))
            .read_text().splitlines()]
    mean = sum(r["judgments"]["embedding"]["score"] for r in rows) / len(rows)
    assert f"{mean:.1f}" in line, (line, mean)  # both seeds' step 0 are the same greedy answers


def test_a_column_never_mixes_ranges_with_intervals(tmp_path):
    """SeqKD's runs without stored eval rows beside GAD's with them: SeqKD shows its mean and why it has no
    interval, not a range of seed means next to GAD's bootstrap interval."""
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    for run in suite.glob("tiny-qwen--seqkd--*"):
        shutil.rmtree(run / "eval")
    build_report(suite)
    seqkd, gad = _main_md_row(suite, "SeqKD"), _main_md_row(suite, "GAD")
    assert "range" not in seqkd and "0.530 (no interval: eval rows not stored)" in seqkd, seqkd
    assert "n=2x100" in gad, gad
