"""Pixel transformer: causality across pixels, an exact distribution over whole images, bits/dim of a
known distribution, sampling and labels, learning, and the checkpoint round trip through the trainer.

Every check runs on the plain model (a token per pixel) and the grouped one (a global token per 4 pixels
and a local transformer inside each group), whose causality has two levels to get right.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genzoo.checkpoint import load_model
from genzoo.errors import ConfigError
from genzoo.metrics import heldout_nll
from genzoo.models.pixel_transformer import PixelTransformer, PixelTransformerConfig
from genzoo.pixels import from_uint8
from genzoo.specs import ImageSpec
from helpers import CONFIGS, FAST, digit_like_batch, losses_on_fixed_batch, trainer_for

MNIST = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
TINY = dict(n_layer=2, n_head=2, n_embd=16, local_embd=8, local_head=2)
GROUPS = [1, 4]


def make_model(group: int = 1, spec: ImageSpec = MNIST, seed: int = 0, **kw) -> PixelTransformer:
    torch.manual_seed(seed)
    return PixelTransformer.from_config(PixelTransformerConfig(**{**TINY, "group": group, **kw}), spec).eval()


def random_levels(B: int, D: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (B, D), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("group", GROUPS)
def test_shapes_and_units(group):
    model = make_model(group, conditional=True)
    x, y = digit_like_batch(3, soft_edge=True)
    loss, metrics = model.loss((x, y))
    assert loss.shape == () and loss.requires_grad
    assert set(metrics) == {"loss", "nats_per_pixel", "bits_per_dim"}
    assert metrics["bits_per_dim"] == pytest.approx(metrics["loss"] / math.log(2))
    assert model(model.levels(x), y).shape == (3, 784, 256)
    log_p = model.log_prob(x, y=y, chunk=2)  # chunks of 2 and 1: the same numbers as one pass
    assert log_p.shape == (3,)
    torch.testing.assert_close(log_p, model.log_prob(x, y=y))
    torch.testing.assert_close(-log_p.mean() / 784, torch.tensor(metrics["loss"]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("i", [0, 1, 3, 27, 28, 400, 782, 783])
def test_changing_pixel_i_leaves_pixels_up_to_i_alone(group, i):
    """The logits of pixels 0..i are those of a prefix that never saw pixels i.., however they change;
    some later pixel's do change (else the test would pass for a model that ignores its input)."""
    model = make_model(group)
    a = random_levels(2, 784)
    b = a.clone()
    b[:, i:] = random_levels(2, 784 - i, seed=1)  # pixel i and everything after it, independently redrawn
    b[:, i] = (a[:, i] + 128) % 256  # pixel i surely differs
    with torch.no_grad():
        la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, : i + 1], lb[:, : i + 1], rtol=0, atol=1e-5)
    if i < 783:
        assert (la[:, i + 1 :] - lb[:, i + 1 :]).abs().max() > 1e-3


@pytest.mark.parametrize("group", GROUPS)
def test_gradient_of_early_pixels_does_not_reach_later_inputs(group):
    """The same property by autograd instead of a perturbation: d logits_{<= i} / d input_{>= i} = 0, read
    through the level embeddings' gradient rows of the levels that occur only at pixels >= i."""
    model = make_model(group)
    i = 300
    levels = torch.zeros(1, 784, dtype=torch.long)
    levels[0, i:] = 200  # level 200 appears at pixel i and after it only
    model(levels)[0, : i + 1].sum().backward()
    for table in [model.level_embedding] + ([model.local_level_embedding] if group > 1 else []):
        assert table.weight.grad[200].abs().max() == 0
        assert table.weight.grad[0].abs().max() > 0


@pytest.mark.parametrize("group", [1, 2])
def test_probabilities_of_every_image_sum_to_one(group):
    """Exactness: on 2-pixel images the model's p(x) summed over all 256^2 images is 1, and each pixel's
    256 probabilities sum to 1 given any prefix."""
    model = make_model(group, spec=ImageSpec("tiny", (1, 1, 2), 0))
    grid = torch.cartesian_prod(torch.arange(256), torch.arange(256))  # (65536, 2): every image
    x = from_uint8(grid).view(-1, 1, 1, 2)
    with torch.no_grad():
        log_p = model.log_prob(x, chunk=65536)
        pixel_sums = torch.softmax(model(grid[:512]), dim=-1).sum(-1)  # (512, 2)
    total = torch.logsumexp(log_p.double(), 0)  # log sum_x p(x)
    torch.testing.assert_close(total, torch.tensor(0.0, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(pixel_sums, torch.ones_like(pixel_sums))


@pytest.mark.parametrize("group", GROUPS)
def test_log_prob_equals_a_pixel_by_pixel_loop(group):
    """log p(x) against an independent computation: for each pixel i, a forward pass on an input whose
    pixels >= i are replaced by noise (so the mask is not trusted), the log-probability of x_i gathered."""
    model = make_model(group, spec=ImageSpec("small", (1, 8, 8), 0))
    levels = random_levels(2, 64, seed=3)
    x = from_uint8(levels.view(2, 1, 8, 8))
    expected = torch.zeros(2)
    with torch.no_grad():
        for i in range(64):
            masked = torch.cat([levels[:, :i], random_levels(2, 64 - i, seed=10 + i)], dim=1)
            expected += torch.log_softmax(model(masked)[:, i], dim=-1).gather(1, levels[:, i : i + 1]).squeeze(1)
        torch.testing.assert_close(model.log_prob(x), expected, rtol=1e-5, atol=1e-4)


class FixedLogits(nn.Module):
    """A head that ignores its input: every pixel gets the same distribution softmax(logits)."""

    def __init__(self, log_probs: torch.Tensor):
        super().__init__()
        self.register_buffer("log_probs", log_probs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.log_probs.expand(*h.shape[:-1], 256)


@pytest.mark.parametrize("group", GROUPS)
def test_bits_per_dim_of_a_known_distribution_is_its_entropy(group):
    """A model whose every pixel is p = (1/2 at level 0, 1/4 at 255, 1/8 at 128, 1/8 at 64), scored by
    genzoo's held-out metric on images whose pixels have exactly these frequencies: the entropy,
    H(p) = 1/2 * 1 + 1/4 * 2 + 2 * 1/8 * 3 = 1.75 bits per pixel."""
    model = make_model(group)
    p = torch.full((256,), 1e-30)
    p[[0, 255, 128, 64]] = torch.tensor([1 / 2, 1 / 4, 1 / 8, 1 / 8])
    model.head = FixedLogits(p.log())
    counts = {0: 392, 255: 196, 128: 98, 64: 98}  # 784 pixels with frequencies exactly p
    levels = torch.cat([torch.full((c,), k) for k, c in counts.items()])
    images = torch.stack([levels[torch.randperm(784, generator=torch.Generator().manual_seed(s))] for s in range(3)])
    result = heldout_nll(model, [(from_uint8(images.view(3, 1, 28, 28)), torch.zeros(3))])
    entropy_bits = -(p[[0, 255, 128, 64]] * p[[0, 255, 128, 64]].log2()).sum().item()
    assert entropy_bits == pytest.approx(1.75)
    assert result["bits_per_dim"] == pytest.approx(entropy_bits, rel=1e-5)


def test_inverse_cdf_draws_follow_the_probabilities():
    probs = torch.tensor([0.5, 0.3, 0.2] + [0.0] * 253)
    logits = probs.clamp_min(1e-30).log().expand(20_000, 256)
    draws = PixelTransformer._pick(logits, torch.Generator().manual_seed(0), 1.0)
    freq = torch.bincount(draws, minlength=256).float() / len(draws)
    torch.testing.assert_close(freq[:3], probs[:3], atol=0.015, rtol=0)
    assert freq[3:].sum() == 0
    assert PixelTransformer._pick(logits[:2], None, 0.0).tolist() == [0, 0]  # temperature 0: greedy


@pytest.mark.parametrize("group", GROUPS)
def test_sampling_shapes_labels_and_determinism(group):
    model = make_model(group, spec=ImageSpec("small", (1, 8, 8), 10), conditional=True)
    images = model.sample(5, generator=torch.Generator().manual_seed(0), labels=[3, 7])
    assert images.shape == (5, 1, 8, 8) and images.min() >= -1 and images.max() <= 1
    levels = (images + 1) * 127.5
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)  # 8-bit levels
    again = model.sample(5, generator=torch.Generator().manual_seed(0), labels=[3, 7])
    assert torch.equal(images, again)
    frames = list(model.trajectory(2, generator=torch.Generator().manual_seed(0), every=4))
    assert len(frames) == math.ceil(model.n_tokens / 4) and frames[-1].shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="labels must be in"):
        model.sample(1, labels=[10])
    with pytest.raises(ValueError, match="unconditional"):
        make_model(group, spec=ImageSpec("small", (1, 8, 8), 10)).sample(1, labels=[3])


@pytest.mark.parametrize("group", GROUPS)
def test_the_start_token_conditions_on_the_class(group):
    model = make_model(group, conditional=True)
    x, _ = digit_like_batch(2)
    levels = model.levels(x)
    with torch.no_grad():
        three, seven = model(levels, torch.tensor([3, 3])), model(levels, torch.tensor([7, 7]))
        assert (three[:, 0] - seven[:, 0]).abs().max() > 1e-3  # even the first pixel's distribution
        assert not torch.allclose(model.log_prob(x, y=torch.tensor([3, 3])), model.log_prob(x, y=torch.tensor([7, 7])))
    with pytest.raises(ValueError, match="pass the labels"):
        model.log_prob(x)


@pytest.mark.parametrize("group", GROUPS)
def test_loss_decreases_on_a_fixed_batch(group):
    model = make_model(group).train()
    losses = losses_on_fixed_batch(model, digit_like_batch(4, soft_edge=True), steps=15, lr=1e-2)
    assert sum(losses[-3:]) / 3 < 0.75 * sum(losses[:3]) / 3  # from ln 256 = 5.5 nats per pixel


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.group"):
        make_model(5)
    with pytest.raises(ConfigError, match="one-channel"):
        make_model(1, spec=ImageSpec("cifar10", (3, 32, 32), 10))
    with pytest.raises(ConfigError, match="conditional"):
        make_model(1, spec=ImageSpec("unlabelled", (1, 28, 28), 0), conditional=True)


def test_trainer_checkpoint_round_trip(tmp_path):
    tiny = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.group=4", "model.local_embd=8",
            "model.local_head=2", "model.conditional=true", "train.device=cpu", "data.download=false"]
    trainer = trainer_for(CONFIGS / "pixel_mnist.toml", tmp_path / "run", [a for a in FAST if a != "--set"] + tiny)
    run = trainer.fit()
    assert (run.run_dir / "last.pt").is_file()
    model, cfg, spec = load_model(run.run_dir)
    assert cfg.family == "pixel" and model.conditional and model.likelihood == "exact"
    x, y = digit_like_batch(3)
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(x, y=y), run.sampling_model.log_prob(x, y=y))


@pytest.mark.parametrize("group", GROUPS)
def test_cached_sampling_draws_the_same_images(group):
    """The key-value cache changes how the logits are computed, not the images: the same generator gives
    the same samples with and without it, conditional or not, at any temperature. (The two paths agree up
    to float rounding, ~1e-6, so on long runs a draw whose uniform number falls within rounding of a CDF
    step can differ: docs/pixel.md; these small cases have none.)"""
    for conditional, temperature in [(False, 1.0), (True, 0.8)]:
        model = make_model(group, spec=ImageSpec("small", (1, 12, 12), 10), conditional=conditional)
        options = dict(labels=[1, 2, 3] if conditional else (), temperature=temperature)
        cached = model.sample(3, generator=torch.Generator().manual_seed(1), **options)
        rerun = model.sample(3, generator=torch.Generator().manual_seed(1), kv_cache=False, **options)
        assert torch.equal(cached, rerun)
        assert len(cached.unique()) > 2  # not a degenerate all-equal image


def test_cached_global_outputs_equal_a_full_pass():
    """Token by token through the cache, the global transformer's outputs are a full pass's, to rounding."""
    from genzoo.models.transformer import KVCache

    model = make_model(4, conditional=True)
    levels, y = random_levels(2, 784), torch.tensor([4, 9])
    with torch.no_grad():
        full = model.global_forward(model.global_inputs(levels, y))  # (2, N, C)
        cache = KVCache(model.cfg.n_layer, model.n_tokens)
        steps = [model.global_forward(model.global_inputs(levels, y, j, j + 1), cache) for j in range(model.n_tokens)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)
