"""8-bit pixels: their 256 levels, and likelihoods over those levels that make bits/dim comparable.

genzoo holds an image as floats in [-1, 1]. Level k of a pixel (its uint8 value, 0..255) sits at

    x_k = k / 127.5 - 1

and owns the bin [x_k - 1/255, x_k + 1/255], of width 2/255, around it; the two end levels take the
tails, level 0 all of (-inf, -1 + 1/255] and level 255 all of [1 - 1/255, inf). A continuous density
integrated over these bins is a proper distribution over the 256 levels, so -log P(x) is a code length
in nats and bits/dim = -log P(x) / (D ln 2) means the same for every family on the same images.

Pixel likelihoods for a decoder that outputs P numbers per pixel, (B, P, H, W); each gives log p(x)
summed over pixels (B,), a mean image and a sampled image (the VAE's ``decoder`` choices):

- ``DiscretizedLogistic``: a mixture of M logistics per pixel, each integrated over the bins,
      P(k) = sum_m pi_m [sigmoid((x_k + 1/255 - mu_m) / s_m) - sigmoid((x_k - 1/255 - mu_m) / s_m)]
                                                                  (Salimans et al. 2017, PixelCNN++, eq. 2)
- ``Categorical256``: P(k) = softmax(logits)_k                     (van den Oord et al. 2016, PixelRNN, sec. 3.4)
- ``Bernoulli``: one logit per pixel of the binarised image b = [x > 0]: 1 bit per pixel, not 8.

``discretized_gaussian_log_likelihood`` integrates N(mean, std^2) over the bins (Ho et al. 2020,
eq. 13): the DDPM's decoder p(x_0 | x_1). ``log1mexp`` keeps its differences of CDFs accurate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LEVELS = 256  # 8-bit pixels
HALF_BIN = 1.0 / 255.0  # half the distance between neighbouring levels in [-1, 1]


# ----------------------------------------------------------------------------- levels


def nearest_level(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> the nearest level k = round((x + 1) * 127.5), as floats of x's dtype (unclamped)."""
    return ((x + 1) * 127.5).round()


def quantize(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> the centre x_k = k / 127.5 - 1 of the nearest level: the 8-bit image they stand for."""
    return nearest_level(x) / 127.5 - 1


def to_uint8(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> integers 0..255 (uint8), rounding to the nearest level."""
    return nearest_level(x.clamp(-1, 1)).to(torch.uint8)


def from_uint8(x: Tensor) -> Tensor:
    """Integers 0..255 -> float images in [-1, 1]: level k maps to k / 127.5 - 1."""
    return x.float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- decoder likelihoods


class DiscretizedLogistic:
    """Mixture of discretised logistics per pixel (Salimans et al. 2017, eq. 2)."""

    def __init__(self, n_mix: int):
        self.n_mix = n_mix
        self.params_per_pixel = 3 * n_mix  # mixture logits, means, log scales

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, mu, log_s = params.chunk(3, dim=1)  # each (B, M, H, W)
        return logits, mu, log_s.clamp(min=-7.0)  # a floor on s keeps the bins from collapsing

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logits, mu, log_s = self.split(params)
        x = quantize(x)  # the level's centre
        inv_s = torch.exp(-log_s)
        upper = (x + HALF_BIN - mu) * inv_s  # (B, M, H, W) standardised bin edges
        lower = (x - HALF_BIN - mu) * inv_s
        # log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log(1 - sigmoid(l)) + log(1 - e^(l - u)),
        # exact and stable without the small-bin special case of the PixelCNN++ code
        log_cdf_upper = -F.softplus(-upper)  # the bottom level's bin is (-inf, -1 + 1/255]
        log_sf_lower = -F.softplus(lower)  # the top level's bin is [1 - 1/255, inf)
        log_width = torch.log(-torch.expm1(-2 * HALF_BIN * inv_s))
        log_mid = log_cdf_upper + log_sf_lower + log_width
        log_p = torch.where(x > 1 - HALF_BIN, log_sf_lower, log_mid)  # the top level
        log_p = torch.where(x < -1 + HALF_BIN, log_cdf_upper, log_p)  # the bottom level
        log_p = torch.logsumexp(F.log_softmax(logits, dim=1) + log_p, dim=1)  # mix: (B, H, W)
        return log_p.sum(dim=(1, 2))  # (B,)

    def mean(self, params: Tensor) -> Tensor:
        logits, mu, _ = self.split(params)
        return (F.softmax(logits, dim=1) * mu).sum(1, keepdim=True).clamp(-1, 1)  # (B, 1, H, W)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        logits, mu, log_s = self.split(params)
        B, M, H, W = logits.shape
        probs = F.softmax(logits, dim=1).movedim(1, -1).reshape(-1, M)  # (B*H*W, M)
        pick = torch.multinomial(probs, 1, generator=generator).view(B, 1, H, W)  # a component per pixel
        mu, log_s = mu.gather(1, pick), log_s.gather(1, pick)  # (B, 1, H, W)
        u = torch.rand(mu.shape, generator=generator, device=mu.device).clamp(1e-5, 1 - 1e-5)
        x = mu + log_s.exp() * (torch.log(u) - torch.log1p(-u))  # inverse logistic CDF
        return quantize(x.clamp(-1, 1))


class Categorical256:
    """A 256-way softmax per pixel (van den Oord et al. 2016, PixelRNN, section 3.4)."""

    params_per_pixel = LEVELS

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        level = to_uint8(x).long()  # (B, 1, H, W)
        log_p = F.log_softmax(params, dim=1).gather(1, level)
        return log_p.sum(dim=(1, 2, 3))  # (B,)

    def mean(self, params: Tensor) -> Tensor:
        levels = torch.linspace(-1, 1, LEVELS, device=params.device).view(1, LEVELS, 1, 1)
        return (F.softmax(params, dim=1) * levels).sum(1, keepdim=True)  # (B, 1, H, W)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        probs = F.softmax(params, dim=1).movedim(1, -1).reshape(-1, LEVELS)
        level = torch.multinomial(probs, 1, generator=generator)
        return from_uint8(level.view(params.shape[0], 1, *params.shape[2:]))


class Bernoulli:
    """One logit per pixel of the binarised image b = [x > 0]."""

    params_per_pixel = 1

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        b = (x > 0).float()
        return -F.binary_cross_entropy_with_logits(params, b, reduction="none").sum(dim=(1, 2, 3))

    def mean(self, params: Tensor) -> Tensor:
        return 2 * torch.sigmoid(params) - 1  # the probability of "on", drawn as grey

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(params.shape, generator=generator, device=params.device)
        return torch.where(u < torch.sigmoid(params), 1.0, -1.0)


class PerChannel:
    """One of the pixel likelihoods above for each of C colour channels, the channels independent.

    The decoder gives C * P numbers per pixel, channel c's P at [c P, (c + 1) P); each channel is
    scored, averaged or sampled as a one-channel image and log p sums over the channels too. Given z a
    pixel's red, green and blue are independent (PixelCNN++ couples them: Salimans et al. 2017, sec. 2.2).
    """

    def __init__(self, pixels: DiscretizedLogistic | Categorical256 | Bernoulli, channels: int):
        self.pixels, self.channels = pixels, channels
        self.params_per_pixel = channels * pixels.params_per_pixel

    def _one_channel_images(self, params: Tensor) -> Tensor:
        B, _, H, W = params.shape
        return params.reshape(B * self.channels, -1, H, W)  # (B, C P, H, W) -> (B C, P, H, W)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        log_p = self.pixels.log_prob(self._one_channel_images(params), x.reshape(B * C, 1, H, W))  # (B C,)
        return log_p.view(B, C).sum(1)  # (B,)

    def mean(self, params: Tensor) -> Tensor:
        B, _, H, W = params.shape
        return self.pixels.mean(self._one_channel_images(params)).view(B, self.channels, H, W)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        B, _, H, W = params.shape
        return self.pixels.sample(self._one_channel_images(params), generator).view(B, self.channels, H, W)


# ----------------------------------------------------------------------------- the discretized Gaussian


def log1mexp(a: Tensor) -> Tensor:
    """log(1 - exp(a)) for a <= 0, accurate near 0 and for very negative a (Maechler 2012)."""
    return torch.where(a > -math.log(2), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def discretized_gaussian_log_likelihood(x0: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log P(level of x0) per element under N(mean, std^2) integrated over the level's bin.

    The end levels take the tails (Ho et al. 2020, eq. 13). The bin mass is taken on the side of the
    tail it lies in, so it stays accurate far from the mean (no difference of two CDFs close to 1).
    """
    x0 = quantize(x0)  # the level's centre
    inf = torch.full_like(x0, math.inf)
    upper = torch.where(x0 > 1 - HALF_BIN, inf, (x0 + HALF_BIN - mean) / std)  # standardised bin edges
    lower = torch.where(x0 < -1 + HALF_BIN, -inf, (x0 - HALF_BIN - mean) / std)
    log_cdf_u, log_cdf_l = torch.special.log_ndtr(upper), torch.special.log_ndtr(lower)
    left_tail = log_cdf_u + log1mexp(log_cdf_l - log_cdf_u)  # log(Phi(u) - Phi(l))
    log_sf_l, log_sf_u = torch.special.log_ndtr(-lower), torch.special.log_ndtr(-upper)
    right_tail = log_sf_l + log1mexp(log_sf_u - log_sf_l)  # log(Phi(-l) - Phi(-u)), the same mass
    return torch.where(upper + lower < 0, left_tail, right_tail)


def log_prob_per_pixel(
    pixels: DiscretizedLogistic | Categorical256 | Bernoulli | PerChannel, params: Tensor, x: Tensor
) -> Tensor:
    """log p of each pixel (B, H, W), its channels summed, where ``pixels.log_prob`` sums over the image:
    the pixels are independent given the parameters, so each is scored as a 1x1 image of its own."""
    B, P, H, W = params.shape
    one_by_one = params.permute(0, 2, 3, 1).reshape(B * H * W, P, 1, 1)  # (B H W, P, 1, 1)
    values = x.permute(0, 2, 3, 1).reshape(B * H * W, x.shape[1], 1, 1)  # (B H W, C, 1, 1)
    return pixels.log_prob(one_by_one, values).view(B, H, W)
