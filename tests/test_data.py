"""Data: root resolution, the offline fallback and its one line, exact stream resume, splits, shapes.

No test touches the network: every load passes ``download=False`` or patches the download away.
Tests that need the real data in ../shared/data skip when it is not there.
"""

import gzip
import io
import math
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from genzoo import data as gdata
from genzoo.config import DataConfig
from genzoo.data import ImageStream, TextStream, data_root, describe_datasets, load_data, read_idx, ring8_quality
from genzoo.errors import DataError
from genzoo.specs import from_uint8, to_uint8

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="no ../shared/data here")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty data root, no GENZOO_DATA, no apt Fashion-MNIST, and downloads that fail like no network."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.delenv("GENZOO_DATA", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(gdata, "SYSTEM_FASHION_MNIST", tmp_path / "no-apt")
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


# -- the data root -------------------------------------------------------------------------------


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
    with pytest.raises(DataError, match="valid ones: mnist, fashion_mnist, shakespeare, tinyshakespeare"):
        load_data(DataConfig(name="cifar10"), str(offline))


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
    assert torch.bincount(data.test_labels).tolist() == [50] * 10  # the held-out split is balanced
    assert torch.bincount(data.train_labels).tolist() == [450] * 10
    train, test = data.train_images.flatten(1), data.test_images.flatten(1)
    assert not (train[:, None] == test[None, :50]).all(-1).any()  # held-out digits are not trained on


def test_gzipped_files_in_the_root_do_not_count_as_mnist(offline, capsys):
    write_image_set(offline / "MNIST" / "raw", n_train=12, n_test=4, suffix=".gz")  # torchvision needs them unpacked
    data = load_data(DataConfig(name="mnist", download=False), str(offline))
    assert len(data.test_images) == 500 and "not found" in capsys.readouterr().err


def test_missing_fashion_mnist_is_an_error_in_one_line(offline):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="fashion_mnist", download=True), str(offline))
    message = str(err.value)
    assert "\n" not in message and "could not be downloaded" in message
    assert str(offline / "FashionMNIST" / "raw") in message and "apt-get install dataset-fashion-mnist" in message


def test_fashion_mnist_is_found_where_apt_installs_it(offline):
    write_image_set(gdata.SYSTEM_FASHION_MNIST, n_train=30, n_test=12, suffix=".gz")
    data = load_data(DataConfig(name="fashion_mnist", download=False), str(offline))
    assert data.source == f"FashionMNIST from {gdata.SYSTEM_FASHION_MNIST} (30 train / 12 test)"
    assert data.train_images.shape == (30, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_images[:, 0, 0, 0].tolist() == list(range(12))  # read back in file order
    assert data.test_labels.tolist() == [k % 10 for k in range(12)]


def test_image_batches_have_the_contracted_shapes_types_and_ranges(offline, capsys):
    data = load_data(DataConfig(name="mnist", download=False), str(offline))
    x, y = next(data.train_stream(batch_size=32, seed=0))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (32,) and y.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0 and 0 <= y.min() and y.max() <= 9
    assert torch.equal(to_uint8(x), x.add(1).mul(127.5).round().to(torch.uint8))  # exactly on the 8-bit levels
    test = list(data.test_batches(batch_size=64))
    assert [len(b[0]) for b in test] == [64] * 7 + [52]  # the whole held-out split once, in order
    assert torch.equal(torch.cat([b[1] for b in test]), data.test_labels)
    val = list(data.val_batches(batch_size=64, n_batches=2))
    assert len(val) == 2 and all(torch.equal(v[0], t[0]) for v, t in zip(val, test))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(val, data.val_batches(64, 2)))  # the same every call


def test_uint8_round_trip_is_exact_at_every_level():
    levels = torch.arange(256, dtype=torch.uint8)
    x = from_uint8(levels)
    assert x[0] == -1.0 and x[-1] == 1.0 and torch.all(x[1:] > x[:-1])
    assert torch.equal(to_uint8(x), levels)


def test_an_image_epoch_visits_every_example_once():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 28, 28)
    stream = ImageStream(images, torch.arange(10), batch_size=5, seed=0)
    for _ in range(3):  # three epochs, each a fresh permutation of all ten
        epoch = torch.cat([next(stream)[1] for _ in range(2)])
        assert sorted(epoch.tolist()) == list(range(10))
    assert not torch.equal(epoch, torch.arange(10))


def resumed_equals_straight(make_stream, n_before: int, n_after: int) -> bool:
    straight = make_stream()
    expected = [next(straight) for _ in range(n_before + n_after)][n_before:]
    first = make_stream()
    for _ in range(n_before):
        next(first)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make_stream()
    next(second)  # move it off its start: loading must overwrite where it is
    second.load_state_dict(torch.load(buffer, weights_only=True))
    got = [next(second) for _ in range(n_after)]
    return all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(expected, got))


@pytest.mark.parametrize("n_before", [0, 3, 7, 8])  # 7 batches of 64 per epoch: 7 ends an epoch, 8 starts one
def test_image_stream_resumes_exactly(n_before):
    images = torch.randint(0, 256, (500, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(500)
    assert resumed_equals_straight(lambda: ImageStream(images, labels, 64, seed=3), n_before, 12)


def test_image_stream_rejects_state_from_another_dataset():
    stream = ImageStream(torch.zeros(20, 1, 28, 28, dtype=torch.uint8), torch.zeros(20), 4, seed=0)
    other = ImageStream(torch.zeros(30, 1, 28, 28, dtype=torch.uint8), torch.zeros(30), 4, seed=0)
    with pytest.raises(DataError, match="same dataset"):
        stream.load_state_dict(other.state_dict())


# -- text ----------------------------------------------------------------------------------------


def test_text_windows_are_consecutive_and_shifted_by_one():
    ids = torch.arange(200, dtype=torch.uint8)
    x, y = next(TextStream(ids, block_size=16, batch_size=8, seed=0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x - x[:, :1], torch.arange(16).expand(8, 16))  # ids[i : i+T]
    assert torch.equal(y, x + 1) and y.max() <= 199  # ids[i+1 : i+T+1], inside the text


def test_text_stream_resumes_exactly():
    ids = torch.randint(0, 65, (5000,), dtype=torch.uint8)
    assert resumed_equals_straight(lambda: TextStream(ids, 32, 4, seed=1), 5, 10)


def test_shipped_shakespeare_splits_90_10_with_the_whole_text_vocab(offline):
    data = load_data(DataConfig(name="shakespeare", block_size=64, download=False), str(offline))
    text = gdata._shipped_shakespeare()
    n = len(data.train_ids) + len(data.val_ids)
    assert n == len(text) and len(data.train_ids) == int(0.9 * n)
    assert data.spec.vocab == "".join(sorted(set(text))) and "\r" not in data.spec.vocab
    assert data.spec.decode(data.val_ids[:200]) == text[len(data.train_ids) :][:200]
    x, y = next(data.train_stream(batch_size=4, seed=0))
    assert x.shape == (4, 64) and torch.equal(x[:, 1:], y[:, :-1])


def test_text_eval_batches_are_fixed_and_cover_the_val_text(offline):
    folder = offline / "tinyshakespeare"
    folder.mkdir()
    (folder / "input.txt").write_text("First Citizen:\r\nBefore we proceed any further, hear me speak.\r\n" * 40)
    data = load_data(DataConfig(name="tinyshakespeare", block_size=16, download=False), str(offline))
    assert "\r" not in data.spec.vocab and data.source.startswith(f"tiny Shakespeare from {folder / 'input.txt'}")
    a, b = list(data.val_batches(8, 3)), list(data.val_batches(8, 3))
    assert len(a) == 3 and all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    test = list(data.test_batches(batch_size=8))
    xs, ys = torch.cat([t[0] for t in test]).flatten(), torch.cat([t[1] for t in test]).flatten()
    assert torch.equal(xs, data.val_ids[: len(xs)].long())  # non-overlapping windows, in order
    assert torch.equal(ys, data.val_ids[1 : len(xs) + 1].long())
    assert len(data.val_ids) - len(xs) <= 16  # the windows cover all but the tail


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
    assert (offline / "tinyshakespeare" / "input.txt").read_bytes() == body
    assert data.spec.vocab == "".join(sorted(set(body.decode())))


# -- describe_datasets ---------------------------------------------------------------------------


def test_describe_reports_each_state_without_downloading(offline, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("describe_datasets must not download")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", refuse)
    rows = {row["name"]: row for row in describe_datasets(str(offline))}
    assert [rows[n]["status"] for n in gdata.DATASETS] == ["shipped sample", "missing", "full", "missing"]
    assert rows["mnist"]["path"] == str(gdata.MNIST_SAMPLE) and rows["shakespeare"]["test"] > 0
    write_image_set(offline / "MNIST" / "raw", n_train=12, n_test=4)
    (offline / "tinyshakespeare").mkdir()
    (offline / "tinyshakespeare" / "input.txt").write_text("x" * 100)
    rows = {row["name"]: row for row in describe_datasets(str(offline))}
    assert rows["mnist"]["status"] == "partial (12 train / 4 test)"
    assert (rows["tinyshakespeare"]["train"], rows["tinyshakespeare"]["test"]) == (90, 10)


def test_read_idx_reads_plain_and_gzipped_files(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        assert np.array_equal(read_idx(tmp_path / name), array)


# -- the real data, where this machine has it ----------------------------------------------------


@needs_shared
def test_real_mnist_loads_the_full_test_set(monkeypatch):
    monkeypatch.delenv("GENZOO_DATA", raising=False)
    data = load_data(DataConfig(name="mnist", download=False), str(SHARED))
    assert len(data.test_images) == 10_000 and len(data.train_images) == 5_000
    assert data.source == f"MNIST from {SHARED} (5,000 train / 10,000 test)"
    assert sum(len(x) for x, _ in data.test_batches(4096)) == 10_000


@needs_shared
def test_real_data_is_described(monkeypatch):
    monkeypatch.setattr(gdata, "SYSTEM_FASHION_MNIST", Path("/nonexistent"))
    rows = {row["name"]: row for row in describe_datasets(str(SHARED))}
    assert rows["mnist"]["status"] == "partial (5,000 train / 10,000 test)"
    assert rows["fashion_mnist"]["status"] == "full"
    assert rows["tinyshakespeare"]["train"] + rows["tinyshakespeare"]["test"] == 1_115_394


# -- 2-D toy points ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, classes", [("ring8", 8), ("moons", 2)])
def test_toy_points_load_with_shapes_labels_and_a_fixed_seed(name, classes):
    from genzoo.specs import PointSpec

    data = load_data(DataConfig(name=name))
    assert data.spec == PointSpec(name, dim=2, num_classes=classes)
    assert data.train_images.shape == (8_000, 2) and data.test_images.shape == (2_000, 2)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert set(data.train_labels.tolist()) == set(range(classes))
    assert data.train_images.abs().max() < 1.5  # about unit scale, what the diffusion schedule assumes
    again = load_data(DataConfig(name=name))
    assert torch.equal(again.train_images, data.train_images) and not torch.equal(data.train_images[:2000], data.test_images)
    x, y = next(data.train_stream(32, seed=0))
    assert x.shape == (32, 2) and y.shape == (32,)
    assert sum(len(x) for x, _ in data.test_batches(300)) == 2_000
    assert [len(x) for x, _ in data.val_batches(100, 3)] == [100, 100, 100]


def test_ring8_points_sit_near_the_centre_of_their_mode():
    data = load_data(DataConfig(name="ring8"))
    angle = data.train_labels.float() * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1)
    distance = (data.train_images - centres).norm(dim=1)
    assert distance.max() < 0.3 and 0.05 < distance.mean() < 0.08  # std 0.05 per axis: mean distance 0.063


def test_point_stream_resumes_exactly():
    data = load_data(DataConfig(name="moons"))
    assert resumed_equals_straight(lambda: data.train_stream(1000, seed=2), 9, 5)  # 8 batches per epoch


def test_point_spec_round_trips_and_draws_a_scatter_plot(tmp_path):
    from genzoo.specs import PointSpec, spec_from_dict

    spec = PointSpec("ring8", dim=2, num_classes=8)
    assert spec_from_dict(spec.to_dict()) == spec
    path = spec.save_samples(torch.randn(100, 2), tmp_path / "points")
    assert path == tmp_path / "points.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ring8_quality_counts_modes_and_high_quality_samples():
    data = load_data(DataConfig(name="ring8"))
    within_3_std = 1 - math.exp(-9 / 2)  # a 2-D Gaussian: |x - mu|^2 / std^2 is chi-squared with 2 dof
    assert data.score_samples(data.test_images) == {"modes": 8.0, "high_quality": pytest.approx(within_3_std, abs=0.008)}
    one_mode = data.test_images[data.test_labels == 3]  # collapse onto one mode
    assert ring8_quality(one_mode) == {"modes": 1.0, "high_quality": pytest.approx(within_3_std, abs=0.02)}
    angle = torch.linspace(0, 2 * torch.pi, 1601)[:-1]  # points spread evenly along the circle
    even = torch.stack([angle.cos(), angle.sin()], dim=1)
    # within 3 std = 0.15 of a centre: chord 2 sin(phi / 2) < 0.15, an arc of 4 asin(0.075) per mode
    assert ring8_quality(even)["high_quality"] == pytest.approx(8 * 2 * 2 * math.asin(0.075) / (2 * math.pi), abs=0.01)
    assert ring8_quality(2 * even)["modes"] == 0.0  # a ring twice too large: nothing near a mode
