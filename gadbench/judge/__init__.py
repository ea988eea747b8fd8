"""Judges: LLM protocols (gad-paper, mtbench-single, pairwise) over a ChatClient, and offline judges
(rouge-l, embedding). Every judge maps JudgeItems to Judgments; `get_judge(name, **kwargs)` builds one.

LLM judges take `client=` plus the protocol's options, e.g. `get_judge("gad-paper", client=c, swap=True)`.
Register more (e.g. the synthetic world's gold judge) with `register_judge(name, factory)`.
Over stored judgments: `gadbench.judge.controlled` (length- and style-controlled scores) and
`gadbench.judge.agreement` (position and judge agreement); import them from there (they load scikit-learn
and scipy).
"""

from gadbench.judge.aggregate import aggregate
from gadbench.judge.engine import JudgeRun, judge, reparse
from gadbench.judge.llm_judge import LLMJudge
from gadbench.judge.offline import EmbeddingJudge, RougeLJudge
from gadbench.judge.protocols import PROTOCOLS, GadPaper, LLMProtocol, MtBenchSingle, Pairwise
from gadbench.judge.registry import available_judges, get_judge, register_judge
from gadbench.judge.types import Judge, JudgeItem, Judgment

for _name, _cls in PROTOCOLS.items():
    register_judge(_name, lambda client, _cls=_cls, **options: LLMJudge(_cls(**options), client))
register_judge("rouge-l", RougeLJudge)
register_judge("embedding", EmbeddingJudge)

__all__ = [
    "EmbeddingJudge", "GadPaper", "Judge", "JudgeItem", "JudgeRun", "Judgment", "LLMJudge", "LLMProtocol",
    "MtBenchSingle", "Pairwise", "RougeLJudge", "aggregate", "available_judges", "get_judge", "judge",
    "register_judge", "reparse",
]
