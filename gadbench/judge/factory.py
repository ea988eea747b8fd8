"""Build a suite's judges by name: offline judges directly, LLM protocols over one cached ChatClient."""

from __future__ import annotations

from pathlib import Path

from gadbench.config import JudgeConfig
from gadbench.judge import PROTOCOLS, get_judge


def make_judge(name: str, cfg: JudgeConfig, cache_dir: Path):
    """A Judge; LLM protocols share the SQLite cache `cache_dir/judge.sqlite` (keyed by model, protocol
    version, messages and decoding parameters), so re-runs never pay twice. `cfg.max_tokens` caps every
    judge reply (the judge's own reference answers of gad-paper are not capped); `cfg.guided` constrains the
    verdict replies to the protocol's choices."""
    if name not in PROTOCOLS:
        return get_judge(name)
    from gadbench.llm.client import ChatClient

    client = ChatClient(cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                        cache_path=Path(cache_dir) / "judge.sqlite", price_per_mtok=cfg.price_per_mtok or None)
    return get_judge(name, client=client, max_tokens=cfg.max_tokens, guided=cfg.guided)
