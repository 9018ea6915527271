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

import datetime
import json
import sys
import time
from pathlib import Path

import torch

from genzoo.checkpoint import load_model
from genzoo.cli import train_arguments
from genzoo.pixels import from_uint8
from genzoo.runtime import cpu_name, peak_rss_mb
from genzoo.sources import load_data
from harness import sample_quality, seconds_per_image, train  # bench/harness.py

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = train_arguments(str(ROOT / "configs" / "gan_mnist.toml"))
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--from-run", help="measure this trained run instead of training one")
    parser.add_argument("--time-n", type=int, default=64, help="images per batch for the sampling time")
    parser.add_argument("--quality-n", type=int, default=1000, help="samples for the quality metrics")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "gan_mnist.json"))
    args = parser.parse_args()
    args.out = args.out or f"runs/bench-gan_mnist-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.from_run:
        ema, cfg, _ = load_model(args.from_run)
        models = {"ema": ema, "raw": load_model(args.from_run, use_ema=False)[0]}
        data = load_data(cfg.data, args.data_root)
        info = {"run_dir": args.from_run, "data": data.source, "sample_options": dict(cfg.sample)}
    else:
        run, info, data = train(args)
        models = {"ema": run.sampling_model.eval(), "raw": run.model.eval()}
    record = {"benchmark": "gan_mnist", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": f"{cpu_name()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
              "command": " ".join([Path(sys.executable).name] + sys.argv), **info}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = dict(record["sample_options"])
    record["seconds_per_image"] = {f"batch_{n}": seconds_per_image(models["ema"], n, repeats=5, **options) for n in (args.time_n, 500)}
    print(f"seconds per image: {record['seconds_per_image']}", flush=True)
    measure_quality(models, data, args.quality_n, out, record)
    record["peak_rss_mb"] = peak_rss_mb()
    out.write_text(json.dumps(record, indent=2) + "\n")
    best = record["quality"][0]
    print(f"gan_mnist: FID-MNIST {best['fid']:.2f}, recognizable {best['recognizability']:.3f}, coverage "
          f"{best['coverage']:.4f} | {record.get('steps', '?')} steps in {record.get('train_seconds', 0):.0f} s | "
          f"peak RSS {record['peak_rss_mb']:.0f} MB | {out}")
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
