"""Text-to-image in miniature: latent diffusion (Rombach et al. 2022) in a trained VAE's latent space,
conditioned on a character-level text encoder through cross-attention, with classifier-free guidance.

Stable Diffusion joins three parts, and genzoo has taught each on its own:

    autoencoder   a trained genzoo VAE (vae.py), frozen: its encoder maps an image x to q(z|x), its
                  decoder a latent z back to an image. 16 numbers per digit instead of 784 pixels.
    diffusion     ddpm.py's noise schedule and update rules (DDPM and DDIM), run on z instead of x.
    text encoder  the LM's transformer ``Block`` (transformer.py) over the characters of a prompt,
                  causal like CLIP's text encoder (Radford et al. 2021, sec. 2.4).

Training, on a digit x with label y (Rombach et al. 2022, eq. 2, and Ho et al. 2020, eq. 14):

    z_0 ~ q(z | x)                          the frozen VAE's posterior (K&W 2014, eq. 10)
    c   = tau(caption of y)                 (B, L, d): a training phrasing of y (``genzoo/prompts.py``),
                                            replaced by the empty prompt with probability p_uncond
                                            (Ho & Salimans 2022, Algorithm 1)
    L   = E_{t, eps} || eps - eps_theta(sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps, t, c) ||^2

The network F is an MLP over z's residual stream h; each block reads the prompt by cross-attention,
the query from h, keys and values from the text (Rombach et al. 2022, sec. 3.3), and F is added to
the best noise estimate for N(0, I) codes (a skip as in Karras et al. 2022, sec. 5; ``LatentDiffusion.eps``):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,  Q = W_Q h,  K = W_K c,  V = W_V c
    eps_theta(z_t, t, c) = sqrt(1 - alpha_bar_t) z_t + F(z_t, t, c)

Sampling starts from z_T ~ N(0, I), takes ddpm.py's steps with the guided noise estimate

    eps_hat = eps(z_t, t, empty) + s (eps(z_t, t, c) - eps(z_t, t, empty))   (Ho & Salimans 2022, eq. 6,
                                                                               with their w = s - 1)

and decodes z_0 to the mean image of the VAE's p(x | z_0). ``guidance`` is s, Stable Diffusion's scale:
s = 0 is the unconditional model, s = 1 the conditional model as trained, s > 1 pushes further from the
unconditional model toward the prompt (ddpm.py's ``guidance`` is w = s - 1).

Why the linear schedule (Ho et al. 2020), not the cosine one: pixels have a range, latents do not.
A DDIM step from t to s computes x0_hat = (z_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) and puts
sqrt(alpha_bar_s) x0_hat into z_s, so an error in eps reaches z_s multiplied by about
sqrt(alpha_bar_s / alpha_bar_t). The cosine schedule ends at alpha_bar_T = 2.4e-9 (beta_T clipped at
0.999): the first of 50 steps multiplies the error by 632. DDPM on pixels survives it because x0_hat
is clipped to [-1, 1]; a latent has no range to clip to, and its samples blew up. The linear
schedule's first step multiplies it by 1.2.

Why the VAE's z needs no scale factor: Stable Diffusion multiplies its latents by 0.18215 because its
autoencoder's KL weight is tiny, so its codes are far from unit variance. genzoo's VAE is trained on
the full ELBO (beta = 1), whose KL term pulls the codes of the training digits toward N(0, I): their
per-dimension variances are of order 1 (the notebook printed 0.63 to 2.04), the scale DDPM's
schedule assumes.

Files: ``genzoo/prompts.py`` (captions from labels; training and held-out phrasings); config
``configs/ldm_mnist.toml``; recipe ``train/text_to_image.py`` (trains the VAE first when there is none);
benchmark ``bench/text_to_image.py``; notebook ``notebooks/text_to_image.py``; tests
``tests/test_latent_diffusion.py``; record ``docs/text_to_image.md``.

References:
    Rombach et al. 2022: R. Rombach, A. Blattmann, D. Lorenz, P. Esser, B. Ommer, "High-Resolution Image
        Synthesis with Latent Diffusion Models", CVPR 2022, arXiv:2112.10752.
    Ho et al. 2020: J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239.
    Ho & Salimans 2022: J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", arXiv:2207.12598.
    Radford et al. 2021: A. Radford et al., "Learning Transferable Visual Models From Natural Language
        Supervision" (CLIP), arXiv:2103.00020.
    Karras et al. 2022: T. Karras, M. Aittala, T. Aila, S. Laine, "Elucidating the Design Space of
        Diffusion-Based Generative Models", arXiv:2206.00364.
    Vahdat et al. 2021: A. Vahdat, K. Kreis, J. Kautz, "Score-based Generative Modeling in Latent Space"
        (LSGM), arXiv:2106.05931.
    K&W 2014: D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114.

Not here:
    a likelihood: the VAE's bound and the diffusion's bound on z do not add up to a bound on log p(x)
        without more work (Vahdat et al. 2021, LSGM), so ``likelihood = "none"``.
    a spatial latent (Stable Diffusion's 4 x 64 x 64) and a U-Net over it: the VAE's latent is a vector.
    a pretrained text encoder (CLIP, T5): this one learns from ten digits' captions, jointly with the
        denoiser, so it knows only the words of those captions.
    training the autoencoder and the diffusion together: the VAE is trained first and frozen, as in
        Rombach et al. 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import CheckpointError, ConfigError
from genzoo.model import Batch, GenerativeModel
from genzoo.models.ddpm import SAMPLERS, NoiseSchedule
from genzoo.models.transformer import Block, TransformerConfig, init_gpt2, rotary_angles
from genzoo.models.vae import VAE
from genzoo.nn import TimeLabelEmbedding
from genzoo.prompts import BOS, PAD, TRAINING_PHRASINGS, VOCAB, WORDS, caption_table, encode_prompts, training_captions
from genzoo.specs import ImageSpec


@dataclass
class LatentDiffusionConfig:
    autoencoder: str = "runs/vae_mnist"  # a genzoo VAE run folder (unconditional), trained first and frozen
    timesteps: int = 1000  # T; the schedule is ddpm.py's linear one (the module docstring says why not cosine)
    width: int = 128  # the denoiser's residual stream (defaults: configs/ldm_mnist.toml's 2-core CPU setting)
    depth: int = 4  # denoiser blocks, each cross-attention then an MLP
    heads: int = 4  # cross-attention heads
    text_layers: int = 2  # the text encoder's transformer blocks
    text_width: int = 64
    text_heads: int = 4
    prompt_length: int = 32  # the longest prompt, in characters
    prompt_dropout: float = 0.1  # p_uncond: how often training drops the prompt (classifier-free guidance)


# ----------------------------------------------------------------------------- the autoencoder


def load_autoencoder(run: str, spec: ImageSpec) -> VAE:
    """The trained VAE of the run folder ``run`` (its EMA weights where kept), frozen; one-line errors."""
    from genzoo.checkpoint import load_model  # here: genzoo.checkpoint imports the family registry

    hint = f"train one first: genzoo train configs/vae_mnist.toml --out {run} (train/text_to_image.py does)"
    if not (Path(run).expanduser() / "last.pt").is_file():
        raise ConfigError(f"model.autoencoder: no trained VAE at {run!r} (no last.pt); {hint}")
    try:
        vae, cfg, vae_spec = load_model(Path(run).expanduser())
    except CheckpointError as err:
        raise ConfigError(f"model.autoencoder: {err}") from None
    if cfg.family != "vae" or vae.conditional:
        kind = "class-conditional VAE" if cfg.family == "vae" else f"{cfg.family} model"
        raise ConfigError(f"model.autoencoder: {run} holds a {kind}; latent diffusion needs an unconditional VAE")
    if tuple(vae_spec.shape) != tuple(spec.shape):
        raise ConfigError(f"model.autoencoder: {run}'s VAE models {vae_spec.shape} images, the data is {spec.shape}")
    return vae.requires_grad_(False).eval()


# ----------------------------------------------------------------------------- the text encoder


class TextEncoder(nn.Module):
    """Caption ids (B, L) -> (B, L, d): an embedding, the LM's causal ``Block``s with rotary positions, a
    final LayerNorm. Causal, so the padding after a caption never changes the caption's own outputs."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        cos, sin = rotary_angles(cfg.block_size, cfg.n_embd // cfg.n_head, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        init_gpt2(self, cfg.n_layer)

    def forward(self, ids: Tensor) -> Tensor:
        T = ids.shape[1]
        h = self.embedding(ids)  # (B, T, d)
        for block in self.blocks:
            h = block(h, (self.rope_cos[:T], self.rope_sin[:T]))
        return self.ln_f(h)  # (B, T, d)


# ----------------------------------------------------------------------------- the denoiser


class CrossAttention(nn.Module):
    """Queries from the latent's stream h (B, N, D), keys and values from the text c (B, L, d); the
    padding after each caption is masked out (``keep`` (B, L), True for a real token)."""

    def __init__(self, dim: int, text_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)  # W_Q
        self.key_value = nn.Linear(text_dim, 2 * dim)  # W_K and W_V at once
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: Tensor, text: Tensor, keep: Tensor) -> Tensor:
        B, N, D = h.shape
        q = self.query(h).view(B, N, self.heads, D // self.heads).transpose(1, 2)  # (B, H, N, D/H)
        k, v = self.key_value(text).view(B, -1, 2 * self.heads, D // self.heads).transpose(1, 2).chunk(2, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])  # Rombach et al. 2022, sec. 3.3
        return self.proj(y.transpose(1, 2).reshape(B, N, D))  # (B, N, D)


class DenoiserBlock(nn.Module):
    """Pre-LN residual block: cross-attention to the prompt, then an MLP that also sees the time."""

    def __init__(self, dim: int, text_dim: int, heads: int, time_dim: int):
        super().__init__()
        self.ln_attn = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, text_dim, heads)
        self.ln_mlp = nn.LayerNorm(dim)
        self.time = nn.Linear(time_dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, h: Tensor, emb: Tensor, text: Tensor, keep: Tensor) -> Tensor:
        h = h + self.attn(self.ln_attn(h), text, keep)
        return h + self.mlp(self.ln_mlp(h) + self.time(emb)[:, None])


class Denoiser(nn.Module):
    """F(z_t, t, c), eps_theta's learned part: (B, D) latents, (B,) times, text (B, L, d), its mask -> (B, D)."""

    def __init__(self, latent_dim: int, width: int, depth: int, heads: int, text_dim: int):
        super().__init__()
        self.embedding = TimeLabelEmbedding(width // 4)  # sinusoidal t through an MLP: (B, width)
        self.inp = nn.Linear(latent_dim, width)
        self.blocks = nn.ModuleList(DenoiserBlock(width, text_dim, heads, width) for _ in range(depth))
        self.out = nn.Linear(width, latent_dim)  # no LayerNorm before it: at large t, eps ~ z_t, scale and all
        nn.init.zeros_(self.out.weight)  # F starts at 0: eps_theta starts as the best estimate for N(0, I) codes
        nn.init.zeros_(self.out.bias)

    def forward(self, zt: Tensor, t: Tensor, text: Tensor, keep: Tensor) -> Tensor:
        emb = self.embedding(t, None)  # (B, width)
        h = self.inp(zt)[:, None]  # (B, 1, width): one query token per latent
        for block in self.blocks:
            h = block(h, emb, text, keep)
        return self.out(h[:, 0])  # (B, D)


# ----------------------------------------------------------------------------- the model


class LatentDiffusion(GenerativeModel):
    """``LatentDiffusion(autoencoder, text_encoder, denoiser, schedule)``: prompt in, image out."""

    family = "ldm"
    likelihood = "none"
    Config = LatentDiffusionConfig

    def __init__(
        self,
        autoencoder: VAE,
        text_encoder: TextEncoder,
        denoiser: Denoiser,
        schedule: NoiseSchedule,
        prompt_length: int = 32,
        prompt_dropout: float = 0.1,
    ):
        super().__init__()
        self.autoencoder = autoencoder.requires_grad_(False)  # frozen: its weights are in the state_dict, unchanged
        self.text_encoder, self.denoiser, self.schedule = text_encoder, denoiser, schedule
        self.prompt_length, self.prompt_dropout = prompt_length, prompt_dropout
        table, counts = caption_table(TRAINING_PHRASINGS, prompt_length)  # made from the code, so not saved
        self.register_buffer("captions", table, persistent=False)  # (10, K, L+1)
        self.register_buffer("caption_counts", counts, persistent=False)  # (10,)

    @classmethod
    def from_config(cls, cfg: LatentDiffusionConfig, spec: ImageSpec) -> "LatentDiffusion":
        if not isinstance(spec, ImageSpec) or spec.name != "mnist":
            raise ConfigError("latent diffusion's captions describe digits: it trains on data.name = \"mnist\"")
        for width, heads in (("width", "heads"), ("text_width", "text_heads")):
            if getattr(cfg, width) % (2 * getattr(cfg, heads)):
                raise ConfigError(f"model.{width} must be a multiple of 2 * model.{heads}, got "
                                  f"{getattr(cfg, width)} and {getattr(cfg, heads)}")
        autoencoder = load_autoencoder(cfg.autoencoder, spec)
        text_cfg = TransformerConfig(
            n_layer=cfg.text_layers, n_head=cfg.text_heads, n_embd=cfg.text_width,
            block_size=cfg.prompt_length + 1, vocab_size=len(VOCAB),
        )  # fmt: skip
        text_encoder = TextEncoder(text_cfg)
        denoiser = Denoiser(autoencoder.latent_dim, cfg.width, cfg.depth, cfg.heads, cfg.text_width)
        schedule = NoiseSchedule.linear(cfg.timesteps)
        return cls(autoencoder, text_encoder, denoiser, schedule, cfg.prompt_length, cfg.prompt_dropout)

    @property
    def T(self) -> int:
        return self.schedule.T

    @property
    def latent(self) -> str:
        return f"the VAE's z in R^{self.autoencoder.latent_dim}; z_T through deterministic DDIM"

    def encode_text(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Caption ids (B, L+1) -> the text encoder's output (B, l, d) and the mask of real tokens (B, l), cut
        after the longest caption (l <= L+1): the padding is masked out anyway, and it would cost time.
        Each distinct caption is encoded once (a batch of 128 has at most 99 distinct training captions)."""
        ids = ids[:, : int((ids != PAD).sum(1).max())]
        distinct, index = torch.unique(ids, dim=0, return_inverse=True)
        return self.text_encoder(distinct)[index], ids != PAD

    def empty_prompts(self, n: int) -> Tensor:
        """(n, L+1) ids of the empty prompt: the start token alone, what training puts in a dropped prompt's place."""
        ids = torch.full((n, self.prompt_length + 1), PAD, dtype=torch.long, device=self.device)
        ids[:, 0] = BOS
        return ids

    def eps(self, zt: Tensor, t: Tensor, text: Tensor, keep: Tensor) -> Tensor:
        """The noise estimate eps_theta(z_t, t, c) = sqrt(1 - alpha_bar_t) z_t + F(z_t, t, c), (B, D).

        For codes distributed as N(0, I), which the VAE's KL term pulls them toward, the best estimate of
        eps is exactly sqrt(1 - alpha_bar_t) z_t, so the network F (``Denoiser``, starting at 0) learns only
        what the digits and the prompt add to it. Without this skip, at large t (eps almost z_t) a small
        network's error was ~10 times that estimate's, and x0_hat = (z_t - sqrt(1 - alpha_bar_t) eps) /
        sqrt(alpha_bar_t) multiplies it by up to 1 / sqrt(alpha_bar_T) = 157: the samples drifted far from
        N(0, I). The skip is Karras et al. 2022's c_skip (sec. 5) in its simplest form.
        """
        skip = (1 - self.schedule.at(self.schedule.alpha_bar, t, zt)).sqrt() * zt  # (B, D)
        return skip + self.denoiser(zt, t, text, keep)

    # ------------------------------------------------------------------------- loss
    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """L_simple on the latents: squared error of the noise estimate, averaged over z's dimensions and examples."""
        x, y = batch
        B = len(x)
        with torch.no_grad():
            mu, log_var = self.autoencoder.encode(x)  # (B, D) each
            z0 = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)  # z_0 ~ q(z|x), K&W 2014, eq. 10
        ids = training_captions(y, self.captions, self.caption_counts)  # (B, L+1) a phrasing of each label
        dropped = torch.rand(B, device=x.device) < self.prompt_dropout  # Ho & Salimans 2022, Algorithm 1
        ids = torch.where(dropped[:, None], self.empty_prompts(B), ids)
        t = torch.randint(1, self.T + 1, (B,), device=x.device)  # t ~ Uniform{1, ..., T}
        eps = torch.randn_like(z0)
        zt = self.schedule.q_sample(z0, t, eps)  # Ho et al. 2020, eq. 4
        error = (eps - self.eps(zt, t, *self.encode_text(ids))) ** 2  # Ho et al. 2020, eq. 14
        per_example = error.mean(1)  # (B,)
        loss = per_example.mean()
        metrics = {
            "loss": loss.item(),
            "mse_prompted": per_example[~dropped].mean().item() if (~dropped).any() else 0.0,
            "mse_dropped": per_example[dropped].mean().item() if dropped.any() else 0.0,
        }
        return loss, metrics

    # ------------------------------------------------------------------------- sampling
    def guided_eps(self, zt: Tensor, t: int, text: Tensor, keep: Tensor, guidance: float) -> Tensor:
        """eps_hat at the int time t for latents zt (n, D). ``text`` (2n, l, d) and ``keep`` (2n, l) are the
        encoded prompts, then n empty prompts; s = 1 needs only the first half, other s one pass of both."""
        n = len(zt)
        time = torch.full((2 * n,), t, device=zt.device)
        if guidance == 1:
            return self.eps(zt, time[:n], text[:n], keep[:n])
        eps_prompt, eps_empty = self.eps(torch.cat([zt, zt]), time, text, keep).chunk(2)
        return eps_empty + guidance * (eps_prompt - eps_empty)  # Ho & Salimans 2022, eq. 6 with w = s - 1

    @property
    def conditional(self) -> bool:
        return True  # ``labels=`` draws digits by their names, as ``genzoo synthetic`` asks

    def prompts_for(self, n: int, prompt: str | Sequence[str], labels: Sequence[int] | Tensor = ()) -> list[str]:
        """``prompt`` for all n samples, or a list of prompts repeated to length n; or ``labels`` (digits),
        each as its name ("seven"), repeated to length n; neither: the ten digits' names in turn."""
        digits = torch.as_tensor(labels, dtype=torch.long).view(-1).tolist()
        if digits and (prompt or isinstance(prompt, str)):
            raise ConfigError("give a prompt or labels, not both")
        if not all(0 <= d <= 9 for d in digits):
            raise ConfigError(f"labels must be digits 0..9, got {digits}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        prompts = prompts or [WORDS[d] for d in digits] or list(WORDS)
        return (prompts * math.ceil(n / len(prompts)))[:n]

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: str | Sequence[str] = (),
        guidance: float = 3.0,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        labels: Sequence[int] | Tensor = (),
    ) -> Tensor:
        """``n`` images (n, C, H, W) in [-1, 1] of ``prompt``: z_T ~ N(0, I), the reverse process, the VAE's decoder.

        prompt: a caption for every sample ("a seven", "the number after six"); a list of captions,
            repeated to length n; or none (the default): the names "zero" ... "nine" in turn. Letters,
            digits and spaces, at most ``prompt_length`` characters.
        guidance: the scale s of classifier-free guidance: 0 the unconditional model (the prompt is
            ignored), 1 the conditional model as trained, larger s more faithful to the prompt and less varied.
        sampler: "ddim", ``steps`` steps of DDIM (Song et al. 2021), or "ddpm", all T ancestral steps.
        steps: DDIM only: network evaluations (two per step when s is not 1: one with, one without the prompt).
        eta: DDIM only: 0 is deterministic given z_T.
        labels: instead of a prompt, digits (repeated to length n), each prompted by its name: ``[7]`` is "seven".
        """
        options = dict(prompt=prompt, guidance=guidance, sampler=sampler, steps=steps, eta=eta, labels=labels)
        for z in self.trajectory(n, generator=generator, **options):
            pass
        with torch.no_grad():
            return self.autoencoder.decode(z)  # the mean image of p(x | z_0)

    def trajectory(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: str | Sequence[str] = (),
        guidance: float = 3.0,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        labels: Sequence[int] | Tensor = (),
    ) -> Iterator[Tensor]:
        """Yield the latents z_T, then each z_t the sampler visits down to z_0, (n, D) each (the VAE's
        ``decode`` turns any of them into images); options as in ``sample``."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        times = self.schedule.timesteps(self.T if sampler == "ddpm" else steps)  # every step for DDPM
        ids = encode_prompts(self.prompts_for(n, prompt, labels), self.prompt_length).to(self.device)
        with torch.no_grad():  # once for all steps: the prompts, then the empty prompt
            text, keep = self.encode_text(torch.cat([ids, self.empty_prompts(n)]))  # (2n, l, d), (2n, l)
        z = torch.randn((n, self.autoencoder.latent_dim), generator=generator, device=self.device)  # z_T
        yield z
        for t, s in zip(times[:-1], times[1:]):
            with torch.no_grad():
                eps = self.guided_eps(z, t, text, keep, guidance)
            noise = torch.randn(z.shape, generator=generator, device=self.device)
            if sampler == "ddpm":  # no clipping: x0_hat's clip to [-1, 1] is for pixels, not latents
                z = self.schedule.ddpm_step(z, t, eps, noise, clip=False)
            else:
                z = self.schedule.ddim_step(z, t, s, eps, noise, eta, clip=False)
            yield z
