"""Normalizing flow: every layer inverts, every log-determinant is the Jacobian's, densities integrate to one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from genzoo.checkpoint import load_model
from genzoo.config import DataConfig, load_config
from genzoo.errors import ConfigError
from genzoo.metrics import bits_per_dim
from genzoo.models.flow import (
    ActNorm,
    AffineCoupling,
    Chain,
    ChannelCoupling,
    FactorOut,
    Flow,
    FlowConfig,
    Invert,
    InvertibleConv1x1,
    Logit,
    Squeeze,
    StandardNormal,
    UniformDequantization,
    VariationalDequantization,
    checkerboard_mask,
    conv_net,
    mlp_net,
)
from genzoo.sources import load_data
from genzoo.specs import ImageSpec, PointSpec
from helpers import trainer_for

ROOT = Path(__file__).resolve().parents[1]
SMALL = ImageSpec(name="small", shape=(1, 8, 8), num_classes=0)  # 64 dimensions: a Jacobian in milliseconds
MNIST = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
TINY = dict(checkerboard=2, checkerboard_hidden=8, steps=2, hidden=8, dequant_layers=2, dequant_hidden=8)


def perturb(module: nn.Module, std: float = 0.05, seed: int = 0) -> nn.Module:
    """Move every parameter off its (often identity) initialisation, so a test cannot pass trivially."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))
    for m in module.modules():
        if isinstance(m, ActNorm):
            m.initialised.fill_(True)
    return module


def small_flow(seed: int = 0, **kw) -> Flow:
    torch.manual_seed(seed)
    return perturb(Flow.from_config(FlowConfig(**{**TINY, **kw}), SMALL), seed=seed)


def layers_to_check() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """Each layer with the shape of one input; all of them in float64."""
    torch.manual_seed(0)
    layers = {
        "actnorm": (ActNorm(3), (3, 2, 2)),
        "actnorm_points": (ActNorm(2), (2,)),
        "conv1x1": (InvertibleConv1x1(4), (4, 2, 2)),
        "linear_points": (InvertibleConv1x1(2), (2,)),
        "checkerboard": (AffineCoupling(checkerboard_mask(4, 4, 1), conv_net(1, 8, 2)), (1, 4, 4)),
        "channel": (ChannelCoupling(4, conv_net(2, 8, 4)), (4, 2, 2)),
        "channel_swapped": (ChannelCoupling(4, conv_net(2, 8, 4), parity=1), (4, 2, 2)),
        "points": (ChannelCoupling(2, mlp_net(2, 16, 2), parity=1), (2,)),
        "squeeze": (Squeeze(), (2, 4, 4)),
        "unsqueeze": (Invert(Squeeze()), (8, 2, 2)),
        "factor_out": (FactorOut(Chain([InvertibleConv1x1(2), ActNorm(2)])), (4, 2, 2)),
        "logit": (Logit(1e-3), (1, 3, 3)),
    }
    return {name: (perturb(layer.double(), std=0.3), shape) for name, (layer, shape) in layers.items()}


LAYERS = layers_to_check()


def inputs(shape: tuple[int, ...], B: int, logit: bool) -> torch.Tensor:
    x = torch.randn(B, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return torch.sigmoid(x) if logit else x  # the logit takes (0, 1)


# -- every layer: inverse and log-determinant ------------------------------------------------------


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_inverts(name):
    layer, shape = LAYERS[name]
    x = inputs(shape, 5, name == "logit")
    with torch.no_grad():
        z, log_det = layer(x)
        x_back, log_det_back = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(log_det_back, -log_det, atol=1e-4, rtol=0)
    assert log_det.shape == (5,)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_log_det_is_the_jacobians(name):
    """log |det J| from torch.autograd.functional.jacobian, one example at a time, in float64."""
    layer, shape = LAYERS[name]
    x = inputs(shape, 3, name == "logit")
    _, log_det = layer(x)
    for b in range(3):
        J = torch.autograd.functional.jacobian(lambda v: layer(v.view(1, *shape))[0].flatten(), x[b].flatten())
        torch.testing.assert_close(log_det[b], torch.linalg.slogdet(J)[1], atol=1e-8, rtol=1e-8)
        z = layer(x[b : b + 1])[0]
        J_inv = torch.autograd.functional.jacobian(lambda v: layer.inverse(v.view(z.shape))[0].flatten(), z.flatten())
        torch.testing.assert_close(layer.inverse(z)[1][0], torch.linalg.slogdet(J_inv)[1], atol=1e-8, rtol=1e-8)


def test_conv1x1_is_a_rotation_at_init_and_lu_gives_the_weight():
    conv = InvertibleConv1x1(6)
    W = conv.weight()
    torch.testing.assert_close(W @ W.T, torch.eye(6), atol=1e-5, rtol=0)  # Kingma & Dhariwal 2018, sec. 3.2
    torch.testing.assert_close(conv.log_s.sum(), torch.linalg.slogdet(W)[1], atol=1e-5, rtol=0)


def test_coupling_changes_only_the_free_half():
    coupling = perturb(AffineCoupling(checkerboard_mask(4, 4, 0), conv_net(1, 8, 2)), std=0.3)
    x = torch.randn(2, 1, 4, 4)
    z, _ = coupling(x)
    kept = coupling.mask.bool().expand_as(x)
    assert torch.equal(z[kept], x[kept]) and not torch.allclose(z[~kept], x[~kept])


def test_variational_dequantization_density_is_its_jacobian():
    """log q(u | k) = log N(eps) - log |det du/deps| for the conditional flow eps -> u, brute force."""
    torch.manual_seed(0)
    couplings = [AffineCoupling(checkerboard_mask(4, 4, i % 2), conv_net(2, 8, 2)) for i in range(3)]
    dequant = perturb(VariationalDequantization(couplings).double(), std=0.3)
    k = torch.randint(0, 256, (1, 1, 4, 4)).double()
    eps = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    u, log_q = dequant.transform(eps, k)
    assert ((u > 0) & (u < 1)).all()
    J = torch.autograd.functional.jacobian(lambda e: dequant.transform(e.view(1, 1, 4, 4), k)[0].flatten(), eps.flatten())
    log_normal = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum()
    torch.testing.assert_close(log_q[0], log_normal - torch.linalg.slogdet(J)[1])


def test_coupling_with_a_context_inverts_given_the_same_context():
    """The dequantizer's couplings read the image as context; undoing one needs that same context."""
    coupling = perturb(AffineCoupling(checkerboard_mask(4, 4, 0), conv_net(2, 8, 2)).double(), std=0.3)
    x, context = torch.randn(3, 1, 4, 4, dtype=torch.float64), torch.rand(3, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        z, log_det = coupling(x, context)
        x_back, log_det_back = coupling.inverse(z, context)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(log_det_back, -log_det)


class Recorder(nn.Module):
    """Passes its input through and keeps it: what a conditioner network was shown."""

    def forward(self, h):
        self.seen = h.detach().clone()
        return h


def test_variational_dequantizer_shows_each_coupling_the_image_in_minus_1_to_1():
    """Every conditioner of q(u | k) reads the kept half of h and the image k / 127.5 - 1 (k = 0 -> -1, 255 -> 1)."""
    recorders = [Recorder(), Recorder()]
    couplings = [AffineCoupling(checkerboard_mask(2, 2, i), nn.Sequential(recorders[i], *conv_net(2, 4, 2)))
                 for i in range(2)]  # fmt: skip
    dequant = VariationalDequantization(couplings)
    k = torch.tensor([0.0, 1.0, 254.0, 255.0]).view(1, 1, 2, 2)
    dequant.transform(torch.randn(1, 1, 2, 2), k)
    for recorder in recorders:
        torch.testing.assert_close(recorder.seen[:, 1:], k / 127.5 - 1)


def test_variational_q_depends_on_the_image():
    """q(u | k) is conditional: the same noise gives different u (and log q) for different images."""
    dequant = perturb(Flow.from_config(FlowConfig(**TINY, dequantization="variational"), SMALL).dequantizer, std=0.3)
    eps = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        u_dark, log_q_dark = dequant.transform(eps, torch.zeros(1, 1, 8, 8))
        u_bright, log_q_bright = dequant.transform(eps, torch.full((1, 1, 8, 8), 255.0))
    assert (u_dark - u_bright).abs().max() > 1e-3 and (log_q_dark - log_q_bright).abs().item() > 1e-3
    assert len(dequant.couplings) == TINY["dequant_layers"]


def test_factor_out_splits_the_channels_in_half():
    """Half of the channels go on through the inner chain, the other half leave unchanged (8 channels)."""
    inner = perturb(Chain([InvertibleConv1x1(4), ActNorm(4)]), std=0.3)
    layer = FactorOut(inner)
    x = torch.randn(2, 8, 2, 2)
    with torch.no_grad():
        z, log_det = layer(x)
        torch.testing.assert_close(z[:, :4], inner(x[:, :4])[0])
        assert torch.equal(z[:, 4:], x[:, 4:])
        x_back, _ = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)


def test_point_conditioner_maps_one_half_to_scale_and_shift_for_the_other():
    """mlp_net(D, hidden, depth): D/2 inputs, ``depth`` hidden layers of ``hidden``, D outputs (log s and t)."""
    net = mlp_net(4, 16, 3)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 16), (16, 16), (16, 16), (16, 4)]
    assert not linears[-1].weight.any() and not linears[-1].bias.any()  # starts as the identity coupling


def test_point_flow_has_its_configured_glow_steps_alternating_the_transformed_half():
    flow = Flow.from_config(FlowConfig(layers=4, points_hidden=8, depth=1), PointSpec("moons", 2, 2))
    kinds = [type(layer) for layer in flow.layers]
    assert kinds == [ActNorm, InvertibleConv1x1, ChannelCoupling] * 4
    assert [layer.parity for layer in flow.layers if isinstance(layer, ChannelCoupling)] == [0, 1, 0, 1]


def test_glow_steps_of_an_image_flow_transform_the_half_that_is_factored_out():
    """Each image Glow step keeps the first half of the channels (which goes on to the next scale) and
    transforms the second, so the step before a factor-out is that half's learned conditional prior."""
    flow = small_flow()
    couplings = [m for m in flow.layers.modules() if isinstance(m, ChannelCoupling)]
    assert len(couplings) == TINY["steps"] * 2  # two scales
    for coupling in couplings:
        C = coupling.scale.numel() * 2
        x = torch.randn(2, C, 2, 2)
        with torch.no_grad():
            z, _ = coupling(x)
        assert torch.equal(z[:, : C // 2], x[:, : C // 2]) and not torch.allclose(z[:, C // 2 :], x[:, C // 2 :])


@pytest.mark.parametrize("scales", [1, 2, 3])
def test_image_flow_has_one_squeeze_and_its_glow_steps_per_scale(scales):
    """Scale l squeezes (C -> 4C), runs ``steps`` Glow steps, and hands half its channels to scale l + 1."""
    flow = Flow.from_config(FlowConfig(**{**TINY, "scales": scales}), SMALL)
    squeezes = [m for m in flow.layers.modules() if isinstance(m, Squeeze)]  # each scale's and its inverse's
    assert len(squeezes) == 2 * scales
    widths = [m.scale.numel() * 2 for m in flow.layers.modules() if isinstance(m, ChannelCoupling)]
    assert widths == [4 * 2**level for level in range(scales) for _ in range(TINY["steps"])]  # C = 1: 4, 8, 16


@pytest.mark.parametrize("shape", [(1, 8, 6), (1, 6, 8)])
def test_image_sides_must_divide_by_2_to_the_scales(shape):
    with pytest.raises(ConfigError, match="divisible by 4"):
        Flow.from_config(FlowConfig(**TINY), ImageSpec(name="odd", shape=shape, num_classes=0))


@pytest.mark.parametrize("part", ["checkerboard", "dequantizer"])
def test_consecutive_checkerboard_couplings_keep_complementary_pixels(part):
    """Coupling i keeps the pixels coupling i + 1 transforms (masks of parity 0, 1, 0, 1), so four of them
    transform every pixel twice."""
    cfg = FlowConfig(**{**TINY, "checkerboard": 4, "dequant_layers": 4, "dequantization": "variational"})
    flow = Flow.from_config(cfg, SMALL)
    layers = flow.layers if part == "checkerboard" else flow.dequantizer.couplings
    masks = [m.mask for m in layers if isinstance(m, AffineCoupling)]
    assert len(masks) == 4
    for i, mask in enumerate(masks):
        assert torch.equal(mask, checkerboard_mask(8, 8, i % 2))
        assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_actnorm_initialised_on_a_constant_channel_stays_finite():
    """A channel with no spread (a blank border, say) gets scale 1 / (0 + 1e-6), not log of a negative."""
    norm = ActNorm(2)
    x = torch.randn(64, 2, 3, 3)
    x[:, 1] = -1.0
    z, log_det = norm(x)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    assert norm.log_scale[1].item() == pytest.approx(-math.log(1e-6), rel=1e-6)


# -- the whole flow -------------------------------------------------------------------------------


@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_whole_flow_inverts_and_its_log_det_is_the_jacobians(dequantization):
    flow = small_flow(dequantization=dequantization).double()
    y = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        z, log_det = flow(y)
        y_back, log_det_back = flow.inverse(z)
    torch.testing.assert_close(y_back, y, atol=1e-4, rtol=0)
    torch.testing.assert_close(log_det_back, -log_det, atol=1e-4, rtol=0)
    J = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 1, 8, 8))[0].flatten(), y[0].flatten())
    torch.testing.assert_close(log_det[0], torch.linalg.slogdet(J)[1], atol=1e-6, rtol=1e-8)


def test_decode_encode_is_exact_on_8_bit_images():
    flow = small_flow()
    x = torch.randint(0, 256, (4, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    torch.testing.assert_close(flow.decode(flow.encode(x)), x)


def test_identity_flow_bits_per_dim_is_the_analytic_value():
    """No layers, N(0, 1) prior, uniform dequantization: per pixel of level k,
    -E log p = 1/2 log 2 pi + 1/2 E[((k + u)/256)^2] + log 256, E[(k + u)^2] = k^2 + k + 1/3."""
    flow = Flow(StandardNormal((1, 2, 2)), Chain([]), UniformDequantization())
    k = torch.tensor([0.0, 17.0, 128.0, 255.0])
    x = (k / 127.5 - 1).view(1, 1, 2, 2).expand(20_000, 1, 2, 2)
    torch.manual_seed(0)
    with torch.no_grad():
        nll = -flow.log_prob(x)
    expected = (0.5 * math.log(2 * math.pi) + 0.5 * (k**2 + k + 1 / 3) / 256**2 + math.log(256)).sum().item()
    standard_error = nll.std().item() / math.sqrt(len(nll))
    assert nll.mean().item() == pytest.approx(expected, abs=4 * standard_error + 1e-6)
    assert bits_per_dim(nll.mean().item(), 4) == pytest.approx(expected / (4 * math.log(2)), abs=1e-4)
    loss, metrics = flow.loss((x, None))
    assert metrics["loss"] == pytest.approx(expected / (4 * math.log(2)), abs=1e-3)


def test_decode_quantises_to_the_level_whose_bin_holds_y_and_clamps_outside_0_1():
    """k = floor(256 y), clamped to 0..255: an identity flow shows the quantiser alone."""
    flow = Flow(StandardNormal((1, 1, 7)), Chain([]), UniformDequantization())
    y = torch.tensor([-0.3, 0.0, 0.5 / 256, 128.7 / 256, 255.5 / 256, 1.0, 1.4]).view(1, 1, 1, 7)
    levels = torch.tensor([0.0, 0.0, 0.0, 128.0, 255.0, 255.0, 255.0]).view(1, 1, 1, 7)
    torch.testing.assert_close(flow.decode(y), levels / 127.5 - 1)


def test_sampling_draws_z_at_the_temperature_from_the_generator():
    """z ~ N(0, T^2 I): the same generator gives T times the T = 1 draw, and the default T is 1."""
    flow = small_flow()
    prior = flow.prior
    draw = lambda t: prior.sample(4, t, torch.Generator().manual_seed(5), torch.device("cpu"))  # noqa: E731
    torch.testing.assert_close(draw(0.5), 0.5 * draw(1.0))
    assert draw(1.0).shape == (4, 1, 8, 8) and 0.9 < draw(1.0).std() < 1.1
    seeded = lambda **kw: flow.sample(3, generator=torch.Generator().manual_seed(7), **kw)  # noqa: E731
    assert torch.equal(seeded(), seeded(temperature=1.0)) and torch.equal(seeded(), seeded())
    assert not torch.equal(seeded(), flow.sample(3, generator=torch.Generator().manual_seed(8)))
    cooled = flow.sample(4, temperature=0.5, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(cooled, flow.decode(draw(0.5)))


def test_log_prob_draws_the_configured_number_of_samples_by_default():
    """log_prob(x) with no ``samples`` uses the config's log_prob_samples (here 4 draws of u per image)."""
    flow = small_flow(log_prob_samples=4)
    x = torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    with torch.no_grad():
        torch.manual_seed(1)
        default = flow.log_prob(x)
        torch.manual_seed(1)
        four = flow.log_prob(x, samples=4)
        torch.manual_seed(1)
        one = flow.log_prob(x, samples=1)
    torch.testing.assert_close(default, four)
    assert not torch.allclose(default, one)


class Affine(nn.Module):
    """z = scale * y + shift on every dimension: log |det| = D log scale."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, y):
        return self.scale * y + self.shift, torch.full((len(y),), y[0].numel() * math.log(self.scale))

    def inverse(self, z):
        return (z - self.shift) / self.scale, torch.full((len(z),), -z[0].numel() * math.log(self.scale))


def bin_flow() -> Flow:
    """z = 2 (k + u) - 256 with z ~ N(0, I) and uniform q: the density of k + u is 2 N(2 (k + u) - 256), so
    each 8-bit level has the closed-form probability P(k) = Phi(2 k + 2 - 256) - Phi(2 k - 256), and a bin
    spans two standard deviations, across which the density changes a lot: a wide gap for the bound."""
    return Flow(StandardNormal((1, 2, 2)), Chain([Affine(2 * 256.0, -256.0)]), UniformDequantization())


BIN_LEVELS = torch.tensor([[[[127.0, 128.0], [129.0, 126.0]]]])  # z's bins: [-2, 0), [0, 2), [2, 4), [-4, -2)


def bin_flow_single_draw_bound(levels: torch.Tensor) -> torch.Tensor:
    """E_u log p(k + u) of bin_flow, by hand: z = 2 (k + u) - 256 is uniform on [lo, lo + 2), so
    E[z^2] = (lo^2 + lo (lo + 2) + (lo + 2)^2) / 3 and log p(k + u) = log 2 + log N(z; 0, 1)."""
    lo = 2 * levels - 256
    mean_sq = (lo**2 + lo * (lo + 2) + (lo + 2) ** 2) / 3
    return (math.log(2) - 0.5 * math.log(2 * math.pi) - 0.5 * mean_sq).sum()


def test_uniform_dequantization_bounds_against_their_closed_forms():
    """E[L_1] = E_u log p(k + u), computed by hand; L_S <= log P(k) for every S, and tends to it."""
    flow, x = bin_flow(), BIN_LEVELS / 127.5 - 1
    normal = torch.distributions.Normal(0.0, 1.0)
    lo = 2 * BIN_LEVELS - 256  # each pixel's z runs over [lo, lo + 2)
    log_P = (normal.cdf(lo + 2) - normal.cdf(lo)).log().sum()  # the exact log-probability of the image
    expected_L1 = bin_flow_single_draw_bound(BIN_LEVELS)
    torch.manual_seed(0)
    with torch.no_grad():
        one = flow.log_prob(x.repeat(20_000, 1, 1, 1), samples=1)
        many = flow.log_prob(x.repeat(200, 1, 1, 1), samples=1_000)
    assert abs(one.mean() - expected_L1) < 4 * one.std() / math.sqrt(len(one))
    assert log_P - one.mean() > 0.5  # the single draw's gap (2.5 nats: 4 pixels, bins 2 sd wide)
    assert (many.mean() - log_P).abs() < 0.03  # 1,000 draws close it (the mean of 200 such bounds)
    assert many.mean() - log_P < 4 * many.std() / math.sqrt(len(many))  # from below, up to its noise


def test_levels_0_and_255_and_values_past_them_have_the_closed_form_bound():
    """Pixels beyond [-1, 1] count as the nearest end level; E[L_1] for z = 2 (k + u) - 256 by hand."""
    flow = bin_flow()
    x = torch.tensor([[[[-1.0, -1.3], [1.0, 1.2]]]])  # levels 0, 0 (clamped), 255, 255 (clamped)
    expected_L1 = bin_flow_single_draw_bound(torch.tensor([0.0, 0.0, 255.0, 255.0]))
    torch.manual_seed(0)
    with torch.no_grad():
        one = flow.log_prob(x.repeat(4_000, 1, 1, 1), samples=1)
    tolerance = 4 * one.std() / math.sqrt(len(one)) + 1e-5 * abs(expected_L1)  # noise, and float32 rounding
    assert abs(one.mean() - expected_L1) < tolerance
    torch.manual_seed(1)
    default = flow.log_prob(x)
    torch.manual_seed(1)
    torch.testing.assert_close(default, flow.log_prob(x, samples=1))  # a flow built by hand: one draw by default


def test_bound_parts_are_log_pz_log_det_minus_D_log_256_and_minus_log_q():
    """One draw of the bound written out from its pieces: u ~ q(u | k), y = (k + u) / 256, z = f(y)."""
    flow = small_flow(dequantization="variational").double()
    x = torch.randint(0, 256, (3, 1, 8, 8), generator=torch.Generator().manual_seed(2)).double() / 127.5 - 1
    k = ((x + 1) * 127.5).round()
    torch.manual_seed(4)
    with torch.no_grad():
        parts = flow.bound_parts(x)
        torch.manual_seed(4)
        u, log_q = flow.dequantizer.transform(torch.randn_like(k), k)
        z, log_det = flow.layers((k + u) / 256)
    normal = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(parts["log_pz"], normal.log_prob(z).sum((1, 2, 3)))
    torch.testing.assert_close(parts["log_det"], log_det - 64 * math.log(256))
    torch.testing.assert_close(parts["neg_log_q"], -log_q)
    assert (log_q.abs() > 1).all()  # a learned q: the sign of log q matters


def test_importance_weighted_bound_tightens_with_samples_for_a_learned_q():
    """For a variational q, E[L_8] exceeds E[L_1] by many standard errors (Burda et al. 2016, theorem 1)."""
    flow = small_flow(dequantization="variational")
    x = torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(3)).float() / 127.5 - 1
    x = x.repeat(200, 1, 1, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        one, eight = flow.log_prob(x, samples=1), flow.log_prob(x, samples=8)
    assert one.shape == eight.shape == (400,)
    se = (one.var() / len(one) + eight.var() / len(eight)).sqrt()
    assert eight.mean() - one.mean() > 4 * se


@pytest.mark.slow  # trains for several seconds: left out of mutation runs
def test_2d_density_integrates_to_one():
    flow = train_points("moons", steps=300)
    grid = torch.linspace(-5, 5, 801)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
    cell = (grid[1] - grid[0]) ** 2
    assert density.sum().item() * cell.item() == pytest.approx(1.0, abs=0.02)


# -- training -------------------------------------------------------------------------------------


def train_points(name: str, steps: int, layers: int = 6) -> Flow:
    torch.manual_seed(0)
    data = load_data(DataConfig(name=name))
    flow = Flow.from_config(FlowConfig(layers=layers, points_hidden=64), data.spec)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    stream = data.train_stream(256, seed=0)
    for _ in range(steps):
        loss, _ = flow.loss(next(stream))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return flow.eval()


def test_shapes_and_metrics():
    flow = Flow.from_config(FlowConfig(**TINY), MNIST)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    loss, metrics = flow.loss((x, torch.zeros(3, dtype=torch.long)))
    assert loss.shape == () and loss.requires_grad
    assert set(metrics) == {"loss", "log_pz_bits", "log_det_bits", "neg_log_q_bits"}
    assert metrics["loss"] == pytest.approx(sum(v for k, v in metrics.items() if k != "loss"), rel=1e-5)
    flow.eval()
    assert flow.log_prob(x).shape == (3,)
    for t in (0.5, 1.0):
        s = flow.sample(5, temperature=t, generator=torch.Generator().manual_seed(0))
        assert s.shape == (5, 1, 28, 28) and s.min() >= -1 and s.max() <= 1
        torch.testing.assert_close(((s + 1) * 127.5).round(), (s + 1) * 127.5, atol=1e-4, rtol=0)  # 8-bit levels
    assert "exact" in flow.latent and flow.likelihood == "bound"
    points = Flow.from_config(FlowConfig(layers=2), PointSpec("moons", 2, 2))
    assert points.sample(7).shape == (7, 2) and points.log_prob(torch.randn(7, 2)).shape == (7,)
    assert set(points.loss((torch.randn(7, 2), None))[1]) == {"loss", "log_pz_bits", "log_det_bits"}


def test_likelihood_is_labelled_a_bound_for_8_bit_images_and_exact_for_points():
    """log_prob of an 8-bit image is the dequantization bound (Theis et al. 2016); of a point, the density."""
    images = Flow.from_config(FlowConfig(**TINY), MNIST)
    points = Flow.from_config(FlowConfig(layers=2), PointSpec("moons", 2, 2))
    assert images.likelihood == "bound" and points.likelihood == "exact"
    x = torch.full((1, 1, 28, 28), -1.0)
    with torch.no_grad():
        draws = torch.stack([images.log_prob(x) for _ in range(4)])
    assert draws.std() > 0  # a bound estimated by drawing u: it moves from draw to draw, an exact value would not


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    flow = Flow.from_config(FlowConfig(**TINY), SMALL)
    x = torch.full((16, 1, 8, 8), -1.0)
    x[:, :, 2:6, 3:5] = 1.0  # a bright bar on black, like a stroke of a digit
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = flow.loss((x, None))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_actnorm_initialises_once_from_data_and_the_flag_survives_a_state_dict_round_trip():
    norm = ActNorm(3)
    x = 5 + 3 * torch.randn(500, 3, 4, 4)
    z, _ = norm(x)  # training mode: data-dependent initialisation
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std((0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    fresh = ActNorm(3)
    fresh.load_state_dict(norm.state_dict())
    assert fresh.initialised
    z_fresh, _ = fresh(torch.randn(10, 3, 4, 4) * 100)  # other data: no second initialisation
    torch.testing.assert_close(fresh.bias, norm.bias)
    assert not ActNorm(3).eval()(x)[0].isclose(z).all()  # in eval mode an uninitialised one stays identity


def test_configs_load_and_build():
    cfg = load_config(ROOT / "configs" / "flow_mnist.toml")
    flow = Flow.from_config(cfg.model, MNIST)
    assert sum(p.numel() for p in flow.parameters()) < 2_000_000
    moons = load_config(ROOT / "configs" / "flow_moons.toml")
    assert isinstance(Flow.from_config(moons.model, PointSpec("moons", 2, 2)).layers[0], ActNorm)
    with pytest.raises(ConfigError, match="dequantization"):
        Flow.from_config(FlowConfig(dequantization="gaussian"), MNIST)
    with pytest.raises(ConfigError, match="scales"):
        Flow.from_config(FlowConfig(scales=3), MNIST)


def test_trainer_end_to_end_and_reload(tmp_path):
    config = tmp_path / "moons.toml"
    config.write_text(
        'family = "flow"\n[model]\nlayers = 2\npoints_hidden = 16\n[data]\nname = "moons"\nbatch_size = 64\n'
        "[train]\nmax_steps = 20\neval_every = 10\neval_batches = 2\nsample_every = 20\nn_samples = 50\nema_decay = 0.9\n"
        "[sample]\ntemperature = 0.8\n"
    )
    trainer = trainer_for(config, tmp_path / "run")
    run = trainer.fit()
    assert (run.run_dir / "samples" / "step_000020.png").is_file()
    model, cfg, spec = load_model(run.run_dir)
    assert all(m.initialised for m in model.modules() if isinstance(m, ActNorm))
    x = torch.randn(5, 2)
    torch.testing.assert_close(model.log_prob(x), run.sampling_model.log_prob(x))  # the loaded model is the saved one
    assert model.likelihood == "exact"  # rebuilt from its config: still the flow on continuous points
