"""Worked solutions to the exercises at the end of notebooks/gan.py (graded by genzoo/exercises/gan.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def losses(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    # D is a logistic regression, real (label 1) against generated (label 0): its loss is -V, two
    # binary cross-entropies, one mean per batch. With sigma(a) the probability of "real",
    #   -log sigma(a) = log(1 + e^-a) = softplus(-a)   and   -log(1 - sigma(a)) = softplus(a).
    # Written with softplus they stay finite where D is sure: in float32 sigma(25) is exactly 1.
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    # G: not the minimax log(1 - sigma(D(G(z)))), flat where D rejects the samples, but
    # -log sigma(D(G(z))): G's samples labelled "real", the same fixed point with strong gradients.
    g_loss = F.softplus(-fake_logits).mean()
    return d_loss, g_loss


def spectral_norm(W: Tensor, u: Tensor, steps: int) -> Tensor:
    # Power iteration on W^T W: each half step multiplies by W^T or W and renormalises, so u and v
    # turn towards the top left and right singular vectors at the rate (sigma_2 / sigma_1)^2 per step.
    # Renormalising matters: without it the vectors grow like sigma_1^(2 steps) and overflow.
    for _ in range(steps):
        v = F.normalize(W.t() @ u, dim=0)  # (in,)
        u = F.normalize(W @ v, dim=0)  # (out,)
    # With unit u and v, u^T W v is the estimate of sigma_1 (Miyato et al. 2018, Algorithm 1): exact
    # when they are the singular vectors, below it otherwise. (Not the Frobenius norm ||W||_F,
    # sqrt(sum of every sigma_i^2), which is larger and would shrink W too much.)
    return u @ W @ v


def ring_modes(x: Tensor) -> tuple[float, float]:
    # The 8 centres on the unit circle, mode m at angle 2 pi m / 8.
    angle = torch.arange(8) * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1)  # (8, 2)
    # Each point's nearest centre, and whether it is within 3 std (3 x 0.05 = 0.15, a distance).
    distance, nearest = torch.cdist(x.float(), centres).min(dim=1)  # (n,), (n,)
    good = distance < 3 * 0.05
    # A mode is covered when at least n/32 high-quality points sit on it: a quarter of an even
    # share, so that a few stray points near a centre do not count as learning the mode.
    per_mode = torch.bincount(nearest[good], minlength=8)  # (8,)
    modes = int((per_mode >= len(x) / 32).sum())
    return modes, good.float().mean().item()  # the share of all points, not their count


SOLUTIONS = {
    "losses": losses,
    "spectral_norm": spectral_norm,
    "ring_modes": ring_modes,
}
