"""The paper's Fig. 5 toy: SeqKD is mode-covering, GAD is mode-seeking.

Teacher (a black box, seen only through `teacher_samples` draws) over classes k = 0..K-1:

    p_T(k) = sum_c w_c N(k; m_c, s_c) / Z,        N(k; m, s) = exp(-(k - m)^2 / (2 s^2)) / s

Student, a single discretised Gaussian with parameters (mu, log sigma):

    p_S(k) = exp(-(k - mu)^2 / (2 sigma^2)) / sum_j exp(-(j - mu)^2 / (2 sigma^2))

SeqKD minimises -mean log p_S(y_t) over minibatches of teacher samples (maximum likelihood; since p_S is an
exponential family in (k, k^2), its optimum matches the samples' mean and variance). GAD plays the paper's
game with a per-class logit table D: each step the student draws N samples y_i, gets rewards r_i = D(y_i)
and advantages A_i = (r_i - mean r) / std r, and ascends mean A_i log p_S(y_i) (REINFORCE); then D descends
the Bradley-Terry loss mean_i -log sigmoid(D(y_t^i) - D(y_i)) on pairs of a teacher and a student sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gadbench.config import ToyConfig
from gadbench.io import atomic_write_json

METHODS = ("seqkd", "gad")


def teacher_probs(cfg: ToyConfig) -> torch.Tensor:
    """p_T(k) proportional to sum_c w_c exp(-(k - m_c)^2 / (2 s_c^2)) / s_c, k = 0..K-1."""
    mass = _component_mass(cfg).sum(0)
    return mass / mass.sum()


def _component_mass(cfg: ToyConfig) -> torch.Tensor:
    """Unnormalised w_c N(k; m_c, s_c), shape (components, K)."""
    k = torch.arange(cfg.classes, dtype=torch.float64)
    m, s, w = (torch.tensor(v, dtype=torch.float64)[:, None]
               for v in (cfg.teacher_means, cfg.teacher_stds, cfg.teacher_weights))
    return w * torch.exp(-((k - m) ** 2) / (2 * s**2)) / s


def mode_region(cfg: ToyConfig) -> list[int]:
    """The classes k whose largest term w_c N(k; m_c, s_c) is the heaviest component's (largest w_c)."""
    heaviest = int(np.argmax(cfg.teacher_weights))
    return [k for k, c in enumerate(_component_mass(cfg).argmax(0).tolist()) if c == heaviest]


def student_log_probs(mu: torch.Tensor, log_sigma: torch.Tensor, classes: int) -> torch.Tensor:
    """log p_S(k) = log_softmax_k(-(k - mu)^2 / (2 sigma^2)), sigma = exp(log_sigma)."""
    k = torch.arange(classes, dtype=torch.float64)
    return torch.log_softmax(-((k - mu) ** 2) / (2 * torch.exp(2 * log_sigma)), dim=0)


def _student(cfg: ToyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    mu = torch.tensor(cfg.init_mean, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(cfg.init_std), dtype=torch.float64, requires_grad=True)
    return mu, log_sigma


def train_seqkd(cfg: ToyConfig, samples: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Adam on -mean log p_S(y_t) over minibatches of teacher samples; returns the final log p_S."""
    mu, log_sigma = _student(cfg)
    opt = torch.optim.Adam([mu, log_sigma], lr=cfg.lr_student)
    for _ in range(cfg.steps):
        batch = samples[torch.randint(len(samples), (cfg.batch_size,), generator=gen)]
        loss = -student_log_probs(mu, log_sigma, cfg.classes)[batch].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student_log_probs(mu, log_sigma, cfg.classes).detach()


def train_gad(cfg: ToyConfig, samples: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """REINFORCE on group-normalised rewards D(y_i), then one BT step on D; returns the final log p_S."""
    mu, log_sigma = _student(cfg)
    d = torch.zeros(cfg.classes, dtype=torch.float64, requires_grad=True)
    opt_g = torch.optim.Adam([mu, log_sigma], lr=cfg.lr_student)
    opt_d = torch.optim.Adam([d], lr=cfg.lr_discriminator)
    for _ in range(cfg.steps):
        logp = student_log_probs(mu, log_sigma, cfg.classes)
        ys = torch.multinomial(logp.detach().exp(), cfg.batch_size, replacement=True, generator=gen)
        reward = d.detach()[ys]
        std = reward.std()
        adv = (reward - reward.mean()) / std if std > 0 else torch.zeros_like(reward)
        loss_g = -(adv * logp[ys]).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        yt = samples[torch.randint(len(samples), (cfg.batch_size,), generator=gen)]
        loss_d = -torch.nn.functional.logsigmoid(d[yt] - d[ys]).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
    return student_log_probs(mu, log_sigma, cfg.classes).detach()


def _generators(seed: int) -> list[torch.Generator]:
    """Independent streams for the teacher samples, SeqKD and GAD, all derived from `seed`."""
    states = [s.generate_state(1)[0] for s in np.random.SeedSequence(seed).spawn(3)]
    return [torch.Generator().manual_seed(int(s)) for s in states]


def run_toy(cfg: ToyConfig, seed: int) -> dict:
    """Train SeqKD and GAD on the same teacher samples; return the distributions and the metrics.

    Metrics per method M: `M/mode_mass` = sum_{k in mode_region} p_M(k), `M/forward_kl` = KL(p_T || p_M),
    `M/reverse_kl` = KL(p_M || p_T) (nats), and the student's `M/mean` and `M/std`.
    """
    torch.set_num_threads(1)
    g_teacher, g_seqkd, g_gad = _generators(seed)
    p_t = teacher_probs(cfg)
    samples = torch.multinomial(p_t, cfg.teacher_samples, replacement=True, generator=g_teacher)
    logs = {"seqkd": train_seqkd(cfg, samples, g_seqkd), "gad": train_gad(cfg, samples, g_gad)}
    region = mode_region(cfg)
    k = torch.arange(cfg.classes, dtype=torch.float64)
    log_t = p_t.log()
    metrics = {"teacher/mode_mass": float(p_t[region].sum())}
    for name, logp in logs.items():
        p = logp.exp()
        mean = float((p * k).sum())
        metrics |= {
            f"{name}/mode_mass": float(p[region].sum()),
            f"{name}/forward_kl": float((p_t * (log_t - logp)).sum()),
            f"{name}/reverse_kl": float((p * (logp - log_t)).sum()),
            f"{name}/mean": mean,
            f"{name}/std": float(((p * (k - mean) ** 2).sum()).sqrt()),
        }
    return {"classes": list(range(cfg.classes)), "teacher": p_t.tolist(),
            **{name: logp.exp().tolist() for name, logp in logs.items()},
            "mode_region": region, "metrics": metrics}


def write_toy_run(suite, out_root: Path) -> Path:
    """Run the toy for every seed of `suite` (a SuiteConfig with `toy` set); write toy.json and summary.json."""
    cfg: ToyConfig = suite.toy
    suite_dir = Path(out_root) / suite.name
    for seed in suite.seeds:
        result = run_toy(cfg, seed)
        run_dir = suite_dir / f"toy--s{seed}"
        atomic_write_json(run_dir / "toy.json", result)
        cell = {"ci_low": None, "ci_high": None, "n_valid": 1, "n_total": 1}
        atomic_write_json(run_dir / "summary.json", {
            "run_id": run_dir.name, "suite": suite.name, "student": "toy", "method": "toy", "seed": seed,
            "eval": {"toy": {key: {"mean": v, **cell} for key, v in result["metrics"].items()}},
            "selection": {"rule": "last", "checkpoint": cfg.steps,
                          "note": "final distributions after the last step of each method"},
            "budget": {}, "judge_usage": {}, "warnings": [], "departures": [],
        })
    return suite_dir
