"""Anomaly detection (genzoo/anomaly.py): each family's score, the complexity correction, the text
windows, the baseline, and ``genzoo anomaly`` end to end."""

import math
import zlib

import pytest
import torch
from helpers import CONFIGS, FAST

from genzoo.anomaly import (
    anomaly_scores, baseline_anomaly, complexity_corrected, image_anomaly, in_vocabulary, png_bits,
    python_source, subset, text_windows,
)
from genzoo.cli import main
from genzoo.config import DataConfig
from genzoo.errors import DataError
from genzoo.metrics import auroc
from genzoo.model import GenerativeModel
from genzoo.models.ebm import EBM, EBMConfig
from genzoo.models.gan import GAN, GANConfig
from genzoo.sources import load_data
from genzoo.specs import ImageSpec, TextSpec


class BrightnessModel(GenerativeModel):
    """A stand-in with a known likelihood: log p(x) = -(number of bright pixels) nats."""

    family = "stub"
    likelihood = "exact"

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def log_prob(self, x, *, scale: float = 1.0):
        return -scale * (x > 0).flatten(1).sum(1).float()


def test_auroc_direction_and_ties_on_hand_made_scores():
    usual, unusual = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.25, 0.9])
    # pairs (out > in): 0.25 beats 0.1, 0.2; 0.9 beats all three: 5 of 6
    assert auroc(usual, unusual) == pytest.approx(5 / 6)
    assert auroc(unusual, usual) == pytest.approx(1 / 6)  # swapping the sets mirrors it
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0])) == pytest.approx(0.75)  # a tie counts 1/2


def test_the_default_score_is_minus_log_prob_and_options_reach_log_prob():
    model = BrightnessModel()
    x = torch.full((3, 1, 4, 4), -1.0)
    x[1, 0, 0, :2] = 1.0
    x[2, 0, :2, :] = 1.0
    assert anomaly_scores(model, x, batch_size=2).tolist() == [0.0, 2.0, 8.0]
    assert anomaly_scores(model, x, scale=0.5).tolist() == [0.0, 1.0, 4.0]


def test_the_conditional_gan_scores_the_class_it_looks_most_real_as():
    spec = ImageSpec("digits", (1, 28, 28), num_classes=10)
    torch.manual_seed(0)
    gan = GAN.from_config(GANConfig(conditional=True), spec).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    d = gan.discriminator
    with torch.no_grad():
        phi = d.features(x)  # (B, F)
        every_class = d.head(phi) + phi @ d.labels.weight.T  # (B, C): eq. 3 for all labels at once
        assert torch.allclose(gan.anomaly_score(x), -every_class.max(dim=1).values, atol=1e-5)


def test_the_ebm_scores_with_its_energy():
    spec = ImageSpec("digits", (1, 28, 28), num_classes=10)
    torch.manual_seed(0)
    ebm = EBM.from_config(EBMConfig(), spec).eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ebm.anomaly_score(x), ebm.energy_net(x)[:, 0])


def test_png_bits_are_the_png_file_size_and_grow_with_content():
    blank = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    noise = torch.randint(0, 256, (1, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    bits = png_bits(torch.cat([blank, noise]))
    # An 8-bit noise image cannot be stored in fewer than 784 bytes; a blank one needs far fewer.
    assert bits[1] >= 8 * 784 > 4 * bits[0]
    # PNG's payload is zlib-deflated rows (one filter byte each): it is never much smaller than zlib's
    rows = b"".join(b"\x00" + bytes(row.tolist()) for row in noise[0, 0])
    assert bits[1] >= 8 * len(zlib.compress(rows, 9))


def test_complexity_correction_is_bits_minus_png_bits():
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    nll_nats = torch.tensor([10.0, 20.0, 30.0]) * math.log(2)  # 10, 20, 30 bits
    expected = torch.tensor([10.0, 20.0, 30.0]) - png_bits(images)
    assert torch.allclose(complexity_corrected(nll_nats, images), expected)


def test_image_anomaly_reports_both_scores_for_a_likelihood_model():
    torch.manual_seed(0)
    inliers = torch.zeros(20, 1, 8, 8, dtype=torch.uint8)
    outliers = torch.zeros(20, 1, 8, 8, dtype=torch.uint8)
    outliers[:, :, :4] = 255  # half bright: 32 bright pixels each, a score of 32 nats against 0
    report = image_anomaly(BrightnessModel(), inliers, outliers)
    assert report["auroc"] == 1.0 and (report["n_in"], report["n_out"]) == (20, 20)
    assert report["scores"]["out"].tolist() == [32.0] * 20
    assert "corrected_auroc" in report and report["bits_per_dim"]["out"] == pytest.approx(32 / (64 * math.log(2)))


def test_subset_is_seeded_and_without_replacement():
    images = torch.arange(100)
    a, b = subset(images, 10), subset(images, 10)
    assert torch.equal(a, b) and len(set(a.tolist())) == 10
    assert torch.equal(subset(images, 500), images)


def test_text_windows_do_not_overlap_and_vocabulary_is_enforced():
    ids = torch.arange(100)
    windows = text_windows(ids, 10, 5)
    assert windows.shape == (5, 10)
    assert torch.equal(windows, windows[:, :1] + torch.arange(10))  # contiguous
    assert len(set(windows[:, 0].tolist())) == 5 and all(s % 10 == 0 for s in windows[:, 0].tolist())
    spec = TextSpec("toy", "ab =")
    kept, removed = in_vocabulary("a = b # c", spec)
    assert kept == "a = b  " and removed == pytest.approx(2 / 9)


def test_python_source_comes_from_this_interpreter_and_is_repeatable():
    code = python_source(max_chars=20_000)
    assert len(code) == 20_000 and code == python_source(max_chars=20_000)
    assert "def " in code and "import " in code


def test_the_simplest_model_trained_on_fashion_prefers_mnist_and_the_correction_fixes_it():
    """Nalisnick et al. 2019's surprise, on the simplest likelihood model (independent pixels): trained
    on FashionMNIST it finds MNIST digits likelier than its own test images (AUROC below 1/2); the
    input-complexity correction of Serrà et al. 2020 turns that around."""
    try:
        fashion = load_data(DataConfig(name="fashion_mnist", download=False))
        mnist = load_data(DataConfig(name="mnist", download=False))
    except DataError as err:
        pytest.skip(str(err))
    result = baseline_anomaly(fashion.train_x[:5000], subset(fashion.test_x, 500), subset(mnist.test_x, 500))
    assert result["auroc"] < 0.5 < result["corrected_auroc"]


def test_genzoo_anomaly_on_a_trained_run(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST]) == 0
    try:
        load_data(DataConfig(name="fashion_mnist", download=False))
    except DataError as err:
        pytest.skip(str(err))
    capsys.readouterr()
    assert main(["anomaly", str(run), "--ood", "fashion_mnist", "-n", "40", "k=2"]) == 0
    out = capsys.readouterr().out
    assert "AUROC" in out and "complexity-corrected" in out and (run / "anomaly_fashion_mnist.png").is_file()


def test_a_text_run_names_its_outlier_set(tmp_path, capsys):
    run = tmp_path / "lm"
    assert main(["train", str(CONFIGS / "lm_shakespeare.toml"), "--out", str(run), *FAST]) == 0
    assert main(["anomaly", str(run), "--ood", "fashion_mnist"]) == 2
    assert "--ood python" in capsys.readouterr().err
    assert main(["anomaly", str(run), "--ood", "python", "-n", "20"]) == 0
    assert "AUROC" in capsys.readouterr().out

