"""EBM: Langevin dynamics on a known energy, the contrastive gradient, the replay buffer, OOD scores, learning."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from genzoo.checkpoint import load_model
from genzoo.config import DataConfig, load_config
from genzoo.errors import ConfigError
from genzoo.metrics import auroc, ring8_quality
from genzoo.model import OptimConfig
from genzoo.models.ebm import EBM, EBMConfig, energy_scores, ood_auroc
from genzoo.recipe import make_trainer, train_arguments
from genzoo.sources import load_data
from genzoo.specs import ImageSpec, PointSpec, TextSpec
from helpers import trainer_for

SPEC = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
RING = PointSpec(name="ring8", dim=2, num_classes=8)
ROOT = Path(__file__).resolve().parents[1]


def tiny_image_model(seed: int = 0, **kw) -> EBM:
    torch.manual_seed(seed)
    return EBM.from_config(EBMConfig(**{"channels": (4, 8), "buffer_size": 100, "sgld_steps": 3, **kw}), SPEC)


def point_model(seed: int = 0, **kw) -> EBM:
    torch.manual_seed(seed)
    return EBM.from_config(EBMConfig(**{"hidden": 16, "depth": 2, "buffer_size": 64, "sgld_steps": 3, **kw}), RING)


class Quadratic(nn.Module):
    """E(x) = (x - mu)^T P (x - mu) / 2: the energy of N(mu, P^-1), up to a constant."""

    def __init__(self, mu: torch.Tensor, precision: torch.Tensor):
        super().__init__()
        self.register_buffer("mu", mu)
        self.register_buffer("precision", precision)
        self.scale = nn.Parameter(torch.ones(()))  # one parameter, for the contrastive-gradient test

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mu  # (B, D)
        return (0.5 * self.scale * ((d @ self.precision) * d).sum(1))[:, None]  # (B, 1)


# -- Langevin dynamics and the contrastive gradient ----------------------------------------------


def test_sgld_samples_a_gaussian_with_its_mean_and_covariance():
    """With noise = sqrt(2 step_size) and no clipping, SGLD on E = (x-mu)^T P (x-mu)/2 samples N(mu, P^-1)."""
    mu = torch.tensor([0.5, -1.0])
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]])
    energy = Quadratic(mu, torch.linalg.inv(cov))
    model = EBM(energy, data_shape=(2,), cfg=EBMConfig(sgld_clip=0, buffer_size=1), clamp=False)
    h = 0.01
    g = torch.Generator().manual_seed(0)
    x = model.sample(4000, generator=g, from_buffer=False, mcmc_steps=1500, step_size=h, noise=math.sqrt(2 * h))
    torch.testing.assert_close(x.mean(0), mu, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.06, rtol=0)


def test_contrastive_gradient_is_the_log_likelihood_gradient():
    """For E_s(x) = s x^2 / 2 (precision s, log Z = log(2 pi / s) / 2) the gradient of the CD term with
    exact model samples x- equals the gradient of the negative log-likelihood, -d log p(x+)/ds."""
    s = 2.0
    model = EBM(Quadratic(torch.zeros(1), torch.eye(1)), data_shape=(1,), cfg=EBMConfig(alpha=0.0), clamp=False)
    with torch.no_grad():
        model.energy_net.scale.fill_(s)
    g = torch.Generator().manual_seed(0)
    x_pos = torch.randn(50, 1, generator=g) * 0.8 + 0.3
    x_neg = torch.randn(400_000, 1, generator=g) / math.sqrt(s)  # exact samples of p_s
    loss, _ = model.contrastive_loss(x_pos, x_neg)
    (grad,) = torch.autograd.grad(loss, model.energy_net.scale)
    nll_grad = 0.5 * (x_pos**2).mean() - 0.5 / s  # d/ds of E_s(x+) + log Z(s)
    assert grad.item() == pytest.approx(nll_grad.item(), abs=0.005)


def test_contrastive_step_lowers_data_energy_and_raises_sample_energy():
    """One gradient step on the CD loss, data near (1, 0) and samples near (-1, 0.5), for several nets."""
    g = torch.Generator().manual_seed(0)
    x_pos = torch.tensor([1.0, 0.0]) + 0.05 * torch.randn(16, 2, generator=g)
    x_neg = torch.tensor([-1.0, 0.5]) + 0.3 * torch.randn(16, 2, generator=g)
    for seed in range(5):
        model = point_model(seed, alpha=0.0)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        with torch.no_grad():
            before = model.energy(x_pos).mean(), model.energy(x_neg).mean()
        loss, metrics = model.contrastive_loss(x_pos, x_neg)
        assert metrics["cd"] == pytest.approx(metrics["energy_data"] - metrics["energy_sample"], abs=1e-6)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            after = model.energy(x_pos).mean(), model.energy(x_neg).mean()
        assert after[0] < before[0] and after[1] > before[1], (seed, before, after)


def test_regularizer_pulls_energies_to_zero():
    """With alpha large, a step on equal data and samples (CD term 0) moves both energies towards 0."""
    model = point_model(alpha=1.0)
    with torch.no_grad():
        model.energy_net.net[-1].bias.fill_(3.0)  # every energy near 3
    x = torch.randn(32, 2)
    loss, metrics = model.contrastive_loss(x, x)
    assert metrics["cd"] == 0 and metrics["reg"] > 4
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert model.energy(x).mean() < metrics["energy_data"] - 0.05


# -- the replay buffer ---------------------------------------------------------------------------


def test_chain_starts_mix_fresh_noise_at_the_restart_rate():
    model = point_model(restart=0.3, buffer_size=500)
    with torch.no_grad():
        model.replay.chains.fill_(7.0)  # far outside the noise's box [-1.5, 1.5]
    x, slot, fresh = model.replay.chain_starts(20_000, generator=torch.Generator().manual_seed(0))
    assert abs(fresh.float().mean().item() - 0.3) < 0.015
    assert (x[~fresh] == 7.0).all() and (x[fresh].abs() <= 1.5).all()
    assert slot.min() >= 0 and slot.max() < 500 and len(slot.unique()) > 490  # every slot in use


def test_training_step_writes_chains_back_and_keeps_the_buffer_size():
    model = point_model(buffer_size=64, restart=0.0)
    opts = model.configure_optimizers(OptimConfig(lr=1e-3))
    before = model.replay.chains.clone()
    torch.manual_seed(3)
    x_pos, y = torch.randn(16, 2), torch.zeros(16, dtype=torch.long)
    metrics = model.training_step((x_pos, y), opts, 0, 1.0)
    assert model.replay.chains.shape == before.shape == (64, 2)
    changed = (model.replay.chains != before).any(1)
    assert 0 < changed.sum() <= 16  # the slots the 16 chains came from (some drawn twice)
    assert {"loss", "cd", "reg", "energy_data", "energy_sample", "grad_norm"} <= set(metrics)


def test_loss_and_sampling_leave_the_buffer_alone():
    model = point_model()
    before = model.replay.chains.clone()
    model.loss((torch.randn(8, 2), torch.zeros(8, dtype=torch.long)))
    model.evaluate((torch.randn(8, 2), torch.zeros(8, dtype=torch.long)))
    model.sample(10, mcmc_steps=2)
    list(model.trajectory(4, mcmc_steps=2))
    torch.testing.assert_close(model.replay.chains, before, rtol=0, atol=0)


def test_buffer_survives_a_state_dict_round_trip(tmp_path):
    model = point_model()
    with torch.no_grad():
        model.replay.chains.normal_()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = point_model(seed=1)
    assert not torch.equal(other.replay.chains, model.replay.chains)
    other.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.equal(other.replay.chains, model.replay.chains)
    a = model.sample(5, generator=torch.Generator().manual_seed(0))
    b = other.sample(5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_conditional_chains_start_in_their_class_slots():
    model = tiny_image_model(conditional=True, buffer_size=100, restart=0.0)
    y = torch.randint(0, 10, (500,))
    _, slot, _ = model.replay.chain_starts(500, y)
    assert torch.equal(slot % 10, y)
    with torch.no_grad():
        chains = model.replay.chains
        chains.copy_((torch.arange(100) % 10).float().view(-1, 1, 1, 1).expand_as(chains) / 10)
    x = model.sample(20, mcmc_steps=0, labels=[3])  # zero steps: the buffer entries themselves
    assert (x == 0.3).all()


# -- out-of-distribution scores ------------------------------------------------------------------


def test_auroc_is_the_pairwise_count():
    g = torch.Generator().manual_seed(0)
    for n_in, n_out in [(7, 5), (30, 41), (1, 9)]:
        s_in = torch.randint(0, 6, (n_in,), generator=g).float()  # many ties
        s_out = torch.randint(2, 9, (n_out,), generator=g).float()
        pairs = (s_out[:, None] > s_in[None]).float() + 0.5 * (s_out[:, None] == s_in[None]).float()
        assert auroc(s_in, s_out) == pytest.approx(pairs.mean().item(), abs=1e-12)
    assert auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert auroc(torch.ones(4), torch.ones(3)) == 0.5


class Brightness(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1, keepdim=True)  # bright images have high energy


def test_ood_auroc_scores_with_the_energy():
    model = EBM(Brightness(), cfg=EBMConfig(buffer_size=1))
    dark = torch.rand(20, 1, 28, 28) - 1  # in [-1, 0]
    bright = torch.rand(30, 1, 28, 28)  # in [0, 1]
    torch.testing.assert_close(energy_scores(model, dark, batch_size=7), dark.flatten(1).mean(1))
    assert ood_auroc(model, dark, bright) == 1.0 and ood_auroc(model, bright, dark) == 0.0


# -- shapes, configs, training -------------------------------------------------------------------


def test_shapes():
    model = tiny_image_model(conditional=True)
    x, y = torch.rand(5, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 3, 4])
    loss, metrics = model.loss((x, y))
    assert loss.shape == () and loss.requires_grad
    assert set(metrics) == {"loss", "cd", "reg", "energy_data", "energy_sample"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert model.energy(x, y).shape == model.energy(x).shape == (5,)
    assert model.replay.chains.shape == (100, 1, 28, 28)
    for options in (dict(mcmc_steps=2), dict(mcmc_steps=1, from_buffer=False, labels=[3])):
        assert model.sample(6, **options).shape == (6, 1, 28, 28)
    states = list(model.trajectory(2, mcmc_steps=4, from_buffer=False))
    assert len(states) == 5 and all(s.abs().max() <= 1 for s in states)
    with torch.no_grad():  # SGLD takes its own input gradients even inside no_grad
        assert model.sample(3, mcmc_steps=2).shape == (3, 1, 28, 28)
    assert point_model().sample(7, mcmc_steps=2).shape == (7, 2)
    assert EBM.likelihood == "none" and model.conditional and model.latent == ""
    with pytest.raises(NotImplementedError, match="no tractable likelihood"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="unconditional"):
        point_model().sample(1, labels=[1])


def test_spectral_norm_bounds_each_layer():
    model = tiny_image_model(spectral_norm=True)
    model.train()
    for _ in range(30):  # power iterations
        model.energy(torch.rand(2, 1, 28, 28))
    weight = model.energy_net.head.weight
    assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=0.02)


def test_configs_load_and_build():
    cfg = load_config(ROOT / "configs" / "ebm_mnist.toml")
    model = EBM.from_config(cfg.model, SPEC)
    assert sum(p.numel() for p in model.parameters()) < 200_000 and cfg.train.ema_decay == 0
    ring = load_config(ROOT / "configs" / "ebm_ring.toml")
    assert EBM.from_config(ring.model, RING).replay.chains.shape[1:] == (2,)
    with pytest.raises(ConfigError, match="restart"):
        EBM.from_config(EBMConfig(restart=1.5), SPEC)
    with pytest.raises(ConfigError, match="images or 2-D points"):
        EBM.from_config(EBMConfig(), TextSpec(name="shakespeare", vocab="ab"))


def train_on_ring(steps: int) -> EBM:
    """A few seconds on 2 cores with configs/ebm_ring.toml's model and learning rate."""
    cfg = load_config(ROOT / "configs" / "ebm_ring.toml")
    torch.manual_seed(0)
    data = load_data(DataConfig(name="ring8"))
    model = EBM.from_config(cfg.model, data.spec)
    opts = model.configure_optimizers(OptimConfig(lr=cfg.train.lr, betas=cfg.train.betas))
    stream = data.train_stream(cfg.data.batch_size, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is as fast
    try:
        for step in range(steps):
            model.training_step(next(stream), opts, step, cfg.train.grad_clip)
    finally:
        torch.set_num_threads(threads)
    return model


@pytest.mark.slow  # trains for several seconds: left out of mutation runs
def test_ring_samples_cover_the_modes():
    model = train_on_ring(steps=600)
    x = model.sample(1000, generator=torch.Generator().manual_seed(0))
    quality = ring8_quality(x)
    assert quality["modes"] >= 6, quality


def test_trainer_end_to_end_on_points_resume_and_reload(tmp_path):
    config = tmp_path / "ring.toml"
    config.write_text(
        'family = "ebm"\n[model]\nhidden = 16\ndepth = 2\nbuffer_size = 128\nsgld_steps = 5\nstep_size = 0.05\n'
        'sgld_clip = 0.0\n[data]\nname = "ring8"\nbatch_size = 32\n'
        "[train]\nmax_steps = 20\neval_every = 10\neval_batches = 1\nsample_every = 20\nn_samples = 50\n"
        "checkpoint_every = 10\n[sample]\nmcmc_steps = 5\n"
    )
    first = trainer_for(config, tmp_path / "run", ["train.max_steps=10"]).fit()
    args = train_arguments().parse_args(["--resume", str(first.run_dir), "--set", "train.max_steps=20"])
    trainer = make_trainer(args)
    resumed, saved = trainer.model.replay.chains, first.model.replay.chains
    torch.testing.assert_close(resumed, saved, rtol=0, atol=0)  # the chains resume
    run = trainer.fit()
    assert run.step == 20 and (run.run_dir / "samples" / "step_000020.png").is_file()
    model, cfg, spec = load_model(run.run_dir)
    assert isinstance(spec, PointSpec) and model.sample(5, **cfg.sample).shape == (5, 2)
    torch.testing.assert_close(model.replay.chains, run.model.replay.chains, rtol=0, atol=0)


# -- the conditional model's energies, the regularizer, and the sampler's generator -----------------


class ClassTable(nn.Module):
    """f(x)[y] = w_y . x for points: a conditional energy network whose energies are known exactly."""

    def __init__(self, classes: int = 3, dim: int = 2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T  # (B, C)


def conditional_table_model(alpha: float = 0.3) -> EBM:
    cfg = EBMConfig(alpha=alpha, sgld_clip=0, buffer_size=12, step_size=0.1, noise=0.0, sgld_steps=2)
    return EBM(ClassTable(), data_shape=(2,), num_classes=3, cfg=cfg, clamp=False)


def test_contrastive_loss_of_a_conditional_model_by_hand():
    """E(x, y) = -f(x)[y]; loss = mean E(x+, y) - mean E(x-, y) + alpha (mean E(x+, y)^2 + mean E(x-, y)^2)."""
    model = conditional_table_model(alpha=0.3)
    g = torch.Generator().manual_seed(1)
    x_pos, x_neg = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    w = model.energy_net.weight.detach()
    e_pos, e_neg = -(x_pos * w[y]).sum(1), -(x_neg * w[y]).sum(1)
    expected = e_pos.mean() - e_neg.mean() + 0.3 * ((e_pos**2).mean() + (e_neg**2).mean())
    loss, metrics = model.contrastive_loss(x_pos, x_neg, y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert metrics["reg"] == pytest.approx(((e_pos**2).mean() + (e_neg**2).mean()).item(), rel=1e-6)


def test_conditional_chains_descend_their_own_class_energy():
    """Without noise, one SGLD step of a chain labelled y moves by +step_size * w_y (E = -w_y . x)."""
    model = conditional_table_model()
    x, y = torch.zeros(3, 2), torch.tensor([0, 1, 2])
    torch.testing.assert_close(model.run_chains(x, y, 1), 0.1 * model.energy_net.weight.detach())
    torch.testing.assert_close(model.run_chains(x, y, 2), 0.2 * model.energy_net.weight.detach())


def test_conditional_training_step_uses_the_labels_everywhere():
    """The chains start in, run on and are written back to their class, and the loss uses E(x, y)."""
    model = conditional_table_model()
    before = model.replay.chains.clone()
    x_pos, y = torch.randn(4, 2, generator=torch.Generator().manual_seed(2)), torch.tensor([2, 2, 2, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay: energies stay known
    torch.manual_seed(0)
    loss, _ = model.loss((x_pos, y))  # reads the buffer only: the same starts as the step below
    torch.manual_seed(0)
    metrics = model.training_step((x_pos, y), {"main": optimizer}, 0, clip=0.0)
    assert loss.item() == pytest.approx(metrics["loss"], rel=1e-6)
    changed = (model.replay.chains != before).any(1).nonzero().flatten()
    assert len(changed) > 0 and (changed % 3 == 2).all()  # slot i holds class i mod 3
    w2 = model.energy_net.weight.detach()[2]
    torch.testing.assert_close(model.replay.chains[changed] - before[changed], 0.2 * w2.expand(len(changed), 2))
    e_pos = -(x_pos @ w2)
    assert metrics["energy_data"] == pytest.approx(e_pos.mean().item(), rel=1e-6)


def test_buffer_draws_follow_the_generator_not_the_global_seed():
    model = point_model(restart=0.5)
    draws = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(7)
        starts, slots, fresh = model.replay.chain_starts(16, None, g)
        draws.append((starts, slots, fresh, model.replay.entries(5, None, g), model.sample(4, generator=g)))
    for a, b in zip(*draws):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_entries_are_distinct_up_to_a_class_s_slots():
    model = point_model(buffer_size=64)
    entries = model.replay.entries(64, None, torch.Generator().manual_seed(0))
    assert len(torch.unique(entries, dim=0)) == 64  # every chain once: a permutation, not draws with repeats


def test_from_config_limits_and_network_outputs():
    assert point_model(buffer_size=1).replay.chains.shape == (1, 2)  # one chain is enough unconditionally
    assert point_model(buffer_size=8, conditional=True).replay.chains.shape == (8, 2)  # one per class
    assert point_model(restart=1.0).replay.restart == 1.0  # every chain fresh: allowed
    assert point_model().energy_net(torch.zeros(3, 2)).shape == (3, 1)  # one energy per point
    assert point_model(conditional=True).energy_net(torch.zeros(3, 2)).shape == (3, 8)  # one per class
    one_class = PointSpec(name="one", dim=2, num_classes=1)
    assert EBM.from_config(EBMConfig(hidden=8, buffer_size=4, conditional=True), one_class).num_classes == 1
    assert tiny_image_model().clamp and not point_model().clamp  # pixels stay in [-1, 1]; points roam


def test_sgld_clips_each_gradient_coordinate_both_ways():
    """E = w . x with |w_i| above the clip: a noiseless step moves each coordinate by step_size * clip, with
    the sign of -w_i (clipping bounds each pixel's move; it does not turn the gradient around)."""
    net = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[5.0, -5.0, 0.02, -0.02]]))
    model = EBM(net, data_shape=(4,), cfg=EBMConfig(sgld_clip=0.5, buffer_size=1), clamp=False)
    step = model.langevin_step(torch.zeros(2, 4), None, step_size=0.1, noise=0.0)
    torch.testing.assert_close(step, torch.tensor([[-0.05, 0.05, -0.002, 0.002]]).expand(2, 4))


def test_image_chains_are_clamped_to_the_pixel_range_and_no_further():
    model = tiny_image_model()
    x = torch.full((2, 1, 28, 28), 0.3)
    x[:, :, 0, 0] = 5.0
    step = model.langevin_step(x, None, step_size=1e-6, noise=0.0)
    assert step.max() == 1.0 and ((step[:, :, 1:] - 0.3).abs() < 1e-3).all()


@pytest.mark.parametrize("make, init_range", [(tiny_image_model, 1.0), (point_model, 1.5)])
def test_chains_and_fresh_noise_fill_the_init_range_uniformly(make, init_range):
    """Images start in the pixel range [-1, 1]; points in [-1.5, 1.5], past the ring of radius 1."""
    model = make(buffer_size=4000)
    for draws in (model.replay.chains, model.replay.uniform_noise(4000, torch.Generator().manual_seed(0))):
        assert -init_range <= draws.min() < -0.98 * init_range and 0.98 * init_range < draws.max() <= init_range
        assert abs(draws.mean().item()) < 0.02 * init_range
    noise_start = model.sample(3, from_buffer=False, mcmc_steps=0, generator=torch.Generator().manual_seed(1))
    again = model.sample(3, from_buffer=False, mcmc_steps=0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(noise_start, again, rtol=0, atol=0)  # uniform starts follow the generator
    chains = model.replay.chains.flatten(1)
    assert not (noise_start.flatten(1)[:, None] == chains[None]).all(2).any()  # fresh, not buffer entries


def test_label_free_score_of_a_conditional_model_is_minus_logsumexp_by_hand():
    model = conditional_table_model()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
    logits = x @ model.energy_net.weight.detach().T  # f(x)[y]
    expected = [-math.log(sum(math.exp(v) for v in row)) for row in logits.tolist()]
    torch.testing.assert_close(model.energy(x), torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_sampler_options_and_their_defaults():
    """Conditional chains descend their label's energy; a negative step size, noise or step count means
    the training value; 0 noise is no noise; the default start is the buffer."""
    cfg = EBMConfig(sgld_clip=0, buffer_size=12, step_size=0.1, noise=0.5, sgld_steps=2)
    model = EBM(ClassTable(), data_shape=(2,), num_classes=3, cfg=cfg, clamp=False)
    w = model.energy_net.weight.detach()
    g = torch.Generator().manual_seed(0)
    states = list(model.trajectory(4, labels=[2], step_size=0.2, noise=0.0, mcmc_steps=1, generator=g))
    torch.testing.assert_close(states[1] - states[0], 0.2 * w[2].expand(4, 2))  # noise 0.0 taken as given
    still = list(model.trajectory(4, labels=[2], step_size=0.0, noise=0.0, mcmc_steps=1, generator=g))
    assert torch.equal(still[1], still[0])  # so is a step size of 0.0: the chains stay put
    states = list(model.trajectory(4, labels=[1], noise=0.0, generator=g))  # training step size, 2 steps
    assert len(states) == 3
    torch.testing.assert_close(states[2] - states[0], 0.2 * w[1].expand(4, 2), rtol=1e-5, atol=1e-6)
    noisy = list(model.trajectory(2000, labels=[0], mcmc_steps=1, generator=g))  # training noise 0.5
    spread = (noisy[1] - noisy[0] - 0.1 * w[0]).std().item()
    assert spread == pytest.approx(0.5, rel=0.05)
    chains = model.replay.chains
    start = next(model.trajectory(3, labels=[0], generator=g))  # from the buffer by default
    assert all((chains == row).all(1).any() for row in start)


def test_image_energy_networks_follow_the_image_size():
    spec = ImageSpec(name="small", shape=(1, 32, 32), num_classes=0)
    model = EBM.from_config(EBMConfig(channels=(4, 8), buffer_size=4, sgld_steps=1), spec)
    assert model.energy(torch.zeros(2, 1, 32, 32)).shape == (2,)
