"""Typical wrong answers to the flow notebook's exercises; each must be refused by its grader."""

from __future__ import annotations

import math

import torch


# coupling_inverse
def inverse_divides_by_exp_minus_s(z, mask, scale_shift):
    log_s, t = scale_shift(z * mask)
    return z * mask + (1 - mask) * (z - t) / torch.exp(-log_s)


def inverse_from_the_wrong_half(z, mask, scale_shift):
    log_s, t = scale_shift(z * (1 - mask))
    return z * mask + (1 - mask) * (z - t) * torch.exp(-log_s)


def inverse_unshifts_after_scaling(z, mask, scale_shift):
    log_s, t = scale_shift(z * mask)
    return z * mask + (1 - mask) * (z * torch.exp(-log_s) - t)


def inverse_changes_the_kept_half(z, mask, scale_shift):
    log_s, t = scale_shift(z * mask)
    return (z - t) * torch.exp(-log_s)


# coupling_log_det
def log_det_over_the_kept_half(x, mask, scale_shift):
    log_s, _ = scale_shift(x * mask)
    return (mask * log_s).flatten(1).sum(1)


def log_det_with_the_wrong_sign(x, mask, scale_shift):
    log_s, _ = scale_shift(x * mask)
    return -((1 - mask) * log_s).flatten(1).sum(1)


def log_det_over_every_entry(x, mask, scale_shift):
    log_s, _ = scale_shift(x * mask)
    return log_s.flatten(1).sum(1)


def log_det_for_the_whole_batch(x, mask, scale_shift):
    log_s, _ = scale_shift(x * mask)
    return ((1 - mask) * log_s).sum()


# bits_per_dim
def bits_forgetting_the_log_256(log_p, k):
    y = (k + torch.rand_like(k)) / 256
    return -log_p(y) / (k[0].numel() * math.log(2))


def bits_with_the_scale_of_images_in_minus_one_one(log_p, k):
    D = k[0].numel()
    y = (k + torch.rand_like(k)) / 256
    return -(log_p(y) - D * math.log(127.5)) / (D * math.log(2))


def bits_without_dequantizing(log_p, k):
    D = k[0].numel()
    return -(log_p(k / 256) - D * math.log(256)) / (D * math.log(2))


def bits_in_nats(log_p, k):
    D = k[0].numel()
    y = (k + torch.rand_like(k)) / 256
    return -(log_p(y) - D * math.log(256)) / D


MISTAKES = {
    "coupling_inverse": [
        inverse_divides_by_exp_minus_s,
        inverse_from_the_wrong_half,
        inverse_unshifts_after_scaling,
        inverse_changes_the_kept_half,
    ],
    "coupling_log_det": [
        log_det_over_the_kept_half,
        log_det_with_the_wrong_sign,
        log_det_over_every_entry,
        log_det_for_the_whole_batch,
    ],
    "bits_per_dim": [
        bits_forgetting_the_log_256,
        bits_with_the_scale_of_images_in_minus_one_one,
        bits_without_dequantizing,
        bits_in_nats,
    ],
}
