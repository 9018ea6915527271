"""Typical wrong answers to the GAN notebook's exercises; each must be refused by its grader."""

from __future__ import annotations

import torch
import torch.nn.functional as F


# losses
def saturating_generator_loss(real, fake):
    d_loss = F.softplus(-real).mean() + F.softplus(fake).mean()
    return d_loss, torch.log1p(-torch.sigmoid(fake)).mean()  # minimax G: minimise log(1 - sigma(D(G(z))))


def discriminator_loss_sign_error(real, fake):
    return -(F.softplus(-real).mean() + F.softplus(fake).mean()), F.softplus(-fake).mean()


def labels_swapped(real, fake):
    return F.softplus(real).mean() + F.softplus(-fake).mean(), F.softplus(-fake).mean()


def generator_helps_discriminator(real, fake):
    return F.softplus(-real).mean() + F.softplus(fake).mean(), F.softplus(fake).mean()


def naive_log_of_sigmoid(real, fake):  # right on paper, -inf where D is sure
    d_loss = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    return d_loss, -torch.log(torch.sigmoid(fake)).mean()


def one_mean_over_both_batches(real, fake):
    d_loss = torch.cat([F.softplus(-real), F.softplus(fake)]).mean()
    return d_loss, F.softplus(-fake).mean()


# spectral_norm
def frobenius_norm(W, u, steps):
    return W.norm()


def power_iteration_without_normalising(W, u, steps):
    for _ in range(steps):
        v = W.t() @ u
        u = W @ v
    return u @ W @ v


def estimate_from_the_old_u(W, u, steps):
    for _ in range(steps - 1):
        u = F.normalize(W @ F.normalize(W.t() @ u, dim=0), dim=0)
    return (W.t() @ u).norm()


def an_svd_ignoring_steps(W, u, steps):
    return torch.linalg.matrix_norm(W, 2)


def largest_row_norm(W, u, steps):
    return W.norm(dim=1).max()


# ring_modes
def ring_quality(x, radius=0.15, threshold=None, good_only=True):
    angle = torch.arange(8) * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1)
    distance, nearest = torch.cdist(x.float(), centres).min(dim=1)
    good = distance < radius
    counts = torch.bincount(nearest[good] if good_only else nearest, minlength=8)
    threshold = len(x) / 32 if threshold is None else threshold
    return int((counts >= threshold).sum()), good.float().mean().item()


def counts_points_not_modes(x):
    _, share = ring_quality(x)
    return int(share * len(x)), share


def one_sigma_radius(x):
    return ring_quality(x, radius=0.05)


def radius_from_the_variance(x):
    return ring_quality(x, radius=3 * 0.05**2)


def any_point_covers_a_mode(x):
    return ring_quality(x, threshold=1)


def every_point_votes_for_its_mode(x):
    return ring_quality(x, good_only=False)


def count_instead_of_share(x):
    modes, share = ring_quality(x)
    return modes, share * len(x)


MISTAKES = {
    "losses": [saturating_generator_loss, discriminator_loss_sign_error, labels_swapped,
               generator_helps_discriminator, naive_log_of_sigmoid, one_mean_over_both_batches],
    "spectral_norm": [frobenius_norm, power_iteration_without_normalising, estimate_from_the_old_u,
                      an_svd_ignoring_steps, largest_row_norm],
    "ring_modes": [counts_points_not_modes, one_sigma_radius, radius_from_the_variance, any_point_covers_a_mode,
                   every_point_votes_for_its_mode, count_instead_of_share],
}
