"""Time to quality of the pixel transformer on a 2-core CPU: which width, depth, batch, grouping.

Trains ``configs/pixel_mnist.toml`` (with ``--set`` overrides) through genzoo's own ``Trainer`` for
``train.max_minutes`` of step time, then measures exact bits/dim on the first ``--eval-images`` digits
of the MNIST test set, and appends one JSON line per run to bench/results/pixel_cpu.jsonl (with the
load average before and after: about 2 when nothing else ran). The numbers chose configs/pixel_mnist.toml;
docs/pixel.md has the table.

    GENZOO_DATA=/work/shared/data flock /tmp/bench.lock python bench/pixel_cpu.py --set train.max_minutes=3 \
        --set model.group=4 --tag g4
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import tempfile
from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.config import load_config
from genzoo.sources import load_data
from genzoo.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
NEVER = 10**9  # no eval, samples or checkpoints inside the timed loop


class NoSampleTrainer(Trainer):
    """The genzoo Trainer without its end-of-run sample grid: drawing pixel by pixel is not what is timed."""

    def save_samples(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "pixel_mnist.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--tag", default="")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "pixel_cpu.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    intervals = [f"train.{k}={NEVER}" for k in ("eval_every", "sample_every", "checkpoint_every")]
    cfg = load_config(args.config, args.overrides + intervals + ["train.device=cpu", "train.eval_batches=1"])
    data = load_data(cfg.data, args.data_root)
    model = build_model(cfg, data.spec, seed=cfg.train.seed)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = NoSampleTrainer(model, data, cfg, tmp)
        run = trainer.fit()
        step_time = trainer.elapsed  # the training steps' time, what max_minutes budgets
    load_after = os.getloadavg()[0]
    model.eval()
    x = torch.cat([x for x, _ in data.test_batches(500)])[: args.eval_images]
    y = torch.cat([y for _, y in data.test_batches(500)])[: args.eval_images]
    with torch.no_grad():
        nll = -model.log_prob(x, y=y if model.conditional else None).mean().item()
    result = {
        "tag": args.tag, "overrides": args.overrides, "steps": run.step, "batch_size": cfg.data.batch_size,
        "images_per_s": round(run.step * cfg.data.batch_size / step_time, 2), "step_time_s": round(step_time, 1),
        "test_bits_per_dim": round(nll / (x[0].numel() * math.log(2)), 4), "eval_images": len(x),
        "parameters": sum(p.numel() for p in model.parameters()),
        "load_before": round(load_before, 2), "load_after": round(load_after, 2),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
    }
    print(json.dumps(result))
    with open(args.json, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
