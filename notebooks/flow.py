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
# density of $x$ is known *exactly*; because $f^{-1}$ is known, sampling is one pass backwards.
# The whole art is building $f$ so that both directions and $\log|\det \partial f / \partial x|$
# are cheap.
#
# This notebook reads [`genzoo/models/flow.py`](../genzoo/models/flow.py) one equation at a time.
# Every equation is followed by the line of that file which computes it (printed from the file
# itself, so what you read is what runs), then by a small numerical check.
#
# **Running it.** Top to bottom takes about 8 minutes on a 2-core laptop CPU, most of it
# training. With `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in about a
# minute, with a barely trained model. MNIST is read from `$GENZOO_DATA` (or `~/.cache/genzoo`);
# without it, genzoo says so in one line and uses the 5,000 digits it ships.

# %%
import math
import shutil
import time
from itertools import islice

import matplotlib.pyplot as plt
import torch

import genzoo.models.flow as flow_file
from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.metrics import heldout_nll
from genzoo.models.flow import (
    ActNorm,
    AffineCoupling,
    Chain,
    Flow,
    InvertibleConv1x1,
    Squeeze,
    StandardNormal,
    UniformDequantization,
    checkerboard_mask,
    conv_net,
)
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.plots import read_metrics
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
# Let us see it on 2-D data first, where a density can be drawn: the two moons. The flow for
# points is 8 Glow steps (ActNorm, an invertible 2x2 linear map, an affine coupling whose
# scale and shift come from a small MLP), trained with genzoo's `Trainer` like any family.

# %%
moons_cfg = load_config(ROOT / "configs" / "flow_moons.toml",
                        ["train.max_steps=100"] if SHORT else ["train.max_steps=2000"])
moons = load_data(moons_cfg.data)
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
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].scatter(*moons.test_x[:2000].T, s=2, alpha=0.5)
axes[0].set_title("data (test points)")
axes[1].imshow(density, origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
axes[1].set_title("learned density p(x)")
axes[2].scatter(*samples.T, s=2, alpha=0.5, color="C1")
axes[2].set_title("samples: f^-1(z), z ~ N(0, I)")
for ax in axes:
    ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_aspect("equal")
plt.show()

# %% [markdown]
# **Check.** An exact density integrates to one. Sum $p(x)$ over a fine grid wide enough to hold
# all the mass:

# %%
wide = torch.linspace(-5, 5, 801)
xx, yy = torch.meshgrid(wide, wide, indexing="xy")
with torch.no_grad():
    mass = moons_flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().sum() * (wide[1] - wide[0]) ** 2
print(f"integral of p(x) over [-5, 5]^2: {mass:.4f}")
assert abs(mass - 1) < 0.02

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
# Bits per dimension is $-\log_2 P(k) / D$: the code length per pixel an entropy coder would
# reach with this model. 8 bits/dim is a uniform guess over 256 levels.
#
# Images also go through a **logit** first, $\text{logit}(\alpha + (1-2\alpha) y)$, so the flow works
# on all of $\mathbb R$ rather than the unit box; its log-determinant is part of `log_det`.

# %%
show_lines(flow_file, "Ho et al. 2019, sec. 3.1", "density of k + u")

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
print(f"identity flow: {bits:.4f} bits/dim, analytic {analytic:.4f}")
assert abs(bits - analytic) < 2e-3

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
# full mode: at most 5 minutes of the config's 19; short mode: 30 steps
overrides = ["train.max_steps=30", "train.eval_every=15", "train.eval_batches=2", "train.sample_every=1000"] \
    if SHORT else ["train.max_minutes=5", "train.max_steps=1500", "train.eval_every=250"]
cfg = load_config(ROOT / "configs" / "flow_mnist.toml", overrides)
data = load_data(cfg.data)
print(f"{data.spec.name}: {len(data.train_x):,} training and {len(data.test_x):,} test digits")
print(cfg.model)
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, data.spec)  # Flow(prior, layers, dequantizer)
print(f"{parameter_count(model):,} parameters")
model.eval()  # ActNorm initialises from the first batch it sees in training mode: not from this one
y = torch.rand(2, 1, 28, 28)  # dequantized pixels in (0, 1)
with torch.no_grad():
    for layer in model.layers:
        y, _ = layer(y)
        if not isinstance(layer, ActNorm):
            print(f"{type(layer).__name__:<18s} -> {tuple(y.shape[1:])}")
model.train()

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
# reads off the 8-bit level whose bin holds $y$. Lower temperatures (as in Kingma & Dhariwal 2018)
# stay closer to the prior's mode: cleaner digits, less variety. Each column below
# uses one $z$, scaled by each temperature.

# %%
temperatures = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
z = model.prior.sample(10, 1.0, torch.Generator().manual_seed(0), model.device)
grid = torch.cat([model.decode(t * z) for t in temperatures])
show_images(grid, nrow=10, title=f"rows: temperature {temperatures}")
plt.show()

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
# With `samples=S` draws of $u$ per image, combined as importance weights, the bound tightens.

# %%
n_images = 64 if SHORT else 1000
for S in (1, 4):
    torch.manual_seed(0)
    result = heldout_nll(model, islice(data.test_batches(n_images), 1), samples=S)
    print(f"S = {S}: {result['bits_per_dim']:.4f} bits/dim on {result['examples']} test digits ({result['seconds']:.1f} s)")

# %% [markdown]
# For scale: published multi-scale flows reach 1.02-1.08 bits/dim on MNIST after hours on a GPU
# with all 60,000 training digits; here the model saw 5,000 digits for a few minutes of CPU time.
# The benchmark record is `docs/flow.md`.
#
# ## What to try next
#
# - `dequantization = "variational"` in `configs/flow_mnist.toml`: a learned $q(u \mid k)$.
# - More `steps` per scale or a wider `hidden`, with a longer `train.max_minutes`.
# - `genzoo sample runs/notebook-flow --temperature 0.9`.
# - `python train/flow.py configs/flow_moons.toml --set data.name=ring8`: can affine couplings
#   separate eight narrow Gaussians?
