"""Variational autoencoder (Kingma & Welling 2014) with an importance-weighted bound (Burda et al. 2016).

An encoder maps an image x to a diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(log_var)));
a decoder maps a latent z to the parameters of p(x|z), a distribution over the 256 levels of every
pixel, independent across pixels given z; the prior is p(z) = N(0, I).

    z = mu + exp(log_var / 2) * eps,  eps ~ N(0, I)             reparameterisation (K&W 2014, eq. 10)
    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))               (K&W 2014, eq. 3)
    KL = 1/2 * sum_j (mu_j^2 + exp(log_var_j) - 1 - log_var_j)   (K&W 2014, appendix B)
    loss = -E_q[log p(x|z)] + beta * KL                          (beta-VAE, Higgins et al. 2017)

``log_prob`` is the importance-weighted bound, tighter than the ELBO and growing with k:

    L_k(x) = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)   (Burda et al. 2016, eq. 8)

Pixel likelihoods (``decoder`` in the config, defined in ``genzoo/pixels.py``), each a proper
distribution over the 8-bit levels, so -log p is a code length in nats and bits/dim =
-log_prob / (784 ln 2) is comparable across families:

- ``"logistic"``: a mixture of ``n_mix`` discretised logistics per pixel; level k is the bin
  [x - 1/255, x + 1/255] of x = k / 127.5 - 1, and the two end levels take the tails
  (Salimans et al. 2017, PixelCNN++, eq. 2). The default: MNIST pixels are mostly exactly 0 or 255,
  which the end bins model cheaply, and the mixture covers the in-between edge pixels.
- ``"categorical"``: 256 logits per pixel (van den Oord et al. 2016). The most flexible, the slowest.
- ``"bernoulli"``: for binarised MNIST. The image is thresholded at grey level 128 (x > 0), so
  ``loss`` and ``log_prob`` are of the *binarised* image (nats per example of 784 bits), which is
  not comparable with 8-bit numbers; ``sample`` returns images with pixels in {-1, 1}.

Class-conditional models (``conditional = true``) give both networks a learned embedding of the
label: the encoder sees it as extra constant input channels, the decoder next to z.

Files:
    networks      ``genzoo/nn.py``: ``ConvEncoder`` (x -> mu, log_var) and ``ConvDecoder`` (z -> p(x|z)'s
                  parameters); the pixel likelihoods ``DiscretizedLogistic``, ``Categorical256`` and
                  ``Bernoulli`` in ``genzoo/pixels.py``
    config        ``configs/vae_mnist.toml``; measured records in ``docs/vae.md``
    recipe        ``train/vae.py``
    notebook      ``notebooks/vae.py`` (and the ``.ipynb`` made from it)
    tests         ``tests/test_vae.py`` (the pixel likelihoods: ``tests/test_pixels.py``)
    exercises     ``genzoo/exercises/vae.py``

References:
    Kingma & Welling 2014: D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
        arXiv:1312.6114.
    Burda et al. 2016: Y. Burda, R. Grosse, R. Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016,
        arXiv:1509.00519.
    Higgins et al. 2017: I. Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
        Variational Framework", ICLR 2017 (not on arXiv).
    Salimans et al. 2017: T. Salimans, A. Karpathy, X. Chen, D. P. Kingma, "PixelCNN++: Improving the
        PixelCNN with Discretized Logistic Mixture Likelihood and Other Modifications", ICLR 2017,
        arXiv:1701.05517.
    van den Oord et al. 2016: A. van den Oord, N. Kalchbrenner, K. Kavukcuoglu, "Pixel Recurrent Neural
        Networks", ICML 2016, arXiv:1601.06759.

Not here:
    - Training on the importance-weighted bound (the IWAE objective): ``loss`` is the ELBO, k = 1;
      L_k is used only to evaluate (``log_prob``).
    - A learned or richer prior (a mixture, VampPrior, a flow): p(z) is fixed at N(0, I).
    - A richer posterior (full covariance, inverse autoregressive flows): q(z|x) is a diagonal Gaussian.
    - Hierarchies of latents (ladder VAE, NVAE) and discrete latents (VQ-VAE): one vector z.
    - An autoregressive decoder (PixelVAE): pixels are independent given z.
    - KL annealing or free bits against posterior collapse: beta is one constant for the whole run.
    - Dependence between a pixel's colour channels (PixelCNN++, sec. 2.2): given z they are independent.
    - An exact log p(x): only lower bounds (the ELBO, L_k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from genzoo.errors import ConfigError
from genzoo.model import Batch, GenerativeModel, cycle_labels
from genzoo.nn import ConvDecoder, ConvEncoder
from genzoo.pixels import Bernoulli, Categorical256, DiscretizedLogistic, PerChannel, log_prob_per_pixel
from genzoo.specs import ImageSpec


@dataclass
class VAEConfig:
    latent_dim: int = 16
    encoder_channels: tuple[int, ...] = (32, 64)  # widths at H/2 and H/4
    decoder_channels: tuple[int, ...] = (64, 32)  # widths at H/4 and H/2
    decoder: str = "logistic"  # logistic | categorical | bernoulli (see the module docstring)
    n_mix: int = 3  # mixture components of the discretised logistic
    beta: float = 1.0  # weight of the KL term in the loss; 1 is the true ELBO
    conditional: bool = False  # condition on the class label (the data must have classes)
    label_dim: int = 16  # size of the label embedding when conditional
    iw_samples: int = 100  # default k of log_prob's importance-weighted bound


# ----------------------------------------------------------------------------- pixel likelihoods and the KL
# Each pixel model turns the decoder's output (B, P, H, W) into log p(x|z) summed over pixels (B,),
# a mean image, or a sampled image; genzoo/pixels.py holds them.

PIXEL_MODELS = {"logistic": DiscretizedLogistic, "categorical": Categorical256, "bernoulli": Bernoulli}


def kl_to_standard_normal(mu: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) per row: (B, D) -> (B,) nats (K&W 2014, appendix B)."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(dim=1)


# ----------------------------------------------------------------------------- the model


class VAE(GenerativeModel):
    """``VAE(encoder, decoder, pixels, latent_dim)``: x -> (mu, log_var) -> z -> p(x|z)'s parameters."""

    family = "vae"
    likelihood = "bound"
    Config = VAEConfig

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        pixels: DiscretizedLogistic | Categorical256 | Bernoulli | PerChannel,
        latent_dim: int,
        beta: float = 1.0,
        num_classes: int = 0,
        label_dim: int = 16,
        iw_samples: int = 100,
    ):
        super().__init__()
        self.encoder, self.decoder, self.pixels = encoder, decoder, pixels
        self.latent_dim, self.beta, self.iw_samples = latent_dim, beta, iw_samples
        self.num_classes = num_classes  # 0: unconditional
        self.label_embedding = nn.Embedding(num_classes, label_dim) if num_classes else None

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def latent(self) -> str:
        return f"z in R^{self.latent_dim}, with an encoder"

    @classmethod
    def from_config(cls, cfg: VAEConfig, spec: ImageSpec) -> "VAE":
        if cfg.decoder not in PIXEL_MODELS:
            raise ConfigError(f"model.decoder must be one of {', '.join(PIXEL_MODELS)}, got {cfg.decoder!r}")
        if cfg.conditional and spec.num_classes < 1:
            raise ConfigError(f"model.conditional = true needs labelled data; {spec.name} has no classes")
        C, size = spec.shape[0], spec.shape[1]  # colour channels, side
        pixels = DiscretizedLogistic(cfg.n_mix) if cfg.decoder == "logistic" else PIXEL_MODELS[cfg.decoder]()
        if C > 1:  # colour: the same pixel likelihood for each channel (genzoo/pixels.py)
            pixels = PerChannel(pixels, C)
        label_dim = cfg.label_dim if cfg.conditional else 0
        encoder = ConvEncoder(C + label_dim, 2 * cfg.latent_dim, cfg.encoder_channels, size)
        decoder = ConvDecoder(cfg.latent_dim + label_dim, pixels.params_per_pixel, cfg.decoder_channels, size)
        num_classes = spec.num_classes if cfg.conditional else 0
        return cls(
            encoder, decoder, pixels, cfg.latent_dim,
            beta=cfg.beta, num_classes=num_classes, label_dim=cfg.label_dim, iw_samples=cfg.iw_samples,
        )  # fmt: skip

    # ------------------------------------------------------------------------- networks
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in [-1, 1] (and labels (B,) if conditional) -> mu, log_var, each (B, D)."""
        if self.label_embedding is not None:
            e = self.label_embedding(self._labels(y, len(x)))  # (B, E)
            x = torch.cat([x, e[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        return mu, log_var.clamp(-12.0, 8.0)  # keeps exp(log_var) finite early in training

    def decoder_params(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Latents (B, D) -> the pixel likelihood's parameters (B, P, H, W)."""
        if self.label_embedding is not None:
            z = torch.cat([z, self.label_embedding(self._labels(y, len(z)))], dim=1)
        return self.decoder(z)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Latents (B, D) -> the mean image of p(x|z), (B, C, H, W) in [-1, 1]."""
        return self.pixels.mean(self.decoder_params(z, y))

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decode the posterior mean: (B, C, H, W) -> (B, C, H, W), both in [-1, 1]."""
        with torch.no_grad():
            return self.decode(self.encode(x, y)[0], y)

    def _labels(self, y: Tensor | None, n: int) -> Tensor:
        if y is None:
            raise ValueError("this VAE is class-conditional: pass the labels y (B,) as well")
        return torch.as_tensor(y, dtype=torch.long, device=self.device).view(n)

    # ------------------------------------------------------------------------- loss
    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Negative ELBO in nats per example (beta-weighted KL); metrics in nats and bits/dim."""
        x, y = batch
        mu, log_var = self.encode(x, y)  # (B, D) each
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)  # K&W 2014, eq. 10
        recon = -self.pixels.log_prob(self.decoder_params(z, y), x)  # (B,) -log p(x|z)
        kl = kl_to_standard_normal(mu, log_var)  # (B,) K&W 2014, appendix B
        loss = (recon + self.beta * kl).mean()  # beta-VAE objective
        nelbo = (recon + kl).mean().item()  # the true bound, whatever beta is
        metrics = {
            "loss": loss.item(),
            "recon": recon.mean().item(),
            "kl": kl.mean().item(),
            "nelbo": nelbo,
            "bits_per_dim": nelbo / (x[0].numel() * math.log(2)),
        }
        return loss, metrics

    # ------------------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        labels: Sequence[int] | Tensor = (),
        pixels: str = "mean",
    ) -> Tensor:
        """``n`` images (n, C, H, W) in [-1, 1]: z ~ N(0, temperature^2 I), then p(x|z).

        temperature: scales the prior's standard deviation; below 1 trades variety for cleaner digits.
        labels: class-conditional models only; repeated to length n, so ``[3]`` draws only threes and
            the default (empty) cycles through the classes 0, 1, ..., C-1, 0, 1, ...
        pixels: "mean" draws the mean of p(x|z), a smooth image (the usual VAE picture); "sample" also
            draws every pixel's 8-bit level from p(x|z), the model's actual (noisy) samples.
        """
        if pixels not in ("mean", "sample"):
            raise ValueError(f"pixels must be 'mean' or 'sample', got {pixels!r}")
        y = cycle_labels(n, labels, self.num_classes, "VAE", self.device)
        with torch.no_grad():
            shape = (n, self.latent_dim)
            z = temperature * torch.randn(shape, generator=generator, device=self.device)  # (n, D)
            params = self.decoder_params(z, y)  # (n, P, H, W)
            return self.pixels.mean(params) if pixels == "mean" else self.pixels.sample(params, generator)

    # ------------------------------------------------------------------------- likelihood
    def log_prob(self, x: Tensor, *, y: Tensor | None = None, k: int = 0, chunk: int = 1024) -> Tensor:
        """(B,) importance-weighted lower bound on log p(x) in nats (Burda et al. 2016, eq. 8).

        x: images (B, C, H, W) in [-1, 1], read as 8-bit levels (binarised for the Bernoulli decoder).
        y: labels (B,), class-conditional models only: the bound is then on log p(x | y).
        k: importance samples per image, 0 for ``iw_samples`` from the config; k = 1 gives the ELBO.
        chunk: the most decoder passes at once (memory); the result does not depend on it.
        Gradients flow if grad mode is on: wrap evaluation in ``torch.no_grad()``.
        """
        k = k or self.iw_samples
        mu, log_var = self.encode(x, y)  # (B, D)
        per_pass = max(1, chunk // len(x))
        log_w = [self._log_weights(x, y, mu, log_var, min(per_pass, k - i)) for i in range(0, k, per_pass)]
        return torch.logsumexp(torch.cat(log_w, dim=1), dim=1) - math.log(k)  # Burda et al. 2016, eq. 8

    def _log_weights(self, x: Tensor, y: Tensor | None, mu: Tensor, log_var: Tensor, m: int) -> Tensor:
        """log w = log p(x|z) + log p(z) - log q(z|x) for m fresh z ~ q(z|x) per image: (B, m)."""
        B, D = mu.shape
        eps = torch.randn(m, B, D, device=mu.device)
        z = mu + torch.exp(0.5 * log_var) * eps  # (m, B, D)
        log_q = -0.5 * (eps.pow(2) + log_var + math.log(2 * math.pi)).sum(-1)  # (m, B)
        log_prior = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)  # (m, B)
        xs = x.expand(m, *x.shape).reshape(m * B, *x.shape[1:])  # (m*B, C, H, W)
        ys = None if y is None else y.repeat(m)
        log_px = self.pixels.log_prob(self.decoder_params(z.reshape(m * B, D), ys), xs).view(m, B)
        return (log_px + log_prior - log_q).T  # (B, m)

    # ------------------------------------------------------------------------- inpainting
    def inpaint(
        self,
        x: Tensor,
        known: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int = 200,
        lr: float = 0.05,
    ) -> Tensor:
        """Images (B, C, H, W) whose ``known`` pixels (bool, (B, 1, H, W) or broadcastable) are x's
        exactly, and the rest the decoder's mean image at the MAP latent of the known pixels:

            z* = argmax_z  sum_{known pixels i} log p(x_i | z) + log N(z; 0, I)

        found by ``genzoo.inpaint.fit_latent`` (Adam) from the encoder's mean of x with its missing
        pixels set to the background. The decoder scores every pixel on its own given z, so leaving
        the missing pixels out of log p(x | z) is exact, not an approximation.
        steps, lr: Adam's steps and learning rate on z.
        A conditional model does not know the digit: z is fitted once per class and each image keeps
        the class whose fit scores best after a quarter of the steps (``fit_best_latent``): the MAP
        over z and the label, with a uniform prior on the label, found greedily.
        The fill is deterministic: ``generator`` is not used.
        """
        from genzoo.inpaint import fit_best_latent, hide, paste

        B, k = len(x), max(1, self.num_classes)  # k candidate labels per image
        labels = torch.arange(k, device=self.device).repeat_interleave(B) if self.conditional else None  # (k B,)
        known = known.expand(B, 1, *x.shape[2:])

        def data_term(z: Tensor, image: Tensor, y: Tensor | None) -> Tensor:  # -log p(known pixels | z), nats
            log_p = log_prob_per_pixel(self.pixels, self.decoder_params(z, y), x[image])  # (N, H, W)
            return -(log_p * known[image, 0]).flatten(1).sum(1)  # (N,)

        with torch.no_grad():
            z = self.encode(hide(x, known).repeat(k, 1, 1, 1), labels)[0]  # (k B, D) the encoder's means
        z, y = fit_best_latent(data_term, z, labels, k, steps=steps, lr=lr)
        with torch.no_grad():
            return paste(x, self.decode(z, y), known)
