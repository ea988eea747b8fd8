"""Judges: LLM protocols (gad-paper, mtbench-single, pairwise) over a ChatClient, and offline judges
(rouge-l, embedding). Every judge maps JudgeItems to Judgments; `get_judge(name, **kwargs)` builds one.

LLM judges take `client=` plus the protocol's options, e.g. `get_judge("gad-paper", client=c, swap=True)`.
Register more (e.g. the synthetic world's gold judge) with `register_judge(name, factory)`.
Over stored judgments: `gadbench.judge.controlled` (length- and style-controlled scores) and
`gadbench.judge.agreement` (position and judge agreement). Names below load on first use, so those two
modules (which the report reads) import without the LLM client.
"""

from importlib import import_module

_HOMES = {
    "aggregate": "aggregation", "JudgeRun": "engine", "judge": "engine", "reparse": "engine",
    "LLMJudge": "llm_judge", "EmbeddingJudge": "offline", "RougeLJudge": "offline",
    "PROTOCOLS": "protocols", "GadPaper": "protocols", "LLMProtocol": "protocols",
    "MtBenchSingle": "protocols", "Pairwise": "protocols",
    "available_judges": "registry", "get_judge": "registry", "register_judge": "registry",
    "Judge": "types", "JudgeItem": "types", "Judgment": "types",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'gadbench.judge' has no attribute {name!r}")
    return getattr(import_module(f"gadbench.judge.{_HOMES[name]}"), name)
