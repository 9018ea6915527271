"""DDPM: the forward process, the posterior, DDIM vs ancestral steps, guidance, the bound, learning."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from genzoo.checkpoint import load_model
from genzoo.config import DataConfig, load_config
from genzoo.errors import ConfigError
from genzoo.models.ddpm import DDPM, DDPMConfig, NoiseSchedule
from genzoo.nn import TimeMLP, UNet
from genzoo.sources import load_data
from genzoo.specs import ImageSpec, PointSpec
from helpers import digit_like_batch, losses_on_fixed_batch, trainer_for

SPEC = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
RING = PointSpec(name="ring8", dim=2, num_classes=8)
ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = [NoiseSchedule.cosine, NoiseSchedule.linear]


def tiny_image_model(seed: int = 0, **kw) -> DDPM:
    torch.manual_seed(seed)
    cfg = DDPMConfig(**{"timesteps": 20, "channels": (8, 16, 16), **kw})
    return DDPM.from_config(cfg, SPEC)


class LinearEps(nn.Module):
    """A small deterministic noise predictor for any shape: a 1x1 conv of x_t plus a function of t."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.constant_(self.conv.weight, 0.4)
        nn.init.constant_(self.conv.bias, 0.05)

    def forward(self, x, t, y=None):
        return self.conv(x) + 0.01 * t.float().view(-1, 1, 1, 1)


# -- the forward process -------------------------------------------------------------------------


@pytest.mark.parametrize("make", SCHEDULES)
def test_forward_process_closed_form_matches_the_markov_chain(make):
    """Running q(x_t | x_{t-1}) step by step (eq. 2) gives the moments of q(x_t | x_0) (eq. 4)."""
    schedule = make(50)
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0]).double()
    g = torch.Generator().manual_seed(0)
    x = x0.expand(100_000, 4).clone()
    for t in range(1, 51):
        beta = schedule.betas[t].double()
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
        if t in (1, 10, 50):
            alpha_bar = schedule.alpha_bar[t].double()
            torch.testing.assert_close(x.mean(0), alpha_bar.sqrt() * x0, atol=0.01, rtol=0)
            torch.testing.assert_close(x.var(0), (1 - alpha_bar).expand(4), atol=0.01, rtol=0.02)
            xt = schedule.q_sample(x0.float().expand(100_000, 4), t, torch.randn(100_000, 4, generator=g)).double()
            torch.testing.assert_close(xt.mean(0), x.mean(0), atol=0.015, rtol=0)
            torch.testing.assert_close(xt.var(0), x.var(0), atol=0.01, rtol=0.03)


def test_schedules_reach_noise_and_match_their_definitions():
    cosine, linear = NoiseSchedule.cosine(1000), NoiseSchedule.linear(1000)
    assert cosine.T == linear.T == 1000 and cosine.alpha_bar[0] == 1 and cosine.betas[0] == 0
    assert cosine.alpha_bar[-1] < 1e-4 and linear.alpha_bar[-1] < 1e-4
    torch.testing.assert_close(linear.betas[[1, -1]], torch.tensor([1e-4, 0.02]))
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731 (N&D 2021, eq. 17)
    assert cosine.alpha_bar[500].item() == pytest.approx(f(500) / f(0), rel=1e-5)
    torch.testing.assert_close(cosine.alpha_bar[1:], torch.cumprod(1 - cosine.betas[1:].double(), 0).float())


@pytest.mark.parametrize("make", SCHEDULES)
@pytest.mark.parametrize("t", [1, 2, 7, 30, 50])
def test_posterior_matches_bayes_rule_on_a_grid(make, t):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): its moments by numerical integration."""
    schedule = make(50)
    x0, xt = torch.tensor([0.3]), torch.tensor([-0.5])
    mean, var = schedule.posterior(x0, xt, t)
    if t == 1:  # x_0 is known: the posterior is a point mass
        assert mean.item() == pytest.approx(0.3, abs=1e-6) and var.item() == 0
        return
    beta, alpha_bar_prev = schedule.betas[t].double(), schedule.alpha_bar[t - 1].double()
    grid = torch.linspace(-6, 6, 400_001, dtype=torch.float64)
    log_density = (
        torch.distributions.Normal((1 - beta).sqrt() * grid, beta.sqrt()).log_prob(xt.double())
        + torch.distributions.Normal(alpha_bar_prev.sqrt() * 0.3, (1 - alpha_bar_prev).sqrt()).log_prob(grid)
    )
    w = torch.softmax(log_density, 0)
    grid_mean = (w * grid).sum()
    grid_var = (w * (grid - grid_mean) ** 2).sum()
    assert mean.item() == pytest.approx(grid_mean.item(), abs=2e-4)
    assert var.item() == pytest.approx(grid_var.item(), rel=2e-3)


# -- the update rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_with_eta_1_takes_the_ancestral_step(clip):
    schedule = NoiseSchedule.cosine(30)
    g = torch.Generator().manual_seed(0)
    for t in range(1, 31):
        xt, eps, noise = (torch.randn(5, 1, 4, 4, generator=g) for _ in range(3))
        ancestral = schedule.ddpm_step(xt, t, eps, noise, clip)
        ddim = schedule.ddim_step(xt, t, t - 1, eps, noise, eta=1.0, clip=clip)
        torch.testing.assert_close(ddim, ancestral, atol=2e-5, rtol=1e-4)


def test_ancestral_step_is_algorithm_2():
    """Unclipped, the posterior-mean form equals Ho et al.'s eq. 11 with sigma_t^2 = beta_tilde_t."""
    schedule = NoiseSchedule.linear(40)
    g = torch.Generator().manual_seed(1)
    for t in (2, 10, 40):
        xt, eps, z = (torch.randn(3, 6, generator=g) for _ in range(3))
        beta, alpha_bar = schedule.betas[t], schedule.alpha_bar[t]
        expected = (xt - beta / (1 - alpha_bar).sqrt() * eps) / (1 - beta).sqrt() + schedule.beta_tilde[t].sqrt() * z
        torch.testing.assert_close(schedule.ddpm_step(xt, t, eps, z, clip=False), expected, atol=1e-5, rtol=1e-4)


def test_ddim_sampler_with_every_step_and_eta_1_is_the_ancestral_sampler():
    model = tiny_image_model(conditional=True)
    nn.init.normal_(model.eps_net.conv_out[-1].weight, std=0.1)  # not the zero-initialised output
    a = model.sample(3, generator=torch.Generator().manual_seed(5), sampler="ddpm", labels=[1, 2, 3], guidance=1.0)
    b = model.sample(
        3, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=20, eta=1.0, labels=[1, 2, 3], guidance=1.0
    )
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    c = model.sample(3, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=20, eta=0.0, labels=[1, 2, 3])
    assert not torch.allclose(a, c, atol=1e-3)  # eta = 0 is a different (deterministic) sampler


def test_ddim_eta_0_is_deterministic_given_x_T():
    model = tiny_image_model()
    nn.init.normal_(model.eps_net.conv_out[-1].weight, std=0.1)
    x_T = next(model.trajectory(2, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=5))
    runs = [list(model.trajectory(2, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=5)) for _ in "ab"]
    torch.testing.assert_close(runs[0][0], x_T)
    torch.testing.assert_close(runs[0][-1], runs[1][-1])
    assert len(runs[0]) == 6  # x_T and five steps


# -- guidance ------------------------------------------------------------------------------------


class FixedLabels(nn.Module):
    """An unconditional noise predictor: the conditional one with the labels held fixed."""

    def __init__(self, eps_net: nn.Module, y: torch.Tensor):
        super().__init__()
        self.eps_net, self.y = eps_net, y

    def forward(self, x, t, y=None):
        return self.eps_net(x, t, self.y)


def test_guidance_0_is_the_unconditional_sampler_of_the_conditional_network():
    cond = tiny_image_model(conditional=True)
    nn.init.normal_(cond.eps_net.conv_out[-1].weight, std=0.1)
    labels = torch.tensor([0, 3, 7])
    uncond = DDPM(FixedLabels(cond.eps_net, labels), cond.schedule, (1, 28, 28))
    for options in (dict(sampler="ddpm"), dict(sampler="ddim", steps=7, eta=0.5)):
        a = cond.sample(3, generator=torch.Generator().manual_seed(2), labels=labels, guidance=0.0, **options)
        b = uncond.sample(3, generator=torch.Generator().manual_seed(2), **options)
        torch.testing.assert_close(a, b)


def test_guided_noise_is_the_classifier_free_combination():
    model = tiny_image_model(conditional=True)
    nn.init.normal_(model.eps_net.conv_out[-1].weight, std=0.1)
    nn.init.normal_(model.eps_net.embedding.labels.weight)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    t = torch.tensor([3, 9, 15, 20])
    with torch.no_grad():
        eps_c, eps_u = model.eps_net(x, t, y), model.eps_net(x, t, torch.full_like(y, 10))
        torch.testing.assert_close(model.eps(x, t, y, guidance=2.5), 3.5 * eps_c - 2.5 * eps_u, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(eps_c, eps_u, atol=1e-3)
        nn.init.zeros_(model.eps_net.embedding.labels.weight)  # labels now carry nothing: guidance changes nothing
        torch.testing.assert_close(model.eps(x, t, y, guidance=3.0), model.eps(x, t, y, guidance=0.0), atol=1e-5, rtol=1e-4)


def test_label_dropout_feeds_the_no_label_class():
    model = tiny_image_model(conditional=True, label_dropout=1.0)
    seen = []
    model.eps_net.embedding.labels.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    model.loss(digit_like_batch(8))
    assert (seen[0] == 10).all()


# -- the bound -----------------------------------------------------------------------------------


def test_bound_with_T_2_matches_a_direct_computation(monkeypatch):
    """With T = 2 the bound is L_2 + L_1 + L_0; every x_t drawn with one fixed noise z, computed by hand."""
    model = DDPM(LinearEps(), NoiseSchedule.cosine(2), data_shape=(1, 2, 2))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (3, 1, 2, 2), generator=g).float() / 127.5 - 1
    z = torch.randn(3, 1, 2, 2, generator=g)
    monkeypatch.setattr(torch, "randn_like", lambda x: z.clone())
    with torch.no_grad():
        bound = model.log_prob(x0, timesteps=1).double()
        s = model.schedule
        a1, a2, b1, b2 = (v.double() for v in (s.alpha_bar[1], s.alpha_bar[2], s.betas[1], s.betas[2]))
        x0d, zd = x0.double(), z.double()
        # L_2 = KL(q(x_2 | x_0) || N(0, I))
        q2 = torch.distributions.Normal(a2.sqrt() * x0d, (1 - a2).sqrt())
        prior = torch.distributions.kl_divergence(q2, torch.distributions.Normal(0.0, 1.0)).sum((1, 2, 3))
        # L_1 = KL(q(x_1 | x_2, x_0) || p(x_1 | x_2)): posterior by precision-weighting (Bayes' rule)
        x2 = a2.sqrt() * x0d + (1 - a2).sqrt() * zd
        precision = (1 - b2) / b2 + 1 / (1 - a1)
        posterior_mean = lambda x: ((1 - b2).sqrt() * x2 / b2 + a1.sqrt() * x / (1 - a1)) / precision  # noqa: E731
        eps2 = model.eps_net(x2.float(), torch.full((3,), 2)).double()
        x0_hat2 = (x2 - (1 - a2).sqrt() * eps2) / a2.sqrt()
        middle = ((posterior_mean(x0d) - posterior_mean(x0_hat2)) ** 2 * precision / 2).sum((1, 2, 3))
        # L_0 = -log p(x_0 | x_1): N(x0_hat_1, beta_1) over each 8-bit bin
        x1 = a1.sqrt() * x0d + (1 - a1).sqrt() * zd
        eps1 = model.eps_net(x1.float(), torch.full((3,), 1)).double()
        decoder = torch.distributions.Normal((x1 - (1 - a1).sqrt() * eps1) / a1.sqrt(), b1.sqrt())
        upper = torch.where(x0d > 0.999, 1.0, decoder.cdf(x0d + 1 / 255))
        lower = torch.where(x0d < -0.999, 0.0, decoder.cdf(x0d - 1 / 255))
        log_decoder = torch.log(upper - lower).sum((1, 2, 3))
    torch.testing.assert_close(bound, log_decoder - prior - middle, atol=2e-3, rtol=1e-4)


def test_stratified_bound_is_unbiased():
    """K = 2 strata of t and K = T - 1 (every t once) estimate the same bound on average."""
    model = DDPM(LinearEps(), NoiseSchedule.cosine(12), data_shape=(1, 2, 2))
    x0 = torch.tensor([[-1.0, 1.0], [0.0, 0.5]]).view(1, 1, 2, 2).expand(4000, 1, 2, 2)
    torch.manual_seed(0)
    with torch.no_grad():
        full, short = model.log_prob(x0, timesteps=11), model.log_prob(x0, timesteps=2)
    standard_error = ((short.var() + full.var()) / 4000).sqrt().item()
    assert short.mean().item() == pytest.approx(full.mean().item(), abs=4 * standard_error)
    assert short.std() > full.std()  # fewer timesteps: more variance, same mean


def test_log_prob_shape_and_bits_per_dim_range():
    model = tiny_image_model()
    x, _ = digit_like_batch(4)
    with torch.no_grad():
        log_p = model.log_prob(x, timesteps=5)
    assert log_p.shape == (4,)
    bits = -log_p / (784 * math.log(2))
    assert (bits > 0).all() and torch.isfinite(bits).all()


# -- shapes, learning, state, configs ------------------------------------------------------------


def test_shapes():
    model = tiny_image_model(conditional=True)
    x, y = digit_like_batch(5)
    loss, metrics = model.loss((x, y))
    assert loss.shape == () and loss.requires_grad
    assert set(metrics) == {"loss", "mse_early", "mse_late"} and all(isinstance(v, float) for v in metrics.values())
    assert model.eps_net(x, torch.full((5,), 3), y).shape == (5, 1, 28, 28)
    for options in (dict(sampler="ddpm"), dict(sampler="ddim", steps=4, guidance=2.0, labels=[3])):
        assert model.sample(6, **options).shape == (6, 1, 28, 28)
    assert len(list(model.trajectory(2, sampler="ddpm"))) == 21  # x_20, ..., x_0
    assert UNet(3, (8, 16), attention=False)(torch.randn(2, 3, 32, 32), torch.tensor([1, 2])).shape == (2, 3, 32, 32)
    assert TimeMLP(2, 32, 2, num_classes=8)(torch.randn(7, 2), torch.arange(7), torch.arange(7)).shape == (7, 2)
    with pytest.raises(ValueError, match="between 1 and T"):
        model.sample(1, sampler="ddim", steps=21)
    with pytest.raises(ValueError, match="unconditional"):
        tiny_image_model().sample(1, labels=[1])


def test_loss_decreases_on_a_fixed_batch():
    model = tiny_image_model()
    batch = digit_like_batch(16)
    torch.manual_seed(0)
    losses = losses_on_fixed_batch(model, batch)
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8


def test_schedule_is_in_the_state_dict():
    model = tiny_image_model(schedule="linear")
    state = model.state_dict()
    assert {"schedule.betas", "schedule.alpha_bar", "schedule.beta_tilde"} <= set(state)
    other = tiny_image_model(schedule="cosine", seed=1)
    other.load_state_dict(state)
    torch.testing.assert_close(other.schedule.alpha_bar, model.schedule.alpha_bar)


def test_configs_load_and_build():
    for name in ("ddpm_mnist", "ddpm_mnist_gpu"):
        cfg = load_config(ROOT / "configs" / f"{name}.toml")
        model = DDPM.from_config(cfg.model, SPEC)
        assert model.conditional and model.T == 1000
    cpu = DDPM.from_config(load_config(ROOT / "configs" / "ddpm_mnist.toml").model, SPEC)
    assert sum(p.numel() for p in cpu.parameters()) < 1_000_000  # trains on 2 CPU cores
    with pytest.raises(ConfigError, match="schedule"):
        DDPM.from_config(DDPMConfig(schedule="sigmoid"), SPEC)


# -- the 2-D ring: a short training run finds the modes ------------------------------------------


def ring_modes(x: torch.Tensor) -> torch.Tensor:
    """The mode (0..7) of each point near the unit circle, -1 for points off the ring."""
    angle = torch.atan2(x[:, 1], x[:, 0])
    mode = torch.round(angle / (2 * math.pi / 8)).long() % 8
    centre = torch.stack([torch.cos(mode * 2 * math.pi / 8), torch.sin(mode * 2 * math.pi / 8)], 1)
    return torch.where((x - centre).norm(dim=1) < 0.25, mode, -1)


def train_on_ring(conditional: bool, steps: int = 2500) -> DDPM:
    """About 5 s on 2 cores: AdamW, the learning rate decaying from 3e-3 to 3e-4 (cosine)."""
    torch.manual_seed(0)
    data = load_data(DataConfig(name="ring8"))
    model = DDPM.from_config(DDPMConfig(timesteps=100, hidden=128, depth=3, conditional=conditional), data.spec)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.1 + 0.45 * (1 + math.cos(math.pi * i / steps)))
    stream = data.train_stream(256, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is as fast, and does not stall on busy shared cores
    try:
        for _ in range(steps):
            loss, _ = model.loss(next(stream))
            opt.zero_grad()
            loss.backward()
            opt.step()
            decay.step()
    finally:
        torch.set_num_threads(threads)
    return model


def test_ring_samples_cover_the_modes():
    model = train_on_ring(conditional=False)
    x = model.sample(1000, generator=torch.Generator().manual_seed(0), clip=False)
    assert ((x.norm(dim=1) - 1).abs() < 0.2).float().mean() > 0.95  # on the ring
    modes = ring_modes(x)
    assert (modes >= 0).float().mean() > 0.8  # near a mode's centre (points spread evenly on the ring: 0.64)
    counts = torch.bincount(modes[modes >= 0], minlength=8)
    assert (counts >= 60).sum() >= 7  # >= 7 of the 8 modes, each with a fair share (an even share is 125)


def test_conditional_ring_samples_land_in_their_mode():
    model = train_on_ring(conditional=True)
    labels = torch.arange(8).repeat(50)
    x = model.sample(400, generator=torch.Generator().manual_seed(0), clip=False, labels=labels, sampler="ddim", steps=25, eta=1.0)
    assert (ring_modes(x) == labels).float().mean() > 0.9


def test_trainer_end_to_end_on_points_and_reload(tmp_path):
    config = tmp_path / "ring.toml"
    config.write_text(
        'family = "ddpm"\n[model]\ntimesteps = 50\nhidden = 32\ndepth = 2\n[data]\nname = "ring8"\nbatch_size = 64\n'
        "[train]\nmax_steps = 20\neval_every = 10\neval_batches = 2\nsample_every = 20\nn_samples = 50\nema_decay = 0.9\n"
        '[sample]\nsampler = "ddim"\nsteps = 10\nclip = false\n'
    )
    run = trainer_for(config, tmp_path / "run").fit()
    assert (run.run_dir / "samples" / "step_000020.png").is_file()
    model, cfg, spec = load_model(run.run_dir)
    assert isinstance(spec, PointSpec) and model.sample(5, **cfg.sample).shape == (5, 2)
