"""Network blocks shared by several families: an MLP, a conv encoder and a conv decoder.

The conv pair is sized for small images (28x28 MNIST; 32x32 works too): the encoder halves the
resolution once per entry of ``channels`` (28 -> 14 -> 7 by default) and ends in a vector; the
decoder mirrors it from a vector back to an image-shaped tensor with any number of output channels
(pixel logits, mixture parameters, ...). What the numbers mean is the family's business:

- VAE: ``ConvEncoder`` -> posterior parameters, ``ConvDecoder`` -> likelihood parameters per pixel;
- GAN: ``nn.Sequential(ConvDecoder(...), nn.Tanh())`` as the generator, ``ConvEncoder(out_dim=1)``
  as the discriminator (``activation=lambda: nn.LeakyReLU(0.2)`` if wanted);
- EBM: ``ConvEncoder(out_dim=1)`` as the energy E(x) (SiLU keeps it smooth for Langevin sampling);
- flow: ``MLP`` or ``ConvEncoder`` as coupling-layer conditioners.

Each resolution has one 3x3 convolution and one stride-2 (transposed) convolution, with SiLU
activations and no normalisation layer: batch statistics would make a likelihood depend on the
other images in the batch. Families that need spectral norm (a GAN critic) wrap the layers.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

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
