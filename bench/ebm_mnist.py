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

import datetime
import json
import sys
import time
from pathlib import Path

import torch

from genzoo.checkpoint import load_model
from genzoo.cli import train_arguments
from genzoo.config import DataConfig
from genzoo.models.ebm import ood_auroc
from genzoo.pixels import from_uint8
from genzoo.runtime import cpu_name, peak_rss_mb
from genzoo.sources import load_data
from harness import sample_quality, seconds_per_image, train  # bench/harness.py

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = train_arguments(str(ROOT / "configs" / "ebm_mnist.toml"))
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--from-run", help="measure this trained run instead of training one")
    parser.add_argument("--noise-steps", type=int, default=200, help="SGLD steps of the samples from noise")
    parser.add_argument("--time-n", type=int, default=100, help="images per batch for the sampling times")
    parser.add_argument("--quality-n", type=int, default=1000, help="samples for the quality metrics")
    parser.add_argument("--parts", default="timing,quality,ood", help="which measurements, comma-separated")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "ebm_mnist.json"))
    args = parser.parse_args()
    args.out = args.out or f"runs/bench-ebm_mnist-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.from_run:
        model, cfg, _ = load_model(args.from_run)
        data = load_data(cfg.data, args.data_root)
        info = {"run_dir": args.from_run, "data": data.source, "sample_options": dict(cfg.sample)}
    else:
        run, info, data = train(args)
        model = run.sampling_model.eval()
    record = {"benchmark": "ebm_mnist", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": f"{cpu_name()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
              "command": " ".join([Path(sys.executable).name] + sys.argv), **info}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
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
    record["peak_rss_mb"] = peak_rss_mb()
    out.write_text(json.dumps(record, indent=2) + "\n")
    auc = record.get("ood", {}).get("auroc", float("nan"))
    print(f"ebm_mnist: OOD AUROC {auc:.4f} | {record.get('steps', '?')} steps in "
          f"{record.get('train_seconds', 0):.0f} s | peak RSS {record['peak_rss_mb']:.0f} MB | {out}")
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
