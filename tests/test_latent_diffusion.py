"""Latent diffusion with a text encoder (genzoo/models/latent_diffusion.py) and its captions (genzoo/prompts.py):
the latent round trip through the frozen VAE, the dropped prompt, guidance against its formula, guidance 0
as the unconditional sampler, held-out phrasings absent from training, and the one-line errors."""

from __future__ import annotations

import pytest
import torch

from genzoo.checkpoint import load_checkpoint, load_model
from genzoo.cli import main
from genzoo.errors import ConfigError
from genzoo.models.latent_diffusion import LatentDiffusion, LatentDiffusionConfig
from genzoo.prompts import (
    ARITHMETIC_PHRASINGS, BOS, HELDOUT_PHRASINGS, PAD, TRAINING_PHRASINGS, VOCAB, WORDS, caption, captions,
    encode_prompts,
)  # fmt: skip
from genzoo.specs import ImageSpec
from helpers import CONFIGS, FAST, digit_like_batch, losses_on_fixed_batch, trained_vae_run, trainer_for

MNIST = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
SMALL = dict(width=16, depth=2, heads=2, text_layers=1, text_width=8, text_heads=2, timesteps=50)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    return trained_vae_run(tmp_path_factory.mktemp("ldm") / "vae")


@pytest.fixture()
def model(vae_run) -> LatentDiffusion:
    torch.manual_seed(0)
    model = LatentDiffusion.from_config(LatentDiffusionConfig(autoencoder=str(vae_run), **SMALL), MNIST)
    torch.nn.init.normal_(model.denoiser.out.weight, std=0.3)  # it starts at 0 (eps = 0 whatever the prompt)
    return model


def decode_ids(ids: torch.Tensor) -> str:
    return "".join(VOCAB[i] for i in ids.tolist() if i not in (PAD, BOS))


# ----------------------------------------------------------------------------- captions


def test_captions_are_lower_case_ids_after_a_start_token_and_padded():
    ids = encode_prompts(["A Seven", ""], 10)
    assert ids.shape == (2, 11) and ids[:, 0].tolist() == [BOS, BOS]
    assert decode_ids(ids[0]) == "a seven" and (ids[0, 8:] == PAD).all()
    assert (ids[1, 1:] == PAD).all()  # the empty prompt is the start token alone


def test_a_caption_phrases_its_digit():
    assert caption("{a} {word}", 8) == "an eight" and caption("{a} {digit}", 7) == "a 7"
    assert caption("the number after {previous}", 7) == "the number after six"
    assert caption("the number before {next}", 7) == "the number before eight"
    assert caption("the number after {previous}", 0) is None and caption("the number before {next}", 9) is None
    assert caption("the number after {previous_digit}", 3) == "the number after 2"


def test_held_out_phrasings_are_absent_from_the_captions_training_draws_from(model):
    training = {decode_ids(row) for row in model.captions.flatten(0, 1)}  # everything the loss can draw
    assert training == {text for d in range(10) for text in captions(TRAINING_PHRASINGS, d)}
    for phrasings in (HELDOUT_PHRASINGS, ARITHMETIC_PHRASINGS):
        tested = {text for d in range(10) for text in captions(phrasings, d)}
        assert len(tested) >= 9 * len(phrasings) and not tested & training
    assert len(set(HELDOUT_PHRASINGS) & set(TRAINING_PHRASINGS)) == 0


def test_training_draws_every_phrasing_of_the_right_digit_evenly(model):
    torch.manual_seed(0)
    labels = torch.full((4000,), 7)
    from genzoo.prompts import training_captions

    drawn = [decode_ids(row) for row in training_captions(labels, model.captions, model.caption_counts)]
    expected = captions(TRAINING_PHRASINGS, 7)
    assert set(drawn) == set(expected)
    counts = torch.tensor([drawn.count(text) for text in expected], dtype=torch.float)
    assert (counts / len(drawn) - 1 / len(expected)).abs().max() < 0.03  # uniform, to Monte-Carlo error


@pytest.mark.parametrize("prompt, expected", [
    ("a seven!", "does not know: '!'"),
    ("the digit seven, the digit seven, please", "at most 32"),
])  # fmt: skip
def test_an_unreadable_prompt_is_a_one_line_error(model, prompt, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        model.sample(1, prompt=prompt, steps=2)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- the autoencoder


def test_the_latent_round_trip_is_the_frozen_vaes(model, vae_run):
    vae, _, _ = load_model(vae_run)
    for key, value in vae.state_dict().items():
        assert torch.equal(model.autoencoder.state_dict()[key], value), key
    x, y = digit_like_batch(8)
    before = {k: v.clone() for k, v in model.autoencoder.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = model.loss((x, y))
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in model.autoencoder.state_dict().items())  # frozen
    with torch.no_grad():  # a sample is the VAE's decoding of the trajectory's last latent
        *_, z0 = model.trajectory(3, generator=torch.Generator().manual_seed(1), prompt="a one", steps=4)
        images = model.sample(3, generator=torch.Generator().manual_seed(1), prompt="a one", steps=4)
        assert torch.equal(images, vae.decode(z0))
        mu, _ = vae.encode(x)
        assert torch.equal(model.autoencoder.decode(mu), vae.reconstruct(x))


def test_the_loss_reads_z_from_the_vaes_posterior(model):
    """The denoiser's input is q(z_t | z_0) of a draw z_0 ~ q(z|x) of the VAE: replayed from the same random numbers."""
    x, y = digit_like_batch(4)
    seen = {}
    model.denoiser.register_forward_hook(lambda module, args, out: seen.update(zt=args[0], t=args[1]))
    torch.manual_seed(3)
    model.loss((x, y))
    torch.manual_seed(3)
    mu, log_var = model.autoencoder.encode(x)
    z0 = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
    torch.rand(len(x)), torch.rand(len(x))  # the caption and the dropout draws come next
    t = torch.randint(1, model.T + 1, (len(x),))
    eps = torch.randn_like(z0)
    assert torch.equal(seen["t"], t)
    torch.testing.assert_close(seen["zt"], model.schedule.q_sample(z0, t, eps))


# ----------------------------------------------------------------------------- prompts and guidance


def test_a_dropped_prompt_is_ignored(model):
    x, y = digit_like_batch(16)
    other = (y + 3) % 10
    losses = {}
    for dropout in (1.0, 0.0):
        model.prompt_dropout = dropout
        for name, labels in (("y", y), ("other", other)):
            torch.manual_seed(0)
            losses[dropout, name] = model.loss((x, labels))[0].item()
    assert losses[1.0, "y"] == losses[1.0, "other"]  # every prompt dropped: the labels cannot matter
    assert losses[0.0, "y"] != losses[0.0, "other"]  # kept, they do (the test can fail)


def test_the_noise_estimate_is_the_gaussian_one_plus_the_network(model):
    """eps_theta = sqrt(1 - alpha_bar_t) z_t + F: exactly the best estimate for N(0, I) codes when F is 0."""
    z, t = torch.randn(4, model.autoencoder.latent_dim), torch.tensor([1, 10, 30, 50])
    text = model.encode_text(model.empty_prompts(4))
    alpha_bar = model.schedule.alpha_bar[t][:, None]
    torch.testing.assert_close(model.eps(z, t, *text) - model.denoiser(z, t, *text), (1 - alpha_bar).sqrt() * z)
    torch.nn.init.zeros_(model.denoiser.out.weight)
    torch.nn.init.zeros_(model.denoiser.out.bias)
    x0 = torch.randn(20000, model.autoencoder.latent_dim)  # N(0, I) codes: the estimate is E[eps | z_t]
    eps = torch.randn_like(x0)
    zt = model.schedule.q_sample(x0, 30, eps)
    t30 = torch.full((len(zt),), 30)
    error = ((model.eps(zt, t30, *model.encode_text(model.empty_prompts(len(zt)))) - eps) ** 2).mean()
    assert abs(error.item() - float(model.schedule.alpha_bar[30])) < 0.02  # the posterior variance of eps


def test_padding_after_a_caption_changes_nothing(model):
    z, t = torch.randn(2, model.autoencoder.latent_dim), torch.tensor([10, 10])
    alone = model.denoiser(z[:1], t[:1], *model.encode_text(encode_prompts(["a seven"], 32)))
    padded = model.denoiser(z, t, *model.encode_text(encode_prompts(["a seven", "the number before eight"], 32)))
    torch.testing.assert_close(padded[:1], alone, rtol=1e-5, atol=1e-6)


def test_guidance_is_the_unconditional_estimate_plus_s_times_the_difference(model):
    """Ho & Salimans 2022, eq. 6, checked against two separate passes of the denoiser."""
    torch.manual_seed(1)
    z = torch.randn(3, model.autoencoder.latent_dim)
    ids = encode_prompts(["a two", "seven", "an eight"], 32)
    t = torch.full((3,), 20)
    eps_prompt = model.eps(z, t, *model.encode_text(ids))
    eps_empty = model.eps(z, t, *model.encode_text(model.empty_prompts(3)))
    assert not torch.allclose(eps_prompt, eps_empty)
    both = model.encode_text(torch.cat([ids, model.empty_prompts(3)]))
    for s in (0.0, 1.0, 2.5):
        expected = eps_empty + s * (eps_prompt - eps_empty)
        torch.testing.assert_close(model.guided_eps(z, 20, *both, s), expected, rtol=1e-5, atol=1e-6)


def test_guidance_zero_is_the_unconditional_sampler(model):
    def draw(**options):
        return model.sample(4, generator=torch.Generator().manual_seed(2), steps=5, **options)

    unconditional = draw(prompt="", guidance=1.0)  # the model given the empty prompt, as trained
    torch.testing.assert_close(draw(prompt="a seven", guidance=0.0), unconditional, rtol=0, atol=1e-5)
    assert not torch.allclose(draw(prompt="a seven", guidance=3.0), unconditional, atol=1e-3)


def test_sample_and_trajectory_shapes_and_prompt_cycling(model):
    states = list(model.trajectory(5, steps=3))
    assert len(states) == 4 and all(s.shape == (5, model.autoencoder.latent_dim) for s in states)
    x = model.sample(5, steps=3, sampler="ddim")
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert model.prompts_for(12, ()) == list(WORDS) + ["zero", "one"]
    assert model.prompts_for(3, ["a", "b"]) == ["a", "b", "a"] and model.prompts_for(2, "seven") == ["seven"] * 2
    assert model.prompts_for(3, (), labels=torch.tensor([7, 0])) == ["seven", "zero", "seven"]
    assert model.prompts_for(2, "") == ["", ""]  # the empty prompt: the unconditional model
    for prompt, labels, message in (("seven", [7], "not both"), ((), [10], "digits 0..9")):
        with pytest.raises(ConfigError, match=message):  # genzoo sample prints it in one line
            model.prompts_for(2, prompt, labels)
    assert model.sample(2, sampler="ddpm").shape == (2, 1, 28, 28)  # all T = 50 ancestral steps
    with pytest.raises(ValueError, match="sampler must be one of"):
        model.sample(2, sampler="euler")


def test_loss_decreases_on_a_fixed_batch(model):
    x, y = digit_like_batch(32)
    torch.manual_seed(0)
    losses = losses_on_fixed_batch(model, (x, y), steps=80, lr=3e-3)
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10


# ----------------------------------------------------------------------------- configs and the CLI


def test_the_autoencoder_must_be_a_trained_unconditional_vae(tmp_path, vae_run):
    with pytest.raises(ConfigError, match="no trained VAE at .*train one first: genzoo train configs/vae_mnist.toml"):
        LatentDiffusion.from_config(LatentDiffusionConfig(autoencoder=str(tmp_path / "none")), MNIST)
    fashion = ImageSpec(name="fashion_mnist", shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ConfigError, match="captions describe digits"):
        LatentDiffusion.from_config(LatentDiffusionConfig(autoencoder=str(vae_run)), fashion)
    gan = tmp_path / "gan"
    trainer_for(CONFIGS / "gan_mnist.toml", gan, ["train.max_steps=1", "model.channels=[8, 4]", "train.n_samples=4",
                                                  "data.batch_size=8", "data.download=false"]).fit()
    with pytest.raises(ConfigError, match="holds a gan model; latent diffusion needs an unconditional VAE"):
        LatentDiffusion.from_config(LatentDiffusionConfig(autoencoder=str(gan)), MNIST)
    with pytest.raises(ConfigError, match="model.text_width must be a multiple of 2 \\* model.text_heads"):
        LatentDiffusion.from_config(LatentDiffusionConfig(autoencoder=str(vae_run), text_width=10, text_heads=4), MNIST)


def test_train_then_sample_a_prompt_with_guidance_from_the_cli(tmp_path, vae_run, capsys):
    run = tmp_path / "ldm"
    sets = [f"model.{k}={v}" for k, v in SMALL.items()] + [f"model.autoencoder={vae_run}", "sample.steps=2",
                                                           "data.download=false"]
    assert main(["train", str(CONFIGS / "ldm_mnist.toml"), "--out", str(run), *FAST,
                 *[a for s in sets for a in ("--set", s)]]) == 0
    assert load_checkpoint(run / "last.pt")["config"]["family"] == "ldm"
    out = tmp_path / "seven.png"
    assert main(["sample", str(run), "-n", "2", "--prompt", "a seven", "--guidance", "3", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["sample", str(run), "-n", "1", "--prompt", "seven?"]) == 2
    assert "does not know: '?'" in capsys.readouterr().err
