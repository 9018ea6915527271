"""Worked solutions to the exercises at the end of notebooks/ddpm.py (graded by genzoo/exercises/ddpm.py)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genzoo.models.ddpm import NoiseSchedule


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    # Ho et al. 2020, eq. 4: the t steps of the forward process compose into one Gaussian, whose
    # mean keeps sqrt(alpha_bar_t) of the image and whose variance is 1 - alpha_bar_t. alpha_bar is
    # the running product of alpha_s = 1 - beta_s, which the schedule already holds (index t = paper's t).
    # t holds one timestep per image: reshape alpha_bar_t to (B, 1, 1, 1) so it broadcasts per image.
    alpha_bar = schedule.alpha_bar[t].view(-1, *([1] * (x0.dim() - 1)))
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps


def ddim_step(schedule: NoiseSchedule, xt: Tensor, t: int, s: int, eps: Tensor, noise: Tensor,
              eta: float) -> Tensor:
    # Song et al. 2021, eq. 12: guess x_0 from the noise estimate (eq. 4 solved for x_0), then put it
    # back at noise level s: sqrt(alpha_bar_s) of the guess, plus the *same* noise direction eps with
    # whatever variance is left after the fresh noise sigma z takes sigma^2 of it.
    alpha_bar_t, alpha_bar_s = schedule.alpha_bar[t], schedule.alpha_bar[s]
    x0_hat = (xt - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    # eq. 16: eta = 1 makes sigma^2 the posterior variance (the ancestral sampler when s = t - 1);
    # eta = 0 makes the step deterministic.
    sigma = eta * ((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)).sqrt()
    return alpha_bar_s.sqrt() * x0_hat + (1 - alpha_bar_s - sigma**2).sqrt() * eps + sigma * noise


def guidance(eps_net: nn.Module, xt: Tensor, t: Tensor, y: Tensor, null_label: int, w: float) -> Tensor:
    # Ho & Salimans 2022, eq. 6: the same network, once with the labels and once with the "no label"
    # class it was trained on (labels dropped at random), then extrapolate past the conditional
    # estimate, away from the unconditional one: eps_c + w (eps_c - eps_u) = (1 + w) eps_c - w eps_u.
    eps_cond = eps_net(xt, t, y)
    eps_uncond = eps_net(xt, t, torch.full_like(y, null_label))
    return (1 + w) * eps_cond - w * eps_uncond


SOLUTIONS = {"q_sample": q_sample, "ddim_step": ddim_step, "guidance": guidance}
