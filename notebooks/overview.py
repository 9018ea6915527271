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
# # Which family, when? Six generative models measured on the same data
#
# Guides to generative models usually describe each family by a sentence: *diffusion gives the
# most faithful samples but is slow; GANs are sharp but unstable; VAEs have a smooth latent space but
# blurry images; flows give exact likelihoods; energy-based models spot unusual inputs; transformers
# model sequences and follow prompts.* This notebook tests each sentence against numbers measured on
# the same data with the same evaluator, and ends with a table for choosing.
#
# It uses two sets of numbers:
#
# 1. **The recorded comparison**: the table in the README, made by `genzoo compare` on 2026-11-23
#    (each family's default config, trained 5 to 19 minutes on 2 CPU cores; the commands that made
#    every run are in `docs/benchmarks.md`, "The comparison table"). It is read from
#    `docs/compare_mnist.json`, a copy of that table.
# 2. **Trained models, measured here**: the models the six family notebooks trained in their full
#    runs (`python notebooks/run.py --execute vae lm ddpm gan flow ebm`, which write
#    `runs/notebook-<family>/`; smaller budgets than the table's, printed below), measured for what the
#    table does not show: sharpness, latent walks, exact inversion, unusual inputs, prompts. A family
#    whose run is missing is trained here for 1.5 minutes instead, and the output says so.
#
# Then the notebooks of each family explain *why*; read them in the order of the README's reading path.
#
# **Running it.** Run the six family notebooks first (their trained models are reused here). The
# committed run then took 14 minutes (864 s) on a 2-core CPU (one torch thread, with other jobs on the machine). With `GENZOO_SHORT=1` (what CI sets) every loop shrinks and the
# numbers come from barely trained models, so the verdicts may change: read the committed run.

# %%
import json
import math
import shutil
import textwrap
import time

import matplotlib.pyplot as plt
import torch

from genzoo.baselines import bigram_nats_per_char, independent_pixels_bits_per_dim
from genzoo.checkpoint import build_model, load_model
from genzoo.config import DataConfig, load_config
from genzoo.errors import DataError
from genzoo.evaluator import load_evaluator
from genzoo.exercises import check
from genzoo.metrics import auroc, image_metrics, reference_points, ring8_quality
from genzoo.models.ebm import energy_scores
from genzoo.notebook import show_images, start
from genzoo.pixels import from_uint8
from genzoo.report import draw_images, training_cost
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()

# %% [markdown]
# ## 1. The recorded comparison
#
# The same data for every image family (the 5,000 MNIST training digits genzoo ships or finds, the
# full 10,000-digit test set) and the same evaluator: a small MNIST classifier genzoo ships, whose
# penultimate features give **FID-MNIST** (lower is better; not comparable with published Inception
# FIDs), **precision** (do samples look like real digits?), **recall** (do they cover the real
# digits?), **recognizable** (share the classifier calls one digit with probability ≥ 0.9) and
# **coverage** (how evenly the ten digits appear). The first row below the families is real training
# digits scored the same way: the best a model can reach. Likelihoods are in bits per dimension of the
# 8-bit test digits; every one here is an upper bound (lower is better).

# %%
recorded = json.loads((ROOT / "docs" / "compare_mnist.json").read_text())
rows, lm_row = recorded["rows"], recorded["text_rows"]["lm"]
header = f"{'':26s} {'FID':>8s} {'prec':>6s} {'recall':>6s} {'recog':>6s} {'cover':>6s} {'bits/dim':>8s} " \
         f"{'ms/image':>9s} {'params':>7s}  training"
print(header)
for name, r in rows.items():
    bits = "–" if r["bits_per_dim"] is None else f"{r['bits_per_dim']:.3f}"
    speed = f"{r['ms_per_image']:.2f}" if "ms_per_image" in r else ""
    print(f"{name:26s} {r['fid']:8.2f} {r['precision']:6.3f} {r['recall']:6.3f} {r['recognizable']:6.3f} "
          f"{r['coverage']:6.3f} {bits:>8s} {speed:>9s} {r.get('parameters', ''):>7s}  {r['training']}")
print(f"\nlm (text): {lm_row['bits_per_char']:.3f} bits/char on held-out Shakespeare ({lm_row['likelihood']}), "
      f"{lm_row['seconds_per_1000_chars']:.2f} s per 1,000 characters, {lm_row['parameters']}, {lm_row['training']}")
print("\ncontrol:")
for name, r in [*((n, r) for n, r in rows.items() if "latent" in r), ("lm", lm_row)]:
    print(f"  {name:5s} conditional: {'yes' if r['conditional'] else 'no ':3s}  latent: {r['latent']}")

# %% [markdown]
# The same table's samples, one grid per family (the LM's panel is the start of its text sample),
# and FID-MNIST against training time:

# %%
figure = plt.imread(ROOT / "docs" / "compare.png")
plt.figure(figsize=(15, 5.8))
plt.imshow(figure)
plt.axis("off")
plt.show()

# %% [markdown]
# ## 2. The trained models, measured here
#
# Each family's model as its notebook trained it (the config and steps are printed: the notebooks'
# budgets are smaller than the table's, and not equal), then 500 samples per image family scored
# exactly as in the table, with the real-digit floor at 500 samples too: FID depends on the number of
# samples, so these numbers compare with each other, not with the table's 5,000-sample ones.
# Sampling times are measured here, on this machine, as it runs. The simplest model of the same data
# comes first: every pixel independent, with its own histogram of grey levels (`genzoo/baselines.py`).

# %%
data = load_data(load_config(ROOT / "configs" / "vae_mnist.toml").data)
real = from_uint8(data.test_x)
evaluator = load_evaluator("mnist")
n_eval = 32 if SHORT else 500
floor = reference_points(from_uint8(data.train_x), real, evaluator, n_eval)["real train images"]
pixel_bits = independent_pixels_bits_per_dim(data.train_x, data.test_x)
print(f"{data.source}")
print(f"independent-pixel baseline: {pixel_bits:.3f} bits/dim on {len(data.test_x):,} test digits (exact)")
print(f"real training digits, {n_eval} of them: FID-MNIST {floor['fid']:.1f}, precision {floor['precision']:.3f}, "
      f"recall {floor['recall']:.3f}, recognizable {floor['recognizability']:.3f}, coverage {floor['coverage']:.3f}")

# %%
CONFIGS = {"vae": "vae_mnist", "ddpm": "ddpm_mnist", "gan": "gan_mnist", "flow": "flow_mnist",
           "ebm": "ebm_mnist", "lm": "lm_shakespeare"}
BUDGET_MINUTES = 1.5  # for a family whose notebook run is missing: optimizer time, on the default config
# the trainer's sample grid at the end of each run, kept cheap (what we measure is drawn below)
END_GRID = {"lm": ["sample.max_new_tokens=100"], **({"ddpm": ["sample.steps=5"], "ebm": ["sample.mcmc_steps=5"]} if SHORT else {})}


def train_here(family):
    """The default config for a small budget (short mode: 5 steps); returns (sampling model, config)."""
    out = ROOT / "runs" / f"notebook-overview-{family}{'-short' if SHORT else ''}"
    shutil.rmtree(out, ignore_errors=True)
    budget = ["train.max_steps=5", "train.max_minutes=0", "data.batch_size=16"] if SHORT else [
        f"train.max_minutes={BUDGET_MINUTES}"]
    cfg = load_config(ROOT / "configs" / f"{CONFIGS[family]}.toml", [
        *budget, "train.eval_every=1000000", "train.sample_every=1000000", "train.checkpoint_every=1000000",
        "train.eval_batches=2", "train.n_samples=16", *END_GRID.get(family, [])])
    family_data = data if family != "lm" else load_data(cfg.data)
    torch.manual_seed(0)
    run = Trainer(build_model(cfg, family_data.spec), family_data, cfg, out).fit()
    return run.sampling_model.eval(), cfg, out


models, live = {}, {}
for family in CONFIGS:
    notebook_run = ROOT / "runs" / f"notebook-{family}"  # written by the family's notebook in full mode
    if not SHORT and (notebook_run / "last.pt").is_file():
        model, cfg, _ = load_model(notebook_run)  # EMA weights where the run kept them
        run_dir, source = notebook_run, f"notebooks/{family}.ipynb's run"
    else:
        model, cfg, run_dir = train_here(family)
        source = "trained here" + ("" if SHORT else f", {BUDGET_MINUTES} min (no notebook run found)")
    models[family] = model.eval()
    options = dict(cfg.sample)
    if SHORT:  # fewer network passes per sample, so CI's run stays short
        options.update({"steps": 5} if family == "ddpm" else {"mcmc_steps": 5} if family == "ebm" else {})
    cost = training_cost(run_dir, model)
    live[family] = {"steps": cost["train_steps"], "train_s": cost["train_seconds"], "source": source,
                    "parameters": cost["parameters"], "options": options, "cfg": cfg}
for family, r in live.items():
    print(f"{family:5s} {r['cfg'].data.name:12s} {r['steps']:5,d} steps, {r['train_s'] / 60:4.1f} min of training, "
          f"{r['parameters'] / 1e6:.2f} M parameters ({r['source']})")

# %%
samples = {}
for family, model in models.items():
    if family == "lm":
        continue
    samples[family], seconds = draw_images(model, n_eval, live[family]["options"], torch.Generator().manual_seed(0))
    live[family]["ms_per_image"] = 1000 * seconds / n_eval
    live[family].update(image_metrics(samples[family], real, evaluator))
text_data = load_data(live["lm"]["cfg"].data)
lm = models["lm"]
started = time.perf_counter()
chars = 100 if SHORT else 1000
lm_ids = lm.sample(1, generator=torch.Generator().manual_seed(0), prompt="\n", max_new_tokens=chars, temperature=0.8)
live["lm"]["s_per_1000_chars"] = (time.perf_counter() - started) * 1000 / chars
print(f"{'':5s} {'FID':>7s} {'prec':>6s} {'recall':>6s} {'recog':>6s} {'cover':>6s} {'ms/image':>9s}")
print(f"{'real':5s} {floor['fid']:7.1f} {floor['precision']:6.3f} {floor['recall']:6.3f} "
      f"{floor['recognizability']:6.3f} {floor['coverage']:6.3f}")
for family, r in live.items():
    if family != "lm":
        print(f"{family:5s} {r['fid']:7.1f} {r['precision']:6.3f} {r['recall']:6.3f} {r['recognizability']:6.3f} "
              f"{r['coverage']:6.3f} {r['ms_per_image']:9.2f}")
print(f"lm: {live['lm']['s_per_1000_chars']:.2f} s per 1,000 characters")

# %%
fig, axes = plt.subplots(1, 6, figsize=(16, 3.4))
for ax, family in zip(axes, samples):
    show_images(samples[family][:36], nrow=6, ax=ax,
                title=f"{family}, {live[family]['steps']} steps\nFID {live[family]['fid']:.0f}")
text = text_data.spec.decode(lm_ids[0])[1:400]
lines = [wrapped for line in text.splitlines() for wrapped in textwrap.wrap(line, 34) or [""]][:16]
axes[5].text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=6.5, clip_on=True)
axes[5].set_title(f"lm, {live['lm']['steps']} steps", fontsize=9)
axes[5].axis("off")
plt.show()

# %% [markdown]
# ## 3. The common claims, tested
#
# Each claim is split into the parts it asserts; each part is checked against a number printed
# beside it. The verdict: **holds** when every part does, **holds with a qualification** when some
# do, **does not hold here** when none does. "Here" matters: one data set (MNIST digits, or
# Shakespeare for text), small models, CPU budgets.

# %%
verdicts = []


def judge(claim, parts):
    """parts: (statement, true?, the number behind it). Prints each, records the verdict."""
    held = [ok for _, ok, _ in parts]
    verdict = "holds" if all(held) else "does not hold here" if not any(held) else "holds with a qualification"
    print(f"{claim}\n  verdict: {verdict}")
    for statement, ok, evidence in parts:
        print(f"  [{'yes' if ok else 'no '}] {statement}: {evidence}")
    verdicts.append((claim, verdict, [s for s, ok, _ in parts if not ok]))


image_families = [f for f in rows if f in CONFIGS]
assert image_families == ["vae", "ddpm", "gan", "flow", "ebm"], image_families
best = lambda key, better=max: better(image_families, key=lambda f: rows[f][key])  # noqa: E731

# %% [markdown]
# ### Diffusion gives the most faithful samples, but samples slowly
#
# Faithful: the highest precision and recognizability, and the lowest FID-MNIST, of the five image
# families in the recorded table. Slow: the most milliseconds per image.

# %%
judge("diffusion: most faithful samples, but slow sampling", [
    ("highest precision (recorded)", best("precision") == "ddpm",
     ", ".join(f"{f} {rows[f]['precision']:.3f}" for f in image_families)),
    ("highest recognizability (recorded)", best("recognizable") == "ddpm",
     ", ".join(f"{f} {rows[f]['recognizable']:.3f}" for f in image_families)),
    ("lowest FID-MNIST (recorded)", best("fid", min) == "ddpm",
     ", ".join(f"{f} {rows[f]['fid']:.1f}" for f in image_families)),
    ("slowest sampling per image (recorded)", best("ms_per_image") == "ddpm",
     ", ".join(f"{f} {rows[f]['ms_per_image']:.2f} ms" for f in image_families)),
    ("slowest sampling per image (here)", max(samples, key=lambda f: live[f]["ms_per_image"]) == "ddpm",
     ", ".join(f"{f} {live[f]['ms_per_image']:.2f} ms" for f in samples)),
])

# %% [markdown]
# ### GANs give sharp samples, but are unstable and collapse modes
#
# *Sharp* is measured on the pixels: of the pixels with any ink (grey level above 25), the share that
# is neither near-black nor near-white (levels 26 to 229). Real digits have crisp strokes with a thin
# grey edge; a blurry sample has a wide grey halo, so its share is higher. *Collapse* is measured
# twice: class coverage of the MNIST samples, and the ring of 8 Gaussians with the two ring configs
# of the GAN notebook (`gan_ring_collapse`: G learns ten times faster than D, no regularizer;
# `gan_ring`: the fixes), scored by VEEGAN's modes covered out of 8.

# %%
def grey_share(images):
    levels = ((images.clamp(-1, 1) + 1) * 127.5).round()
    ink = levels > 25
    return ((levels <= 229) & ink).sum().item() / max(1, ink.sum().item())


real_grey = grey_share(real[:n_eval])
grey = {f: grey_share(x) for f, x in samples.items()}
print(f"grey share of inked pixels: real test digits {real_grey:.3f}; "
      + ", ".join(f"{f} {g:.3f}" for f, g in grey.items()))

ring = load_data(DataConfig(name="ring8"))
ring_modes = {}
for name in ("gan_ring_collapse", "gan_ring"):
    cfg = load_config(ROOT / "configs" / f"{name}.toml", ["train.max_steps=60"] if SHORT else [])
    torch.manual_seed(0)
    gan = build_model(cfg, ring.spec)
    out = ROOT / "runs" / f"notebook-overview-{name}{'-short' if SHORT else ''}"
    shutil.rmtree(out, ignore_errors=True)
    cfg.train.ema_decay = 0.0  # G itself: an average of a G hopping around the ring hides the hopping
    run = Trainer(gan, ring, cfg, out).fit()
    ring_modes[name] = ring8_quality(gan.eval().sample(1000, generator=torch.Generator().manual_seed(0)))
    print(f"{name}: {ring_modes[name]['modes']:.0f} of 8 modes, high-quality share "
          f"{ring_modes[name]['high_quality']:.2f} after {run.step} steps")

# %%
judge("GANs: sharp samples, but unstable and prone to mode collapse", [
    ("the sharpest samples here (grey share closest to the real digits')",
     min(grey, key=lambda f: abs(grey[f] - real_grey)) == "gan",
     f"real {real_grey:.3f}; " + ", ".join(f"{f} {g:.3f}" for f, g in grey.items())),
    ("collapse on the ring with the collapse config (at most 4 of 8 modes)",
     ring_modes["gan_ring_collapse"]["modes"] <= 4, f"{ring_modes['gan_ring_collapse']['modes']:.0f} of 8"),
    ("settings decide it: the fixed ring config covers all 8 modes",
     ring_modes["gan_ring"]["modes"] == 8, f"{ring_modes['gan_ring']['modes']:.0f} of 8"),
    ("the default MNIST GAN drops digits (class coverage below 0.95, recorded)",
     rows["gan"]["coverage"] < 0.95, f"coverage {rows['gan']['coverage']:.3f}, recall {rows['gan']['recall']:.3f} "
     f"(highest of the families: {best('recall') == 'gan'})"),
])

# %% [markdown]
# ### VAEs give a smooth latent space, but softer images
#
# *Smooth* is measured on interpolations between 20 pairs of test digits of different classes:
# encode both, walk 10 points along the straight line between the codes, decode each. A smooth
# latent space changes the image evenly along the walk (the largest of the 9 steps, as a share of
# the whole path in pixel distance: 1/9 = 0.111 is perfectly even, 1.0 one jump) and every frame
# on the way looks like a digit (the evaluator's recognizability of the 8 inner frames). The flow,
# the other family with an encoder, walks its latent the same way; fading the pixels is the baseline
# with no model (perfectly even, but its inner frames are two digits overlaid). *Softer*: the grey
# share above.

# %%
def walk_scores(frames):
    """frames: (pairs, 10, C, H, W). The largest step's share of the path, and inner-frame recognizability."""
    steps = (frames[:, 1:] - frames[:, :-1]).flatten(2).norm(dim=2)  # (pairs, 9)
    largest = (steps.max(dim=1).values / steps.sum(dim=1)).mean().item()
    _, probs = evaluator.embed(frames[:, 1:-1].flatten(0, 1))
    return largest, (probs.max(dim=1).values >= 0.9).float().mean().item()


pairs = 4 if SHORT else 20
a = torch.arange(pairs) * 37
b = torch.tensor([int(((data.test_y != data.test_y[i]).nonzero()[j * 11 % 100])) for j, i in enumerate(a.tolist())])
ends_a, ends_b = real[a], real[b]
t = torch.linspace(0, 1, 10).view(1, 10, 1)
with torch.no_grad():
    mu_a, mu_b = models["vae"].encode(ends_a)[0], models["vae"].encode(ends_b)[0]
    vae_walk = models["vae"].decode(((1 - t) * mu_a[:, None] + t * mu_b[:, None]).flatten(0, 1)).view(pairs, 10, 1, 28, 28)
    z_a, z_b = models["flow"].encode(ends_a), models["flow"].encode(ends_b)
    tt = t.view(1, 10, 1, 1, 1)
    flow_walk = models["flow"].decode(((1 - tt) * z_a[:, None] + tt * z_b[:, None]).flatten(0, 1)).view(pairs, 10, 1, 28, 28)
fade = (1 - tt) * ends_a[:, None] + tt * ends_b[:, None]
walks = {"vae latent": vae_walk, "flow latent": flow_walk, "pixel fade": fade}
smooth = {name: walk_scores(w) for name, w in walks.items()}
for name, (largest, recog) in smooth.items():
    print(f"{name:12s} largest step {largest:.3f} of the path (even: 0.111), inner frames recognizable {recog:.3f}")
fig, axes = plt.subplots(3, 1, figsize=(7, 2.8))
for ax, (name, w) in zip(axes, walks.items()):
    show_images(w[:2].flatten(0, 1), nrow=10, ax=ax, title=name)
plt.show()

# %%
judge("VAEs: a smooth latent space, but softer images", [
    ("VAE walk steps more even than the flow's",
     smooth["vae latent"][0] < smooth["flow latent"][0],
     f"largest step {smooth['vae latent'][0]:.3f} vs {smooth['flow latent'][0]:.3f}"),
    ("VAE inner frames more recognizable than the flow's and the fade's",
     smooth["vae latent"][1] > max(smooth["flow latent"][1], smooth["pixel fade"][1]),
     ", ".join(f"{n} {s[1]:.3f}" for n, s in smooth.items())),
    ("VAE samples softer than the real digits and the GAN's (higher grey share)",
     grey["vae"] > max(real_grey, grey["gan"]), f"vae {grey['vae']:.3f}, real {real_grey:.3f}, gan {grey['gan']:.3f}"),
])

# %% [markdown]
# ### Flows give exact likelihoods and exact inversion, but weaker samples
#
# Exact inversion: decode(encode(x)) on 500 test digits, as 8-bit levels. The likelihood: on 8-bit
# images the flow's number is a *bound* (the dequantization bound; it tightens with importance
# sampling, `docs/flow.md`), exact only on continuous data such as the 2-D toy sets. Weaker samples:
# FID-MNIST and recognizability against the other families.

# %%
x = real[:n_eval]
with torch.no_grad():
    round_trip = models["flow"].decode(models["flow"].encode(x))
levels_back = ((round_trip + 1) * 127.5).round()
levels = ((x + 1) * 127.5).round()
inversion_errors = (levels_back != levels).sum().item()
print(f"flow: {inversion_errors} of {levels.numel():,} pixels change level after decode(encode(x))")
judge("flows: exact likelihood and exact inversion, but weaker samples", [
    ("exact inversion (no pixel changes level)", inversion_errors == 0, f"{inversion_errors} pixels changed"),
    ("exact likelihood of the 8-bit digits (recorded label)", rows["flow"]["likelihood"] == "exact",
     f"labelled {rows['flow']['likelihood']}: {rows['flow']['bits_per_dim']:.3f} bits/dim, "
     f"the best bound of the table (baseline {pixel_bits:.3f})"),
    ("the weakest samples by FID-MNIST (recorded)", best("fid") == "flow",
     ", ".join(f"{f} {rows[f]['fid']:.1f}" for f in image_families)),
])

# %% [markdown]
# ### Energy-based models are suited to spotting unusual inputs
#
# Each model scores MNIST test digits (usual) and FashionMNIST test images (unusual); AUROC is the
# chance that a random unusual image scores as more unusual than a random usual one (1.0 perfect,
# 0.5 chance). Scores: the EBM's energy; the negative log-likelihood (or its bound) of the VAE
# (importance-weighted, k = 10), the flow and the independent-pixel baseline.

# %%
try:
    fashion = load_data(DataConfig(name="fashion_mnist")).test_x[: 100 if SHORT else 1000]
except DataError as err:
    fashion = None
    print(f"FashionMNIST not found, the unusual-input test is skipped: {err}")
if fashion is not None:
    from genzoo.baselines import pixel_histograms

    usual, unusual = data.test_x[: len(fashion)], fashion
    log_p = pixel_histograms(data.train_x).flatten(0, -2)

    def pixel_nll(levels):
        return -log_p.gather(1, levels.long().flatten(1).T).sum(0)

    def nll(model, levels, **options):
        with torch.no_grad():
            return torch.cat([-model.log_prob(from_uint8(c), **options) for c in levels.split(250)])

    scores = {
        "ebm energy": (energy_scores(models["ebm"], from_uint8(usual)), energy_scores(models["ebm"], from_uint8(unusual))),
        "vae bound": (nll(models["vae"], usual, k=10), nll(models["vae"], unusual, k=10)),
        "flow bound": (nll(models["flow"], usual), nll(models["flow"], unusual)),
        "pixel baseline": (pixel_nll(usual), pixel_nll(unusual)),
    }
    ood = {name: auroc(s_in, s_out) for name, (s_in, s_out) in scores.items()}
    print(f"AUROC, MNIST ({len(usual)}) vs FashionMNIST ({len(unusual)}): "
          + ", ".join(f"{n} {a:.3f}" for n, a in ood.items()))
    judge("energy-based models: suited to spotting unusual inputs", [
        ("the table's EBM separates them well (AUROC at least 0.9, recorded)", rows["ebm"]["ood_auroc_fashion"] >= 0.9,
         f"{rows['ebm']['ood_auroc_fashion']:.3f} on 10,000 + 10,000 images"),
        ("the EBM here separates them well (AUROC at least 0.9)", ood["ebm energy"] >= 0.9, f"{ood['ebm energy']:.3f}"),
        ("better than every likelihood score here", ood["ebm energy"] > max(v for k, v in ood.items() if k != "ebm energy"),
         ", ".join(f"{n} {a:.3f}" for n, a in ood.items())),
    ])

# %% [markdown]
# ### Autoregressive transformers model sequences and are steered by prompts
#
# *Model sequences*: held-out nats per character against the bigram table (one character of
# context) on the same split. *Steered by prompts*: the same 1,000 held-out 64-character passages
# scored twice, once after their own preceding 64 characters and once after 64 characters from
# elsewhere in the text; if the prompt steers the model, the right one makes the passage more
# probable. Then two prompts and what follows them.

# %%
def nats_per_char(model, prompts, passages):
    ids = torch.cat([prompts, passages], dim=1)
    with torch.no_grad():
        logits = model(ids[:, :-1])[:, prompts.shape[1] - 1:]  # predictions of the passage characters
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), passages.flatten()).item()


val = text_data.val_ids.long()
n_passages = 50 if SHORT else 1000
starts = torch.randint(64, len(val) - 64, (n_passages,), generator=torch.Generator().manual_seed(0))
passages = torch.stack([val[s:s + 64] for s in starts.tolist()])  # the block is 128: 64 of context, 64 scored
own = torch.stack([val[s - 64:s] for s in starts.tolist()])
other = own[torch.roll(torch.arange(n_passages), 1)]
with_own, with_other = nats_per_char(lm, own, passages), nats_per_char(lm, other, passages)
bigram = bigram_nats_per_char(text_data.train_ids, val, len(text_data.spec.vocab))
print(f"bigram table {bigram:.3f} nats/char; transformer after its own context {with_own:.3f}, "
      f"after another passage's {with_other:.3f}")
for prompt in ("ROMEO:\n", "Enter the King, "):
    out = lm.sample(1, generator=torch.Generator().manual_seed(1), prompt=prompt, max_new_tokens=120, temperature=0.8)
    print(f"--- prompt {prompt!r}:\n{text_data.spec.decode(out[0])}")
judge("autoregressive transformers: model sequences and are steered by prompts", [
    ("better than one character of context (bigram)", with_own < bigram, f"{with_own:.3f} vs {bigram:.3f} nats/char"),
    ("the right prompt makes the passage more probable", with_own < with_other,
     f"{with_own:.3f} vs {with_other:.3f} nats/char"),
])

# %% [markdown]
# ## 4. Verdicts, and how to choose
#
# The verdicts as this run measured them:

# %%
assert len(verdicts) == (6 if fashion is not None else 5), "every claim gets a verdict"
for claim, verdict, failed in verdicts:
    print(f"{verdict:28s} {claim}" + (f"\n{'':28s}   not here: {'; '.join(failed)}" if failed else ""))

# %% [markdown]
# What the "no" parts say. *Sharpness*: the GAN's grey share (0.546) is close to the real digits'
# (0.516), but the EBM's (0.492) is as close, so the GAN is sharp without being the sharpest here; the
# VAE (0.782) and the flow (0.802) are the soft ones. *Collapse*: the default class-conditional GAN
# covers every digit (coverage 1.000, the highest recall of the table, 0.771); on the ring the same
# game collapses to 0 of 8 modes or finds all 8 depending only on its settings. *The VAE's walks*:
# its inner frames are recognizable (0.794, the flow's 0.569) but no more than a plain pixel fade's
# (0.800), which the evaluator also reads as one digit most of the time, so this part is weak evidence
# either way. *Unusual inputs*: MNIST against FashionMNIST is too easy to rank the scores, as every one
# is at 0.997 or above here, the independent-pixel baseline included.
#
# **How to choose**, from the numbers above (the recorded table unless marked *here*):
#
# | you want | choose | because (measured) |
# | --- | --- | --- |
# | the most faithful, recognizable digits, and can wait | DDPM | highest precision (0.800) and recognizability (0.994); 383 ms per image, 1,183 ms *here*: about 2,000 times the GAN's |
# | good samples fast, or synthetic training data | GAN (conditional) | lowest FID-MNIST (55.3), highest recall (0.771), all ten digits; 0.17 ms per image; but its settings decide collapse (0 or 8 of 8 modes on the ring, *here*) |
# | a likelihood: compression, anomaly scores, model comparison | flow or VAE | the best bounds, 1.225 and 1.276 bits/dim, against the independent-pixel 1.720; the flow's samples are the weakest (FID-MNIST 1,826; 8,151 *here*) |
# | a latent space to encode, walk and edit | VAE | an encoder, the most even walks (largest step 0.146 of the path, the flow's 0.189, *here*), the fastest to train (4.9 min); softer images (grey share 0.782 against 0.516, *here*) |
# | to score unusual inputs without labels | any likelihood, or the EBM | all separate FashionMNIST from MNIST (AUROC 0.997 to 0.999 *here*; the table's EBM 0.982); this pair cannot rank them |
# | text, code, any sequence, steered by a prompt | the transformer | 1.601 nats/char against the bigram's 2.543; the right prompt lowers a passage's cost from 1.781 to 1.601 nats/char (*here*) |

# %% [markdown]
# ## 5. Exercises
#
# Three questions about reading the numbers above; each `check` says whether the answer is right,
# or what is wrong with it. Worked solutions: `notebooks/solutions/overview.py`.
#
# **1. Bits per dimension.** A model gives a test image of D pixels a negative log-likelihood of
# `nll_nats` nats. Write the conversion to bits per dimension (the unit of every likelihood above).

# %%
def my_bits_per_dim(nll_nats, dims):
    raise NotImplementedError  # your code here


check("overview.bits_per_dim", my_bits_per_dim)

# %% [markdown]
# **2. AUROC by counting.** Given anomaly scores of usual inputs and of unusual ones (higher = more
# unusual), return the share of (usual, unusual) pairs in which the unusual one scores higher,
# counting a tie as half. This is the number in the unusual-inputs test.

# %%
def my_auroc(scores_usual, scores_unusual):
    raise NotImplementedError  # your code here


check("overview.auroc", my_auroc)

# %% [markdown]
# **3. Class coverage.** Given the evaluator's class probabilities for a set of samples, (N, 10),
# count each sample as its most probable class and return the entropy of that histogram divided by
# log 10: 1.0 when the ten digits appear equally often, 0.0 when only one does.

# %%
def my_class_coverage(probs):
    raise NotImplementedError  # your code here


check("overview.class_coverage", my_class_coverage)
