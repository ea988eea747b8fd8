"""run_lm_eval on a tiny local Qwen2 model with local YAML tasks; accuracy is checked against log-probs
computed here directly from the model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")

from gadbench.eval.lmeval import run_lm_eval  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "lmeval"


@pytest.fixture(scope="module")
def tiny_model():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    corpus = [p.read_text(errors="ignore") for p in sorted(Path(json.__file__).parent.glob("*.py"))]
    corpus += [p.read_text() for p in FIXTURES.glob("*.jsonl")]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return AutoModelForCausalLM.from_config(config).eval(), tok


def _expected_acc(model, tok) -> float:
    """Accuracy of argmax_choice sum log p(" " + choice | context), encoded as lm_eval's causal HFLM does."""
    correct = []
    for line in (FIXTURES / "mc.jsonl").read_text().splitlines():
        doc = json.loads(line)
        context = f"Question: {doc['question']}\nAnswer:"
        ctx = tok.encode(context, add_special_tokens=False)
        scores = []
        for choice in doc["choices"]:
            whole = tok.encode(context + " " + choice, add_special_tokens=False)
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([whole])).logits[0, :-1].float(), -1)
            scores.append(sum(logp[i - 1, whole[i]].item() for i in range(len(ctx), len(whole))))
        correct.append(max(range(len(scores)), key=scores.__getitem__) == doc["label"])
    return sum(correct) / len(correct)


def test_local_tasks_match_direct_logprobs(tiny_model, monkeypatch):
    model, tok = tiny_model
    monkeypatch.chdir(FIXTURES)  # the task YAMLs name their jsonl files relative to this folder
    out = run_lm_eval(model, tok, ["gadbench_mc", "gadbench_qa"], include_path=FIXTURES, limit=None, builtin_tasks=False)
    assert out["n-samples"]["gadbench_mc"]["effective"] == 6
    assert out["n-samples"]["gadbench_qa"]["effective"] == 4
    assert out["results"]["gadbench_mc"]["acc,none"] == pytest.approx(_expected_acc(model, tok))
    assert 0.0 <= out["results"]["gadbench_qa"]["exact_match,none"] <= 1.0
    json.dumps(out)  # plain data, storable in results


def test_limit_is_passed_through(tiny_model, monkeypatch):
    model, tok = tiny_model
    monkeypatch.chdir(FIXTURES)
    out = run_lm_eval(model, tok, ["gadbench_mc"], include_path=FIXTURES, limit=2, builtin_tasks=False)
    assert out["n-samples"]["gadbench_mc"]["effective"] == 2


def test_missing_lm_eval_names_the_extra(monkeypatch, tiny_model):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` raise ImportError
    with pytest.raises(RuntimeError, match=r"pip install gadbench\[lmeval\]"):
        run_lm_eval(*tiny_model, ["gadbench_mc"])
