# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The transformer language model: attention, the causal mask, sampling, a key-value cache, pixels
#
# A character-level language model predicts the next character of a text from all the
# characters before it. Chained, those predictions give the probability of a whole string,
# and sampling them one at a time writes new text. This notebook reads
# [`genzoo/models/transformer.py`](../genzoo/models/transformer.py), a small GPT, one equation at a
# time: every equation is followed by the line of that file that computes it (printed from the
# file itself), then a numerical check. Its last sections make sampling fast (a key-value cache)
# and run the same model over the pixels of a digit, with an exact likelihood.
#
# **Running it.** The committed run took 9.1 minutes on a slow 2-core CPU (two torch threads, alone),
# most of it the 2,400 training steps of the LM (3.9 minutes) and 4 minutes of the pixel model; with
# `GENZOO_SHORT=1` (what CI sets) every loop shrinks, with a barely trained model. The text is Shakespeare's works, shipped with genzoo, so it works offline.

# %%
import json
import math
import re
import shutil
import time
from itertools import islice

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import genzoo.models.transformer as transformer_file
from genzoo.baselines import bigram_log_probs, bigram_nats_per_char, independent_pixels_bits_per_dim
from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.exercises import check
from genzoo.metrics import heldout_nll
from genzoo.models.pixel_transformer import PixelTransformer
from genzoo.models.transformer import CausalSelfAttention, LayerCache, TransformerLM, apply_rotary, rotary_angles
from genzoo.notebook import parameter_count, show_images, show_lines, show_source, start
from genzoo.plots import read_metrics
from genzoo.sources import load_data
from genzoo.trainer import Trainer

SHORT, ROOT = start()

# %% [markdown]
# ## 1. Characters are the tokens
#
# The vocabulary is every distinct character of the corpus, sorted; token $i$ is the $i$-th
# character. A training example is a window of `block_size` characters $x$, and the targets
# $y$ are the same window shifted by one: at every position the model predicts the next character.

# %%
# full mode trains exactly as `genzoo train configs/lm_shakespeare.toml`
overrides = ["train.max_steps=30", "train.eval_every=12", "train.eval_batches=2"] if SHORT else []
cfg = load_config(ROOT / "configs" / "lm_shakespeare.toml", overrides)
data = load_data(cfg.data)
spec = data.spec
print(f"{spec.name}: {len(data.train_ids):,} training and {len(data.val_ids):,} validation characters")
print(f"{spec.vocab_size} tokens: {spec.vocab!r}")
ids = spec.encode("To be, or not to be")
print(ids.tolist(), "->", repr(spec.decode(ids)))

# %%
x, y = next(data.train_stream(4, seed=0))  # (B, T) ids and next-character targets
print("x:", repr(spec.decode(x[0, :60])))
print("y:", repr(spec.decode(y[0, :60])))
assert torch.equal(x[0, 1:], y[0, :-1])

# %% [markdown]
# ## 2. The simplest model first: a bigram table
#
# Before any network, the simplest model of the same text: count in the training text how often
# each character $b$ follows each character $a$, and predict the next character from the last one
# alone,
#
# $$p(x_{t+1} = b \mid x_t = a) = \frac{n(a, b) + \tfrac12}{\sum_{b'} n(a, b') + \tfrac{V}{2}}$$
#
# (adding $\tfrac12$ to every count keeps a pair never seen in training possible). Its
# cross-entropy on the same validation text, in the same nats per character, is the number the
# transformer has to beat (`genzoo/baselines.py` counts it):

# %%
bigram = bigram_log_probs(data.train_ids, spec.vocab_size)  # (V, V): log p(b | a), each row sums to one
bigram_nats = bigram_nats_per_char(data.train_ids, data.val_ids, spec.vocab_size)
print(f"bigram table on the validation text: {bigram_nats:.3f} nats = {bigram_nats / math.log(2):.3f} bits per character")
for a in ["q", "T", "\n"]:
    p, b = bigram[spec.encode(a)[0]].exp().topk(3)
    print(f"after {a!r}: " + ", ".join(f"{spec.vocab[i]!r} {float(pi):.2f}" for pi, i in zip(p, b)))


# %% [markdown]
# And what it writes: each character drawn from the table's row of the one before.

# %%
def bigram_sample(n, prompt, max_new_tokens, generator):
    """(n, len(prompt) + max_new_tokens) token ids: the prompt, then characters drawn from the bigram table."""
    ids = spec.encode(prompt).repeat(n, 1)  # (n, P)
    for _ in range(max_new_tokens):
        next_id = torch.multinomial(bigram[ids[:, -1]].exp(), 1, generator=generator)  # (n, 1): given the last one
        ids = torch.cat([ids, next_id], dim=1)
    return ids


n_sample = 80 if SHORT else 250
bigram_text = spec.decode(bigram_sample(1, "ROMEO:\n", n_sample, torch.Generator().manual_seed(1))[0])
print(bigram_text)

# %% [markdown]
# One character of context buys a good deal: 2.543 nats (3.669 bits) per character, against 4.81
# bits for the character frequencies alone and 6.39 for a uniform guess (section 9). The table
# has learned that "q" is followed by "u" (0.98) and "T" most often by "h" (0.40), and it writes
# word-sized strings, capitalised names and line breaks, but few real words ("he", "ye", "But", "hot"):
# a word is longer than one character of memory. The transformer below reads up to 128.

# %% [markdown]
# ## 3. The model and its loss
#
# The probability of a string factorises into next-character predictions (the chain rule),
#
# $$\log p(x_2, \dots, x_T \mid x_1) = \sum_{t=1}^{T-1} \log p(x_{t+1} \mid x_1, \dots, x_t),$$
#
# and the loss is the mean cross-entropy of those predictions, in nats per character.
# The model: token embeddings, then `n_layer` blocks of attention and MLP, then a linear layer
# to one logit per character of the vocabulary.

# %%
torch.manual_seed(cfg.train.seed)
model = build_model(cfg, spec).eval()
print(cfg.model)
print(f"{parameter_count(model):,} parameters")
show_source(TransformerLM.loss)

# %% [markdown]
# ## 4. Scaled dot-product attention and the causal mask
#
# Each position $t$ emits a query $q_t$, a key $k_t$ and a value $v_t$ (vectors of size $d$ per
# head). Position $t$ reads a weighted average of the values, weighted by how well its query
# matches each key (Vaswani et al. 2017, eq. 1):
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt d} + M\Big) V,
# \qquad M_{ts} = \begin{cases} 0 & s \le t \\ -\infty & s > t. \end{cases}$$
#
# Dividing by $\sqrt d$ keeps the scores' spread independent of $d$, so the softmax does not
# saturate. The **causal mask** $M$ sets the weight of every *later* position to zero: the
# prediction at $t$ may use $x_1 \dots x_t$ only, otherwise the model could read the answer.
# In `transformer.py` the whole formula is one fused call, `is_causal` being $M$ (it is on whenever
# more than one position is read at once; section 10 reads one at a time):

# %%
show_source(CausalSelfAttention.forward)


# %% [markdown]
# The fused call hides the weights. Written out, for one attention layer, with the layer's own
# projections (and rotary positions, section 5):

# %%
def attention_weights(attn, h, rope):
    """softmax(Q K^T / sqrt(d) + M) of one attention layer for its input h (B, T, C): (B, H, T, T)."""
    B, T, C = h.shape
    q, k, _ = attn.qkv(h).split(C, dim=2)
    q, k = (z.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for z in (q, k))  # (B, H, T, d)
    if rope is not None:
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    M = torch.full((T, T), float("-inf")).triu(1)  # -inf above the diagonal: s > t
    return torch.softmax(scores + M, dim=-1)


def attention_inputs(model, ids, layer):
    """The input (h, rope) that attention layer ``layer`` receives when the model reads ``ids``."""
    seen = {}
    hook = model.blocks[layer].attn.register_forward_pre_hook(lambda module, args: seen.update(args=args))
    with torch.no_grad():
        model(ids)
    hook.remove()
    return seen["args"][:2]  # (h, rope); the third argument, a key-value cache, is None here


# %% [markdown]
# Our written-out weights, applied to the values, must reproduce what the layer computes:

# %%
ids = spec.encode("First Citizen:\nBefore we proceed").view(1, -1)
attn = model.blocks[0].attn
h, rope = attention_inputs(model, ids, layer=0)
with torch.no_grad():
    A = attention_weights(attn, h, rope)  # (1, H, T, T)
    B, T, C = h.shape
    v = attn.qkv(h).split(C, dim=2)[2].view(B, T, attn.n_head, -1).transpose(1, 2)  # (B, H, T, d)
    ours = attn.proj((A @ v).transpose(1, 2).reshape(B, T, C))
    theirs = attn(h, rope)
print(f"largest difference from the layer's output: {(ours - theirs).abs().max():.2e}")
assert torch.allclose(ours, theirs, atol=1e-5)

# %% [markdown]
# The mask's consequence, checked on the whole model: changing the *last* characters of a text
# cannot change the predictions at any earlier position.

# %%
a, b = spec.encode("To be, or not to be"), spec.encode("To be, or not to go")
with torch.no_grad():
    logits_a, logits_b = model(a.view(1, -1)), model(b.view(1, -1))  # (1, T, V)
first_change = int((a != b).nonzero()[0])
same = torch.allclose(logits_a[:, :first_change], logits_b[:, :first_change], atol=1e-5)
print(f"predictions before position {first_change} unchanged: {same}; "
      f"after: changed by up to {(logits_a - logits_b)[:, first_change:].abs().max():.2f}")
assert same

# %% [markdown]
# ## 5. Rotary positions
#
# Attention by itself ignores order: permute the keys and values and the output is the same.
# Rotary position embedding (RoPE, Su et al. 2021) turns each pair of query/key features at
# position $m$ by the angle $m\theta_i$, with $\theta_i = \text{base}^{-2i/d}$:
#
# $$R_m \begin{pmatrix} x_i \\ x_{i + d/2} \end{pmatrix} =
# \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}
# \begin{pmatrix} x_i \\ x_{i + d/2} \end{pmatrix},
# \qquad \langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle.$$
#
# Rotations compose, so a score depends on the *distance* $n - m$ only, never on where in the
# text the pair sits. (The config's other choice, `positions = "learned"`, adds a trained vector
# per position to the token embedding instead, as GPT-2 does.)

# %%
print(f"this config: positions = {cfg.model.positions!r}")
show_source(rotary_angles)
print()
show_source(apply_rotary)

# %% [markdown]
# The check: rotate one query and one key to every pair of positions $(m, n)$ and take their
# dot products. If the score depends on $n - m$ only, the matrix is constant along each
# diagonal (a Toeplitz matrix):

# %%
d, T = 16, 24
cos, sin = rotary_angles(T, d)  # (T, d) each
q, k = torch.randn(2, d, generator=torch.Generator().manual_seed(0))
Rq = apply_rotary(q.expand(T, d), cos, sin)  # row m: q rotated to position m
Rk = apply_rotary(k.expand(T, d), cos, sin)
scores = Rq @ Rk.T  # (T, T): <R_m q, R_n k>
for offset in range(-T + 1, T):
    diagonal = scores.diagonal(offset)
    assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4)
plt.figure(figsize=(3.2, 3))
plt.imshow(scores, cmap="RdBu")
plt.xlabel("key position n")
plt.ylabel("query position m")
plt.title("<R_m q, R_n k>: constant along diagonals", fontsize=9)
plt.show()

# %% [markdown]
# ## 6. Training with genzoo's trainer
#
# The same trainer as every family: `training_step` (cross-entropy, one AdamW step), a warmup
# then cosine learning-rate schedule, validation on held-out text (the last 10% of the corpus),
# `metrics.jsonl` and checkpoints in a run folder (`genzoo sample runs/notebook-lm --prompt
# "ROMEO:"` reads it afterwards). A uniform guess over the vocabulary costs
# $\log_2 V$ bits per character; training should get far below it, and below the bigram table
# of section 2 (the dashed line in the figure).

# %%
run_dir = ROOT / "runs" / ("notebook-lm-short" if SHORT else "notebook-lm")
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook is run
run = Trainer(model, data, cfg, run_dir).fit()
model = run.sampling_model.eval()  # the EMA weights if the config keeps them
print(f"trained {run.step} steps; uniform guess: {math.log2(spec.vocab_size):.2f} bits per character")

# %%
records = read_metrics(run_dir / "metrics.jsonl")
plt.figure(figsize=(5, 2.8))
for split, style in [("train", "-"), ("val", "o-")]:
    points = [(r["step"], r["bits_per_char"]) for r in records if r["split"] == split]
    plt.plot(*zip(*points), style, markersize=3, label=split)
plt.axhline(bigram_nats / math.log(2), color="gray", linestyle="--", label="bigram table (val)")
plt.xlabel("step")
plt.ylabel("bits per character")
plt.legend()
plt.show()

# %% [markdown]
# The training loss is below the bigram table's 3.67 bits by step 100 (3.53 bits; 4.75 at step
# 50), and every validation point is far below it: 2.78 bits at step 500, 2.32 at step 2,400.

# %% [markdown]
# ## 7. What a trained head looks at
#
# The attention weights of every head of the first and the last layer, for one line of text
# (rows: the position predicting the next character; columns: the positions it reads).
# Everything above the diagonal is exactly zero: the causal mask. Each row sums to one: the
# softmax. Every head of this small, briefly trained model reads mostly the last few characters
# (bright bands just below the diagonal): printed beside the figure, the average distance a head
# reads back is between 1.1 and 3.3 characters, on a line of 26.

# %%
text = "ROMEO:\nBut soft, what light"
ids = spec.encode(text).view(1, -1)
layers = sorted({0, len(model.blocks) - 1})
labels = [repr(c)[1:-1] for c in text]  # "\n" for the newline
H = model.cfg.n_head
fig, axes = plt.subplots(len(layers), H, figsize=(2.3 * H, 2.4 * len(layers)), squeeze=False)
for row, layer in enumerate(layers):
    with torch.no_grad():
        A = attention_weights(model.blocks[layer].attn, *attention_inputs(model, ids, layer))[0]  # (H, T, T)
    assert torch.all(A.triu(1) == 0) and torch.allclose(A.sum(-1), torch.ones(A.shape[:2]))
    back = (torch.arange(len(text)).view(-1, 1) - torch.arange(len(text))).clamp(min=0)  # t - s
    reach = (A * back).sum(-1).mean(-1)  # (H,): how many characters back each head reads, on average
    print(f"layer {layer}: mean distance read back, per head: {', '.join(f'{r:.1f}' for r in reach)}")
    for head, ax in enumerate(axes[row]):
        ax.imshow(A[head], cmap="viridis", vmin=0)
        ax.set_xticks(range(len(text)), labels, fontsize=5)
        ax.set_yticks(range(len(text)), labels if head == 0 else [], fontsize=5)
        ax.set_title(f"layer {layer}, head {head}", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 8. Sampling and temperature
#
# To write text, the model predicts the next character, one is drawn, appended, and the model
# reads the longer text again. Dividing the logits $\ell$ by a **temperature** $\tau$ before the
# softmax reshapes the distribution:
#
# $$p_i = \frac{\exp(\ell_i / \tau)}{\sum_j \exp(\ell_j / \tau)}.$$
#
# $\tau < 1$ sharpens it towards the most likely character ($\tau \to 0$ is greedy decoding),
# $\tau > 1$ flattens it towards uniform. **Top-k** sampling draws only among the $k$ most
# likely characters, cutting off the long tail of unlikely ones. In `transformer.py`:

# %%
show_lines(transformer_file, "logits / temperature", "topk(", "masked_fill(logits", "probs = F.softmax", "torch.multinomial(")

# %% [markdown]
# The next-character distribution after a prompt, at three temperatures. Its entropy (in bits)
# rises with $\tau$, as it must:

# %%
prompt = "ROMEO:\nWhat shall I s"
with torch.no_grad():
    logits = model(spec.encode(prompt).view(1, -1))[0, -1]  # (V,): the prediction for the next character
top = logits.topk(12).indices
fig, axes = plt.subplots(1, 3, figsize=(10, 2.4), sharey=True)
entropies = []
for ax, tau in zip(axes, [0.5, 1.0, 1.5]):
    p = torch.softmax(logits / tau, dim=-1)
    entropies.append(float(-(p * torch.log_softmax(logits / tau, dim=-1)).sum() / math.log(2)))
    ax.bar(range(12), p[top])
    ax.set_xticks(range(12), [repr(spec.vocab[i])[1:-1] for i in top])
    ax.set_title(f"tau = {tau}: entropy {entropies[-1]:.2f} bits", fontsize=9)
axes[0].set_ylabel(f"p(next | {prompt[-6:]!r})")
plt.show()
assert entropies == sorted(entropies)

# %%
generator = torch.Generator().manual_seed(1)
ids = model.sample(1, generator=generator, prompt="ROMEO:\n", max_new_tokens=n_sample)
print("the transformer, tau = 1:\n" + spec.decode(ids[0]))
print("\nthe bigram table (section 2), same prompt and length:\n" + bigram_text)

# %% [markdown]
# Beside the bigram table's text, the transformer's is mostly real words laid out as a play
# (verse lines, a bracketed speaker's name), though its sense is loose and it invents names.
# That was $\tau = 1$. To compare settings with numbers rather than impressions, draw a few
# texts with each and count their words: the share that occur anywhere in the training text
# (invented spellings do not), and the share of distinct words among them (repetition lowers it).

# %%
known = set(re.findall(r"[a-z']+", spec.decode(data.train_ids).lower()))
n_texts, n_new = (2, 100) if SHORT else (8, 500)
settings = [dict(temperature=0.5), dict(temperature=1.0), dict(temperature=1.5), dict(temperature=1.0, top_k=5)]
for options in settings:
    generator = torch.Generator().manual_seed(1)
    ids = model.sample(n_texts, generator=generator, prompt="ROMEO:\n", max_new_tokens=n_new, **options)
    texts = [spec.decode(row)[len("ROMEO:\n"):] for row in ids]
    words = [w for t in texts for w in re.findall(r"[a-z']+", t.lower())]
    real, distinct = sum(w in known for w in words) / len(words), len(set(words)) / len(words)
    print(f"{str(options):36s} {len(words):5d} words: {real:4.0%} in the training text, {distinct:4.0%} distinct; "
          f"{texts[0][:40]!r}")
ids = bigram_sample(n_texts, "ROMEO:\n", n_new, torch.Generator().manual_seed(1))
texts = [spec.decode(row)[len("ROMEO:\n"):] for row in ids]
words = [w for t in texts for w in re.findall(r"[a-z']+", t.lower())]
real, distinct = sum(w in known for w in words) / len(words), len(set(words)) / len(words)
print(f"{'bigram table':36s} {len(words):5d} words: {real:4.0%} in the training text, {distinct:4.0%} distinct; "
      f"{texts[0][:40]!r}")

# %% [markdown]
# Lowering the temperature makes the words more real and less varied: 96% of the words at
# $\tau = 0.5$ occur in the training text, 78% at $\tau = 1$ and 51% at $\tau = 1.5$ (invented
# spellings), while the share of distinct words rises from 34% to 56% and 79% (low temperature
# repeats the safest words). Top-k with $k = 5$ at $\tau = 1$ lands near $\tau = 0.5$ on both counts
# (91% real, 39% distinct): cutting off the unlikely characters removes the invented spellings, and
# with them most of $\tau = 1$'s variety. The bigram table's texts, drawn the same way, are as
# varied (71% distinct) but only 40% of their words are real, half the transformer's 78% at the
# same $\tau = 1$.
#
# `trajectory` yields the text after every new character, for watching the model write:

# %%
generator = torch.Generator().manual_seed(2)
steps = model.trajectory(1, generator=generator, prompt="JULIET:\n", max_new_tokens=40, temperature=0.8)
for i, ids in enumerate(steps):
    if i % 10 == 9:
        print(repr(spec.decode(ids[0])))

# %% [markdown]
# ## 9. Likelihood: bits per character
#
# `log_prob` sums the log-probabilities of every character given the ones before it: the
# chain rule of section 3, in nats. Its first token is conditioned on nothing (the model has
# no start token) and is not counted, so a sequence of $T$ tokens has $T - 1$ predictions and
#
# $$\text{bits per character} = \frac{-\log p(x_2, \dots, x_T \mid x_1)}{(T - 1) \ln 2}.$$

# %%
show_source(TransformerLM.log_prob)

# %% [markdown]
# Two ways to the same number: `log_prob` of windows of $T + 1$ characters, and the training
# loss on the $(x, y)$ pairs cut from the same windows.

# %%
x, y = next(data.val_batches(16, 1))
with torch.no_grad():
    nats = -model.log_prob(torch.cat([x[:, :1], y], dim=1)).sum() / y.numel()
    loss, _ = model.loss((x, y))
print(f"log_prob: {nats:.4f} nats per character; loss: {loss:.4f}")
assert torch.allclose(nats, loss, atol=1e-4)

# %%
n_batches = 2 if SHORT else None  # None: every window of the held-out text, about 15 s
result = heldout_nll(model, islice(data.test_batches(32), n_batches))
counts = torch.bincount(data.train_ids.long(), minlength=spec.vocab_size).float()
unigram = float(-(counts / counts.sum() * (counts / counts.sum()).clamp_min(1e-12).log2()).sum())
print(f"held-out text, {result['examples']} windows: {result['bits_per_dim']:.3f} bits per character")
print(f"for scale: uniform over {spec.vocab_size} characters {math.log2(spec.vocab_size):.2f}, "
      f"character frequencies alone {unigram:.2f}, the bigram table (section 2) {bigram_nats / math.log(2):.3f}")
print(f"in nats per character: the transformer {result['bits_per_dim'] * math.log(2):.3f}, the bigram table {bigram_nats:.3f}")

# %% [markdown]
# The gaps are what context buys: 4.81 bits per character from the frequencies alone, 3.67 with
# one character of context (the bigram table), 2.33 with up to 128 (the transformer), that is
# 1.616 nats per character against the bigram table's 2.543 on the same validation text. (The
# transformer's number leaves out the first character of each 128-character window, which it
# has no context for; the bigram's counts every character after the first.)

# %% [markdown]
# ## 10. A key-value cache: sampling without rereading
#
# Section 8's sampler runs the model over the whole text again for every new character, and most
# of that work repeats itself. The causal mask of section 4 means that appending a character
# changes nothing at the earlier positions: their keys and values, in every layer, are what they
# were one step before. `sample` therefore keeps them in a cache, one `LayerCache` per layer, and
# runs only the new character through the model, its query meeting the cached keys. Per new
# character the work falls from the whole context (up to 128 positions) to one position.

# %%
show_source(LayerCache.add)

# %% [markdown]
# With the same generator seed, both ways give the same characters as long as the text fits in
# the 128-character block the model was trained on:

# %%
options = dict(prompt="ROMEO:\n", max_new_tokens=128 - len("ROMEO:\n"))
cached, uncached = (model.sample(8, generator=torch.Generator().manual_seed(3), kv_cache=kv_cache, **options)
                    for kv_cache in (True, False))
print(f"8 texts of 128 characters, identical with and without the cache: {torch.equal(cached, uncached)}")
assert torch.equal(cached, uncached)

# %%
n_new = 100 if SHORT else 1000
seconds, texts = {}, {}
for kv_cache in (False, True):
    started = time.perf_counter()
    ids = model.sample(1, generator=torch.Generator().manual_seed(3), prompt="ROMEO:\n", max_new_tokens=n_new,
                       kv_cache=kv_cache)
    seconds[kv_cache], texts[kv_cache] = time.perf_counter() - started, ids[0]
agree = (texts[True] == texts[False]).float()
print(f"{n_new} new characters: {seconds[False]:.2f} s rereading the context, {seconds[True]:.2f} s with the cache "
      f"({seconds[False] / seconds[True]:.1f}x faster)")
print(f"the same character at {agree[:128].mean():.0%} of the first 128 positions and {agree.mean():.0%} of all {len(agree)}")

# %% [markdown]
# Here 1,000 new characters took 4.18 s rereading the context and 1.90 s with the cache, 2.2 times
# faster for one text: one text at a time is bound by Python's cost per call, not by arithmetic,
# so the saving grows with the number of texts drawn at once.
#
# Past the block the two ways part, and neither is wrong (only 39% of the 1,007 characters agree). Without the cache, the context is cut
# to the last 128 characters and read afresh, so the oldest of them is read with no context at
# all. With the cache, the newest character takes the oldest's slot (a sliding window), and the
# 127 others keep the keys and values they got when they were read, with their own context: in
# the second layer those carry a little of the characters that have since left the window. From
# the first character that differs, the two texts are different draws.

# %% [markdown]
# ## 11. The same model over pixels
#
# Nothing in sections 3 to 10 needs the tokens to be characters. Read a 28 x 28 digit left to
# right and top to bottom, and it is a text of 784 tokens over an alphabet of 256 grey levels. The
# chain rule gives its probability exactly, with no bound and nothing assumed away,
#
# $$\log p(x) = \sum_{i=1}^{784} \log p(x_i \mid x_1, \dots, x_{i-1}),$$
#
# in nats of the 8-bit image, so its bits/dim, $-\log p(x) / (784 \ln 2)$, means what every image
# family's does on the same test digits. `genzoo/models/pixel_transformer.py` is this file's model
# with three changes: a start token before the first pixel (so $x_1$ is predicted too; for a
# class-conditional model the start token is the class), learned row and column embeddings (where
# on the canvas a pixel is), and, for speed on a CPU, 7 pixels of a row per token of the transformer,
# whose output feeds a small transformer that predicts those 7 pixels one after another (MEGABYTE's
# two-level factorisation, still the exact chain rule above). Its loss is the LM's cross-entropy,
# per pixel:

# %%
show_source(PixelTransformer.loss)

# %% [markdown]
# The config `configs/pixel_mnist.toml` trains for 20 minutes. Here, for a few minutes only:

# %%
pixel_overrides = (["train.max_steps=4", "train.eval_every=2", "train.eval_batches=1"] if SHORT else
                   ["train.max_minutes=4"])
pixel_cfg = load_config(ROOT / "configs" / "pixel_mnist.toml", pixel_overrides)
digits = load_data(pixel_cfg.data)
torch.manual_seed(pixel_cfg.train.seed)
pixel_model = build_model(pixel_cfg, digits.spec)
print(f"{digits.source}\n{parameter_count(pixel_model):,} parameters")
pixel_dir = ROOT / "runs" / ("notebook-pixel-short" if SHORT else "notebook-pixel")
shutil.rmtree(pixel_dir, ignore_errors=True)
pixel_trainer = Trainer(pixel_model, digits, pixel_cfg, pixel_dir)
pixel_run = pixel_trainer.fit()
pixel_model = pixel_run.sampling_model.eval()
print(f"trained {pixel_run.step} steps in {pixel_trainer.elapsed / 60:.1f} min")

# %% [markdown]
# Every pixel's 256 probabilities sum to one (a softmax), so the likelihood is a number to trust,
# and the held-out bits/dim sits beside the model that knows no context at all, each pixel with
# its own histogram of grey levels (`genzoo/baselines.py`):

# %%
n_test = 100 if SHORT else 1000
test_x, test_y = digits.decode(digits.test_x[:n_test]), digits.test_y[:n_test]
with torch.no_grad():
    logits = pixel_model(pixel_model.levels(test_x[:4]))  # (4, 784, 256)
    nats = -pixel_model.log_prob(test_x)  # (n_test,)
print(f"probabilities of a pixel sum to 1 (largest error {(logits.softmax(-1).sum(-1) - 1).abs().max():.1e})")
bits = nats.mean().item() / (784 * math.log(2))
independent = independent_pixels_bits_per_dim(digits.train_x, digits.test_x[:n_test])
print(f"{n_test:,} test digits: the pixel transformer {bits:.3f} bits/dim (exact); "
      f"independent pixels {independent:.3f}")
record = json.loads((ROOT / "bench" / "results" / "pixel_mnist.json").read_text())  # docs/pixel.md
print(f"recorded ({record['date']}): the config's full {record['cost']['train_seconds'] / 60:.0f} minutes, "
      f"{record['cost']['train_steps']:,} steps: {record['likelihood']['bits_per_dim']:.4f} bits/dim on all "
      f"{record['likelihood']['examples']:,} test digits")

# %% [markdown]
# After 4 minutes (284 steps) the model gives the 1,000 test digits 1.218 bits/dim, exactly, against
# 1.678 for independent pixels: the context is worth 0.46 bits per pixel already. The config's full
# 20 minutes reached 1.0239 bits/dim on all 10,000 test digits, below every bound in the comparison
# table (the flow's 1.225, the VAE's 1.276), and this number is not a bound.
#
# Sampling follows the chain rule pixel by pixel: 784 draws, each waiting for the one before.
# The key-value cache of section 10 keeps that to one pass over the image; without it the model
# rereads every earlier token for each new one. A VAE's decoder, for contrast, makes a whole
# digit in one pass: what an exact likelihood costs at sampling time.

# %%
n_digits = 4 if SHORT else 16
timing, drawn = {}, {}
for kv_cache in (True, False):
    started = time.perf_counter()
    drawn[kv_cache] = pixel_model.sample(n_digits, generator=torch.Generator().manual_seed(0), kv_cache=kv_cache)
    timing[kv_cache] = (time.perf_counter() - started) / n_digits
vae = build_model(load_config(ROOT / "configs" / "vae_mnist.toml"), digits.spec).eval()  # untrained: timing only
started = time.perf_counter()
vae.sample(n_digits, generator=torch.Generator().manual_seed(0))
vae_ms = 1000 * (time.perf_counter() - started) / n_digits
print(f"per digit: {1000 * timing[True]:.0f} ms with the cache, {1000 * timing[False]:.0f} ms without; "
      f"a VAE's decoder {vae_ms:.2f} ms")
print(f"the same digits both ways: {torch.equal(drawn[True], drawn[False])}")
show_images(drawn[True], nrow=8, title=f"{n_digits} digits drawn pixel by pixel after {pixel_run.step} steps")
plt.show()

# %% [markdown]
# With the cache a digit took 147 ms, without it 358 ms, and the VAE's decoder 5.11 ms: even cached,
# the exact likelihood costs about 29 times the VAE's sampling time, because the 784 pixels are drawn
# one after another. These digits, after 4 minutes, are blotchy strokes; the 20-minute run's samples
# are in `docs/pixel.md` (FID-MNIST 714, recall 0.823, the highest of the image families).

# %% [markdown]
# ## What to try next
#
# - Train longer: `genzoo train configs/lm_shakespeare.toml --set train.max_steps=5000`, then
#   `genzoo sample runs/<run> --prompt "ROMEO:" --temperature 0.8`.
# - Set `positions = "learned"` and compare the validation curves.
# - Replace `is_causal=T > 1` with `is_causal=False` in a copy of the model: the training loss
#   collapses towards zero (the model reads the answer), and samples become nonsense.

# %% [markdown]
# ## Exercises
#
# Three exercises, each a function you write. `check` calls it on inputs of its own and compares
# the result with an independent computation: it prints "right", or one sentence on what is wrong.
# Worked solutions are in [`notebooks/solutions/lm.py`](solutions/lm.py); try first.
#
# **1. Top-k sampling.** Write the distribution that top-k sampling draws from (section 8): for
# logits of shape $(n, V)$ and an integer $k$, return probabilities of shape $(n, V)$, the softmax
# over each row's $k$ largest logits and exactly 0 for the others. A draw is then
# `torch.multinomial(probs, 1)`. Use `torch.topk`, not `TransformerLM._pick`. The check compares the
# whole distribution (not one draw) for several $k$, including $k = 1$ (greedy) and $k = V$ (plain
# sampling).

# %%
def my_top_k(logits, k):
    """(n, V) probabilities: the softmax over each row's k largest logits, 0 for the others."""
    raise NotImplementedError  # your code here


check("lm.top_k", my_top_k)


# %% [markdown]
# **2. Causal self-attention.** Write section 4's equation for whole batches, without
# `F.scaled_dot_product_attention`: for queries, keys and values of shape $(B, H, T, d)$ return
# $\operatorname{softmax}(Q K^\top / \sqrt d + M)\,V$, with $M$ the causal mask. The check compares
# it with a loop over positions $t$, each attending to the positions $s \le t$ one by one.

# %%
def my_causal_attention(q, k, v):
    """softmax(Q K^T / sqrt(d) + M) V for q, k, v of shape (B, H, T, d); M = -inf where s > t."""
    raise NotImplementedError  # your code here


check("lm.causal_attention", my_causal_attention)


# %% [markdown]
# **3. Bits per character, from the logits.** With nothing but `model(ids)` (next-character logits,
# section 3) and the chain rule, return for token ids of shape $(B, T)$ the bits per character of
# $x_2 \dots x_T$ given $x_1$, one number per sequence, as section 9 defines it (without calling
# `log_prob` or `loss`). The check runs it on a small random `TransformerLM` and compares it with
# feeding the model every prefix $x_1 \dots x_t$ separately and scoring $x_{t+1}$ from its last
# position: $T - 1$ forward passes, where the causal mask lets you use one.

# %%
def my_bits_per_char(model, ids):
    """(B,) bits per character of x_2 .. x_T given x_1 under ``model``, for token ids (B, T)."""
    raise NotImplementedError  # your code here


check("lm.bits_per_char", my_bits_per_char)
