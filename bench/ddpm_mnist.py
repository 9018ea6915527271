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

import datetime
import json
import sys
import time
from pathlib import Path

import torch

from genzoo.checkpoint import load_model
from genzoo.cli import train_arguments
from genzoo.metrics import heldout_nll
from genzoo.pixels import from_uint8
from genzoo.runtime import cpu_name, peak_rss_mb
from genzoo.sources import load_data
from harness import sample_quality, seconds_per_image, train  # bench/harness.py

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = train_arguments(str(ROOT / "configs" / "ddpm_mnist.toml"))
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--from-run", help="measure this trained run instead of training one")
    parser.add_argument("--timesteps", type=int, default=20, help="K, stratified timesteps of the bound per image")
    parser.add_argument("--time-n", type=int, default=64, help="images per batch for the sampling times")
    parser.add_argument("--quality-n", type=int, default=1000, help="samples for the quality metrics")
    parser.add_argument("--parts", default="bound,timing,quality", help="which measurements, comma-separated")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "ddpm_mnist.json"))
    args = parser.parse_args()
    args.out = args.out or f"runs/bench-ddpm_mnist-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.from_run:
        model, cfg, _ = load_model(args.from_run)
        data = load_data(cfg.data, args.data_root)
        info = {"run_dir": args.from_run, "data": data.source, "sample_options": dict(cfg.sample)}
    else:
        run, info, data = train(args)
        model = run.sampling_model.eval()
    record = {"benchmark": "ddpm_mnist", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": f"{cpu_name()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
              "command": " ".join([Path(sys.executable).name] + sys.argv), **info}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)

    parts = args.parts.split(",")
    if "bound" in parts:
        measure_bound(model, data, args.timesteps, record)
    if "timing" in parts:
        measure_timing(model, args.time_n, record)
    if "quality" in parts:
        measure_quality(model, data, args.quality_n, out, record)
    record["peak_rss_mb"] = peak_rss_mb()
    out.write_text(json.dumps(record, indent=2) + "\n")
    bits = record.get("test_bound", {}).get("bits_per_dim", float("nan"))
    print(f"ddpm_mnist: {bits:.4f} bits/dim | {record.get('steps', '?')} steps in "
          f"{record.get('train_seconds', 0):.0f} s | peak RSS {record['peak_rss_mb']:.0f} MB | {out}")
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
