"""Typical wrong answers to the language-model notebook's exercises; each grader must refuse every one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


# lm.top_k --------------------------------------------------------------------------------------


def top_k_keeps_k_plus_one(logits: Tensor, k: int) -> Tensor:
    kth = torch.topk(logits, min(k + 1, logits.shape[-1]), dim=-1).values[..., -1:]  # the (k+1)-th
    return torch.softmax(logits.masked_fill(logits < kth, float("-inf")), dim=-1)


def top_k_not_renormalised(logits: Tensor, k: int) -> Tensor:
    probs = torch.softmax(logits, dim=-1)  # the softmax over all V, then the tail cut: sums to < 1
    kth = torch.topk(probs, k, dim=-1).values[..., -1:]
    return probs.masked_fill(probs < kth, 0.0)


def top_k_from_logits(logits: Tensor, k: int) -> Tensor:
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    kept = logits.masked_fill(logits < kth, 0.0)  # the logits normalised as if they were probabilities
    return kept / kept.sum(dim=-1, keepdim=True)


def top_k_keeps_the_smallest(logits: Tensor, k: int) -> Tensor:
    kth = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
    return torch.softmax(logits.masked_fill(logits > kth, float("-inf")), dim=-1)


def top_k_returns_masked_logits(logits: Tensor, k: int) -> Tensor:
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


# lm.causal_attention ----------------------------------------------------------------------------


def _attention(q: Tensor, k: Tensor, v: Tensor, diagonal: int | None, scale: bool = True, dim: int = -1) -> Tensor:
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if diagonal is not None:
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(diagonal), float("-inf"))
    return torch.softmax(scores, dim=dim) @ v


def attention_without_mask(q, k, v):
    return _attention(q, k, v, diagonal=None)


def attention_mask_hides_the_diagonal(q, k, v):
    return _attention(q, k, v, diagonal=0)  # triu(0): position 0 reads nothing (NaN)


def attention_mask_reads_one_ahead(q, k, v):
    return _attention(q, k, v, diagonal=2)


def attention_without_scaling(q, k, v):
    return _attention(q, k, v, diagonal=1, scale=False)


def attention_softmax_over_queries(q, k, v):
    return _attention(q, k, v, diagonal=1, dim=-2).nan_to_num()


# lm.bits_per_char --------------------------------------------------------------------------------


def bits_without_the_shift(model, ids: Tensor) -> Tensor:
    log_p = F.log_softmax(model(ids), dim=-1).gather(-1, ids[..., None]).squeeze(-1)  # scores x_t at t
    return -log_p.sum(dim=1) / (ids.shape[1] * math.log(2))


def nats_not_bits(model, ids: Tensor) -> Tensor:
    log_p = F.log_softmax(model(ids[:, :-1]), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return -log_p.sum(dim=1) / (ids.shape[1] - 1)


def bits_divided_by_t(model, ids: Tensor) -> Tensor:
    log_p = F.log_softmax(model(ids[:, :-1]), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return -log_p.sum(dim=1) / (ids.shape[1] * math.log(2))


def bits_for_the_whole_batch(model, ids: Tensor) -> Tensor:
    log_p = F.log_softmax(model(ids[:, :-1]), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return -log_p.mean() / math.log(2)  # one number, not one per sequence


MISTAKES = {
    "top_k": [top_k_keeps_k_plus_one, top_k_not_renormalised, top_k_from_logits, top_k_keeps_the_smallest,
              top_k_returns_masked_logits],
    "causal_attention": [attention_without_mask, attention_mask_hides_the_diagonal, attention_mask_reads_one_ahead,
                         attention_without_scaling, attention_softmax_over_queries],
    "bits_per_char": [bits_without_the_shift, nats_not_bits, bits_divided_by_t, bits_for_the_whole_batch],
}
