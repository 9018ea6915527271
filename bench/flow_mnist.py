"""Time to quality of the normalizing flow on MNIST: train the default config, then test bits/dim and sampling.

Trains ``configs/flow_mnist.toml`` through the genzoo Trainer (the same path as ``genzoo train``), then
measures with the EMA weights:

- bits/dim on every test image: the dequantization lower bound on log P of the 8-bit image with one
  draw of u per image (what training optimises), and with ``--iw-samples`` draws combined as
  importance weights (a tighter bound, see ``Flow.log_prob``);
- sampling time per image at temperatures 0.7 and 1.0, ``--time-n`` images per batch;
- FID-MNIST, precision, recall, recognizability and class coverage (``genzoo.metrics``) of
  ``--quality-n`` samples at temperatures 0.7 and 1.0 against every test image, with the floor of as
  many real training digits scored the same way;
- peak resident memory; one JSON record next to the sample grids.

    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/flow_mnist.py \
        [--set train.max_minutes=...] [--json bench/results/flow_mnist.json]
    ... python bench/flow_mnist.py --from-run runs/bench-flow_mnist-...   # measure a trained run again

Run it under the shared lock: another job on the same two cores halves the steps that fit in the time
budget. With the data here the numbers are "MNIST-5k train / full MNIST test".
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from genzoo.metrics import heldout_nll
from genzoo.pixels import from_uint8
from harness import bench_arguments, new_record, results_path, trained_or_loaded, write_record  # bench/harness.py
from harness import sample_quality, seconds_per_image
TEMPERATURES = (0.7, 1.0)


def measure_likelihood(model, data, iw_samples: int, record: dict) -> None:
    record["test_bits_per_dim"] = {}
    for samples in sorted({1, iw_samples}):
        torch.manual_seed(0)
        # S draws of u per image put S x batch images through the flow at once: keep that near 500
        result = heldout_nll(model, data.test_batches(max(1, 500 // samples)), samples=samples)
        record["test_bits_per_dim"][f"samples_{samples}"] = result
        print(f"test: {result['bits_per_dim']:.4f} bits/dim with {samples} draw(s) of u per image, "
              f"{result['examples']} images ({result['seconds']:.0f} s)", flush=True)


def measure_timing(model, n: int, record: dict) -> None:
    record["ms_per_image"] = {f"temperature_{t:g}": 1000 * seconds_per_image(model, n, temperature=t) for t in TEMPERATURES}
    print(f"sampling ms per image: {record['ms_per_image']}", flush=True)


def measure_quality(model, data, n: int, out: Path, record: dict) -> None:
    """genzoo.metrics' of n samples (8-bit) at each temperature, and the real-digit floor."""
    from genzoo.evaluator import load_evaluator
    from genzoo.metrics import reference_points

    evaluator = load_evaluator("mnist")
    record["evaluator"] = {"name": evaluator.name, "accuracy": evaluator.accuracy}
    record["quality"] = []
    for t in TEMPERATURES:
        grid = out.with_name(f"{out.stem}_t{t:g}.png")
        record["quality"].append(sample_quality(model, n, data, evaluator, grid, batch_size=500, temperature=t))
        print(f"quality: {record['quality'][-1]}", flush=True)
    record["quality_references"] = reference_points(from_uint8(data.train_x), data.test_x, evaluator, n)
    print(f"references: {record['quality_references']}", flush=True)


def main() -> int:
    parser = bench_arguments("flow_mnist", __doc__)
    parser.add_argument("--iw-samples", type=int, default=8, help="draws of u per image for the tighter bound")
    parser.add_argument("--time-n", type=int, default=100, help="images per batch for the sampling times")
    parser.add_argument("--quality-n", type=int, default=5000, help="samples for the quality metrics")
    parser.add_argument("--parts", default="likelihood,timing,quality", help="which measurements, comma-separated")
    args = parser.parse_args()
    model, data, info = trained_or_loaded(args)
    record, out = new_record("flow_mnist", info), results_path(args)
    parts = args.parts.split(",")
    if "likelihood" in parts:
        measure_likelihood(model, data, args.iw_samples, record)
    if "timing" in parts:
        measure_timing(model, args.time_n, record)
    if "quality" in parts:
        measure_quality(model, data, args.quality_n, out, record)
    bits = record.get("test_bits_per_dim", {}).get("samples_1", {}).get("bits_per_dim", float("nan"))
    write_record(record, out, f"{bits:.4f} bits/dim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
