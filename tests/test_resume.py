"""Exact resume for every family in the registry: N steps, a checkpoint, a new trainer that resumes from
it and trains N more equals 2N steps straight, in every piece of state the trainer carries.

What is compared after 2N steps: every tensor of the model's state_dict (parameters and buffers: the
flow's ActNorm ``initialised`` flags, spectral-norm ``u``, batch-norm statistics, the EBM's replay
buffer), every optimizer's state_dict (exp_avg, exp_avg_sq, step, and the param groups' learning
rates), the schedulers, the EMA (its weights, buffers and ``n_averaged``), the data stream's position,
the global RNG, the step and the best validation loss. On CPU the two runs do the same operations in
the same order, so everything is compared to the last bit (``torch.equal``, ``==``), not within a
tolerance: any difference is a piece of state that the checkpoint lost.

The small configs below turn on what makes resuming hard where a family has it: dropout (the LM and
the DDPM draw from the global RNG inside the network), the variational dequantizer and ActNorm's
data-dependent initialisation (the flow, on images), spectral norm, batch norm and two optimizers (the
GAN, on images), class-labelled replay-buffer slots (the EBM), and the EMA for every family.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from genzoo.checkpoint import load_checkpoint
from genzoo.models import FAMILIES
from genzoo.recipe import make_trainer, train_arguments
from genzoo.trainer import Trainer
from helpers import CONFIGS, trained_vae_run, trainer_for

N = 3  # steps before the checkpoint, and again after it

EVERY_FAMILY = [  # all trainers: a checkpoint at N, validation at N and 2N, EMA on, offline data
    f"train.max_steps={2 * N}",
    f"train.checkpoint_every={N}",
    f"train.eval_every={N}",  # validated at N in both runs, so best_val compares too
    f"train.sample_every={100 * N}",  # only the end-of-run grids
    "train.eval_batches=1",
    "train.log_every=1",
    "train.n_samples=2",
    "train.warmup_steps=2",  # the learning rate changes at every step: the schedulers must resume
    "train.ema_decay=0.9",  # the EBM's configs leave it off (it averages the replay buffer too); on here
    "train.max_minutes=0",
    "train.device=cpu",  # bit-exact is a CPU promise: some CUDA kernels (atomic adds in backward) are not
    "data.batch_size=8",
    "data.download=false",  # $GENZOO_DATA's MNIST when set, else the digits genzoo ships; never the network
]

SMALL: dict[str, tuple[str, list[str]]] = {  # family -> (config, overrides): tiny models of a few seconds
    "lm": ("lm_shakespeare.toml", [  # the corpus genzoo ships: offline
        "model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=16", "model.dropout=0.1",
        "data.block_size=16", "sample.max_new_tokens=4",
    ]),
    "vae": ("vae_mnist.toml", [
        "model.latent_dim=4", "model.encoder_channels=[4, 8]", "model.decoder_channels=[8, 4]", "model.iw_samples=2",
    ]),
    "ddpm": ("ddpm_mnist.toml", [  # conditional, so label dropout draws from the RNG too
        "model.channels=[8, 8]", "model.dropout=0.1", "model.bound_timesteps=2", "sample.steps=2",
    ]),
    "gan": ("gan_mnist.toml", [  # images: batch norm in G, spectral norm in D, projection D, R1
        "model.latent_dim=8", "model.channels=[8, 4]", "model.label_dim=4", "model.n_critic=2", "model.r1_gamma=0.1",
    ]),
    "flow": ("flow_mnist.toml", [  # images: ActNorm's initialisation and the variational dequantizer
        "model.checkerboard=2", "model.checkerboard_hidden=4", "model.steps=1", "model.scales=2", "model.hidden=4",
        "model.dequantization=variational", "model.dequant_layers=2", "model.dequant_hidden=4",
    ]),
    "pixel": ("pixel_mnist.toml", [  # grouped and conditional: two transformers and the start tokens; dropout
        "model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.group=4", "model.local_embd=8",
        "model.local_head=2", "model.dropout=0.1", "model.conditional=true",
    ]),
    "ldm": ("ldm_mnist.toml", [  # a frozen VAE (model.autoencoder, added by the test), a text encoder, prompt dropout
        "model.width=16", "model.depth=1", "model.heads=2", "model.text_layers=1", "model.text_width=8",
        "model.text_heads=2", "model.timesteps=50", "sample.steps=2",
    ]),
    "ebm": ("ebm_ring.toml", [  # points: the replay buffer, one share of its slots per class
        "model.hidden=16", "model.depth=2", "model.buffer_size=64", "model.sgld_steps=3", "model.conditional=true",
        "sample.mcmc_steps=2",
    ]),
}

HOLDS = {  # state_dict keys (endings) that a family's small config must have, so the test covers them
    "flow": ["initialised", "dequantizer.couplings.0.net.0.weight"],
    "gan": ["running_mean", "running_var", "num_batches_tracked", "parametrizations.weight.0.u"],
    "ebm": ["replay.chains"],
}


def differences(a: Any, b: Any, where: str) -> list[str]:
    """Where ``a`` and ``b`` are not equal to the last bit: tensors by ``torch.equal`` (and dtype),
    containers key by key, anything else by ``==``."""
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        return [] if same else [where]
    if isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            return [f"{where} (keys)"]
        return [d for key in a for d in differences(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return [f"{where} (length)"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    same = a == b or (a != a and b != b)  # NaN is NaN
    return [] if same else [f"{where} ({a!r} != {b!r})"]


def state_after_training(trainer: Trainer) -> dict[str, Any]:
    """Everything that decides how training would go on, as the trainer's checkpoint holds it, with the
    global RNG as it is now (not as last saved); the wall-clock time and the config are left out."""
    state = trainer.state_dict()
    keys = ["model", "optimizers", "schedulers", "ema", "stream", "step", "best_val"]
    return {**{k: state[k] for k in keys}, "rng": torch.get_rng_state()}


def test_every_family_has_a_small_config():
    assert sorted(SMALL) == sorted(FAMILIES), "a family of the registry needs a small config in SMALL"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_resumed_run_equals_straight_run(family, tmp_path):
    assert family in SMALL, f"no small config for family {family!r}: add one to SMALL"
    config, overrides = SMALL[family]
    overrides = EVERY_FAMILY + overrides
    if family == "ldm":  # its autoencoder is a trained VAE run
        overrides = overrides + [f"model.autoencoder={trained_vae_run(tmp_path / 'vae')}"]

    straight = trainer_for(CONFIGS / config, tmp_path / "straight", overrides)
    assert straight.cfg.family == family
    straight.fit()
    expected = state_after_training(straight)

    first = trainer_for(CONFIGS / config, tmp_path / "halves", overrides)
    first.fit(stop_at=N)
    assert first.step == N
    at_n = load_checkpoint(tmp_path / "halves" / "last.pt")
    for ending in HOLDS.get(family, []):
        assert any(key.endswith(ending) for key in at_n["model"]), f"{family}'s small config has no {ending}"
    torch.manual_seed(12345)  # whatever the global RNG holds now, resuming must replace it
    args = train_arguments().parse_args(["--resume", str(tmp_path / "halves")])
    resumed = make_trainer(args)  # genzoo train --resume: the run's config.toml, then last.pt
    assert resumed.step == N
    resumed.fit()
    assert resumed.step == straight.step == 2 * N

    params = [name for name, p in resumed.model.named_parameters() if p.requires_grad]  # not a frozen autoencoder
    unmoved = [name for name in params if torch.equal(resumed.model.state_dict()[name], at_n["model"][name])]
    assert not unmoved, f"the second half did not train these parameters: {unmoved}"  # a test of something
    differ = differences(state_after_training(resumed), expected, family)
    assert not differ, f"{len(differ)} tensors or values differ after resuming: {', '.join(differ[:12])}"
