"""Batching: the contracted batch shapes, epochs, exact stream resume, text windows and splits."""

import io

import pytest
import torch

from genzoo.config import DataConfig
from genzoo.data import EpochStream, TextData, TextStream
from genzoo.errors import DataError
from genzoo.pixels import from_uint8, to_uint8
from genzoo.sources import load_data, shipped_mnist


# -- images --------------------------------------------------------------------------------------


def test_image_batches_have_the_contracted_shapes_types_and_ranges():
    data = shipped_mnist()
    x, y = next(data.train_stream(batch_size=32, seed=0))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (32,) and y.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0 and 0 <= y.min() and y.max() <= 9
    assert torch.equal(to_uint8(x), x.add(1).mul(127.5).round().to(torch.uint8))  # exactly on the 8-bit levels
    test = list(data.test_batches(batch_size=64))
    assert [len(b[0]) for b in test] == [64] * 7 + [52]  # the whole held-out split once, in order
    assert torch.equal(torch.cat([b[1] for b in test]), data.test_y)
    val = list(data.val_batches(batch_size=64, n_batches=2))
    assert len(val) == 2 and all(torch.equal(v[0], t[0]) for v, t in zip(val, test))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(val, data.val_batches(64, 2)))  # the same every call


def test_an_image_epoch_visits_every_example_once():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 28, 28)
    stream = EpochStream(images, torch.arange(10), batch_size=5, seed=0, decode=from_uint8)
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
    assert resumed_equals_straight(lambda: EpochStream(images, labels, 64, seed=3, decode=from_uint8), n_before, 12)


def test_image_stream_rejects_state_from_another_dataset():
    stream = EpochStream(torch.zeros(20, 1, 28, 28, dtype=torch.uint8), torch.zeros(20), 4, seed=0, decode=from_uint8)
    other = EpochStream(torch.zeros(30, 1, 28, 28, dtype=torch.uint8), torch.zeros(30), 4, seed=0, decode=from_uint8)
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


def test_text_eval_batches_are_fixed_and_cover_the_val_text():
    text = "First Citizen:\r\nBefore we proceed any further, hear me speak.\r\n" * 40
    data = TextData("tinyshakespeare", text, "a test text", block_size=16)
    assert "\r" not in data.spec.vocab and data.source.startswith("a test text (")
    a, b = list(data.val_batches(8, 3)), list(data.val_batches(8, 3))
    assert len(a) == 3 and all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    test = list(data.test_batches(batch_size=8))
    xs, ys = torch.cat([t[0] for t in test]).flatten(), torch.cat([t[1] for t in test]).flatten()
    assert torch.equal(xs, data.val_ids[: len(xs)].long())  # non-overlapping windows, in order
    assert torch.equal(ys, data.val_ids[1 : len(xs) + 1].long())
    assert len(data.val_ids) - len(xs) <= 16  # the windows cover all but the tail


# -- 2-D points ----------------------------------------------------------------------------------


def test_point_stream_resumes_exactly():
    data = load_data(DataConfig(name="moons"))
    assert resumed_equals_straight(lambda: data.train_stream(1000, seed=2), 9, 5)  # 8 batches per epoch


def test_point_spec_round_trips_and_draws_a_scatter_plot(tmp_path):
    from genzoo.specs import PointSpec, spec_from_dict

    spec = PointSpec("ring8", dim=2, num_classes=8)
    assert spec_from_dict(spec.to_dict()) == spec
    path = spec.save_samples(torch.randn(100, 2), tmp_path / "points")
    assert path == tmp_path / "points.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_examples_of_every_class_pair_different_digits_even_when_the_test_split_is_sorted():
    data = load_data(DataConfig(name="mnist"))
    order = data.test_y.argsort(stable=True)  # sorted by class, as the shipped test split is
    data.test_x, data.test_y = data.test_x[order], data.test_y[order]
    first = next(data.test_batches(32))[1]
    assert (first[0::2] == first[1::2]).all()  # what the VAE recipe's interpolation grid used to pair
    x, y = data.test_examples_of_every_class(32)
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32
    assert y[:10].tolist() == list(range(10))
    assert (y[0::2] != y[1::2]).all()
    # each is a real test digit with its own label
    for image, label in zip(x[:12], y[:12]):
        match = (from_uint8(data.test_x) == image).flatten(1).all(dim=1).nonzero().flatten()
        assert len(match) >= 1 and (data.test_y[match] == label).all()
