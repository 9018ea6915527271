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
# game going wrong (mode collapse on a 2-D toy), what fixes it, and a class-conditional GAN on MNIST.
#
# **Running it.** Top to bottom takes about 7 minutes on a 2-core laptop CPU, most of it training.
# With `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in about a minute, with
# barely trained models. MNIST is read from `$GENZOO_DATA` (or `~/.cache/genzoo`); without it,
# genzoo says so in one line and uses the 5,000 digits it ships.

# %%
import math
import shutil
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.image import imread

import genzoo.models.gan as gan_file
from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.metrics import ring8_quality
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
from genzoo.plots import read_metrics
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()

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
# The data: 8 small Gaussians (std 0.05) on the unit circle. A GAN **collapses** when $G$ puts its
# samples on a few modes: $D$ then learns to reject those, $G$ jumps to others, and the two chase
# each other around the ring instead of settling. genzoo's trainer measures it at every evaluation
# as VEEGAN (Srivastava et al. 2017) does: `modes` counts the modes that hold a fair share of
# samples within 3 standard deviations of the centre, `high_quality` is the share of such samples.
#
# Two configs differ in two lines. `configs/gan_ring_collapse.toml` uses Adam's default momentum
# $\beta_1 = 0.9$ and no regulariser; `configs/gan_ring.toml` uses $\beta_1 = 0.5$ (Radford et al. 2016)
# and the **R1 penalty** (Mescheder et al. 2018, eq. 9), which penalises $D$'s gradient on real data,
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

# %%
# full mode: 3,000 steps per run, about 20 s each; the fixes one at a time, then both together
ring_runs = {
    "collapse: beta1 = 0.9, no R1": ("gan_ring_collapse", []),
    "R1 only (beta1 = 0.9)": ("gan_ring_collapse", ["model.r1_gamma=0.1"]),
    "beta1 = 0.5 only (no R1)": ("gan_ring_collapse", ["train.betas=[0.5, 0.999]"]),
    "gan_ring: beta1 = 0.5 and R1": ("gan_ring", []),
}
if SHORT:  # two runs of 300 steps
    ring_runs = {k: v for k, v in ring_runs.items() if k.startswith(("collapse", "gan_ring"))}
short = ["train.max_steps=300", "train.eval_every=100", "train.sample_every=100"] if SHORT else []
ring_results = {}
for name, (config, overrides) in ring_runs.items():
    cfg = load_config(ROOT / "configs" / f"{config}.toml", overrides + short)
    ring = load_data(cfg.data)
    torch.manual_seed(cfg.train.seed)
    run_dir = ROOT / "runs" / f"notebook-gan-ring-{len(ring_results)}{'-short' if SHORT else ''}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run = Trainer(build_model(cfg, ring.spec), ring, cfg, run_dir).fit()
    ring_results[name] = run_dir
    last = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "val"][-1]
    print(f"{name:32s} modes {last['modes']:.0f} of 8, high quality {last['high_quality']:.2f}")

# %% [markdown]
# The sample grids the trainer saved during each run (the EMA generator, 1,000 points each), left
# to right over training, and the two scores at each evaluation:

# %%
for name, run_dir in ring_results.items():
    grids = sorted((run_dir / "samples").glob("step_*.png"))
    fig, axes = plt.subplots(1, len(grids), figsize=(2.1 * len(grids), 2.3))
    for ax, path in zip(axes, grids):
        ax.imshow(imread(path))
        ax.set_title(f"step {int(path.stem[5:])}", fontsize=8)
        ax.axis("off")
    fig.suptitle(name, fontsize=10)
    plt.show()
fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
for name, run_dir in ring_results.items():
    val = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "val"]
    axes[0].plot([r["step"] for r in val], [r["modes"] for r in val], "o-", label=name)
    axes[1].plot([r["step"] for r in val], [r["high_quality"] for r in val], "o-", label=name)
axes[0].set_title("modes covered (of 8)", fontsize=9)
axes[1].set_title("high-quality share", fontsize=9)
axes[1].legend(fontsize=7)
plt.show()

# %% [markdown]
# Reading the runs: with momentum 0.9 and no penalty, $G$'s samples sit in one lump that wanders;
# it never spreads around the ring. Each fix changes the dynamics of the *game*, not where its
# optimum is: less momentum keeps the two players from orbiting each other, and R1 keeps $D$ smooth
# near the data, so $G$ gets gentle, informative gradients. In these runs R1 alone gets to all 8
# modes after a wobbly start, lower momentum alone does not, and the two together hold all 8 from
# step 1,500 on. Over other random seeds (`docs/gan.md`) neither fix alone was reliable and the pair
# was. (Spectral normalisation is *off* here: it makes $D$ 1-Lipschitz, and a 1-Lipschitz $D$ cannot
# tell a point on a mode from one 0.05 away; on images it is on.)
#
# ## 4. A class-conditional GAN on MNIST: reading the two losses
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
# full mode: about 4 minutes (3,500 of the config's steps)
overrides = ["train.max_steps=40", "train.eval_every=20", "train.eval_batches=2", "train.sample_every=1000"] \
    if SHORT else ["train.max_steps=3500", "train.max_minutes=0", "train.eval_every=500"]
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
# and keeps an exponential moving average of the weights (`train.ema_decay`), whose generator draws
# every sample below (Yazıcı et al. 2019: averaged generators give cleaner samples).

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
# ## 5. Samples, truncation, and walks through the latent space
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
# A small MNIST classifier (`genzoo/evaluator.py`) scores samples: FID-MNIST (lower is better; not
# Inception FID), precision (quality) and recall (variety), the share of *recognizable* digits, and
# class coverage (1.0: the ten digits evenly). Here for the EMA generator and the raw weights, next to
# real training digits (the floor), on a few hundred samples, so the numbers are rough.

# %%
from genzoo.evaluator import load_evaluator
from genzoo.metrics import image_metrics

evaluator, real = load_evaluator("mnist"), data.test_x.float() / 127.5 - 1
n = 100 if SHORT else 1000
rows = {"EMA generator": model, "raw generator": run.model.eval(),
        "real training digits": data.train_x[torch.randperm(len(data.train_x))[:n]].float() / 127.5 - 1}
for name, source in rows.items():
    x = source if torch.is_tensor(source) else source.sample(n, generator=torch.Generator().manual_seed(1))
    q = image_metrics(x, real, evaluator)
    print(f"{name:22s} FID-MNIST {q['fid']:7.2f}  precision {q['precision']:.3f}  recall {q['recall']:.3f}"
          f"  recognizable {q['recognizability']:.3f}  coverage {q['coverage']:.3f}")
started = time.perf_counter()
model.sample(500, generator=torch.Generator().manual_seed(2))
print(f"sampling: {(time.perf_counter() - started) * 2:.2f} ms per image (batch of 500)")

# %% [markdown]
# ## What to try next
#
# - `loss = "hinge"` in `configs/gan_mnist.toml`, or `spectral_norm = false` with `r1_gamma = 1.0`.
# - `conditional = false`: an unconditional GAN; does it still cover all ten digits (class coverage)?
# - `train.ema_decay = 0`: sample from the raw generator, and compare the grids.
# - `python train/gan.py configs/gan_ring_collapse.toml --set model.n_critic=5`: more discriminator
#   steps per generator step, another classic fix.
# - `genzoo sample runs/notebook-gan --truncation 0.7 --labels "[7]"`: only sevens, truncated.
