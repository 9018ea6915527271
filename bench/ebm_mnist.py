"""Time to quality of the EBM on MNIST: train the default config, then sample quality, OOD AUROC and cost.

Trains ``configs/ebm_mnist.toml`` through the genzoo Trainer (the same path as ``genzoo train``), then
measures the trained model (no EMA: the config turns it off):

- FID-MNIST, precision, recall, recognizability and class coverage (``genzoo.metrics``) of
  ``--quality-n`` samples, quantised to 8 bits, against every test image: chains continued from the
  replay buffer (the config's [sample] options) and chains from uniform noise (``--noise-steps``
  SGLD steps), with the floor of as many real training digits scored the same way;
- sampling time per image of both, ``--time-n`` images per batch;
- the out-of-distribution AUROC of the energy, MNIST test (in) vs FashionMNIST test (out);
- peak resident memory; one JSON record next to the sample grids.

    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/ebm_mnist.py \
        [--set train.max_minutes=...] [--json bench/results/ebm_mnist.json]
    ... python bench/ebm_mnist.py --from-run runs/bench-ebm_mnist-...   # measure a trained run again

Run it under the shared lock: another job on the same two cores halves the steps that fit in the time
budget. With the data here the numbers are "MNIST-5k train / full MNIST test".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from genzoo.config import DataConfig
from genzoo.models.ebm import ood_auroc
from genzoo.pixels import from_uint8
from genzoo.sources import load_data
from harness import bench_arguments, new_record, results_path, trained_or_loaded, write_record  # bench/harness.py
from harness import sample_quality, seconds_per_image


def main() -> int:
    parser = bench_arguments("ebm_mnist", __doc__)
    parser.add_argument("--noise-steps", type=int, default=200, help="SGLD steps of the samples from noise")
    parser.add_argument("--time-n", type=int, default=100, help="images per batch for the sampling times")
    parser.add_argument("--quality-n", type=int, default=1000, help="samples for the quality metrics")
    parser.add_argument("--parts", default="timing,quality,ood", help="which measurements, comma-separated")
    args = parser.parse_args()
    model, data, info = trained_or_loaded(args)
    record, out = new_record("ebm_mnist", info), results_path(args)
    settings = {"buffer": dict(record["sample_options"], from_buffer=True),
                "noise": dict(record["sample_options"], from_buffer=False, mcmc_steps=args.noise_steps)}

    parts = args.parts.split(",")
    if "timing" in parts:
        record["seconds_per_image"] = {name: seconds_per_image(model, args.time_n, **o) for name, o in settings.items()}
        print(f"seconds per image: {record['seconds_per_image']}", flush=True)
    if "quality" in parts:
        measure_quality(model, data, args.quality_n, out, settings, record)
    if "ood" in parts:
        measure_ood(model, data, args.data_root, record)
    auc = record.get("ood", {}).get("auroc", float("nan"))
    write_record(record, out, f"OOD AUROC {auc:.4f}")
    return 0


def measure_quality(model, data, n: int, out: Path, settings: dict, record: dict) -> None:
    from genzoo.evaluator import load_evaluator
    from genzoo.metrics import reference_points

    evaluator = load_evaluator("mnist")
    record["evaluator"] = {"name": evaluator.name, "accuracy": evaluator.accuracy}
    record["quality"] = {}
    for name, options in settings.items():
        grid = out.with_name(f"{out.stem}_{name}.png")
        record["quality"][name] = sample_quality(model, n, data, evaluator, grid, batch_size=500, **options)
        print(f"quality ({name}): {record['quality'][name]}", flush=True)
    real = from_uint8(data.test_x)
    record["quality_references"] = reference_points(from_uint8(data.train_x), real, evaluator, n)
    print(f"references: {record['quality_references']}", flush=True)


def measure_ood(model, data, data_root: str | None, record: dict) -> None:
    started = time.perf_counter()
    fashion = load_data(DataConfig(name="fashion_mnist"), data_root)
    auc = ood_auroc(model, from_uint8(data.test_x), from_uint8(fashion.test_x))
    record["ood"] = {"in": "MNIST test", "out": "FashionMNIST test", "in_images": len(data.test_x),
                     "out_images": len(fashion.test_x), "auroc": auc, "seconds": time.perf_counter() - started}
    print(f"OOD: {record['ood']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
