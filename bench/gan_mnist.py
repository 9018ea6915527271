"""Time to quality of the GAN on MNIST: train the default config, then sample quality and sampling cost.

Trains ``configs/gan_mnist.toml`` through the genzoo Trainer (the same path as ``genzoo train``), then
measures with the EMA generator:

- FID-MNIST, precision, recall, recognizability and class coverage (``genzoo.metrics``) of
  ``--quality-n`` samples (labels cycling 0..9, 8-bit) against every test image, without truncation
  and with the truncation trick at 1.0, next to the floor of as many real training digits;
- the same for the raw (non-averaged) generator, to show what the EMA buys;
- sampling time per image, ``--time-n`` images per batch;
- peak resident memory; one JSON record next to the sample grids.

    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/gan_mnist.py \
        [--set train.max_minutes=...] [--json bench/results/gan_mnist.json]
    ... python bench/gan_mnist.py --from-run runs/bench-gan_mnist-...   # measure a trained run again

Run it under the shared lock: another job on the same two cores halves the steps that fit in the time
budget. With the data here the numbers are "MNIST-5k train / full MNIST test".
"""

from __future__ import annotations

import sys
from pathlib import Path

from genzoo.checkpoint import load_model
from genzoo.pixels import from_uint8
from harness import bench_arguments, new_record, results_path, trained_or_loaded, write_record  # bench/harness.py
from harness import sample_quality, seconds_per_image


def main() -> int:
    parser = bench_arguments("gan_mnist", __doc__)
    parser.add_argument("--time-n", type=int, default=64, help="images per batch for the sampling time")
    parser.add_argument("--quality-n", type=int, default=1000, help="samples for the quality metrics")
    args = parser.parse_args()
    ema, data, info = trained_or_loaded(args)
    # and the raw (not averaged) weights that the EMA is compared with, from the run's last.pt
    models = {"ema": ema, "raw": load_model(info["run_dir"], use_ema=False)[0].to(ema.device)}
    record, out = new_record("gan_mnist", info), results_path(args)
    options = dict(record["sample_options"])
    record["seconds_per_image"] = {f"batch_{n}": seconds_per_image(models["ema"], n, repeats=5, **options) for n in (args.time_n, 500)}
    print(f"seconds per image: {record['seconds_per_image']}", flush=True)
    measure_quality(models, data, args.quality_n, out, record)
    best = record["quality"][0]
    write_record(record, out, f"FID-MNIST {best['fid']:.2f}, recognizable {best['recognizability']:.3f}, "
                              f"coverage {best['coverage']:.4f}")
    return 0


def measure_quality(models: dict, data, n: int, out: Path, record: dict) -> None:
    """Quality of the EMA generator without and with truncation, of the raw generator, and the real-digit floor."""
    from genzoo.evaluator import load_evaluator
    from genzoo.metrics import reference_points

    evaluator = load_evaluator("mnist")
    options = dict(record["sample_options"])
    record["evaluator"] = {"name": evaluator.name, "accuracy": evaluator.accuracy}
    record["quality"] = []
    for which, truncation in (("ema", 0.0), ("ema", 1.0), ("raw", 0.0)):
        grid = out.with_name(f"{out.stem}_{which}_t{truncation:g}.png")
        quality = sample_quality(models[which], n, data, evaluator, grid, **{**options, "truncation": truncation})
        record["quality"].append({"weights": which, **quality})
        print(f"quality: {record['quality'][-1]}", flush=True)
    record["quality_references"] = reference_points(from_uint8(data.train_x), data.test_x, evaluator, n)
    print(f"references: {record['quality_references']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
