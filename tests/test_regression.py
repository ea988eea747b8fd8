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


def test_a_missing_baseline_is_an_error_unless_updating(tmp_path):
    """A baseline that is not there compares nothing: one line naming it, never a silent pass."""
    import pytest

    from gadbench.report.regression import BaselineMissingError

    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURE, suite)
    with pytest.raises(BaselineMissingError, match="the regression baseline .*none.json does not exist; fix "
                                                   "`baseline:` in the suite file .* or pass --update-baseline"):
        compare_to_baseline(suite, tmp_path / "none.json")
    assert not (tmp_path / "none.json").exists()
    assert compare_to_baseline(suite, tmp_path / "none.json", update=True) == 0
    assert json.loads((tmp_path / "none.json").read_text()).keys() == current_metrics(suite).keys()


def test_the_ci_baseline_is_the_repositorys_from_any_working_directory(tmp_path, monkeypatch):
    """experiments/ci.yaml's `baseline:` is read from the suite file's folder; a --set path from the current one."""
    from gadbench.suite import get_suite

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    ci = get_suite("ci")
    assert ci.baseline == str(root / "baselines" / "ci" / "ci.json") and Path(ci.baseline).is_file()
    assert get_suite("ci", ["baseline=mine.json"]).baseline == str(tmp_path / "mine.json")
