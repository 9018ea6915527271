"""Where data comes from: real data from disk or the network, else the small data genzoo ships, never silently.

Each dataset is one loader ``(cfg, root) -> Data`` and one entry in ``LOADERS``, by the name a
config's ``[data]`` table gives:

- ``mnist``: torchvision's MNIST under ``<root>/MNIST/raw``, downloaded there when missing. Offline
  and without the files, genzoo says so in one line and uses the 5,000 digits it ships
  (``assets/mnist_5k.npz``), holding out the last 10% of each class as the test split.
- ``fashion_mnist``: torchvision's FashionMNIST under ``<root>/FashionMNIST/raw``, or the files
  Debian's ``dataset-fashion-mnist`` package installs; nothing shipped, so missing is an error.
- ``cifar10``: torchvision's CIFAR-10 (3x32x32 colour, 10 classes, 50,000 train / 10,000 test) under
  ``<root>/cifar-10-batches-py``, downloaded there when missing; nothing shipped, so missing is an error.
- ``image_folder``: a folder of the user's own images at ``data.path`` (relative to the current
  folder), laid out like ``torchvision.datasets.ImageFolder``: images in sub-folders are labelled by
  sub-folder (their names sorted), images directly in the folder make one unlabelled class. Each image
  is read as RGB (``data.channels = 3``) or grey (``1``), its shorter side resized to
  ``data.image_size`` (default 32) and centre-cropped to a square, and kept in memory as uint8; a
  fixed seed holds out 10% of each class as the test split.
- ``shakespeare``: Shakespeare's works from Project Gutenberg, shipped with genzoo (works offline).
- ``tinyshakespeare``: char-rnn's 1.1 MB corpus at ``<root>/tinyshakespeare/input.txt``, downloaded
  there when missing.
- ``text``: any UTF-8 text file of the user's at ``data.path`` (relative to the current folder, ``~``
  expanded), split like the corpora above (first 90% train, last 10% validation), its vocabulary the
  characters of the file.
- ``python``: the first 3 M characters of the running interpreter's standard library (its top-level
  ``.py`` files, found through ``sysconfig``, in a seeded order): nothing downloaded, but the corpus
  depends on the Python version, which its source line names. Characters outside printable ASCII,
  newline and tab are dropped, so that a few accented letters and box-drawing characters (89 of them,
  0.003%, in Python 3.11.7's: comments, docstrings, shlex's word characters) do not add 69 tokens to
  the vocabulary that the model can hardly learn.
- ``ring8`` and ``moons``: 2-D toy sets drawn from a fixed seed (nothing on disk), for tests that
  train in seconds: 8 Gaussians on the unit circle, labelled by mode, and two interleaved half
  circles, labelled by moon.

The data root is ``--data-root``, else ``$GENZOO_DATA``, else ``$XDG_CACHE_HOME/genzoo`` (or
``~/.cache/genzoo``). ``describe_datasets`` is the ``genzoo data`` report: what is where, without
downloading anything (``image_folder`` and ``text`` have no row: their place is ``data.path``).
"""

from __future__ import annotations

import bz2
import gzip
import os
import platform
import random
import re
import sys
import sysconfig
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from genzoo.config import DataConfig
from genzoo.data import HELD_OUT_FRACTION, Data, ExampleData, Ring8Data, Split, TextData, unchanged
from genzoo.errors import ConfigError, DataError
from genzoo.metrics import RING8_STD, ring8_centres
from genzoo.pixels import from_uint8
from genzoo.specs import ImageSpec, PointSpec

ASSETS = Path(__file__).resolve().parent / "assets"
MNIST_SAMPLE = ASSETS / "mnist_5k.npz"
SHAKESPEARE = ASSETS / "shakespeare.txt.bz2"
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
APT_SUFFIXES = (".gz", "")  # the Debian package installs the gzipped originals
IMAGE_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's class and folder names
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TOY_SIZES = (8_000, 2_000)  # train and test points
TOY_SEEDS = (0, 1)  # train and test are independent draws
CIFAR10_FOLDER = "cifar-10-batches-py"  # torchvision's layout under the data root
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # the URL torchvision downloads
SPLIT_SEED = 0  # image_folder: the fixed permutation of each class its held-out images are taken from
PYTHON_CHARS = 3_000_000  # "python": 64% of Python 3.11.7's top-level stdlib (4.7 M); 2,400 steps see 4.9 M
NOT_PLAIN_CODE = re.compile(r"[^\x20-\x7e\n\t]")  # "python" drops these: outside printable ASCII, \n and \t


def data_root(cli_root: str | None = None) -> Path:
    """``--data-root``, else ``$GENZOO_DATA``, else the user cache folder (created only by downloads)."""
    if cli_root:
        return Path(cli_root).expanduser().absolute()
    if os.environ.get("GENZOO_DATA"):
        return Path(os.environ["GENZOO_DATA"]).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser().absolute() / "genzoo"


def load_data(cfg: DataConfig, root: str | None = None) -> Data:
    """The dataset ``cfg.name`` under the data root (see ``data_root``), downloading only if allowed."""
    if cfg.name not in LOADERS:
        raise DataError(f"unknown dataset {cfg.name!r}; valid ones: {', '.join(LOADERS)}")
    return LOADERS[cfg.name](cfg, data_root(root))


# ---------------------------------------------------------------------------------------------
# The loaders, one per dataset.


def load_mnist(cfg: DataConfig, root: Path) -> ExampleData:
    """torchvision's MNIST, else the shipped 5,000-digit sample, saying so in one line."""
    loaded = _torchvision_images("mnist", root, cfg.download)
    if isinstance(loaded, ExampleData):
        return loaded
    data = shipped_mnist()
    n_test = len(data.test_x)
    print(
        f"genzoo: MNIST not found under {root} and {loaded}; using the 5,000-digit MNIST sample shipped with "
        f"genzoo, the last 10% of each class ({n_test:,} digits) held out as the test split "
        f"(put the torchvision MNIST files in {root / 'MNIST' / 'raw'} for the full set)",
        file=sys.stderr,
    )
    return data


def load_fashion_mnist(cfg: DataConfig, root: Path) -> ExampleData:
    """The apt-installed FashionMNIST when the root has none, else torchvision's; missing is an error."""
    if _idx_paths(SYSTEM_FASHION_MNIST, APT_SUFFIXES) and not _idx_paths(root / "FashionMNIST" / "raw"):
        return _system_fashion_mnist()  # installed by apt: use it before trying the network
    loaded = _torchvision_images("fashion_mnist", root, cfg.download)
    if isinstance(loaded, ExampleData):
        return loaded
    raise DataError(
        f"FashionMNIST not found under {root} and {loaded}: put the four torchvision FashionMNIST files in "
        f"{root / 'FashionMNIST' / 'raw'}, or run `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        f"which puts them in {SYSTEM_FASHION_MNIST} where genzoo finds them"
    )


def load_shakespeare(cfg: DataConfig, root: Path) -> TextData:
    """Shakespeare's works, shipped with genzoo: no root, no network."""
    origin = f"Shakespeare's works shipped with genzoo ({SHAKESPEARE})"
    return TextData("shakespeare", _shipped_shakespeare(), origin, cfg.block_size)


def load_tinyshakespeare(cfg: DataConfig, root: Path) -> TextData:
    """char-rnn's corpus from the root, downloaded there when missing and allowed."""
    path = root / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        reason = "downloading is off (data.download = false)"
        if cfg.download:
            reason = _download(TINY_SHAKESPEARE_URL, path)
        if not path.is_file():
            raise DataError(
                f"tinyshakespeare not found at {path} and {reason}: put char-rnn's input.txt there "
                f"(from {TINY_SHAKESPEARE_URL}), or use data.name = \"shakespeare\", the corpus shipped with genzoo, "
                "which works offline"
            )
    text = path.read_text(encoding="utf-8")
    return TextData("tinyshakespeare", text, f"tiny Shakespeare from {path}", cfg.block_size)


def load_text(cfg: DataConfig, root: Path) -> TextData:
    """The user's UTF-8 text file at ``cfg.path``; its vocabulary is the characters of the file."""
    path = _checked_text_file(cfg)
    text = read_text_file(path)
    check_long_enough(text, str(path), cfg.block_size)
    return TextData("text", text, f"the text file {path}", cfg.block_size)


def load_python(cfg: DataConfig, root: Path) -> TextData:
    """Python source from this interpreter's standard library, cut to plain ASCII code (see NOT_PLAIN_CODE)."""
    code, removed = python_corpus()
    where = (f"Python {platform.python_version()}'s standard library ({_stdlib()}, top-level .py files in a "
             f"seeded order, the first {PYTHON_CHARS:,} characters; {removed:,} ({removed / PYTHON_CHARS:.4%}) "
             "outside printable ASCII, newline and tab dropped)")
    check_long_enough(code, "the python corpus", cfg.block_size)
    return TextData("python", code, where, cfg.block_size)


def load_ring8(cfg: DataConfig, root: Path) -> Ring8Data:
    """The ring of 8 Gaussians, drawn from fixed seeds; its samples are scored for mode collapse."""
    return _toy_points(Ring8Data, "ring8", ring8_points, num_classes=8)


def load_moons(cfg: DataConfig, root: Path) -> ExampleData:
    """Two interleaved half circles, drawn from fixed seeds."""
    return _toy_points(ExampleData, "moons", moons_points, num_classes=2)


def load_cifar10(cfg: DataConfig, root: Path) -> ExampleData:
    """torchvision's CIFAR-10 from the root, downloaded there when missing and allowed; missing is an error."""
    import torchvision  # imported here: it is slow to import and text runs never need it

    folder = root / CIFAR10_FOLDER
    if not all((folder / name).is_file() for name in CIFAR10_FILES):
        reason = "downloading is off (data.download = false)"
        if cfg.download:
            try:
                torchvision.datasets.CIFAR10(root, train=True, download=True)
                reason = ""
            except (OSError, RuntimeError) as err:  # torchvision raises RuntimeError, URLError is an OSError
                reason = f"could not be downloaded ({_last_line(err)})"
        if reason:
            raise DataError(
                f"CIFAR-10 not found under {root} and {reason}: put torchvision's CIFAR-10 files "
                f"({', '.join(CIFAR10_FILES)}) in {folder}, e.g. by unpacking {CIFAR10_URL} in {root}"
            )
    try:
        train, test = (torchvision.datasets.CIFAR10(root, train=split) for split in (True, False))
    except RuntimeError as err:  # torchvision checks every file's MD5 sum
        raise DataError(f"CIFAR-10 in {folder} is incomplete or corrupted ({_last_line(err)}): "
                        f"replace it with the files unpacked from {CIFAR10_URL}") from None
    splits = [(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets))  # NHWC -> NCHW
              for d in (train, test)]
    source = f"CIFAR-10 from {folder} ({len(splits[0][0]):,} train / {len(splits[1][0]):,} test)"
    return ExampleData(ImageSpec("cifar10", (3, 32, 32), 10), source, splits[0], splits[1], from_uint8)


def load_image_folder(cfg: DataConfig, root: Path) -> ExampleData:
    """The user's folder of images at ``cfg.path``, resized and centre-cropped; labels from sub-folders."""
    folder = _checked_image_folder(cfg)
    files, labels, classes = list_images(folder)
    images = torch.stack([read_image(path, cfg.image_size, cfg.channels) for path in files])  # (N, C, S, S)
    labels = torch.tensor(labels, dtype=torch.long)
    held_out = held_out_mask(labels)
    if held_out.all() or not held_out.any():
        raise DataError(f"too few images in {folder} ({len(files)}) for a train and a test split: "
                        "add images (a class needs at least 2 for one to be held out)")
    train, test = (images[~held_out], labels[~held_out]), (images[held_out], labels[held_out])
    labelled = (f"labelled by sub-folder, {len(classes)} classes ({', '.join(classes[:5])}"
                f"{', ...' if len(classes) > 5 else ''})" if classes else
                "unlabelled: the images lie directly in the folder, one class "
                "(conditional models need class sub-folders)")
    C, S = cfg.channels, cfg.image_size
    source = (f"{len(files):,} images from {folder}, {labelled}, resized and centre-cropped to {C}x{S}x{S} "
              f"({len(train[0]):,} train / {len(test[0]):,} test)")
    return ExampleData(ImageSpec("image_folder", (C, S, S), len(classes)), source, train, test, from_uint8)


LOADERS: dict[str, Callable[[DataConfig, Path], Data]] = {  # a new dataset: one loader above, one entry here
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "image_folder": load_image_folder,
    "shakespeare": load_shakespeare,
    "tinyshakespeare": load_tinyshakespeare,
    "text": load_text,
    "python": load_python,
    "ring8": load_ring8,
    "moons": load_moons,
}


# ---------------------------------------------------------------------------------------------
# Images: torchvision, the shipped sample, the Debian package.


def _torchvision_images(name: str, root: Path, download: bool) -> ExampleData | str:
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


def _image_data(name: str, where: str, train: Split, test: Split) -> ExampleData:
    """ExampleData from (N, 28, 28) uint8 images and integer labels; counts go into the source line."""
    train = (train[0].unsqueeze(1).contiguous(), train[1].long())  # (N, 1, 28, 28), (N,)
    test = (test[0].unsqueeze(1).contiguous(), test[1].long())
    source = f"{where} ({len(train[0]):,} train / {len(test[0]):,} test)"
    return ExampleData(ImageSpec(name, (1, 28, 28), 10), source, train, test, from_uint8)


def shipped_mnist() -> ExampleData:
    """The 5,000 digits genzoo ships, the last 10% of each class held out as the test split."""
    with np.load(MNIST_SAMPLE) as sample:
        images, labels = torch.from_numpy(sample["images"]), torch.from_numpy(sample["labels"]).long()
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():  # the sample is sorted by class: hold out the end of each class
        index = (labels == c).nonzero().squeeze(1)
        held_out[index[len(index) - round(len(index) * HELD_OUT_FRACTION) :]] = True
    train, test = (images[~held_out], labels[~held_out]), (images[held_out], labels[held_out])
    return _image_data("mnist", f"the MNIST sample shipped with genzoo ({MNIST_SAMPLE})", train, test)


def _system_fashion_mnist() -> ExampleData:
    paths = _idx_paths(SYSTEM_FASHION_MNIST, APT_SUFFIXES)
    images, labels, test_images, test_labels = (torch.from_numpy(read_idx(p)) for p in paths)
    where = f"FashionMNIST from {SYSTEM_FASHION_MNIST}"
    return _image_data("fashion_mnist", where, (images, labels), (test_images, test_labels))


# ---------------------------------------------------------------------------------------------
# A folder of the user's images (torchvision's ImageFolder layout).


def _checked_image_folder(cfg: DataConfig) -> Path:
    if cfg.channels not in (1, 3):
        raise ConfigError(f"data.channels must be 3 (RGB) or 1 (grey), got {cfg.channels}")
    if cfg.image_size < 1:
        raise ConfigError(f"data.image_size must be a positive number of pixels, got {cfg.image_size}")
    if not cfg.path:
        raise ConfigError('data.name = "image_folder" needs data.path, the folder of images (--set data.path=photos)')
    folder = Path(cfg.path).expanduser().absolute()
    if not folder.is_dir():
        raise DataError(f"data.path {folder} is not a folder: "
                        "give the folder that holds your images or their class sub-folders")
    return folder


def _is_image(path: Path) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return path.is_file() and path.suffix.lower() in IMG_EXTENSIONS


def list_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """The images under ``folder``, their labels and the class names (sorted), ImageFolder's way.

    Images in sub-folders (at any depth) take the sub-folder's label and the class names are the
    sub-folders' names, sorted; images directly in ``folder`` make one class with no name (``[]``).
    Hidden sub-folders (".name") and sub-folders without images are skipped.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    loose = [p for p in sorted(folder.iterdir()) if _is_image(p)]
    subfolders = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    by_class = {d.name: [p for p in sorted(d.rglob("*")) if _is_image(p)] for d in subfolders}
    by_class = {name: paths for name, paths in by_class.items() if paths}
    if loose and by_class:
        raise DataError(f"{folder} has images both directly in it and in sub-folders ({', '.join(by_class)}): "
                        "put every image in a class sub-folder, or all of them directly in the folder")
    if not loose and not by_class:
        accepted = ", ".join(IMG_EXTENSIONS)
        raise DataError(f"no images found in {folder} or its sub-folders; accepted extensions: {accepted}")
    if loose:
        return loose, [0] * len(loose), []
    classes = list(by_class)
    files = [path for name in classes for path in by_class[name]]
    labels = [label for label, name in enumerate(classes) for _ in by_class[name]]
    return files, labels, classes


def read_image(path: Path, size: int, channels: int) -> Tensor:
    """One image file as uint8 (channels, size, size): converted to RGB or grey, the shorter side resized
    to ``size`` (antialiased), then the centre ``size`` x ``size`` square cropped."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB" if channels == 3 else "L")  # convert reads the whole file
    except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        raise DataError(f"cannot read the image {path} ({_last_line(err)}): remove it or replace it") from None
    image = TF.center_crop(TF.resize(image, size, antialias=True), size)
    return TF.pil_to_tensor(image)  # (C, size, size) uint8


def held_out_mask(labels: Tensor, seed: int = SPLIT_SEED) -> Tensor:
    """(N,) bool: HELD_OUT_FRACTION of each class, drawn from a fixed seed; at least one image of any
    class of two or more, so a small class still appears in the test split."""
    generator = torch.Generator().manual_seed(seed)
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():  # in label order: the same permutations on every call
        index = (labels == c).nonzero().squeeze(1)
        index = index[torch.randperm(len(index), generator=generator)]
        n_test = max(1, round(len(index) * HELD_OUT_FRACTION)) if len(index) > 1 else 0
        held_out[index[:n_test]] = True
    return held_out


# ---------------------------------------------------------------------------------------------
# Text: the shipped corpus, downloads, a user's file, the standard library's source.


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def python_source(max_chars: int = 2_000_000, seed: int = 0) -> str:
    """Python source from the standard library of the running interpreter (found on this machine,
    nothing downloaded): whole ``.py`` files in a seeded random order until ``max_chars``."""
    files = sorted(path for path in _stdlib().glob("*.py"))
    random.Random(seed).shuffle(files)
    parts, total = [], 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def python_corpus() -> tuple[str, int]:
    """The "python" data set's text: the first PYTHON_CHARS characters of ``python_source`` without the
    characters NOT_PLAIN_CODE matches, and how many of those were dropped."""
    raw = python_source(PYTHON_CHARS)
    code = NOT_PLAIN_CODE.sub("", raw)
    return code, len(raw) - len(code)


def _checked_text_file(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise ConfigError('data.name = "text" needs data.path, the text file to train on (--set data.path=notes.txt)')
    path = Path(cfg.path).expanduser().absolute()
    if path.is_dir():
        raise DataError(f"data.path {path} is a folder, not a file: give one text file "
                        '(a folder of images is data.name = "image_folder")')
    if not path.is_file():
        raise DataError(f"no file at {path}: set data.path to a text file (relative to the current folder, "
                        f"{Path.cwd()}), e.g. --set data.path=notes.txt")
    return path


def read_text_file(path: Path) -> str:
    """The file's text, or a one-line DataError when it is empty or not UTF-8 text (NUL bytes, bad bytes)."""
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"the text file {path} is empty: give a file with text in it")
    nul = raw.find(b"\0")
    if nul >= 0:  # valid UTF-8, but no text has it: images, archives, compiled files, UTF-16
        raise DataError(f"{path} looks binary (a NUL byte at byte {nul:,}): give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start:,}): give a "
                        "UTF-8 text file, or convert it first (iconv -f LATIN1 -t UTF-8)") from None
    return text.removeprefix("\ufeff")  # a byte-order mark some editors write is not text


def check_long_enough(text: str, what: str, block_size: int) -> None:
    """A one-line DataError unless the 10% validation split holds one window of block_size + 1 characters
    (TextData's split, counted after its \\r\\n -> \\n)."""
    n = len(text) - text.count("\r\n")
    needed = next(m for m in range(block_size + 2, 20 * (block_size + 2))
                  if m - int(m * (1 - HELD_OUT_FRACTION)) > block_size + 1)
    if n < needed:
        fits = n - int(n * (1 - HELD_OUT_FRACTION)) - 2  # the longest block this text's validation split holds
        fix = f"a smaller data.block_size (at most {fits} for this text)" if fits > 0 else "a longer text"
        raise DataError(f"{what} has {n:,} characters, too few for data.block_size = {block_size}: its 10% held "
                        f"out for validation needs {needed:,} characters in all; use {fix}")


def _shipped_shakespeare() -> str:
    return bz2.decompress(SHAKESPEARE.read_bytes()).decode("ascii")


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


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1][:120] if lines else type(err).__name__


# ---------------------------------------------------------------------------------------------
# 2-D toy points, drawn from fixed seeds.


def ring8_points(n: int, generator: torch.Generator) -> Split:
    """n points from 8 Gaussians (std 0.05) centred on the unit circle; the label is the mode."""
    mode = torch.randint(0, 8, (n,), generator=generator)
    return ring8_centres()[mode] + RING8_STD * torch.randn(n, 2, generator=generator), mode  # (n, 2), (n,)


def moons_points(n: int, generator: torch.Generator) -> Split:
    """n points from two interleaved half circles (noise std 0.05), centred and scaled to about [-1, 1]."""
    moon = torch.randint(0, 2, (n,), generator=generator)
    angle = torch.rand(n, generator=generator) * torch.pi
    upper = torch.stack([angle.cos(), angle.sin()], dim=1)  # (n, 2)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)
    points = torch.where(moon[:, None] == 0, upper, lower) + 0.05 * torch.randn(n, 2, generator=generator)
    return (points - torch.tensor([0.5, 0.25])) / 1.5, moon  # x in about [-1, 1], y in [-0.5, 0.5]


def _toy_points(
    cls: type[ExampleData], name: str, draw: Callable[[int, torch.Generator], Split], num_classes: int
) -> ExampleData:
    train, test = (draw(n, torch.Generator().manual_seed(seed)) for n, seed in zip(TOY_SIZES, TOY_SEEDS))
    spec = PointSpec(name, dim=2, num_classes=num_classes)
    source = f"the 2-D toy set {name}, drawn from a fixed seed ({TOY_SIZES[0]:,} train / {TOY_SIZES[1]:,} test)"
    return cls(spec, source, train, test, unchanged)


# ---------------------------------------------------------------------------------------------
# IDX files (MNIST's format) on disk.


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


# ---------------------------------------------------------------------------------------------
# `genzoo data`: what is where, without downloading anything.


def describe_datasets(root: str | None = None) -> list[dict]:
    """One row per dataset on disk (the toy sets have none): name, path, status ("full", "partial (N train /
    M test)", "shipped sample" or "missing"; for python, the interpreter's version), and train / test counts
    (images, or characters of the 90/10 split)."""
    where = data_root(root)
    rows = [_describe_images("mnist", where), _describe_images("fashion_mnist", where), _describe_cifar10(where)]
    text = _shipped_shakespeare()
    rows.append(_text_row("shakespeare", SHAKESPEARE, "full", len(text)))
    tiny = where / "tinyshakespeare" / "input.txt"
    size = len(tiny.read_text(encoding="utf-8")) if tiny.is_file() else 0
    rows.append(_text_row("tinyshakespeare", tiny, "full" if size else "missing", size))
    rows.append(_text_row("python", _stdlib(), f"Python {platform.python_version()}", len(python_corpus()[0])))
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


def _describe_cifar10(root: Path) -> dict:
    """Full when every file of torchvision's layout is there (their MD5 sums are checked only on loading)."""
    folder = root / CIFAR10_FOLDER
    found = sum((folder / name).is_file() for name in CIFAR10_FILES)
    if found == len(CIFAR10_FILES):
        return _row("cifar10", folder, "full", 50_000, 10_000, "images")
    status = f"partial ({found} of {len(CIFAR10_FILES)} files)" if found else "missing"
    return _row("cifar10", folder, status, 0, 0, "images")


def _text_row(name: str, path: Path, status: str, n_chars: int) -> dict:
    n_train = int(n_chars * (1 - HELD_OUT_FRACTION))
    return _row(name, path, status, n_train, n_chars - n_train, "characters")


def _row(name: str, path: Path, status: str, train: int, test: int, unit: str) -> dict:
    return {"name": name, "path": str(path), "status": status, "train": train, "test": test, "unit": unit}
