"""The Fig. 5 toy: hand-computed teacher and student distributions, SeqKD moment matching, GAD mode seeking."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from gadbench.config import SuiteConfig, ToyConfig
from gadbench.io import read_json
from gadbench.report import build_report
from gadbench.suite import get_suite
from gadbench.worlds import toy


@pytest.fixture(scope="module")
def suite_cfg() -> ToyConfig:
    return get_suite("toy").toy


@pytest.fixture(scope="module")
def result(suite_cfg) -> dict:
    return toy.run_toy(suite_cfg, seed=0)


SMALL = ToyConfig(teacher_samples=200, steps=20, batch_size=32)


def _student(mu: float, sigma: float, classes: int) -> list[float]:
    return toy.student_log_probs(torch.tensor(mu, dtype=torch.float64),
                                 torch.tensor(math.log(sigma), dtype=torch.float64), classes).exp().tolist()


def test_student_distribution_by_hand():
    # mu=1, sigma=1: weights exp(-(k-1)^2/2) = [e^-1/2, 1, e^-1/2], sum 1 + 2 e^-1/2 = 2.2130613
    assert _student(1.0, 1.0, 3) == pytest.approx([0.2740686, 0.4518628, 0.2740686], abs=1e-6)
    # mu=0, sigma=2: weights exp(-k^2/8) = [1, 0.8824969, 0.6065307], sum 2.4890276
    assert _student(0.0, 2.0, 3) == pytest.approx([0.4017633, 0.3545549, 0.2436818], abs=1e-6)


def test_teacher_mixture_by_hand():
    cfg = ToyConfig(classes=3, teacher_means=(0.0, 2.0), teacher_stds=(1.0, 0.5), teacher_weights=(0.6, 0.4))
    # c0: 0.6 exp(-k^2/2) / 1        = [0.6, 0.3639184, 0.0812012]
    # c1: 0.4 exp(-2 (k-2)^2) / 0.5  = [0.0002684, 0.1082682, 0.8]
    # sum [0.6002684, 0.4721866, 0.8812012], total 1.9536562
    assert toy.teacher_probs(cfg).tolist() == pytest.approx([0.3072538, 0.2416938, 0.4510523], abs=1e-6)
    # class 1 is equidistant from both means; c0 contributes more there, so it joins c0's region
    assert toy.mode_region(cfg) == [0, 1]


def test_default_mode_region(suite_cfg):
    assert toy.mode_region(suite_cfg) == [0, 1, 2, 3, 4]


def test_metrics_match_the_distributions(result):
    p_t = np.array(result["teacher"])
    m = result["metrics"]
    for name in toy.METHODS:
        p = np.array(result[name])
        assert p.sum() == pytest.approx(1.0)
        assert m[f"{name}/mode_mass"] == pytest.approx(p[result["mode_region"]].sum())
        assert m[f"{name}/forward_kl"] == pytest.approx(np.sum(p_t * np.log(p_t / p)), rel=1e-6)
        assert m[f"{name}/reverse_kl"] == pytest.approx(np.sum(p * np.log(p / p_t)), rel=1e-6)
    assert result["classes"] == list(range(10))


def test_seqkd_matches_sample_mean_and_variance(suite_cfg, result):
    # the maximum-likelihood discretised Gaussian matches the samples' first two moments
    gens = toy._generators(0)
    samples = torch.multinomial(toy.teacher_probs(suite_cfg), suite_cfg.teacher_samples, replacement=True,
                                generator=gens[0]).double()
    assert result["metrics"]["seqkd/mean"] == pytest.approx(samples.mean().item(), abs=0.15)
    assert result["metrics"]["seqkd/std"] == pytest.approx(samples.std(unbiased=False).item(), abs=0.15)


def test_gad_seeks_the_largest_mode(result):
    m = result["metrics"]
    assert m["teacher/mode_mass"] == pytest.approx(0.70, abs=0.01)
    assert m["gad/mode_mass"] > 0.95 > 0.8 > m["seqkd/mode_mass"]
    assert m["gad/reverse_kl"] < 0.5 < 0.8 < m["seqkd/reverse_kl"]
    assert m["gad/forward_kl"] > m["seqkd/forward_kl"]  # the price: the second mode is dropped
    assert m["gad/std"] < 1.0 < 2.0 < m["seqkd/std"]


def test_gad_first_reward_comes_from_the_untrained_discriminator():
    # D starts at 0 and rewards are read before its first update: all advantages are 0, the student stays put
    cfg = dataclasses.replace(SMALL, steps=1)
    out = toy.run_toy(cfg, seed=3)
    assert out["gad"] == pytest.approx(_student(cfg.init_mean, cfg.init_std, cfg.classes), abs=1e-12)
    assert out["seqkd"] != pytest.approx(out["gad"], abs=1e-3)


def test_deterministic_per_seed():
    a, b, c = toy.run_toy(SMALL, 1), toy.run_toy(SMALL, 1), toy.run_toy(SMALL, 2)
    assert a == b
    assert a["seqkd"] != c["seqkd"] and a["gad"] != c["gad"]


def test_write_toy_run_and_report(tmp_path):
    suite = SuiteConfig(name="toy", toy=SMALL, seeds=(0, 1))
    suite_dir = toy.write_toy_run(suite, tmp_path)
    assert suite_dir == tmp_path / "toy"
    for seed in (0, 1):
        run = suite_dir / f"toy--s{seed}"
        stored = read_json(run / "toy.json")
        assert stored == toy.run_toy(SMALL, seed)
        s = read_json(run / "summary.json")
        assert (s["run_id"], s["suite"], s["student"], s["method"], s["seed"]) == (run.name, "toy", "toy", "toy", seed)
        assert s["selection"]["rule"] == "last" and s["selection"]["checkpoint"] == SMALL.steps
        cell = s["eval"]["toy"]["gad/reverse_kl"]
        assert cell == {"mean": stored["metrics"]["gad/reverse_kl"], "ci_low": None, "ci_high": None,
                        "n_valid": 1, "n_total": 1}
    report = build_report(suite_dir)
    assert (suite_dir / "figures" / "toy.png").stat().st_size > 0
    assert "figures/toy.png" in report.markdown.read_text()
