"""The flow notebook's exercises: the affine coupling's inverse, its log-determinant, and bits/dim.

- ``coupling_inverse``: ``answer(z, mask, scale_shift) -> x``, the inverse of the affine coupling
  z = m x + (1 - m)(x e^s + t), (s, t) = scale_shift(m x). Graded by a round trip: the grader pushes
  random x through the library's ``AffineCoupling.forward`` (random, fixed weights) and asks for x back.
- ``coupling_log_det``: ``answer(x, mask, scale_shift) -> (B,)``, log |det dz/dx| of the same coupling.
  Graded against the brute-force determinant of the Jacobian from ``torch.autograd.functional.jacobian``.
- ``bits_per_dim``: ``answer(log_p, k) -> (B,)``, the bits/dim bound of 8-bit images k from a continuous
  density log_p over y = (k + u) / 256, with one uniform draw of u per image. Graded against the closed
  form for a Gaussian density (the expectation over u is a sum of squares) and the exact value for the
  y the answer passed to log_p.

``scale_shift(kept)`` returns (s, t) for every entry, masked or not (as a conditioner network does);
the answer decides which entries they act on.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from genzoo.exercises import Grader, mismatch
from genzoo.models.flow import AffineCoupling, checkerboard_mask, conv_net, scale_and_shift

ScaleShift = Callable[[Tensor], "tuple[Tensor, Tensor]"]
LEVELS = 256


def random_coupling(seed: int, parity: int = 0, side: int = 4) -> tuple[AffineCoupling, ScaleShift]:
    """A checkerboard coupling on (1, side, side) images with random, fixed weights (not the identity it
    starts as), in float64, and its conditioner: kept entries -> (s, t) for every entry, unmasked."""
    torch.manual_seed(seed)
    coupling = AffineCoupling(checkerboard_mask(side, side, parity), conv_net(1, 16, 2)).double()
    torch.nn.init.normal_(coupling.net[-1].weight, std=0.3)
    torch.nn.init.normal_(coupling.net[-1].bias, std=0.3)
    with torch.no_grad():
        coupling.scale.fill_(1.5)

    def scale_shift(kept: Tensor) -> tuple[Tensor, Tensor]:
        return scale_and_shift(coupling.net(kept), coupling.scale)

    return coupling, scale_shift


def close(actual: Tensor, expected: Tensor, tol: float = 1e-6) -> bool:
    return actual.shape == expected.shape and bool(torch.allclose(actual, expected, rtol=tol, atol=tol))


# ---------------------------------------------------------------------------------------------
# 1. The inverse of an affine coupling.


def grade_coupling_inverse(answer: Callable[[Tensor, Tensor, ScaleShift], Tensor]) -> str | None:
    for parity in (0, 1):
        coupling, scale_shift = random_coupling(seed=10 + parity, parity=parity)
        mask = coupling.mask
        x = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(parity))
        with torch.no_grad():
            z, _ = coupling(x)  # the library's forward
            x_back = answer(z.clone(), mask, scale_shift)
        if not isinstance(x_back, Tensor):
            return f"return a tensor x of the shape of z, not a {type(x_back).__name__}"
        if x_back.shape != x.shape:
            return f"x has shape {tuple(x_back.shape)}, expected {tuple(x.shape)}, the shape of z"
        if close(x_back, x):
            continue
        free = 1 - mask
        with torch.no_grad():
            s, t = scale_shift(z * mask)
            s_wrong, t_wrong = scale_shift(z * free)
        if not close(x_back * mask, z * mask):
            return ("the kept entries (mask = 1) come back changed: the forward left them alone, so the inverse "
                    "must copy them from z unchanged")
        if close(x_back * free, free * (z - t) * s.exp()):
            return ("the free entries are multiplied by e^s (or divided by e^-s): the forward multiplied them "
                    "by e^s, so the inverse multiplies by e^-s")
        if close(x_back * free, free * (z * (-s).exp() - t)):
            return ("the shift is removed after the scale: the forward scaled then shifted, so undo the shift "
                    "first, x = (z - t) e^-s")
        if close(x_back * free, free * z * (-s).exp()) or close(x_back * free, free * (z + t) * (-s).exp()):
            return "the shift t is not undone: subtract it, x = (z - t) e^-s on the free entries"
        if close(x_back * free, free * (z - t_wrong) * (-s_wrong).exp()):
            return ("s and t are computed from the wrong half: the forward computed them from the kept entries "
                    "m * x, which z still holds unchanged, so call scale_shift(z * mask)")
        return mismatch(x_back, x, "the inverse's x (round trip through the library's forward)", 1e-6, 1e-6)
    return None


# ---------------------------------------------------------------------------------------------
# 2. The log-determinant of an affine coupling.


def brute_force_log_det(coupling: AffineCoupling, x: Tensor) -> Tensor:
    """log |det dz/dx| of each image, from the full Jacobian of the library's forward."""
    shape = x.shape[1:]
    out = []
    for image in x:
        J = torch.autograd.functional.jacobian(lambda v: coupling(v.view(1, *shape))[0].flatten(), image.flatten())
        out.append(torch.linalg.slogdet(J)[1])
    return torch.stack(out)


def grade_coupling_log_det(answer: Callable[[Tensor, Tensor, ScaleShift], Tensor]) -> str | None:
    for parity in (0, 1):
        coupling, scale_shift = random_coupling(seed=20 + parity, parity=parity)
        mask = coupling.mask
        x = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5 + parity))
        expected = brute_force_log_det(coupling, x)
        with torch.no_grad():
            log_det = answer(x.clone(), mask, scale_shift)
        log_det = torch.as_tensor(log_det, dtype=torch.float64)
        if log_det.shape != expected.shape:
            if log_det.numel() == 1 and close(log_det.reshape(()), expected.sum()):
                return ("one number for the whole batch: return log|det| of each example, shape (B,) (sum over "
                        "every dimension but the first)")
            return (f"the log-determinant has shape {tuple(log_det.shape)}, expected one per example "
                    f"{tuple(expected.shape)}")
        if close(log_det, expected):
            continue
        with torch.no_grad():
            s, _ = scale_shift(x * mask)
        per_example = lambda v: v.flatten(1).sum(1)  # noqa: E731
        if close(log_det, -expected):
            return "the sign is flipped: the forward scales the free entries by e^s, so log|det| = +sum of s"
        if close(log_det, per_example(mask * s)):
            return ("s is summed over the kept entries (mask = 1); it is the free entries (1 - mask) that are "
                    "scaled by e^s, so sum (1 - mask) * s")
        if close(log_det, per_example(s)):
            return "s is summed over every entry: only the free entries (1 - mask) are scaled, sum (1 - mask) * s"
        if close(log_det, per_example((1 - mask) * s.exp())) or close(log_det, per_example(s.exp())):
            return "that sums e^s: the determinant is the product of e^s, so its log is the sum of s itself"
        if close(log_det, -per_example((1 - mask) * s)):
            return "the sign is flipped: the forward scales the free entries by e^s, so log|det| = +sum of s"
        return mismatch(log_det, expected, "log|det J| (brute force: slogdet of autograd's Jacobian)", 1e-6, 1e-6)
    return None


# ---------------------------------------------------------------------------------------------
# 3. Bits/dim of 8-bit images from a continuous density.


class GaussianDensity:
    """log N(y; mu, sigma^2 I) in nats per image, recording the y it is called on."""

    def __init__(self, mu: Tensor, sigma: float):
        self.mu, self.sigma, self.calls = mu, sigma, []

    def __call__(self, y: Tensor) -> Tensor:
        self.calls.append(y.detach().clone())
        z = (y - self.mu) / self.sigma
        return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi) - math.log(self.sigma)).flatten(1).sum(1)

    def expected_bits(self, k: Tensor) -> Tensor:
        """E_u of -(log p((k + u)/256) - D log 256) / (D ln 2), u ~ U[0, 1)^D, in closed form:
        E[(y - mu)^2] = ((k + 1/2)/256 - mu)^2 + 1 / (12 * 256^2) per pixel."""
        D = k[0].numel()
        square = ((k + 0.5) / LEVELS - self.mu) ** 2 + 1 / (12 * LEVELS**2)
        per_pixel = 0.5 * square / self.sigma**2 + 0.5 * math.log(2 * math.pi) + math.log(self.sigma)
        nats = per_pixel.flatten(1).sum(1)
        return (nats + D * math.log(LEVELS)) / (D * math.log(2))


def grade_bits_per_dim(answer: Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]) -> str | None:
    g = torch.Generator().manual_seed(3)
    images, copies, D = 4, 1000, 16
    levels = torch.randint(0, LEVELS, (images, 1, 4, 4), generator=g).double()
    sigma = 0.004  # narrow: a bin (1/256 wide) matters, so where y falls in it shows in the number
    mu = (levels + torch.rand(levels.shape, generator=g, dtype=torch.float64)) / LEVELS
    density = GaussianDensity(mu.repeat(copies, 1, 1, 1), sigma)
    k = levels.repeat(copies, 1, 1, 1)  # (4000, 1, 4, 4): each image 1000 times, row i is image i % 4
    torch.manual_seed(0)
    bits = answer(density, k.clone())
    if not isinstance(bits, Tensor):
        return f"return a tensor of bits/dim, one per image, not a {type(bits).__name__}"
    bits = bits.detach().double()
    if bits.shape != (len(k),):
        if bits.numel() == 1:
            return "one number for the whole batch: return the bits/dim of each image, shape (B,)"
        return f"the result has shape {tuple(bits.shape)}, expected one number per image ({len(k)},)"
    if not density.calls:
        return "log_p was never called: the bound is built from log_p((k + u) / 256)"
    y = density.calls[-1]
    if y.shape != k.shape:
        return f"log_p was called on shape {tuple(y.shape)}, expected the images' shape {tuple(k.shape)}"
    if torch.equal(y, k / LEVELS) or torch.equal(y, (k + 0.5) / LEVELS):
        return ("y is not dequantized: add uniform noise u ~ U[0, 1) to each level before scaling, "
                "y = (k + u) / 256 (torch.rand_like(k))")
    if not torch.equal((y * LEVELS).floor().clamp(0, LEVELS - 1), k):
        if ((y + 1) * 127.5).floor().equal(k) or (y * 255).floor().equal(k):
            return "y is on the wrong scale: the density is over y = (k + u) / 256 in [0, 1), bins 1/256 wide"
        return "y = (k + u) / 256 must fall in the bin of its level k: [k / 256, (k + 1) / 256)"
    if (y * LEVELS - k).std() < 0.2:
        return "u should be uniform on [0, 1) (torch.rand_like), one draw per pixel"
    log_p = GaussianDensity(density.mu, sigma)(y)  # the exact value for the y the answer used
    exact = -(log_p - D * math.log(LEVELS)) / (D * math.log(2))
    if not close(bits, exact, 1e-6):
        difference = (bits - exact).mean().item()
        if close(bits, exact - math.log2(LEVELS), 1e-6):
            return ("off by exactly 8 bits/dim: log_p is a density of y = (k + u) / 256; the density of k + u "
                    "is p(y) / 256 per pixel, so subtract D log 256 before converting")
        if close(bits, exact - 2 * math.log2(LEVELS), 1e-6):
            return "off by 16 bits/dim: the D log 256 has the wrong sign; log P(k) >= log p(y) - D log 256"
        if close(bits, exact - math.log2(LEVELS) + math.log2(127.5), 1e-6) or close(
            bits, exact - math.log2(LEVELS / 127.5), 1e-6
        ):
            return ("off by log2(256/127.5): 127.5 is the scale of images in [-1, 1]; y = (k + u) / 256 is in "
                    "[0, 1) with bins 1/256 wide, so the term is D log 256")
        if close(bits, exact * math.log(2), 1e-6):
            return "that is in nats per dimension: divide by ln 2 for bits"
        if close(bits, exact * D, 1e-6) or close(bits, exact * D * math.log(2), 1e-6):
            return "that is per image: divide by the number of pixels D = k[0].numel() for bits per dimension"
        if close(bits, -exact, 1e-6):
            return "the sign is flipped: bits/dim is -log2 P / D, a positive code length"
        return (f"bits/dim differ from -(log p(y) - D log 256) / (D ln 2) at the y you passed to log_p, by "
                f"{difference:.4g} on average")
    # The expectation over u in closed form, against the mean of the answers per image (within 5 standard errors).
    expected = GaussianDensity(mu, sigma).expected_bits(levels)
    per_image = bits.view(copies, images)
    tolerance = 5 * per_image.std(0).max().item() / math.sqrt(copies) + 1e-6
    problem = mismatch(per_image.mean(0), expected, f"the mean bits/dim over {copies} draws of u", 0, tolerance)
    return None if problem is None else f"{problem}, the closed form for uniform u: is u uniform on [0, 1)?"


GRADERS: dict[str, Grader] = {
    "coupling_inverse": grade_coupling_inverse,
    "coupling_log_det": grade_coupling_log_det,
    "bits_per_dim": grade_bits_per_dim,
}
