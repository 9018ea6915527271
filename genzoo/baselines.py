"""The simplest model of each kind of data, which every notebook measures before its family's own.

A learner sees what a family adds only beside what almost nothing achieves on the same split:

- **text**: a bigram table, p(next character | this character), counted on the training text with
  add-alpha smoothing (alpha = 1/2, the Krichevsky-Trofimov estimator); its cross-entropy on the validation text in nats per character;
- **8-bit images**: every pixel independent, each with its own histogram over the 256 levels counted
  on the training images (add-alpha smoothed); its exact likelihood of the test images in bits/dim,
  the same units as every image family's ``log_prob``.

Both are exact likelihoods of discrete data, so they are directly comparable with the families' numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LEVELS = 256  # grey levels of an 8-bit pixel


def bigram_log_probs(train: Tensor, vocab_size: int, alpha: float = 0.5) -> Tensor:
    """log p(b | a) as a (vocab, vocab) table counted from the token ids ``train`` (1-D), add-alpha smoothed."""
    counts = torch.full((vocab_size, vocab_size), float(alpha))
    pairs = train[:-1].long() * vocab_size + train[1:].long()
    counts.view(-1).index_add_(0, pairs, torch.ones(len(pairs)))
    return counts.log() - counts.sum(dim=1, keepdim=True).log()


def bigram_window_nats(train: Tensor, windows: Tensor, vocab_size: int, alpha: float = 0.5) -> Tensor:
    """(N,) mean -log p(x_t | x_{t-1}) in nats per predicted character of each window (N, T) of token ids."""
    table = bigram_log_probs(train, vocab_size, alpha)
    return -table[windows[:, :-1].long(), windows[:, 1:].long()].mean(dim=1)


def bigram_nats_per_char(train: Tensor, val: Tensor, vocab_size: int, alpha: float = 0.5) -> float:
    """Cross-entropy of the bigram table on ``val``: -1/(n-1) sum_t log p(val_t | val_{t-1}), in nats."""
    table = bigram_log_probs(train, vocab_size, alpha)
    return -table[val[:-1].long(), val[1:].long()].mean().item()


def pixel_histograms(train_levels: Tensor, alpha: float = 0.5) -> Tensor:
    """log p_d(level) for every pixel d: (C, H, W, 256) from uint8 images (N, C, H, W), add-alpha smoothed."""
    flat = train_levels.long().flatten(1)  # (N, D)
    counts = torch.full((flat.shape[1], LEVELS), float(alpha))
    counts.scatter_add_(1, flat.T, torch.ones(flat.T.shape))
    log_p = counts.log() - counts.sum(dim=1, keepdim=True).log()
    return log_p.view(*train_levels.shape[1:], LEVELS)


def independent_pixels_nats(train_levels: Tensor, test_levels: Tensor, alpha: float = 0.5) -> Tensor:
    """(N,) -log p(x) in nats of each of ``test_levels`` under per-pixel histograms of ``train_levels``
    (both uint8, (N, C, H, W)): -sum_d log p_d(x_d)."""
    log_p = pixel_histograms(train_levels, alpha).flatten(0, -2)  # (D, 256)
    flat = test_levels.long().flatten(1)  # (N, D)
    return -log_p.gather(1, flat.T).sum(0)  # (N,)


def independent_pixels_bits_per_dim(train_levels: Tensor, test_levels: Tensor, alpha: float = 0.5) -> float:
    """bits/dim of ``test_levels`` under per-pixel histograms of ``train_levels``: -sum_d log p_d(x_d) / (D ln 2),
    averaged over the test images."""
    nll = independent_pixels_nats(train_levels, test_levels, alpha)
    return nll.mean().item() / (test_levels[0].numel() * math.log(2))
