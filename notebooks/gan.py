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
# # Generative adversarial networks: the minimax game, the non-saturating loss, mode collapse
#
# A GAN learns to generate without ever writing down a likelihood. Two networks play a game: a
# **generator** $G$ turns noise $z \sim \mathcal N(0, I)$ into an image, and a **discriminator** $D$
# looks at an image and says how likely it is to be real. $D$ learns to tell real from generated;
# $G$ learns to fool $D$. If both play perfectly, $G$'s images are distributed like the data.
#
# This notebook reads [`genzoo/models/gan.py`](../genzoo/models/gan.py) one equation at a time.
# Every equation is followed by the line of that file which computes it (printed from the file
# itself, so what you read is what runs), then by a small numerical check. Then it shows the
# game going wrong (mode collapse on a 2-D toy), what fixes it, and a class-conditional GAN on MNIST,
# scored beside the simplest model of the digits (every pixel drawn on its own). It ends with three
# graded exercises.
#
# **Running it.** Top to bottom took 12.4 minutes on one core of this project's 2-core CPU (shared
# with other jobs), most of it training (the cell before the exercises prints how long the run took).
# With `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in one to two minutes, with
# barely trained models. MNIST is read from `$GENZOO_DATA` (or `~/.cache/genzoo`); without it,
# genzoo says so in one line and uses the 5,000 digits it ships.

# %%
import math
import shutil
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import genzoo.models.gan as gan_file
from genzoo.checkpoint import build_model
from genzoo.config import DataConfig, load_config
from genzoo.metrics import even_ring, ring8_quality
from genzoo.model import OptimConfig, optimize
from genzoo.models.gan import (
    GAN,
    Discriminator,
    discriminator_loss,
    generator_loss,
    point_features,
    r1_penalty,
)
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.plots import read_metrics, ring8_panel
from genzoo.sources import load_data
from genzoo.trainer import Trainer, warmup_cosine

SHORT, ROOT = start()
notebook_started = time.perf_counter()
torch.set_num_threads(1)  # on a CPU shared with other jobs, two threads mostly wait for each other

# %% [markdown]
# ## 1. The minimax game and the optimal discriminator
#
# $D(x)$ is a logit; $\sigma(D(x))$ is $D$'s probability that $x$ is real. The game (Goodfellow
# et al. 2014, eq. 1) is
#
# $$\min_G \max_D\ V(D, G) = \mathbb E_{x \sim p_\text{data}}\big[\log \sigma(D(x))\big] + \mathbb E_{z}\big[\log\big(1 - \sigma(D(G(z)))\big)\big].$$
#
# For $D$ this is plain logistic regression, real against generated: `discriminator_loss` is
# $-V$, two binary cross-entropies, written with $\operatorname{softplus}(a) = \log(1 + e^a)$ since
# $-\log\sigma(a) = \operatorname{softplus}(-a)$ and $-\log(1 - \sigma(a)) = \operatorname{softplus}(a)$:

# %%
show_lines(gan_file, "Goodfellow et al. 2014, eq. 1")


# %% [markdown]
# For a fixed $G$, the best $D$ has a closed form (prop. 1): at each $x$ it weighs the two densities,
#
# $$\sigma(D^*(x)) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}.$$
#
# **Check.** A 1-D toy: the data are $\mathcal N(1, 0.5^2)$, and a *fixed* generator
# $G(z) = z$ makes $p_g = \mathcal N(0, 1)$. Train only $D$ (a small MLP), with the model's own
# `discriminator_step_loss`, and compare it with the formula.

# %%
class Identity(torch.nn.Module):  # G(z) = z: p_g = N(0, 1), with nothing to learn
    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, y=None):
        return z

torch.manual_seed(0)
features, dim = point_features(1, 64, 3)
toy = GAN(Identity(), Discriminator(features, dim), latent_dim=1, data_shape=(1,))
opt = toy.configure_optimizers(OptimConfig(lr=3e-3))["discriminator"]
for step in range(1500):
    x = 1.0 + 0.5 * torch.randn(512, 1)  # real data
    loss, _ = toy.discriminator_step_loss((x, torch.zeros(512, dtype=torch.long)))
    optimize(opt, loss, clip=0.0)  # D's optimizer only: G stays fixed

grid = torch.linspace(-3, 3.5, 200)[:, None]
p_data = torch.distributions.Normal(1.0, 0.5).log_prob(grid).exp()
p_g = torch.distributions.Normal(0.0, 1.0).log_prob(grid).exp()
with torch.no_grad():
    d = torch.sigmoid(toy.discriminator(grid))
optimal = (p_data / (p_data + p_g))[:, 0]  # (200,), like d
plt.figure(figsize=(6, 2.6))
plt.plot(grid, p_data, label="p_data", alpha=0.5)
plt.plot(grid, p_g, label="p_g", alpha=0.5)
plt.plot(grid, optimal, "k--", label="D*(x) = p_data / (p_data + p_g)")
plt.plot(grid, d, label="trained D", linewidth=2, alpha=0.7)
plt.legend(fontsize=8)
plt.show()
where = (grid[:, 0] > -0.5) & (grid[:, 0] < 2.0)  # where both densities have mass
error = (d - optimal)[where].abs().max().item()
print(f"largest gap between D and D* on [-0.5, 2]: {error:.3f}")
assert error < 0.06

# %% [markdown]
# Plugging $D^*$ into $V$ gives $V(D^*, G) = -2\log 2 + 2\,\mathrm{JSD}(p_\text{data} \,\|\, p_g)$ (thm. 1): against a
# perfect discriminator, $G$ minimises the Jensen-Shannon divergence, whose minimum is at
# $p_g = p_\text{data}$. There $\sigma(D^*) = 1/2$ everywhere and $D$'s loss is $2 \log 2 \approx 1.386$ nats.
#
# ## 2. Why the non-saturating loss
#
# Early in training $G$'s samples are bad, $D$ rejects them confidently ($D(G(z)) \ll 0$), and
# $\log(1 - \sigma(D(G(z))))$ is flat there: its gradient with respect to the logit is
# $-\sigma(D(G(z))) \approx 0$. $G$ learns nothing exactly when it has most to learn. Goodfellow et
# al. (sec. 3) let $G$ maximise $\log \sigma(D(G(z)))$ instead: the same fixed point, but a gradient
# $1 - \sigma(D(G(z))) \approx 1$ where $D$ is sure.

# %%
show_lines(gan_file, "Goodfellow et al. 2014, sec. 3")
logit = torch.linspace(-6, 6, 200, requires_grad=True)
saturating = torch.log1p(-torch.sigmoid(logit))  # what G would minimise in the minimax game
(grad_saturating,) = torch.autograd.grad(saturating.sum(), logit)
(grad_nonsaturating,) = torch.autograd.grad(generator_loss(logit, "nonsaturating") * len(logit), logit)
fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
axes[0].plot(logit.detach(), saturating.detach(), label="log(1 - sigma(D(G(z)))): minimax")
axes[0].plot(logit.detach(), F.softplus(-logit).detach(), label="-log sigma(D(G(z))): non-saturating")
axes[1].plot(logit.detach(), grad_saturating.abs(), label="minimax")
axes[1].plot(logit.detach(), grad_nonsaturating.abs(), label="non-saturating")
axes[0].set_title("G's loss against D's logit on a sample", fontsize=9)
axes[1].set_title("|gradient|: what G learns from", fontsize=9)
for ax in axes:
    ax.set_xlabel("D(G(z)): <- D says fake | D says real ->")
    ax.legend(fontsize=8)
plt.show()
i = 0  # logit -6: D is sure the sample is fake
print(f"at D(G(z)) = -6: |grad| minimax {grad_saturating[i].abs():.4f}, non-saturating {grad_nonsaturating[i].abs():.4f}")
assert grad_nonsaturating[i].abs() > 100 * grad_saturating[i].abs()

# %% [markdown]
# genzoo also has the **hinge** loss (Lim & Ye 2017; Miyato et al. 2018), which stops pushing on
# examples $D$ already gets right by a margin of 1: $L_D = \mathbb E[\max(0, 1 - D(x))] + \mathbb E[\max(0, 1 + D(G(z)))]$,
# $L_G = -\mathbb E[D(G(z))]$. Here on hand-set logits, against the formulas:

# %%
show_lines(gan_file, "Miyato et al. 2018, eq. 16", "Miyato et al. 2018, eq. 17")
real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.0, 1.5])
by_hand = {"nonsaturating": (sum(math.log1p(math.exp(-r)) for r in real.tolist()) / 3
                             + sum(math.log1p(math.exp(f)) for f in fake.tolist()) / 3),
           "hinge": (0 + 2 + 0.5) / 3 + (0 + 1 + 2.5) / 3}
for kind, expected in by_hand.items():
    value = discriminator_loss(real, fake, kind).item()
    print(f"{kind:14s} L_D = {value:.5f} (by hand {expected:.5f})")
    assert abs(value - expected) < 1e-5

# %% [markdown]
# ## 3. Mode collapse, seen on a ring of 8 Gaussians
#
# The data: 8 small Gaussians (std 0.05) on the unit circle. A GAN **collapses** when $G$ puts all
# its samples on one or two modes: $D$ then learns to reject that spot, $G$ jumps to the next
# spot $D$ rates as real, and the two chase each other around the ring instead of settling.
# VEEGAN (Srivastava et al. 2017) measures it with two scores, in `genzoo.metrics.ring8_quality`:
# a sample is **high quality** when it lies within 3 standard deviations (0.15) of a mode's
# centre, and a mode is **covered** when at least 1/32 of the samples are high-quality ones on it.
#
# Both scores need a baseline. 1,000 points spread evenly along the circle (`even_ring`) learn no
# mode at all, yet cover all 8 and put about 38% of themselves within 0.15 of a centre. A model
# scores well on this ring only if it beats that: 8 modes *and* a high-quality share far above the
# even ring's.

# %%
def scores(points):
    q = ring8_quality(points)
    return f"{q['modes']:.0f} of 8 modes, high quality {q['high_quality']:.2f}"


ring = load_data(DataConfig(name="ring8"))
real_points, even_points = ring.test_x[:1000], even_ring(1000)
real_score, even_score = ring8_quality(real_points), ring8_quality(even_points)
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.9))
ring8_panel(axes[0], real_points, "1,000 real points")
ring8_panel(axes[1], even_points, "baseline: 1,000 points evenly on the circle")
plt.show()
print(f"real data  {scores(real_points)}")
print(f"even ring  {scores(even_points)}  (no mode learned)")

# %% [markdown]
# Two configs with the same networks. `configs/gan_ring_collapse.toml` gives $G$ the upper hand:
# $G$'s learning rate is ten times $D$'s ($10^{-3}$ against $10^{-4}$), $D$ takes one step per $G$
# step, Adam keeps its default momentum $\beta_1 = 0.9$, and nothing regularises $D$.
# `configs/gan_ring.toml` does the opposite on all four counts: both learn at $10^{-3}$, $D$ takes two
# steps per $G$ step (`n_critic = 2`), $\beta_1 = 0.5$ (Radford et al. 2016), and the
# **R1 penalty** (Mescheder et al. 2018, eq. 9) penalises $D$'s gradient on real data,
#
# $$L_D \mathrel{+}= \frac{\gamma}{2}\, \mathbb E_{x \sim p_\text{data}} \|\nabla_x D(x)\|^2,$$
#
# so $D$ cannot build steep walls around the real points that push $G$ away violently.

# %%
show_lines(gan_file, "Mescheder et al. 2018, eq. 9")
# Check on a D whose input gradient is known: D(x) = sum_i a_i x_i^2 has grad 2 a x.
a, x = torch.randn(2), torch.randn(5, 2)
r1, _ = r1_penalty(lambda x, y: (a * x**2).sum(1), x, None)
print(f"R1: {r1.item():.5f}, closed form {((2 * a * x) ** 2).sum(1).mean().item():.5f}")
assert torch.allclose(r1, ((2 * a * x) ** 2).sum(1).mean())

# %% [markdown]
# The game itself, played by a plain loop: each config's networks, optimizers and learning-rate
# schedule, and `max_steps` rounds of `training_step`. (`genzoo train` plays the same rounds, but
# samples from an average of the recent weights; here we want to see what $G$ itself does at each
# moment.) $G$ draws the same 1,000 latent points $z$ at five checkpoints of each run, and each
# config runs from three random seeds.

# %%
def train_ring(config, seed, overrides=()):
    """Play the game on the ring; G's samples at five checkpoints, {step: (1000, 2) points}."""
    cfg = load_config(ROOT / "configs" / f"{config}.toml", [*overrides, *(["train.max_steps=150"] if SHORT else [])])
    torch.manual_seed(seed)  # the networks' initial weights
    model = build_model(cfg, ring.spec)
    optimizers = model.configure_optimizers(OptimConfig(lr=cfg.train.lr, betas=cfg.train.betas))
    schedules = [warmup_cosine(optimizer, cfg.train) for optimizer in optimizers.values()]
    stream = ring.train_stream(cfg.data.batch_size, seed)
    samples = {}
    for step in range(1, cfg.train.max_steps + 1):
        model.training_step(next(stream), optimizers, step, clip=cfg.train.grad_clip)
        for schedule in schedules:
            schedule.step()
        if step % (cfg.train.max_steps // 5) == 0:
            samples[step] = model.eval().sample(1000, generator=torch.Generator().manual_seed(0))
            model.train()
    return samples


# full mode: 3 seeds x 2 configs, 2,000 steps each, about 4 minutes in all on one core
configs = {"collapse": "gan_ring_collapse", "fixed": "gan_ring"}
seeds = [0, 1] if SHORT else [0, 1, 2]
runs = {(name, seed): train_ring(config, seed) for name, config in configs.items() for seed in seeds}
print(f"even ring (baseline):  {scores(even_points)}")
for (name, seed), samples in runs.items():
    print(f"{name:8s} seed {seed}, step {max(samples):,}:  {scores(samples[max(samples)])}")

# %% [markdown]
# Seed 0 over training, on the same axes as the data, the red crosses the 8 true centres; then where
# every run ended:

# %%
fig, axes = plt.subplots(2, 5, figsize=(15, 6.6))
for row, name in zip(axes, configs):
    for ax, (step, points) in zip(row, runs[name, 0].items()):
        ring8_panel(ax, points, f"{name}, step {step:,}\n{scores(points)}")
        ax.set_xticks([]), ax.set_yticks([])
plt.show()
fig, axes = plt.subplots(2, len(seeds), figsize=(3.5 * len(seeds), 7.6))
for row, name in zip(axes, configs):
    for ax, seed in zip(row, seeds):
        points = runs[name, seed][max(runs[name, seed])]
        ring8_panel(ax, points, f"{name}, seed {seed}\n{scores(points)}")
plt.show()

# %%
collapsed = [seed for seed in seeds  # at most 2 modes at every checkpoint
             if max(ring8_quality(x)["modes"] for x in runs["collapse", seed].values()) <= 2]
fixed = [seed for seed in seeds if (q := ring8_quality(runs["fixed", seed][max(runs["fixed", seed])]))["modes"] >= 7
         and q["high_quality"] >= 2 * even_score["high_quality"]]
print(f"collapse: {len(collapsed)} of {len(seeds)} seeds covered at most 2 modes at every checkpoint")
print(f"fixed:    {len(fixed)} of {len(seeds)} seeds ended with at least 7 modes and a high-quality share"
      f" at least twice the even ring's ({2 * even_score['high_quality']:.2f})")

# %% [markdown]
# Reading the runs. In the collapsing game all of $G$'s samples sit in one small lump that jumps
# from spot to spot; the first count above says in how many seeds it covered at most 2 modes at every
# checkpoint. Each $G$ step moves the whole lump towards the spot $D$ currently rates as real, faster
# than $D$ can learn to reject it; when $D$ does, the lump moves on. With $D$ given the upper hand,
# $G$'s samples spread around the ring and then gather onto the 8 modes, the high-quality share
# rising from checkpoint to checkpoint (the titles of the panels); the second count says in how
# many seeds the last checkpoint covered at least 7 modes with at least twice the even ring's share. These changes act on the dynamics of the game, not on where its
# optimum is: a slower $G$ and extra $D$ steps let $D$ keep up with $G$'s latest samples, less
# momentum keeps the two players from orbiting each other, and R1 keeps $D$ smooth near the data, so
# $G$ gets gentle, informative gradients. (Spectral normalisation is *off* here: it makes $D$
# 1-Lipschitz, and a 1-Lipschitz $D$ cannot tell a point on a mode from one 0.05 away; on images it
# is on.)

# %% [markdown]
# ## 4. MNIST, and the baseline a GAN must beat: independent pixels
#
# The ring had its baseline, points spread evenly on the circle. On MNIST the simplest model treats
# every pixel on its own: for each of the 784 pixels, a histogram of its 256 grey levels counted on
# the training digits (`genzoo.baselines.pixel_histograms`, add-1/2 smoothed), and a sample draws every
# pixel from its own histogram. It knows where ink tends to be, and nothing about strokes, which pixels
# go together. A GAN has no likelihood to set beside this model's, so the two are compared the way
# the GAN is judged at the end of this notebook: the same number of samples, scored by genzoo's
# evaluator, a small MNIST classifier (`genzoo/evaluator.py`). Its scores are FID-MNIST (lower is
# better; not Inception FID), precision (quality) and recall (variety), the share of *recognizable*
# digits (the classifier at least 90% sure of one class) and class coverage (1.0: the ten digits evenly).

# %%
from genzoo.baselines import pixel_histograms
from genzoo.evaluator import load_evaluator
from genzoo.metrics import image_metrics

mnist = load_data(DataConfig(name="mnist"))
evaluator, real = load_evaluator("mnist"), mnist.test_x.float() / 127.5 - 1  # every test digit, in [-1, 1]
n = 100 if SHORT else 1000  # samples per model, here and in section 6


def quality(q):
    return (f"FID-MNIST {q['fid']:7.2f}  precision {q['precision']:.3f}  recall {q['recall']:.3f}"
            f"  recognizable {q['recognizability']:.3f}  coverage {q['coverage']:.3f}")


log_p = pixel_histograms(mnist.train_x)  # (1, 28, 28, 256): log p_d(level) of every pixel d
torch.manual_seed(0)
levels = torch.distributions.Categorical(logits=log_p).sample((n,))  # (n, 1, 28, 28): each pixel on its own
pixel_samples = levels.float() / 127.5 - 1
show_images(pixel_samples[:32], nrow=16, title="independent pixels: every pixel drawn from its own histogram")
plt.show()
pixel_quality = image_metrics(pixel_samples, real, evaluator)
print(f"independent pixels     {quality(pixel_quality)}")
_, probs = evaluator.embed(pixel_samples)
called = torch.bincount(probs.argmax(1), minlength=10)
print(f"the evaluator calls {called.max().item()} of the {n} samples a {called.argmax().item()}")
assert called.max() > 0.9 * n  # nearly all one digit: what class coverage sees below

# %% [markdown]
# The samples are speckle: in the middle of the frame, where digits have ink, each pixel turns white
# or black on its own, with its own chance of ink as in the training digits, and no strokes form.
# The evaluator agrees, with one surprise. FID-MNIST is 8075.27,
# against 37.67 for real training digits (section 6); precision 0.024 and recall 0.000: almost no
# sample lands among real digits' features, and no real digit lies near a sample. Yet the
# recognizable share reads 1.000: the classifier is at least 90% sure of (nearly) every one, and the
# second line says of what: it calls all 1,000 an 8. Recognizability alone is fooled by a blob that
# excites one class; class coverage, 0.000 (a single class), gives it away. So read recognizability
# with coverage, and FID-MNIST, precision and recall beside them. Section 6 sets the GAN's numbers
# against these.
#
# ## 5. A class-conditional GAN on MNIST: reading the two losses
#
# `configs/gan_mnist.toml`: DCGAN networks (Radford et al. 2016): $G$ projects $z$ to a $7 \times 7$
# map and doubles it twice with transposed convolutions (batch norm, ReLU, tanh at the end);
# $D$ halves the image twice with strided convolutions (LeakyReLU, spectral norm on every layer).
# Both know the digit's label $y$: $G$ reads an embedding of $y$ next to $z$, and $D$ is a
# **projection discriminator** (Miyato & Koyama 2018, eq. 3),
# $D(x, y) = \psi(\phi(x)) + e_y^\top \phi(x)$: an unconditional score plus the match between the
# image's features $\phi(x)$ and the label's embedding $e_y$.

# %%
show_lines(gan_file, "Miyato & Koyama 2018, eq. 3")
# full mode: 800 of the config's 7,000 steps, about 4 minutes on one core
overrides = ["train.max_steps=20", "train.eval_every=10", "train.eval_batches=2", "train.sample_every=1000"] \
    if SHORT else ["train.max_steps=800", "train.max_minutes=0", "train.eval_every=200"]
cfg = load_config(ROOT / "configs" / "gan_mnist.toml", overrides)
data = load_data(cfg.data)
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, data.spec)
print(f"G: {parameter_count(model.generator):,} parameters, "
      f"D: {parameter_count(model.discriminator):,}")
show_source(GAN.training_step)

# %% [markdown]
# One `training_step` is one round of the game: $D$ steps (`n_critic` of them) with $G$'s samples
# computed without gradients, then one $G$ step in which gradients flow *through* $D$ into $G$ while
# $D$'s weights are frozen. The trainer knows none of this: it calls `training_step` as for any family,
# and keeps an exponential moving average of the weights (`train.ema_decay` = 0.995, about the last
# 200 steps), whose generator draws every sample below. Averaging is meant to smooth out the last
# steps' wobble of the game (Yazıcı et al. 2019); whether it does after a run this short is measured
# at the end, where both generators are scored.

# %%
run_dir = ROOT / "runs" / ("notebook-gan-short" if SHORT else "notebook-gan")
shutil.rmtree(run_dir, ignore_errors=True)
started = time.perf_counter()
run = Trainer(model, data, cfg, run_dir).fit()
model = run.sampling_model.eval()  # the EMA weights
print(f"trained {run.step} steps in {time.perf_counter() - started:.0f} s")

# %%
train = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
steps = [r["step"] for r in train]
fig, axes = plt.subplots(1, 2, figsize=(11, 2.8))
for key in ("d_loss", "g_loss"):
    axes[0].plot(steps, [r[key] for r in train], label=key)
axes[0].axhline(2 * math.log(2), color="grey", linestyle=":", label="2 log 2: D cannot tell")
axes[1].plot(steps, [r["d_real"] for r in train], label="sigma(D(x)), real")
axes[1].plot(steps, [r["d_fake"] for r in train], label="sigma(D(G(z))), generated")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Reading them.** Neither loss is a score of the samples. They measure who is winning *now*, against
# an opponent who keeps changing: $G$ improving makes $D$'s job harder, so $L_D$ rises towards
# $2\log 2$ as samples get better, unless $D$ improves too. What to look for is a *stable* game: both
# losses level off, $\sigma(D(x))$ stays above $\sigma(D(G(z)))$ without either hitting 0 or 1.
# $L_D \to 0$ with $L_G$ growing means $D$ has won and $G$ gets no signal; wild oscillation means the
# game orbits. Quality is measured on the samples themselves, below.
#
# ## 6. Samples, truncation, and walks through the latent space
#
# One pass of $G$ per sample. Rows are the digits 0-9 (the labels we ask for); the **truncation
# trick** (Brock et al. 2019) redraws every entry of $z$ beyond $\pm t$: smaller $t$ gives more typical
# digits, less variety.

# %%
show_lines(gan_file, "Brock et al. 2019")
fig, axes = plt.subplots(1, 3, figsize=(14, 5))
for ax, t in zip(axes, (0.0, 1.0, 0.5)):
    x = model.sample(100, generator=torch.Generator().manual_seed(0), labels=list(range(10)), truncation=t)
    rows = x.view(10, 10, 1, 28, 28).transpose(0, 1).flatten(0, 1)  # one row per digit
    show_images(rows, nrow=10, title=f"truncation {t or 'off'}", ax=ax)
plt.show()

# %% [markdown]
# A walk from $z_0$ to $z_1$ with the label fixed. It is spherical (slerp, White 2016): in 64
# dimensions Gaussian $z$ lie near a sphere of radius $\sqrt{64} = 8$, and the straight line between two
# of them dips to shorter, less likely $z$ in the middle. A smooth walk means $G$ has learned a
# continuous map, not a lookup table of training digits.

# %%
show_lines(gan_file, "White 2016")
strip = model.interpolate(10, steps=10, generator=torch.Generator().manual_seed(3), labels=list(range(10)))
show_images(strip.flatten(0, 1), nrow=10, title="each row: z0 -> z1, label fixed")
plt.show()
z0 = model.noise(10, torch.Generator().manual_seed(3))
with torch.no_grad():
    start = model.generator(z0, torch.arange(10))
assert torch.allclose(strip[:, 0], start, atol=1e-5)  # each walk starts at G(z0)

# %% [markdown]
# ### Quality, through genzoo's evaluator
#
# Section 4's evaluator scores the EMA generator and the raw weights, next to real training digits
# (the floor: what real data reads with this many samples) and section 4's independent pixels (the
# baseline to beat), on 1,000 samples each, so the numbers are rough.

# %%
rows = {"EMA generator": model, "raw generator": run.model.eval(),
        "real training digits": data.train_x[torch.randperm(len(data.train_x))[:n]].float() / 127.5 - 1}
fid = {}
for name, source in rows.items():
    x = source if torch.is_tensor(source) else source.sample(n, generator=torch.Generator().manual_seed(1))
    q = image_metrics(x, real, evaluator)
    fid[name] = q["fid"]
    print(f"{name:22s} {quality(q)}")
print(f"{'independent pixels':22s} {quality(pixel_quality)}  (section 4)")
started = time.perf_counter()
model.sample(500, generator=torch.Generator().manual_seed(2))
print(f"sampling: {(time.perf_counter() - started) * 2:.2f} ms per image (batch of 500)")
better = "EMA" if fid["EMA generator"] < fid["raw generator"] else "raw"
print(f"lower FID-MNIST after this run: the {better} generator")

# %% [markdown]
# Against section 4's baseline, the GAN after 800 steps is far ahead on FID-MNIST (1273.59 against
# 8075.27), precision (0.570 against 0.024), recall (0.225 against 0.000) and class coverage (0.974
# against 0.000); only its recognizable share is lower (0.696 against 1.000), for the reason section 4
# gave: a blob the classifier calls an 8 with certainty is "recognizable".
#
# Averaged weights are reported to give better samples (Yazıcı et al. 2019). In this short run they
# score about the same as the raw weights: FID-MNIST 1273.6 against 1274.2, recognizable 0.696
# against 0.682 (the first two rows above). 800 steps are far from the config's 7,000: FID-MNIST is
# far above the real-digit floor of 37.7, and `docs/gan.md` has the full run.
#
# ## What to try next
#
# - `loss = "hinge"` in `configs/gan_mnist.toml`, or `spectral_norm = false` with `r1_gamma = 1.0`.
# - `conditional = false`: an unconditional GAN; does it still cover all ten digits (class coverage)?
# - `train.ema_decay = 0`: sample from the raw generator, and compare the grids.
# - On the ring, one stabiliser at a time: `train_ring("gan_ring", 0, ["model.n_critic=1"])`, or
#   `["model.r1_gamma=0"]`, or `["train.betas=[0.9, 0.999]"]`. Which of the three does the most?
# - `genzoo sample runs/notebook-gan --truncation 0.7 --labels "[7]"`: only sevens, truncated.

# %%
print(f"this run took {(time.perf_counter() - notebook_started) / 60:.1f} minutes")

# %% [markdown]
# ## Exercises
#
# Three exercises on the equations above. Each `check(...)` runs your function on inputs it makes
# and compares the result with an independent computation (cross-entropies written out in float64,
# an SVD, the library's own function); it prints "right", or what is wrong. Worked solutions, with
# the reasons, are in `notebooks/solutions/gan.py`; try first.
#
# **1. The two players' losses.** Write `my_gan_losses(real_logits, fake_logits)` returning
# `(d_loss, g_loss)` from D's logits on a real batch and on a generated one (two 1-D tensors, not
# necessarily of the same length): $D$'s loss of section 1, two binary cross-entropies (real labelled 1,
# generated 0), each a mean over its own batch, and $G$'s non-saturating loss of section 2,
# $-\mathbb E_z \log \sigma(D(G(z)))$. The check compares them with cross-entropies computed from
# $\sigma$ in float64, first on moderate logits, then on logits where $D$ is sure ($25$, $-25$, $-110$),
# where float32's $\sigma$ rounds to exactly 0 or 1; your losses must stay finite there.

# %%
from genzoo.exercises import check


def my_gan_losses(real_logits, fake_logits):
    raise NotImplementedError  # your code here


check("gan.losses", my_gan_losses)

# %% [markdown]
# **2. Spectral normalisation by power iteration.** Section 5's $D$ divides every layer's weight $W$
# by its largest singular value $\sigma(W)$, estimated by power iteration (Miyato et al. 2018,
# Algorithm 1): from a unit vector $u$, repeat $v \leftarrow W^\top u / \|W^\top u\|$,
# $u \leftarrow W v / \|W v\|$; then $\sigma(W) \approx u^\top W v$. Write `my_sigma(W, u, steps)` for a
# matrix `W` of shape `(out, in)` and a unit vector `u` of shape `(out,)`, returning the estimate after
# `steps` steps. The library takes one step per training call and keeps $u$ for the next
# (`SpectralNorm` in `genzoo/nn.py`); the check compares your one step with the library's, from the
# same $u$, and your 100 steps with `torch.linalg.matrix_norm(W, 2)`.

# %%
def my_sigma(W, u, steps):
    raise NotImplementedError  # your code here


check("gan.spectral_norm", my_sigma)

# %% [markdown]
# **3. Counting the modes a GAN covers.** Section 3 scored every ring run with `ring8_quality`; write
# it yourself. `my_ring_quality(x)`, for points `x` of shape `(n, 2)`, returns `(modes, high_quality)`:
# a point is high quality when it lies within 3 standard deviations (the std is 0.05) of its nearest
# of the 8 centres (`ring8_centres()`, shape `(8, 2)`); `high_quality` is the share of such points,
# and a mode is covered when at least $n/32$ high-quality points have it as their nearest centre.
# The check scores seeded point sets (the real ring, a ring with one nearly empty mode, a wide and a
# blurry ring, a collapsed GAN, the even ring) against `genzoo.metrics.ring8_quality`.

# %%
from genzoo.metrics import ring8_centres


def my_ring_quality(x):
    raise NotImplementedError  # your code here


check("gan.ring_modes", my_ring_quality)

