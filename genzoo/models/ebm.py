"""Energy-based models trained by contrastive divergence with short-run Langevin dynamics (Du & Mordatch 2019).

A network assigns every input a scalar energy E(x); low energy means likely:

    p(x) = exp(-E(x)) / Z,   Z = integral of exp(-E(x)) over every possible x        (Du & Mordatch 2019, eq. 1)

Z sums over all 784-pixel images, so it cannot be computed and log p(x) is known only up to the
constant log Z: the family has no likelihood (``likelihood = "none"``) and ``log_prob`` is not defined.
Its gradient needs no Z, only samples from the model itself (the "negative" samples x-):

    grad log p(x+) = -grad E(x+) + E_{x- ~ p}[grad E(x-)]                          (Hinton 2002)

so training lowers the energy of data and raises the energy of the model's own samples:

    L = mean E(x+) - mean E(x-) + alpha mean(E(x+)^2 + E(x-)^2)      (Du & Mordatch 2019, sec. 2.2 and 3)

The squared-energy term keeps the energies near zero; without it they drift apart without bound.
Negative samples come from stochastic gradient Langevin dynamics (SGLD; Welling & Teh 2011), run
for a few dozen steps:

    x_{k+1} = x_k - step_size * clip(grad_x E(x_k)) + noise * z_k,   z_k ~ N(0, I)   (Du & Mordatch 2019, eq. 2)

With noise = sqrt(2 step_size) and no clipping this is Langevin dynamics for p(x); Du & Mordatch use a
large step and a small noise (10 and 0.005 on images), which samples exp(-E(x) / T) at a low
temperature T = noise^2 / (2 step_size): the trained energies adapt to that sampler.

Short chains mix only if they start somewhere useful: a replay buffer keeps the chains' end points,
and each training step restarts most chains where earlier ones stopped and a share ``restart`` from
uniform noise (Du & Mordatch 2019, sec. 3). ``ReplayBuffer`` holds them in a registered buffer, so
checkpoints keep it and training resumes with it. Class-conditional models read the network's C outputs as
logits f(x)[y] = -E(x, y) (Grathwohl et al. 2020), and each class keeps its own slots of the buffer
(slot i holds class i mod C). Each class is trained only against its own chains, which fits
p(x | y) = exp(f(x)[y]) / Z_y with a normalizer Z_y per class that training never ties to the others.
So the label-free energy -logsumexp_y f(x)[y] = -log sum_y Z_y p(x | y) is Grathwohl et al.'s marginal
energy -log p(x) + const only if all the Z_y are equal, which nothing here makes them: read it as a
label-free score, and softmax(f(x)) as p(y | x) only under the same proviso.

The energy is also an anomaly score: ``ood_auroc`` measures how well it separates in-distribution
images (MNIST) from others (FashionMNIST).

Files: the energy networks ``ConvEncoder`` (images) and ``MLP`` (2-D points), with ``with_spectral_norm``,
in ``genzoo/nn.py``; configs ``configs/ebm_mnist.toml`` and ``configs/ebm_ring.toml``; recipe
``train/ebm.py``; notebook ``notebooks/ebm.py``; tests ``tests/test_ebm.py``; record ``docs/ebm.md``;
exercises ``genzoo/exercises/ebm.py``.

References:
    Du & Mordatch 2019: Y. Du, I. Mordatch, "Implicit Generation and Generalization in Energy-Based Models"
        (NeurIPS 2019 as "Implicit Generation and Modeling with Energy Based Models"), arXiv:1903.08689.
    Hinton 2002: G. E. Hinton, "Training Products of Experts by Minimizing Contrastive Divergence",
        Neural Computation 14(8), 2002 (not on arXiv).
    Welling & Teh 2011: M. Welling, Y. W. Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics",
        ICML 2011 (not on arXiv).
    Grathwohl et al. 2020: W. Grathwohl et al., "Your Classifier is Secretly an Energy Based Model and You
        Should Treat it Like One", arXiv:1912.03263.
    Miyato et al. 2018: T. Miyato et al., "Spectral Normalization for Generative Adversarial Networks",
        arXiv:1802.05957.
    Du et al. 2021: Y. Du, S. Li, J. Tenenbaum, I. Mordatch, "Improved Contrastive Divergence Training of
        Energy Based Models", arXiv:2012.01316.

Not here:
    an estimate of Z or of log p(x) (e.g. annealed importance sampling): no likelihood, no bits/dim.
    a Metropolis-Hastings correction (MALA): the chains are unadjusted, biased by their step size.
    schedules of the SGLD step or noise: both are fixed for every step of every chain.
    the KL term through the sampler, data augmentation and multi-scale energies of Du et al. 2021.
    JEM's hybrid training (Grathwohl et al. 2020): no cross-entropy term on p(y | x) for conditional models.
    other ways to fit an energy without sampling (score matching, noise-contrastive estimation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from genzoo.errors import ConfigError
from genzoo.metrics import auroc
from genzoo.model import Batch, GenerativeModel, cycle_labels, optimize
from genzoo.nn import MLP, ConvEncoder, with_spectral_norm
from genzoo.specs import ImageSpec, PointSpec


@dataclass
class EBMConfig:
    channels: tuple[int, ...] = (16, 32, 64)  # images: conv energy network widths at 14, 7 and 3 pixels
    hidden: int = 128  # 2-D points: width of the MLP energy network
    depth: int = 3  # 2-D points: hidden layers of the MLP
    spectral_norm: bool = False  # spectral normalization of every layer (Miyato et al. 2018): a smoother E
    conditional: bool = False  # E(x, y) = -f(x)[y] from C outputs, one part of the buffer per class
    alpha: float = 0.1  # weight of the energy regularizer alpha (E(x+)^2 + E(x-)^2)
    sgld_steps: int = 40  # Langevin steps per training step
    step_size: float = 10.0  # SGLD step on the (clipped) energy gradient
    noise: float = 0.005  # standard deviation of the SGLD noise
    sgld_clip: float = 0.03  # clip each coordinate of grad_x E to [-clip, clip] inside SGLD; 0: no clipping
    buffer_size: int = 8192  # replay buffer of past chain end points
    restart: float = 0.05  # share of chains restarted from uniform noise at each training step
    init_range: float = 0.0  # chains start uniform in [-r, r]; 0: 1 for images ([-1, 1]), 1.5 for points


# ----------------------------------------------------------------------------- the energy networks


def energy_network(cfg: EBMConfig, spec: ImageSpec | PointSpec, outputs: int) -> nn.Module:
    """A conv net (images) or an MLP (2-D points) with ``outputs`` numbers per input, SiLU throughout:
    a smooth E has a smooth gradient, which is all Langevin dynamics sees."""
    if isinstance(spec, PointSpec):
        net = MLP(spec.dim, cfg.hidden, outputs, cfg.depth)
    else:
        net = ConvEncoder(spec.shape[0], outputs, tuple(cfg.channels), spec.shape[-1])
    return with_spectral_norm(net) if cfg.spectral_norm else net


# ----------------------------------------------------------------------------- the replay buffer


class ReplayBuffer(nn.Module):
    """The end points of past SGLD chains, where training chains start again (Du & Mordatch 2019, sec. 3).

    ``chains`` (N, *data_shape) is a registered buffer: in the state_dict, so a resumed run continues
    the same chains. Uniform noise in [-init_range, init_range] at first; each training step restarts
    a share ``restart`` of its chains from fresh noise. Class-conditional models give each class its
    own slots: slot i holds class i mod C. Only ``write`` changes the buffer.
    """

    def __init__(self, size: int, data_shape: Sequence[int], init_range: float, restart: float, num_classes: int = 0):
        super().__init__()
        self.data_shape, self.init_range = tuple(data_shape), init_range
        self.restart, self.num_classes = restart, num_classes  # num_classes 0: unconditional
        chains = (2 * torch.rand(size, *self.data_shape) - 1) * init_range
        self.register_buffer("chains", chains)  # (N, *data_shape)

    @property
    def per_class(self) -> int:
        return len(self.chains) // max(1, self.num_classes)

    def uniform_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n starting points, uniform in [-init_range, init_range] in every coordinate."""
        u = torch.rand((n, *self.data_shape), generator=generator, device=self.chains.device)
        return (2 * u - 1) * self.init_range  # (n, *data_shape)

    def class_slots(self, slot: Tensor, y: Tensor | None) -> Tensor:
        """Slot numbers within a class (n,) -> buffer slots; slot i belongs to class i mod C."""
        return y + self.num_classes * slot if self.num_classes else slot

    def chain_starts(
        self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Where n training chains start: random slots (of class y[i] for conditional models), a share
        ``restart`` of them replaced by fresh noise. Returns x (n, ...), slots (n,), fresh (n,) bool."""
        device = self.chains.device
        slot = self.class_slots(torch.randint(self.per_class, (n,), generator=generator, device=device), y)
        fresh = torch.rand(n, generator=generator, device=device) < self.restart  # (n,)
        fresh_ = fresh.view(-1, *[1] * len(self.data_shape))  # broadcasts over one example's shape
        x = torch.where(fresh_, self.uniform_noise(n, generator), self.chains[slot])
        return x, slot, fresh

    def entries(self, n: int, y: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """n distinct random entries (with repeats only if n exceeds a class's slots), a copy."""
        device = self.chains.device
        if n <= self.per_class:
            slot = torch.randperm(self.per_class, generator=generator, device=device)[:n]
        else:
            slot = torch.randint(self.per_class, (n,), generator=generator, device=device)
        return self.chains[self.class_slots(slot, y)].clone()  # (n, *data_shape)

    def write(self, slot: Tensor, x: Tensor) -> None:
        """The chains continue from x (n, ...) next time: the end points go back to their slots."""
        self.chains[slot] = x


# ----------------------------------------------------------------------------- the model


class EBM(GenerativeModel):
    """``EBM(energy_net)``: the energy network, its SGLD sampler and the replay buffer of its chains."""

    family = "ebm"
    likelihood = "none"  # the normalizer Z = integral of exp(-E(x)) dx is intractable
    Config = EBMConfig

    def __init__(
        self,
        energy_net: nn.Module,
        data_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 0,
        cfg: EBMConfig | None = None,
        clamp: bool = True,
    ):
        super().__init__()
        cfg = cfg or EBMConfig()
        self.energy_net, self.data_shape = energy_net, tuple(data_shape)  # one example's shape
        self.num_classes = num_classes  # 0: unconditional
        self.clamp = clamp  # images: keep chains inside the pixel range [-1, 1]
        self.alpha, self.sgld_steps = cfg.alpha, cfg.sgld_steps
        self.step_size, self.noise, self.sgld_clip = cfg.step_size, cfg.noise, cfg.sgld_clip
        init_range = cfg.init_range or (1.0 if clamp else 1.5)
        self.replay = ReplayBuffer(cfg.buffer_size, self.data_shape, init_range, cfg.restart, num_classes)

    @classmethod
    def from_config(cls, cfg: EBMConfig, spec: ImageSpec | PointSpec) -> "EBM":
        if not isinstance(spec, (ImageSpec, PointSpec)):
            raise ConfigError(f"EBM models images or 2-D points, not {spec.name}")
        if cfg.conditional and spec.num_classes < 1:
            raise ConfigError(f"model.conditional = true needs labelled data; {spec.name} has no classes")
        if not 0 <= cfg.restart <= 1:
            raise ConfigError(f"model.restart is a share of the chains, between 0 and 1; got {cfg.restart}")
        num_classes = spec.num_classes if cfg.conditional else 0
        if cfg.buffer_size < max(1, num_classes):
            raise ConfigError(f"model.buffer_size must hold at least one chain per class, got {cfg.buffer_size}")
        net = energy_network(cfg, spec, num_classes or 1)
        shape = spec.shape if isinstance(spec, ImageSpec) else (spec.dim,)
        return cls(net, shape, num_classes, cfg, clamp=isinstance(spec, ImageSpec))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def device(self) -> torch.device:
        return self.replay.chains.device  # every EBM has a buffer, not every energy network has parameters

    def energy(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """(B,) energies: E(x) of an unconditional model; E(x, y) = -f(x)[y], or without y the label-free
        score -logsumexp_y f(x)[y] (not -log p(x): the Z_y differ, see above), of a conditional one."""
        out = self.energy_net(x)  # (B, C) or (B, 1)
        if not self.num_classes:
            return out[:, 0]
        if y is None:
            return -out.logsumexp(dim=1)
        return -out.gather(1, y[:, None])[:, 0]

    # ------------------------------------------------------------------------- Langevin dynamics
    def langevin_step(
        self, x: Tensor, y: Tensor | None, step_size: float, noise: float, generator: torch.Generator | None = None
    ) -> Tensor:
        """One SGLD step downhill on E, with noise; the gradient is taken w.r.t. the input, not the weights."""
        with torch.enable_grad():  # also inside torch.no_grad(): sampling needs grad_x E
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x, y).sum(), x)  # (B, *data_shape)
        if self.sgld_clip > 0:
            grad = grad.clamp(-self.sgld_clip, self.sgld_clip)  # no single pixel takes a giant step
        z = torch.randn(x.shape, generator=generator, device=x.device)
        x = x.detach() - step_size * grad + noise * z  # Du & Mordatch 2019, eq. 2
        return x.clamp(-1, 1) if self.clamp else x

    def run_chains(self, x: Tensor, y: Tensor | None, steps: int) -> Tensor:
        """``steps`` SGLD steps with the training step size and noise; returns the end points, detached."""
        for _ in range(steps):
            x = self.langevin_step(x, y, self.step_size, self.noise)
        return x.detach()

    # ------------------------------------------------------------------------- loss and training
    def contrastive_loss(
        self, x_pos: Tensor, x_neg: Tensor, y: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Contrastive divergence with the energy regularizer, per example, in units of energy."""
        e_pos, e_neg = self.energy(x_pos, y), self.energy(x_neg, y)  # (B,), (B,)
        cd = e_pos.mean() - e_neg.mean()  # Du & Mordatch 2019, sec. 2.2: its gradient estimates -grad log p(x+)
        reg = (e_pos**2).mean() + (e_neg**2).mean()  # Du & Mordatch 2019, sec. 3: keeps energies near 0
        loss = cd + self.alpha * reg
        metrics = {
            "loss": loss.item(),
            "cd": cd.item(),
            "reg": reg.item(),
            "energy_data": e_pos.mean().item(),
            "energy_sample": e_neg.mean().item(),
        }
        return loss, metrics

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The training loss on fresh chains from the buffer, which it reads but never writes
        (validation must not move the training chains)."""
        x_pos, y = batch
        y = y if self.num_classes else None
        x_start, _, _ = self.replay.chain_starts(len(x_pos), y)
        return self.contrastive_loss(x_pos, self.run_chains(x_start, y, self.sgld_steps), y)

    def training_step(
        self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], step: int, clip: float
    ) -> dict[str, float]:
        """Negatives by SGLD from the buffer (Du & Mordatch 2019, Algorithm 1), written back, then one update."""
        x_pos, y = batch
        y = y if self.num_classes else None
        x_start, slot, _ = self.replay.chain_starts(len(x_pos), y)
        x_neg = self.run_chains(x_start, y, self.sgld_steps)  # (B, *data_shape)
        self.replay.write(slot, x_neg)  # the persistent chains continue from here next time
        loss, metrics = self.contrastive_loss(x_pos, x_neg, y)
        metrics["grad_norm"] = optimize(optimizers["main"], loss, clip)
        return metrics

    # ------------------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        mcmc_steps: int = -1,
        from_buffer: bool = True,
        step_size: float = -1.0,
        noise: float = -1.0,
        labels: Sequence[int] | Tensor = (),
    ) -> Tensor:
        """``n`` samples, images (n, C, H, W) in [-1, 1] or points (n, D): the end of SGLD chains.

        mcmc_steps: Langevin steps; negative (the default): the training chains' ``sgld_steps``.
        from_buffer: start from random replay-buffer entries (chains training has already run far,
            the EBM's best samples) rather than from uniform noise (short-run samples from scratch).
            The buffer is read, never written.
        step_size, noise: SGLD's step and noise; negative (the default): the training values.
        labels: conditional models only; repeated to length n (``[3]``: only threes); the default
            cycles through the classes. Chains from the buffer start in that class's slots.
        """
        for x in self.trajectory(
            n, generator=generator, mcmc_steps=mcmc_steps, from_buffer=from_buffer,
            step_size=step_size, noise=noise, labels=labels,
        ):  # fmt: skip
            pass
        return x

    def trajectory(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        mcmc_steps: int = -1,
        from_buffer: bool = True,
        step_size: float = -1.0,
        noise: float = -1.0,
        labels: Sequence[int] | Tensor = (),
    ) -> Iterator[Tensor]:
        """Yield the chains' starting points, then the state after each SGLD step; options as in ``sample``."""
        steps = self.sgld_steps if mcmc_steps < 0 else mcmc_steps
        step_size = self.step_size if step_size < 0 else step_size
        noise = self.noise if noise < 0 else noise
        y = cycle_labels(n, labels, self.num_classes, "EBM", self.device)
        x = self.replay.entries(n, y, generator) if from_buffer else self.replay.uniform_noise(n, generator)
        yield x
        for _ in range(steps):
            x = self.langevin_step(x, y, step_size, noise, generator)
            yield x.detach()

    # ------------------------------------------------------------------------- anomaly detection
    def anomaly_score(self, x: Tensor) -> Tensor:
        """(B,) E(x), or the label-free -logsumexp_y f(x)[y] of a conditional model (``genzoo.anomaly``):
        training pushes the data's energy down, so a high energy is unusual (Du & Mordatch 2019, sec. 4.3)."""
        return self.energy(x)

    # ------------------------------------------------------------------------- inpainting
    def inpaint(
        self,
        x: Tensor,
        known: Tensor,
        *,
        generator: torch.Generator | None = None,
        mcmc_steps: int = 200,
        step_size: float = -1.0,
        noise: float = -1.0,
        start: str = "noise",
    ) -> Tensor:
        """Images (B, C, H, W) whose ``known`` pixels (bool, broadcast to x) are x's exactly and the rest
        filled by Langevin dynamics on the unknown pixels only (``inpaint_trajectory``).

        Holding the known pixels fixed and moving the others by SGLD on E samples p(x_unknown | x_known),
        which is proportional to exp(-E(x)) with the known pixels in place: no normalizer is needed.
        mcmc_steps: Langevin steps (the training chains take ``sgld_steps``, from the replay buffer;
            starting from scratch needs more).
        step_size, noise: SGLD's step and noise; negative (the default): the training values.
        start: where the unknown pixels start: "noise", uniform like a restarted training chain, or
            "background", all -1 (blank).
        A conditional model uses its label-free energy (see ``energy``): the digit is not known.
        """
        for state in self.inpaint_trajectory(
            x, known, generator=generator, mcmc_steps=mcmc_steps, step_size=step_size, noise=noise, start=start
        ):
            pass
        return state

    def inpaint_trajectory(
        self,
        x: Tensor,
        known: Tensor,
        *,
        generator: torch.Generator | None = None,
        mcmc_steps: int = 200,
        step_size: float = -1.0,
        noise: float = -1.0,
        start: str = "noise",
    ) -> Iterator[Tensor]:
        """Yield the starting images, then the images after each masked SGLD step; options as in ``inpaint``."""
        if start not in ("noise", "background"):
            raise ValueError(f"start must be 'noise' or 'background', got {start!r}")
        step_size = self.step_size if step_size < 0 else step_size
        noise = self.noise if noise < 0 else noise
        begin = self.replay.uniform_noise(len(x), generator) if start == "noise" else torch.full_like(x, -1.0)
        state = torch.where(known, x, begin)
        yield state
        for _ in range(mcmc_steps):
            state = self.masked_langevin_step(state, known, step_size, noise, generator)
            yield state

    def masked_langevin_step(
        self, x: Tensor, known: Tensor, step_size: float, noise: float, generator: torch.Generator | None = None
    ) -> Tensor:
        """One SGLD step of the unknown pixels, with E's gradient at the whole image; the known ones stay."""
        return torch.where(known, x, self.langevin_step(x, None, step_size, noise, generator)).detach()


# ----------------------------------------------------------------------------- out-of-distribution scores


def energy_scores(model: EBM, images: Tensor, batch_size: int = 500) -> Tensor:
    """(N,) energies E(x) (the label-free score for conditional models): the anomaly score, high = unusual."""
    scores = []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            scores.append(model.energy(chunk.to(model.device)).float().cpu())
    return torch.cat(scores)


def ood_auroc(model: EBM, in_images: Tensor, out_images: Tensor, batch_size: int = 500) -> float:
    """AUROC of the energy separating ``out_images`` (should score high) from ``in_images``: the
    probability that a random outlier has a higher energy than a random inlier (0.5: chance, 1: perfect)."""
    return auroc(energy_scores(model, in_images, batch_size), energy_scores(model, out_images, batch_size))
