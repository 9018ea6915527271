"""The evaluator every image family is scored with: a small classifier genzoo ships.

Published FIDs run samples through an ImageNet Inception network whose weights must be downloaded.
genzoo instead ships a small CNN trained on the MNIST digits it ships (``assets/evaluator_mnist_v1.pt``,
built by ``bench/build_evaluator.py``), so every machine computes the same numbers offline; FashionMNIST
runs use the same network trained on FashionMNIST (``evaluator_fashion_mnist_v1.pt``). The metrics
computed through it (FID-MNIST, precision and recall, recognizability, class coverage) are in
``genzoo.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import CheckpointError
from genzoo.pixels import from_uint8

ASSETS = Path(__file__).resolve().parent / "assets"
EVALUATOR_VERSION = 1  # bump when the network, its training data or its training recipe change
EVALUATOR_FORMAT = "genzoo-evaluator"
FEATURE_DIM = 128


def evaluator_path(dataset: str = "mnist", version: int = EVALUATOR_VERSION) -> Path:
    return ASSETS / f"evaluator_{dataset}_v{version}.pt"


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
                x = from_uint8(chunk) if chunk.dtype == torch.uint8 else chunk.float().clamp(-1, 1)
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
