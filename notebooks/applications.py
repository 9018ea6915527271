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

from genzoo.anomaly import anomaly_run, complexity_corrected
from genzoo.checkpoint import load_model
from genzoo.config import DataConfig
from genzoo.evaluator import load_evaluator
from genzoo.inpaint import fill_images, hide, inpainting_figure, make_mask, score_fills
from genzoo.model import GenerativeModel
from genzoo.models.ddpm import DDPM
from genzoo.models.ebm import EBM
from genzoo.models.gan import GAN
from genzoo.notebook import show_source, start
from genzoo.pixels import from_uint8
from genzoo.sources import load_data
from genzoo.synthetic import classification_accuracy_score, real_baselines

SHORT, ROOT = start()
sys.path.insert(0, str(ROOT / "bench"))
from applications import ANOMALY, INPAINT, RUNS, train_runs  # noqa: E402  (the benchmark's tables)

RUN_DIR = ROOT / "runs" / ("applications-short" if SHORT else "applications")
if SHORT:  # a few steps of every run, into a folder of its own
    train_runs(RUN_DIR, list(RUNS), None, ["train.max_steps=4", "train.eval_every=4", "train.eval_batches=1",
                                           "train.n_samples=4", "data.batch_size=16", "train.warmup_steps=2"])
missing = [name for name in RUNS if not (RUN_DIR / name / "last.pt").is_file()]
assert not missing, f"train the runs first: python bench/applications.py --train-only (missing: {missing})"
N = 100 if SHORT else 500  # examples of each set per AUROC here; the benchmark uses 1,000
print(f"runs from {RUN_DIR.relative_to(ROOT)}; {N} examples per set")

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
# (The DDPM's numbers above 8 bits/dim, worse than a uniform guess over the 256 levels, are those of a
# barely trained model, 300 and 500 steps of the default 4,000, with its bound estimated from 10
# timesteps per image: read its rows as such.)
#
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
show_source(complexity_corrected)
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

# %% [markdown]
# ## 4. Inpainting: fill the missing half of a digit
#
# Each family fills the unknown pixels the way it naturally can (`genzoo/inpaint.py`):
#
# - the **DDPM** runs the reverse diffusion and, at every step, puts back the known pixels noised to
#   the current level, with jumps back up the chain so the two regions agree (RePaint, Lugmayr et
#   al. 2022);
# - the **EBM** runs Langevin dynamics on the unknown pixels only, the known ones held fixed, which
#   samples $p(x_\text{unknown} \mid x_\text{known}) \propto e^{-E(x)}$ with no normalizer needed;
# - the **VAE**, the **GAN** and the **flow** find the latent $z$ that best explains the known pixels
#   under the prior, decode it, and paste the known pixels back.
#
# The step of each iterative method, printed from the files:

# %%
show_source(DDPM.repaint_step)
show_source(EBM.masked_langevin_step)

# %% [markdown]
# The same test digits (the classes in turn) lose their bottom half. The shipped evaluator reads each
# filled digit: **agreement** is how often it gives the original's label. Beside every family stand
# three fills that need no model: the masked input itself (the bottom left black), the training
# digits' mean image pasted in, and the original (the ceiling).

# %%
mnist = load_data(DataConfig(name="mnist"))
evaluator = load_evaluator("mnist")
n_fill = 20 if SHORT else 100
images, labels = mnist.test_examples_of_every_class(n_fill)
known = make_mask("bottom", n_fill, 28, 28)
mean_image = from_uint8(mnist.train_x).mean(0, keepdim=True)
fills, filled = {}, {}
for family, (run, options, _) in INPAINT.items():
    count = n_fill // 4 if family == "ddpm" else n_fill  # RePaint: 97 U-Net passes per digit
    model = load_model(RUN_DIR / run)[0]
    fill, seconds = fill_images(model, hide(images[:count], known[:count]), known[:count],
                                generator=torch.Generator().manual_seed(0), **options)
    filled[family] = score_fills(fill, images[:count], labels[:count], known[:count], evaluator, mean_image)
    filled[family]["ms_per_image"] = 1000 * seconds / count
    fills[family] = fill
print(f"{'fill':14s} {'agreement':>9s} {'missing MSE':>12s} {'ms/digit':>9s} digits")
for family, report in filled.items():
    print(f"{family:14s} {report['agreement']:9.3f} {report['missing_mse']:12.4f} {report['ms_per_image']:9.1f} "
          f"{report['images']}")
for name, reference in filled["vae"]["references"].items():
    print(f"{name:14s} {reference['agreement']:9.3f} {reference['missing_mse']:12.4f}")
assert all(report["known_kept_exactly"] for report in filled.values())  # every family keeps the known half

# %%
figure = inpainting_figure(images, known, fills, RUN_DIR / "inpainting_bottom.png", n=min(10, n_fill // 4))
plt.figure(figsize=(8, 4))
plt.imshow(plt.imread(figure))
plt.axis("off")
plt.show()

# %% [markdown]
# *The first digits with their bottom half hidden (top row, the hole grey), each family's fill, and
# the originals (bottom row). Agreement and error are the ones printed above.*
#
# ## 5. Synthetic training data
#
# A class-conditional model can be asked for digits of each class. Train a small classifier on those
# samples alone and test it on the real test set: that is the **classification accuracy score**
# (Ravuri & Vinyals 2019). If the samples carry what makes a 3 a 3, in all the ways real 3s vary,
# it does about as well as the same classifier trained on the 5,000 real digits.

# %%
train, test = (mnist.train_x, mnist.train_y), (mnist.test_x, mnist.test_y)
if SHORT:  # a quick look: fewer real and test digits
    train, test = (mnist.train_x[:1000], mnist.train_y[:1000]), (mnist.test_x[:1000], mnist.test_y[:1000])
started = time.perf_counter()
baselines = real_baselines(train, test)
gan, gan_cfg, _ = load_model(RUN_DIR / "gan_mnist")
score = classification_accuracy_score(gan, train, test, n=1_000 if SHORT else 10_000, baselines=baselines,
                                      generator=torch.Generator().manual_seed(0), **gan_cfg.sample)
print(f"{time.perf_counter() - started:.0f} s")
print(f"trained on {len(train[1]):,} real digits:       {score['real']:.3f} test accuracy")
print(f"trained on {score['samples']:,} GAN digits only:  {score['cas']:.3f} ({score['ratio']:.1%} of the real-data accuracy)")
print(f"{score['augment_real']} real digits alone:           {score['real_subset']:.3f}")
print(f"{score['augment_real']} real + {score['samples']:,} GAN digits:     {score['real_subset_plus_synthetic']:.3f}")

# %% [markdown]
# ## 6. Every family, every use
#
# `python bench/applications.py` measures all of the above with more examples per number (1,000 per
# set for most AUROCs, 200 digits per inpainting mask, 10,000 synthetic digits; the DDPM's fewer) and writes
# `bench/results/applications.json`; `docs/applications.md` reads it. Here is its table, as recorded:

# %%
record_path = ROOT / "bench" / "results" / "applications.json"
record = json.loads(record_path.read_text())
print(f"measured {record['date']} on {record['machine']}")
print(f"{'family':6s} {'AUROC M->F':>10s} {'F->M raw':>9s} {'F->M corr':>10s} {'fill agree':>10s} {'CAS/real':>9s}")
for family in ("vae", "flow", "ddpm", "ebm", "gan"):
    anomaly = record["anomaly"][family]
    fashion = anomaly["fashion_mnist_vs_mnist"]
    corrected = f"{fashion['corrected_auroc']:.3f}" if "corrected_auroc" in fashion else "-"
    synthetic = record["synthetic"].get(family)
    ratio = f"{synthetic['ratio']:.3f}" if synthetic else "-"
    print(f"{family:6s} {anomaly['mnist_vs_fashion_mnist']['auroc']:10.3f} {fashion['auroc']:9.3f} {corrected:>10s} "
          f"{record['inpainting'][family]['bottom']['agreement']:10.3f} {ratio:>9s}")
