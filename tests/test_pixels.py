"""8-bit pixels: the levels, and that every pixel likelihood is a proper distribution over them."""

from __future__ import annotations

import math

import pytest
import torch

from genzoo.pixels import (
    HALF_BIN,
    LEVELS,
    Bernoulli,
    Categorical256,
    DiscretizedLogistic,
    discretized_gaussian_log_likelihood,
    from_uint8,
    log1mexp,
    quantize,
    to_uint8,
)

LEVEL_CENTRES = torch.arange(LEVELS).float() / 127.5 - 1  # level k at k / 127.5 - 1


# -- the levels ----------------------------------------------------------------------------------


def test_quantize_puts_level_k_at_its_centre_and_is_idempotent():
    assert torch.equal(quantize(LEVEL_CENTRES), LEVEL_CENTRES)
    assert torch.equal(from_uint8(torch.arange(LEVELS, dtype=torch.uint8)), LEVEL_CENTRES)
    x = torch.rand(10_000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    q = quantize(x)
    assert torch.equal(quantize(q), q)
    assert (q - x).abs().max() <= HALF_BIN + 1e-6  # the nearest level: within half a bin
    assert torch.equal(q, from_uint8(to_uint8(x)))  # the same level as the uint8 round trip


# -- the decoder likelihoods ---------------------------------------------------------------------


@pytest.mark.parametrize("pixels", [DiscretizedLogistic(1), DiscretizedLogistic(4), Categorical256()])
def test_8_bit_pixel_probabilities_sum_to_one(pixels):
    """For each pixel, p(level) summed over the 256 levels is 1, also for extreme parameters."""
    g = torch.Generator().manual_seed(0)
    params = torch.randn(12, pixels.params_per_pixel, 1, 1, generator=g) * 3  # 12 one-pixel images
    if isinstance(pixels, DiscretizedLogistic):
        M = pixels.n_mix
        params[:4, M : 2 * M] = torch.tensor([-3.0, 2.0, 0.9999, -0.5]).view(4, 1, 1, 1)  # means off the grid
        params[4:8, 2 * M :] = torch.tensor([-9.0, -5.0, 3.0, 6.0]).view(4, 1, 1, 1)  # tiny and huge scales
    x = LEVEL_CENTRES.view(256, 1, 1, 1, 1).expand(256, 12, 1, 1, 1).reshape(256 * 12, 1, 1, 1)
    log_p = pixels.log_prob(params.repeat(256, 1, 1, 1), x).view(256, 12)
    torch.testing.assert_close(log_p.logsumexp(0).exp(), torch.ones(12), atol=1e-4, rtol=0)


@pytest.mark.parametrize("pixels", [DiscretizedLogistic(2), Categorical256()])
def test_8_bit_pixel_samples_lie_on_the_levels(pixels):
    params = torch.randn(3, pixels.params_per_pixel, 4, 4, generator=torch.Generator().manual_seed(0))
    x = pixels.sample(params, torch.Generator().manual_seed(1))
    assert x.shape == (3, 1, 4, 4) and torch.equal(quantize(x), x) and x.abs().max() <= 1


def test_discretized_logistic_matches_cdf_differences():
    """The stable log-space formula equals P(bin) = sigmoid(upper) - sigmoid(lower) in float64."""
    g = torch.Generator().manual_seed(1)
    pixels = DiscretizedLogistic(2)
    params = torch.randn(2, 6, 5, 5, generator=g).double()
    params[:, 4:] = params[:, 4:] - 2.0  # scales around e^-2: bins are resolved, not tails only
    x = torch.randint(0, 256, (2, 1, 5, 5), generator=g).double() / 127.5 - 1
    x[0, 0, 0] = -1.0
    x[0, 0, 1] = 1.0  # both end bins appear
    logits, mu, log_s = params.chunk(3, dim=1)
    s = log_s.exp()
    upper = torch.where(x > 0.999, 1.0, torch.sigmoid((x + 1 / 255 - mu) / s))
    lower = torch.where(x < -0.999, 0.0, torch.sigmoid((x - 1 / 255 - mu) / s))
    p = (torch.softmax(logits, dim=1) * (upper - lower)).sum(1)  # (B, H, W)
    torch.testing.assert_close(pixels.log_prob(params, x), p.log().sum((1, 2)), atol=1e-8, rtol=1e-8)


def test_bernoulli_probabilities_sum_to_one_and_binarise():
    pixels = Bernoulli()
    params = torch.randn(6, 1, 1, 1, generator=torch.Generator().manual_seed(0)) * 4  # 6 one-pixel images
    on, off = torch.ones(6, 1, 1, 1), -torch.ones(6, 1, 1, 1)
    total = pixels.log_prob(params, on).exp() + pixels.log_prob(params, off).exp()
    torch.testing.assert_close(total, torch.ones(6))
    x = torch.rand(6, 1, 1, 1) * 2 - 1  # any grey level counts as its binarised value
    binarised = torch.where(x > 0, 1.0, -1.0)
    torch.testing.assert_close(pixels.log_prob(params, x), pixels.log_prob(params, binarised))


# -- the discretized Gaussian --------------------------------------------------------------------


def test_discretized_gaussian_sums_to_one_over_the_256_levels():
    for mean, std in [(0.0, 0.01), (0.9999, 0.003), (-1.3, 0.05), (2.5, 0.01), (0.3, 3.0), (-0.21, 1e-4)]:
        log_p = discretized_gaussian_log_likelihood(LEVEL_CENTRES, torch.full((256,), mean), torch.tensor(std))
        assert log_p.logsumexp(0).exp().item() == pytest.approx(1.0, abs=1e-4)


def test_discretized_gaussian_matches_a_direct_cdf_difference():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (200,), generator=g).float() / 127.5 - 1
    mean = x0 + 0.02 * torch.randn(200, generator=g)
    std = torch.tensor(0.015)
    normal = torch.distributions.Normal(mean.double(), std.double())
    upper = torch.where(x0 > 0.999, 1.0, normal.cdf(x0.double() + 1 / 255))
    lower = torch.where(x0 < -0.999, 0.0, normal.cdf(x0.double() - 1 / 255))
    expected = torch.log(upper - lower)
    log_p = discretized_gaussian_log_likelihood(x0, mean, std)
    torch.testing.assert_close(log_p.double(), expected, atol=1e-3, rtol=1e-4)


def test_uint8_round_trip_is_exact_at_every_level():
    levels = torch.arange(256, dtype=torch.uint8)
    x = from_uint8(levels)
    assert x[0] == -1.0 and x[-1] == 1.0 and torch.all(x[1:] > x[:-1])
    assert torch.equal(to_uint8(x), levels)


# -- sampling and the mean image -----------------------------------------------------------------


def three_pixel_params(pixels) -> torch.Tensor:
    """(1, P, 1, 3): one image of three pixels with three different distributions over the levels."""
    g = torch.Generator().manual_seed(3)
    if isinstance(pixels, DiscretizedLogistic):  # two components each: weights, means, log scales
        logits = torch.tensor([[2.0, -1.0], [0.0, 0.0], [-2.0, 1.0]])
        means = torch.tensor([[-0.6, 0.3], [0.9, -0.2], [0.1, 0.5]])
        log_scales = torch.tensor([[-3.0, -2.5], [-4.0, -2.0], [-3.5, -3.0]])
        return torch.cat([logits, means, log_scales], 1).T.reshape(1, 6, 1, 3)
    if isinstance(pixels, Categorical256):
        return (torch.randn(1, LEVELS, 1, 3, generator=g) * 2).contiguous()
    return torch.tensor([-1.5, 0.0, 2.0]).view(1, 1, 1, 3)


def level_probabilities(pixels, params: torch.Tensor) -> torch.Tensor:
    """(3, 256): P(level k) of each pixel, from log_prob one pixel at a time."""
    rows = []
    for j in range(params.shape[-1]):
        one = params[..., j : j + 1].expand(LEVELS, -1, 1, 1)
        rows.append(pixels.log_prob(one, LEVEL_CENTRES.view(LEVELS, 1, 1, 1)).exp())
    return torch.stack(rows)


@pytest.mark.parametrize("pixels", [DiscretizedLogistic(2), Categorical256()])
def test_8_bit_samples_follow_the_pixel_distribution(pixels):
    """Sampled levels' frequencies match P(k) from log_prob, pixel by pixel (total variation < 0.04)."""
    params = three_pixel_params(pixels)
    draws = pixels.sample(params.expand(20_000, -1, -1, -1), torch.Generator().manual_seed(0))  # (N, 1, 1, 3)
    levels = to_uint8(draws).long().view(-1, 3)
    expected = level_probabilities(pixels, params)
    for j in range(3):
        frequencies = torch.bincount(levels[:, j], minlength=LEVELS).double() / len(levels)
        assert 0.5 * (frequencies - expected[j].double()).abs().sum() < 0.04, j


def test_bernoulli_samples_are_on_with_probability_sigmoid():
    params = three_pixel_params(Bernoulli())
    draws = Bernoulli().sample(params.expand(20_000, -1, -1, -1), torch.Generator().manual_seed(0)).view(-1, 3)
    assert set(draws.unique().tolist()) == {-1.0, 1.0}
    on = (draws > 0).double().mean(0)
    torch.testing.assert_close(on, torch.sigmoid(params.view(3)).double(), atol=0.015, rtol=0)


@pytest.mark.parametrize("pixels", [DiscretizedLogistic(2), Categorical256(), Bernoulli()])
def test_mean_image_is_the_expected_sample(pixels):
    """mean(params) is E[x] under the pixel distribution, from P(k) (or p(on)), within its rounding."""
    params = three_pixel_params(pixels)
    if isinstance(pixels, Bernoulli):
        expected = 2 * torch.sigmoid(params.view(3)) - 1  # E[x] = p(on) - (1 - p(on))
    else:
        expected = (level_probabilities(pixels, params) * LEVEL_CENTRES).sum(1)
    tolerance = 2 * HALF_BIN if isinstance(pixels, DiscretizedLogistic) else 1e-5  # the mixture mean is not quantised
    torch.testing.assert_close(pixels.mean(params).view(3), expected, atol=tolerance, rtol=0)


def test_samples_are_reproducible_from_the_generator():
    for pixels in (DiscretizedLogistic(2), Categorical256(), Bernoulli()):
        params = three_pixel_params(pixels).expand(50, -1, -1, -1)
        first, again = (pixels.sample(params, torch.Generator().manual_seed(4)) for _ in range(2))
        assert torch.equal(first, again)
        assert not torch.equal(first, pixels.sample(params, torch.Generator().manual_seed(5)))


def test_discretized_logistic_mean_is_clipped_to_the_image_range():
    """Channels: 2 mixture logits, 2 means, 2 log scales; both components past 1 (or -1) give 1 (or -1)."""
    params = torch.tensor([[0.0, 0.0, 1.5, 1.2, -3.0, -3.0], [0.0, 0.0, -1.5, -1.8, -3.0, -3.0]]).view(2, 6, 1, 1)
    torch.testing.assert_close(DiscretizedLogistic(2).mean(params), torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))


def test_log1mexp_is_accurate_near_0_and_far_from_it_in_float32():
    a = torch.tensor([-1e-10, -1e-6, -0.3, -0.69, -0.7, -5.0])
    exact = torch.tensor([math.log(-math.expm1(v)) for v in a.tolist()])
    torch.testing.assert_close(log1mexp(a), exact, rtol=1e-5, atol=1e-20)


def test_a_mixture_of_m_logistics_takes_3_m_numbers_per_pixel():
    for n_mix in (1, 3):
        pixels = DiscretizedLogistic(n_mix)
        assert pixels.n_mix == n_mix and pixels.params_per_pixel == 3 * n_mix
        params = torch.randn(2, pixels.params_per_pixel, 2, 2, generator=torch.Generator().manual_seed(n_mix))
        assert pixels.log_prob(params, torch.zeros(2, 1, 2, 2)).shape == (2,)


def test_logistic_scales_below_exp_minus_7_are_floored():
    """log s is clamped at -7, so a bin keeps a mass the float32 arithmetic can hold."""
    params = torch.tensor([0.0, 0.3, -7.0]).view(1, 3, 1, 1)
    x = torch.full((1, 1, 1, 1), 0.3)
    floored = DiscretizedLogistic(1).log_prob(params, x)
    params[0, 2] = -12.0
    torch.testing.assert_close(DiscretizedLogistic(1).log_prob(params, x), floored)
    params[0, 2] = -6.5
    assert not torch.allclose(DiscretizedLogistic(1).log_prob(params, x), floored)


def test_to_uint8_clips_to_the_image_range():
    x = torch.tensor([-1.7, -1.0, -0.999, 0.0, 0.999, 1.0, 1.4])
    levels = to_uint8(x)
    assert levels.dtype == torch.uint8
    assert levels.tolist() == [0, 0, 0, 128, 255, 255, 255]


def test_discretized_gaussian_is_accurate_far_in_either_tail():
    """Bins 20 standard deviations below or above the mean: the log mass against float64's log Phi."""
    mean, std = torch.tensor(0.0), torch.tensor(0.02)
    x0 = torch.tensor([-0.4, 0.4])  # quantised to the nearest levels below
    centre = quantize(x0).double()
    u, l = (centre + HALF_BIN) / 0.02, (centre - HALF_BIN) / 0.02
    log_phi = torch.special.log_ndtr
    exact = torch.where(
        centre < 0,
        log_phi(u) + torch.log(-torch.expm1(log_phi(l) - log_phi(u))),
        log_phi(-l) + torch.log(-torch.expm1(log_phi(-u) - log_phi(-l))),
    )
    got = discretized_gaussian_log_likelihood(x0, mean, std).double()
    assert torch.isfinite(got).all() and (exact < -150).all()
    torch.testing.assert_close(got, exact, rtol=1e-4, atol=0)
