"""Typical wrong answers to the DDPM notebook's exercises: each must be refused by its grader."""

import torch


def view(values, x):
    return values.view(-1, *([1] * (x.dim() - 1)))


def q_sample_alpha_t(schedule, x0, t, eps):  # the one-step alpha_t instead of the product alpha_bar_t
    alpha = view(1 - schedule.betas[t], x0)
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps


def q_sample_no_sqrt(schedule, x0, t, eps):  # variances used as coefficients
    alpha_bar = view(schedule.alpha_bar[t], x0)
    return alpha_bar * x0 + (1 - alpha_bar) * eps


def q_sample_swapped(schedule, x0, t, eps):
    alpha_bar = view(schedule.alpha_bar[t], x0)
    return (1 - alpha_bar).sqrt() * x0 + alpha_bar.sqrt() * eps


def q_sample_no_reshape(schedule, x0, t, eps):  # (B,) against (B, 1, H, W): broadcasts wrongly or fails
    alpha_bar = schedule.alpha_bar[t]
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps


def _ddim(a_t, a_s, xt, eps, noise, eta, subtract_sigma=True):
    x0 = (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
    return a_s.sqrt() * x0 + (1 - a_s - (sigma**2 if subtract_sigma else 0)).clamp_min(0).sqrt() * eps + sigma * noise


def ddim_alpha_t(schedule, xt, t, s, eps, noise, eta):  # alpha_t = 1 - beta_t instead of alpha_bar_t
    return _ddim(1 - schedule.betas[t], 1 - schedule.betas[s], xt, eps, noise, eta)


def ddim_eta_ignored(schedule, xt, t, s, eps, noise, eta):  # always the deterministic step
    return _ddim(schedule.alpha_bar[t], schedule.alpha_bar[s], xt, eps, noise, 0.0)


def ddim_direction_keeps_sigma(schedule, xt, t, s, eps, noise, eta):  # sqrt(1 - alpha_bar_s), sigma not taken off
    return _ddim(schedule.alpha_bar[t], schedule.alpha_bar[s], xt, eps, noise, eta, subtract_sigma=False)


def ddim_off_by_one(schedule, xt, t, s, eps, noise, eta):
    return _ddim(schedule.alpha_bar[t - 1], schedule.alpha_bar[s], xt, eps, noise, eta)


def guidance_swapped_weights(eps_net, xt, t, y, null_label, w):  # w and 1 + w swapped
    return w * eps_net(xt, t, y) - (1 + w) * eps_net(xt, t, torch.full_like(y, null_label))


def guidance_other_convention(eps_net, xt, t, y, null_label, w):  # w = 1 would be unguided
    uncond = eps_net(xt, t, torch.full_like(y, null_label))
    return uncond + w * (eps_net(xt, t, y) - uncond)


def guidance_label_zero_as_null(eps_net, xt, t, y, null_label, w):
    return (1 + w) * eps_net(xt, t, y) - w * eps_net(xt, t, torch.zeros_like(y))


MISTAKES = {
    "q_sample": [q_sample_alpha_t, q_sample_no_sqrt, q_sample_swapped, q_sample_no_reshape],
    "ddim_step": [ddim_alpha_t, ddim_eta_ignored, ddim_direction_keeps_sigma, ddim_off_by_one],
    "guidance": [guidance_swapped_weights, guidance_other_convention, guidance_label_zero_as_null],
}
