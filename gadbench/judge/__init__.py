"""Judges: LLM protocols (gad-paper, mtbench-single, pairwise) over a ChatClient, offline judges (rouge-l,
embedding) and the synthetic world's gold judges, each a record of gadbench.judge.records (`JUDGES`; more with
`register_judge(JudgeRecord(...))`). Every judge maps JudgeItems to judgments; an LLM judge is
`LLMJudge(protocol, client)`, e.g. `LLMJudge(GadPaper(swap=True), client)`.
Over stored judgments: `gadbench.judge.controlled` (length- and style-controlled scores) and
`gadbench.judge.agreement` (position and judge agreement). Names below load on first use, so those two
modules (which the report reads) import without the LLM client.
"""

from importlib import import_module

_HOMES = {
    "JudgeRun": "engine", "judge": "engine", "reparse": "engine",
    "LLMJudge": "llm_judge", "EmbeddingJudge": "offline", "RougeLJudge": "offline",
    "GadPaper": "protocols", "LLMProtocol": "protocols", "Rating": "protocols",
    "MtBenchSingle": "protocols", "Pairwise": "protocols",
    "JUDGES": "records", "JudgeRecord": "records", "Metric": "records", "register_judge": "records",
    "Judge": "types", "JudgeItem": "types", "Judgment": "types",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'gadbench.judge' has no attribute {name!r}")
    return getattr(import_module(f"gadbench.judge.{_HOMES[name]}"), name)
