"""What several test files share: the configs folder, the overrides of a fast CLI run, a trainer built
the way ``genzoo train`` builds it, the check that two trainers ended with the same weights, a batch of
digit-like images, the losses of a few optimizer steps on one batch, and a tiny trained VAE run.

Test files import it by name (``from helpers import ...``): pytest puts ``tests/`` on the import path.
"""

from pathlib import Path
from typing import Sequence

import torch

from genzoo.recipe import make_trainer, train_arguments
from genzoo.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = [  # `genzoo train` arguments for a run of a few seconds
    "--set", "train.max_steps=3", "--set", "train.eval_batches=1", "--set", "train.log_every=1",
    "--set", "train.n_samples=4", "--set", "data.batch_size=8",
]


def trainer_for(config: Path, run_dir: Path, overrides: Sequence[str] = ()) -> Trainer:
    """``genzoo train``'s Trainer for ``config`` with ``--set`` ``overrides``, writing to ``run_dir``."""
    sets = [arg for override in overrides for arg in ("--set", override)]
    return make_trainer(train_arguments().parse_args([str(config), "--out", str(run_dir), *sets]))


def assert_same_weights(a: Trainer, b: Trainer) -> None:
    """The trained weights and, where kept, the EMA weights are equal to the last bit."""
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert (a.ema is None) == (b.ema is None)
    if a.ema is not None:
        for p, q in zip(a.ema.state_dict().values(), b.ema.state_dict().values()):
            assert torch.equal(p, q)


def digit_like_batch(B: int = 16, seed: int = 0, soft_edge: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit images that look a little like MNIST: mostly black, a bright 8x4 bar, and random labels.

    ``soft_edge`` adds a column of random 8-bit levels beside the bar, so that a pixel model sees
    levels other than the two extremes.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.full((B, 1, 28, 28), -1.0)
    for b in range(B):
        r, c = torch.randint(4, 18, (2,), generator=g).tolist()
        x[b, 0, r : r + 8, c : c + 4] = 1.0
        if soft_edge:
            x[b, 0, r : r + 8, c + 4] = torch.randint(0, 256, (8,), generator=g).float() / 127.5 - 1
    return x, torch.randint(0, 10, (B,), generator=g)


def losses_on_fixed_batch(model: torch.nn.Module, batch: tuple, steps: int = 40, lr: float = 3e-3) -> list[float]:
    """``model.loss(batch)`` at each of ``steps`` Adam steps on the same batch: it should go down."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


TINY_VAE = [  # a VAE of a few thousand weights, trained for two steps: an autoencoder for latent diffusion's tests
    "model.latent_dim=4", "model.encoder_channels=[4, 8]", "model.decoder_channels=[8, 4]", "model.iw_samples=2",
    "train.max_steps=2", "train.max_minutes=0", "train.eval_batches=1", "train.n_samples=4", "train.device=cpu",
    "data.batch_size=8", "data.download=false",
]


def trained_vae_run(run_dir: Path) -> Path:
    """A VAE run folder (configs/vae_mnist.toml, ``TINY_VAE``) for ``model.autoencoder``."""
    trainer_for(CONFIGS / "vae_mnist.toml", run_dir, TINY_VAE).fit()
    return run_dir
