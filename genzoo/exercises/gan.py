"""The GAN notebook's exercises: the two players' losses, spectral normalisation, modes covered on the ring.

- ``losses``: ``answer(real_logits, fake_logits) -> (d_loss, g_loss)``, D's loss (two binary
  cross-entropies, real labelled 1 and generated 0, each a mean over its batch) and G's non-saturating
  loss -E log sigma(D(G(z))), from D's logits. Graded against binary cross-entropies computed from the
  probabilities sigma(logit) in float64, on moderate logits and then on logits where D is sure
  (+-25, -110), where a float32 sigma rounds to exactly 0 or 1.
- ``spectral_norm``: ``answer(W, u, steps) -> sigma``, the estimate u^T W v of W's largest singular
  value after ``steps`` steps of power iteration from the unit vector u (Miyato et al. 2018, Algorithm
  1). Graded after one step against the library's ``genzoo.nn.SpectralNorm`` started from the same u,
  and after 100 steps against ``torch.linalg.matrix_norm(W, 2)``.
- ``ring_modes``: ``answer(x) -> (modes, high_quality)`` for points x (n, 2) against the 8 Gaussians
  (std 0.05) on the unit circle: a point is high quality within 3 std of its nearest centre, a mode is
  covered when at least n/32 high-quality points are on it. Graded against ``genzoo.metrics.ring8_quality``
  on seeded point sets made to separate the usual mistakes (a lopsided ring, a wide one, a collapsed one).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from genzoo.exercises import Grader, mismatch
from genzoo.metrics import RING8_STD, even_ring, ring8_centres, ring8_quality
from genzoo.nn import SpectralNorm


def close(actual: Any, expected: Tensor, tol: float = 1e-5) -> bool:
    actual = torch.as_tensor(actual, dtype=expected.dtype)
    return actual.shape == expected.shape and bool(torch.allclose(actual, expected, rtol=tol, atol=tol))


def as_scalar(value: Any, what: str) -> tuple[Tensor | None, str | None]:
    """A float64 0-d tensor from a number or a one-element tensor, or why it is not one."""
    try:
        value = torch.as_tensor(value.detach() if isinstance(value, Tensor) else value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None, f"{what} should be a number (a 0-d tensor), not a {type(value).__name__}"
    if value.numel() != 1:
        return None, (f"{what} has shape {tuple(value.shape)}: average over the batch to one number")
    return value.reshape(()), None


# ---------------------------------------------------------------------------------------------
# 1. The discriminator's and the non-saturating generator's losses.


def bce(p: Tensor, target: float) -> Tensor:
    """Binary cross-entropy -[t log p + (1 - t) log(1 - p)], averaged over the batch, written out."""
    if target == 1.0:
        return -torch.log(p).mean()
    return -torch.log(1 - p).mean()


def grade_losses(answer: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]) -> str | None:
    g = torch.Generator().manual_seed(0)
    moderate = (torch.randn(64, generator=g) * 2 + 1, torch.randn(48, generator=g) * 2 - 1)  # two batch sizes
    sure = (torch.tensor([3.0, -25.0, 0.5, 8.0]), torch.tensor([25.0, -110.0, -2.0]))  # where D is certain
    for case, (real, fake) in (("moderate", moderate), ("sure", sure)):
        result = answer(real.clone(), fake.clone())
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return "return two numbers, (d_loss, g_loss)"
        (d_loss, problem_d), (g_loss, problem_g) = as_scalar(result[0], "d_loss"), as_scalar(result[1], "g_loss")
        if problem_d or problem_g:
            return problem_d or problem_g
        p_real, p_fake = torch.sigmoid(real.double()), torch.sigmoid(fake.double())  # D's probability of "real"
        d_expected = bce(p_real, 1.0) + bce(p_fake, 0.0)  # real labelled 1, generated labelled 0
        g_expected = bce(p_fake, 1.0)  # G wants its samples labelled real
        if case == "sure" and not (torch.isfinite(d_loss) and torch.isfinite(g_loss)):
            return ("right for moderate logits, but infinite where D is sure (logits 25 and -110): in float32 "
                    "sigma(25) rounds to exactly 1 and sigma(-110) to 0, so log(1 - sigma) or log(sigma) is -inf; "
                    "write them with softplus: -log sigma(a) = softplus(-a), -log(1 - sigma(a)) = softplus(a)")
        if not close(d_loss, d_expected):
            return diagnose_d(d_loss, p_real, p_fake, d_expected, case)
        if not close(g_loss, g_expected):
            return diagnose_g(g_loss, p_fake, g_expected, case)
    return None


def diagnose_d(d_loss: Tensor, p_real: Tensor, p_fake: Tensor, expected: Tensor, case: str) -> str:
    if case == "sure":
        return ("right for moderate logits, but not where D is sure (logits 25, -110): sigma rounds to 0 or 1 "
                "in float32; write the losses with softplus: -log sigma(a) = softplus(-a)")
    if close(d_loss, bce(p_real, 0.0) + bce(p_fake, 1.0)):
        return "d_loss has the labels swapped: real data is labelled 1 (-log sigma(D(x))), generated 0"
    if close(d_loss, -expected):
        return "d_loss has the wrong sign: D minimises -V, the two cross-entropies, which are positive"
    both = torch.cat([p_real, p_fake])
    if close(d_loss, -(torch.log(p_real).sum() + torch.log(1 - p_fake).sum()) / len(both)):
        return ("d_loss is one mean over both batches together; it is a sum of two means, one per batch "
                "(the batches here differ in size, 64 real and 48 generated)")
    if close(d_loss, -(torch.log(p_real).sum() + torch.log(1 - p_fake).sum())):
        return "d_loss is a sum over examples; take the mean over each batch"
    return mismatch(d_loss, expected, "d_loss") or "d_loss is wrong"


def diagnose_g(g_loss: Tensor, p_fake: Tensor, expected: Tensor, case: str) -> str:
    if case == "sure":
        return ("right for moderate logits, but not where D is sure (logit -110): sigma rounds to 0 in float32; "
                "write -log sigma(a) as softplus(-a)")
    if close(g_loss, -bce(p_fake, 0.0)):
        return ("g_loss is the saturating minimax loss log(1 - sigma(D(G(z)))): it is flat where D rejects the "
                "samples; the non-saturating loss is -log sigma(D(G(z)))")
    if close(g_loss, bce(p_fake, 0.0)):
        return ("g_loss is D's loss on the generated batch, -log(1 - sigma(D(G(z)))): minimising it helps D; "
                "G wants its samples called real, -log sigma(D(G(z)))")
    if close(g_loss, -expected):
        return "g_loss has the wrong sign: G minimises -log sigma(D(G(z))), which is positive"
    if close(g_loss, expected * len(p_fake)):
        return "g_loss is a sum over the batch; take the mean"
    return mismatch(g_loss, expected, "g_loss") or "g_loss is wrong"


# ---------------------------------------------------------------------------------------------
# 2. Spectral normalisation: the largest singular value by power iteration.


def library_one_step(W: Tensor, u: Tensor) -> Tensor:
    """sigma after one step of the library's SpectralNorm (training mode) started from u."""
    with torch.random.fork_rng(devices=[]):  # SpectralNorm draws a random u; leave the learner's RNG alone
        sn = SpectralNorm(W).double().train()
    sn.u.copy_(u)
    with torch.no_grad():
        normalised = sn(W)  # W / sigma
    return W.norm() / normalised.norm()


def grade_spectral_norm(answer: Callable[[Tensor, Tensor, int], Tensor]) -> str | None:
    g = torch.Generator().manual_seed(1)
    W = torch.randn(6, 10, generator=g, dtype=torch.float64)  # (out, in): not square, so W and W^T differ
    u = torch.nn.functional.normalize(torch.randn(6, generator=g, dtype=torch.float64), dim=0)
    exact = torch.linalg.matrix_norm(W, 2)  # the largest singular value, from an SVD
    converged, problem = as_scalar(answer(W.clone(), u.clone(), 100), "sigma")
    if problem:
        return problem
    if close(converged, W.norm()):
        return (f"that is the Frobenius norm sqrt(sum of all sigma_i^2) = {W.norm().item():.4f}, not the largest "
                f"singular value {exact.item():.4f}: dividing by it over-shrinks W")
    if not torch.isfinite(converged) or converged > 10 * exact:
        return (f"after 100 steps the estimate is {converged.item():.4g}, against sigma_max = {exact.item():.4f}: "
                "normalise u and v to unit length at every step")
    if close(converged, exact.pow(2)):
        return "the estimate is sigma^2: with unit u and v, sigma = u^T W v (or ||W v||), not ||W^T W v||"
    if not close(converged, exact, 1e-6):
        return (f"after 100 steps of power iteration the estimate {converged.item():.6f} should equal the largest "
                f"singular value {exact.item():.6f} (torch.linalg.matrix_norm(W, 2))")
    one_step, problem = as_scalar(answer(W.clone(), u.clone(), 1), "sigma")
    if problem:
        return problem
    expected = library_one_step(W, u)
    if close(one_step, exact, 1e-6):
        return ("with steps = 1 the answer is already exact: use `steps` steps of power iteration from the u "
                "given, not an SVD (one step: v = W^T u / |.|, u = W v / |.|, sigma = u^T W v)")
    if close(one_step, (W.t() @ u).norm()):
        return ("after one step the estimate is ||W^T u||, from the old u; update u = W v / ||W v|| too and "
                "return u^T W v (Miyato et al. 2018, Algorithm 1)")
    return mismatch(one_step, expected, "sigma after one step from the given u (the library's SpectralNorm)",
                    1e-6, 1e-8)


# ---------------------------------------------------------------------------------------------
# 3. Counting the ring's modes covered.


def ring_point_sets() -> dict[str, Tensor]:
    """Seeded point sets, each made to catch one mistake; all scored with ring8_quality."""
    g = torch.Generator().manual_seed(2)
    centres = ring8_centres()

    def around(modes: Tensor, std: float) -> Tensor:
        return centres[modes] + std * torch.randn(len(modes), 2, generator=g)

    lopsided = torch.cat([torch.zeros(20, dtype=torch.long), torch.randint(1, 8, (980,), generator=g)])
    return {
        "the real ring (8 modes, std 0.05)": around(torch.randint(0, 8, (1000,), generator=g), RING8_STD),
        "a ring whose mode 0 holds 20 of 1,000 points (fewer than 1,000/32)": around(lopsided, RING8_STD),
        "a wide ring (std 0.1: many points 0.15 to 0.3 from a centre)": around(torch.arange(800) % 8, 0.1),
        "a blurry ring (std 0.3: about 15 of each mode's 125 points within 0.15)": around(torch.arange(1000) % 8, 0.3),
        "a collapsed GAN (everything near mode 3, plus points at the origin)": torch.cat(
            [around(torch.full((900,), 3), RING8_STD), 0.05 * torch.randn(100, 2, generator=g)]),
        "points spread evenly on the circle": even_ring(1000),
    }


def quality_with(x: Tensor, radius: float, threshold: float, good_only: bool = True) -> tuple[float, float]:
    """ring8_quality's two numbers with a different radius / coverage threshold: the usual mistakes."""
    distance, mode = torch.cdist(x, ring8_centres()).min(dim=1)
    good = distance < radius
    counts = torch.bincount(mode[good] if good_only else mode, minlength=8)
    return float((counts >= threshold).sum()), float(good.float().mean())


def grade_ring_modes(answer: Callable[[Tensor], tuple[float, float]]) -> str | None:
    for name, x in ring_point_sets().items():
        result = answer(x.clone())
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return "return two numbers, (modes, high_quality)"
        (modes, problem_m), (share, problem_s) = as_scalar(result[0], "modes"), as_scalar(result[1], "high_quality")
        if problem_m or problem_s:
            return problem_m or problem_s
        q = ring8_quality(x)
        expected_modes, expected_share = torch.tensor(q["modes"]).double(), torch.tensor(q["high_quality"]).double()
        if close(modes, expected_modes) and close(share, expected_share):
            continue
        n, radius = len(x), 3 * RING8_STD
        on = f"on {name}, "
        if modes > 8:
            return (on + f"modes = {modes.item():g}, but there are only 8: count the modes with enough "
                    "high-quality points on them, not the points")
        if share > 1:
            return on + f"high_quality = {share.item():g}: it is the share of the samples (0 to 1), not their count"
        if close(share, expected_share):
            if close(modes, torch.tensor(quality_with(x, radius, n / 32, good_only=False)[0]).double()):
                return (on + "modes counts every point towards its nearest mode; count only the high-quality "
                        "ones (within 0.15 of the centre)")
            if close(modes, torch.tensor(quality_with(x, radius, 1)[0]).double()):
                return (on + "a mode with a single high-quality point counts as covered: it needs at least n/32 "
                        f"(= {n / 32:g} here), a quarter of an even share")
            return (on + f"modes = {modes.item():g} where ring8_quality gives {q['modes']:g} (covered: at least "
                    f"n/32 = {n / 32:g} high-quality points nearest that centre)")
        for wrong in (RING8_STD, 2 * RING8_STD, 6 * RING8_STD, RING8_STD**2, 3 * RING8_STD**2):
            if close(share, torch.tensor(quality_with(x, wrong, n / 32)[1]).double()):
                return (on + f"high_quality matches a radius of {wrong:g}; high quality means within 3 standard "
                        f"deviations of the nearest centre, 3 x 0.05 = {radius:g} (a distance, not a variance)")
        return (on + f"high_quality = {share.item():.4f} where ring8_quality gives {expected_share.item():.4f} "
                f"(the share of points within {radius:g} of their nearest centre)")
    return None


GRADERS: dict[str, Grader] = {
    "losses": grade_losses,
    "spectral_norm": grade_spectral_norm,
    "ring_modes": grade_ring_modes,
}
