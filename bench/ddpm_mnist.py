"""Time to quality of the DDPM on MNIST: train the default config, then the test bound and sampling cost.

Trains ``configs/ddpm_mnist.toml`` through the genzoo Trainer (the same path as ``genzoo train``), then
measures with the EMA weights:

- the variational bound on every test image, in bits/dim, with ``--timesteps`` K stratified timesteps
  per image (an unbiased estimate of the sum over t = 2..T, see ``DDPM.log_prob``), of the
  unconditional model log p(x) (the "no label" class), comparable with other families;
- sampling time per image for 1,000-step ancestral sampling and 50- and 20-step DDIM, ``--time-n``
  images per batch, with the config's guidance;
- FID-MNIST, precision, recall, recognizability and class coverage (``genzoo.metrics``) of
  ``--quality-n`` samples (labels cycling 0..9) for DDIM-50 and DDIM-20, at guidance 0 and the config's,
  against every test image, with the floor of as many real training digits scored the same way;
- peak resident memory; one JSON record next to the sample grids.

    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/ddpm_mnist.py \
        [--timesteps 20] [--set train.max_steps=...] [--json bench/results/ddpm_mnist.json]
    ... python bench/ddpm_mnist.py --from-run runs/bench-ddpm_mnist-...   # measure a trained run again

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


def main() -> int:
    parser = bench_arguments("ddpm_mnist", __doc__)
    parser.add_argument("--timesteps", type=int, default=20, help="K, stratified timesteps of the bound per image")
    parser.add_argument("--time-n", type=int, default=64, help="images per batch for the sampling times")
    parser.add_argument("--quality-n", type=int, default=1000, help="samples for the quality metrics")
    parser.add_argument("--parts", default="bound,timing,quality", help="which measurements, comma-separated")
    args = parser.parse_args()
    model, data, info = trained_or_loaded(args)
    record, out = new_record("ddpm_mnist", info), results_path(args)
    parts = args.parts.split(",")
    if "bound" in parts:
        measure_bound(model, data, args.timesteps, record)
    if "timing" in parts:
        measure_timing(model, args.time_n, record)
    if "quality" in parts:
        measure_quality(model, data, args.quality_n, out, record)
    bits = record.get("test_bound", {}).get("bits_per_dim", float("nan"))
    write_record(record, out, f"{bits:.4f} bits/dim")
    return 0


def measure_bound(model, data, timesteps: int, record: dict) -> None:
    torch.manual_seed(0)
    bound = heldout_nll(model, data.test_batches(200), timesteps=timesteps)
    record["test_bound"] = {"timesteps": timesteps, **bound}
    print(f"bound: {bound['bits_per_dim']:.4f} bits/dim on {bound['examples']} test images ({bound['seconds']:.0f} s)", flush=True)


def measure_timing(model, n: int, record: dict) -> None:
    options = dict(record["sample_options"])
    guidance = options.get("guidance", 0.0)
    record["seconds_per_image"] = {
        name: seconds_per_image(model, n, **{**options, **setting})
        for name, setting in [("ddpm_1000", {"sampler": "ddpm"}), ("ddim_50", {"sampler": "ddim", "steps": 50}),
                              ("ddim_20", {"sampler": "ddim", "steps": 20})]
    }
    record["seconds_per_image"]["guidance"] = guidance
    print(f"seconds per image: {record['seconds_per_image']}", flush=True)


def measure_quality(model, data, n: int, out: Path, record: dict) -> None:
    """Quality of DDIM-50 and DDIM-20 samples at guidance 0 and the config's, and the real-digit floor."""
    from genzoo.evaluator import load_evaluator
    from genzoo.metrics import reference_points

    evaluator = load_evaluator("mnist")
    options = dict(record["sample_options"])
    guidance = options.get("guidance", 0.0)
    record["evaluator"] = {"name": evaluator.name, "accuracy": evaluator.accuracy}
    record["quality"] = []
    for steps in (50, 20):
        for w in sorted({0.0, guidance}):
            grid = out.with_name(f"{out.stem}_ddim{steps}_w{w:g}.png")
            setting = {**options, "sampler": "ddim", "steps": steps, "guidance": w}
            record["quality"].append(sample_quality(model, n, data, evaluator, grid, **setting))
            print(f"quality: {record['quality'][-1]}", flush=True)
    record["quality_references"] = reference_points(from_uint8(data.train_x), data.test_x, evaluator, n)
    print(f"references: {record['quality_references']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
