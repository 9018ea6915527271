"""Worked solutions to the exercises at the end of notebooks/vae.py (graded by genzoo/exercises/vae.py)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def kl_two_gaussians(mu_q: Tensor, log_var_q: Tensor, mu_p: Tensor, log_var_p: Tensor) -> Tensor:
    # For one dimension, KL(N(m1, s1^2) || N(m2, s2^2)) = E_q[log q - log p]
    #   = log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2:
    # the log-normalisers give log(s2 / s1); E_q[(z - m2)^2] = s1^2 + (m1 - m2)^2 over 2 s2^2 comes from
    # log p; E_q[(z - m1)^2] / (2 s1^2) = 1/2 from log q. A diagonal Gaussian is D independent ones, so
    # the KL is the sum over dimensions. With log-variances, log(s2 / s1) = (log_var_p - log_var_q) / 2.
    # With mu_p = 0 and log_var_p = 0 this is the VAE's own KL term, kl_to_standard_normal.
    var_q, var_p = log_var_q.exp(), log_var_p.exp()
    return 0.5 * (log_var_p - log_var_q + (var_q + (mu_q - mu_p) ** 2) / var_p - 1).sum(dim=-1)


def reparameterize(mu: Tensor, log_var: Tensor) -> Tensor:
    # Kingma & Welling 2014, eq. 10: the randomness comes from eps, which depends on nothing we train;
    # z is then a differentiable function of mu and sigma (dz/dmu = 1, dz/dsigma = eps), so gradients of
    # anything computed from z flow back into the encoder. sigma = exp(log_var / 2): log_var is the log
    # of the variance. One eps per element: randn_like draws a fresh N(0, 1) number for every entry.
    eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * log_var) * eps


def iw_bound(log_w: Tensor) -> Tensor:
    # Burda et al. 2016, eq. 8: L_k = log (1/k) sum_i w_i. The log weights of a VAE are about -700 nats
    # for a trained model and lower for an untrained one, so exp(log_w) is 0 in floating point; logsumexp
    # subtracts the largest log weight first, which makes the sum exact. The 1/k becomes - log k.
    k = log_w.shape[1]
    return torch.logsumexp(log_w, dim=1) - math.log(k)


SOLUTIONS = {
    "kl_two_gaussians": kl_two_gaussians,
    "reparameterize": reparameterize,
    "iw_bound": iw_bound,
}
