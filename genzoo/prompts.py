"""Captions for MNIST digits, in words: the prompts text-to-image learns from, and the ones it is tested on.

MNIST has labels, not captions, so a caption is made from a label by a phrasing (a template): "a seven",
"the digit 7", "the number after six". Each phrasing is either a *training* phrasing, used to make the
captions the model learns from, or a *held-out* one, never shown in training and used only to test it.
The held-out phrasings recombine parts the training phrasings use apart ("the digit" is trained with
the numeral, "the digit seven" is held out), so a model that scores well on them has learnt what the
words mean rather than memorised the strings. One *arithmetic* phrasing, "the number after 6", asks
more: the training captions say "after" only before a number's name, never before a numeral. It is
reported on its own and is not one of the held-out phrasings (``genzoo/models/latent_diffusion.py``).

Captions are lower case; ``encode_prompts`` lower-cases what a user types and refuses a character
outside ``VOCAB`` in one line (a ``ConfigError``: `genzoo sample` prints it). Modifiers such as "handwritten" say nothing about a digit's look (MNIST
has no such labels): they vary the phrasing, they do not control style.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from genzoo.errors import ConfigError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

PAD, BOS = 0, 1  # padding after a caption; the start token, which alone is the empty prompt
VOCAB = "\0^ 0123456789abcdefghijklmnopqrstuvwxyz"  # id = index: PAD, BOS, then the characters

TRAINING_PHRASINGS = (
    "{word}",
    "{digit}",
    "{a} {word}",
    "the digit {digit}",
    "the number {word}",
    "number {digit}",
    "a handwritten {word}",
    "write {a} {word}",
    "the number after {previous}",
    "the number before {next}",
)
HELDOUT_PHRASINGS = (
    "the digit {word}",
    "{a} {digit}",
    "the number {digit}",
    "a handwritten {digit}",
    "write the number {word}",
)
ARITHMETIC_PHRASINGS = ("the number after {previous_digit}",)


def article(word: str) -> str:
    """'an' before a vowel sound (eight, 8), else 'a'."""
    return "an" if word in ("eight", "8") else "a"


def caption(phrasing: str, digit: int) -> str | None:
    """The caption of ``digit`` in ``phrasing``, or None where the phrasing does not fit it (no number before 0)."""
    if ("{previous" in phrasing and digit == 0) or ("{next}" in phrasing and digit == 9):
        return None
    word = WORDS[digit]
    a = article(word if "{word}" in phrasing else str(digit))
    return phrasing.format(
        word=word, digit=digit, a=a, previous=WORDS[digit - 1], next=WORDS[(digit + 1) % 10], previous_digit=digit - 1
    )


def captions(phrasings: Sequence[str], digit: int) -> list[str]:
    """Every caption of ``digit`` in ``phrasings`` (those that fit it), in order."""
    return [text for p in phrasings if (text := caption(p, digit)) is not None]


def encode_prompts(prompts: Sequence[str], length: int) -> Tensor:
    """Captions -> (B, length + 1) int64 ids: BOS, the characters, then PAD. Lower-cased; one-line errors."""
    ids = torch.full((len(prompts), length + 1), PAD, dtype=torch.long)
    ids[:, 0] = BOS
    for row, prompt in enumerate(prompts):
        text = prompt.lower()
        if len(text) > length:
            raise ConfigError(f"prompt {prompt!r} has {len(text)} characters; this model reads at most {length}")
        unknown = sorted(set(text) - set(VOCAB[2:]))
        if unknown:
            raise ConfigError(f"prompt {prompt!r} has characters the text encoder does not know: {''.join(unknown)!r}; "
                             f"it knows letters, digits and spaces")
        ids[row, 1 : len(text) + 1] = torch.tensor([VOCAB.index(ch) for ch in text])
    return ids


def caption_table(phrasings: Sequence[str], length: int) -> tuple[Tensor, Tensor]:
    """Every caption of every digit, encoded: ids (10, K, length + 1) with digit d's captions first in
    row d (padded with copies of its first), and how many each digit has, (10,). ``training_captions``
    draws from it."""
    per_digit = [captions(phrasings, d) for d in range(10)]
    K = max(map(len, per_digit))
    table = torch.stack([encode_prompts(texts + texts[:1] * (K - len(texts)), length) for texts in per_digit])
    return table, torch.tensor([len(texts) for texts in per_digit])


def training_captions(labels: Tensor, table: Tensor, counts: Tensor) -> Tensor:
    """One caption per label (B,), each a uniformly drawn phrasing of its digit: ids (B, length + 1)."""
    pick = (torch.rand(len(labels), device=labels.device) * counts[labels]).long()  # uniform in 0..count-1
    return table[labels, pick]
