"""The baselines every notebook measures first: a bigram table and independent pixels, against closed forms."""

import math

import torch

from genzoo.baselines import bigram_log_probs, bigram_nats_per_char, independent_pixels_bits_per_dim, pixel_histograms


def test_bigram_table_is_the_smoothed_count_ratio_and_its_rows_are_distributions():
    train = torch.tensor([0, 1, 0, 1, 1, 2, 0])  # pairs: 01 10 01 11 12 20
    table = bigram_log_probs(train, vocab_size=3, alpha=0.5)
    assert torch.allclose(table.exp().sum(dim=1), torch.ones(3))
    # after 1: counts to 0, 1, 2 are 1, 1, 1 (+ 1/2 each) -> 1/3 each; after 0: 0, 2, 0 -> (0.5, 2.5, 0.5) / 3.5
    assert torch.allclose(table[1].exp(), torch.full((3,), 1 / 3))
    assert torch.allclose(table[0].exp(), torch.tensor([0.5, 2.5, 0.5]) / 3.5)


def test_bigram_cross_entropy_of_a_deterministic_cycle_approaches_zero_and_of_iid_text_its_entropy():
    cycle = torch.arange(4).repeat(2000)  # 0 1 2 3 0 1 ...: each character fixes the next
    assert bigram_nats_per_char(cycle, cycle[:400], 4) < 0.01
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.25, 0.125, 0.125])
    iid = torch.multinomial(p, 200_000, replacement=True, generator=g)
    entropy = -(p * p.log()).sum().item()  # the best any model of i.i.d. characters can do
    assert abs(bigram_nats_per_char(iid[:100_000], iid[100_000:], 4) - entropy) < 0.01


def test_independent_pixels_bits_per_dim_is_the_cross_entropy_of_the_per_pixel_histograms():
    g = torch.Generator().manual_seed(0)
    # pixel 0 is 0 or 255 with probability 1/2; pixel 1 is always 7: 1 bit and 0 bits, so 0.5 bits/dim
    n = 40_000
    train = torch.stack([torch.randint(0, 2, (n,), generator=g) * 255, torch.full((n,), 7)], 1).view(n, 1, 1, 2)
    test = train[:1000].to(torch.uint8)
    bits = independent_pixels_bits_per_dim(train.to(torch.uint8), test, alpha=1e-6)
    assert abs(bits - 0.5) < 0.01
    log_p = pixel_histograms(train.to(torch.uint8), alpha=0.5)
    assert log_p.shape == (1, 1, 2, 256)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(1, 1, 2))
    # smoothing gives unseen levels probability > 0, so a new level costs finite bits
    unseen = torch.full((1, 1, 1, 2), 100, dtype=torch.uint8)
    assert math.isfinite(independent_pixels_bits_per_dim(train.to(torch.uint8), unseen))


def test_a_uniform_pixel_model_costs_8_bits_per_dim():
    levels = torch.arange(256, dtype=torch.uint8).repeat(40).view(-1, 1, 1, 1)  # every level equally often
    assert abs(independent_pixels_bits_per_dim(levels, levels[:256]) - 8.0) < 1e-4
