"""Write the teaching notebooks from their cell sources, and optionally run them.

    python notebooks/build_notebooks.py                 # write notebooks/*.ipynb without outputs
    python notebooks/build_notebooks.py --execute       # write them, run them top to bottom, save outputs
    python notebooks/build_notebooks.py --execute --short vae   # one notebook, in CI's short mode

The cells live here, as text, so a notebook's diff is a diff of this file; the .ipynb files are
committed with the outputs of a real (full-mode) run. Notebooks run with ``notebooks/`` as the
working directory, as Jupyter does. ``GENZOO_SHORT=1`` shrinks every loop (CI sets it);
``--short`` sets it for the kernel.

Conventions every notebook follows (and later families copy):
- an equation in a markdown cell, then a code cell that prints the line of
  ``genzoo/models/<family>.py`` computing it (found by its citation comment, so line numbers may
  change), then a numerical check of it with an ``assert``;
- training through genzoo's own ``Trainer``, the same loop as ``genzoo train``;
- small figures (dpi 80), so a notebook with outputs stays well under 1.5 MB.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from textwrap import dedent

import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(dedent(text).strip())


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(dedent(text).strip())


# ---------------------------------------------------------------------------------------------
# Cells both notebooks share: the switch for short mode and the helpers that print family lines.

SETUP_HELPERS = '''
def docstring_rows(lines: list[str]) -> set[int]:
    """Numbers of the lines inside triple-quoted strings (docstrings): prose, not code."""
    rows = set()
    for token in tokenize.generate_tokens(io.StringIO("\\n".join(lines)).readline):
        if token.type == tokenize.STRING and token.string.lstrip("rbuRBU")[:3] in ('"""', "\'\'\'"):
            rows.update(range(token.start[0], token.end[0] + 1))
    return rows


def show_lines(*needles: str) -> None:
    """Print each line of code (not docstring) of the family file that contains one of ``needles``."""
    prose = docstring_rows(SOURCE)
    hits = [(i, line) for i, line in enumerate(SOURCE, 1) if i not in prose and any(n in line for n in needles)]
    assert hits, f"{FILE} has no line with {needles}: the family file changed, update this notebook"
    for i, line in hits:
        print(f"{FILE}:{i:<4d}{line}")


def show_source(obj) -> None:
    """Print a function or class with its file's name and line numbers."""
    lines, start = inspect.getsourcelines(obj)
    name = Path(inspect.getsourcefile(obj)).name
    for i, line in enumerate(lines, start):
        print(f"{name}:{i:<4d}{line}", end="")
'''

# The image-grid helper of the image notebooks' setup cell (appended to SETUP_HELPERS there).
SHOW_IMAGES = '''

def show_images(x, nrow=8, title="", ax=None):
    """Images in [-1, 1], (B, 1, H, W), as one grid."""
    if ax is None:
        ax = plt.figure(figsize=(0.45 * nrow, 0.45 * math.ceil(len(x) / nrow) + 0.3)).gca()
    x = x.detach().cpu().clamp(-1, 1)
    grid = make_grid(x, nrow=nrow, padding=1, pad_value=1, normalize=True, value_range=(-1, 1))
    ax.imshow(grid.permute(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
'''



def setup_cell(imports: str, family_module: str) -> nbformat.NotebookNode:
    return code(
        f"""
import inspect
import io
import math
import os
import shutil
import tokenize
import warnings
from itertools import islice
from pathlib import Path

import matplotlib.pyplot as plt
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm: a text progress bar is fine
{dedent(imports).strip()}

%matplotlib inline
plt.rcParams.update({{"figure.dpi": 80, "image.cmap": "gray", "axes.grid": False}})

SHORT = os.environ.get("GENZOO_SHORT", "") not in ("", "0")  # CI sets GENZOO_SHORT=1
ROOT = Path.cwd() if (Path.cwd() / "configs").is_dir() else Path.cwd().parent  # the repository
FILE = "{family_module.split('.')[-1]}.py"
SOURCE = Path({family_module.split('.')[-1]}_file.__file__).read_text().splitlines()
print("short mode: every loop shrunk, numbers from a barely trained model" if SHORT else "full mode")
"""
    )


# ---------------------------------------------------------------------------------------------
# The VAE notebook.

VAE_CELLS = [
    md(
        r"""
        # The variational autoencoder: the ELBO, the reparameterization trick, the latent space

        A VAE learns two networks at once. The **encoder** maps an image $x$ to a Gaussian
        *posterior* $q(z|x) = \mathcal N(\mu, \operatorname{diag} \sigma^2)$ over a short latent
        vector $z$ (`latent_dim` numbers, set in the config); the **decoder** maps $z$ to a
        distribution $p(x|z)$ over the 256 grey levels of every pixel. New images come from drawing
        $z \sim p(z) = \mathcal N(0, I)$ and decoding it.

        This notebook reads [`genzoo/models/vae.py`](../genzoo/models/vae.py) one equation at a time.
        Every equation is followed by the line of that file which computes it (printed from the file
        itself, so what you read is what runs), then by a small numerical check.

        **Running it.** Top to bottom takes about three minutes on a laptop CPU. With the environment
        variable `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in well under a minute,
        with a barely trained model. MNIST is read from `$GENZOO_DATA` (or `~/.cache/genzoo`); without
        it, genzoo says so in one line and uses the 5,000 digits it ships.
        """
    ),
    setup_cell(
        """
        from torchvision.utils import make_grid

        import genzoo.models.vae as vae_file
        from genzoo.checkpoint import build_model
        from genzoo.config import load_config
        from genzoo.metrics import heldout_nll
        from genzoo.pixels import DiscretizedLogistic
        from genzoo.plots import read_metrics
        from genzoo.sources import load_data
        from genzoo.trainer import Trainer
        """,
        "genzoo.models.vae",
    ),
    code(
        SETUP_HELPERS + SHOW_IMAGES
    ),
    md(
        r"""
        ## 1. The data: 8-bit digits

        The config file holds every setting; the notebook only shortens training so it fits in a few
        minutes. Images are floats in $[-1, 1]$, but they *are* 8-bit: level $k \in \{0, \dots, 255\}$
        sits at $k / 127.5 - 1$. That matters for the likelihood below.
        """
    ),
    code(
        """
        # the config's run is 4000 steps; 2400 take about 2.5 minutes on a 2-core CPU
        overrides = ["train.max_steps=40", "train.eval_every=15"] if SHORT else ["train.max_steps=2400"]
        cfg = load_config(ROOT / "configs" / "vae_mnist.toml", overrides)
        data = load_data(cfg.data)
        print(f"{data.spec.name}: {len(data.train_x):,} training and {len(data.test_x):,} test digits")
        print(cfg.model)
        """
    ),
    code(
        """
        x, y = next(data.train_stream(32, seed=0))  # a batch is (images, labels)
        show_images(x, nrow=16, title=f"training digits, labels {y[:16].tolist()} ...")
        levels = data.train_x
        print(f"pixels exactly black (level 0): {(levels == 0).float().mean():.1%}, "
              f"exactly white (255): {(levels == 255).float().mean():.1%}")
        """
    ),
    md(
        r"""
        Most pixels are exactly black: a good pixel model must be able to put a large probability
        on *one* level. A Gaussian density cannot (its density at a point says
        nothing about the probability of a level); a distribution over the 256 levels can.

        ## 2. The model and its objective, the ELBO

        The log-likelihood $\log p(x) = \log \int p(x|z)\,p(z)\,dz$ has no closed form. Any $q(z|x)$
        gives a lower bound on it, the **evidence lower bound** (Kingma & Welling 2014, eq. 3):

        $$\log p(x) \;\ge\; \mathrm{ELBO}(x) = \mathbb E_{q(z|x)}\big[\log p(x|z)\big] - \mathrm{KL}\big(q(z|x)\,\|\,p(z)\big).$$

        The first term rewards reconstructing $x$ from its code; the second keeps the codes close
        to the prior, so that decoding $z \sim p(z)$ gives digits. The bound is tight when $q(z|x)$
        equals the true posterior $p(z|x)$. `loss` is minus the ELBO, in nats per image, with its two
        parts in the metrics (`recon` and `kl`); `beta` weighs the KL (1 is the true ELBO):
        """
    ),
    code(
        """
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg, data.spec)  # VAE(encoder, decoder, pixels, ...): the algorithm wraps the networks
        for name, net in [("encoder", model.encoder), ("decoder", model.decoder)]:
            print(f"{name}: {sum(p.numel() for p in net.parameters()):,} parameters")
        show_source(vae_file.VAE.loss)
        """
    ),
    md(
        r"""
        For scale: a uniform guess over the 256 levels costs $\log_2 256 = 8$ bits per dimension. The
        untrained model already does better, only because its wide logistics put much of their mass
        on the two end levels, where most pixels are. The KL is near zero: the untrained encoder's
        codes carry no information yet.
        """
    ),
    code(
        """
        x, y = next(iter(data.test_batches(256)))
        with torch.no_grad():
            _, metrics = model.loss((x, y))
        print({k: round(v, 3) for k, v in metrics.items()})
        """
    ),
    md(
        r"""
        ### The KL term in closed form

        Both $q(z|x) = \mathcal N(\mu, \sigma^2)$ and $p(z) = \mathcal N(0, I)$ are Gaussian, so the KL
        needs no sampling (Kingma & Welling 2014, appendix B), with $\log \sigma^2$ = `log_var`:

        $$\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big) = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big).$$
        """
    ),
    code(
        """
        show_lines("K&W 2014, appendix B")
        show_source(vae_file.kl_to_standard_normal)
        """
    ),
    md(
        r"""
        We check it after training (section 5), where the KL is large enough to be interesting.

        ## 3. The reparameterization trick

        The ELBO's first term is an expectation over $z \sim q(z|x)$, whose parameters $\mu, \sigma$
        come from the encoder. To train the encoder by gradient descent we need the gradient *through*
        the sampling. Write the sample as a deterministic function of the parameters and of noise
        that does not depend on them (Kingma & Welling 2014, eq. 10):

        $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).$$

        Then $\partial z / \partial \mu = 1$ and $\partial z / \partial \sigma = \varepsilon$, and
        autograd does the rest. In `vae.py`, with $\sigma = \exp(\tfrac12 \log \sigma^2)$:
        """
    ),
    code(
        """
        show_lines("K&W 2014, eq. 10")
        """
    ),
    md(
        r"""
        A check with a function whose answer we know: for $f(z) = z^2$ and $z \sim \mathcal N(\mu, \sigma^2)$,
        $\mathbb E[f] = \mu^2 + \sigma^2$, so $\partial_\mu \mathbb E[f] = 2\mu$ and
        $\partial_\sigma \mathbb E[f] = 2\sigma$. The reparameterized Monte-Carlo average must give the
        same gradients. `Normal(mu, sigma).sample()` would not: it returns a number with no path back
        to `mu` and `sigma` (PyTorch's reparameterized version is `rsample`).
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        In the model the same path carries the reconstruction error back into the encoder: after one
        backward pass of `loss`, the encoder's weights have gradients.
        """
    ),
    code(
        """
        loss, _ = model.loss((x, y))
        loss.backward()
        encoder_grad = torch.cat([p.grad.flatten() for p in model.encoder.parameters()]).norm()
        print(f"gradient norm reaching the encoder: {encoder_grad:.2f}")
        assert encoder_grad > 0
        model.zero_grad(set_to_none=True)
        """
    ),
    md(
        r"""
        ## 4. The decoder's likelihood: a distribution over 8-bit levels

        `vae.py` offers three pixel models (from `genzoo/pixels.py`) and the config picks one (`decoder`). The default, the
        **discretized logistic mixture** (Salimans et al. 2017, PixelCNN++, eq. 2), gives level $k$, at $x = k/127.5 - 1$, the probability mass of a logistic distribution
        (mean $m$, scale $s$, CDF $F(u) = 1 / (1 + e^{-u})$) over the bin of width $2/255$ around $x$:

        $$P(x \mid m, s) = F\Big(\frac{x + 1/255 - m}{s}\Big) - F\Big(\frac{x - 1/255 - m}{s}\Big),$$

        with the two end levels taking the whole tails, $P(0) = F\big((-1 + 1/255 - m)/s\big)$ and
        $P(255) = 1 - F\big((1 - 1/255 - m)/s\big)$. A mixture of a few such logistics per pixel,
        with weights from a softmax, covers pixels that are either black or white. Because it is a
        proper distribution over 256 levels, $-\log P$ is a code length, and bits per dimension
        mean the same as for every other family in genzoo.
        """
    ),
    code(
        """
        print(f"this config's pixel model: decoder = {cfg.model.decoder!r}")
        show_source(DiscretizedLogistic.log_prob)
        """
    ),
    md(
        r"""
        The 256 probabilities of one pixel must sum to 1, and a mean near $-1$ should pile mass on the
        black end level. Here is one pixel whose mixture has a sharp component at black and a broad
        one in the middle:
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        ## 5. Training with genzoo's trainer

        The trainer is the same for every family: it calls `model.training_step` (here: `loss`, then
        one AdamW step), follows a warmup-then-cosine learning-rate schedule, evaluates on held-out
        images, and writes `metrics.jsonl`, sample grids and checkpoints to a run folder. That folder
        is a normal genzoo run: `genzoo sample runs/notebook-vae` draws from it afterwards.
        """
    ),
    code(
        """
        run_dir = ROOT / "runs" / ("notebook-vae-short" if SHORT else "notebook-vae")
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
        run = Trainer(model, data, cfg, run_dir).fit()
        model = run.sampling_model.eval()  # the EMA weights if the config keeps them
        print(f"trained {run.step} steps")
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        Reconstruction cost falls while the KL *rises*: the encoder learns to put information into
        $z$, and pays for every nat of it in the KL term. The balance of the two is the ELBO.

        **Checking the KL.** The closed form against a Monte-Carlo estimate that knows nothing about
        it: average $\log q(z|x) - \log p(z)$ over many $z \sim q(z|x)$, using `torch.distributions`.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        ## 6. Bits per dimension, and a tighter bound

        The ELBO is one bound; averaging $k$ importance weights gives tighter ones, which grow towards
        $\log p(x)$ as $k$ grows (Burda et al. 2016, eq. 8):

        $$\mathcal L_k(x) = \log \frac1k \sum_{i=1}^{k} \frac{p(x|z_i)\,p(z_i)}{q(z_i|x)}, \qquad z_i \sim q(z|x), \qquad \mathcal L_1 = \mathrm{ELBO}.$$

        `log_prob` returns $\mathcal L_k$ in nats; bits per dimension is $-\mathcal L_k / (784 \ln 2)$.
        """
    ),
    code(
        """
        show_lines("Burda et al. 2016, eq. 8")
        """
    ),
    code(
        """
        n_images, ks = (64, [1, 8]) if SHORT else (500, [1, 10, 100])
        for k in ks:
            batches = islice(data.test_batches(n_images), 1)  # the first n_images test digits
            torch.manual_seed(0)
            result = heldout_nll(model, batches, k=k)
            print(f"k = {k:3d}: {result['bits_per_dim']:.4f} bits/dim on {result['examples']} test digits "
                  f"({result['seconds']:.1f} s)")
        """
    ),
    md(
        r"""
        Larger $k$ gives a higher bound, so fewer bits per dimension: the ELBO alone ($k=1$)
        overstates the code length by the gap between $q(z|x)$ and the true posterior.

        ## 7. Samples and reconstructions

        Sampling is the generative story run forwards: $z \sim \mathcal N(0, I)$, then $p(x|z)$.
        `sample` shows the *mean* of $p(x|z)$ by default, the smooth image usually shown for VAEs;
        `pixels="sample"` also draws every pixel's level, which is what the likelihood is about;
        `temperature` scales the prior's standard deviation.
        """
    ),
    code(
        """
        panels = [("mean of p(x|z), z ~ N(0, I)", {}), ("the same, temperature 0.7", {"temperature": 0.7}),
                  ("pixels drawn from p(x|z)", {"pixels": "sample"})]
        fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
        for ax, (title, options) in zip(axes, panels):
            generator = torch.Generator().manual_seed(0)  # the same z's in every panel
            show_images(model.sample(48, generator=generator, **options), title=title, ax=ax)
        plt.show()
        """
    ),
    code(
        """
        x, y = next(iter(data.test_batches(16)))
        fig, axes = plt.subplots(2, 1, figsize=(8, 1.6))
        show_images(x, nrow=16, title="test digits", ax=axes[0])
        show_images(model.reconstruct(x), nrow=16, title="decoded posterior means", ax=axes[1])
        plt.show()
        """
    ),
    md(
        r"""
        Reconstructions are sharper than samples. The decoder has only learned to decode the codes
        the encoder produces, and those do not fill the prior evenly: some $z \sim \mathcal N(0, I)$ land
        where no training digit's posterior puts mass, and decode to half-digits. Lowering the
        temperature keeps $z$ nearer the centre, trading variety for slightly cleaner strokes.

        ## 8. The latent space

        Each test digit's posterior mean $\mu(x)$ is a point in `latent_dim` dimensions. Projecting
        them onto their two principal directions shows how the encoder arranged the classes, although
        it never saw a label: similar digits get nearby codes because that is what lets one decoder
        serve them.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        ## 9. Interpolation

        Walk in a straight line from one digit's code to another's and decode every stop. Because the
        KL term packs the codes together around the prior, the stops in between decode to strokes
        that bend from one digit into the other (where the line crosses a region few digits map to,
        they are vaguer: the same effect as in the samples). Fading the *pixels* from one image to the
        other (bottom row) only superimposes two digits.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        ## What to try next

        - Set `beta` above 1 in `configs/vae_mnist.toml` (a beta-VAE): the KL shrinks, reconstructions
          blur, and the latent space becomes smoother.
        - Train with `latent_dim = 2` and plot the codes directly, without PCA.
        - Switch `decoder` to `"categorical"` or `"bernoulli"` and compare bits per dimension (the
          Bernoulli number is of *binarised* digits, so it is not comparable with the other two).
        - `genzoo train configs/vae_mnist.toml` trains the full-length run from the command line.
        """
    ),
]


# ---------------------------------------------------------------------------------------------
# The transformer LM notebook.

LM_CELLS = [
    md(
        r"""
        # The transformer language model: attention, the causal mask, sampling temperature

        A character-level language model predicts the next character of a text from all the
        characters before it. Chained, those predictions give the probability of a whole string,
        and sampling them one at a time writes new text. This notebook reads
        [`genzoo/models/transformer.py`](../genzoo/models/transformer.py), a small GPT, one equation at a
        time: every equation is followed by the line of that file that computes it (printed from the
        file itself), then a numerical check.

        **Running it.** Top to bottom takes about three minutes on a laptop CPU; with
        `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in well under a minute, with a
        barely trained model. The text is Shakespeare's works, shipped with genzoo, so it works offline.
        """
    ),
    setup_cell(
        """
        import torch.nn.functional as F

        import genzoo.models.transformer as transformer_file
        from genzoo.checkpoint import build_model
        from genzoo.config import load_config
        from genzoo.metrics import heldout_nll
        from genzoo.models.transformer import CausalSelfAttention, TransformerLM, apply_rotary, rotary_angles
        from genzoo.plots import read_metrics
        from genzoo.sources import load_data
        from genzoo.trainer import Trainer
        """,
        "genzoo.models.transformer",
    ),
    code(SETUP_HELPERS),
    md(
        r"""
        ## 1. Characters are the tokens

        The vocabulary is every distinct character of the corpus, sorted; token $i$ is the $i$-th
        character. A training example is a window of `block_size` characters $x$, and the targets
        $y$ are the same window shifted by one: at every position the model predicts the next character.
        """
    ),
    code(
        """
        # full mode trains exactly as `genzoo train configs/lm_shakespeare.toml`: about 2 minutes
        overrides = ["train.max_steps=30", "train.eval_every=12", "train.eval_batches=2"] if SHORT else []
        cfg = load_config(ROOT / "configs" / "lm_shakespeare.toml", overrides)
        data = load_data(cfg.data)
        spec = data.spec
        print(f"{spec.name}: {len(data.train_ids):,} training and {len(data.val_ids):,} validation characters")
        print(f"{spec.vocab_size} tokens: {spec.vocab!r}")
        ids = spec.encode("To be, or not to be")
        print(ids.tolist(), "->", repr(spec.decode(ids)))
        """
    ),
    code(
        """
        x, y = next(data.train_stream(4, seed=0))  # (B, T) ids and next-character targets
        print("x:", repr(spec.decode(x[0, :60])))
        print("y:", repr(spec.decode(y[0, :60])))
        assert torch.equal(x[0, 1:], y[0, :-1])
        """
    ),
    md(
        r"""
        ## 2. The model and its loss

        The probability of a string factorises into next-character predictions (the chain rule),

        $$\log p(x_2, \dots, x_T \mid x_1) = \sum_{t=1}^{T-1} \log p(x_{t+1} \mid x_1, \dots, x_t),$$

        and the loss is the mean cross-entropy of those predictions, in nats per character.
        The model: token embeddings, then `n_layer` blocks of attention and MLP, then a linear layer
        to one logit per character of the vocabulary.
        """
    ),
    code(
        """
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg, spec).eval()
        print(cfg.model)
        print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
        show_source(TransformerLM.loss)
        """
    ),
    md(
        r"""
        ## 3. Scaled dot-product attention and the causal mask

        Each position $t$ emits a query $q_t$, a key $k_t$ and a value $v_t$ (vectors of size $d$ per
        head). Position $t$ reads a weighted average of the values, weighted by how well its query
        matches each key (Vaswani et al. 2017, eq. 1):

        $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt d} + M\Big) V,
        \qquad M_{ts} = \begin{cases} 0 & s \le t \\ -\infty & s > t. \end{cases}$$

        Dividing by $\sqrt d$ keeps the scores' spread independent of $d$, so the softmax does not
        saturate. The **causal mask** $M$ sets the weight of every *later* position to zero: the
        prediction at $t$ may use $x_1 \dots x_t$ only, otherwise the model could read the answer.
        In `transformer.py` the whole formula is one fused call, `is_causal=True` being $M$:
        """
    ),
    code(
        """
        show_source(CausalSelfAttention.forward)
        """
    ),
    md(
        r"""
        The fused call hides the weights. Written out, for one attention layer, with the layer's own
        projections (and rotary positions, section 4):
        """
    ),
    code(
        """
        def attention_weights(attn, h, rope):
            \"\"\"softmax(Q K^T / sqrt(d) + M) of one attention layer for its input h (B, T, C): (B, H, T, T).\"\"\"
            B, T, C = h.shape
            q, k, _ = attn.qkv(h).split(C, dim=2)
            q, k = (z.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for z in (q, k))  # (B, H, T, d)
            if rope is not None:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
            M = torch.full((T, T), float("-inf")).triu(1)  # -inf above the diagonal: s > t
            return torch.softmax(scores + M, dim=-1)


        def attention_inputs(model, ids, layer):
            \"\"\"The input (h, rope) that attention layer ``layer`` receives when the model reads ``ids``.\"\"\"
            seen = {}
            hook = model.blocks[layer].attn.register_forward_pre_hook(lambda module, args: seen.update(args=args))
            with torch.no_grad():
                model(ids)
            hook.remove()
            return seen["args"]
        """
    ),
    md(
        r"""
        Our written-out weights, applied to the values, must reproduce what the layer computes:
        """
    ),
    code(
        """
        ids = spec.encode("First Citizen:\\nBefore we proceed").view(1, -1)
        attn = model.blocks[0].attn
        h, rope = attention_inputs(model, ids, layer=0)
        with torch.no_grad():
            A = attention_weights(attn, h, rope)  # (1, H, T, T)
            B, T, C = h.shape
            v = attn.qkv(h).split(C, dim=2)[2].view(B, T, attn.n_head, -1).transpose(1, 2)  # (B, H, T, d)
            ours = attn.proj((A @ v).transpose(1, 2).reshape(B, T, C))
            theirs = attn(h, rope)
        print(f"largest difference from the layer's output: {(ours - theirs).abs().max():.2e}")
        assert torch.allclose(ours, theirs, atol=1e-5)
        """
    ),
    md(
        r"""
        The mask's consequence, checked on the whole model: changing the *last* characters of a text
        cannot change the predictions at any earlier position.
        """
    ),
    code(
        """
        a, b = spec.encode("To be, or not to be"), spec.encode("To be, or not to go")
        with torch.no_grad():
            logits_a, logits_b = model(a.view(1, -1)), model(b.view(1, -1))  # (1, T, V)
        first_change = int((a != b).nonzero()[0])
        same = torch.allclose(logits_a[:, :first_change], logits_b[:, :first_change], atol=1e-5)
        print(f"predictions before position {first_change} unchanged: {same}; "
              f"after: changed by up to {(logits_a - logits_b)[:, first_change:].abs().max():.2f}")
        assert same
        """
    ),
    md(
        r"""
        ## 4. Rotary positions

        Attention by itself ignores order: permute the keys and values and the output is the same.
        Rotary position embedding (RoPE, Su et al. 2021) turns each pair of query/key features at
        position $m$ by the angle $m\theta_i$, with $\theta_i = \text{base}^{-2i/d}$:

        $$R_m \begin{pmatrix} x_i \\ x_{i + d/2} \end{pmatrix} =
        \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}
        \begin{pmatrix} x_i \\ x_{i + d/2} \end{pmatrix},
        \qquad \langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle.$$

        Rotations compose, so a score depends on the *distance* $n - m$ only, never on where in the
        text the pair sits. (The config's other choice, `positions = "learned"`, adds a trained vector
        per position to the token embedding instead, as GPT-2 does.)
        """
    ),
    code(
        """
        print(f"this config: positions = {cfg.model.positions!r}")
        show_source(rotary_angles)
        print()
        show_source(apply_rotary)
        """
    ),
    md(
        r"""
        The check: rotate one query and one key to every pair of positions $(m, n)$ and take their
        dot products. If the score depends on $n - m$ only, the matrix is constant along each
        diagonal (a Toeplitz matrix):
        """
    ),
    code(
        """
        d, T = 16, 24
        cos, sin = rotary_angles(T, d)  # (T, d) each
        q, k = torch.randn(2, d, generator=torch.Generator().manual_seed(0))
        Rq = apply_rotary(q.expand(T, d), cos, sin)  # row m: q rotated to position m
        Rk = apply_rotary(k.expand(T, d), cos, sin)
        scores = Rq @ Rk.T  # (T, T): <R_m q, R_n k>
        for offset in range(-T + 1, T):
            diagonal = scores.diagonal(offset)
            assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4)
        plt.figure(figsize=(3.2, 3))
        plt.imshow(scores, cmap="RdBu")
        plt.xlabel("key position n")
        plt.ylabel("query position m")
        plt.title("<R_m q, R_n k>: constant along diagonals", fontsize=9)
        plt.show()
        """
    ),
    md(
        r"""
        ## 5. Training with genzoo's trainer

        The same trainer as every family: `training_step` (cross-entropy, one AdamW step), a warmup
        then cosine learning-rate schedule, validation on held-out text (the last 10% of the corpus),
        `metrics.jsonl` and checkpoints in a run folder (`genzoo sample runs/notebook-lm --prompt
        "ROMEO:"` reads it afterwards). A uniform guess over the vocabulary costs
        $\log_2 V$ bits per character; training should get far below it.
        """
    ),
    code(
        """
        run_dir = ROOT / "runs" / ("notebook-lm-short" if SHORT else "notebook-lm")
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
        run = Trainer(model, data, cfg, run_dir).fit()
        model = run.sampling_model.eval()  # the EMA weights if the config keeps them
        print(f"trained {run.step} steps; uniform guess: {math.log2(spec.vocab_size):.2f} bits per character")
        """
    ),
    code(
        """
        records = read_metrics(run_dir / "metrics.jsonl")
        plt.figure(figsize=(5, 2.8))
        for split, style in [("train", "-"), ("val", "o-")]:
            points = [(r["step"], r["bits_per_char"]) for r in records if r["split"] == split]
            plt.plot(*zip(*points), style, markersize=3, label=split)
        plt.xlabel("step")
        plt.ylabel("bits per character")
        plt.legend()
        plt.show()
        """
    ),
    md(
        r"""
        ## 6. What a trained head looks at

        The attention weights of every head of the first and the last layer, for one line of text
        (rows: the position predicting the next character; columns: the positions it reads).
        Everything above the diagonal is exactly zero: the causal mask. Each row sums to one: the
        softmax. Most heads of this small, briefly trained model read the last few characters
        (bright bands just below the diagonal); some spread their weight further back.
        """
    ),
    code(
        """
        text = "ROMEO:\\nBut soft, what light"
        ids = spec.encode(text).view(1, -1)
        layers = sorted({0, len(model.blocks) - 1})
        labels = [repr(c)[1:-1] for c in text]  # "\\n" for the newline
        H = model.cfg.n_head
        fig, axes = plt.subplots(len(layers), H, figsize=(2.3 * H, 2.4 * len(layers)), squeeze=False)
        for row, layer in enumerate(layers):
            with torch.no_grad():
                A = attention_weights(model.blocks[layer].attn, *attention_inputs(model, ids, layer))[0]  # (H, T, T)
            assert torch.all(A.triu(1) == 0) and torch.allclose(A.sum(-1), torch.ones(A.shape[:2]))
            for head, ax in enumerate(axes[row]):
                ax.imshow(A[head], cmap="viridis", vmin=0)
                ax.set_xticks(range(len(text)), labels, fontsize=5)
                ax.set_yticks(range(len(text)), labels if head == 0 else [], fontsize=5)
                ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        r"""
        ## 7. Sampling and temperature

        To write text, the model predicts the next character, one is drawn, appended, and the model
        reads the longer text again. Dividing the logits $\ell$ by a **temperature** $\tau$ before the
        softmax reshapes the distribution:

        $$p_i = \frac{\exp(\ell_i / \tau)}{\sum_j \exp(\ell_j / \tau)}.$$

        $\tau < 1$ sharpens it towards the most likely character ($\tau \to 0$ is greedy decoding),
        $\tau > 1$ flattens it towards uniform. **Top-k** sampling draws only among the $k$ most
        likely characters, cutting off the long tail of unlikely ones. In `transformer.py`:
        """
    ),
    code(
        """
        show_lines("logits / temperature", "topk(", "masked_fill(logits", "probs = F.softmax", "torch.multinomial(")
        """
    ),
    md(
        r"""
        The next-character distribution after a prompt, at three temperatures. Its entropy (in bits)
        rises with $\tau$, as it must:
        """
    ),
    code(
        """
        prompt = "ROMEO:\\nWhat shall I s"
        with torch.no_grad():
            logits = model(spec.encode(prompt).view(1, -1))[0, -1]  # (V,): the prediction for the next character
        top = logits.topk(12).indices
        fig, axes = plt.subplots(1, 3, figsize=(10, 2.4), sharey=True)
        entropies = []
        for ax, tau in zip(axes, [0.5, 1.0, 1.5]):
            p = torch.softmax(logits / tau, dim=-1)
            entropies.append(float(-(p * torch.log_softmax(logits / tau, dim=-1)).sum() / math.log(2)))
            ax.bar(range(12), p[top])
            ax.set_xticks(range(12), [repr(spec.vocab[i])[1:-1] for i in top])
            ax.set_title(f"tau = {tau}: entropy {entropies[-1]:.2f} bits", fontsize=9)
        axes[0].set_ylabel(f"p(next | {prompt[-6:]!r})")
        plt.show()
        assert entropies == sorted(entropies)
        """
    ),
    code(
        """
        n_new = 80 if SHORT else 300
        settings = [dict(temperature=0.5), dict(temperature=1.0), dict(temperature=1.5), dict(temperature=1.0, top_k=5)]
        for options in settings:
            generator = torch.Generator().manual_seed(1)
            ids = model.sample(1, generator=generator, prompt="ROMEO:\\n", max_new_tokens=n_new, **options)
            print(f"----- {options}\\n{spec.decode(ids[0])}\\n")
        """
    ),
    md(
        r"""
        Low temperature repeats the safest words; high temperature invents spellings; top-k keeps the
        variety of $\tau = 1$ while never drawing a character the model finds very unlikely.
        `trajectory` yields the text after every new character, for watching the model write:
        """
    ),
    code(
        """
        generator = torch.Generator().manual_seed(2)
        steps = model.trajectory(1, generator=generator, prompt="JULIET:\\n", max_new_tokens=40, temperature=0.8)
        for i, ids in enumerate(steps):
            if i % 10 == 9:
                print(repr(spec.decode(ids[0])))
        """
    ),
    md(
        r"""
        ## 8. Likelihood: bits per character

        `log_prob` sums the log-probabilities of every character given the ones before it: the
        chain rule of section 2, in nats. Its first token is conditioned on nothing (the model has
        no start token) and is not counted, so a sequence of $T$ tokens has $T - 1$ predictions and

        $$\text{bits per character} = \frac{-\log p(x_2, \dots, x_T \mid x_1)}{(T - 1) \ln 2}.$$
        """
    ),
    code(
        """
        show_source(TransformerLM.log_prob)
        """
    ),
    md(
        r"""
        Two ways to the same number: `log_prob` of windows of $T + 1$ characters, and the training
        loss on the $(x, y)$ pairs cut from the same windows.
        """
    ),
    code(
        """
        x, y = next(data.val_batches(16, 1))
        with torch.no_grad():
            nats = -model.log_prob(torch.cat([x[:, :1], y], dim=1)).sum() / y.numel()
            loss, _ = model.loss((x, y))
        print(f"log_prob: {nats:.4f} nats per character; loss: {loss:.4f}")
        assert torch.allclose(nats, loss, atol=1e-4)
        """
    ),
    code(
        """
        n_batches = 2 if SHORT else None  # None: every window of the held-out text, about 15 s
        result = heldout_nll(model, islice(data.test_batches(32), n_batches))
        counts = torch.bincount(data.train_ids.long(), minlength=spec.vocab_size).float()
        unigram = float(-(counts / counts.sum() * (counts / counts.sum()).clamp_min(1e-12).log2()).sum())
        print(f"held-out text, {result['examples']} windows: {result['bits_per_dim']:.3f} bits per character")
        print(f"for scale: uniform over {spec.vocab_size} characters {math.log2(spec.vocab_size):.2f}, "
              f"character frequencies alone {unigram:.2f}")
        """
    ),
    md(
        r"""
        The gap between the frequencies-alone number and the model's is what context buys: the
        model uses the characters before to predict the next one.

        ## What to try next

        - Train longer: `genzoo train configs/lm_shakespeare.toml --set train.max_steps=5000`, then
          `genzoo sample runs/<run> --prompt "ROMEO:" --temperature 0.8`.
        - Set `positions = "learned"` and compare the validation curves.
        - Replace `is_causal=True` with `is_causal=False` in a copy of the model: the training loss
          collapses towards zero (the model reads the answer), and samples become nonsense.
        """
    ),
]


# ---------------------------------------------------------------------------------------------
# The DDPM notebook.

DDPM_CELLS = [
    md(
        r"""
        # Diffusion models: the forward process, the noise-prediction loss, DDPM and DDIM sampling, guidance

        A diffusion model turns data into noise in $T$ small steps, by a fixed process that needs no
        learning, and learns to undo one step at a time. To generate, start from pure noise $x_T$ and
        run the learned reverse steps down to $x_0$. The network at the heart of it only ever answers
        one question: *which noise was added to this image?*

        This notebook reads [`genzoo/models/ddpm.py`](../genzoo/models/ddpm.py) one equation at a time.
        Every equation is followed by the line of that file which computes it (printed from the file
        itself, so what you read is what runs), then by a small numerical check.

        **Running it.** Top to bottom takes about 11 minutes on a 2-core laptop CPU, most of it
        training. With `GENZOO_SHORT=1` (what CI sets) every loop shrinks and it runs in a couple of
        minutes, with a barely trained model whose samples are noise. MNIST is read from
        `$GENZOO_DATA` (or `~/.cache/genzoo`); without it, genzoo says so in one line and uses the 5,000
        digits it ships.
        """
    ),
    setup_cell(
        """
        import time

        from torchvision.utils import make_grid

        import genzoo.models.ddpm as ddpm_file
        from genzoo.checkpoint import build_model
        from genzoo.config import load_config
        from genzoo.errors import GenzooError
        from genzoo.metrics import heldout_nll
        from genzoo.models.ddpm import DDPM, NoiseSchedule
        from genzoo.pixels import discretized_gaussian_log_likelihood
        from genzoo.plots import read_metrics
        from genzoo.sources import load_data
        from genzoo.trainer import Trainer
        """,
        "genzoo.models.ddpm",
    ),
    code(
        SETUP_HELPERS + SHOW_IMAGES
    ),
    md(
        r"""
        ## 1. The forward process: from a digit to noise

        Each step of the forward process shrinks the image a little and adds a little Gaussian noise,
        with a variance $\beta_t$ set by a *schedule* (Ho et al. 2020, eq. 2):

        $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\big).$$

        Gaussians compose, so any $x_t$ can be drawn from $x_0$ in one go (eq. 4), with
        $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$:

        $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, x_0,\ (1-\bar\alpha_t) I\big), \qquad
        x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \epsilon, \quad \epsilon \sim \mathcal N(0, I).$$

        That is what makes training cheap: no need to run $t$ steps to get a noisy image.
        """
    ),
    code(
        """
        show_lines("Ho et al. 2020, eq. 4")
        """
    ),
    code(
        """
        # full mode: 2,000 of the config's 4,000 steps, about 7 minutes on 2 cores
        overrides = ["train.max_steps=30", "train.eval_every=15", "train.eval_batches=2", "train.sample_every=1000"] \\
            if SHORT else ["train.max_steps=2000", "train.max_minutes=0"]
        cfg = load_config(ROOT / "configs" / "ddpm_mnist.toml", overrides)
        data = load_data(cfg.data)
        print(f"{data.spec.name}: {len(data.train_x):,} training and {len(data.test_x):,} test digits")
        print(cfg.model)
        x0 = data.train_x[:1].float() / 127.5 - 1  # one digit, (1, 1, 28, 28) in [-1, 1]
        """
    ),
    md(
        r"""
        The schedule decides how fast the signal fades. The **linear** schedule of Ho et al. raises
        $\beta_t$ from $10^{-4}$ to $0.02$; the **cosine** schedule of Nichol & Dhariwal (2021, eq. 17)
        sets $\bar\alpha_t = f(t)/f(0)$ with $f(t) = \cos^2\!\big(\tfrac{t/T + s}{1+s}\tfrac\pi2\big)$, so
        the digit survives longer and fewer steps are wasted on near-pure noise.
        """
    ),
    code(
        """
        show_lines("Nichol & Dhariwal 2021, eq. 17")
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
        """
    ),
    md(
        r"""
        **Check.** Run the chain of eq. 2 one step at a time for many copies of the digit and compare
        the pixels' mean and variance at step $t$ with eq. 4's closed form.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        ## 2. The reverse step and the posterior

        To walk back we need $q(x_{t-1} \mid x_t)$, which depends on the whole data distribution. But
        *given* $x_0$ it is a Gaussian in closed form (Ho et al. 2020, eq. 6-7):

        $$q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I), \quad
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t} x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t} x_t,
        \quad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t.$$

        So a network that can guess $x_0$ from $x_t$ (equivalently, the noise $\epsilon$ in $x_t$) gives
        a reverse step. The schedule object holds these coefficients as buffers, computed once:
        """
    ),
    code(
        """
        show_lines("Ho et al. 2020, eq. 7")
        """
    ),
    md(
        r"""
        **Check** by Bayes' rule: $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)$,
        a product of two Gaussians in $x_{t-1}$, whose precisions add.
        """
    ),
    code(
        """
        t = 400
        beta, alpha_bar_prev = schedule.betas[t].double(), schedule.alpha_bar[t - 1].double()
        x0_, xt_ = torch.tensor([0.6]), torch.tensor([-0.4])
        precision = (1 - beta) / beta + 1 / (1 - alpha_bar_prev)
        bayes_mean = ((1 - beta).sqrt() * xt_ / beta + alpha_bar_prev.sqrt() * x0_ / (1 - alpha_bar_prev)) / precision
        mean, var = schedule.posterior(x0_, xt_, t)
        print(f"posterior mean: ddpm.py {mean.item():.6f}, Bayes {bayes_mean.item():.6f}")
        print(f"posterior variance: ddpm.py {var.item():.6f}, Bayes {1 / precision.item():.6f}")
        assert abs(mean.item() - bayes_mean.item()) < 1e-5 and abs(var.item() - 1 / precision.item()) < 1e-6
        """
    ),
    md(
        r"""
        ## 3. The loss: predict the noise

        Ho et al. parameterise the network to predict $\epsilon$ and found that the simplest loss works
        best (eq. 14): pick a random $t$, noise the image, ask for the noise back,

        $$L_\text{simple} = \mathbb E_{t, x_0, \epsilon}\, \big\| \epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big) \big\|^2 .$$

        `loss` averages it over pixels and images. Here the model is *class-conditional*: it also
        gets the digit's label $y$, and 20% of the time a "no label" class instead, so the same
        network learns $\epsilon_\theta(x_t, t, y)$ and $\epsilon_\theta(x_t, t)$ (for guidance, section 6).
        The network is a small U-Net (`genzoo/nn.py`): residual blocks at 28, 14 and 7 pixels with a
        sinusoidal embedding of $t$, self-attention at 7x7.
        """
    ),
    code(
        """
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg, data.spec)  # DDPM(eps_net, schedule): the algorithm wraps the network
        print(f"U-Net: {sum(p.numel() for p in model.eps_net.parameters()):,} parameters; "
              f"schedule buffers: {[name for name, _ in model.schedule.named_buffers()]}")
        show_source(DDPM.loss)
        """
    ),
    md(
        r"""
        The U-Net's last convolution starts at zero, so the untrained model predicts $\epsilon_\theta = 0$
        and the loss is $\mathbb E\|\epsilon\|^2$ per pixel, which is 1:
        """
    ),
    code(
        """
        x, y = next(iter(data.test_batches(256)))
        with torch.no_grad():
            _, metrics = model.loss((x, y))
        print({k: round(v, 4) for k, v in metrics.items()})
        assert abs(metrics["loss"] - 1) < 0.05
        """
    ),
    md(
        r"""
        ## 4. Training with genzoo's trainer

        The same trainer as every family: `loss`, one AdamW step, warmup then cosine learning rate, and
        an exponential moving average (EMA) of the weights (`train.ema_decay`), which sampling uses:
        diffusion samples are much cleaner from averaged weights. The run folder is a normal genzoo run
        (`genzoo sample runs/notebook-ddpm --steps 20`).
        """
    ),
    code(
        """
        run_dir = ROOT / "runs" / ("notebook-ddpm-short" if SHORT else "notebook-ddpm")
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
        started = time.perf_counter()
        run = Trainer(model, data, cfg, run_dir).fit()
        model = run.sampling_model.eval()  # the EMA weights
        print(f"trained {run.step} steps in {time.perf_counter() - started:.0f} s")
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        Predicting the noise is *hardest* when there is little of it (early $t$): the network must find
        a faint noise pattern on top of a sharp digit. At late $t$ the image is nearly all noise, and
        the noise is nearly the image.

        ## 5. Sampling: ancestral DDPM and DDIM

        **Ancestral sampling** (Ho et al. 2020, Algorithm 2) starts from $x_T \sim \mathcal N(0, I)$ and
        takes every one of the $T$ reverse steps: estimate the noise, turn it into a guess of $x_0$,
        $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ (clipped to
        $[-1, 1]$), and draw $x_{t-1}$ from the posterior of section 2 with $\hat x_0$ in place of $x_0$.

        **DDIM** (Song et al. 2021, eq. 12) jumps from $t$ to any earlier $s$, on the same network:

        $$x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\,\epsilon_\theta + \sigma z,
        \qquad \sigma = \eta \sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}.$$

        With $\eta = 0$ it is deterministic, and it needs far fewer steps. The update rules live in the
        schedule object, apart from the network, like diffusers' schedulers:
        """
    ),
    code(
        """
        show_source(NoiseSchedule.ddpm_step)
        show_source(NoiseSchedule.ddim_step)
        """
    ),
    md(
        r"""
        **Check.** With $\eta = 1$ and $s = t - 1$, $\sigma^2 = \tilde\beta_t$ and the DDIM step is the
        ancestral step: both samplers, given the same noise, draw the same digits.
        """
    ),
    code(
        """
        labels = [3, 8]
        a = model.sample(2, generator=torch.Generator().manual_seed(0), sampler="ddpm", labels=labels)
        b = model.sample(2, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=1000, eta=1.0, labels=labels)
        print(f"largest pixel difference, DDPM vs DDIM(eta=1, 1000 steps): {(a - b).abs().max():.2e}")
        assert torch.allclose(a, b, atol=1e-3)
        """
    ),
    md(
        r"""
        `trajectory` yields every $x_t$ on the way, the denoising strip: one row per digit, from noise
        (left) to sample (right). The digit's rough shape is decided early; the late steps only sharpen it.
        """
    ),
    code(
        """
        states = list(model.trajectory(10, generator=torch.Generator().manual_seed(0), sampler="ddim", steps=50,
                                       labels=list(range(10)), guidance=1.0))
        pick = torch.linspace(0, len(states) - 1, 11).round().long().tolist()
        strip = torch.stack([states[i] for i in pick], dim=1).flatten(0, 1)  # (10 * 11, 1, 28, 28)
        show_images(strip, nrow=11, title="DDIM, 50 steps: x_T (left) to x_0 (right), every 5th step")
        plt.show()
        """
    ),
    md(
        r"""
        ### Steps against quality and time

        Each step is one pass of the U-Net, so time is proportional to the number of steps. Quality is
        measured with genzoo's evaluator (a small MNIST classifier, `genzoo/evaluator.py`):
        *recognizability* is the share of samples it classifies with confidence at least 0.9 (here of
        only 50 samples per sampler, so differences of a few hundredths are noise).
        """
    ),
    code(
        """
        try:
            from genzoo.evaluator import load_evaluator
            from genzoo.metrics import image_metrics
            evaluator, real = load_evaluator("mnist"), data.test_x[:1000]
        except (ImportError, GenzooError):  # a genzoo without its evaluator: times only
            evaluator = None
        n = 10 if SHORT else 50
        settings = [("DDPM, 1000 steps", dict(sampler="ddpm")), ("DDIM, 100 steps", dict(sampler="ddim", steps=100)),
                    ("DDIM, 50 steps", dict(sampler="ddim", steps=50)), ("DDIM, 20 steps", dict(sampler="ddim", steps=20)),
                    ("DDIM, 10 steps", dict(sampler="ddim", steps=10))]
        fig, axes = plt.subplots(1, len(settings), figsize=(15, 3.4))
        for ax, (name, options) in zip(axes, settings):
            started = time.perf_counter()
            x = model.sample(n, generator=torch.Generator().manual_seed(1), labels=list(range(10)), guidance=1.0, **options)
            seconds = (time.perf_counter() - started) / n
            quality = image_metrics(x, real, evaluator) if evaluator else {}
            score = f", recognizable {quality['recognizability']:.2f}" if quality else ""
            print(f"{name:17s} {seconds * 1000:7.1f} ms per image{score}")
            show_images(x[:30], nrow=5, title=name, ax=ax)
        plt.show()
        """
    ),
    md(
        r"""
        ## 6. Classifier-free guidance

        One network, trained with labels dropped 20% of the time, predicts both $\epsilon_\theta(x_t, t, y)$
        and $\epsilon_\theta(x_t, t)$. Guidance pushes the estimate away from the unconditional one
        (Ho & Salimans 2022, eq. 6):

        $$\tilde\epsilon = (1 + w)\,\epsilon_\theta(x_t, t, y) - w\,\epsilon_\theta(x_t, t).$$

        $w = 0$ is the conditional model as trained; larger $w$ gives more typical, bolder digits and
        less variety.
        """
    ),
    code(
        """
        show_lines("Ho & Salimans 2022, eq. 6")
        """
    ),
    code(
        """
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
        """
    ),
    md(
        r"""
        ## 7. Likelihood: a bound in bits per dimension

        A diffusion model is a latent-variable model with latents $x_1, \dots, x_T$, so it has a
        variational bound on $\log p(x_0)$ (Ho et al. 2020, eq. 5), a sum of one term per step:

        $$-\log p(x_0) \le \underbrace{\mathrm{KL}(q(x_T|x_0)\,\|\,p(x_T))}_{L_T} + \sum_{t=2}^{T} \underbrace{\mathrm{KL}\big(q(x_{t-1}|x_t,x_0)\,\|\,p_\theta(x_{t-1}|x_t)\big)}_{L_{t-1}} \underbrace{-\log p_\theta(x_0|x_1)}_{L_0}.$$

        Every KL is between two Gaussians, in closed form. The last term makes it a bound on the
        *discrete* 8-bit image: $p_\theta(x_0|x_1)$ is a Gaussian integrated over each grey level's bin
        (eq. 13), so bits/dim compares with the other families. Summing 999 network passes per image
        is slow on a CPU; `log_prob(x, timesteps=K)` cuts $\{2, \dots, T\}$ into $K$ strata, draws one $t$
        in each and weights it by the stratum's size: an unbiased estimate of the same sum.
        """
    ),
    code(
        """
        show_lines("Ho et al. 2020, eq. 13", "Ho et al. 2020, eq. 5")
        levels = torch.arange(256) / 127.5 - 1
        p = discretized_gaussian_log_likelihood(levels, torch.full((256,), -0.98), torch.tensor(0.05)).exp()
        print(f"P(level) summed over the 256 levels: {p.sum():.6f}; P(level 0) = {p[0]:.3f}")
        assert abs(p.sum() - 1) < 1e-4
        """
    ),
    code(
        """
        n_images, K = (16, 5) if SHORT else (500, 50)
        batches = islice(data.test_batches(n_images), 1)  # the first n_images test digits
        torch.manual_seed(0)
        result = heldout_nll(model, batches, timesteps=K)
        print(f"bound: {result['bits_per_dim']:.3f} bits/dim on {result['examples']} test digits, "
              f"{K} timesteps per image ({result['seconds']:.0f} s)")
        """
    ),
    md(
        r"""
        For scale: a uniform guess over 256 levels is 8 bits/dim, and genzoo's VAE reaches about 1.3
        (`docs/benchmarks.md`). A diffusion model trained with $L_\text{simple}$ is not trained for
        this bound (which weights the steps differently), so its likelihood lags its sample quality;
        Nichol & Dhariwal (2021) close much of the gap by also learning the variances.

        ## What to try next

        - Set `schedule = "linear"` in `configs/ddpm_mnist.toml` and compare sample grids and the bound.
        - Train unconditionally (`conditional = false`) and compare the samples with guided ones.
        - `genzoo sample runs/notebook-ddpm --sampler ddim --steps 20 --eta 1.0`: stochastic DDIM.
        - `configs/ddpm_mnist_gpu.toml`: a wider U-Net with dropout, for a GPU.
        """
    ),
]


NOTEBOOKS = {"vae": VAE_CELLS, "lm": LM_CELLS, "ddpm": DDPM_CELLS}
CELL_FILES = ("gan", "flow", "ebm")  # later notebooks keep their cells in notebooks/<name>_cells.py


def names() -> list[str]:
    """Every notebook this builder knows: the ones above, then those with a cell file."""
    return list(NOTEBOOKS) + [name for name in CELL_FILES if (HERE / f"{name}_cells.py").exists()]


def cells(name: str) -> list[nbformat.NotebookNode]:
    """The cell templates of notebook ``name``: from this file, or ``CELLS`` of its cell file."""
    if name in NOTEBOOKS:
        return NOTEBOOKS[name]
    # The cell file imports md, code and setup_cell from this module under its file name.
    sys.modules.setdefault("build_notebooks", sys.modules[__name__])
    spec = importlib.util.spec_from_file_location(f"{name}_cells", HERE / f"{name}_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CELLS


# ---------------------------------------------------------------------------------------------
# Building and running.


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` without outputs; cell ids are stable so rebuilding changes no ids."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for i, cell in enumerate(cells(name)):
        cell = nbformat.from_dict(dict(cell))  # a copy: the cell templates are shared
        cell.id = f"{name}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def execute(nb: nbformat.NotebookNode, short: bool, timeout: int = 900) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel with ``notebooks/`` as the working directory."""
    from nbclient import NotebookClient

    env = dict(os.environ)
    if short:
        env["GENZOO_SHORT"] = "1"
    else:
        env.pop("GENZOO_SHORT", None)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL["name"],
        resources={"metadata": {"path": str(HERE)}},
        coalesce_streams=True,  # progress bars: keep each bar's last state, not every redraw
        record_timing=False,  # no timestamps in the committed files
    )
    client.execute(env=env)
    return nb


def leaked_paths(nb: nbformat.NotebookNode) -> list[str]:
    """Output lines that mention this machine's absolute paths (the repo, the home folder)."""
    needles = {str(HERE.parent), str(Path.home())} - {"/"}
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            found += [line for line in text.splitlines() if any(n in line for n in needles)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=names(), help=f"which notebooks ({', '.join(names())})")
    parser.add_argument("--execute", action="store_true", help="run them and save the outputs")
    parser.add_argument("--short", action="store_true", help="run in short mode (GENZOO_SHORT=1), as CI does")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in names():
            parser.error(f"unknown notebook {name!r}; valid: {', '.join(names())}")
        nb, path = build(name), HERE / f"{name}.ipynb"
        if args.execute:
            started = time.perf_counter()
            execute(nb, args.short)
            print(f"{path.name}: ran in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            for line in leaked_paths(nb):
                print(f"{path.name}: output mentions a local path: {line.strip()[:160]}", file=sys.stderr)
        nbformat.write(nb, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
