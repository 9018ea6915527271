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
# # What the families are used for: anomaly detection, inpainting, synthetic training data
#
# The guides that describe generative models describe each family by its uses: energy-based
# models and VAEs for spotting unusual inputs, diffusion for filling in missing parts of an
# image, GANs for making training data, flows for exact likelihoods. This notebook measures
# those uses with the models of the other notebooks, on the same data, and shows the known
# surprises rather than hiding them.
#
# **Running it.** Full mode reuses the runs that `python bench/applications.py --train-only`
# trains into `runs/applications/` (about an hour and a half on 2 CPU cores; every run is small:
# a few hundred to 1,500 steps, see `RUNS` in `bench/applications.py`). It says so in one line
# when they are missing. With `GENZOO_SHORT=1` (what CI sets) it trains every run for a few
# steps itself, and every number is that of a barely trained model. The full table, with more
# examples per number, is made by `python bench/applications.py` and shown in section 5.

# %%
import json
import sys
import time

import matplotlib.pyplot as plt
import torch

from genzoo.anomaly import anomaly_run, python_source, text_windows
from genzoo.model import GenerativeModel
from genzoo.models.ebm import EBM
from genzoo.models.gan import GAN
from genzoo.notebook import show_source, start

SHORT, ROOT = start()
sys.path.insert(0, str(ROOT / "bench"))
from applications import ANOMALY, RUNS, train_runs  # noqa: E402  (the benchmark's run table)

RUN_DIR = ROOT / "runs" / ("applications-short" if SHORT else "applications")
if SHORT:  # a few steps of every run, into a folder of its own
    train_runs(RUN_DIR, list(RUNS), None, ["train.max_steps=4", "train.eval_every=4", "train.eval_batches=1",
                                           "train.n_samples=4", "data.batch_size=16", "train.warmup_steps=2"])
missing = [name for name in RUNS if not (RUN_DIR / name / "last.pt").is_file()]
assert not missing, f"train the runs first: python bench/applications.py --train-only (missing: {missing})"
N = 100 if SHORT else 500  # examples of each set per AUROC here; the benchmark uses 1,000
print(f"runs from {RUN_DIR}; {N} examples per set")

# %% [markdown]
# ## 1. Anomaly detection: a score, and how well it separates
#
# Every family has an `anomaly_score(x)`, higher for more unusual inputs. Where a family has a
# likelihood, the score is $-\log p(x)$ in nats (the flow's exact value on the 8-bit image, the
# VAE's and the DDPM's bounds). The EBM and the GAN have no likelihood, so each scores with what it
# does have:

# %%
show_source(GenerativeModel.anomaly_score)
show_source(EBM.anomaly_score)
show_source(GAN.anomaly_score)

# %% [markdown]
# A score separates inliers (held-out digits) from outliers (FashionMNIST clothes) as well as its
# **AUROC** says: the probability that a random outlier scores higher than a random inlier. 0.5 is
# chance; 1.0 is perfect; below 0.5 the score ranks the outliers as the *more usual* inputs.
#
# Beside every family stands the simplest likelihood model of the same training images: every pixel
# independent, with its own histogram over the 256 levels (`genzoo.baselines`).

# %%
results = {}
started = time.perf_counter()
for family, (on_mnist, on_fashion, options, _) in ANOMALY.items():
    n = N // 2 if family == "ddpm" else N  # the DDPM's bound costs 11 U-Net passes per image
    results[family] = {
        "mnist": anomaly_run(RUN_DIR / on_mnist, "fashion_mnist", n=n, **options),
        "fashion": anomaly_run(RUN_DIR / on_fashion, "mnist", n=n, **options),
    }
print(f"{time.perf_counter() - started:.0f} s")
print(f"{'family':6s} {'trained on MNIST':>17s} {'trained on Fashion':>19s}   (AUROC of the raw score)")
for family, both in results.items():
    print(f"{family:6s} {both['mnist']['auroc']:17.3f} {both['fashion']['auroc']:19.3f}")
baseline = results["flow"]
print(f"{'pixels':6s} {baseline['mnist']['baseline']['auroc']:17.3f} {baseline['fashion']['baseline']['auroc']:19.3f}"
      "   (independent pixels, the simplest model)")

# %% [markdown]
# ## 2. The surprise: trained on clothes, the likelihood prefers digits
#
# Nalisnick et al. (2019) found that a model trained on FashionMNIST gives MNIST digits a *higher*
# likelihood than FashionMNIST's own test images. Read the bits per dimension (lower = likelier)
# of each set under each model trained on FashionMNIST:

# %%
for family in ("flow", "vae", "ddpm"):
    bpd = results[family]["fashion"]["bits_per_dim"]
    verdict = "digits likelier" if bpd["out"] < bpd["in"] else "clothes likelier"
    print(f"{family:5s} FashionMNIST test {bpd['in']:.3f} bits/dim, MNIST {bpd['out']:.3f} bits/dim: {verdict}")

# %% [markdown]
# Where the digits are likelier, $-\log p(x)$ calls the outliers the most usual inputs and its AUROC
# falls below 0.5. The likelihood mostly measures how much there is to encode, and a digit is a few
# strokes on flat black. Serrà et al. (2020) divide that out: a general-purpose lossless compressor
# (here PNG) gives every image a code length $L(x)$ in bits, a likelihood under a model of *all*
# images, and the score becomes the log-ratio
#
# $$S(x) = -\log_2 p(x) - L(x),$$
#
# how much better than a generic image coder the trained model explains $x$.

# %%
show_source(sys.modules["genzoo.anomaly"].complexity_corrected)
print(f"{'family':6s} {'raw':>6s} {'corrected':>10s}   trained on FashionMNIST, MNIST as outliers")
for family in ("flow", "vae", "ddpm"):
    fashion = results[family]["fashion"]
    print(f"{family:6s} {fashion['auroc']:6.3f} {fashion['corrected_auroc']:10.3f}")
fashion = results["flow"]["fashion"]
print(f"{'pixels':6s} {fashion['baseline']['auroc']:6.3f} {fashion['baseline']['corrected_auroc']:10.3f}"
      f"   PNG's code length alone: {fashion['png_bits_auroc']:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
scores = results["flow"]["fashion"]["scores"]
for ax, (key_in, key_out, title, area) in zip(axes, [
    ("in", "out", "flow: -log p(x), nats", results["flow"]["fashion"]["auroc"]),
    ("corrected_in", "corrected_out", "flow: -log2 p(x) - PNG bits", results["flow"]["fashion"]["corrected_auroc"]),
]):
    both = torch.cat([scores[key_in], scores[key_out]])
    bins = torch.linspace(float(both.min()), float(both.max()), 40).tolist()
    ax.hist(scores[key_in].numpy(), bins=bins, alpha=0.6, label="FashionMNIST (inliers)", density=True)
    ax.hist(scores[key_out].numpy(), bins=bins, alpha=0.6, label="MNIST (outliers)", density=True)
    ax.set_title(f"{title}: AUROC {area:.3f}", fontsize=9)
    ax.set_yticks([])
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# *The flow trained on FashionMNIST: left, the raw score, where the digits (outliers) sit at the
# usual end; right, the corrected score, where they move to the unusual end. The AUROCs in the
# titles are the ones printed above.*
#
# ## 3. Text: Shakespeare against Python
#
# The character-level LM scores a window of text by its mean negative log-likelihood per character.
# Python source from this machine's standard library is the outlier set; characters the model has
# never seen (`=`, `#`, `+`, ...) are removed first, or every window would be flagged for a trivial
# reason. The bigram table of the same training text is the baseline.

# %%
text = anomaly_run(RUN_DIR / "lm_shakespeare", "python", n=N)
print(f"removed {text['removed_characters']:.1%} of the Python characters (outside the vocabulary)")
print(f"nats per character: Shakespeare {text['nats_per_char']['in']:.3f}, Python {text['nats_per_char']['out']:.3f}")
print(f"AUROC {text['auroc']:.3f} (bigram table: {text['baseline']['auroc']:.3f}) on {text['n_in']} + {text['n_out']} "
      f"windows of {text['window']} characters")
