"""Figures the runs write: the loss curve (train and validation) from ``metrics.jsonl``, image grids."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: writing files needs no GUI backend
from torch import Tensor
from torchvision.utils import save_image


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(metrics_path: str | Path, out_path: str | Path, key: str = "loss", label: str = "") -> Path:
    """Plot ``key`` against step for the train and val records of a run's ``metrics.jsonl``;
    ``label`` names the y axis (default: the key)."""
    records = read_metrics(metrics_path)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for split, style in (("train", "-"), ("val", "o-")):
        points = [(r["step"], r[key]) for r in records if r["split"] == split and key in r]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, style, label=split, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel(label or key)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    return Path(out_path)


def save_grid(x: Tensor, path: str | Path, nrow: int) -> Path:
    """Images in [-1, 1], (B, C, H, W), as one PNG grid with ``nrow`` images per row."""
    save_image(x.detach().cpu().clamp(-1, 1), path, nrow=nrow, padding=1, normalize=True, value_range=(-1, 1))
    return Path(path)
