"""Graders of the overview notebook's exercises: reading the numbers every family reports.

Each grader calls the learner's function on inputs it makes and compares with genzoo's own
implementation in ``genzoo/metrics.py``; AUROC with a brute-force count over all pairs (the tests check
that it agrees with ``genzoo.metrics.auroc``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from genzoo.exercises import mismatch
from genzoo.metrics import bits_per_dim, class_coverage


def grade_bits_per_dim(answer: Callable[[float, int], float]) -> str | None:
    cases = [(1000.0, 784), (2.0 * math.log(2), 2), (0.5, 1)]
    for nll, dims in cases:
        got, expected = float(answer(nll, dims)), bits_per_dim(nll, dims)
        if math.isclose(got, expected, rel_tol=1e-6):
            continue
        if math.isclose(got, nll / dims, rel_tol=1e-6):
            return "that is nats per dimension: divide by ln 2 as well to turn nats into bits"
        if math.isclose(got, nll / math.log(2), rel_tol=1e-6):
            return "that is bits per image: divide by the number of dimensions too"
        if math.isclose(got, nll / (dims * math.log(10)), rel_tol=1e-6):
            return "that divides by ln 10 (digits, 'bans'), not ln 2 (bits)"
        return f"for {nll} nats over {dims} dimensions you gave {got:.6g}; expected {expected:.6g}"
    return None


def pair_count_auroc(usual: torch.Tensor, unusual: torch.Tensor) -> float:
    """The AUROC by its definition: over all pairs, P(unusual > usual) + P(tie) / 2."""
    diff = unusual[None, :] - usual[:, None]
    return ((diff > 0).float() + 0.5 * (diff == 0).float()).mean().item()


def grade_auroc(answer: Callable[[torch.Tensor, torch.Tensor], float]) -> str | None:
    g = torch.Generator().manual_seed(0)
    usual = torch.randn(300, generator=g)
    unusual = torch.randn(200, generator=g) + 1.0
    ties_usual, ties_unusual = torch.randint(0, 4, (50,), generator=g).float(), torch.randint(1, 5, (40,), generator=g).float()
    for s_in, s_out in ((usual, unusual), (ties_usual, ties_unusual)):
        expected = pair_count_auroc(s_in, s_out)
        got = float(answer(s_in.clone(), s_out.clone()))
        if math.isclose(got, expected, abs_tol=1e-6):
            continue
        if math.isclose(got, 1 - expected, abs_tol=1e-6):
            return "the direction is reversed: count pairs where the UNUSUAL input scores higher"
        strict = ((s_out[None, :] - s_in[:, None]) > 0).float().mean().item()
        if math.isclose(got, strict, abs_tol=1e-6):
            return "ties count as half a pair, not as none (the test with integer scores has ties)"
        return f"you gave {got:.4f}; counting every pair gives {expected:.4f}"
    return None


def grade_class_coverage(answer: Callable[[torch.Tensor], float]) -> str | None:
    g = torch.Generator().manual_seed(0)
    even = torch.eye(10).repeat(20, 1) * 5 + torch.rand(200, 10, generator=g)  # each digit 20 times
    skewed = torch.softmax(torch.randn(300, 10, generator=g) + torch.linspace(0, 3, 10), dim=1)
    single = torch.zeros(50, 10)
    single[:, 3] = 1.0
    for probs in (even, skewed, single):
        expected = class_coverage(probs)
        got = float(answer(probs.clone()))
        if math.isclose(got, expected, abs_tol=1e-5):
            continue
        counts = torch.bincount(probs.argmax(dim=1), minlength=10).float()
        share = counts / counts.sum()
        entropy = -(share[share > 0] * share[share > 0].log()).sum().item()
        if math.isclose(got, entropy, abs_tol=1e-5):
            return "that is the entropy in nats: divide by log 10 so that an even spread gives 1.0"
        mean_probs = probs.mean(dim=0)
        soft = -(mean_probs * mean_probs.clamp_min(1e-12).log()).sum().item() / math.log(10)
        if math.isclose(got, soft, abs_tol=1e-5):
            return "count each sample as its most probable class (argmax), not by averaging the probabilities"
        return f"you gave {got:.4f} where the histogram's normalised entropy is {expected:.4f}"
    return None


GRADERS = {
    "bits_per_dim": grade_bits_per_dim,
    "auroc": grade_auroc,
    "class_coverage": grade_class_coverage,
}
