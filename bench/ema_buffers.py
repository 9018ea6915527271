"""What the EMA should do with buffers: one GAN run, its generator averaged two ways, measured side by side.

The trainer's EMA averages the parameters and copies the buffers (batch-norm statistics, spectral
norm's vectors) from the trained model after each update. Before that change it averaged the floating
buffers too (``AveragedModel(..., use_buffers=True)``). This trains ``configs/gan_mnist.toml`` once
through the Trainer and keeps, beside the trainer's EMA, a second EMA that averages buffers, updated
after the same steps with the same decay; then it scores 1,000 samples of each, and of the raw
generator, with the shipped evaluator (FID-MNIST, precision, recall, recognizability, coverage).
The two EMAs share every parameter average, so any difference comes from the buffers alone.

    GENZOO_DATA=../shared/data flock /tmp/bench.lock python bench/ema_buffers.py \
        [--set train.max_minutes=...] [--json bench/results/ema_buffers.json]
"""

from __future__ import annotations

import sys
import time

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from genzoo.evaluator import load_evaluator
from genzoo.recipe import make_trainer
from harness import ROOT, bench_arguments, new_record, results_path, sample_quality, write_record  # bench/harness.py


def main() -> int:
    parser = bench_arguments("gan_mnist", __doc__)  # the GAN's config, this benchmark's record and run folder
    parser.set_defaults(json=str(ROOT / "bench" / "results" / "ema_buffers.json"),
                        out=f"runs/bench-ema_buffers-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()
    trainer = make_trainer(args)
    averaged_buffers = AveragedModel(trainer.model, multi_avg_fn=get_ema_multi_avg_fn(trainer.tcfg.ema_decay),
                                     use_buffers=True)
    trainer_step = trainer._train_step

    def step_and_average() -> dict[str, float]:
        metrics = trainer_step()
        averaged_buffers.update_parameters(trainer.model)
        return metrics

    trainer._train_step = step_and_average  # the instance attribute shadows the method for this run only
    started = time.perf_counter()
    run = trainer.fit()
    info = {"steps": run.step, "train_seconds": trainer.elapsed, "train_wall_seconds": time.perf_counter() - started,
            "run_dir": str(run.run_dir), "data": trainer.data.source}
    record, out = new_record("ema_buffers", info), results_path(args)
    evaluator = load_evaluator("mnist")
    models = {"ema, buffers copied (the trainer's)": run.sampling_model, "ema, buffers averaged (before)":
              averaged_buffers.module, "raw": run.model}
    record["quality"] = []
    for i, (name, model) in enumerate(models.items()):
        model.eval()
        grid = out.with_name(f"{out.stem}_{i}.png")
        with torch.no_grad():
            quality = sample_quality(model, 1000, trainer.data, evaluator, grid, truncation=0.0)
        record["quality"].append({"weights": name, **quality})
        print(f"{name}: FID-MNIST {quality['fid']:.1f}, recognizable {quality['recognizability']:.3f}", flush=True)
    best = min(record["quality"], key=lambda q: q["fid"])
    write_record(record, out, f"best FID-MNIST {best['fid']:.1f} ({best['weights']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
