"""Figures the runs and recipes write: the loss curve (train and validation) from ``metrics.jsonl``,
image grids, trajectory strips, and 2-D panels of data beside a density on a grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # no pyplot: writing files needs no GUI backend
from matplotlib.image import AxesImage
from torch import Tensor
from torchvision.utils import save_image

from genzoo.metrics import ring8_centres


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


def trajectory_strip(states: Iterable[Tensor], frames: int = 10) -> Tensor:
    """``frames`` evenly spaced states of a trajectory, the first and the last included, one row per
    chain: states of shape (n, C, H, W) -> (n * frames, C, H, W), row-major, for ``save_grid(nrow=frames)``."""
    states = list(states)
    pick = torch.linspace(0, len(states) - 1, frames).round().long().tolist()
    return torch.stack([states[i] for i in pick], dim=1).flatten(0, 1)


def square_grid(extent: float, cells: int) -> Tensor:
    """The centres of a ``cells`` x ``cells`` grid over [-extent, extent]^2, row by row from the bottom:
    (cells * cells, 2), so that ``values.view(cells, cells)`` is an image for ``density_panel``."""
    side = torch.linspace(-extent, extent, cells)
    return torch.stack(torch.meshgrid(side, side, indexing="xy"), dim=-1).view(-1, 2)


def points_panel(ax: Axes, points: Tensor, extent: float) -> None:
    """2-D points (N, 2) as a scatter on fixed, equal axes over [-extent, extent]^2."""
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
    _square_axes(ax, extent)


def ring8_panel(ax: Axes, points: Tensor, title: str = "", extent: float = 1.5) -> None:
    """Samples of the ring of 8 Gaussians on fixed, equal axes, with the 8 true mode centres marked."""
    points_panel(ax, points, extent)
    centres = ring8_centres()
    ax.scatter(centres[:, 0], centres[:, 1], s=60, marker="x", color="red", linewidths=1.5, label="true modes")
    ax.set_title(title, fontsize=9)


def density_panel(ax: Axes, values: Tensor, extent: float, cmap: str = "viridis") -> AxesImage:
    """Values on ``square_grid(extent, cells)``, shaped (cells, cells), as an image on fixed, equal axes."""
    image = ax.imshow(values, origin="lower", extent=(-extent, extent, -extent, extent), cmap=cmap)
    _square_axes(ax, extent)
    return image


def _square_axes(ax: Axes, extent: float) -> None:
    # The same fixed limits on every panel, so the data and the density line up side by side; fixed
    # limits also stop later scatters of samples from rescaling the panel.
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")


def score_histograms(
    panels: dict[str, tuple[Tensor, Tensor, float]], path: str | Path, names: tuple[str, str] = ("inliers", "outliers"),
    columns: int = 4,
) -> Path:
    """One histogram panel per score, ``columns`` to a row: ``panels`` maps a title to (inlier scores,
    outlier scores, AUROC); both sets share the panel's bins, so their overlap is what the AUROC measures."""
    rows = -(-len(panels) // columns)
    width = min(columns, len(panels))
    fig = Figure(figsize=(3.2 * width, 2.8 * rows))
    axes = fig.subplots(rows, width, squeeze=False).flatten()
    for ax, (title, (inliers, outliers, area)) in zip(axes, panels.items()):
        both = torch.cat([inliers, outliers]).float()
        bins = torch.linspace(float(both.quantile(0.005)), float(both.quantile(0.995)), 50).tolist()
        ax.hist(inliers.float().numpy(), bins=bins, alpha=0.6, label=names[0], density=True)
        ax.hist(outliers.float().numpy(), bins=bins, alpha=0.6, label=names[1], density=True)
        ax.set_title(f"{title}\nAUROC {area:.3f}", fontsize=9)
        ax.set_xlabel("score (higher = more unusual)", fontsize=8)
        ax.set_yticks([])
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def image_row(ax: Axes, x: Tensor, n: int) -> None:
    """Images in [-1, 1] (k, C, H, W) side by side in ``ax`` (room for ``n``), white between, no ticks."""
    from torchvision.utils import make_grid

    grid = make_grid(x.detach().cpu().float().clamp(-1, 1), nrow=n, padding=1, pad_value=1,
                     normalize=True, value_range=(-1, 1))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def labelled_rows(rows: dict[str, Tensor], path: str | Path, scale: float = 0.5) -> Path:
    """One row of images in [-1, 1] (n, C, H, W) per entry of ``rows``, its name written at its left;
    ``scale`` inches per image."""
    n = max(len(x) for x in rows.values())
    fig = Figure(figsize=(scale * n + 1.2, scale * len(rows) + 0.2))
    for ax, (name, x) in zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        image_row(ax, x, n)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def prompt_guidance_grid(
    images: dict[str, list[Tensor]], scales: list[float], path: str | Path, scale: float = 0.45
) -> Path:
    """Text-to-image's figure: one row per prompt (the keys of ``images``, as labels), one panel per
    guidance scale s, each panel the images (k, C, H, W) in [-1, 1] drawn for that prompt at that s."""
    k = max(len(x) for row in images.values() for x in row)
    fig = Figure(figsize=(scale * k * len(scales) + 1.8, scale * len(images) + 0.5))
    axes = fig.subplots(len(images), len(scales), squeeze=False)
    for r, (prompt, row) in enumerate(images.items()):
        for c, x in enumerate(row):
            image_row(axes[r, c], x, k)
            if r == 0:
                axes[r, c].set_title(f"guidance s = {scales[c]:g}", fontsize=9)
        axes[r, 0].set_ylabel(prompt, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
