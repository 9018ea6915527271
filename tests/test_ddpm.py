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


class RecordingEps(LinearEps):
    """LinearEps that keeps every (x_t, t) it is called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y=None):
        self.calls.append((x.detach().clone(), t.clone()))
        return super().forward(x, t, y)


def linear_betas(T: int) -> torch.Tensor:
    """Ho et al.'s 1e-4 .. 0.02 over T = 1000 steps, scaled by 1000 / T, in float64."""
    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64) * (1000 / T)


def alpha_bar_of(betas: torch.Tensor) -> list[float]:
    """alpha_bar_0 = 1, alpha_bar_t = prod_{s <= t} (1 - beta_s): written out apart from NoiseSchedule."""
    alpha_bar = [1.0]
    for beta in betas.tolist():
        alpha_bar.append(alpha_bar[-1] * (1 - beta))
    return alpha_bar


def song_eq_12(alpha_bar, xt, t, s, eps, noise, eta, clip=False):
    """x_t -> x_s of DDIM (Song et al. 2021, eq. 12 with eq. 16's sigma), in float64, from the paper."""
    a_t, a_s = alpha_bar[t], alpha_bar[s]
    xt, eps, noise = xt.double(), eps.double(), noise.double()
    x0 = (xt - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)  # "predicted x_0"
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (xt - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)  # the noise that the clipped x_0 implies
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t)) * math.sqrt(1 - a_t / a_s)
    return math.sqrt(a_s) * x0 + math.sqrt(1 - a_s - sigma**2) * eps + sigma * noise


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
@pytest.mark.parametrize("T", [5, 10, 20, 50])
def test_short_schedules_stay_a_valid_forward_process(make, T):
    """The linear schedule scales its betas by 1000 / T: below T = 50 the last ones would reach or pass 1
    (alpha_bar_T = 0 or negative, and x0_hat divides by zero) without the clamp the cosine one also has."""
    schedule = make(T)
    assert (schedule.betas[1:] > 0).all() and (schedule.betas <= 0.999).all()
    assert (schedule.alpha_bar > 0).all() and (schedule.alpha_bar[1:] < schedule.alpha_bar[:-1]).all()


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


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_strided_step_is_song_eq_12(clip):
    """Steps that skip timesteps (as the sampler with steps < T takes them) against eq. 12 written out."""
    schedule = NoiseSchedule.linear(100)
    alpha_bar = alpha_bar_of(linear_betas(100))
    g = torch.Generator().manual_seed(3)
    for t, s in [(60, 35), (100, 0), (100, 1), (7, 2), (50, 49)]:
        xt, eps, noise = (torch.randn(5, 1, 4, 4, generator=g) for _ in range(3))
        for eta in (0.0, 0.5, 1.0):
            expected = song_eq_12(alpha_bar, xt, t, s, eps, noise, eta, clip)
            got = schedule.ddim_step(xt, t, s, eps, noise, eta=eta, clip=clip).double()
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4, msg=f"t={t}, s={s}, eta={eta}")


@pytest.mark.parametrize("steps, times", [(4, [20, 15, 10, 5, 0]), (3, [20, 13, 7, 0])])
@pytest.mark.parametrize("eta, clip", [(0.0, True), (0.5, False), (1.0, False)])
def test_ddim_sampler_with_fewer_steps_is_a_hand_loop_of_eq_12(steps, times, eta, clip):
    """The sampler visits the rounded, evenly spaced times and applies eq. 12 between them.

    It draws x_T, then one noise tensor per step, from the generator it is given: a second generator
    with the same seed feeds the hand loop the same numbers.
    """
    betas = torch.linspace(0.01, 0.3, 20, dtype=torch.float64)  # alpha_bar_20 = 0.03 (linear(20) reaches beta = 1)
    net = RecordingEps()
    model = DDPM(net, NoiseSchedule(betas), data_shape=(1, 2, 2))
    alpha_bar = alpha_bar_of(betas)
    options = dict(sampler="ddim", steps=steps, eta=eta, clip=clip)
    trajectory = list(model.trajectory(3, generator=torch.Generator().manual_seed(4), **options))
    assert [t[0].item() for _, t in net.calls] == times[:-1] and len(trajectory) == len(times)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 2, 2, generator=g).double()
    torch.testing.assert_close(trajectory[0].double(), x)
    with torch.no_grad():
        for i, (t, s) in enumerate(zip(times[:-1], times[1:])):
            eps = net(x.float(), torch.full((3,), t))
            x = song_eq_12(alpha_bar, x, t, s, eps, torch.randn(3, 1, 2, 2, generator=g), eta, clip)
            torch.testing.assert_close(trajectory[i + 1].double(), x, atol=1e-4, rtol=1e-4, msg=f"x_{s}")


def test_ddim_step_with_eta_0_ignores_the_noise():
    """sigma = eta * (...) = 0: two different noise tensors give the same x_s; with eta = 0.5 they do not."""
    schedule = NoiseSchedule.cosine(50)
    g = torch.Generator().manual_seed(6)
    for t, s in [(50, 30), (20, 19), (10, 0)]:
        xt, eps, noise_a, noise_b = (torch.randn(4, 1, 3, 3, generator=g) for _ in range(4))
        a = schedule.ddim_step(xt, t, s, eps, noise_a, eta=0.0)
        torch.testing.assert_close(a, schedule.ddim_step(xt, t, s, eps, noise_b, eta=0.0), atol=0, rtol=0)
        if s > 0:  # sigma = 0 at s = 0 for any eta; elsewhere eta > 0 must use the noise
            assert not torch.allclose(a, schedule.ddim_step(xt, t, s, eps, noise_b, eta=0.5), atol=1e-3)


def test_ddim_sampler_with_eta_0_is_deterministic_given_x_T():
    """Same x_T, different noise for every step: eta = 0 lands on the same x_0, eta = 0.5 does not.

    The sampler draws x_T, then each step's noise, from the generator it is given; re-seeding that
    generator once x_T is out changes the step noise only.
    """
    model = DDPM(LinearEps(), NoiseSchedule.cosine(20), data_shape=(1, 3, 3))

    def run(eta, step_seed):
        g = torch.Generator().manual_seed(0)
        runs = model.trajectory(4, generator=g, sampler="ddim", steps=5, eta=eta)
        x_T = next(runs)
        g.manual_seed(step_seed)
        return [x_T, *runs]

    a, b = run(0.0, 1), run(0.0, 2)
    assert len(a) == 6  # x_T and five steps
    torch.testing.assert_close(a[0], b[0], atol=0, rtol=0)
    for x, y in zip(a[1:], b[1:]):
        torch.testing.assert_close(x, y, atol=0, rtol=0)
    noisy_a, noisy_b = run(0.5, 1), run(0.5, 2)
    torch.testing.assert_close(noisy_a[0], a[0], atol=0, rtol=0)
    assert not torch.allclose(noisy_a[-1], noisy_b[-1], atol=1e-3)  # the step noise did change


# -- guidance ------------------------------------------------------------------------------------


class FixedLabels(nn.Module):
    """An unconditional noise predictor: the conditional one with the labels held fixed."""

    def __init__(self, eps_net: nn.Module, y: torch.Tensor):
        super().__init__()
        self.eps_net, self.y = eps_net, y

    def forward(self, x, t, y=None):
        return self.eps_net(x, t, self.y)


def test_guidance_0_samples_with_the_conditional_noise_alone():
    """guidance = 0 is eps(x_t, t, y) alone: the same samples as a copy of the network with y held fixed."""
    cond = tiny_image_model(conditional=True)
    nn.init.normal_(cond.eps_net.conv_out[-1].weight, std=0.1)
    labels = torch.tensor([0, 3, 7])
    uncond = DDPM(FixedLabels(cond.eps_net, labels), cond.schedule, (1, 28, 28))
    for options in (dict(sampler="ddpm"), dict(sampler="ddim", steps=7, eta=0.5)):
        a = cond.sample(3, generator=torch.Generator().manual_seed(2), labels=labels, guidance=0.0, **options)
        b = uncond.sample(3, generator=torch.Generator().manual_seed(2), **options)
        torch.testing.assert_close(a, b)


class LabelEps(nn.Module):
    """A conditional noise predictor with a plain dependence on the label; label 10 is "no label"."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.4))

    def forward(self, x, t, y):
        return self.scale * x + 0.01 * t.float().view(-1, 1, 1, 1) + 0.1 * (y.float().view(-1, 1, 1, 1) - 5)


@pytest.mark.parametrize("options", [dict(sampler="ddpm"), dict(sampler="ddim", steps=5, eta=0.5)])
def test_guided_sampler_steps_with_the_classifier_free_noise(options):
    """With w > 0 every step uses (1 + w) eps(x_t, t, y) - w eps(x_t, t, no label) (Ho & Salimans 2022, eq. 6)."""
    net, w = LabelEps(), 2.0
    model = DDPM(net, NoiseSchedule.cosine(20), data_shape=(1, 2, 2), num_classes=10)
    options = dict(options, labels=[2, 7], clip=False)
    samples = model.sample(4, generator=torch.Generator().manual_seed(7), guidance=w, **options)
    y, no_label = torch.tensor([2, 7, 2, 7]), torch.full((4,), 10)  # the labels repeated to n = 4
    schedule, g = model.schedule, torch.Generator().manual_seed(7)
    times = [20, 16, 12, 8, 4, 0] if options["sampler"] == "ddim" else list(range(20, -1, -1))
    x = torch.randn(4, 1, 2, 2, generator=g)
    with torch.no_grad():
        for t, s in zip(times[:-1], times[1:]):
            tt = torch.full((4,), t)
            eps = (1 + w) * net(x, tt, y) - w * net(x, tt, no_label)
            noise = torch.randn(4, 1, 2, 2, generator=g)
            if options["sampler"] == "ddim":
                x = schedule.ddim_step(x, t, s, eps, noise, eta=0.5, clip=False)
            else:
                x = schedule.ddpm_step(x, t, eps, noise, clip=False)
    torch.testing.assert_close(samples, x, atol=1e-5, rtol=1e-5)
    unguided = model.sample(4, generator=torch.Generator().manual_seed(7), **options)
    assert not torch.allclose(samples, unguided, atol=1e-3)  # guidance changed the samples


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


def test_loss_draws_t_from_1_to_T_and_noises_x_0_to_that_t(monkeypatch):
    """t ~ Uniform{1..T} (index 0 is the data), and the network sees x_t = q_sample(x_0, t) of its own t.

    T = 100 and 4,000 draws: P(some value of 1..100 never drawn) <= 100 * 0.99**4000 ~ 4e-16 (for
    either end alone 2e-18), so the seed is not what makes it pass; {0..T-1} would show 0 and miss T.
    """
    betas = linear_betas(100)
    net = RecordingEps()
    model = DDPM(net, NoiseSchedule(betas), data_shape=(1, 2, 2))
    alpha_bar = torch.tensor(alpha_bar_of(betas))
    g = torch.Generator().manual_seed(8)
    x0 = torch.randint(0, 256, (4000, 1, 2, 2), generator=g).float() / 127.5 - 1
    eps = torch.randn(x0.shape, generator=g)
    monkeypatch.setattr(torch, "randn_like", lambda x: eps.clone())
    torch.manual_seed(0)
    with torch.no_grad():
        loss, _ = model.loss((x0, None))
    (xt, t), = net.calls
    assert t.min().item() == 1 and t.max().item() == 100 and len(t.unique()) == 100
    a = alpha_bar[t].view(-1, 1, 1, 1)
    expected_xt = a.sqrt() * x0.double() + (1 - a).sqrt() * eps.double()  # Ho et al. 2020, eq. 4
    torch.testing.assert_close(xt.double(), expected_xt, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        expected = ((eps - LinearEps()(xt, t)) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("times, early", [([1, 5, 6, 10], [0, 1]), ([6, 7, 9, 10], []), ([1, 2, 3, 5], [0, 1, 2, 3])])
def test_loss_reports_the_error_at_early_and_late_timesteps(monkeypatch, times, early):
    """mse_early averages the examples with t <= T/2 (little noise), mse_late those with t > T/2; a half with
    no example in the batch reports 0, not NaN."""
    net = RecordingEps()
    model = DDPM(net, NoiseSchedule.cosine(10), data_shape=(1, 2, 2))
    x0 = torch.linspace(-1, 1, 16).view(4, 1, 2, 2)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(torch, "randn_like", lambda x: eps.clone())
    monkeypatch.setattr(torch, "randint", lambda low, high, size, **kw: torch.tensor(times))
    with torch.no_grad():
        loss, metrics = model.loss((x0, None))
        (xt, t), = net.calls
        per_example = ((eps - LinearEps()(xt, t)) ** 2).mean((1, 2, 3))
    late = [i for i in range(4) if i not in early]
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics["mse_early"] == pytest.approx(per_example[early].mean().item() if early else 0.0, rel=1e-6)
    assert metrics["mse_late"] == pytest.approx(per_example[late].mean().item() if late else 0.0, rel=1e-6)
    assert loss.item() == pytest.approx(per_example.mean().item(), rel=1e-6)


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


class OffsetOracleEps(nn.Module):
    """Knows x_0 and alpha_bar: returns the true noise of x_t plus a fixed offset c (zero: a perfect network)."""

    def __init__(self, x0, alpha_bar, c):
        super().__init__()
        self.x0, self.alpha_bar, self.c = x0.double(), torch.tensor(alpha_bar), c.double()
        self.unused = nn.Parameter(torch.zeros(()))  # a parameter, so that the model has a device

    def forward(self, x, t, y=None):
        a = self.alpha_bar[t].view(-1, 1, 1, 1)
        return ((x.double() - a.sqrt() * self.x0) / (1 - a).sqrt() + self.c).float()


@pytest.mark.parametrize("offset", [0.0, 0.3])
def test_bound_of_a_network_off_by_a_constant_is_ho_eq_12_in_closed_form(offset):
    """If eps_theta = eps + c, every term of the bound is known in closed form, whatever x_t is drawn:

    L_T = KL(N(sqrt(ab_T) x_0, 1 - ab_T) || N(0, 1)) per pixel;
    L_{t-1} = beta_t^2 / (2 sigma_t^2 alpha_t (1 - ab_t)) |c|^2 with sigma_t^2 = beta_tilde_t (Ho et al. 2020,
        eq. 12), which is beta_t / (2 alpha_t (1 - ab_{t-1})) |c|^2;
    L_0 = -log of the mass of N(x_0 - sqrt((1 - ab_1) / ab_1) c, beta_1) over x_0's 8-bit bin (eq. 13).
    With c = 0 (a perfect noise predictor) only L_T and L_0 remain.
    """
    betas = torch.linspace(1e-3, 0.05, 30, dtype=torch.float64)  # alpha_bar_T = 0.46: L_T is not negligible
    ab = alpha_bar_of(betas)
    g = torch.Generator().manual_seed(9)
    x0 = torch.randint(0, 256, (3, 1, 4, 4), generator=g).float() / 127.5 - 1
    x0[0, 0, 0, :2] = torch.tensor([-1.0, 1.0])  # both end levels: the decoder's tails
    c = offset * torch.randn(1, 1, 4, 4, generator=g).double()
    model = DDPM(OffsetOracleEps(x0, ab, c), NoiseSchedule(betas), data_shape=(1, 4, 4))
    with torch.no_grad():
        bound = model.log_prob(x0)  # every t once (K = T - 1 strata of one timestep each)
    x, T = x0.double(), 30
    prior = 0.5 * (ab[T] * x**2 - ab[T] - math.log(1 - ab[T]))  # KL to N(0, 1), written out
    weights = sum(betas[t - 1].item() / (2 * (1 - betas[t - 1].item()) * (1 - ab[t - 1])) for t in range(2, T + 1))
    middle = weights * (c**2).sum()
    decoder = torch.distributions.Normal(x - math.sqrt((1 - ab[1]) / ab[1]) * c, math.sqrt(betas[0].item()))
    upper = torch.where(x > 0.999, 1.0, decoder.cdf(x + 1 / 255))
    lower = torch.where(x < -0.999, 0.0, decoder.cdf(x - 1 / 255))
    expected = -(prior.sum((1, 2, 3)) + middle) + torch.log(upper - lower).sum((1, 2, 3))
    torch.testing.assert_close(bound.double(), expected, atol=1e-4, rtol=1e-5)


class LabelRecordingEps(LinearEps):
    """LinearEps plus a per-label offset; keeps the labels of every call."""

    def __init__(self):
        super().__init__()
        self.labels = []

    def forward(self, x, t, y=None):
        self.labels.append(y.clone())
        return super().forward(x, t) + 0.1 * y.float().view(-1, 1, 1, 1)


def test_bound_of_a_conditional_model_reads_the_labels_in_every_term_and_k_strata():
    """log p(x | y): the decoder's term and each of the K strata's KL terms ask the network with y; without
    y, every call asks with the "no label" class, and the bound differs."""
    eps_net = LabelRecordingEps()
    model = DDPM(eps_net, NoiseSchedule.cosine(20), data_shape=(1, 2, 2), num_classes=3)
    x0 = torch.tensor([[-1.0, 1.0], [0.0, 0.5]]).view(1, 1, 2, 2).expand(4, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        torch.manual_seed(0)
        conditional = model.log_prob(x0, y=y, timesteps=3)
        assert len(eps_net.labels) == 1 + 3  # L_0, then one t per stratum
        assert all(torch.equal(labels, y) for labels in eps_net.labels)
        eps_net.labels.clear()
        torch.manual_seed(0)
        unconditional = model.log_prob(x0, timesteps=3)
    assert all(torch.equal(labels, torch.full((4,), 3)) for labels in eps_net.labels)
    assert (conditional - unconditional).abs().min() > 1e-3


def test_config_bound_timesteps_set_the_default_strata():
    """bound_timesteps = K in the config: log_prob asks the network K + 1 times (K strata and L_0); 0 means T - 1."""
    calls = []
    for K, expected in [(3, 4), (0, 20)]:
        model = tiny_image_model(timesteps=20, bound_timesteps=K)
        model.eps_net.register_forward_hook(lambda module, args, out: calls.append(1))
        calls.clear()
        with torch.no_grad():
            model.log_prob(torch.zeros(1, 1, 28, 28))
        assert len(calls) == expected


def test_log_prob_shape_and_bits_per_dim_are_positive():
    """The bound is below log P(x) <= 0 of a discrete image: positive bits for any network."""
    model = tiny_image_model()
    x, _ = digit_like_batch(4)
    with torch.no_grad():
        log_p = model.log_prob(x, timesteps=5)
    assert log_p.shape == (4,)
    bits = -log_p / (784 * math.log(2))
    assert (bits > 0).all() and torch.isfinite(bits).all()


def test_sampler_defaults_are_the_documented_ones():
    """sample and trajectory default to ancestral sampling, and DDIM to 50 steps, eta 0, no guidance and
    clipping: each default checked against the same call with the option spelled out."""
    model = DDPM(LabelRecordingEps(), NoiseSchedule.cosine(100), data_shape=(1, 2, 2), num_classes=3)
    spelled = dict(steps=50, eta=0.0, guidance=0.0, labels=(), clip=True)

    def draw(method, **options):
        out = getattr(model, method)(4, generator=torch.Generator().manual_seed(0), **options)
        return torch.stack(list(out)) if method == "trajectory" else out

    for method in ("sample", "trajectory"):
        assert torch.equal(draw(method), draw(method, sampler="ddpm", **spelled))
        assert torch.equal(draw(method, sampler="ddim"), draw(method, sampler="ddim", **spelled))
        for changed in (dict(steps=51), dict(eta=1.0), dict(guidance=1.0), dict(clip=False)):
            other = draw(method, sampler="ddim", **{**spelled, **changed})
            assert not torch.equal(draw(method, sampler="ddim"), other)


def test_schedule_steps_default_to_clipped_and_deterministic():
    schedule = NoiseSchedule.cosine(100)
    g = torch.Generator().manual_seed(0)
    xt, eps, noise = (torch.randn(2, 1, 2, 2, generator=g) * 3 for _ in range(3))
    ancestral = schedule.ddpm_step(xt, 90, eps, noise)
    torch.testing.assert_close(ancestral, schedule.ddpm_step(xt, 90, eps, noise, clip=True))
    assert not torch.equal(ancestral, schedule.ddpm_step(xt, 90, eps, noise, clip=False))
    default = schedule.ddim_step(xt, 90, 40, eps, noise)
    torch.testing.assert_close(default, schedule.ddim_step(xt, 90, 40, eps, noise, eta=0.0, clip=True))
    assert not torch.equal(default, schedule.ddim_step(xt, 90, 40, eps, noise, eta=1.0))
    assert not torch.equal(default, schedule.ddim_step(xt, 90, 40, eps, noise, clip=False))


def test_one_ddim_step_jumps_from_T_to_0():
    assert NoiseSchedule.cosine(100).timesteps(1) == [100, 0]
    assert NoiseSchedule.cosine(100).timesteps(4) == [100, 75, 50, 25, 0]


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


def test_config_options_reach_the_noise_networks():
    """hidden, depth and the classes reach the points' TimeMLP; attention and dropout reach the U-Net."""
    ring = DDPM.from_config(DDPMConfig(timesteps=10, hidden=24, depth=3, conditional=True), RING)
    linears = [m for m in ring.eps_net.net.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [24, 24, 24, 2]
    assert ring.eps_net.embedding.labels.num_embeddings == RING.num_classes + 1  # the classes and "no label"
    for attention, dropout in [(True, 0.0), (False, 0.3)]:
        unet = tiny_image_model(attention=attention, dropout=dropout).eps_net
        assert isinstance(unet.attention, nn.Identity) != attention
        assert {m.p for m in unet.modules() if isinstance(m, nn.Dropout)} == {dropout}


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


@pytest.mark.slow  # trains for several seconds: left out of mutation runs
def test_ring_samples_cover_the_modes():
    model = train_on_ring(conditional=False)
    x = model.sample(1000, generator=torch.Generator().manual_seed(0), clip=False)
    assert ((x.norm(dim=1) - 1).abs() < 0.2).float().mean() > 0.95  # on the ring
    modes = ring_modes(x)
    assert (modes >= 0).float().mean() > 0.8  # near a mode's centre (points spread evenly on the ring: 0.64)
    counts = torch.bincount(modes[modes >= 0], minlength=8)
    assert (counts >= 60).sum() >= 7  # >= 7 of the 8 modes, each with a fair share (an even share is 125)


@pytest.mark.slow  # trains for several seconds: left out of mutation runs
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
