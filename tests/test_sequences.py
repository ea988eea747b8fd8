"""The two layouts of gadbench.sequences compute the same numbers: whole sequences (`pack`) and prompt
groups whose prompt passes once (`group`), for log-probabilities, their gradients and D's scores."""

from __future__ import annotations

import pytest
import torch
from tinymodels import build_tiny_model

from gadbench.models import Discriminator, backbone_of
from gadbench.sequences import group, group_logprobs, pack, token_logprobs


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def model(request, tmp_path_factory):
    torch.manual_seed(0)
    m, tok = build_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param)
    return m.train(), tok


def _data(tok, repeats: int):
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, 1000, (n,), generator=g).tolist() for n in (7, 12, 3)]  # unequal lengths
    responses = [torch.randint(10, 1000, (n,), generator=g).tolist() + [tok.eos_token_id]
                 for n in (5, 1, 9, 4, 2, 6)[: 3 * repeats]]
    return prompts, responses


def _whole(prompts, responses, repeats, tok, model, temperature):
    """Per response: its token log-probs from the whole-sequence layout."""
    rows = [prompts[r // repeats] for r in range(len(responses))]
    packed = pack(rows, responses, tok.pad_token_id)
    lp = token_logprobs(model, packed, temperature)
    return [lp[r][packed.target_mask[r].bool()] for r in range(len(responses))]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_group_logprobs_equal_whole_sequence_logprobs_and_gradients(model, temperature):
    m, tok = model
    prompts, responses = _data(tok, repeats=2)
    m.zero_grad()
    whole = _whole(prompts, responses, 2, tok, m, temperature)
    sum(x.sum() for x in whole).backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    g = group(prompts, responses, 2, tok.pad_token_id)
    lp = group_logprobs(m, g, temperature)
    shared = [lp[r][g.response_mask[r].bool()] for r in range(len(responses))]
    for a, b in zip(whole, shared, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    lp.sum().backward()
    off = {n: gap for n, p in m.named_parameters()
           if (gap := float((p.grad - grads[n]).abs().max() / grads[n].abs().max())) > 1e-5}
    assert not off, f"gradients differ beyond float rounding (max |diff| / max |grad|): {off}"


def test_group_d_scores_equal_whole_sequence_scores(model):
    m, tok = model
    prompts, responses = _data(tok, repeats=2)
    d = Discriminator(backbone_of(m), m.config.hidden_size, seed=0).eval()
    rows = [prompts[r // 2] for r in range(len(responses))]
    whole = pack([p + r for p, r in zip(rows, responses, strict=True)], [[] for _ in rows], tok.pad_token_id)
    with torch.no_grad():
        a = d(whole.input_ids, whole.attention_mask)
        b = d.score_groups(group(prompts, responses, 2, tok.pad_token_id))
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_groups_need_the_same_number_of_responses_per_prompt(model):
    _, tok = model
    with pytest.raises(ValueError, match="are not 2 for each of 3 prompts"):
        group([[1], [2], [3]], [[4]] * 5, 2, tok.pad_token_id)
