"""GAN: each player's step moves only its own network, the losses' formulas, the optimal discriminator,
R1, the projection discriminator, the ring's modes, and the trainer end to end with resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from genzoo.checkpoint import build_model, load_model
from genzoo.config import DataConfig, load_config
from genzoo.errors import ConfigError
from genzoo.metrics import ring8_quality
from genzoo.model import OptimConfig, optimize
from genzoo.models.gan import (
    GAN,
    Discriminator,
    GANConfig,
    discriminator_loss,
    generator_loss,
    image_features,
    point_features,
    r1_penalty,
)
from genzoo.nn import with_spectral_norm
from genzoo.sources import load_data
from genzoo.specs import ImageSpec, PointSpec
from helpers import assert_same_weights, digit_like_batch, trainer_for

SPEC = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
ROOT = Path(__file__).resolve().parents[1]


def tiny_image_model(seed: int = 0, **kw) -> GAN:
    torch.manual_seed(seed)
    return GAN.from_config(GANConfig(**{"latent_dim": 8, "channels": (16, 8), **kw}), SPEC)


def snapshot(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b))


# -- the two phases of a training step -----------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"conditional": True, "r1_gamma": 1.0, "loss": "hinge", "n_critic": 2}])
def test_each_phase_moves_only_its_own_network(kw):
    """Snapshots at each optimizer step: D's steps leave G as it was, G's step leaves D as it was."""
    model = tiny_image_model(**kw)
    opts = model.configure_optimizers(OptimConfig(lr=1e-3, betas=(0.5, 0.999)))
    seen = []  # (which optimizer stepped, G's and D's parameters just after)
    for name, opt in opts.items():
        opt.register_step_post_hook(lambda o, a, k, name=name: seen.append((name, snapshot(model.generator), snapshot(model.discriminator))))
    g0, d0 = snapshot(model.generator), snapshot(model.discriminator)
    metrics = model.training_step(digit_like_batch(8), opts, step=0, clip=1.0)
    assert [name for name, _, _ in seen] == ["discriminator"] * model.n_critic + ["generator"]
    g_before = g0
    d_before = d0
    for name, g, d in seen:
        if name == "discriminator":
            assert same(g, g_before) and not same(d, d_before)
        else:
            assert same(d, d_before) and not same(g, g_before)
        g_before, d_before = g, d
    assert all(p.requires_grad for p in model.discriminator.parameters())  # switched back on after G's step
    assert {"loss", "d_loss", "g_loss", "d_real", "d_fake", "r1", "d_grad_norm", "g_grad_norm"} == set(metrics)
    assert metrics["loss"] == metrics["d_loss"]


def test_generator_step_leaves_no_gradient_on_the_discriminator():
    """G's step differentiates through D to its input but adds nothing to D's weight gradients."""
    model = tiny_image_model()
    opts = model.configure_optimizers(OptimConfig(lr=1e-3))
    after_d_step = []
    opts["discriminator"].register_step_post_hook(
        lambda o, a, k: after_d_step.append([p.grad.clone() for p in model.discriminator.parameters()])
    )
    model.training_step(digit_like_batch(4), opts, step=0, clip=0.0)
    assert same([p.grad for p in model.discriminator.parameters()], after_d_step[-1])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())


# -- the losses ----------------------------------------------------------------------------------

REAL = [2.0, -1.0, 0.5, 0.0]
FAKE = [-3.0, 0.0, 1.5, 4.0]


def sigmoid(a: float) -> float:
    return 1 / (1 + math.exp(-a))


def test_nonsaturating_losses_match_the_formulas_on_hand_set_logits():
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    d = sum(-math.log(sigmoid(r)) for r in REAL) / 4 + sum(-math.log(1 - sigmoid(f)) for f in FAKE) / 4
    g = sum(-math.log(sigmoid(f)) for f in FAKE) / 4
    assert discriminator_loss(real, fake, "nonsaturating").item() == pytest.approx(d, rel=1e-6)
    assert generator_loss(fake, "nonsaturating").item() == pytest.approx(g, rel=1e-6)
    # the saturating loss log(1 - sigma(D(G(z)))) would have gradient -sigma(f): ~0 where D rejects a sample
    fake.requires_grad_(True)
    generator_loss(fake, "nonsaturating").backward()
    torch.testing.assert_close(fake.grad, torch.tensor([-(1 - sigmoid(f)) / 4 for f in FAKE]))
    assert abs(fake.grad[0]) > 0.2  # f = -3: D is sure it is fake, yet G still gets a strong gradient
    big = torch.tensor([100.0, -100.0])
    assert torch.isfinite(discriminator_loss(big, -big, "nonsaturating")) and torch.isfinite(generator_loss(-big, "nonsaturating"))


def test_hinge_losses_match_the_formulas_on_hand_set_logits():
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    d = sum(max(0.0, 1 - r) for r in REAL) / 4 + sum(max(0.0, 1 + f) for f in FAKE) / 4
    assert d == pytest.approx((0 + 2 + 0.5 + 1) / 4 + (0 + 1 + 2.5 + 5) / 4)
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(d, rel=1e-6)
    assert generator_loss(fake, "hinge").item() == pytest.approx(-sum(FAKE) / 4, rel=1e-6)


# -- R1 ------------------------------------------------------------------------------------------


class Quadratic(nn.Module):
    """D(x) = sum_i a_i x_i^2, whose gradient 2 a x is known in closed form."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x, y=None):
        return (self.a * x**2).flatten(1).sum(1)


def test_r1_matches_the_closed_form_gradient_and_reaches_the_weights():
    g = torch.Generator().manual_seed(0)
    a, x = torch.randn(1, 3, 3, generator=g), torch.randn(5, 1, 3, 3, generator=g)
    D = Quadratic(a.clone())
    r1, logits = r1_penalty(D, x, None)
    expected = ((2 * a * x) ** 2).flatten(1).sum(1).mean()  # E ||grad_x D(x)||^2
    torch.testing.assert_close(r1, expected)
    torch.testing.assert_close(logits, D(x))
    r1.backward()  # d/da of mean_b sum_i 4 a_i^2 x_bi^2 = 8 a_i mean_b x_bi^2: the penalty trains D
    torch.testing.assert_close(D.a.grad, 8 * a * (x**2).mean(0))


def test_r1_matches_finite_differences_on_a_conv_discriminator():
    torch.manual_seed(0)
    features, dim = image_features(1, (4, 8), 8)
    D = Discriminator(features, dim, num_classes=3).double()
    x, y = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 2, 1])
    with torch.no_grad():  # the penalty switches grad mode on by itself (validation runs without grad)
        r1, _ = r1_penalty(D, x, y)
        h, grads = 1e-6, torch.zeros_like(x)
        for i in range(64):
            e = torch.zeros(64, dtype=torch.float64)
            e[i] = h
            e = e.view(1, 1, 8, 8)
            grads.view(3, 64)[:, i] = (D(x + e, y) - D(x - e, y)) / (2 * h)
    assert r1.item() == pytest.approx(grads.pow(2).flatten(1).sum(1).mean().item(), rel=1e-6)


def test_r1_term_is_added_with_gamma_over_two():
    model = tiny_image_model(r1_gamma=4.0, spectral_norm=False)
    batch = digit_like_batch(6)
    torch.manual_seed(3)
    total, metrics = model.discriminator_step_loss(batch)
    assert metrics["r1"] > 0
    assert total.item() == pytest.approx(metrics["d_loss"] + 2.0 * metrics["r1"], rel=1e-5)


def test_spectral_norm_divides_by_the_largest_singular_value():
    torch.manual_seed(0)
    layer = with_spectral_norm(nn.Linear(20, 30))
    for _ in range(30):  # each call in training mode takes one step of power iteration
        weight = layer.weight
    assert torch.linalg.matrix_norm(weight.detach(), ord=2).item() == pytest.approx(1.0, rel=1e-2)
    layer.eval()
    layer.parametrizations.weight[0].u.mul_(0.1)  # like an EMA's average of u: no longer a unit vector
    assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, rel=1e-5)


def conv_operator_norm(conv: nn.Conv2d, input_shape: tuple, iterations: int = 200) -> float:
    """The largest singular value of x -> conv(x) without bias, on inputs of ``input_shape``, by power
    iteration on A^T A (A^T y is the gradient of <A x, y> with respect to x)."""
    weight = conv.weight.detach()
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0))
    for _ in range(iterations):
        x = (x / x.norm()).requires_grad_(True)
        y = nn.functional.conv2d(x, weight, stride=conv.stride, padding=conv.padding)
        (x,) = torch.autograd.grad(y, x, y)  # A^T A x
    x = x / x.norm()
    return nn.functional.conv2d(x, weight, stride=conv.stride, padding=conv.padding).norm().item()


def test_spectral_norm_of_a_reshaped_kernel_does_not_make_a_convolution_1_lipschitz():
    """gan.py's "Not here": each conv of the image D has sigma(kernel reshaped to (out, in k k)) = 1, yet
    the convolution's operator norm is above 1, and at most k / stride = 2 for D's 4x4 stride-2 layers."""
    model = tiny_image_model(channels=(16, 32)).eval()  # eval: exact sigma
    shapes = {}
    hooks = [m.register_forward_pre_hook(lambda m, args: shapes.setdefault(m, args[0].shape[1:]) and None)
             for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]
    model.discriminator(torch.randn(2, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    assert len(shapes) >= 2
    for conv, shape in shapes.items():
        kernel = conv.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(kernel, ord=2).item() == pytest.approx(1.0, rel=1e-5)
        norm = conv_operator_norm(conv, tuple(shape))
        assert 1.05 < norm <= conv.kernel_size[0] / conv.stride[0] + 1e-3, (conv, norm)


# -- the optimal discriminator ---------------------------------------------------------------------


class Affine(nn.Module):
    """A fixed generator G(z) = mu + sigma z: p_g = N(mu, sigma^2)."""

    def __init__(self, mu: float, sigma: float):
        super().__init__()
        self.mu, self.sigma = mu, sigma
        self.unused = nn.Parameter(torch.zeros(1))  # an optimizer needs a parameter

    def forward(self, z, y=None):
        return self.mu + self.sigma * z


@pytest.mark.slow  # trains for several seconds: left out of mutation runs
def test_discriminator_trained_alone_approaches_the_optimal_discriminator():
    """D*(x) = p_data / (p_data + p_g) (Goodfellow et al. 2014, prop. 1) for p_data = N(1, 0.5^2), p_g = N(0, 1)."""
    torch.manual_seed(0)
    features, dim = point_features(1, 64, 3)
    model = GAN(Affine(0.0, 1.0), Discriminator(features, dim), latent_dim=1, data_shape=(1,))
    opt = model.configure_optimizers(OptimConfig(lr=3e-3, betas=(0.9, 0.99)))["discriminator"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(1500):
            x = 1.0 + 0.5 * torch.randn(512, 1)
            loss, _ = model.discriminator_step_loss((x, torch.zeros(512, dtype=torch.long)))
            optimize(opt, loss, clip=0.0)
    finally:
        torch.set_num_threads(threads)
    grid = torch.linspace(-0.5, 2.0, 51)[:, None]
    p_data = torch.distributions.Normal(1.0, 0.5).log_prob(grid).exp()
    p_g = torch.distributions.Normal(0.0, 1.0).log_prob(grid).exp()
    with torch.no_grad():
        d = torch.sigmoid(model.discriminator(grid)).squeeze()
    optimal = (p_data / (p_data + p_g)).squeeze()
    assert (d - optimal).abs().max() < 0.06, (d - optimal).abs().max()
    assert optimal.max() - optimal.min() > 0.5  # the test has something to find


# -- conditioning, sampling, state ---------------------------------------------------------------


def test_projection_discriminator_adds_the_label_embedding_dot_the_features():
    model = tiny_image_model(conditional=True, spectral_norm=False)
    D = model.discriminator
    x, y = digit_like_batch(5)
    with torch.no_grad():
        phi = D.features(x)
        expected = D.head(phi).squeeze(1) + (D.labels.weight[y] * phi).sum(1)
        torch.testing.assert_close(D(x, y), expected)
        assert not torch.allclose(D(x, y), D(x, (y + 1) % 10))


def test_shapes_and_sampling_options():
    model = tiny_image_model(conditional=True).eval()
    x, y = digit_like_batch(5)
    loss, metrics = model.loss((x, y))
    assert loss.shape == () and set(metrics) == {"loss", "d_loss", "g_loss", "d_real", "d_fake", "r1"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert model.generator(torch.randn(5, 8), y).shape == (5, 1, 28, 28)
    assert model.discriminator(x, y).shape == (5,)
    samples = model.sample(7, labels=[3])
    assert samples.shape == (7, 1, 28, 28) and samples.abs().max() <= 1 and not samples.requires_grad
    seen = []
    model.generator.labels.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    model.sample(4, labels=[3])
    assert seen[-1].tolist() == [3, 3, 3, 3]
    z = model.noise(2000, truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    strip = model.interpolate(3, steps=6, generator=torch.Generator().manual_seed(1), labels=[1, 2, 3])
    assert strip.shape == (3, 6, 1, 28, 28)
    first = model.sample(3, generator=torch.Generator().manual_seed(1), labels=[1, 2, 3])
    torch.testing.assert_close(strip[:, 0], first)  # the walks start at the samples of the same seed
    points = GAN.from_config(GANConfig(hidden=16, depth=2), PointSpec("ring8", 2, 8))
    assert points.sample(9).shape == (9, 2) and points.latent == "the 64-d Gaussian noise z"
    with pytest.raises(ValueError, match="unconditional"):
        tiny_image_model().sample(1, labels=[1])


def test_state_dict_holds_spectral_norm_and_batch_norm_state():
    model = tiny_image_model(conditional=True)
    opts = model.configure_optimizers(OptimConfig(lr=1e-3))
    for _ in range(3):
        model.training_step(digit_like_batch(8), opts, step=0, clip=0.0)
    keys = set(model.state_dict())
    assert any(k.endswith("parametrizations.weight.0.u") for k in keys)  # the power iteration's vectors
    assert any(k.endswith("running_mean") for k in keys)
    other = tiny_image_model(conditional=True, seed=1)
    other.load_state_dict(model.state_dict())
    model.eval(), other.eval()
    x, y = digit_like_batch(4)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(other.sample(4, generator=g), model.sample(4, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(other.discriminator(x, y), model.discriminator(x, y))


def test_configs_load_and_build():
    for name in ("gan_mnist", "gan_ring", "gan_ring_collapse"):
        cfg = load_config(ROOT / "configs" / f"{name}.toml")
        spec = SPEC if cfg.data.name == "mnist" else PointSpec("ring8", 2, 8)
        model = build_model(cfg, spec)
        assert isinstance(model, GAN) and model.likelihood == "none"
    mnist = build_model(load_config(ROOT / "configs" / "gan_mnist.toml"), SPEC)
    assert mnist.conditional and sum(p.numel() for p in mnist.parameters()) < 2_000_000
    with pytest.raises(ConfigError, match="loss"):
        GAN.from_config(GANConfig(loss="wasserstein"), SPEC)
    with pytest.raises(ConfigError, match="n_critic"):
        GAN.from_config(GANConfig(n_critic=0), SPEC)


# -- the ring: a short run finds the modes -------------------------------------------------------


@pytest.mark.slow  # trains for several seconds: left out of mutation runs
def test_ring_short_run_covers_at_least_6_of_8_modes():
    """configs/gan_ring.toml's model and optimizer (R1, n_critic = 2, beta1 = 0.5), 1,500 steps, one thread."""
    torch.manual_seed(0)
    data = load_data(DataConfig(name="ring8"))
    cfg = load_config(ROOT / "configs" / "gan_ring.toml")
    model = build_model(cfg, data.spec)
    opts = model.configure_optimizers(OptimConfig(lr=cfg.train.lr, betas=cfg.train.betas))
    stream = data.train_stream(cfg.data.batch_size, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is as fast, and does not stall on busy shared cores
    try:
        for step in range(1500):
            model.training_step(next(stream), opts, step, clip=0.0)
    finally:
        torch.set_num_threads(threads)
    quality = ring8_quality(model.eval().sample(1000, generator=torch.Generator().manual_seed(0)))
    assert quality["modes"] >= 6 and quality["high_quality"] > 0.3, quality


# -- the trainer ---------------------------------------------------------------------------------

TINY = (
    'family = "gan"\n[model]\nhidden = 32\ndepth = 2\nlatent_dim = 8\nr1_gamma = 0.1\nspectral_norm = true\n'
    'conditional = true\n[data]\nname = "ring8"\nbatch_size = 32\n'
    "[train]\nmax_steps = 12\neval_every = 6\neval_batches = 2\nsample_every = 6\nn_samples = 50\n"
    "checkpoint_every = 6\nema_decay = 0.9\nwarmup_steps = 2\nbetas = [0.5, 0.999]\n"
)


def test_trainer_end_to_end_with_exact_resume(tmp_path):
    config = tmp_path / "ring.toml"
    config.write_text(TINY)
    straight = trainer_for(config, tmp_path / "a")
    straight.fit()
    halves = trainer_for(config, tmp_path / "b")
    halves.fit(stop_at=6)
    resumed = trainer_for(config, tmp_path / "b")
    resumed.resume(tmp_path / "b")
    resumed.fit()
    assert resumed.step == straight.step == 12
    assert_same_weights(straight, resumed)
    run = tmp_path / "a"
    assert (run / "samples" / "step_000012.png").is_file() and (run / "last.pt").is_file()
    val = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert '"modes"' in val[-1] and '"g_loss"' in val[-1]  # the trainer scores the ring for mode collapse
    model, cfg, spec = load_model(run)
    assert isinstance(model, GAN) and model.sample(5, labels=[2]).shape == (5, 2)


# -- the latent walk, the generator's loss, truncation and the two optimizers ----------------------


class LatentOut(nn.Module):
    """A generator that returns its latent: G(z) = z, so the walk itself can be read off."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z, y=None):
        return z


def test_interpolate_is_slerp_between_two_latents_by_hand():
    """z(t) = (sin((1 - t) w) z0 + sin(t w) z1) / sin(w), cos w = z0.z1 / |z0||z1| (White 2016), t = 0..1."""
    model = tiny_image_model()
    model.generator, model.data_shape = LatentOut(), (model.latent_dim,)
    walk = model.interpolate(3, 5, generator=torch.Generator().manual_seed(4))  # (3, 5, latent_dim)
    g = torch.Generator().manual_seed(4)
    z0, z1 = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    for i in range(3):
        a, b = z0[i].double(), z1[i].double()
        w = math.acos(float(a @ b / (a.norm() * b.norm())))
        for j, t in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
            expected = (math.sin((1 - t) * w) * a + math.sin(t * w) * b) / math.sin(w)
            torch.testing.assert_close(walk[i, j].double(), expected, atol=1e-5, rtol=1e-5)
    assert model.interpolate(2, generator=torch.Generator().manual_seed(0)).shape == (2, 10, 8)  # 10 steps


@pytest.mark.parametrize("kind", ["nonsaturating", "hinge"])
def test_generator_step_loss_is_the_configured_loss_of_d_on_g(kind):
    model = tiny_image_model(loss=kind).eval()  # eval: exact sigma, so two passes see the same D
    torch.manual_seed(0)
    loss, metrics = model.generator_step_loss(6, None)
    torch.manual_seed(0)
    with torch.no_grad():
        logits = model.discriminator(model.generator(torch.randn(6, model.latent_dim)))
    expected = -logits.mean() if kind == "hinge" else torch.nn.functional.softplus(-logits).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and metrics["g_loss"] == loss.item()


def test_truncation_reaches_the_samples():
    model = tiny_image_model()
    model.generator, model.data_shape = LatentOut(), (model.latent_dim,)
    z = model.sample(200, truncation=0.5, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5 and z.abs().max() > 0.45
    torch.manual_seed(1)  # the redraws come from the generator too, not from the global seed
    again = model.sample(200, truncation=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, again, rtol=0, atol=0)


def test_each_player_gets_its_own_learning_rate_and_shares_the_rest():
    model = tiny_image_model(g_lr=5e-4)
    optimizers = model.configure_optimizers(OptimConfig(lr=2e-4, weight_decay=0.01, betas=(0.5, 0.9)))
    d, g = optimizers["discriminator"].param_groups[0], optimizers["generator"].param_groups[0]
    assert (d["lr"], g["lr"]) == (2e-4, 5e-4)
    assert d["weight_decay"] == g["weight_decay"] == 0.01 and d["betas"] == g["betas"] == (0.5, 0.9)


@pytest.mark.parametrize("kind, gamma", [("nonsaturating", 0.5), ("hinge", 0.5), ("hinge", 0.0)])
def test_discriminator_step_loss_is_the_configured_loss_plus_half_gamma_r1(kind, gamma):
    """L_D by hand (Goodfellow et al. eq. 1 negated, or Miyato et al. eq. 16) plus gamma / 2 times
    E ||grad_x D(x)||^2 on the real batch (Mescheder et al. 2018, eq. 9)."""
    model = tiny_image_model(loss=kind, r1_gamma=gamma).eval()
    x, _ = digit_like_batch(5)
    torch.manual_seed(0)
    loss, metrics = model.discriminator_step_loss((x, None))
    torch.manual_seed(0)
    fake = model.generator(torch.randn(5, model.latent_dim)).detach()
    xr = x.clone().requires_grad_(True)
    real = model.discriminator(xr)
    (grad,) = torch.autograd.grad(real.sum(), xr)
    fake_logits, real = model.discriminator(fake).detach(), real.detach()
    if kind == "hinge":
        d_loss = torch.relu(1 - real).mean() + torch.relu(1 + fake_logits).mean()
    else:
        d_loss = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake_logits)).mean()
    r1 = grad.pow(2).sum((1, 2, 3)).mean() if gamma > 0 else torch.tensor(0.0)
    assert loss.item() == pytest.approx((d_loss + gamma / 2 * r1).item(), rel=1e-4)
    assert metrics["r1"] == pytest.approx(r1.item(), rel=1e-4)
    assert metrics["d_loss"] == pytest.approx(d_loss.item(), rel=1e-4)
