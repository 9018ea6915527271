"""Generative adversarial networks (Goodfellow et al. 2014), DCGAN-style (Radford et al. 2016).

A generator G maps noise z ~ N(0, I) to data; a discriminator D maps data to a logit, the log-odds
that its input is real. They play a two-player game (Goodfellow et al. 2014, eq. 1):

    min_G max_D V(D, G) = E_x[log sigma(D(x))] + E_z[log(1 - sigma(D(G(z))))]

For a fixed G the best discriminator has sigma(D*(x)) = p_data(x) / (p_data(x) + p_g(x)) (prop. 1), and
against it the game's value is -2 log 2 + 2 JSD(p_data || p_g) (thm. 1). Each player takes turns:
``n_critic`` steps of D on real and generated batches, then one step of G. Two losses (``loss``):

    "nonsaturating" (Goodfellow et al. 2014, sec. 3), with softplus(a) = log(1 + e^a):
        L_D = E_x[softplus(-D(x))] + E_z[softplus(D(G(z)))]      (-V: two binary cross-entropies)
        L_G = E_z[softplus(-D(G(z)))]                            (-log sigma(D(G(z))), not log(1 - ...):
              the same fixed point, but strong gradients while D still rejects every sample)
    "hinge" (Lim & Ye 2017; Miyato et al. 2018, eq. 16-17):
        L_D = E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))]
        L_G = -E_z[D(G(z))]

Stabilisers, each off or on in the config:
- spectral normalisation of every layer of D (Miyato et al. 2018): W / sigma(W), sigma(W) the largest
  singular value (power iteration in training, exact in eval mode; ``genzoo.nn.with_spectral_norm``):
  every linear layer of D is 1-Lipschitz (a convolution is not quite: see Not here);
- the R1 penalty on real data (Mescheder et al. 2018, eq. 9): L_D += gamma/2 E_x ||grad_x D(x)||^2;
- an EMA copy of G for sampling (Yazici et al. 2019): genzoo's trainer keeps an exponential moving
  average of the whole model (``train.ema_decay``, batch-norm statistics too) and samples and evaluates
  with it: images come from the averaged G (the averaged D only gives validation metrics).

Class-conditional models (``conditional = true``): G reads a learned label embedding next to z; D is a
projection discriminator (Miyato & Koyama 2018, eq. 3): D(x, y) = psi(phi(x)) + embed(y) . phi(x).

Networks: for 28x28 images, DCGAN's (Radford et al. 2016) strided (transposed) convolutions, no
pooling; batch norm and ReLU in G, LeakyReLU(0.2) and no batch norm in D, so D(x) depends on x alone
(the R1 gradient and the optimal-D identity are per example). For 2-D points, MLPs of the same shape.

There is no likelihood (``likelihood = "none"``); quality is measured on samples (FID-MNIST, precision,
recall, class coverage; on the ring, modes covered and the share of high-quality samples).

Files:
- networks: ``MLP`` (both players on 2-D points) and ``SpectralNorm`` / ``with_spectral_norm`` in
  genzoo/nn.py; the image networks (``ImageGenerator``, ``image_features``) and ``Discriminator`` are here
- configs: configs/gan_mnist.toml, configs/gan_ring.toml, configs/gan_ring_collapse.toml
- recipe train/gan.py; notebook notebooks/gan.py; tests tests/test_gan.py; record docs/gan.md
- exercises genzoo/exercises/gan.py (worked solutions in notebooks/solutions/gan.py)

References:
- Goodfellow et al. 2014, "Generative Adversarial Networks", arXiv:1406.2661
- Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional Generative
  Adversarial Networks" (DCGAN), arXiv:1511.06434
- White 2016, "Sampling Generative Networks", arXiv:1609.04468
- Salimans et al. 2016, "Improved Techniques for Training GANs", arXiv:1606.03498
- Lim & Ye 2017, "Geometric GAN", arXiv:1705.02894
- Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", arXiv:1706.08500
- Arjovsky et al. 2017, "Wasserstein GAN", arXiv:1701.07875
- Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", arXiv:1704.00028
- Odena et al. 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs", arXiv:1610.09585
- Donahue et al. 2017, "Adversarial Feature Learning" (BiGAN), arXiv:1605.09782
- Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks", arXiv:1802.05957
- Miyato & Koyama 2018, "cGANs with Projection Discriminator", arXiv:1802.05637
- Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", arXiv:1801.04406
- Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training", arXiv:1806.04498
- Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image Synthesis", arXiv:1809.11096
- Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data" (ADA), arXiv:2006.06676

Not here:
- a 1-Lipschitz D on images: sigma of a kernel reshaped to (out, in * 4 * 4) does not bound the
  convolution's operator norm, which for D's 4x4 stride-2 convolutions is up to twice it (k / stride)
- Wasserstein critics: weight clipping (Arjovsky et al. 2017), the gradient penalty (Gulrajani et al. 2017)
- feature matching and minibatch discrimination against collapse (Salimans et al. 2016)
- an auxiliary-classifier D (AC-GAN, Odena et al. 2017) and conditional batch norm in G: labels enter
  G by concatenation to z and D by projection only
- an encoder from x back to z (BiGAN, Donahue et al. 2017): the latent space is only walked, not inferred
- residual or self-attention networks (Brock et al. 2019): DCGAN's two-resolution networks only
- augmentation of D's inputs (ADA, Karras et al. 2020), an R2 penalty on generated data, lazy R1
- a likelihood, even an estimate: quality is measured on samples only
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import ConfigError
from genzoo.model import Batch, GenerativeModel, OptimConfig, adamw, cycle_labels, optimize
from genzoo.nn import MLP, with_spectral_norm
from genzoo.specs import ImageSpec, PointSpec

LOSSES = ("nonsaturating", "hinge")


@dataclass
class GANConfig:
    latent_dim: int = 64  # size of the noise z
    channels: tuple[int, ...] = (128, 64)  # images: G's widths at 7 and 14 pixels; D's mirrored (64 at 14, 128 at 7)
    batch_norm: bool = True  # images: batch norm in G (Radford et al. 2016)
    hidden: int = 128  # 2-D points: width of both MLPs
    depth: int = 3  # 2-D points: hidden layers of both MLPs
    loss: str = "nonsaturating"  # nonsaturating | hinge
    spectral_norm: bool = True  # spectral normalisation of every layer of D
    r1_gamma: float = 0.0  # weight gamma of the R1 penalty; 0 turns it off
    n_critic: int = 1  # discriminator steps per generator step
    g_lr: float = 0.0  # the generator's learning rate; 0: train.lr, like D's
    conditional: bool = False  # class-conditional G and projection D (the data must have classes)
    label_dim: int = 16  # size of G's label embedding when conditional


# ----------------------------------------------------------------------------- the networks


class ImageGenerator(nn.Module):
    """(B, in_dim) -> (B, C, H, W) in [-1, 1]: DCGAN's generator (Radford et al. 2016, fig. 1).

    A linear map makes a (channels[0], H/2^n, W/2^n) feature map (n = len(channels)); each entry of
    ``channels`` is one resolution, a 4x4 stride-2 transposed convolution doubling the side.
    """

    def __init__(self, in_dim: int, out_channels: int, channels: Sequence[int], image_size: int, batch_norm: bool):
        super().__init__()
        side = image_size // 2 ** len(channels)
        norm = nn.BatchNorm2d if batch_norm else lambda _: nn.Identity()
        self.shape = (channels[0], side, side)
        self.project = nn.Linear(in_dim, math.prod(self.shape))
        layers: list[nn.Module] = [norm(channels[0]), nn.ReLU()]
        for prev, width in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(prev, width, 4, stride=2, padding=1), norm(width), nn.ReLU()]
        layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, stride=2, padding=1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.layers(self.project(h).view(-1, *self.shape))  # (B, C, H, W)


def image_features(in_channels: int, channels: Sequence[int], image_size: int) -> tuple[nn.Module, int]:
    """DCGAN's discriminator body: 4x4 stride-2 convolutions and LeakyReLU(0.2), (B, C, H, W) -> (B, F)."""
    layers: list[nn.Module] = []
    for prev, width in zip((in_channels, *channels[:-1]), channels):
        layers += [nn.Conv2d(prev, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    side = image_size // 2 ** len(channels)
    return nn.Sequential(*layers, nn.Flatten()), channels[-1] * side * side


def point_features(dim: int, hidden: int, depth: int) -> tuple[nn.Module, int]:
    """An MLP body for points, (B, D) -> (B, hidden)."""
    mlp = MLP(dim, hidden, hidden, depth - 1, activation=lambda: nn.LeakyReLU(0.2))
    return nn.Sequential(mlp, nn.LeakyReLU(0.2)), hidden


class Generator(nn.Module):
    """G(z, y): the body reads z, and with labels a learned embedding of y next to it."""

    def __init__(self, body: nn.Module, num_classes: int = 0, label_dim: int = 0):
        super().__init__()
        self.body = body
        self.labels = nn.Embedding(num_classes, label_dim) if num_classes else None

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.labels is not None:
            z = torch.cat([z, self.labels(y)], dim=1)  # (B, latent_dim + label_dim)
        return self.body(z)


class Discriminator(nn.Module):
    """D(x, y) -> (B,) logits: a linear head on the features phi(x), plus the projection of y's embedding."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int = 0):
        super().__init__()
        self.features = features
        self.head = nn.Linear(feature_dim, 1)
        self.labels = nn.Embedding(num_classes, feature_dim) if num_classes else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        phi = self.features(x)  # (B, F)
        logit = self.head(phi).squeeze(1)  # (B,)
        if self.labels is not None:
            logit = logit + (self.labels(y) * phi).sum(1)  # Miyato & Koyama 2018, eq. 3
        return logit


# ----------------------------------------------------------------------------- the losses


def discriminator_loss(real: Tensor, fake: Tensor, kind: str) -> Tensor:
    """L_D from D's logits on real (B,) and generated (B,) data, a mean over both batches' examples."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()  # Miyato et al. 2018, eq. 16
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # Goodfellow et al. 2014, eq. 1 (negated)


def generator_loss(fake: Tensor, kind: str) -> Tensor:
    """L_G from D's logits on generated data (B,)."""
    if kind == "hinge":
        return -fake.mean()  # Miyato et al. 2018, eq. 17
    return F.softplus(-fake).mean()  # -log sigma(D(G(z))): Goodfellow et al. 2014, sec. 3


def r1_penalty(discriminator: nn.Module, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    """E_x ||grad_x D(x)||^2 on real data (Mescheder et al. 2018, eq. 9, without gamma/2), and D(x).

    Grad mode is switched on here, so validation under ``torch.no_grad`` still measures it.
    """
    training = torch.is_grad_enabled()  # then the penalty itself must be differentiable
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = discriminator(x, y)  # (B,)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=training)
    return grad.pow(2).flatten(1).sum(1).mean(), logits


# ----------------------------------------------------------------------------- the model


class GAN(GenerativeModel):
    """``GAN(generator, discriminator)``: the two players and the rules of their game.

    Metrics (nats for the non-saturating loss): ``d_loss`` and ``g_loss``, the two players' losses;
    ``d_real`` and ``d_fake``, the means of sigma(D(x)) and sigma(D(G(z))), D's probability of "real";
    ``r1``, E||grad_x D(x)||^2 (0 when off); in training also ``d_grad_norm`` and ``g_grad_norm``.
    ``loss`` is ``d_loss``, what D minimises. It is *not* a measure of sample quality: it goes down
    when D wins, and for the non-saturating loss sits at 2 log 2 = 1.386 nats when D cannot tell the
    two apart (2 for the hinge loss), so a lower validation "loss" means a stronger discriminator,
    not a better generator: ``best.pt`` follows sample scores where the data has them, else there is none.
    """

    family = "gan"
    likelihood = "none"
    Config = GANConfig

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: int,
        data_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 0,
        loss: str = "nonsaturating",
        r1_gamma: float = 0.0,
        n_critic: int = 1,
        g_lr: float = 0.0,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"model.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.data_shape, self.num_classes = latent_dim, tuple(data_shape), num_classes
        self.loss_kind, self.r1_gamma, self.n_critic, self.g_lr = loss, r1_gamma, n_critic, g_lr

    @classmethod
    def from_config(cls, cfg: GANConfig, spec: ImageSpec | PointSpec) -> "GAN":
        if cfg.conditional and spec.num_classes < 1:
            raise ConfigError(f"model.conditional = true needs labelled data; {spec.name} has no classes")
        if cfg.n_critic < 1:
            raise ConfigError(f"model.n_critic must be at least 1, got {cfg.n_critic}")
        num_classes = spec.num_classes if cfg.conditional else 0
        g_in = cfg.latent_dim + (cfg.label_dim if num_classes else 0)
        if isinstance(spec, PointSpec):
            body, shape = MLP(g_in, cfg.hidden, spec.dim, cfg.depth, activation=nn.ReLU), (spec.dim,)
            features, feature_dim = point_features(spec.dim, cfg.hidden, cfg.depth)
        elif isinstance(spec, ImageSpec):
            C, H, _ = spec.shape
            body, shape = ImageGenerator(g_in, C, cfg.channels, H, cfg.batch_norm), spec.shape
            features, feature_dim = image_features(C, tuple(reversed(cfg.channels)), H)
        else:
            raise ConfigError(f"GAN models images or 2-D points, not {spec.name}")
        discriminator = Discriminator(features, feature_dim, num_classes)
        if cfg.spectral_norm:
            with_spectral_norm(discriminator)
        generator = Generator(body, num_classes, cfg.label_dim)
        return cls(generator, discriminator, cfg.latent_dim, shape, num_classes,
                   cfg.loss, cfg.r1_gamma, cfg.n_critic, cfg.g_lr)  # fmt: skip

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def latent(self) -> str:
        return f"the {self.latent_dim}-d Gaussian noise z"

    def configure_optimizers(self, cfg: OptimConfig) -> dict[str, torch.optim.Optimizer]:
        """One AdamW per player; G's learning rate may differ (``g_lr``: Heusel et al. 2017's two time scales)."""
        g_cfg = OptimConfig(lr=self.g_lr or cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
        return {
            "discriminator": adamw(list(self.discriminator.parameters()), cfg),
            "generator": adamw(list(self.generator.parameters()), g_cfg),
        }

    # ------------------------------------------------------------------------- the game
    def noise(self, n: int, generator: torch.Generator | None = None, truncation: float = 0.0) -> Tensor:
        """z ~ N(0, I), (n, latent_dim); with truncation t > 0, entries with |z| > t are redrawn."""
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        while truncation > 0 and (outside := z.abs() > truncation).any():  # Brock et al. 2019, truncation trick
            z = torch.where(outside, torch.randn(z.shape, generator=generator, device=self.device), z)
        return z

    def discriminator_step_loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """L_D (+ gamma/2 R1) on a real batch and as many generated examples; G gets no gradient."""
        x, y = batch
        y = y if self.num_classes else None
        with torch.no_grad():
            fake = self.generator(self.noise(len(x)), y)  # same labels as the real batch
        if self.r1_gamma > 0:
            r1, real_logits = r1_penalty(self.discriminator, x, y)
        else:
            r1, real_logits = torch.zeros((), device=x.device), self.discriminator(x, y)
        fake_logits = self.discriminator(fake, y)
        d_loss = discriminator_loss(real_logits, fake_logits, self.loss_kind)
        metrics = {
            "d_loss": d_loss.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),  # D's probability that x is real
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
            "r1": r1.item(),
        }
        return d_loss + self.r1_gamma / 2 * r1, metrics  # Mescheder et al. 2018, eq. 9

    def generator_step_loss(self, n: int, y: Tensor | None) -> tuple[Tensor, dict[str, float]]:
        """L_G on ``n`` generated examples (labels ``y``): gradients flow through D into G."""
        fake_logits = self.discriminator(self.generator(self.noise(n), y), y)
        g_loss = generator_loss(fake_logits, self.loss_kind)
        return g_loss, {"g_loss": g_loss.item()}

    def training_step(
        self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], step: int, clip: float
    ) -> dict[str, float]:
        """``n_critic`` steps of D (each with fresh noise, on the same real batch), then one step of G."""
        for _ in range(self.n_critic):
            d_loss, metrics = self.discriminator_step_loss(batch)
            metrics["d_grad_norm"] = optimize(optimizers["discriminator"], d_loss, clip)
        y = batch[1] if self.num_classes else None
        self.discriminator.requires_grad_(False)  # G's step needs grad_x D, not D's weight gradients
        try:
            g_loss, g_metrics = self.generator_step_loss(len(batch[0]), y)
            g_metrics["g_grad_norm"] = optimize(optimizers["generator"], g_loss, clip)
        finally:
            self.discriminator.requires_grad_(True)
        return {"loss": metrics["d_loss"], **metrics, **g_metrics}

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """L_D on the batch (the returned scalar) and L_G on fresh samples, with the metrics above.

        What validation reports, on held-out real data; the scalar is in nats per example for the
        non-saturating loss (a sum of two cross-entropies), in hinge units for the hinge loss.
        """
        d_loss, metrics = self.discriminator_step_loss(batch)
        _, g_metrics = self.generator_step_loss(len(batch[0]), batch[1] if self.num_classes else None)
        return d_loss, {"loss": metrics["d_loss"], **metrics, **g_metrics}

    # ------------------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        labels: Sequence[int] | Tensor = (),
        truncation: float = 0.0,
    ) -> Tensor:
        """``n`` samples G(z), images (n, C, H, W) in [-1, 1] or points (n, D), one network pass.

        labels: conditional models only; repeated to length n, so ``[3]`` draws only threes and the
            default (empty) cycles through the classes 0, 1, ..., C-1, 0, 1, ...
        truncation: t > 0 redraws every entry of z with |z| > t (the truncation trick, Brock et al.
            2019): smaller t gives more typical, cleaner samples and less variety; 0 is plain N(0, I).
        Batch norm in G reads its running statistics when the model is in eval mode (call ``.eval()``).
        """
        y = cycle_labels(n, labels, self.num_classes, "GAN", self.device)
        z = self.noise(n, generator, truncation)  # (n, latent_dim)
        with torch.no_grad():
            return self.generator(z, y)

    def interpolate(
        self,
        n: int,
        steps: int = 10,
        *,
        generator: torch.Generator | None = None,
        labels: Sequence[int] | Tensor = (),
    ) -> Tensor:
        """(n, steps, ...) samples along ``n`` walks between two random latents z0 -> z1 (labels as in ``sample``).

        The walk is spherical (slerp, White 2016): Gaussian z concentrate near the sphere of radius
        sqrt(latent_dim), and the straight line between two of them passes through less likely, shorter z.
        """
        y = cycle_labels(n, labels, self.num_classes, "GAN", self.device)
        z0, z1 = self.noise(n, generator), self.noise(n, generator)  # (n, latent_dim)
        omega = torch.arccos((F.normalize(z0, dim=1) * F.normalize(z1, dim=1)).sum(1).clamp(-1, 1))[:, None]
        t = torch.linspace(0, 1, steps, device=self.device)[:, None, None]  # (steps, 1, 1)
        z = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)  # White 2016, slerp
        y = y.repeat(steps) if y is not None else None
        with torch.no_grad():
            x = self.generator(z.reshape(steps * n, -1), y)  # (steps * n, ...), step-major
        return x.view(steps, n, *self.data_shape).transpose(0, 1)  # (n, steps, ...)

    # ------------------------------------------------------------------------- anomaly detection
    def anomaly_score(self, x: Tensor) -> Tensor:
        """(B,) -D(x): D was trained to give real data high logits, so a low logit is unusual. A
        conditional D needs a label the input does not have: x scores as the class it looks most real as,
        -max_y D(x, y). D is trained only to beat the current G, not to model the data, so nothing
        promises that this ranks inputs unseen in training (``genzoo.anomaly`` measures whether it does)."""
        if not self.num_classes:
            return -self.discriminator(x)
        logits = [self.discriminator(x, torch.full((len(x),), c, device=x.device)) for c in range(self.num_classes)]
        return -torch.stack(logits, dim=1).amax(dim=1)  # (B,)

    # ------------------------------------------------------------------------- inpainting
    def inpaint(
        self,
        x: Tensor,
        known: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int = 100,
        lr: float = 0.1,
        restarts: int = 2,
        sigma: float = 0.1,
    ) -> Tensor:
        """Images (B, C, H, W) whose ``known`` pixels (bool, (B, 1, H, W) or broadcastable) are x's
        exactly, and the rest G(z*) at the MAP latent of the known pixels (Bora et al. 2017):

            z* = argmin_z  ||known * (G(z) - x)||^2 / (2 sigma^2) + ||z||^2 / 2

        (the known pixels read as G(z) plus Gaussian noise of standard deviation sigma, z ~ N(0, I)),
        found by Adam from ``restarts`` random z per image, all fitted for a quarter of the steps, then
        only each image's best (``genzoo.inpaint.fit_best_latent``). G has no encoder to start from,
        and the objective is not convex in z: a single start can stop in a poor local minimum.
        steps, lr: Adam's steps and learning rate on z.
        restarts: random starts per image; per class for a conditional G (the digit is not known, so
            every class is tried, restarts * 10 starts per image, and the best fit picks the class too).
        sigma: the known pixels' noise, in [-1, 1] units: smaller trusts them more against the prior.
        Batch norm in G reads its running statistics only in eval mode (call ``.eval()``).
        """
        from genzoo.inpaint import fit_best_latent, paste

        B, k = len(x), restarts * max(1, self.num_classes)  # k starts per image
        classes = torch.arange(self.num_classes, device=self.device)
        labels = classes.repeat_interleave(B).repeat(restarts) if self.conditional else None  # (k B,)
        known = known.expand(B, 1, *x.shape[2:])

        def data_term(z: Tensor, image: Tensor, y: Tensor | None) -> Tensor:  # -log p(known | z) + const
            return ((self.generator(z, y) - x[image]) ** 2 * known[image]).flatten(1).sum(1) / (2 * sigma**2)

        z, y = fit_best_latent(data_term, self.noise(k * B, generator), labels, k, steps=steps, lr=lr)
        with torch.no_grad():
            return paste(x, self.generator(z, y), known)
