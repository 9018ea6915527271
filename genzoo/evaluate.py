"""One evaluator for every image family: a small MNIST classifier genzoo ships, and the sample-quality
metrics computed through it.

Published FIDs run samples through an ImageNet Inception network whose weights must be downloaded.
genzoo instead ships a small CNN trained on the MNIST digits it ships (``assets/evaluator_mnist_v1.pt``,
built by ``bench/build_evaluator.py``), so every machine computes the same numbers offline; FashionMNIST
runs use the same network trained on FashionMNIST (``evaluator_fashion_mnist_v1.pt``). All the metrics
compare generated images with real ones through that network:

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
- **Class coverage**: the entropy of the histogram of predicted classes divided by log 10, so 1.0
  is an even spread over the ten digits and 0.0 is a single digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import CheckpointError

ASSETS = Path(__file__).resolve().parent / "assets"
EVALUATOR_VERSION = 1  # bump when the network, its training data or its training recipe change
EVALUATOR_FORMAT = "genzoo-evaluator"
FEATURE_DIM = 128


def evaluator_path(dataset: str = "mnist", version: int = EVALUATOR_VERSION) -> Path:
    return ASSETS / f"evaluator_{dataset}_v{version}.pt"


# ---------------------------------------------------------------------------------------------
# The classifier.


class EvaluatorNet(nn.Module):
    """A 28x28 grey image in [-1, 1] -> 10 class logits; ``features`` is the 128-d layer before them."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),  # (B, 2w, 7, 7)
        )
        self.project = nn.Linear(2 * width * 7 * 7, FEATURE_DIM)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        # Before the ReLU: no dead (always-zero) dimensions, so the feature covariance is full rank.
        return self.project(self.convs(x).flatten(1))  # (B, 128)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(F.relu(self.features(x))))  # (B, 10)


@dataclass
class Evaluator:
    """The shipped classifier and what it was measured to do when it was built."""

    network: EvaluatorNet
    dataset: str
    version: int
    accuracy: dict[str, float]  # held-out accuracies measured by bench/build_evaluator.py

    @property
    def name(self) -> str:
        return f"{self.dataset}-cnn-v{self.version}"

    def embed(self, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
        """Images (N, 1, 28, 28) in [-1, 1] (or uint8 0..255) -> features (N, 128), class probabilities (N, 10)."""
        self.network.eval()
        features, probs = [], []
        with torch.no_grad():
            for chunk in images.split(batch_size):
                x = chunk.float() / 127.5 - 1 if chunk.dtype == torch.uint8 else chunk.float().clamp(-1, 1)
                h = self.network.features(x.cpu())
                features.append(h)
                probs.append(self.network.head(F.relu(h)).softmax(-1))
        return torch.cat(features), torch.cat(probs)


def load_evaluator(dataset: str = "mnist", version: int = EVALUATOR_VERSION) -> Evaluator:
    """The shipped evaluator for ``dataset``, loaded with ``weights_only=True``."""
    path = evaluator_path(dataset, version)
    if not path.exists():
        shipped = sorted(p.name for p in ASSETS.glob("evaluator_*.pt"))
        raise CheckpointError(f"no evaluator {path.name} for {dataset!r}; genzoo ships: {', '.join(shipped) or 'none'}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != EVALUATOR_FORMAT:
        raise CheckpointError(f"{path} is not a genzoo evaluator (expected format {EVALUATOR_FORMAT!r})")
    network = EvaluatorNet(state["num_classes"], state["width"])
    network.load_state_dict(state["weights"])
    return Evaluator(network.eval(), state["dataset"], state["version"], state["accuracy"])


# ---------------------------------------------------------------------------------------------
# The metrics.


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


def reference_points(train: Tensor, test: Tensor, evaluator: Evaluator, n: int, seed: int = 0) -> dict[str, dict]:
    """What the metrics read for real images (the floor) and for noise and blank images (ceilings).

    ``n`` images of each kind (at most all of ``train``) are scored against ``test``, so the floor and
    ceilings carry the same small-sample bias as ``n`` generated samples.
    """
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(train), generator=generator)[: min(n, len(train))]
    noise = torch.randn(n, *test.shape[1:], generator=generator).clamp(-1, 1)
    blank = torch.full((n, *test.shape[1:]), -1.0)  # MNIST's background is black
    test_features, _ = evaluator.embed(test)
    references = {"real train images": train[pick], "Gaussian noise": noise, "blank images": blank}
    return {name: feature_metrics(test_features, *evaluator.embed(x)) for name, x in references.items()}


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
