"""A character-level GPT: a decoder-only transformer language model.

The model factorises the probability of a string x_1 .. x_T into next-character predictions

    log p(x_2 .. x_T | x_1) = sum_{t=1}^{T-1} log p(x_{t+1} | x_1 .. x_t)          (chain rule)

and is trained by maximum likelihood: the loss is the mean cross-entropy of each next character,

    L = -1/(B T) sum_{b,t} log softmax(logits_{b,t})[target_{b,t}]   nats per character,

reported as well in bits per character (L / ln 2), the unit char-level LMs are compared in.

Each of the n_layer blocks is pre-LayerNorm (Radford et al. 2019, GPT-2, sec. 2.3):

    h = h + Attention(LN(h))        Attention = softmax(Q K^T / sqrt(d) + causal mask) V
    h = h + MLP(LN(h))              MLP = W_2 GELU(W_1 h)   (Vaswani et al. 2017, eq. 1 and 2)

The causal mask (position t attends to positions <= t only) is what makes the logits at t a
prediction of x_{t+1} from x_1 .. x_t alone. Positions enter in one of two ways:

- "learned": a trained vector per position is added to the token embedding (GPT-2);
- "rotary":  RoPE (Su et al. 2021, eq. 34) rotates each pair of query/key features at position m by
  the angle m * theta_i, theta_i = base^(-2i/d). Then <R_m q, R_n k> = <q, R_{n-m} k>: attention
  scores depend on relative position only, and no position vector is added.

Sampling keeps a key-value cache (``KVCache``): the keys and values of the tokens already read do not
change when a new token arrives (the mask stops them from seeing it), so each new token is run through
the model alone and attends to the cached ones, instead of rerunning the whole context. Once
``block_size`` tokens are held, the newest replaces the oldest (a sliding window).

The token embedding and the output layer share one matrix (weight tying, Press & Wolf 2017).
The vocabulary is a registered buffer of int32 code points, so a loaded checkpoint can turn a
string prompt into token ids without the dataset.

Files:
- networks: in this file (KVCache, CausalSelfAttention, MLP, Block, init_gpt2, TransformerLM), shared with pixel_transformer.py
- configs: configs/lm_shakespeare.toml (the shipped corpus), configs/lm_tinyshakespeare.toml
- recipe: train/lm.py; notebook: notebooks/lm.py; tests: tests/test_transformer.py; record: docs/lm.md
- exercises: genzoo/exercises/lm.py (top-k sampling, the causal mask, bits per character)

References:
- Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762
- Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2; an OpenAI report,
  not on arXiv)
- Press & Wolf 2017, "Using the Output Embedding to Improve Language Models", arXiv:1608.05859
- Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding", arXiv:2104.09864

Not here:
- subword tokens (GPT-2's byte-pair encoding): a token is one character
- a start-of-text token: the first character is conditioned on nothing and is not scored
- top-p (nucleus) sampling and beam search: sampling has temperature and top-k only
- contexts longer than block_size: sampling beyond them is a sliding window over the cache (rotary
  positions) or the last block_size characters run again (learned positions); see ``sample``
- the encoder and cross-attention of Vaswani et al. 2017: this is the decoder alone
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import ConfigError
from genzoo.model import Batch, GenerativeModel
from genzoo.specs import TextSpec


@dataclass
class TransformerConfig:
    """Defaults: the 2-core CPU setting of configs/lm_tinyshakespeare.toml (see bench/lm_cpu.py)."""

    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128  # longest context the model sees; the data's block_size must not exceed it
    dropout: float = 0.0
    bias: bool = False  # biases in the linear layers and LayerNorms
    positions: str = "rotary"  # "learned" | "rotary"
    rope_base: float = 10000.0  # theta_i = rope_base^(-2i/d) (Su et al. 2021, eq. 15)
    vocab_size: int = 0  # filled from the data spec; 0 means "take it from the data"


def check_config(cfg: TransformerConfig, vocab_size: int) -> None:
    """Fail early, naming the key to change, on settings the networks cannot be built with."""
    if cfg.positions not in ("learned", "rotary"):
        raise ConfigError(f"model.positions must be 'learned' or 'rotary', got {cfg.positions!r}")
    if cfg.n_embd % cfg.n_head:
        raise ConfigError(f"model.n_embd ({cfg.n_embd}) must be a multiple of model.n_head ({cfg.n_head})")
    if cfg.positions == "rotary" and (cfg.n_embd // cfg.n_head) % 2:
        raise ConfigError(f"rotary positions turn pairs of features: model.n_embd / model.n_head must be "
                          f"even, got {cfg.n_embd} / {cfg.n_head}")
    if cfg.vocab_size != vocab_size:
        raise ConfigError(f"model.vocab_size is {cfg.vocab_size} but the data has {vocab_size} characters")


# ----------------------------------------------------------------------------- rotary positions


def rotary_angles(block_size: int, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos and sin of m * theta_i for positions m < block_size, each of shape (block_size, head_dim)."""
    theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (d/2,) Su eq. 15
    angle = torch.arange(block_size, dtype=torch.float64)[:, None] * theta[None, :]  # (T, d/2)
    angle = torch.cat([angle, angle], dim=-1)  # (T, d): feature i and i + d/2 share an angle
    return angle.cos().float(), angle.sin().float()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate feature pairs (x_i, x_{i+d/2}) of x (..., T, d) by the angles in cos, sin (T, d).

    Su et al. 2021 (eq. 34) pairs neighbouring features (x_{2i}, x_{2i+1}); pairing i with i + d/2
    is the same rotation up to a fixed permutation of features, which the learned projections absorb,
    and it needs two contiguous halves instead of strided slices.
    """
    x1, x2 = x.chunk(2, dim=-1)  # (..., T, d/2) each
    rotated = torch.cat([-x2, x1], dim=-1)  # (..., T, d): the 90-degree turn of each pair
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # under bf16 autocast, keep q and k in bf16
    return x * cos + rotated * sin  # (x1 cos - x2 sin, x2 cos + x1 sin), Su et al. 2021, eq. 34


# ----------------------------------------------------------------------------- the key-value cache


class LayerCache:
    """One attention layer's keys and values of the last ``size`` tokens, (B, H, size, d) each.

    The buffers are a ring: the token at position m is kept in slot m mod size, so once the window is
    full each new token overwrites the oldest. The slots' order does not matter: a new token's query
    attends to every cached key without a mask (all are in its past), softmax(q K^T) V does not depend
    on the order of the rows of K and V, and a rotary key carries its own position.
    """

    def __init__(self, size: int):
        self.size, self.position = size, 0  # position: tokens added so far
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def add(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new tokens' k, v (B, H, T, d); return the window's keys and values (B, H, t, d)."""
        B, H, T, d = k.shape
        if (self.position and T > 1) or T > self.size:  # the mask would then not be the plain is_causal
            raise ValueError(f"a key-value cache takes at most {self.size} prompt tokens first, then one at a time")
        if self.keys is None:
            self.keys, self.values = k.new_empty(B, H, self.size, d), v.new_empty(B, H, self.size, d)
        slot = self.position % self.size
        self.keys[:, :, slot : slot + T], self.values[:, :, slot : slot + T] = k, v
        self.position += T
        held = min(self.position, self.size)
        return self.keys[:, :, :held], self.values[:, :, :held]


class KVCache:
    """The ``LayerCache`` of every layer, and the position of the next token (where its rotation starts)."""

    def __init__(self, n_layer: int, size: int):
        self.layers = [LayerCache(size) for _ in range(n_layer)]

    @property
    def position(self) -> int:
        return self.layers[0].position


# ----------------------------------------------------------------------------- networks


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # queries, keys, values at once
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, h: Tensor, rope: tuple[Tensor, Tensor] | None, cache: LayerCache | None = None) -> Tensor:
        B, T, C = h.shape
        q, k, v = self.qkv(h).split(C, dim=2)  # (B, T, C) each
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))  # (B, H, T, d)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)  # Su et al. 2021, eq. 34
        if cache is not None:  # sampling: the new tokens' queries against every cached key
            k, v = cache.add(k, v)  # (B, H, t, d): the earlier tokens' keys and values, then these
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=T > 1)  # (B, H, T, d)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.up = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.down = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.dropout(self.down(F.gelu(self.up(h))))  # Vaswani et al. 2017, eq. 2, with GELU


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln_attn = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_mlp = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, h: Tensor, rope: tuple[Tensor, Tensor] | None, cache: LayerCache | None = None) -> Tensor:
        h = h + self.attn(self.ln_attn(h), rope, cache)  # pre-LN residual (GPT-2, sec. 2.3)
        return h + self.mlp(self.ln_mlp(h))


def init_gpt2(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation (sec. 2.3): linear and embedding weights N(0, 0.02^2), biases 0, and the
    residual projections (``proj``, ``down``) scaled by 1/sqrt(2 n_layer), so the residual stream's
    variance does not grow with depth."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for name, p in model.named_parameters():
        if name.endswith(("proj.weight", "down.weight")):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))


# ----------------------------------------------------------------------------- the model


class TransformerLM(GenerativeModel):
    """GPT-style decoder over characters. Batches are (ids, targets), both (B, T) int64."""

    family = "lm"
    likelihood = "exact"
    Config = TransformerConfig

    def __init__(self, cfg: TransformerConfig, vocab: str):
        super().__init__()
        check_config(cfg, len(vocab))
        self.cfg = cfg
        self.register_buffer("vocab", torch.tensor([ord(ch) for ch in vocab], dtype=torch.int32))
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.positions == "learned":
            self.position_embedding = nn.Embedding(cfg.block_size, cfg.n_embd)
        else:  # derived from the config, so not saved: persistent=False
            cos, sin = rotary_angles(cfg.block_size, cfg.n_embd // cfg.n_head, cfg.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # weight tying (Press & Wolf 2017)
        init_gpt2(self, cfg.n_layer)

    @classmethod
    def from_config(cls, cfg: TransformerConfig, spec: TextSpec) -> "TransformerLM":
        if cfg.vocab_size not in (0, spec.vocab_size):
            raise ConfigError(
                f"model.vocab_size = {cfg.vocab_size} but {spec.name} has {spec.vocab_size} characters; "
                "leave it at 0 to take it from the data"
            )
        return cls(replace(cfg, vocab_size=spec.vocab_size), spec.vocab)

    @property
    def spec(self) -> TextSpec:
        """Encoder/decoder between strings and token ids, rebuilt from the vocab buffer."""
        return TextSpec(name="model", vocab="".join(chr(c) for c in self.vocab.tolist()))

    def forward(self, ids: Tensor, cache: KVCache | None = None) -> Tensor:
        """Next-token logits (B, T, V) for token ids (B, T): logits[:, t] predicts ids[:, t + 1].

        With a ``cache`` (sampling), ``ids`` are the tokens after those already in it: the prompt into an
        empty cache, then one token at a time, each at position ``cache.position``.
        """
        B, T = ids.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than model.block_size = {self.cfg.block_size}")
        start = cache.position if cache is not None else 0
        h = self.token_embedding(ids)  # (B, T, C)
        rope = None
        if self.cfg.positions == "learned":
            h = h + self.position_embedding(torch.arange(start, start + T, device=ids.device))  # (B, T, C)
        else:
            rope = self._rotary(start, T)  # (T, d) each
        h = self.dropout(h)
        for i, block in enumerate(self.blocks):
            h = block(h, rope, cache.layers[i] if cache is not None else None)  # (B, T, C)
        return self.lm_head(self.ln_out(h))  # (B, T, V)

    def _rotary(self, start: int, T: int) -> tuple[Tensor, Tensor]:
        """cos, sin (T, d) of positions start .. start + T - 1; past block_size (a cache sliding along a
        long sample) they are computed afresh: only differences of positions matter (Su et al. 2021)."""
        if start + T <= self.cfg.block_size:
            return self.rope_cos[start : start + T], self.rope_sin[start : start + T]
        cos, sin = rotary_angles(start + T, self.cfg.n_embd // self.cfg.n_head, self.cfg.rope_base)
        return cos[start:].to(self.rope_cos.device), sin[start:].to(self.rope_sin.device)

    # ------------------------------------------------------------------------- loss, sample, log_prob

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Mean next-character cross-entropy in nats per character (the L of the docstring)."""
        ids, targets = batch  # (B, T), (B, T)
        logits = self(ids)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # nats per character
        nats = loss.item()
        return loss, {"loss": nats, "nats_per_char": nats, "bits_per_char": nats / math.log(2)}

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: str = "\n",
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int = 0,
        kv_cache: bool = True,
    ) -> Tensor:
        """Token ids (n, len(prompt) + max_new_tokens): the prompt, then sampled continuations.

        Options:
            prompt: text every sample starts with (at least one character, all in the vocabulary);
                the default is a newline, which in a play starts a new speech.
            max_new_tokens: how many characters to generate after the prompt.
            temperature: divides the logits before the softmax; < 1 is more conservative, > 1 more
                random; 0 means greedy (always the most probable character).
            top_k: sample only among the k most probable characters; 0 means off (all characters).
            kv_cache: keep the keys and values of the tokens read (``KVCache``) and run each new token
                alone; False reruns the model over the whole context for every token. Both give the
                same tokens for the same generator while the text fits in ``block_size`` (tested).
        Decode a row with ``model.spec.decode(ids[i])``.

        Past ``block_size`` tokens (the most the model saw in training), the uncached path crops the
        context to the last ``block_size`` tokens and reruns them. The cache slides instead: the newest
        token replaces the oldest, and the tokens still in the window keep the keys computed when they
        were read, which in the second layer and above carry a little of the tokens that have left the
        window. So beyond the block the two paths are different (equally legitimate) approximations of an
        unbounded context, and their samples differ; with one layer they agree exactly. Learned positions
        stop at ``block_size``, so there the cached path crops and reruns like the uncached one.
        """
        ids = self._prompt_ids(n, prompt)
        for ids in self.trajectory(n, generator=generator, prompt=prompt, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_k=top_k, kv_cache=kv_cache):
            pass
        return ids

    def trajectory(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt: str = "\n",
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int = 0,
        kv_cache: bool = True,
    ) -> Iterator[Tensor]:
        """Yields the token ids so far, (n, len(prompt) + i), after each of the i new tokens.

        Same options as ``sample``, which returns the last of these.
        """
        ids = self._prompt_ids(n, prompt)  # (n, P)
        cache = KVCache(self.cfg.n_layer, self.cfg.block_size) if kv_cache else None
        for _ in range(max_new_tokens):
            # no_grad closes before the yield: a grad mode held open across a yield would leak
            # into the caller's code between steps.
            with torch.no_grad():
                logits = self._next_logits(ids, cache)  # (n, V): prediction for the next token
                next_id = self._pick(logits, generator, temperature, top_k)  # (n, 1)
            ids = torch.cat([ids, next_id], dim=1)  # (n, P + i)
            yield ids

    def _next_logits(self, ids: Tensor, cache: KVCache | None) -> Tensor:
        """Logits (n, V) of the token after ``ids`` (n, t): from the cache where there is one (the prompt
        first fills it), else by rerunning the last ``block_size`` tokens."""
        block = self.cfg.block_size
        learned_past_block = self.cfg.positions == "learned" and ids.size(1) > block
        if cache is None or learned_past_block:
            return self(ids[:, -block:])[:, -1]
        new = ids[:, -block:] if cache.position == 0 else ids[:, -1:]  # (n, P) the prompt, else (n, 1)
        return self(new, cache)[:, -1]

    def _prompt_ids(self, n: int, prompt: str) -> Tensor:
        if not prompt:
            raise ValueError("prompt must hold at least one character (the model has no start token)")
        return self.spec.encode(prompt).to(self.vocab.device).repeat(n, 1)  # (n, P)

    @staticmethod
    def _pick(logits: Tensor, generator: torch.Generator | None, temperature: float, top_k: int) -> Tensor:
        """One token per row from logits (n, V): greedy at temperature 0, else sample softmax(logits / T)."""
        if temperature <= 0:
            return logits.argmax(dim=-1, keepdim=True)  # (n, 1)
        logits = logits / temperature
        if top_k > 0:
            kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (n, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = F.softmax(logits, dim=-1)  # (n, V)
        return torch.multinomial(probs, 1, generator=generator)  # (n, 1)

    def log_prob(self, x: Tensor) -> Tensor:
        """(B,) log p(x_2 .. x_T | x_1) in nats for token ids x (B, T), T <= block_size + 1.

        The sum of log p(x_{t+1} | x_1 .. x_t) over t = 1 .. T-1. The first token is conditioned on
        nothing and excluded (the model has no start token), so T tokens give T - 1 predictions, and
        bits per character = -log_prob / ((T - 1) ln 2).
        """
        logits = self(x[:, :-1])  # (B, T-1, V)
        log_p = F.log_softmax(logits, dim=-1)  # (B, T-1, V)
        return log_p.gather(-1, x[:, 1:, None]).squeeze(-1).sum(dim=1)  # (B,)
