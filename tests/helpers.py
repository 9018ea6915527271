"""What several test files share: the configs folder, the overrides of a fast CLI run, a trainer built
the way ``genzoo train`` builds it, and the check that two trainers ended with the same weights.

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
