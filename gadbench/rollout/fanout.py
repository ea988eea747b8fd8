"""Process 0's generation requests answered by every process's engine: evaluation under colocated vLLM.

Process 0 alone evaluates (it judges and writes), but every process holds a rollout engine, and under FSDP a
shard of G that each push gathers from. While process 0 evaluates, the others wait in `serve`. Each
`generate` of process 0's `FanOutEngine` sends the request to all processes; every process generates for
every world-th prompt (the split of a training batch) with its own engine, and process 0 gathers the answers
back in prompt order. Seeds are fixed on process 0 before the request goes out (drawn from its RNG when the
caller gives none, as a single engine would draw them), so the answers do not depend on the process count.
`stop()` ends the others' wait.
"""

from __future__ import annotations

import torch

from gadbench import dist
from gadbench.rollout.base import Rollout


class FanOutEngine:
    """Process 0's engine during evaluation: `generate` as `RolloutEngine.generate`, answered by all processes."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, model, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int,
                 top_p: float = 1.0, seeds: list[int] | None = None) -> Rollout:
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        request = ([list(p) for p in prompts], n, temperature, max_new_tokens, top_p, [int(s) for s in seeds])
        dist.from_main(lambda: request)
        return _answer(self.engine, model, request)

    def stop(self) -> None:
        """Release the processes waiting in `serve`."""
        dist.from_main(lambda: None)


def serve(engine, model) -> None:
    """On the processes other than 0: answer process 0's requests with `engine` on `model` until it stops."""
    while (request := dist.from_main(lambda: None)) is not None:
        _answer(engine, model, request)


def _answer(engine, model, request) -> Rollout | None:
    """This process's share of `request` (prompts rank, rank + world, ...) generated, and on process 0 the
    whole Rollout, prompt-major in the request's order (None elsewhere)."""
    prompts, n, temperature, max_new_tokens, top_p, seeds = request
    mine = list(range(dist.rank(), len(prompts), dist.world()))
    roll = engine.generate(model, [prompts[i] for i in mine], n, temperature, max_new_tokens, top_p,
                           seeds=[seeds[i] for i in mine])
    parts = dist.gather_to_main((mine, roll))
    if parts is None:
        return None
    samples: dict[int, list] = {}
    for indices, part in parts:
        for j, local in enumerate(part.prompt_index):
            samples.setdefault(indices[local], []).append((part.response_ids[j], part.truncated[j], part.texts[j]))
    out = Rollout([], [], [], [])
    for i in range(len(prompts)):
        for ids, cut, text in samples.get(i, []):
            out.prompt_index.append(i)
            out.response_ids.append(ids)
            out.truncated.append(cut)
            out.texts.append(text)
    return out
