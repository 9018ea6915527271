"""Trains small configs under ``torchrun`` for tests/test_distributed.py, one after another in one process group.

    python -m torch.distributed.run --nproc_per_node=2 tests/distributed_worker.py OUT RUNS_JSON

RUNS_JSON maps a run name to [config file, [overrides], checkpoint to resume from or null]. Every rank
writes its final weights to
OUT/<name>/rank<r>.pt (so the test can check the ranks agree); rank 0 also writes the run folder.
"""

import json
import sys
from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.sources import load_data
from genzoo.trainer import Trainer


def main() -> None:
    out, runs = Path(sys.argv[1]), json.loads(sys.argv[2])
    for name, (config, overrides, resume) in runs.items():
        cfg = load_config(config, overrides)
        data = load_data(cfg.data)
        trainer = Trainer(build_model(cfg, data.spec, seed=cfg.train.seed), data, cfg, out / name)
        if resume:
            trainer.resume(resume)
        trainer.fit()
        (out / name).mkdir(parents=True, exist_ok=True)
        torch.save(trainer.model.state_dict(), out / name / f"rank{trainer.world.rank}.pt")


if __name__ == "__main__":
    main()
