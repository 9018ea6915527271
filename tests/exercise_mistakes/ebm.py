"""Typical wrong answers to the EBM notebook's exercises: each must be refused by its grader."""

import math

import torch


def _grad(energy, x):
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return x.detach(), grad


def langevin_uphill(energy, x, step_size, z):  # the wrong sign of the gradient
    x, grad = _grad(energy, x)
    return x + step_size * grad + math.sqrt(2 * step_size) * z


def langevin_noise_step(energy, x, step_size, z):  # noise std step instead of sqrt(2 step)
    x, grad = _grad(energy, x)
    return x - step_size * grad + step_size * z


def langevin_noise_sqrt_step(energy, x, step_size, z):  # the 2 forgotten: sqrt(step)
    x, grad = _grad(energy, x)
    return x - step_size * grad + math.sqrt(step_size) * z


def langevin_no_noise(energy, x, step_size, z):  # gradient descent, not sampling
    x, grad = _grad(energy, x)
    return x - step_size * grad


def langevin_mean_energy(energy, x, step_size, z):  # gradient of the batch's mean energy: divided by B
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x).mean(), x)
    return x.detach() - step_size * grad + math.sqrt(2 * step_size) * z


def langevin_in_place(energy, x, step_size, z):  # right values, but the caller's x is overwritten
    _, grad = _grad(energy, x)
    x -= step_size * grad
    x += math.sqrt(2 * step_size) * z
    return x


def variance_of_target(step_size, noise, variance):  # ignores the sampler: the variance of exp(-E)
    return variance


def variance_small_step(step_size, noise, variance):  # T * variance: the continuous-time limit
    return noise**2 / (2 * step_size) * variance


def variance_not_squared(step_size, noise, variance):  # V = a V + noise^2
    return noise**2 / (step_size / variance)


def variance_noise_as_variance(step_size, noise, variance):  # noise taken as a variance
    a = 1 - step_size / variance
    return noise / (1 - a**2)


def loss_reversed(energy, x_pos, x_neg, alpha):  # raises the data's energy, lowers the samples'
    e_pos, e_neg = energy(x_pos), energy(x_neg)
    return e_neg.mean() - e_pos.mean() + alpha * ((e_pos**2).mean() + (e_neg**2).mean())


def loss_squared_means(energy, x_pos, x_neg, alpha):  # (mean E)^2 instead of mean(E^2)
    e_pos, e_neg = energy(x_pos), energy(x_neg)
    return e_pos.mean() - e_neg.mean() + alpha * (e_pos.mean() ** 2 + e_neg.mean() ** 2)


def loss_no_alpha(energy, x_pos, x_neg, alpha):  # the regularizer unweighted
    e_pos, e_neg = energy(x_pos), energy(x_neg)
    return e_pos.mean() - e_neg.mean() + (e_pos**2).mean() + (e_neg**2).mean()


def loss_no_regularizer(energy, x_pos, x_neg, alpha):
    return energy(x_pos).mean() - energy(x_neg).mean()


def loss_detached_samples(energy, x_pos, x_neg, alpha):  # right value, but E(x-) gets no gradient
    e_pos, e_neg = energy(x_pos), energy(x_neg).detach()
    return e_pos.mean() - e_neg.mean() + alpha * ((e_pos**2).mean() + (e_neg**2).mean())


def loss_as_float(energy, x_pos, x_neg, alpha):  # .item(): no gradient for the optimizer
    e_pos, e_neg = energy(x_pos), energy(x_neg)
    return (e_pos.mean() - e_neg.mean() + alpha * ((e_pos**2).mean() + (e_neg**2).mean())).item()


MISTAKES = {
    "langevin_step": [langevin_uphill, langevin_noise_step, langevin_noise_sqrt_step, langevin_no_noise,
                      langevin_mean_energy, langevin_in_place],
    "stationary_variance": [variance_of_target, variance_small_step, variance_not_squared,
                            variance_noise_as_variance],
    "contrastive_loss": [loss_reversed, loss_squared_means, loss_no_alpha, loss_no_regularizer,
                         loss_detached_samples, loss_as_float],
}
