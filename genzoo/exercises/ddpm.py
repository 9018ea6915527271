"""The DDPM notebook's exercises: the forward jump q(x_t | x_0), the DDIM step, classifier-free guidance.

- ``q_sample``: ``answer(schedule, x0, t, eps) -> x_t``, Ho et al. 2020, eq. 4, for a (B,) tensor of
  timesteps; graded against the closed form computed here from the betas (in float64), and by the
  moments of x_t over many eps.
- ``ddim_step``: ``answer(schedule, xt, t, s, eps, noise, eta) -> x_s``, Song et al. 2021, eq. 12 and 16,
  without clipping x0_hat; graded against ``NoiseSchedule.ddim_step(..., clip=False)`` on the same x_t,
  eps and noise, for eta = 0 and eta > 0.
- ``guidance``: ``answer(eps_net, xt, t, y, null_label, w) -> eps_guided``, Ho & Salimans 2022, eq. 6,
  from a class-conditional network; graded against ``DDPM.eps(..., guidance=w)`` on a small random
  ``TimeMLP`` whose "no label" class is ``null_label``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from genzoo.exercises import mismatch
from genzoo.models.ddpm import DDPM, NoiseSchedule
from genzoo.nn import TimeMLP


def _close(actual: Tensor, expected: Tensor) -> bool:
    return isinstance(actual, Tensor) and actual.shape == expected.shape and torch.allclose(
        actual.double(), expected.double(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# q_sample: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps


def grade_q_sample(answer: Callable[[NoiseSchedule, Tensor, Tensor, Tensor], Tensor]) -> str | None:
    schedule = NoiseSchedule.cosine(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 6, 6, generator=g) * 2 - 1
    eps = torch.randn(4, 1, 6, 6, generator=g)
    t = torch.tensor([1, 250, 600, 1000])
    # independently of the schedule's buffers: alpha_bar_t = prod_{s <= t} (1 - beta_s), in float64
    alpha = 1 - schedule.betas.double()
    alpha_bar = torch.cumprod(alpha, 0)[t].view(-1, 1, 1, 1)
    x0_, eps_ = x0.double(), eps.double()
    expected = alpha_bar.sqrt() * x0_ + (1 - alpha_bar).sqrt() * eps_
    try:
        actual = answer(schedule, x0.clone(), t.clone(), eps.clone())
    except RuntimeError as err:
        if "size of tensor" not in str(err):
            raise
        return (f"your answer raised RuntimeError ({err}): alpha_bar[t] has shape (B,); reshape it to "
                f"(B, 1, 1, 1) so that it broadcasts over each image")
    if not isinstance(actual, Tensor):
        return f"return a tensor x_t, not a {type(actual).__name__}"
    if actual.shape != expected.shape:
        return (f"x_t has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: index alpha_bar with t "
                f"and reshape it to (B, 1, 1, 1) so that it broadcasts over each image")
    wrong = {
        "alpha_t = 1 - beta_t instead of alpha_bar_t, the product over all steps up to t":
            alpha[t].view(-1, 1, 1, 1),
    }
    for why, a in wrong.items():
        if _close(actual, a.sqrt() * x0_ + (1 - a).sqrt() * eps_):
            return f"your x_t uses {why}"
    if _close(actual, alpha_bar * x0_ + (1 - alpha_bar) * eps_):
        return "alpha_bar_t and 1 - alpha_bar_t are variances: the coefficients are their square roots"
    if _close(actual, (1 - alpha_bar).sqrt() * x0_ + alpha_bar.sqrt() * eps_):
        return "the coefficients are swapped: x_0 gets sqrt(alpha_bar_t), which is near 1 at small t"
    problem = mismatch(actual, expected.float(), "x_t")
    if problem:
        return problem
    # the moments, over many draws of eps: mean sqrt(alpha_bar) x_0 and variance 1 - alpha_bar per pixel
    many = 4000
    t1 = torch.full((many,), 300)
    x1 = x0[:1].expand(many, -1, -1, -1)
    draws = answer(schedule, x1.clone(), t1, torch.randn(many, 1, 6, 6, generator=g))
    a = torch.cumprod(alpha, 0)[300]
    if (draws.double().mean(0) - a.sqrt() * x0_[0]).abs().max() > 5 / many**0.5 or \
            abs(draws.double().var(0).mean() - (1 - a)) > 0.02:
        return "x_t has the wrong mean or variance over many draws of eps: does it use the eps it is given?"
    return None


# ---------------------------------------------------------------------------------------------
# ddim_step: x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s - sigma^2) eps + sigma z


def _ddim(alpha_bar_t: Tensor, alpha_bar_s: Tensor, xt: Tensor, eps: Tensor, noise: Tensor, eta: float,
          subtract_sigma: bool = True) -> Tensor:
    """Song et al. 2021, eq. 12 and 16, in float64; the variants that a grader recognises."""
    x0 = (xt - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    sigma = eta * ((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)).sqrt()
    direction = (1 - alpha_bar_s - (sigma**2 if subtract_sigma else 0)).clamp_min(0).sqrt() * eps
    return alpha_bar_s.sqrt() * x0 + direction + sigma * noise


def grade_ddim_step(answer: Callable[..., Tensor]) -> str | None:
    schedule = NoiseSchedule.cosine(1000)
    g = torch.Generator().manual_seed(1)
    alpha_bar = schedule.alpha_bar.double()
    alpha = 1 - schedule.betas.double()
    cases = [(600, 400, 0.0), (900, 100, 0.0), (700, 300, 1.0), (50, 49, 0.5), (999, 0, 1.0)]
    for t, s, eta in cases:
        xt, eps, noise = torch.randn(3, 3, 1, 5, 5, generator=g)
        expected = schedule.ddim_step(xt, t, s, eps, noise, eta=eta, clip=False)
        actual = answer(schedule, xt.clone(), t, s, eps.clone(), noise.clone(), eta)
        if not isinstance(actual, Tensor):
            return f"return a tensor x_s, not a {type(actual).__name__}"
        if _close(actual, expected):
            continue
        where = f"from t = {t} to s = {s} with eta = {eta}"
        x, e, z = xt.double(), eps.double(), noise.double()
        if _close(actual, _ddim(alpha[t], alpha[s], x, e, z, eta)):
            return f"{where}: your step uses alpha_t = 1 - beta_t where DDIM needs alpha_bar_t (and alpha_bar_s)"
        if eta > 0 and _close(actual, _ddim(alpha_bar[t], alpha_bar[s], x, e, z, 0.0)):
            return f"{where}: your step is the eta = 0 step: eta must scale sigma, and sigma the fresh noise"
        if eta > 0 and _close(actual, _ddim(alpha_bar[t], alpha_bar[s], x, e, z, eta, subtract_sigma=False)):
            return (f"{where}: the direction to x_t must be scaled by sqrt(1 - alpha_bar_s - sigma^2), not "
                    f"sqrt(1 - alpha_bar_s): the fresh noise takes sigma^2 of the variance")
        if _close(actual, _ddim(alpha_bar[t - 1], alpha_bar[s], x, e, z, eta)) or \
                _close(actual, _ddim(alpha_bar[t], alpha_bar[s - 1] if s else alpha_bar[0], x, e, z, eta)):
            return f"{where}: your step is off by one in the index of alpha_bar: alpha_bar[t] is the paper's t"
        return f"{where}: " + (mismatch(actual, expected, "x_s") or "x_s differs")
    return None


# ---------------------------------------------------------------------------------------------
# guidance: eps_guided = (1 + w) eps(x_t, t, y) - w eps(x_t, t)


def grade_guidance(answer: Callable[..., Tensor]) -> str | None:
    torch.manual_seed(2)
    classes = 3
    net = TimeMLP(2, hidden=32, depth=2, num_classes=classes)
    with torch.no_grad():
        for p in net.parameters():  # random weights everywhere, so that every label's estimate differs
            p.normal_(0, 0.5)
    model = DDPM(net, NoiseSchedule.cosine(100), data_shape=(2,), num_classes=classes).eval()
    g = torch.Generator().manual_seed(3)
    xt = torch.randn(6, 2, generator=g)
    t = torch.randint(1, 101, (6,), generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    for w in [0.0, 1.0, 3.0]:
        with torch.no_grad():
            expected = model.eps(xt, t, y, guidance=w)
            actual = answer(net, xt.clone(), t.clone(), y.clone(), classes, w)
            cond, uncond = net(xt, t, y), net(xt, t, torch.full_like(y, classes))
        if not isinstance(actual, Tensor):
            return f"return a tensor, the guided noise estimate, not a {type(actual).__name__}"
        if _close(actual, expected):
            continue
        if _close(actual, w * cond - (1 + w) * uncond):
            return f"at w = {w}: w and 1 + w are swapped: (1 + w) multiplies the conditional estimate eps(x_t, t, y)"
        if _close(actual, uncond + w * (cond - uncond)):
            return (f"at w = {w}: that is the convention in which w = 1 is the unguided model; here w = 0 is, "
                    f"so eps_guided = eps(x_t, t, y) + w (eps(x_t, t, y) - eps(x_t, t))")
        if _close(actual, (1 + w) * cond - w * net(xt, t, torch.zeros_like(y))):
            return (f"at w = {w}: the unconditional estimate is the network given the 'no label' class "
                    f"null_label = {classes}, not label 0")
        if _close(actual, (1 + w) * uncond - w * cond):
            return f"at w = {w}: the conditional and unconditional estimates are swapped: guidance pushes towards y"
        return f"at w = {w}: " + (mismatch(actual, expected, "the guided estimate") or "the estimate differs")
    return None


GRADERS = {"q_sample": grade_q_sample, "ddim_step": grade_ddim_step, "guidance": grade_guidance}
