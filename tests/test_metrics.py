"""The evaluator and its metrics against independent computations and hand-built cases."""

import math
import time

import pytest
import torch

from genzoo.config import DataConfig
from genzoo.errors import CheckpointError
from genzoo.evaluator import evaluator_path, load_evaluator
from genzoo.metrics import (
    RING8_STD,
    class_coverage,
    even_ring,
    feature_metrics,
    frechet_distance,
    gaussian_frechet,
    heldout_nll,
    image_metrics,
    mean_metrics,
    precision_recall,
    real_fid_spread,
    recognizability,
    reference_points,
    ring8_centres,
    ring8_quality,
)
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8
from genzoo.sources import load_data


def random_covariance(d: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- Fréchet


def test_frechet_grows_monotonically_as_a_gaussian_is_shifted():
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(3000, 8, generator=generator)
    fake = torch.randn(3000, 8, generator=generator)
    distances = [frechet_distance(real, fake + shift) for shift in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
    # With the same covariance, a shift by d adds exactly ||d||^2 to the mean term.
    assert frechet_distance(real, real + 0.5) == pytest.approx(8 * 0.25, rel=1e-9)


def test_closed_form_matches_a_direct_computation():
    generator = torch.Generator().manual_seed(2)
    for d in (1, 3, 6):
        mu1, mu2 = torch.randn(d, generator=generator, dtype=torch.float64), torch.randn(d, generator=generator, dtype=torch.float64)
        cov1, cov2 = random_covariance(d, generator), random_covariance(d, generator)
        # Directly: tr((cov1 cov2)^1/2) is the sum of the square roots of the (real, positive)
        # eigenvalues of the non-symmetric product cov1 cov2.
        cross = torch.linalg.eigvals(cov1 @ cov2).real.sqrt().sum()
        direct = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross
        assert gaussian_frechet(mu1, cov1, mu2, cov2) == pytest.approx(float(direct), rel=1e-8)


def test_frechet_between_diagonal_gaussians_is_the_wasserstein_formula():
    mu1, mu2 = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    var1, var2 = torch.tensor([1.0, 4.0]), torch.tensor([9.0, 0.25])
    expected = (mu1 - mu2).square().sum() + (var1.sqrt() - var2.sqrt()).square().sum()  # 8 + (4 + 2.25)
    assert gaussian_frechet(mu1, var1.diag(), mu2, var2.diag()) == pytest.approx(float(expected), rel=1e-10)


def test_frechet_distance_of_gaussian_samples_approaches_the_closed_form():
    """Samples of N(m1, R D1 R^T) and N(m2, R D2 R^T): the 2-Wasserstein distance squared is
    ||m1 - m2||^2 + sum (sqrt(D1) - sqrt(D2))^2 (the covariances commute), whatever the rotation R."""
    g = torch.Generator().manual_seed(4)
    d, n = 4, 40_000
    R = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    m1, m2 = torch.tensor([0.0, 1.0, 0.0, -1.0]), torch.tensor([0.5, 0.0, 0.0, 1.0])
    var1, var2 = torch.tensor([1.0, 4.0, 0.25, 2.0]), torch.tensor([2.0, 1.0, 1.0, 0.5])
    expected = (m1 - m2).square().sum() + (var1.sqrt() - var2.sqrt()).square().sum()  # 5.25 + 1.61
    real = (torch.randn(n, d, generator=g, dtype=torch.float64) * var1.sqrt()) @ R.T + m1.double() @ R.T
    fake = (torch.randn(n, d, generator=g, dtype=torch.float64) * var2.sqrt()) @ R.T + m2.double() @ R.T
    assert frechet_distance(real, fake) == pytest.approx(float(expected), rel=0.02)


def test_fid_spread_of_real_subsets_narrows_as_they_grow():
    """Subsets of one Gaussian scored against another sample of it: FID is pure sample noise, so its
    range over subsets shrinks with n, and there is no range when n takes every point."""
    g = torch.Generator().manual_seed(5)
    train, test = torch.randn(4000, 8, generator=g), torch.randn(4000, 8, generator=g)
    small, large = real_fid_spread(train, test, 200, draws=8), real_fid_spread(train, test, 2000, draws=8)
    assert 0 <= small["fid_min"] < small["fid_max"] and small["fid_draws"] == 8
    assert large["fid_max"] < small["fid_max"] and large["fid_sd"] < small["fid_sd"]
    assert real_fid_spread(train, test, 4000) == {}


# ---------------------------------------------------------------------------------------------- precision and recall


def test_precision_and_recall_on_known_point_sets():
    real = torch.arange(10.0)[:, None]  # 0, 1, ..., 9 on a line: each k=1 ball has radius 1
    fake = torch.tensor([0.1, 0.3, 0.5, 50.0, 50.5])[:, None]  # three near 0, a far pair; radii .2 .2 .2 .5 .5
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(3 / 5)  # 0.1, 0.3, 0.5 lie in the real balls; 50 and 50.5 do not
    assert recall == pytest.approx(1 / 10)  # only the real 0 lies within 0.2 of a fake point


def brute_force_precision_recall(real: list[list[float]], fake: list[list[float]], k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019, eq. 1-3, with Python lists and sorting: no shared code with genzoo."""

    def dist(a, b):
        return math.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b)))

    def radii(points):  # the k-th nearest *other* point
        return [sorted(dist(p, q) for j, q in enumerate(points) if j != i)[k - 1] for i, p in enumerate(points)]

    def share_inside(queries, points):
        r = radii(points)
        return sum(any(dist(q, p) <= rp for p, rp in zip(points, r)) for q in queries) / len(queries)

    return share_inside(fake, real), share_inside(real, fake)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_and_recall_match_a_brute_force_knn(k):
    """A narrower cloud beside a wider one: neither precision nor recall is near 0 or 1."""
    g = torch.Generator().manual_seed(k)
    real = torch.randn(60, 3, generator=g)
    fake = 0.7 * torch.randn(50, 3, generator=g) + torch.tensor([2.0, 0.0, 0.0])
    expected = brute_force_precision_recall(real.tolist(), fake.tolist(), k)
    assert all(0.05 < value < 0.95 for value in expected), expected  # a case where the answer is not trivial
    assert precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-6)  # one point is 1/60


def test_a_point_exactly_on_a_ball_is_inside():
    real = torch.arange(10.0)[:, None]  # k = 1 radii: all 1
    fake = torch.tensor([[10.0], [-1.0], [10.5]])  # on the balls of 9 and 0; outside every ball
    assert precision_recall(real, fake, k=1)[0] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------- classifier metrics


def test_recognizability_on_a_probability_table():
    probs = torch.tensor([
        [0.95, 0.05, 0.0],
        [0.5, 0.5, 0.0],
        [0.0, 0.1, 0.9],  # exactly at the threshold counts
        [0.2, 0.3, 0.5],
    ])
    assert recognizability(probs) == pytest.approx(0.5)
    assert recognizability(probs, threshold=0.5) == pytest.approx(1.0)


def test_class_coverage_on_hand_built_histograms():
    one_hot = torch.eye(10)
    assert class_coverage(one_hot) == pytest.approx(1.0)  # one sample of each class
    assert class_coverage(one_hot[[3, 3, 3, 3]]) == 0.0  # only threes
    two = one_hot[[1, 7] * 5]  # half ones, half sevens
    assert class_coverage(two) == pytest.approx(math.log(2) / math.log(10))


# ---------------------------------------------------------------------------------------------- likelihood


class Uniform8Bit(GenerativeModel):
    """Every 8-bit image equally likely: log p(x) = -D log 256."""

    family, likelihood = "uniform", "exact"

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def log_prob(self, x):
        return torch.full((len(x),), -x[0].numel() * math.log(256), dtype=torch.float64)


def test_bits_per_dim_of_a_uniform_8bit_model_is_8():
    batches = [(torch.rand(7, 1, 28, 28) * 2 - 1, torch.zeros(7)) for _ in range(3)]
    result = heldout_nll(Uniform8Bit(), batches)
    assert result["bits_per_dim"] == pytest.approx(8.0, abs=1e-12)
    assert result["examples"] == 21


class ScaledUniform(Uniform8Bit):
    """log p(x) = -scale D log 256: a log_prob option that ``heldout_nll`` must hand on."""

    def log_prob(self, x, scale=1.0):
        return scale * super().log_prob(x)


def test_heldout_nll_hands_on_log_prob_options_and_times_itself():
    batches = [(torch.zeros(5, 1, 4, 4), torch.zeros(5)), (torch.zeros(3, 1, 4, 4), torch.zeros(3))]
    started = time.perf_counter()
    result = heldout_nll(ScaledUniform(), batches, scale=0.5)
    elapsed = time.perf_counter() - started
    assert result["bits_per_dim"] == pytest.approx(4.0, abs=1e-12) and result["examples"] == 8
    assert result["nll_nats"] == pytest.approx(0.5 * 16 * math.log(256))
    assert set(result) == {"nll_nats", "bits_per_dim", "examples", "seconds"}
    assert 0 <= result["seconds"] <= elapsed


# ---------------------------------------------------------------------------------------------- the shipped evaluator


def test_evaluator_loads_with_weights_only_and_classifies_the_heldout_sample(tmp_path):
    state = torch.load(evaluator_path("mnist"), map_location="cpu", weights_only=True)
    assert state["version"] == 1 and state["dataset"] == "mnist"
    evaluator = load_evaluator("mnist")
    # An empty data root: genzoo falls back to its shipped MNIST sample, whose held-out 500 digits
    # the evaluator never trained on.
    data = load_data(DataConfig(name="mnist", download=False), str(tmp_path))
    _, probs = evaluator.embed(from_uint8(data.test_x))
    accuracy = float((probs.argmax(-1) == data.test_y).float().mean())
    assert accuracy > 0.97


def test_the_fashion_evaluator_loads_with_weights_only_and_names_itself():
    state = torch.load(evaluator_path("fashion_mnist"), map_location="cpu", weights_only=True)
    assert state["accuracy"]["fashion_mnist_test_10000"] > 0.9  # measured when built, on its test set
    evaluator = load_evaluator("fashion_mnist")
    features, probs = evaluator.embed(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    assert evaluator.name == "fashion_mnist-cnn-v1" and features.shape == (3, 128) and probs.shape == (3, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(3))


def test_a_missing_evaluator_is_one_clear_error():
    with pytest.raises(CheckpointError, match="evaluator_mnist_v1.pt"):
        load_evaluator("cifar10")


def test_real_digits_score_between_the_floor_and_the_ceilings(tmp_path):
    data = load_data(DataConfig(name="mnist", download=False), str(tmp_path))
    refs = reference_points(from_uint8(data.train_x), from_uint8(data.test_x), load_evaluator(), 500)
    real, noise, blank = refs["real train images"], refs["Gaussian noise"], refs["blank images"]
    assert real["fid"] < noise["fid"] / 10 and real["fid"] < blank["fid"] / 10
    assert real["recognizability"] > 0.9 and real["coverage"] > 0.95 and real["recall"] > 0.5
    assert noise["coverage"] == 0.0 and blank["coverage"] == 0.0 and blank["recall"] == 0.0


def test_ring8_quality_counts_modes_and_high_quality_samples():
    data = load_data(DataConfig(name="ring8"))
    within_3_std = 1 - math.exp(-9 / 2)  # a 2-D Gaussian: |x - mu|^2 / std^2 is chi-squared with 2 dof
    assert data.score_samples(data.test_x) == {"modes": 8.0, "high_quality": pytest.approx(within_3_std, abs=0.008)}
    one_mode = data.test_x[data.test_y == 3]  # collapse onto one mode
    assert ring8_quality(one_mode) == {"modes": 1.0, "high_quality": pytest.approx(within_3_std, abs=0.02)}
    angle = torch.linspace(0, 2 * torch.pi, 1601)[:-1]  # points spread evenly along the circle
    even = torch.stack([angle.cos(), angle.sin()], dim=1)
    # within 3 std = 0.15 of a centre: chord 2 sin(phi / 2) < 0.15, an arc of 4 asin(0.075) per mode
    assert ring8_quality(even)["high_quality"] == pytest.approx(8 * 2 * 2 * math.asin(0.075) / (2 * math.pi), abs=0.01)
    assert ring8_quality(2 * even)["modes"] == 0.0  # a ring twice too large: nothing near a mode


def test_an_even_ring_finds_every_mode_but_few_high_quality_points():
    """The baseline of the ring demos: the arcs within 3 sigma of the 8 centres, 8 * 2 * asin(0.075) * 2 / 2 pi."""
    score = ring8_quality(even_ring(4000))
    share = 8 * 2 * 2 * math.asin(3 * RING8_STD / 2) / (2 * math.pi)  # chord 0.15 on the unit circle
    assert score["modes"] == 8
    assert abs(score["high_quality"] - share) < 1e-3


def test_an_even_ring_is_evenly_spaced_from_angle_0():
    """Point i at angle 2 pi i / n: consecutive points (the last and the first too) one chord 2 sin(pi / n) apart."""
    ring = even_ring(12)  # float32
    torch.testing.assert_close(ring[0], torch.tensor([1.0, 0.0]))
    chords = (ring - ring.roll(-1, 0)).norm(dim=1)
    torch.testing.assert_close(chords, torch.full((12,), 2 * math.sin(math.pi / 12)))


# ---------------------------------------------------------------------------------------------- what eval reports


def test_feature_metrics_gathers_every_number_with_k_3_by_default():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 4, generator=g), torch.randn(40, 4, generator=g) + 0.5
    probs = torch.softmax(torch.randn(40, 10, generator=g) * 3, -1)
    metrics = feature_metrics(real, fake, probs)
    precision, recall = precision_recall(real, fake, 3)
    assert metrics == {
        "fid": pytest.approx(frechet_distance(real, fake)),
        "precision": precision,
        "recall": recall,
        "recognizability": recognizability(probs),
        "coverage": class_coverage(probs),
        "samples": 40,
        "real": 60,
    }
    assert precision_recall(real, fake, 4) != (precision, recall)  # so that k = 3 is what was used
    with_4 = feature_metrics(real, fake, probs, k=4)
    assert (with_4["precision"], with_4["recall"]) == precision_recall(real, fake, 4)


def test_image_metrics_scores_samples_against_real_images_through_the_evaluator(tmp_path):
    evaluator = load_evaluator()
    data = load_data(DataConfig(name="mnist", download=False), str(tmp_path))
    real, samples = from_uint8(data.test_x[:200]), from_uint8(data.train_x[:50])
    real_features, _ = evaluator.embed(real)
    expected = feature_metrics(real_features, *evaluator.embed(samples))
    assert image_metrics(samples, real, evaluator) == expected
    assert image_metrics(samples, real, evaluator, k=5)["recall"] == feature_metrics(
        real_features, *evaluator.embed(samples), k=5
    )["recall"]


def test_reference_points_are_reproducible_and_seeded_by_default(tmp_path):
    evaluator = load_evaluator()
    data = load_data(DataConfig(name="mnist", download=False), str(tmp_path))
    train, test = from_uint8(data.train_x[:300]), from_uint8(data.test_x[:200])
    first = reference_points(train, test, evaluator, 100)
    assert first == reference_points(train, test, evaluator, 100, seed=0)
    assert first != reference_points(train, test, evaluator, 100, seed=1)
    # the ceilings: black images (MNIST's background), and N(0, 1) pixels clipped to [-1, 1], drawn
    # from the seeded generator after the floor's random pick of train images
    test_features, _ = evaluator.embed(test)
    black = torch.full((100, 1, 28, 28), -1.0)
    assert first["blank images"] == pytest.approx(feature_metrics(test_features, *evaluator.embed(black)))
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(300, generator=generator)[:100]
    noise = torch.randn(100, 1, 28, 28, generator=generator).clamp(-1, 1)
    assert first["Gaussian noise"] == pytest.approx(feature_metrics(test_features, *evaluator.embed(noise)))
    floor = feature_metrics(test_features, *evaluator.embed(train[pick]))
    assert {key: first["real train images"][key] for key in floor} == pytest.approx(floor)  # embedded in other batches


def test_the_ring_centres_are_at_multiples_of_45_degrees():
    half = math.sqrt(0.5)
    expected = [[1, 0], [half, half], [0, 1], [-half, half], [-1, 0], [-half, -half], [0, -1], [half, -half]]
    torch.testing.assert_close(ring8_centres(), torch.tensor(expected), atol=1e-6, rtol=0)


@pytest.mark.parametrize("good_per_mode, n, modes", [((2,), 64, 1), ((10, 11), 330, 1), ((1,), 64, 0)])
def test_a_mode_is_covered_from_one_32nd_of_the_samples(good_per_mode, n, modes):
    """Covered: at least n / 32 high-quality samples near the mode (exactly 2 of 64 counts; 10 of 330 does not)."""
    points = [ring8_centres()[m] + 0.01 for m, count in enumerate(good_per_mode) for _ in range(count)]
    far = [torch.zeros(2)] * (n - len(points))  # the centre of the ring: 1 away from every mode
    score = ring8_quality(torch.stack(points + far))
    assert score == {"modes": float(modes), "high_quality": pytest.approx(sum(good_per_mode) / n)}


def test_precision_recall_and_the_fid_spread_defaults():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(80, 3, generator=g), torch.randn(50, 3, generator=g) * 1.5
    assert precision_recall(real, fake) == precision_recall(real, fake, 3) != precision_recall(real, fake, 4)
    train, test = torch.randn(200, 3, generator=g), torch.randn(100, 3, generator=g)
    spread = real_fid_spread(train, test, 50)
    assert spread == real_fid_spread(train, test, 50, draws=10, seed=1) and spread["fid_draws"] == 10
    assert spread != real_fid_spread(train, test, 50, seed=2)


def test_mean_metrics_averages_each_key():
    records = [{"loss": 1.0, "bits": 4.0}, {"loss": 3.0, "bits": 5.0}, {"loss": 8.0, "bits": 6.0}]
    assert mean_metrics(records) == {"loss": 4.0, "bits": 5.0}
    assert mean_metrics([]) == {}
