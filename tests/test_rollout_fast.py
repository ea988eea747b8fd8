"""The hf engine's decoding path (gadbench/rollout/hf.py, cpu_attention.py) on a real tiny model: the same greedy
tokens and the same fp32 samples as the plain path (`fast=False`: one `generate` over all rows, the model's own
attention, the caller's autocast), samples that do not depend on batching or padding, each prompt's shared KV
cache equal to its own unpadded forward, packed attention equal to SDPA's, and the Rollout contract."""

from __future__ import annotations

import pytest
import torch
from tinymodels import build_tiny_model
from transformers import DynamicCache

from gadbench.models import prompt_ids
from gadbench.rollout.base import decode_response
from gadbench.rollout.cpu_attention import NAME, packed_attention
from gadbench.rollout.hf import HFRolloutEngine, shared_prompt_cache
from gadbench.worlds import student, synthetic


@pytest.fixture(scope="module", autouse=True)
def _threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny Qwen2 with the world's word-level tokenizer (it ends some answers within a few tokens), 2 query
    heads sharing 1 key/value head, and world prompts of different lengths."""
    tok = student.build_tokenizer()
    model, _ = build_tiny_model(tmp_path_factory.mktemp("student"), tokenizer=tok, heads=2)
    prompts = [prompt_ids(tok, p.prompt, "chat") for p in synthetic.sample_problems(8, "id", seed=7)]
    assert len({len(p) for p in prompts}) > 2, "the prompts must need padding"
    assert model.config.num_attention_heads > model.config.num_key_value_heads
    return model.eval(), tok, prompts


def _equal_length(prompts: list[list[int]]) -> list[list[int]]:
    """The prompts cut to a common length from the left (a batch without padding, so without an attention mask)."""
    width = min(map(len, prompts))
    return [p[-width:] for p in prompts]


def _generate(engine, model, prompts, n, temperature, max_new, seeds=None, bf16=False):
    """As the trainer calls it: under bf16 autocast in a bf16 run."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return engine.generate(model, prompts, n, temperature, max_new, seeds=seeds)


def check_contract(roll, tok, n_prompts: int, n: int, max_new: int) -> None:
    eos = tok.eos_token_id
    assert roll.prompt_index == [i for i in range(n_prompts) for _ in range(n)]
    assert len(roll.response_ids) == len(roll.truncated) == len(roll.texts) == n_prompts * n
    for ids, cut, text in zip(roll.response_ids, roll.truncated, roll.texts, strict=True):
        assert len(ids) <= max_new
        if cut:
            assert eos not in ids and len(ids) == max_new
        else:
            assert ids[-1] == eos and eos not in ids[:-1]
        assert text == decode_response(tok, ids)


@pytest.mark.parametrize(("dtype", "n"), [(None, 1), (None, 3), (torch.bfloat16, 1)],
                         ids=["fp32", "fp32-n3", "bf16-copy"])
@pytest.mark.parametrize("padded", [True, False], ids=["padded", "equal-length"])
def test_greedy_tokens_equal_the_plain_path(setup, dtype, padded, n):
    """Evaluation's case (one answer per prompt) in both precisions, n > 1 (a shared prompt cache) in fp32. With a
    bf16 copy and n > 1 the last prompt token runs as a one-token step of its own, which rounds differently, and
    answers may part from the plain path's (on this model: 3 equal-length prompts x 3, from the 11th token)."""
    model, tok, prompts = setup
    prompts = prompts if padded else _equal_length(prompts)
    bf16 = dtype is not None
    fast = _generate(HFRolloutEngine(tok, dtype=dtype), model, prompts, n, 0.0, 24, bf16=bf16)
    plain = _generate(HFRolloutEngine(tok, dtype=dtype, fast=False), model, prompts, n, 0.0, 24, bf16=bf16)
    check_contract(fast, tok, len(prompts), n, 24)
    assert fast.response_ids == plain.response_ids
    assert (fast.truncated, fast.texts) == (plain.truncated, plain.texts)
    assert len({tuple(r) for r in fast.response_ids}) > 1  # the prompts give different answers


def test_fp32_samples_equal_the_plain_path(setup):
    """In fp32 the shared prompt cache and the LM head's contiguous input round no differently enough to move a
    draw: the samples are the plain path's (bf16 ones may differ: see gadbench/rollout/hf.py)."""
    model, tok, prompts = setup
    seeds = [5, 6, 7, 8, 9, 10, 11, 12]
    fast = HFRolloutEngine(tok).generate(model, prompts, 4, 1.0, 24, seeds=seeds)
    plain = HFRolloutEngine(tok, fast=False).generate(model, prompts, 4, 1.0, 24, seeds=seeds)
    assert fast.response_ids == plain.response_ids
    assert len({tuple(r) for r in fast.response_ids[:4]}) > 1  # a prompt's samples differ


def test_samples_do_not_depend_on_batching_or_padding(setup):
    """fp32. In bf16 a batch's padding width moves rounding enough to change a draw now and then, on either path
    (on this model 1 of 20 samples differed between rollout.batch_size 0 and 2, fast or plain)."""
    model, tok, prompts = setup
    engine = HFRolloutEngine(tok)
    seeds = [11, 22, 33, 44, 55]
    batch = engine.generate(model, prompts[:5], 4, 1.0, 16, seeds=seeds)
    check_contract(batch, tok, 5, 4, 16)
    alone = engine.generate(model, [prompts[2]], 4, 1.0, 16, seeds=[33])  # no padding at all
    assert alone.response_ids == batch.response_ids[8:12]
    reordered = engine.generate(model, [prompts[3], prompts[2], prompts[0]], 4, 1.0, 16, seeds=[44, 33, 11])
    assert reordered.response_ids == batch.response_ids[12:16] + batch.response_ids[8:12] + batch.response_ids[0:4]
    for size in (2, 3):  # sequences per generate call; with 3 a prompt's samples are split over two calls
        chunked = HFRolloutEngine(tok, batch_size=size).generate(model, prompts[:5], 4, 1.0, 16, seeds=seeds)
        assert chunked.response_ids == batch.response_ids and chunked.prompt_index == batch.prompt_index, size
    other = engine.generate(model, [prompts[2]], 4, 1.0, 16, seeds=[34])
    assert other.response_ids != alone.response_ids
    assert any(batch.truncated) and not all(batch.truncated)


def test_eos_as_the_last_allowed_token(setup):
    """Greedy: at a limit equal to a finished answer's length the answer is finished (EOS last); one token less
    cuts it (truncated)."""
    model, tok, prompts = setup
    engine = HFRolloutEngine(tok)
    full = engine.generate(model, prompts, 2, 0.0, 24)
    ends = {i: len(r) for i, (r, cut) in enumerate(zip(full.response_ids, full.truncated, strict=True)) if not cut}
    assert any(k > 1 for k in ends.values()), "the model should finish some answers within 24 tokens"
    for max_new in sorted({1, *ends.values(), *(k - 1 for k in ends.values() if k > 1)}):
        roll = engine.generate(model, prompts, 2, 0.0, max_new)
        check_contract(roll, tok, len(prompts), 2, max_new)
        assert all(roll.truncated[i] == (max_new < k) for i, k in ends.items())
        assert all(r == full.response_ids[i][:max_new] for i, r in enumerate(roll.response_ids))


def test_shared_prompt_cache_equals_each_prompts_own_forward(setup):
    """Keys and values of every prompt's first W - 1 tokens, left-padded in a batch and repeated n times, equal
    those of the prompt run alone without padding (positions restart at each prompt's first token)."""
    model, tok, prompts = setup
    prompts, n = prompts[:4], 3
    width = max(map(len, prompts))
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        (key, cache), = shared_prompt_cache(model, ids, attn, torch.arange(len(prompts)).repeat_interleave(n)).items()
        for i, p in enumerate(prompts):
            own = DynamicCache(config=model.config)
            model(input_ids=torch.tensor([p[:-1]]), use_cache=True, **{key: own})
            for layer, mine in zip(cache.layers, own.layers, strict=True):
                for j in range(n):
                    row = i * n + j
                    for got, want in ((layer.keys, mine.keys), (layer.values, mine.values)):
                        got = got[row, :, width - len(p):]
                        gap = (got - want[0]).abs().max().item()
                        assert got.shape == want[0].shape and gap < 1e-5, (i, j, gap)


def test_packed_attention_equals_sdpa_and_is_restored(setup):
    """A bf16 CPU model inside `packed_attention`: the logits of a one-token step without a mask equal SDPA's
    within bf16 rounding (both against an fp32 reference), and the model gets SDPA back afterwards."""
    model, tok, prompts = setup
    low = HFRolloutEngine(tok, dtype=torch.bfloat16).generator_for(model)
    ids = torch.tensor(_equal_length(prompts))  # no padding: the step has no mask

    def last_step_logits(m):
        cache = DynamicCache(config=m.config)
        with torch.no_grad():
            m(input_ids=ids[:, :-1], use_cache=True, cache=cache)
            return m(input_ids=ids[:, -1:], use_cache=True, cache=cache).logits[:, -1].float()

    reference = last_step_logits(model)
    sdpa = last_step_logits(low)
    with packed_attention(low):
        assert low.config._attn_implementation == NAME
        packed = last_step_logits(low)
    assert low.config._attn_implementation == "sdpa"
    scale = reference.abs().max().item()
    for got in (sdpa, packed):
        gap = (got - reference).abs().max().item()
        assert gap < 0.05 * scale, (gap, scale)
    assert (packed - sdpa).abs().max().item() < 0.05 * scale
    with packed_attention(model):  # fp32: not applied
        assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(("value", "fast"), [("true", True), ("false", False)])
def test_rollout_hf_fast_chooses_the_path(setup, value, fast):
    from gadbench.rollout import make_engine
    from gadbench.suite import get_suite, runs_of

    spec = next(iter(runs_of(get_suite("smoke", [f"rollout.hf_fast={value}", "train.precision=bf16"]))))
    engine = make_engine(spec, setup[1])
    assert (engine.fast, engine.dtype) == (fast, torch.bfloat16)
