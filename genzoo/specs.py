"""What a model needs to know about its data, saved in every checkpoint so a run loads without it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genzoo.pixels import from_uint8, to_uint8


@dataclass
class ImageSpec:
    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int

    def save_samples(self, x: Tensor, path: Path) -> Path:
        """Save images in [-1, 1] as one PNG grid at ``path`` with suffix .png."""
        from torchvision.utils import save_image

        path = Path(path).with_suffix(".png")
        nrow = max(1, int(len(x) ** 0.5))
        save_image(from_uint8(to_uint8(x.detach().cpu())), path, nrow=nrow, normalize=True, value_range=(-1, 1))
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", **asdict(self)}


@dataclass
class TextSpec:
    name: str
    vocab: str  # every character of the corpus, sorted; token id i is vocab[i]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> Tensor:
        index = {ch: i for i, ch in enumerate(self.vocab)}
        missing = sorted(set(text) - set(index))
        if missing:
            from genzoo.errors import DataError

            raise DataError(f"characters {''.join(missing)!r} are not in the {self.name} vocabulary")
        return torch.tensor([index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids: Tensor) -> str:
        return "".join(self.vocab[i] for i in ids.tolist())

    def save_samples(self, ids: Tensor, path: Path) -> Path:
        """Decode (n, T) token ids and write them to ``path`` with suffix .txt, one sample per block."""
        path = Path(path).with_suffix(".txt")
        texts = [self.decode(row) for row in ids.detach().cpu()]
        path.write_text("\n\n=====\n\n".join(texts) + "\n")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "text", **asdict(self)}


@dataclass
class PointSpec:
    """Points in the plane (or R^dim): the 2-D toy sets that make a quick test of a density model."""

    name: str
    dim: int
    num_classes: int  # which mode (ring8) or which moon (moons) a point came from

    def save_samples(self, x: Tensor, path: Path) -> Path:
        """A scatter plot of (n, 2) points at ``path`` with suffix .png."""
        from matplotlib.figure import Figure  # not pyplot: no backend or display involved

        path = Path(path).with_suffix(".png")
        points = x.detach().cpu().float()
        fig = Figure(figsize=(3, 3), dpi=100)
        ax = fig.subplots()
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_aspect("equal")
        ax.set_title(f"{self.name}: {len(points)} samples", fontsize=9)
        fig.savefig(path, bbox_inches="tight")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "points", **asdict(self)}


def spec_from_dict(table: dict[str, Any]) -> ImageSpec | TextSpec | PointSpec:
    table = dict(table)
    kind = table.pop("kind")
    if kind == "image":
        return ImageSpec(name=table["name"], shape=tuple(table["shape"]), num_classes=table["num_classes"])
    if kind == "points":
        return PointSpec(**table)
    return TextSpec(**table)
