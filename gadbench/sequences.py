"""Packing (prompt, response) token lists into right-padded tensors, and per-token log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Packed:
    """Right-padded sequences. `target_mask[b, j]` is 1 when input_ids[b, j+1] is a response token."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_mask: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def slice(self, start: int, stop: int) -> Packed:
        return Packed(self.input_ids[start:stop], self.attention_mask[start:stop], self.target_mask[start:stop])

    @property
    def response_tokens(self) -> int:
        return int(self.target_mask.sum())


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device="cpu") -> Packed:
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(lengths), width), dtype=torch.long)
    tmask = torch.zeros((len(lengths), width - 1), dtype=torch.long)
    for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        ids[b, : len(p) + len(r)] = torch.tensor(p + r)
        attn[b, : len(p) + len(r)] = 1
        tmask[b, len(p) - 1 : len(p) + len(r) - 1] = 1
    return Packed(ids.to(device), attn.to(device), tmask.to(device))


def token_logprobs(model, packed: Packed, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / T)[input_ids[:, j+1]] at position j: [B, T-1], grad flows if enabled.

    T is the sampling temperature, so these are the log-probabilities of the policy that drew the rollouts
    (as verl and TRL compute them for the PPO ratio and the KL term); T = 1, or T <= 0 (greedy rollouts),
    gives the model's own.
    Only positions from the earliest response target on are computed (the LM head runs on those alone);
    earlier positions hold 0, and every position under `target_mask` is exact.
    """
    first = int(packed.target_mask.any(dim=0).float().argmax())
    keep = packed.input_ids.shape[1] - first
    logits = model(input_ids=packed.input_ids, attention_mask=packed.attention_mask, logits_to_keep=keep).logits
    targets = packed.input_ids[:, first + 1 :]
    scale = 1.0 / temperature if temperature > 0 else 1.0
    lp = torch.log_softmax(logits[:, :-1].float() * scale, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return torch.nn.functional.pad(lp, (first, 0))


def micro_batches(n: int, size: int):
    """(start, stop) ranges covering range(n) in chunks of `size` (one chunk when size is 0)."""
    size = size or n
    return [(s, min(s + size, n)) for s in range(0, n, size)]
