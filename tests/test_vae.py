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


# -- the importance-weighted bound against a model whose log p(x) is known ------------------------


class GaussianPixels:
    """p(x|z) = N(x; decoder mean, sigma^2 I): not a pixel model genzoo ships, but one whose marginal
    likelihood is a closed form, so the bound can be checked against the truth."""

    params_per_pixel = 1

    def __init__(self, sigma: float):
        self.sigma = sigma

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(params, self.sigma).log_prob(x).flatten(1).sum(1)


class Linear(torch.nn.Module):
    """x (B, 1, 2, 2) -> flat -> A x + b (and back to an image if ``image``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, image: bool = False):
        super().__init__()
        self.weight, self.bias, self.image = weight, bias, image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.flatten(1) @ self.weight.T + self.bias
        return out.view(-1, 1, 2, 2) if self.image else out


def linear_gaussian_vae(posterior_scale: float = 1.0, posterior_shift: float = 0.0):
    """z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_4), with W's columns orthogonal so that the exact posterior
    is a diagonal Gaussian the encoder can represent. ``posterior_scale``/``posterior_shift`` move q(z|x)
    away from the exact posterior, which opens a gap for the importance weights to close.
    Returns the VAE and the exact log p(x) as a function (x ~ N(b, W W^T + s^2 I))."""
    W = torch.tensor([[1.5, 0.0], [0.0, 0.8], [1.5, 0.0], [0.0, -0.8]])
    b, s = torch.tensor([0.1, -0.2, 0.3, 0.0]), 0.5
    post_var = 1 / (1 + (W**2).sum(0) / s**2)  # diagonal, because W^T W is
    A = post_var[:, None] * W.T / s**2  # posterior mean = A (x - b)
    enc_w = torch.cat([A, torch.zeros(2, 4)])  # rows: mu, then log_var (constant)
    enc_b = torch.cat([-A @ b + posterior_shift, (post_var * posterior_scale**2).log()])
    vae = VAE(Linear(enc_w, enc_b), Linear(W, b, image=True), GaussianPixels(s), latent_dim=2)
    marginal = torch.distributions.MultivariateNormal(b, W @ W.T + s**2 * torch.eye(4))
    return vae, lambda x: marginal.log_prob(x.flatten(1))


def test_iwae_with_the_exact_posterior_is_log_p_x_for_every_k():
    """q(z|x) = p(z|x) makes every weight p(x): the bound is exactly log p(x), whatever k (Burda et al. 2016)."""
    vae, log_px = linear_gaussian_vae()
    x = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with torch.no_grad():
        for k in (1, 2, 7, 50):
            torch.testing.assert_close(vae.log_prob(x, k=k), log_px(x), atol=1e-4, rtol=0)


def test_iwae_converges_to_log_p_x_from_below_as_k_grows():
    """With a wrong q the bound is below log p(x) for every k, and the gap shrinks as k grows."""
    vae, log_px = linear_gaussian_vae(posterior_scale=2.0, posterior_shift=0.7)
    x = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    truth = log_px(x)
    torch.manual_seed(0)
    gaps, se = {}, {}
    with torch.no_grad():
        for k, draws in ((1, 4000), (10, 2000), (1000, 100)):
            bounds = vae.log_prob(x.repeat_interleave(draws, dim=0), k=k, chunk=10**6).view(len(x), draws)
            gaps[k], se[k] = truth - bounds.mean(1), bounds.std(1) / math.sqrt(draws)
    for k in gaps:
        assert (gaps[k] > -4 * se[k]).all(), f"k = {k}: the bound is above log p(x) by {(-gaps[k]).max():.3f} nats"
    assert (gaps[1] > 1.0).all()  # the wrong q costs several nats at k = 1 (measured: 7.6 to 7.7)
    assert (gaps[1] - gaps[10] > 4 * (se[1] ** 2 + se[10] ** 2).sqrt()).all()
    assert (gaps[10] - gaps[1000] > 4 * (se[10] ** 2 + se[1000] ** 2).sqrt()).all()
    assert (gaps[1000] < 0.05).all()  # 1,000 importance samples close nearly all of it


def test_loss_with_the_exact_posterior_is_minus_log_p_x_and_beta_scales_only_the_kl():
    """q = p(z|x): recon + KL = -log p(x) in expectation over z (the ELBO is tight), for every beta the
    reported bound stays -log p(x), and the beta-VAE loss adds (beta - 1) KL(q || p), here computed with
    torch.distributions rather than genzoo's formula."""
    x = torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(2)).repeat_interleave(20_000, dim=0)
    for beta in (1.0, 4.0):
        vae, log_px = linear_gaussian_vae()
        vae.beta = beta
        torch.manual_seed(0)
        with torch.no_grad():
            loss, metrics = vae.loss((x, None))
            mu, log_var = vae.encode(x)
        q = torch.distributions.Normal(mu, (0.5 * log_var).exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
        nll = -log_px(x).mean()
        assert metrics["nelbo"] == pytest.approx(float(nll), abs=0.02)  # Monte Carlo over 40,000 draws of z
        assert metrics["bits_per_dim"] == pytest.approx(float(nll) / (4 * math.log(2)), abs=0.01)
        assert metrics["kl"] == pytest.approx(float(kl), rel=1e-5)
        assert float(loss) == pytest.approx(metrics["nelbo"] + (beta - 1) * float(kl), rel=1e-5)


def test_reconstruct_decodes_the_posterior_mean_with_the_labels():
    model = make_model(conditional=True).eval()
    x, y = digit_like_batch(3, soft_edge=True)
    with torch.no_grad():
        mu, _ = model.encode(x, y)
        torch.testing.assert_close(model.reconstruct(x, y), model.decode(mu, y))
        other = (y + 1) % 10
        assert not torch.allclose(model.reconstruct(x, y), model.reconstruct(x, other))  # labels reach both ends


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_mean_samples_decode_prior_draws_scaled_by_the_temperature(temperature):
    """sample(pixels="mean") is decode(z) for z = temperature * eps, eps ~ N(0, I) from the generator."""
    model = make_model().eval()
    options = {} if temperature == 1.0 else {"temperature": temperature}  # 1.0: the documented default
    images = model.sample(4, generator=torch.Generator().manual_seed(5), **options)
    eps = torch.randn(4, model.latent_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(images, model.decode(temperature * eps))


def test_log_prob_defaults_to_the_configured_importance_samples():
    model = make_model(iw_samples=7).eval()
    x, _ = digit_like_batch(2, soft_edge=True)
    with torch.no_grad():
        torch.manual_seed(0)
        default = model.log_prob(x)
        torch.manual_seed(0)
        torch.testing.assert_close(default, model.log_prob(x, k=7))
        torch.manual_seed(0)
        assert not torch.allclose(default, model.log_prob(x, k=1))


class ConstantEncoder(torch.nn.Module):
    """Outputs mu = 0 and log_var = ``value`` for every image."""

    def __init__(self, value: float, latent_dim: int = 8):
        super().__init__()
        self.value, self.latent_dim = value, latent_dim

    def forward(self, x):
        out = torch.full((len(x), 2 * self.latent_dim), self.value)
        out[:, : self.latent_dim] = 0.0
        return out


def test_encoder_log_variance_is_clamped_to_minus_12_and_8():
    model = make_model()
    x, _ = digit_like_batch(2)
    for value, clamped in ((50.0, 8.0), (-50.0, -12.0), (3.0, 3.0)):
        model.encoder = ConstantEncoder(value)
        assert (model.encode(x)[1] == clamped).all()


def test_from_config_passes_every_setting_to_the_model():
    model = make_model(conditional=True, beta=4.0, label_dim=5, iw_samples=9, decoder="bernoulli")
    assert model.beta == 4.0 and model.iw_samples == 9 and model.num_classes == 10
    assert model.label_embedding.embedding_dim == 5 and type(model.pixels).__name__ == "Bernoulli"
    assert type(make_model(decoder="categorical").pixels).__name__ == "Categorical256"


def test_other_image_sizes_build_and_keep_their_shape():
    spec = ImageSpec(name="small", shape=(1, 32, 32), num_classes=0)
    model = make_model(spec=spec)
    x = torch.zeros(2, 1, 32, 32)
    assert model.reconstruct(x).shape == (2, 1, 32, 32) and model.sample(2).shape == (2, 1, 32, 32)
