"""Datasets: real data from disk or the network, else the small data genzoo ships, never silently.

Four datasets, by the name a config's ``[data]`` table gives:

- ``mnist``: torchvision's MNIST under ``<root>/MNIST/raw``, downloaded there when missing. Offline
  and without the files, genzoo says so in one line and uses the 5,000 digits it ships
  (``assets/mnist_5k.npz``), holding out the last 10% of each class as the test split.
- ``fashion_mnist``: torchvision's FashionMNIST under ``<root>/FashionMNIST/raw``, or the files
  Debian's ``dataset-fashion-mnist`` package installs; nothing shipped, so missing is an error.
- ``shakespeare``: Shakespeare's works from Project Gutenberg, shipped with genzoo (works offline).
- ``tinyshakespeare``: char-rnn's 1.1 MB corpus at ``<root>/tinyshakespeare/input.txt``, downloaded
  there when missing.

Two 2-D toy sets, drawn from a fixed seed (nothing on disk), for tests that train in seconds:
``ring8`` (8 Gaussians on the unit circle, labelled by mode) and ``moons`` (two interleaved half
circles, labelled by moon).

The data root is ``--data-root``, else ``$GENZOO_DATA``, else ``$XDG_CACHE_HOME/genzoo`` (or
``~/.cache/genzoo``). Whole datasets live in memory (uint8 images, small-integer token ids) and
batches are cut from them by indexing: no DataLoader, no worker processes to start on a 2-core laptop.

Every loader yields ``(x, y)``: images in [-1, 1] (B, 1, 28, 28) and int64 labels (B,), token ids
(B, T) and next-token targets (B, T), both int64, or 2-D points (B, 2) and int64 labels (B,).
Training batches come from a ``BatchStream`` that owns its random generator, so its ``state_dict``
resumes the exact batch order after a restart.
"""

from __future__ import annotations

import bz2
import gzip
import os
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from genzoo.config import DataConfig
from genzoo.errors import DataError
from genzoo.specs import ImageSpec, PointSpec, TextSpec, from_uint8

Batch = tuple[Tensor, Tensor]

ASSETS = Path(__file__).resolve().parent / "assets"
MNIST_SAMPLE = ASSETS / "mnist_5k.npz"
SHAKESPEARE = ASSETS / "shakespeare.txt.bz2"
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
APT_SUFFIXES = (".gz", "")  # the Debian package installs the gzipped originals
IMAGE_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's class and folder names
DATASETS = ("mnist", "fashion_mnist", "shakespeare", "tinyshakespeare")
TOY_DATASETS = ("ring8", "moons")  # 2-D points drawn from a fixed seed: nothing on disk to describe
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
HELD_OUT_FRACTION = 0.1  # of the shipped MNIST sample (per class), and of every text (its end)
VAL_SEED = 1234  # the fixed windows text validation draws


def data_root(cli_root: str | None = None) -> Path:
    """``--data-root``, else ``$GENZOO_DATA``, else the user cache folder (created only by downloads)."""
    if cli_root:
        return Path(cli_root).expanduser().absolute()
    if os.environ.get("GENZOO_DATA"):
        return Path(os.environ["GENZOO_DATA"]).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser().absolute() / "genzoo"


# ---------------------------------------------------------------------------------------------
# Training streams: infinite, seeded by their own generator, exactly resumable.


class BatchStream:
    """Infinite training batches. ``state_dict`` holds tensors and ints only (``weights_only`` loads)."""

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Batch:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


class ImageStream(BatchStream):
    """Epochs of a random permutation; the last partial batch of an epoch is dropped.

    The state is the generator's state at the start of the current epoch plus the position in it:
    replaying that state redraws the same permutation, so a loaded stream continues exactly.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, seed: int):
        if not 0 < batch_size <= len(images):
            raise DataError(f"batch_size must be between 1 and {len(images):,} (the training images), got {batch_size}")
        self.images, self.labels, self.batch_size = images, labels, batch_size  # (N, 1, 28, 28) uint8, (N,)
        self.generator = torch.Generator().manual_seed(seed)
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.epoch_rng = self.generator.get_state()
        self.order = torch.randperm(len(self.images), generator=self.generator)
        self.position = 0

    def __next__(self) -> Batch:
        if self.position + self.batch_size > len(self.images):
            self._start_epoch()
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return from_uint8(self.images[index]), self.labels[index]  # (B, 1, 28, 28), (B,)

    def state_dict(self) -> dict:
        return {"epoch_rng": self.epoch_rng.clone(), "position": self.position, "num_examples": len(self.images)}

    def load_state_dict(self, state: dict) -> None:
        _check_size(state["num_examples"], len(self.images), "training images")
        self.generator.set_state(state["epoch_rng"])
        self._start_epoch()
        self.position = int(state["position"])


class PointStream(ImageStream):
    """``ImageStream``'s epochs and exact resume, over float points (N, D) instead of uint8 images."""

    def __next__(self) -> Batch:
        if self.position + self.batch_size > len(self.images):
            self._start_epoch()
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.images[index], self.labels[index]  # (B, D), (B,)


class TextStream(BatchStream):
    """nanoGPT's batches: ``batch_size`` windows at random offsets; y is x shifted one token left."""

    def __init__(self, ids: Tensor, block_size: int, batch_size: int, seed: int):
        if len(ids) <= block_size + 1:
            raise DataError(f"block_size {block_size} is too long for a text of {len(ids):,} training tokens")
        self.ids, self.block_size, self.batch_size = ids, block_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __next__(self) -> Batch:
        starts = torch.randint(len(self.ids) - self.block_size, (self.batch_size,), generator=self.generator)
        return windows(self.ids, starts, self.block_size)

    def state_dict(self) -> dict:
        return {"rng": self.generator.get_state(), "num_tokens": len(self.ids)}

    def load_state_dict(self, state: dict) -> None:
        _check_size(state["num_tokens"], len(self.ids), "training tokens")
        self.generator.set_state(state["rng"])


def windows(ids: Tensor, starts: Tensor, block_size: int) -> Batch:
    """x = ids[i : i+T], y = ids[i+1 : i+T+1] for each start i, as int64 (B, T) each."""
    block = ids[starts[:, None] + torch.arange(block_size + 1)].long()  # (B, T+1)
    return block[:, :-1], block[:, 1:]


def _check_size(saved: int, now: int, what: str) -> None:
    if int(saved) != now:
        raise DataError(
            f"the saved data stream had {int(saved):,} {what}, this data has {now:,}: resume with the same dataset"
        )


# ---------------------------------------------------------------------------------------------
# Datasets held in memory.


class Data:
    """A dataset in memory: its spec, where it came from, and its batches."""

    spec: ImageSpec | TextSpec
    source: str  # one line: where the data came from and how much there is

    def train_stream(self, batch_size: int, seed: int) -> BatchStream:
        raise NotImplementedError

    def val_batches(self, batch_size: int, n_batches: int) -> Iterator[Batch]:
        raise NotImplementedError

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError

    samples_to_score = 0  # how many samples the trainer draws at each evaluation for score_samples

    def score_samples(self, x: Tensor) -> dict[str, float]:
        """Quality numbers of samples that this data set can compute cheaply (the ring's modes)."""
        return {}


class ImageData(Data):
    """Train images and the held-out (test) images, uint8 (N, 1, 28, 28), with int64 labels."""

    def __init__(self, spec: ImageSpec, source: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]):
        self.spec, self.source = spec, source
        self.train_images, self.train_labels = train
        self.test_images, self.test_labels = test

    def train_stream(self, batch_size: int, seed: int) -> ImageStream:
        return ImageStream(self.train_images, self.train_labels, batch_size, seed)

    def val_batches(self, batch_size: int, n_batches: int) -> Iterator[Batch]:
        """The first ``n_batches * batch_size`` held-out images in order (fewer if the split is smaller)."""
        n = min(batch_size * n_batches, len(self.test_images))
        yield from self._in_order(n, batch_size)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """Every held-out image once, in order; the last batch may be smaller."""
        yield from self._in_order(len(self.test_images), batch_size)

    def _in_order(self, n: int, batch_size: int) -> Iterator[Batch]:
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            yield from_uint8(self.test_images[i:j]), self.test_labels[i:j]


class PointData(ImageData):
    """Train and test points (N, D) float32 with int64 labels; batches are the points themselves."""

    def train_stream(self, batch_size: int, seed: int) -> PointStream:
        return PointStream(self.train_images, self.train_labels, batch_size, seed)

    def _in_order(self, n: int, batch_size: int) -> Iterator[Batch]:
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            yield self.test_images[i:j], self.test_labels[i:j]


class Ring8Data(PointData):
    """The ring of 8 Gaussians, whose samples the trainer scores for mode collapse at each evaluation."""

    samples_to_score = 1000

    def score_samples(self, x: Tensor) -> dict[str, float]:
        return ring8_quality(x)


TOY_SIZES = (8_000, 2_000)  # train and test points
TOY_SEEDS = (0, 1)  # train and test are independent draws


def ring8(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points from 8 Gaussians (std 0.05) centred on the unit circle; the label is the mode."""
    mode = torch.randint(0, 8, (n,), generator=generator)
    angle = mode.float() * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1)  # (n, 2)
    return centres + RING8_STD * torch.randn(n, 2, generator=generator), mode


RING8_STD = 0.05


def ring8_quality(x: Tensor) -> dict[str, float]:
    """Mode collapse, measured as VEEGAN (Srivastava et al. 2017) does on this ring.

    A sample is high quality when it lies within 3 standard deviations of its nearest mode's centre;
    a mode is covered when it holds at least a quarter of an even share (1/32) of the samples as
    high-quality ones. Returns ``modes`` (0..8) and ``high_quality`` (the share of samples, 0..1).
    """
    angle = torch.arange(8, device=x.device) * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1)  # (8, 2)
    distance, mode = torch.cdist(x.float(), centres).min(dim=1)  # (n,), (n,)
    good = distance < 3 * RING8_STD
    counts = torch.bincount(mode[good], minlength=8)  # (8,)
    covered = counts >= len(x) / 32
    return {"modes": float(covered.sum()), "high_quality": float(good.float().mean())}


def moons(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points from two interleaved half circles (noise std 0.05), centred and scaled to about [-1, 1]."""
    moon = torch.randint(0, 2, (n,), generator=generator)
    angle = torch.rand(n, generator=generator) * torch.pi
    upper = torch.stack([angle.cos(), angle.sin()], dim=1)  # (n, 2)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)
    points = torch.where(moon[:, None] == 0, upper, lower) + 0.05 * torch.randn(n, 2, generator=generator)
    return (points - torch.tensor([0.5, 0.25])) / 1.5, moon  # x in about [-1, 1], y in [-0.5, 0.5]


def _load_toy(name: str) -> PointData:
    draw = {"ring8": ring8, "moons": moons}[name]
    train, test = (draw(n, torch.Generator().manual_seed(seed)) for n, seed in zip(TOY_SIZES, TOY_SEEDS))
    spec = PointSpec(name, dim=2, num_classes=8 if name == "ring8" else 2)
    source = f"the 2-D toy set {name}, drawn from a fixed seed ({TOY_SIZES[0]:,} train / {TOY_SIZES[1]:,} test)"
    return (Ring8Data if name == "ring8" else PointData)(spec, source, train, test)


class TextData(Data):
    """A character-level text: token ids of the first 90% (train) and the last 10% (validation)."""

    def __init__(self, name: str, text: str, where: str, block_size: int):
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.spec = TextSpec(name, "".join(sorted(set(text))))  # nanoGPT: the characters of the whole text
        self.block_size = block_size
        ids = encode(text, self.spec.vocab)
        n = int(len(ids) * (1 - HELD_OUT_FRACTION))  # nanoGPT: first 90% train, last 10% val
        self.train_ids, self.val_ids = ids[:n], ids[n:]
        if len(self.val_ids) <= block_size + 1:
            too_long = f"block_size {block_size} is too long for {name}'s {len(self.val_ids):,} validation characters"
            raise DataError(too_long)
        self.source = f"{where} ({n:,} train / {len(self.val_ids):,} val characters, {self.spec.vocab_size} distinct)"

    def train_stream(self, batch_size: int, seed: int) -> TextStream:
        return TextStream(self.train_ids, self.block_size, batch_size, seed)

    def val_batches(self, batch_size: int, n_batches: int) -> Iterator[Batch]:
        """Random validation windows from a fixed seed: the same batches every call."""
        generator = torch.Generator().manual_seed(VAL_SEED)
        for _ in range(n_batches):
            starts = torch.randint(len(self.val_ids) - self.block_size, (batch_size,), generator=generator)
            yield windows(self.val_ids, starts, self.block_size)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """Non-overlapping ``block_size`` windows covering the validation text once, in order."""
        starts = torch.arange(0, len(self.val_ids) - self.block_size, self.block_size)
        for chunk in starts.split(batch_size):
            yield windows(self.val_ids, chunk, self.block_size)


def encode(text: str, vocab: str) -> Tensor:
    """Character ids through a lookup table (TextSpec.encode's dict is too slow for 5 M characters)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.zeros(max(map(ord, vocab)) + 1, dtype=np.int64)
    table[[ord(ch) for ch in vocab]] = np.arange(len(vocab))
    dtype = torch.uint8 if len(vocab) <= 256 else torch.int32  # small storage; batches are int64
    return torch.from_numpy(table[codes]).to(dtype)


# ---------------------------------------------------------------------------------------------
# Loading.


def load_data(cfg: DataConfig, root: str | None = None) -> Data:
    """The dataset ``cfg.name`` under the data root (see ``data_root``), downloading only if allowed."""
    if cfg.name not in DATASETS + TOY_DATASETS:
        raise DataError(f"unknown dataset {cfg.name!r}; valid ones: {', '.join(DATASETS + TOY_DATASETS)}")
    where = data_root(root)
    if cfg.name == "mnist":
        return _load_mnist(where, cfg.download)
    if cfg.name == "fashion_mnist":
        return _load_fashion_mnist(where, cfg.download)
    if cfg.name in TOY_DATASETS:
        return _load_toy(cfg.name)
    if cfg.name == "shakespeare":
        origin = f"Shakespeare's works shipped with genzoo ({SHAKESPEARE})"
        return TextData("shakespeare", _shipped_shakespeare(), origin, cfg.block_size)
    return _load_tinyshakespeare(where, cfg.download, cfg.block_size)


def _load_mnist(root: Path, download: bool) -> ImageData:
    loaded = _torchvision_images("mnist", root, download)
    if isinstance(loaded, ImageData):
        return loaded
    data = shipped_mnist()
    n_test = len(data.test_images)
    print(
        f"genzoo: MNIST not found under {root} and {loaded}; using the 5,000-digit MNIST sample shipped with "
        f"genzoo, the last 10% of each class ({n_test:,} digits) held out as the test split "
        f"(put the torchvision MNIST files in {root / 'MNIST' / 'raw'} for the full set)",
        file=sys.stderr,
    )
    return data


def _load_fashion_mnist(root: Path, download: bool) -> ImageData:
    if _idx_paths(SYSTEM_FASHION_MNIST, APT_SUFFIXES) and not _idx_paths(root / "FashionMNIST" / "raw"):
        return _system_fashion_mnist()  # installed by apt: use it before trying the network
    loaded = _torchvision_images("fashion_mnist", root, download)
    if isinstance(loaded, ImageData):
        return loaded
    raise DataError(
        f"FashionMNIST not found under {root} and {loaded}: put the four torchvision FashionMNIST files in "
        f"{root / 'FashionMNIST' / 'raw'}, or run `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        f"which puts them in {SYSTEM_FASHION_MNIST} where genzoo finds them"
    )


def _torchvision_images(name: str, root: Path, download: bool) -> ImageData | str:
    """The dataset through torchvision, or the reason it is not available (a phrase for a message)."""
    import torchvision  # imported here: it is slow to import and text runs never need it

    folder = IMAGE_FOLDERS[name]
    cls = getattr(torchvision.datasets, folder)
    if not _idx_paths(root / folder / "raw"):
        if not download:
            return "downloading is off (data.download = false)"
        try:
            cls(root, train=True, download=True)
        except (OSError, RuntimeError) as err:  # torchvision raises RuntimeError, URLError is an OSError
            return f"could not be downloaded ({_last_line(err)})"
    train, test = cls(root, train=True), cls(root, train=False)
    return _image_data(name, f"{folder} from {root}", (train.data, train.targets), (test.data, test.targets))


def _image_data(name: str, where: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> ImageData:
    """ImageData from (N, 28, 28) uint8 images and integer labels; counts go into the source line."""
    train = (train[0].unsqueeze(1).contiguous(), train[1].long())  # (N, 1, 28, 28), (N,)
    test = (test[0].unsqueeze(1).contiguous(), test[1].long())
    source = f"{where} ({len(train[0]):,} train / {len(test[0]):,} test)"
    return ImageData(ImageSpec(name, (1, 28, 28), 10), source, train, test)


def shipped_mnist() -> ImageData:
    with np.load(MNIST_SAMPLE) as sample:
        images, labels = torch.from_numpy(sample["images"]), torch.from_numpy(sample["labels"]).long()
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():  # the sample is sorted by class: hold out the end of each class
        index = (labels == c).nonzero().squeeze(1)
        held_out[index[len(index) - round(len(index) * HELD_OUT_FRACTION) :]] = True
    train, test = (images[~held_out], labels[~held_out]), (images[held_out], labels[held_out])
    return _image_data("mnist", f"the MNIST sample shipped with genzoo ({MNIST_SAMPLE})", train, test)


def _system_fashion_mnist() -> ImageData:
    paths = _idx_paths(SYSTEM_FASHION_MNIST, APT_SUFFIXES)
    images, labels, test_images, test_labels = (torch.from_numpy(read_idx(p)) for p in paths)
    where = f"FashionMNIST from {SYSTEM_FASHION_MNIST}"
    return _image_data("fashion_mnist", where, (images, labels), (test_images, test_labels))


def _load_tinyshakespeare(root: Path, download: bool, block_size: int) -> TextData:
    path = root / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        reason = "downloading is off (data.download = false)"
        if download:
            reason = _download(TINY_SHAKESPEARE_URL, path)
        if not path.is_file():
            raise DataError(
                f"tinyshakespeare not found at {path} and {reason}: put char-rnn's input.txt there "
                f"(from {TINY_SHAKESPEARE_URL}), or use data.name = \"shakespeare\", the corpus shipped with genzoo, "
                "which works offline"
            )
    text = path.read_text(encoding="utf-8")
    return TextData("tinyshakespeare", text, f"tiny Shakespeare from {path}", block_size)


def _download(url: str, path: Path) -> str:
    """Fetch ``url`` into ``path`` (through a temporary file); '' on success, else the reason."""
    print(f"genzoo: downloading {url} to {path}", file=sys.stderr)
    partial = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(body)
        os.replace(partial, path)
    except OSError as err:  # URLError, timeouts and disk errors are all OSErrors
        return f"could not be downloaded ({_last_line(err)})"
    return ""


def _shipped_shakespeare() -> str:
    return bz2.decompress(SHAKESPEARE.read_bytes()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Files on disk.


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format; gzipped if the name ends in .gz) as a uint8 array of its shape."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise DataError(f"{path} is not a uint8 IDX file (MNIST format): replace it with the original")
    dims = np.frombuffer(raw, dtype=">u4", count=raw[3], offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(dims).copy()  # writable


def _idx_paths(folder: Path, suffixes: tuple[str, ...] = ("",)) -> list[Path]:
    """The four IDX files in ``folder``, in IDX_FILES order, or [] if any is missing.

    torchvision reads only uncompressed files from a data root; apt installs gzipped ones (".gz").
    """
    paths = []
    for name in IDX_FILES:
        found = [folder / f"{name}{suffix}" for suffix in suffixes if (folder / f"{name}{suffix}").is_file()]
        if not found:
            return []
        paths.append(found[0])
    return paths


def _idx_count(path: Path) -> int:
    """How many items an IDX file holds, from its header alone."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        return int.from_bytes(f.read(8)[4:8], "big")


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1][:120] if lines else type(err).__name__


# ---------------------------------------------------------------------------------------------
# `genzoo data`: what is where, without downloading anything.


def describe_datasets(root: str | None = None) -> list[dict]:
    """One row per dataset: name, path, status ("full", "partial (N train / M test)",
    "shipped sample" or "missing"), and train / test counts (images, or characters of the 90/10 split)."""
    where = data_root(root)
    rows = [_describe_images("mnist", where), _describe_images("fashion_mnist", where)]
    text = _shipped_shakespeare()
    rows.append(_text_row("shakespeare", SHAKESPEARE, "full", len(text)))
    tiny = where / "tinyshakespeare" / "input.txt"
    size = len(tiny.read_text(encoding="utf-8")) if tiny.is_file() else 0
    rows.append(_text_row("tinyshakespeare", tiny, "full" if size else "missing", size))
    return rows


def _describe_images(name: str, root: Path) -> dict:
    folder = root / IMAGE_FOLDERS[name] / "raw"
    paths = _idx_paths(folder)
    if not paths and name == "fashion_mnist" and _idx_paths(SYSTEM_FASHION_MNIST, APT_SUFFIXES):
        folder, paths = SYSTEM_FASHION_MNIST, _idx_paths(SYSTEM_FASHION_MNIST, APT_SUFFIXES)
    if paths:
        n_train, n_test = _idx_count(paths[0]), _idx_count(paths[2])
        status = "full" if (n_train, n_test) == (60_000, 10_000) else f"partial ({n_train:,} train / {n_test:,} test)"
        return _row(name, folder, status, n_train, n_test, "images")
    if name == "mnist":
        n_test = round(5_000 * HELD_OUT_FRACTION)
        return _row(name, MNIST_SAMPLE, "shipped sample", 5_000 - n_test, n_test, "images")
    return _row(name, folder, "missing", 0, 0, "images")


def _text_row(name: str, path: Path, status: str, n_chars: int) -> dict:
    n_train = int(n_chars * (1 - HELD_OUT_FRACTION))
    return _row(name, path, status, n_train, n_chars - n_train, "characters")


def _row(name: str, path: Path, status: str, train: int, test: int, unit: str) -> dict:
    return {"name": name, "path": str(path), "status": status, "train": train, "test": test, "unit": unit}
