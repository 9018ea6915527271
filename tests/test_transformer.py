"""TransformerLM: shapes, learning, causality, the likelihood, RoPE's relative-position identity, sampling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genzoo.config import load_config
from genzoo.errors import ConfigError
from genzoo.metrics import heldout_nll
from genzoo.models.transformer import (
    CausalSelfAttention,
    TransformerConfig,
    TransformerLM,
    apply_rotary,
    rotary_angles,
)
from genzoo.specs import TextSpec

VOCAB = "\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SPEC = TextSpec(name="test", vocab=VOCAB)
POSITIONS = ["learned", "rotary"]


def make_model(positions: str = "rotary", seed: int = 0, **kw) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = TransformerConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, positions=positions, **kw)
    return TransformerLM.from_config(cfg, SPEC).eval()


def random_ids(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(len(VOCAB), (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("positions", POSITIONS)
def test_shapes(positions):
    model = make_model(positions)
    ids = random_ids(3, 16)
    assert model.cfg.vocab_size == len(VOCAB)
    assert model(ids).shape == (3, 16, len(VOCAB))
    loss, metrics = model.loss((ids, random_ids(3, 16, seed=2)))
    assert loss.shape == () and loss.requires_grad
    assert set(metrics) == {"loss", "nats_per_char", "bits_per_char"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["bits_per_char"] == pytest.approx(metrics["nats_per_char"] / math.log(2))
    assert model.log_prob(ids).shape == (3,)
    assert model.sample(2, prompt="Hi", max_new_tokens=5).shape == (2, 7)
    states = list(model.trajectory(2, prompt="Hi", max_new_tokens=4))
    assert [s.shape for s in states] == [(2, 3), (2, 4), (2, 5), (2, 6)]
    assert model.sample(2, prompt="Hi", max_new_tokens=0).shape == (2, 2)


def test_untrained_loss_is_near_uniform():
    model = make_model()
    _, metrics = model.loss((random_ids(4, 16), random_ids(4, 16, seed=2)))
    assert metrics["loss"] == pytest.approx(math.log(len(VOCAB)), abs=0.05)


@pytest.mark.parametrize("positions", POSITIONS)
def test_loss_decreases_on_a_fixed_batch(positions):
    model = make_model(positions).train()
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 2
    data = SPEC.encode(text)
    ids = torch.stack([data[i : i + 16] for i in range(0, 64, 8)])  # (8, 16)
    targets = torch.stack([data[i + 1 : i + 17] for i in range(0, 64, 8)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.loss((ids, targets))[1]["loss"]
    for _ in range(40):
        loss, _ = model.loss((ids, targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = model.loss((ids, targets))[1]["loss"]
    assert last < 0.5 * first


@pytest.mark.parametrize("positions", POSITIONS)
def test_causal_mask(positions):
    """Changing tokens after position t never changes the logits at positions <= t."""
    model = make_model(positions)
    ids = random_ids(2, 16)
    logits = model(ids)
    for t in (0, 5, 14):
        changed = ids.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % len(VOCAB)
        other = model(changed)
        torch.testing.assert_close(other[:, : t + 1], logits[:, : t + 1])
        assert not torch.allclose(other[:, t + 1 :], logits[:, t + 1 :])  # later positions do see it


@pytest.mark.parametrize("positions", POSITIONS)
def test_log_prob_is_the_sum_of_next_token_log_probs(positions):
    """Against a brute-force loop: one forward pass per prefix, softmax by hand."""
    model = make_model(positions)
    ids = random_ids(2, 9)
    expected = torch.zeros(2, dtype=torch.float64)
    for t in range(1, 9):
        logits = model(ids[:, :t])[:, -1].double()  # prediction of ids[:, t] from ids[:, :t]
        log_norm = logits.exp().sum(-1).log()
        expected += logits[torch.arange(2), ids[:, t]] - log_norm
    torch.testing.assert_close(model.log_prob(ids).double(), expected, atol=1e-4, rtol=1e-5)
    # and the loss is the same quantity averaged per character
    loss, _ = model.loss((ids[:, :-1], ids[:, 1:]))
    torch.testing.assert_close(loss.double(), -expected.sum() / (2 * 8), atol=1e-5, rtol=1e-5)


def test_heldout_nats_per_char_under_a_fixed_unigram_model_match_a_hand_computation():
    """With the final LayerNorm's gain zeroed, every position predicts softmax(W_e beta): a fixed unigram
    table. The held-out loss of two texts is then computed by hand, character by character."""
    model = make_model(bias=True)
    beta = torch.randn(32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model.ln_out.weight.zero_()
        model.ln_out.bias.copy_(beta)
    rows = model.token_embedding.weight.tolist()  # tied to the output layer
    logits = [sum(w * b for w, b in zip(row, beta.tolist())) for row in rows]
    log_z = math.log(sum(math.exp(v) for v in logits))
    texts = ["To be, or not to", "be: that is the ", "question. Whethe"]  # 16 characters: 15 predicted
    by_hand = [-sum(logits[VOCAB.index(c)] - log_z for c in text[1:]) for text in texts]  # the first is given
    ids = torch.stack([SPEC.encode(text) for text in texts])
    result = heldout_nll(model, [(ids[:2], torch.zeros(2)), (ids[2:], torch.zeros(1))])
    assert result["examples"] == 3
    assert result["nll_nats"] == pytest.approx(sum(by_hand) / 3, rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(sum(by_hand) / 3 / 15 / math.log(2), rel=1e-5)  # per predicted char


def test_log_prob_gradients_flow():
    """No grad-mode decorator on the interface: log_prob can be differentiated."""
    model = make_model()
    model.log_prob(random_ids(2, 8)).sum().backward()
    assert model.token_embedding.weight.grad is not None


def test_rope_scores_depend_only_on_relative_position():
    """<R_m q, R_n k> = <q, R_{n-m} k> (Su et al. 2021, eq. 16): shifting both positions changes nothing."""
    d, T = 8, 32
    cos, sin = rotary_angles(T, d)
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    rq = apply_rotary(q.float().expand(T, d), cos, sin).double()  # row m: R_m q
    rk = apply_rotary(k.float().expand(T, d), cos, sin).double()  # row n: R_n k
    scores = rq @ rk.T  # (T, T): scores[m, n] = <R_m q, R_n k>
    for m, n, shift in [(3, 7, 10), (0, 5, 20), (9, 2, 13)]:
        assert float(scores[m, n]) == pytest.approx(float(scores[m + shift, n + shift]), abs=1e-4)
        if n >= m:
            assert float(scores[m, n]) == pytest.approx(float(q @ rk[n - m]), abs=1e-4)
    # a rotation keeps lengths, and position 0 is the identity
    torch.testing.assert_close(rq.norm(dim=1), q.norm().expand(T), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(rq[0], q, atol=1e-6, rtol=1e-6)
    # independent check of one pair against the 2x2 rotation matrix of the paper (pair i, i + d/2)
    i, m = 1, 5
    theta = 10000 ** (-2 * i / d)
    rotation = torch.tensor(
        [[math.cos(m * theta), -math.sin(m * theta)], [math.sin(m * theta), math.cos(m * theta)]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(rq[m, [i, i + d // 2]], rotation @ q[[i, i + d // 2]], atol=1e-5, rtol=1e-5)


def test_greedy_sampling():
    """temperature 0 and top_k = 1 both pick the argmax, step by step, whatever the generator."""
    model = make_model()
    greedy = model.sample(2, prompt="The ", max_new_tokens=6, temperature=0.0)
    top1 = model.sample(2, prompt="The ", max_new_tokens=6, top_k=1, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(greedy, top1)
    ids = SPEC.encode("The ")[None]
    for _ in range(6):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    torch.testing.assert_close(greedy[0], ids[0])


def test_sampling_is_reproducible_and_respects_top_k():
    model = make_model()
    a = model.sample(4, prompt="a", max_new_tokens=15, top_k=3, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, prompt="a", max_new_tokens=15, top_k=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    # every sampled token was among the 3 most probable given its context
    logits = model(a[:, :-1])  # (4, 15, V)
    top3 = logits.topk(3, dim=-1).indices  # (4, 15, 3)
    assert (top3 == a[:, 1:, None]).any(-1).all()


@pytest.mark.parametrize("temperature, top_k", [(0.5, 0), (2.0, 0), (1.5, 3)])
def test_sampled_frequencies_follow_softmax_of_logits_over_temperature(temperature, top_k):
    """Monte Carlo: 40,000 draws from fixed logits land on each character as often as softmax(logits / T)
    predicts (restricted to the top k and renormalised when k > 0), within 4 standard errors."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(40_000, 1)
    picks = TransformerLM._pick(logits, torch.Generator().manual_seed(0), temperature, top_k)[:, 0]
    frequencies = torch.bincount(picks, minlength=5).double() / len(picks)
    expected = [math.exp(v / temperature) for v in (2.0, 1.0, 0.5, 0.0, -1.0)]
    if top_k:
        expected = expected[:top_k] + [0.0] * (5 - top_k)
    expected = torch.tensor(expected, dtype=torch.float64) / sum(expected)
    se = (expected * (1 - expected) / len(picks)).sqrt()
    assert ((frequencies - expected).abs() <= 4 * se + 1e-12).all(), (frequencies, expected)


def test_sample_defaults_are_the_documented_ones():
    """A newline prompt, 500 new characters, temperature 1 and no top-k, as ``sample``'s docstring says;
    ``trajectory`` has the same defaults (its last step is ``sample``'s result)."""
    model = make_model()
    default = model.sample(2, generator=torch.Generator().manual_seed(3))
    assert default.shape == (2, 501) and (default[:, 0] == VOCAB.index("\n")).all()
    steps = list(model.trajectory(2, generator=torch.Generator().manual_seed(3)))
    assert len(steps) == 500
    torch.testing.assert_close(steps[-1], default, rtol=0, atol=0)


def test_rotary_angles_are_su_et_al_eq_15():
    """theta_i = 10000^(-2i/d) (Su et al. 2021, eq. 15), position m turns pair i by m theta_i: by hand."""
    cos, sin = rotary_angles(7, 8)
    for m in range(7):
        for i in range(4):  # pairs (i, i + d/2) share the angle
            angle = m * 10000 ** (-2 * i / 8)
            for j in (i, i + 4):
                assert cos[m, j].item() == pytest.approx(math.cos(angle), abs=1e-6)
                assert sin[m, j].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_top_k_keeps_k_characters_even_for_a_single_row():
    """One row of logits (the usual case when sampling one text): top-3 still draws from three characters."""
    logits, g = torch.tensor([[2.0, 1.9, 1.8, -5.0]]), torch.Generator().manual_seed(0)
    picks = {TransformerLM._pick(logits, g, 1.0, 3).item() for _ in range(200)}
    assert picks == {0, 1, 2}


def test_rotary_angles_stay_exact_at_long_positions():
    """The angles are computed in float64: at position 8,191 a float32 m * theta would be off by ~1e-3."""
    cos, sin = rotary_angles(8192, 8)
    for i in range(4):
        angle = 8191 * 10000 ** (-2 * i / 8)
        assert cos[-1, i].item() == pytest.approx(math.cos(angle), abs=1e-6)
        assert sin[-1, i].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_rotary_keeps_a_bf16_input_in_bf16():
    """Under bf16 autocast q and k arrive in bf16: rotating them must not promote them to float32."""
    cos, sin = rotary_angles(5, 8)
    assert apply_rotary(torch.randn(2, 5, 8, dtype=torch.bfloat16), cos, sin).dtype == torch.bfloat16


def test_rotary_positions_reach_attention():
    """Without positions, one layer of causal attention sees the earlier tokens as a set: permuting them
    leaves the last position's logits unchanged. With rotary positions, it changes them."""
    torch.manual_seed(0)
    cfg = TransformerConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, positions="rotary")
    model = TransformerLM.from_config(cfg, SPEC).eval()
    ids = torch.tensor([[3, 9, 14, 20, 7]])
    swapped = torch.tensor([[9, 3, 20, 14, 7]])  # the same tokens before the last, in another order
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0, -1], model(swapped)[0, -1], atol=1e-4)
        attention = model.blocks[0].attn
        attention.forward = lambda h, rope, cache: CausalSelfAttention.forward(attention, h, None)  # rotary off
        torch.testing.assert_close(model(ids)[0, -1], model(swapped)[0, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_bias_flag_reaches_every_linear_layer_and_layer_norm(bias):
    model = make_model(bias=bias)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm))]
    assert len(layers) > 5
    for layer in layers:
        if layer is model.lm_head:
            assert layer.bias is None  # tied to the embedding: no bias either way
        else:
            assert (layer.bias is not None) == bias, layer


def test_attention_dropout_acts_in_training_only():
    torch.manual_seed(0)
    cfg = TransformerConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, dropout=0.5)
    attention, h = CausalSelfAttention(cfg), torch.randn(2, 8, 16)
    attention.resid_dropout.p = 0.0  # only the attention weights' dropout is left
    plain = CausalSelfAttention(TransformerConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, dropout=0.0))
    plain.load_state_dict(attention.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(attention.eval()(h, None), plain.eval()(h, None))  # off in eval mode
        attention.train()
        assert not torch.allclose(attention(h, None), attention(h, None))  # on, and random, in training


def test_context_is_cropped_to_block_size():
    model = make_model()  # block_size 16
    ids = model.sample(1, prompt="x" * 20, max_new_tokens=5, temperature=0.0)
    assert ids.shape == (1, 25)


def test_state_dict_round_trip_keeps_the_vocab():
    model = make_model(seed=0)
    state = model.state_dict()
    assert state["vocab"].dtype == torch.int32
    assert "".join(map(chr, state["vocab"].tolist())) == VOCAB
    other_spec = TextSpec(name="other", vocab="".join(sorted(VOCAB, reverse=True)))
    fresh = TransformerLM.from_config(TransformerConfig(n_layer=2, n_head=2, n_embd=32, block_size=16), other_spec)
    fresh.load_state_dict(state)
    assert fresh.spec.vocab == VOCAB
    ids = random_ids(2, 10)
    torch.testing.assert_close(fresh.eval()(ids), model(ids))


def test_string_prompt_round_trips():
    model = make_model()
    prompt = "ROMEO:\nWhat, ho!"
    ids = model.sample(3, prompt=prompt, max_new_tokens=10)
    for row in ids:
        text = model.spec.decode(row)
        assert text.startswith(prompt) and len(text) == len(prompt) + 10
    torch.testing.assert_close(model.spec.encode(prompt), SPEC.encode(prompt))


def test_config_errors():
    with pytest.raises(ConfigError, match="vocab_size"):
        TransformerLM.from_config(TransformerConfig(vocab_size=10), SPEC)
    with pytest.raises(ConfigError, match="positions"):
        TransformerLM.from_config(TransformerConfig(positions="alibi"), SPEC)
    with pytest.raises(ConfigError, match="n_head"):
        TransformerLM.from_config(TransformerConfig(n_embd=30, n_head=4), SPEC)
    with pytest.raises(ConfigError, match="even"):
        TransformerLM.from_config(TransformerConfig(n_embd=36, n_head=4), SPEC)  # head size 9


def test_grad_mode_is_left_alone_between_trajectory_steps():
    model = make_model()
    for _ in model.trajectory(1, max_new_tokens=3):
        assert torch.is_grad_enabled()


@pytest.mark.parametrize("name", ["lm_shakespeare", "lm_tinyshakespeare"])
def test_configs_build_a_model_and_sample(name):
    """Every key of the shipped configs is known; their [sample] options are sample's keywords."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml")
    assert cfg.family == "lm" and cfg.data.name == name.removeprefix("lm_")
    assert cfg.data.block_size <= cfg.model.block_size
    model = TransformerLM.from_config(cfg.model, SPEC)
    options = {**cfg.sample, "max_new_tokens": 3}
    assert model.sample(2, **options).shape == (2, len(cfg.sample["prompt"]) + 3)


def test_residual_projections_start_at_gpt2_scaled_init():
    """GPT-2 (sec. 2.3): the layers that write into the residual stream start at std 0.02 / sqrt(2 n_layer);
    every other weight at 0.02."""
    torch.manual_seed(0)
    cfg = TransformerConfig(n_layer=8, n_head=2, n_embd=128, block_size=16, vocab_size=len(VOCAB))
    model = TransformerLM.from_config(cfg, SPEC)
    for name, p in model.named_parameters():
        if name.endswith(("proj.weight", "down.weight")):
            assert p.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05), name
        elif name.endswith(("qkv.weight", "up.weight")):
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name


def test_rotary_tables_use_the_configured_base_and_stay_out_of_checkpoints():
    model = make_model(rope_base=500.0)
    cos, sin = rotary_angles(16, 16, 500.0)
    torch.testing.assert_close(model.rope_cos, cos)
    torch.testing.assert_close(model.rope_sin, sin)
    assert not any("rope" in key for key in model.state_dict())  # rebuilt from the config, not saved


# ----------------------------------------------------------------------------- the key-value cache


def sharp_model(positions: str, n_layer: int) -> TransformerLM:
    """A tiny model with large random weights: its next-token distributions are far from uniform, so a
    cache that read the wrong keys would change the sampled tokens."""
    torch.manual_seed(0)
    cfg = TransformerConfig(n_layer=n_layer, n_head=2, n_embd=32, block_size=16, positions=positions)
    model = TransformerLM.from_config(cfg, SPEC).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5)
    return model


def both_paths(model: TransformerLM, max_new_tokens: int, prompt: str = "Hi") -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(model.sample(8, generator=torch.Generator().manual_seed(3), prompt=prompt,
                              max_new_tokens=max_new_tokens, kv_cache=kv_cache) for kv_cache in (True, False))


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("n_layer", [1, 3])
def test_cached_sampling_gives_the_uncached_tokens_within_the_block(positions, n_layer):
    model = sharp_model(positions, n_layer)
    cached, uncached = both_paths(model, max_new_tokens=14)  # 2 + 14 = block_size tokens
    assert cached.shape == (8, 16)
    torch.testing.assert_close(cached, uncached, rtol=0, atol=0)


def test_past_the_block_one_rotary_layer_and_learned_positions_still_match_the_uncached_path():
    """One rotary layer: a key depends on its own token and position only, and scores on differences of
    positions, so the sliding window and the cropped rerun agree. Learned positions: the cache stops at
    the block and the context is rerun, exactly as without it."""
    for model in (sharp_model("rotary", 1), sharp_model("learned", 3)):
        cached, uncached = both_paths(model, max_new_tokens=40)
        torch.testing.assert_close(cached, uncached, rtol=0, atol=0)


def sliding_window_logits(model: TransformerLM, ids: torch.Tensor, window: int) -> torch.Tensor:
    """Logits (B, T, V) of a rotary model in which every token attends to itself and the window - 1 tokens
    before it, in every layer: written out with an explicit band mask and softmax, not the cache."""
    B, T = ids.shape
    C, H = model.cfg.n_embd, model.cfg.n_head
    i = torch.arange(T)
    allowed = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)  # (T, T) query x key
    cos, sin = rotary_angles(T, C // H, model.cfg.rope_base)
    h = model.token_embedding(ids)
    for block in model.blocks:
        attention = block.attn
        q, k, v = attention.qkv(block.ln_attn(h)).split(C, dim=2)
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in (q, k, v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(C // H)).masked_fill(~allowed, float("-inf"))
        y = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        h = h + attention.proj(y)
        h = h + block.mlp(block.ln_mlp(h))
    return model.lm_head(model.ln_out(h))


def test_past_the_block_the_cache_is_a_sliding_window_of_attention_in_every_layer():
    """Three rotary layers, 40 tokens through a 16-token cache: the cached logits at every position equal
    those of a full pass whose attention is masked to the last 16 tokens, computed independently."""
    from genzoo.models.transformer import KVCache

    model = sharp_model("rotary", 3)
    ids = random_ids(2, 40)
    cache = KVCache(model.cfg.n_layer, size=16)
    with torch.no_grad():
        steps = [model(ids[:, :5], cache)] + [model(ids[:, t : t + 1], cache) for t in range(5, 40)]
        reference = sliding_window_logits(model, ids, window=16)
    torch.testing.assert_close(torch.cat(steps, dim=1), reference, rtol=1e-4, atol=1e-4)
    assert cache.position == 40
    cropped = model(ids[:, -16:])[:, -1]  # what the uncached path predicts: differs, the window has slid
    assert not torch.allclose(cropped, reference[:, -1], atol=1e-3)


def test_a_cache_takes_the_prompt_then_one_token_at_a_time():
    from genzoo.models.transformer import KVCache

    model = make_model()
    cache = KVCache(model.cfg.n_layer, size=16)
    model(random_ids(1, 4), cache)
    with pytest.raises(ValueError, match="one at a time"):
        model(random_ids(1, 2), cache)
    with pytest.raises(ValueError, match="at most 16 prompt tokens"):
        model.blocks[0].attn(torch.zeros(1, 17, 32), None, KVCache(1, size=16).layers[0])
