"""Inpainting: the masks, the shared MAP latent fit, every image family's ``inpaint`` (known pixels kept
exactly, RePaint's and the masked Langevin chain's known region untouched at every step), the report's
numbers on hand-made fills, the figure and ``genzoo inpaint``.

Every model is tiny and untrained: these tests check the algorithms, not the quality of the fills.
"""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from genzoo.cli import main
from genzoo.config import DataConfig
from genzoo.evaluator import load_evaluator
from genzoo.inpaint import (
    best_of, bottom_half, fill_images, fit_best_latent, fit_latent, hide, inpainting_figure, inpainting_report,
    latent_objective, make_mask, missing_mse, paste, random_patches,
)  # fmt: skip
from genzoo.model import GenerativeModel
from genzoo.models.ddpm import DDPM, DDPMConfig
from genzoo.models.ebm import EBM, EBMConfig
from genzoo.models.flow import Flow, FlowConfig
from genzoo.models.gan import GAN, GANConfig
from genzoo.models.vae import VAE, VAEConfig
from genzoo.pixels import Bernoulli, Categorical256, DiscretizedLogistic, PerChannel, log_prob_per_pixel
from genzoo.sources import load_data
from genzoo.specs import ImageSpec
from helpers import CONFIGS, FAST, digit_like_batch  # tests/helpers.py

SPEC = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)


# ----------------------------------------------------------------------------- masks


def test_bottom_half_keeps_the_top_rows():
    known = bottom_half(28, 28)
    assert known.shape == (1, 1, 28, 28) and known.dtype == torch.bool
    assert known[0, 0, :14].all() and not known[0, 0, 14:].any()
    assert known.float().mean().item() == 0.5


def test_random_patches_hide_one_to_count_squares_inside_the_central_box():
    known = random_patches(50, 28, 28, patch=10, count=2, generator=torch.Generator().manual_seed(0))
    assert known.shape == (50, 1, 28, 28) and known.dtype == torch.bool
    missing = (~known).flatten(1).sum(1)
    assert missing.min() >= 100 and missing.max() <= 200 and (missing == 200).any()  # overlaps are rare, not never
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert known[:, 0, border].all()  # the holes stay on the 20x20 box the digits are drawn in
    assert not torch.equal(known[0], known[1])
    again = random_patches(50, 28, 28, patch=10, count=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(known, again)
    with pytest.raises(ValueError, match="does not fit"):
        random_patches(1, 28, 28, patch=21)


def test_make_mask_names_the_two_masks():
    assert make_mask("bottom", 3, 28, 28).shape == (3, 1, 28, 28)
    assert make_mask("patches", 3, 28, 28).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="bottom, patches"):
        make_mask("left", 1, 28, 28)


def test_hide_and_paste():
    x, fill = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    known = torch.rand(2, 1, 4, 4) > 0.5
    assert torch.equal(hide(x, known)[~known], torch.full(((~known).sum().item(),), -1.0))
    out = paste(x, fill, known)
    assert torch.equal(out[known], x[known]) and torch.equal(out[~known], fill[~known])


# ----------------------------------------------------------------------------- the MAP latent


def linear_problem(sigma: float):
    """A linear 'decoder' x = W z + b with 6 of 10 pixels known; the data term with noise sigma."""
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(10, 3, generator=g), torch.randn(10, generator=g)
    x = torch.randn(2, 10, generator=g)
    known = torch.tensor([1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=torch.bool)

    def data_term(z):  # (N, 3) -> (N,)
        return (((z @ W.T + b - x) ** 2) * known).sum(1) / (2 * sigma**2)

    return W, b, x, known, data_term


def test_fit_latent_finds_the_ridge_regression_solution_for_a_linear_decoder():
    """For x_known = W_k z + b_k + N(0, sigma^2) and z ~ N(0, I), the MAP z solves
    (W_k^T W_k / sigma^2 + I) z = W_k^T (x_k - b_k) / sigma^2: ridge regression."""
    sigma = 1.5  # noisy enough that the prior pulls z well away from least squares
    W, b, x, known, data_term = linear_problem(sigma)
    Wk, r = W[known], (x - b)[:, known]  # (6, 3), (2, 6)
    ridge = torch.linalg.solve(Wk.T @ Wk / sigma**2 + torch.eye(3), (r @ Wk).T / sigma**2).T  # (2, 3)
    least_squares = torch.linalg.lstsq(Wk, r.T).solution.T
    z = fit_latent(data_term, torch.zeros(2, 3), steps=3000, lr=0.01)
    assert torch.allclose(z, ridge, atol=2e-3), (z, ridge)
    assert (ridge - least_squares).abs().max() > 0.1  # the prior term matters here


def test_fit_latent_lowers_the_objective_and_leaves_the_model_alone():
    decoder = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 10))
    target = torch.randn(5, 10)

    def data_term(z):
        return ((decoder(z) - target) ** 2).sum(1) / 0.02

    z0 = torch.randn(5, 4)
    before = latent_objective(data_term, z0)
    with torch.no_grad():  # the fit switches grad mode on itself
        z = fit_latent(data_term, z0, steps=100, lr=0.05)
    after = latent_objective(data_term, z)
    assert (after < before).all() and not z.requires_grad
    assert all(p.grad is None for p in decoder.parameters())


def test_best_of_picks_each_images_lowest_objective():
    candidates = torch.arange(6.0).view(6, 1)  # k = 3 blocks of B = 2: image 0 gets 0, 2, 4; image 1 gets 1, 3, 5
    objective = torch.tensor([5.0, 1.0, 0.5, 9.0, 7.0, 3.0])
    assert best_of(candidates, objective, 3).flatten().tolist() == [2.0, 1.0]


def test_fit_best_latent_screens_every_start_then_fits_each_images_best():
    """Two images, two labels each; label y puts image b's optimum at target[b, y]. The objective
    50 (z - c)^2 + z^2 / 2 is lowest for the smaller |c|, at z = 100 c / 101."""
    target = torch.tensor([[3.0, 0.5], [-0.2, 2.0]])  # (image, label)
    rows = []

    def data_term(z, image, y):
        rows.append(len(z))
        return 50 * (z[:, 0] - target[image, y]) ** 2

    labels = torch.tensor([0, 0, 1, 1])  # k = 2 blocks of B = 2: block j fits every image with label j
    z, y = fit_best_latent(data_term, torch.zeros(4, 1), labels, 2, steps=400, lr=0.05)
    assert y.tolist() == [1, 0]
    assert torch.allclose(z[:, 0], torch.tensor([0.5, -0.2]) * 100 / 101, atol=1e-3)
    assert rows == [4] * 100 + [4] + [2] * 300  # a quarter of the steps for every start (and the pick)
    z, y = fit_best_latent(data_term, torch.zeros(2, 1), torch.tensor([1, 0]), 1, steps=400, lr=0.05)
    assert y.tolist() == [1, 0] and torch.allclose(z[:, 0], torch.tensor([0.5, -0.2]) * 100 / 101, atol=1e-3)


@pytest.mark.parametrize("pixels", [DiscretizedLogistic(3), Categorical256(), Bernoulli(), PerChannel(Bernoulli(), 3)])
def test_per_pixel_log_probs_sum_to_the_images_log_prob(pixels):
    C = pixels.channels if isinstance(pixels, PerChannel) else 1
    params = torch.randn(2, pixels.params_per_pixel, 5, 4)
    x = torch.randint(0, 256, (2, C, 5, 4)).float() / 127.5 - 1
    per_pixel = log_prob_per_pixel(pixels, params, x)
    assert per_pixel.shape == (2, 5, 4)
    assert torch.allclose(per_pixel.sum((1, 2)), pixels.log_prob(params, x), atol=1e-4)


# ----------------------------------------------------------------------------- every image family


def tiny(family: str, conditional: bool = False):
    torch.manual_seed(0)
    if family == "ddpm":
        model = DDPM.from_config(DDPMConfig(timesteps=20, channels=(8, 16, 16), conditional=conditional), SPEC)
    elif family == "ebm":
        model = EBM.from_config(EBMConfig(channels=(4, 8), buffer_size=100, conditional=conditional), SPEC)
    elif family == "vae":
        cfg = VAEConfig(latent_dim=4, encoder_channels=(8, 8), decoder_channels=(8, 8), conditional=conditional)
        model = VAE.from_config(cfg, SPEC)
    elif family == "gan":
        model = GAN.from_config(GANConfig(latent_dim=8, channels=(16, 8), conditional=conditional), SPEC)
    else:
        model = Flow.from_config(FlowConfig(checkerboard=1, checkerboard_hidden=4, steps=1, hidden=4), SPEC)
        model.train()
        model.loss((2 * torch.rand(8, 1, 28, 28) - 1, None))  # ActNorm initialises from its first training
        # batch: from uniform noise, z = 0 decodes to grey, not to the black background the hole is set to
    return model.eval()


FAST_OPTIONS = {"ddpm": {"steps": 5, "resample": 2}, "ebm": {"mcmc_steps": 5}, "vae": {"steps": 5},
                "gan": {"steps": 5}, "flow": {"steps": 5}}
CASES = [(f, False) for f in FAST_OPTIONS] + [(f, True) for f in ("ddpm", "ebm", "vae", "gan")]


@pytest.mark.parametrize("family,conditional", CASES)
@pytest.mark.parametrize("mask", ["bottom", "patches"])
def test_inpaint_keeps_the_known_pixels_exactly_and_fills_the_rest(family, conditional, mask):
    model = tiny(family, conditional)
    x, _ = digit_like_batch(3)
    x = x + 0.3 * torch.rand(x.shape)  # not just the two extreme levels, and above 1 in places: kept as given
    known = make_mask(mask, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    out = model.inpaint(hide(x, known), known, generator=torch.Generator().manual_seed(0), **FAST_OPTIONS[family])
    assert out.shape == x.shape
    assert torch.equal(out[known.expand_as(x)], hide(x, known)[known.expand_as(x)])
    assert not torch.equal(out, hide(x, known))  # something was filled in
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("family", list(FAST_OPTIONS))
def test_inpaint_options_are_documented(family):
    model = tiny(family)
    for option in FAST_OPTIONS[family]:
        assert f"{option}:" in model.inpaint.__doc__ or f"{option}," in model.inpaint.__doc__


def test_families_without_inpainting_say_so():
    from genzoo.models.transformer import TransformerLM

    assert TransformerLM.inpaint is GenerativeModel.inpaint  # what `genzoo inpaint` checks
    with pytest.raises(NotImplementedError, match="lm does not inpaint"):
        TransformerLM.inpaint(SimpleNamespace(family="lm"), torch.zeros(1), torch.zeros(1, dtype=torch.bool))


# ----------------------------------------------------------------------------- RePaint


def repaint_states(model: DDPM, x: torch.Tensor, known: torch.Tensor, **options) -> list[torch.Tensor]:
    return list(model.inpaint_trajectory(x, known, generator=torch.Generator().manual_seed(0), **options))


def test_repaint_known_region_is_the_noised_known_image_at_every_step_whatever_the_network():
    """Every state's known region comes from x_0 and the noise alone, so two different networks give the
    same known region at every step (the same noise draws), and x_0's known region is x exactly."""
    x, _ = digit_like_batch(2)
    known = bottom_half(28, 28)
    a, b = tiny("ddpm"), tiny("ddpm")
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.1 * torch.randn_like(p))
    states_a = repaint_states(a, x, known, steps=5, resample=3)
    states_b = repaint_states(b, x, known, steps=5, resample=3)
    assert len(states_a) == 1 + (5 - 1) * (3 + 2) + 1  # x_T; U steps and U - 1 jumps per time; the last step
    k = known.expand_as(x)
    for sa, sb in zip(states_a[1:], states_b[1:]):
        assert torch.equal(sa[k], sb[k])
    assert not torch.equal(states_a[-1][~k], states_b[-1][~k])  # the networks do fill differently
    assert torch.equal(states_a[-1][k], x[k])


def test_repaint_step_replaces_the_known_region_by_q_of_the_known_image():
    model = tiny("ddpm")
    x0, _ = digit_like_batch(2)
    known = bottom_half(28, 28).expand_as(x0)
    xt = torch.randn(x0.shape)
    xs = model.repaint_step(xt, 12, 8, x0, known, torch.Generator().manual_seed(3))
    eps_known = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))  # the step's first draw
    assert torch.equal(xs[known], model.schedule.q_sample(x0, 8, eps_known)[known])
    xs_other = model.repaint_step(xt + 1, 12, 8, x0, known, torch.Generator().manual_seed(3))
    assert torch.equal(xs[known], xs_other[known]) and not torch.equal(xs[~known], xs_other[~known])


def test_jump_back_is_the_forward_process_from_s_to_t():
    """x_s ~ q(x_s | x_0) jumped back to t must be distributed as q(x_t | x_0) = N(sqrt(ab_t) x_0, 1 - ab_t)."""
    model = tiny("ddpm")
    x0 = torch.full((20_000, 1, 2, 2), 0.7)
    s, t = 6, 14
    xs = model.schedule.q_sample(x0, s, torch.randn(x0.shape))
    xt = model.jump_back(xs, s, t, torch.Generator().manual_seed(0))
    ab = model.schedule.alpha_bar[t]
    assert abs(xt.mean().item() - 0.7 * ab.sqrt().item()) < 0.01
    assert abs(xt.var().item() - (1 - ab).item()) < 0.02


def test_repaint_counts_its_network_passes():
    model = tiny("ddpm")
    calls = []
    model.eps_net.register_forward_hook(lambda module, args, out: calls.append(args[1][0].item()))
    model.inpaint(torch.zeros(1, 1, 28, 28), bottom_half(28, 28), steps=4, resample=3)
    times = model.schedule.timesteps(4)  # [20, 15, 10, 5, 0]
    assert calls == [t for t in times[:-2] for _ in range(3)] + [times[-2]]  # (steps - 1) * U + 1


# ----------------------------------------------------------------------------- masked Langevin


class Quadratic(nn.Module):
    """E(x) = ||x - target||^2 / 2 over the image: grad_x E = x - target."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, x):
        return 0.5 * (x - self.target).pow(2).flatten(1).sum(1, keepdim=True)  # (B, 1)


def test_masked_langevin_step_moves_only_the_unknown_pixels_downhill():
    target = torch.linspace(-1, 1, 16).view(1, 1, 4, 4)
    model = EBM(Quadratic(target), data_shape=(1, 4, 4), cfg=EBMConfig(sgld_clip=0, buffer_size=1), clamp=False)
    x = torch.zeros(2, 1, 4, 4)
    known = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    out = model.masked_langevin_step(x, known, step_size=0.1, noise=0.0)
    expected = torch.where(known, x, x - 0.1 * (x - target))  # Du & Mordatch 2019, eq. 2, noise 0
    assert torch.allclose(out, expected) and torch.equal(out[known], x[known])


def test_masked_langevin_chain_never_moves_the_known_pixels():
    model = tiny("ebm")
    x, _ = digit_like_batch(3)
    known = bottom_half(28, 28)
    states = list(model.inpaint_trajectory(x, known, generator=torch.Generator().manual_seed(0), mcmc_steps=6))
    assert len(states) == 7
    k = known.expand_as(x)
    for state in states:
        assert torch.equal(state[k], x[k])
    assert not torch.equal(states[0][~k], states[-1][~k])  # the unknown pixels moved
    blank = next(iter(model.inpaint_trajectory(x, known, start="background")))
    assert torch.equal(blank[~k], torch.full_like(blank[~k], -1.0))
    with pytest.raises(ValueError, match="start"):
        next(model.inpaint_trajectory(x, known, start="buffer"))


# ----------------------------------------------------------------------------- the report


class Oracle(nn.Module):
    """A 'family' that fills with the original images, after checking it was shown only the known pixels."""

    family = "oracle"

    def __init__(self, originals: torch.Tensor):
        super().__init__()
        self.originals, self.seen = originals, 0
        self.anchor = nn.Parameter(torch.zeros(()))  # gives it a device

    @property
    def device(self):
        return self.anchor.device

    def inpaint(self, x, known, *, generator=None):
        assert torch.equal(x[~known.expand_as(x)], torch.full_like(x[~known.expand_as(x)], -1.0))
        originals = self.originals[self.seen : self.seen + len(x)]
        self.seen += len(x)
        return paste(x, originals, known)


class LeaveBlank(Oracle):
    def inpaint(self, x, known, *, generator=None):
        return x.clone()


@pytest.fixture(scope="module")
def digits():
    data = load_data(DataConfig(name="mnist"))
    images, labels = data.test_examples_of_every_class(40)
    return images, labels, load_evaluator("mnist")


def test_a_fill_with_the_originals_scores_the_evaluators_accuracy_and_no_error(digits):
    images, labels, evaluator = digits
    report = inpainting_report(Oracle(images), images, labels, bottom_half(28, 28), evaluator, batch_size=16)
    _, probs = evaluator.embed(images)
    accuracy = (probs.argmax(1) == labels).float().mean().item()
    assert report["agreement"] == accuracy == report["references"]["original"]["agreement"]
    assert accuracy > 0.9
    assert report["missing_mse"] == 0.0 and report["known_kept_exactly"]
    assert report["images"] == 40 and report["known_fraction"] == 0.5 and report["ms_per_image"] > 0


def test_a_blank_fill_scores_the_masked_input_and_the_mean_image_is_a_reference(digits):
    images, labels, evaluator = digits
    mean_image = images.mean(0, keepdim=True)
    report = inpainting_report(LeaveBlank(images), images, labels, bottom_half(28, 28), evaluator,
                               mean_image=mean_image)  # fmt: skip
    masked = report["references"]["masked input"]
    assert report["agreement"] == masked["agreement"] and report["missing_mse"] == masked["missing_mse"]
    assert report["agreement"] < 0.9  # half a digit is often misread
    expected = (((images - -1.0) / 2) ** 2)[:, :, 14:].mean().item()  # the bottom half against black
    assert math.isclose(masked["missing_mse"], expected, rel_tol=1e-6)
    assert list(report["references"]) == ["masked input", "training mean", "original"]


def test_missing_mse_is_in_unit_pixels_and_counts_only_the_missing_ones():
    images = torch.full((2, 1, 4, 4), -1.0)
    known = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    known[:, :, :3] = True
    fills = images.clone()
    fills[:, :, 3] = 1.0  # white where black was: error 1 in [0, 1] units
    fills[:, :, 0] = 1.0  # errors on known pixels do not count
    assert missing_mse(fills, images, known) == 1.0
    fills[0, :, 3] = 0.0  # mid-grey: (1/2)^2
    assert missing_mse(fills, images, known) == (1.0 + 0.25) / 2


def test_fill_images_batches_and_times_a_real_family():
    model = tiny("vae")
    x, _ = digit_like_batch(5)
    known = make_mask("patches", 5, 28, 28)
    fills, seconds = fill_images(model, hide(x, known), known, batch_size=2, steps=2)
    assert fills.shape == x.shape and seconds > 0
    assert torch.equal(fills[known.expand_as(x)], hide(x, known)[known.expand_as(x)])


def test_figure_has_a_row_per_fill(tmp_path):
    x, _ = digit_like_batch(4)
    known = bottom_half(28, 28)
    path = inpainting_figure(x, known, {"vae": x, "gan": -x}, tmp_path / "rows.png")
    assert path.stat().st_size > 0


# ----------------------------------------------------------------------------- the command


def test_inpaint_command_prints_the_report_and_writes_the_figure(tmp_path, capsys):
    run = tmp_path / "vae"
    tiny_vae = ["--set", "model.latent_dim=4", "--set", "model.encoder_channels=[8, 8]",
                "--set", "model.decoder_channels=[8, 8]"]  # fmt: skip
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST, *tiny_vae]) == 0
    capsys.readouterr()
    assert main(["inpaint", str(run), "-n", "6", "--mask", "patches", "steps=3", "lr=0.1"]) == 0
    out = capsys.readouterr().out
    assert "agreement" in out and "missing_mse" in out and "ms_per_image" in out and "training mean" in out
    assert "known pixels kept exactly: True" in out
    report = json.loads((run / "inpaint_patches.json").read_text())
    assert report["options"] == {"steps": 3, "lr": 0.1} and report["images"] == 6
    assert (run / "inpaint_patches.png").stat().st_size > 0
    assert main(["inpaint", str(run), "-n", "2", "mcmc_steps=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mcmc_steps" in err[0] and "steps" in err[0]
