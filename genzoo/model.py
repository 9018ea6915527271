"""The one interface every generative family implements.

A family is an ``nn.Module`` that wraps its networks (``VAE(encoder, decoder)``,
``TransformerLM(cfg)``, ...) and exposes:

- ``loss(batch) -> (scalar, metrics)``: a per-example mean in stated units, parts named in metrics;
- ``training_step(batch, optimizers, step, clip)``: one update (default: ``loss`` + ``optimize``);
- ``sample(n, *, generator=None, **options)``: new data, options documented per family;
- ``log_prob(x)``: nats per example of the discrete data, where the family has a likelihood.
- ``inpaint(x, known, *, generator=None, **options)``: x's known pixels kept exactly, the rest filled
  (image families; ``genzoo/inpaint.py``).

The trainer only ever calls these methods, so it never needs to know which family it is training.
Grad mode is each family's business: nothing here is decorated with ``torch.no_grad``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import torch
from torch import Tensor, nn

from genzoo import distributed

Batch = tuple[Tensor, Tensor]  # images and labels, or token ids and next-token targets


@dataclass
class OptimConfig:
    """The optimizer settings a family needs to build its optimizers (a view of ``TrainConfig``)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)


def optimize(optimizer: torch.optim.Optimizer, loss: Tensor, clip: float = 1.0) -> float:
    """zero_grad, backward, average the gradients over data-parallel processes (``genzoo.distributed``;
    nothing in one process), clip the global gradient norm (``clip <= 0``: no clipping), step.

    Returns the gradient norm before clipping, the number worth watching for instability. When the loss
    or a gradient is not finite the update is skipped (the weights and the optimizer's moments are left
    as they were) and nan is returned: the trainer counts these and stops a run that keeps diverging.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    mean_loss = distributed.average_gradients(params, loss)
    max_norm = clip if clip > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    if not (math.isfinite(grad_norm) and math.isfinite(mean_loss)):
        optimizer.zero_grad(set_to_none=True)
        return math.nan
    optimizer.step()
    return grad_norm


def adamw(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and kernels only: biases and norm gains are not decayed."""
    decay = [p for p in params if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in params if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def cycle_labels(
    n: int, labels: Sequence[int] | Tensor, num_classes: int, family: str, device: torch.device
) -> Tensor | None:
    """Class labels for ``n`` samples of a class-conditional model: ``labels`` repeated to length n,
    or 0, 1, ..., C-1, 0, 1, ... when none are given; None for an unconditional model."""
    labels = torch.as_tensor(labels, dtype=torch.long).view(-1)
    if not num_classes:
        if len(labels):
            raise ValueError(f"labels given to an unconditional {family} (train with model.conditional = true)")
        return None
    if not len(labels):
        labels = torch.arange(num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
    return labels.repeat(math.ceil(n / len(labels)))[:n].to(device)  # (n,)


class GenerativeModel(nn.Module):
    """Base class of every family. Subclasses set ``family``, ``likelihood`` and ``Config``."""

    family: ClassVar[str]
    likelihood: str = "none"  # "exact" (lm; flow on points) | "bound" (vae, ddpm; flow on 8-bit images) | "none" (gan, ebm)
    Config: ClassVar[type]  # the family's model-config dataclass, filled from a TOML [model] table

    @classmethod
    def from_config(cls, cfg: Any, spec: Any) -> "GenerativeModel":
        """Build the networks from the family's config and the data's spec (shape, classes, vocab)."""
        raise NotImplementedError

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Per-example mean loss (a scalar with grad) and its named parts as plain floats."""
        raise NotImplementedError

    def configure_optimizers(self, cfg: OptimConfig) -> dict[str, torch.optim.Optimizer]:
        """One AdamW over all parameters; families with several players return one per player."""
        return {"main": adamw(list(self.parameters()), cfg)}

    def training_step(
        self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], step: int, clip: float
    ) -> dict[str, float]:
        """One update. Default: ``loss`` then one step of the single optimizer."""
        loss, metrics = self.loss(batch)
        metrics["grad_norm"] = optimize(optimizers["main"], loss, clip)
        return metrics

    def evaluate(self, batch: Batch) -> dict[str, float]:
        """Validation metrics of one batch; default: the training loss's metrics without gradients."""
        with torch.no_grad():
            _, metrics = self.loss(batch)
        return metrics

    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """``n`` new examples: images in [-1, 1] of shape (n, C, H, W), or token ids (n, T)."""
        raise NotImplementedError

    def trajectory(self, n: int, **options: Any) -> Iterator[Tensor]:
        """Intermediate states of sampling (x_t, an SGLD chain, tokens so far), where a family has them."""
        raise NotImplementedError(f"{self.family} has no sampling trajectory")

    def inpaint(
        self, x: Tensor, known: Tensor, *, generator: torch.Generator | None = None, **options: Any
    ) -> Tensor:
        """Images like ``x`` (B, C, H, W) whose ``known`` pixels (bool, broadcast to x) are x's exactly and
        the rest filled by the model (``genzoo/inpaint.py``); image families only."""
        raise NotImplementedError(f"{self.family} does not inpaint: the image families do")

    def log_prob(self, x: Tensor) -> Tensor:
        """(B,) log-likelihood in nats per example of the discrete data (8-bit images or token ids)."""
        raise NotImplementedError(
            f"{self.family} has no tractable likelihood (likelihood = {self.likelihood!r})"
        )

    def anomaly_score(self, x: Tensor, **options: Any) -> Tensor:
        """(B,) how unusual each x is, higher = more unusual (``genzoo.anomaly``): -log p(x) in nats,
        ``options`` going to ``log_prob``, where the family has a likelihood; the GAN and the EBM, which
        have none, override this with what they do have (minus the discriminator's logit; the energy)."""
        return -self.log_prob(x, **options)

    def checkpoint_score(self, metrics: dict[str, float], sample_quality: float | None) -> float | None:
        """What makes a checkpoint ``best.pt``: lower is better; None keeps none. ``metrics`` are the
        validation metrics, ``sample_quality`` the data's ranking of the samples (``Data.sample_quality``).

        A family with a likelihood (exact or a bound) is best where its held-out loss is lowest. A
        family without one (GAN, EBM) has a loss that says nothing about its samples (D's loss falls
        when D wins; the EBM's contrastive loss sits near zero whatever its samples look like), so its
        best checkpoint is the one whose samples the data ranks highest, and where the data ranks
        none (images: the evaluator is too slow to run at every evaluation), there is no ``best.pt``.
        """
        if self.likelihood != "none":
            return metrics["loss"]
        return None if sample_quality is None else -sample_quality

    @property
    def conditional(self) -> bool:
        """Whether ``sample`` can be told which class to draw (``labels=``)."""
        return False

    @property
    def latent(self) -> str:
        """The latent space a user can encode into, edit or walk through, in words; "" when there is none."""
        return ""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
