"""Sources: root resolution, the offline fallback and its one line, downloads, IDX files, the toy sets.

No test touches the network: every load passes ``download=False`` or patches the download away.
Tests that need the real data in ../shared/data skip when it is not there.
"""

import gzip
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from genzoo import sources
from genzoo.config import DataConfig
from genzoo.errors import DataError
from genzoo.sources import data_root, describe_datasets, load_data, read_idx
from genzoo.specs import PointSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="no ../shared/data here")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty data root, no GENZOO_DATA, no apt Fashion-MNIST, and downloads that fail like no network."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.delenv("GENZOO_DATA", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path / "no-apt")
    root = tmp_path / "root"
    root.mkdir()
    return root


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_image_set(folder: Path, n_train: int, n_test: int, suffix: str = "") -> None:
    """Four small IDX files whose image k (per split) is filled with the level k and labelled k % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        levels = np.arange(n)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", np.broadcast_to(levels[:, None, None], (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", levels % 10)


# -- the data root and the registry --------------------------------------------------------------


def test_data_root_prefers_flag_then_env_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GENZOO_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root(str(tmp_path / "flag")) == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("GENZOO_DATA")
    assert data_root() == tmp_path / "cache" / "genzoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_root() == Path.home() / ".cache" / "genzoo"


def test_unknown_dataset_names_the_valid_ones(offline):
    valid = "valid ones: mnist, fashion_mnist, cifar10, image_folder, shakespeare, tinyshakespeare"
    with pytest.raises(DataError, match=valid):
        load_data(DataConfig(name="svhn"), str(offline))


# -- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("download", [False, True])
def test_missing_mnist_falls_back_to_the_shipped_sample_and_says_so(offline, capsys, download):
    data = load_data(DataConfig(name="mnist", download=download), str(offline))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"genzoo: MNIST not found under {offline}")
    assert "could not be downloaded" in lines[0] if download else "downloading is off" in lines[0]
    assert "5,000-digit MNIST sample shipped with genzoo" in lines[0] and "held out" in lines[0]
    assert str(offline / "MNIST" / "raw") in lines[0]
    assert "sample shipped with genzoo" in data.source and "(4,500 train / 500 test)" in data.source
    assert torch.bincount(data.test_y).tolist() == [50] * 10  # the held-out split is balanced
    assert torch.bincount(data.train_y).tolist() == [450] * 10
    train, test = data.train_x.flatten(1), data.test_x.flatten(1)
    assert not (train[:, None] == test[None, :50]).all(-1).any()  # held-out digits are not trained on


def test_gzipped_files_in_the_root_do_not_count_as_mnist(offline, capsys):
    write_image_set(offline / "MNIST" / "raw", n_train=12, n_test=4, suffix=".gz")  # torchvision needs them unpacked
    data = load_data(DataConfig(name="mnist", download=False), str(offline))
    assert len(data.test_x) == 500 and "not found" in capsys.readouterr().err


def test_missing_fashion_mnist_is_an_error_in_one_line(offline):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="fashion_mnist", download=True), str(offline))
    message = str(err.value)
    assert "\n" not in message and "could not be downloaded" in message
    assert str(offline / "FashionMNIST" / "raw") in message and "apt-get install dataset-fashion-mnist" in message


def test_fashion_mnist_is_found_where_apt_installs_it(offline):
    write_image_set(sources.SYSTEM_FASHION_MNIST, n_train=30, n_test=12, suffix=".gz")
    data = load_data(DataConfig(name="fashion_mnist", download=False), str(offline))
    assert data.source == f"FashionMNIST from {sources.SYSTEM_FASHION_MNIST} (30 train / 12 test)"
    assert data.train_x.shape == (30, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert data.test_x[:, 0, 0, 0].tolist() == list(range(12))  # read back in file order
    assert data.test_y.tolist() == [k % 10 for k in range(12)]


def test_read_idx_reads_plain_and_gzipped_files(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        assert np.array_equal(read_idx(tmp_path / name), array)


# -- text ----------------------------------------------------------------------------------------


def test_shipped_shakespeare_splits_90_10_with_the_whole_text_vocab(offline):
    data = load_data(DataConfig(name="shakespeare", block_size=64, download=False), str(offline))
    text = sources._shipped_shakespeare()
    n = len(data.train_ids) + len(data.val_ids)
    assert n == len(text) and len(data.train_ids) == int(0.9 * n)
    assert data.spec.vocab == "".join(sorted(set(text))) and "\r" not in data.spec.vocab
    assert data.spec.decode(data.val_ids[:200]) == text[len(data.train_ids) :][:200]
    x, y = next(data.train_stream(batch_size=4, seed=0))
    assert x.shape == (4, 64) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("download", [False, True])
def test_missing_tinyshakespeare_is_an_error_in_one_line(offline, download):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="tinyshakespeare", download=download), str(offline))
    message = str(err.value)
    assert "\n" not in message and str(offline / "tinyshakespeare" / "input.txt") in message
    assert "shakespeare" in message and "offline" in message
    assert not (offline / "tinyshakespeare" / "input.txt").exists()


def test_tinyshakespeare_is_downloaded_into_the_data_root(offline, monkeypatch):
    body = b"To be, or not to be, that is the question:\n" * 30
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(body))
    data = load_data(DataConfig(name="tinyshakespeare", block_size=8, download=True), str(offline))
    path = offline / "tinyshakespeare" / "input.txt"
    assert path.read_bytes() == body and data.source.startswith(f"tiny Shakespeare from {path}")
    assert data.spec.vocab == "".join(sorted(set(body.decode())))


# -- `genzoo data` -------------------------------------------------------------------------------


def test_describe_reports_each_state_without_downloading(offline, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("describe_datasets must not download")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", refuse)
    rows = {row["name"]: row for row in describe_datasets(str(offline))}
    names = ("mnist", "fashion_mnist", "shakespeare", "tinyshakespeare")
    assert [rows[n]["status"] for n in names] == ["shipped sample", "missing", "full", "missing"]
    assert rows["mnist"]["path"] == str(sources.MNIST_SAMPLE) and rows["shakespeare"]["test"] > 0
    write_image_set(offline / "MNIST" / "raw", n_train=12, n_test=4)
    (offline / "tinyshakespeare").mkdir()
    (offline / "tinyshakespeare" / "input.txt").write_text("x" * 100)
    rows = {row["name"]: row for row in describe_datasets(str(offline))}
    assert rows["mnist"]["status"] == "partial (12 train / 4 test)"
    assert (rows["tinyshakespeare"]["train"], rows["tinyshakespeare"]["test"]) == (90, 10)


def write_cifar10(folder: Path, n_per_batch: int) -> None:
    """torchvision's CIFAR-10 files (pickled dicts of (N, 3072) rows: the red plane, then green, then blue),
    image k of a batch filled with the levels k, 2k, 3k, one red pixel (row 0, column 5) at 255, labelled k % 10."""
    import pickle

    folder.mkdir(parents=True)
    k = np.arange(n_per_batch)
    rows = np.concatenate([np.repeat(k[:, None] * c, 1024, axis=1) for c in (1, 2, 3)], axis=1).astype(np.uint8)
    rows[:, 5] = 255
    for name in sources.CIFAR10_FILES[:-1]:
        (folder / name).write_bytes(pickle.dumps({"data": rows, "labels": (k % 10).tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{c}" for c in range(10)]}))


@pytest.mark.parametrize("download", [False, True])
def test_missing_cifar10_is_an_error_in_one_line(offline, download):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="cifar10", download=download), str(offline))
    message = str(err.value)
    reason = "could not be downloaded" if download else "downloading is off"
    assert reason in message and "\n" not in message
    assert str(offline / "cifar-10-batches-py") in message and sources.CIFAR10_URL in message


def test_cifar10_in_torchvisions_layout_loads_as_colour_images(offline, monkeypatch):
    write_cifar10(offline / "cifar-10-batches-py", n_per_batch=4)
    with pytest.raises(DataError, match="incomplete or corrupted"):  # torchvision checks the MD5 sums
        load_data(DataConfig(name="cifar10", download=False), str(offline))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    data = load_data(DataConfig(name="cifar10", download=False), str(offline))
    assert data.spec.shape == (3, 32, 32) and data.spec.num_classes == 10
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    image = data.train_x[7 % 4]
    assert [int(image[c, 10, 10]) for c in range(3)] == [3, 6, 9]  # the planes are the channels
    assert image[0, 0, 5] == 255 and image[0, 5, 0] == 3  # row 0, column 5: not transposed
    assert data.train_y.tolist() == [0, 1, 2, 3] * 5 and "CIFAR-10 from" in data.source


def test_cifar10_is_described_without_loading(offline):
    rows = {row["name"]: row for row in describe_datasets(str(offline))}
    assert rows["cifar10"]["status"] == "missing"
    write_cifar10(offline / "cifar-10-batches-py", n_per_batch=1)
    (offline / "cifar-10-batches-py" / "test_batch").unlink()
    assert {r["name"]: r for r in describe_datasets(str(offline))}["cifar10"]["status"] == "partial (6 of 7 files)"


# -- the real data, where this machine has it ----------------------------------------------------


@needs_shared
def test_real_mnist_loads_the_full_test_set(monkeypatch):
    monkeypatch.delenv("GENZOO_DATA", raising=False)
    data = load_data(DataConfig(name="mnist", download=False), str(SHARED))
    assert len(data.test_x) == 10_000 and len(data.train_x) == 5_000
    assert data.source == f"MNIST from {SHARED} (5,000 train / 10,000 test)"
    assert sum(len(x) for x, _ in data.test_batches(4096)) == 10_000


@needs_shared
def test_real_data_is_described(monkeypatch):
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", Path("/nonexistent"))
    rows = {row["name"]: row for row in describe_datasets(str(SHARED))}
    assert rows["mnist"]["status"] == "partial (5,000 train / 10,000 test)"
    assert rows["fashion_mnist"]["status"] == "full"
    assert rows["tinyshakespeare"]["train"] + rows["tinyshakespeare"]["test"] == 1_115_394


# -- 2-D toy points ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, classes", [("ring8", 8), ("moons", 2)])
def test_toy_points_load_with_shapes_labels_and_a_fixed_seed(name, classes):
    data = load_data(DataConfig(name=name))
    assert data.spec == PointSpec(name, dim=2, num_classes=classes)
    assert data.train_x.shape == (8_000, 2) and data.test_x.shape == (2_000, 2)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert set(data.train_y.tolist()) == set(range(classes))
    assert data.train_x.abs().max() < 1.5  # about unit scale, what the diffusion schedule assumes
    again = load_data(DataConfig(name=name))
    assert torch.equal(again.train_x, data.train_x) and not torch.equal(data.train_x[:2000], data.test_x)
    x, y = next(data.train_stream(32, seed=0))
    assert x.shape == (32, 2) and y.shape == (32,)
    assert sum(len(x) for x, _ in data.test_batches(300)) == 2_000
    assert [len(x) for x, _ in data.val_batches(100, 3)] == [100, 100, 100]


def test_ring8_points_sit_near_the_centre_of_their_mode():
    data = load_data(DataConfig(name="ring8"))
    angle = data.train_y.float() * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1)
    distance = (data.train_x - centres).norm(dim=1)
    assert distance.max() < 0.3 and 0.05 < distance.mean() < 0.08  # std 0.05 per axis: mean distance 0.063
