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
# # Diffusion models: the forward process, the noise-prediction loss, DDPM and DDIM sampling, guidance
#
# A diffusion model turns data into noise in $T$ small steps, by a fixed process that needs no
# learning, and learns to undo one step at a time. To generate, start from pure noise $x_T$ and
# run the learned reverse steps down to $x_0$. The network at the heart of it only ever answers
# one question: *which noise was added to this image?*
#
# This notebook reads [`genzoo/models/ddpm.py`](../genzoo/models/ddpm.py) one equation at a time.
# Every equation is followed by the line of that file which computes it (printed from the file
# itself, so what you read is what runs), then by a small numerical check.
#
# **Running it.** The committed run took 37 minutes on a slow 2-core CPU shared with other jobs
# (one torch thread), 21 of them the 800 training steps; expect less on a laptop of your own. With
# `GENZOO_SHORT=1` (what CI sets) every loop shrinks, with a barely trained model whose samples
# are noise. MNIST is read from
# `$GENZOO_DATA` (or `~/.cache/genzoo`); without it, genzoo says so in one line and uses the 5,000
# digits it ships.

# %%
import shutil
import time
from itertools import islice

import matplotlib.pyplot as plt
import torch

import genzoo.models.ddpm as ddpm_file
from genzoo.checkpoint import build_model
from genzoo.baselines import independent_pixels_bits_per_dim, pixel_histograms
from genzoo.config import load_config
from genzoo.evaluator import load_evaluator
from genzoo.exercises import check
from genzoo.metrics import heldout_nll, image_metrics, recognizability
from genzoo.models.ddpm import DDPM, NoiseSchedule
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.pixels import discretized_gaussian_log_likelihood
from genzoo.plots import read_metrics, trajectory_strip
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()

# %% [markdown]
# ## 1. The forward process: from a digit to noise
#
# Each step of the forward process shrinks the image a little and adds a little Gaussian noise,
# with a variance $\beta_t$ set by a *schedule* (Ho et al. 2020, eq. 2):
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\big).$$
#
# Gaussians compose, so any $x_t$ can be drawn from $x_0$ in one go (eq. 4), with
# $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$:
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, x_0,\ (1-\bar\alpha_t) I\big), \qquad
# x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \epsilon, \quad \epsilon \sim \mathcal N(0, I).$$
#
# That is what makes training cheap: no need to run $t$ steps to get a noisy image.

# %%
show_lines(ddpm_file, "Ho et al. 2020, eq. 4")

# %%
# full mode: 800 of the config's 4,000 steps, so that the whole notebook takes minutes, not an hour
overrides = ["train.max_steps=30", "train.eval_every=15", "train.eval_batches=2", "train.sample_every=1000"] \
    if SHORT else ["train.max_steps=800", "train.max_minutes=0", "train.eval_every=200"]
cfg = load_config(ROOT / "configs" / "ddpm_mnist.toml", overrides)
data = load_data(cfg.data)
print(f"{data.spec.name}: {len(data.train_x):,} training and {len(data.test_x):,} test digits")
print(cfg.model)
x0 = data.train_x[:1].float() / 127.5 - 1  # one digit, (1, 1, 28, 28) in [-1, 1]

# %% [markdown]
# The schedule decides how fast the signal fades. The **linear** schedule of Ho et al. raises
# $\beta_t$ from $10^{-4}$ to $0.02$; the **cosine** schedule of Nichol & Dhariwal (2021, eq. 17)
# sets $\bar\alpha_t = f(t)/f(0)$ with $f(t) = \cos^2\!\big(\tfrac{t/T + s}{1+s}\tfrac\pi2\big)$, so
# the digit survives longer and fewer steps are wasted on near-pure noise.

# %%
show_lines(ddpm_file, "Nichol & Dhariwal 2021, eq. 17")
schedules = {"linear": NoiseSchedule.linear(1000), "cosine": NoiseSchedule.cosine(1000)}
ts = [0, 50, 100, 200, 300, 500, 700, 1000]
fig, axes = plt.subplots(1, 3, figsize=(13, 2.4), gridspec_kw={"width_ratios": [1, 2, 2]})
for name, schedule in schedules.items():
    axes[0].plot(schedule.alpha_bar, label=name)
axes[0].set_xlabel("t")
axes[0].set_title("alpha_bar_t: the signal's share of the variance", fontsize=9)
axes[0].legend()
eps = torch.randn(len(ts), *x0.shape[1:], generator=torch.Generator().manual_seed(0))
for ax, (name, schedule) in zip(axes[1:], schedules.items()):
    xt = schedule.q_sample(x0.expand(len(ts), -1, -1, -1), torch.tensor(ts), eps)
    show_images(xt, nrow=len(ts), title=f"{name}: x_t for t = {ts}", ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Check.** Run the chain of eq. 2 one step at a time for many copies of the digit and compare
# the pixels' mean and variance at step $t$ with eq. 4's closed form.

# %%
schedule = schedules["cosine"]
t_check, copies = 300, 2000
x = x0.expand(copies, -1, -1, -1).clone()
for t in range(1, t_check + 1):  # eq. 2, t times
    x = (1 - schedule.betas[t]).sqrt() * x + schedule.betas[t].sqrt() * torch.randn_like(x)
alpha_bar = schedule.alpha_bar[t_check]
mean_error = (x.mean(0) - alpha_bar.sqrt() * x0[0]).abs().max()
print(f"t = {t_check}: alpha_bar = {alpha_bar:.4f}; largest error of the mean over the pixels {mean_error:.3f}")
print(f"variance: chain {x.var(0).mean():.4f}, closed form 1 - alpha_bar = {1 - alpha_bar:.4f}")
assert mean_error < 5 * (1 / copies) ** 0.5 and abs(x.var(0).mean() - (1 - alpha_bar)) < 0.01

# %% [markdown]
# ### The baseline to beat: every pixel on its own
#
# Before any diffusion, the simplest model of the same digits: every pixel independent, each with
# its own histogram over the 256 grey levels, counted on the training digits
# ([`genzoo/baselines.py`](../genzoo/baselines.py)). Its likelihood of the test digits is exact, in
# the same bits/dim as the DDPM's bound of section 7, and its samples (each pixel drawn from its
# histogram) are scored by the same evaluator as the DDPM's samples of sections 5 and 6: a small
# MNIST classifier (`genzoo/evaluator.py`) that reads recognizability, precision, recall and
# FID-MNIST. Whatever the DDPM does must beat these numbers to be worth its network.

# %%
baseline_bpd = independent_pixels_bits_per_dim(data.train_x, data.test_x)
print(f"independent pixels: {baseline_bpd:.3f} bits/dim on the {len(data.test_x):,} test digits "
      f"(a uniform guess over 256 levels: 8)")
log_p = pixel_histograms(data.train_x)  # (1, 28, 28, 256): log p_d(level) for every pixel d
torch.manual_seed(0)
n = 20 if SHORT else 200
baseline_x = torch.distributions.Categorical(logits=log_p).sample((n,)).float() / 127.5 - 1  # (n, 1, 28, 28)
evaluator, real = load_evaluator("mnist"), data.test_x[:1000]  # for sample quality, here and from section 5 on
baseline_quality = image_metrics(baseline_x, real, evaluator)
print(f"independent-pixel samples: recognizable {baseline_quality['recognizability']:.2f}, "
      f"precision {baseline_quality['precision']:.2f}, recall {baseline_quality['recall']:.2f}, "
      f"FID-MNIST {baseline_quality['fid']:.1f} ({n} samples)")
show_images(baseline_x[:20], nrow=10, title="independent pixels: each pixel drawn from its own histogram")
plt.show()

# %% [markdown]
# Per pixel the baseline is already good: 1.720 bits/dim, against 8 for a uniform guess, because
# most pixels of an MNIST digit are almost always black. As a generator it is useless: its samples
# are white speckle scattered over the middle of the frame, since no pixel knows what its
# neighbours drew. The evaluator's numbers say both things at once. It calls every one of them
# "recognizable" (1.00: the classifier is confidently wrong about noise, see section 5), but recall
# is 0.00 (no real digit's features lie near the samples'), precision 0.46 and FID-MNIST 8066. The
# DDPM's samples of sections 5 and 6 read FID-MNIST 363 to 938. What the DDPM learns, and the
# baseline lacks, is how the pixels depend on each other.

# %% [markdown]
# ## 2. The reverse step and the posterior
#
# To walk back we need $q(x_{t-1} \mid x_t)$, which depends on the whole data distribution. But
# *given* $x_0$ it is a Gaussian in closed form (Ho et al. 2020, eq. 6-7):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I), \quad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t} x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t} x_t,
# \quad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t.$$
#
# So a network that can guess $x_0$ from $x_t$ (equivalently, the noise $\epsilon$ in $x_t$) gives
# a reverse step. The schedule object holds these coefficients as buffers, computed once:

# %%
show_lines(ddpm_file, "Ho et al. 2020, eq. 7")

# %% [markdown]
# **Check** by Bayes' rule: $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)$,
# a product of two Gaussians in $x_{t-1}$, whose precisions add.

# %%
t = 400
beta, alpha_bar_prev = schedule.betas[t].double(), schedule.alpha_bar[t - 1].double()
x0_, xt_ = torch.tensor([0.6]), torch.tensor([-0.4])
precision = (1 - beta) / beta + 1 / (1 - alpha_bar_prev)
bayes_mean = ((1 - beta).sqrt() * xt_ / beta + alpha_bar_prev.sqrt() * x0_ / (1 - alpha_bar_prev)) / precision
mean, var = schedule.posterior(x0_, xt_, t)
print(f"posterior mean: ddpm.py {mean.item():.6f}, Bayes {bayes_mean.item():.6f}")
print(f"posterior variance: ddpm.py {var.item():.6f}, Bayes {1 / precision.item():.6f}")
assert abs(mean.item() - bayes_mean.item()) < 1e-5 and abs(var.item() - 1 / precision.item()) < 1e-6

# %% [markdown]
# ## 3. The loss: predict the noise
#
# Ho et al. parameterise the network to predict $\epsilon$ and found that the simplest loss works
# best (eq. 14): pick a random $t$, noise the image, ask for the noise back,
#
# $$L_\text{simple} = \mathbb E_{t, x_0, \epsilon}\, \big\| \epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big) \big\|^2 .$$
#
# `loss` averages it over pixels and images. Here the model is *class-conditional*: it also
# gets the digit's label $y$, and 20% of the time a "no label" class instead, so the same
# network learns $\epsilon_\theta(x_t, t, y)$ and $\epsilon_\theta(x_t, t)$ (for guidance, section 6).
# The network is a small U-Net (`genzoo/nn.py`): residual blocks at 28, 14 and 7 pixels with a
# sinusoidal embedding of $t$, self-attention at 7x7.

# %%
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, data.spec)  # DDPM(eps_net, schedule): the algorithm wraps the network
print(f"U-Net: {parameter_count(model.eps_net):,} parameters; "
      f"schedule buffers: {[name for name, _ in model.schedule.named_buffers()]}")
show_source(DDPM.loss)

# %% [markdown]
# The U-Net's last convolution starts at zero, so the untrained model predicts $\epsilon_\theta = 0$
# and the loss is $\mathbb E\|\epsilon\|^2$ per pixel, which is 1:

# %%
x, y = next(iter(data.test_batches(256)))
with torch.no_grad():
    _, metrics = model.loss((x, y))
print({k: round(v, 4) for k, v in metrics.items()})
assert abs(metrics["loss"] - 1) < 0.05

# %% [markdown]
# ## 4. Training with genzoo's trainer
#
# The same trainer as every family: `loss`, one AdamW step, warmup then cosine learning rate, and
# an exponential moving average (EMA) of the weights (`train.ema_decay`), which sampling uses
# (section 5 compares it with the raw weights). The run folder is a normal genzoo run
# (`genzoo sample runs/notebook-ddpm --steps 20`).

# %%
run_dir = ROOT / "runs" / ("notebook-ddpm-short" if SHORT else "notebook-ddpm")
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
started = time.perf_counter()
run = Trainer(model, data, cfg, run_dir).fit()
model = run.sampling_model.eval()  # the EMA weights
print(f"trained {run.step} steps in {time.perf_counter() - started:.0f} s")

# %%
records = read_metrics(run_dir / "metrics.jsonl")
plt.figure(figsize=(6, 2.6))
for key in ["loss", "mse_early", "mse_late"]:
    points = [(r["step"], r[key]) for r in records if r["split"] == "train"]
    plt.plot(*zip(*points), label=key)
plt.yscale("log")
plt.xlabel("step")
plt.legend()
plt.title("noise-prediction error; early = t <= T/2 (little noise), late = t > T/2", fontsize=9)
plt.show()

# %% [markdown]
# Predicting the noise is *hardest* when there is little of it (early $t$): the network must find
# a faint noise pattern on top of a sharp digit. At late $t$ the image is nearly all noise, and
# the noise is nearly the image.
#
# ## 5. Sampling: ancestral DDPM and DDIM
#
# **Ancestral sampling** (Ho et al. 2020, Algorithm 2) starts from $x_T \sim \mathcal N(0, I)$ and
# takes every one of the $T$ reverse steps: estimate the noise, turn it into a guess of $x_0$,
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ (clipped to
# $[-1, 1]$), and draw $x_{t-1}$ from the posterior of section 2 with $\hat x_0$ in place of $x_0$.
#
# **DDIM** (Song et al. 2021, eq. 12) jumps from $t$ to any earlier $s$, on the same network:
#
# $$x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\,\epsilon_\theta + \sigma z,
# \qquad \sigma = \eta \sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}.$$
#
# With $\eta = 0$ it is deterministic, and it needs far fewer steps. The update rules live in the
# schedule object, apart from the network, like diffusers' schedulers:

# %%
show_source(NoiseSchedule.ddpm_step)
show_source(NoiseSchedule.ddim_step)

# %% [markdown]
# **Check.** With $\eta = 1$ and $s = t - 1$, $\sigma^2 = \tilde\beta_t$ and the DDIM step is the
# ancestral step: given the same $x_t$, noise estimate and fresh noise, the two rules must land on
# the same $x_{t-1}$, at every $t$. (Only without clipping $\hat x_0$ to $[-1, 1]$: the ancestral
# rule combines the clipped $\hat x_0$ with $x_t$, DDIM combines it with $\epsilon_\theta$, and the
# two agree only while the clip does not bite. With random inputs here, it would.)

# %%
schedule, g, gap = model.schedule, torch.Generator().manual_seed(0), 0.0
for t in range(1, cfg.model.timesteps):
    xt, eps, noise = torch.randn(3, 2, 1, 28, 28, generator=g)
    ancestral = schedule.ddpm_step(xt, t, eps, noise, clip=False)
    ddim = schedule.ddim_step(xt, t, t - 1, eps, noise, eta=1.0, clip=False)
    gap = max(gap, float((ancestral - ddim).abs().max()))
print(f"largest difference, ancestral step vs DDIM step (eta = 1, s = t - 1), over every t: {gap:.2e}")
assert gap < 1e-4

# %% [markdown]
# `trajectory` yields every $x_t$ on the way, the denoising strip: one row per digit, from noise
# (left) to sample (right). The digit's rough shape is decided early; the late steps only sharpen it.

# %%
states = model.trajectory(10, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=50,
                          labels=list(range(10)), guidance=1.0)
show_images(trajectory_strip(states, frames=11), nrow=11, title="DDIM, 50 steps: x_T (left) to x_0 (right), every 5th step")
plt.show()

# %% [markdown]
# ### Steps against quality and time
#
# Each step is one pass of the U-Net, so time is proportional to the number of steps. Quality is
# measured with genzoo's evaluator (a small MNIST classifier, `genzoo/evaluator.py`):
# *recognizability* is the share of samples it classifies with confidence at least 0.9 (here of
# only 50 samples per sampler, so differences of a few hundredths are noise).

# %%
n, n_ancestral = (10, 2) if SHORT else (50, 10)  # ancestral: 1,000 network passes per image, so fewer images
settings = [("DDPM, 1000 steps", dict(sampler="ddpm")), ("DDIM, 100 steps", dict(sampler="ddim", steps=100)),
            ("DDIM, 50 steps", dict(sampler="ddim", steps=50)), ("DDIM, 20 steps", dict(sampler="ddim", steps=20)),
            ("DDIM, 10 steps", dict(sampler="ddim", steps=10))]
fig, axes = plt.subplots(1, len(settings), figsize=(15, 3.4))
for ax, (name, options) in zip(axes, settings):
    count = n_ancestral if options["sampler"] == "ddpm" else n
    started = time.perf_counter()
    x = model.sample(count, generator=torch.Generator().manual_seed(1), labels=list(range(10)), guidance=1.0, **options)
    seconds = (time.perf_counter() - started) / count
    _, probs = evaluator.embed(x)  # the classifier's probabilities, (count, 10)
    print(f"{name:17s} {seconds * 1000:7.1f} ms per image, recognizable {recognizability(probs):.2f} of {count}")
    show_images(x[:30], nrow=5, title=name, ax=ax)
plt.show()

# %% [markdown]
# At this training length the number of DDIM steps hardly changes how recognizable the digits
# are (0.82 to 0.84 of 50, from 10 to 100 steps; 10 of 10 for the 1,000-step ancestral sampler),
# while the time per image grows with the steps, from 0.20 s at 10 steps to 2.4 s at 100 and 20 s
# for the ancestral 1,000. Recognizability alone flatters (the evaluator also calls Gaussian noise
# "recognizable"), so the next comparisons add FID-MNIST.
#
# **Averaged weights.** The trainer keeps an exponential moving average of the weights, and
# sampling uses it. The same sampler from the raw weights of the last step, for comparison:

# %%
n = 20 if SHORT else 200
for name, net in [("EMA weights", run.sampling_model), ("raw weights, last step", run.model)]:
    x = net.eval().sample(n, generator=torch.Generator().manual_seed(3), sampler="ddim", steps=20,
                          labels=list(range(10)), guidance=1.0)
    quality = image_metrics(x, real, evaluator)
    print(f"{name:24s} FID-MNIST {quality['fid']:7.1f}, recognizable {quality['recognizability']:.2f} "
          f"({n} samples, DDIM 20 steps)")

# %% [markdown]
# In this run the average is *worse* than the raw weights (FID-MNIST 559 against 363; 0.86 and
# 0.87 recognizable). With decay 0.995 the average spans roughly the last 200 steps, and after only
# 800 steps those still include weights from when the model was much worse (validation loss 0.080
# at step 400, 0.048 at step 800, in the training log above). An average pays off once the weights
# move little over its window, that is in longer runs than this one.
#
# ## 6. Classifier-free guidance
#
# One network, trained with labels dropped 20% of the time, predicts both $\epsilon_\theta(x_t, t, y)$
# and $\epsilon_\theta(x_t, t)$. Guidance pushes the estimate away from the unconditional one
# (Ho & Salimans 2022, eq. 6):
#
# $$\tilde\epsilon = (1 + w)\,\epsilon_\theta(x_t, t, y) - w\,\epsilon_\theta(x_t, t).$$
#
# $w = 0$ is the conditional model as trained; larger $w$ pushes each sample towards what the
# classifier-free "classifier" finds most typical of its label, and is expected to trade variety
# (recall) for recognizability. The numbers below measure it on this model.

# %%
show_lines(ddpm_file, "Ho & Salimans 2022, eq. 6")

# %%
scales = [0.0, 0.5, 1.0, 2.0, 4.0]
columns = [model.sample(10, generator=torch.Generator().manual_seed(2), sampler="ddim", steps=50,
                        labels=list(range(10)), guidance=w) for w in scales]
grid = torch.stack(columns, dim=1).flatten(0, 1)  # rows: digits 0..9; columns: guidance scales
show_images(grid, nrow=len(scales), title=f"rows: digits 0-9; columns: w = {scales}")
plt.show()
x_t, t = torch.randn(4, 1, 28, 28), torch.full((4,), 500)
y = torch.tensor([1, 2, 3, 4])
with torch.no_grad():
    assert torch.equal(model.eps(x_t, t, y, guidance=0.0), model.eps_net(x_t, t, y))  # w = 0: plain conditional

# %%
n = 20 if SHORT else 200
print(f"independent pixels: recognizable {baseline_quality['recognizability']:.2f}, precision "
      f"{baseline_quality['precision']:.2f}, recall {baseline_quality['recall']:.2f}, FID-MNIST "
      f"{baseline_quality['fid']:.1f} ({len(baseline_x)} samples, section 1)")
for w in [0.0, 1.0, 4.0]:
    x = model.sample(n, generator=torch.Generator().manual_seed(4), sampler="ddim", steps=20,
                     labels=list(range(10)), guidance=w)
    quality = image_metrics(x, real, evaluator)
    print(f"w = {w}: recognizable {quality['recognizability']:.2f}, precision {quality['precision']:.2f}, "
          f"recall {quality['recall']:.2f}, FID-MNIST {quality['fid']:.1f} ({n} samples, DDIM 20 steps)")

# %% [markdown]
# Guidance does what it promises for recognizability (0.62 at $w = 0$, 0.83 at $w = 1$, 0.96 at
# $w = 4$) and precision (0.49, 0.61, 0.61), and at $w = 4$ it pays in variety: recall falls from
# 0.76 at $w = 1$ to 0.53. FID-MNIST, which punishes missing variety as well as unrealistic images,
# is best at the moderate $w = 1$ (496, against 938 at $w = 0$ and 638 at $w = 4$), the config's
# default. Every setting is far ahead of the independent-pixel baseline of section 1 (first line:
# FID-MNIST 8066, recall 0.00), and only its recognizability, 1.00 for speckle, shows why that
# number is never read alone.

# %% [markdown]
# ## 7. Likelihood: a bound in bits per dimension
#
# A diffusion model is a latent-variable model with latents $x_1, \dots, x_T$, so it has a
# variational bound on $\log p(x_0)$ (Ho et al. 2020, eq. 5), a sum of one term per step:
#
# $$-\log p(x_0) \le \underbrace{\mathrm{KL}(q(x_T|x_0)\,\|\,p(x_T))}_{L_T} + \sum_{t=2}^{T} \underbrace{\mathrm{KL}\big(q(x_{t-1}|x_t,x_0)\,\|\,p_\theta(x_{t-1}|x_t)\big)}_{L_{t-1}} \underbrace{-\log p_\theta(x_0|x_1)}_{L_0}.$$
#
# Every KL is between two Gaussians, in closed form. The last term makes it a bound on the
# *discrete* 8-bit image: $p_\theta(x_0|x_1)$ is a Gaussian integrated over each grey level's bin
# (eq. 13), so bits/dim compares with the other families. Summing 999 network passes per image
# is slow on a CPU; `log_prob(x, timesteps=K)` cuts $\{2, \dots, T\}$ into $K$ strata, draws one $t$
# in each and weights it by the stratum's size: an unbiased estimate of the same sum.

# %%
show_lines(ddpm_file, "Ho et al. 2020, eq. 13", "Ho et al. 2020, eq. 5")
levels = torch.arange(256) / 127.5 - 1
p = discretized_gaussian_log_likelihood(levels, torch.full((256,), -0.98), torch.tensor(0.05)).exp()
print(f"P(level) summed over the 256 levels: {p.sum():.6f}; P(level 0) = {p[0]:.3f}")
assert abs(p.sum() - 1) < 1e-4

# %%
n_images, K = (16, 5) if SHORT else (200, 20)
batches = islice(data.test_batches(n_images), 1)  # the first n_images test digits
torch.manual_seed(0)
result = heldout_nll(model, batches, timesteps=K)
print(f"bound: {result['bits_per_dim']:.3f} bits/dim on {result['examples']} test digits, "
      f"{K} timesteps per image ({result['seconds']:.0f} s)")
print(f"independent pixels (section 1): {baseline_bpd:.3f} bits/dim, exact, on all {len(data.test_x):,} test digits")

# %% [markdown]
# Plainly: by this measure the DDPM loses to the baseline. Its bound, 3.728 bits/dim, is more than
# twice the independent-pixel model's exact 1.720, although its samples are far better (sections 5
# and 6). Two things are at work. The number is only an upper bound on the DDPM's $-\log_2 p$ per
# dimension, not the likelihood itself, and after 800 steps of $L_\text{simple}$ it is a loose one:
# $L_\text{simple}$ weights every $t$ equally, while the bound's terms at small $t$, where the noise
# is finest, weigh most and are what the network predicts worst (section 4's `mse_early`). That is
# a known property of DDPM's bound at small budgets, and even the README's full run (3,992 steps)
# reaches 1.88 bits/dim, still worse than 1.720. Likelihood and sample quality measure different
# things. For scale: a uniform guess over 256 levels is 8 bits/dim, and genzoo's VAE reaches
# about 1.3 (`docs/benchmarks.md`). Nichol & Dhariwal (2021) close much of the gap by also learning
# the variances and sampling $t$ by importance.
#
# ## What to try next
#
# - Set `schedule = "linear"` in `configs/ddpm_mnist.toml` and compare sample grids and the bound.
# - Train unconditionally (`conditional = false`) and compare the samples with guided ones.
# - `genzoo sample runs/notebook-ddpm --sampler ddim --steps 20 --eta 1.0`: stochastic DDIM.
# - `configs/ddpm_mnist_gpu.toml`: a wider U-Net with dropout, for a GPU.

# %% [markdown]
# ## Exercises
#
# Three exercises on the equations above. Replace each `raise NotImplementedError` with your code
# and run the cell: `check` says whether it is right or what is wrong. Worked solutions are in
# [`notebooks/solutions/ddpm.py`](solutions/ddpm.py); the graders are in
# [`genzoo/exercises/ddpm.py`](../genzoo/exercises/ddpm.py).
#
# **1. The forward jump.** Write eq. 4 of section 1: given a `NoiseSchedule`, clean images `x0`
# (B, C, H, W), one timestep per image `t` (a (B,) int64 tensor) and the noise `eps`, return
# $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$. `schedule.alpha_bar[t]` is
# $\bar\alpha_t$ (index $t$ is the paper's $t$). The grader compares with $\bar\alpha_t$ computed
# from the betas, and checks the mean and variance of $x_t$ over many draws of $\epsilon$.

# %%
def my_q_sample(schedule, x0, t, eps):
    raise NotImplementedError  # your code here


check("ddpm.q_sample", my_q_sample)

# %% [markdown]
# **2. The DDIM step.** Write the DDIM update of section 5 from $t$ to any $s < t$ (Song et al.
# 2021, eq. 12, with $\sigma$ from eq. 16), without clipping $\hat x_0$: guess $\hat x_0$ from `xt`
# and `eps`, then return $\sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\,\epsilon + \sigma z$
# with $z$ = `noise`. `t` and `s` are ints, `eta` a float. The grader runs your step and
# `NoiseSchedule.ddim_step(..., clip=False)` on the same $x_t$, $\epsilon$ and $z$, for $\eta = 0$
# and $\eta > 0$.

# %%
def my_ddim_step(schedule, xt, t, s, eps, noise, eta):
    raise NotImplementedError  # your code here


check("ddpm.ddim_step", my_ddim_step)

# %% [markdown]
# **3. Classifier-free guidance.** Write eq. 6 of section 6 from the network itself:
# `eps_net(xt, t, y)` is the conditional estimate, and the same network given the "no label" class
# `null_label` for every image is the unconditional one. Return
# $(1 + w)\,\epsilon_\theta(x_t, t, y) - w\,\epsilon_\theta(x_t, t)$. The grader compares with
# `DDPM.eps(..., guidance=w)` on a small random network for 2-D points, at $w = 0, 1, 3$.

# %%
def my_guided_eps(eps_net, xt, t, y, null_label, w):
    raise NotImplementedError  # your code here


check("ddpm.guidance", my_guided_eps)
