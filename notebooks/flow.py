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
# # Normalizing flows: change of variables, coupling layers, dequantization, multi-scale
#
# A normalizing flow is an invertible network $f$ that maps data $x$ to a latent $z = f(x)$ of
# the same size, with a simple prior $p(z) = \mathcal N(0, I)$. Because $f$ is a bijection, the
# density of continuous data $x$ is known *exactly*; because $f^{-1}$ is known, sampling is one pass
# backwards. The whole art is building $f$ so that both directions and
# $\log|\det \partial f / \partial x|$ are cheap. (8-bit images are not continuous: for them the
# flow gives a *bound* on the likelihood, section 4.)
#
# This notebook reads [`genzoo/models/flow.py`](../genzoo/models/flow.py) one equation at a time.
# Every equation is followed by the line of that file which computes it (printed from the file
# itself, so what you read is what runs), then by a small numerical check. It ends with the lesson
# this family teaches best: a good likelihood and good samples are different things.
#
# **Running it.** The committed run took 13 minutes on a slow 2-core CPU (one torch thread, with
# other notebooks sharing the two cores), most of it training and scoring samples. With
# `GENZOO_SHORT=1` (what CI sets) every loop shrinks, with a barely trained model. MNIST is read from `$GENZOO_DATA` (or
# `~/.cache/genzoo`); without it, genzoo says so in one line and uses the 5,000 digits it ships.

# %%
import json
import math
import shutil
import time
from collections import Counter
from itertools import islice

import matplotlib.pyplot as plt
import torch

import genzoo.models.flow as flow_file
from genzoo.baselines import independent_pixels_bits_per_dim, pixel_histograms
from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.evaluator import load_evaluator
from genzoo.exercises import check
from genzoo.metrics import feature_metrics, heldout_nll
from genzoo.models.flow import (
    ActNorm,
    AffineCoupling,
    Chain,
    ChannelCoupling,
    Flow,
    InvertibleConv1x1,
    Squeeze,
    StandardNormal,
    UniformDequantization,
    checkerboard_mask,
    conv_net,
)
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.pixels import from_uint8
from genzoo.plots import read_metrics
from genzoo.report import draw_images
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()

# %% [markdown]
# ## 1. Change of variables
#
# If $z = f(x)$ with $f$ invertible and differentiable, probability mass is conserved: a small
# volume around $x$ maps to a volume around $z$ scaled by $|\det J_f(x)|$, so
# (Dinh et al. 2017, sec. 3.1)
#
# $$\log p_X(x) = \log p_Z(f(x)) + \log \left|\det \frac{\partial f(x)}{\partial x}\right|.$$
#
# A chain $f = f_K \circ \dots \circ f_1$ adds the layers' log-determinants. Training maximises
# this exact log-likelihood; `loss` reports it in bits per dimension, split into its two parts:

# %%
show_lines(flow_file, "Dinh et al. 2017, sec. 3.1")
show_source(Chain.forward)

# %% [markdown]
# Let us see it on 2-D data first, where a density can be drawn: the two moons.
#
# **The simplest model first.** One Gaussian, its mean and covariance fitted to the training points
# (the maximum-likelihood fit, in closed form). Its log-likelihood of a held-out point is exact,
# $\log \mathcal N(x; \mu, \Sigma) = -\tfrac12\big(D \log 2\pi + \log\det\Sigma + (x-\mu)^\top\Sigma^{-1}(x-\mu)\big)$,
# the same kind of number as the flow's, so it is the floor the flow has to beat.

# %%
moons_cfg = load_config(ROOT / "configs" / "flow_moons.toml",
                        ["train.max_steps=100"] if SHORT else ["train.max_steps=2000"])
moons = load_data(moons_cfg.data)
mu, cov = moons.train_x.mean(0), torch.cov(moons.train_x.T, correction=0)  # the maximum-likelihood fit
gaussian = torch.distributions.MultivariateNormal(mu, cov)
diff = moons.test_x - mu
gauss_ll = -0.5 * (2 * math.log(2 * math.pi) + torch.logdet(cov) + (diff @ torch.linalg.inv(cov) * diff).sum(1))
assert torch.allclose(gauss_ll, gaussian.log_prob(moons.test_x), atol=1e-4)  # the formula is torch's
print(f"{len(moons.train_x):,} training and {len(moons.test_x):,} held-out points")
print(f"one Gaussian: mean log p(x) = {gauss_ll.mean():.3f} nats per held-out point "
      f"({-gauss_ll.mean() / (2 * math.log(2)):.3f} bits/dim)")

# %% [markdown]
# The flow for points is 8 Glow steps (ActNorm, an invertible 2x2 linear map, an affine coupling whose
# scale and shift come from a small MLP), trained with genzoo's `Trainer` like any family.

# %%
moons_dir = ROOT / "runs" / "notebook-flow-moons"
shutil.rmtree(moons_dir, ignore_errors=True)
torch.manual_seed(0)
moons_run = Trainer(build_model(moons_cfg, moons.spec), moons, moons_cfg, moons_dir).fit()
moons_flow = moons_run.sampling_model.eval()

# %%
lim, cells = 1.6, 200
axis = torch.linspace(-lim, lim, cells)
xx, yy = torch.meshgrid(axis, axis, indexing="xy")
grid = torch.stack([xx.flatten(), yy.flatten()], 1)
with torch.no_grad():
    density = moons_flow.log_prob(grid).exp().view(cells, cells)
samples = moons_flow.sample(2000, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
axes[0].scatter(*moons.test_x[:2000].T, s=2, alpha=0.5)
axes[0].set_title("data (test points)")
axes[1].imshow(gaussian.log_prob(grid).exp().view(cells, cells), origin="lower", extent=(-lim, lim, -lim, lim),
               cmap="viridis")
axes[1].set_title("baseline: one Gaussian")
axes[2].imshow(density, origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
axes[2].set_title("learned density p(x)")
axes[3].scatter(*samples.T, s=2, alpha=0.5, color="C1")
axes[3].set_title("samples: f^-1(z), z ~ N(0, I)")
for ax in axes:
    ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_aspect("equal")
plt.show()

# %% [markdown]
# **Check.** An exact density integrates to one. Sum $p(x)$ over a fine grid wide enough to hold
# all the mass. On continuous points nothing is bounded or estimated, and the model says so: its
# `likelihood` label is `"exact"`.

# %%
wide = torch.linspace(-5, 5, 801)
xx, yy = torch.meshgrid(wide, wide, indexing="xy")
with torch.no_grad():
    mass = moons_flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().sum() * (wide[1] - wide[0]) ** 2
print(f"integral of p(x) over [-5, 5]^2: {mass:.4f}")
print(f"moons flow: likelihood = {moons_flow.likelihood!r}")
assert abs(mass - 1) < 0.02 and moons_flow.likelihood == "exact"

# %% [markdown]
# Both densities are exact, so they compare directly on the same held-out points. The Gaussian
# spreads its mass over one ellipse that covers both moons and the gap between them (the second
# panel above): -1.056 nats per held-out point. The flow puts its mass on the moons: +0.366 nats (a
# density can exceed 1), 1.42 nats per point more, a density 4.1 times the Gaussian's at the
# held-out points in geometric mean. That is what the eight coupling steps add.

# %%
with torch.no_grad():
    flow_ll = moons_flow.log_prob(moons.test_x)
for name, ll in (("one Gaussian (baseline)", gauss_ll), ("flow", flow_ll)):
    print(f"{name:24s} mean log p(x) = {ll.mean():7.3f} nats per held-out point "
          f"({-ll.mean() / (2 * math.log(2)):.3f} bits/dim)")
print(f"the flow gains {flow_ll.mean() - gauss_ll.mean():.3f} nats per point: its density is "
      f"{(flow_ll.mean() - gauss_ll.mean()).exp():.1f} times the Gaussian's, in geometric mean")

# %% [markdown]
# ## 2. Coupling layers: a triangular Jacobian
#
# A general $D \times D$ Jacobian costs $O(D^3)$ to take the determinant of. An *affine coupling*
# (Dinh et al. 2017, eq. 9) keeps the entries chosen by a mask $m$ and moves the others by a
# scale and shift computed from the kept ones only:
#
# $$z = m \odot x + (1 - m) \odot \big(x \odot e^{s(m \odot x)} + t(m \odot x)\big).$$
#
# Kept entries do not change; a free entry depends on itself only through $e^{s}$. Sort the
# entries kept-first and the Jacobian is block triangular, with $I$ and $\operatorname{diag}(e^{s})$
# on the diagonal, so $\log|\det J| = \sum (1-m) \odot s$, whatever the networks $s$ and $t$ are.
# And the inverse is as cheap: $x = m \odot z + (1-m) \odot (z - t) \odot e^{-s}$.

# %%
show_lines(flow_file, "Dinh et al. 2017, eq. 9", "Dinh et al. 2017, eq. 6", "Dinh et al. 2017, eq. 8")

# %% [markdown]
# **Check.** A checkerboard coupling on a 4x4 image, with random weights: its Jacobian from
# `torch.autograd`, rows and columns sorted kept-first. The upper-right block (kept outputs
# against free inputs) is zero and the free-free block is diagonal; the log-determinant matches.

# %%
torch.manual_seed(0)
coupling = AffineCoupling(checkerboard_mask(4, 4, 0), conv_net(1, 16, 2)).double()
torch.nn.init.normal_(coupling.net[-1].weight, std=0.2)  # not the identity it starts as
x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
J = torch.autograd.functional.jacobian(lambda v: coupling(v.view(1, 1, 4, 4))[0].flatten(), x.flatten())
order = torch.argsort(-coupling.mask.flatten(), stable=True)  # kept pixels first
J_sorted = J[order][:, order]
plt.figure(figsize=(3.2, 3.2))
plt.imshow(J_sorted.abs() > 1e-12, cmap="Greys")
plt.title("nonzero entries of J (kept first)", fontsize=9)
plt.show()
kept = int(coupling.mask.sum())
assert (J_sorted[:kept, kept:] == 0).all()  # kept outputs ignore free inputs
free_block = J_sorted[kept:, kept:]
assert (free_block - torch.diag(torch.diagonal(free_block)) == 0).all()  # diagonal
log_det = coupling(x)[1].item()
print(f"log|det J|: coupling {log_det:.10f}, slogdet {torch.linalg.slogdet(J)[1].item():.10f}")
assert abs(log_det - torch.linalg.slogdet(J)[1].item()) < 1e-10

# %% [markdown]
# The scale is bounded, $s = \text{scale} \cdot \tanh(\text{raw})$ with a learned scale per channel,
# and every conditioner's last convolution starts at zero, so each coupling starts as the
# identity: a deep flow starts as $f(x) = x$ and training only moves away from it.
#
# ## 3. ActNorm and the invertible 1x1 convolution (Glow)
#
# Couplings leave half the entries alone, so something must mix them between couplings. Glow
# (Kingma & Dhariwal 2018) uses a learned $1 \times 1$ convolution, a $C \times C$ matrix $W$ applied
# at every pixel, with $\log|\det J| = H \cdot W \cdot \log|\det W|$. In LU form (eq. 10) the
# determinant is free: $W = P L (U + \operatorname{diag}(\text{sign}\cdot e^{\log s}))$ and
# $\log|\det W| = \sum \log s$. ActNorm is a per-channel affine map whose bias and scale are set
# from the first training batch, so every layer starts with zero mean and unit variance.

# %%
show_lines(flow_file, "Kingma & Dhariwal 2018, eq. 10", "Kingma & Dhariwal 2018, table 1")
conv = InvertibleConv1x1(8)
W = conv.weight()
print(f"log|det W|: slogdet {torch.linalg.slogdet(W)[1].item():.6f}, sum of log s {conv.log_s.sum().item():.6f}")
assert abs(torch.linalg.slogdet(W)[1] - conv.log_s.sum()) < 1e-5
norm = ActNorm(3)
print("initialised is a buffer, saved with the model:", "initialised" in norm.state_dict())

# %% [markdown]
# ## 4. Dequantization and what bits/dim means
#
# MNIST pixels take 256 values. A continuous density could put infinite density on them, so the
# likelihood would mean nothing. *Dequantization* spreads each level $k$ over its bin:
# $y = (k + u)/256$, $u \in [0, 1)^D$. For any distribution $q(u \mid k)$ over the noise, Jensen's
# inequality gives a lower bound on the probability of the 8-bit image (Theis et al. 2016;
# Ho et al. 2019, sec. 3.1):
#
# $$\log P(k) \ge \mathbb E_{u \sim q}\big[\log p(y) - D \log 256 - \log q(u \mid k)\big].$$
#
# With uniform $q$ the last term is zero. The flow's density is exact for the continuous $y$; the
# number reported for the image is this bound (tight when $q$ matches the model within each bin;
# *variational* dequantization learns $q$ to make it tighter, `dequantization = "variational"`).
# So an image flow labels its likelihood `"bound"`, the same kind of number as the VAE's and the
# DDPM's, while the moons flow above says `"exact"`:
# Bits per dimension is $-\log_2 P(k) / D$: the code length per pixel an entropy coder would
# reach with this model. 8 bits/dim is a uniform guess over 256 levels.
#
# Images also go through a **logit** first, $\text{logit}(\alpha + (1-2\alpha) y)$, so the flow works
# on all of $\mathbb R$ rather than the unit box; its log-determinant is part of `log_det`.

# %%
show_lines(flow_file, "Ho et al. 2019, sec. 3.1", "density of k + u", 'likelihood = "')

# %% [markdown]
# **Check.** The identity flow (no layers) on uniformly dequantized data has a bound in closed
# form: per pixel of level $k$, $\tfrac12\log 2\pi + \tfrac12\mathbb E[((k+u)/256)^2] + \log 256$ nats,
# with $\mathbb E[(k+u)^2] = k^2 + k + \tfrac13$.

# %%
identity = Flow(StandardNormal((1, 2, 2)), Chain([]), UniformDequantization())
k = torch.tensor([0.0, 17.0, 128.0, 255.0])
x = (k / 127.5 - 1).view(1, 1, 2, 2).expand(20_000, 1, 2, 2)
torch.manual_seed(0)
with torch.no_grad():
    bits = -identity.log_prob(x).mean() / (4 * math.log(2))
analytic = (0.5 * math.log(2 * math.pi) + 0.5 * (k**2 + k + 1 / 3) / 256**2 + math.log(256)).mean() / math.log(2)
print(f"identity flow: {bits:.4f} bits/dim, analytic {analytic:.4f}; likelihood = {identity.likelihood!r}")
assert abs(bits - analytic) < 2e-3 and identity.likelihood == "bound"

# %% [markdown]
# **The simplest model of the digits.** Before the flow, the simplest likelihood model of the same
# images: every pixel independent, each with its own histogram of the 256 levels counted on the
# training digits (`genzoo/baselines.py`). It is a discrete model, so its bits/dim on the test digits
# is exact, no bound: the number every image family in genzoo has to beat. It reaches 1.720 bits/dim
# on the 10,000 test digits, far below the 8 bits/dim of a uniform guess, because most pixels are
# background in almost every digit. Its samples show what it cannot know: each pixel is drawn alone,
# so there are scattered dots where strokes would be.

# %%
data = load_data(load_config(ROOT / "configs" / "flow_mnist.toml").data)
print(f"{data.spec.name}: {len(data.train_x):,} training and {len(data.test_x):,} test digits")
baseline_bits = independent_pixels_bits_per_dim(data.train_x, data.test_x)
print(f"independent pixels: {baseline_bits:.3f} bits/dim (exact) on all {len(data.test_x):,} test digits")
histograms = torch.distributions.Categorical(logits=pixel_histograms(data.train_x))  # (1, 28, 28) of 256


def pixel_samples(n: int, seed: int) -> torch.Tensor:
    """n images from the independent-pixel model, each pixel drawn from its own histogram."""
    torch.manual_seed(seed)
    return from_uint8(histograms.sample((n,)))


show_images(pixel_samples(10, 0), nrow=10, title="independent pixels: samples", scale=0.8)
plt.show()

# %% [markdown]
# ## 5. Multi-scale: squeeze and factor out
#
# At 28x28 the flow starts with checkerboard couplings (RealNVP). Then a **squeeze** turns each
# 2x2 block of pixels into 4 channels, (1, 28, 28) to (4, 14, 14), and Glow steps (ActNorm, 1x1
# convolution, a coupling on channel halves) run at 14x14. After them half the channels are
# **factored out**: they are already part of $z$, and only the other half continues, squeezed
# again to 7x7 (Dinh et al. 2017, sec. 3.6). Less work at each scale, and the factored-out half,
# which the last coupling shifted and scaled given the other half, gets a learned conditional
# prior for free. Finally everything is unsqueezed, so $z$ has the image's shape.

# %%
# full mode: 600 of the config's 5,000 steps, a fixed count whatever the CPU's speed; short mode: 30 steps
overrides = ["train.max_steps=30", "train.eval_every=15", "train.eval_batches=2", "train.sample_every=1000"] \
    if SHORT else ["train.max_steps=600", "train.max_minutes=0", "train.eval_every=150", "train.sample_every=1000"]
cfg = load_config(ROOT / "configs" / "flow_mnist.toml", overrides)  # the digits (`data`) are loaded above
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, data.spec)  # Flow(prior, layers, dequantizer)
print(f"{parameter_count(model):,} parameters, likelihood {model.likelihood!r}")

# Count the couplings by the shape they work on, from one pass of random pixels through the flow.
couplings = Counter()
hooks = [m.register_forward_hook(lambda m, inputs, out: couplings.update([(type(m).__name__, inputs[0].shape[1:])]))
         for m in model.modules() if isinstance(m, (AffineCoupling, ChannelCoupling))]
model.eval()  # ActNorm initialises from the first batch it sees in training mode: not from this one
with torch.no_grad():
    z, _ = model(torch.rand(1, 1, 28, 28))  # dequantized pixels in (0, 1)
model.train()
for hook in hooks:
    hook.remove()
for (name, shape), count in couplings.items():
    print(f"{count} x {name:<15s} on {tuple(shape)}: {shape.numel()} numbers")
print(f"z: {tuple(z.shape[1:])}, {z[0].numel()} numbers")

# %% [markdown]
# ## 6. Training with genzoo's trainer
#
# The same trainer as every family: `loss` (bits/dim), one AdamW step, warmup then cosine learning
# rate, and an exponential moving average of the weights, which evaluation and sampling use.

# %%
run_dir = ROOT / "runs" / ("notebook-flow-short" if SHORT else "notebook-flow")
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
started = time.perf_counter()
run = Trainer(model, data, cfg, run_dir).fit()
model = run.sampling_model.eval()  # the EMA weights
print(f"trained {run.step} steps in {time.perf_counter() - started:.0f} s")
assert all(m.initialised for m in model.modules() if isinstance(m, ActNorm))

# %%
records = read_metrics(run_dir / "metrics.jsonl")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for split, style in (("train", "-"), ("val", "o-")):
    axes[0].plot(*zip(*[(r["step"], r["loss"]) for r in records if r["split"] == split]), style, label=split)
axes[0].set_title("bits/dim (val: EMA weights, held-out digits)", fontsize=9)
axes[0].legend()
for key in ["log_pz_bits", "log_det_bits"]:
    axes[1].plot(*zip(*[(r["step"], r[key]) for r in records if r["split"] == "train"]), label=key)
axes[1].set_title("the two parts: -log p(z) and -log|det| (incl. -D log 256), in bits/dim", fontsize=9)
axes[1].legend()
for ax in axes:
    ax.set_xlabel("step")
plt.show()

# %% [markdown]
# ## 7. Sampling with a temperature
#
# Sampling draws $z \sim \mathcal N(0, T^2 I)$ and runs the flow backwards, $x = f^{-1}(z)$, then
# reads off the 8-bit level whose bin holds $y$. Kingma & Dhariwal (2018) sample at $T < 1$, closer
# to the prior's mode, to trade variety for cleaner images. Each column below uses one $z$, scaled
# by each temperature.

# %%
temperatures = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
z = model.prior.sample(10, 1.0, torch.Generator().manual_seed(0), model.device)
grid = torch.cat([model.decode(t * z) for t in temperatures])
show_images(grid, nrow=10, title=f"rows: temperature {temperatures}", scale=0.8)
plt.show()

# %% [markdown]
# What are these samples? The evaluator that `genzoo eval` uses (a small MNIST classifier,
# `genzoo/evaluator.py`) scores them at two temperatures: FID-MNIST (a Fréchet distance in its
# features; lower is better, not Inception FID), precision (samples inside the real digits' manifold),
# recall (real digits inside the samples' manifold), and *recognizable*, the share of samples it gives
# one class with probability at least 0.9. Real training digits are the floor, scored the same way
# with the same number of images, and Gaussian noise a ceiling (the classifier calls noise a digit with
# confidence, so *recognizable* cannot be read alone). Between them, the baseline of section 4: the
# independent-pixel model's samples, which have the right grey levels at each pixel and no strokes.

# %%
n_quality = 200 if SHORT else 5000  # 5,000: as many as `genzoo compare`'s table in section 10
evaluator = load_evaluator("mnist")
real_features, _ = evaluator.embed(from_uint8(data.test_x[: 1000 if SHORT else None]))
noise = torch.randn(n_quality, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
scored = {"real training digits": from_uint8(data.train_x[:n_quality]), "Gaussian noise": noise,
          "independent pixels": pixel_samples(n_quality, 1)}  # the baseline of section 4
for t in (0.7, 1.0):  # 0.7: the config's temperature, the one `genzoo eval` used for the recorded table
    scored[f"flow, T = {t}"], _ = draw_images(model, n_quality, {"temperature": t}, torch.Generator().manual_seed(1))
quality = {name: feature_metrics(real_features, *evaluator.embed(x)) for name, x in scored.items()}
print(f"{n_quality:,} images each against {len(real_features):,} test digits, evaluator {evaluator.name}")
print(f"{'':22s} {'FID-MNIST':>10s} {'precision':>10s} {'recall':>7s} {'recognizable':>13s}")
for name, q in quality.items():
    print(f"{name:22s} {q['fid']:10.1f} {q['precision']:10.3f} {q['recall']:7.3f} {q['recognizability']:13.3f}")

# %% [markdown]
# Which samples does the classifier recognize? Twenty at $T = 1$: the first row it gives one class with
# probability at least 0.9, the second it does not.

# %%
samples = scored["flow, T = 1.0"][:200]
confidence = evaluator.embed(samples)[1].max(1).values
recognized = samples[confidence >= 0.9][:10]
unrecognized = samples[confidence < 0.9][:10]
print(f"recognized (probability >= 0.9): {int((confidence >= 0.9).sum())} of {len(samples)} samples")
show_images(torch.cat([recognized, unrecognized]), nrow=10, title="T = 1: recognized (top), not (bottom)", scale=0.8)
plt.show()

# %% [markdown]
# **What the numbers show.** The samples are not digits at either temperature. At $T = 1$ they are
# blobs of strokes (bottom row above): FID-MNIST about 4,000 against 24 for real training digits, and
# the classifier is confident about 0.30 of them (real digits: 0.99). Lowering the temperature does
# not clean them up into digits: at $T = 0.7$ most samples are almost empty (the grid's third row),
# precision goes up to 0.95 and recall down to 0.005 (a few faint marks lie inside the real digits'
# manifold but cover almost none of it), and FID-MNIST doubles to about 8,000. The share called a
# digit rises (0.67), which is what the classifier does with near-blank images, not a sign of better
# digits. Temperature trades variety for typicality; it cannot add the shape of a digit that the
# model has not learned.
#
# Against the baseline: the independent-pixel samples (scattered dots, section 4) score FID-MNIST
# 8,107, precision 0.022 and recall 0, and the classifier calls every one of them a digit (1.000),
# as it does noise. The flow at $T = 1$ halves that FID (4,036) and has recall 0.114 where the
# baseline has none; at $T = 0.7$ its FID (8,068) is no better than the baseline's.

# %% [markdown]
# ## 8. An exact latent space
#
# `encode` is $f$ itself (on the centre of each pixel's bin), `decode` is $f^{-1}$ and then the
# 8-bit level: nothing is lost. Walking a straight line between the latents of two test digits:

# %%
x_test, _ = next(iter(data.test_batches(8)))
z = model.encode(x_test)
assert torch.allclose(model.decode(z), x_test, atol=1e-5)  # exact reconstruction
print("decode(encode(x)) == x for", len(x_test), "test digits")
weights = torch.linspace(0, 1, 9).view(-1, 1, 1, 1)
walk = torch.cat([model.decode((1 - weights) * z[i] + weights * z[i + 1]) for i in (0, 2, 4)])
show_images(walk, nrow=9, title="straight lines in z between pairs of test digits")
plt.show()

# %% [markdown]
# ## 9. Bits/dim on held-out digits
#
# `genzoo.metrics.heldout_nll` calls `log_prob`, the bound above in nats per image, and divides by
# $784 \ln 2$: the same number for every family in genzoo that has a likelihood.
# With `samples=S` draws of $u$ per image, combined as importance weights, the bound tightens. That
# it moves with $S$ is what marks it as a bound: an exact log-likelihood would not change.

# %%
n_images = 64 if SHORT else 1000
heldout = {}
for S in (1, 4):
    torch.manual_seed(0)
    heldout[S] = heldout_nll(model, islice(data.test_batches(n_images), 1), samples=S)
    print(f"S = {S}: {heldout[S]['bits_per_dim']:.4f} bits/dim (bound) on {heldout[S]['examples']} test digits "
          f"({heldout[S]['seconds']:.1f} s)")
assert heldout[4]["bits_per_dim"] < heldout[1]["bits_per_dim"]  # more draws, a tighter bound
baseline_same = independent_pixels_bits_per_dim(data.train_x, data.test_x[:n_images])  # the same test digits
print(f"independent pixels (section 4): {baseline_same:.4f} bits/dim (exact) on the same {n_images} test digits")

# %% [markdown]
# Against the baseline of section 4: the independent-pixel model scores 1.678 bits/dim on these same
# 1,000 test digits (1.720 on all 10,000), so the flow's 1.425 is 0.25 bits/dim, about 200 bits per
# digit, below it. That is what modelling the pixels jointly has bought after 600 steps, and it is a
# bound: the flow's exact $-\log_2 P / D$ is at most that.
#
# For scale: published multi-scale flows reach 1.02-1.08 bits/dim on MNIST after hours on a GPU
# with all 60,000 training digits; here the model saw 5,000 digits for a few minutes of CPU time.
# The benchmark record is `docs/flow.md`.
#
# ## 10. Best likelihood, worst samples
#
# The families' recorded numbers side by side: `docs/compare_mnist.json` holds README.md's table made
# by `genzoo compare` (each model trained 5 to 17 minutes on this machine; 5,000 samples per model
# against the 10,000 test digits; bits/dim on all 10,000 test digits), copied from that table, with
# its provenance in the file. Beside them, this notebook's flow, measured above (bits/dim on 1,000 test
# digits with $S = 1$, as the table's flow; FID-MNIST on 5,000 samples, as the table), and first the
# baseline of section 4, independent pixels (exact bits/dim on all 10,000 test digits, FID-MNIST on
# 5,000 of its samples, section 7).

# %%
recorded = json.loads((ROOT / "docs" / "compare_mnist.json").read_text())
print("recorded:", recorded["source"][:98] + "...")
print(f"{'':30s} {'bits/dim':>16s} {'FID-MNIST':>10s} {'recognizable':>13s}")
q = quality["independent pixels"]  # this notebook's baseline: bits/dim on all test digits, FID on 5,000 samples
print(f"{'independent pixels (baseline)':30s} {f'{baseline_bits:.3f} (exact)':>16s} {q['fid']:10.2f} "
      f"{q['recognizability']:13.3f}")
for name in ("flow", "vae", "ddpm", "gan", "real train images (floor)"):
    row = recorded["rows"][name]
    bits = "–" if row["bits_per_dim"] is None else f"{row['bits_per_dim']:.3f} ({row['likelihood']})"
    print(f"{name + ' (recorded)' if name in ('flow', 'vae', 'ddpm', 'gan') else name:30s} {bits:>16s} "
          f"{row['fid']:10.2f} {row['recognizable']:13.3f}")
for t in (0.7, 1.0):
    q, bits = quality[f"flow, T = {t}"], f"{heldout[1]['bits_per_dim']:.3f} (bound)"
    print(f"{f'flow, this notebook, T = {t}':30s} {bits:>16s} {q['fid']:10.2f} {q['recognizability']:13.3f}")
with_likelihood = {name: row for name, row in recorded["rows"].items() if row["bits_per_dim"] is not None}
assert min(with_likelihood, key=lambda name: with_likelihood[name]["bits_per_dim"]) == "flow"
assert max(recorded["rows"], key=lambda name: recorded["rows"][name]["fid"]) == "flow"

# %% [markdown]
# **Best likelihood, worst samples.** Of the three families with a likelihood, the recorded flow has
# the best bits/dim (1.225, against 1.276 for the VAE and 1.883 for the DDPM) and the worst FID-MNIST
# of all four (1,826, against 1,205, 98.7 and 55.3); half its samples are recognizable (0.502)
# against 0.994 for the DDPM, which has the worst bits/dim. The GAN, which has no likelihood at all,
# makes the best samples. This notebook's flow, trained 600 steps instead of 5,000, is at 1.425
# bits/dim, behind the recorded VAE as well, with samples further from digits (FID-MNIST about 4,000
# at $T = 1$). More training improved both numbers, and the recorded flow shows where that leads:
# the best bits/dim with the worst samples.
#
# The baseline sharpens the point. The recorded flow and VAE, and this notebook's flow, beat the
# independent-pixel model's 1.720 bits/dim; the recorded DDPM's bound, 1.883, does not, yet its samples
# (FID-MNIST 98.7) are far better than the baseline's dots (8,107) and than any flow's.
#
# Why can they disagree? Bits/dim averages $-\log_2 p$ over every pixel of every test digit. Most
# pixels are background and the grey levels at the edge of a stroke; a model earns most of its score
# by predicting those well and covering every test digit with some probability. A sample shows
# something else: what the model draws when it follows its own density, where small errors in the
# shape of a stroke are what a viewer (and FID) sees. The two measures can move almost independently
# (Theis et al. 2016): a model that draws a good digit with probability 0.01 and noise otherwise loses
# at most $\log_2 100 / 784 = 0.0085$ bits/dim against the good model, while 99% of its samples are
# noise. So measure samples with sample metrics, and likelihood with likelihood.
#
# One caution on the table: each bits/dim is a bound, an upper bound on the true $-\log_2 P(x) / D$,
# with its own gap: the flow's is small (4 draws of $u$ lower this notebook's by about 0.02, section 9),
# the others' are not measured here. The comparison is between bounds.
#
# ## What to try next
#
# - `dequantization = "variational"` in `configs/flow_mnist.toml`: a learned $q(u \mid k)$.
# - More `steps` per scale or a wider `hidden`, with a longer `train.max_minutes`.
# - `genzoo sample runs/notebook-flow --temperature 0.5`, and score it with `genzoo eval runs/notebook-flow
#   --temperature 0.5`.
# - `python train/flow.py configs/flow_moons.toml --set data.name=ring8`: can affine couplings
#   separate eight narrow Gaussians?

# %% [markdown]
# ## Exercises
#
# Three exercises on the equations above. Each `check(...)` runs your function on inputs it makes
# and compares the result with an independent computation (a round trip through the library, a
# brute-force Jacobian, a closed form); it prints "right", or what is wrong. Worked solutions, with
# the reasons, are in `notebooks/solutions/flow.py`; try first.
#
# The first two use a coupling's pieces as a conditioner network gives them: `mask` is 1 on the
# kept entries and 0 on the free ones, and `scale_shift(kept)` returns $(s, t)$, each the shape of
# its input, for *every* entry: nothing zeroes them on the kept entries, that is up to you. The
# coupling they describe is section 2's,
# $z = m \odot x + (1 - m) \odot \big(x \odot e^{s} + t\big)$ with $(s, t) = $ `scale_shift(m * x)`.
#
# **1. The affine coupling's inverse.** Write `my_coupling_inverse(z, mask, scale_shift)`, returning
# the $x$ whose forward is $z$, without any iteration: the whole point of a coupling is that this is
# one pass. The check pushes random images through the library's `AffineCoupling.forward` (random,
# fixed weights) and asks for them back. (Hint: what does $z$ hold at the kept entries?)

# %%
def my_coupling_inverse(z, mask, scale_shift):
    raise NotImplementedError  # your code here


check("flow.coupling_inverse", my_coupling_inverse)

# %% [markdown]
# **2. The coupling's log-determinant.** Write `my_coupling_log_det(x, mask, scale_shift)`, returning
# $\log|\det \partial z / \partial x|$ of the forward, one number per example (shape `(B,)`), without
# building the Jacobian. The check builds it anyway, with `torch.autograd.functional.jacobian` as in
# section 2, and compares with `slogdet`.

# %%
def my_coupling_log_det(x, mask, scale_shift):
    raise NotImplementedError  # your code here


check("flow.coupling_log_det", my_coupling_log_det)

# %% [markdown]
# **3. Bits/dim from a continuous density.** `k` is a batch of 8-bit images (levels 0..255 as floats,
# shape `(B, C, H, W)`) and `log_p(y)` a continuous density, in nats per image, over
# $y \in [0, 1)^D$. Write `my_bits_per_dim(log_p, k)`, returning each image's bits/dim from one
# uniformly dequantized draw $y = (k + u)/256$: one sample of section 4's bound, the number `loss`
# reports. Mind the units twice: $p(y)$ is a density over bins $1/256$ wide, and bits/dim is per
# pixel in base 2. The check uses a Gaussian `log_p`, for which the average over $u$ has a closed form.
# (For images in $[-1, 1]$, as the other families see them, bins are $1/127.5$ wide instead.)

# %%
def my_bits_per_dim(log_p, k):
    raise NotImplementedError  # your code here


check("flow.bits_per_dim", my_bits_per_dim)
