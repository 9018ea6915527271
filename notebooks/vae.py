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
# # The variational autoencoder: the ELBO, the reparameterization trick, the latent space
#
# A VAE learns two networks at once. The **encoder** maps an image $x$ to a Gaussian
# *posterior* $q(z|x) = \mathcal N(\mu, \operatorname{diag} \sigma^2)$ over a short latent
# vector $z$ (`latent_dim` numbers, set in the config); the **decoder** maps $z$ to a
# distribution $p(x|z)$ over the 256 grey levels of every pixel. New images come from drawing
# $z \sim p(z) = \mathcal N(0, I)$ and decoding it.
#
# This notebook reads [`genzoo/models/vae.py`](../genzoo/models/vae.py) one equation at a time.
# Every equation is followed by the line of that file which computes it (printed from the file
# itself, so what you read is what runs), then by a small numerical check.
#
# It starts with two baselines, the simplest models of the same digits, and ends with three graded
# exercises.
#
# **Running it.** The committed run took 16 minutes on a slow 2-core CPU (one torch thread, with
# another job on the other core): 12 of them the 2,400 training steps, 2 the baselines of section 2. With the environment
# variable `GENZOO_SHORT=1` (what CI sets) every loop shrinks, with a barely trained model. MNIST is read from `$GENZOO_DATA` (or `~/.cache/genzoo`); without
# it, genzoo says so in one line and uses the 5,000 digits it ships.

# %%
import math
import shutil
import time
from itertools import islice

import matplotlib.pyplot as plt
import torch

import genzoo.models.vae as vae_file
from genzoo.baselines import independent_pixels_bits_per_dim, pixel_histograms
from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.evaluator import load_evaluator
from genzoo.exercises import check
from genzoo.metrics import heldout_nll, image_metrics, reference_points
from genzoo.nn import ConvDecoder, ConvEncoder
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.pixels import DiscretizedLogistic
from genzoo.plots import read_metrics
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()

# %% [markdown]
# ## 1. The data: 8-bit digits
#
# The config file holds every setting; the notebook only shortens training so it fits in a few
# minutes. Images are floats in $[-1, 1]$, but they *are* 8-bit: level $k \in \{0, \dots, 255\}$
# sits at $k / 127.5 - 1$. That matters for the likelihood below.

# %%
# full mode: 2,400 of the config's 4,000 steps
overrides = ["train.max_steps=40", "train.eval_every=15"] if SHORT else ["train.max_steps=2400", "train.max_minutes=0"]
cfg = load_config(ROOT / "configs" / "vae_mnist.toml", overrides)
data = load_data(cfg.data)
print(f"{data.spec.name}: {len(data.train_x):,} training and {len(data.test_x):,} test digits")
print(cfg.model)

# %%
x, y = next(data.train_stream(32, seed=0))  # a batch is (images, labels)
show_images(x, nrow=16, title=f"training digits, labels {y[:16].tolist()} ...")
levels = data.train_x
print(f"pixels exactly black (level 0): {(levels == 0).float().mean():.1%}, "
      f"exactly white (255): {(levels == 255).float().mean():.1%}")

# %% [markdown]
# Most pixels are exactly black: a good pixel model must be able to put a large probability
# on *one* level. A Gaussian density cannot (its density at a point says
# nothing about the probability of a level); a distribution over the 256 levels can.
#
# ## 2. Baselines: what the VAE has to beat
#
# Two simple models of the same digits come first, so that the VAE's numbers have something to
# stand beside.
#
# **Independent pixels.** Give each of the 784 pixels its own histogram over the 256 levels,
# counted on the training digits (`genzoo/baselines.py`), and ignore how pixels depend on each
# other. It is an exact likelihood of 8-bit images, in the same bits per dimension as the VAE's
# bound in section 7, and its samples show what pixels drawn with no idea of a stroke look like.

# %%
pixel_bits = independent_pixels_bits_per_dim(data.train_x, data.test_x)
print(f"independent pixels: {pixel_bits:.3f} bits/dim on the {len(data.test_x):,} test digits")
n = 200 if SHORT else 1000  # images scored by the evaluator, here and in section 8
log_p = pixel_histograms(data.train_x).flatten(0, -2)  # (784, 256): log p_d(level) of every pixel d
generator = torch.Generator().manual_seed(0)
levels = torch.multinomial(log_p.exp(), n, replacement=True, generator=generator)  # (784, n)
pixel_samples = levels.T.reshape(n, 1, 28, 28) / 127.5 - 1  # each pixel drawn from its own histogram

# %% [markdown]
# **A plain autoencoder.** The VAE's networks with none of its probability: the same
# `ConvEncoder` and `ConvDecoder` sizes, but the encoder gives one code $z = f(x)$ (no $\sigma$, no
# sampling), and there is no prior and no KL term. It is trained only to reconstruct, with the
# VAE's pixel likelihood, so its loss $-\log p(x \mid f(x))$ is the VAE's `recon` term alone.
# Training it for 300 steps (an eighth of the VAE's) is enough to show what it lacks.

# %%
ae_steps = 20 if SHORT else 300
torch.manual_seed(cfg.train.seed)
ae_pixels = DiscretizedLogistic(cfg.model.n_mix)  # the same pixel likelihood as the VAE's decoder
ae_encoder = ConvEncoder(1, cfg.model.latent_dim, cfg.model.encoder_channels)  # one code, not mu and log_var
ae_decoder = ConvDecoder(cfg.model.latent_dim, ae_pixels.params_per_pixel, cfg.model.decoder_channels)
optimizer = torch.optim.AdamW([*ae_encoder.parameters(), *ae_decoder.parameters()], lr=cfg.train.lr,
                              weight_decay=cfg.train.weight_decay)
stream = data.train_stream(cfg.data.batch_size, seed=cfg.train.seed)
started = time.perf_counter()
for step in range(ae_steps):
    x, _ = next(stream)
    loss = -ae_pixels.log_prob(ae_decoder(ae_encoder(x)), x).mean()  # reconstruction only: no noise, no KL
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
seconds = time.perf_counter() - started
held_out = data.test_x[n : 2 * n].float() / 127.5 - 1  # test digits to reconstruct (section 8 uses them too)
with torch.no_grad():
    codes = ae_encoder(data.train_x.float() / 127.5 - 1)  # (5000, D): where the training digits' codes are
    recon = -ae_pixels.log_prob(ae_decoder(ae_encoder(held_out)), held_out).mean()
print(f"{ae_steps} steps in {seconds:.0f} s; reconstruction cost on {n} test digits: {recon:.1f} nats per image")
print(f"the codes: mean at distance {codes.mean(0).norm():.1f} from 0, standard deviations "
      f"{codes.std(0).min():.1f} to {codes.std(0).max():.1f} (N(0, I): 0, and 1)")

# %% [markdown]
# An autoencoder has no sampler, so try the two obvious ones: decode codes drawn from
# $\mathcal N(0, I)$, the VAE's prior, and codes drawn from a Gaussian fitted afterwards to the
# training digits' codes (their mean and covariance).

# %%
generator = torch.Generator().manual_seed(1)
z = torch.randn(n, cfg.model.latent_dim, generator=generator)
fitted = codes.mean(0) + z @ torch.linalg.cholesky(torch.cov(codes.T)).T  # z ~ N(codes' mean, covariance)
with torch.no_grad():
    baseline_images = {
        "independent pixels, sampled": pixel_samples,
        "autoencoder, reconstructions": ae_pixels.mean(ae_decoder(ae_encoder(held_out))),
        "autoencoder, decoded z ~ N(0, I)": ae_pixels.mean(ae_decoder(z)),
        "autoencoder, decoded z ~ fitted Gaussian": ae_pixels.mean(ae_decoder(fitted)),
    }
fig, axes = plt.subplots(1, 4, figsize=(15, 2.4))
for ax, (title, images) in zip(axes, baseline_images.items()):
    show_images(images[:24], title=title, ax=ax)
plt.show()

# %% [markdown]
# How good images are is measured with genzoo's evaluator (a small MNIST classifier shipped with
# the package, `genzoo/evaluator.py`), against real test digits: **FID-MNIST** compares the
# statistics of its features on generated and real digits (lower is better); **precision** is the
# share of generated images whose features fall among the real ones' (fidelity), **recall** the
# share of real ones among the generated ones' (variety); **recognizable** is the share of images it
# classifies with confidence at least 0.9, and **coverage** is the entropy of the predicted
# classes over $\log 10$ (1: all ten digits equally often, 0: one digit). The first three rows are
# reference points: real training digits (the floor), noise and blank images.

# %%
evaluator = load_evaluator("mnist")
real = data.test_x[:n]


def print_quality(quality: dict) -> None:
    print(f"{'':42s} {'FID-MNIST':>9s} {'precision':>9s} {'recall':>6s} {'recognizable':>12s} {'coverage':>8s}")
    for name, q in quality.items():
        print(f"{name:42s} {q['fid']:9.1f} {q['precision']:9.2f} {q['recall']:6.2f} "
              f"{q['recognizability']:12.2f} {q['coverage']:8.2f}")


baseline_quality = {name: image_metrics(x, real, evaluator) for name, x in baseline_images.items()}
print_quality({**reference_points(data.train_x, real, evaluator, n), **baseline_quality})

# %% [markdown]
# **Independent pixels** cost 1.720 bits/dim on the test digits: the number the VAE's bound has to
# beat (section 7). Their samples are speckle, and FID-MNIST (8018) says so; yet all of them
# (1.00) are "recognizable", every one as the same digit (coverage 0.00). The classifier is just as
# sure about noise and blank images (1.00 each): recognizability means something only beside
# coverage and FID. Real training digits set the floor at this sample size: FID-MNIST 164.
#
# **The autoencoder** reconstructs: FID-MNIST 869, 0.87 recognizable, all ten digits (coverage
# 0.99), at 760 nats per image. But codes drawn from $\mathcal N(0, I)$ decode to blank images
# (FID-MNIST 9954, precision 0.00, coverage 0.00, like the blank row): nothing in its training
# says where the codes should be, and they ended up with their mean at distance 8.0 from 0 and
# standard deviations of 2.3 to 3.9, so a standard normal draw lands where no digit's code is. A
# Gaussian fitted to the codes afterwards does give digit-like images (FID-MNIST 2122, 0.55
# recognizable, coverage 0.97), but it is a second model, fitted after training, and the pair
# still has no likelihood: an autoencoder gives no probability to an image, so there is no
# bits/dim to put beside 1.720. The VAE builds both in: its KL term pulls the codes onto
# $\mathcal N(0, I)$, so the prior is its sampler, and its objective is a bound on $\log p(x)$.
#
# ## 3. The model and its objective, the ELBO
#
# The log-likelihood $\log p(x) = \log \int p(x|z)\,p(z)\,dz$ has no closed form. Any $q(z|x)$
# gives a lower bound on it, the **evidence lower bound** (Kingma & Welling 2014, eq. 3):
#
# $$\log p(x) \;\ge\; \mathrm{ELBO}(x) = \mathbb E_{q(z|x)}\big[\log p(x|z)\big] - \mathrm{KL}\big(q(z|x)\,\|\,p(z)\big).$$
#
# The first term rewards reconstructing $x$ from its code; the second keeps the codes close
# to the prior, so that decoding $z \sim p(z)$ gives digits. The bound is tight when $q(z|x)$
# equals the true posterior $p(z|x)$. `loss` is minus the ELBO, in nats per image, with its two
# parts in the metrics (`recon` and `kl`); `beta` weighs the KL (1 is the true ELBO):

# %%
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, data.spec)  # VAE(encoder, decoder, pixels, ...): the algorithm wraps the networks
for name, net in [("encoder", model.encoder), ("decoder", model.decoder)]:
    print(f"{name}: {parameter_count(net):,} parameters")
show_source(vae_file.VAE.loss)

# %% [markdown]
# For scale: a uniform guess over the 256 levels costs $\log_2 256 = 8$ bits per dimension. The
# untrained model already does better, only because its wide logistics put much of their mass
# on the two end levels, where most pixels are. The KL is near zero: the untrained encoder's
# codes carry no information yet.

# %%
x, y = next(iter(data.test_batches(256)))
with torch.no_grad():
    _, metrics = model.loss((x, y))
print({k: round(v, 3) for k, v in metrics.items()})

# %% [markdown]
# ### The KL term in closed form
#
# Both $q(z|x) = \mathcal N(\mu, \sigma^2)$ and $p(z) = \mathcal N(0, I)$ are Gaussian, so the KL
# needs no sampling (Kingma & Welling 2014, appendix B), with $\log \sigma^2$ = `log_var`:
#
# $$\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big) = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big).$$

# %%
show_lines(vae_file, "K&W 2014, appendix B")
show_source(vae_file.kl_to_standard_normal)

# %% [markdown]
# We check it after training (section 6), where the KL is large enough to be interesting.
#
# ## 4. The reparameterization trick
#
# The ELBO's first term is an expectation over $z \sim q(z|x)$, whose parameters $\mu, \sigma$
# come from the encoder. To train the encoder by gradient descent we need the gradient *through*
# the sampling. Write the sample as a deterministic function of the parameters and of noise
# that does not depend on them (Kingma & Welling 2014, eq. 10):
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).$$
#
# Then $\partial z / \partial \mu = 1$ and $\partial z / \partial \sigma = \varepsilon$, and
# autograd does the rest. In `vae.py`, with $\sigma = \exp(\tfrac12 \log \sigma^2)$:

# %%
show_lines(vae_file, "K&W 2014, eq. 10")

# %% [markdown]
# A check with a function whose answer we know: for $f(z) = z^2$ and $z \sim \mathcal N(\mu, \sigma^2)$,
# $\mathbb E[f] = \mu^2 + \sigma^2$, so $\partial_\mu \mathbb E[f] = 2\mu$ and
# $\partial_\sigma \mathbb E[f] = 2\sigma$. The reparameterized Monte-Carlo average must give the
# same gradients. `Normal(mu, sigma).sample()` would not: it returns a number with no path back
# to `mu` and `sigma` (PyTorch's reparameterized version is `rsample`).

# %%
mu = torch.tensor(1.5, requires_grad=True)
sigma = torch.tensor(0.8, requires_grad=True)
eps = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
z = mu + sigma * eps  # the reparameterized sample
(z**2).mean().backward()
print(f"d/dmu    = {mu.grad:.3f}   (exact 2 mu    = {2 * mu.item():.3f})")
print(f"d/dsigma = {sigma.grad:.3f}   (exact 2 sigma = {2 * sigma.item():.3f})")
assert abs(mu.grad - 2 * mu.item()) < 0.03 and abs(sigma.grad - 2 * sigma.item()) < 0.03
plain = torch.distributions.Normal(mu, sigma).sample()
print("a plain sample has a gradient path:", plain.grad_fn is not None)

# %% [markdown]
# In the model the same path carries the reconstruction error back into the encoder: after one
# backward pass of `loss`, the encoder's weights have gradients.

# %%
loss, _ = model.loss((x, y))
loss.backward()
encoder_grad = torch.cat([p.grad.flatten() for p in model.encoder.parameters()]).norm()
print(f"gradient norm reaching the encoder: {encoder_grad:.2f}")
assert encoder_grad > 0
model.zero_grad(set_to_none=True)

# %% [markdown]
# ## 5. The decoder's likelihood: a distribution over 8-bit levels
#
# `vae.py` offers three pixel models (from `genzoo/pixels.py`) and the config picks one (`decoder`). The default, the
# **discretized logistic mixture** (Salimans et al. 2017, PixelCNN++, eq. 2), gives level $k$, at $x = k/127.5 - 1$, the probability mass of a logistic distribution
# (mean $m$, scale $s$, CDF $F(u) = 1 / (1 + e^{-u})$) over the bin of width $2/255$ around $x$:
#
# $$P(x \mid m, s) = F\Big(\frac{x + 1/255 - m}{s}\Big) - F\Big(\frac{x - 1/255 - m}{s}\Big),$$
#
# with the two end levels taking the whole tails, $P(0) = F\big((-1 + 1/255 - m)/s\big)$ and
# $P(255) = 1 - F\big((1 - 1/255 - m)/s\big)$. A mixture of a few such logistics per pixel,
# with weights from a softmax, covers pixels that are either black or white. Because it is a
# proper distribution over 256 levels, $-\log P$ is a code length, and bits per dimension
# mean the same as for every other family in genzoo.

# %%
print(f"this config's pixel model: decoder = {cfg.model.decoder!r}")
show_source(DiscretizedLogistic.log_prob)

# %% [markdown]
# The 256 probabilities of one pixel must sum to 1, and a mean near $-1$ should pile mass on the
# black end level. Here is one pixel whose mixture has a sharp component at black and a broad
# one in the middle:

# %%
pixels = DiscretizedLogistic(n_mix=2)
logits, means, log_scales = [0.5, 0.0], [-1.0, 0.3], [math.log(0.05), math.log(0.2)]
params = torch.tensor(logits + means + log_scales).view(1, 6, 1, 1).expand(256, 6, 1, 1)  # (256, 3M, 1, 1)
levels = torch.arange(256).view(256, 1, 1, 1) / 127.5 - 1  # every level, one per "image"
p = pixels.log_prob(params, levels).exp()  # (256,): P(level k)
print(f"sum over the 256 levels: {p.sum():.6f};  P(level 0) = {p[0]:.3f}")
assert abs(p.sum() - 1) < 1e-4
plt.figure(figsize=(6, 2.2))
plt.bar(range(256), p, width=1.0)
plt.xlabel("level k")
plt.ylabel("P(k)")
plt.yscale("log")
plt.title("one pixel's distribution: the black end level takes the whole left tail", fontsize=9)
plt.show()

# %% [markdown]
# ## 6. Training with genzoo's trainer
#
# The trainer is the same for every family: it calls `model.training_step` (here: `loss`, then
# one AdamW step), follows a warmup-then-cosine learning-rate schedule, evaluates on held-out
# images, and writes `metrics.jsonl`, sample grids and checkpoints to a run folder. That folder
# is a normal genzoo run: `genzoo sample runs/notebook-vae` draws from it afterwards.

# %%
run_dir = ROOT / "runs" / ("notebook-vae-short" if SHORT else "notebook-vae")
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
run = Trainer(model, data, cfg, run_dir).fit()
model = run.sampling_model.eval()  # the EMA weights if the config keeps them
print(f"trained {run.step} steps")

# %%
records = read_metrics(run_dir / "metrics.jsonl")
fig, axes = plt.subplots(1, 3, figsize=(10, 2.6))
for ax, key in zip(axes, ["bits_per_dim", "recon", "kl"]):
    for split, style in [("train", "-"), ("val", "o-")]:
        points = [(r["step"], r[key]) for r in records if r["split"] == split]
        ax.plot(*zip(*points), style, markersize=3, label=split)
    ax.set_title(key, fontsize=9)
    ax.set_xlabel("step")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Reconstruction cost falls while the KL *rises*: the encoder learns to put information into
# $z$, and pays for every nat of it in the KL term. The balance of the two is the ELBO.
#
# **Checking the KL.** The closed form against a Monte-Carlo estimate that knows nothing about
# it: average $\log q(z|x) - \log p(z)$ over many $z \sim q(z|x)$, using `torch.distributions`.

# %%
x, y = next(iter(data.test_batches(256)))
with torch.no_grad():
    _, metrics = model.loss((x, y))  # the model's KL, batch mean
    mu, log_var = model.encode(x)  # (B, D) each
    q = torch.distributions.Normal(mu, torch.exp(0.5 * log_var))
    prior = torch.distributions.Normal(0.0, 1.0)
    z = q.sample((2000,))  # (S, B, D)
    log_ratio = (q.log_prob(z) - prior.log_prob(z)).sum(-1)  # (S, B)
mc, stderr = log_ratio.mean(), log_ratio.mean(1).std() / math.sqrt(log_ratio.shape[0])
print(f"KL, closed form (vae.py):   {metrics['kl']:.3f} nats")
print(f"KL, Monte Carlo (2000 z's): {mc:.3f} +- {stderr:.3f} nats")
assert abs(mc - metrics["kl"]) < 5 * stderr + 1e-3

# %% [markdown]
# ## 7. Bits per dimension, and a tighter bound
#
# The ELBO is one bound; averaging $k$ importance weights gives tighter ones, which grow towards
# $\log p(x)$ as $k$ grows (Burda et al. 2016, eq. 8):
#
# $$\mathcal L_k(x) = \log \frac1k \sum_{i=1}^{k} \frac{p(x|z_i)\,p(z_i)}{q(z_i|x)}, \qquad z_i \sim q(z|x), \qquad \mathcal L_1 = \mathrm{ELBO}.$$
#
# `log_prob` returns $\mathcal L_k$ in nats; bits per dimension is $-\mathcal L_k / (784 \ln 2)$.

# %%
show_lines(vae_file, "Burda et al. 2016, eq. 8")

# %%
n_images, ks = (64, [1, 8]) if SHORT else (500, [1, 10, 100])
for k in ks:
    batches = islice(data.test_batches(n_images), 1)  # the first n_images test digits
    torch.manual_seed(0)
    result = heldout_nll(model, batches, k=k)
    print(f"k = {k:3d}: {result['bits_per_dim']:.4f} bits/dim on {result['examples']} test digits "
          f"({result['seconds']:.1f} s)")
same_digits = independent_pixels_bits_per_dim(data.train_x, data.test_x[:n_images])
print(f"independent pixels (section 2), the same {n_images} digits: {same_digits:.4f} bits/dim")

# %% [markdown]
# Larger $k$ gives a higher bound, so fewer bits per dimension: the ELBO alone ($k=1$)
# overstates the code length by the gap between $q(z|x)$ and the true posterior.
#
# Every one of them is far below the independent pixels' 1.661 bits/dim on the same 500 digits
# (1.720 on the whole test set): at $k = 100$ the VAE saves 0.41 bits per pixel, about 225 nats per
# image, by modelling through $z$ how the pixels of a digit depend on each other. As $\mathcal L_k$
# is a lower bound on $\log p(x)$, the VAE's true code length is shorter still.
#
# ## 8. Samples and reconstructions
#
# Sampling is the generative story run forwards: $z \sim \mathcal N(0, I)$, then $p(x|z)$.
# `sample` shows the *mean* of $p(x|z)$ by default, the smooth image usually shown for VAEs;
# `pixels="sample"` also draws every pixel's level, which is what the likelihood is about;
# `temperature` scales the prior's standard deviation.

# %%
panels = [("mean of p(x|z), z ~ N(0, I)", {}), ("the same, temperature 0.7", {"temperature": 0.7}),
          ("pixels drawn from p(x|z)", {"pixels": "sample"})]
fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
for ax, (title, options) in zip(axes, panels):
    generator = torch.Generator().manual_seed(0)  # the same z's in every panel
    show_images(model.sample(48, generator=generator, **options), title=title, ax=ax)
plt.show()

# %%
x, y = next(iter(data.test_batches(16)))
fig, axes = plt.subplots(2, 1, figsize=(8, 1.6))
show_images(x, nrow=16, title="test digits", ax=axes[0])
show_images(model.reconstruct(x), nrow=16, title="decoded posterior means", ax=axes[1])
plt.show()

# %% [markdown]
# The same evaluator as in section 2, on the same real digits, with the baselines' rows beside:

# %%
generator = torch.Generator().manual_seed(1)
with torch.no_grad():
    images = {
        "samples, mean of p(x|z)": model.sample(n, generator=generator),
        "samples, temperature 0.7": model.sample(n, generator=generator, temperature=0.7),
        "samples, pixels drawn": model.sample(n, generator=generator, pixels="sample"),
        "reconstructions of other test digits": model.reconstruct(held_out),  # section 2's digits
    }
quality = {name: image_metrics(x, real, evaluator) for name, x in images.items()}
print_quality({**{f"VAE, {name}": q for name, q in quality.items()}, **baseline_quality})

# %% [markdown]
# Reconstructions are far better than samples: FID-MNIST 213 against 1760, and 0.93 of them
# recognizable against 0.56. The decoder has only learned to decode the codes the encoder
# produces, and those do not fill the prior evenly: many $z \sim \mathcal N(0, I)$ land where no
# training digit's posterior puts mass, and decode to half-digits. Lowering the temperature, which
# keeps $z$ nearer the prior's centre, does not clean them up on this model: FID-MNIST rises to 2622
# and recognizability falls to 0.50. Drawing every pixel from $p(x|z)$ instead of showing its mean
# scores a little better (FID-MNIST 1538): the mean image is grey where the model is unsure, while
# real digits, like drawn pixels, are mostly pure black and white.
#
# Beside the baselines of section 2: the VAE's samples look like digits, about half of them
# recognizably so, where the autoencoder's decoded $\mathcal N(0, I)$ codes are blank (FID-MNIST
# 1760 against 9954, coverage 0.95 against 0.00), with the prior itself as the sampler. The autoencoder with a Gaussian fitted to its codes comes
# close in recognizability (0.55 against 0.56) but is further from the real digits (FID-MNIST 2122
# against 1760, recall 0.33 against 0.62), after 300 training steps against the VAE's 2,400, and
# only with a second model fitted afterwards. The VAE's reconstructions (FID-MNIST 213) are better
# than the autoencoder's (869), again after eight times the training.
#
# ## 9. The latent space
#
# Each test digit's posterior mean $\mu(x)$ is a point in `latent_dim` dimensions. Projecting
# them onto their two principal directions shows how the encoder arranged the classes, although
# it never saw a label: similar digits get nearby codes because that is what lets one decoder
# serve them.

# %%
n = 500 if SHORT else 2000
images, labels = data.test_x[:n], data.test_y[:n]
with torch.no_grad():
    mu, _ = model.encode(images.float() / 127.5 - 1)  # (n, D)
_, _, V = torch.pca_lowrank(mu, q=2)  # centres mu, returns the principal directions
points = (mu - mu.mean(0)) @ V  # (n, 2)
plt.figure(figsize=(5, 4))
scatter = plt.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=5)
plt.colorbar(scatter, ticks=range(10), label="digit")
plt.title("posterior means of test digits, first two principal components", fontsize=9)
plt.show()

# %% [markdown]
# ## 10. Interpolation
#
# Walk in a straight line from one digit's code to another's and decode every stop. Because the
# KL term packs the codes together around the prior, the stops in between decode to strokes
# that bend from one digit into the other (where the line crosses a region few digits map to,
# they are vaguer: the same effect as in the samples). Fading the *pixels* from one image to the
# other (bottom row) only superimposes two digits.

# %%
a, b = int((data.test_y == 2).nonzero()[0]), int((data.test_y == 7).nonzero()[0])
ends = data.test_x[[a, b]].float() / 127.5 - 1  # (2, 1, 28, 28)
t = torch.linspace(0, 1, 10).view(-1, 1)
with torch.no_grad():
    mu, _ = model.encode(ends)  # (2, D)
    path = model.decode((1 - t) * mu[0] + t * mu[1])  # (10, 1, 28, 28)
fade = (1 - t.view(-1, 1, 1, 1)) * ends[0] + t.view(-1, 1, 1, 1) * ends[1]
fig, axes = plt.subplots(2, 1, figsize=(7, 2))
show_images(path, nrow=10, title="decoded z = (1 - t) mu_a + t mu_b", ax=axes[0])
show_images(fade, nrow=10, title="pixels (1 - t) x_a + t x_b", ax=axes[1])
plt.show()

# %% [markdown]
# ## What to try next
#
# - Set `beta` above 1 in `configs/vae_mnist.toml` (a beta-VAE): the KL shrinks, reconstructions
#   blur, and the latent space becomes smoother.
# - Train with `latent_dim = 2` and plot the codes directly, without PCA.
# - Switch `decoder` to `"categorical"` or `"bernoulli"` and compare bits per dimension (the
#   Bernoulli number is of *binarised* digits, so it is not comparable with the other two).
# - `genzoo train configs/vae_mnist.toml` trains the full-length run from the command line.
#
# ## Exercises
#
# Three exercises on the VAE's three equations. Each is a function you write; `check(...)` runs it
# on inputs it makes and prints "right" or what is wrong. Replace `raise NotImplementedError` with
# your code and run the cell. Worked solutions are in `notebooks/solutions/vae.py`.
#
# **1. The KL of two diagonal Gaussians.** Section 3 used the KL to the prior $\mathcal N(0, I)$. A
# learned prior needs the general one: derive
# $\mathrm{KL}\big(\mathcal N(\mu_q, \operatorname{diag}\sigma_q^2)\,\|\,\mathcal N(\mu_p, \operatorname{diag}\sigma_p^2)\big)$
# (one dimension at a time: $\mathbb E_q[\log q(z) - \log p(z)]$, with
# $\mathbb E_q[(z - m)^2] = \sigma_q^2 + (\mu_q - m)^2$) and write it for means and log-variances of
# shape (B, D), one KL per row, shape (B,). The check compares it with `kl_to_standard_normal`
# where $p = \mathcal N(0, I)$, and with a Monte-Carlo estimate of $\mathbb E_q[\log q - \log p]$
# (as in section 6) for a general $p$.

# %%
def my_kl(mu_q, log_var_q, mu_p, log_var_p):
    raise NotImplementedError  # your code here


check("vae.kl_two_gaussians", my_kl)

# %% [markdown]
# **2. The reparameterized sample.** Given `mu` and `log_var` (of the same, any, shape), return
# $z \sim \mathcal N(\mu, \sigma^2)$ with $\sigma^2$ = `exp(log_var)`, one independent draw per
# element, such that gradients reach both `mu` and `log_var`. The check draws 100,000 rows,
# compares their mean and variance with $\mu$ and $\sigma^2$, and takes the gradient of the
# average of $z^2$, which must be $2\mu$ with respect to `mu` and $\sigma^2$ with respect to
# `log_var` (section 4's check, now through the log-variance).

# %%
def my_reparameterize(mu, log_var):
    raise NotImplementedError  # your code here


check("vae.reparameterize", my_reparameterize)

# %% [markdown]
# **3. The importance-weighted bound.** Given log weights
# $\log w_i = \log p(x|z_i) + \log p(z_i) - \log q(z_i|x)$ of shape (B, k), return
# $\mathcal L_k = \log \frac1k \sum_i w_i$ for each image, shape (B,). A trained VAE's log
# weights are near $-700$ nats (section 7's bits per dimension times $784 \ln 2$), an untrained
# one's far lower: what does `exp` give at that size? The check compares your bound with the
# definition on small weights, and with `VAE.log_prob` on a small VAE's own log weights.

# %%
def my_iw_bound(log_w):
    raise NotImplementedError  # your code here


check("vae.iw_bound", my_iw_bound)
