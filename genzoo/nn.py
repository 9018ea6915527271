"""Network blocks shared by several families: an MLP, a conv encoder and decoder, a U-Net, spectral norm.

The conv pair is sized for small images (28x28 MNIST; 32 and 64 work too, grey or colour): the encoder halves the
resolution once per entry of ``channels`` (28 -> 14 -> 7 by default) and ends in a vector; the
decoder mirrors it from a vector back to an image-shaped tensor with any number of output channels
(pixel logits, mixture parameters, ...). What the numbers mean is the family's business:

- VAE: ``ConvEncoder`` -> posterior parameters, ``ConvDecoder`` -> likelihood parameters per pixel;
- EBM: ``ConvEncoder(out_dim=1)`` (images) or ``MLP`` (2-D points) as the energy E(x) (SiLU keeps
  it smooth for Langevin sampling);
- flow: ``MLP`` as the coupling conditioner of the 2-D flow (the image flow's conditioners are
  zero-initialised 3x3-1x1-3x3 convolutions in ``flow.py``);
- GAN: ``MLP`` generator and discriminator for 2-D points; the image networks are DCGAN's and live in
  ``gan.py``, as they need batch norm in G and a features/head split in D for the projection;
- DDPM: ``UNet`` (images) or ``TimeMLP`` (2-D points) as the noise predictor eps(x_t, t, y);
- GAN and EBM: ``with_spectral_norm`` on the discriminator or the energy network (``spectral_norm``
  in each config) divides each weight by its largest singular value: a linear layer becomes 1-Lipschitz,
  a convolution only roughly (its reshaped kernel's norm does not bound the convolution's; see gan.py).

Each resolution has one 3x3 convolution and one stride-2 (transposed) convolution, with SiLU
activations and no normalisation layer: batch statistics would make a likelihood depend on the
other images in the batch.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from genzoo import distributed

Activation = Callable[[], nn.Module]


class MLP(nn.Module):
    """(B, in_dim) -> (B, out_dim) through ``depth`` hidden layers of width ``hidden``."""

    def __init__(
        self, in_dim: int, hidden: int, out_dim: int, depth: int = 2, activation: Activation = nn.SiLU
    ):
        super().__init__()
        widths = [in_dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), activation()]
        layers.append(nn.Linear(widths[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvEncoder(nn.Module):
    """(B, C, H, W) image -> (B, out_dim) vector. H and W must be divisible by 2 ** len(channels).

    Each entry of ``channels`` is one resolution: a stride-2 4x4 convolution halves the side and
    sets the width, a 3x3 convolution follows; one linear map then reads the final feature map.
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        channels: tuple[int, ...] = (32, 64),
        image_size: int = 28,
        activation: Activation = nn.SiLU,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for prev, width in zip((in_channels,) + tuple(channels[:-1]), channels):
            layers += [
                nn.Conv2d(prev, width, 4, stride=2, padding=1), activation(),
                nn.Conv2d(width, width, 3, padding=1), activation(),
            ]  # fmt: skip
        side = image_size // 2 ** len(channels)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(channels[-1] * side * side, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, out_dim)


class ConvDecoder(nn.Module):
    """(B, in_dim) vector -> (B, out_channels, H, W): the mirror image of ``ConvEncoder``.

    A linear map makes a (channels[0], H/2^n, W/2^n) feature map (n = len(channels)); each entry of
    ``channels`` is one resolution: a 3x3 convolution, then a stride-2 4x4 transposed convolution
    that doubles the side and sets the next width, the last one ``out_channels`` numbers per pixel
    with no activation (logits, means: whatever the family reads them as).
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        channels: tuple[int, ...] = (64, 32),
        image_size: int = 28,
        activation: Activation = nn.SiLU,
    ):
        super().__init__()
        self.shape = (channels[0], image_size // 2 ** len(channels), image_size // 2 ** len(channels))
        self.project = nn.Sequential(nn.Linear(in_dim, channels[0] * self.shape[1] ** 2), activation())
        layers: list[nn.Module] = []
        for prev, width in zip(channels, tuple(channels[1:]) + (out_channels,)):
            layers += [
                nn.Conv2d(prev, prev, 3, padding=1), activation(),
                nn.ConvTranspose2d(prev, width, 4, stride=2, padding=1), activation(),
            ]  # fmt: skip
        self.layers = nn.Sequential(*layers[:-1])  # no activation after the last layer

    def forward(self, h: Tensor) -> Tensor:
        x = self.project(h).view(-1, *self.shape)  # (B, C0, H/2^n, W/2^n)
        return self.layers(x)  # (B, out_channels, H, W)


# ---------------------------------------------------------------------------------------------
# Denoisers for diffusion: a small U-Net for images and a time-conditioned MLP for 2-D points.
# Both take (x_t, t, y) and return a tensor shaped like x_t (the predicted noise, for DDPM).
# Labels y are integers 0..num_classes, the last one meaning "no label" (classifier-free guidance).


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """(B,) timesteps -> (B, dim) sines and cosines of geometric frequencies (Vaswani et al. 2017, sec. 3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)  # (dim/2,)
    angles = t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class TimeLabelEmbedding(nn.Module):
    """(t, y) -> (B, dim): a sinusoidal embedding of t through an MLP, plus a learned label embedding."""

    def __init__(self, dim: int, num_classes: int = 0):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, 4 * dim))
        self.labels = nn.Embedding(num_classes + 1, 4 * dim) if num_classes else None  # +1: "no label"
        self.out_dim = 4 * dim

    def forward(self, t: Tensor, y: Tensor | None) -> Tensor:
        emb = self.mlp(sinusoidal_embedding(t, self.dim))  # (B, 4 dim)
        if self.labels is not None:
            if y is None:
                raise ValueError("this denoiser is class-conditional: pass labels y (B,) (num_classes = no label)")
            emb = emb + self.labels(y)
        return emb


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, plus the time embedding; twice; and a residual connection."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Sequential(group_norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.conv2 = nn.Sequential(
            group_norm(out_channels), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(x) + self.emb(emb)[:, :, None, None]  # (B, C_out, H, W)
        return self.skip(x) + self.conv2(h)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm, self.heads = group_norm(channels), heads
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).view(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, C/heads)
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """(B, C, H, W) x_t, (B,) t, (B,) y -> (B, C, H, W). Ronneberger et al. 2015, as in Ho et al. 2020.

    One residual block per resolution on the way down and one on the way up (reading the skip of
    its resolution), the side halving between entries of ``channels`` (28 -> 14 -> 7 for three); in the middle,
    at the lowest resolution, residual block, self-attention, residual block. The last convolution
    starts at zero, so an untrained denoiser predicts zero noise.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, ...] = (32, 64, 64),
        num_classes: int = 0,
        attention: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embedding = TimeLabelEmbedding(channels[0], num_classes)
        emb = self.embedding.out_dim
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        for i, width in enumerate(channels):
            self.down.append(ResBlock(prev, width, emb, dropout))
            last = i == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(width, width, 3, stride=2, padding=1))
            prev = width
        self.mid1 = ResBlock(prev, prev, emb, dropout)
        self.attention = SelfAttention(prev) if attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, emb, dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, width in reversed(list(enumerate(channels))):
            self.up.append(ResBlock(prev + width, width, emb, dropout))  # reads the skip of its resolution
            self.upsample.append(nn.Upsample(scale_factor=2, mode="nearest") if i else nn.Identity())
            prev = width
        self.conv_out = nn.Sequential(group_norm(prev), nn.SiLU(), nn.Conv2d(prev, in_channels, 3, padding=1))
        nn.init.zeros_(self.conv_out[-1].weight)
        nn.init.zeros_(self.conv_out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.embedding(t, y)  # (B, E)
        h, skips = self.conv_in(x), []
        for block, downsample in zip(self.down, self.downsample):
            h = block(h, emb)
            skips.append(h)
            h = downsample(h)
        h = self.mid2(self.attention(self.mid1(h, emb)), emb)  # (B, C_last, H/2^(n-1), W/2^(n-1))
        for block, upsample in zip(self.up, self.upsample):
            h = upsample(block(torch.cat([h, skips.pop()], dim=1), emb))
        return self.conv_out(h)  # (B, C, H, W)


class TimeMLP(nn.Module):
    """(B, D) x_t, (B,) t, (B,) y -> (B, D): an MLP on x_t next to the time (and label) embedding."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, num_classes: int = 0):
        super().__init__()
        self.embedding = TimeLabelEmbedding(32, num_classes)
        self.net = MLP(dim + self.embedding.out_dim, hidden, dim, depth)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(torch.cat([x, self.embedding(t, y)], dim=1))


# ---------------------------------------------------------------------------------------------
# Spectral normalisation (Miyato et al. 2018): every layer's weight divided by its largest singular value.


class SpectralNorm(nn.Module):
    """The parametrization W -> W / sigma(W), sigma the largest singular value (Miyato et al. 2018).

    In training, each call takes one step of power iteration on the buffer u (Miyato et al. 2018,
    Algorithm 1). In eval mode sigma is exact (an SVD of a small matrix): the trainer's EMA copy
    averages u over training, and an average of unit vectors is neither unit nor a singular vector.
    """

    def __init__(self, weight: Tensor):
        super().__init__()
        self.register_buffer("u", F.normalize(torch.randn(weight.shape[0]), dim=0))

    def forward(self, weight: Tensor) -> Tensor:
        W = weight.flatten(1)  # (out, in * kernel): convolutions as matrices, as Miyato et al. do
        if not self.training:
            return weight / torch.linalg.matrix_norm(W, ord=2)
        with torch.no_grad():
            v = F.normalize(W.t() @ self.u, dim=0)  # (in,)
            self.u.copy_(F.normalize(W @ v, dim=0))  # (out,)
        sigma = self.u.clone() @ W @ v  # Miyato et al. 2018, Algorithm 1; u, v are constants for autograd
        return weight / sigma


def with_spectral_norm(module: nn.Module) -> nn.Module:
    """Every linear, convolutional and embedding layer of ``module`` divided by its spectral norm."""
    for layer in [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding))]:
        parametrize.register_parametrization(layer, "weight", SpectralNorm(layer.weight))
    return module


def global_batch(x: Tensor) -> Tensor:
    """The batch of every data-parallel process, concatenated in rank order (``x`` itself in one
    process): what a data-dependent initialisation (the flow's ActNorm) must see, so that processes
    holding different slices of one global batch start from the same statistics as one process would."""
    return distributed.all_gather_rows(x)
