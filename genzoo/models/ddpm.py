"""Denoising diffusion probabilistic models (Ho et al. 2020), DDIM sampling and classifier-free guidance.

A fixed forward process adds Gaussian noise to the data x_0 over T steps with variances beta_t;
a network eps(x_t, t) learns to predict the noise, and sampling runs the process backwards.
Index 0 is the data itself (beta_0 = 0, alpha_bar_0 = 1), so t = 1..T read as in the papers.

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)                     (Ho et al. 2020, eq. 2)
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),                (Ho et al. 2020, eq. 4)
        alpha_t = 1 - beta_t,  alpha_bar_t = prod_{s<=t} alpha_s
    q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde_t I),                         (Ho et al. 2020, eq. 6-7)
        mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    L_simple = E_{t, x_0, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2
                                                                                 (Ho et al. 2020, eq. 14)

Schedules: ``linear`` beta from 1e-4 to 0.02 (Ho et al. 2020, sec. 4, scaled by 1000 / T for other T),
``cosine`` alpha_bar_t = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2), s = 0.008
(Nichol & Dhariwal 2021, eq. 17), beta_t clipped at 0.999.

Sampling predicts x_0 from the noise estimate, x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
(eq. 15 rearranged), optionally clipped to [-1, 1], then takes one of two steps of ``NoiseSchedule``:

    ancestral (Ho et al. 2020, Algorithm 2):  x_{t-1} = mu_tilde(x_t, x0_hat) + sqrt(beta_tilde_t) z
        (unclipped, this is eq. 11: (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z)
    DDIM from t to s < t (Song et al. 2021, eq. 12 and 16):
        x_s = sqrt(alpha_bar_s) x0_hat + sqrt(1 - alpha_bar_s - sigma^2) eps + sigma z,
        sigma = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)
    eta = 0 is deterministic; eta = 1 with every step is the ancestral sampler.

Classifier-free guidance (Ho & Salimans 2022): one network learns eps(x_t, t, y) and, with the label
dropped (replaced by a "no label" class) with probability ``label_dropout``, eps(x_t, t); sampling uses
    eps_guided = (1 + w) eps(x_t, t, y) - w eps(x_t, t)                       (Ho & Salimans 2022, eq. 6)

``log_prob`` is the variational bound (Ho et al. 2020, eq. 5) on log p of the 8-bit image, in nats:
    -log p(x_0) <= KL(q(x_T|x_0) || N(0, I)) + sum_{t=2}^T KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t))
                   - log p(x_0 | x_1),
with p(x_{t-1}|x_t) = N(mu_tilde(x_t, x0_hat), beta_tilde_t I) (the sampler, unclipped) and the
decoder p(x_0|x_1) a Gaussian N(x0_hat, beta_1) integrated over each pixel's 8-bit bin (eq. 13):
level k at x = k / 127.5 - 1 gets the mass of [x - 1/255, x + 1/255], the end levels the tails
(``discretized_gaussian_log_likelihood`` in ``genzoo/pixels.py``).

Files: the networks ``UNet`` (images; with ``TimeLabelEmbedding``, ``ResBlock``, ``SelfAttention``) and
``TimeMLP`` (2-D points) in ``genzoo/nn.py``; configs ``configs/ddpm_mnist.toml`` and
``configs/ddpm_mnist_gpu.toml``; recipe ``train/ddpm.py``; notebook ``notebooks/ddpm.py``; tests
``tests/test_ddpm.py``; record ``docs/ddpm.md``; exercises ``genzoo/exercises/ddpm.py``.

References:
    Ho et al. 2020: J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239.
    Song et al. 2021: J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", arXiv:2010.02502.
    Nichol & Dhariwal 2021: A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models",
        arXiv:2102.09672.
    Ho & Salimans 2022: J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", arXiv:2207.12598.

Not here:
    learned reverse variances and the hybrid loss L_hybrid (Nichol & Dhariwal 2021): sigma_t^2 is fixed.
    importance sampling of t, for training or for the bound: t is uniform (the bound is stratified).
    other parameterisations of the network (predicting x_0 or v): it predicts the noise eps.
    continuous-time (SDE / probability-flow ODE) formulations and higher-order ODE solvers.
    classifier guidance with a separately trained noisy classifier: only classifier-free guidance.
    dynamic thresholding of x0_hat: the clip is the static one to [-1, 1].
    distillation into fewer sampling steps. Latent diffusion: genzoo/models/latent_diffusion.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from genzoo.errors import ConfigError
from genzoo.model import Batch, GenerativeModel, cycle_labels
from genzoo.nn import TimeMLP, UNet
from genzoo.pixels import discretized_gaussian_log_likelihood, quantize
from genzoo.specs import ImageSpec, PointSpec


@dataclass
class DDPMConfig:
    timesteps: int = 1000  # T
    schedule: str = "cosine"  # cosine | linear
    channels: tuple[int, ...] = (32, 64, 64)  # U-Net widths at 28, 14 and 7 pixels
    attention: bool = True  # self-attention at the lowest resolution
    dropout: float = 0.0
    hidden: int = 128  # 2-D points: width of the MLP denoiser
    depth: int = 3  # 2-D points: hidden layers of the MLP denoiser
    conditional: bool = False  # learn eps(x_t, t, y) for classifier-free guidance
    label_dropout: float = 0.1  # conditional: how often a label is replaced by "no label" in training
    bound_timesteps: int = 0  # log_prob's default number of timesteps; 0: all of them (exact sum)


# ----------------------------------------------------------------------------- the noise schedule


class NoiseSchedule(nn.Module):
    """The fixed forward process and the reverse update rules, apart from any network.

    Buffers (in the state_dict) have length T + 1; index t is the paper's t, index 0 the data.
    ``t`` arguments are an int (one timestep for the batch) or a (B,) int64 tensor.
    """

    def __init__(self, betas: Tensor):
        super().__init__()
        betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas.double()])  # beta_0 = 0: x_0 is data
        alpha_bar = torch.cumprod(1 - betas, dim=0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        one_minus = (1 - alpha_bar).clamp_min(1e-20)  # in float64: 1 - alpha_bar_1 is ~1e-5 for T = 1000
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", alpha_bar.float())
        self.register_buffer("beta_tilde", (betas * (1 - alpha_bar_prev) / one_minus).float())  # Ho et al. 2020, eq. 7
        self.register_buffer("coef_x0", (alpha_bar_prev.sqrt() * betas / one_minus).float())  # Ho et al. 2020, eq. 7
        self.register_buffer("coef_xt", ((1 - betas).sqrt() * (1 - alpha_bar_prev) / one_minus).float())

    @classmethod
    def linear(cls, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        scale = 1000 / T  # keeps alpha_bar_T near zero for any T (Nichol & Dhariwal 2021, sec. 3.2)
        return cls(torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64).clamp(max=0.999))

    @classmethod
    def cosine(cls, T: int, s: float = 0.008) -> "NoiseSchedule":
        t = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # Nichol & Dhariwal 2021, eq. 17
        alpha_bar = f / f[0]
        return cls((1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999))

    @property
    def T(self) -> int:
        return len(self.betas) - 1

    @staticmethod
    def at(values: Tensor, t: int | Tensor, x: Tensor) -> Tensor:
        """values[t] shaped to broadcast against x: (B, 1, ..., 1), or a scalar for an int t."""
        return values[t].reshape(-1, *([1] * (x.dim() - 1)))

    def q_sample(self, x0: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        """Draw x_t ~ q(x_t | x_0) given the noise eps."""
        alpha_bar = self.at(self.alpha_bar, t, x0)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps  # Ho et al. 2020, eq. 4

    def predict_x0(self, xt: Tensor, t: int | Tensor, eps: Tensor, clip: bool = False) -> Tensor:
        alpha_bar = self.at(self.alpha_bar, t, xt)
        x0 = (xt - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()  # Ho et al. 2020, eq. 15 rearranged
        return x0.clamp(-1, 1) if clip else x0

    def posterior(self, x0: Tensor, xt: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0), for t >= 1 (Ho et al. 2020, eq. 6-7)."""
        mean = self.at(self.coef_x0, t, xt) * x0 + self.at(self.coef_xt, t, xt) * xt  # Ho et al. 2020, eq. 7
        return mean, self.at(self.beta_tilde, t, xt)

    def ddpm_step(self, xt: Tensor, t: int, eps: Tensor, noise: Tensor, clip: bool = True) -> Tensor:
        """x_t -> x_{t-1}: the ancestral step with sigma_t^2 = beta_tilde_t (Ho et al. 2020, Algorithm 2)."""
        mean, var = self.posterior(self.predict_x0(xt, t, eps, clip), xt, t)
        return mean + var.sqrt() * noise  # Ho et al. 2020, Algorithm 2; beta_tilde_1 = 0: the last step is the mean

    def timesteps(self, steps: int) -> list[int]:
        """T, ..., 0 in ``steps`` evenly spaced steps (rounded): the times DDIM visits; steps = T is every t."""
        if not 1 <= steps <= self.T:
            raise ValueError(f"DDIM steps must be between 1 and T = {self.T}, got {steps}")
        return torch.linspace(self.T, 0, steps + 1, dtype=torch.float64).round().long().tolist()

    def ddim_step(
        self, xt: Tensor, t: int, s: int, eps: Tensor, noise: Tensor, eta: float = 0.0, clip: bool = True
    ) -> Tensor:
        """x_t -> x_s for any s < t (Song et al. 2021, eq. 12); eta = 0 is deterministic."""
        alpha_bar_t, alpha_bar_s = self.alpha_bar[t], self.alpha_bar[s]
        x0 = self.predict_x0(xt, t, eps, clip)
        eps = (xt - alpha_bar_t.sqrt() * x0) / (1 - alpha_bar_t).sqrt()  # the noise that x0_hat implies
        ratio = (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)  # beta_tilde_t if s = t - 1
        sigma = eta * ratio.sqrt()  # Song et al. 2021, eq. 16
        direction = (1 - alpha_bar_s - sigma**2).clamp_min(0).sqrt() * eps
        return alpha_bar_s.sqrt() * x0 + direction + sigma * noise  # Song et al. 2021, eq. 12


SCHEDULES = {"cosine": NoiseSchedule.cosine, "linear": NoiseSchedule.linear}
SAMPLERS = ("ddpm", "ddim")


# ----------------------------------------------------------------------------- the bound's KL terms


def kl_between_gaussians(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per element."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)


# ----------------------------------------------------------------------------- the model


class DDPM(GenerativeModel):
    """``DDPM(eps_net, schedule)``: the noise predictor eps(x_t, t, y) and the fixed noise schedule."""

    family = "ddpm"
    likelihood = "bound"
    Config = DDPMConfig

    def __init__(
        self,
        eps_net: nn.Module,
        schedule: NoiseSchedule,
        data_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 0,
        label_dropout: float = 0.1,
        bound_timesteps: int = 0,
    ):
        super().__init__()
        self.eps_net, self.schedule, self.data_shape = eps_net, schedule, tuple(data_shape)  # one sample's shape
        self.num_classes, self.label_dropout = num_classes, label_dropout  # num_classes 0: unconditional
        self.bound_timesteps = bound_timesteps

    @classmethod
    def from_config(cls, cfg: DDPMConfig, spec: ImageSpec | PointSpec) -> "DDPM":
        if cfg.schedule not in SCHEDULES:
            raise ConfigError(f"model.schedule must be one of {', '.join(SCHEDULES)}, got {cfg.schedule!r}")
        if cfg.conditional and spec.num_classes < 1:
            raise ConfigError(f"model.conditional = true needs labelled data; {spec.name} has no classes")
        num_classes = spec.num_classes if cfg.conditional else 0
        if isinstance(spec, PointSpec):
            eps_net, shape = TimeMLP(spec.dim, cfg.hidden, cfg.depth, num_classes), (spec.dim,)
        elif isinstance(spec, ImageSpec):
            eps_net, shape = UNet(spec.shape[0], cfg.channels, num_classes, cfg.attention, cfg.dropout), spec.shape
        else:
            raise ConfigError(f"DDPM models images or 2-D points, not {spec.name}")
        schedule = SCHEDULES[cfg.schedule](cfg.timesteps)
        return cls(eps_net, schedule, shape, num_classes, cfg.label_dropout, cfg.bound_timesteps)

    @property
    def T(self) -> int:
        return self.schedule.T

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def latent(self) -> str:
        # DDIM with eta = 0 is a deterministic map from the noise x_T, so x_T works as a latent code.
        return f"x_T in R^{math.prod(self.data_shape)}, through deterministic DDIM"

    def eps(self, xt: Tensor, t: Tensor, y: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """The noise estimate; with labels and guidance w > 0, the guided one (Ho & Salimans 2022)."""
        if not self.num_classes:
            return self.eps_net(xt, t)
        y = torch.full_like(t, self.num_classes) if y is None else y  # no labels: the unconditional model
        if guidance == 0:
            return self.eps_net(xt, t, y)
        null = torch.full_like(y, self.num_classes)
        both = self.eps_net(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, null]))  # one pass for both
        eps_cond, eps_uncond = both.chunk(2)
        return (1 + guidance) * eps_cond - guidance * eps_uncond  # Ho & Salimans 2022, eq. 6

    # ------------------------------------------------------------------------- loss
    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """L_simple: squared error of the noise estimate, averaged over dimensions and examples."""
        x0, y = batch
        B = len(x0)
        t = torch.randint(1, self.T + 1, (B,), device=x0.device)  # t ~ Uniform{1, ..., T}
        eps = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, eps)  # Ho et al. 2020, eq. 4
        if self.num_classes:
            drop = torch.rand(B, device=x0.device) < self.label_dropout  # Ho & Salimans 2022, Algorithm 1
            y = torch.where(drop, self.num_classes, y)
        error = (eps - self.eps_net(xt, t, y if self.num_classes else None)) ** 2  # Ho et al. 2020, eq. 14
        per_example = error.flatten(1).mean(1)  # (B,)
        loss = per_example.mean()
        late = t > self.T // 2  # the noisier half of the timesteps
        metrics = {
            "loss": loss.item(),
            "mse_early": per_example[~late].mean().item() if (~late).any() else 0.0,
            "mse_late": per_example[late].mean().item() if late.any() else 0.0,
        }
        return loss, metrics

    # ------------------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: str = "ddpm",
        steps: int = 50,
        eta: float = 0.0,
        guidance: float = 0.0,
        labels: Sequence[int] | Tensor = (),
        clip: bool = True,
    ) -> Tensor:
        """``n`` samples, images (n, C, H, W) in [-1, 1] or points (n, D), from x_T ~ N(0, I).

        sampler: "ddpm", ancestral sampling through all T steps (Ho et al. 2020, Algorithm 2), or
            "ddim", ``steps`` evenly spaced steps of DDIM (Song et al. 2021) on the same network.
        steps: DDIM only: number of network evaluations (at most T).
        eta: DDIM only: 0 is the deterministic DDIM; 1 with steps = T is the ancestral sampler.
        guidance: classifier-free guidance scale w (conditional models); 0 samples the conditional
            model as it is, larger w trades variety for more recognisable classes.
        labels: conditional models only; repeated to length n, so ``[3]`` draws only threes and the
            default (empty) cycles through the classes 0, 1, ..., C-1, 0, 1, ...
        clip: clip each step's x0_hat to [-1, 1] (images); leave it on for images, off for points.
        """
        for x in self.trajectory(
            n, generator=generator, sampler=sampler, steps=steps, eta=eta, guidance=guidance, labels=labels, clip=clip
        ):
            pass
        return x

    def trajectory(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: str = "ddpm",
        steps: int = 50,
        eta: float = 0.0,
        guidance: float = 0.0,
        labels: Sequence[int] | Tensor = (),
        clip: bool = True,
    ) -> Iterator[Tensor]:
        """Yield x_T, then each x_t the sampler visits down to x_0; options as in ``sample``."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        times = self.schedule.timesteps(self.T if sampler == "ddpm" else steps)  # every step for DDPM
        y = cycle_labels(n, labels, self.num_classes, "DDPM", self.device)
        x = torch.randn((n, *self.data_shape), generator=generator, device=self.device)  # x_T
        yield x
        for t, s in zip(times[:-1], times[1:]):
            with torch.no_grad():
                eps = self.eps(x, torch.full((n,), t, device=self.device), y, guidance)
            noise = torch.randn(x.shape, generator=generator, device=self.device)
            if sampler == "ddpm":
                x = self.schedule.ddpm_step(x, t, eps, noise, clip)
            else:
                x = self.schedule.ddim_step(x, t, s, eps, noise, eta, clip)
            yield x

    # ------------------------------------------------------------------------- likelihood
    def log_prob(self, x: Tensor, *, y: Tensor | None = None, timesteps: int = 0) -> Tensor:
        """(B,) variational lower bound on log p(x) of the 8-bit images, in nats (Ho et al. 2020, eq. 5).

        timesteps: K; 0 for ``bound_timesteps`` from the config, which 0 makes T. The sum over
            t = 2..T of the KL terms is estimated without bias by stratified sampling: {2..T} is cut
            into K contiguous strata, one t is drawn uniformly in each (per image), and its term is
            weighted by the stratum's size. K = T - 1 visits every t once: the usual one-sample bound.
            Every term also draws its own x_t ~ q(x_t | x_0), as the bound is an expectation over them.
        y: labels (B,) of a conditional model: a bound on log p(x | y); without them, on the
            unconditional model's log p(x) (the "no label" class).
        Gradients flow if grad mode is on: wrap evaluation in ``torch.no_grad()``.
        """
        x0 = quantize(x)  # the 8-bit levels
        K = min(timesteps or self.bound_timesteps or self.T - 1, self.T - 1)
        prior = self._prior_kl(x0)  # (B,) L_T
        decoder = -self._decoder_log_likelihood(x0, y)  # (B,) L_0
        edges = torch.linspace(2, self.T + 1, K + 1, dtype=torch.float64).round().long().tolist()
        middle = torch.zeros_like(prior)
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:  # stratum {a, ..., b - 1}
                t = torch.randint(a, b, (len(x0),), device=x0.device)
                middle = middle + (b - a) * self._step_kl(x0, t, y)  # (B,) weighted L_{t-1}
        return -(prior + middle + decoder)

    def _prior_kl(self, x0: Tensor) -> Tensor:
        """KL(q(x_T | x_0) || N(0, I)) per image: no parameters, close to 0 for a good schedule."""
        alpha_bar = self.schedule.alpha_bar[self.T]
        mean, var = alpha_bar.sqrt() * x0, (1 - alpha_bar).expand_as(x0)  # q(x_T | x_0)
        kl = kl_between_gaussians(mean, var, torch.zeros_like(x0), torch.ones_like(x0))
        return kl.flatten(1).sum(1)

    def _step_kl(self, x0: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        """KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) per image, for a (B,) t >= 2 and a fresh x_t."""
        xt = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        mean_q, var = self.schedule.posterior(x0, xt, t)  # Ho et al. 2020, eq. 6-7
        x0_hat = self.schedule.predict_x0(xt, t, self.eps(xt, t, y))
        mean_p, _ = self.schedule.posterior(x0_hat, xt, t)  # the model's mean, same variance
        return kl_between_gaussians(mean_q, var, mean_p, var).flatten(1).sum(1)  # Ho et al. 2020, eq. 5

    def _decoder_log_likelihood(self, x0: Tensor, y: Tensor | None) -> Tensor:
        """log p(x_0 | x_1) per image: N(x0_hat, beta_1) integrated over each pixel's bin (eq. 13)."""
        t = torch.ones(len(x0), dtype=torch.long, device=x0.device)
        x1 = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        x0_hat = self.schedule.predict_x0(x1, t, self.eps(x1, t, y))  # mu_theta(x_1, 1), Ho et al. 2020, eq. 11
        std = self.schedule.betas[1].sqrt()
        return discretized_gaussian_log_likelihood(x0, x0_hat, std).flatten(1).sum(1)  # Ho et al. 2020, eq. 13

    # ------------------------------------------------------------------------- inpainting
    def inpaint(
        self,
        x: Tensor,
        known: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int = 25,
        resample: int = 10,
        eta: float = 1.0,
        clip: bool = True,
    ) -> Tensor:
        """Images (B, C, H, W) in [-1, 1] whose ``known`` pixels (bool, broadcast to x) are x's exactly
        and the rest filled by RePaint (Lugmayr et al. 2022, Algorithm 1; ``inpaint_trajectory``).

        steps: reverse steps, evenly spaced over T..0 as DDIM's (``NoiseSchedule.timesteps``).
        resample: U, the reverse steps taken from each time t to the next s: after each but the last
            the state jumps back from s to t by forward noise (``jump_back``), so the unknown region
            is denoised again in agreement with the known one. A fill costs (steps - 1) * U + 1
            network passes; U = 1 is plain replacement of the known region. The defaults, 241 passes
            (U = 10 as in Lugmayr et al.), fill 100 digits in about 2 minutes on 2 CPU cores.
        eta: the DDIM step's noise; 1 (the default) is the ancestral step for steps = T, which
            RePaint uses; 0 leaves only the jumps' noise.
        clip: clip each step's x0_hat to [-1, 1].
        A conditional model is run without a label (its "no label" class): the digit is not known.
        """
        for xt in self.inpaint_trajectory(
            x, known, generator=generator, steps=steps, resample=resample, eta=eta, clip=clip
        ):
            pass
        return torch.where(known, x, xt)  # the known pixels, exactly (x_0's known region already is x's)

    def inpaint_trajectory(
        self,
        x: Tensor,
        known: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int = 25,
        resample: int = 10,
        eta: float = 1.0,
        clip: bool = True,
    ) -> Iterator[Tensor]:
        """Yield x_T, then every state RePaint visits (jumps back included) down to x_0; options as in ``inpaint``."""
        times = self.schedule.timesteps(steps)
        xt = torch.randn(x.shape, generator=generator, device=self.device)  # x_T
        yield xt
        for t, s in zip(times[:-1], times[1:]):
            for u in range(resample if s > 0 else 1):  # no jump back from x_0 (Alg. 1: t > 1)
                xs = self.repaint_step(xt, t, s, x, known, generator, eta, clip)
                yield xs
                if u < resample - 1 and s > 0:
                    xt = self.jump_back(xs, s, t, generator)  # Lugmayr et al. 2022, Alg. 1, line 9
                    yield xt
            xt = xs

    def repaint_step(
        self, xt: Tensor, t: int, s: int, x0: Tensor, known: Tensor,
        generator: torch.Generator | None = None, eta: float = 1.0, clip: bool = True,
    ) -> Tensor:  # fmt: skip
        """x_t -> x_s (s < t): the known region drawn from q(x_s | x_0) of the known image, the unknown
        region by the model's reverse step (Lugmayr et al. 2022, Algorithm 1, lines 4-8)."""
        eps_known = torch.randn(x0.shape, generator=generator, device=self.device)
        x_known = self.schedule.q_sample(x0, s, eps_known)  # Lugmayr et al. 2022, Alg. 1, line 5
        with torch.no_grad():
            eps = self.eps(xt, torch.full((len(xt),), t, device=self.device))  # no label: unconditional
        noise = torch.randn(x0.shape, generator=generator, device=self.device)
        x_unknown = self.schedule.ddim_step(xt, t, s, eps, noise, eta, clip)  # Alg. 1, lines 6-7
        return torch.where(known, x_known, x_unknown)  # Lugmayr et al. 2022, Alg. 1, line 8

    def jump_back(self, xs: Tensor, s: int, t: int, generator: torch.Generator | None = None) -> Tensor:
        """x_s -> x_t (t > s) by the forward process, q(x_t | x_s) = N(sqrt(a) x_s, (1 - a) I) with
        a = alpha_bar_t / alpha_bar_s: eq. 2 of Ho et al. 2020 composed over the steps s+1..t."""
        a = self.schedule.alpha_bar[t] / self.schedule.alpha_bar[s]
        noise = torch.randn(xs.shape, generator=generator, device=xs.device)
        return a.sqrt() * xs + (1 - a).sqrt() * noise  # Lugmayr et al. 2022, Alg. 1, line 9
