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
# **Running it.** The committed run took 19 minutes on a slow 2-core CPU (one torch thread, with
# other notebooks running on both cores), most of it training: three small models of the ring (each
# cell prints its time) and 400 steps of the MNIST model (12.5 minutes of it). With
# `GENZOO_SHORT=1` (what CI sets) every loop shrinks: the notebook runs through with barely trained
# models, and its numbers mean little. MNIST and FashionMNIST are read from `$GENZOO_DATA` (or
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
from genzoo.baselines import pixel_histograms
from genzoo.errors import DataError
from genzoo.evaluator import load_evaluator
from genzoo.metrics import auroc, feature_metrics, even_ring, ring8_centres, ring8_quality
from genzoo.models.ebm import EBM, EBMConfig, energy_scores
from genzoo.nn import MLP
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.pixels import from_uint8
from genzoo.plots import density_panel, read_metrics, ring8_panel, square_grid
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()
CPU_THREADS = torch.get_num_threads()


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
show_lines(ebm_file, 'register_buffer("chains"', "fresh = torch.rand", "x = torch.where(fresh_",
           "self.chains[slot] = x")
show_source(EBM.training_step)


# %% [markdown]
# ### A 2-D EBM: the ring of 8 Gaussians
#
# Eight Gaussians of standard deviation 0.05 on the unit circle (`configs/ebm_ring.toml`) are small
# enough to see everything at once: data, samples and the energy on a grid. `ring8_quality` scores
# samples as VEEGAN (Srivastava et al. 2017) does: a sample is *high quality* within 3 standard
# deviations (0.15) of a mode centre, and a mode is *covered* when at least 1/32 of the samples are
# high-quality ones near it. That score is lenient: 1,000 points spread evenly around the unit circle,
# `even_ring(1000)`, know nothing of the 8 modes and still cover all of them, with about 38% of the
# points high quality. Every ring score below is printed beside this baseline; a model that has
# learned the 8 separate modes must score clearly above it.

# %%
ring_data = load_data(DataConfig(name="ring8"))
baseline = even_ring(1000)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
ring8_panel(axes[0], ring_data.train_x[:1000], "data: 1,000 training points (x: the 8 true centres)")
ring8_panel(axes[1], baseline, "baseline: even_ring(1000), no modes learned")
plt.tight_layout()
plt.show()


def print_scores(rows):
    """One line per set of 1,000 points: modes covered and the high-quality share, baseline first."""
    for name, points in {"even ring (baseline)": baseline, **rows}.items():
        quality = ring8_quality(points)
        print(f"{name:<44} {quality['modes']:.0f} of 8 modes, high-quality share {quality['high_quality']:.2f}")


print_scores({"data (1,000 training points)": ring_data.train_x[:1000]})


# %% [markdown]
# First the config's model: an MLP (3 hidden layers of 128, SiLU) that reads the point $(x, y)$,
# trained with genzoo's trainer for 800 steps, each with 20 SGLD steps (step 0.02, noise 0.01) on 256
# chains from a buffer of 4,096. Its evaluation line prints the ring score of 1,000 samples.

# %%
def train_ring(name, energy_net=None, overrides=(), steps=800):
    """The ring config trained by genzoo's trainer; ``energy_net``: a network of our own instead of the MLP."""
    torch.set_num_threads(1)  # small matrices of 2-D points: one thread is as fast, and shares the CPU better
    steps = 100 if SHORT else steps
    overrides = [*overrides, f"train.max_steps={steps}", f"train.eval_every={steps * 3 // 8}",
                 "train.sample_every=100000", "train.checkpoint_every=100000"]
    cfg = load_config(ROOT / "configs" / "ebm_ring.toml", overrides)
    torch.manual_seed(cfg.train.seed)
    if energy_net is None:
        model = build_model(cfg, ring_data.spec)
    else:
        model = EBM(energy_net(), data_shape=(2,), cfg=cfg.model, clamp=False)
    run_dir = ROOT / "runs" / (f"notebook-ebm-{name}" + ("-short" if SHORT else ""))
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    run = Trainer(model, ring_data, cfg, run_dir).fit()
    print(f"{run.step} steps in {time.perf_counter() - started:.0f} s")
    return run.sampling_model.eval(), run_dir


mlp_model, mlp_dir = train_ring("ring-mlp")


# %% [markdown]
# Samples come from two places: the replay buffer, continued for the sampler's 20 SGLD steps (the
# chains training has run longest), and fresh chains from uniform noise on $[-1.5, 1.5]^2$, run for
# 500 steps. The energy map shows $E$ on a grid, with the 8 true centres; the number in its title is the
# energy at the 8 points halfway between neighbouring centres minus the energy at the 8 centres, in
# units of the sampler's temperature $T = \text{noise}^2 / (2\,\text{step}) = 0.0025$. The sampler
# draws from $e^{-E/T}$, so a barrier of $k\,T$ makes the points between two modes $e^{k}$ times less
# likely than the centres: a barrier near 0 means the model has no modes.

# %%
def barrier(model):
    """Mean energy halfway between neighbouring centres minus at the centres, in units of T."""
    angle = torch.arange(16) * (torch.pi / 8)  # even k: the 8 centres; odd k: halfway between them
    energy = energy_scores(model, torch.stack([angle.cos(), angle.sin()], dim=1))
    temperature = model.noise**2 / (2 * model.step_size)
    return (energy[1::2].mean() - energy[0::2].mean()).item() / temperature


NOISE_STEPS = 50 if SHORT else 500  # SGLD steps of the chains that start from uniform noise


def ring_figure(model, name, noise_steps=NOISE_STEPS):
    """Samples from the buffer and from noise, and the energy map; returns the two sample sets."""
    g = torch.Generator().manual_seed(0)
    from_buffer = model.sample(1000, generator=g)
    from_noise = model.sample(1000, generator=g, from_buffer=False, mcmc_steps=noise_steps)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    ring8_panel(axes[0], from_buffer, f"{name}: 1,000 samples, buffer + {model.sgld_steps} SGLD steps")
    ring8_panel(axes[1], from_noise, f"{name}: 1,000 samples, noise + {noise_steps} SGLD steps")
    cells = 150
    energy = energy_scores(model, square_grid(1.5, cells)).view(cells, cells)
    image = density_panel(axes[2], energy, 1.5, cmap="magma")
    axes[2].contour(*[torch.linspace(-1.5, 1.5, cells)] * 2, energy, levels=15, colors="white", linewidths=0.4)
    axes[2].scatter(*ring8_centres().T, s=60, marker="x", color="cyan")
    axes[2].set_title(f"{name}: energy E; barrier between modes {barrier(model):.1f} T", fontsize=9)
    plt.colorbar(image, ax=axes[2], fraction=0.046)
    plt.tight_layout()
    plt.show()
    return from_buffer, from_noise


mlp_buffer, mlp_noise = ring_figure(mlp_model, "MLP on (x, y)")
print_scores({"MLP on (x, y): buffer + 20 steps": mlp_buffer, f"MLP on (x, y): noise + {NOISE_STEPS} steps": mlp_noise})

# %% [markdown]
# The MLP has learned the *ring*: its energy is a circular valley, and its samples lie on the circle.
# It has not learned the *modes*: the barrier between them is about 0, its samples spread around
# the whole circle, and its high-quality share is the even ring's. The usual explanation is the
# *spectral bias* of networks that read raw coordinates (Rahaman et al. 2019): they fit smooth, slowly
# varying functions first, and an energy with 8 wells around a circle varies fast along it.
#
# The cure Tancik et al. (2020) give for that bias is a different input: random Fourier features,
# $\big[\sin(2\pi Bx), \cos(2\pi Bx)\big]$ for a fixed random $2 \times 64$ matrix $B$ with entries
# drawn from $\mathcal N(0, 1)$, read by the same MLP. The EBM does not care what the network is, only
# that it returns one number per input; everything else (sampler, buffer, regularizer, trainer) stays.

# %%
class FourierEnergy(nn.Module):
    """E(x) = MLP(sin 2 pi B x, cos 2 pi B x), B a fixed random (2, 64) matrix (Tancik et al. 2020)."""

    def __init__(self, features=64, scale=1.0, hidden=128, depth=3):
        super().__init__()
        self.register_buffer("B", scale * torch.randn(2, features))  # fixed: saved, never trained
        self.mlp = MLP(2 * features, hidden, 1, depth)

    def forward(self, x):  # (N, 2) -> (N, 1)
        angles = 2 * torch.pi * x @ self.B
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


ring_model, ring_dir = train_ring("ring-fourier", FourierEnergy)

# %%
ring_buffer, ring_noise = ring_figure(ring_model, "Fourier features")
g = torch.Generator().manual_seed(1)
print_scores({
    "Fourier features: buffer + 20 steps": ring_buffer,
    **{f"Fourier features: noise + {k} steps": ring_model.sample(1000, generator=g, from_buffer=False, mcmc_steps=k)
       for k in ((20, 50) if SHORT else (20, 100, 500))},
})
if not SHORT:
    assert ring8_quality(ring_buffer)["high_quality"] > ring8_quality(baseline)["high_quality"] + 0.2

# %% [markdown]
# With Fourier features the energy has a deep well at each of the 8 centres (the barrier is
# hundreds of $T$), and samples from the buffer fall into separate clusters on the true centres: a
# high-quality share far above the even ring's. Fresh chains from noise need enough SGLD steps to
# get there; the lines above print the share after 20, 100 and 500 steps.
#
# ## 5. What goes wrong without the regularizer
#
# The contrastive loss $\bar E(x^+) - \bar E(x^-)$ only sees energy *differences*: adding a constant
# to $E$ changes nothing, and scaling $E$ up makes the loss more negative whenever data already sit
# lower than samples. Nothing holds the energies in place. Du & Mordatch add
# $\alpha\,(E(x^+)^2 + E(x^-)^2)$, which pins the energies near zero; `alpha` is that weight
# ($0.1$ here). First the invariance, on the trained MLP:

# %%
x_a, x_b = torch.randn(64, 2), torch.randn(64, 2)
_, m0 = mlp_model.contrastive_loss(x_a, x_b)
with torch.no_grad():
    mlp_model.energy_net.net[-1].bias += 5.0  # E -> E + 5
    _, m5 = mlp_model.contrastive_loss(x_a, x_b)
    mlp_model.energy_net.net[-1].bias -= 5.0
print(f"E + 5: contrastive term {m0['cd']:.5f} -> {m5['cd']:.5f}; regularizer {m0['reg']:.3f} -> {m5['reg']:.3f}")
assert abs(m0["cd"] - m5["cd"]) < 1e-4 and m5["reg"] > m0["reg"] + 40

# %% [markdown]
# Now train the Fourier-feature model again with $\alpha = 0$, for 400 steps, and compare the mean
# energies of data and samples that the trainer logged, and the samples.

# %%
free_model, free_dir = train_ring("ring-fourier-alpha0", FourierEnergy, ["model.alpha=0"], steps=400)
g = torch.Generator().manual_seed(0)
free_buffer = free_model.sample(1000, generator=g)
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, run_dir, title in [(axes[0], ring_dir, "alpha = 0.1"), (axes[1], free_dir, "alpha = 0")]:
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
    for key in ["energy_data", "energy_sample"]:
        values = [r[key] for r in records]
        ax.plot([r["step"] for r in records], values, label=key)
        print(f"{title}: logged {key} from {min(values):.2f} to {max(values):.2f}, last {values[-1]:.2f}")
    ax.set_title(f"{title}: mean energies during training", fontsize=9)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
ring8_panel(axes[2], free_buffer, f"alpha = 0: buffer + 20 SGLD steps; barrier {barrier(free_model):.3g} T")
plt.tight_layout()
plt.show()
print_scores({"Fourier features, alpha = 0.1: buffer": ring_buffer, "Fourier features, alpha = 0: buffer": free_buffer})
print(f"alpha = 0: median distance of these samples from the origin {free_buffer.norm(dim=1).median():.3g}"
      " (the ring's: 1)")

# %% [markdown]
# Without the regularizer nothing holds the energies: in this run the mean energies of data and
# samples ran away together, to the values printed above, orders of magnitude beyond those of the
# $\alpha = 0.1$ run, with the samples' energy far above the data's. Only their difference is trained,
# and making it larger makes the loss smaller. SGLD's step size is fixed, so at such energies one step
# of $0.02\,\nabla_x E$ is huge: the chains no longer follow the wells, and the samples from the buffer
# miss the modes (the scores and the median distance above). On images Du & Mordatch (2019) report
# the same kind of divergence without the term.

# %% [markdown]
# ## 6. MNIST
#
# ### The baseline first: every pixel on its own
#
# An EBM has no likelihood, so its samples are what we can score. The simplest model of the digits
# that can be sampled treats every pixel as independent: each of the 784 pixels gets its own histogram
# over the 256 grey levels, counted on the training digits (`genzoo.baselines.pixel_histograms`), and a
# sample draws each pixel from its histogram. genzoo's evaluator (a small MNIST classifier shipped with
# the package, `genzoo/evaluator.py`) scores 1,000 such samples against the test digits: FID-MNIST (a
# Fréchet distance between its features of real and generated images; lower is better, not Inception
# FID), precision (the share of samples that fall among real digits), recall (the share of real digits
# the samples reach), recognizable (the share the classifier calls one digit with probability at least
# 0.9) and class coverage (1.0: the ten digits evenly). 1,000 real training digits give the floor. The
# EBM's samples get the same five numbers below, printed beside these.

# %%
data = load_data(load_config(ROOT / "configs" / "ebm_mnist.toml").data)
evaluator, n_quality = load_evaluator("mnist"), 100 if SHORT else 1000
real_features, _ = evaluator.embed(data.test_x[: 1000 if SHORT else None])  # uint8 is read as pixels
pixel_log_p = pixel_histograms(data.train_x)  # (1, 28, 28, 256): log p_d(level) for every pixel d
g = torch.Generator().manual_seed(0)
levels = torch.multinomial(pixel_log_p.exp().view(-1, 256), n_quality, replacement=True, generator=g)  # (784, n)
independent = from_uint8(levels.T.reshape(n_quality, *data.train_x.shape[1:]).to(torch.uint8))
real_digits = from_uint8(data.train_x[torch.randperm(len(data.train_x), generator=g)[:n_quality]])
quality = {name: feature_metrics(real_features, *evaluator.embed(x))
           for name, x in [("real training digits (floor)", real_digits), ("independent pixels (baseline)", independent)]}


def print_quality(rows):
    """One line per set of samples: the evaluator's five numbers."""
    print(f"{n_quality:,} images each against {len(real_features):,} test digits, evaluator {evaluator.name}")
    for name, q in rows.items():
        print(f"{name:<36} FID-MNIST {q['fid']:8.1f}  precision {q['precision']:.3f}  recall {q['recall']:.3f}"
              f"  recognizable {q['recognizability']:.3f}  coverage {q['coverage']:.3f}")


print_quality(quality)
show_images(independent[:40], title="independent pixels: each pixel drawn from its own histogram")
plt.show()

# %% [markdown]
# (The numbers above are discussed with the EBM's, after its samples.)
#
# ### The EBM
#
# The default config: a small convolutional energy network (SiLU activations: Langevin dynamics
# needs a smooth gradient), 40 SGLD steps per training step with step 10, noise 0.005 and the
# gradient clipped at 0.03 per pixel, a buffer of 8,192 chains. The trainer's EMA is off: it has not
# been measured for the EBM (it averages the weights and copies the replay buffer; see docs/ebm.md).

# %%
# full mode: 400 of the config's 6,500 steps (19 minutes), a fixed count whatever the CPU's speed
overrides = ["train.max_steps=20", "train.eval_every=8"] if SHORT \
    else ["train.max_steps=400", "train.max_minutes=0", "train.eval_every=200"]
torch.set_num_threads(CPU_THREADS)  # back to every core for the convolutions
overrides += ["train.sample_every=100000", "train.log_every=10"]
cfg = load_config(ROOT / "configs" / "ebm_mnist.toml", overrides)  # the data of the cell above
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
plt.figure(figsize=(7, 3))
for key in ["energy_data", "energy_sample", "cd"]:
    plt.plot([r["step"] for r in records], [r[key] for r in records], label=key)
plt.xlabel("step")
plt.legend(fontsize=8)
plt.title("mean energies of data and SGLD samples (each point: 10 steps); cd = their difference", fontsize=9)
plt.show()
late = records[len(records) // 2:]  # the second half of the logged steps (one every 10)
print(f"second half of training: cd between {min(r['cd'] for r in late):.3f} and {max(r['cd'] for r in late):.3f}, "
      f"energy_data between {min(r['energy_data'] for r in late):.3f} and {max(r['energy_data'] for r in late):.3f}")

# %% [markdown]
# The contrastive term is not a loss that goes down: it moves around zero (its range over the second
# half of training is printed above). When the network cannot tell the chains' end points from data,
# both have the same mean energy; every update changes the energy, and with it where the chains go next.
#
# **Samples.** From the buffer (chains that training has already continued, as often as the first
# line below says, run for 40 more steps), and from uniform noise (200 steps: short-run samples from
# scratch). Their mean energies are printed beside that of real test digits. Then the chain
# itself: noise on the left, then every tenth of the 200 steps.

# %%
visits = run.step * cfg.data.batch_size / cfg.model.buffer_size
print(f"each buffer chain was continued {visits:.1f} times on average, {visits * cfg.model.sgld_steps:.0f} SGLD steps")
g = torch.Generator().manual_seed(0)
noise_steps = 20 if SHORT else 200
from_buffer = model.sample(n_quality, generator=g, from_buffer=True)  # n_quality for the evaluator below
from_noise = model.sample(n_quality, generator=g, from_buffer=False, mcmc_steps=noise_steps)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
show_images(from_buffer[:40], title="from the replay buffer, + 40 SGLD steps", ax=axes[0])
show_images(from_noise[:40], title=f"from uniform noise, {noise_steps} SGLD steps", ax=axes[1])
plt.show()
for name, x in [("test digits", from_uint8(data.test_x[:1000])), ("samples from the buffer", from_buffer),
                ("samples from noise", from_noise)]:
    print(f"mean energy of {len(x):>4} {name:<24} {energy_scores(model, x).mean():.3f}")
g = torch.Generator().manual_seed(1)
states = list(model.trajectory(5, generator=g, from_buffer=False, mcmc_steps=noise_steps))
pick = torch.linspace(0, noise_steps, 11).round().long().tolist()
show_images(torch.stack([states[i] for i in pick], dim=1).flatten(0, 1), nrow=11, scale=0.7,
            title=f"SGLD chains from noise: one row per chain, every {noise_steps // 10}th step")
plt.show()
assert len(states) == noise_steps + 1 and states[-1].abs().max() <= 1

# %% [markdown]
# **Quality, beside the baseline.** The same five numbers for the EBM's samples (the 1,000 above of
# each kind), under the real digits and the independent pixels of the baseline:

# %%
quality["EBM: buffer + 40 SGLD steps"] = feature_metrics(real_features, *evaluator.embed(from_buffer))
quality[f"EBM: noise + {noise_steps} SGLD steps"] = feature_metrics(real_features, *evaluator.embed(from_noise))
print_quality(quality)

# %% [markdown]
# The independent pixels are the floor to beat, and they show why no single number will do: the
# classifier calls *every* one of those speckled blobs a digit with probability at least 0.9
# (recognizable 1.000), and always the same digit (class coverage 0.000). Their FID-MNIST is 8075.3,
# 2% of them fall among real digits (precision 0.024) and they reach none of the real digits
# (recall 0.000). The EBM, after 400 of its config's 6,500 steps, beats them on every number but that
# flattering one: FID-MNIST 2497.7 from the buffer and 2277.5 from noise, precision 0.503 and 0.339,
# recall 0.135 and 0.082, class coverage 0.758 and 0.841; about half of its samples are
# recognizable (0.491 and 0.489). Strokes on a black background, not independent speckle: what
# the energy has learned is how pixels go *together*. It is still far from the real digits' floor
# (FID-MNIST 54.5): `docs/ebm.md` records the config's full 19-minute run, FID-MNIST 252.4 and
# recognizable 0.745 from the buffer by the same protocol.

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
    fashion_levels = load_data(DataConfig(name="fashion_mnist")).test_x[:n]  # uint8
    fashion = from_uint8(fashion_levels)
except DataError as err:
    fashion = None
    print(f"FashionMNIST is not available ({err}); skipping the OOD score")
if fashion is not None:
    e_in, e_out = energy_scores(model, mnist), energy_scores(model, fashion)
    auc = auroc(e_in, e_out)
    both = torch.cat([e_in, e_out])
    bins = torch.linspace(both.min(), both.max(), 81).numpy()  # the same bins for both sets
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    for ax, log in zip(axes, [False, True]):
        ax.hist(e_in.numpy(), bins=bins, alpha=0.6, label=f"MNIST test ({len(mnist):,})")
        ax.hist(e_out.numpy(), bins=bins, alpha=0.6, label=f"FashionMNIST test ({len(fashion):,})")
        ax.set_yscale("log" if log else "linear")
        ax.set_xlabel("energy E(x)")
        ax.set_ylabel("images per bin" + (" (log scale)" if log else ""))
        ax.legend(fontsize=8)
    fig.suptitle(f"energy of in-distribution and OOD images, 80 shared bins: AUROC {auc:.4f}", fontsize=10)
    plt.tight_layout()
    plt.show()
    print(f"OOD AUROC, MNIST (in) vs FashionMNIST (out): {auc:.4f} on {len(mnist):,} + {len(fashion):,} images")
    print(f"median energy: MNIST {e_in.median():.3f}, FashionMNIST {e_out.median():.3f}; "
          f"{(e_out > e_in.quantile(0.95)).float().mean():.1%} of FashionMNIST above the 95th percentile of MNIST")
    show_images(torch.cat([fashion[e_out.argsort()[:8]], mnist[e_in.argsort(descending=True)[:8]]]), nrow=8, scale=0.7,
                title="top: the most digit-like clothes; bottom: the least digit-like digits")
    plt.show()

# %% [markdown]
# **The baseline as an anomaly score.** The independent-pixel model of section 6 *has* a likelihood,
# so its negative log-likelihood, $-\sum_d \log p_d(x_d)$ summed over the 784 pixels, is an anomaly
# score too, with no training beyond counting. Its AUROC on the same images, beside the energy's:

# %%
def pixel_nll(levels):
    """-log p(x) in nats under the independent-pixel histograms: (N,) from uint8 images (N, 1, 28, 28)."""
    log_p = pixel_log_p.flatten(0, -2)  # (784, 256)
    return -log_p.gather(1, levels.long().flatten(1).T).sum(0)


if fashion is not None:
    nll_in, nll_out = pixel_nll(data.test_x[:n]), pixel_nll(fashion_levels)
    pixel_auc = auroc(nll_in, nll_out)
    for name, nll in [("MNIST test", nll_in), ("FashionMNIST test", nll_out)]:
        print(f"independent pixels: {name:<18} {nll.mean() / (784 * torch.log(torch.tensor(2.0))):.3f} bits/dim")
    print(f"OOD AUROC, independent-pixel NLL: {pixel_auc:.4f}; the EBM's energy: {auc:.4f}")

# %% [markdown]
# On this pair the energy adds next to nothing to the anomaly score that counting pixels gives: both
# AUROCs read 0.9978, to four decimals. Clothes light up much more of the image than a digit's strokes, and every lit
# pixel where digits are almost always black costs the independent-pixel model many bits (5.543
# bits/dim on FashionMNIST against 1.720 on the MNIST test digits), so FashionMNIST is an easy outlier
# set for any model of MNIST that notices where the ink is. What the energy adds is the samples of
# section 6.

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
# - `python train/ebm.py configs/ebm_ring.toml`: the ring with the config's MLP on $(x, y)$, as in
#   section 4 (its 1,500 steps); or `FourierEnergy(scale=2.0)` in section 4: higher frequencies in
#   the features. Compare each ring score with the even-ring baseline.
# - A harder outlier set: the test digits rotated by 180 degrees, `data.test_x.flip(-1, -2)` (uint8, for
#   `pixel_nll`; `from_uint8` of it for `energy_scores`). Is their ink where digits' ink is? Compare
#   the two AUROCs there with section 7's.

# %% [markdown]
# ## Exercises
#
# Three exercises, each answered by a function: replace the `raise NotImplementedError` with your
# code and run the cell. `check` calls your function on inputs of its own and compares the result
# with an independent computation (genzoo's own code or a closed form); it prints one line, "right"
# or what is wrong. Worked solutions are in `notebooks/solutions/ebm.py`: try first.
#
# **1. One Langevin step.** Write the step of section 3 for a batch of points $x$ of shape $(B, D)$:
#
# $$x' = x - \epsilon\, \nabla_x E(x) + \sqrt{2\epsilon}\; z ,$$
#
# with the noise $z$ given (so that the grader can compare with `EBM.langevin_step` on the same $z$;
# no clipping, no clamping). `energy(x)` returns the $(B,)$ energies; take the gradient with respect
# to the *input* with `torch.autograd.grad`, and return new points without changing `x`.

# %%
from genzoo.exercises import check


def my_langevin_step(energy, x, step_size, z):
    raise NotImplementedError  # your code here


check("ebm.langevin_step", my_langevin_step)

# %% [markdown]
# **2. Where the chain settles.** Section 3's check matched the Gaussian "up to a bias of order
# $\epsilon$", and Du & Mordatch's large step with a small noise samples at a temperature $T$. Make both
# exact in one dimension: run $x \leftarrow x - \text{step}\, \nabla E(x) + \text{noise}\; z$ on
# $E(x) = x^2 / (2\,\text{variance})$, the energy of $\mathcal N(0, \text{variance})$. Each step is linear
# in $x$, so a Gaussian stays Gaussian; return the variance at which it settles, as a formula in
# `step_size`, `noise` and `variance` (no simulation). The grader compares it with the exact fixed
# point, and a wrong answer with a run of genzoo's sampler. Then compare your formula with
# $T \cdot \text{variance}$, $T = \text{noise}^2 / (2\,\text{step})$, for a small and a large step.

# %%
def my_stationary_variance(step_size, noise, variance):
    raise NotImplementedError  # your code here


check("ebm.stationary_variance", my_stationary_variance)

# %% [markdown]
# **3. The training loss.** Write the loss of sections 2 and 5,
#
# $$L = \overline{E(x^+)} - \overline{E(x^-)} + \alpha\,\big(\overline{E(x^+)^2} + \overline{E(x^-)^2}\big),$$
#
# (a bar is the mean over a batch) from `energy` (a function $(B, D) \to (B,)$ of a network), a batch
# of data `x_pos`, a batch of samples `x_neg` (the two batches may differ in size) and `alpha`. Return a
# tensor that carries the gradient with respect to the network's weights: the grader compares both
# the value and that gradient with `EBM.contrastive_loss`.

# %%
def my_contrastive_loss(energy, x_pos, x_neg, alpha):
    raise NotImplementedError  # your code here


check("ebm.contrastive_loss", my_contrastive_loss)
