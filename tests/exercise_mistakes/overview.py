"""Typical wrong answers to the overview notebook's exercises; each must be refused."""

import math

import torch

MISTAKES = {
    "bits_per_dim": [
        lambda nll, dims: nll / dims,  # nats per dimension
        lambda nll, dims: nll / math.log(2),  # bits per image
        lambda nll, dims: nll / (dims * math.log(10)),  # the wrong logarithm
    ],
    "auroc": [
        lambda a, b: ((a[None, :] - b[:, None]) > 0).float().mean().item(),  # reversed direction
        lambda a, b: ((b[None, :] - a[:, None]) > 0).float().mean().item(),  # ties count as nothing
    ],
    "class_coverage": [
        lambda p: float(-(torch.bincount(p.argmax(1), minlength=10).float().div(len(p)).clamp_min(1e-12).log()
                          * torch.bincount(p.argmax(1), minlength=10).float().div(len(p))).sum()),  # nats, not / log 10
        lambda p: float(-(p.mean(0) * p.mean(0).clamp_min(1e-12).log()).sum() / math.log(10)),  # averaged probabilities
    ],
}
