"""Every number genzoo reports, in one place: likelihoods, sample quality, OOD scores, mode coverage.

**Likelihood.** ``log_prob`` returns nats per example of the *discrete* data (8-bit images or token
sequences), so bits per dimension is one formula for all: bits/dim = -log p(x) / (D · ln 2), with
D = pixels (784 for MNIST) or predicted characters.

**Sample quality**, through the shipped classifier (``genzoo.evaluator``):

- **FID-MNIST** (Heusel et al. 2017, eq. 6 with our features): the Fréchet distance between Gaussians
  fitted to the 128-dimensional penultimate features of real and generated images,
  ``||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2)``. It is *not* Inception FID:
  do not compare it with published FIDs. Like FID it is biased upwards for small sample sets, so only
  numbers computed from the same number of samples compare.
- **Precision and recall** (Kynkäänniemi et al. 2019): each feature set approximates its manifold by
  balls reaching each point's k-th nearest neighbour; precision is the share of generated points
  inside the real manifold (quality), recall the share of real points inside the generated one
  (diversity).
- **Recognizability**: the share of samples whose top class probability is at least 0.9.
- **Prompt accuracy** (text-to-image): the share of samples the classifier labels as the digit their
  prompt asked for; **class-conditional recall**: the recall of each digit's samples against that
  digit's real images, averaged over the digits (diversity given the prompt).
- **Class coverage**: the entropy of the histogram of predicted classes divided by log 10, so 1.0
  is an even spread over the ten digits and 0.0 is a single digit.

**Out-of-distribution detection**: the AUROC of a score (Mann-Whitney U). **Mode collapse** on the
ring of 8 Gaussians: VEEGAN's modes covered and high-quality share.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable

import torch
from torch import Tensor

from genzoo.evaluator import Evaluator
from genzoo.model import GenerativeModel

# ---------------------------------------------------------------------------------------------
# Likelihood.


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nll_nats / (dims * math.log(2))


def heldout_nll(
    model: GenerativeModel, batches: Iterable[tuple[Tensor, Tensor]], **log_prob_options: Any
) -> dict[str, float]:
    """Mean negative log-likelihood (nats per example) of ``model`` over every batch, and bits/dim.

    For images the dimension count is the pixels per image; for token sequences it is the number of
    predicted tokens per sequence (all but the first, which ``log_prob`` conditions on).
    """
    device = model.device
    total_nats, examples, dims, started = 0.0, 0, 0, time.perf_counter()
    for x, _ in batches:
        x = x.to(device)
        with torch.no_grad():
            total_nats -= float(model.log_prob(x, **log_prob_options).sum())
        examples += len(x)
        dims = x[0].numel() if x.is_floating_point() else x.shape[1] - 1
    nll = total_nats / examples
    return {
        "nll_nats": nll,
        "bits_per_dim": bits_per_dim(nll, dims),
        "examples": examples,
        "seconds": time.perf_counter() - started,
    }

def mean_metrics(records: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each number over a list of metric dicts with the same keys ({} for no records)."""
    keys = records[0].keys() if records else []
    return {k: sum(r[k] for r in records) / len(records) for k in keys}


# ---------------------------------------------------------------------------------------------
# Sample quality through the evaluator's features.


def gaussian_frechet(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, cov1) and N(mu2, cov2), in float64.

    tr((cov1 cov2)^1/2) is computed as tr((A cov2 A)^1/2) with A = cov1^1/2: a symmetric matrix, so
    both square roots come from ``eigh`` and stay real (Dowson & Landau 1982).
    """
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    root1 = _psd_sqrt(cov1)
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def mean_and_covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    features = features.double()
    return features.mean(0), torch.cov(features.T)  # (D,), (D, D) with the n - 1 normaliser


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID-style distance between two feature sets (N, D) and (M, D)."""
    return gaussian_frechet(*mean_and_covariance(real), *mean_and_covariance(fake))


def knn_radii(points: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each point (N, D) to its k-th nearest neighbour among the others."""
    radii = [torch.cdist(block, points).kthvalue(k + 1, dim=1).values for block in points.split(chunk)]
    return torch.cat(radii)  # (N,); k + 1 because each point is its own nearest neighbour


def inside_manifold(queries: Tensor, points: Tensor, radii: Tensor, chunk: int = 2048) -> Tensor:
    """For each query (M, D): is it within some point's k-NN ball (Kynkäänniemi et al. 2019, eq. 1)?"""
    hits = [(torch.cdist(block, points) <= radii[None]).any(1) for block in queries.split(chunk)]
    return torch.cat(hits)  # (M,) bool


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` against ``real`` feature sets (k = 3 as in the paper)."""
    real, fake = real.float(), fake.float()
    precision = inside_manifold(fake, real, knn_radii(real, k)).float().mean()
    recall = inside_manifold(real, fake, knn_radii(fake, k)).float().mean()
    return float(precision), float(recall)


def recognizability(probs: Tensor, threshold: float = 0.9) -> float:
    """Share of samples the classifier calls one class with probability >= ``threshold``."""
    return float((probs.max(-1).values >= threshold).float().mean())


def class_coverage(probs: Tensor) -> float:
    """Entropy of the predicted-class histogram over log(classes): 1.0 uniform, 0.0 one class."""
    counts = torch.bincount(probs.argmax(-1), minlength=probs.shape[-1]).double()
    p = counts / counts.sum()
    entropy = (p[p > 0] * (1 / p[p > 0]).log()).sum()  # written so one class gives 0.0, not -0.0
    return float(entropy / math.log(probs.shape[-1]))


def feature_metrics(real_features: Tensor, fake_features: Tensor, fake_probs: Tensor, k: int = 3) -> dict[str, float]:
    """Every quality metric from evaluator outputs: features (N, D) real, (M, D) generated, probabilities (M, 10)."""
    precision, recall = precision_recall(real_features, fake_features, k)
    return {
        "fid": frechet_distance(real_features, fake_features),
        "precision": precision,
        "recall": recall,
        "recognizability": recognizability(fake_probs),
        "coverage": class_coverage(fake_probs),
        "samples": len(fake_features),
        "real": len(real_features),
    }


def image_metrics(samples: Tensor, real: Tensor, evaluator: Evaluator, k: int = 3) -> dict[str, float]:
    """Every quality metric of ``samples`` against the ``real`` images, both (N, 1, 28, 28)."""
    real_features, _ = evaluator.embed(real)
    return feature_metrics(real_features, *evaluator.embed(samples), k)


def class_conditional_recall(
    real_features: Tensor, real_labels: Tensor, fake_features: Tensor, fake_labels: Tensor, k: int = 3
) -> float:
    """Diversity within each class: the recall of the samples meant to be of class c against the real
    images of class c, averaged over the classes (a sampler that draws one good seven per prompt "seven"
    has high accuracy and low recall here). Classes with no samples count as 0."""
    recalls = []
    for c in real_labels.unique():
        fake = fake_features[fake_labels == c]
        recalls.append(precision_recall(real_features[real_labels == c], fake, k)[1] if len(fake) > k else 0.0)
    return sum(recalls) / len(recalls)


def prompt_metrics(
    samples: Tensor, digits: Tensor, real: Tensor, real_labels: Tensor, evaluator: Evaluator, k: int = 3
) -> dict[str, float]:
    """Text-to-image: the evaluator's quality metrics of ``samples`` (N, 1, 28, 28), the share it labels
    as the digit their prompts asked for (``digits`` (N,)): prompt accuracy, and the class-conditional
    recall against the ``real`` images of each digit (``real_labels``)."""
    real_features, _ = evaluator.embed(real)
    features, probs = evaluator.embed(samples)
    digits = digits.cpu()
    return {
        "prompt_accuracy": float((probs.argmax(1) == digits).float().mean()),
        "class_recall": class_conditional_recall(real_features, real_labels.cpu(), features, digits, k),
        **feature_metrics(real_features, features, probs, k),
    }


def real_fid_spread(train_features: Tensor, test_features: Tensor, n: int, draws: int = 10, seed: int = 1) -> dict:
    """FID of ``draws`` random ``n``-subsets of the real training features against the test features:
    how much FID moves with the sample alone. Differences between models smaller than this range are
    noise at this ``n``. Empty when ``n`` takes every training image (no two subsets differ)."""
    if n >= len(train_features):
        return {}
    generator = torch.Generator().manual_seed(seed)
    test_stats = mean_and_covariance(test_features)
    subsets = [torch.randperm(len(train_features), generator=generator)[:n] for _ in range(draws)]
    fids = torch.tensor([gaussian_frechet(*test_stats, *mean_and_covariance(train_features[i])) for i in subsets])
    return {"fid_min": float(fids.min()), "fid_max": float(fids.max()), "fid_sd": float(fids.std()), "fid_draws": draws}


def reference_points(train: Tensor, test: Tensor, evaluator: Evaluator, n: int, seed: int = 0) -> dict[str, dict]:
    """What the metrics read for real images (the floor) and for noise and blank images (ceilings).

    ``n`` images of each kind (at most all of ``train``) are scored against ``test``, so the floor and
    ceilings carry the same small-sample bias as ``n`` generated samples. The floor also carries the
    range of FID over other random subsets of ``n`` real images (``real_fid_spread``).
    """
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(train), generator=generator)[: min(n, len(train))]
    noise = torch.randn(n, *test.shape[1:], generator=generator).clamp(-1, 1)
    blank = torch.full((n, *test.shape[1:]), -1.0)  # MNIST's background is black
    test_features, _ = evaluator.embed(test)
    train_features, train_probs = evaluator.embed(train)
    floor = feature_metrics(test_features, train_features[pick], train_probs[pick])
    ceilings = {"Gaussian noise": noise, "blank images": blank}
    return {
        "real train images": {**floor, **real_fid_spread(train_features, test_features, n)},
        **{name: feature_metrics(test_features, *evaluator.embed(x)) for name, x in ceilings.items()},
    }


# ---------------------------------------------------------------------------------------------
# Out-of-distribution detection.


def auroc(scores_in: Tensor, scores_out: Tensor) -> float:
    """Area under the ROC curve of a score meant to be higher for ``scores_out`` (anomalies) than for
    ``scores_in``: the probability that a random anomaly outscores a random inlier, ties counting
    one half (the Mann-Whitney U statistic divided by n_in n_out). 0.5 is chance, 1.0 perfect."""
    inliers = scores_in.detach().flatten().double().sort().values  # (n_in,)
    outliers = scores_out.detach().flatten().double().to(inliers.device)  # (n_out,)
    below = torch.searchsorted(inliers, outliers, side="left")  # inliers strictly lower than each anomaly
    tied = torch.searchsorted(inliers, outliers, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(inliers) * len(outliers)))


# ---------------------------------------------------------------------------------------------
# Mode collapse on the ring of 8 Gaussians.

RING8_STD = 0.05  # the standard deviation of each of the ring's 8 Gaussians


def ring8_centres(device: torch.device | str | None = None) -> Tensor:
    """The 8 mode centres on the unit circle, (8, 2), mode m at angle m * 2 pi / 8."""
    angle = torch.arange(8, device=device) * (2 * torch.pi / 8)
    return torch.stack([angle.cos(), angle.sin()], dim=1)


def even_ring(n: int) -> Tensor:
    """``n`` points spread evenly along the unit circle, (n, 2): the baseline a ring model must beat.

    They find all 8 modes and put about 0.38 of themselves within 3 standard deviations of a centre
    (the arcs within 0.15 of the 8 centres), without having learned any mode: a model that only
    learned the circle scores about this, one that learned the 8 clusters scores far higher.
    """
    angle = torch.arange(n) * (2 * torch.pi / n)
    return torch.stack([angle.cos(), angle.sin()], dim=1)


def ring8_quality(x: Tensor) -> dict[str, float]:
    """Mode collapse, measured as VEEGAN (Srivastava et al. 2017) does on this ring.

    A sample is high quality when it lies within 3 standard deviations of its nearest mode's centre;
    a mode is covered when it holds at least a quarter of an even share (1/32) of the samples as
    high-quality ones. Returns ``modes`` (0..8) and ``high_quality`` (the share of samples, 0..1).
    """
    distance, mode = torch.cdist(x.float(), ring8_centres(x.device)).min(dim=1)  # (n,), (n,)
    good = distance < 3 * RING8_STD
    counts = torch.bincount(mode[good], minlength=8)  # (8,)
    covered = counts >= len(x) / 32
    return {"modes": float(covered.sum()), "high_quality": float(good.float().mean())}
