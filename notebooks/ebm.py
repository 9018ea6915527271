# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Energy-based models: the Boltzmann distribution, Langevin dynamics, the replay buffer, OOD scores
#
# An energy-based model (EBM) is a single network $E_\theta(x)$ that gives every input one number,
# its *energy*: low for inputs that look like the data, high for everything else. There is no
# decoder and no latent code: to generate, you start anywhere and walk downhill on the energy,
# with a little noise. The same number also tells you how *unusual* an input is.
#
# This notebook reads [`genzoo/models/ebm.py`](../genzoo/models/ebm.py) one equation at a time.
# Every equation is followed by the line of that file which computes it (printed from the file
# itself, so what you read is what runs), then by a small numerical check.
#
# **Running it.** Top to bottom takes about 8 minutes on a 2-core laptop CPU, most of it
# training on MNIST. With `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in about
# a minute, with barely trained models. MNIST and FashionMNIST are read from `$GENZOO_DATA` (or
# `~/.cache/genzoo`); without MNIST, genzoo says so in one line and uses the 5,000 digits it ships.

# %%
import shutil
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

import genzoo.models.ebm as ebm_file
from genzoo.checkpoint import build_model
from genzoo.config import DataConfig, load_config
from genzoo.errors import DataError
from genzoo.metrics import auroc, ring8_quality
from genzoo.models.ebm import EBM, EBMConfig, energy_scores
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.pixels import from_uint8
from genzoo.plots import read_metrics
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()


# %% [markdown]
# ## 1. The Boltzmann distribution
#
# Any function $E(x)$ defines a probability density, the Boltzmann (or Gibbs) distribution
# (Du & Mordatch 2019, eq. 1):
#
# $$p_\theta(x) = \frac{e^{-E_\theta(x)}}{Z(\theta)}, \qquad Z(\theta) = \int e^{-E_\theta(x)}\, dx .$$
#
# The network is free to be anything; the price is $Z$, an integral over *every possible input*.
# In two dimensions we can still do it on a grid. Here is a hand-made energy with two wells:

# %%
def two_wells(x):  # (B, 2) -> (B,): low near (-1, 0) and (1, 0)
    return 4 * (x[:, 0] ** 2 - 1) ** 2 + 2 * x[:, 1] ** 2

side = torch.linspace(-2, 2, 401)
grid = torch.stack(torch.meshgrid(side, side, indexing="xy"), dim=-1).view(-1, 2)
cell = (side[1] - side[0]) ** 2
Z = (torch.exp(-two_wells(grid)) * cell).sum()  # the integral, as a sum over 160,801 grid cells
density = torch.exp(-two_wells(grid)) / Z
print(f"Z = {Z:.4f}; the density integrates to {(density * cell).sum():.6f}")
assert abs((density * cell).sum() - 1) < 1e-5
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
for ax, values, title in [(axes[0], two_wells(grid), "energy E(x)"), (axes[1], density, "p(x) = exp(-E(x)) / Z")]:
    image = ax.imshow(values.view(401, 401), origin="lower", extent=(-2, 2, -2, 2))
    ax.set_title(title, fontsize=9)
    plt.colorbar(image, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# A 28x28 image has 784 dimensions: a grid of even 2 values per pixel has $2^{784}$ points. $Z$
# is out of reach, so an EBM's likelihood is unknown (`likelihood = "none"`), and `log_prob` is
# not defined. Two things still work without $Z$: *comparing* inputs (the ratio
# $p(x)/p(x') = e^{E(x') - E(x)}$ needs no $Z$), and *gradients* $\nabla_x \log p(x) = -\nabla_x E(x)$.
# Training and sampling are built from exactly these.

# %%
print(f"EBM.likelihood = {EBM.likelihood!r}")
show_lines(ebm_file, "likelihood = ")

# %% [markdown]
# ## 2. Why the gradient of the log-likelihood needs negative samples
#
# Differentiate $\log p_\theta(x^+) = -E_\theta(x^+) - \log Z(\theta)$ for a data point $x^+$.
# The second term is where $Z$ hides, and its gradient is an expectation under the model itself:
#
# $$\nabla_\theta \log Z = \frac{1}{Z}\int -\nabla_\theta E_\theta(x)\, e^{-E_\theta(x)} dx
# = -\mathbb E_{x^- \sim p_\theta}\big[\nabla_\theta E_\theta(x^-)\big],$$
#
# $$-\nabla_\theta \log p_\theta(x^+) = \nabla_\theta E_\theta(x^+) - \mathbb E_{x^- \sim p_\theta}\big[\nabla_\theta E_\theta(x^-)\big].$$
#
# So maximum likelihood *pushes down the energy of data* and *pushes up the energy of the
# model's own samples* $x^-$ ("negative" samples). Where the model puts mass that the data does
# not, its samples land there and get pushed up. The loss whose gradient this is, the
# contrastive divergence, is simply $\bar E(x^+) - \bar E(x^-)$ with $x^-$ held fixed:

# %%
show_lines(ebm_file, "sec. 2.2", "sec. 3: keeps")


# %% [markdown]
# **Check.** For $E_s(x) = s x^2/2$ (a Gaussian with precision $s$) everything is known:
# $\log Z = \frac12 \log(2\pi/s)$, so $-\frac{d}{ds}\log p_s(x^+) = \frac{(x^+)^2}{2} - \frac{1}{2s}$.
# The contrastive loss with exact samples $x^- \sim \mathcal N(0, 1/s)$ must give the same gradient:

# %%
class Quadratic(nn.Module):
    """E(x) = s (x - mu)^T P (x - mu) / 2, the energy of N(mu, (s P)^-1); s is the one parameter."""

    def __init__(self, mu, precision):
        super().__init__()
        self.mu, self.precision, self.s = mu, precision, nn.Parameter(torch.ones(()))

    def forward(self, x):
        d = x - self.mu
        return (0.5 * self.s * ((d @ self.precision) * d).sum(1))[:, None]  # (B, 1)

s = 2.0
gaussian = EBM(Quadratic(torch.zeros(1), torch.eye(1)), data_shape=(1,), cfg=EBMConfig(alpha=0.0), clamp=False)
gaussian.energy_net.s.data.fill_(s)
x_pos = 0.3 + 0.8 * torch.randn(100, 1, generator=torch.Generator().manual_seed(0))
x_neg = torch.randn(200_000, 1, generator=torch.Generator().manual_seed(1)) / s**0.5  # exact model samples
loss, _ = gaussian.contrastive_loss(x_pos, x_neg)
(grad,) = torch.autograd.grad(loss, gaussian.energy_net.s)
exact = 0.5 * (x_pos**2).mean() - 0.5 / s
print(f"contrastive gradient {grad.item():.4f}, exact -d log p / ds {exact.item():.4f}")
assert abs(grad.item() - exact.item()) < 0.01

# %% [markdown]
# ## 3. Langevin dynamics: sampling with only $\nabla_x E$
#
# To get negative samples we need to sample $p_\theta$ without knowing $Z$. Langevin dynamics
# does it with the gradient alone: step downhill on the energy and add Gaussian noise,
#
# $$x_{k+1} = x_k - \epsilon\, \nabla_x E(x_k) + \sqrt{2\epsilon}\; z_k, \qquad z_k \sim \mathcal N(0, I),$$
#
# and for small $\epsilon$ and many steps $x_k$ is distributed as $p(x)$. genzoo's step takes the
# step size and the noise scale separately, and clips each coordinate of the gradient, as Du &
# Mordatch (2019, eq. 2) do on images; the gradient is taken with respect to the *input*, with
# `torch.autograd.grad`, which is why the EBM never runs under `torch.inference_mode()`:

# %%
show_source(EBM.langevin_step)

# %% [markdown]
# **Check** on a Gaussian with a chosen mean and covariance: with noise $\sqrt{2\epsilon}$ and no
# clipping, 4,000 chains of 1,500 steps end with the right mean and covariance (up to a bias of
# order $\epsilon$).

# %%
mu, cov = torch.tensor([0.5, -1.0]), torch.tensor([[1.0, 0.6], [0.6, 0.5]])
langevin = EBM(Quadratic(mu, torch.linalg.inv(cov)), data_shape=(2,), cfg=EBMConfig(sgld_clip=0), clamp=False)
eps, steps = 0.01, 300 if SHORT else 1500
x = langevin.sample(4000, generator=torch.Generator().manual_seed(0), from_buffer=False,
                    mcmc_steps=steps, step_size=eps, noise=(2 * eps) ** 0.5)
print(f"mean {x.mean(0).tolist()} (want {mu.tolist()})")
print(f"covariance {torch.cov(x.T).flatten().tolist()} (want {cov.flatten().tolist()})")
assert (x.mean(0) - mu).abs().max() < 0.06 and (torch.cov(x.T) - cov).abs().max() < 0.08

# %% [markdown]
# In practice EBMs on images use a large step and a tiny noise (Du & Mordatch: 10 and 0.005),
# which is Langevin dynamics at a low *temperature* $T = \text{noise}^2 / (2\,\text{step})$: it samples
# $e^{-E/T}$, sharper than $e^{-E}$. The energy network is trained with that sampler, so it learns
# energies that suit it; the "temperature" is absorbed into the scale of $E$.
#
# ## 4. Short chains and the replay buffer
#
# Running Langevin dynamics to convergence at every training step would cost thousands of network
# passes. Du & Mordatch's fix: run *short* chains (a few dozen steps), but start them where earlier
# chains stopped. A **replay buffer** holds the end points of past chains; at each step most
# chains restart from random buffer entries and a few (`restart`, 5%) from uniform noise, so new
# modes can still be found. After the step the chains' end points go back into the buffer. The
# buffer is a registered buffer of the module, so it is saved in checkpoints and a resumed run
# continues the same chains:

# %%
show_source(ebm_file.ReplayBuffer)
show_source(EBM.training_step)


# %% [markdown]
# ### A 2-D EBM: the ring of 8 Gaussians
#
# An MLP energy on the ring of 8 Gaussians (`configs/ebm_ring.toml`), trained with genzoo's trainer.
# At each evaluation the trainer draws 1,000 samples and counts the modes they cover.

# %%
def train_ring(alpha, name):
    overrides = [f"model.alpha={alpha}", "train.eval_every=100"]
    overrides += ["train.max_steps=200", "train.eval_every=100", "train.sample_every=1000"] if SHORT else []
    cfg = load_config(ROOT / "configs" / "ebm_ring.toml", overrides)
    data = load_data(cfg.data)
    torch.manual_seed(cfg.train.seed)
    run_dir = ROOT / "runs" / (f"notebook-ebm-{name}" + ("-short" if SHORT else ""))
    shutil.rmtree(run_dir, ignore_errors=True)
    run = Trainer(build_model(cfg, data.spec), data, cfg, run_dir).fit()
    return run.sampling_model.eval(), data, run_dir

started = time.perf_counter()
ring_model, ring, ring_dir = train_ring(0.1, "ring")
print(f"trained in {time.perf_counter() - started:.0f} s")


# %%
def landscape(model, ax_density, ax_energy, extent=1.6, n=160):
    side = torch.linspace(-extent, extent, n)
    grid = torch.stack(torch.meshgrid(side, side, indexing="xy"), dim=-1).view(-1, 2)
    energy = energy_scores(model, grid, batch_size=4096).view(n, n)
    box = (-extent, extent, -extent, extent)
    ax_density.imshow((-(energy - energy.min())).exp(), origin="lower", extent=box, cmap="viridis")
    ax_energy.imshow(energy, origin="lower", extent=box, cmap="magma")
    ax_energy.contour(side, side, energy, levels=12, colors="white", linewidths=0.4)

samples = ring_model.sample(1000, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
axes[0].scatter(*ring.train_x[:2000].T, s=2, alpha=0.5)
landscape(ring_model, axes[1], axes[2])
axes[1].scatter(*samples.T, s=1, c="white", alpha=0.4)
for ax, title in zip(axes, ["data", "exp(-E) and 1,000 samples (white)", "energy E"]):
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()
quality = ring8_quality(samples)
print(f"{quality['modes']:.0f} of 8 modes covered, {quality['high_quality']:.1%} of samples within 3 std of a mode")
if not SHORT:
    assert quality["modes"] >= 6

# %% [markdown]
# ## 5. What goes wrong without the regularizer
#
# The contrastive loss $\bar E(x^+) - \bar E(x^-)$ only sees energy *differences*: adding a constant
# to $E$ changes nothing, and scaling $E$ up makes the loss more negative whenever data already sit
# lower than samples. Nothing holds the energies in place. Du & Mordatch add
# $\alpha\,(E(x^+)^2 + E(x^-)^2)$, which pins the energies near zero; `alpha` is that weight
# ($0.1$ here). On images without it the energies can run away and training diverge (Du & Mordatch
# 2019); on this small 2-D problem the effect in a short run is only a drift, as the plot below shows.

# %%
x_a, x_b = torch.randn(64, 2), torch.randn(64, 2)
_, m0 = ring_model.contrastive_loss(x_a, x_b)
with torch.no_grad():
    ring_model.energy_net.net[-1].bias += 5.0  # E -> E + 5
    _, m5 = ring_model.contrastive_loss(x_a, x_b)
    ring_model.energy_net.net[-1].bias -= 5.0
print(f"E + 5: contrastive term {m0['cd']:.5f} -> {m5['cd']:.5f}; regularizer {m0['reg']:.3f} -> {m5['reg']:.3f}")
assert abs(m0["cd"] - m5["cd"]) < 1e-4 and m5["reg"] > m0["reg"] + 40

# %% [markdown]
# Train the same ring model with $\alpha = 0$ and compare the energies the trainer logged. In the
# run committed here, the logged mean energies with $\alpha = 0.1$ stayed between $-0.005$ and $0.02$;
# with $\alpha = 0$ they wandered between $-0.06$ and $0.14$, data and samples together (only their
# difference is trained), and ended near $-0.06$; the samples cover the ring the same way.

# %%
free_model, _, free_dir = train_ring(0.0, "ring-alpha0")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, run_dir, title in [(axes[0], ring_dir, "alpha = 0.1"), (axes[1], free_dir, "alpha = 0")]:
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
    for key in ["energy_data", "energy_sample"]:
        ax.plot([r["step"] for r in records], [r[key] for r in records], label=key)
    ax.set_title(f"{title}: mean energies during training", fontsize=9)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
samples_free = free_model.sample(1000, generator=torch.Generator().manual_seed(0))
axes[2].scatter(*samples_free.T, s=1)
axes[2].set_title(f"alpha = 0: samples, {ring8_quality(samples_free)['modes']:.0f} modes", fontsize=9)
axes[2].set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. MNIST
#
# The default config: a small convolutional energy network (SiLU activations: Langevin dynamics
# needs a smooth gradient), 40 SGLD steps per training step with step 10, noise 0.005 and the
# gradient clipped at 0.03 per pixel, a buffer of 8,192 chains. The trainer's EMA is off: it would
# average the replay buffer too (blurring the chains together) along with the weights.

# %%
# full mode: 5 minutes of the config's 19, on 2 cores
overrides = ["train.max_steps=20", "train.eval_every=10", "train.sample_every=1000"] if SHORT \
    else ["train.max_minutes=5"]
cfg = load_config(ROOT / "configs" / "ebm_mnist.toml", overrides)
data = load_data(cfg.data)
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, data.spec)  # EBM(energy_net): the algorithm wraps the network
print(f"energy network: {parameter_count(model):,} parameters; "
      f"buffers: {[(name, tuple(b.shape)) for name, b in model.named_buffers()]}")
run_dir = ROOT / "runs" / ("notebook-ebm-short" if SHORT else "notebook-ebm")
shutil.rmtree(run_dir, ignore_errors=True)
started = time.perf_counter()
run = Trainer(model, data, cfg, run_dir).fit()
model = run.sampling_model.eval()
print(f"trained {run.step} steps in {time.perf_counter() - started:.0f} s")

# %%
records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
plt.figure(figsize=(6, 2.6))
for key in ["energy_data", "energy_sample", "cd"]:
    plt.plot([r["step"] for r in records], [r[key] for r in records], label=key)
plt.xlabel("step")
plt.legend(fontsize=8)
plt.title("mean energies of data and SGLD samples; cd = their difference", fontsize=9)
plt.show()

# %% [markdown]
# The contrastive term hovers around zero: when the model is right, data and samples have the
# same energy on average. It is a moving target, not a loss that goes down.
#
# **Samples.** From the buffer (chains that training has run for thousands of steps, continued
# for 40 more), and from uniform noise (200 steps: short-run samples from scratch). Then the
# chain itself: noise on the left, every 20th step to the right.

# %%
g = torch.Generator().manual_seed(0)
noise_steps = 20 if SHORT else 200
from_buffer = model.sample(40, generator=g, from_buffer=True)
from_noise = model.sample(40, generator=g, from_buffer=False, mcmc_steps=noise_steps)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.0))
show_images(from_buffer, title="from the replay buffer", ax=axes[0])
show_images(from_noise, title=f"from uniform noise, {noise_steps} SGLD steps", ax=axes[1])
plt.show()
states = list(model.trajectory(5, generator=torch.Generator().manual_seed(1), from_buffer=False, mcmc_steps=noise_steps))
pick = torch.linspace(0, noise_steps, 11).round().long().tolist()
show_images(torch.stack([states[i] for i in pick], dim=1).flatten(0, 1), nrow=11,
            title="SGLD chains from noise: one row per chain")
plt.show()
assert len(states) == noise_steps + 1 and states[-1].abs().max() <= 1

# %% [markdown]
# ## 7. The energy as an anomaly score
#
# Low energy means "looks like the training data", so the energy itself scores how unusual an
# input is. Score the MNIST test digits (in distribution) and FashionMNIST test images (clothes,
# out of distribution) and ask how often a random FashionMNIST image gets a higher energy than a
# random digit: the area under the ROC curve (AUROC; 0.5 is chance, 1 perfect), computed by
# `genzoo.metrics.auroc` as the Mann-Whitney statistic:

# %%
s_in, s_out = torch.tensor([0.1, 0.4, 0.4, 0.9]), torch.tensor([0.4, 1.0, 2.0])
pairs = ((s_out[:, None] > s_in).float() + 0.5 * (s_out[:, None] == s_in).float()).mean()
print(f"auroc {auroc(s_in, s_out):.4f}, pairs counted by hand {pairs:.4f}")
assert abs(auroc(s_in, s_out) - pairs) < 1e-9

# %%
n = 1000 if SHORT else None  # None: all 10,000 test images of each
mnist = from_uint8(data.test_x[:n])
try:
    fashion = from_uint8(load_data(DataConfig(name="fashion_mnist")).test_x[:n])
except DataError as err:
    fashion = None
    print(f"FashionMNIST is not available ({err}); skipping the OOD score")
if fashion is not None:
    energies = {"MNIST test": energy_scores(model, mnist), "FashionMNIST test": energy_scores(model, fashion),
                "samples (buffer)": energy_scores(model, from_buffer)}
    plt.figure(figsize=(6, 2.8))
    for name, e in energies.items():
        plt.hist(e.numpy(), bins=60, alpha=0.5, density=True, label=name)
    plt.xlabel("energy E(x)")
    plt.legend(fontsize=8)
    plt.show()
    auc = auroc(energies["MNIST test"], energies["FashionMNIST test"])
    print(f"OOD AUROC, MNIST (in) vs FashionMNIST (out): {auc:.4f} on {len(mnist):,} + {len(fashion):,} images")
    show_images(torch.cat([fashion[energies["FashionMNIST test"].argsort()[:8]],
                           mnist[energies["MNIST test"].argsort(descending=True)[:8]]]), nrow=8,
                title="top: the most digit-like clothes; bottom: the least digit-like digits")
    plt.show()

# %% [markdown]
# ## What to try next
#
# - `python train/ebm.py` trains the full 19-minute config and writes the figures of this notebook
#   for it; `bench/ebm_mnist.py` measures FID-MNIST, sampling time and the OOD AUROC.
# - `--set model.conditional=true`: a class-conditional EBM, $E(x, y) = -f_\theta(x)[y]$, whose
#   $C$ outputs are also a classifier, $p(y \mid x) = \mathrm{softmax}(f_\theta(x))$
#   (Grathwohl et al. 2020); sample a class with `model.sample(16, labels=[3])`.
# - `--set model.spectral_norm=true`: a Lipschitz energy, smoother landscapes, slower learning.
# - `--set model.restart=0`: no fresh chains; watch the buffer lose variety.
# - `genzoo sample runs/notebook-ebm --from-buffer false --mcmc-steps 500`: longer chains from noise.
