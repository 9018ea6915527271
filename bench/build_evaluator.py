"""Train the classifier behind genzoo's sample-quality metrics and write it to ``genzoo/assets``.

    python bench/build_evaluator.py --data-root ../shared/data                   # MNIST, 40 epochs
    python bench/build_evaluator.py --dataset fashion_mnist --epochs 15 --data-root ../shared/data

MNIST: ``genzoo.evaluator.EvaluatorNet`` is trained on the 4,500-digit training split of the MNIST
sample genzoo ships (so anyone can rebuild it offline), then its accuracy is measured on the 500 digits
that sample holds out and, when ``--data-root`` holds it, on the full 10,000-digit MNIST test set.
FashionMNIST: trained on its 60,000 training images, measured on its 10,000 test images. Training
uses small random rotations, scalings and shifts. The weights and the accuracies go into
``genzoo/assets/evaluator_<dataset>_v<EVALUATOR_VERSION>.pt`` (tensors and plain data only, so it
loads with ``weights_only=True``). Run by a maintainer; the result is committed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from genzoo.config import DataConfig
from genzoo.evaluator import EVALUATOR_FORMAT, EVALUATOR_VERSION, EvaluatorNet, evaluator_path
from genzoo.pixels import from_uint8
from genzoo.sources import load_data, shipped_mnist


def distort(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random rotation (±12°), scale (0.9-1.1) and shift (±2 pixels) of images in [-1, 1]."""
    n = len(x)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(12)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * 2 / 28)  # grid units: 2 / 28 per pixel
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Shift to [0, 2] so the zero padding of grid_sample is the black background (-1) after shifting back.
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def accuracy(network: EvaluatorNet, images: Tensor, labels: Tensor) -> float:
    network.eval()
    with torch.no_grad():
        predicted = torch.cat([network(from_uint8(chunk)).argmax(-1) for chunk in images.split(1000)])
    return float((predicted == labels).float().mean())


def train(images: Tensor, labels: Tensor, epochs: int, batch_size: int = 128, seed: int = 0) -> EvaluatorNet:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = EvaluatorNet()
    steps = epochs * math.ceil(len(images) / batch_size)
    optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    x_all = from_uint8(images)
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for index in order.split(batch_size):
            loss = F.cross_entropy(network(distort(x_all[index], generator)), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / len(images):.4f}")
    return network.eval()


def training_data(dataset: str, data_root: str | None) -> tuple[Tensor, Tensor, dict[str, tuple[Tensor, Tensor]], str]:
    """Training images and labels, the held-out sets to measure on, and a line saying what was used."""
    if dataset == "mnist":
        shipped = shipped_mnist()
        heldout = {"shipped_heldout_500": (shipped.test_x, shipped.test_y)}
        if data_root:
            full = load_data(DataConfig(name="mnist", download=False), data_root)
            if len(full.test_x) == 10_000:
                heldout["mnist_test_10000"] = (full.test_x, full.test_y)
        trained_on = "the 4,500-digit training split of genzoo/assets/mnist_5k.npz"
        return shipped.train_x, shipped.train_y, heldout, trained_on
    data = load_data(DataConfig(name=dataset, download=False), data_root)
    heldout = {f"{dataset}_test_{len(data.test_y)}": (data.test_x, data.test_y)}
    return data.train_x, data.train_y, heldout, f"{data.source}, training split"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--data-root", help="a folder holding the test set (torchvision layout)")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    images, labels, heldout, trained_on = training_data(args.dataset, args.data_root)
    started = time.perf_counter()
    network = train(images, labels, args.epochs)
    seconds = time.perf_counter() - started
    measured = {name: accuracy(network, x, y) for name, (x, y) in heldout.items()}
    state = {
        "format": EVALUATOR_FORMAT,
        "version": EVALUATOR_VERSION,
        "dataset": args.dataset,
        "num_classes": 10,
        "width": 32,
        "weights": network.state_dict(),
        "accuracy": measured,
        "trained_on": trained_on,
        "built": datetime.date.today().isoformat(),
    }
    path = evaluator_path(args.dataset)
    torch.save(state, path)
    print(json.dumps({"path": str(path), "bytes": path.stat().st_size, "accuracy": measured,
                      "train_seconds": round(seconds, 1), "epochs": args.epochs, "torch": torch.__version__,
                      "machine": platform.machine(), "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
