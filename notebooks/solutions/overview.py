"""Worked solutions to the overview notebook's exercises (checked by tests/test_exercises.py)."""

import math

import torch


def bits_per_dim(nll_nats: float, dims: int) -> float:
    # A nat is 1 / ln 2 bits; spreading the code length over the D dimensions makes images of
    # different sizes (and text, per character) comparable.
    return nll_nats / (dims * math.log(2))


def auroc(scores_usual: torch.Tensor, scores_unusual: torch.Tensor) -> float:
    # Every (usual, unusual) pair: 1 when the unusual input scores higher, 1/2 for a tie. The mean
    # over all pairs is the probability a random unusual input outranks a random usual one.
    diff = scores_unusual[None, :] - scores_usual[:, None]  # (n_usual, n_unusual)
    return ((diff > 0).float() + 0.5 * (diff == 0).float()).mean().item()


def class_coverage(probs: torch.Tensor) -> float:
    # The histogram of predicted digits; its entropy is log 10 for an even spread and 0 for one digit.
    counts = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).float()
    share = counts[counts > 0] / counts.sum()
    return float(-(share * share.log()).sum() / math.log(probs.shape[1]))


SOLUTIONS = {"bits_per_dim": bits_per_dim, "auroc": auroc, "class_coverage": class_coverage}
