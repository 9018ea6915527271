"""Datasets in memory and their batches: what the trainer reads. Where data comes from is ``sources.py``.

Whole datasets live in memory (uint8 images, float points, small-integer token ids) and batches are
cut from them by indexing: no DataLoader, no worker processes to start on a 2-core laptop.

Every batch is ``(x, y)``: images in [-1, 1] (B, C, H, W) and int64 labels (B,), token ids
(B, T) and next-token targets (B, T), both int64, or 2-D points (B, 2) and int64 labels (B,).
Training batches come from a ``BatchStream`` that owns its random generator, so its ``state_dict``
resumes the exact batch order after a restart.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from genzoo.errors import DataError
from genzoo.metrics import ring8_quality
from genzoo.specs import ImageSpec, PointSpec, TextSpec

Batch = tuple[Tensor, Tensor]
Split = tuple[Tensor, Tensor]  # a whole split held in memory: examples x (N, ...) and int64 labels y (N,)
Decode = Callable[[Tensor], Tensor]  # stored examples -> model inputs: from_uint8 for images, unchanged for points

HELD_OUT_FRACTION = 0.1  # of every text (its end), and of the shipped MNIST sample (per class)
VAL_SEED = 1234  # the fixed windows text validation draws


def unchanged(x: Tensor) -> Tensor:
    """The ``decode`` of examples stored as the model sees them (float points)."""
    return x


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


class EpochStream(BatchStream):
    """Epochs of a random permutation of the examples; the last partial batch of an epoch is dropped.

    The state is the generator's state at the start of the current epoch plus the position in it:
    replaying that state redraws the same permutation, so a loaded stream continues exactly.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int, decode: Decode):
        if not 0 < batch_size <= len(x):
            raise DataError(f"batch_size must be between 1 and {len(x):,} (the training images), got {batch_size}")
        self.x, self.y, self.batch_size, self.decode = x, y, batch_size, decode  # (N, ...), (N,)
        self.generator = torch.Generator().manual_seed(seed)
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.epoch_rng = self.generator.get_state()
        self.order = torch.randperm(len(self.x), generator=self.generator)
        self.position = 0

    def __next__(self) -> Batch:
        if self.position + self.batch_size > len(self.x):
            self._start_epoch()
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.decode(self.x[index]), self.y[index]  # (B, ...), (B,)

    def state_dict(self) -> dict:
        return {"epoch_rng": self.epoch_rng.clone(), "position": self.position, "num_examples": len(self.x)}

    def load_state_dict(self, state: dict) -> None:
        _check_size(state["num_examples"], len(self.x), "training images")
        self.generator.set_state(state["epoch_rng"])
        self._start_epoch()
        self.position = int(state["position"])


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

    spec: ImageSpec | PointSpec | TextSpec
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

    def sample_quality(self, metrics: dict[str, float]) -> float | None:
        """One number, higher is better, ranking samples by ``score_samples``' metrics; None where the
        data scores none (what ``best.pt`` follows for a family without a likelihood)."""
        return None


class ExampleData(Data):
    """Labelled examples (images or points) in a train and a held-out (test) split, with int64 labels.

    ``x`` is stored compactly (uint8 images (N, C, H, W), float32 points (N, D)); ``decode`` turns
    stored examples into what the model reads (``from_uint8`` for images, ``unchanged`` for points).
    """

    def __init__(self, spec: ImageSpec | PointSpec, source: str, train: Split, test: Split, decode: Decode):
        self.spec, self.source, self.decode = spec, source, decode
        self.train_x, self.train_y = train
        self.test_x, self.test_y = test

    def train_stream(self, batch_size: int, seed: int) -> EpochStream:
        return EpochStream(self.train_x, self.train_y, batch_size, seed, self.decode)

    def val_batches(self, batch_size: int, n_batches: int) -> Iterator[Batch]:
        """The first ``n_batches * batch_size`` held-out examples in order (fewer if the split is smaller)."""
        n = min(batch_size * n_batches, len(self.test_x))
        yield from self._in_order(n, batch_size)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """Every held-out example once, in order; the last batch may be smaller."""
        yield from self._in_order(len(self.test_x), batch_size)

    def test_examples_of_every_class(self, n: int) -> Batch:
        """``n`` test examples whose labels cycle 0, 1, ..., C-1, 0, 1, ...: consecutive examples differ
        in class even where the test split is sorted by class (the digits genzoo ships are)."""
        by_class = [(self.test_y == c).nonzero().flatten() for c in self.test_y.unique()]
        index = torch.stack([by_class[i % len(by_class)][(i // len(by_class)) % len(by_class[i % len(by_class)])]
                             for i in range(n)])
        return self.decode(self.test_x[index]), self.test_y[index]

    def _in_order(self, n: int, batch_size: int) -> Iterator[Batch]:
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            yield self.decode(self.test_x[i:j]), self.test_y[i:j]


class Ring8Data(ExampleData):
    """The ring of 8 Gaussians, whose samples the trainer scores for mode collapse at each evaluation."""

    samples_to_score = 1000

    def score_samples(self, x: Tensor) -> dict[str, float]:
        return ring8_quality(x)

    def sample_quality(self, metrics: dict[str, float]) -> float:
        """Modes covered first, then the share of high-quality samples (modes are whole, the share <= 1)."""
        return metrics["modes"] + metrics["high_quality"]


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
