"""CI regression: metrics are compared with a baseline file under per-metric tolerances."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gadbench.report.regression import compare_to_baseline, current_metrics

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "smoke"


def test_update_then_compare_passes_and_a_moved_metric_fails(tmp_path, capsys):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    baseline = tmp_path / "ci.json"
    assert compare_to_baseline(suite, baseline, update=True) == 0
    written = json.loads(baseline.read_text())
    ours = current_metrics(suite)
    assert written.keys() == ours.keys() and len(ours) > 0
    key = next(k for k in written if k.endswith("gold/accuracy"))
    assert written[key] == {"value": ours[key], "tolerance": 0.05}

    assert compare_to_baseline(suite, baseline) == 0
    assert "within tolerance" in capsys.readouterr().out

    written[key]["value"] = ours[key] + 0.06  # just past its tolerance
    baseline.write_text(json.dumps(written))
    assert compare_to_baseline(suite, baseline) == 1
    out = capsys.readouterr()
    assert key in out.out and "MOVED" in out.out
    assert "--update-baseline" in out.err

    written[key]["value"] = ours[key] + 0.04  # inside it
    baseline.write_text(json.dumps(written))
    assert compare_to_baseline(suite, baseline) == 0


def test_a_missing_metric_fails(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    baseline = tmp_path / "ci.json"
    compare_to_baseline(suite, baseline, update=True)
    extra = json.loads(baseline.read_text())
    extra["tiny--gone/world-id/gold/accuracy"] = {"value": 0.5, "tolerance": 0.1}
    baseline.write_text(json.dumps(extra))
    assert compare_to_baseline(suite, baseline) == 1
