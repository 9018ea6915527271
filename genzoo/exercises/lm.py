"""The language-model notebook's exercises (``notebooks/lm.py``): top-k sampling, the causal mask,
bits per character.

- ``lm.top_k``: ``answer(logits (n, V), k) -> probs (n, V)``, the distribution top-k sampling draws
  from: softmax over the k largest logits of each row, zero elsewhere. Graded as a distribution
  (not by a draw) against ``torch.topk`` and a softmax of the values it returns.
- ``lm.causal_attention``: ``answer(q, k, v) -> (B, H, T, d)``, softmax(Q K^T / sqrt(d) + M) V with
  the causal mask M. Graded against a brute-force loop over positions t, each attending to s <= t.
- ``lm.bits_per_char``: ``answer(model, ids (B, T)) -> (B,)``, the bits per character of
  x_2 .. x_T given x_1 under a ``TransformerLM``. Graded against a loop that feeds the model each
  prefix x_1 .. x_t and scores x_{t+1} from its last position.

Each grader also computes the typical mistakes (k + 1 kept, no renormalisation, a mask off by one,
no shift of the targets, nats for bits, ...) and names the one an answer matches.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genzoo.exercises import mismatch


def _same(actual: Tensor, expected: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether ``actual`` has ``expected``'s shape and values (NaN where ``expected`` has NaN)."""
    if actual.shape != expected.shape:
        return False
    return bool(torch.allclose(actual.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True))


def _tensor(value: object, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    return value.detach()


# ---------------------------------------------------------------------------------------------
# lm.top_k


def top_k_probs(logits: Tensor, k: int) -> Tensor:
    """The independent computation: softmax of the k values torch.topk returns, put back in place."""
    values, indices = torch.topk(logits, k, dim=-1)  # (n, k) each
    return torch.zeros_like(logits).scatter(-1, indices, torch.softmax(values, dim=-1))


def grade_top_k(answer: Callable[[Tensor, int], Tensor]) -> str | None:
    generator = torch.Generator().manual_seed(0)
    logits = 2.0 * torch.randn(6, 20, generator=generator)  # continuous: no ties among the logits
    for k in (3, 1, 7, 20):
        given = logits.clone()
        probs = _tensor(answer(given, k), "the answer")
        if not torch.equal(given, logits):
            return "your function changed the logits it was given (an in-place edit); work on a copy"
        expected = top_k_probs(logits, k)
        if probs.shape != expected.shape:
            return f"for logits of shape {tuple(logits.shape)} return one probability per character, " \
                   f"shape {tuple(expected.shape)}; you returned {tuple(probs.shape)}"
        probs = probs.double()
        if not torch.isfinite(probs).all():
            return "your answer holds -inf or NaN: return probabilities (the softmax of the masked logits), " \
                   "not the masked logits themselves"
        if (probs < -1e-6).any():
            return "your answer holds negative probabilities: did you normalise the logits themselves " \
                   "instead of their exponentials (the softmax)?"
        kept = (probs > 1e-12).sum(dim=-1)  # (n,)
        if (kept != k).any():
            n = int(kept[(kept != k).nonzero()[0]])
            if n == k + 1:
                return f"with k = {k} you keep {n} characters, one too many: the cut-off is the k-th largest " \
                       "logit, topk(logits, k).values[:, -1:], and the logits below it are dropped"
            if n == k - 1:
                return f"with k = {k} you keep {n} characters, one too few: drop the logits below the k-th " \
                       "largest (`<`), not the k-th itself as well (`<=`)"
            return f"with k = {k} some row keeps {n} characters; top-k keeps exactly k"
        if not torch.equal(probs > 1e-12, expected > 0):
            return f"with k = {k} you keep the wrong characters: top-k keeps the k with the LARGEST logits"
        sums = probs.sum(dim=-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            return f"with k = {k} your probabilities sum to {sums.min():.3f}..{sums.max():.3f}, not 1: after " \
                   "cutting the tail, renormalise (softmax over the kept logits only)"
        problem = mismatch(probs, expected.double(), f"the distribution for k = {k}")
        if problem:
            return problem + "; the kept characters should have probabilities proportional to exp(logit)"
    return None


# ---------------------------------------------------------------------------------------------
# lm.causal_attention


def attention_loop(q: Tensor, k: Tensor, v: Tensor, reach: int = 0, scale: bool = True) -> Tensor:
    """Position by position: output t averages v_s over s <= t + reach, weighted by softmax of q_t . k_s.

    ``reach = 0`` is the causal mask (the independent computation); ``reach = -1`` hides the diagonal
    too and ``reach = 1`` lets t read t + 1, the two off-by-one mistakes. Positions with nothing to
    read give NaN.
    """
    T, d = q.shape[-2], q.shape[-1]
    out = torch.full_like(v, float("nan"))
    for t in range(T):
        last = min(t + reach, T - 1)
        if last < 0:
            continue
        scores = (q[..., t : t + 1, :] * k[..., : last + 1, :]).sum(-1)  # (B, H, last + 1)
        if scale:
            scores = scores / math.sqrt(d)
        weights = torch.softmax(scores, dim=-1)
        out[..., t, :] = (weights[..., None] * v[..., : last + 1, :]).sum(-2)
    return out


def grade_causal_attention(answer: Callable[[Tensor, Tensor, Tensor], Tensor]) -> str | None:
    generator = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, 7, 8, generator=generator, dtype=torch.float64).float()
    out = _tensor(answer(q.clone(), k.clone(), v.clone()), "the answer")
    expected = attention_loop(q, k, v)
    if _same(out, expected):
        return None
    if out.shape != expected.shape:
        return f"for q, k, v of shape {tuple(q.shape)} return {tuple(expected.shape)} (batch, heads, positions, " \
               f"features), got {tuple(out.shape)}"
    T = q.shape[-2]
    full = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v
    if _same(out, full):
        return "every position reads every other, later ones included: add the causal mask (-inf where s > t)"
    if torch.isnan(out[..., 0, :]).all() and _same(out[..., 1:, :], attention_loop(q, k, v, reach=-1)[..., 1:, :]):
        return "position 0 gets NaN and the others skip themselves: your mask hides the diagonal too; " \
               "position t must read s <= t, itself included (triu(1), not triu(0))"
    if _same(out[..., 1:, :], attention_loop(q, k, v, reach=-1)[..., 1:, :]):
        return "each position skips itself: your mask hides the diagonal too; t must read s <= t (triu(1), " \
               "not triu(0))"
    if _same(out, attention_loop(q, k, v, reach=1)):
        return "each position also reads the next one (t + 1): the mask is off by one (triu(1), not triu(2))"
    if _same(out, attention_loop(q, k, v, scale=False)):
        return "the mask is right but the scores are not divided by sqrt(d), the feature size per head"
    wrong_axis = torch.softmax(
        (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(
            torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")), dim=-2).nan_to_num() @ v
    if _same(out, wrong_axis):
        return "the softmax runs over the queries (dim=-2): each ROW t must sum to one over the keys s (dim=-1)"
    later = v.clone()
    later[..., -1, :] += 10.0  # change only the last position's value
    moved = _tensor(answer(q.clone(), k.clone(), later), "the answer")
    if not _same(moved[..., :-1, :], out[..., :-1, :]):
        return "changing the LAST position's value changes earlier outputs: earlier positions read later " \
               "ones, so the mask is missing or wrong"
    return mismatch(out, expected, "the attention output")


# ---------------------------------------------------------------------------------------------
# lm.bits_per_char


def small_model(seed: int = 0):
    """A tiny TransformerLM with large random weights, so that its predictions are far from uniform."""
    from genzoo.models.transformer import TransformerConfig, TransformerLM

    torch.manual_seed(seed)
    vocab = "abcdefghijklmnop"
    model = TransformerLM(TransformerConfig(n_layer=1, n_head=2, n_embd=16, block_size=16,
                                            vocab_size=len(vocab)), vocab).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    return model


def bits_per_char_loop(model, ids: Tensor) -> Tensor:
    """Prefix by prefix: -sum_t log p(x_{t+1} | x_1 .. x_t) / ((T - 1) ln 2), the model fed x_1 .. x_t each time."""
    B, T = ids.shape
    nats = torch.zeros(B, dtype=torch.float64)
    with torch.no_grad():
        for t in range(1, T):
            logits = model(ids[:, :t])[:, -1]  # (B, V): the prediction after x_1 .. x_t
            nats -= F.log_softmax(logits.double(), dim=-1).gather(1, ids[:, t : t + 1]).squeeze(1)
    return nats / ((T - 1) * math.log(2))


def grade_bits_per_char(answer: Callable) -> str | None:
    model = small_model()
    ids = torch.randint(model.cfg.vocab_size, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = answer(model, ids.clone())
    out = torch.as_tensor(_tensor(out, "the answer") if isinstance(out, Tensor) else out, dtype=torch.float64)
    expected = bits_per_char_loop(model, ids)
    if _same(out, expected):
        return None
    B, T = ids.shape
    if out.shape != expected.shape:
        return f"return one number per sequence, shape ({B},); you returned shape {tuple(out.shape)}"
    with torch.no_grad():
        own = F.log_softmax(model(ids).double(), dim=-1).gather(-1, ids[..., None]).squeeze(-1)  # (B, T)
    if _same(out, -own.sum(1) / (T * math.log(2))) or _same(out, -own[:, 1:].sum(1) / ((T - 1) * math.log(2))) \
            or _same(out, -own[:, :-1].sum(1) / ((T - 1) * math.log(2))):
        return "each position scored the character it has just read: the logits at t predict x_{t+1}, so feed " \
               "ids[:, :-1] and score ids[:, 1:]"
    if _same(out, -expected):
        return "the sign is flipped: bits per character is MINUS the log-probability, a positive number"
    if _same(out, expected * math.log(2)):
        return "that is nats per character: divide by ln 2 to get bits"
    if _same(out, expected / math.log(2)):
        return "you converted to bits twice (log2, then a division by ln 2): do one or the other"
    if _same(out, expected * (T - 1) / T):
        return f"you divided by T = {T}, but T characters give T - 1 = {T - 1} predictions (x_1 has none)"
    if _same(out, expected * (T - 1) * math.log(2)) or _same(out, expected * (T - 1)):
        return "that is the total over the sequence: divide by the T - 1 predictions to get a per-character number"
    return mismatch(out, expected, "bits per character")


GRADERS = {
    "top_k": grade_top_k,
    "causal_attention": grade_causal_attention,
    "bits_per_char": grade_bits_per_char,
}
