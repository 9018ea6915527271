"""The EBM notebook's exercises: one Langevin step, where Langevin dynamics settles, the contrastive loss.

- ``langevin_step``: ``answer(energy, x, step_size, z) -> x_next``, one step of (unadjusted) Langevin
  dynamics x - step_size grad_x E(x) + sqrt(2 step_size) z with the given noise z, the gradient taken
  with autograd w.r.t. the input; graded against ``EBM.langevin_step`` (no clipping, no clamping) on a
  two-well energy, with the same z drawn from the same seeded generator.
- ``stationary_variance``: ``answer(step_size, noise, variance) -> float``, the variance at which the
  chain x <- x - step_size grad E(x) + noise z settles on E(x) = x^2 / (2 variance), exactly (with the
  step's own bias); graded against the fixed point of the recurrence, V = (1 - step/variance)^2 V +
  noise^2, and a wrong answer is shown beside a Monte-Carlo run of ``EBM.sample`` on that energy.
- ``contrastive_loss``: ``answer(energy, x_pos, x_neg, alpha) -> loss``, Du & Mordatch 2019, sec. 2.2
  and 3: mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2); graded, value and gradient
  w.r.t. the network's weights, against ``EBM.contrastive_loss`` on a small random MLP.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from genzoo.exercises import mismatch
from genzoo.models.ebm import EBM, EBMConfig
from genzoo.nn import MLP

Energy = Callable[[Tensor], Tensor]  # (B, D) -> (B,)


def _own_random_state(grader: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """Run ``grader`` without touching the notebook's global random state (models draw from it when built)."""

    @functools.wraps(grader)
    def graded(answer: Any) -> str | None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return grader(answer)

    return graded


def _close(actual: Tensor, expected: Tensor) -> bool:
    return isinstance(actual, Tensor) and actual.shape == expected.shape and torch.allclose(
        actual.double(), expected.double(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# langevin_step: x_{k+1} = x_k - step grad_x E(x_k) + sqrt(2 step) z_k


class TwoWells(nn.Module):
    """E(x) = 4 (x_1^2 - 1)^2 + 2 x_2^2 + x_1 x_2 on (B, 2) points, as the (B, 1) output EBM reads."""

    def forward(self, x: Tensor) -> Tensor:
        return (4 * (x[:, 0] ** 2 - 1) ** 2 + 2 * x[:, 1] ** 2 + x[:, 0] * x[:, 1])[:, None]


def two_wells_gradient(x: Tensor) -> Tensor:
    """grad_x E of ``TwoWells``, by hand: (B, 2)."""
    return torch.stack([16 * x[:, 0] * (x[:, 0] ** 2 - 1) + x[:, 1], 4 * x[:, 1] + x[:, 0]], dim=1)


@_own_random_state
def grade_langevin_step(answer: Callable[[Energy, Tensor, float, Tensor], Tensor]) -> str | None:
    model = EBM(TwoWells(), data_shape=(2,), cfg=EBMConfig(sgld_clip=0.0), clamp=False)
    x = 1.5 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    step = 0.01
    seed = 7
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))  # what langevin_step draws
    expected = model.langevin_step(x, None, step, math.sqrt(2 * step), torch.Generator().manual_seed(seed))
    given = x.clone()
    actual = answer(model.energy, given, step, z.clone())
    if not isinstance(actual, Tensor):
        return f"return the new points as a tensor, not a {type(actual).__name__}"
    if not torch.equal(given, x):
        return "your step changed x in place: return a new tensor and leave the chain's current state alone"
    if actual.shape != expected.shape:
        return f"the new points have shape {tuple(actual.shape)}, expected {tuple(expected.shape)}, as x"
    g, s = two_wells_gradient(x), math.sqrt(2 * step)
    wrong = {
        "the step goes uphill: Langevin dynamics moves along minus the gradient of the energy, "
        "x - step * grad E, towards low energy (high probability)": x + step * g + s * z,
        "the noise has standard deviation step; it must be sqrt(2 * step), so that noise and drift balance "
        "and the chain samples exp(-E)": x - step * g + step * z,
        "the noise has standard deviation sqrt(step); it must be sqrt(2 * step) (you sample exp(-2 E))":
            x - step * g + math.sqrt(step) * z,
        "the noise scale 2 * step is a variance; the standard deviation is sqrt(2 * step)":
            x - step * g + 2 * step * z,
        "there is no noise: without it this is gradient descent, which finds a minimum and does not sample":
            x - step * g,
        "the gradient is divided by the batch size: differentiate energy(x).sum(), not .mean(), so each "
        "point gets the gradient of its own energy": x - step * g / len(x) + s * z,
        "the drift has step / 2 where this exercise's convention has step (noise sqrt(2 * step))":
            x - step / 2 * g + s * z,
    }
    for why, candidate in wrong.items():
        if _close(actual, candidate):
            return why
    return mismatch(actual, expected, "the new points")


# ---------------------------------------------------------------------------------------------
# stationary_variance: V = (1 - step/variance)^2 V + noise^2


class Quadratic1D(nn.Module):
    """E(x) = x^2 / (2 variance) on (B, 1) points: the energy of N(0, variance)."""

    def __init__(self, variance: float):
        super().__init__()
        self.variance = variance

    def forward(self, x: Tensor) -> Tensor:
        return x**2 / (2 * self.variance)  # (B, 1)


def langevin_variance(step_size: float, noise: float, variance: float, chains: int = 20000, seed: int = 0) -> float:
    """The variance reached by ``chains`` chains of the library's sampler, started at 0 (a Monte Carlo check)."""
    model = EBM(Quadratic1D(variance), data_shape=(1,), cfg=EBMConfig(sgld_clip=0.0, init_range=1e-9), clamp=False)
    shrink = abs(1 - step_size / variance)  # each step multiplies x by (1 - step / variance)
    steps = min(2000, max(50, math.ceil(10 / max(1e-9, 1 - shrink**2))))  # long enough to forget the start
    x = model.sample(chains, generator=torch.Generator().manual_seed(seed), from_buffer=False,
                     mcmc_steps=steps, step_size=step_size, noise=noise)
    return x.double().var().item()


@_own_random_state
def grade_stationary_variance(answer: Callable[[float, float, float], float]) -> str | None:
    cases = [(0.5, 0.3, 2.0), (0.01, math.sqrt(0.02), 1.0), (10.0, 0.005, 8.0), (0.1, 0.05, 0.06)]
    for step, noise, variance in cases:
        a = 1 - step / variance  # one step: x <- a x + noise z
        expected = noise**2 / (1 - a**2)
        actual = answer(step, noise, variance)
        if isinstance(actual, Tensor):
            actual = actual.item() if actual.numel() == 1 else actual
        if not isinstance(actual, (int, float)):
            return f"return one number (the variance), not a {type(actual).__name__}"
        if math.isclose(actual, expected, rel_tol=1e-4):
            continue
        where = f"for step {step}, noise {noise:.4g} and variance {variance}"
        simulated = f"the library's sampler settles at {langevin_variance(step, noise, variance):.4g}"
        temperature = noise**2 / (2 * step)
        if math.isclose(actual, temperature * variance, rel_tol=1e-4):
            return (f"{where} you return T * variance = {actual:.4g} (T = noise^2 / (2 step)), the small-step "
                    f"limit; {simulated}: a finite step adds its own bias. Write one step as x <- a x + noise z "
                    f"and solve V = a^2 V + noise^2")
        if math.isclose(actual, variance, rel_tol=1e-4):
            return (f"{where} you return the variance of exp(-E) itself ({simulated}): with a noise other than "
                    f"sqrt(2 step) the chain samples at temperature T = noise^2 / (2 step) = {temperature:.3g}")
        if math.isclose(actual, noise / (1 - a**2), rel_tol=1e-4):
            return f"{where} you return {actual:.4g}: noise is a standard deviation; its variance is noise^2"
        if math.isclose(actual, noise**2 / (1 - a), rel_tol=1e-4):
            return (f"{where} you return {actual:.4g}; {simulated}: the variance of a x is a^2 V, not a V")
        return (f"{where} you return {actual:.4g} where the fixed point of V = (1 - step/variance)^2 V + noise^2 is "
                f"{expected:.4g} ({simulated})")
    return None


# ---------------------------------------------------------------------------------------------
# contrastive_loss: mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2)


@_own_random_state
def grade_contrastive_loss(answer: Callable[[Energy, Tensor, Tensor, float], Tensor]) -> str | None:
    g = torch.Generator().manual_seed(0)
    net = MLP(2, 16, 1, 2)  # random weights, the same every time (the grader seeds torch)
    x_pos = torch.randn(32, 2, generator=g)
    x_neg = 2 * torch.rand(48, 2, generator=g) - 1  # a different batch size: the means are separate
    for alpha in (0.1, 0.5):
        model = EBM(net, data_shape=(2,), cfg=EBMConfig(alpha=alpha), clamp=False)
        expected, _ = model.contrastive_loss(x_pos, x_neg)
        (expected_grad,) = torch.autograd.grad(expected, net.net[0].weight)
        actual = answer(model.energy, x_pos.clone(), x_neg.clone(), alpha)
        if not isinstance(actual, Tensor):
            return (f"return the loss as a tensor that carries its gradient, not a {type(actual).__name__} "
                    f"(no .item()): the optimizer needs d loss / d weights")
        if actual.numel() != 1:
            return f"the loss is one number (averaged over the batches), not a tensor of shape {tuple(actual.shape)}"
        actual = actual.reshape(())
        e_pos, e_neg = model.energy(x_pos).detach(), model.energy(x_neg).detach()
        cd = e_pos.mean() - e_neg.mean()
        reg = (e_pos**2).mean() + (e_neg**2).mean()
        wrong = {
            "the contrastive term is reversed: lower the energy of data and raise that of samples, "
            "mean E(x+) - mean E(x-)": -cd + alpha * reg,
            "the regularizer is missing: add alpha * (mean E(x+)^2 + mean E(x-)^2)": cd,
            "the regularizer is not weighted: multiply it by alpha": cd + reg,
            "the regularizer squares the mean energies; it is the mean of the squared energies, "
            "mean(E^2), which holds every energy near 0, not only their average": cd + alpha * (
                e_pos.mean() ** 2 + e_neg.mean() ** 2),
            "the regularizer averages E^2 over data and samples together, once; it is mean E(x+)^2 + "
            "mean E(x-)^2, one mean per set": cd + alpha * torch.cat([e_pos, e_neg]).pow(2).mean(),
        }
        for why, candidate in wrong.items():
            if _close(actual.detach(), candidate):
                return why
        problem = mismatch(actual.detach(), expected.detach(), f"the loss (alpha = {alpha})")
        if problem:
            return problem
        if actual.grad_fn is None:
            return ("the value is right but the loss carries no gradient: compute it from energy(x) with "
                    "tensor operations (no .item(), no torch.no_grad(), no detach)")
        (grad,) = torch.autograd.grad(actual, net.net[0].weight, allow_unused=True)
        if grad is None or not torch.allclose(grad, expected_grad, rtol=1e-4, atol=1e-6):
            return ("the value is right but its gradient w.r.t. the weights is not: did you detach an energy? "
                    "Only the samples x- are held fixed; their energy E(x-) must still be pushed up")
    return None


GRADERS = {
    "langevin_step": grade_langevin_step,
    "stationary_variance": grade_stationary_variance,
    "contrastive_loss": grade_contrastive_loss,
}
