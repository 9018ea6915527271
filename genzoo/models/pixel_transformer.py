"""An autoregressive image model: a decoder-only transformer over the pixels of a digit in raster order.

Each pixel is one of 256 levels, read off the image as its uint8 value (``genzoo.pixels.to_uint8``).
The model factorises the probability of the whole 8-bit image x_1 .. x_D (D = H W = 784) by the chain
rule over pixels, left to right, top to bottom, with nothing assumed away:

    log p(x) = sum_{i=1}^{D} log p(x_i | x_1 .. x_{i-1})              (van den Oord et al. 2016, eq. 1)
    p(x_i = k | x_<i) = softmax(logits_i)_k,  k = 0 .. 255             (van den Oord et al. 2016: 256-way softmax)

so log p(x) is exact, in nats of the discrete image, and bits/dim = -log p(x) / (D ln 2) means the
same as every other family's on the same test set. The loss is the mean cross-entropy per pixel,

    L = -1/(B D) sum_{b,i} log softmax(logits_{b,i})[x_{b,i}]   nats per pixel;  bits/dim = L / ln 2.

The input sequence is [start, x_1 .. x_{D-1}] and the targets x_1 .. x_D, so p(x_1) is modelled too
(a start-of-sequence token, as in iGPT, Chen et al. 2020). The start token is number 256 (unconditional)
or 256 + y for a class-conditional model (``conditional = true``), which then models p(x | y); it has an
embedding table of its own. Positions: rotary (the LM's RoPE, ``genzoo.models.transformer``) over the
sequence, so attention sees relative offsets (W tokens back is the pixel above), plus learned row and
column embeddings that say where on the canvas a pixel is (MNIST's borders are always 0), in the spirit of
the Image Transformer's 2-D positions (Parmar et al. 2018).

Grouped pixels (``group = g > 1``, a two-level exact factorisation in the manner of MEGABYTE,
Yu et al. 2023): the global transformer runs over D/g tokens, token j holding the g pixels of patch
j - 1 (g consecutive pixels of a row, embedded as the sum of one table per pixel of the patch, the same
as MEGABYTE's concatenation followed by a linear map); its output h_j conditions a small local transformer that
predicts patch j's pixels one after the other,

    p(x) = prod_j prod_{k=1}^{g} p(x_{j,k} | x_{patches < j}, x_{j,<k})            (Yu et al. 2023, sec. 2)

still exact. Attention costs (D/g)^2 instead of D^2, and every layer of the global model sees g times
fewer tokens (the patch above is W/g tokens back); ``group = 1`` is the plain model (no local
transformer). On 2 CPU cores group 7 trained twice as many images per second as the plain model and
reached 1.02 bits/dim on the full test set in 20 minutes (docs/pixel.md has the numbers).

Sampling draws the pixels one after the other. A key-value cache (``KVCache`` of the LM) keeps the
global transformer's keys and values, so each new token is run alone (the start token first) instead
of rerunning the prefix; the local transformer reruns its g slots, which are few.

Files:
- networks: the global and local transformers are the LM's ``Block`` and ``rotary_angles``, imported
  from genzoo/models/transformer.py; the embeddings, the local stack and the head are in this file
- config: configs/pixel_mnist.toml; recipe: train/pixel.py; tests: tests/test_pixel_transformer.py;
  record: docs/pixel.md

References:
- van den Oord et al. 2016, "Pixel Recurrent Neural Networks" (PixelRNN/PixelCNN), arXiv:1601.06759
- Chen et al. 2020, "Generative Pretraining from Pixels" (iGPT), ICML 2020
- Parmar et al. 2018, "Image Transformer", arXiv:1802.05751
- Yu et al. 2023, "MEGABYTE: Predicting Million-byte Sequences with Multiscale Transformers",
  arXiv:2305.07185
- Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding", arXiv:2104.09864

Not here:
- colour: one channel only (MNIST, FashionMNIST); PixelCNN's channel ordering R -> G -> B is not
  implemented
- convolutions, PixelCNN's masked kernels and blind-spot fix, or the Image Transformer's local 2-D
  attention blocks: plain causal attention over the whole prefix
- the discretised logistic mixture output (PixelCNN++): a full 256-way softmax per pixel
- log p(x) of a class-conditional model without its label (a sum over the 10 classes): like the
  conditional VAE, ``log_prob`` asks for y
- inpainting: a raster-order model conditions each pixel on the pixels before it only
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import ConfigError
from genzoo.model import Batch, GenerativeModel, cycle_labels
from genzoo.models.transformer import Block, KVCache, TransformerConfig, init_gpt2, rotary_angles
from genzoo.pixels import LEVELS, from_uint8, to_uint8
from genzoo.specs import ImageSpec


@dataclass
class PixelTransformerConfig:
    """Defaults: the 2-core CPU setting of configs/pixel_mnist.toml (the numbers are in docs/pixel.md)."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    group: int = 7  # pixels per token of the global transformer (1: one token per pixel); divides the width
    local_layers: int = 2  # layers of the local transformer inside a group (group > 1 only)
    local_embd: int = 64
    local_head: int = 2
    rotary: bool = True  # RoPE over the token sequence: relative offsets
    canvas: bool = True  # learned row and column embeddings: where on the image a token is
    rope_base: float = 10000.0
    dropout: float = 0.0
    bias: bool = False
    conditional: bool = False  # model p(x | y): the start token names the class


def check_config(cfg: PixelTransformerConfig, spec: ImageSpec) -> None:
    """Fail early, naming the key to change, on settings the networks cannot be built with."""
    C, H, W = spec.shape
    if C != 1:
        raise ConfigError(f"the pixel transformer models one-channel images; {spec.name} has {C} channels")
    if cfg.group < 1 or W % cfg.group:
        raise ConfigError(f"model.group ({cfg.group}) must divide the image width ({W})")
    if cfg.n_embd % cfg.n_head or (cfg.rotary and (cfg.n_embd // cfg.n_head) % 2):
        raise ConfigError(f"model.n_embd / model.n_head must be a whole (even, with rotary) number, "
                          f"got {cfg.n_embd} / {cfg.n_head}")
    if cfg.group > 1 and (cfg.local_embd % cfg.local_head or cfg.local_layers < 1):
        raise ConfigError("with model.group > 1, model.local_embd must be a multiple of model.local_head "
                          "and model.local_layers at least 1")
    if cfg.conditional and spec.num_classes < 1:
        raise ConfigError(f"model.conditional = true needs labelled data; {spec.name} has no classes")


def blocks(n_layer: int, n_embd: int, n_head: int, block_size: int, cfg: PixelTransformerConfig) -> nn.ModuleList:
    """n_layer of the LM's pre-LN causal Blocks at this width."""
    block_cfg = TransformerConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                                  dropout=cfg.dropout, bias=cfg.bias)
    return nn.ModuleList(Block(block_cfg) for _ in range(n_layer))


class PixelTransformer(GenerativeModel):
    """Raster-order transformer over 8-bit pixels. Batches are (images (B, 1, H, W) in [-1, 1], labels (B,))."""

    family = "pixel"
    likelihood = "exact"
    Config = PixelTransformerConfig

    def __init__(self, cfg: PixelTransformerConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        self.cfg, self.image_shape = cfg, tuple(image_shape)
        _, H, W = image_shape
        g, C = cfg.group, cfg.n_embd
        self.n_tokens = H * W // g  # N: tokens of the global transformer
        self.num_classes = num_classes  # 0: unconditional
        self.level_embedding = nn.Embedding(g * LEVELS, C)  # a table per pixel of a patch, 256 rows each
        self.register_buffer("offsets", torch.arange(g) * LEVELS, persistent=False)  # pixel k's rows start at k 256
        self.start_embedding = nn.Embedding(max(1, num_classes), C)  # token 256 (+ y); a table of its own
        if cfg.canvas:
            self.row_embedding = nn.Embedding(H, C)
            self.col_embedding = nn.Embedding(W // g, C)
            self.register_buffer("rows", torch.arange(self.n_tokens) // (W // g), persistent=False)
            self.register_buffer("cols", torch.arange(self.n_tokens) % (W // g), persistent=False)
        if cfg.rotary:  # derived from the config, so not saved: persistent=False
            cos, sin = rotary_angles(self.n_tokens, C // cfg.n_head, cfg.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = blocks(cfg.n_layer, C, cfg.n_head, self.n_tokens, cfg)
        self.ln_out = nn.LayerNorm(C, bias=cfg.bias)
        width = C
        if g > 1:  # the local transformer inside a patch (Yu et al. 2023)
            width = cfg.local_embd
            self.to_local = nn.Linear(C, width, bias=cfg.bias)
            self.local_level_embedding = nn.Embedding(LEVELS, width)
            self.local_start = nn.Parameter(torch.zeros(width))  # the slot before a patch's first pixel
            self.local_offset = nn.Embedding(g, width)  # which pixel of the patch
            self.local_blocks = blocks(cfg.local_layers, width, cfg.local_head, g, cfg)
            self.ln_local = nn.LayerNorm(width, bias=cfg.bias)
        self.head = nn.Linear(width, LEVELS, bias=False)  # 256 logits per pixel
        init_gpt2(self, cfg.n_layer)  # the LM's initialisation; the local blocks' projections scaled alike

    @classmethod
    def from_config(cls, cfg: PixelTransformerConfig, spec: ImageSpec) -> "PixelTransformer":
        check_config(cfg, spec)
        return cls(cfg, spec.shape, spec.num_classes if cfg.conditional else 0)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    # ------------------------------------------------------------------------- networks

    def levels(self, x: Tensor) -> Tensor:
        """Images (B, 1, H, W) in [-1, 1] -> their 8-bit levels in raster order, (B, D) int64."""
        return to_uint8(x).long().flatten(1)

    def global_inputs(self, levels: Tensor, y: Tensor | None, start: int = 0, stop: int = 0) -> Tensor:
        """The global transformer's inputs [start token, patch 1, .., patch N-1] (+ canvas positions),
        tokens start .. stop - 1 of them (default: all N): (B, stop - start, C).

        levels: (B, D) in raster order; token j holds patch j - 1, so the last patch is never read (it
        is only predicted), and tokens < stop read only the pixels of patches < stop - 1.
        """
        B, g, stop = len(levels), self.cfg.group, stop or self.n_tokens
        parts = []
        if start == 0:  # token 256 (+ y): the class, or nothing, before the first pixel
            first = torch.zeros(B, dtype=torch.long, device=levels.device) if y is None else y
            parts.append(self.start_embedding(first)[:, None])  # (B, 1, C)
        if stop > max(start, 1):
            patches = levels[:, (max(start, 1) - 1) * g : (stop - 1) * g].view(B, -1, g)  # (B, T, g)
            parts.append(self.level_embedding(patches + self.offsets).sum(2))  # (B, T, C): sum over its g pixels
        h = torch.cat(parts, dim=1)  # (B, stop - start, C)
        if self.cfg.canvas:  # token j predicts patch j: its row and column on the canvas
            h = h + self.row_embedding(self.rows[start:stop]) + self.col_embedding(self.cols[start:stop])
        return h

    def global_forward(self, h: Tensor, cache: KVCache | None = None) -> Tensor:
        """The causal global transformer over inputs (B, T, C): outputs (B, T, C), the t-th seeing inputs
        0..t only, i.e. the start token and patches < t. With a ``cache`` (sampling), h holds the tokens
        after those already in it, from position ``cache.position`` on: their keys and values are kept."""
        start, T = (cache.position if cache is not None else 0), h.shape[1]
        rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T]) if self.cfg.rotary else None
        for i, block in enumerate(self.blocks):
            h = block(h, rope, cache.layers[i] if cache is not None else None)  # (B, T, C)
        return self.ln_out(h)

    def local_logits(self, h: Tensor, levels: Tensor) -> Tensor:
        """Logits (B, T, g, 256) of the pixels of patches 0..T-1 from the global outputs h (B, T, C) and
        those patches' levels (B, T, g): pixel k of a patch sees h and the patch's pixels < k only."""
        if self.cfg.group == 1:
            return self.head(h)[:, :, None]  # (B, T, 1, 256): the plain model
        B, T, g = levels.shape
        prev = self.local_level_embedding(levels[:, :, :-1])  # (B, T, g-1, c): pixel k-1 feeds slot k
        prev = torch.cat([self.local_start.expand(B, T, 1, -1), prev], dim=2)  # (B, T, g, c)
        u = self.to_local(h)[:, :, None] + prev + self.local_offset.weight  # (B, T, g, c)
        u = u.flatten(0, 1)  # (B T, g, c): each patch its own short sequence
        for block in self.local_blocks:
            u = block(u, None)  # causal within the patch; local_offset gives positions
        return self.head(self.ln_local(u)).view(B, T, g, LEVELS)

    def forward(self, levels: Tensor, y: Tensor | None = None) -> Tensor:
        """Logits (B, D, 256) for levels (B, D): logits[:, i] is p(x_i | x_<i [, y]), before the softmax."""
        h = self.global_forward(self.global_inputs(levels, y))  # (B, N, C)
        B = len(levels)
        return self.local_logits(h, levels.view(B, self.n_tokens, -1)).view(B, -1, LEVELS)

    def _labels(self, y: Tensor | None, n: int) -> Tensor | None:
        if not self.conditional:
            return None
        if y is None:
            raise ValueError("this pixel transformer is class-conditional: pass the labels y (B,) as well")
        return torch.as_tensor(y, dtype=torch.long, device=self.device).view(n)

    # ------------------------------------------------------------------------- loss, log_prob

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Mean cross-entropy in nats per pixel (the L of the docstring); bits/dim in the metrics."""
        x, y = batch
        levels = self.levels(x)  # (B, D)
        logits = self(levels, self._labels(y, len(x)))  # (B, D, 256)
        loss = F.cross_entropy(logits.flatten(0, 1), levels.flatten())  # nats per pixel
        nats = loss.item()
        return loss, {"loss": nats, "nats_per_pixel": nats, "bits_per_dim": nats / math.log(2)}

    def log_prob(self, x: Tensor, *, y: Tensor | None = None, chunk: int = 100) -> Tensor:
        """(B,) exact log p(x) in nats of the 8-bit image (van den Oord et al. 2016, eq. 1).

        x: images (B, 1, H, W) in [-1, 1], read as their nearest 8-bit levels.
        y: labels (B,), class-conditional models only: then it is log p(x | y).
        chunk: the most images per forward pass (memory); the result does not depend on it.
        bits/dim = -log_prob / (D ln 2). Gradients flow if grad mode is on.
        """
        y = self._labels(y, len(x))
        out = []
        for i in range(0, len(x), chunk):
            levels = self.levels(x[i : i + chunk])  # (b, D)
            log_p = F.log_softmax(self(levels, None if y is None else y[i : i + chunk]), dim=-1)  # (b, D, 256)
            out.append(log_p.gather(-1, levels[..., None]).squeeze(-1).sum(1))  # chain rule: sum over pixels
        return torch.cat(out)

    # ------------------------------------------------------------------------- sampling

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        labels: Sequence[int] | Tensor = (),
        temperature: float = 1.0,
        kv_cache: bool = True,
    ) -> Tensor:
        """``n`` images (n, 1, H, W) in [-1, 1], drawn pixel by pixel in raster order.

        labels: class-conditional models only; repeated to length n, so ``[3]`` draws only threes and
            the default (empty) cycles through the classes 0, 1, ..., C-1, 0, 1, ...
        temperature: divides the logits before each pixel's softmax; < 1 gives cleaner, less varied
            digits; 0 takes the most probable level of every pixel (greedy).
        kv_cache: keep the global transformer's keys and values (``KVCache``) and run each new token
            alone: one pass over the image in all; False reruns the whole prefix for every token
            (D / group passes of growing length). Both compute the same logits up to float rounding
            (~1e-6), so the same generator gives the same images except where a uniform number falls
            within rounding of a CDF step (1 of 100 trained samples differed, from its pixel 178 on);
            docs/pixel.md has the times.
        Each pixel is drawn by inverting its CDF at one uniform number from ``generator``: one number per
        pixel whatever the probabilities, so the two ways of computing them use the same stream.
        """
        for x in self.trajectory(n, generator=generator, labels=labels, temperature=temperature, kv_cache=kv_cache):
            pass
        return x

    def trajectory(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        labels: Sequence[int] | Tensor = (),
        temperature: float = 1.0,
        kv_cache: bool = True,
        every: int = 1,
    ) -> Iterator[Tensor]:
        """Yields the images (n, 1, H, W) after every ``every``-th token's pixels are drawn (pixels not
        yet drawn are -1, black); the last is the finished sample. Same options as ``sample``, which
        returns the last of these."""
        y = cycle_labels(n, labels, self.num_classes, "pixel transformer", self.device)
        g, N = self.cfg.group, self.n_tokens
        levels = torch.zeros(n, N, g, dtype=torch.long, device=self.device)  # (n, N, g)
        cache = KVCache(self.cfg.n_layer, N) if kv_cache else None  # N tokens fit: no sliding window
        for j in range(N):
            # no_grad closes before the yield: a grad mode held open across a yield would leak
            with torch.no_grad():
                if cache is not None:  # token j alone (the start token first), attending to the cache
                    h = self.global_forward(self.global_inputs(levels.view(n, -1), y, j, j + 1), cache)  # (n, 1, C)
                else:  # tokens 0..j, the whole prefix run again
                    h = self.global_forward(self.global_inputs(levels.view(n, -1), y, 0, j + 1))[:, -1:]
                for k in range(g):  # the local transformer, one pixel after the other
                    logits = self.local_logits(h, levels[:, j : j + 1])[:, 0, k]  # (n, 256)
                    levels[:, j, k] = self._pick(logits, generator, temperature)
            if (j + 1) % every == 0 or j == N - 1:
                yield from_uint8(levels.view(n, *self.image_shape))

    @staticmethod
    def _pick(logits: Tensor, generator: torch.Generator | None, temperature: float) -> Tensor:
        """One level per row of logits (n, 256): greedy at temperature 0, else the inverse CDF of
        softmax(logits / temperature) at a uniform u."""
        if temperature <= 0:
            return logits.argmax(dim=-1)  # (n,)
        cdf = F.softmax(logits.float() / temperature, dim=-1).cumsum(dim=-1)  # (n, 256)
        u = torch.rand(len(logits), 1, generator=generator, device=logits.device)  # (n, 1)
        return (cdf < u * cdf[:, -1:]).sum(dim=-1).clamp(max=LEVELS - 1)  # (n,) the first k with CDF >= u
