"""Worked solutions to the exercises at the end of notebooks/flow.py (graded by genzoo/exercises/flow.py)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor


def coupling_inverse(z: Tensor, mask: Tensor, scale_shift: Callable) -> Tensor:
    # The forward left the kept entries alone, so z * mask IS x * mask: the conditioner can be run
    # again on exactly what it saw going forward, and gives the same s and t.
    z_kept = z * mask
    log_s, t = scale_shift(z_kept)
    # Forward: scale by e^s, then shift by t. Undo in reverse order: shift back, then scale by e^-s.
    # The (1 - mask) keeps the kept entries as they are (s and t are not zero there).
    return z_kept + (1 - mask) * (z - t) * torch.exp(-log_s)


def coupling_log_det(x: Tensor, mask: Tensor, scale_shift: Callable) -> Tensor:
    # Sorted kept-first, the Jacobian is block triangular: I for the kept entries, diag(e^s) for
    # the free ones (dz/dx of a free entry is e^s; t and s depend only on kept entries). Its
    # determinant is the product of e^s over the free entries, so log|det| = sum (1 - m) * s.
    log_s, _ = scale_shift(x * mask)
    return ((1 - mask) * log_s).flatten(1).sum(1)  # one per example: sum all but the batch dimension


def bits_per_dim(log_p: Callable[[Tensor], Tensor], k: Tensor) -> Tensor:
    # Dequantize: spread each level over its bin, y = (k + u) / 256 with u ~ U[0, 1).
    D = k[0].numel()
    y = (k + torch.rand_like(k)) / 256
    # log_p is a density of y; the density of k + u (bins of width 1) is p(y) / 256 per pixel.
    # With q(u | k) = 1, log P(k) >= E[log p(y) - D log 256], so one draw gives the bound's estimate.
    log_P = log_p(y) - D * math.log(256)
    return -log_P / (D * math.log(2))  # nats per image -> bits per dimension


SOLUTIONS = {
    "coupling_inverse": coupling_inverse,
    "coupling_log_det": coupling_log_det,
    "bits_per_dim": bits_per_dim,
}
