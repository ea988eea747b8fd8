"""Build a judge by name for a suite: offline judges directly, LLM protocols over the suite's endpoint."""

from __future__ import annotations

from pathlib import Path

from gadbench.config import JudgeConfig


def make_judge(name: str, cfg: JudgeConfig, cache_dir: Path):
    if name == "rouge-l":
        from gadbench.judge.offline import RougeLJudge

        return RougeLJudge()
    if name == "embedding":
        from gadbench.judge.offline import EmbeddingJudge

        return EmbeddingJudge()
    raise ValueError(f"unknown judge `{name}`; use gold, rouge-l, embedding, gad-paper, mtbench-single or pairwise.")
