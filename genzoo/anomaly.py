"""Anomaly detection with a trained generative model (``genzoo anomaly``).

Every family scores how unusual an input is with its ``anomaly_score`` (higher = more unusual):
-log p(x) in nats where it has a likelihood (the VAE's and the DDPM's bound, the flow's, the LM's),
the energy E(x) for the EBM, and minus the discriminator's logit for the GAN. The score separates the
held-out test set of the training data (inliers) from another data set (outliers); the separation is
the AUROC, the probability that a random outlier outscores a random inlier (``genzoo.metrics.auroc``).

The known surprise (Nalisnick et al. 2019, "Do deep generative models know what they don't know?"):
trained on FashionMNIST, likelihood models give MNIST digits a *higher* likelihood than FashionMNIST's
own test images, so -log p(x) ranks the outliers as the most usual inputs (AUROC well below 0.5). The
likelihood is dominated by how much there is to encode, and a digit is mostly flat black background.
The correction used here is the input-complexity score of Serrà et al. 2020 (eq. 2),

    S(x) = -log2 p(x) - L(x),

where L(x) is the code length in bits of x under a general-purpose lossless compressor (PNG at its
highest compression level): a log-likelihood ratio against the compressor taken as a universal model of
images, so what is left is how much better than a generic image model the trained model explains x.
PNG's code length alone is reported beside it as the baseline it must beat.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from torch import Tensor

from genzoo.baselines import bigram_window_nats, independent_pixels_nats
from genzoo.checkpoint import load_model
from genzoo.config import DataConfig, check_options
from genzoo.errors import DataError
from genzoo.metrics import auroc
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8
from genzoo.runtime import pick_device
from genzoo.sources import (  # python_source is also the "python" data set's, so it lives there
    load_data, python_source,
)
from genzoo.specs import TextSpec


def anomaly_scores(model: GenerativeModel, x: Tensor, *, batch_size: int = 250, **options: Any) -> Tensor:
    """(N,) ``model.anomaly_score`` of every example of ``x`` (images in [-1, 1], or token ids), in
    batches, on the model's device; ``options`` go to ``anomaly_score`` (the DDPM's ``timesteps``, the
    VAE's ``k``). Scoring needs no gradient in any family, so it runs without one."""
    device = model.device
    with torch.no_grad():
        return torch.cat([model.anomaly_score(chunk.to(device), **options).float().cpu() for chunk in x.split(batch_size)])


def png_bits(images: Tensor) -> Tensor:
    """(N,) PNG code length in bits of each 8-bit image (N, C, H, W), at compression level 9 (Pillow's
    encoder, which torchvision already depends on)."""
    return torch.tensor([8.0 * len(_png(image)) for image in images.cpu()])


def _png(image: Tensor) -> bytes:
    pixels = image.permute(1, 2, 0).squeeze(-1).numpy()  # (H, W) grey or (H, W, 3) colour
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def complexity_corrected(nll_nats: Tensor, images: Tensor) -> Tensor:
    """(N,) Serrà et al. 2020, eq. 2: S(x) = -log2 p(x) - L(x), with L(x) the PNG code length of the
    8-bit images (N, C, H, W) and -log p(x) in nats per image (``nll_nats``)."""
    return nll_nats / math.log(2) - png_bits(images)  # bits - bits


def subset(images: Tensor, n: int, seed: int = 0) -> Tensor:
    """``n`` of ``images`` drawn without replacement from a fixed seed (all of them when n is larger)."""
    if n >= len(images):
        return images
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]


def image_anomaly(
    model: GenerativeModel, inliers: Tensor, outliers: Tensor, *, batch_size: int = 250, **options: Any
) -> dict[str, Any]:
    """How well ``model`` tells 8-bit ``outliers`` (N, C, H, W) from ``inliers``: AUROC of its score,
    and, for families with a likelihood, of the complexity-corrected score; PNG's code length alone is
    the baseline. The scores themselves come back too, for ``plots.anomaly_histograms``."""
    started = time.perf_counter()
    score_in = anomaly_scores(model, from_uint8(inliers), batch_size=batch_size, **options)
    score_out = anomaly_scores(model, from_uint8(outliers), batch_size=batch_size, **options)
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "n_in": len(inliers), "n_out": len(outliers), "options": options,
        "auroc": auroc(score_in, score_out),
        "png_bits_auroc": auroc(png_bits(inliers), png_bits(outliers)),
        "ms_per_image": 1000 * seconds / (len(inliers) + len(outliers)),
        "scores": {"in": score_in, "out": score_out},
    }
    if model.likelihood != "none":  # the score is -log p(x) in nats
        corrected_in, corrected_out = complexity_corrected(score_in, inliers), complexity_corrected(score_out, outliers)
        report["corrected_auroc"] = auroc(corrected_in, corrected_out)
        report["scores"].update({"corrected_in": corrected_in, "corrected_out": corrected_out})
        report["bits_per_dim"] = {"in": bits_per_dim_mean(score_in, inliers), "out": bits_per_dim_mean(score_out, outliers)}
    return report


def bits_per_dim_mean(nll_nats: Tensor, images: Tensor) -> float:
    """The mean of -log2 p(x) / D over the images: the usual bits/dim, to show which set is 'likelier'."""
    return float(nll_nats.mean()) / (images[0].numel() * math.log(2))


# ----------------------------------------------------------------------------- text


def in_vocabulary(text: str, spec: TextSpec) -> tuple[str, float]:
    """``text`` without the characters the model has never seen, and the share of characters removed.

    A character outside the vocabulary has no probability at all under the model, so any window holding
    one is flagged for a trivial reason; removing them first tests whether the model tells the *style*
    of the text apart (code has '=' and '#' on most lines, Shakespeare none)."""
    known = set(spec.vocab)
    kept = "".join(ch for ch in text if ch in known)
    return kept, 1 - len(kept) / max(1, len(text))


def text_windows(ids: Tensor, length: int, n: int, seed: int = 0) -> Tensor:
    """(n, length) non-overlapping windows of the token ids, ``n`` of them from a fixed seed."""
    starts = torch.arange(0, len(ids) - length + 1, length)
    starts = subset(starts, n, seed)
    return ids[starts[:, None] + torch.arange(length)].long()


def text_anomaly(model: GenerativeModel, inliers: Tensor, outliers: Tensor) -> dict[str, Any]:
    """AUROC of nats per character separating the token windows ``outliers`` (N, T) from ``inliers``:
    the score of a window is its mean -log p over the T - 1 characters the model predicts."""
    started = time.perf_counter()
    score_in = anomaly_scores(model, inliers) / (inliers.shape[1] - 1)
    score_out = anomaly_scores(model, outliers) / (outliers.shape[1] - 1)
    seconds = time.perf_counter() - started
    return {
        "n_in": len(inliers), "n_out": len(outliers), "window": inliers.shape[1],
        "auroc": auroc(score_in, score_out),
        "nats_per_char": {"in": float(score_in.mean()), "out": float(score_out.mean())},
        "ms_per_window": 1000 * seconds / (len(inliers) + len(outliers)),
        "scores": {"in": score_in, "out": score_out},
    }


# ----------------------------------------------------------------------------- a trained run


def baseline_anomaly(train: Tensor, inliers: Tensor, outliers: Tensor) -> dict[str, float]:
    """The simplest likelihood model's AUROCs (``baselines.independent_pixels_nats``, counted on the
    training images): raw and complexity-corrected, what every family's numbers are read beside."""
    nll_in, nll_out = independent_pixels_nats(train, inliers), independent_pixels_nats(train, outliers)
    return {
        "auroc": auroc(nll_in, nll_out),
        "corrected_auroc": auroc(complexity_corrected(nll_in, inliers), complexity_corrected(nll_out, outliers)),
    }


def anomaly_run(
    run: str | Path, ood: str, *, n: int = 1_000, which: str = "last", data_root: str | None = None, **options: Any
) -> dict[str, Any]:
    """Score ``n`` held-out examples of the run's data against ``n`` of the data set ``ood`` (an image
    data set's name; for a text run, ``"python"``: the standard library's source) with the run's model
    (EMA weights when kept); the simplest model of the same training data is measured beside it."""
    model, cfg, spec = load_model(run, which)
    check_options(model.log_prob if model.likelihood != "none" else model.anomaly_score, options, "anomaly option ")
    model.to(pick_device(cfg.train.device))
    torch.manual_seed(0)  # the VAE's and the DDPM's bounds are estimated by sampling: repeatable
    data = load_data(cfg.data, data_root)
    if isinstance(spec, TextSpec):
        if ood != "python":
            raise DataError(f"a text run is tested against --ood python (the standard library's source), not {ood!r}")
        length = cfg.data.block_size + 1
        code, removed = in_vocabulary(python_source(max_chars=2 * n * length), spec)  # n windows, with room
        inliers, outliers = text_windows(data.val_ids, length, n), text_windows(spec.encode(code), length, n)
        report = {**text_anomaly(model, inliers, outliers), "removed_characters": removed}
        baseline_in = bigram_window_nats(data.train_ids, inliers, spec.vocab_size)
        report["baseline"] = {"auroc": auroc(baseline_in, bigram_window_nats(data.train_ids, outliers, spec.vocab_size))}
    else:
        outlier_data = load_data(DataConfig(name=ood, batch_size=1), data_root)
        inliers, outliers = subset(data.test_x, n), subset(outlier_data.test_x, n)
        report = image_anomaly(model, inliers, outliers, **options)
        report["baseline"] = baseline_anomaly(data.train_x, inliers, outliers)
    return {"run": str(run), "family": cfg.family, "dataset": cfg.data.name, "ood": ood, **report}
