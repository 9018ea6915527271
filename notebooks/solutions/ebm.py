"""Worked solutions to the exercises at the end of notebooks/ebm.py (graded by genzoo/exercises/ebm.py)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

Energy = Callable[[Tensor], Tensor]  # (B, D) -> (B,)


def langevin_step(energy: Energy, x: Tensor, step_size: float, z: Tensor) -> Tensor:
    # Langevin dynamics needs only grad_x E: the gradient of the energy w.r.t. the *input*, which
    # autograd gives once x requires a gradient. Differentiate the sum of the batch's energies: each
    # point's energy depends on that point alone, so the sum's gradient holds every point's own gradient.
    x = x.detach().requires_grad_(True)  # a copy in the graph; the caller's x is left alone
    (grad,) = torch.autograd.grad(energy(x).sum(), x)
    # Downhill (minus the gradient) by step_size, plus noise of variance 2 step_size: that balance of
    # drift and noise is what makes exp(-E) the distribution the chain settles into (for small steps).
    return x.detach() - step_size * grad + math.sqrt(2 * step_size) * z


def stationary_variance(step_size: float, noise: float, variance: float) -> float:
    # On E(x) = x^2 / (2 variance), grad E = x / variance, so one step is linear:
    #     x <- (1 - step/variance) x + noise z = a x + noise z.
    # A Gaussian stays Gaussian, and at the fixed point its variance V satisfies V = a^2 V + noise^2.
    # With noise = sqrt(2 step) and a small step this is ~variance (the target); in general it is
    # ~T * variance with T = noise^2 / (2 step), plus the step's own bias (exact here, not approximated).
    a = 1 - step_size / variance
    return noise**2 / (1 - a**2)


def contrastive_loss(energy: Energy, x_pos: Tensor, x_neg: Tensor, alpha: float) -> Tensor:
    # Du & Mordatch 2019, sec. 2.2: lower the energy of data, raise that of the model's own samples.
    # x_neg are held fixed (they come from SGLD), but E(x_neg) keeps its gradient w.r.t. the weights.
    e_pos, e_neg = energy(x_pos), energy(x_neg)
    cd = e_pos.mean() - e_neg.mean()
    # sec. 3: the contrastive term only sees differences of energies; the mean *squared* energy of
    # each set pins every energy near 0, so they cannot run away together.
    reg = (e_pos**2).mean() + (e_neg**2).mean()
    return cd + alpha * reg


SOLUTIONS = {
    "langevin_step": langevin_step,
    "stationary_variance": stationary_variance,
    "contrastive_loss": contrastive_loss,
}
