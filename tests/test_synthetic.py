"""The classification accuracy score: a "generator" whose samples are the real training digits scores
exactly the real-data accuracy, one that draws noise scores chance, and unconditional models are refused.

Small on purpose: 1,000 shipped training digits, the 500 shipped test digits, classifiers of a few
dozen steps (seconds each on one CPU thread).
"""

import pytest
import torch
from torch import Tensor

from genzoo.cli import main
from genzoo.errors import ConfigError
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8
from genzoo.sources import shipped_mnist
from genzoo.synthetic import (
    ClassifierTraining, augmented, balanced_subset, classification_accuracy_score, labelled_samples, real_baselines,
    train_classifier,
)
from helpers import CONFIGS, FAST  # tests/helpers.py

TINY = ClassifierTraining(steps=40, batch_size=32, lr=3e-3, seed=0)


class ToyModel(GenerativeModel):
    """A stand-in conditional model; ``device`` without parameters (the base class reads a parameter's)."""

    family = "toy"

    @property
    def conditional(self) -> bool:
        return True

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


class RealDigits(ToyModel):
    """Samples that are real digits: for each requested label, the next unused digit of that class."""

    def __init__(self, images: Tensor, labels: Tensor):
        super().__init__()
        self.images, self.labels = images, labels
        self.used = {int(c): 0 for c in labels.unique()}  # digits of each class handed out so far

    def sample(self, n: int, *, generator: torch.Generator | None = None, labels: Tensor = ()) -> Tensor:
        picked = []
        for c in torch.as_tensor(labels).tolist():
            picked.append((self.labels == c).nonzero().flatten()[self.used[c]])
            self.used[c] += 1
        return from_uint8(self.images[torch.stack(picked)])  # (n, 1, 28, 28) in [-1, 1]


class Noise(ToyModel):
    def sample(self, n: int, *, generator: torch.Generator | None = None, labels: Tensor = ()) -> Tensor:
        return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1


class LabelPainter(ToyModel):
    """Images whose every pixel is the requested label's level, and a log of the labels asked for."""

    def __init__(self):
        super().__init__()
        self.requests: list[list[int]] = []

    def sample(self, n: int, *, generator: torch.Generator | None = None, labels: Tensor = ()) -> Tensor:
        self.requests.append(torch.as_tensor(labels).tolist())
        return from_uint8(torch.as_tensor(labels).view(-1, 1, 1, 1).expand(n, 1, 28, 28))


class Unconditional(ToyModel):
    @property
    def conditional(self) -> bool:
        return False


@pytest.fixture(scope="module")
def digits():
    """1,000 shipped training digits with labels 0, 1, ..., 9, 0, 1, ... (the order ``labelled_samples``
    asks for classes), and the 500 shipped test digits (50 of each class)."""
    data = shipped_mnist()
    by_class = torch.stack([(data.train_y == c).nonzero().flatten()[:100] for c in range(10)])  # (10, 100)
    index = by_class.T.flatten()  # (1000,): one of each class in turn
    return (data.train_x[index], data.train_y[index]), (data.test_x, data.test_y)


@pytest.fixture(scope="module")
def baselines(digits):
    return real_baselines(*digits, augment_real=100, training=TINY)


def test_samples_that_are_the_real_digits_score_the_real_accuracy_exactly(digits, baselines):
    real_train, real_test = digits
    images, labels = labelled_samples(RealDigits(*real_train), 1000, batch_size=300)
    assert torch.equal(images, real_train[0]) and torch.equal(labels, real_train[1])  # the same digits, same order

    assert baselines["real"] > 0.6  # the classifier learnt something, so equality is not two chance scores
    score = classification_accuracy_score(
        RealDigits(*real_train), real_train, real_test, n=1000, augment_real=100, baselines=baselines, training=TINY
    )
    assert score["cas"] == baselines["real"] and score["ratio"] == 1.0
    assert score["real_subset"] == baselines["real_subset"]
    assert score["ms_per_image"] > 0 and score["train_seconds"] > 0


def test_noise_scores_chance(digits, baselines):
    real_train, real_test = digits
    score = classification_accuracy_score(
        Noise(), real_train, real_test, n=1000, augment_real=100, baselines=baselines, training=TINY,
        generator=torch.Generator().manual_seed(0),
    )
    assert abs(score["cas"] - 0.1) < 0.06 and score["ratio"] < 0.2  # 10 balanced classes: chance is 0.1


def test_labelled_samples_are_balanced_and_carry_the_labels_asked_for():
    model = LabelPainter()
    images, labels = labelled_samples(model, 25, batch_size=7)
    assert [len(r) for r in model.requests] == [7, 7, 7, 4]
    assert sum(model.requests, []) == labels.tolist() == [i % 10 for i in range(25)]
    assert torch.bincount(labels, minlength=10).tolist() == [3] * 5 + [2] * 5
    assert images.dtype == torch.uint8 and images.shape == (25, 1, 28, 28)
    painted = images[:, 0, 0, 0]  # each image is the level of the label it was drawn for
    assert torch.equal(painted.long(), labels)


def test_an_unconditional_model_is_refused_in_one_line(digits):
    with pytest.raises(ConfigError, match=r"model\.conditional = true") as err:
        labelled_samples(Unconditional(), 10)
    assert "\n" not in str(err.value)
    real_train, real_test = digits
    with pytest.raises(ConfigError, match=r"model\.conditional = true"):  # before training the baselines
        classification_accuracy_score(Unconditional(), real_train, real_test, training=TINY)


def test_baselines_of_other_settings_are_refused(digits):
    real_train, real_test = digits
    baselines = {"training": vars(TINY) | {"steps": 41}, "augment_real": 100, "real": 0.9, "real_subset": 0.8}
    with pytest.raises(ConfigError, match="other classifier settings"):
        classification_accuracy_score(RealDigits(*real_train), real_train, real_test, n=10, augment_real=100,
                                      baselines=baselines, training=TINY)


def test_balanced_subset_takes_the_same_number_of_each_class():
    labels = torch.arange(300) % 3
    labels[:30] = 0  # unequal classes
    index = balanced_subset(labels, 60, seed=1)
    assert torch.bincount(labels[index]).tolist() == [20, 20, 20]
    assert torch.equal(index, index.sort().values) and len(index.unique()) == 60
    assert torch.equal(index, balanced_subset(labels, 60, seed=1))
    assert not torch.equal(index, balanced_subset(labels, 60, seed=2))
    with pytest.raises(ConfigError, match="multiple of 3"):
        balanced_subset(labels, 61)


def test_the_augmented_set_weighs_real_and_synthetic_equally():
    real = torch.zeros(100, 1, 28, 28, dtype=torch.uint8), torch.arange(100) % 10
    synthetic = torch.full((2000, 1, 28, 28), 255, dtype=torch.uint8), torch.arange(2000) % 10
    subset = balanced_subset(real[1], 50)
    x, y = augmented(real, subset, synthetic)
    is_real = x[:, 0, 0, 0] == 0
    assert is_real.sum() == 2000 and len(x) == 4000
    assert torch.equal(torch.bincount(y[is_real]), torch.full((10,), 200))  # each real digit 40 times
    assert torch.equal(x[~is_real], synthetic[0]) and torch.equal(y[~is_real], synthetic[1])


def test_training_is_repeatable_and_leaves_the_global_random_state_alone(digits):
    (x, y), _ = digits
    before = torch.get_rng_state()
    a = train_classifier(x, y, steps=3, batch_size=8, lr=1e-3, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = train_classifier(x, y, steps=3, batch_size=8, lr=1e-3, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_cli_scores_a_conditional_run_and_refuses_an_unconditional_one(tmp_path, capsys, monkeypatch):
    # The run's data, MNIST, is the 500 shipped test digits here: 10,000 would take the classifiers ~30 s.
    monkeypatch.setattr("genzoo.synthetic.load_data", lambda cfg, root: shipped_mnist())
    run = tmp_path / "vae"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST]) == 0
    capsys.readouterr()
    assert main(["synthetic", str(run), "-n", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.conditional = true" in err[0]

    run = tmp_path / "cvae"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST,
                 "--set", "model.conditional=true"]) == 0
    capsys.readouterr()
    args = ["-n", "20", "--classifier-steps", "2", "--augment-real", "50", "--temperature", "0.5"]
    assert main(["synthetic", str(run), *args]) == 0
    out = capsys.readouterr().out
    for name in ("cas", "real", "ratio cas / real", "real subset", "real subset + samples", "sampling", "training"):
        assert f"\n{name} (" in out or f"\n{name}:" in out, name
    assert "'temperature': 0.5" in out and (run / "synthetic.json").is_file()
