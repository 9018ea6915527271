"""Likelihood numbers that mean the same for every family.

``log_prob`` returns nats per example of the *discrete* data (8-bit images or token sequences), so
bits per dimension is one formula for all: bits/dim = -log p(x) / (D · ln 2), with D = pixels
(784 for MNIST) or predicted characters.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable

import torch
from torch import Tensor

from genzoo.model import GenerativeModel


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nll_nats / (dims * math.log(2))


def heldout_nll(
    model: GenerativeModel, batches: Iterable[tuple[Tensor, Tensor]], **log_prob_options: Any
) -> dict[str, float]:
    """Mean negative log-likelihood (nats per example) of ``model`` over every batch, and bits/dim.

    For images the dimension count is the pixels per image; for token sequences it is the number of
    predicted tokens per sequence (all but the first, which ``log_prob`` conditions on).
    """
    device = model.device
    total_nats, examples, dims, started = 0.0, 0, 0, time.perf_counter()
    for x, _ in batches:
        x = x.to(device)
        with torch.no_grad():
            total_nats -= float(model.log_prob(x, **log_prob_options).sum())
        examples += len(x)
        dims = x[0].numel() if x.is_floating_point() else x.shape[1] - 1
    nll = total_nats / examples
    return {
        "nll_nats": nll,
        "bits_per_dim": bits_per_dim(nll, dims),
        "examples": examples,
        "seconds": time.perf_counter() - started,
    }
