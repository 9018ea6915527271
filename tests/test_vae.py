"""VAE: shapes, learning, the KL term, the IWAE bound, labels, state (pixel likelihoods: test_pixels.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genzoo.config import load_config
from genzoo.errors import ConfigError
from genzoo.models.vae import VAE, VAEConfig, kl_to_standard_normal
from genzoo.nn import MLP, ConvDecoder, ConvEncoder
from genzoo.specs import ImageSpec
from helpers import digit_like_batch, losses_on_fixed_batch

SPEC = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
DECODERS = ["logistic", "categorical", "bernoulli"]
SMALL = dict(latent_dim=8, encoder_channels=(8, 16), decoder_channels=(16, 8), n_mix=3)
ROOT = Path(__file__).resolve().parents[1]


def make_model(seed: int = 0, spec: ImageSpec = SPEC, **kw) -> VAE:
    torch.manual_seed(seed)
    return VAE.from_config(VAEConfig(**{**SMALL, **kw}), spec)


@pytest.mark.parametrize("decoder", DECODERS)
def test_shapes(decoder):
    model = make_model(decoder=decoder)
    x, y = digit_like_batch(5, soft_edge=True)
    mu, log_var = model.encode(x)
    assert mu.shape == log_var.shape == (5, 8)
    assert model.decode(mu).shape == model.reconstruct(x).shape == (5, 1, 28, 28)
    loss, metrics = model.loss((x, y))
    assert loss.shape == () and loss.requires_grad
    assert set(metrics) == {"loss", "recon", "kl", "nelbo", "bits_per_dim"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nelbo"] / (784 * math.log(2)))
    assert model.log_prob(x, k=3).shape == (5,)
    for pixels in ("mean", "sample"):
        images = model.sample(6, pixels=pixels, temperature=0.5)
        assert images.shape == (6, 1, 28, 28) and images.min() >= -1 and images.max() <= 1


def test_shared_blocks_shapes():
    """genzoo.nn's blocks, as the VAE and other families use them (28x28 and 32x32 images)."""
    assert ConvEncoder(1, 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert ConvDecoder(5, 7)(torch.randn(2, 5)).shape == (2, 7, 28, 28)
    assert ConvEncoder(3, 4, (8, 16, 32), image_size=32)(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert ConvDecoder(4, 3, (32, 16, 8), image_size=32)(torch.randn(2, 4)).shape == (2, 3, 32, 32)
    assert MLP(3, 16, 2, depth=3)(torch.randn(4, 3)).shape == (4, 2)


def test_sampled_pixels_are_8_bit_levels():
    model = make_model()
    levels = (model.sample(4, pixels="sample") + 1) * 127.5
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("decoder", DECODERS)
def test_loss_decreases_on_a_fixed_batch(decoder):
    model = make_model(decoder=decoder)
    losses = losses_on_fixed_batch(model, digit_like_batch(16, soft_edge=True))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_beta_weights_only_the_kl_term():
    x, y = digit_like_batch(4, soft_edge=True)
    torch.manual_seed(3)
    _, m1 = make_model(beta=1.0).loss((x, y))
    torch.manual_seed(3)
    _, m4 = make_model(beta=4.0).loss((x, y))
    assert m4["loss"] == pytest.approx(m4["recon"] + 4.0 * m4["kl"], rel=1e-5)
    assert m4["nelbo"] == pytest.approx(m1["nelbo"], rel=1e-5)  # the bound itself ignores beta


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu, log_var = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    q = torch.distributions.Normal(mu.double(), (0.5 * log_var.double()).exp())
    p = torch.distributions.Normal(0.0, 1.0)
    z = q.sample((200_000,))  # (S, 3, 4)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)  # E_q[log q - log p]
    torch.testing.assert_close(kl_to_standard_normal(mu, log_var).double(), mc, atol=0.03, rtol=0.01)


def _trained(decoder: str = "logistic") -> tuple[VAE, torch.Tensor]:
    """A model trained briefly, so q(z|x) is informative and the IWAE bound has a gap to close."""
    model = make_model(decoder=decoder)
    batch = digit_like_batch(16, soft_edge=True)
    losses_on_fixed_batch(model, batch, steps=30)
    return model.eval(), batch[0][:2]


def test_iwae_with_k_1_is_the_elbo_in_expectation():
    model, x = _trained()
    xs = x.repeat_interleave(500, dim=0)  # (1000, 1, 28, 28): 500 draws per image
    torch.manual_seed(0)
    with torch.no_grad():
        iwae1 = model.log_prob(xs, k=1).view(2, 500)
        mu, log_var = model.encode(xs)
        z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        log_px = model.pixels.log_prob(model.decoder_params(z), xs)
        elbo = (log_px - kl_to_standard_normal(mu, log_var)).view(2, 500)
    se = (iwae1.var(1) / 500 + elbo.var(1) / 500).sqrt()
    assert ((iwae1.mean(1) - elbo.mean(1)).abs() < 4 * se + 1e-3).all()


def test_iwae_bound_increases_with_k():
    """E[L_1] < E[L_10] < E[L_100] (Burda et al. 2016, theorem 1), each mean over many draws."""
    model, x = _trained()
    torch.manual_seed(0)
    means, se = {}, {}
    with torch.no_grad():
        for k, draws in ((1, 400), (10, 200), (100, 40)):
            bounds = model.log_prob(x.repeat_interleave(draws, dim=0), k=k).view(len(x), draws)
            means[k], se[k] = bounds.mean(1), bounds.std(1) / math.sqrt(draws)
    for small, large in ((1, 10), (10, 100)):  # each gap beyond 4 standard errors of the difference
        assert (means[large] - means[small] > 4 * (se[small] ** 2 + se[large] ** 2).sqrt()).all()


def test_log_prob_chunking_does_not_change_the_bound():
    model, x = _trained()
    torch.manual_seed(5)
    whole = model.log_prob(x, k=12, chunk=10_000)
    torch.manual_seed(5)
    pieces = model.log_prob(x, k=12, chunk=len(x) * 5)  # passes of 5, 5 and 2 samples
    torch.testing.assert_close(whole, pieces)


def test_class_conditional_sampling():
    model = make_model(conditional=True)
    x, y = digit_like_batch(4, soft_edge=True)
    assert model.encode(x, y)[0].shape == (4, 8)
    assert model.log_prob(x, y=y, k=2).shape == (4,)
    assert model.loss((x, y))[0].shape == ()
    assert model.sample(7).shape == (7, 1, 28, 28)  # labels cycle 0..9
    assert model.sample(5, labels=[3]).shape == (5, 1, 28, 28)
    assert model.sample(3, labels=torch.tensor([1, 2, 3])).shape == (3, 1, 28, 28)
    z = torch.randn(1, 8).repeat(2, 1)
    with torch.no_grad():
        images = model.decode(z, torch.tensor([0, 1]))
    assert not torch.allclose(images[0], images[1])  # the label reaches the decoder
    with pytest.raises(ValueError, match="0..9"):
        model.sample(2, labels=[10])
    with pytest.raises(ValueError, match="labels"):
        model.encode(x)
    with pytest.raises(ValueError, match="unconditional"):
        make_model().sample(2, labels=[1])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.decoder"):
        VAE.from_config(VAEConfig(decoder="gaussian"), SPEC)
    with pytest.raises(ConfigError, match="conditional"):
        VAE.from_config(VAEConfig(conditional=True), ImageSpec("blank", (1, 28, 28), 0))


@pytest.mark.parametrize("conditional", [False, True])
def test_state_dict_round_trip(conditional):
    model = make_model(seed=0, conditional=conditional)
    loaded = make_model(seed=1, conditional=conditional)
    loaded.load_state_dict(model.state_dict())
    x, y = digit_like_batch(3, soft_edge=True)
    y = y if conditional else None
    for m in (model, loaded):
        torch.manual_seed(0)
        m.bound = m.log_prob(x, y=y, k=4)
        m.images = m.sample(4, generator=torch.Generator().manual_seed(2), pixels="sample")
    torch.testing.assert_close(model.bound, loaded.bound, rtol=0, atol=0)
    torch.testing.assert_close(model.images, loaded.images, rtol=0, atol=0)


def test_sample_is_reproducible_with_a_generator():
    model = make_model()
    a = model.sample(3, generator=torch.Generator().manual_seed(7), pixels="sample")
    b = model.sample(3, generator=torch.Generator().manual_seed(7), pixels="sample")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_shipped_config_loads():
    cfg = load_config(ROOT / "configs" / "vae_mnist.toml")
    assert cfg.family == "vae" and isinstance(cfg.model, VAEConfig)
    assert 0 < cfg.train.max_minutes <= 5
