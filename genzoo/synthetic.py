"""Synthetic training data: the classification accuracy score (Ravuri & Vinyals 2019, "Classification
Accuracy Score for Conditional Generative Models").

A class-conditional model is asked for digits of each class; a classifier is trained on those samples
alone and tested on the real test set. If the samples carry what makes a 3 a 3, in all the ways real
3s vary, that classifier does about as well as one trained on real digits; samples that are sharp but
all alike (mode collapse), or that drift towards the wrong class, score lower. Unlike FID it needs no
feature network trained elsewhere: the number is an accuracy on real data.

    cas   = accuracy on the real test set of a classifier trained on n synthetic digits      (a)
    real  = accuracy of the same classifier trained on the real training digits              (b)
    ratio = cas / real

and the augmentation case: a small class-balanced set of real digits alone (c), against the same
digits plus the n synthetic ones (d).

The classifier is ``genzoo.evaluator.EvaluatorNet`` with fresh weights (not the shipped evaluator),
trained the same way in every case: the same seed, and a fixed number of AdamW steps on batches drawn
with replacement, so every case gets the same compute whatever the size of its training set.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.checkpoint import load_model
from genzoo.config import check_options
from genzoo.data import Split
from genzoo.errors import ConfigError
from genzoo.evaluator import EvaluatorNet
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8, to_uint8
from genzoo.runtime import pick_device
from genzoo.sources import load_data
from genzoo.specs import ImageSpec

NUM_CLASSES = 10  # MNIST and FashionMNIST: the classes of EvaluatorNet's head


@dataclass(frozen=True)
class ClassifierTraining:
    """How every classifier is trained (the same for real and synthetic data, so only the data differs).

    300 steps of batch 128 (about 8 epochs of the 5,000 MNIST-5k digits) reached 0.978 on the full
    MNIST test set in 57 s on one CPU thread of a 2-core machine busy with another training (lr 1e-3:
    0.969; 200 steps at 3e-3: 0.974); the shipped evaluator, trained 40 epochs with distortions, 0.99.
    """

    steps: int = 300
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0


def as_input(images: Tensor) -> Tensor:
    """uint8 images (0..255) or floats in [-1, 1] -> what the classifier reads: floats in [-1, 1]."""
    return from_uint8(images) if images.dtype == torch.uint8 else images.float().clamp(-1, 1)


def train_classifier(images: Tensor, labels: Tensor, *, steps: int, batch_size: int, lr: float, seed: int) -> nn.Module:
    """A fresh ``EvaluatorNet`` trained for ``steps`` AdamW steps on ``images`` (N, 1, 28, 28) (uint8 or
    [-1, 1]) and int64 ``labels`` (N,); returned in eval mode.

    Batches are drawn with replacement by a generator seeded with ``seed``, and the initial weights and
    dropout masks come from ``seed`` too, inside ``fork_rng``: the same data gives the same classifier
    bit for bit, and torch's global random state is left as it was. The learning rate decays to zero
    on a cosine, so the last steps do not leave the weights wherever one noisy batch put them.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = EvaluatorNet(NUM_CLASSES)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        classifier.train()
        for _ in range(steps):
            index = torch.randint(len(images), (batch_size,), generator=generator)  # (B,)
            loss = F.cross_entropy(classifier(as_input(images[index])), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return classifier.eval()


def accuracy(classifier: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 128) -> float:
    """The fraction of ``images`` (N, 1, 28, 28) (uint8 or [-1, 1]) whose predicted class is ``labels`` (N,).

    Batches of 128: on one CPU thread about twice as fast per image as batches of 1,000, whose
    activations (125 MB after the first convolution) do not fit in the cache."""
    classifier.eval()
    with torch.no_grad():
        predicted = torch.cat([classifier(as_input(chunk)).argmax(-1) for chunk in images.split(batch_size)])
    return float((predicted == labels).float().mean())


def require_conditional(model: GenerativeModel) -> None:
    """Fail in one line, saying what to do, when ``model`` cannot be asked for a class."""
    if not model.conditional:
        raise ConfigError(f"this {model.family} is unconditional: synthetic training data needs samples of a "
                          "chosen class (train it with model.conditional = true)")


def labelled_samples(
    model: GenerativeModel, n: int, *, generator: torch.Generator | None = None, batch_size: int = 500,
    **sample_options: Any,
) -> tuple[Tensor, Tensor]:
    """``n`` samples of a class-conditional model with labels 0, 1, ..., 9, 0, 1, ... (balanced to
    within one per class), drawn ``batch_size`` at a time and quantised to 8 bits as a saved image
    would be: uint8 images (n, C, H, W) and their int64 labels (n,)."""
    require_conditional(model)
    labels = torch.arange(n) % NUM_CLASSES  # (n,)
    chunks = []
    for batch in labels.split(batch_size):
        x = model.sample(len(batch), generator=generator, labels=batch.to(model.device), **sample_options)
        chunks.append(to_uint8(x.detach().cpu()))
    return torch.cat(chunks), labels


def balanced_subset(labels: Tensor, n: int, seed: int = 0) -> Tensor:
    """Indices of ``n`` examples, n / C of each of the C classes, each class's drawn by a permutation
    seeded with ``seed``; sorted, so the subset keeps the order of the data."""
    classes = labels.unique()
    if n % len(classes):
        raise ConfigError(f"a class-balanced subset of {len(classes)} classes needs a multiple of "
                          f"{len(classes)}, got {n}")
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        if len(members) < n // len(classes):
            raise ConfigError(f"class {int(c)} has {len(members)} examples, "
                              f"fewer than the {n // len(classes)} asked for")
        picked.append(members[torch.randperm(len(members), generator=generator)[: n // len(classes)]])
    return torch.cat(picked).sort().values


def augmented(real: Split, subset: Tensor, synthetic: Split) -> Split:
    """The real examples ``subset`` repeated to about as many as the synthetic ones, then the synthetic
    ones: half of every batch is real on average. In the plain union 500 real digits would be 1 example
    in 21 beside 10,000 samples, and the GAN run's samples then pulled the accuracy below that of the
    500 real digits alone (0.875 against 0.950)."""
    copies = max(1, round(len(synthetic[1]) / len(subset)))
    x = torch.cat([real[0][subset].repeat(copies, 1, 1, 1), synthetic[0]])  # (copies * S + n, 1, 28, 28)
    return x, torch.cat([real[1][subset].repeat(copies), synthetic[1]])


def timed_training(images: Tensor, labels: Tensor, training: ClassifierTraining) -> tuple[nn.Module, float]:
    started = time.perf_counter()
    classifier = train_classifier(images, labels, **asdict(training))
    return classifier, time.perf_counter() - started


def real_baselines(
    real_train: Split, real_test: Split, *, augment_real: int = 500, training: ClassifierTraining = ClassifierTraining()
) -> dict[str, Any]:
    """The two numbers that do not depend on the model: test accuracy of the classifier trained on all
    of ``real_train`` (b), and on its class-balanced ``augment_real`` subset (c, drawn with the
    classifier's seed). Compute once, pass to ``classification_accuracy_score`` for every model."""
    subset = balanced_subset(real_train[1], augment_real, training.seed)
    classifier, seconds = timed_training(*real_train, training)
    few, _ = timed_training(real_train[0][subset], real_train[1][subset], training)
    return {
        "real": accuracy(classifier, *real_test), "real_subset": accuracy(few, *real_test),
        "real_train": len(real_train[1]), "augment_real": augment_real, "real_test": len(real_test[1]),
        "train_seconds": seconds, "training": asdict(training),
    }


def classification_accuracy_score(
    model: GenerativeModel,
    real_train: Split,
    real_test: Split,
    *,
    n: int = 10_000,
    augment_real: int = 500,
    baselines: dict[str, Any] | None = None,
    training: ClassifierTraining = ClassifierTraining(),
    generator: torch.Generator | None = None,
    **sample_options: Any,
) -> dict[str, Any]:
    """Train the classifier on ``n`` samples of ``model`` (a) and on the class-balanced ``augment_real``
    real digits plus those samples (d); test both on ``real_test`` and set them beside the real-data
    numbers (b, c) of ``baselines`` (from ``real_baselines``; computed here when not given).

    (d) weighs the real digits and the samples equally (``augmented``); its steps are the same as
    every other case's.

    ``real_train`` and ``real_test`` are (uint8 images (N, 1, 28, 28), labels (N,)). Returns the
    accuracies, ``ratio`` = cas / real, and the seconds spent sampling and training.
    """
    require_conditional(model)  # before the minutes the baselines take
    if baselines is None:
        baselines = real_baselines(real_train, real_test, augment_real=augment_real, training=training)
    if (baselines["training"], baselines["augment_real"]) != (asdict(training), augment_real):
        raise ConfigError("baselines were measured with other classifier settings or another augment_real: "
                          "compute them with real_baselines(..., augment_real, training) of this call")
    started = time.perf_counter()
    images, labels = labelled_samples(model, n, generator=generator, **sample_options)
    sample_seconds = time.perf_counter() - started
    synthetic, train_seconds = timed_training(images, labels, training)
    subset = balanced_subset(real_train[1], augment_real, training.seed)
    mixed, _ = timed_training(*augmented(real_train, subset, (images, labels)), training)
    cas = accuracy(synthetic, *real_test)
    return {
        "samples": n, "cas": cas, "real": baselines["real"], "ratio": cas / baselines["real"],
        "augment_real": augment_real, "real_subset": baselines["real_subset"],
        "real_subset_plus_synthetic": accuracy(mixed, *real_test),
        "sample_seconds": sample_seconds, "ms_per_image": 1000 * sample_seconds / n,
        "train_seconds": train_seconds, "training": asdict(training), "sample_options": sample_options,
    }


def score_run(
    run: str | Path,
    n: int = 10_000,
    *,
    which: str = "last",
    sample_options: dict[str, Any] | None = None,
    augment_real: int = 500,
    training: ClassifierTraining = ClassifierTraining(),
    data_root: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``classification_accuracy_score`` of a run folder's model (EMA weights when kept), with the run's
    ``[sample]`` options updated by ``sample_options``, on the run's own dataset (``genzoo synthetic``)."""
    model, cfg, spec = load_model(run, which)
    options = {**cfg.sample, **(sample_options or {})}
    check_options(model.sample, options, "sampling option --")
    if "labels" in options:
        raise ConfigError("genzoo synthetic chooses the labels itself (0, 1, ..., 9, 0, ...): drop --labels")
    if not isinstance(spec, ImageSpec) or (tuple(spec.shape), spec.num_classes) != ((1, 28, 28), NUM_CLASSES):
        raise ConfigError(f"synthetic training data needs grey 28x28 images of {NUM_CLASSES} classes (mnist, "
                          f"fashion_mnist): the classifier's input; this run was trained on {spec.name}")
    require_conditional(model)
    model.to(pick_device(cfg.train.device))
    data = load_data(cfg.data, data_root)
    generator = torch.Generator(model.device).manual_seed(seed)
    score = classification_accuracy_score(
        model, (data.train_x, data.train_y), (data.test_x, data.test_y), n=n, augment_real=augment_real,
        training=training, generator=generator, **options,
    )
    return {"run": str(run), "family": cfg.family, "dataset": cfg.data.name, "data": data.source,
            "checkpoint": which, "seed": seed, "real_train": len(data.train_y), "real_test": len(data.test_y),
            **score}
