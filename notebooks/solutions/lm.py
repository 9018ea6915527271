"""Worked solutions to the exercises at the end of ``notebooks/lm.py`` (graded by ``genzoo/exercises/lm.py``).

Try them yourself first: ``check("lm.top_k", my_top_k)`` in the notebook says what is wrong with an answer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def top_k(logits: Tensor, k: int) -> Tensor:
    """The distribution top-k sampling draws from: softmax over each row's k largest logits, 0 elsewhere."""
    # The k-th largest logit of each row is the cut-off; every logit below it gets -inf, so its
    # exp(-inf) = 0 drops out of the softmax, which renormalises over the k that are left.
    # (`<` keeps exactly k when the logits have no ties; `<=` would keep k - 1.)
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (n, 1)
    masked = logits.masked_fill(logits < kth, float("-inf"))  # a new tensor: the input is left alone
    return torch.softmax(masked, dim=-1)  # (n, V); draw with torch.multinomial(probs, 1)


def causal_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(Q K^T / sqrt(d) + M) V for q, k, v (B, H, T, d), M = -inf above the diagonal."""
    # Row t of the score matrix holds q_t . k_s for every key s. The mask must hide s > t only:
    # triu(1) is strictly above the diagonal, so each position still reads itself (position 0
    # reads only itself). The softmax runs along the keys (the last axis): each row sums to one.
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)  # True where s > t
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return weights @ v  # (B, H, T, d)


def bits_per_char(model, ids: Tensor) -> Tensor:
    """(B,) bits per character of x_2 .. x_T given x_1: -log2 p(x_2 .. x_T | x_1) / (T - 1)."""
    # The logits at position t predict x_{t+1}: feed x_1 .. x_{T-1}, score x_2 .. x_T (the shift
    # by one the training targets make). T characters give T - 1 predictions; x_1 has none, as the
    # model has no start token. Nats become bits by dividing by ln 2.
    logits = model(ids[:, :-1])  # (B, T-1, V)
    log_p = F.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1) nats
    return -log_p.sum(dim=1) / ((ids.shape[1] - 1) * math.log(2))  # (B,)


SOLUTIONS = {"top_k": top_k, "causal_attention": causal_attention, "bits_per_char": bits_per_char}
